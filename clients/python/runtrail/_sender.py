"""The background thread of a run: batches events, sends them in order, heartbeats."""

from __future__ import annotations

import atexit
import json
import os
import threading
import time
import weakref
from typing import Any, Callable, Dict, List, Optional

from . import _signals
from ._http import Http, is_retryable
from ._say import say
from ._server_watch import ServerWatch
from .errors import RuntrailError

TERMINAL_STATUSES = ("succeeded", "failed", "cancelled")
#: A batch's refusals that are about its events (too large, or data the server's schema refuses), not the server's state.
REFUSED_CODES = ("payload_too_large", "invalid_request")


class Sender:
    """Sends the events of one run from a daemon thread.

    Events wait in one queue and leave it only once the server stored them,
    so the server's seq order is the order they were queued in. A batch goes
    out ``flush_interval`` seconds after its first event, at once when
    ``max_batch`` events or ``max_batch_bytes`` of JSON wait, or when someone
    flushes; it holds at most that many (or one larger event). A batch the
    server refuses as too large (413) is sent again in halves, and no later
    batch is larger; a batch it refuses as invalid (400) is sent again in
    halves too. One event it refuses alone stops the sender, with the
    events before it stored and an error that names it. A failed batch is
    retried as it was, with the same event ids, for up to ``retry_for``
    seconds: the server stores an id once, so a retry after a lost answer
    never doubles an event. A second daemon thread heartbeats, so a step
    longer than the lease does not orphan the run: each heartbeat is held by
    the server until a cancel is requested or the run ends (or lease/3), and
    one it held is followed at once by the next, so the script hears of a
    cancel as it is made (an older server that answers at once is asked
    again lease/3 later).
    """

    def __init__(
        self,
        http: Http,
        run_id: str,
        owner: Optional[Dict[str, str]],
        *,
        id_prefix: str,
        lease_ttl_ms: int,
        heartbeat: bool,
        flush_interval: float,
        max_batch: int,
        max_batch_bytes: int,
        max_queued: int,
        queue_full_timeout: Optional[float],
        retry_for: float,
        on_stop: Callable[[str, str], None],
        watch: ServerWatch,
    ) -> None:
        self.http = http
        self.run_id = run_id
        self.owner = owner
        self.id_prefix = id_prefix
        self.flush_interval = flush_interval
        self.max_batch = max_batch
        self.max_batch_bytes = max_batch_bytes
        self.max_queued = max_queued
        # By default a full queue waits as long as the sender retries: a server
        # outage the events survive, the producer waits through too.
        self.queue_full_timeout = retry_for if queue_full_timeout is None else queue_full_timeout
        self.retry_for = retry_for
        self.beat_every = max(0.25, lease_ttl_ms / 3000.0) if heartbeat else None
        self.on_stop = on_stop
        self.watch = watch
        self._cond = threading.Condition()
        self._queue: List[Dict[str, Any]] = []
        self._sizes: List[int] = []  # bytes each queued event adds to a request
        self._queued_bytes = 0
        self._queued = 0  # events ever queued
        self._stored = 0  # events the server acknowledged
        self._flush_upto = 0  # send at once until this many are stored
        self._first_at: Optional[float] = None  # when the oldest unsent event was queued
        self._failure: Optional[BaseException] = None
        #: The error naming an event the server refused on its own (the run did not succeed, but may still end failed).
        self.refused: Optional[RuntrailError] = None
        self._failure_raised = False  # the script saw _failure once: later calls say it is that earlier error
        self._next_batch_cap: Optional[int] = None  # the one batch after a refused one holds at most this many
        self._closing = False
        self._stop = threading.Event()  # cuts a retry wait short on close()
        self._pid = os.getpid()
        self._forked = False  # set in a forked child, where this sender's threads do not exist
        self._thread = threading.Thread(target=self._loop, name=f"runtrail-{run_id}", daemon=True)
        self._thread.start()
        if self.beat_every is not None:
            threading.Thread(target=self._beat_loop, name=f"runtrail-{run_id}-heartbeat", daemon=True).start()
        _live.add(self)

    def enqueue(self, event_type: str, data_json: str, size: int) -> None:
        """Queue one event, its data as JSON text, that adds ``size`` bytes to a request; raises the error that stopped sending, if one did.

        The text was made at the call: a script changing the object it passed
        afterwards does not change the event, and the data is serialized once.
        """
        self._check_process()
        with self._cond:
            self._raise_if_stopped()
            if len(self._queue) >= self.max_queued:
                self._wait_for_room()
            # The id is given under the lock, so id order is queue order is seq order.
            event = {"type": event_type, "data_json": data_json, "ts": int(time.time() * 1000), "id": f"{self.id_prefix}.{self._queued}"}
            self._queue.append(event)
            self._sizes.append(size)
            self._queued_bytes += size
            self._queued += 1
            if self._first_at is None:
                self._first_at = time.monotonic()
            if len(self._queue) >= self.max_batch or self._queued_bytes >= self.max_batch_bytes or len(self._queue) == 1:
                self._cond.notify_all()

    def _raise_if_stopped(self) -> None:
        """Raise why no event can be queued any more; called under the lock."""
        if self._failure is not None:
            self._raise_failure()
        if self._closing:
            raise RuntrailError("run_already_terminal", f"run {self.run_id} has ended; no more events can be added")

    def _raise_failure(self) -> None:
        """Raise the error that stopped sending: as it was the first time, then said to be that earlier error.

        Every later call raises (its event would be lost otherwise), but a
        script that catches and logs them must not read each one as a new
        failure. A fresh exception each time also keeps one object's
        traceback from growing at every raise.
        """
        failure = self._failure
        assert failure is not None
        if not self._failure_raised or not isinstance(failure, RuntrailError):
            self._failure_raised = True
            raise failure
        raise RuntrailError(
            failure.code,
            f"run {self.run_id}'s sender stopped earlier on this error, and has sent nothing since: {failure.message}",
            failure.details,
            failure.status,
        ) from failure

    def is_refusal(self, err: BaseException) -> bool:
        """Whether ``err`` is the server's refusal of one of this run's events, as first raised or raised again later."""
        return self.refused is not None and (err is self.refused or err.__cause__ is self.refused)

    def _wait_for_room(self) -> None:
        """Block the producer while the queue is full (backpressure), up to ``queue_full_timeout``; called under the lock.

        The queue is bounded so a loop faster than the server cannot grow
        memory without end; blocking, rather than raising at once, lets a
        burst or a server restart pass without the script handling it.
        """
        started = time.monotonic()
        deadline = started + self.queue_full_timeout
        notice_at: Optional[float] = started + FLUSH_NOTICE_AFTER_S
        stored_before = self._stored
        self._cond.notify_all()
        while len(self._queue) >= self.max_queued:
            self._raise_if_stopped()
            now = time.monotonic()
            if now >= deadline:
                stored = self._stored - stored_before
                doing = (
                    f"stored none of them in {self.queue_full_timeout:g} s: it is unreachable or not answering (the sender retries for "
                    f"up to {self.retry_for:g} s, Client(retry_for=))"
                    if stored == 0
                    else f"stored only {stored} in {self.queue_full_timeout:g} s: this loop records events faster than it takes them "
                    "(its appendEventsPerSecond)"
                )
                raise RuntrailError(
                    "unavailable",
                    f"the queue of run {self.run_id} is full ({self.max_queued} events waiting, Client(max_queued=)) and the server at "
                    f"{self.http.base_url} {doing}; this event was not queued. Record less often (every Nth step), "
                    "or wait longer with Client(queue_full_timeout=)",
                    {"queued": len(self._queue), "maxQueued": self.max_queued, "storedWhileWaiting": stored},
                )
            if notice_at is not None and now >= notice_at:
                # A loop that stops moving must say why, as a long flush does.
                say(
                    f"runtrail: the queue of run {self.run_id} is full ({self.max_queued} events); waiting for the server at "
                    f"{self.http.base_url} to store some (up to {self.queue_full_timeout:g} s; Ctrl-C stops waiting)"
                )
                notice_at = None
            self._cond.wait(min(deadline, notice_at or deadline) - now)

    def flush(self, timeout: Optional[float] = None) -> None:
        """Return once every event queued before this call is stored; raise why if one cannot be."""
        self._check_process()
        started = time.monotonic()
        deadline = None if timeout is None else started + timeout
        notice_at: Optional[float] = started + FLUSH_NOTICE_AFTER_S
        with self._cond:
            target = self._queued
            self._flush_upto = max(self._flush_upto, target)
            self._cond.notify_all()
            while self._stored < target and self._failure is None:
                now = time.monotonic()
                remaining = None if deadline is None else deadline - now
                if remaining is not None and remaining <= 0:
                    raise RuntrailError(
                        "unavailable",
                        f"{target - self._stored} event(s) of run {self.run_id} were not stored within {timeout:.1f} s "
                        f"(server {self.http.base_url})",
                    )
                if notice_at is not None and now >= notice_at:
                    # A script that stops doing anything at its end must say what it waits for, and how to stop it.
                    bound = f"{timeout:.0f} s" if timeout is not None else f"{self.retry_for:.0f} s, retrying"
                    missing = target - self._stored
                    say(
                        f"runtrail: waiting for the server at {self.http.base_url} to store {missing} event{'' if missing == 1 else 's'} "
                        f"of run {self.run_id} (up to {bound}; Ctrl-C stops waiting)"
                    )
                    notice_at = None
                slice_ = None if notice_at is None else max(0.0, notice_at - now)
                self._cond.wait(slice_ if remaining is None else remaining if slice_ is None else min(remaining, slice_))
            if self._stored < target and self._failure is not None:
                self._raise_failure()

    def abandon(self) -> None:
        """Stop at once (the script was interrupted while it waited): nothing more is sent or retried, and the exit does not wait."""
        with self._cond:
            lost = self._queued - self._stored
            self._closing = True
            if self._failure is None:
                self._failure = RuntrailError("unavailable", f"sending the events of run {self.run_id} was interrupted")
            self._cond.notify_all()
        self._stop.set()
        _live.discard(self)
        _signals.closed(self)
        if lost:
            say(f"runtrail: {lost} events of run {self.run_id} were not stored (interrupted while waiting for {self.http.base_url})")

    @property
    def closed(self) -> bool:
        """Closed: it takes no more events."""
        return self._closing

    def close(self, timeout: float = 5.0) -> None:
        """Stop heartbeating and end the thread (after it sent what is queued, if it can)."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if not self._queue:
            self._stop.set()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)
        self._stop.set()
        _live.discard(self)
        _signals.closed(self)

    @property
    def in_forked_child(self) -> bool:
        """Whether this is a forked child's copy of a parent's sender (it has no thread here, and the run is not this process's)."""
        return self._forked

    def _check_process(self) -> None:
        if self._forked:
            raise RuntrailError(
                "invalid_request",
                f"run {self.run_id} was started in process {self._pid}, and this is a forked child ({os.getpid()}) "
                "that has no sender for it: its events would be lost. Record events in the process that started the run "
                "(for example from the results of pool.imap_unordered), or in the child use its own handle: "
                "runtrail.Client().attach(run_id), and flush() it before the child's task returns",
            )

    @property
    def full(self) -> bool:
        """Whether a new event would wait for room (the queue holds max_queued)."""
        with self._cond:
            return len(self._queue) >= self.max_queued

    @property
    def pending(self) -> int:
        """Events queued and not yet stored."""
        with self._cond:
            return self._queued - self._stored

    def _loop(self) -> None:
        while True:
            with self._cond:
                batch_bytes = 0
                while True:
                    if self._failure is not None or (self._closing and not self._queue):
                        return
                    now = time.monotonic()
                    if self._queue and (
                        self._closing
                        or len(self._queue) >= self.max_batch
                        or self._queued_bytes >= self.max_batch_bytes
                        or self._stored < self._flush_upto
                        # A producer waits for room: no batch timer holds back what would free it.
                        or len(self._queue) >= self.max_queued
                        or now - (self._first_at or now) >= self.flush_interval
                    ):
                        count = 0
                        cap = min(self.max_batch, self._next_batch_cap or self.max_batch)
                        self._next_batch_cap = None
                        # At least one event, however large: the call site let it through.
                        while (
                            count < len(self._queue)
                            and count < cap
                            and (count == 0 or batch_bytes + self._sizes[count] <= self.max_batch_bytes)
                        ):
                            batch_bytes += self._sizes[count]
                            count += 1
                        batch = self._queue[:count]
                        break
                    self._cond.wait(max(0.0, self.flush_interval - (now - (self._first_at or now))) if self._queue else None)
            self._send(batch, batch_bytes)

    def _send(self, batch: List[Dict[str, Any]], batch_bytes: int) -> None:
        events = ",".join(
            '{"type":%s,"data":%s,"ts":%d,"id":%s}' % (json.dumps(e["type"]), e["data_json"], e["ts"], json.dumps(e["id"]))
            for e in batch
        )
        owner = "" if self.owner is None else ',"owner":' + json.dumps(self.owner, allow_nan=False)
        body = ('{"events":[%s]%s}' % (events, owner)).encode("utf-8")
        try:
            answer = self.http.request(
                "appendEvents",
                {"id": self.run_id},
                data=body,
                headers={"content-type": "application/json"},
                retry_for=self.retry_for,
                stop=self._stop,
                observe=self.watch.appended,
            )
        except Exception as err:  # noqa: BLE001 - kept and raised to the script by the next enqueue/flush
            with self._cond:
                if isinstance(err, RuntrailError) and err.code in REFUSED_CODES:
                    if len(batch) > 1:
                        # Nothing of a refused batch is stored: send it again in halves, so
                        # the events around the one the server refuses are stored and it is
                        # named. Too large: a server with smaller limits than ours, so no
                        # later batch is larger. Invalid: only the next batch is halved.
                        if err.code == "payload_too_large":
                            self.max_batch = (len(batch) + 1) // 2
                            self.max_batch_bytes = (batch_bytes + 1) // 2
                        else:
                            self._next_batch_cap = (len(batch) + 1) // 2
                        return
                    err = self._refused(batch[0], err)
                    self.refused = err
            self._fail(err)
            return
        # Before the flush waiting on this batch returns: run.cancelled is true once it has.
        if isinstance(answer, dict) and answer.get("cancelRequested"):
            self.on_stop(_cancel_message(answer), "cancel_requested")
        with self._cond:
            del self._queue[: len(batch)]
            del self._sizes[: len(batch)]
            self._queued_bytes -= batch_bytes
            self._stored += len(batch)
            self._first_at = time.monotonic() if self._queue else None
            self._cond.notify_all()

    def _fail(self, err: BaseException) -> None:
        """Stop sending on ``err``: the run is told first why it stops, then the failure is kept for the script.

        In that order because the script, woken by the failure (a flush
        raising it), goes on to its next call boundary at once: the run must
        already say it ended there (``Cancelled``), not raise the failure again.
        """
        if isinstance(err, RuntrailError) and err.code == "run_already_terminal":
            # The server's message says how it ended (a timeout, the reaper): Cancelled carries it.
            self.on_stop(f"the run already ended on the server: {err.message}", "ended")
        elif isinstance(err, RuntrailError) and err.code == "lease_lost":
            # As Node's handle: a lease lost because the run ended (its details say how) is an end, not a takeover.
            ended = isinstance(err.details, dict) and err.details.get("status") in TERMINAL_STATUSES
            if ended:
                self.on_stop(f"the run already ended on the server: {err.message}", "ended")
            else:
                self.on_stop("another owner holds the run's lease (this process lost it)", "lease_lost")
        with self._cond:
            self._failure = err
            self._cond.notify_all()

    def _refused(self, event: Dict[str, Any], err: RuntrailError) -> RuntrailError:
        """Why the run's events stop at ``event``, which the server refused on its own (413 or 400); called under the lock."""
        fix = "Send smaller events (or raise the server's limit)" if err.code == "payload_too_large" else "Send data the server accepts"
        return RuntrailError(
            err.code,
            f"the server refused the {event['type']} event {event['id']} of run {self.run_id}: {err.message}. "
            f"The events queued before it are stored; it and the {len(self._queue) - 1} queued after it are not, "
            f"and no more are sent. {fix}, "
            "and end the run with run.fail() (leaving its with-block does)",
            {"type": event["type"], "id": event["id"], "server": err.details},
            err.status,
        )

    def _beat_loop(self) -> None:
        """Heartbeat until closed, one held heartbeat after another (see the class)."""
        period = self.beat_every or 1.0
        wait = min(period, MAX_HEARTBEAT_WAIT_S)
        while not self._stop.wait(0):
            started = time.monotonic()
            self._beat(wait)
            with self._cond:
                if self._failure is not None:
                    return
            # Held (it took the wait): the next one at once. Answered at once: the rest of the period.
            if self._stop.wait(max(0.0, wait - (time.monotonic() - started))):
                return

    def _beat(self, wait: float) -> None:
        body = {"owner": self.owner} if self.owner is not None else {}
        # A beat is retried only within its own period: the lease outlives several missed beats.
        try:
            answer = self.http.request(
                "heartbeat",
                {"id": self.run_id},
                {"waitMs": int(wait * 1000)},
                json_body=body,
                retry_for=self.beat_every or 1.0,
                stop=self._stop,
                timeout=wait + self.http.timeout,
                observe=self.watch.heartbeat,
            )
        except Exception as err:  # noqa: BLE001 - sorted just below
            # Closed while the heartbeat was held: nothing to report.
            if self._stop.is_set():
                return
            if not is_retryable(err):
                self._fail(err)
            # A server that did not answer: the next beat or append tries again.
            return
        if isinstance(answer, dict):
            status = answer.get("status")
            if status in TERMINAL_STATUSES:
                # Says how, as an append refused for the same reason does (an older server sends no error).
                error = answer.get("error")
                how = f" ({error.get('kind')}: {error.get('message')})" if isinstance(error, dict) else ""
                self.on_stop(f"the run already ended {status}{how} on the server", "ended")
            elif answer.get("cancelRequested"):
                self.on_stop(_cancel_message(answer), "cancel_requested")


def _cancel_message(answer: Dict[str, Any]) -> str:
    """Why the run stops: the requester's reason when one was given (``runtrail cancel --reason``; an older server sends none)."""
    reason = answer.get("cancelReason")
    return f"cancel requested: {reason}" if isinstance(reason, str) and reason else "cancel requested"


#: How long a flush waits before it says on stderr what it waits for.
FLUSH_NOTICE_AFTER_S = 2.0
#: The longest a heartbeat may ask the server to hold it (the protocol's MAX_HEARTBEAT_WAIT_MS).
MAX_HEARTBEAT_WAIT_S = 60.0

_live: "weakref.WeakSet[Sender]" = weakref.WeakSet()
#: How long the process may wait at exit for queued events, in total (``Client(exit_timeout=...)`` raises it).
exit_timeout = [10.0]


def _after_fork_in_child() -> None:
    """A forked child has copies of the parent's senders without their threads: they refuse events instead of losing them.

    The copies' locks (the queue's, and the stop event's, which the
    heartbeat thread waits on) may have been held by a sender thread at the
    fork; fresh ones mean the child raises instead of waiting forever on
    them. The parent still sends (and at its exit flushes) its own events.
    """
    for sender in list(_live):
        sender._forked = True
        sender._cond = threading.Condition()
        sender._stop = threading.Event()
        sender._stop.set()  # nothing runs here to be stopped
        _live.discard(sender)


os.register_at_fork(after_in_child=_after_fork_in_child)


@atexit.register
def _flush_at_exit() -> None:
    """Store what scripts queued before the interpreter exits, within ``exit_timeout`` seconds overall."""
    deadline = time.monotonic() + exit_timeout[0]
    for sender in list(_live):
        if sender.pending == 0:
            continue
        try:
            sender.flush(max(0.0, deadline - time.monotonic()))
        except Exception as err:  # noqa: BLE001 - reported: the process is exiting, there is no caller to raise to
            say(f"runtrail: events of run {sender.run_id} were not all stored before exit: {err}")
