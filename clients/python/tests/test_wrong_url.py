"""A URL that is not a runtrail server's root: each mistake is said at once, naming the URL and what to give instead."""

from __future__ import annotations

import os
import threading
import time
import unittest
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from unittest import mock

import runtrail
from tests.support import Server

server = Server()
setUpModule, tearDownModule = server.start, server.close


class SomeOtherWebServer(BaseHTTPRequestHandler):
    """What a user may find on a port they guessed: a web page, 200, for every path and method."""

    def answer(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", "0")))
        data = b"<!doctype html><html><body>Welcome to nginx!</body></html>\n"
        self.send_response(200)
        self.send_header("content-type", "text/html")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = answer  # noqa: N815 - http.server's naming

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
        """Quiet."""


class WrongUrlTest(unittest.TestCase):
    def other_server(self) -> str:
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), SomeOtherWebServer)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        self.addCleanup(httpd.server_close)
        self.addCleanup(httpd.shutdown)
        return f"http://127.0.0.1:{httpd.server_address[1]}"

    def test_the_api_path_is_refused_at_once_naming_the_root(self) -> None:
        with self.assertRaises(ValueError) as caught:
            runtrail.Client(server.url + "/api/v1/")
        self.assertIn(f"give {server.url!r}", str(caught.exception))
        with mock.patch.dict(os.environ, {"RUNTRAIL_URL": server.url + "/proxy/api/v1"}):
            with self.assertRaises(ValueError) as caught:
                runtrail.Client()
        self.assertIn("(from RUNTRAIL_URL)", str(caught.exception))
        self.assertIn(f"give {server.url + '/proxy'!r}", str(caught.exception))
        self.assertEqual(runtrail.Client(server.url + "/api-proxy").url, server.url + "/api-proxy")

    def test_a_setting_of_the_wrong_type_or_range_is_refused_by_the_client_naming_it(self) -> None:
        # retry_for="5" made a run no end could reach (a TypeError at its end, the run orphaned at exit);
        # max_batch=0 killed the sender thread with an IndexError; timeout=-1 failed each request.
        for settings, error, message in (
            ({"retry_for": "5"}, TypeError, "Client(retry_for=...) is a number of seconds, got str '5'"),
            ({"start_timeout": True}, TypeError, "Client(start_timeout=...) is a number of seconds, got bool True"),
            ({"timeout": -1}, ValueError, "Client(timeout=...) is a number of seconds above 0, got -1"),
            ({"exit_timeout": float("nan")}, ValueError, "Client(exit_timeout=...) is a number of seconds 0 or more, got nan"),
            ({"max_batch": 0}, ValueError, "Client(max_batch=...) is an int above 0, got 0"),
            ({"max_queued": 1.5}, TypeError, "Client(max_queued=...) is an int, got float 1.5"),
            ({"url": 4310}, TypeError, "Client(url=...) is a str, got int 4310"),
            # Before: OverflowError "int too large to convert to float", naming no setting.
            ({"retry_for": 10**400}, ValueError, "Client(retry_for=...) is a number of seconds within a float's range (about 1.8e308), got an int of about 401 digits"),
            ({"token": 5}, TypeError, "Client(token=...) is a str, got int 5"),
        ):
            with self.subTest(settings=settings):
                with self.assertRaises(error) as caught:
                    runtrail.Client(**{"url": server.url, **settings})
                self.assertEqual(str(caught.exception), message)
        # The edges are settings too: no retries, no wait at exit, one event a batch.
        self.assertIsInstance(runtrail.Client(server.url, retry_for=0, exit_timeout=0, max_batch=1).list_runs(limit=1)["runs"], list)
        # A count past a float's range is only a bound never reached.
        self.assertEqual(runtrail.Client(server.url, max_queued=10**400).max_queued, 10**400)

    def test_a_runs_page_url_says_to_give_the_servers_root(self) -> None:
        rt = runtrail.Client(server.url + "/runs/some-run")
        with self.assertRaises(runtrail.RuntrailError) as caught:
            rt.list_runs()
        self.assertEqual(caught.exception.code, "route_not_found")
        self.assertIn(f"this client's URL is {server.url}/runs/some-run: give the server's root", str(caught.exception))

    def test_a_web_server_that_is_not_runtrail_is_named_not_a_json_traceback(self) -> None:
        rt = runtrail.Client(self.other_server())
        for call in (lambda: rt.get_run("r1"), lambda: rt.run("eval"), lambda: rt.start("demo-pipeline")):
            with self.assertRaises(runtrail.RuntrailError) as caught:
                call()
            self.assertEqual(caught.exception.code, "invalid_response")
            self.assertIn("answered 200 with text/html, not JSON: is", str(caught.exception))
            self.assertIn("a runtrail server?", str(caught.exception))

    def test_python_http_server_refusing_a_post_is_named_another_server_not_unavailable(self) -> None:
        class Quiet(SimpleHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
                """Quiet."""

        # `python3 -m http.server` on the port a user guessed: it answers every POST 501 Unsupported method.
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        self.addCleanup(httpd.server_close)
        self.addCleanup(httpd.shutdown)
        rt = runtrail.Client(f"http://127.0.0.1:{httpd.server_address[1]}")
        with self.assertRaises(runtrail.RuntrailError) as caught:
            rt.run("eval")
        self.assertEqual(caught.exception.code, "invalid_request")
        self.assertIn("answered 501 without a runtrail error: is the URL a runtrail server's root?", str(caught.exception))

    def test_watching_on_a_web_server_that_is_not_runtrail_fails_at_once_not_reopening_forever(self) -> None:
        rt = runtrail.Client(self.other_server())
        began = time.monotonic()
        with self.assertRaises(runtrail.RuntrailError) as caught:
            # The timeout bounds the test: a watch that reopens the page forever would end in TimeoutError instead.
            for _ in rt.watch("r1", timeout=5):
                pass
        self.assertEqual(caught.exception.code, "invalid_response")
        self.assertIn("not an event stream: is", str(caught.exception))
        self.assertLess(time.monotonic() - began, 2)

    def test_https_to_a_plain_http_server_is_said_at_once_not_retried_as_no_answer(self) -> None:
        rt = runtrail.Client(server.url.replace("http://", "https://"), start_timeout=5)
        for call in (lambda: rt.get_run("r1"), lambda: list(rt.watch("r1"))):
            began = time.monotonic()
            with self.assertRaises(runtrail.RuntrailError) as caught:
                call()
            self.assertLess(time.monotonic() - began, 2, "a TLS refusal is not retried for start_timeout")
            self.assertIn("TLS with https://", str(caught.exception))
            self.assertIn("is the server serving https on that port?", str(caught.exception))


if __name__ == "__main__":
    unittest.main()
