"""Record spans (named intervals of time) from threads, asyncio tasks and processes.

A :class:`Tracer` keeps at most ``capacity`` spans in memory; spans beyond that
are counted in :attr:`Tracer.dropped`, never silently lost.  One
``with tr.span("x"):`` costs about a microsecond: the hot path reads the clock
twice and appends a tuple to a list; :class:`Span` objects are built only when
:attr:`Tracer.spans` is read.

Child processes record through :meth:`Tracer.for_process`, a picklable
:class:`RemoteTracer` that works under the fork, spawn and forkserver start
methods.  It appends each finished span as one line to a per-process file in a
temporary directory the :class:`Tracer` owns; the parent merges those files
when it reads its spans and removes the directory in :meth:`Tracer.close`.
Because every span is written as soon as it ends, nothing is lost when a pool
terminates its workers.  Using a :class:`RemoteTracer` after its tracer was
closed raises :class:`RuntimeError`.  Under the fork start method a child's
inherited copy of the Tracer itself also forwards its spans to the parent, but
only ``for_process()`` works under every start method.

Times come from :func:`time.perf_counter` (``CLOCK_MONOTONIC`` on Linux), so
spans from different processes on one machine share one time axis.

:meth:`Tracer.to_chrome` writes the Chrome trace event format, which
https://ui.perfetto.dev and ``chrome://tracing`` open.
"""

from __future__ import annotations

import functools
import inspect
import json
import multiprocessing
import os
import secrets
import shutil
import tempfile
import threading
import time
import types
import weakref
from asyncio import _get_running_loop, current_task
from collections.abc import Awaitable, Callable, Iterable, Iterator
from threading import current_thread
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, cast

from ._render import Table, format_seconds
from .fileio import atomic_write, atomic_write_with
from .spans import Span

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["Span", "Tracer", "RemoteTracer", "TraceSummary"]

P = ParamSpec("P")
R = TypeVar("R")
Clock = Callable[[], float]

# A span as recorded on the hot path: (name, worker or None, start, end, thread, task).
_LocalRecord = tuple[str, str | None, float, float, str, str | None]
# A span read back from a child process: (name, worker, start, end, pid, thread, task).
_RemoteRecord = tuple[str, str, float, float, int, str, str | None]


# --------------------------------------------------------------------------- lanes

# Code objects of tasks that belong to the Jupyter kernel itself: a notebook cell
# runs inside such a task, and its spans should carry the thread name, not an
# ever-changing "Task-123".
_HOST_CODE: dict[object, bool] = {}
_HOST_DIRS = tuple(f"{os.sep}{d}{os.sep}" for d in ("ipykernel", "IPython"))


def _is_host_code(code: object) -> bool:
    filename = getattr(code, "co_filename", "")
    return any(d in filename for d in _HOST_DIRS)


def _thread_and_task() -> tuple[str, str | None]:
    """Name of the current thread and of the current asyncio task (None outside one)."""
    thread = current_thread().name
    loop = _get_running_loop()
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


def _process_prefix() -> str:
    """``"Process-1/"`` inside a multiprocessing child, ``""`` in the main process."""
    if multiprocessing.parent_process() is None:
        return ""
    return multiprocessing.current_process().name + "/"


# --------------------------------------------------------------------------- recording


class _ActiveSpan:
    """The context manager returned by ``span()``: two clock reads and one append."""

    __slots__ = ("_owner", "_name", "_worker", "_start")

    def __init__(self, owner: Tracer | RemoteTracer, name: str, worker: str | None) -> None:
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

    def __init__(self, recorder: Tracer | RemoteTracer, fn: Callable[P, R], name: str) -> None:
        self._recorder = recorder
        self._fn = fn
        self._span_name = name
        functools.update_wrapper(self, fn)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        with self._recorder.span(self._span_name):
            return self._fn(*args, **kwargs)

    def __get__(self, obj: object, objtype: type | None = None) -> Any:
        return self if obj is None else types.MethodType(self, obj)


