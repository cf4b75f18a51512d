"""The bounded queue of a run's events: a producer faster than the server waits for room, within a bound."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
import unittest

import runtrail
from tests.support import ROOT, Server, ended, python_env

server = Server()
setUpModule, tearDownModule = server.start, server.close


class QueueFullTest(unittest.TestCase):
    def test_a_loop_faster_than_the_server_waits_for_room_and_every_event_is_stored(self) -> None:
        # Before: the 11th event raised "unavailable" while the first batch was on its way.
        rt = runtrail.Client(server.url, max_queued=10, max_batch=4, flush_interval=60)
        most_waiting = 0
        with rt.run("outruns the server") as run:
            for _ in range(500):
                run.counter("steps")
                most_waiting = max(most_waiting, run._sender.pending)
        self.assertLessEqual(most_waiting, 10)
        final = rt.get_run(run.id)
        self.assertEqual(final["status"], "succeeded")
        self.assertEqual(final["snapshot"]["counters"]["named"]["steps"], 500)

    def test_a_full_queue_with_the_server_down_waits_queue_full_timeout_then_says_why_and_the_run_goes_on_after(self) -> None:
        rt = runtrail.Client(server.url, max_queued=5, queue_full_timeout=0.5, retry_for=60)
        run = rt.run("server down")
        server.kill()
        try:
            for i in range(5):
                run.metric("loss", i)
            started = time.monotonic()
            with self.assertRaises(runtrail.RuntrailError) as full:
                run.metric("loss", 5)
            waited = time.monotonic() - started
        finally:
            server.start()
        self.assertGreaterEqual(waited, 0.5)
        err = full.exception
        self.assertEqual(err.code, "unavailable")
        self.assertIn(f"the queue of run {run.id} is full (5 events waiting, Client(max_queued=))", err.message)
        self.assertIn("stored none of them in 0.5 s: it is unreachable or not answering", err.message)
        self.assertIn("this event was not queued", err.message)
        self.assertIn("Client(queue_full_timeout=)", err.message)
        # The server back, the sender stores what waited (flush waits for it), and the script goes on.
        run.flush()
        run.metric("loss", 6)
        run.succeed()
        values = [e["data"]["value"] for e in rt.events(run.id)["events"] if e["type"] == "metric"]
        self.assertEqual(values, [0, 1, 2, 3, 4, 6])


    def test_a_block_that_raises_while_the_queue_is_full_goes_straight_to_its_end_where_ctrl_c_stops_the_wait(self) -> None:
        # Before: leaving the block first logged the traceback, which waited for room; a Ctrl-C there
        # escaped the block's end, and the exit then waited exit_timeout again for the same events.
        own = Server().start()
        self.addCleanup(own.close)
        script = textwrap.dedent(
            """
            import sys, runtrail
            rt = runtrail.Client(max_queued=5, queue_full_timeout=60)
            with rt.run("full at the end") as run:
                print(run.id, flush=True)
                sys.stdin.readline()  # the server is gone now
                for i in range(5):
                    run.metric("loss", i)
                raise ValueError("the step failed")
            """
        )
        child = subprocess.Popen(
            [sys.executable, "-c", script], env=python_env(own.url), cwd=str(ROOT),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.addCleanup(ended, child)
        assert child.stdin is not None and child.stdout is not None and child.stderr is not None
        child.stdout.readline()
        own.kill()
        child.stdin.write("go\n")
        child.stdin.flush()
        # The end's wait says so on stderr (after 2 s); the wait for room would say "the queue ... is full".
        notice = child.stderr.readline()
        self.assertTrue(notice.startswith("runtrail: waiting for the server at"), notice)
        child.send_signal(signal.SIGINT)
        _, rest = child.communicate(timeout=30)
        self.assertIn("events of run", rest)
        self.assertIn("were not stored (interrupted while waiting", rest)
        self.assertNotIn("were not all stored before exit", rest)


if __name__ == "__main__":
    unittest.main()
