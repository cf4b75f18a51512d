"""Following a run over Server-Sent Events, resuming where it was after a drop."""

from __future__ import annotations

import json
import math
import time
from typing import TYPE_CHECKING, Any, Dict, Iterator, Optional, Tuple

from ._http import backoff_delay, is_retryable, tls_refusal
from ._routes import LAST_EVENT_ID
from .errors import RuntrailError
from .run import _seconds

if TYPE_CHECKING:
    import http.client

    from .client import Client


def _sse_records(response: "http.client.HTTPResponse") -> Iterator[Tuple[str, str]]:
    """(event name, data) of each record of an SSE response, until it closes; a comment (keepalive) is ``(":", "")``, retry: lines are skipped."""
    name, data = "message", []
    while True:
        raw = response.readline()
        if not raw:
            return
        line = raw.decode("utf-8").rstrip("\r\n")
        if line == "":
            if data:
                yield name, "\n".join(data)
            name, data = "message", []
            continue
        if line.startswith(":"):
            yield ":", ""  # a keepalive: the watch checks its deadline on it
            continue
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "event":
            name = value
        elif field == "data":
            data.append(value)


def watch(
    client: "Client", run_id: str, after: int = 0, idle_timeout: float = 45.0, timeout: Optional[float] = None
) -> Iterator[Dict[str, Any]]:
    """Yield the events of run ``run_id`` after seq ``after``, in seq order, once each, until the run's end.

    Each event is a dict with ``seq``, ``type``, ``data``, ``ts`` and
    ``runId``. A dropped connection (a server restart, a proxy) is reopened
    with ``Last-Event-ID`` = the last seq seen, so nothing is skipped or
    repeated; the server ends the stream after the terminal event. An
    unknown run raises ``RuntrailError('run_not_found')``. A server nobody
    answers raises ``unavailable``: after ``client.start_timeout`` seconds
    if it never answered this watch (a wrong URL, a server not started),
    after ``client.retry_for`` once it had (an outage). A connection
    silent for ``idle_timeout`` seconds (the server sends a keepalive every
    15 s) is taken for dead and reopened. With ``timeout``, a run that has
    not ended that many seconds after the watch began raises the built-in
    ``TimeoutError`` (the events until then were yielded).
    """
    timeout = _seconds("watch(timeout=...)", timeout, unbounded=True)
    if _seconds("watch(idle_timeout=...)", idle_timeout) == 0:
        raise ValueError("watch(idle_timeout=...) must be a number of seconds above 0: a connection is reopened once silent that long")
    last = after
    attempt = 0
    outage_since: Optional[float] = None
    answered = False
    deadline = None if timeout is None else time.monotonic() + timeout

    def remaining() -> float:
        return math.inf if deadline is None else deadline - time.monotonic()

    def timed_out() -> TimeoutError:
        return TimeoutError(f"run {run_id} did not end within {timeout} s (watched up to seq {last})")

    while True:
        if remaining() <= 0:
            raise timed_out()
        read_timeout = min(idle_timeout, remaining())
        headers = {"accept": "text/event-stream"}
        if last > 0:
            headers[LAST_EVENT_ID] = str(last)
        reopen_now = False
        try:
            response = client._http.open("streamRun", {"id": run_id}, {"after": last}, headers=headers, timeout=read_timeout)
            answered = True
            with response:
                kind = response.headers.get("content-type") or ""
                if not kind.startswith("text/event-stream"):
                    # Another web server (or a proxy's page) on that URL: read as a stream that closes at once, it was reopened forever.
                    raise RuntrailError(
                        "invalid_response",
                        f"GET {client._http.url('streamRun', {'id': run_id})} answered {response.status} with {kind or 'no content-type'}, "
                        f"not an event stream: is {client.url} a runtrail server? Set RUNTRAIL_URL (or Client(url=)) to its root URL",
                        {"url": client.url, "status": response.status, "contentType": kind or None},
                        response.status,
                    )
                for name, data in _sse_records(response):
                    outage_since, attempt = None, 0
                    if name == ":":
                        # A keepalive restarts the read timeout: near the deadline, reopen with a shorter one.
                        if remaining() < read_timeout:
                            reopen_now = True
                            break
                    elif name == "run-event":
                        event = json.loads(data)
                        seq = int(event["seq"])
                        if seq <= last:
                            continue
                        if seq > last + 1:
                            # Never expected (the server sends every seq), but a
                            # gap is refetched rather than passed on.
                            for missing in _read_range(client, run_id, last, seq - 1):
                                last = missing["seq"]
                                yield missing
                        last = seq
                        yield event
                    elif name == "end":
                        # Events the stream had not sent yet come from the store.
                        end_seq = int(json.loads(data).get("seq", last))
                        for missing in _read_range(client, run_id, last, end_seq):
                            last = missing["seq"]
                            yield missing
                        return
                    elif name == "error":
                        err = json.loads(data)
                        raise RuntrailError(err.get("code", "internal"), err.get("message", "stream error"))
        except Exception as err:  # noqa: BLE001 - sorted into retryable or raised just below
            if not is_retryable(err):
                tls = tls_refusal(err)
                if tls is not None:
                    raise client._http.tls_error(tls) from None
                raise
            if remaining() <= 0:
                raise timed_out() from None  # a read cut short by the deadline, not an outage
            now = time.monotonic()
            outage_since = outage_since or now
            bound = client.retry_for if answered else client.start_timeout
            if now - outage_since > bound:
                raise client._http.unreachable(err, bound) from None  # its message names the cause
        if reopen_now:
            continue
        # The stream closed or dropped before the end: reopen from the last seq.
        time.sleep(max(0.0, min(backoff_delay(attempt, initial=0.1, maximum=2.0), remaining())))
        attempt += 1


def _read_range(client: "Client", run_id: str, after: int, upto: int) -> Iterator[Dict[str, Any]]:
    while after < upto:
        page = client.events(run_id, after=after, limit=min(5000, upto - after))
        events = [e for e in page["events"] if after < e["seq"] <= upto]
        if not events:
            return
        for event in events:
            after = event["seq"]
            yield event
