"""The record every trace in the course is made of: a :class:`Span`.

No course_lib imports, so that recorders (:mod:`course_lib.trace`), pictures
(:mod:`course_lib.charts`) and chapter code can all use it without a cycle.
:class:`course_lib.trace.Span` is this same class.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = ["Span", "SpanSource"]


@dataclass(frozen=True, slots=True)
class Span:
    """One recorded interval: ``name`` ran on lane ``worker`` from ``start`` to ``end``.

    Times are seconds on the :func:`time.perf_counter` clock (or the clock the
    :class:`Tracer` was given).  ``thread`` is the thread name, ``task`` the
    asyncio task name or None, ``pid`` the process id.
    """

    name: str
    worker: str
    start: float
    end: float
    pid: int
    thread: str
    task: str | None = None

    @property
    def duration(self) -> float:
        """``end - start`` in seconds."""
        return self.end - self.start


class SpanSource(Protocol):
    """Anything with a ``spans`` attribute (a :class:`course_lib.trace.Tracer`, say)."""

    @property
    def spans(self) -> Sequence[Span]: ...
