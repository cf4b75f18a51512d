"""The client of one runtrail server."""

from __future__ import annotations

import collections.abc
import contextlib
import errno
import io
import json
import math
import os
import re
import secrets
import socket
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
import warnings
from typing import Any, BinaryIO, Callable, Dict, Iterator, List, Mapping, Optional, Tuple, TypeVar, Union, cast

from . import _json, _sender
from ._http import Http
from ._limits import DEFAULT_MAX_BATCH_BYTES, MAX_EVENT_DATA_BYTES, MAX_META_BYTES
from ._routes import IDEMPOTENCY_KEY
from ._say import say
from .errors import RuntrailError
from .run import Run, _seconds, _text
from .watch import watch as _watch

DEFAULT_URL = "http://127.0.0.1:4310"
#: The headers of an export (the status of its run) and of an import's answer (how many runs it loaded), as in packages/protocol/src/artifacts.ts.
EXPORT_STATUS_HEADER = "x-runtrail-run-status"
IMPORTED_RUNS_HEADER = "x-runtrail-imported-runs"
_EXPORT_BLOCK = 1024 * 1024
#: How long ``cancel(wait=True)`` waits before it says on stderr what it waits for (as a flush does).
WAIT_NOTICE_AFTER_S = 2.0


class Client:
    """A runtrail server, and the factory of run handles.

    ``url`` defaults to ``RUNTRAIL_URL``, else http://127.0.0.1:4310;
    ``token`` to ``RUNTRAIL_TOKEN`` (sent as ``Authorization: Bearer``).

    - ``timeout``: seconds one HTTP request may take.
    - ``start_timeout``: how long ``rt.run`` retries reaching the server
      before raising ``RuntrailError('unavailable')`` (a server that is down
      at the start is an error, not a hang).
    - ``retry_for``: how long events, ends and watches keep retrying through
      an outage (a server restart) before raising.
    - ``flush_interval`` / ``max_batch`` / ``max_batch_bytes``: events are
      sent this many seconds after the first one waits, or at once when this
      many (or this many bytes of JSON, 1 MiB) wait; no request carries more.
    - ``max_event_data_bytes`` / ``max_meta_bytes``: the most data one event
      (one ``meta`` event) may carry, as JSON; larger is refused at the call
      site. The defaults are a server's (1 MiB, 64 KiB): set your server's
      ``maxEventDataBytes`` / ``maxMetaBytes`` here if you changed them.
    - ``max_queued`` / ``queue_full_timeout``: at most this many events wait
      in memory to be sent; a call that finds the queue full blocks until the
      server has stored some, up to ``queue_full_timeout`` seconds (default
      ``retry_for``), then raises ``RuntrailError('unavailable')`` saying why.
    - ``exit_timeout``: how long the process waits at exit for unsent events, and to end
      runs the script left open (``failed``, kind ``orphaned``).
    """

    def __init__(
        self,
        url: Optional[str] = None,
        token: Optional[str] = None,
        *,
        timeout: float = 10.0,
        start_timeout: float = 5.0,
        retry_for: float = 300.0,
        flush_interval: float = 0.05,
        max_batch: int = 500,
        max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES,
        max_event_data_bytes: int = MAX_EVENT_DATA_BYTES,
        max_meta_bytes: int = MAX_META_BYTES,
        max_queued: int = 100_000,
        queue_full_timeout: Optional[float] = None,
        exit_timeout: Optional[float] = None,
    ) -> None:
        for setting, value in (("url", url), ("token", token)):
            if value is not None and not isinstance(value, str):
                raise TypeError(f"Client({setting}=...) is a str, got {type(value).__name__} {value!r}")
        # Checked here: a wrong one failed later, in the sender thread or at a run's end, with a TypeError naming no setting.
        _setting("timeout", timeout, above_zero=True)
        for setting, value in (("start_timeout", start_timeout), ("retry_for", retry_for), ("flush_interval", flush_interval)):
            _setting(setting, value)
        for setting, value in (("queue_full_timeout", queue_full_timeout), ("exit_timeout", exit_timeout)):
            if value is not None:
                _setting(setting, value)
        for setting, value in (
            ("max_batch", max_batch), ("max_batch_bytes", max_batch_bytes), ("max_event_data_bytes", max_event_data_bytes),
            ("max_meta_bytes", max_meta_bytes), ("max_queued", max_queued),
        ):
            _setting(setting, value, integer=True, above_zero=True)
        self.url = (url or os.environ.get("RUNTRAIL_URL") or DEFAULT_URL).rstrip("/")
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(f"runtrail server URL must start with http:// or https://, got {self.url!r}")
        api = re.search(r"/api/v1(/|$)", urllib.parse.urlsplit(self.url).path)
        if api:
            # Every route is built as <url>/api/v1/...: an API URL here answered route_not_found for /api/v1/api/v1/runs.
            root = self.url[: self.url.index("/api/v1", len(self.url) - len(urllib.parse.urlsplit(self.url).path))]
            where = "" if url else " (from RUNTRAIL_URL)"
            raise ValueError(f"runtrail server URL is the server's root, not its API path: got {self.url!r}{where}, give {root!r}")
        self._http = Http(self.url, token if token is not None else os.environ.get("RUNTRAIL_TOKEN"), timeout)
        self.start_timeout = start_timeout
        self.retry_for = retry_for
        self.flush_interval = flush_interval
        self.max_batch = max_batch
        self.max_batch_bytes = max_batch_bytes
        self.max_event_data_bytes = max_event_data_bytes
        self.max_meta_bytes = max_meta_bytes
        self.max_queued = max_queued
        self.queue_full_timeout = queue_full_timeout
        if exit_timeout is not None:
            _sender.exit_timeout[0] = exit_timeout

    def __repr__(self) -> str:
        return f"<runtrail.Client {self.url}>"

    def run(
        self,
        name: str,
        input: Any = None,
        labels: Optional[Mapping[str, str]] = None,
        *,
        parent_id: Optional[str] = None,
        lease_ttl_ms: Optional[int] = None,
        timeout_ms: Optional[int] = None,
        stall_timeout_ms: Optional[int] = None,
        fail_on_stall: Optional[bool] = None,
    ) -> Run:
        """Create a run that this process produces and return its handle (use it in a ``with`` block).

        The server mints the id. The run's lease (``lease_ttl_ms``, default
        the server's 30 s) is renewed by the background thread every
        lease/3; if this process dies, the run ends ``orphaned`` after it.
        """
        owner = {"kind": "producer", "node": f"python-pid-{os.getpid()}@{socket.gethostname()}"[:200], "id": str(uuid.uuid4())}
        body = _run_body(
            "run", name, input, labels,
            owner=owner, parentId=parent_id, leaseTtlMs=lease_ttl_ms, timeoutMs=timeout_ms,
            stallTimeoutMs=stall_timeout_ms, failOnStall=fail_on_stall,
        )
        # The key makes a create retried after a lost answer return the same run.
        record = self._http.request(
            "createRun", json_body=body, headers={IDEMPOTENCY_KEY: owner["id"]}, retry_for=self.start_timeout
        )
        return Run(self, record, owner)

    def start(
        self,
        name: str,
        input: Any = None,
        labels: Optional[Mapping[str, str]] = None,
        *,
        parent_id: Optional[str] = None,
        timeout_ms: Optional[int] = None,
        idempotency_key: Optional[str] = None,
    ) -> Dict[str, Any]:
        """Queue a run for a handler the server defines (``runtrail serve --handlers``, ``define()``) and return it (``queued``).

        The server's executor runs it; this process only asked. ``rt.wait(run["id"])``
        returns it once it has ended. An unknown handler raises ``RuntrailError``
        ``handler_not_found`` listing the known ones; input the handler's schema
        refuses raises ``invalid_request`` naming the fields. ``idempotency_key``:
        asked again with the same key, the server answers the run it started the
        first time (the call is retried through a restart with a key of its own).
        """
        body = _run_body("start", name, input, labels, execute=True, parentId=parent_id, timeoutMs=timeout_ms)
        key = idempotency_key if idempotency_key is not None else str(uuid.uuid4())
        return cast(
            Dict[str, Any],
            self._http.request("createRun", json_body=body, headers={IDEMPOTENCY_KEY: key}, retry_for=self.start_timeout),
        )

    def attach(self, run_id: str) -> Run:
        """A handle on a run another process owns (``runtrail exec``, or the parent of a worker process): add
        events to it; that process ends it. In a ``with`` block, leaving it stores the events and stops the
        handle's sender thread (a worker's task should, so a long-lived pool does not gather threads)."""
        record = self._http.request("getRun", {"id": run_id}, retry_for=self.start_timeout)
        return Run(self, record, None, attached=True)

    def get_run(self, run_id: str) -> Dict[str, Any]:
        """The run with its ``snapshot`` (counters, progress, phases, metrics, last error), ``status`` and ``seq``."""
        return cast(Dict[str, Any], self._http.request("getRun", {"id": run_id}, retry_for=self.start_timeout))

    def list_runs(self, **query: Any) -> Dict[str, Any]:
        """``{runs, nextCursor}``, newest first; filters as the list route takes them: status, name,
        nameContains (a part of the name, any case), errorKind (how it failed), parentId, parentIds
        ("id1,id2"), topLevel ("true"), label ("k=v"), createdAfter/createdBefore (epoch ms); limit, cursor."""
        _check_filters("list_runs", query)
        return cast(Dict[str, Any], self._http.request("listRuns", query=query, retry_for=self.start_timeout))

    def count_runs(self, **filters: Any) -> Dict[str, Any]:
        """How many runs match ``list_runs``' filters (the same names, without limit and cursor), over every page.

        ``{total, byStatus, stalled}``: ``byStatus`` maps each status to its
        count, ``stalled`` counts the running ones the server marks stalled.
        An unknown filter (``limit`` included: a count has no pages) is
        ``invalid_request`` naming it.
        """
        _check_filters("count_runs", filters)
        return cast(Dict[str, Any], self._http.request("countRuns", query=filters, retry_for=self.start_timeout))

    def events(self, run_id: str, after: int = 0, limit: Optional[int] = None) -> Dict[str, Any]:
        """One page of stored events after seq ``after``: ``{events, seq, status}``.

        ``limit`` is 1 to 5000 (the default); a page also stops at the
        server's ``readPageBytes`` (8 MiB of events), so large events come
        fewer to a page. The answer's ``seq`` is the run's last: page on with
        ``after`` = the last event's ``seq`` until it reaches that.
        """
        _check_seq("events", after)
        return cast(
            Dict[str, Any],
            self._http.request("readEvents", {"id": run_id}, {"after": after, "limit": limit}, retry_for=self.start_timeout),
        )

    def cancel(self, run_id: str, reason: Optional[str] = None, *, wait: bool = False, timeout: Optional[float] = None) -> Dict[str, Any]:
        """Ask a run to stop (what the dashboard's Cancel does); its producer sees ``Cancelled``.

        Returns the run as the server answers the request: a queued run has
        ended ``cancelled``, a running one is still ``running`` until its
        owner stops it (or, if the owner is gone, the reaper ends it
        cancelled once its lease lapses). With ``wait=True`` (as ``runtrail
        cancel --wait``) it then waits for that end as ``wait`` does, saying
        on stderr what it waits for if that takes over 2 s, and returns the
        run as it ended: ``status`` is ``cancelled``, or ``succeeded`` /
        ``failed`` if it finished before the cancel took effect.
        ``timeout`` (seconds, with ``wait``) raises ``TimeoutError`` for a
        run still going then.
        """
        if timeout is not None and not wait:
            raise ValueError("cancel(timeout=...) bounds the wait for the run's end: give it with wait=True")
        timeout = _seconds("rt.cancel(timeout=...)", timeout, unbounded=True)  # before the cancel is asked: a bad one is no half-done call
        body = {"reason": _text(reason)} if reason is not None else {}
        run = cast(Dict[str, Any], self._http.request("cancelRun", {"id": run_id}, json_body=body, retry_for=self.start_timeout))
        if not wait or run["status"] in _sender.TERMINAL_STATUSES:
            return run
        owner = run.get("owner")
        who = f"its owner ({owner['kind']} {owner['id']} on {owner['node']})" if owner else "its producer"
        lease = run["leaseTtlMs"] / 1000
        notice = (
            f"runtrail: cancel requested; waiting for run {run_id} to end: {who} stops it, or, if that is gone, "
            f"the reaper ends it cancelled once its lease of {lease:g} s lapses unrenewed"
        )
        return self._wait_from(run, timeout, notice)

    def retry(self, run_id: str, *, idempotency_key: Optional[str] = None) -> Dict[str, Any]:
        """Start a new attempt of an ended handler run (what the dashboard's Retry and ``runtrail retry`` do) and return it.

        The new run has the same name and input, ``retryOf`` the run given
        and the next ``attempt``; it is queued like ``start``'s. A run no
        handler executes (one ``rt.run`` produced) or one still queued or
        running is ``run_not_retryable``, saying which. The request goes
        with an Idempotency-Key (``idempotency_key``, else one of its own),
        so it is retried through a restart and a lost answer without
        starting a second attempt; the same key again answers the attempt
        it started (a key used for another run is ``idempotency_conflict``).
        """
        key = idempotency_key if idempotency_key is not None else str(uuid.uuid4())
        return cast(
            Dict[str, Any],
            self._http.request("retryRun", {"id": run_id}, headers={IDEMPOTENCY_KEY: key}, retry_for=self.start_timeout),
        )

    def delete_run(self, run_id: str) -> None:
        """Delete an ended run with its events, artifacts, output log and every run under it (admin, when auth is on).

        A run that has not ended, or has a run under it that has not, is
        ``run_not_terminal`` and nothing is deleted. Retried through an
        outage as a read is: a retry that finds the run gone after an
        attempt whose answer was lost (the connection cut after the request
        went out) counts it deleted, rather than raising ``run_not_found``
        for the delete that worked.
        """
        lost = [False]

        def attempt() -> None:
            try:
                with self._http.open("deleteRun", {"id": run_id}) as response:
                    response.read()
            except RuntrailError as err:
                if err.code == "run_not_found" and lost[0]:
                    return None
                raise
            except Exception as err:  # noqa: BLE001 - noted, then raised for request() to retry or not
                # A refused connection sent nothing; anything else may have deleted it before the answer was lost.
                lost[0] = lost[0] or not isinstance(getattr(err, "reason", err), ConnectionRefusedError)
                raise
            return None

        self._http.request("deleteRun", {"id": run_id}, attempt=attempt, retry_for=self.start_timeout)

    def whoami(self) -> Dict[str, Any]:
        """Whether the server needs tokens (``auth``) and what this client's token is (``principal``).

        ``principal`` is ``{"kind": "open"}`` when auth is off; with auth on,
        ``{"kind": "scoped", id, name, scope, expiresAt}`` for a scoped
        token, ``{"kind": "run", id, runId, expiresAt, write}`` for a run
        token, or None for no token or one the server does not accept
        (expired, revoked): ask before a long job rather than at its end.
        """
        return cast(Dict[str, Any], self._http.request("whoami", retry_for=self.start_timeout))

    def create_token(self, name: str, scope: str, expires_in_seconds: Optional[int] = None) -> Dict[str, Any]:
        """Mint a scoped token (needs the admin token): ``{id, name, scope, token, expiresAt}``.

        ``scope`` is ``"admin"``, ``"producer"`` (create runs and add to
        them, mint run tokens, and read) or ``"viewer"`` (read and watch).
        ``token`` is the secret, in this answer only (the server keeps a
        hash); ``expiresAt`` is None for a token that does not expire
        (``expires_in_seconds`` left out). Not retried: a mint whose answer
        was lost would leave a live token nobody holds; on ``unavailable``,
        look at ``tokens()`` and revoke what you did not get.
        """
        _check_str("create_token", "name", name)
        _check_str("create_token", "scope", scope)
        body: Dict[str, Any] = {"name": name, "scope": scope}
        if expires_in_seconds is not None:
            body["expiresInSeconds"] = _check_int("create_token", "expires_in_seconds", expires_in_seconds)
        return cast(Dict[str, Any], self._http.request("createToken", json_body=body))

    def tokens(self) -> List[Dict[str, Any]]:
        """The scoped tokens (needs the admin token), never their secrets: ``id``, ``name``, ``scope``, ``createdAt``, ``expiresAt``, ``revokedAt``."""
        return cast(List[Dict[str, Any]], self._http.request("listTokens", retry_for=self.start_timeout)["tokens"])

    def revoke_token(self, token_id: str) -> Optional[Dict[str, Any]]:
        """Revoke a token by its ``id``: the admin token revokes any; a producer token the run tokens it minted.

        From then on the server refuses the token (``unauthorized``) and
        ends the streams open with it. An id this client may not revoke,
        or that is no token's, is ``token_not_found``. Revoking is the same
        done twice, so it is retried through an outage. Returns the
        server's ``{id, revokedAt, alreadyRevoked}``: ``revokedAt`` is when
        it was first revoked, and ``alreadyRevoked`` says an earlier request
        did it (a retry of this one whose first answer was lost too); None
        from an older server, which answers nothing.
        """
        if not isinstance(token_id, str):
            hint = ': pass token["id"]' if isinstance(token_id, dict) and isinstance(token_id.get("id"), str) else ""
            raise TypeError(f"revoke_token(token_id): a token id is a str, got {type(token_id).__name__} {token_id!r:.100}{hint}")
        answer = self._http.request("revokeToken", {"id": token_id}, retry_for=self.start_timeout)
        return answer if isinstance(answer, dict) else None

    def create_run_token(self, run_id: str, ttl_seconds: Optional[int] = None, write: bool = False) -> Dict[str, Any]:
        """Mint a token that reads and watches this run and the runs under it, and nothing else (a producer or admin token).

        Returns what the server answers, ``{id, token, expiresAt, write}``,
        and ``url``: the run's dashboard page with the token in it
        (``/runs/<id>?token=...``), a link to share; the page takes the
        token out of the address bar. ``ttl_seconds``: its lifetime (the
        server's default 1 hour, at most 30 days). ``write=True``: it may
        also add events and artifacts to those runs (for a subprocess that
        reports into its run), never start, cancel or end one.
        ``revoke_token(answer["id"])`` takes it back. Not retried, as
        ``create_token``.
        """
        body: Dict[str, Any] = {"write": _check_bool("create_run_token", "write", write)}
        if ttl_seconds is not None:
            body["ttlSeconds"] = _check_int("create_run_token", "ttl_seconds", ttl_seconds)
        answer = cast(Dict[str, Any], self._http.request("createRunToken", {"id": run_id}, json_body=body))
        # The server answers no URL: the dashboard's page of the run, as run.url, with the ?token= it reads.
        query = urllib.parse.urlencode({"token": answer["token"]})
        answer["url"] = f"{self.url}/runs/{urllib.parse.quote(run_id, safe='')}?{query}"
        return answer

    def handlers(self) -> Dict[str, Any]:
        """What GET /api/v1/handlers answers: whether queued runs of a handler will start, and when they end if not.

        - ``handlers``: the handlers this node executes;
        - ``nodes``: every live node (``node``, ``handlers``, ``heardAt``,
          ``liveUntil``), so a run of any handler listed there can start;
        - ``queuedOrphanTimeoutMs``: how long queued runs of a handler no
          live node defines wait before the server ends them ``failed``
          (kind ``orphaned``); 0: they wait for ever;
        - ``unclaimable``: for each such handler its reaper has found,
          ``handler``, ``undefinedSince`` and ``endsAt`` (epoch ms: the runs
          end then unless a node that defines it comes up).
        """
        return cast(Dict[str, Any], self._http.request("listHandlers", retry_for=self.start_timeout))

    def artifacts(self, run_id: str) -> List[Dict[str, Any]]:
        """The run's artifact records in ordinal order: ``ordinal``, ``name``, ``contentType``, ``size``, ``sha256``, ``createdAt``, ``metadata``."""
        answer = self._http.request("listArtifacts", {"id": run_id}, retry_for=self.start_timeout)
        return cast(List[Dict[str, Any]], answer["artifacts"])

    def download_artifact(self, run_id: str, name: str, dest: Union[None, str, "os.PathLike[str]"] = None) -> Union[bytes, str]:
        """The content of the run's artifact ``name``: as bytes, or written to ``dest`` and its path returned.

        ``dest`` is a file path, or an existing folder to put the file in
        under the artifact's name; a folder that does not exist is a
        ``FileNotFoundError`` before anything is downloaded. The content is
        streamed into a file beside it and checked against the sha256 the
        server gives; only then does it take the path (a failed or cut
        download leaves no file there), with the modes any file the script
        writes gets. A connection cut midway is resumed where it stopped,
        through outages of up to ``retry_for`` seconds. Without ``dest`` the whole content is
        held in memory: give a path for big files.
        """
        params = {"id": run_id, "name": name}
        if dest is None:
            with tempfile.TemporaryFile() as sink:
                self._http.download("getArtifact", params, sink, retry_for=self.retry_for)
                sink.seek(0)
                return sink.read()
        # Artifact names hold no path separators (the server refuses them): one is a file name in any folder.
        path, _ = _write_into_place(
            dest, name, f"download_artifact({name!r})", "dest", lambda sink: self._http.download("getArtifact", params, sink, retry_for=self.retry_for)
        )
        return path

    def log(
        self,
        run_id: str,
        dest: Union[None, str, "os.PathLike[str]", BinaryIO] = None,
        *,
        tail_bytes: Optional[int] = None,
    ) -> Union[bytes, str, None]:
        """The run's output log (what ``runtrail exec`` or a handler's ``ctx.exec`` printed, stderr lines ``[stderr] ``-prefixed), as bytes.

        ``dest``: a file path, or an existing folder to put it in as
        ``runtrail-<id>.log``, streamed into a file beside it that takes the
        path once whole (as ``download_artifact``), the path returned; or a
        binary file open for writing, which gets the log from where it stands
        (neither rewound nor closed), None returned. ``tail_bytes``: only the
        log's last that many bytes (all of a shorter log), say the end of a
        long one. The log of a run still going is the bytes there are when it
        is asked for. A connection cut midway is resumed where it stopped,
        through outages of up to ``retry_for``. A run whose log this server
        does not have is ``log_not_found``, saying where its output went
        (also in its ``log`` events: ``events``).
        """
        if tail_bytes is not None:
            _check_int("log", "tail_bytes", tail_bytes)
            if tail_bytes < 1:
                raise ValueError(f"log(tail_bytes={tail_bytes}): the number of bytes at the log's end to read is 1 or more")
        params = {"id": run_id}
        if dest is None:
            with tempfile.TemporaryFile() as sink:
                self._http.download("runLog", params, sink, retry_for=self.retry_for, tail=tail_bytes)
                sink.seek(0)
                return sink.read()
        if not isinstance(dest, (str, os.PathLike)):
            _check_binary(dest, f"log({run_id!r})", "wb", "a log")
            self._http.download("runLog", params, dest, retry_for=self.retry_for, tail=tail_bytes, restartable=False)
            return None
        path, _ = _write_into_place(
            dest,
            f"runtrail-{run_id}.log",
            f"log({run_id!r})",
            "dest",
            lambda sink: self._http.download("runLog", params, sink, retry_for=self.retry_for, tail=tail_bytes),
        )
        return path

    def export_run(self, run_id: str, path_or_file: Union[str, "os.PathLike[str]", BinaryIO], family: bool = False) -> Optional[str]:
        """Write the run (record, every event, every artifact) as one tar archive, as ``runtrail export`` does.

        ``path_or_file`` is a file path, an existing folder to put it in as
        ``runtrail-<id>.tar`` (``runtrail-<id>-family.tar``), or a binary
        file open for writing, which gets the archive from where it stands
        (and is neither rewound nor closed). A path returns the path
        written: the archive is streamed into a file beside it and takes
        the path only once whole (a failed or cut export leaves no file
        there), with the modes any file the script writes gets; a folder
        that does not exist is a ``FileNotFoundError`` before anything is
        fetched. A connection cut midway starts the export again, through
        outages of up to ``retry_for`` seconds (a file object is written once:
        a cut there raises). ``family=True``: the run with every run under it,
        in one archive that ``import_runs`` loads all or none; refused
        (``run_not_terminal``, naming it) while any of them has not ended. A
        single run that has not ended is exported (its events so far) with
        a ``RuntimeWarning`` saying an import will refuse it.
        """
        query = {"family": True if family else None}
        params = {"id": run_id}
        if not isinstance(path_or_file, (str, os.PathLike)):
            _check_binary(path_or_file, f"export_run({run_id!r})", "wb")
            _warn_if_not_ended(run_id, self._export_into(params, query, path_or_file, rewind=False))
            return None
        path, status = _write_into_place(
            path_or_file,
            f"runtrail-{run_id}{'-family' if family else ''}.tar",
            f"export_run({run_id!r})",
            "the path",
            lambda sink: self._http.request(
                "exportRun", params, query, attempt=lambda: self._export_into(params, query, sink, rewind=True), retry_for=self.retry_for
            ),
        )
        _warn_if_not_ended(run_id, status)
        return path

    def _export_into(self, params: Mapping[str, str], query: Mapping[str, Any], sink: BinaryIO, *, rewind: bool) -> Optional[str]:
        """One export request streamed into ``sink``; ``rewind``: the sink is ours, emptied first (a retry starts it over). Returns the run's status."""
        if rewind:
            sink.seek(0)
            sink.truncate()
        with self._http.open("exportRun", params, query, headers={"accept": "*/*"}) as response:
            status = response.headers.get(EXPORT_STATUS_HEADER)
            while True:
                # A cut body ends in http.client.IncompleteRead (the archive is sent chunked): retried, or raised.
                block = response.read(_EXPORT_BLOCK)
                if not block:
                    break
                sink.write(block)
        return status

    def import_runs(self, path_or_file: Union[str, "os.PathLike[str]", BinaryIO]) -> Dict[str, Any]:
        """Load an archive ``export_run`` (or ``runtrail export``) wrote into this server; returns ``{"run": ..., "runs": n}``.

        ``run`` is the run the archive was exported from, as ``get_run``
        returns it; ``runs`` how many runs came (more than 1 for a family
        archive, all loaded or none). Ids are kept: a run that exists here
        is ``RuntrailError`` ``run_already_exists`` (naming each), unless
        every run of the archive is here as it holds it (the import repeated,
        say after a lost answer): then they are returned as they are, and an
        archive the server refuses (truncated, of a run that has not ended,
        past its ``maxImportBytes``) imports nothing. ``path_or_file`` is a
        path (streamed, never read whole into memory; its gzip is read too)
        or a binary file open for reading, sent from where it stands to its
        end (a pipe is sent chunked). Needs an admin token when auth is on.
        A path is sent again through outages of up to ``retry_for``; a file
        object once.
        """
        answer: Dict[str, str] = {}
        headers = {"content-type": "application/x-tar"}
        if isinstance(path_or_file, (str, os.PathLike)):
            path = os.fspath(path_or_file)
            size = os.path.getsize(path)  # also the FileNotFoundError of a path that is not there, before any request
            run = self._http.request(
                "importRun",
                attempt=lambda: self._http.upload("importRun", None, None, open_body=lambda: open(path, "rb"), size=size, headers=headers, answer_headers=answer),
                retry_for=self.retry_for,
            )
        else:
            source = path_or_file
            _check_binary(source, "import_runs()", "rb")
            size = _remaining_size(source)
            run = self._http.upload("importRun", None, None, open_body=lambda: contextlib.nullcontext(source), size=size, headers=headers, answer_headers=answer)  # type: ignore[arg-type,return-value]
        count = answer.get(IMPORTED_RUNS_HEADER, "1")
        return {"run": run, "runs": int(count) if count.isdigit() else 1}

    def watch(self, run_id: str, after: int = 0, timeout: Optional[float] = None) -> Iterator[Dict[str, Any]]:
        """Yield the run's events after seq ``after`` until its end, resuming after drops (see ``runtrail.watch.watch``).

        With ``timeout`` (seconds), a run still going then raises ``TimeoutError``.
        """
        _check_seq("watch", after)
        # Checked now: the watch is a generator, and its own check waits for the first event asked of it.
        return _watch(self, run_id, after, timeout=_seconds("rt.watch(timeout=...)", timeout, unbounded=True))

    def wait(self, run_id: str, timeout: Optional[float] = None) -> Dict[str, Any]:
        """Block until the run has ended and return it as ``get_run`` does: final ``status``, ``snapshot``, ``output``, ``error``.

        A run that had already ended is returned at once. It follows the
        run's stream (as ``watch``, so a dropped connection or a server
        restart is ridden out), never polls. ``timeout`` (seconds) raises
        ``TimeoutError`` for a run still going then; Ctrl-C stops the wait
        (the run goes on). A queued run of a handler no live node defines
        (``handlers()``) may never start: the wait says so on stderr at
        once, and when the server ends such runs if none comes.
        """
        # Checked before the request: -1 was a TimeoutError after it, "5" a TypeError naming nothing.
        timeout = _seconds("rt.wait(timeout=...)", timeout, unbounded=True)
        run = self.get_run(run_id)
        if run["status"] in _sender.TERMINAL_STATUSES:
            return run
        unclaimable = self._queued_why(run)
        if unclaimable is not None:
            # Said at once: the wait may be for a node that never comes.
            say(unclaimable)
        return self._wait_from(run, timeout)

    def _wait_from(self, run: Dict[str, Any], timeout: Optional[float], notice: Optional[str] = None) -> Dict[str, Any]:
        """Follow ``run`` (as last read) to its end and return it ended; ``notice`` goes to stderr if the wait takes over 2 s."""
        notice_timer = None
        if notice is not None:
            notice_timer = threading.Timer(WAIT_NOTICE_AFTER_S, lambda: say(notice))
            notice_timer.daemon = True
            notice_timer.start()
        try:
            for _ in _watch(self, run["id"], int(run["seq"]), timeout=timeout):
                pass
        finally:
            if notice_timer is not None:
                notice_timer.cancel()
        return self.get_run(run["id"])

    def _queued_why(self, run: Dict[str, Any]) -> Optional[str]:
        """For a queued handler run that no live node can start: what becomes of it (as the dashboard says it); else None."""
        if run["status"] != "queued" or not run.get("execute"):
            return None
        try:
            answer = self.handlers()
        except RuntrailError as err:
            if err.code not in ("forbidden", "unauthorized"):
                raise
            # A run token may wait on its run without reading the server's handlers: the wait goes on, unexplained.
            return None
        handler = run["name"]
        if handler in answer["handlers"] or any(handler in node["handlers"] for node in answer["nodes"]):
            return None
        said = f"runtrail: run {run['id']} is queued, and no live node defines its handler {handler!r}: it starts if a node that defines it comes up"
        timeout_s = answer["queuedOrphanTimeoutMs"] / 1000
        if timeout_s == 0:
            return f"{said}; the server lets it wait for one for ever (its queuedOrphanTimeoutMs is 0)"
        ends_at = next((u["endsAt"] for u in answer["unclaimable"] if u["handler"] == handler), None)
        if ends_at is None:
            return f"{said}; if none does within {timeout_s:g} s of the server finding none (its queuedOrphanTimeoutMs), it ends failed (orphaned)"
        at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ends_at / 1000))
        return f"{said}; if none does by {at}, it ends failed (orphaned) (the server's queuedOrphanTimeoutMs, {timeout_s:g} s, from when it found none)"


