"""What every module of :mod:`course_lib.sync` shares: argument checks, lanes, tracer types.

Not meant for notebooks (hence no ``__all__``): the sync modules import these
names from here.
"""

from __future__ import annotations

import multiprocessing
import operator
import threading
from collections.abc import Callable
from typing import Any, Protocol

Clock = Callable[[], float]


class Recorder(Protocol):
    """What the instruments need from a :class:`course_lib.Tracer` (or its RemoteTracer)."""

    def record(self, name: str, start: float, end: float, worker: str | None = None) -> None: ...


class SpanRecorder(Recorder, Protocol):
    """A :class:`Recorder` that can also open a span (``with tracer.span(name): ...``)."""

    def span(self, name: str, worker: str | None = None) -> Any: ...


def lane() -> str:
    """A timeline lane for the caller: the process name in a child process, else the thread name."""
    if multiprocessing.parent_process() is not None:
        return multiprocessing.current_process().name
    return threading.current_thread().name


def check_int(value: object, name: str, minimum: int = 0) -> int:
    """``value`` as an int (not a bool) that is at least ``minimum``; TypeError or ValueError."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got a bool")
    try:
        number = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"{name} must be an int, got {type(value).__name__}") from None
    if number < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {number}")
    return number


def check_seconds(value: object, name: str, allow_none: bool = False) -> float:
    """``value`` as a finite number of seconds >= 0 (None gives -1.0 when ``allow_none``)."""
    if value is None and allow_none:
        return -1.0
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, got {type(value).__name__}")
    seconds = float(value)
    if not seconds >= 0 or seconds == float("inf"):
        raise ValueError(f"{name} must be a finite number of seconds >= 0, got {value!r}")
    return seconds


def check_lock(lock: object, name: str = "lock") -> None:
    """TypeError unless ``lock`` has callable ``acquire`` and ``release`` methods."""
    if not (callable(getattr(lock, "acquire", None)) and callable(getattr(lock, "release", None))):
        raise TypeError(
            f"{name} must be a lock (with acquire() and release()), got {type(lock).__name__}: "
            "create one with threading.Lock() or course_lib.mp_context().Lock()"
        )


def acquire_within(lock: Any, timeout: float | None) -> bool:
    """``acquire`` with a timeout for threading and multiprocessing locks alike (None: forever)."""
    if timeout is None:
        return bool(lock.acquire(True))
    return bool(lock.acquire(True, timeout))  # positional: (blocking, timeout) and (block, timeout)
