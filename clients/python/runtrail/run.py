"""A producer's handle on one run: ``rt.run(...)``, ``run.phase``, ``run.call`` and the event methods."""

from __future__ import annotations

import asyncio
import atexit
import collections.abc
import functools
import inspect
import io
import itertools
import json
import math
import mimetypes
import os
import re
import sys
import threading
import time
import traceback
import uuid
import warnings
import weakref
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, Awaitable, Callable, Dict, List, Literal, Mapping, Optional, Tuple, Type, TypeVar, Union, cast

from ._http import backoff_delay
from ._limits import MAX_ERROR_MESSAGE_CHARS, MAX_EVENT_TYPE_CHARS, MAX_LABEL_CHARS, MAX_LOG_MESSAGE_CHARS
from ._routes import ARTIFACT_METADATA
from ._say import say
from . import _json, _sender, _signals
from ._sender import Sender
from ._server_watch import ServerChange, ServerWatch
from .errors import Cancelled, RuntrailError, Terminated

if TYPE_CHECKING:
    from .client import Client

F = TypeVar("F", bound=Callable[..., Any])
LOG_LEVELS = ("debug", "info", "warn", "error")
#: Longest error message the server keeps (FinishRunBody and call.failed).
MAX_ERROR_CHARS = MAX_ERROR_MESSAGE_CHARS
MAX_LOG_CHARS = MAX_LOG_MESSAGE_CHARS
#: Bytes of an event in a request besides its data and type: keys, quotes, ts, id.
_ENVELOPE_BYTES = 128


def describe(err: BaseException) -> str:
    """``Type: message`` of an exception, as call.failed and the run's error show it.

    NUL is written ``\\x00``: the server refuses NUL in error messages
    (PostgreSQL cannot store it), and the run must still end failed.
    """
    text = str(err).replace("\x00", "\\x00")
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _text(value: Any) -> str:
    """Free text (a log line, a label, a message) as the server stores it: bytes decoded as UTF-8, the rest as ``str()``.

    Bytes are what a script has from a subprocess or a socket; ``str(b"x")``
    would record ``b'x'``. Undecodable bytes become U+FFFD rather than
    failing the call: a log line is worth keeping even when mangled.
    """
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", errors="replace")
    return value if isinstance(value, str) else str(value)


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _finite(name: str, value: Any, minimum: Optional[float] = None) -> float:
    plain = _json.number(value)  # numpy's scalars too, sent as the plain number they hold
    if plain is not None and _json.beyond_float(plain):
        # Said here: math.isfinite raised "int too large to convert to float", naming no argument, and sent, the
        # server reads it as infinity and refuses the event, which stops the run's sender.
        raise ValueError(
            f"{name} must be a finite number within a float's range (about 1.8e308), got an int of {_json.about_digits(plain)}"
        )
    if plain is None or not math.isfinite(plain):
        raise ValueError(f"{name} must be a finite number, got {type(value).__name__} {value!r:.100}")
    if minimum is not None and plain < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return plain


def _count(what: str, value: Any) -> int:
    """A whole number 0 or more (``run.call``'s retries), checked: ``"2"`` raised "'<' not supported between instances
    of 'str' and 'int'", and 2.5, True or NaN were taken as some other number of retries, silently."""
    plain = _json.number(value)  # numpy's integers too
    if plain is None:
        raise TypeError(f"{what} must be a whole number, 0 or more, got {type(value).__name__} {value!r:.100}")
    if (isinstance(plain, float) and not (math.isfinite(plain) and plain.is_integer())) or plain < 0:
        raise ValueError(f"{what} must be a whole number, 0 or more, got {value!r:.100}")
    return int(plain)


def _seconds(what: str, value: Any, *, unbounded: bool = False) -> Optional[float]:
    """A number of seconds 0 or more, checked before anything is asked or queued; None stays None.

    ``"5"`` raised "unsupported operand type(s) for +: 'float' and 'str'" from deep inside, a negative one was a
    timeout at once (after the request it bounds), NaN never timed out. ``unbounded`` (a timeout): infinity, or
    more than a thread can wait (``threading.TIMEOUT_MAX``, some 292 years), is no bound, None.
    """
    if value is None:
        return None
    plain = _json.number(value)
    if plain is None:
        raise TypeError(f"{what} must be a number of seconds, got {type(value).__name__} {value!r:.100}")
    huge = _json.beyond_float(plain)
    seconds = (math.inf if plain > 0 else -math.inf) if huge else float(plain)
    if math.isnan(seconds) or seconds < 0 or (seconds == math.inf and not unbounded):
        shown = f"an int of {_json.about_digits(plain)}" if huge else f"{value!r:.100}"
        raise ValueError(f"{what} must be a number of seconds, 0 or more{'' if unbounded else ' and finite'}, got {shown}")
    if unbounded and seconds >= threading.TIMEOUT_MAX:
        return None
    return seconds


#: The event types a server knows (packages/protocol/src/events.ts); any other must start with "x.".
KNOWN_EVENT_TYPES = frozenset(
    (
        "run.started", "phase", "call.started", "call.succeeded", "call.failed", "call.retried", "progress", "metric",
        "counter", "meta", "log", "artifact", "run.cancel_requested", "run.stalled", "run.succeeded", "run.failed", "run.cancelled",
    )
)  # fmt: skip
#: Characters a server refuses in names (protocol text.ts nameText): C0, DEL, C1, and lone surrogates.
_NOT_IN_NAMES = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
MAX_NAME_CHARS = 200
#: The kinds a run's error may have (protocol events.ts RunErrorKind; a test compares them).
ERROR_KINDS = ("error", "timeout", "orphaned", "stalled", "cancelled", "interrupted")


