"""A server with auth on: the token from RUNTRAIL_TOKEN (or token=) goes with every request, the SSE watch included."""

from __future__ import annotations

import os
import unittest
from unittest import mock

import runtrail
from tests.support import Server

ADMIN_TOKEN = "py-client-test-admin-token-0123456789"
server = Server(env={"RUNTRAIL_ADMIN_TOKEN": ADMIN_TOKEN})
# One server for the module's tests: started before the first, closed (its data dir removed) after the last.
setUpModule, tearDownModule = server.start, server.close


class AuthTest(unittest.TestCase):
    def test_without_a_token_the_server_says_unauthorized_at_once(self) -> None:
        with mock.patch.dict(os.environ, {"RUNTRAIL_TOKEN": ""}):
            rt = runtrail.Client(server.url, start_timeout=30)
        with self.assertRaises(runtrail.RuntrailError) as caught:
            rt.run("no token")
        self.assertEqual((caught.exception.code, caught.exception.status), ("unauthorized", 401))

    def test_a_watch_without_a_token_says_how_to_give_one_and_a_wrong_token_is_not_told_to(self) -> None:
        with mock.patch.dict(os.environ, {"RUNTRAIL_TOKEN": ""}):
            with runtrail.Client(server.url, token=ADMIN_TOKEN).run("watched") as run:
                pass
            for rt, hinted in ((runtrail.Client(server.url), True), (runtrail.Client(server.url, token="not-the-token-0123456789"), False)):
                with self.assertRaises(runtrail.RuntrailError) as caught:
                    next(rt.watch(run.id))
                self.assertEqual(caught.exception.code, "unauthorized")
                self.assertEqual("RUNTRAIL_TOKEN" in str(caught.exception), hinted, str(caught.exception))
                self.assertEqual("RUNTRAIL_TOKEN" in caught.exception.message, hinted)

    def test_the_token_from_RUNTRAIL_TOKEN_produces_and_watches_a_run(self) -> None:
        with mock.patch.dict(os.environ, {"RUNTRAIL_TOKEN": ADMIN_TOKEN}):
            rt = runtrail.Client(server.url)
        with rt.run("with a token") as run:
            for i in range(5):
                with run.call(f"doc {i}"):
                    pass
                run.progress(i + 1, 5)
        watched = list(rt.watch(run.id))
        self.assertEqual([e["seq"] for e in watched], list(range(1, 17)))
        self.assertEqual(watched[-1]["type"], "run.succeeded")
        self.assertEqual(rt.get_run(run.id)["snapshot"]["counters"]["ok"], 5)


if __name__ == "__main__":
    unittest.main()
