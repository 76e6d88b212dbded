"""The hot path both recorders share: which lane a span is on, and the span itself.

:class:`ActiveSpan` is what ``span()`` returns (two clock reads and one append);
:func:`wrap` turns a function into one that records a span per call.  Both work
on any :class:`Recorder`: a :class:`course_lib.trace.Tracer` in the process that
owns the trace, a :class:`course_lib.trace.RemoteTracer` in a child process.

Part of the :mod:`course_lib.trace` package: notebooks import from the package.
"""

from __future__ import annotations

import functools
import inspect
import multiprocessing
import os
import types
from asyncio import current_task
from collections.abc import Awaitable, Callable
from threading import current_thread
from typing import Any, Generic, ParamSpec, Protocol, TypeVar, cast

from course_lib.internals import running_loop_or_none

P = ParamSpec("P")
R = TypeVar("R")
Clock = Callable[[], float]


class Recorder(Protocol):
    """What :class:`ActiveSpan` and :func:`wrap` need from a tracer."""

    _clock: Clock

    def _add(self, name: str, worker: str | None, start: float, end: float) -> None: ...

    def span(self, name: str, worker: str | None = None) -> ActiveSpan: ...


# --------------------------------------------------------------------------- lanes

# Code objects of tasks that belong to the Jupyter kernel itself: a notebook cell
# runs inside such a task, and its spans should carry the thread name, not an
# ever-changing "Task-123".
_HOST_CODE: dict[object, bool] = {}
_HOST_DIRS = tuple(f"{os.sep}{d}{os.sep}" for d in ("ipykernel", "IPython"))


def _is_host_code(code: object) -> bool:
    filename = getattr(code, "co_filename", "")
    return any(d in filename for d in _HOST_DIRS)


def thread_and_task() -> tuple[str, str | None]:
    """Name of the current thread and of the current asyncio task (None outside one)."""
    thread = current_thread().name
    loop = running_loop_or_none()
    if loop is None:
        return thread, None
    task = current_task(loop)
    if task is None:
        return thread, None
    code = getattr(task.get_coro(), "cr_code", None)
    if code is not None:
        host = _HOST_CODE.get(code)
        if host is None:
            host = _HOST_CODE[code] = _is_host_code(code)
        if host:
            return thread, None
    return thread, task.get_name()


def process_prefix() -> str:
    """``"Process-1/"`` inside a multiprocessing child, ``""`` in the main process."""
    if multiprocessing.parent_process() is None:
        return ""
    return multiprocessing.current_process().name + "/"


# --------------------------------------------------------------------------- recording


class ActiveSpan:
    """The context manager returned by ``span()``: two clock reads and one append."""

    __slots__ = ("_owner", "_name", "_worker", "_start")

    def __init__(self, owner: Recorder, name: str, worker: str | None) -> None:
        self._owner = owner
        self._name = name
        self._worker = worker
        self._start = 0.0

    def __enter__(self) -> None:
        self._start = self._owner._clock()

    def __exit__(self, *exc_info: object) -> None:
        owner = self._owner
        owner._add(self._name, self._worker, self._start, owner._clock())


class _Wrapped(Generic[P, R]):
    """A function that records one span per call; picklable when ``fn`` and its recorder are."""

    def __init__(self, recorder: Recorder, fn: Callable[P, R], name: str) -> None:
        self._recorder = recorder
        self._fn = fn
        self._span_name = name
        functools.update_wrapper(self, fn)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        with self._recorder.span(self._span_name):
            return self._fn(*args, **kwargs)

    def __get__(self, obj: object, objtype: type | None = None) -> Any:
        return self if obj is None else types.MethodType(self, obj)


def wrap(recorder: Recorder, fn: Callable[P, R], name: str | None) -> Callable[P, R]:
    span_name = name if name is not None else getattr(fn, "__qualname__", repr(fn))
    if inspect.iscoroutinefunction(fn):
        afn = cast(Callable[..., Awaitable[Any]], fn)

        @functools.wraps(fn)
        async def traced(*args: Any, **kwargs: Any) -> Any:
            with recorder.span(span_name):
                return await afn(*args, **kwargs)

        return cast(Callable[P, R], traced)
    return _Wrapped(recorder, fn, span_name)