def _name(what: str, value: Any) -> str:
    """A phase, metric or counter name as the server takes it, checked here: the server would refuse the whole batch."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be a non-empty str, got {value!r}")
    if len(value) > MAX_NAME_CHARS:
        raise ValueError(f"{what} must be at most {MAX_NAME_CHARS} characters, got {len(value)}")
    if _NOT_IN_NAMES.search(value):
        raise ValueError(f"{what} must not contain control characters or lone surrogates, got {value!r}")
    return value


class Run:
    """One run this process produces (from ``rt.run``, ``run.child`` or ``runtrail.current_run``).

    Use it as a context manager (``with``, or ``async with``, whose end waits
    off the event loop): leaving the block succeeds the run; an
    exception fails it with the exception's type and message (its traceback
    goes to the run's log), and ``runtrail.Cancelled`` ends it cancelled.
    Every method queues an event for the background sender and returns at
    once; ``flush()`` waits until the server stored them. The run's id is
    the server's: ``run.id`` is what every event, child and artifact carries.
    """

    def __init__(self, client: "Client", record: Mapping[str, Any], owner: Optional[Dict[str, str]], *, attached: bool = False) -> None:
        self.client = client
        self.id: str = record["id"]
        self.name: str = record["name"]
        self.parent_id: Optional[str] = record.get("parentId")
        self.lease_ttl_ms: int = int(record.get("leaseTtlMs") or 30_000)
        self._attached = attached
        self._owner = owner
        self._call_numbers = itertools.count(1)
        self._stop_reason: Optional[str] = None
        #: Why the run stops, as ``Cancelled.kind``: a cancel request, an end written elsewhere, or a lost lease.
        self._stop_kind = "ended"
        # Whether the stop was a cancel request (not an end written elsewhere, nor a lost lease).
        self._cancel_requested = False
        self._ended: Optional[Dict[str, Any]] = None
        #: What this handle ended the run with (status, message, kind, output): the same end again answers the run.
        self._ended_with: Optional[Tuple[str, Optional[str], Optional[str], Any]] = None
        self._output: Any = None
        self._has_output = False
        self._children: List[Run] = []
        self._lock = threading.Lock()
        #: Called once, from the sender's thread, when the run is asked to stop: they cut a call's wait to retry short.
        self._stop_wakers: List[Callable[[], None]] = []
        self._id_prefix = f"{owner['id'] if owner else uuid.uuid4()}.{uuid.uuid4().hex[:8]}"
        # Attached: the run's lease is its owner's (runtrail exec), which heartbeats it.
        self._watch = ServerWatch(self.id, self.lease_ttl_ms, owned=owner is not None and not attached)
        self._sender = Sender(
            client._http,
            self.id,
            owner,
            id_prefix=self._id_prefix,
            lease_ttl_ms=self.lease_ttl_ms,
            # A run attached under `runtrail exec` is heartbeated by exec, its owner.
            heartbeat=not attached,
            flush_interval=client.flush_interval,
            max_batch=client.max_batch,
            max_batch_bytes=client.max_batch_bytes,
            max_queued=client.max_queued,
            queue_full_timeout=client.queue_full_timeout,
            retry_for=client.retry_for,
            on_stop=self._stop,
            watch=self._watch,
        )

        _handles.add(self)
        # Until its sender closes, SIGTERM and SIGHUP end the block the handle is used in (see _signals).
        _signals.end_on_stop_signals(self._sender)
        if owner is not None and not attached:
            # Ended at exit if the script never did (no with block, no succeed/fail), in this process only (not a forked child).
            self._pid = os.getpid()
            _open_runs.add(self)

    def __repr__(self) -> str:
        return f"<runtrail.Run {self.name} {self.id}>"

    def __reduce__(self) -> Any:
        # Said plainly instead of pickle's "cannot pickle '_thread.lock' object" from deep inside multiprocessing.
        raise TypeError(
            f"a runtrail Run cannot be sent to another process (it owns this process's sender thread): record events "
            f"in the process that started run {self.id}, or send the worker the id and use runtrail.Client().attach(run_id) there"
        )

    @property
    def url(self) -> str:
        """The run's page in the dashboard."""
        return f"{self.client.url}/runs/{self.id}"

    @property
    def cancelled(self) -> bool:
        """True once the run was asked to stop (a cancel, or the server ended it): poll it in long loops."""
        return self._stop_reason is not None

    # -- lifecycle ---------------------------------------------------------

    def __enter__(self) -> "Run":
        return self

    def __exit__(self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException], tb: Optional[TracebackType]) -> Literal[False]:
        if self._sender.in_forked_child:
            # A child forked inside the block leaves it too (sys.exit in the child): the run is the parent's, which
            # ends it when it leaves the block itself; trying here only warned that it could not.
            return False
        if self._attached or self._ended is not None:
            if self._attached:
                # Done with the run here (a worker's task): its events stored, its sender thread stopped,
                # so a long-lived pool attaching once per task does not gather threads.
                try:
                    self.flush()
                finally:
                    self._sender.close()
            return False
        if exc is None and self._cancel_requested:
            # The script saw the cancel (it polled run.cancelled and stopped)
            # and left the block: the run ends cancelled, as if Cancelled had
            # been raised, not succeeded as though it had done all its work.
            self.finish("cancelled", message=self._stop_reason, kind="cancelled")
            return False
        # Told to stop (SIGTERM, SIGHUP): the end waits for the server no longer than the exit does, not retry_for.
        stopping = time.monotonic() + _sender.exit_timeout[0]
        if exc is None:
            try:
                self.succeed()
            except Terminated as err:
                # SIGTERM (SIGHUP) while the end waited for the server: ended as one in the block is, not left for the
                # exit to end orphaned as a run no block had ended.
                if self._ended is None:
                    self._end_failed_or_warn(str(err), kind="interrupted", deadline=stopping)
                raise
            except RuntrailError as err:
                # The server refused an event of the block, so it did not
                # succeed: the run ends failed with why, rather than waiting to
                # be reaped orphaned. (After an outage the server may still be
                # gone: the reaper ends that run.)
                if self._ended is None and self._sender.is_refusal(err):
                    # The refusal as first said, not "stopped earlier" around it.
                    self._end_failed_or_warn(describe(self._sender.refused or err))
                raise
            return False
        try:
            if isinstance(exc, Cancelled):
                self.finish("cancelled", message=exc.reason, kind="cancelled")
            else:
                formatted = "".join(traceback.format_exception(exc_type, exc, tb))
                # Not when the queue is full: that would wait for room (up to queue_full_timeout) before the
                # end's own wait, and a Ctrl-C there would escape the end instead of stopping its wait. The
                # run's error still carries the exception.
                if not self._sender.full:
                    try:
                        self.log(_truncate(formatted, MAX_LOG_CHARS), level="error")
                    except RuntrailError:
                        pass  # sending stopped on an error: the run still ends failed, with the block's exception
                # A cancelled task (asyncio.run's answer to Ctrl-C, a wait_for that timed out) is an interrupt as Ctrl-C is.
                kind = "interrupted" if isinstance(exc, (KeyboardInterrupt, Terminated, asyncio.CancelledError)) else "error"
                if isinstance(exc, Terminated):
                    self.finish("failed", message=str(exc), kind=kind, _deadline=stopping)
                else:
                    self.finish("failed", message=describe(exc), kind=kind)
        except RuntrailError as err:
            # The block's own exception is what the caller must see; how the
            # run could not be ended is said, not raised over it.
            warnings.warn(f"runtrail: could not record the end of run {self.id}: {err}", RuntimeWarning, stacklevel=2)
        return False

    async def __aenter__(self) -> "Run":
        return self.__enter__()

    async def __aexit__(
        self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException], tb: Optional[TracebackType]
    ) -> Literal[False]:
        """``__exit__``, its waits for the server (the flush, the end) made on a thread of their own so the event loop goes on.

        A daemon thread, not the loop's executor: a Ctrl-C again while the end
        waits stops the wait as it does in ``with`` (the sender is abandoned,
        the exit does not wait for this run), and the interpreter's exit does
        not join a thread still retrying an end nobody waits for.
        """
        loop = asyncio.get_running_loop()
        ended: "asyncio.Future[None]" = loop.create_future()

        def end() -> None:
            try:
                self.__exit__(exc_type, exc, tb)
            except BaseException as err:  # noqa: BLE001 - handed to the coroutine that awaits the end, raised there
                _settle_soon(loop, ended, err)
            else:
                _settle_soon(loop, ended, None)

        threading.Thread(target=end, name=f"runtrail-{self.id}-end", daemon=True).start()
        try:
            await ended
        except BaseException:
            if not ended.done() or ended.cancelled():
                # Interrupted while the end waited (the task cancelled again, a second Ctrl-C): stop waiting, as `with` does.
                self._sender.abandon()
            raise
        finally:
            if self._sender.closed:
                # Told again here, on the loop's thread (the main one, as a rule): the end's thread could not take
                # runtrail's signal handlers back (see _signals), this one can.
                _signals.closed(self._sender)
        return False

    def _end_failed_or_warn(self, message: str, kind: Optional[str] = None, deadline: Optional[float] = None) -> None:
        try:
            self.finish("failed", message=message, kind=kind, _deadline=deadline)
        except RuntrailError as err:
            warnings.warn(f"runtrail: could not record the end of run {self.id}: {err}", RuntimeWarning, stacklevel=3)

    def succeed(self, output: Any = None) -> Dict[str, Any]:
        """End the run ``succeeded`` (with ``output``, else what ``run.output`` set) and return the final run."""
        if output is not None:
            self.output(output)
        return self.finish("succeeded")

    def fail(self, error: Union[BaseException, str], kind: str = "error") -> Dict[str, Any]:
        """End the run ``failed`` with an exception or a message; returns the final run."""
        message = describe(error) if isinstance(error, BaseException) else _text(error)
        return self.finish("failed", message=message, kind=kind)

    def finish(self, status: str, *, message: Optional[str] = None, kind: Optional[str] = None, _deadline: Optional[float] = None) -> Dict[str, Any]:
        """Write the run's one terminal event after everything queued, and return the final run.

        ``status`` is ``succeeded``, ``failed`` (its ``message`` defaults to
        the status) or ``cancelled``. Children still open are ended first (failed/orphaned,
        or cancelled with a cancelled parent). The finish carries an id, so
        a retry after a lost answer gets the run, not a conflict; so does the
        same end again, while another end of a run this handle ended raises
        ``run_already_terminal``. A run that
        already ended on the server raises ``run_already_terminal``, except
        a cancel that the server (or a cancel request) had already written.
        A run that fails or is cancelled is ended so even after the server
        refused one of its events (413 or 400); such a run does not succeed:
        ``finish("succeeded")`` raises why.
        """
        if self._attached:
            raise RuntrailError("invalid_request", f"run {self.id} belongs to the process that started it (runtrail exec); it ends the run")
        # Checked here: the server's refusal of the end closed the handle, leaving the run running for its lease.
        if status not in ("succeeded", "failed", "cancelled"):
            raise ValueError(f"run.finish(status): status must be one of succeeded, failed, cancelled, got {status!r}")
        if kind is not None and kind not in ERROR_KINDS:
            raise ValueError(f"run {status}: kind must be one of {', '.join(ERROR_KINDS)}, got {kind!r}")
        if message is not None:
            message = _text(message).replace("\x00", "\\x00")  # NUL is refused (PostgreSQL cannot store it), as in describe()
        with self._lock:
            ended = self._ended
        if ended is not None:
            # The same end again answers the run; another one (a fail() after succeed()) is the script's mistake,
            # said as such: returning the succeeded run let a failure the script meant to record vanish.
            if self._ended_with == (status, message, kind, self._output if self._has_output else None):
                return ended
            raise RuntrailError(
                "run_already_terminal",
                f"run {self.id} already ended {ended.get('status')} (this handle ended it); it cannot also end {status}",
                {"runId": self.id, "status": ended.get("status")},
            )
        for child in list(self._children):
            if child._ended is None:
                if status == "cancelled":
                    child._finish_ignoring_end("cancelled", message=f"its parent run {self.id} was cancelled", kind="cancelled", deadline=_deadline)
                else:
                    child._finish_ignoring_end("failed", message=f"its parent run {self.id} ended before it did", kind="orphaned", deadline=_deadline)
        body: Dict[str, Any] = {"status": status, "id": f"{self._id_prefix}.finish"}
        if self._owner is not None:
            # Fencing: a finish from an owner that lost the lease is refused (409 lease_lost).
            body["owner"] = self._owner
        if message is not None or status == "failed":
            body["error"] = {"kind": kind or ("cancelled" if status == "cancelled" else "error"), "message": _truncate(message or status, MAX_ERROR_CHARS)}
        if self._has_output:
            body["output"] = self._output
        try:
            try:
                self._sender.flush(None if _deadline is None else max(0.0, _deadline - time.monotonic()))
            except RuntrailError as err:
                # The server refused an event: it is there, and still takes the end of a run that did not succeed.
                if status == "succeeded" or not self._sender.is_refusal(err):
                    raise
            retry_for = self.client.retry_for if _deadline is None else max(0.0, _deadline - time.monotonic())
            final = self.client._http.request("finishRun", {"id": self.id}, json_body=body, retry_for=retry_for, observe=self._watch.other)
        except RuntrailError as err:
            if err.code == "run_already_terminal" and status == "cancelled":
                final = self.client.get_run(self.id)
            else:
                if not (status == "succeeded" and self._sender.is_refusal(err)):
                    self._sender.close()
                # else the run is still open (run.fail() ends it): a closed sender would have the exit skip it, as
                # one abandoned by a Ctrl-C, leaving it running until its lease lapsed.
                raise
        except KeyboardInterrupt:
            # Ctrl-C while the end waits (for a server that does not answer): the user stopped
            # waiting, so the exit does not wait for this run again; its lease lapses on the server.
            self._sender.abandon()
            raise
        self._ended = final
        self._ended_with = (status, message, kind, self._output if self._has_output else None)
        self._sender.close()
        return cast(Dict[str, Any], final)

    def _finish_ignoring_end(self, status: str, *, message: str, kind: str, deadline: Optional[float] = None) -> None:
        try:
            self.finish(status, message=message, kind=kind, _deadline=deadline)
        except RuntrailError as err:
            if err.code != "run_already_terminal":
                raise

    def on_server_change(self, callback: Optional[Callable[[ServerChange], Any]]) -> None:
        """Call ``callback(change)`` when the server stops answering this run's requests, and when it answers again.

        Once per outage, however many retries it takes: a ``runtrail.ServerChange``
        with ``state`` ``"not_answering"`` (``since``, ``error``, and
        ``lease_expires_at``: when the reaper ends the run ``orphaned`` unless
        a heartbeat reaches the server first), then ``"answering"`` (``since``,
        ``at``). The run's events, heartbeats, artifacts and end are retried
        through the outage either way; this is for telling a person, who
        otherwise learns of it only once the run was reaped. It runs on the
        thread whose request noticed (often the run's sender thread), so it
        must return quickly and not wait for the server (no ``run.flush()``
        in it); an exception in it is printed to stderr and the run goes on.
        One callback per run: another replaces it, None removes it.
        """
        if callback is not None and not callable(callback):
            raise TypeError(f"on_server_change takes a function of one ServerChange (or None), got {type(callback).__name__}")
        self._watch.listener = callback

    def flush(self, timeout: Optional[float] = None) -> None:
        """Return once every event queued so far is stored; raise the reason if one could not be (or after ``timeout`` s)."""
        self._sender.flush(_seconds("run.flush(timeout=...)", timeout, unbounded=True))

    def _stop(self, reason: str, kind: str) -> None:
        with self._lock:
            if self._stop_reason is not None:
                return
            # Read without the lock (check_cancelled): the kind and cancel flag are in place before the reason says "stopped".
            self._stop_kind = kind
            self._cancel_requested = kind == "cancel_requested"
            self._stop_reason = reason
            wakers, self._stop_wakers = self._stop_wakers, []
        for wake in wakers:
            wake()

    def _when_stopped(self, wake: Callable[[], None]) -> Callable[[], None]:
        """Call ``wake`` once the run is asked to stop (at once if it was); returns what forgets it, for a wait that ended first."""
        with self._lock:
            if self._stop_reason is None:
                self._stop_wakers.append(wake)
                return lambda: self._forget_waker(wake)
        wake()
        return lambda: None

    def _forget_waker(self, wake: Callable[[], None]) -> None:
        with self._lock:
            if wake in self._stop_wakers:
                self._stop_wakers.remove(wake)

    def check_cancelled(self) -> None:
        """Raise ``runtrail.Cancelled`` if the run was asked to stop (what every call boundary does)."""
        self._check_not_ended()
        if self._stop_reason is not None:
            raise Cancelled(self.id, self._stop_reason, self._stop_kind)

    def _check_not_ended(self) -> None:
        """An event on a run this handle ended is the script's mistake, said as such: not ``Cancelled``, which nobody asked for."""
        ended = self._ended
        if ended is not None and not self._cancel_requested:
            raise RuntrailError(
                "run_already_terminal",
                f"run {self.id} already ended {ended.get('status')} (its with block was left, or succeed/fail/finish was called): "
                "it takes no more events; record them inside the block, or start another run",
                {"runId": self.id, "status": ended.get("status")},
            )

    # -- events ------------------------------------------------------------

    def event(self, event_type: str, data: Any = None) -> None:
        """Queue any event (``x.*`` for your own types).

        The data is checked here, at the call site: it must be JSON, and no
        larger than the server accepts in one event (``Client(max_event_data_bytes=...)``,
        1 MiB; 64 KiB for ``meta``). Larger data raises ``RuntrailError('payload_too_large')``
        naming the event, its size and the limit; it is not queued, and the run goes on.
        """
        self._check_not_ended()
        if not isinstance(event_type, str) or not (event_type in KNOWN_EVENT_TYPES or (event_type.startswith("x.") and len(event_type) > 2)):
            raise ValueError(f"event type must be a runtrail type or your own starting with 'x.' (such as 'x.{event_type}'), got {event_type!r}")
        # As the server takes a type (protocol EventInput): its refusal would stop the sender, losing the run's later events.
        if len(event_type) > MAX_EVENT_TYPE_CHARS:
            raise ValueError(f"event type must be at most {MAX_EVENT_TYPE_CHARS} characters, got {len(event_type)}")
        if _NOT_IN_NAMES.search(event_type):
            raise ValueError(f"event type must not contain control characters or lone surrogates, got {event_type!r}")
        if data is None:
            data = {}
        # As the request carries it: ASCII (escapes for the rest), so its length is its bytes.
        text = _json.dumps(f"{event_type} data", data)
        meta = event_type == "meta"
        limit = self.client.max_meta_bytes if meta else self.client.max_event_data_bytes
        if len(text) > limit:
            # The server counts compact UTF-8 JSON, no longer than the escaped text (bar floats such as
            # 1e20, which it writes out in full; the sender copes with its 413): measured only when it matters.
            size = len(json.dumps(json.loads(text), ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass"))
            if size > limit:
                setting = "max_meta_bytes, the server's maxMetaBytes" if meta else "max_event_data_bytes, the server's maxEventDataBytes"
                raise RuntrailError(
                    "payload_too_large",
                    f"the data of a {event_type} event is {size} bytes as JSON, over the limit of {limit} bytes ({setting}); "
                    "it was not queued and the run goes on: send less in one event, or store it with run.artifact()",
                    {"type": event_type, "bytes": size, "limit": limit},
                )
        self._sender.enqueue(event_type, text, len(text) + len(event_type) + _ENVELOPE_BYTES)

    def progress(self, done: float, total: Optional[float] = None, message: Optional[str] = None) -> None:
        """Record progress ``done`` of ``total`` (the snapshot shows percent and an ETA); a call boundary."""
        self.check_cancelled()
        data: Dict[str, Any] = {"done": _finite("done", done, 0)}
        if total is not None:
            data["total"] = _finite("total", total, 0)
        if message is not None:
            data["message"] = _truncate(_text(message), MAX_LABEL_CHARS)
        self.event("progress", data)

    def metric(self, name: str, value: float, step: Optional[float] = None) -> None:
        """Record a value of metric ``name`` (the snapshot keeps last/min/max/count and recent points)."""
        data: Dict[str, Any] = {"name": _name("metric name", name), "value": _finite("value", value)}
        if step is not None:
            data["step"] = _finite("step", step)
        self.event("metric", data)

    def counter(self, name: str, delta: float = 1) -> None:
        """Add ``delta`` to the named counter ``name``."""
        self.event("counter", {"name": _name("counter name", name), "delta": _finite("delta", delta)})

    def log(self, message: str, level: str = "info") -> None:
        """Add a line to the run's log; ``level`` is debug, info, warn or error. ``message`` is a str, or bytes (decoded as UTF-8)."""
        if not isinstance(message, (str, bytes, bytearray, memoryview)):
            # As a run's name is checked: str() of anything would do, and run.log(os.environ.get("X")) logged "None".
            raise TypeError(f"run.log(message): a log message is a str (or bytes), got {type(message).__name__} {message!r:.100}")
        if level not in LOG_LEVELS:
            raise ValueError(f"log level must be one of {', '.join(LOG_LEVELS)}, got {level!r}")
        self.event("log", {"level": level, "message": _truncate(_text(message), MAX_LOG_CHARS)})

    def meta(self, values: Optional[Mapping[str, Any]] = None, **more: Any) -> None:
        """Set free-form metadata keys on the run (``run.meta({"model": "gpt-4"})`` or ``run.meta(model="gpt-4")``)."""
        if values is not None and not isinstance(values, collections.abc.Mapping):
            # Checked here: dict() of a list raised "cannot convert dictionary update sequence element #0", naming nothing.
            raise TypeError(f"run.meta(values) must be a dict (or give keywords: run.meta(model=...)), got {type(values).__name__} {values!r:.100}")
        data = dict(values or {})
        data.update(more)
        self.event("meta", data)

    def output(self, value: Any) -> None:
        """Set the run's output, stored with its end."""
        # Kept as the JSON it is now (numpy's numbers plain), as an event's data is.
        self._output = json.loads(_json.dumps("run.output()", value))
        self._has_output = True

    # -- structure ---------------------------------------------------------

    def phase(self, name: str, timeout_ms: Optional[int] = None) -> "Phase":
        """A block recorded as a phase: started, then completed or failed. With ``timeout_ms`` the server fails the run if it stays open longer."""
        return Phase(self, name, timeout_ms)

    def call(
        self,
        label: str,
        retries: int = 0,
        *,
        call_id: Optional[str] = None,
        retry_delay: Union[None, float, Callable[[int], float]] = None,
    ) -> "Call":
        """One unit of work (an LLM call, a document), recorded as call.started then call.succeeded or call.failed.

        As a context manager (``with run.call("Evaluating doc 1"):``) an
        exception is recorded and re-raised. As a decorator or wrapper
        (``run.call("judge", retries=2)(judge)(doc)``) each invocation is one
        call, retried up to ``retries`` times (``call.failed`` with
        ``willRetry``, then ``call.retried``) after ``retry_delay`` seconds
        (default: backoff with jitter). Around an ``async def`` the wrapper is
        one too: the call is recorded when its coroutine ends, retries wait
        with ``asyncio.sleep``, and a cancelled task's call is recorded failed
        (``CancelledError``) and not retried. ``async with`` works as ``with``.
        Entering a call raises ``runtrail.Cancelled`` once the run was asked to
        stop; a cancel heard while a call waits to retry ends that wait at
        once: the call is recorded failed with the cancel and ``Cancelled`` raised.
        """
        retries = _count("run.call(retries=...)", retries)
        if retry_delay is not None and not callable(retry_delay):
            # Checked here, not at the first retry (where "1" was taken as 1 s, and "soon" raised naming nothing).
            retry_delay = _seconds("run.call(retry_delay=...)", retry_delay)
        return Call(self, label, retries, call_id, retry_delay)

    def child(
        self,
        name: str,
        input: Any = None,
        labels: Optional[Mapping[str, str]] = None,
        *,
        lease_ttl_ms: Optional[int] = None,
        timeout_ms: Optional[int] = None,
    ) -> "Run":
        """Start a child run (``parentId`` = this run) and return its handle; a child left open ends with its parent."""
        child = self.client.run(
            name, input=input, labels=labels, parent_id=self.id, lease_ttl_ms=self.lease_ttl_ms if lease_ttl_ms is None else lease_ttl_ms, timeout_ms=timeout_ms
        )
        self._children.append(child)
        return child

    def artifact(
        self,
        name: str,
        path_or_bytes: Union[str, "os.PathLike[str]", bytes, bytearray, memoryview],
        content_type: Optional[str] = None,
        metadata: Optional[Mapping[str, Any]] = None,
        *,
        replace: bool = False,
    ) -> Dict[str, Any]:
        """Store a file (a path) or bytes as the artifact ``name`` of this run and return the server's record.

        The record has ``ordinal`` (1, 2, ... per run), ``name``,
        ``contentType``, ``size``, ``sha256``, ``createdAt`` and ``metadata``.
        The content type defaults to a guess from the name (or the path);
        ``metadata`` is free JSON kept with it. Events queued before are
        stored first, so the run's ``artifact`` event comes after them.
        Putting the same name again with the same content is a no-op; other
        content is refused (409) unless ``replace=True``.
        """
        open_body: Callable[[], IO[bytes]]
        if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
            content = bytes(path_or_bytes)
            size = len(content)
            open_body = lambda: io.BytesIO(content)  # noqa: E731 - reopened for each attempt
            guess_from = name
        else:
            path = os.fspath(path_or_bytes)
            # Streamed from the file (never read whole into memory), exactly the size it has now.
            size = os.path.getsize(path)
            open_body = lambda: open(path, "rb")  # noqa: E731 - reopened for each attempt
            guess_from = path
        if content_type is None:
            content_type = mimetypes.guess_type(name)[0] or mimetypes.guess_type(guess_from)[0]
        # No type known here: none is sent, and the server sniffs it from the content.
        headers = {"content-type": content_type} if content_type else {}
        if metadata is not None:
            headers[ARTIFACT_METADATA] = _json.dumps(f"run.artifact({name!r}) metadata", metadata)
        self.flush()
        route_params = {"id": self.id, "name": name}
        query = {"replace": True if replace else None}
        try:
            record = self.client._http.request(
                "putArtifact",
                route_params,
                query,
                attempt=lambda: self.client._http.upload("putArtifact", route_params, query, open_body=open_body, size=size, headers=headers),
                retry_for=self.client.retry_for,
                observe=self._watch.other,
            )
        except RuntrailError as err:
            if err.code == "route_not_found":
                raise RuntrailError(
                    "route_not_found", f"the server at {self.client.url} does not store artifacts (it is older than this client)", err.details, err.status
                ) from err
            raise
        return cast(Dict[str, Any], record)

    def _begin_call(self, label: str, call_id: Optional[str]) -> str:
        self.check_cancelled()
        cid = call_id or f"c{next(self._call_numbers)}"
        if not isinstance(cid, str) or not 1 <= len(cid) <= MAX_NAME_CHARS:
            raise ValueError(f"call_id must be a str of 1 to {MAX_NAME_CHARS} characters, got {cid!r}")
        self.event("call.started", {"callId": cid, "label": _truncate(_text(label), MAX_LABEL_CHARS)})
        return cid


_Block = TypeVar("_Block", bound="_QueuesOnly")


class _QueuesOnly:
    """A with-block whose entering and leaving only queue events: nothing waits, so ``async with`` is ``with``."""

    def __enter__(self: _Block) -> _Block:
        raise NotImplementedError

    def __exit__(self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException], tb: Optional[TracebackType]) -> Literal[False]:
        raise NotImplementedError

    async def __aenter__(self: _Block) -> _Block:
        return self.__enter__()

    async def __aexit__(
        self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException], tb: Optional[TracebackType]
    ) -> Literal[False]:
        return self.__exit__(exc_type, exc, tb)


