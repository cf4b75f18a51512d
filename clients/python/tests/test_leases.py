"""Heartbeats keep a slow run alive; a cancel reaches the script as runtrail.Cancelled."""

from __future__ import annotations

import pickle
import threading
import time
import unittest
from typing import Any, Dict

import runtrail
from tests.support import Server, wait_until

# A reaper sweeping every 200 ms sees a lapsed lease at once.
server = Server(env={"RUNTRAIL_REAPER_INTERVAL_MS": "200"})
# One server for the module's tests: started before the first, closed (its data dir removed) after the last.
setUpModule, tearDownModule = server.start, server.close


def slow_down_stop_listener(run: runtrail.Run) -> None:
    """Make the sender's thread slow to tell the run why it stops, as a busy machine can."""
    tell = run._sender.on_stop

    def slow_tell(reason: str, kind: str) -> None:
        time.sleep(0.2)  # not a wait for anything: the descheduled thread this stands for
        tell(reason, kind)

    run._sender.on_stop = slow_tell


class LeaseTest(unittest.TestCase):
    def test_a_step_longer_than_the_lease_does_not_orphan_the_run(self) -> None:
        rt = runtrail.Client(server.url)
        # The control: the same lease without heartbeats ends orphaned, so the reaper is watching.
        control = rt._http.request("createRun", json_body={"name": "silent", "leaseTtlMs": 2000, "owner": {"kind": "producer", "node": "t", "id": "silent"}})
        with rt.run("slow step", lease_ttl_ms=2000) as run:
            with run.call("a 5 s step"):
                time.sleep(5)  # the workload itself: one step longer than the lease
        final = rt.get_run(run.id)
        self.assertEqual(final["status"], "succeeded", final["error"])
        self.assertEqual(final["snapshot"]["counters"]["ok"], 1)
        silent = wait_until(lambda: (r := rt.get_run(control["id"]))["status"] != "running" and r, 10, "the silent run to be reaped")
        self.assertEqual(silent["error"]["kind"], "orphaned")

    def test_a_cancel_raises_cancelled_in_the_script_as_it_is_made_not_at_the_next_heartbeat(self) -> None:
        rt = runtrail.Client(server.url)
        # Plain heartbeats would come every 200 s: the held one brings the cancel at once.
        lease_ms = 600_000
        outcome: Dict[str, Any] = {}
        waiting = threading.Event()

        def script() -> None:
            try:
                with rt.run("cancellable", lease_ttl_ms=lease_ms) as run:
                    outcome["run"] = run
                    with run.call("a long model call"):
                        run.flush()  # nothing left to send: only a heartbeat can bring the cancel
                        waiting.set()
                        wait_until(lambda: run.cancelled, 30, "run.cancelled")
                        outcome["seen"] = time.monotonic()
                    with run.call("the next call"):
                        outcome["ran on"] = True
            except BaseException as err:  # noqa: BLE001 - handed to the test thread
                outcome["raised"] = err

        thread = threading.Thread(target=script)
        thread.start()
        self.assertTrue(waiting.wait(15))
        rt.cancel(outcome["run"].id, reason="stopped from the dashboard")
        asked = time.monotonic()  # the cancel is stored: from here a heartbeat can carry it
        thread.join(30)
        self.assertFalse(thread.is_alive())
        self.assertIsInstance(outcome.get("raised"), runtrail.Cancelled)
        self.assertNotIn("ran on", outcome)
        # Far sooner than the next plain heartbeat (200 s), with room for a loaded machine.
        self.assertLess(outcome["seen"] - asked, 15)
        # The reason given with the cancel reaches the script and is the run's end.
        self.assertIn("stopped from the dashboard", outcome["raised"].reason)
        self.assertEqual(outcome["raised"].kind, "cancel_requested")
        final = rt.get_run(outcome["run"].id)
        self.assertEqual(final["status"], "cancelled")
        self.assertIn("stopped from the dashboard", final["error"]["message"])
        self.assertEqual(final["snapshot"]["counters"]["ok"], 1)

    def test_a_busy_script_learns_of_a_cancel_and_its_reason_from_its_next_batch(self) -> None:
        rt = runtrail.Client(server.url)
        raised: Dict[str, Any] = {}
        try:
            # The cancel comes while events are being sent: an append's answer (or the held heartbeat) brings it.
            with rt.run("busy", lease_ttl_ms=30_000) as run:
                rt.cancel(run.id, reason="wrong dataset")
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline:
                    run.progress(1, 10)
                    run.flush()
        except runtrail.Cancelled as err:
            raised["err"] = err
        self.assertIn("err", raised, "the cancel never reached the script")
        self.assertIn("wrong dataset", raised["err"].reason)
        final = rt.get_run(run.id)
        self.assertEqual(final["status"], "cancelled")
        self.assertIn("wrong dataset", final["error"]["message"])

    def test_a_script_that_polls_run_cancelled_and_leaves_the_block_ends_the_run_cancelled(self) -> None:
        rt = runtrail.Client(server.url)
        with rt.run("polling", lease_ttl_ms=30_000) as run:
            rt.cancel(run.id, reason="enough for today")
            deadline = time.monotonic() + 10
            while not run.cancelled and time.monotonic() < deadline:
                run.log("still working")  # not a call boundary: nothing raises here
                run.flush()
            self.assertTrue(run.cancelled, "the cancel never reached the script")
        final = rt.get_run(run.id)
        self.assertEqual(final["status"], "cancelled")
        self.assertIn("enough for today", final["error"]["message"])

    def test_a_run_ended_elsewhere_stops_the_script_saying_how_it_ended(self) -> None:
        # The sender's thread learns of the end and tells the run; the script, woken by the refused
        # flush, goes straight on to its next boundary. With the stop listener made slow (a busy
        # machine descheduling that thread), the boundary must still say how the run ended, not
        # raise the flush's error again: CI met that once.
        rt = runtrail.Client(server.url)
        for slow_listener in (False, True, True, True):
            raised: Dict[str, Any] = {}
            try:
                with rt.run("ended elsewhere", lease_ttl_ms=30_000) as run:
                    if slow_listener:
                        slow_down_stop_listener(run)
                    run.progress(1, 10)
                    run.flush()
                    rt._http.request("finishRun", {"id": run.id}, json_body={"status": "failed", "error": {"kind": "timeout", "message": "took longer than 2 h"}})
                    run.log("one more line")
                    with self.assertRaises(runtrail.RuntrailError):
                        run.flush()
                    run.progress(2, 10)  # a call boundary: the script stops here
            except runtrail.Cancelled as err:
                raised["err"] = err
            self.assertIn("err", raised, f"slow listener: {slow_listener}")
            self.assertIn("already ended failed (timeout: took longer than 2 h)", raised["err"].reason)
            self.assertEqual(raised["err"].kind, "ended")
            self.assertEqual(rt.get_run(run.id)["error"], {"kind": "timeout", "message": "took longer than 2 h"})

    def test_a_flush_whose_answer_carries_a_cancel_returns_with_run_cancelled_already_true(self) -> None:
        # The append's answer says cancelRequested: the flush waiting on it returns only once the
        # run knows, so `run.flush(); if run.cancelled:` works on a slow listener thread too.
        rt = runtrail.Client(server.url)
        with rt.run("cancel in the append's answer", lease_ttl_ms=30_000) as run:
            slow_down_stop_listener(run)
            rt.cancel(run.id, reason="stop now")
            run.log("after the cancel")
            run.flush()
            self.assertTrue(run.cancelled, "flush returned before the run knew of the cancel its answer carried")
            with self.assertRaises(runtrail.Cancelled) as caught:
                run.check_cancelled()
            self.assertIn("stop now", caught.exception.reason)

    def test_cancelled_says_by_its_kind_whether_someone_cancelled_the_run_or_its_timeout_ended_it(self) -> None:
        rt = runtrail.Client(server.url)
        raised: Dict[str, runtrail.Cancelled] = {}
        # The first run is cancelled long before its timeout; the server ends the second once its timeout passes.
        for name, timeout_ms, cancel in (("cancelled", 60_000, True), ("timed out", 1_000, False)):
            try:
                with rt.run(name, lease_ttl_ms=30_000, timeout_ms=timeout_ms) as run:
                    if cancel:
                        rt.cancel(run.id, reason="not needed")
                    # Heard through the held heartbeat (no events are sent meanwhile, whose refusal could say it first).
                    wait_until(lambda: run.cancelled, 20, f"the run {name} to be stopped")
                    run.progress(1, 10)  # a call boundary: raises Cancelled
            except runtrail.Cancelled as err:
                raised[name] = err
        self.assertEqual(set(raised), {"cancelled", "timed out"}, "a run was never stopped")
        self.assertEqual((raised["cancelled"].kind, raised["timed out"].kind), ("cancel_requested", "ended"))
        self.assertIn("not needed", raised["cancelled"].reason)
        self.assertIn("timeout", raised["timed out"].reason)
        # Sent from a worker process, the kind comes along.
        self.assertEqual(pickle.loads(pickle.dumps(raised["timed out"])).kind, "ended")

    def test_cancelled_refuses_a_kind_node_does_not_have(self) -> None:
        self.assertEqual(runtrail.Cancelled("r1", "stop").kind, "ended")
        with self.assertRaisesRegex(ValueError, "cancel_requested, ended, lease_lost.*'timeout'"):
            runtrail.Cancelled("r1", "stop", "timeout")


if __name__ == "__main__":
    unittest.main()
