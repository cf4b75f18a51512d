"""Retries and headers at the HTTP level: against a local HTTP server that answers what a busy runtrail answers, and a real rate-limited one."""

from __future__ import annotations

import json
import os
import threading
import time
import traceback
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List, Tuple
from unittest import mock

import runtrail
from tests.support import Server


class BusyThenReady(BaseHTTPRequestHandler):
    """503 unavailable with Retry-After for the first ``busy`` requests, then a run."""

    busy = 2
    seen: List[Tuple[float, Dict[str, str]]] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        type(self).seen.append((time.monotonic(), {k.lower(): v for k, v in self.headers.items()}))
        if len(self.seen) <= self.busy:
            body = {"error": {"code": "unavailable", "message": "the database is busy; retry", "details": None}}
            self.send_response(503)
            self.send_header("retry-after", "1")
        else:
            body = {"id": "r1", "name": "n", "status": "running"}
            self.send_response(200)
        data = json.dumps(body).encode()
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
        """Quiet: the test reads what it needs from ``seen``."""


class RateLimitedCreates(BusyThenReady):
    """A create answered 429 rate_limited (Retry-After: 1) the first ``busy`` times, as createRunsPerSecondPerIp does."""

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        self.rfile.read(int(self.headers.get("content-length", "0")))
        type(self).seen.append((time.monotonic(), {k.lower(): v for k, v in self.headers.items()}))
        if len(self.seen) <= self.busy:
            body: Dict[str, Any] = {"error": {"code": "rate_limited", "message": "creating runs too fast", "details": None}}
            self.send_response(429)
            self.send_header("retry-after", "1")
        else:
            body = {"id": "r1", "name": "n", "status": "queued"}
            self.send_response(201)
        data = json.dumps(body).encode()
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class HttpTest(unittest.TestCase):
    def setUp(self) -> None:
        BusyThenReady.seen = []
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), BusyThenReady)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.addCleanup(self.httpd.server_close)
        self.addCleanup(self.httpd.shutdown)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def test_a_503_is_retried_after_its_retry_after_and_the_token_is_sent_as_a_bearer(self) -> None:
        with mock.patch.dict(os.environ, {"RUNTRAIL_TOKEN": "s3cret", "RUNTRAIL_URL": self.url}):
            rt = runtrail.Client(start_timeout=10)
        self.assertEqual(rt.get_run("r1")["id"], "r1")
        times = [t for t, _ in BusyThenReady.seen]
        self.assertEqual(len(times), 3)
        self.assertGreaterEqual(times[1] - times[0], 0.95)
        self.assertGreaterEqual(times[2] - times[1], 0.95)
        self.assertTrue(all(h["authorization"] == "Bearer s3cret" for _, h in BusyThenReady.seen))

    def test_a_server_busy_for_longer_than_the_bound_raises_its_error(self) -> None:
        BusyThenReady.busy = 100
        self.addCleanup(setattr, BusyThenReady, "busy", 2)
        rt = runtrail.Client(self.url, start_timeout=1.5)
        with self.assertRaises(runtrail.RuntrailError) as caught:
            rt.get_run("r1")
        self.assertEqual((caught.exception.code, caught.exception.status), ("unavailable", 503))
        self.assertTrue(caught.exception.message.startswith("the database is busy; retry"), caught.exception.message)

    def test_giving_up_on_a_busy_server_says_it_retried_and_which_setting_bounds_it(self) -> None:
        BusyThenReady.busy = 100
        self.addCleanup(setattr, BusyThenReady, "busy", 2)
        rt = runtrail.Client(self.url, start_timeout=1.5)
        with self.assertRaises(runtrail.RuntrailError) as caught:
            rt.get_run("r1")
        message = str(caught.exception)
        self.assertIn("the database is busy; retry", message)
        self.assertIn("runtrail-python retried it 1 time in", message)
        self.assertIn("the server asked to wait 1 s more (Retry-After), past this call's bound of 1.5 s", message)
        self.assertIn("Client(start_timeout=)", message)
        self.assertIsNone(caught.exception.__cause__, "the server's answer is raised as itself, not chained to itself")

    def test_a_rate_limited_create_is_retried_only_under_one_idempotency_key(self) -> None:
        self.httpd.RequestHandlerClass = RateLimitedCreates
        rt = runtrail.Client(self.url, start_timeout=10)
        self.assertEqual(rt.start("handler")["id"], "r1")
        self.assertEqual(rt.start("handler", idempotency_key="mine")["id"], "r1")
        keys = [h.get("idempotency-key") for _, h in BusyThenReady.seen]
        self.assertEqual(len(keys), 4)  # 429, 429, created; then the keyed one at once
        self.assertTrue(keys[0] and keys[0] == keys[1] == keys[2], keys)
        self.assertEqual(keys[3], "mine")

    def test_no_server_is_one_short_traceback_naming_the_cause_not_urllib_internals(self) -> None:
        rt = runtrail.Client("http://127.0.0.1:1", start_timeout=0.3)
        for call in (lambda: rt.get_run("r1"), lambda: list(rt.watch("r1"))):
            with self.assertRaises(runtrail.RuntrailError) as caught:
                call()
            err = caught.exception
            self.assertEqual(err.code, "unavailable")
            self.assertIn("Connection refused", str(err))
            printed = "".join(traceback.format_exception(type(err), err, err.__traceback__))
            self.assertNotIn("urllib", printed)
            self.assertNotIn("During handling", printed)


