"""A run the script never ended (no with block, no succeed/fail) is ended when the script exits, not left running for the reaper."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import unittest

import runtrail
from tests.support import Server, python_env, run_python, wait_until

server = Server()
setUpModule, tearDownModule = server.start, server.close


class ExitTest(unittest.TestCase):
    def test_a_run_left_open_is_ended_failed_at_exit_saying_how_to_end_it(self) -> None:
        script = textwrap.dedent(
            """
            import runtrail
            rt = runtrail.Client()
            run = rt.run("no-with-block", lease_ttl_ms=600_000)
            child = run.child("its child")
            run.progress(1, 2)
            print(run.id, child.id)
            """
        )
        done = run_python(script, python_env(server.url))
        self.assertEqual(done.returncode, 0, done.stderr)
        run_id, child_id = done.stdout.split()
        # Right after the exit, with a lease of 10 minutes: only the exit can have ended it.
        run = runtrail.Client(server.url).get_run(run_id)
        self.assertEqual(run["status"], "failed")
        self.assertEqual(run["error"]["kind"], "orphaned")
        self.assertIn("the script exited without ending run", run["error"]["message"])
        self.assertIn("run.succeed()", run["error"]["message"])
        self.assertEqual(run["snapshot"]["progress"]["done"], 1, "the events queued before the exit are stored first")
        self.assertEqual(runtrail.Client(server.url).get_run(child_id)["status"], "failed")
        self.assertIn(f"the script exited without ending run {run_id}", done.stderr)

    def test_a_run_ended_by_its_with_block_is_not_touched_at_exit(self) -> None:
        script = textwrap.dedent(
            """
            import runtrail
            with runtrail.Client().run("with-block") as run:
                run.progress(1, 1)
            print(run.id)
            """
        )
        done = run_python(script, python_env(server.url))
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(done.stderr, "")
        self.assertEqual(runtrail.Client(server.url).get_run(done.stdout.strip())["status"], "succeeded")

    def test_a_run_whose_succeed_raised_on_a_refused_event_is_still_ended_at_exit(self) -> None:
        # succeed() raises why the run did not succeed; the run was then left running until its lease lapsed.
        script = textwrap.dedent(
            """
            import runtrail
            run = runtrail.Client().run("refused-then-succeed", lease_ttl_ms=600_000)
            run.event("progress", {"done": "half"})
            try:
                run.succeed()
            except runtrail.RuntrailError as err:
                print("succeed raised", err.code)
            print(run.id)
            """
        )
        done = run_python(script, python_env(server.url))
        self.assertEqual(done.returncode, 0, done.stderr)
        said, run_id = done.stdout.strip().splitlines()
        self.assertEqual(said, "succeed raised invalid_request")
        # Right after the exit, with a lease of 10 minutes: only the exit can have ended it.
        run = runtrail.Client(server.url).get_run(run_id)
        self.assertEqual(run["status"], "failed")
        self.assertIn("the script exited without ending run", run["error"]["message"])

    def test_a_run_left_open_is_ended_at_exit_when_stderr_is_gone(self) -> None:
        # A script whose terminal closed (SIGHUP, an ssh session dropped) writes its stderr into nothing: each write
        # raises OSError. The exit's notice raised, the run was never ended, and stayed running until its lease lapsed.
        script = textwrap.dedent(
            """
            import runtrail
            run = runtrail.Client().run("stderr-gone", lease_ttl_ms=600_000)
            run.progress(1, 2)
            print(run.id, flush=True)
            """
        )
        child = subprocess.Popen(
            [sys.executable, "-c", script], env=python_env(server.url), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        assert child.stdout is not None and child.stderr is not None
        child.stderr.close()  # nobody reads it any more: the script's writes to stderr raise BrokenPipeError
        try:
            run_id = child.stdout.read().strip()
            child.wait(timeout=60)
        finally:
            child.stdout.close()
            if child.poll() is None:
                child.kill()
                child.wait()
        # Right after the exit, with a lease of 10 minutes: only the exit can have ended it.
        run = runtrail.Client(server.url).get_run(run_id)
        self.assertEqual(run["status"], "failed")
        self.assertEqual(run["error"]["kind"], "orphaned")
        self.assertEqual(run["snapshot"]["progress"]["done"], 1)


if __name__ == "__main__":
    unittest.main()


class AfterTheEndTest(unittest.TestCase):
    def test_an_event_after_the_block_is_run_already_terminal_not_cancelled(self) -> None:
        rt = runtrail.Client(server.url)
        with rt.run("ended by its block") as run:
            run.progress(1, 1)
        for record in (lambda: run.progress(2), lambda: run.metric("m", 1), lambda: run.log("late"), lambda: run.call("late").__enter__()):
            with self.assertRaises(runtrail.RuntrailError) as caught:
                record()
            self.assertEqual(caught.exception.code, "run_already_terminal")
            self.assertIn(f"run {run.id} already ended succeeded (its with block was left", str(caught.exception))

    def test_a_cancelled_run_still_raises_cancelled_after_its_block(self) -> None:
        rt = runtrail.Client(server.url)
        with self.assertRaises(runtrail.Cancelled):
            with rt.run("cancelled") as run:
                rt.cancel(run.id, reason="enough")
                wait_until(lambda: run.cancelled, what="the cancel to reach the script")
                run.check_cancelled()
        with self.assertRaises(runtrail.Cancelled):
            run.progress(1)