class Phase(_QueuesOnly):
    """A ``with run.phase(name):`` block."""

    def __init__(self, run: Run, name: str, timeout_ms: Optional[int]) -> None:
        self.run = run
        self.name = name
        self.timeout_ms = timeout_ms

    def __enter__(self) -> "Phase":
        self.run.check_cancelled()
        data: Dict[str, Any] = {"name": _name("phase name", self.name), "status": "started"}
        if self.timeout_ms is not None:
            # Checked here: the server refuses a timeout that is not a whole number of ms over 0, and its refusal stops the
            # sender (the run's later events lost), where int() took 0.5 to 0, -5 as it was and NaN with a message naming nothing.
            ms = _json.number(self.timeout_ms)
            if ms is None or not (1 <= ms <= 2**53 - 1) or ms != int(ms):
                raise ValueError(f"phase timeout_ms must be a whole number of milliseconds over 0, got {self.timeout_ms!r}")
            data["timeoutMs"] = int(ms)
        self.run.event("phase", data)
        return self

    def __exit__(self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException], tb: Optional[TracebackType]) -> Literal[False]:
        self.run.event("phase", {"name": self.name, "status": "completed" if exc is None else "failed"})
        return False



def _wake_soon(loop: asyncio.AbstractEventLoop, woken: "asyncio.Future[None]") -> None:
    """Resolve ``woken`` in its loop's thread: the run's stop is heard on the sender's thread."""
    try:
        loop.call_soon_threadsafe(lambda: woken.done() or woken.set_result(None))
    except RuntimeError:
        # The loop closed since the wait began (asyncio.run returned): nothing waits on it to wake.
        return


