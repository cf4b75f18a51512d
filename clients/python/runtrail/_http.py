"""HTTP to a runtrail server: JSON requests, error bodies as RuntrailError, bounded retries."""

from __future__ import annotations

import email.utils
import errno
import hashlib
import http.client
import json
import random
import re
import select
import socket
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import IO, Any, Callable, Dict, Mapping, Optional, Tuple

from ._routes import RANGE, ROUTES, QueryValue, build_path
from .errors import RuntrailError

#: Codes that say "try again": the server was busy (503), failed on its side, or takes a run's events
#: more slowly than they come (429 rate_limited, with a Retry-After), as the Node SDK retries them.
RETRYABLE_CODES = frozenset({"unavailable", "internal", "rate_limited"})
#: Statuses a proxy or a starting server may answer without a runtrail error body.
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
#: Bytes an upload sends at a time, looking for an early answer between blocks.
UPLOAD_BLOCK = 256 * 1024
#: Bytes a download reads at a time.
DOWNLOAD_BLOCK = 256 * 1024


def backoff_delay(attempt: int, initial: float = 0.05, maximum: float = 2.0) -> float:
    """Exponential backoff with full jitter: a random delay in [0, min(maximum, initial * 2**attempt)] seconds."""
    return random.random() * min(maximum, initial * (2 ** min(attempt, 30)))


#: errno values of an OSError that is the network's, not this machine's files: worth another try.
NETWORK_ERRNOS = frozenset(
    getattr(errno, name)
    for name in (
        "ECONNREFUSED", "ECONNRESET", "ECONNABORTED", "EPIPE", "ETIMEDOUT", "EHOSTUNREACH", "EHOSTDOWN",
        "ENETUNREACH", "ENETDOWN", "ENETRESET", "EADDRNOTAVAIL", "ENOTCONN", "ESHUTDOWN",
    )
    if hasattr(errno, name)
)


def is_retryable(err: BaseException) -> bool:
    """Worth retrying: no answer (refused, reset, timed out), or the server said it is busy or failed.

    An OSError of this machine's own (a full disk or no permission while a
    download is written) is not: trying again for ``retry_for`` would only
    hide it that long.
    """
    if isinstance(err, RuntrailError):
        return err.code in RETRYABLE_CODES or (err.status in RETRYABLE_STATUSES)
    if isinstance(err, urllib.error.HTTPError) or tls_refusal(err) is not None:
        return False
    if isinstance(err, (urllib.error.URLError, ConnectionError, TimeoutError, socket.timeout, socket.gaierror, http.client.HTTPException)):
        return True
    return isinstance(err, OSError) and err.errno in NETWORK_ERRNOS


def tls_refusal(err: BaseException) -> Optional[ssl.SSLError]:
    """The TLS failure under ``err`` that trying again cannot mend (a certificate not trusted, https to a plain http port), if any.

    An end of the connection midway (``SSLEOFError``, ``SSLZeroReturnError``) is the network's: retried as any drop.
    """
    reason = getattr(err, "reason", err)
    if isinstance(reason, ssl.SSLError) and not isinstance(reason, (ssl.SSLEOFError, ssl.SSLZeroReturnError, ssl.SSLWantReadError, ssl.SSLWantWriteError)):
        return reason
    return None


def retry_after_seconds(err: BaseException) -> Optional[float]:
    """The delay a 503's (or 429's) Retry-After header asks for (seconds or an HTTP date), if any."""
    value = getattr(err, "retry_after", None)
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None  # not a date either: fall back to our own backoff
    return max(0.0, when.timestamp() - time.time())


def error_from_response(status: int, body: bytes, what: str, headers: Optional[Mapping[str, str]] = None) -> RuntrailError:
    """The server's ``{"error": {code, message, details}}`` as a RuntrailError (or a generic one for a non-runtrail answer)."""
    try:
        payload = json.loads(body.decode("utf-8")) if body else None
    except (UnicodeDecodeError, ValueError):
        payload = None  # not JSON (a proxy's HTML page): described by its status below
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict) and isinstance(error.get("code"), str):
        err = RuntrailError(error["code"], str(error.get("message", "")), error.get("details"), status)
    elif status >= 500 and status not in (501, 505):
        err = RuntrailError("unavailable", f"{what} answered {status}", None, status)
    else:
        # No runtrail error body: another server answered (501 is `python3 -m http.server` refusing a POST).
        err = RuntrailError(
            "invalid_request",
            f"{what} answered {status} without a runtrail error: is the URL a runtrail server's root? Set RUNTRAIL_URL (or Client(url=)) to it",
            None,
            status,
        )
    if headers is not None:
        err.retry_after = headers.get("retry-after")  # type: ignore[attr-defined]
    return err