def _setting(name: str, value: Any, *, integer: bool = False, above_zero: bool = False) -> Any:
    """A Client setting that is a number of seconds (or, ``integer``, a count), checked: not negative, or ``above_zero``."""
    wanted = "an int" if integer else "a number of seconds"
    if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
        raise TypeError(f"Client({name}=...) is {wanted}, got {type(value).__name__} {value!r}")
    if not integer and _json.beyond_float(value):
        # Said here: math.isfinite raised "int too large to convert to float", naming no setting. (A count that large is
        # only a bound never reached; seconds are added to float clock times.)
        raise ValueError(f"Client({name}=...) is a number of seconds within a float's range (about 1.8e308), got an int of {_json.about_digits(value)}")
    if (not integer and not math.isfinite(value)) or value < 0 or (above_zero and value == 0):
        raise ValueError(f"Client({name}=...) is {wanted} {'above 0' if above_zero else '0 or more'}, got {value!r}")
    return value


def _run_body(method: str, name: str, input: Any, labels: Optional[Mapping[str, str]], **fields: Any) -> Dict[str, Any]:
    """A createRun body: the name, input and labels, and each of ``fields`` that is not None; refused unless JSON."""
    if not isinstance(name, (str, bytes, bytearray, memoryview)):
        # str() of anything would do: rt.run(os.environ.get("RUN_NAME")) made a run named "None".
        raise TypeError(f"rt.{method}(name): a run's name is a str, got {type(name).__name__} {name!r}")
    name = _text(name)
    body: Dict[str, Any] = {"name": name}
    for key, value in (("input", input), ("labels", _labels(method, labels)), *fields.items()):
        if value is not None:
            body[key] = value
    # Sent as the JSON it is now, numpy's numbers plain (the request's own encoding takes no others). Its depth is
    # the server's to refuse: the body adds a level, and a create's refusal is raised here at once.
    return cast(Dict[str, Any], json.loads(_json.dumps(f"rt.{method}({name!r}): input and labels", body, check_depth=False)))


