"""Event sizes against a real server: batches capped by bytes, data over the limit refused at the call site, a server with smaller limits."""

from __future__ import annotations

import re
import unittest
import warnings
from typing import Any, Callable, Dict, List, Tuple

import runtrail
from runtrail import _limits
from runtrail.run import ERROR_KINDS, KNOWN_EVENT_TYPES
from tests.support import ROOT, Server

server = Server()
# Takes requests of at most 100,000 bytes: less than the client's batches and some of its events.
small = Server(env={"RUNTRAIL_BODY_LIMIT_BYTES": "100000"})


def setUpModule() -> None:
    unittest.addModuleCleanup(server.close)
    server.start()
    unittest.addModuleCleanup(small.close)
    small.start()


def chunks(events: List[Dict[str, Any]]) -> List[int]:
    return [e["data"]["i"] for e in events if e["type"] == "x.chunk"]


class BatchBytesTest(unittest.TestCase):
    def test_sixty_events_of_200_kb_queued_at_once_are_stored_and_the_run_succeeds(self) -> None:
        # Sent by size only (or at the end of the block), never by time: 12 MB wait at once.
        rt = runtrail.Client(server.url, flush_interval=60)
        with rt.run("big-events") as run:
            for i in range(60):
                run.event("x.chunk", {"i": i, "s": "a" * 200_000})
        final = rt.get_run(run.id)
        self.assertEqual((final["status"], final["seq"]), ("succeeded", 61))
        # 12 MB of events: more than one page holds (the server's readPageBytes, 8 MiB), read page by page.
        stored: List[Dict[str, Any]] = []
        while not stored or stored[-1]["seq"] < final["seq"]:
            page = rt.events(run.id, after=stored[-1]["seq"] if stored else 0)["events"]
            self.assertNotEqual(page, [])
            stored.extend(page)
        self.assertEqual(chunks(stored), list(range(60)))

    def test_data_over_the_limit_is_refused_at_the_call_site_naming_event_size_and_limit_and_the_run_goes_on(self) -> None:
        rt = runtrail.Client(server.url)
        with rt.run("one-big-event") as run:
            run.progress(1, 10)
            with self.assertRaises(runtrail.RuntrailError) as caught:
                run.event("x.big", {"s": "a" * 2_000_000})
            self.assertEqual(caught.exception.code, "payload_too_large")
            self.assertIn("the data of a x.big event is 2000008 bytes as JSON, over the limit of 1048576 bytes", str(caught.exception))
            with self.assertRaisesRegex(runtrail.RuntrailError, "meta event is 70012 bytes as JSON, over the limit of 65536 bytes"):
                run.meta(notes="n" * 70_000)
            # Counted as the server counts: UTF-8, not the escapes the request carries them as.
            with self.assertRaisesRegex(runtrail.RuntrailError, "x.wide event is 1200008 bytes"):
                run.event("x.wide", {"s": "é" * 600_000})
            run.event("x.accented", {"s": "é" * 400_000})
            run.progress(2, 10)
        final = rt.get_run(run.id)
        self.assertEqual(final["status"], "succeeded")
        self.assertEqual(final["snapshot"]["progress"]["done"], 2)
        self.assertEqual([e["type"] for e in rt.events(run.id)["events"]], ["progress", "x.accented", "progress", "run.succeeded"])


