"""``runtrail.track``: progress of a loop, tqdm-style."""

from __future__ import annotations

import time
from typing import Iterable, Iterator, Optional, TypeVar

from .client import _require_run
from .run import Run

T = TypeVar("T")


def track(iterable: Iterable[T], run: Optional[Run] = None, total: Optional[int] = None, every: float = 0.1, message: Optional[str] = None) -> Iterator[T]:
    """Yield the items of ``iterable`` and record the run's progress as they are done.

    An item counts as done when the loop asks for the next one. ``total``
    defaults to ``len(iterable)`` when it has one; ``run`` to
    ``runtrail.current_run()``. Progress is sent at most every ``every``
    seconds, and always for the last item. Each step is a call boundary:
    ``runtrail.Cancelled`` is raised there once the run was asked to stop.
    """
    target = _require_run(run)
    if total is None:
        try:
            total = len(iterable)  # type: ignore[arg-type]
        except TypeError:
            total = None  # a generator: progress without a total
    done = 0
    target.progress(0, total, message)
    last_sent = time.monotonic()
    for item in iterable:
        target.check_cancelled()
        yield item
        done += 1
        now = time.monotonic()
        if now - last_sent >= every or done == total:
            target.progress(done, total, message)
            last_sent = now
    if done != total:
        target.progress(done, total if total is not None and total > done else done, message)