#: One attempt of a wrapped call: given the attempt's number (1, 2, ...), it calls the function with the caller's arguments.
_Attempt = Callable[[int], Any]


def _attempt_argument(fn: Callable[..., Any]) -> Callable[[Any, Any], _Attempt]:
    """How to call ``fn`` for one attempt: with ``attempt=`` the attempt's number when it has a parameter named so, as Node's
    ``run.call`` passes ``fn(attempt)``; else with the caller's arguments alone, so a function that takes none still works.

    Only a parameter named ``attempt`` that a keyword can fill gets it (not ``**kwargs``: a function that forwards its
    keywords to an API would pass it on), and not when the caller gave one: theirs wins.
    """
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        signature = None  # a builtin or C callable without a signature: it has no attempt parameter we can know of
    parameter = None if signature is None else signature.parameters.get("attempt")
    if parameter is None or parameter.kind not in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY):
        return lambda args, kwargs: lambda attempt: fn(*args, **kwargs)
    assert signature is not None

    def bind(args: Any, kwargs: Any) -> _Attempt:
        try:
            given = "attempt" in signature.bind_partial(*args, **kwargs).arguments
        except TypeError:
            given = True  # arguments the function refuses: called as given, so its own TypeError says what is wrong
        if given:
            return lambda attempt: fn(*args, **kwargs)
        return lambda attempt: fn(*args, **kwargs, attempt=attempt)

    return bind


