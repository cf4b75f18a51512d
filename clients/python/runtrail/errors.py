"""The exceptions of the runtrail client."""

from __future__ import annotations

import signal
from typing import Any, Optional


class RuntrailError(Exception):
    """An error answered by a runtrail server, or a server that could not be reached.

    ``code`` is the server's stable error code (``run_not_found``,
    ``invalid_request``, ``run_already_terminal``, ``unavailable``, ...; the
    table is in docs/api.md), ``message`` says what was wrong and what to do,
    ``details`` is the server's extra data (for ``invalid_request``, the
    fields that were wrong). ``status`` is the HTTP status, or None when no
    server answered.
    """

    def __init__(self, code: str, message: str, details: Any = None, status: Optional[int] = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.details = details
        self.status = status

    def __reduce__(self) -> Any:
        # Rebuilt from its own fields: the default pickling passes only str(self)
        # to __init__, so an error raised in a multiprocessing worker could not be
        # unpickled in the parent, whose result thread died and left pool.map hanging.
        return (type(self), (self.code, self.message, self.details, self.status), self.__dict__)


class Cancelled(Exception):
    """Raised in the script at the next call boundary once its run was asked to stop.

    Someone cancelled the run (the dashboard, ``runtrail cancel``, or
    ``POST /api/v1/runs/:id/cancel``), or the server ended it without this
    process. It is raised again at every later boundary (``run.call``,
    ``run.phase``, ``run.progress``, ``runtrail.track``), so catching it by
    accident in a loop does not keep the script going. Leaving an ``rt.run``
    block with it ends the run ``cancelled``.

    ``kind`` says why, as the ``kind`` of Node's ``RunStopped``:
    ``"cancel_requested"`` (someone asked the run to stop), ``"ended"`` (the
    run ended without this process: its ``timeout_ms`` passed, the reaper,
    another finisher; ``reason`` says how) or ``"lease_lost"`` (another owner
    holds the run's lease). ``reason`` is Node's ``why``.
    """

    KINDS = ("cancel_requested", "ended", "lease_lost")

    def __init__(self, run_id: str, reason: str, kind: str = "ended") -> None:
        if kind not in self.KINDS:
            raise ValueError(f"Cancelled(kind=...) is one of {', '.join(self.KINDS)}, got {kind!r}")
        super().__init__(f"run {run_id}: {reason}")
        self.run_id = run_id
        self.reason = reason
        self.kind = kind

    def __reduce__(self) -> Any:
        # As RuntrailError's: a worker process's Cancelled must reach its parent whole.
        return (type(self), (self.run_id, self.reason, self.kind), self.__dict__)


class Terminated(SystemExit):
    """Raised in the main thread when the process gets SIGTERM (``docker stop``, a scheduler preempting a job) or SIGHUP (its terminal closed).

    runtrail turns these signals into this exit, each when the script has
    not set its own handler nor ignores it (``nohup`` ignores SIGHUP), so
    the process ends as Python ends: a ``with rt.run(...)`` block ends its
    run ``failed``, kind ``interrupted``, with the events it had queued
    (rather than the run being reaped ``orphaned`` a lease later without
    them), ``finally`` blocks and ``atexit`` handlers run, and the exit
    status is 128 + the signal's number, as a shell reports a death by that
    signal: 143 for SIGTERM, 129 for SIGHUP. ``signal_name`` says which.
    """

    def __init__(self, signal_name: str = "SIGTERM") -> None:
        super().__init__(128 + _signal_number(signal_name))
        self.signal_name = signal_name

    def __str__(self) -> str:
        return f"the producer process was stopped by {self.signal_name}"

    def __reduce__(self) -> Any:
        return (type(self), (self.signal_name,), self.__dict__)


def _signal_number(name: str) -> int:
    """The number of signal ``name`` here; SIGTERM's for a name that is none (a caller's own label), the status Terminated always had."""
    try:
        return int(signal.Signals[name])
    except KeyError:
        return int(signal.SIGTERM)
