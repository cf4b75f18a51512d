"""The README's Python quickstart, executed verbatim."""

from __future__ import annotations

import re
import unittest

import runtrail
from tests.support import ROOT, Server, python_env, run_python


def quickstart() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Python client\n", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match is not None, "README: no python code block under ## Python client"
    return match.group(1)


class ReadmeTest(unittest.TestCase):
    def test_the_python_quickstart_runs_as_written(self) -> None:
        server = Server().start()
        self.addCleanup(server.close)
        done = run_python(quickstart(), python_env(server.url))
        self.assertEqual(done.returncode, 0, done.stderr)
        rt = runtrail.Client(server.url)
        (run,) = rt.list_runs(name="eval-gpt4")["runs"]
        self.assertEqual(done.stdout.strip(), f"{server.url}/runs/{run['id']}")
        self.assertEqual(run["status"], "succeeded")
        self.assertEqual(run["labels"], {"team": "search"})
        self.assertEqual(run["output"], {"judged": 20})
        counters = run["snapshot"]["counters"]
        self.assertEqual((counters["ok"], counters["failed"]), (18, 2))
        self.assertEqual(run["snapshot"]["progress"]["percent"], 100)
        self.assertEqual(run["snapshot"]["metrics"]["score"]["count"], 18)


if __name__ == "__main__":
    unittest.main()
