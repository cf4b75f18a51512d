"""rt.watch and rt.get_run on a finished run; the client's routes are the server's."""

from __future__ import annotations

import re
import unittest

import runtrail
from runtrail._routes import ROUTES
from tests.support import ROOT, Server

server = Server()
# One server for the module's tests: started before the first, closed (its data dir removed) after the last.
setUpModule, tearDownModule = server.start, server.close


class WatchTest(unittest.TestCase):
    def test_watch_reads_a_finished_run_from_seq_1_to_its_end(self) -> None:
        rt = runtrail.Client(server.url)
        with rt.run("finished") as run:
            for i in range(300):
                with run.call(f"doc {i}"):
                    pass
                run.progress(i + 1, 300)
        stored = rt.events(run.id, limit=5000)["events"]
        watched = list(rt.watch(run.id))
        self.assertEqual([e["seq"] for e in watched], list(range(1, len(stored) + 1)))
        self.assertEqual(watched, stored)
        self.assertEqual(watched[-1]["type"], "run.succeeded")
        self.assertEqual(set(watched[0]), {"runId", "seq", "type", "ts", "data", "id"})
        self.assertEqual([e["seq"] for e in rt.watch(run.id, after=895)], [896, 897, 898, 899, 900, 901])
        self.assertEqual(list(rt.watch(run.id, after=len(stored))), [])
        self.assertEqual(rt.get_run(run.id)["snapshot"]["counters"]["ok"], 300)

    def test_watching_an_unknown_run_is_an_error_not_silence(self) -> None:
        with self.assertRaises(runtrail.RuntrailError) as caught:
            next(runtrail.Client(server.url).watch("no-such-run"))
        self.assertEqual(caught.exception.code, "run_not_found")


class ContractTest(unittest.TestCase):
    def test_every_route_the_client_uses_is_in_the_protocol_route_table(self) -> None:
        source = (ROOT / "packages" / "protocol" / "src" / "routes.ts").read_text()
        prefix = re.search(r"API_PREFIX = '([^']+)'", source)
        assert prefix is not None
        served = {
            name: (method, path.replace("${API_PREFIX}", prefix.group(1)))
            for name, method, path in re.findall(r"(\w+): \{\s*method: '(\w+)',\s*path: [`']([^`']+)[`']", source)
        }
        self.assertIn("getRun", served)
        for name, route in ROUTES.items():
            self.assertEqual(served.get(name), route, f"route {name} of the Python client")


if __name__ == "__main__":
    unittest.main()