def _settle_soon(loop: asyncio.AbstractEventLoop, future: "asyncio.Future[None]", error: Optional[BaseException]) -> None:
    """Resolve ``future`` in its loop's thread with ``error`` (raised where it is awaited) or None, unless it was cancelled."""

    def settle() -> None:
        if future.done():
            return  # cancelled: the coroutine stopped waiting for it
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)

    try:
        loop.call_soon_threadsafe(settle)
    except RuntimeError:
        # The loop closed since the wait began (asyncio.run returned after a Ctrl-C): nothing waits on it.
        return


def _is_async(fn: Callable[..., Any]) -> bool:
    """Whether calling ``fn`` only makes a coroutine: an ``async def``, a bound method or ``functools.partial`` of one, or an object with an ``async def __call__``."""
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(getattr(type(fn), "__call__", None))


class Call(_QueuesOnly):
    """What ``run.call(...)`` returns: a context manager for one call, or a decorator whose every invocation is a call."""

    def __init__(self, run: Run, label: str, retries: int, call_id: Optional[str], retry_delay: Union[None, float, Callable[[int], float]]) -> None:
        self.run = run
        self.label = label
        self.retries = retries
        self.call_id = call_id
        self.retry_delay = retry_delay
        self.id: Optional[str] = None
        self._started = 0.0

    def __enter__(self) -> "Call":
        if self.retries:
            raise TypeError("a with-block cannot be run again: use run.call(label, retries=N) as a decorator or wrapper to retry")
        self.id = self.run._begin_call(self.label, self.call_id)
        self._started = time.monotonic()
        return self

    def __exit__(self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException], tb: Optional[TracebackType]) -> Literal[False]:
        assert self.id is not None
        if exc is None:
            self.run.event("call.succeeded", {"callId": self.id, "durationMs": self._elapsed_ms()})
        else:
            self.run.event("call.failed", {"callId": self.id, "error": _truncate(describe(exc), MAX_ERROR_CHARS), "willRetry": False})
        return False

    def __call__(self, fn: F) -> F:
        attempt_of = _attempt_argument(fn)
        if _is_async(fn):
            # An async def's call only makes its coroutine: the call is what awaiting it does, so the wrapper
            # must be a coroutine function too (and look like one to code that checks, such as frameworks).
            @functools.wraps(fn)
            async def awaiting(*args: Any, **kwargs: Any) -> Any:
                return await self._await_attempts(attempt_of(args, kwargs))

            return cast(F, awaiting)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return self._invoke(attempt_of(args, kwargs))

        return cast(F, wrapper)

    def _elapsed_ms(self) -> float:
        return round((time.monotonic() - self._started) * 1000, 3)

    def _invoke(self, fn: "_Attempt") -> Any:
        """Make the call: ``fn(attempt)`` runs one attempt, retried as the call allows."""
        call_id = self.run._begin_call(self.label, self.call_id)
        started = time.monotonic()
        for attempt in itertools.count(1):
            try:
                result = fn(attempt)
            except BaseException as err:
                if not self._failed(call_id, err, attempt):
                    raise
                woken = threading.Event()
                forget = self.run._when_stopped(woken.set)
                try:
                    woken.wait(self._delay(attempt))
                except BaseException as stop:
                    self._failed(call_id, stop)
                    raise
                finally:
                    forget()
                self._retry_unless_stopped(call_id, attempt)
            else:
                if inspect.isawaitable(result):
                    # A function _is_async could not tell (a lambda or a sync decorator around an async def)
                    # returned its work to await: the call goes on, and is recorded, where that is awaited.
                    return self._await_attempts(fn, (call_id, started, attempt, result))
                self._succeeded(call_id, started)
                return result

    async def _await_attempts(self, fn: "_Attempt", begun: Optional[Tuple[str, float, int, Awaitable[Any]]] = None) -> Any:
        """``_invoke`` for work that is awaited: the same records and retries, waiting with ``asyncio.sleep``, never blocking the loop."""
        pending: Optional[Awaitable[Any]] = None
        if begun is None:
            call_id, started, attempt = self.run._begin_call(self.label, self.call_id), time.monotonic(), 1
        else:
            call_id, started, attempt, pending = begun
        while True:
            try:
                awaitable, pending = (pending if pending is not None else fn(attempt)), None
                result = await awaitable
            except BaseException as err:
                # asyncio.CancelledError is no Exception: recorded and raised, never retried, as Ctrl-C in the sync path.
                if not self._failed(call_id, err, attempt):
                    raise
                loop = asyncio.get_running_loop()
                woken: "asyncio.Future[None]" = loop.create_future()
                forget = self.run._when_stopped(functools.partial(_wake_soon, loop, woken))
                try:
                    await asyncio.wait((woken,), timeout=self._delay(attempt))
                except BaseException as stop:
                    self._failed(call_id, stop)
                    raise
                finally:
                    forget()
                self._retry_unless_stopped(call_id, attempt)
                attempt += 1
            else:
                self._succeeded(call_id, started)
                return result

    def _failed(self, call_id: str, err: BaseException, attempt: Optional[int] = None) -> bool:
        """Record ``call.failed`` for an attempt that raised ``err``; whether the call is retried.

        Only an ``Exception`` with attempts left on a run not asked to stop is.
        Without ``attempt`` the wait before a retry was interrupted (Ctrl-C, a
        cancelled task): the call ends failed with that, rather than staying in
        flight for ever after a ``willRetry`` no retry followed.
        """
        will_retry = (
            attempt is not None
            and attempt <= self.retries
            and isinstance(err, Exception)
            and not isinstance(err, Cancelled)
            and not self.run.cancelled
        )
        self.run.event("call.failed", {"callId": call_id, "error": _truncate(describe(err), MAX_ERROR_CHARS), "willRetry": will_retry})
        return will_retry

    def _retry_unless_stopped(self, call_id: str, attempt: int) -> None:
        """After the wait before a retry: record ``call.retried``, or, when the run was asked to stop meanwhile, end the call and raise ``Cancelled``.

        A cancel cuts that wait short (as Node's ``run.call`` does), rather
        than the script sleeping out a backoff of up to ``retry_delay`` for
        a run nobody wants any more. The call ends failed with the cancel,
        not in flight after a ``willRetry`` no retry followed.
        """
        reason = self.run._stop_reason
        if reason is not None:
            stop = Cancelled(self.run.id, reason, self.run._stop_kind)
            self._failed(call_id, stop)
            raise stop
        self.run.event("call.retried", {"callId": call_id, "attempt": attempt + 1})

    def _succeeded(self, call_id: str, started: float) -> None:
        self.run.event("call.succeeded", {"callId": call_id, "durationMs": round((time.monotonic() - started) * 1000, 3)})

    def _delay(self, attempt: int) -> float:
        if self.retry_delay is None:
            return backoff_delay(attempt, initial=0.2, maximum=10.0)
        if callable(self.retry_delay):
            # Checked as a number given is: raised here, the call is recorded failed with why.
            return cast(float, _seconds(f"what run.call's retry_delay returned for attempt {attempt}", self.retry_delay(attempt)))
        return self.retry_delay


