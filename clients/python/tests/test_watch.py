"""rt.watch and rt.get_run on a finished run; the client's routes are the server's."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
import unittest
import urllib.request
from typing import Any, Callable, Dict, List, Tuple

import runtrail
import runtrail.watch
from runtrail._routes import IDEMPOTENCY_KEY, ROUTES, SENT_HEADERS
from tests.support import ROOT, Server

# Keepalives every 100 ms, not 15 s, so a test sees a watch's timeout hold while they flow.
server = Server(env={"RUNTRAIL_STREAM_PING_INTERVAL_MS": "100"})
# One server for the module's tests: started before the first, closed (its data dir removed) after the last.
setUpModule, tearDownModule = server.start, server.close


class WatchTest(unittest.TestCase):
    def test_watch_reads_a_finished_run_from_seq_1_to_its_end(self) -> None:
        rt = runtrail.Client(server.url)
        with rt.run("finished") as run:
            for i in range(300):
                with run.call(f"doc {i}"):
                    pass
                run.progress(i + 1, 300)
        stored = rt.events(run.id, limit=5000)["events"]
        watched = list(rt.watch(run.id))
        self.assertEqual([e["seq"] for e in watched], list(range(1, len(stored) + 1)))
        self.assertEqual(watched, stored)
        self.assertEqual(watched[-1]["type"], "run.succeeded")
        self.assertEqual(set(watched[0]), {"runId", "seq", "type", "ts", "data", "id"})
        self.assertEqual([e["seq"] for e in rt.watch(run.id, after=895)], [896, 897, 898, 899, 900, 901])
        self.assertEqual(list(rt.watch(run.id, after=len(stored))), [])
        self.assertEqual(rt.get_run(run.id)["snapshot"]["counters"]["ok"], 300)

    def test_watching_an_unknown_run_is_an_error_not_silence(self) -> None:
        with self.assertRaises(runtrail.RuntrailError) as caught:
            next(runtrail.Client(server.url).watch("no-such-run"))
        self.assertEqual(caught.exception.code, "run_not_found")

    def test_a_run_or_a_handle_given_for_a_run_id_is_a_type_error_saying_what_to_pass(self) -> None:
        # rt.wait(rt.start(...)) asked for run "{'id': ...}" and got run_not_found, hiding the slip.
        rt = runtrail.Client(server.url)
        with rt.run("given whole") as handle:
            pass
        record = rt.get_run(handle.id)
        for call, hint in (
            (lambda: rt.wait(record), r'a run id is a str, got dict .*: pass run\["id"\]'),  # type: ignore[arg-type]
            (lambda: rt.get_run(handle), r"a run id is a str, got Run .*: pass run\.id"),  # type: ignore[arg-type]
            (lambda: next(rt.watch(record)), r'pass run\["id"\]'),  # type: ignore[arg-type]
            (lambda: rt.events(None), r"a run id is a str, got NoneType None$"),  # type: ignore[arg-type]
            (lambda: rt.download_artifact(handle.id, 1), r"an artifact name is a str, got int 1$"),  # type: ignore[arg-type]
        ):
            with self.subTest(hint=hint), self.assertRaisesRegex(TypeError, hint):
                call()

    def test_watching_a_url_where_no_server_answers_fails_after_start_timeout_not_retry_for(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]  # closed again below: nobody listens there
        rt = runtrail.Client(f"http://127.0.0.1:{port}", start_timeout=0.5, retry_for=300)
        outcome, took = _raised_in_a_thread(lambda: next(rt.watch("any-run")), 30)
        self.assertLess(took, 30, "the watch was still retrying after 30 s (retry_for is 300 s)")
        self.assertIsInstance(outcome[0], runtrail.RuntrailError)
        self.assertEqual(outcome[0].code, "unavailable")  # type: ignore[attr-defined]
        self.assertIn(f"127.0.0.1:{port}", str(outcome[0]))

    def test_a_watch_with_a_timeout_yields_what_came_then_raises_TimeoutError_on_a_run_still_going(self) -> None:
        rt = runtrail.Client(server.url)
        with rt.run("still going") as run:
            run.progress(1, 10)
            run.flush()
            seen: List[int] = []
            started = time.monotonic()
            with self.assertRaises(TimeoutError) as caught:
                for event in rt.watch(run.id, timeout=0.5):
                    seen.append(event["seq"])
            took = time.monotonic() - started
            self.assertEqual(seen, [e["seq"] for e in rt.events(run.id)["events"]])
            self.assertNotEqual(seen, [])
            self.assertIn(run.id, str(caught.exception))
            self.assertGreaterEqual(took, 0.5)
            self.assertLess(took, 10)
            with self.assertRaises(TimeoutError):
                rt.wait(run.id, timeout=0.2)
        self.assertEqual(rt.get_run(run.id)["status"], "succeeded")

    def test_keepalives_do_not_keep_a_watch_past_its_timeout(self) -> None:
        rt = runtrail.Client(server.url)
        with rt.run("silent") as run:
            outcome, took = _raised_in_a_thread(lambda: list(runtrail.watch.watch(rt, run.id, idle_timeout=0.5, timeout=1.5)), 15)
            self.assertLess(took, 15, "the watch outlived its timeout while keepalives came")
            self.assertIsInstance(outcome[0], TimeoutError)
            self.assertGreaterEqual(took, 1.5)
            self.assertLess(took, 4)  # the deadline, give or take a reopen; not the run's end

    def test_wait_blocks_until_the_run_ends_and_returns_its_final_state(self) -> None:
        rt = runtrail.Client(server.url)
        outcome: List[Dict[str, Any]] = []
        with rt.run("waited for") as run:
            waiter = threading.Thread(target=lambda: outcome.append(rt.wait(run.id, timeout=60)), daemon=True)
            waiter.start()
            for i in range(5):
                with run.call(f"doc {i}"):
                    pass
            run.output({"judged": 5})
            run.flush()
            self.assertTrue(waiter.is_alive(), "wait returned before the run ended")
        waiter.join(30)
        self.assertFalse(waiter.is_alive())
        final = outcome[0]
        self.assertEqual((final["status"], final["output"], final["snapshot"]["counters"]["ok"]), ("succeeded", {"judged": 5}, 5))
        self.assertEqual(rt.wait(run.id), final)
        with self.assertRaises(runtrail.RuntrailError) as caught:
            rt.wait("no-such-run")
        self.assertEqual(caught.exception.code, "run_not_found")

    def test_a_timeout_of_the_wrong_type_or_range_is_refused_naming_it_before_anything_is_asked(self) -> None:
        # Before: wait(timeout=-1) asked for the run, then raised TimeoutError "did not end within -1 s" (or, for a run
        # not there, run_not_found); timeout="5" raised "unsupported operand type(s) for +: 'float' and 'str'".
        rt = runtrail.Client(server.url)
        for call, message in (
            (lambda: rt.wait("no-such-run", timeout=-1), "rt.wait(timeout=...) must be a number of seconds, 0 or more, got -1"),
            (lambda: rt.wait("no-such-run", timeout=float("nan")), "rt.wait(timeout=...) must be a number of seconds, 0 or more, got nan"),
            (lambda: rt.wait("no-such-run", timeout="5"), "rt.wait(timeout=...) must be a number of seconds, got str '5'"),
            (lambda: rt.watch("no-such-run", timeout=-1), "rt.watch(timeout=...) must be a number of seconds, 0 or more, got -1"),
            (lambda: next(runtrail.watch.watch(rt, "no-such-run", timeout="5")), "watch(timeout=...) must be a number of seconds, got str '5'"),
            (lambda: next(runtrail.watch.watch(rt, "no-such-run", idle_timeout=0)), "watch(idle_timeout=...) must be a number of seconds above 0: a connection is reopened once silent that long"),
        ):
            with self.assertRaises((TypeError, ValueError)) as caught:
                call()
            self.assertEqual(str(caught.exception), message)
        with rt.run("ended") as run:
            pass
        # 0 asks once; inf (or more than a thread can wait) is no bound, as None.
        for timeout in (0, float("inf"), 10**400):
            self.assertEqual(rt.wait(run.id, timeout=timeout)["status"], "succeeded")

    def test_start_queues_a_handler_run_that_wait_follows_to_its_end(self) -> None:
        rt = runtrail.Client(server.url)
        job = {"docs": 2, "latencyMs": 1, "failureRate": 0}
        started = rt.start("demo-pipeline", job, {"team": "search"}, idempotency_key="nightly-2026-11-28")
        self.assertEqual((started["name"], started["status"], started["input"], started["labels"]), ("demo-pipeline", "queued", job, {"team": "search"}))
        # Asked again with the key (a retried notebook cell): the same run, not a second.
        self.assertEqual(rt.start("demo-pipeline", job, idempotency_key="nightly-2026-11-28")["id"], started["id"])
        final = rt.wait(started["id"], timeout=60)
        self.assertEqual(final["status"], "succeeded")
        self.assertEqual(final["snapshot"]["counters"]["ok"], 4)  # 2 documents, each judged by 2 models

    def test_start_names_what_is_wrong_and_starts_nothing(self) -> None:
        rt = runtrail.Client(server.url)
        before = len(rt.list_runs(name="demo-pipeline", limit=200)["runs"])
        with self.assertRaises(runtrail.RuntrailError) as unknown:
            rt.start("no-such-handler")
        self.assertEqual(unknown.exception.code, "handler_not_found")
        self.assertIn("known handlers: demo-pipeline", str(unknown.exception))
        with self.assertRaises(runtrail.RuntrailError) as refused:
            rt.start("demo-pipeline", {"docs": "many"})
        self.assertEqual(refused.exception.code, "invalid_request")
        self.assertIn("input.docs", str(refused.exception))
        with self.assertRaisesRegex(ValueError, r"rt.start\('demo-pipeline'\): input and labels must be JSON"):
            rt.start("demo-pipeline", {"docs": float("nan")})
        self.assertEqual(len(rt.list_runs(name="demo-pipeline", limit=200)["runs"]), before)

    def test_events_pages_through_a_run_and_bad_arguments_are_refused_naming_what_is_wrong(self) -> None:
        rt = runtrail.Client(server.url)
        with rt.run("paged") as run:
            for i in range(10):
                run.progress(i + 1, 10)
        pages, after = [], 0
        while True:
            page = rt.events(run.id, after=after, limit=4)
            if not page["events"]:
                break
            pages.append([e["seq"] for e in page["events"]])
            after = page["events"][-1]["seq"]
        self.assertEqual(sum(pages, []), list(range(1, page["seq"] + 1)))
        self.assertEqual([len(p) for p in pages[:-1]], [4] * (len(pages) - 1))
        for bad in ("3", None, 2.0):
            with self.assertRaises(TypeError) as caught:
                rt.events(run.id, after=bad)  # type: ignore[arg-type]
            self.assertIn("after", str(caught.exception))
            with self.assertRaises(TypeError):
                rt.watch(run.id, after=bad)  # type: ignore[arg-type]
        with self.assertRaises(ValueError):
            rt.watch(run.id, after=-1)

    def test_list_runs_refuses_a_list_filter_instead_of_matching_nothing(self) -> None:
        rt = runtrail.Client(server.url)
        with rt.run("parent") as run:
            with run.child("kid"):
                pass
        self.assertEqual(len(rt.list_runs(parentIds=f"{run.id},other")["runs"]), 1)
        with self.assertRaises(TypeError) as caught:
            rt.list_runs(parentIds=[run.id, "other"])
        self.assertIn("parentIds", str(caught.exception))
        self.assertIn("'id1,id2'", str(caught.exception))
        with self.assertRaises(runtrail.RuntrailError) as refused:
            rt.list_runs(stauts="running")
        self.assertEqual(refused.exception.code, "invalid_request")
        self.assertIn("stauts", refused.exception.message)


class ContractTest(unittest.TestCase):
    def test_every_route_the_client_uses_is_in_the_protocol_route_table(self) -> None:
        source = (ROOT / "packages" / "protocol" / "src" / "routes.ts").read_text()
        prefix = re.search(r"API_PREFIX = '([^']+)'", source)
        assert prefix is not None
        served = {
            name: (method, path.replace("${API_PREFIX}", prefix.group(1)))
            for name, method, path in re.findall(r"(\w+): \{\s*method: '(\w+)',\s*path: [`']([^`']+)[`']", source)
        }
        self.assertIn("getRun", served)
        for name, route in ROUTES.items():
            self.assertEqual(served.get(name), route, f"route {name} of the Python client")

    def test_every_header_the_client_sends_on_a_route_is_one_the_servers_document_declares_on_it(self) -> None:
        # A header the route table does not declare is one a client made from the document never sends, and a browser's preflight refuses.
        with urllib.request.urlopen(f"{server.url}/api/v1/openapi.json", timeout=10) as response:
            document = json.load(response)
        declared = {
            operation["operationId"]: {p["name"] for p in operation.get("parameters", []) if p["in"] == "header"}
            for methods in document["paths"].values()
            for operation in methods.values()
        }
        self.assertIn(IDEMPOTENCY_KEY, SENT_HEADERS["createRun"])
        for route, headers in SENT_HEADERS.items():
            for header in headers:
                self.assertIn(header, declared[route], f"header {header} the Python client sends on {route}")


if __name__ == "__main__":
    unittest.main()


def _raised_in_a_thread(call: Callable[[], object], wait: float) -> Tuple[List[BaseException], float]:
    """Run ``call`` in a daemon thread for up to ``wait`` seconds: what it raised (empty if nothing), and how long it took."""
    outcome: List[BaseException] = []

    def run() -> None:
        try:
            call()
        except BaseException as err:  # noqa: BLE001 - handed to the test thread to assert on
            outcome.append(err)

    started = time.monotonic()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(wait)
    return outcome, time.monotonic() - started