def _labels(method: str, labels: Any) -> Optional[Dict[str, str]]:
    """A run's labels as sent, checked here: dict() of a list raised "cannot convert dictionary update sequence element #0",
    naming nothing, and an int key went as its str."""
    if labels is None:
        return None
    wanted = f"rt.{method}(labels=...) must be a dict of str keys to str values"
    if not isinstance(labels, collections.abc.Mapping):
        raise TypeError(f"{wanted}, got {type(labels).__name__} {labels!r:.100}")
    for key, value in labels.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError(f"{wanted}, got {type(key).__name__} {key!r:.100}: {type(value).__name__} {value!r:.100}")
    return dict(labels)


def _check_seq(method: str, after: Any) -> None:
    if isinstance(after, bool) or not isinstance(after, int):
        raise TypeError(f"{method}(after=...): a seq number (an int, 0 for the start), got {type(after).__name__} {after!r}")
    if after < 0:
        raise ValueError(f"{method}(after={after}): a seq number is 0 (the start) or more")


def _warn_if_not_ended(run_id: str, status: Optional[str]) -> None:
    """An archive of a run still going is whole, but an import refuses it: said now, not when a backup is needed."""
    if status is not None and status not in _sender.TERMINAL_STATUSES:
        warnings.warn(
            f"runtrail: run {run_id} is {status}: the archive holds its events so far, and an import takes only ended runs; export it again once it ends",
            RuntimeWarning,
            stacklevel=3,
        )


