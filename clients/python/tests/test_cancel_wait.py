"""rt.cancel(run_id, wait=True) waits for the run's end; rt.handlers() and a wait on a run no live node can start."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
import threading
import time
import unittest
from typing import Any, Dict, List

import runtrail
from tests.support import Server, wait_until

# A quick reaper, so a run whose owner is gone ends soon after its lease lapses.
server = Server(env={"RUNTRAIL_REAPER_INTERVAL_MS": "100"})
setUpModule, tearDownModule = server.start, server.close


def owned_run(rt: runtrail.Client, name: str, lease_ttl_ms: int, owner: Dict[str, str]) -> Dict[str, Any]:
    """A running run whose producer then sends nothing (no heartbeats): made over HTTP, as another process would."""
    body = {"name": name, "leaseTtlMs": lease_ttl_ms, "owner": owner}
    return rt._http.request("createRun", json_body=body)  # type: ignore[no-any-return]


class CancelWaitTest(unittest.TestCase):
    def test_returns_the_run_ended_cancelled_once_its_producer_stopped(self) -> None:
        rt = runtrail.Client(server.url)
        started = threading.Event()
        ended_in_block: List[str] = []

        def produce() -> None:
            with rt.run("stops when asked") as run:
                started.set()
                # A loop that polls run.cancelled and stops: leaving the block then ends the run cancelled.
                wait_until(lambda: run.cancelled, timeout=60, what="the cancel to reach the producer")
                ended_in_block.append(run.id)

        producer = threading.Thread(target=produce)
        producer.start()
        self.addCleanup(producer.join, 60)
        started.wait(30)
        run_id = wait_until(lambda: rt.list_runs(name="stops when asked", status="running")["runs"], what="the run")[0]["id"]

        ended = rt.cancel(run_id, "wrong dataset", wait=True, timeout=60)

        self.assertEqual(ended["status"], "cancelled")
        self.assertEqual(ended["error"]["kind"], "cancelled")
        self.assertIn("wrong dataset", ended["error"]["message"])
        self.assertEqual(ended_in_block, [run_id])

    def test_waits_for_the_reaper_to_end_a_run_whose_owner_is_gone_saying_on_stderr_what_it_waits_for(self) -> None:
        rt = runtrail.Client(server.url)
        # A lease longer than the 2 s before the wait speaks.
        run = owned_run(rt, "abandoned", 5000, {"kind": "producer", "node": "gone-host", "id": "pid-1"})
        said = io.StringIO()
        with contextlib.redirect_stderr(said):
            ended = rt.cancel(run["id"], wait=True, timeout=60)
        self.assertEqual(ended["status"], "cancelled")
        self.assertIn("owner producer pid-1 on gone-host stopped heartbeating", ended["error"]["message"])
        self.assertEqual(
            said.getvalue(),
            f"runtrail: cancel requested; waiting for run {run['id']} to end: its owner (producer pid-1 on gone-host) stops it, "
            "or, if that is gone, the reaper ends it cancelled once its lease of 5 s lapses unrenewed\n",
        )

    def test_returns_the_run_as_it_ended_when_it_finished_before_the_cancel_took_effect(self) -> None:
        rt = runtrail.Client(server.url)
        owner = {"kind": "producer", "node": "busy-host", "id": "pid-2"}
        run = owned_run(rt, "nearly done", 60_000, owner)
        outcome: List[Dict[str, Any]] = []
        waiter = threading.Thread(target=lambda: outcome.append(rt.cancel(run["id"], wait=True, timeout=60)))
        waiter.start()
        self.addCleanup(waiter.join, 60)
        wait_until(lambda: rt.get_run(run["id"])["cancelRequestedAt"] is not None, what="the cancel request")
        # The owner ignores the request and finishes its work.
        rt._http.request("finishRun", {"id": run["id"]}, json_body={"status": "succeeded", "output": {"documents": 12}, "owner": owner})
        waiter.join(60)
        self.assertEqual(len(outcome), 1)
        self.assertEqual((outcome[0]["status"], outcome[0]["output"]), ("succeeded", {"documents": 12}))

    def test_a_timeout_without_wait_is_refused_before_anything_is_asked(self) -> None:
        rt = runtrail.Client(server.url)
        run = owned_run(rt, "left alone", 60_000, {"kind": "producer", "node": "h", "id": "pid-3"})
        with self.assertRaisesRegex(ValueError, r"cancel\(timeout=\.\.\.\) bounds the wait for the run's end: give it with wait=True"):
            rt.cancel(run["id"], timeout=5)
        # Before: the cancel was asked, and then a timeout of -1 was a TimeoutError, "5" a TypeError naming nothing.
        for timeout, error, message in ((-1, ValueError, "0 or more, got -1"), ("5", TypeError, "got str '5'")):
            with self.assertRaises(error) as caught:
                rt.cancel(run["id"], wait=True, timeout=timeout)
            self.assertEqual(str(caught.exception), f"rt.cancel(timeout=...) must be a number of seconds, {message}")
        self.assertIsNone(rt.get_run(run["id"])["cancelRequestedAt"])


class HandlersTest(unittest.TestCase):
    def test_handlers_and_a_wait_on_a_queued_run_no_live_node_can_start(self) -> None:
        folder = tempfile.mkdtemp(prefix="runtrail-py-handlers-")
        self.addCleanup(shutil.rmtree, folder, True)
        module = os.path.join(folder, "handlers.mjs")
        with open(module, "w") as f:
            f.write("export default { 'nightly-import': async () => {} };\n")
        # A node of concurrency 0 queues a run of its handler; the node that replaces it does not define it.
        own = Server(env={"RUNTRAIL_CONCURRENCY": "0"}, args=["--handlers", module])
        self.addCleanup(own.close)
        own.start()
        rt = runtrail.Client(own.url)
        queued = rt.start("nightly-import")
        self.assertEqual(queued["status"], "queued")
        own.stop()
        own.args = []
        own.env.update({"RUNTRAIL_CONCURRENCY": "4", "RUNTRAIL_QUEUED_ORPHAN_TIMEOUT_MS": "3000", "RUNTRAIL_REAPER_INTERVAL_MS": "100"})
        own.start()

        counted = wait_until(
            lambda: [u for u in rt.handlers()["unclaimable"] if u["handler"] == "nightly-import"],
            what="the server's reaper to find no live node defining nightly-import",
        )[0]
        answer = rt.handlers()
        self.assertIn("demo-pipeline", answer["handlers"])
        self.assertNotIn("nightly-import", answer["handlers"])
        self.assertEqual(answer["queuedOrphanTimeoutMs"], 3000)
        self.assertEqual(counted["endsAt"], counted["undefinedSince"] + 3000)

        said = io.StringIO()
        with contextlib.redirect_stderr(said):
            ended = rt.wait(queued["id"], timeout=60)
        at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(counted["endsAt"] / 1000))
        self.assertEqual(
            said.getvalue(),
            f"runtrail: run {queued['id']} is queued, and no live node defines its handler 'nightly-import': it starts if a node "
            f"that defines it comes up; if none does by {at}, it ends failed (orphaned) (the server's queuedOrphanTimeoutMs, 3 s, from when it found none)\n",
        )
        self.assertEqual((ended["status"], ended["error"]["kind"]), ("failed", "orphaned"))
        # A run whose handler a live node defines waits without a word.
        started = rt.start("demo-pipeline", {"docs": 2, "latencyMs": 1, "failureRate": 0})
        quiet = io.StringIO()
        with contextlib.redirect_stderr(quiet):
            self.assertEqual(rt.wait(started["id"], timeout=60)["status"], "succeeded")
        self.assertEqual(quiet.getvalue(), "")


if __name__ == "__main__":
    unittest.main()