# Which Client setting bounds the retries of what: said when retries run out.
RETRY_BOUNDS = (
    "Client(start_timeout=) bounds creates, reads and a watch until the server first answers; "
    "Client(retry_for=) events, ends, downloads and a watch's later outages"
)


class Http:
    """Requests to one server. Every URL comes from the route table (``_routes.ROUTES``)."""

    def __init__(self, url: str, token: Optional[str], timeout: float) -> None:
        self.base_url = url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def headers(self, extra: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
        # x-runtrail-client marks a request no browser form could forge, so a
        # server's CSRF guard lets a non-JSON body (an artifact) through.
        headers = {"accept": "application/json", "user-agent": "runtrail-python", "x-runtrail-client": "python"}
        if self.token:
            headers["authorization"] = f"Bearer {self.token}"
        headers.update(extra or {})
        return headers

    def url(self, route: str, params: Optional[Mapping[str, str]] = None, query: Optional[Mapping[str, QueryValue]] = None) -> str:
        return self.base_url + build_path(route, params, query)

    def open(
        self,
        route: str,
        params: Optional[Mapping[str, str]] = None,
        query: Optional[Mapping[str, QueryValue]] = None,
        *,
        body: Optional[bytes] = None,
        headers: Optional[Mapping[str, str]] = None,
        timeout: Optional[float] = None,
    ) -> http.client.HTTPResponse:
        """One request; returns the open response of a 2xx, raises RuntrailError for an error answer."""
        method = ROUTES[route][0]
        url = self.url(route, params, query)
        request = urllib.request.Request(url, data=body, method=method, headers=self.headers(headers))
        try:
            return urllib.request.urlopen(request, timeout=timeout or self.timeout)  # type: ignore[no-any-return]
        except urllib.error.HTTPError as err:
            with err:
                raise self.token_hint(error_from_response(err.code, err.read(), f"{method} {url}", err.headers)) from None

    def upload(
        self,
        route: str,
        params: Optional[Mapping[str, str]],
        query: Optional[Mapping[str, QueryValue]],
        *,
        open_body: Callable[[], IO[bytes]],
        size: Optional[int],
        headers: Optional[Mapping[str, str]] = None,
        answer_headers: Optional[Dict[str, str]] = None,
    ) -> Any:
        """One request with a raw body of ``size`` bytes (an artifact's content), streamed; returns its JSON answer.

        ``size`` None: a body whose size is not known before it ends (a pipe),
        sent chunked, to its end. ``answer_headers``, when given, gets the
        answer's headers (lower-case names).

        The length is declared, so a server refuses an upload over its limits
        from the headers, and between blocks the connection is checked for an
        answer: a server that answers before the body is all sent (a refusal:
        too large, an ended run) is heard at once, and sending stops, as curl
        does, instead of pushing on into a connection the server stopped
        reading (which ends in a broken pipe, not its answer). urllib sends
        the whole body before it reads anything.
        """
        method = ROUTES[route][0]
        url = self.url(route, params, query)
        parts = urllib.parse.urlsplit(url)
        connection_type = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        connection = connection_type(parts.hostname or "127.0.0.1", parts.port, timeout=self.timeout)
        try:
            connection.putrequest(method, parts.path + (f"?{parts.query}" if parts.query else ""), skip_accept_encoding=True)
            framing = {"content-length": str(size)} if size is not None else {"transfer-encoding": "chunked"}
            for name, value in self.headers({**(headers or {}), **framing}).items():
                connection.putheader(name, value)
            connection.endheaders()
            sock = connection.sock
            with open_body() as body:
                sent = 0
                while (size is None or sent < size) and not select.select([sock], [], [], 0)[0]:
                    block = body.read(UPLOAD_BLOCK if size is None else min(UPLOAD_BLOCK, size - sent))
                    if not block and size is not None:
                        raise RuntrailError("invalid_request", f"the content got shorter while it was uploaded ({sent} of {size} bytes); nothing was stored")
                    try:
                        if size is not None:
                            sock.sendall(block)
                        elif block:
                            sock.sendall(b"%x\r\n%s\r\n" % (len(block), block))
                        else:
                            sock.sendall(b"0\r\n\r\n")  # the last chunk: the body is whole
                            break
                    except (BrokenPipeError, ConnectionResetError):
                        break  # the server stopped reading: its answer, if it sent one, is read below
                    sent += len(block)
            response = connection.getresponse()
            payload = response.read()
            if answer_headers is not None:
                answer_headers.update((name.lower(), value) for name, value in response.getheaders())
            if response.status >= 400:
                raise self.token_hint(error_from_response(response.status, payload, f"{method} {url}", response.headers))
            return self.json_answer(route, params, query, response, payload)
        finally:
            connection.close()

    def request(
        self,
        route: str,
        params: Optional[Mapping[str, str]] = None,
        query: Optional[Mapping[str, QueryValue]] = None,
        *,
        json_body: Any = None,
        data: Optional[bytes] = None,
        attempt: Optional[Callable[[], Any]] = None,
        headers: Optional[Mapping[str, str]] = None,
        retry_for: float = 0.0,
        stop: Optional[threading.Event] = None,
        timeout: Optional[float] = None,
        observe: Optional[Callable[[float, Optional[BaseException], Any], None]] = None,
    ) -> Any:
        """Send a request and return its JSON answer, retrying what is retryable for up to ``retry_for`` seconds.

        ``timeout``: this request's, instead of the client's (a request the server holds on purpose).

        Only idempotent requests may be retried: runtrail makes them so with
        event ids, a finish id and an Idempotency-Key on create. A 503's
        Retry-After is honoured. When the time is up, the last error is
        raised (a server nobody answers for becomes ``unavailable`` naming
        the URL). ``stop`` cuts the waiting short. ``attempt`` makes each
        attempt instead (an ``upload()`` or a download), with the same retries.
        ``observe(sent_at, error, answer)`` hears how each attempt ended
        (``sent_at`` in epoch seconds; ``error`` None when it was answered),
        except one that failed after ``stop`` was set: the caller gave up on
        it, so it says nothing of the server.
        """
        extra = dict(headers or {})
        if json_body is not None:
            data = json.dumps(json_body, allow_nan=False).encode("utf-8")
            extra.setdefault("content-type", "application/json")
        began = time.monotonic()
        deadline = began + retry_for
        tries = 0
        while True:
            sent_at = time.time()
            try:
                if attempt is not None:
                    answer = attempt()
                else:
                    with self.open(route, params, query, body=data, headers=extra, timeout=timeout) as response:
                        payload = response.read()
                    answer = self.json_answer(route, params, query, response, payload)
            except Exception as err:  # noqa: BLE001 - sorted into retryable or raised just below
                if observe is not None and not (stop is not None and stop.is_set()):
                    observe(sent_at, err, None)
                if not is_retryable(err):
                    tls = tls_refusal(err)
                    if tls is not None:
                        raise self.tls_error(tls) from None
                    raise
                wait = retry_after_seconds(err)
                if wait is None:
                    wait = backoff_delay(tries)
                if time.monotonic() + wait > deadline:
                    final = self.gave_up(err, retry_for, tries + 1, time.monotonic() - began, wait)
                    # Not chained: the message names the cause (refused, timed out, the server's answer), and a chain
                    # printed some sixty lines of urllib and socket internals over a wrong URL or a server not started.
                    raise final from None
                if stop is not None:
                    if stop.wait(wait):
                        final = self.unreachable(err, retry_for)  # stopped (an exit), not out of time: no "gave up"
                        raise final from None
                else:
                    time.sleep(wait)
                tries += 1
            else:
                if observe is not None:
                    observe(sent_at, None, answer)
                return answer

    def download(
        self,
        route: str,
        params: Mapping[str, str],
        sink: IO[bytes],
        *,
        retry_for: float,
        tail: Optional[int] = None,
        restartable: bool = True,
    ) -> Dict[str, Any]:
        """Stream the body of a GET into ``sink``, checked against its ETag (the sha256) when the whole content came.

        A connection cut midway is resumed where it stopped (``Range``), for
        up to ``retry_for`` seconds, as ``request`` retries; content replaced
        in between (another ETag) is fetched again from its start, which
        empties ``sink`` (so it must be seekable) unless ``restartable`` is
        False: then that is an error, for a file the caller holds, whose
        earlier bytes are not ours to throw away. ``tail``: only the last
        ``tail`` bytes (``Range: bytes=-N``). Returns ``{size, sha256,
        contentType}``; raises ``RuntrailError`` if what arrived is not what
        the server said it sent.
        """
        # start: where in the content the sink's first byte is (not 0 for a tail).
        got: Dict[str, Any] = {"received": 0, "start": 0, "etag": None, "sha256": hashlib.sha256()}

        def start_over() -> None:
            if not restartable:
                raise RuntrailError(
                    "invalid_response",
                    f"GET {self.url(route, params)}: the content changed on the server after {got['received']} bytes of it were "
                    "written to the file, which now holds a part of the old content: read it again",
                )
            sink.seek(0)
            sink.truncate()
            got.update(received=0, start=0, etag=None, sha256=hashlib.sha256())

        def fetch() -> Dict[str, Any]:
            resuming = got["received"] > 0
            if resuming:
                wanted: Optional[str] = f"bytes={got['start'] + got['received']}-"
            else:
                wanted = f"bytes=-{tail}" if tail is not None else None
            headers = {"accept": "*/*", **({RANGE: wanted} if wanted else {})}
            with self.open(route, params, headers=headers) as response:
                etag = response.headers.get("etag")
                first, end, total = _span(response)
                if resuming and (response.status != 206 or etag != got["etag"] or first not in (None, got["start"] + got["received"])):
                    # The whole body again (a server that ignores Range), or other content: from its start.
                    start_over()
                    if response.status == 206:
                        return fetch()
                if not resuming:
                    got["start"] = first or 0
                got["etag"] = etag
                while True:
                    block = response.read(DOWNLOAD_BLOCK)
                    if not block:
                        break
                    sink.write(block)
                    got["sha256"].update(block)
                    got["received"] += len(block)
                content_type = response.headers.get("content-type")
            reached = got["start"] + got["received"]
            if end is not None and reached < end:
                raise http.client.IncompleteRead(b"", end - reached)  # retried: resumes from here
            digest = got["sha256"].hexdigest()
            # The ETag is the whole content's sha256: a tail is checked by its size alone.
            whole = got["start"] == 0 and (total is None or got["received"] == total)
            expected = (etag or "").strip('"') if whole else ""
            if (end is not None and reached != end) or (expected and digest != expected):
                raise RuntrailError(
                    "invalid_response",
                    f"GET {self.url(route, params)}: received {got['received']} bytes with sha256 {digest}, "
                    f"the server announced {total} bytes with sha256 {expected or '(none)'}",
                )
            return {"size": got["received"], "sha256": digest, "contentType": content_type}

        return self.request(route, params, attempt=fetch, retry_for=retry_for)  # type: ignore[no-any-return]

    def json_answer(
        self,
        route: str,
        params: Optional[Mapping[str, str]],
        query: Optional[Mapping[str, QueryValue]],
        response: http.client.HTTPResponse,
        payload: bytes,
    ) -> Any:
        """A 2xx answer's JSON; one that is not JSON (another web server on that port, a proxy's login page) is said to be so."""
        if not payload:
            return None
        try:
            return json.loads(payload.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            kind = response.headers.get("content-type") or "no content-type"
            raise RuntrailError(
                "invalid_response",
                f"{ROUTES[route][0]} {self.url(route, params, query)} answered {response.status} with {kind}, not JSON: "
                f"is {self.base_url} a runtrail server? Set RUNTRAIL_URL (or Client(url=)) to its root URL",
                {"url": self.base_url, "status": response.status, "contentType": kind},
                response.status,
            ) from None

    def token_hint(self, err: RuntrailError) -> RuntrailError:
        """A server that wants a token this client has not got: say where a Python script gives one (the server says "send Authorization")."""
        if err.code == "route_not_found" and urllib.parse.urlsplit(self.base_url).path:
            # The server's own answer names only the path: the usual cause is a URL given with a path (a run's page, the API's).
            err.message += f"; this client's URL is {self.base_url}: give the server's root (with only the prefix a proxy serves it under)"
            err.args = (f"{err.code}: {err.message}",)
        if err.code == "unauthorized" and not self.token:
            err.message += "; this client has no token: pass runtrail.Client(token=...) or set RUNTRAIL_TOKEN"
            err.args = (f"{err.code}: {err.message}",)
        return err

    def gave_up(self, err: BaseException, retry_for: float, attempts: int, elapsed: float, next_wait: Optional[float]) -> RuntrailError:
        """The error to raise when retries are over: ``unreachable``'s, and for a busy server's own answer, that it was retried.

        A 429 or 503 raised as the server worded it ("retry after
        Retry-After") read as if nothing had retried it: it now says how
        long and how often it was tried, and what the server asked for next.
        """
        final = self.unreachable(err, retry_for)
        if final is err and retry_for > 0:
            assert isinstance(err, RuntrailError)
            asked = retry_after_seconds(err)
            err.message += (
                f" [runtrail-python retried it {attempts - 1} time{'' if attempts == 2 else 's'} in {elapsed:.1f} s and gave up: "
                + (f"the server asked to wait {next_wait:g} s more (Retry-After), past " if asked is not None and next_wait is not None else "")
                + f"this call's bound of {retry_for:g} s. {RETRY_BOUNDS}]"
            )
            err.args = (f"{err.code}: {err.message}",)
        return final

    def tls_error(self, reason: ssl.SSLError) -> RuntrailError:
        """A TLS failure said at once with what to check, rather than retried for start_timeout and called 'no server answers'."""
        if isinstance(reason, ssl.SSLCertVerificationError):
            hint = "its certificate is not trusted here: give Python the CA that signed it (SSL_CERT_FILE=/path/to/ca.pem)"
        else:
            hint = "is the server serving https on that port? A plain `runtrail serve` answers http:// (set RUNTRAIL_URL accordingly)"
        return RuntrailError("unavailable", f"TLS with {self.base_url} failed: {reason}; {hint}", {"url": self.base_url, "cause": str(reason)})

    def unreachable(self, err: BaseException, retry_for: float) -> RuntrailError:
        """The error to raise once retries are over: the server's own if it answered, else a clear 'nobody answers'."""
        if isinstance(err, RuntrailError):
            return err
        reason = getattr(err, "reason", err)
        # Named, so that a script whose server was gone longer than this knows which setting to raise.
        tried = f" (retried for {retry_for:.0f} s: {RETRY_BOUNDS})" if retry_for >= 1 else ""
        return RuntrailError(
            "unavailable",
            f"no runtrail server answers at {self.base_url}: {reason}{tried}. "
            "Start one with `runtrail serve`, or set RUNTRAIL_URL to the server's URL.",
            {"url": self.base_url, "cause": str(reason)},
        )


def _span(response: http.client.HTTPResponse) -> Tuple[Optional[int], Optional[int], Optional[int]]:
    """Where the body sits in the content: its first byte's offset, the offset past its last, and the whole content's size.

    A 206's Content-Range says all three (the size None for ``*``); a 200 is
    the whole content, its size the Content-Length. None: not said (a 206
    without a Content-Range says nothing of where it starts).
    """
    content_range = response.headers.get("content-range") or ""
    match = re.match(r"bytes (\d+)-(\d+)/(\d+|\*)", content_range.strip())
    if response.status == 206 and match:
        total = match.group(3)
        return int(match.group(1)), int(match.group(2)) + 1, int(total) if total.isdigit() else None
    if response.status == 206:
        return None, None, None
    length = response.headers.get("content-length")
    size = int(length) if length and length.isdigit() else None
    return 0, size, size