def _wrap(recorder: Tracer | RemoteTracer, fn: Callable[P, R], name: str | None) -> Callable[P, R]:
    span_name = name if name is not None else getattr(fn, "__qualname__", repr(fn))
    if inspect.iscoroutinefunction(fn):
        afn = cast(Callable[..., Awaitable[Any]], fn)

        @functools.wraps(fn)
        async def traced(*args: Any, **kwargs: Any) -> Any:
            with recorder.span(span_name):
                return await afn(*args, **kwargs)

        return cast(Callable[P, R], traced)
    return _Wrapped(recorder, fn, span_name)


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
        if _get_running_loop() is not None:
            thread, task = _thread_and_task()
        with self._lock:
            if self._kept < self._capacity:
                self._kept += 1
                self._records.append((name, worker, start, end, thread, task))
            else:
                self._dropped += 1

    def span(self, name: str, worker: str | None = None) -> _ActiveSpan:
        """Context manager recording one span named ``name`` on lane ``worker``.

        ``worker`` defaults to the asyncio task name inside a task, else the
        thread name (prefixed by the process name outside the main process).
        """
        return _ActiveSpan(self, name, worker)

    def wrap(self, fn: Callable[P, R], name: str | None = None) -> Callable[P, R]:
        """Decorator: record a span (named ``name`` or the function's name) per call."""
        return _wrap(self, fn, name)

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
                prefix = _process_prefix()
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
                _write_generation(self._dir, self._generation)

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
                _close_sinks(directory)
                if self._finalizer is not None:
                    self._finalizer()  # removes the directory (only in the owning process)

    def __enter__(self) -> Tracer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- output ------------------------------------------------------------------

    def to_chrome(self, path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
        """Chrome trace event JSON for https://ui.perfetto.dev; written atomically to ``path``."""
        trace = _chrome_trace(self.spans, self._pid, self.dropped)
        if path is not None:
            atomic_write_with(path, lambda handle: json.dump(trace, handle))
        return trace

    def timeline(self, ax: Axes | None = None, title: str | None = None) -> Axes:
        """Gantt chart of the spans: shortcut for :func:`course_lib.viz.timeline`."""
        from .charts import timeline

        return timeline(self.spans, ax=ax, title=title)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<Tracer {state}: {self._kept} spans kept, capacity {self._capacity}>"

    def __str__(self) -> str:
        return str(self.summary())

    def _repr_html_(self) -> str:
        return self.summary()._repr_html_()


# --------------------------------------------------------------------------- child side


class _Sink:
    """One process's span file in a tracer directory (one line per span, appended)."""

    __slots__ = ("pid", "prefix", "directory", "generation", "fd", "drop_fd", "drop_path", "kept",
                 "dropped", "lock", "closed")

    def __init__(self, directory: str) -> None:
        self.pid = os.getpid()
        self.directory = directory
        self.generation = _read_generation(directory)
        self.prefix = _process_prefix()
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


def _write_generation(directory: str, generation: int) -> None:
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


def _close_sinks(directory: str) -> None:
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
    os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)
    os.register_at_fork(after_in_child=_after_fork_in_child_tracers)


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
        thread, task = _thread_and_task()
        label = worker if worker is not None else sink.prefix + (task or thread)
        line = json.dumps([name, label, start, end, sink.pid, thread, task]) + "\n"
        sink.write(line.encode(), self._capacity)

    def span(self, name: str, worker: str | None = None) -> _ActiveSpan:
        """Context manager recording one span (see :meth:`Tracer.span`)."""
        return _ActiveSpan(self, name, worker)

    def wrap(self, fn: Callable[P, R], name: str | None = None) -> Callable[P, R]:
        """Decorator recording a span per call; picklable when ``fn`` is."""
        return _wrap(self, fn, name)

    def record(self, name: str, start: float, end: float, worker: str | None = None) -> None:
        """Record a span measured elsewhere (``start``/``end`` on the tracer's clock)."""
        self._add(name, worker, float(start), float(end))

    def __repr__(self) -> str:
        return f"<RemoteTracer {self._dir!r}>"


