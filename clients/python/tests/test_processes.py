"""The client used from worker processes (multiprocessing), against a real server."""

from __future__ import annotations

import pickle
import textwrap
import threading
import unittest

import runtrail
from tests.support import Server, python_env, run_python

server = Server()
setUpModule, tearDownModule = server.start, server.close


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


if __name__ == "__main__":
    unittest.main()
