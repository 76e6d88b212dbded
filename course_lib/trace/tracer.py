"""The parent side of a trace: :class:`Tracer` (see :mod:`course_lib.trace`).

Part of the :mod:`course_lib.trace` package: notebooks import from the package.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import time
import weakref
from collections.abc import Callable
from threading import current_thread
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from course_lib.fileio import atomic_write_with
from course_lib.internals import running_loop_or_none
from course_lib.spans import Span
from course_lib.trace.recording import ActiveSpan, Clock, process_prefix, thread_and_task, wrap
from course_lib.trace.remote import RemoteTracer, close_sinks, write_generation
from course_lib.trace.report import TraceSummary, chrome_trace

if TYPE_CHECKING:
    from matplotlib.axes import Axes


P = ParamSpec("P")
R = TypeVar("R")

# A span as recorded on the hot path: (name, worker or None, start, end, thread, task).
_LocalRecord = tuple[str, str | None, float, float, str, str | None]
# A span read back from a child process: (name, worker, start, end, pid, thread, task).
_RemoteRecord = tuple[str, str, float, float, int, str, str | None]

# --------------------------------------------------------------------------- Tracer


def _remove_dir(path: str, owner_pid: int) -> None:
    # Only the process that made the directory removes it: a forked child that
    # inherited the Tracer must not delete its parent's files.
    if os.getpid() == owner_pid:
        shutil.rmtree(path, ignore_errors=True)


class Tracer:
    """Collects spans from threads, asyncio tasks and (through :meth:`for_process`) processes.

    Use it as a context manager (``with Tracer() as tr:``) or call :meth:`close`
    when done; the spans stay readable after closing.  ``capacity`` bounds the
    spans kept in memory (and per child process on disk); the rest are counted
    in :attr:`dropped`.  ``clock`` returns seconds (inject a fake one in tests);
    child processes must use a picklable clock comparable across processes.
    Inside a child process, record through ``tr.for_process()`` (a Tracer
    cannot be pickled; a forked child's copy of it forwards its spans too).
    """

    __slots__ = (
        "_capacity",
        "_clock",
        "_pid",
        "_lock",
        "_records",
        "_remote",
        "_kept",
        "_dropped",
        "_dir",
        "_finalizer",
        "_closed",
        "_merge_lock",
        "_offsets",
        "_child_dropped",
        "_child_dropped_base",
        "_built_local",
        "_built_remote",
        "_sorted",
        "_generation",
        "_forked",
        "__weakref__",
    )

    def __init__(self, capacity: int = 100_000, clock: Clock = time.perf_counter) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 0:
            raise ValueError(f"capacity must be a non-negative int, got {capacity!r}")
        self._capacity = capacity
        self._clock = clock
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._merge_lock = threading.Lock()
        self._records: list[_LocalRecord] = []
        self._remote: list[_RemoteRecord] = []
        self._kept = 0
        self._dropped = 0
        self._dir: str | None = None
        self._finalizer: weakref.finalize[Any, Any] | None = None
        self._closed = False
        self._offsets: dict[str, int] = {}
        self._child_dropped: dict[str, int] = {}
        self._child_dropped_base: dict[str, int] = {}
        self._built_local: list[Span] = []
        self._built_remote: list[Span] = []
        self._sorted: list[Span] | None = None
        self._generation = 0
        self._forked: RemoteTracer | None = None  # set in a forked child: see _before_fork
        _LIVE_TRACERS.add(self)

    # -- recording ---------------------------------------------------------------

    def _add(self, name: str, worker: str | None, start: float, end: float) -> None:
        if self._forked is not None:  # this is a copy of the tracer in a forked child
            self._forked._add(name, worker, start, end)
            return
        thread = current_thread().name
        task: str | None = None
        if running_loop_or_none() is not None:
            thread, task = thread_and_task()
        with self._lock:
            if self._kept < self._capacity:
                self._kept += 1
                self._records.append((name, worker, start, end, thread, task))
            else:
                self._dropped += 1

    def span(self, name: str, worker: str | None = None) -> ActiveSpan:
        """Context manager recording one span named ``name`` on lane ``worker``.

        ``worker`` defaults to the asyncio task name inside a task, else the
        thread name (prefixed by the process name outside the main process).
        """
        return ActiveSpan(self, name, worker)

    def wrap(self, fn: Callable[P, R], name: str | None = None) -> Callable[P, R]:
        """Decorator: record a span (named ``name`` or the function's name) per call."""
        return wrap(self, fn, name)

    def record(self, name: str, start: float, end: float, worker: str | None = None) -> None:
        """Record a span measured elsewhere (``start``/``end`` on this tracer's clock)."""
        self._add(name, worker, float(start), float(end))

    # -- processes ---------------------------------------------------------------

    def for_process(self) -> RemoteTracer:
        """A picklable recorder for child processes; its spans show up in :attr:`spans`."""
        directory = self._ensure_dir()
        if directory is None:
            raise RuntimeError("this Tracer is closed; create a new Tracer to trace more processes")
        return RemoteTracer(directory, self._capacity, self._clock)

    def _ensure_dir(self) -> str | None:
        """The directory child processes write to (made on first use); None once closed."""
        with self._merge_lock:
            if self._closed:
                return None
            if self._dir is None:
                path = tempfile.mkdtemp(prefix="course-trace-")
                self._finalizer = weakref.finalize(self, _remove_dir, path, self._pid)
                self._dir = path
            return self._dir

    def __reduce__(self) -> Any:
        raise TypeError(
            "a Tracer cannot be sent to another process: pass tr.for_process() to the worker "
            "instead (it works under every start method)"
        )

    def _merge(self) -> None:
        """Read spans that child processes appended since the last read."""
        directory = self._dir
        if directory is None or self._closed:
            return
        with self._merge_lock:
            try:
                entries = list(os.scandir(directory))
            except FileNotFoundError:
                return
            new: list[_RemoteRecord] = []
            for entry in entries:
                if entry.name.endswith(".spans"):
                    new.extend(self._read_spans_file(entry.name, entry.path))
                elif entry.name.endswith(".dropped"):
                    try:
                        with open(entry.path, "rb") as f:
                            self._child_dropped[entry.name] = int(f.read().strip() or 0)
                    except (OSError, ValueError):
                        pass
            if new:
                with self._lock:
                    room = max(0, self._capacity - self._kept)
                    kept = new[:room]
                    self._remote.extend(kept)
                    self._kept += len(kept)
                    self._dropped += len(new) - len(kept)

    def _read_spans_file(self, key: str, path: str) -> list[_RemoteRecord]:
        offset = self._offsets.get(key, 0)
        try:
            with open(path, "rb") as f:
                f.seek(offset)
                data = f.read()
        except OSError:
            return []
        complete = data.rfind(b"\n") + 1  # a line still being written waits for next time
        if not complete:
            return []
        self._offsets[key] = offset + complete
        out: list[_RemoteRecord] = []
        for line in data[:complete].splitlines():
            try:
                name, worker, start, end, pid, thread, task = json.loads(line)
                out.append((str(name), str(worker), float(start), float(end), int(pid),
                            str(thread), None if task is None else str(task)))
            except (ValueError, TypeError):
                continue  # a torn line from a killed process: skip it
        return out

    # -- reading -----------------------------------------------------------------

    @property
    def spans(self) -> list[Span]:
        """All kept spans (this process and child processes), sorted by start time."""
        self._merge()
        with self._lock:
            local = self._records[len(self._built_local):]
            remote = self._remote[len(self._built_remote):]
            if local or remote or self._sorted is None:
                prefix = process_prefix()
                pid = self._pid
                self._built_local.extend(
                    Span(name, worker if worker is not None else prefix + (task or thread),
                         start, end, pid, thread, task)
                    for name, worker, start, end, thread, task in local
                )
                self._built_remote.extend(Span(*rec) for rec in remote)
                self._sorted = sorted(
                    self._built_local + self._built_remote, key=lambda s: (s.start, s.end)
                )
            return list(self._sorted)

    @property
    def dropped(self) -> int:
        """Spans lost because ``capacity`` was reached (here or in a child process)."""
        self._merge()
        with self._lock:
            child = sum(
                max(0, n - self._child_dropped_base.get(key, 0))
                for key, n in self._child_dropped.items()
            )
            return self._dropped + child

    @property
    def capacity(self) -> int:
        """The most spans this tracer keeps."""
        return self._capacity

    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""
        return self._closed

    def summary(self) -> TraceSummary:
        """Per-worker counts and busy time, with a warning when spans were dropped."""
        return TraceSummary(self.spans, self.dropped, self._capacity)

    def clear(self) -> None:
        """Forget all spans recorded so far (child files already written included)."""
        self._merge()
        with self._merge_lock, self._lock:
            self._records = []
            self._remote = []
            self._kept = 0
            self._dropped = 0
            self._built_local = []
            self._built_remote = []
            self._sorted = None
            self._child_dropped_base = dict(self._child_dropped)
            if self._dir is not None:
                # Tell child processes to restart their own capacity count.
                self._generation += 1
                write_generation(self._dir, self._generation)

    def close(self) -> None:
        """Read the spans child processes left, then remove the temporary directory.

        Spans stay readable and local recording keeps working; :meth:`for_process`
        raises afterwards.  Calling ``close()`` twice is harmless.
        """
        if self._closed:
            return
        self._merge()
        with self._merge_lock:
            self._closed = True
            directory, self._dir = self._dir, None
            if directory is not None:
                close_sinks(directory)
                if self._finalizer is not None:
                    self._finalizer()  # removes the directory (only in the owning process)

    def __enter__(self) -> Tracer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- output ------------------------------------------------------------------

    def to_chrome(self, path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
        """Chrome trace event JSON for https://ui.perfetto.dev; written atomically to ``path``."""
        trace = chrome_trace(self.spans, self._pid, self.dropped)
        if path is not None:
            atomic_write_with(path, lambda handle: json.dump(trace, handle))
        return trace

    def timeline(self, ax: Axes | None = None, title: str | None = None) -> Axes:
        """Gantt chart of the spans: shortcut for :func:`course_lib.viz.timeline`."""
        from course_lib.charts import timeline

        return timeline(self.spans, ax=ax, title=title)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<Tracer {state}: {self._kept} spans kept, capacity {self._capacity}>"

    def __str__(self) -> str:
        return str(self.summary())

    def _repr_html_(self) -> str:
        return self.summary()._repr_html_()


# Under the fork start method a child inherits the Tracer object itself.  So that
# spans recorded there through ``tr`` are not silently lost, the parent makes sure
# each open tracer has its directory before fork(), and the child's copy forwards
# every span to a RemoteTracer.  (Only ``for_process()`` works under spawn.)
_LIVE_TRACERS: weakref.WeakSet[Tracer] = weakref.WeakSet()


def _live_tracers() -> list[Tracer]:
    for _ in range(3):
        try:
            return list(_LIVE_TRACERS)
        except RuntimeError:  # another thread made a Tracer during the copy
            continue
    return []


def _before_fork() -> None:
    for tracer in _live_tracers():
        if not tracer._closed and tracer._forked is None and tracer._pid == os.getpid():
            try:
                tracer._ensure_dir()
            except OSError:
                pass  # no temp space: the child's spans through `tr` are lost, as without this


def _after_fork_in_child_tracers() -> None:
    for tracer in _live_tracers():
        tracer._lock = threading.Lock()
        tracer._merge_lock = threading.Lock()
        directory = tracer._dir
        if tracer._forked is None and directory is not None and not tracer._closed:
            tracer._forked = RemoteTracer(directory, tracer._capacity, tracer._clock)


if hasattr(os, "register_at_fork"):
    # After remote's own hook (imported first), which resets the inherited span files.
    os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child_tracers)
