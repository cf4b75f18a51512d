"""A producer script stopped by SIGTERM (docker stop, a scheduler's preemption) or SIGHUP (its terminal closed), against a real server."""

from __future__ import annotations

import os
import pickle
import select
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import unittest
from typing import Any, Dict, List, Sequence

import runtrail
from tests.support import Server, ended, python_env, sighup_as_a_terminal_gives_it

server = Server()
tearDownModule = server.close


def setUpModule() -> None:
    server.start()
    sighup_as_a_terminal_gives_it()  # the tests send SIGHUP to scripts that must not inherit a nohup's

HAS_SIGHUP = hasattr(signal, "SIGHUP")  # not on Windows

SCRIPT = textwrap.dedent(
    """
    import signal, sys, time, runtrail
    how, name = sys.argv[1], sys.argv[2]
    if how == "own-handler":
        signal.signal(getattr(signal, name), lambda *_: print("my own handler", flush=True))
    rt = runtrail.Client()
    with rt.run(f"stopped by {name} {how}") as run:
        for i in range(300):
            run.progress(i + 1, 300)
        print(run.id, flush=True)
        if how == "ignored":
            sys.stdin.readline()  # the test has sent the signal, which this process ignores (nohup)
            print("still ignored:", signal.getsignal(getattr(signal, name)) is signal.SIG_IGN, flush=True)
        else:
            while True:
                time.sleep(0.05)  # the script's own work: a step that takes a while
                if how == "own-handler" and run.cancelled:
                    break
    """
)


def stopped_by(signum: signal.Signals, how: str, prefix: Sequence[str] = ()) -> "tuple[subprocess.CompletedProcess[str], str]":
    """Start SCRIPT (under the command ``prefix``, such as nohup), wait for its run id, send ``signum``; the finished process and its run id."""
    process = subprocess.Popen([*prefix, sys.executable, "-c", SCRIPT, how, signum.name], env=python_env(server.url),
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert process.stdout is not None
        run_id = process.stdout.readline().strip()
        process.send_signal(signum)
        if how == "own-handler":
            # Its handler decides: here it carries on, and is stopped by a cancel.
            runtrail.Client(url=server.url).cancel(run_id, reason="stop now")
        out, err = process.communicate("go\n", timeout=30)
    finally:
        ended(process)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err), run_id


def stopped_by_sigterm(how: str) -> "tuple[subprocess.CompletedProcess[str], str]":
    return stopped_by(signal.SIGTERM, how)


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
        assert_idle_process_dies_of(self, signal.SIGTERM)


