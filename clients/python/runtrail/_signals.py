"""SIGTERM as an exit the script's ``with rt.run(...)`` blocks see (see ``Terminated``), while this process has a run handle open.

Only then: with none open, SIGTERM is the default again (it ends the process).
A Python handler runs only between bytecodes of the main thread, and CPython
loses a SIGTERM that lands as the main thread enters a blocking call (a
multiprocessing lock's wait, say): a pool worker that had attached to a run
for one task and kept the handler sat in its task queue's lock after
``Pool.terminate()`` SIGTERMed it, and ``with Pool(...)`` waited for ever.
"""

from __future__ import annotations

import os
import signal
import threading
import weakref
from types import FrameType
from typing import Dict, List, Optional, Set

from .errors import Terminated

#: The process whose SIGTERM runtrail turned into Terminated (None: none). A forked child is not it.
_installed_in: List[Optional[int]] = [None]
#: The signal mask each forking thread had before runtrail blocked SIGTERM around its fork, by thread id.
_masks_before_fork: Dict[int, Set[signal.Signals]] = {}
#: The open run handles (their senders) of this process that SIGTERM ends.
_open: "weakref.WeakSet[object]" = weakref.WeakSet()


def _on_sigterm(signum: int, frame: Optional[FrameType]) -> None:
    if os.getpid() != _installed_in[0] or not _open:
        # A forked child that inherited the handler (its fork hook could not set the default back: it was forked
        # from a thread other than the main one), or no run is open here (the last one ended on a thread other than
        # the main one, where the handler could not be taken back): it dies of SIGTERM as it would without runtrail.
        _die_of_sigterm()
    raise Terminated("SIGTERM")


def _die_of_sigterm() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


def end_on_sigterm(handle: object) -> None:
    """While ``handle`` (a run's sender) is open, make SIGTERM raise ``Terminated`` in this process, unless the script handles SIGTERM itself.

    Only the main thread may set a signal handler; a run made in another
    thread leaves SIGTERM as it is (the process then dies at once, and the
    run is reaped orphaned when its lease lapses).
    """
    _open.add(handle)
    if _installed_in[0] == os.getpid() or threading.current_thread() is not threading.main_thread():
        return
    handler = signal.getsignal(signal.SIGTERM)
    if handler is not signal.SIG_DFL and handler is not _on_sigterm:
        return
    if handler is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _on_sigterm)
    # Else a forked child whose runs are its own now (its fork hook could not reset the handler): it is ours here too.
    _installed_in[0] = os.getpid()


def closed(handle: object) -> None:
    """``handle`` is done (its run ended, or the attached handle's block was left): with no other open, SIGTERM is the default again."""
    _open.discard(handle)
    if _open or _installed_in[0] != os.getpid() or threading.current_thread() is not threading.main_thread():
        # Still wanted, or not ours, or not settable from this thread (_on_sigterm then dies as the default does).
        return
    if signal.getsignal(signal.SIGTERM) is _on_sigterm:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _installed_in[0] = None


def _block_sigterm_before_fork() -> None:
    """Hold SIGTERM back in the forking thread, so a child never runs the parent's handler while Python sets it up.

    A Python handler runs at the next bytecode: in a child being set up that
    is inside the fork hooks, where the Terminated it raises is printed as
    "Exception ignored" and the SIGTERM is lost (or before them, where
    Python clears it), and the child lives on. ``multiprocessing.Pool``'s
    ``terminate()`` (leaving ``with Pool(...)``) SIGTERMs workers that may
    still be starting, then waits for them: it waited for ever.
    """
    if _installed_in[0] != os.getpid() or signal.getsignal(signal.SIGTERM) is not _on_sigterm:
        return
    _masks_before_fork[threading.get_ident()] = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})


def _unblock_sigterm_in_parent() -> None:
    mask = _masks_before_fork.pop(threading.get_ident(), None)
    if mask is not None:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def _default_sigterm_in_child() -> None:
    """In a forked child: SIGTERM does what it does without runtrail (it ends the process), then is let through.

    The child started no run (those of the parent are not its own; one it
    starts installs the handler again). A SIGTERM sent while it was held
    back is delivered at the unblocking, and ends the child.
    """
    mask = _masks_before_fork.pop(threading.get_ident(), None)
    _masks_before_fork.clear()  # other threads' entries are the parent's: those threads are not in this process
    _open.clear()  # the parent's runs: their senders are not in this process
    if mask is None:
        return
    try:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    except ValueError:
        pass  # forked from a thread other than the main one: no handler can be set here; _on_sigterm dies as the default does
    signal.pthread_sigmask(signal.SIG_SETMASK, mask)


if hasattr(os, "register_at_fork") and hasattr(signal, "pthread_sigmask"):
    os.register_at_fork(
        before=_block_sigterm_before_fork, after_in_parent=_unblock_sigterm_in_parent, after_in_child=_default_sigterm_in_child
    )
