"""``run.on_server_change``: hear once per outage when the server stops answering a run's requests, and when it answers again."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

from ._http import is_retryable
from ._say import say_exception


@dataclass(frozen=True)
class ServerChange:
    """The server a run sends to stopped answering (``state == "not_answering"``), or answers again (``"answering"``).

    Times are epoch seconds, as ``time.time()``. ``since``: when the first
    request of the outage failed. With ``not_answering``: ``error``, why it
    failed (a refused connection, a timeout, a 503), and
    ``lease_expires_at``, when the run's lease lapses unless a heartbeat
    reaches the server first (the reaper then ends the run ``orphaned``;
    None for a handle whose run another process heartbeats, such as
    ``runtrail exec``'s). With ``answering``: ``at``, when the first
    request after the outage was answered.
    """

    state: str
    since: float
    error: Optional[BaseException] = None
    lease_expires_at: Optional[float] = None
    at: Optional[float] = None


ServerChangeListener = Callable[[ServerChange], Any]


class ServerWatch:
    """Sorts every attempt of a run's requests (appends, heartbeats, artifacts, the end) into answered or not, as Node's watchServer.

    A retryable failure (unreachable, timed out, 503) is not answering; any
    answer, a refusal too, is answering. A request the run stopped itself
    (a held heartbeat when it closes) says nothing of the server.
    """

    def __init__(self, run_id: str, lease_ttl_ms: int, owned: bool) -> None:
        self.run_id = run_id
        self.lease_ttl = lease_ttl_ms / 1000.0
        self.owned = owned
        self.listener: Optional[ServerChangeListener] = None
        self._since: Optional[float] = None
        # The run was just created or attached: its lease runs from about now.
        self._lease_expires_at = time.time() + self.lease_ttl
        # Held while the listener runs: changes seen by several threads reach it one at a time, in order.
        self._lock = threading.RLock()

    def appended(self, sent_at: float, error: Optional[BaseException], answer: Any) -> None:
        """An attempt of an append ended (``Http.request``'s ``observe``): an owner's append renews the lease."""
        self._attempt(error, sent_at + self.lease_ttl if self.owned else None)

    def heartbeat(self, sent_at: float, error: Optional[BaseException], answer: Any) -> None:
        """An attempt of a heartbeat ended: the server says where it left the lease (an older one does not: from the sending)."""
        expires = answer.get("leaseExpiresAt") if isinstance(answer, dict) else None
        self._attempt(error, expires / 1000.0 if isinstance(expires, (int, float)) else sent_at + self.lease_ttl)

    def other(self, sent_at: float, error: Optional[BaseException], answer: Any) -> None:
        """An attempt of an artifact's upload or the run's end ended: it renews no lease."""
        self._attempt(error, None)

    def _attempt(self, error: Optional[BaseException], renewed_to: Optional[float]) -> None:
        with self._lock:
            if error is not None and is_retryable(error):
                if self._since is None:
                    self._since = time.time()
                    self._tell(ServerChange("not_answering", self._since, error, self._lease_expires_at if self.owned else None))
                return
            if renewed_to is not None and error is None:
                self._lease_expires_at = max(self._lease_expires_at, renewed_to)
            if self._since is not None:
                began, self._since = self._since, None
                self._tell(ServerChange("answering", began, at=time.time()))

    def _tell(self, change: ServerChange) -> None:
        listener = self.listener
        if listener is None:
            return
        try:
            listener(change)
        except Exception:  # noqa: BLE001 - said on stderr: a bug in the callback must not stop the run's requests
            say_exception(f"runtrail: the on_server_change callback of run {self.run_id} raised (the run goes on):")