class CreateRateLimitedTest(unittest.TestCase):
    """A real server that lets one client address create 1 run a second (bursts of 2): creates beyond are 429 + Retry-After."""

    def setUp(self) -> None:
        self.server = Server(env={"RUNTRAIL_CREATE_RUNS_PER_SECOND_PER_IP": "1"}).start()
        self.addCleanup(self.server.close)

    def test_creates_are_retried_after_retry_after_with_one_key_so_none_is_doubled(self) -> None:
        rt = runtrail.Client(self.server.url, start_timeout=15)
        ids = []
        for i in range(4):
            with rt.run(f"rate-limited-{i}") as run:
                ids.append(run.id)
        listed = rt.list_runs(limit=100)["runs"]
        self.assertEqual(sorted(r["id"] for r in listed), sorted(ids), "each retried create made one run")

    def test_a_create_refused_past_start_timeout_says_it_was_retried_and_what_bounds_it(self) -> None:
        rt = runtrail.Client(self.server.url, start_timeout=0.5)
        with self.assertRaises(runtrail.RuntrailError) as caught:
            for i in range(10):
                with rt.run(f"burst-{i}"):
                    pass
        err = caught.exception
        self.assertEqual((err.code, err.status), ("rate_limited", 429))
        self.assertIn("createRunsPerSecondPerIp", err.message)
        self.assertIn("runtrail-python retried it", err.message)
        self.assertIn("Client(start_timeout=)", err.message)


class RateLimitedTest(unittest.TestCase):
    """A real server that takes 1,000 events a second per run (bursts of 5,000) from a script that sends faster."""

    def setUp(self) -> None:
        self.server = Server(env={"RUNTRAIL_APPEND_EVENTS_PER_SECOND": "1000"}).start()
        self.addCleanup(self.server.close)

    def test_a_tight_metric_loop_over_the_servers_rate_is_slowed_by_its_429s_and_loses_nothing(self) -> None:
        rt = runtrail.Client(self.server.url)
        with rt.run("faster than the server takes") as run:
            for step in range(7000):
                run.metric("loss", 1 / (step + 1), step=step)
        final = rt.get_run(run.id)
        self.assertEqual(final["status"], "succeeded")
        self.assertEqual(final["snapshot"]["metrics"]["loss"]["count"], 7000)


if __name__ == "__main__":
    unittest.main()