def assert_idle_process_dies_of(test: unittest.TestCase, signum: signal.Signals) -> None:
    """A script that opened and closed runs of each kind, then idles with none open, is killed by ``signum`` (no Terminated)."""
    other = runtrail.Client(url=server.url).run("owned elsewhere")
    test.addCleanup(other.succeed)
    script = textwrap.dedent(
        """
        import asyncio, signal, sys, time, runtrail
        # Whether SIGTERM, and SIGHUP where there is one, have a handler (runtrail's: the script sets none).
        stops = [getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)]
        ours = lambda: " ".join(str(signal.getsignal(s) is not signal.SIG_DFL) for s in stops)
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
        time.sleep(60)  # idle, no run open: the signal ends it here
        """
    )
    process = subprocess.Popen([sys.executable, "-c", script, other.id], env=python_env(server.url), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        said = [process.stdout.readline().strip() for _ in range(6)]
        process.send_signal(signum)
        out, err = process.communicate(timeout=30)
    finally:
        ended(process)
    on, off = " ".join(["True"] * (1 + HAS_SIGHUP)), " ".join(["False"] * (1 + HAS_SIGHUP))
    test.assertEqual(said, [f"in run {on}", f"after run {off}", f"in attach {on}", f"after attach {off}", f"in async run {on}", f"after async run {off}"], err)
    # Killed by the signal, as without runtrail. Before, runtrail's handler stayed after the last run had ended: an
    # idle process exited 143 through Terminated, or, in a blocking call where CPython loses it, not at all.
    test.assertEqual(process.returncode, -signum, err)


@unittest.skipUnless(HAS_SIGHUP, "no SIGHUP on this platform")
class SighupTest(unittest.TestCase):
    """SIGHUP, as a terminal that closes (or an ssh session that drops) sends it: the run ends as at a SIGTERM, not orphaned."""

    def test_terminated_names_the_signal_and_exits_with_its_status(self) -> None:
        for raised, name, status in [(runtrail.Terminated(), "SIGTERM", 143), (runtrail.Terminated("SIGHUP"), "SIGHUP", 129)]:
            again = pickle.loads(pickle.dumps(raised))  # as from a worker process
            for terminated in (raised, again):
                self.assertEqual((terminated.signal_name, terminated.code, str(terminated)), (name, status, f"the producer process was stopped by {name}"))

    def test_the_run_ends_interrupted_with_every_queued_event_and_the_process_exits_129(self) -> None:
        done, run_id = stopped_by(signal.SIGHUP, "default")
        # Before: the process died of the signal at once, its queued events were lost and the run stayed running until its
        # lease lapsed (then reaped orphaned).
        self.assertEqual(done.returncode, 129, done.stderr)
        run = runtrail.Client(url=server.url).get_run(run_id)
        self.assertEqual(run["status"], "failed")
        self.assertEqual(run["snapshot"]["terminal"]["error"], {"kind": "interrupted", "message": "the producer process was stopped by SIGHUP"})
        self.assertEqual([e["data"]["done"] for e in progress_of(run_id)], list(range(1, 301)))

    def test_a_script_under_nohup_ignores_sighup_and_its_run_succeeds(self) -> None:
        # nohup sets SIGHUP to SIG_IGN and runs the script: runtrail leaves it ignored.
        done, run_id = stopped_by(signal.SIGHUP, "ignored", prefix=["nohup"])
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertIn("still ignored: True", done.stdout)
        self.assertEqual(runtrail.Client(url=server.url).get_run(run_id)["status"], "succeeded")

    def test_a_script_with_its_own_sighup_handler_keeps_it(self) -> None:
        done, run_id = stopped_by(signal.SIGHUP, "own-handler")
        self.assertIn("my own handler", done.stdout)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(runtrail.Client(url=server.url).get_run(run_id)["status"], "cancelled")

    def test_with_no_run_open_sighup_ends_the_process_as_it_would_without_runtrail(self) -> None:
        assert_idle_process_dies_of(self, signal.SIGHUP)

    @unittest.skipUnless(shutil.which("setsid"), "needs util-linux's setsid to give the script a terminal of its own")
    def test_closing_the_script_s_terminal_ends_its_run_interrupted(self) -> None:
        # The script runs in a terminal (a pseudo-terminal, its controlling one: setsid -c), which then closes, as a
        # terminal window or an ssh session does: the kernel sends the script SIGHUP.
        terminal, script_side = os.openpty()
        try:
            process = subprocess.Popen(["setsid", "-c", sys.executable, "-c", SCRIPT, "default", "SIGHUP"], env=python_env(server.url),
                                       stdin=script_side, stdout=script_side, stderr=subprocess.PIPE, text=True)  # fmt: skip
        finally:
            os.close(script_side)  # the script's now: the terminal closes when its other side does
        try:
            with open(terminal, "rb", buffering=0, closefd=True) as window:
                run_id = read_line(window.fileno(), timeout=30)
            # The window (the terminal's other side) is closed.
            _, err = process.communicate(timeout=30)
        finally:
            ended(process)
        self.assertEqual(process.returncode, 129, err)
        run = runtrail.Client(url=server.url).get_run(run_id)
        self.assertEqual(run["snapshot"]["terminal"]["error"], {"kind": "interrupted", "message": "the producer process was stopped by SIGHUP"})
        self.assertEqual(len(progress_of(run_id)), 300)

    def test_a_forked_child_dies_of_sighup_at_once_as_without_runtrail(self) -> None:
        # As for SIGTERM (tests/test_processes.py): a child does not inherit the run's handling of SIGHUP, which would
        # raise Terminated in it, or lose the signal while Python sets the child up.
        script = textwrap.dedent(
            """
            import os, signal, time, runtrail
            with runtrail.Client().run("forks") as run:
                read, write = os.pipe()
                pid = os.fork()
                if pid == 0:
                    os.write(write, str(signal.getsignal(signal.SIGHUP) is signal.SIG_DFL).encode())
                    time.sleep(60)  # a task that takes long: the SIGHUP ends it
                    os._exit(0)
                said = os.read(read, 100).decode()
                os.kill(pid, signal.SIGHUP)
                _, status = os.waitpid(pid, 0)
                print("child's SIGHUP is the default:", said, "; it ended", os.waitstatus_to_exitcode(status))
            """
        )
        process = subprocess.run([sys.executable, "-c", script], env=python_env(server.url), capture_output=True, text=True, timeout=60)
        self.assertEqual(process.returncode, 0, process.stderr)
        self.assertEqual(process.stdout.strip(), f"child's SIGHUP is the default: True ; it ended {-signal.SIGHUP}", process.stderr)


def read_line(fd: int, timeout: float) -> str:
    """The first line written to the terminal whose other side is ``fd``."""
    deadline = time.monotonic() + timeout
    got = b""
    while b"\n" not in got:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
            raise AssertionError(f"nothing said on the terminal within {timeout} s: {got!r}")
        got += os.read(fd, 4096)
    return got.split(b"\n", 1)[0].decode().strip()


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
