"""SIGTERM and SIGHUP as an exit the script's ``with rt.run(...)`` blocks see (see ``Terminated``), while this process has a run handle open.

SIGTERM is how a process is told to stop (``docker stop``, a scheduler
preempting a job); SIGHUP is what it gets when its terminal closes (a
terminal window, an ssh session that drops), the commonest end of an
interactive script. Both end a process at once by default; here they end
it as Python ends, with its runs ended ``interrupted``. Windows has no
SIGHUP: SIGTERM alone there.

Only while a run handle is open: with none, each is the default again (it
ends the process). A Python handler runs only between bytecodes of the main
thread, and CPython loses a signal that lands as the main thread enters a
blocking call (a multiprocessing lock's wait, say): a pool worker that had
attached to a run for one task and kept the handler sat in its task queue's
lock after ``Pool.terminate()`` SIGTERMed it, and ``with Pool(...)`` waited
for ever.

A signal the script handles itself, or ignores (``nohup`` runs it with
SIGHUP ignored), is left as it is: only one at its default is taken.
"""

from __future__ import annotations

import os
import signal
import threading
import weakref
from types import FrameType
from typing import Dict, List, Optional, Set

from .errors import Terminated

#: The signals runtrail turns into Terminated, where the platform has them.
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))

#: The process whose stop signals runtrail turned into Terminated (None: none). A forked child is not it.
_installed_in: List[Optional[int]] = [None]
#: The signal mask each forking thread had before runtrail blocked its stop signals around its fork, by thread id.
_masks_before_fork: Dict[int, Set[signal.Signals]] = {}
#: The open run handles (their senders) of this process that a stop signal ends.
_open: "weakref.WeakSet[object]" = weakref.WeakSet()


def _on_stop_signal(signum: int, frame: Optional[FrameType]) -> None:
    if os.getpid() != _installed_in[0] or not _open:
        # A forked child that inherited the handler (its fork hook could not set the default back: it was forked
        # from a thread other than the main one), or no run is open here (the last one ended on a thread other than
        # the main one, where the handler could not be taken back): it dies of the signal as it would without runtrail.
        _die_of(signum)
    raise Terminated(signal.Signals(signum).name)


def _die_of(signum: int) -> None:
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _ours() -> Set[signal.Signals]:
    """The stop signals whose handler is runtrail's now."""
    return {s for s in STOP_SIGNALS if signal.getsignal(s) is _on_stop_signal}


def end_on_stop_signals(handle: object) -> None:
    """While ``handle`` (a run's sender) is open, make SIGTERM and SIGHUP raise ``Terminated`` in this process, each unless the script handles or ignores it.

    Only the main thread may set a signal handler; a run made in another
    thread leaves the signals as they are (the process then dies at once,
    and the run is reaped orphaned when its lease lapses).
    """
    _open.add(handle)
    if _installed_in[0] == os.getpid() or threading.current_thread() is not threading.main_thread():
        return
    for signum in STOP_SIGNALS:
        if signal.getsignal(signum) is signal.SIG_DFL:
            signal.signal(signum, _on_stop_signal)
        # Else the script's own handler, or SIG_IGN (nohup), stays; or it is ours already: a forked child whose fork
        # hook could not reset the handler, whose runs are its own now, so it is ours here too.
    if _ours():
        _installed_in[0] = os.getpid()


def closed(handle: object) -> None:
    """``handle`` is done (its run ended, or the attached handle's block was left): with no other open, the stop signals are the default again."""
    _open.discard(handle)
    if _open or _installed_in[0] != os.getpid() or threading.current_thread() is not threading.main_thread():
        # Still wanted, or not ours, or not settable from this thread (_on_stop_signal then dies as the default does).
        return
    for signum in _ours():
        signal.signal(signum, signal.SIG_DFL)
    _installed_in[0] = None


def _block_stop_signals_before_fork() -> None:
    """Hold the stop signals back in the forking thread, so a child never runs the parent's handler while Python sets it up.

    A Python handler runs at the next bytecode: in a child being set up that
    is inside the fork hooks, where the Terminated it raises is printed as
    "Exception ignored" and the signal is lost (or before them, where
    Python clears it), and the child lives on. ``multiprocessing.Pool``'s
    ``terminate()`` (leaving ``with Pool(...)``) SIGTERMs workers that may
    still be starting, then waits for them: it waited for ever.
    """
    ours = _ours()
    if _installed_in[0] != os.getpid() or not ours:
        return
    _masks_before_fork[threading.get_ident()] = signal.pthread_sigmask(signal.SIG_BLOCK, ours)


def _unblock_stop_signals_in_parent() -> None:
    mask = _masks_before_fork.pop(threading.get_ident(), None)
    if mask is not None:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def _default_stop_signals_in_child() -> None:
    """In a forked child: the stop signals do what they do without runtrail (end the process), then are let through.

    The child started no run (those of the parent are not its own; one it
    starts installs the handler again). A signal sent while they were held
    back is delivered at the unblocking, and ends the child.
    """
    mask = _masks_before_fork.pop(threading.get_ident(), None)
    _masks_before_fork.clear()  # other threads' entries are the parent's: those threads are not in this process
    _open.clear()  # the parent's runs: their senders are not in this process
    if mask is None:
        return
    try:
        for signum in _ours():
            signal.signal(signum, signal.SIG_DFL)
    except ValueError:
        pass  # forked from a thread other than the main one: no handler can be set here; _on_stop_signal dies as the default does
    signal.pthread_sigmask(signal.SIG_SETMASK, mask)


if hasattr(os, "register_at_fork") and hasattr(signal, "pthread_sigmask"):
    os.register_at_fork(
        before=_block_stop_signals_before_fork,
        after_in_parent=_unblock_stop_signals_in_parent,
        after_in_child=_default_stop_signals_in_child,
    )
