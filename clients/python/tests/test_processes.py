"""The client used from worker processes (multiprocessing), against a real server."""

from __future__ import annotations

import pickle
import signal
import textwrap
import threading
import unittest

import runtrail
from tests.support import Server, python_env, run_python, sighup_as_a_terminal_gives_it

server = Server()
tearDownModule = server.close


def setUpModule() -> None:
    server.start()
    sighup_as_a_terminal_gives_it()  # the tests send SIGHUP to scripts that must not inherit a nohup's


class ProcessesTest(unittest.TestCase):
    def test_errors_survive_pickling_with_every_field(self) -> None:
        err = pickle.loads(pickle.dumps(runtrail.RuntrailError("run_not_found", "no run x", {"id": "x"}, 404)))
        self.assertEqual((err.code, err.message, err.details, err.status, str(err)), ("run_not_found", "no run x", {"id": "x"}, 404, "run_not_found: no run x"))
        cancelled = pickle.loads(pickle.dumps(runtrail.Cancelled("r1", "cancel requested: stop")))
        self.assertEqual((cancelled.run_id, cancelled.reason, str(cancelled)), ("r1", "cancel requested: stop", "run r1: cancel requested: stop"))

    def test_a_runtrail_error_raised_in_a_pool_worker_reaches_the_parent_instead_of_hanging_pool_map(self) -> None:
        script = textwrap.dedent(
            """
            import multiprocessing, runtrail

            def look(run_id):
                return runtrail.Client().get_run(run_id)["status"]

            if __name__ == "__main__":
                with multiprocessing.get_context("fork").Pool(2) as pool:
                    try:
                        pool.map(look, ["no-such-run"])
                    except runtrail.RuntrailError as err:
                        print(err.code, err.status)
            """
        )
        # Before errors pickled, the pool's result thread died on this one and pool.map never returned.
        done = run_python(script, python_env(server.url), timeout=30)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(done.stdout.strip(), "run_not_found 404")

    def test_a_task_that_attaches_in_a_with_block_leaves_no_thread_behind(self) -> None:
        rt = runtrail.Client(server.url)
        with rt.run("many tasks") as run:
            before = threading.active_count()
            # As a long-lived pool's worker does, once per task.
            for i in range(20):
                with runtrail.Client(server.url).attach(run.id) as task:
                    task.metric("score", float(i), step=i)
            # Before: each attach left its sender thread running, 20 more threads here.
            self.assertLessEqual(threading.active_count(), before)
        steps = [e["data"]["step"] for e in rt.events(run.id, after=0)["events"] if e["type"] == "metric"]
        self.assertEqual(sorted(steps), list(range(20)))

    def test_a_child_forked_in_the_block_that_exits_leaves_the_run_to_the_parent_without_a_warning(self) -> None:
        script = textwrap.dedent(
            """
            import os, sys, runtrail

            with runtrail.Client().run("forks a child") as run:
                run.progress(1, 2)
                pid = os.fork()
                if pid == 0:
                    sys.exit(0)  # leaves the block in the child too
                _, status = os.waitpid(pid, 0)
                run.progress(2, 2)
            print(run.id, os.waitstatus_to_exitcode(status) if hasattr(os, "waitstatus_to_exitcode") else status >> 8)
            """
        )
        done = run_python(script, python_env(server.url), timeout=30)
        self.assertEqual(done.returncode, 0, done.stderr)
        # Before: the child's leaving tried to end the parent's run, and warned that it could not.
        self.assertEqual(done.stderr, "")
        run_id, child_exit = done.stdout.split()
        self.assertEqual(child_exit, "0")
        final = runtrail.Client(server.url).get_run(run_id)
        self.assertEqual((final["status"], final["snapshot"]["progress"]["done"]), ("succeeded", 2))

    def test_a_forked_worker_using_the_parents_run_is_told_so_and_one_that_attaches_stores_its_events(self) -> None:
        script = textwrap.dedent(
            """
            import multiprocessing, runtrail

            run = None

            def inherited(i):
                run.metric("score", i)  # the parent's handle: its sender thread is not in this process
                run.flush()

            def attached(run_id):
                with runtrail.Client().attach(run_id) as mine:
                    mine.metric("score", 1.0)

            if __name__ == "__main__":
                with runtrail.Client().run("forked workers") as run:
                    run.progress(1, 2)
                    with multiprocessing.get_context("fork").Pool(2) as pool:
                        try:
                            pool.map(inherited, [1])
                        except runtrail.RuntrailError as err:
                            print(err.code, "forked child" in err.message)
                        pool.map(attached, [run.id])
                        try:
                            pool.map(attached, [run])
                        except TypeError as err:
                            print("TypeError", "cannot be sent to another process" in str(err))
                print(run.id)
            """
        )
        done = run_python(script, python_env(server.url), timeout=30)
        self.assertEqual(done.returncode, 0, done.stderr)
        lines = done.stdout.split()
        self.assertEqual(lines[:4], ["invalid_request", "True", "TypeError", "True"])
        rt = runtrail.Client(server.url)
        final = rt.get_run(lines[4])
        self.assertEqual(final["status"], "succeeded")
        self.assertEqual(final["snapshot"]["metrics"]["score"]["count"], 1)

    def test_a_worker_that_attached_for_a_task_dies_of_sigterm_afterwards_as_pool_terminate_needs(self) -> None:
        # A worker's SIGTERM handler outlived its attach: idle in its task queue's lock, where CPython can lose the
        # signal, it sometimes never ended, and `with Pool(...)` hung in terminate() (CI, about 1 in 300 runs).
        script = textwrap.dedent(
            """
            import multiprocessing, signal, runtrail

            def worker(run_id, conn):
                with runtrail.Client().attach(run_id) as mine:
                    mine.metric("score", 1.0)
                conn.send("attached")
                conn.recv()  # idle in a blocking call, as a pool worker waits for its next task

            if __name__ == "__main__":
                with runtrail.Client().run("one worker") as run:
                    ctx = multiprocessing.get_context("fork")
                    mine, theirs = ctx.Pipe()
                    child = ctx.Process(target=worker, args=(run.id, theirs))
                    child.start()
                    print(mine.recv(), flush=True)
                    child.terminate()  # SIGTERM
                    child.join(30)
                    print(child.exitcode)
            """
        )
        done = run_python(script, python_env(server.url), timeout=60)
        self.assertEqual(done.returncode, 0, done.stderr)
        # Died of the signal, as a worker does without runtrail; before, its handler made it exit 143 (Terminated).
        self.assertEqual(done.stdout.split(), ["attached", str(-signal.SIGTERM)], done.stderr)

    def test_forks_while_the_run_sends_and_heartbeats_each_end_at_a_sigterm_or_sighup_so_pool_terminate_never_hangs(self) -> None:
        # The parent's SIGTERM handler (rt.run's, raising Terminated) used to be the child's too. A child SIGTERMed while
        # Python was still setting it up (in its fork hooks) lost the signal and lived on: leaving `with Pool(...)`,
        # whose terminate() SIGTERMs workers that may still be starting and then waits for them, hung for ever.
        script = textwrap.dedent(
            """
            import multiprocessing, os, signal, sys, threading, time, runtrail

            POOLS, FORKS, DEADLINE = 10, 60, 10.0

            def watchdog(what):
                done = threading.Event()

                def fire():
                    if not done.wait(DEADLINE):
                        print(f"{what} did not end within {DEADLINE:g} s", flush=True)
                        for child in multiprocessing.active_children():
                            os.kill(child.pid, signal.SIGKILL)
                        os._exit(3)

                threading.Thread(target=fire, daemon=True).start()
                return done

            # A short lease: a heartbeat every 0.33 s, and a thread keeping the sender busy throughout.
            with runtrail.Client().run("forks while sending", lease_ttl_ms=1000) as run:
                stop = threading.Event()

                def busy():
                    i = 0
                    while not stop.is_set():
                        run.metric("sent", 1.0, step=i)
                        i += 1
                        if i % 20 == 0:
                            run.flush()

                threading.Thread(target=busy, daemon=True).start()
                for k in range(POOLS):
                    done = watchdog(f"pool {k}")
                    with multiprocessing.get_context("fork").Pool(2):
                        pass  # left at once: its workers may still be starting when they are SIGTERMed
                    done.set()
                ends = {}
                for k in range(FORKS):
                    pid = os.fork()
                    if pid == 0:
                        try:
                            run.metric("inherited", 1.0)
                        except runtrail.RuntrailError:
                            pass  # the parent's run is not this child's: said at its first event
                        time.sleep(60)  # a task that takes long: the signal ends it
                        os._exit(0)
                    # At once, as the child is being set up; SIGHUP (a closed terminal) as well, which the run handles too.
                    stop_signal = (signal.SIGTERM, signal.SIGHUP)[k % 2]
                    os.kill(pid, stop_signal)
                    deadline = time.monotonic() + DEADLINE
                    while True:
                        ended, status = os.waitpid(pid, os.WNOHANG)
                        if ended:
                            ends[os.waitstatus_to_exitcode(status)] = ends.get(os.waitstatus_to_exitcode(status), 0) + 1
                            break
                        if time.monotonic() > deadline:
                            os.kill(pid, signal.SIGKILL)
                            os.waitpid(pid, 0)
                            print(f"fork {k} did not end within {DEADLINE:g} s of its {stop_signal.name}", flush=True)
                            os._exit(3)
                        time.sleep(0.001)
                stop.set()
            print(sorted(ends.items()), run.id)
            """
        )
        done = run_python(script, python_env(server.url), timeout=120)
        self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
        ends, run_id = done.stdout.rsplit(" ", 1)
        # Each child died of its signal, as without runtrail (not a Terminated exit, 143 or 129, nor alive).
        self.assertEqual(ends, f"[({-signal.SIGTERM}, 30), ({-signal.SIGHUP}, 30)]")
        final = runtrail.Client(server.url).get_run(run_id.strip())
        self.assertEqual(final["status"], "succeeded")
        self.assertNotIn("inherited", final["snapshot"]["metrics"])


if __name__ == "__main__":
    unittest.main()