def _check_binary(file: Any, what: str, mode: str, content: str = "an archive") -> None:
    """Refuse a text file before any request: an archive (a log) is bytes, and a text file (``sys.stdout``, ``open(path)``)
    failed only at its first write or read, with a TypeError about str and bytes that named neither the call nor the fix."""
    if isinstance(file, io.TextIOBase):
        standard = getattr(file, "name", None) in ("<stdin>", "<stdout>")
        fix = f"pass sys.{file.name[1:-1]}.buffer" if standard else f"open it with mode {mode!r}"
        raise TypeError(f"{what}: {file!r} is a text file and {content} is bytes: {fix}, or give a path")


def _check_filters(method: str, filters: Mapping[str, Any]) -> None:
    for key, value in filters.items():
        # A list or dict would go as its repr: parentIds=[a, b] matched no run at all, silently.
        if value is not None and not isinstance(value, (str, int, float)):
            raise TypeError(
                f"{method}({key}=...): a filter is one str or number, got {type(value).__name__}; "
                "several parent ids are one string (parentIds='id1,id2'), a label is 'key=value'"
            )


def _check_str(method: str, arg: str, value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{method}({arg}=...) is a str, got {type(value).__name__} {value!r:.100}")
    return value


def _check_int(method: str, arg: str, value: Any) -> int:
    # bool is an int to Python, and True would go as 1 second.
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{method}({arg}=...) is an int, got {type(value).__name__} {value!r:.100}")
    return value


def _check_bool(method: str, arg: str, value: Any) -> bool:
    # A truthy string ("false") would otherwise mint a token that writes.
    if not isinstance(value, bool):
        raise TypeError(f"{method}({arg}=...) is a bool, got {type(value).__name__} {value!r:.100}")
    return value


def _remaining_size(source: BinaryIO) -> Optional[int]:
    """How many bytes a file object holds from where it stands to its end, or None for one that cannot tell (a pipe)."""
    try:
        if not source.seekable():
            return None
        here = source.tell()
        end = source.seek(0, os.SEEK_END)
        source.seek(here)
    except (OSError, ValueError):
        return None  # a stream that claims to seek and cannot: sent chunked, to its end
    return end - here


_Written = TypeVar("_Written")


def _write_into_place(
    dest: Union[str, "os.PathLike[str]"], default_name: str, what: str, arg: str, write: Callable[[BinaryIO], _Written]
) -> Tuple[str, _Written]:
    """Have ``write`` fill a file that takes ``dest`` (or ``default_name`` in the folder ``dest``) only once whole.

    A folder that does not exist is a ``FileNotFoundError`` naming it before
    ``write`` runs (not the hidden partial file); whatever ``write`` raises
    leaves no file behind. Returns the path written and what ``write`` returned.
    """
    path = os.fspath(dest)
    if os.path.isdir(path):
        path = os.path.join(path, default_name)
    elif path.endswith((os.sep, "/")):
        raise FileNotFoundError(errno.ENOENT, f"{what}: {arg} names a folder that does not exist; create it first", path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(errno.ENOENT, f"{what}: the folder of {arg} does not exist; create it first", folder)
    fd, partial = _partial_file(folder, os.path.basename(path))
    try:
        with os.fdopen(fd, "w+b") as sink:
            result = write(sink)
        os.replace(partial, path)
    except BaseException:
        os.unlink(partial)
        raise
    return path, result


def _partial_file(folder: str, base: str) -> Tuple[int, str]:
    """A new file beside the download's destination, made as ``open(path, "wb")`` would make it.

    Not ``tempfile.mkstemp``: its file is private (0600), and the finished
    download takes that file's place, so an artifact saved into a shared
    folder would be unreadable to everyone else. Mode 0666 lets the umask
    decide, as for any file the script writes.
    """
    while True:
        partial = os.path.join(folder, f".{base}.{secrets.token_hex(4)}.part")
        try:
            return os.open(partial, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666), partial
        except FileExistsError:
            continue  # another download's partial file has this name: draw another


_current: Dict[str, Run] = {}
_current_lock = threading.Lock()


def _after_fork_in_child() -> None:
    # A thread of the parent may have held it at the fork (it is held while the handle attaches, a request).
    global _current_lock
    _current_lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)


def current_run() -> Optional[Run]:
    """The run this process runs under (``RUNTRAIL_RUN_ID``, set by ``runtrail exec``), else None.

    The handle adds events to that run with the same API as ``rt.run``;
    ``runtrail exec`` owns it, heartbeats it and ends it when the command
    exits. The same handle is returned on every call.
    """
    run_id = os.environ.get("RUNTRAIL_RUN_ID")
    if not run_id:
        return None
    with _current_lock:
        # One a with-block closed is done: a later call gets a fresh handle.
        if run_id not in _current or _current[run_id]._sender.closed:
            _current[run_id] = Client().attach(run_id)
        return _current[run_id]


def _require_run(run: Optional[Run]) -> Run:
    if run is not None:
        return run
    found = current_run()
    if found is None:
        raise RuntrailError("invalid_request", "no run given and RUNTRAIL_RUN_ID is not set: pass run=... (a handle from rt.run)")
    return found