#: Every handle of this process, whose locks a forked child makes anew (see _after_fork_in_child).
_handles: "weakref.WeakSet[Run]" = weakref.WeakSet()


def _after_fork_in_child() -> None:
    """A forked child's copies of the handles get fresh locks: a thread of the parent (the sender calling ``_stop``,
    a request telling ``on_server_change``) may have held one at the fork, and it is not in the child to release it.
    Their events still raise there (see ``_sender``); ending or polling them no longer waits for ever."""
    for run in list(_handles):
        run._lock = threading.Lock()
        run._watch._lock = threading.RLock()


os.register_at_fork(after_in_child=_after_fork_in_child)

#: Runs this process created (``rt.run``, ``run.child``) and may not have ended: those still open at exit are ended there.
_open_runs: "weakref.WeakSet[Run]" = weakref.WeakSet()


@atexit.register
def _end_open_runs_at_exit() -> None:
    """End ``failed`` the runs the script left open (no ``with`` block, no ``succeed``/``fail``), within ``exit_timeout``.

    Before, such a run showed ``running`` until its lease lapsed and the
    reaper ended it ``orphaned`` (30 s later by default), though the script
    was long gone. Registered after the sender's exit flush, so it runs
    first (atexit is last in, first out); parents before their children.
    """
    deadline = time.monotonic() + _sender.exit_timeout[0]
    runs = sorted((run for run in list(_open_runs) if run._pid == os.getpid()), key=lambda run: run.parent_id is not None)
    for run in runs:
        if run._ended is not None or run._sender.closed:
            continue  # ended (also as a parent's child), or abandoned by a Ctrl-C: the exit does not wait for it
        message = f"the script exited without ending run {run.id}: leave a `with rt.run(...)` block, or call run.succeed() or run.fail()"
        say(f"runtrail: {message}; ending it failed")
        try:
            run.finish("failed", message=message, kind="orphaned", _deadline=deadline)
        except Exception as err:  # noqa: BLE001 - reported: the process is exiting, there is no caller to raise to
            say(f"runtrail: could not end run {run.id} at exit (its lease will lapse on the server): {err}")
