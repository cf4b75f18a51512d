"""Retries and headers at the HTTP level: against a local HTTP server that answers what a busy runtrail answers, and a real rate-limited one."""

from __future__ import annotations

import json
import os
import threading
import time
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
        self.assertEqual(caught.exception.message, "the database is busy; retry")



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
