"""run.on_server_change: once when the server stops answering a run's requests, once when it answers again."""

from __future__ import annotations

import contextlib
import io
import time
import unittest
from typing import List

import runtrail
from tests.support import Server

# Its own server: these tests stop it and start it again on the same port and data.
server = Server()
setUpModule, tearDownModule = server.start, server.close


class ServerChangeTest(unittest.TestCase):
    def setUp(self) -> None:
        self.rt = runtrail.Client(server.url)

    def ride_out_an_outage(self, run: runtrail.Run) -> None:
        """Stop the server, have the run's batch retried against it for a second, and start it again."""
        server.stop()
        run.progress(2)
        # The flush gives up after 1 s; the sender goes on retrying the batch, with backoff, meanwhile and after.
        with self.assertRaises(runtrail.RuntrailError):
            run.flush(timeout=1.0)
        run.progress(3)
        server.start()
        run.flush()
        self.assertEqual(self.rt.get_run(run.id)["snapshot"]["progress"]["done"], 3)

    def test_an_outage_is_told_once_as_not_answering_with_when_the_lease_lapses_and_once_as_answering_again(self) -> None:
        run = self.rt.run("outage", lease_ttl_ms=20_000)
        changes: List[runtrail.ServerChange] = []
        run.on_server_change(changes.append)
        run.progress(1)
        run.flush()
        last_answer = time.time()

        stopping_at = time.time()
        server.stop()
        stopped_at = time.time()
        run.progress(2)
        with self.assertRaises(runtrail.RuntrailError):
            run.flush(timeout=1.0)
        # Retried for a second, with backoff, while nobody answers: still one change.
        self.assertEqual([c.state for c in changes], ["not_answering"])
        run.progress(3)
        server.start()
        run.flush()

        self.assertEqual([c.state for c in changes], ["not_answering", "answering"])
        away, back = changes
        self.assertIsNotNone(away.error)
        self.assertGreaterEqual(away.since, stopping_at)
        # The lease runs from the last request the server answered, not from when the outage was seen.
        assert away.lease_expires_at is not None
        self.assertGreaterEqual(away.lease_expires_at, last_answer - 1 + 20)
        self.assertLessEqual(away.lease_expires_at, stopped_at + 20)
        self.assertEqual(back.since, away.since)
        assert back.at is not None
        self.assertGreater(back.at, away.since)
        self.assertEqual(self.rt.get_run(run.id)["snapshot"]["progress"]["done"], 3)
        run.succeed()

    def test_a_callback_that_raises_is_said_on_stderr_and_the_run_goes_on(self) -> None:
        run = self.rt.run("outage with a broken callback", lease_ttl_ms=20_000)

        def broken(change: runtrail.ServerChange) -> None:
            raise ValueError(f"cannot page anyone about {change.state}")

        run.on_server_change(broken)
        run.progress(1)
        run.flush()
        said = io.StringIO()
        with contextlib.redirect_stderr(said):
            self.ride_out_an_outage(run)
        self.assertIn(f"runtrail: the on_server_change callback of run {run.id} raised (the run goes on)", said.getvalue())
        self.assertIn("ValueError: cannot page anyone about not_answering", said.getvalue())
        self.assertIn("ValueError: cannot page anyone about answering", said.getvalue())
        self.assertEqual(run.succeed()["status"], "succeeded")

    def test_a_callback_that_is_not_a_function_is_a_type_error_naming_it(self) -> None:
        with self.rt.run("no callback") as run:
            with self.assertRaisesRegex(TypeError, "on_server_change takes a function of one ServerChange .or None., got str"):
                run.on_server_change("print")  # type: ignore[arg-type]


if __name__ == "__main__":
    unittest.main()
