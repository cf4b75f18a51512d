"""run.call around async code: recorded when the coroutine ends, retried with asyncio.sleep, a cancelled task recorded failed."""

from __future__ import annotations

import asyncio
import functools
import inspect
import os
import signal
import textwrap
import threading
import time
import unittest
from typing import Any, AsyncIterator, Dict, List, Tuple

import runtrail
from tests.support import HoldingProxy, Server, python_env, run_python, wait_until

server = Server()
setUpModule, tearDownModule = server.start, server.close


class AsyncCallTest(unittest.TestCase):
    def setUp(self) -> None:
        self.rt = runtrail.Client(server.url)

    def calls(self, run: runtrail.Run) -> List[Tuple[str, Any, Any]]:
        """The run's call events as (type, attempt, willRetry), in the order stored."""
        events = self.rt.events(run.id)["events"]
        return [(e["type"], e["data"].get("attempt"), e["data"].get("willRetry")) for e in events if e["type"].startswith("call.")]

    def counters(self, run: runtrail.Run) -> Dict[str, Any]:
        snapshot = self.rt.get_run(run.id)["snapshot"]
        self.assertEqual(snapshot["current"], {}, "no call may stay in flight")
        return dict(snapshot["counters"])

    def test_an_async_call_is_recorded_succeeded_when_its_coroutine_returns_not_when_it_is_made(self) -> None:
        with self.rt.run("async-ok") as run:

            @run.call("judge")
            async def judge(doc: str) -> float:
                await asyncio.sleep(0)
                run.log(f"judging {doc}")
                return 0.75

            self.assertTrue(inspect.iscoroutinefunction(judge), "the wrapper of an async def must be one too")
            self.assertEqual(asyncio.run(judge("doc_1")), 0.75)
        events = [e for e in self.rt.events(run.id)["events"] if e["type"] in ("call.started", "log", "call.succeeded")]
        self.assertEqual([e["type"] for e in events], ["call.started", "log", "call.succeeded"])
        self.assertEqual(self.counters(run)["ok"], 1)

    def test_an_async_call_that_fails_is_retried_waiting_without_blocking_the_event_loop(self) -> None:
        attempts: List[bool] = []

        async def main(run: runtrail.Run) -> str:
            other_ran = asyncio.Event()
            first_failed = asyncio.Event()

            async def other() -> None:
                await first_failed.wait()
                other_ran.set()

            @run.call("judge", retries=2, retry_delay=0.05)
            async def judge(doc: str) -> str:
                await asyncio.sleep(0)
                # The second attempt comes after the wait: the other task ran in it only if the wait awaited.
                attempts.append(other_ran.is_set())
                if len(attempts) == 1:
                    first_failed.set()
                    raise ConnectionError("rate limited")
                return doc.upper()

            result, _ = await asyncio.gather(judge("doc_1"), other())
            return str(result)

        with self.rt.run("async-retry") as run:
            self.assertEqual(asyncio.run(main(run)), "DOC_1")
        self.assertEqual(attempts, [False, True])
        self.assertEqual(self.calls(run), [("call.started", None, None), ("call.failed", None, True), ("call.retried", 2, None), ("call.succeeded", None, None)])
        counters = self.counters(run)
        self.assertEqual((counters["ok"], counters["failed"], counters["retries"]), (1, 0, 1))

    def test_an_async_call_that_fails_every_attempt_raises_and_is_recorded_failed_once(self) -> None:
        with self.rt.run("async-fail") as run:

            @run.call("judge", retries=1, retry_delay=0)
            async def judge() -> None:
                await asyncio.sleep(0)
                raise RuntimeError("model down")

            with self.assertRaisesRegex(RuntimeError, "model down"):
                asyncio.run(judge())
        self.assertEqual(self.calls(run), [("call.started", None, None), ("call.failed", None, True), ("call.retried", 2, None), ("call.failed", None, False)])
        self.assertEqual(self.rt.get_run(run.id)["snapshot"]["lastError"]["message"], "RuntimeError: model down")
        counters = self.counters(run)
        self.assertEqual((counters["ok"], counters["failed"], counters["retries"]), (0, 1, 1))

    def test_many_async_calls_in_flight_at_once_with_gather_are_each_counted_once(self) -> None:
        docs = 30
        tries: Dict[int, int] = {}

        async def main(run: runtrail.Run) -> List[Any]:
            all_started = asyncio.Event()

            @run.call("judge", retries=1, retry_delay=0)
            async def judge(i: int) -> int:
                tries[i] = tries.get(i, 0) + 1
                if len(tries) == docs:
                    all_started.set()
                await all_started.wait()  # every call is in flight before any ends
                if i % 10 == 3 and tries[i] == 1:
                    raise TimeoutError(f"doc {i} timed out once")
                if i % 10 == 7:
                    raise ValueError(f"doc {i} has no text")
                return i

            return await asyncio.gather(*(judge(i) for i in range(docs)), return_exceptions=True)

        with self.rt.run("async-gather") as run:
            results = asyncio.run(main(run))
        self.assertEqual([r for r in results if isinstance(r, int)], [i for i in range(docs) if i % 10 != 7])
        self.assertEqual([str(r) for r in results if isinstance(r, ValueError)], [f"doc {i} has no text" for i in (7, 17, 27)])
        types = [t for t, _, _ in self.calls(run)]
        self.assertEqual(types[:docs], ["call.started"] * docs)
        counters = self.counters(run)
        # 27 ok (3 after a retry), 3 failed after their retry: 6 retries.
        self.assertEqual((counters["ok"], counters["failed"], counters["retries"]), (27, 3, 6))

    def test_a_cancelled_task_is_recorded_as_a_failed_call_and_the_cancel_goes_through(self) -> None:
        async def main(run: runtrail.Run) -> None:
            started = asyncio.Event()

            @run.call("judge", retries=3, retry_delay=0)
            async def judge() -> None:
                started.set()
                await asyncio.Event().wait()  # an answer that never comes

            task = asyncio.ensure_future(judge())
            await started.wait()
            task.cancel()
            with self.assertRaises(asyncio.CancelledError):
                await task

        with self.rt.run("async-cancelled") as run:
            asyncio.run(main(run))
        self.assertEqual(self.calls(run), [("call.started", None, None), ("call.failed", None, False)])
        self.assertEqual(self.rt.get_run(run.id)["snapshot"]["lastError"]["message"], "CancelledError")
        counters = self.counters(run)
        self.assertEqual((counters["ok"], counters["failed"], counters["retries"]), (0, 1, 0))

    def test_a_task_cancelled_while_it_waits_to_retry_ends_its_call_failed_not_in_flight(self) -> None:
        async def main(run: runtrail.Run) -> None:
            failed = asyncio.Event()

            @run.call("judge", retries=3, retry_delay=30)
            async def judge() -> None:
                failed.set()
                raise ConnectionError("rate limited")

            task = asyncio.ensure_future(judge())
            # Woken by set(), this task runs after the judge's step, which went on from the raise into its 30 s wait.
            await failed.wait()
            task.cancel()
            with self.assertRaises(asyncio.CancelledError):
                await task

        with self.rt.run("async-cancelled-in-backoff") as run:
            asyncio.run(asyncio.wait_for(main(run), 20))
        self.assertEqual(self.calls(run), [("call.started", None, None), ("call.failed", None, True), ("call.failed", None, False)])
        counters = self.counters(run)
        self.assertEqual((counters["ok"], counters["failed"]), (0, 1))

    def test_ctrl_c_while_a_sync_call_waits_to_retry_ends_the_call_failed_not_in_flight(self) -> None:
        if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
            self.skipTest("SIGINT is handled by the test runner here")
        watcher = runtrail.Client(server.url)

        def ctrl_c_in_the_wait(run_id: str) -> None:
            # Once the failure saying it will be retried is stored, the call is in its 30 s wait.
            wait_until(
                lambda: any(e["type"] == "call.failed" for e in watcher.events(run_id)["events"]), what="the first attempt's call.failed"
            )
            os.kill(os.getpid(), signal.SIGINT)

        with self.rt.run("sync-interrupted-in-backoff") as run:

            @run.call("judge", retries=3, retry_delay=30)
            def judge() -> None:
                threading.Thread(target=ctrl_c_in_the_wait, args=(run.id,), daemon=True).start()
                raise ConnectionError("rate limited")

            with self.assertRaises(KeyboardInterrupt):
                judge()
        self.assertEqual(self.calls(run), [("call.started", None, None), ("call.failed", None, True), ("call.failed", None, False)])
        self.assertEqual(self.rt.get_run(run.id)["snapshot"]["lastError"]["message"], "KeyboardInterrupt")

    def cancel_once_waiting_to_retry(self, run_id: str) -> None:
        """Cancel the run once its call's first failure, saying it will be retried, is stored: the call is then in its wait."""
        watcher = runtrail.Client(server.url)
        wait_until(lambda: any(e["type"] == "call.failed" for e in watcher.events(run_id)["events"]), what="the first attempt's call.failed")
        watcher.cancel(run_id, "wrong dataset")

    def assert_cut_short_by_the_cancel(self, run: runtrail.Run, started: float) -> None:
        # The wait was 30 s: the cancel, heard through the held heartbeat, ends it long before.
        self.assertLess(time.monotonic() - started, 20, "the wait to retry must end when the run is cancelled")
        self.assertEqual(self.calls(run), [("call.started", None, None), ("call.failed", None, True), ("call.failed", None, False)])
        ended = self.rt.get_run(run.id)
        self.assertEqual(ended["status"], "cancelled")
        self.assertIn("cancel requested: wrong dataset", ended["snapshot"]["lastError"]["message"])
        counters = self.counters(run)
        self.assertEqual((counters["ok"], counters["failed"], counters["retries"]), (0, 1, 0))

    def test_a_cancel_while_a_sync_call_waits_to_retry_ends_the_wait_and_the_call_and_raises_cancelled(self) -> None:
        started = time.monotonic()
        with self.assertRaises(runtrail.Cancelled):
            with self.rt.run("sync-cancelled-in-backoff") as run:

                @run.call("judge", retries=1, retry_delay=30)
                def judge() -> None:
                    threading.Thread(target=self.cancel_once_waiting_to_retry, args=(run.id,), daemon=True).start()
                    raise ConnectionError("rate limited")

                judge()
        self.assert_cut_short_by_the_cancel(run, started)

    def test_a_cancel_while_an_async_call_waits_to_retry_ends_the_wait_and_the_call_and_raises_cancelled(self) -> None:
        started = time.monotonic()
        with self.assertRaises(runtrail.Cancelled):
            with self.rt.run("async-run-cancelled-in-backoff") as run:

                @run.call("judge", retries=1, retry_delay=30)
                async def judge() -> None:
                    threading.Thread(target=self.cancel_once_waiting_to_retry, args=(run.id,), daemon=True).start()
                    raise ConnectionError("rate limited")

                asyncio.run(judge())
        self.assert_cut_short_by_the_cancel(run, started)

    def test_track_over_an_async_iterable_records_progress_as_its_items_are_done(self) -> None:
        async def results() -> AsyncIterator[str]:
            for i in range(4):
                await asyncio.sleep(0)
                yield f"doc_{i}"

        async def main(run: runtrail.Run) -> List[str]:
            return [doc async for doc in runtrail.track(results(), run=run, total=4, every=0, message="judging")]

        with self.rt.run("async-track") as run:
            self.assertEqual(asyncio.run(main(run)), ["doc_0", "doc_1", "doc_2", "doc_3"])
        progress = [e["data"] for e in self.rt.events(run.id)["events"] if e["type"] == "progress"]
        self.assertEqual([(p["done"], p["total"], p["message"]) for p in progress], [(n, 4, "judging") for n in range(5)])

    def test_track_over_an_async_iterable_raises_cancelled_at_the_next_item_once_the_run_is_cancelled(self) -> None:
        seen: List[int] = []

        async def endless() -> AsyncIterator[int]:
            i = 0
            while True:
                await asyncio.sleep(0)
                yield i
                i += 1

        async def main(run: runtrail.Run) -> None:
            async for i in runtrail.track(endless(), run=run):
                seen.append(i)
                if i == 2:
                    runtrail.Client(server.url).cancel(run.id, "enough")
                    # Heard through the run's held heartbeat, on the sender's thread.
                    await asyncio.to_thread(wait_until, lambda: run.cancelled, 15, "the cancel to reach the run")

        with self.assertRaises(runtrail.Cancelled):
            with self.rt.run("async-track-cancelled") as run:
                asyncio.run(main(run))
        self.assertEqual(seen, [0, 1, 2])
        self.assertEqual(self.rt.get_run(run.id)["status"], "cancelled")

    def test_partials_async_callables_and_functions_returning_a_coroutine_are_awaited_as_the_call(self) -> None:
        failures = {"partial": 1, "callable": 1, "lambda": 1}

        async def flaky(kind: str, doc: str) -> str:
            await asyncio.sleep(0)
            if failures[kind]:
                failures[kind] -= 1
                raise ConnectionError(f"{kind}: rate limited")
            return f"{kind} {doc}"

        class Judge:
            async def __call__(self, doc: str) -> str:
                return await flaky("callable", doc)

        with self.rt.run("async-forms") as run:
            by_partial = run.call("partial", retries=1, retry_delay=0)(functools.partial(flaky, "partial"))
            by_callable = run.call("callable", retries=1, retry_delay=0)(Judge())
            by_lambda = run.call("lambda", retries=1, retry_delay=0)(lambda doc: flaky("lambda", doc))
            self.assertTrue(inspect.iscoroutinefunction(by_partial))
            self.assertTrue(inspect.iscoroutinefunction(by_callable))

            async def main() -> List[str]:
                return [await by_partial("d1"), await by_callable("d2"), await by_lambda("d3")]

            self.assertEqual(asyncio.run(main()), ["partial d1", "callable d2", "lambda d3"])
        counters = self.counters(run)
        self.assertEqual((counters["ok"], counters["failed"], counters["retries"]), (3, 0, 3))

    def test_async_with_a_call_or_a_phase_records_it_as_with_does(self) -> None:
        async def main(run: runtrail.Run) -> None:
            async with run.phase("evaluate"):
                async with run.call("judge doc_1"):
                    await asyncio.sleep(0)
                with self.assertRaises(TimeoutError):
                    async with run.call("judge doc_2"):
                        raise TimeoutError("no answer")

        with self.rt.run("async-with") as run:
            asyncio.run(main(run))
        final = self.rt.get_run(run.id)
        self.assertEqual([p["status"] for p in final["snapshot"]["phases"]], ["completed"])
        counters = self.counters(run)
        self.assertEqual((counters["ok"], counters["failed"]), (1, 1))
        self.assertEqual(final["snapshot"]["lastError"]["message"], "TimeoutError: no answer")


