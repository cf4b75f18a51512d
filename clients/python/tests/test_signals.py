"""A producer script stopped by SIGTERM (docker stop, a scheduler's preemption), against a real server."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import unittest
from typing import Any, Dict, List

import runtrail
from tests.support import Server, ended, python_env

server = Server()
setUpModule, tearDownModule = server.start, server.close

SCRIPT = textwrap.dedent(
    """
    import signal, sys, time, runtrail
    if sys.argv[1] == "own-handler":
        signal.signal(signal.SIGTERM, lambda *_: print("my own handler", flush=True))
    rt = runtrail.Client()
    with rt.run("stopped by SIGTERM " + sys.argv[1]) as run:
        for i in range(300):
            run.progress(i + 1, 300)
        print(run.id, flush=True)
        while True:
            time.sleep(0.05)  # the script's own work: a step that takes a while
            if sys.argv[1] == "own-handler" and run.cancelled:
                break
    """
)


def stopped_by_sigterm(how: str) -> "tuple[subprocess.CompletedProcess[str], str]":
    """Start SCRIPT, wait for its run id, send SIGTERM; the finished process and its run id."""
    process = subprocess.Popen([sys.executable, "-c", SCRIPT, how], env=python_env(server.url), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        run_id = process.stdout.readline().strip()
        process.send_signal(signal.SIGTERM)
        if how == "own-handler":
            # Its handler decides: here it carries on, and is stopped by a cancel.
            runtrail.Client(url=server.url).cancel(run_id, reason="stop now")
        out, err = process.communicate(timeout=30)
    finally:
        ended(process)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err), run_id


def progress_of(run_id: str) -> List[Dict[str, Any]]:
    events = runtrail.Client(url=server.url).events(run_id, after=0, limit=5000)["events"]
    return [e for e in events if e["type"] == "progress"]


class SigtermTest(unittest.TestCase):
    def test_the_run_ends_interrupted_with_every_queued_event_and_the_process_exits_143(self) -> None:
        done, run_id = stopped_by_sigterm("default")
        # Before: the process died at once, its queued events were lost and the run stayed running until its lease lapsed.
        self.assertEqual(done.returncode, 143, done.stderr)
        run = runtrail.Client(url=server.url).get_run(run_id)
        self.assertEqual(run["status"], "failed")
        self.assertEqual(run["snapshot"]["terminal"]["error"], {"kind": "interrupted", "message": "the producer process was stopped by SIGTERM"})
        self.assertEqual([e["data"]["done"] for e in progress_of(run_id)], list(range(1, 301)))

    def test_a_script_with_its_own_sigterm_handler_keeps_it(self) -> None:
        done, run_id = stopped_by_sigterm("own-handler")
        self.assertIn("my own handler", done.stdout)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(runtrail.Client(url=server.url).get_run(run_id)["status"], "cancelled")

    def test_with_no_run_open_sigterm_ends_the_process_as_it_would_without_runtrail(self) -> None:
        other = runtrail.Client(url=server.url).run("owned elsewhere")
        self.addCleanup(other.succeed)
        script = textwrap.dedent(
            """
            import asyncio, signal, sys, time, runtrail
            ours = lambda: signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
            rt = runtrail.Client()
            with rt.run("first") as run:
                print("in run", ours())
            print("after run", ours())
            with rt.attach(sys.argv[1]) as attached:
                attached.metric("score", 1.0)
                print("in attach", ours())
            print("after attach", ours())

            async def main():
                # Made on the loop's thread (the main one), ended on a thread of its own, which cannot set a signal handler.
                async with rt.run("async") as run:
                    print("in async run", ours())
                print("after async run", ours(), flush=True)

            asyncio.run(main())
            time.sleep(60)  # idle, no run open: the SIGTERM ends it here
            """
        )
        process = subprocess.Popen([sys.executable, "-c", script, other.id], env=python_env(server.url), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert process.stdout is not None
            said = [process.stdout.readline().strip() for _ in range(6)]
            process.send_signal(signal.SIGTERM)
            out, err = process.communicate(timeout=30)
        finally:
            ended(process)
        self.assertEqual(said, ["in run True", "after run False", "in attach True", "after attach False", "in async run True", "after async run False"], err)
        # Killed by the signal, as without runtrail. Before, runtrail's handler stayed after the last run had ended: an
        # idle process exited 143 through Terminated, or, in a blocking call where CPython loses it, not at all.
        self.assertEqual(process.returncode, -signal.SIGTERM, err)


OUTAGE_SCRIPT = textwrap.dedent(
    """
    import sys, time, runtrail
    rt = runtrail.Client(exit_timeout=float(sys.argv[2]))
    with rt.run("stopped by SIGTERM in an outage") as run:
        run.progress(1, 2)
        run.flush()
        print(run.id, flush=True)
        sys.stdin.readline()  # the server is down now
        run.progress(2, 2)
        if sys.argv[1] == "in-block":
            while True:
                time.sleep(0.05)
    """
)


class SigtermInAnOutageTest(unittest.TestCase):
    def start(self, where: str, exit_timeout: float) -> "tuple[Server, subprocess.Popen[str], str]":
        """OUTAGE_SCRIPT's run (``where``: SIGTERM comes in the block, or while its end waits), its server killed."""
        outage = Server().start()
        self.addCleanup(outage.close)
        process = subprocess.Popen([sys.executable, "-c", OUTAGE_SCRIPT, where, str(exit_timeout)], env=python_env(outage.url),
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
        self.addCleanup(ended, process)
        assert process.stdin is not None and process.stdout is not None and process.stderr is not None
        run_id = process.stdout.readline().strip()
        outage.kill()
        process.stdin.write("go\n")
        process.stdin.flush()
        return outage, process, run_id

    def test_sigterm_in_the_block_with_the_server_down_exits_within_exit_timeout_not_retry_for(self) -> None:
        # Before: the block's end retried for retry_for (300 s) after the SIGTERM, though the process was told to stop.
        _, process, _ = self.start("in-block", 1.0)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=20)
        self.assertEqual(process.returncode, 143, err)

    def test_sigterm_while_the_end_waits_ends_the_run_interrupted_not_orphaned_as_if_no_block_had_ended_it(self) -> None:
        # Before: the run was ended orphaned, "the script exited without ending run ...: leave a `with rt.run(...)` block".
        outage, process, run_id = self.start("in-end", 60.0)
        assert process.stderr is not None
        for line in process.stderr:  # said once the block's end has waited 2 s for the server
            if "runtrail: waiting for the server" in line:
                break
        process.send_signal(signal.SIGTERM)
        outage.start()
        _, err = process.communicate(timeout=60)
        self.assertEqual(process.returncode, 143, err)
        run = runtrail.Client(url=outage.url).get_run(run_id)
        self.assertEqual(run["error"], {"kind": "interrupted", "message": "the producer process was stopped by SIGTERM"}, err)
        self.assertEqual(run["snapshot"]["progress"]["done"], 2)

if __name__ == "__main__":
    unittest.main()
