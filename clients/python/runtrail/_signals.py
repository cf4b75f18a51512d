"""SIGTERM as an exit the script's ``with rt.run(...)`` blocks see (see ``Terminated``)."""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Optional

from .errors import Terminated

_installed = [False]


def _on_sigterm(signum: int, frame: Optional[FrameType]) -> None:
    raise Terminated("SIGTERM")


def end_runs_on_sigterm() -> None:
    """Make SIGTERM raise ``Terminated``, once, unless the script handles SIGTERM itself.

    Only the main thread may set a signal handler; a run made in another
    thread leaves SIGTERM as it is (the process then dies at once, and the
    run is reaped orphaned when its lease lapses).
    """
    if _installed[0] or threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return
    signal.signal(signal.SIGTERM, _on_sigterm)
    _installed[0] = True
