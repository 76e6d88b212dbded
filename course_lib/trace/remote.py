"""The child-process side of a trace: :class:`RemoteTracer` and its span files.

A :class:`RemoteTracer` appends each finished span as one JSON line to a file of
its own process in the directory its :class:`course_lib.trace.Tracer` owns; the
parent reads those files (see ``Tracer._merge``).  A ``generation`` file in the
same directory tells children when the parent cleared its spans.

Part of the :mod:`course_lib.trace` package: notebooks import from the package.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from course_lib.fileio import atomic_write
from course_lib.trace.recording import ActiveSpan, Clock, process_prefix, thread_and_task, wrap

P = ParamSpec("P")
R = TypeVar("R")


class _Sink:
    """One process's span file in a tracer directory (one line per span, appended)."""

    __slots__ = ("pid", "prefix", "directory", "generation", "fd", "drop_fd", "drop_path", "kept",
                 "dropped", "lock", "closed")

    def __init__(self, directory: str) -> None:
        self.pid = os.getpid()
        self.directory = directory
        self.generation = _read_generation(directory)
        self.prefix = process_prefix()
        stem = os.path.join(directory, f"{self.pid}-{secrets.token_hex(4)}")
        try:
            self.fd = os.open(stem + ".spans", os.O_WRONLY | os.O_APPEND | os.O_CREAT
                              | os.O_CLOEXEC, 0o600)
        except FileNotFoundError:
            raise _closed_error() from None
        self.drop_fd: int | None = None
        self.drop_path = stem + ".dropped"
        self.kept = 0
        self.dropped = 0
        self.lock = threading.Lock()
        self.closed = False

    def write(self, line: bytes, capacity: int) -> None:
        with self.lock:
            if self.closed:
                raise _closed_error()
            if self.kept >= capacity:
                # Full: unless the parent cleared its spans since, in which case
                # the count starts again (only this slow path pays for the check).
                generation = _read_generation(self.directory)
                if generation != self.generation:
                    self.generation = generation
                    self.kept = 0
            if self.kept < capacity:
                if os.fstat(self.fd).st_nlink == 0:  # the parent removed the directory
                    raise _closed_error()
                os.write(self.fd, line)
                self.kept += 1
            else:
                self.dropped += 1
                if self.drop_fd is None:
                    self.drop_fd = os.open(self.drop_path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC,
                                           0o600)
                os.pwrite(self.drop_fd, b"%20d\n" % self.dropped, 0)

    def close(self) -> None:
        with self.lock:
            if self.closed:
                return
            self.closed = True
            for fd in (self.fd, self.drop_fd):
                if fd is not None:
                    try:
                        os.close(fd)
                    except OSError:
                        pass


_GENERATION_FILE = "generation"


def _read_generation(directory: str) -> int:
    try:
        with open(os.path.join(directory, _GENERATION_FILE), "rb") as f:
            return int(f.read() or 0)
    except (OSError, ValueError):
        return 0


def write_generation(directory: str, generation: int) -> None:
    atomic_write(os.path.join(directory, _GENERATION_FILE), b"%d" % generation)


def _closed_error() -> RuntimeError:
    return RuntimeError(
        "the Tracer behind this RemoteTracer has been closed: keep the `with Tracer()` block "
        "open until every worker process has finished"
    )


_SINKS: dict[str, _Sink] = {}
_SINKS_LOCK = threading.Lock()


def _sink_for(directory: str) -> _Sink:
    with _SINKS_LOCK:
        sink = _SINKS.get(directory)
        if sink is None or sink.closed or sink.pid != os.getpid():
            sink = _SINKS[directory] = _Sink(directory)
        return sink


def close_sinks(directory: str) -> None:
    with _SINKS_LOCK:
        sink = _SINKS.pop(directory, None)
    if sink is not None:
        sink.close()


def _after_fork_in_child() -> None:
    # A forked child starts its own files; the inherited descriptors are closed and
    # the lock is replaced in case another thread held it at the moment of fork().
    global _SINKS_LOCK
    _SINKS_LOCK = threading.Lock()
    for sink in _SINKS.values():
        sink.lock = threading.Lock()
        sink.close()
    _SINKS.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class RemoteTracer:
    """The recorder :meth:`Tracer.for_process` returns, for use inside child processes.

    Same ``span`` / ``wrap`` / ``record`` API as :class:`Tracer`.  It pickles as
    the tracer's directory, capacity and clock, so it can be passed to
    ``multiprocessing.Process``, ``Pool`` (arguments or ``initargs``) and
    ``ProcessPoolExecutor``.  Each finished span is appended to a per-process
    file at once.  Recording after the parent tracer was closed raises
    :class:`RuntimeError`.
    """

    __slots__ = ("_dir", "_capacity", "_clock", "_sink")

    def __init__(self, directory: str, capacity: int, clock: Clock = time.perf_counter) -> None:
        self._dir = directory
        self._capacity = capacity
        self._clock = clock
        self._sink: _Sink | None = None

    def __reduce__(self) -> tuple[type[RemoteTracer], tuple[str, int, Clock]]:
        return (RemoteTracer, (self._dir, self._capacity, self._clock))

    def _add(self, name: str, worker: str | None, start: float, end: float) -> None:
        sink = self._sink
        if sink is None or sink.closed or sink.pid != os.getpid():
            sink = self._sink = _sink_for(self._dir)
        thread, task = thread_and_task()
        label = worker if worker is not None else sink.prefix + (task or thread)
        line = json.dumps([name, label, start, end, sink.pid, thread, task]) + "\n"
        sink.write(line.encode(), self._capacity)

    def span(self, name: str, worker: str | None = None) -> ActiveSpan:
        """Context manager recording one span (see :meth:`Tracer.span`)."""
        return ActiveSpan(self, name, worker)

    def wrap(self, fn: Callable[P, R], name: str | None = None) -> Callable[P, R]:
        """Decorator recording a span per call; picklable when ``fn`` is."""
        return wrap(self, fn, name)

    def record(self, name: str, start: float, end: float, worker: str | None = None) -> None:
        """Record a span measured elsewhere (``start``/``end`` on the tracer's clock)."""
        self._add(name, worker, float(start), float(end))

    def __repr__(self) -> str:
        return f"<RemoteTracer {self._dir!r}>"