class AsyncRunTest(unittest.TestCase):
    """``async with rt.run(...)``: the run ends as with ``with``, its end waited for off the event loop."""

    def setUp(self) -> None:
        self.rt = runtrail.Client(server.url)

    def test_async_with_a_run_succeeds_it_and_its_end_does_not_block_the_event_loop(self) -> None:
        # The run's end is held at the proxy until a task of the same loop lets it through: that task can run only if the end waits off the loop.
        # A blocked loop would see the end go through only when the proxy gives up holding it, 5 s on.
        proxy = HoldingProxy(server.port, hold="/finish", cap=5)
        self.addCleanup(proxy.close)
        rt = runtrail.Client(proxy.url)
        released_by: List[str] = []

        async def release_once_held() -> None:
            while not proxy.holding.is_set():
                await asyncio.sleep(0.01)
            released_by.append("a task of the loop")
            proxy.release()

        async def main() -> runtrail.Run:
            async with rt.run("async-run-ok") as run:
                run.metric("score", 0.5)
                releaser = asyncio.ensure_future(release_once_held())
            await releaser
            return run

        run = asyncio.run(asyncio.wait_for(main(), 60))
        self.assertFalse(proxy.gave_up.is_set(), "the run's end blocked the event loop: no task released it")
        self.assertEqual(released_by, ["a task of the loop"])
        final = self.rt.get_run(run.id)
        self.assertEqual(final["status"], "succeeded")
        self.assertEqual(final["snapshot"]["metrics"]["score"]["count"], 1)

    def test_async_with_a_run_fails_it_on_an_exception_cancels_it_on_cancelled_and_interrupts_it_on_a_cancelled_task(self) -> None:
        async def failing() -> str:
            async with self.rt.run("async-run-failed") as run:
                raise ValueError("bad document")

        async def cancelled() -> str:
            async with self.rt.run("async-run-cancelled") as run:
                self.rt.cancel(run.id, reason="not needed")
                await asyncio.to_thread(wait_until, lambda: run.cancelled, 15, "the cancel to reach the run")
                run.progress(1, 2)  # a call boundary: raises Cancelled
            return run.id

        async def interrupted() -> str:
            started = asyncio.Event()
            ids: List[str] = []

            async def work() -> None:
                async with self.rt.run("async-run-interrupted") as run:
                    ids.append(run.id)
                    started.set()
                    await asyncio.Event().wait()  # until the task is cancelled

            task = asyncio.ensure_future(work())
            await started.wait()
            task.cancel()
            with self.assertRaises(asyncio.CancelledError):
                await task
            return ids[0]

        with self.assertRaisesRegex(ValueError, "bad document"):
            asyncio.run(failing())
        (failed,) = self.rt.list_runs(name="async-run-failed")["runs"]
        self.assertEqual((failed["status"], failed["error"]), ("failed", {"kind": "error", "message": "ValueError: bad document"}))
        with self.assertRaises(runtrail.Cancelled):
            asyncio.run(cancelled())
        (ended,) = self.rt.list_runs(name="async-run-cancelled")["runs"]
        self.assertEqual(ended["status"], "cancelled")
        self.assertIn("not needed", ended["error"]["message"])
        final = self.rt.get_run(asyncio.run(interrupted()))
        self.assertEqual((final["status"], final["error"]["kind"]), ("failed", "interrupted"))

    def test_a_task_cancelled_again_while_its_runs_end_waits_stops_waiting_and_the_process_exits_without_it(self) -> None:
        # The end never reaches the server (held at the proxy): a second cancel stops the wait, as a second Ctrl-C in `with` does,
        # and the exit does not wait for that run again (it would for exit_timeout, 10 s, had its sender not been stopped).
        proxy = HoldingProxy(server.port, hold="/finish", cap=60)
        self.addCleanup(proxy.close)
        script = textwrap.dedent(
            """
            import asyncio, runtrail

            async def main():
                held = asyncio.Event()

                async def work():
                    async with runtrail.Client().run("async-run-cancelled-twice") as run:
                        run.log("working")
                        held.set()

                task = asyncio.ensure_future(work())
                await held.wait()  # the task went on from there into the run's end, where it waits now
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    print("cancelled while the end waited", flush=True)

            asyncio.run(main())
            """
        )
        started = time.monotonic()
        done = run_python(script, python_env(proxy.url), timeout=60)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(done.stdout.strip(), "cancelled while the end waited")
        self.assertLess(time.monotonic() - started, 8, "the exit waited for the end of a run nobody waits for")

if __name__ == "__main__":
    unittest.main()
