"""Runs looked after from Python: retry a handler run, delete runs, count them."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import unittest
import uuid
from typing import Tuple

import runtrail
from tests.support import CuttingProxy, Server

# A handler whose subprocess prints: a run that can be retried.
HANDLERS = """
export default {
  'py-printer': async (ctx) => {
    await ctx.exec(ctx.input.python, ['-c', ctx.input.script]);
  },
};
"""
folder = tempfile.mkdtemp(prefix="runtrail-py-handlers-")
with open(os.path.join(folder, "handlers.mjs"), "w") as f:
    f.write(HANDLERS)
server = Server(args=["--handlers", os.path.join(folder, "handlers.mjs")])


def setUpModule() -> None:
    server.start()


def tearDownModule() -> None:
    server.close()
    shutil.rmtree(folder, ignore_errors=True)


def printer(rt: runtrail.Client, lines: int) -> str:
    """A handler run that printed ``lines`` lines, ended."""
    script = f"for i in range({lines}): print(f'line {{i}} of the output')"
    run = rt.start("py-printer", {"python": sys.executable, "script": script})
    ended = rt.wait(run["id"], timeout=60)
    assert ended["status"] == "succeeded", ended
    return str(run["id"])


def through_proxy(test: unittest.TestCase, after: int, cuts: int = 1) -> Tuple[runtrail.Client, CuttingProxy]:
    proxy = CuttingProxy(int(server.url.rsplit(":", 1)[1]), after=after, cuts=cuts)
    test.addCleanup(proxy.close)
    return runtrail.Client(f"http://127.0.0.1:{proxy.port}", start_timeout=30, retry_for=30), proxy


class RetryTest(unittest.TestCase):
    def test_a_retry_starts_the_next_attempt_of_a_handler_run_and_the_same_key_answers_that_attempt(self) -> None:
        rt = runtrail.Client(server.url)
        first = printer(rt, 1)
        again = rt.retry(first, idempotency_key=f"retry-{first}")
        self.assertEqual((again["name"], again["retryOf"], again["attempt"]), ("py-printer", first, 2))
        self.assertEqual(rt.retry(first, idempotency_key=f"retry-{first}")["id"], again["id"])
        self.assertEqual(rt.wait(again["id"], timeout=60)["status"], "succeeded")

    def test_a_retry_whose_answer_is_lost_is_sent_again_and_starts_one_attempt(self) -> None:
        rt = runtrail.Client(server.url)
        first = printer(rt, 1)
        cut, proxy = through_proxy(self, after=0)
        again = cut.retry(first)
        self.assertEqual(len(proxy.requests), 2)
        attempts = [r for r in rt.list_runs(name="py-printer", limit=100)["runs"] if r.get("retryOf") == first]
        self.assertEqual([r["id"] for r in attempts], [again["id"]])
        rt.wait(again["id"], timeout=60)

    def test_a_run_no_handler_executes_is_not_retryable(self) -> None:
        rt = runtrail.Client(server.url)
        with rt.run("produced here") as run:
            pass
        with self.assertRaises(runtrail.RuntrailError) as refused:
            rt.retry(run.id)
        self.assertEqual(refused.exception.code, "run_not_retryable")


class DeleteTest(unittest.TestCase):
    def test_deletes_an_ended_run_with_the_runs_under_it_and_refuses_one_still_going(self) -> None:
        rt = runtrail.Client(server.url)
        with rt.run("parent") as parent:
            with parent.child("child") as child:
                pass
        going = rt.run("still going")
        self.addCleanup(going.succeed)
        with self.assertRaises(runtrail.RuntrailError) as refused:
            rt.delete_run(going.id)
        self.assertEqual(refused.exception.code, "run_not_terminal")
        self.assertIsNone(rt.delete_run(parent.id))
        for run_id in (parent.id, child.id):
            with self.assertRaises(runtrail.RuntrailError) as gone:
                rt.get_run(run_id)
            self.assertEqual(gone.exception.code, "run_not_found")
        with self.assertRaises(runtrail.RuntrailError) as again:
            rt.delete_run(parent.id)
        self.assertEqual(again.exception.code, "run_not_found")

    def test_a_delete_whose_answer_is_lost_is_sent_again_and_counts_the_run_gone(self) -> None:
        rt = runtrail.Client(server.url)
        with rt.run("deleted through a cut") as run:
            pass
        cut, proxy = through_proxy(self, after=0)
        self.assertIsNone(cut.delete_run(run.id))
        self.assertEqual(len(proxy.requests), 2)
        with self.assertRaises(runtrail.RuntrailError) as gone:
            rt.get_run(run.id)
        self.assertEqual(gone.exception.code, "run_not_found")


class CountTest(unittest.TestCase):
    def test_counts_the_runs_list_runs_filters_match_by_status_over_every_page(self) -> None:
        rt = runtrail.Client(server.url)
        tag = uuid.uuid4().hex[:8]
        for _ in range(3):
            with rt.run(f"counted-{tag}"):
                pass
        failed = rt.run(f"counted-{tag}")
        failed.fail("no answer")
        counts = rt.count_runs(nameContains=tag)
        self.assertEqual(counts["total"], 4)
        self.assertEqual((counts["byStatus"]["succeeded"], counts["byStatus"]["failed"]), (3, 1))
        self.assertEqual(rt.count_runs(nameContains=tag, status="failed")["total"], 1)
        self.assertEqual(len(rt.list_runs(nameContains=tag, limit=2)["runs"]), 2)

    def test_a_filter_it_does_not_take_is_refused_by_name(self) -> None:
        rt = runtrail.Client(server.url)
        with self.assertRaisesRegex(TypeError, r"count_runs\(parentIds=\.\.\.\): a filter is one str or number, got list"):
            rt.count_runs(parentIds=["a", "b"])
        with self.assertRaises(runtrail.RuntrailError) as refused:
            rt.count_runs(limit=5)
        self.assertEqual(refused.exception.code, "invalid_request")
        self.assertIn("limit", refused.exception.message)


if __name__ == "__main__":
    unittest.main()
