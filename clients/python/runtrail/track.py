"""``runtrail.track``: progress of a loop, tqdm-style, over an iterable or (with ``async for``) an async iterable."""

from __future__ import annotations

import time
from typing import Any, AsyncIterable, AsyncIterator, Iterable, Iterator, Optional, TypeVar, Union, overload

from .client import _require_run
from .run import Run, _seconds

T = TypeVar("T")


@overload
def track(iterable: AsyncIterable[T], run: Optional[Run] = None, total: Optional[int] = None, every: float = 0.1, message: Optional[str] = None) -> AsyncIterator[T]: ...


@overload
def track(iterable: Iterable[T], run: Optional[Run] = None, total: Optional[int] = None, every: float = 0.1, message: Optional[str] = None) -> Iterator[T]: ...


def track(
    iterable: Union[Iterable[T], AsyncIterable[T]], run: Optional[Run] = None, total: Optional[int] = None, every: float = 0.1, message: Optional[str] = None
) -> Union[Iterator[T], AsyncIterator[T]]:
    """Yield the items of ``iterable`` and record the run's progress as they are done.

    An item counts as done when the loop asks for the next one. ``total``
    defaults to ``len(iterable)`` when it has one; ``run`` to
    ``runtrail.current_run()``. Progress is sent at most every ``every``
    seconds, and always for the last item. Each step is a call boundary:
    ``runtrail.Cancelled`` is raised there once the run was asked to stop.
    An async iterable (an async generator, a stream of results) is tracked
    the same way with ``async for``.
    """
    # Checked here, not at the first item's progress: "0.1" raised "'>=' not supported", naming nothing, and NaN sent none.
    _seconds("track(every=...)", every, unbounded=True)
    if hasattr(iterable, "__aiter__") and not hasattr(iterable, "__iter__"):
        return _track_async(iterable, run, total, every, message)  # type: ignore[arg-type]
    return _track(iterable, run, total, every, message)  # type: ignore[arg-type]


class _Steps:
    """What both loops record: progress 0 at the start, then as items are done (at most every ``every`` s), and the end's."""

    def __init__(self, iterable: Any, run: Optional[Run], total: Optional[int], every: float, message: Optional[str]) -> None:
        self.run = _require_run(run)
        if total is None:
            try:
                total = len(iterable)
            except TypeError:
                total = None  # a generator: progress without a total
        self.total = total
        self.every = every
        self.message = message
        self.done = 0
        self.run.progress(0, total, message)
        self.last_sent = time.monotonic()

    def before(self) -> None:
        self.run.check_cancelled()

    def after(self) -> None:
        self.done += 1
        now = time.monotonic()
        if now - self.last_sent >= self.every or self.done == self.total:
            self.run.progress(self.done, self.total, self.message)
            self.last_sent = now

    def end(self) -> None:
        if self.done != self.total:
            self.run.progress(self.done, self.total if self.total is not None and self.total > self.done else self.done, self.message)


def _track(iterable: Iterable[T], run: Optional[Run], total: Optional[int], every: float, message: Optional[str]) -> Iterator[T]:
    steps = _Steps(iterable, run, total, every, message)
    for item in iterable:
        steps.before()
        yield item
        steps.after()
    steps.end()


async def _track_async(iterable: AsyncIterable[T], run: Optional[Run], total: Optional[int], every: float, message: Optional[str]) -> AsyncIterator[T]:
    steps = _Steps(iterable, run, total, every, message)
    async for item in iterable:
        steps.before()
        yield item
        steps.after()
    steps.end()