# --------------------------------------------------------------------------- summary


class TraceSummary:
    """What :meth:`Tracer.summary` returns: one row per worker, plus warnings."""

    def __init__(self, spans: list[Span], dropped: int, capacity: int) -> None:
        self.spans = spans
        self.dropped = dropped
        self.capacity = capacity

    def table(self) -> Table:
        """The summary as a :class:`course_lib._render.Table`."""
        lanes: dict[str, list[Span]] = {}
        for s in self.spans:
            lanes.setdefault(s.worker, []).append(s)
        t0 = min((s.start for s in self.spans), default=0.0)
        t1 = max((s.end for s in self.spans), default=0.0)
        wall = t1 - t0
        rows: list[list[object]] = []
        for worker, spans in lanes.items():
            busy = sum(s.duration for s in spans)
            share = f"{busy / wall:.0%}" if wall > 0 else "n/a"
            rows.append([worker, len(spans), format_seconds(busy), share,
                         format_seconds(spans[0].start - t0)])
        title = (f"{len(self.spans)} spans on {len(lanes)} workers over {format_seconds(wall)}"
                 if self.spans else "no spans recorded")
        notes = []
        if self.dropped:
            notes.append(
                f"{self.dropped} spans were dropped because capacity={self.capacity} was reached; "
                "use Tracer(capacity=...) or record fewer, longer spans"
            )
        return Table(["worker", "spans", "busy", "busy share", "first start"], rows, title, notes)

    def __str__(self) -> str:
        return self.table().text()

    def _repr_html_(self) -> str:
        return self.table().html()

    def __repr__(self) -> str:
        return f"<TraceSummary {len(self.spans)} spans, {self.dropped} dropped>"


# --------------------------------------------------------------------------- chrome


def _lanes(spans: Iterable[Span]) -> Iterator[tuple[int, str]]:
    seen: set[tuple[int, str]] = set()
    for s in spans:
        key = (s.pid, s.worker)
        if key not in seen:
            seen.add(key)
            yield key


def _chrome_trace(spans: list[Span], own_pid: int, dropped: int) -> dict[str, Any]:
    t0 = min((s.start for s in spans), default=0.0)
    tids: dict[tuple[int, str], int] = {}
    events: list[dict[str, Any]] = []
    process_names: dict[int, str] = {}
    for index, (pid, worker) in enumerate(_lanes(spans)):
        tid = tids[(pid, worker)] = index + 1
        events.append({"ph": "M", "name": "thread_name", "pid": pid, "tid": tid,
                       "args": {"name": worker}})
        events.append({"ph": "M", "name": "thread_sort_index", "pid": pid, "tid": tid,
                       "args": {"sort_index": index}})
        if pid not in process_names:
            name = "MainProcess" if pid == own_pid else (
                worker.split("/", 1)[0] if "/" in worker else "process")
            process_names[pid] = name
            events.append({"ph": "M", "name": "process_name", "pid": pid, "tid": 0,
                           "args": {"name": f"{name} (pid {pid})"}})
    for s in spans:
        args: dict[str, Any] = {"thread": s.thread}
        if s.task is not None:
            args["task"] = s.task
        events.append({
            "name": s.name, "cat": "span", "ph": "X",
            "ts": (s.start - t0) * 1e6, "dur": max(0.0, s.end - s.start) * 1e6,
            "pid": s.pid, "tid": tids[(s.pid, s.worker)], "args": args,
        })
    return {
        "traceEvents": events,
        "displayTimeUnit": "ms",
        "otherData": {"clock": "time.perf_counter", "t0_seconds": t0, "dropped": dropped},
    }