class SmallerServerTest(unittest.TestCase):
    """A server whose limits are smaller than the client assumes refuses batches (413) the client did not expect it to."""

    def setUp(self) -> None:
        self.rt = runtrail.Client(small.url, flush_interval=60)

    def test_a_batch_the_server_refuses_as_too_large_is_sent_in_smaller_ones_and_every_event_is_stored(self) -> None:
        with self.rt.run("small-server") as run:
            for i in range(200):
                run.event("x.chunk", {"i": i, "s": "a" * 10_000})
        self.assertEqual(self.rt.get_run(run.id)["status"], "succeeded")
        self.assertEqual(chunks(self.rt.events(run.id)["events"]), list(range(200)))

    def test_an_event_the_server_refuses_alone_ends_the_run_failed_naming_it_and_the_events_before_it_are_stored(self) -> None:
        run, err = self.refused_run("refused-event", lambda run: run.progress(2, 10))
        message = err.message
        self.assertEqual(err.code, "payload_too_large")
        self.assertIn("the server refused the x.big event", message)
        self.assertIn("The events queued before it are stored; it and the 1 queued after it are not", message)
        self.assertIn("request body is larger than the limit of this server", message)
        final = self.rt.get_run(run.id)
        self.assertEqual(final["status"], "failed")
        self.assertIn("the server refused the x.big event", final["error"]["message"])
        self.assertEqual([e["type"] for e in self.rt.events(run.id)["events"]], ["progress", "run.failed"])

    def test_a_flush_that_raises_why_leaves_the_block_and_the_run_ends_failed_with_it(self) -> None:
        run, err = self.refused_run("refused-at-flush", lambda run: run.flush())
        self.assertIn("the server refused the x.big event", err.message)
        final = self.rt.get_run(run.id)
        self.assertEqual(final["status"], "failed")
        self.assertEqual(final["error"]["message"], f"RuntrailError: {err}")

    def refused_run(self, name: str, then: Callable[[Any], None]) -> Tuple[Any, runtrail.RuntrailError]:
        """A run that records progress, then an event this server refuses, then `then`: the error its block raised, and no warning."""
        with warnings.catch_warnings(record=True) as warned:
            warnings.simplefilter("always")
            with self.assertRaises(runtrail.RuntrailError) as caught:
                with self.rt.run(name) as run:
                    run.progress(1, 10)
                    run.event("x.big", {"s": "a" * 200_000})
                    then(run)
        self.assertEqual([str(w.message) for w in warned], [])
        return run, caught.exception


class ContractTest(unittest.TestCase):
    def test_the_event_and_message_size_limits_are_the_protocols(self) -> None:
        source = (ROOT / "packages" / "protocol" / "src" / "limits.ts").read_text()
        for name in ("MAX_EVENT_DATA_BYTES", "MAX_META_BYTES", "MAX_ERROR_MESSAGE_CHARS", "MAX_LOG_MESSAGE_CHARS", "MAX_LABEL_CHARS", "MAX_EVENT_TYPE_CHARS"):
            match = re.search(rf"export const {name} = ([\d_ *]+);", source)
            assert match is not None, f"{name} is not in limits.ts"
            value = 1
            for factor in match.group(1).split("*"):
                value *= int(factor.strip().replace("_", ""))
            self.assertEqual(getattr(_limits, name), value, name)

    def test_the_event_types_checked_at_the_call_site_are_the_protocols(self) -> None:
        source = (ROOT / "packages" / "protocol" / "src" / "events.ts").read_text()
        table = source.split("export const eventDataSchemas = {", 1)[1].split("} as const;", 1)[0]
        types = set(re.findall(r"^  '?([a-z_.]+)'?: z\.", table, re.MULTILINE))
        self.assertIn("metric", types)
        self.assertEqual(set(KNOWN_EVENT_TYPES), types)

    def test_the_json_depth_and_the_error_kinds_checked_at_the_call_site_are_the_protocols(self) -> None:
        source = (ROOT / "packages" / "protocol" / "src" / "events.ts").read_text()
        depth = re.search(r"export const MAX_JSON_DEPTH = (\d+);", source)
        assert depth is not None, "MAX_JSON_DEPTH is not in events.ts"
        self.assertEqual(_limits.MAX_JSON_DEPTH, int(depth.group(1)))
        kinds = source.split("export const RunErrorKind = z.enum([", 1)[1].split("]);", 1)[0]
        self.assertEqual(list(ERROR_KINDS), re.findall(r"'([a-z]+)'", kinds))


if __name__ == "__main__":
    unittest.main()
