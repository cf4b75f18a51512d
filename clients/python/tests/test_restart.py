"""A server killed and restarted (same data dir and port) in the middle of a run and of a watch."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
import unittest
from typing import Any, Dict, List

import runtrail
from tests.support import Server, ended, python_env, wait_until

CALLS = 150


class RestartMidRunTest(unittest.TestCase):
    """One run: a producer and a watcher go on while the server is SIGKILLed and started again."""

    server: Server
    run_id: str
    produced: List[int]
    producer_error: List[BaseException]
    watched: List[Dict[str, Any]]
    watcher_error: List[BaseException]
    queued: int

    @classmethod
    def setUpClass(cls) -> None:
        cls.server = Server().start()
        rt = runtrail.Client(cls.server.url, retry_for=120)
        run = rt.run("survives a restart", labels={"test": "restart"})
        cls.run_id = run.id
        cls.produced, cls.producer_error, cls.watched, cls.watcher_error = [0], [], [], []
        step = threading.Event()

        def produce() -> None:
            try:
                with run:
                    with run.phase("evaluate"):
                        for i in range(CALLS):
                            with run.call(f"Evaluating doc_{i}"):
                                step.wait(0.01)  # the workload
                            run.progress(i + 1, CALLS)
                            cls.produced[0] = i + 1
            except BaseException as err:  # noqa: BLE001 - checked by the tests
                cls.producer_error.append(err)

        def watch() -> None:
            try:
                for event in runtrail.Client(cls.server.url, retry_for=120).watch(run.id):
                    cls.watched.append(event)
            except BaseException as err:  # noqa: BLE001 - checked by the tests
                cls.watcher_error.append(err)

        watcher = threading.Thread(target=watch)
        producer = threading.Thread(target=produce)
        watcher.start()
        producer.start()
        try:
            wait_until(lambda: rt.get_run(run.id)["seq"] >= 100, 30, "100 events stored")
            wait_until(lambda: len(cls.watched) >= 50, 30, "the watcher to be following")
            cls.server.kill()
            at_kill = cls.produced[0]
            wait_until(lambda: cls.produced[0] >= min(CALLS, at_kill + 20), 30, "the script to go on while the server is down")
            cls.server.start()
        finally:
            producer.join(120)
            watcher.join(120)
        cls.queued = run._sender._queued

    @classmethod
    def tearDownClass(cls) -> None:
        cls.server.close()

    def stored_events(self) -> List[Dict[str, Any]]:
        rt = runtrail.Client(self.server.url)
        events: List[Dict[str, Any]] = []
        while True:
            page = rt.events(self.run_id, after=len(events), limit=5000)
            events.extend(page["events"])
            if not page["events"]:
                return events

    def test_the_script_finishes_and_the_run_succeeds_with_every_call(self) -> None:
        self.assertEqual(self.producer_error, [])
        self.assertEqual(self.produced[0], CALLS)
        final = runtrail.Client(self.server.url).get_run(self.run_id)
        self.assertEqual(final["status"], "succeeded")
        self.assertEqual(final["snapshot"]["counters"]["ok"], CALLS)
        self.assertEqual(final["snapshot"]["progress"]["percent"], 100)

    def test_events_are_stored_exactly_once_with_contiguous_seqs(self) -> None:
        events = self.stored_events()
        self.assertEqual([e["seq"] for e in events], list(range(1, len(events) + 1)))
        ids = [e["id"] for e in events if e["type"] != "run.succeeded"]
        self.assertEqual(len(ids), len(set(ids)))
        self.assertEqual(len(ids), self.queued)
        self.assertEqual(sorted(int(i.rsplit(".", 1)[1]) for i in ids), list(range(self.queued)))
        self.assertEqual(len([e for e in events if e["type"] == "call.succeeded"]), CALLS)
        self.assertEqual(events[-1]["type"], "run.succeeded")

    def test_a_live_watch_goes_on_across_the_restart_with_no_gap_or_duplicate(self) -> None:
        self.assertEqual(self.watcher_error, [])
        events = self.stored_events()
        self.assertEqual([e["seq"] for e in self.watched], [e["seq"] for e in events])
        self.assertEqual([e["type"] for e in self.watched], [e["type"] for e in events])


if __name__ == "__main__":
    unittest.main()


class ServerGoneAtTheEndTest(unittest.TestCase):
    def test_the_end_says_what_it_waits_for_and_ctrl_c_stops_the_wait_without_another_at_exit(self) -> None:
        gone = Server().start()
        script = textwrap.dedent(
            """
            import signal, sys, runtrail
            signal.signal(signal.SIGINT, signal.default_int_handler)  # as a terminal gives it, even if started with SIGINT ignored
            rt = runtrail.Client(exit_timeout=120)
            with rt.run("the server goes away") as run:
                print(run.id, flush=True)
                sys.stdin.readline()
                run.metric("loss", 0.5)
            """
        )
        script_process = subprocess.Popen(
            [sys.executable, "-c", script], env=python_env(gone.url), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        try:
            assert script_process.stdout is not None and script_process.stdin is not None and script_process.stderr is not None
            self.assertTrue(script_process.stdout.readline().strip())
            gone.kill()
            script_process.stdin.write("go\n")
            script_process.stdin.flush()
            errors: List[str] = []
            pump = threading.Thread(target=lambda: errors.extend(script_process.stderr), daemon=True)  # type: ignore[arg-type]
            pump.start()
            notice = f"runtrail: waiting for the server at {gone.url} to store 1 event of run"
            wait_until(lambda: any(notice in line for line in errors), 15, "the script to say what it waits for")
            script_process.send_signal(signal.SIGINT)
            # Before, the exit waited again, exit_timeout (120 s) more, after the user's Ctrl-C.
            script_process.wait(20)
            pump.join(10)
        finally:
            ended(script_process)
            gone.close()
        output = "".join(errors)
        self.assertNotEqual(script_process.returncode, 0)
        self.assertIn("KeyboardInterrupt", output)
        self.assertIn("1 events of run", output)
        self.assertIn("were not stored (interrupted while waiting for", output)
