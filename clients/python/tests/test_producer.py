"""The producer API against a real server: calls, phases, metrics, progress, children, errors, flush."""

from __future__ import annotations

import asyncio
import datetime
import numbers
import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest
from fractions import Fraction
from typing import Any, Dict, List, Tuple

import runtrail
from tests.support import CLI, ROOT, Server, python_env, run_python, wait_until

server = Server()
# One server for the module's tests: started before the first, closed (its data dir removed) after the last.
setUpModule, tearDownModule = server.start, server.close


def judge(i: int) -> float:
    if i % 10 == 7:
        raise ValueError(f"judge timed out on doc {i}")
    return i / 30


class Float32:
    """A real number that is no float, as numpy's ``np.float32`` (which numpy registers as ``numbers.Real``)."""

    def __init__(self, value: float) -> None:
        self.value = value

    def __float__(self) -> float:
        return float(self.value)

    def __repr__(self) -> str:
        return f"Float32({self.value!r})"


class Int64(Float32):
    """An integer that is no int, as ``np.int64`` (registered as ``numbers.Integral``)."""

    def __int__(self) -> int:
        return int(self.value)


numbers.Real.register(Float32)
numbers.Integral.register(Int64)


class ProducerTest(unittest.TestCase):
    def setUp(self) -> None:
        self.rt = runtrail.Client(server.url)

    def test_thirty_calls_three_raising_end_ok_27_failed_3_with_progress_metric_and_labels(self) -> None:
        with self.rt.run("eval-gpt4", input={"dataset": "docs-v2"}, labels={"team": "search"}) as run:
            with run.phase("evaluate", timeout_ms=600_000):
                for i in range(30):
                    try:
                        with run.call(f"Evaluating doc_{i} with gpt-4"):
                            score = judge(i)
                    except ValueError:
                        continue  # the failure is recorded by run.call; the pipeline goes on
                    finally:
                        run.progress(i + 1, 30)
                    run.metric("score", score, step=i)
        final = self.rt.get_run(run.id)
        snapshot = final["snapshot"]
        self.assertEqual(final["status"], "succeeded")
        self.assertEqual(snapshot["counters"]["ok"], 27)
        self.assertEqual(snapshot["counters"]["failed"], 3)
        self.assertEqual(snapshot["progress"]["percent"], 100)
        self.assertEqual(snapshot["metrics"]["score"]["count"], 27)
        self.assertEqual(snapshot["metrics"]["score"]["last"], 29 / 30)
        self.assertEqual(final["labels"], {"team": "search"})
        self.assertEqual(final["input"], {"dataset": "docs-v2"})
        self.assertEqual([p["status"] for p in snapshot["phases"]], ["completed"])
        self.assertIsNone(snapshot["lastError"])  # cleared by the successes after the last failure
        failed = [e for e in self.rt.events(run.id)["events"] if e["type"] == "call.failed"]
        self.assertEqual([e["data"]["error"] for e in failed], [f"ValueError: judge timed out on doc {i}" for i in (7, 17, 27)])

    def test_an_exception_inside_rt_run_fails_the_run_with_its_message_and_traceback(self) -> None:
        with self.assertRaises(KeyError):
            with self.rt.run("failing") as run:
                run.progress(1, 2)
                raise KeyError("doc_17 has no text")
        final = self.rt.get_run(run.id)
        self.assertEqual(final["status"], "failed")
        self.assertEqual(final["error"], {"kind": "error", "message": "KeyError: 'doc_17 has no text'"})
        logs = final["snapshot"]["logs"]
        self.assertEqual(logs[-1]["level"], "error")
        self.assertIn("Traceback (most recent call last)", logs[-1]["message"])
        self.assertIn('raise KeyError("doc_17 has no text")', logs[-1]["message"])

    def test_call_as_a_wrapper_retries_and_records_call_retried(self) -> None:
        attempts = []

        def flaky(doc: str) -> str:
            attempts.append(doc)
            if len(attempts) < 3:
                raise ConnectionError("rate limited")
            return doc.upper()

        with self.rt.run("retrying") as run:
            judge_doc = run.call("judge", retries=2, retry_delay=0)(flaky)
            self.assertEqual(judge_doc("doc_1"), "DOC_1")

            @run.call("always fails", retries=1, retry_delay=0)
            def broken() -> None:
                raise RuntimeError("model down")

            with self.assertRaises(RuntimeError):
                broken()
        counters = self.rt.get_run(run.id)["snapshot"]["counters"]
        self.assertEqual((counters["ok"], counters["failed"], counters["retries"]), (1, 1, 3))
        events = self.rt.events(run.id)["events"]
        self.assertEqual(
            [(e["type"], e["data"].get("attempt"), e["data"].get("willRetry")) for e in events if e["type"].startswith("call.")],
            [
                ("call.started", None, None),
                ("call.failed", None, True),
                ("call.retried", 2, None),
                ("call.failed", None, True),
                ("call.retried", 3, None),
                ("call.succeeded", None, None),
                ("call.started", None, None),
                ("call.failed", None, True),
                ("call.retried", 2, None),
                ("call.failed", None, False),
            ],
        )
        with self.rt.run("with-retries") as run:
            with self.assertRaises(TypeError):
                with run.call("a block cannot be retried", retries=1):
                    pass

    def test_a_called_function_with_an_attempt_parameter_gets_the_attempts_number_and_one_without_gets_none(self) -> None:
        seen: List[Tuple[str, int]] = []

        def judge(doc: str, attempt: int) -> str:
            seen.append((doc, attempt))
            if attempt < 3:
                raise ConnectionError(f"rate limited on attempt {attempt}")
            return f"{doc} on attempt {attempt}"

        def keyword_only(*, attempt: int = 0) -> int:
            return attempt

        def plain(doc: str) -> str:
            return doc

        def forwarding(*args: Any, **kwargs: Any) -> Dict[str, Any]:
            return kwargs  # a **kwargs catch-all is not given attempt: it would pass it on to whatever it calls

        with self.rt.run("attempts") as run:
            self.assertEqual(run.call("judge", retries=3, retry_delay=0)(judge)("doc_1"), "doc_1 on attempt 3")
            self.assertEqual(seen, [("doc_1", 1), ("doc_1", 2), ("doc_1", 3)])
            self.assertEqual(run.call("keyword only")(keyword_only)(), 1)
            self.assertEqual(run.call("plain")(plain)("doc_2"), "doc_2")
            self.assertEqual(run.call("forwarding")(forwarding)(1, x=2), {"x": 2})
            # The caller's own attempt, by name or by position, is what the function gets.
            self.assertEqual(run.call("given by name")(keyword_only)(attempt=7), 7)
            self.assertEqual(run.call("given by position", retries=3, retry_delay=0)(judge)("doc_3", 3), "doc_3 on attempt 3")

            async def judge_async(doc: str, attempt: int) -> str:
                await asyncio.sleep(0)
                if attempt == 1:
                    raise TimeoutError("no answer")
                return f"{doc} on attempt {attempt}"

            self.assertEqual(asyncio.run(run.call("async", retries=1, retry_delay=0)(judge_async)("doc_4")), "doc_4 on attempt 2")
        counters = self.rt.get_run(run.id)["snapshot"]["counters"]
        self.assertEqual((counters["ok"], counters["failed"], counters["retries"]), (7, 0, 3))

    def test_counter_log_meta_output_child_and_track(self) -> None:
        with self.rt.run("pipeline") as run:
            run.counter("tokens", 120)
            run.counter("tokens", 30)
            run.log("loaded 4 docs", level="warn")
            run.meta({"model": "gpt-4"}, temperature=0.2)
            with run.child("render", input={"frames": 4}) as child:
                for _ in runtrail.track(range(4), run=child):
                    pass
            open_child = run.child("left open")
            run.output({"accuracy": 0.9})
        final = self.rt.get_run(run.id)
        snapshot = final["snapshot"]
        self.assertEqual(final["output"], {"accuracy": 0.9})
        self.assertEqual(snapshot["counters"]["named"]["tokens"], 150)
        self.assertEqual(snapshot["meta"], {"model": "gpt-4", "temperature": 0.2})
        self.assertEqual(snapshot["logs"][-1]["message"], "loaded 4 docs")
        children = self.rt.list_runs(parentId=run.id)["runs"]
        self.assertEqual(sorted(c["name"] for c in children), ["left open", "render"])
        rendered = self.rt.get_run(child.id)
        self.assertEqual(rendered["status"], "succeeded")
        self.assertEqual(rendered["snapshot"]["progress"]["done"], 4)
        self.assertEqual(rendered["snapshot"]["progress"]["percent"], 100)
        left = self.rt.get_run(open_child.id)
        self.assertEqual(left["status"], "failed")
        self.assertEqual(left["error"]["kind"], "orphaned")

    def test_a_run_name_that_is_not_text_is_a_type_error_and_makes_no_run(self) -> None:
        # str() of it made a run named "None" for rt.run(os.environ.get("RUN_NAME")) with the variable unset.
        before = {r["id"] for r in self.rt.list_runs(limit=200)["runs"]}
        with self.rt.run("named parent") as parent:
            for make in (lambda: self.rt.run(None), lambda: self.rt.start(None), lambda: parent.child(None), lambda: self.rt.run(42)):  # type: ignore[arg-type]
                with self.assertRaisesRegex(TypeError, r"rt\.(run|start)\(name\): a run's name is a str, got (NoneType None|int 42)"):
                    make()
        after = self.rt.list_runs(limit=200)["runs"]
        self.assertEqual([r["name"] for r in after if r["id"] not in before], ["named parent"])

    def test_a_log_message_that_is_not_text_is_a_type_error_and_queues_nothing(self) -> None:
        # Before: str() of it was logged, so run.log(os.environ.get("X")) with the variable unset logged "None", though a
        # run's name of None is a TypeError.
        with self.rt.run("log messages") as run:
            for bad, shown in ((None, "NoneType None"), (42, "int 42"), (ValueError("boom"), "ValueError ValueError('boom')")):
                with self.assertRaises(TypeError) as caught:
                    run.log(bad)  # type: ignore[arg-type]
                self.assertEqual(str(caught.exception), f"run.log(message): a log message is a str (or bytes), got {shown}")
            run.log("kept")
            run.log(b"kept too")
        self.assertEqual([line["message"] for line in self.rt.get_run(run.id)["snapshot"]["logs"]], ["kept", "kept too"])
        self.assertEqual([e["type"] for e in self.rt.events(run.id)["events"]], ["log", "log", "run.succeeded"])

    def test_bytes_given_as_text_are_recorded_decoded_not_as_their_repr(self) -> None:
        # Before: str(b"x") was recorded, so a line read from a subprocess showed as "b'x'".
        with self.rt.run(b"bytes-named") as run:
            run.log(b"line from a pipe \xff")  # undecodable bytes become U+FFFD, the line is kept
            run.progress(1, 2, message=bytearray(b"halfway"))
            with run.call(memoryview(b"Evaluating doc_1")):
                pass
            with run.child(b"child") as child:
                child.fail(b"it broke")
        final = self.rt.get_run(run.id)
        self.assertEqual(final["name"], "bytes-named")
        self.assertEqual(final["snapshot"]["logs"][0]["message"], "line from a pipe \ufffd")
        self.assertEqual(final["snapshot"]["progress"]["message"], "halfway")
        started = [e for e in self.rt.events(run.id)["events"] if e["type"] == "call.started"]
        self.assertEqual(started[0]["data"]["label"], "Evaluating doc_1")
        failed = self.rt.get_run(child.id)
        self.assertEqual((failed["name"], failed["error"]["message"]), ("child", "it broke"))
        with self.rt.run("to cancel") as cancelled:
            self.assertEqual(self.rt.cancel(cancelled.id, reason=b"enough")["snapshot"]["cancelReason"], "enough")
            wait_until(lambda: cancelled.cancelled, what="the cancel to reach the script")

    def test_flush_returns_when_everything_queued_is_stored_in_order(self) -> None:
        rt = runtrail.Client(server.url, max_batch=100, flush_interval=10.0)
        run = rt.run("flushing")
        for i in range(1_234):
            run.counter("n", 1)
            run.metric("i", i)
        run.flush()
        stored = rt.events(run.id, limit=5000)["events"]
        self.assertEqual(len(stored), 2_468)
        self.assertEqual([e["seq"] for e in stored], list(range(1, 2_469)))
        self.assertEqual([e["data"]["value"] for e in stored if e["type"] == "metric"], list(range(1_234)))
        run.succeed()

    def test_data_is_recorded_as_it_was_at_the_call_though_the_object_changes_before_it_is_sent(self) -> None:
        rt = runtrail.Client(server.url, flush_interval=3600)
        run = rt.run("reused object")
        # One dict, updated and recorded step by step, as a training loop would.
        state = {"step": 0, "losses": [], "note": "caf\u00e9 \u2713"}
        for step in (1, 2, 3):
            state["step"] = step
            state["losses"].append(1 / step)
            run.event("x.state", state)
        state["step"] = 99
        state["losses"].clear()
        run.flush()
        stored = [e["data"] for e in rt.events(run.id)["events"] if e["type"] == "x.state"]
        self.assertEqual(
            stored,
            [
                {"step": 1, "losses": [1.0], "note": "caf\u00e9 \u2713"},
                {"step": 2, "losses": [1.0, 0.5], "note": "caf\u00e9 \u2713"},
                {"step": 3, "losses": [1.0, 0.5, 1 / 3], "note": "caf\u00e9 \u2713"},
            ],
        )
        run.succeed()

    def test_events_go_out_by_count_and_by_time_without_a_flush(self) -> None:
        by_count = runtrail.Client(server.url, max_batch=50, flush_interval=3600).run("by count")
        for _ in range(100):
            by_count.counter("n")
        wait_until(lambda: self.rt.get_run(by_count.id)["seq"] == 100, 15, "two full batches stored")
        by_time = runtrail.Client(server.url, flush_interval=0.05).run("by time")
        for _ in range(3):
            by_time.counter("n")
        wait_until(lambda: self.rt.get_run(by_time.id)["seq"] == 3, 15, "a partial batch stored after the interval")
        by_count.succeed()
        by_time.succeed()

    def test_bad_event_data_fails_at_the_call_site(self) -> None:
        with self.rt.run("bad data") as run:
            with self.assertRaises(ValueError):
                run.metric("loss", float("nan"))
            with self.assertRaises(ValueError):
                run.meta(when=object())
            with self.assertRaises(ValueError):
                run.log("x", level="loud")
            # Before: plain "Out of range float values are not JSON compliant", naming no argument.
            with self.assertRaisesRegex(ValueError, r"^run\.output\(\) must be JSON \(finite numbers, str keys\): Out of range float"):
                run.output({"score": float("nan")})
        self.assertEqual(self.rt.get_run(run.id)["status"], "succeeded")
        with self.assertRaisesRegex(ValueError, r"^rt\.run\('bad input'\): input and labels must be JSON \(finite numbers, str keys\): Object of type date"):
            self.rt.run("bad input", input={"day": datetime.date(2026, 11, 28)})

    def test_data_nested_deeper_than_the_server_takes_fails_at_the_call_site_naming_where(self) -> None:
        # Sent, it was refused by the server: an event's stopped the sender (the run's later events lost), an output left
        # the run running with a traceback from the block's end.
        def nested(levels: int) -> object:
            value: object = {}
            for _ in range(levels - 1):
                value = {"a": value}
            return value

        with self.rt.run("deep data") as run:
            with self.assertRaisesRegex(ValueError, r"^x\.deep data nests deeper than 64 levels .*at \['a'\]\['a'\]"):
                run.event("x.deep", nested(65))
            with self.assertRaisesRegex(ValueError, r"^run\.output\(\) nests deeper than 64 levels"):
                run.output([nested(64)])
            with self.assertRaisesRegex(ValueError, r"^meta data nests deeper"):
                run.meta({"k": nested(64)})
            run.event("x.deep", nested(64))
            run.output(nested(64))
        final = self.rt.get_run(run.id)
        self.assertEqual(final["status"], "succeeded")
        self.assertEqual([e["type"] for e in self.rt.events(run.id)["events"]], ["x.deep", "run.succeeded"])

    def test_an_end_the_server_would_refuse_fails_at_the_call_site_and_the_run_goes_on(self) -> None:
        # Sent, the server's refusal closed the handle: the run stayed running, later events raised "has ended", and the
        # exit skipped it. NUL in a message is written \\x00, as in an exception's.
        run = self.rt.run("bad ends")
        with self.assertRaisesRegex(ValueError, r"status must be one of succeeded, failed, cancelled, got 'done'"):
            run.finish("done")
        with self.assertRaisesRegex(ValueError, r"kind must be one of .*interrupted.*, got 'weird'"):
            run.fail("no", kind="weird")
        run.progress(1, 2)
        final = run.finish("cancelled", message="budget\x00spent")
        self.assertEqual(final["status"], "cancelled")
        self.assertEqual(final["error"]["message"], "budget\\x00spent")
        self.assertEqual(final["snapshot"]["progress"]["done"], 1)

    def test_a_second_different_end_raises_run_already_terminal_and_the_same_end_again_answers_the_run(self) -> None:
        run = self.rt.run("ended twice")
        self.assertEqual(run.succeed({"judged": 3})["status"], "succeeded")
        # Before: fail() returned the succeeded run, so the failure the script meant to record vanished unseen.
        with self.assertRaisesRegex(runtrail.RuntrailError, r"^run_already_terminal: run \S+ already ended succeeded \(this handle ended it\); it cannot also end failed$"):
            run.fail(RuntimeError("judge crashed"))
        with self.assertRaisesRegex(runtrail.RuntrailError, "cannot also end succeeded"):
            run.succeed({"judged": 4})
        self.assertEqual(run.succeed({"judged": 3})["status"], "succeeded")
        self.assertEqual(run.succeed()["status"], "succeeded")
        final = self.rt.get_run(run.id)
        self.assertEqual((final["status"], final["output"], final["error"]), ("succeeded", {"judged": 3}, None))

    def test_numpy_like_numbers_are_recorded_as_numbers_and_data_json_cannot_hold_is_named_where_it_is(self) -> None:
        with self.rt.run("numpy-like", input={"temperature": Float32(0.5)}) as run:
            # Before: "value must be a finite number, got np.float32(0.5)", and meta/output/input raised
            # "Object of type float32 is not JSON serializable" for what scores.mean() returns.
            run.metric("score", Float32(0.25), step=Int64(3))
            run.progress(Int64(4), Int64(8))
            run.counter("tokens", Int64(120))
            run.meta(mean_score=Float32(0.25), best=[Int64(1), Fraction(1, 2)])
            run.output({"accuracy": Float32(0.75)})
            with self.assertRaisesRegex(
                ValueError,
                r"^meta data must be JSON \(finite numbers, str keys\): Object of type datetime is not JSON serializable "
                r"\(at \['runs'\]\[1\]\['at'\]: convert it to a str, a finite number, a list or a dict first\)$",
            ):
                run.meta(runs=[{"at": "today"}, {"at": datetime.datetime(2026, 11, 28)}])
            with self.assertRaisesRegex(ValueError, r"Out of range float values are not JSON compliant \(at \['loss'\]\[0\]:"):
                run.event("x.losses", {"loss": [Float32(float("nan"))]})
            with self.assertRaisesRegex(ValueError, r"^value must be a finite number, got Float32 Float32\(inf\)$"):
                run.metric("score", Float32(float("inf")))
        final = self.rt.get_run(run.id)
        snapshot = final["snapshot"]
        self.assertEqual(final["status"], "succeeded")
        self.assertEqual((snapshot["metrics"]["score"]["last"], snapshot["metrics"]["score"]["step"]), (0.25, 3))
        self.assertEqual((snapshot["progress"]["done"], snapshot["progress"]["total"]), (4, 8))
        self.assertEqual(snapshot["counters"]["named"], {"tokens": 120})
        self.assertEqual(snapshot["meta"], {"mean_score": 0.25, "best": [1, 0.5]})
        self.assertEqual((final["input"], final["output"]), ({"temperature": 0.5}, {"accuracy": 0.75}))

    def test_an_int_beyond_a_floats_range_fails_at_the_call_site_naming_the_argument_and_queues_nothing(self) -> None:
        # Before: OverflowError "int too large to convert to float", naming no argument; in data the server read it as
        # infinity and stored null.
        huge = 10**400
        with self.rt.run("huge ints") as run:
            for bad, argument in (
                (lambda: run.metric("loss", huge), "value"),
                (lambda: run.metric("loss", 0.5, step=-huge), "step"),
                (lambda: run.progress(huge), "done"),
                (lambda: run.progress(1, huge), "total"),
                (lambda: run.counter("tokens", huge), "delta"),
            ):
                with self.assertRaisesRegex(ValueError, rf"^{argument} must be a finite number within a float's range \(about 1\.8e308\), got an int of about 401 digits$"):
                    bad()
            with self.assertRaisesRegex(ValueError, r"^value must be a finite number, got Fraction"):
                run.metric("loss", Fraction(huge, 3))
            with self.assertRaisesRegex(ValueError, r"^meta data must be JSON .*an int beyond a float's range .*\(at \['sizes'\]\[1\]: convert it to a str first\)$"):
                run.meta(sizes=[1, huge])
            with self.assertRaisesRegex(ValueError, r"^run\.output\(\) must be JSON .*beyond a float's range"):
                run.output({"n": huge})
            run.meta(digits="9" * 400, big=10**300)  # digits in a string, and an int a float holds, are data as any
            run.metric("loss", 0.5)
        final = self.rt.get_run(run.id)
        self.assertEqual(final["status"], "succeeded")
        self.assertEqual([e["type"] for e in self.rt.events(run.id)["events"]], ["meta", "metric", "run.succeeded"])
        self.assertEqual(final["snapshot"]["meta"], {"digits": "9" * 400, "big": 1e300})
        with self.assertRaisesRegex(ValueError, r"^rt\.run\('huge input'\): input and labels must be JSON .*\(at \['input'\]\['n'\]"):
            self.rt.run("huge input", input={"n": huge})

    def test_meta_and_labels_that_are_not_dicts_are_a_type_error_naming_the_argument_and_make_nothing(self) -> None:
        # Before: dict() of them raised "cannot convert dictionary update sequence element #0", naming no argument.
        before = {r["id"] for r in self.rt.list_runs(limit=200)["runs"]}
        with self.rt.run("not dicts") as run:
            for bad, shown in (([1, 2], "list [1, 2]"), ("ab", "str 'ab'"), ([("model", "gpt-4")], "list [('model', 'gpt-4')]"), (0, "int 0")):
                with self.assertRaises(TypeError) as caught:
                    run.meta(bad)  # type: ignore[arg-type]
                self.assertEqual(str(caught.exception), f"run.meta(values) must be a dict (or give keywords: run.meta(model=...)), got {shown}")
            for method in ("run", "start"):
                for bad, shown in (([1, 2], "list [1, 2]"), ("team=search", "str 'team=search'"), ({"team": 1}, "str 'team': int 1"), ({1: "a"}, "int 1: str 'a'")):
                    with self.assertRaises(TypeError) as caught:
                        getattr(self.rt, method)("demo-pipeline", labels=bad)
                    self.assertEqual(str(caught.exception), f"rt.{method}(labels=...) must be a dict of str keys to str values, got {shown}")
            with self.assertRaisesRegex(TypeError, r"^rt\.run\(labels=\.\.\.\) must be a dict"):
                run.child("kid", labels=[("team", "search")])  # type: ignore[arg-type]
            run.meta({"model": "gpt-4"}, temperature=0.5)
        self.assertEqual([r["name"] for r in self.rt.list_runs(limit=200)["runs"] if r["id"] not in before], ["not dicts"])
        self.assertEqual([e["type"] for e in self.rt.events(run.id)["events"]], ["meta", "run.succeeded"])
        self.assertEqual(self.rt.get_run(run.id)["snapshot"]["meta"], {"model": "gpt-4", "temperature": 0.5})

    def test_numbers_of_calls_flushes_and_track_of_the_wrong_type_or_range_are_refused_naming_the_argument(self) -> None:
        # Before: retries="2" raised "'<' not supported between instances of 'str' and 'int'"; 2.5, True and NaN were
        # taken as some number of retries; retry_delay="1" was taken as 1 s at the first retry, and "soon" failed there;
        # flush("5") and track(every="0.1") raised TypeErrors about operands, naming nothing.
        with self.rt.run("bad numbers") as run:
            for bad, error, message in (
                (lambda: run.call("judge", retries="2"), TypeError, "run.call(retries=...) must be a whole number, 0 or more, got str '2'"),
                (lambda: run.call("judge", retries=True), TypeError, "run.call(retries=...) must be a whole number, 0 or more, got bool True"),
                (lambda: run.call("judge", retries=2.5), ValueError, "run.call(retries=...) must be a whole number, 0 or more, got 2.5"),
                (lambda: run.call("judge", retries=float("nan")), ValueError, "run.call(retries=...) must be a whole number, 0 or more, got nan"),
                (lambda: run.call("judge", retries=-1), ValueError, "run.call(retries=...) must be a whole number, 0 or more, got -1"),
                (lambda: run.call("judge", retries=1, retry_delay="1"), TypeError, "run.call(retry_delay=...) must be a number of seconds, got str '1'"),
                (lambda: run.call("judge", retries=1, retry_delay=-1), ValueError, "run.call(retry_delay=...) must be a number of seconds, 0 or more and finite, got -1"),
                (lambda: run.flush("5"), TypeError, "run.flush(timeout=...) must be a number of seconds, got str '5'"),
                (lambda: run.flush(-1), ValueError, "run.flush(timeout=...) must be a number of seconds, 0 or more, got -1"),
                (lambda: runtrail.track([1, 2], run=run, every="0.1"), TypeError, "track(every=...) must be a number of seconds, got str '0.1'"),
                (lambda: runtrail.track([1, 2], run=run, every=float("nan")), ValueError, "track(every=...) must be a number of seconds, 0 or more, got nan"),
            ):
                with self.assertRaises(error) as caught:
                    bad()
                self.assertEqual(str(caught.exception), message)
            # A function's delay is checked when it answers: the call ends failed with why, not retried on a "1" taken as 1 s.
            with self.assertRaisesRegex(TypeError, r"^what run\.call's retry_delay returned for attempt 1 must be a number of seconds, got str '0'$"):
                run.call("judge", retries=1, retry_delay=lambda attempt: "0")(judge)(7)
            # Whole numbers as floats or numpy's ints are counts, as a phase's timeout_ms is; and inf waits as None does.
            self.assertEqual(run.call("judge", retries=Int64(1), retry_delay=Float32(0.0))(judge)(3), 0.1)
            self.assertEqual(run.call("judge", retries=2.0, retry_delay=0)(judge)(4), 4 / 30)
            run.flush(float("inf"))
        self.assertEqual(self.rt.get_run(run.id)["status"], "succeeded")
        calls = [(e["type"], e["data"].get("error")) for e in self.rt.events(run.id)["events"] if e["type"].startswith("call.")]
        self.assertEqual(
            calls,
            [
                ("call.started", None),
                ("call.failed", "ValueError: judge timed out on doc 7"),
                ("call.failed", "TypeError: what run.call's retry_delay returned for attempt 1 must be a number of seconds, got str '0'"),
                ("call.started", None),
                ("call.succeeded", None),
                ("call.started", None),
                ("call.succeeded", None),
            ],
        )

    def test_a_childs_lease_ttl_ms_of_0_is_refused_not_taken_as_its_parents(self) -> None:
        # Before: `lease_ttl_ms or parent's` made 0 the parent's lease, silently; rt.run(lease_ttl_ms=0) is refused.
        with self.rt.run("parent", lease_ttl_ms=5000) as run:
            with self.assertRaisesRegex(runtrail.RuntrailError, r"leaseTtlMs: Too small"):
                run.child("kid", lease_ttl_ms=0)
            with run.child("kid") as kid:
                self.assertEqual(kid.lease_ttl_ms, 5000)

    def test_names_event_types_and_negative_progress_the_server_would_refuse_fail_at_the_call_site(self) -> None:
        with self.rt.run("bad names") as run:
            run.progress(1, 10)
            for bad in (
                lambda: run.metric(3, 0.5),
                lambda: run.metric("", 0.5),
                lambda: run.counter("tokens\n", 1),
                lambda: run.phase("x" * 201).__enter__(),
                lambda: run.progress(-1, 10),
                lambda: run.event("mine", {}),
                lambda: run.call("judge", call_id="c" * 201)(lambda: 1)(),
            ):
                with self.assertRaises(ValueError):
                    bad()
            run.metric("loss", 0.5)
        final = self.rt.get_run(run.id)
        self.assertEqual(final["status"], "succeeded")
        self.assertEqual([e["type"] for e in self.rt.events(run.id)["events"]], ["progress", "metric", "run.succeeded"])

    def test_a_phase_timeout_the_server_would_refuse_fails_at_the_call_site_naming_it(self) -> None:
        # Sent as it was, a negative (or 0.5, or NaN) timeout_ms was refused by the server: the sender stopped, later events were lost.
        with self.rt.run("bad phase timeout") as run:
            for bad in (-5, 0, 0.5, float("nan"), "soon", True, 2**53):
                with self.assertRaisesRegex(ValueError, "timeout_ms") as raised:
                    run.phase("p", timeout_ms=bad).__enter__()
                self.assertIn(repr(bad), str(raised.exception))
            with run.phase("q", timeout_ms=60_000.0):
                run.metric("loss", 0.5)
        final = self.rt.get_run(run.id)
        self.assertEqual(final["status"], "succeeded")
        self.assertEqual(final["snapshot"]["phases"][0]["timeoutMs"], 60_000)
        self.assertEqual([e["type"] for e in self.rt.events(run.id)["events"]], ["phase", "metric", "phase", "run.succeeded"])

    def test_an_own_event_type_the_server_would_refuse_fails_at_the_call_site(self) -> None:
        # Sent, the server refused it: the sender stopped and every later event of the run was lost.
        with self.rt.run("bad own types") as run:
            with self.assertRaisesRegex(ValueError, r"event type must be at most 100 characters, got 202"):
                run.event("x." + "a" * 200, {})
            with self.assertRaisesRegex(ValueError, r"event type must not contain control characters"):
                run.event("x.a\nb", {})
            run.event("x." + "a" * 98, {})
            run.metric("loss", 0.5)
        self.assertEqual(self.rt.get_run(run.id)["status"], "succeeded")
        self.assertEqual([e["type"] for e in self.rt.events(run.id)["events"]], ["x." + "a" * 98, "metric", "run.succeeded"])

    def test_an_event_the_server_refuses_as_invalid_stores_the_rest_of_its_batch_and_ends_the_run_failed_naming_it(self) -> None:
        rt = runtrail.Client(server.url, flush_interval=60)
        with self.assertRaises(runtrail.RuntrailError) as caught:
            with rt.run("invalid event") as run:
                run.progress(1, 10)
                run.metric("loss", 0.5)
                run.event("progress", {"done": "half"})  # a known type with data its schema refuses, sent as is
                run.metric("loss", 0.25)
        err = caught.exception
        self.assertEqual(err.code, "invalid_request")
        self.assertIn("the server refused the progress event", err.message)
        self.assertIn("The events queued before it are stored; it and the 1 queued after it are not", err.message)
        final = self.rt.get_run(run.id)
        self.assertEqual(final["status"], "failed")
        self.assertIn("the server refused the progress event", final["error"]["message"])
        self.assertEqual([e["type"] for e in self.rt.events(run.id)["events"]], ["progress", "metric", "run.failed"])

    def test_calls_after_the_sender_stopped_raise_its_error_again_saying_it_is_the_earlier_one(self) -> None:
        # Before: the same exception object was raised at every call, read as a new failure each time.
        rt = runtrail.Client(server.url, flush_interval=60)
        with self.assertRaises(runtrail.RuntrailError) as left:
            with rt.run("stopped sender") as run:
                run.event("progress", {"done": "half"})
                with self.assertRaises(runtrail.RuntrailError) as first:
                    run.flush()
                with self.assertRaises(runtrail.RuntrailError) as queued:
                    run.metric("loss", 0.5)
                with self.assertRaises(runtrail.RuntrailError) as flushed:
                    run.flush()
        self.assertIn("the server refused the progress event", first.exception.message)
        self.assertNotIn("earlier", first.exception.message)
        for later in (queued.exception, flushed.exception, left.exception):
            self.assertEqual(later.code, "invalid_request")
            self.assertEqual(later.message, f"run {run.id}'s sender stopped earlier on this error, and has sent nothing since: {first.exception.message}")
            self.assertIs(later.__cause__, first.exception)
        final = self.rt.get_run(run.id)
        self.assertEqual(final["status"], "failed")
        self.assertEqual(final["error"]["message"], f"RuntrailError: {first.exception}")

    def test_a_server_error_body_becomes_runtrail_error_with_code_message_details(self) -> None:
        with self.assertRaises(runtrail.RuntrailError) as caught:
            self.rt.get_run("no-such-run")
        self.assertEqual(caught.exception.code, "run_not_found")
        self.assertEqual(caught.exception.status, 404)
        self.assertIn("no-such-run", caught.exception.message)
        with self.assertRaises(runtrail.RuntrailError) as caught:
            self.rt.run("", labels={"team": "search"})
        self.assertEqual(caught.exception.code, "invalid_request")
        self.assertIsNotNone(caught.exception.details)

    def test_nul_in_a_name_is_refused_with_the_servers_message_and_an_exception_holding_nul_still_fails_the_run(self) -> None:
        with self.assertRaises(runtrail.RuntrailError) as caught:
            self.rt.run("bad\x00name")
        self.assertEqual(caught.exception.code, "invalid_request")
        self.assertIn("name: must not contain NUL or other control characters", caught.exception.message)
        self.assertIn("name: must not contain NUL or other control characters", str(caught.exception))
        with self.assertRaises(ValueError):
            with self.rt.run("nul-in-exception") as run:
                raise ValueError("bad byte \x00 in line 3")
        final = self.rt.get_run(run.id)
        self.assertEqual(final["status"], "failed")
        self.assertEqual(final["error"]["message"], "ValueError: bad byte \\x00 in line 3")

    def test_a_server_that_is_down_at_the_start_is_a_clear_error_not_a_hang(self) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        rt = runtrail.Client(f"http://127.0.0.1:{port}", start_timeout=1.0)
        started = time.monotonic()
        with self.assertRaises(runtrail.RuntrailError) as caught:
            rt.run("nobody listens")
        self.assertLess(time.monotonic() - started, 10)
        self.assertEqual(caught.exception.code, "unavailable")
        self.assertIn(f"no runtrail server answers at http://127.0.0.1:{port}", caught.exception.message)
        self.assertIn("runtrail serve", caught.exception.message)

    def test_a_server_gone_for_longer_than_retry_for_is_an_error_naming_that_setting(self) -> None:
        # It said "(retried for 1 s)" and nothing of which setting a script should raise to ride out a longer outage.
        gone = Server().start()
        self.addCleanup(gone.close)
        rt = runtrail.Client(gone.url, retry_for=1, start_timeout=1)
        with self.assertRaises(runtrail.RuntrailError) as ended:
            with rt.run("server goes away") as run:
                run.progress(1, 2)
                run.flush()
                gone.kill()
                run.progress(2, 2)
        with self.assertRaises(runtrail.RuntrailError) as watched:
            next(rt.watch(run.id, after=1))
        for caught in (ended, watched):
            self.assertEqual(caught.exception.code, "unavailable")
            self.assertIn(f"no runtrail server answers at {gone.url}", caught.exception.message)
            self.assertIn("retried for 1 s", caught.exception.message)
            self.assertIn("Client(start_timeout=) bounds creates, reads and a watch until the server first answers", caught.exception.message)
            self.assertIn("Client(retry_for=) events, ends, downloads and a watch's later outages", caught.exception.message)

    def test_events_queued_before_the_process_exits_are_flushed_at_exit(self) -> None:
        script = textwrap.dedent(
            """
            import runtrail
            run = runtrail.Client().run("exits without flushing")
            for i in range(500):
                run.counter("n", 1)
            print(run.id)
            """
        )
        done = run_python(script, python_env(server.url))
        self.assertEqual(done.returncode, 0, done.stderr)
        run_id = done.stdout.strip()
        self.assertEqual(self.rt.get_run(run_id)["snapshot"]["counters"]["named"]["n"], 500)

    def test_current_run_adds_to_the_run_named_by_RUNTRAIL_RUN_ID_without_ending_it(self) -> None:
        owner_run = self.rt.run("wrapped")
        script = textwrap.dedent(
            """
            import runtrail
            run = runtrail.current_run()
            assert run is runtrail.current_run()
            with run:
                with run.call("inside exec"):
                    pass
                for _ in runtrail.track(["a", "b", "c"]):
                    pass
            """
        )
        done = run_python(script, python_env(server.url, RUNTRAIL_RUN_ID=owner_run.id))
        self.assertEqual(done.returncode, 0, done.stderr)
        stored = self.rt.get_run(owner_run.id)
        self.assertEqual(stored["status"], "running")
        self.assertEqual(stored["snapshot"]["counters"]["ok"], 1)
        self.assertEqual(stored["snapshot"]["progress"]["done"], 3)
        owner_run.succeed()
        outside = run_python("import runtrail; assert runtrail.current_run() is None", python_env(server.url))
        self.assertEqual(outside.returncode, 0, outside.stderr)

    def test_a_script_under_runtrail_exec_adds_to_the_exec_run_through_current_run(self) -> None:
        script = textwrap.dedent(
            """
            import runtrail
            run = runtrail.current_run()
            assert run is not None, "runtrail exec sets RUNTRAIL_RUN_ID"
            with run.phase("score"):
                for doc in runtrail.track(["a", "b", "c", "d"]):
                    with run.call(f"scoring {doc}"):
                        pass
            run.metric("score", 0.5)
            print(run.id)
            """
        )
        env = python_env(server.url)
        done = subprocess.run(
            ["node", str(CLI), "exec", "--server", server.url, "--quiet", "--name", "py-under-exec", "--", sys.executable, "-c", script],
            env=env, capture_output=True, text=True, timeout=60, cwd=str(ROOT),
        )
        self.assertEqual(done.returncode, 0, done.stderr)
        (run,) = self.rt.list_runs(name="py-under-exec")["runs"]
        self.assertIn(run["id"], done.stderr)
        self.assertEqual(run["status"], "succeeded")
        snapshot = run["snapshot"]
        self.assertEqual((snapshot["counters"]["ok"], snapshot["progress"]["done"]), (4, 4))
        self.assertEqual(snapshot["metrics"]["score"]["last"], 0.5)

    def test_artifacts_from_bytes_and_from_a_file_with_metadata_after_the_events_before_them(self) -> None:
        with self.rt.run("artifacts") as run:
            run.log("wrote the input")
            first = run.artifact("01_input.txt", b"What is runtrail?", metadata={"stage": 1})
            with tempfile.TemporaryDirectory() as folder:
                path = os.path.join(folder, "scores.csv")
                with open(path, "w") as file:
                    file.write("doc,score\ndoc_1,0.9\n")
                second = run.artifact("02_scores.csv", path)
            self.assertEqual(run.artifact("01_input.txt", b"What is runtrail?", metadata={"stage": 1})["sha256"], first["sha256"])
            with self.assertRaises(runtrail.RuntrailError) as caught:
                run.artifact("01_input.txt", b"other content")
            self.assertEqual(caught.exception.status, 409)
            replaced = run.artifact("01_input.txt", b"other content", replace=True)
        self.assertEqual((first["ordinal"], first["contentType"].split(";")[0], first["size"], first["metadata"]), (1, "text/plain", 17, {"stage": 1}))
        self.assertEqual((second["ordinal"], second["contentType"].split(";")[0], second["size"]), (2, "text/csv", 20))
        self.assertEqual(replaced["size"], 13)
        events = self.rt.events(run.id)["events"]
        self.assertEqual(events[0]["type"], "log")
        self.assertEqual([e["data"]["name"] for e in events if e["type"] == "artifact"][:2], ["01_input.txt", "02_scores.csv"])

    def test_an_artifact_over_the_servers_limit_is_refused_at_once_with_why_streamed_from_a_file_or_bytes(self) -> None:
        # Over the limit by more than a server reads of a refused body: urllib, sending it all before
        # reading, got a broken pipe and retried for retry_for, then said no server answers.
        small = Server(env={"RUNTRAIL_MAX_ARTIFACT_BYTES": "100000"}).start()
        try:
            rt = runtrail.Client(url=small.url, retry_for=60)
            with rt.run("too-big") as run, tempfile.TemporaryDirectory() as folder:
                path = os.path.join(folder, "checkpoint.bin")
                with open(path, "wb") as file:
                    file.truncate(20_000_000)
                for source in (path, b"\0" * 20_000_000):
                    with self.assertRaises(runtrail.RuntrailError) as caught:
                        run.artifact("checkpoint.bin", source)
                    self.assertEqual(caught.exception.code, "payload_too_large")
                    self.assertIn("the upload (20000000 bytes) is too large: an artifact may have at most 100000 bytes", str(caught.exception))
                # A type the name does not give is left to the server, which knows a PNG by its bytes.
                png = run.artifact("plot", b"\x89PNG\r\n\x1a\n" + bytes(64))
                self.assertEqual((png["ordinal"], png["contentType"]), (1, "image/png"))
            # Nothing of the refused ones was stored.
            self.assertEqual([e["data"]["name"] for e in rt.events(run.id)["events"] if e["type"] == "artifact"], ["plot"])
        finally:
            small.close()


if __name__ == "__main__":
    unittest.main()
