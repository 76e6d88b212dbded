"""Debugging, testing and profiling parallel programs (chapter 8).

- **Hangs**: :func:`run_script` runs a small program in a child process with a
  hard time limit (a hung demo never hangs the notebook); :func:`hung_process`
  starts one and kills it when the ``with`` block ends; :func:`py_spy_dump`
  runs the real ``py-spy dump`` and says honestly why it could not attach.
- **Logging across processes**: :func:`install_queue_handler` (a pool
  initializer), :func:`logged_square` (a worker that logs), :class:`ListHandler`
  (keeps records in the parent) and :func:`log_timeline` (a picture).
- **asyncio without sleeping**: :func:`run_virtual` runs a coroutine on an
  event loop whose clock jumps to the next timer instead of waiting.
- **Profiling**: :class:`CountingTable` counts how often a large argument is
  pickled, :func:`lookup_chunk` / :func:`lookup_chunk_global` /
  :func:`init_table` are the workers of the profiling exercise,
  :func:`concurrency_profile` draws how many workers were busy over time and
  :func:`serial_fraction` reads the serial fraction off a trace.

Every function a child process runs lives here, so it works under the fork,
spawn and forkserver start methods.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import logging.handlers
import os
import re
import selectors
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from .figures import new_axes
from .internals import running_loop_or_none
from .proc import kill_tree, run_bounded

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from .spans import Span

__all__ = [
    "CountingTable",
    "ListHandler",
    "PySpyResult",
    "RunningProgram",
    "ScriptResult",
    "VirtualRun",
    "concurrency_profile",
    "hung_process",
    "init_table",
    "install_queue_handler",
    "log_timeline",
    "logged_square",
    "lookup_chunk",
    "lookup_chunk_global",
    "py_spy_dump",
    "py_spy_executable",
    "run_script",
    "run_virtual",
    "serial_fraction",
]

T = TypeVar("T")
WORKER_LOGGER = "course.worker"


# --------------------------------------------------------------------------- hangs


@dataclass(frozen=True)
class ScriptResult:
    """What a child Python program left behind: its output and how it ended."""

    returncode: int | None
    stdout: str
    stderr: str
    timed_out: bool
    elapsed: float

    def __str__(self) -> str:
        how = (f"killed after {self.elapsed:.1f} s (time limit)" if self.timed_out
               else f"exit code {self.returncode} after {self.elapsed:.2f} s")
        return f"ScriptResult({how})"


def _python_env() -> dict[str, str]:
    env = dict(os.environ)
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = here + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _check_timeout(timeout: float) -> float:
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout <= 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    return float(timeout)


def _kill(proc: subprocess.Popen[Any]) -> None:
    """Stop the program and anything it started."""
    kill_tree(proc, timeout=10)


def run_script(source: str, *, timeout: float = 10.0) -> ScriptResult:
    """Run ``source`` as a Python program in a child process, killed after ``timeout`` seconds.

    The child runs the same interpreter with this course on its path and
    unbuffered output. Its stdout and stderr come back as text, whether it
    ended by itself or was killed: a deadlocked demo costs ``timeout``
    seconds, never the notebook.
    """
    if not isinstance(source, str):
        raise TypeError(f"source must be the program's text (a str), got {type(source).__name__}")
    timeout = _check_timeout(timeout)
    with tempfile.TemporaryDirectory(prefix="course-script-") as folder:
        path = os.path.join(folder, "program.py")
        with open(path, "w", encoding="utf-8") as f:
            f.write(source)
        began = time.perf_counter()
        # Bounded, and whatever the program started is stopped with it.
        run = run_bounded([sys.executable, path], timeout, env=_python_env(), cwd=folder)
        elapsed = time.perf_counter() - began
    return ScriptResult(None if run.timed_out else run.returncode, run.stdout, run.stderr,
                        run.timed_out, elapsed)


@dataclass(frozen=True)
class RunningProgram:
    """A program started by :func:`hung_process`: its process, and what it wrote to stderr."""

    proc: subprocess.Popen[bytes]
    stderr_path: str

    @property
    def pid(self) -> int:
        """The program's process id."""
        return self.proc.pid

    def stderr(self) -> str:
        """Everything the program has written to stderr so far."""
        with open(self.stderr_path, "rb") as f:
            return f.read().decode("utf-8", "replace")


@contextlib.contextmanager
def hung_process(source: str, *, ready: str = "ready", timeout: float = 10.0
                 ) -> Iterator[RunningProgram]:
    """Start ``source`` in a child process, wait until it prints ``ready``, yield it, then kill it.

    Use it for tools that look at a *running* process (``py-spy dump``,
    ``faulthandler`` through a signal). The child is killed when the block
    ends, even on an error; ``TimeoutError`` if it never prints ``ready``.
    """
    if not isinstance(source, str):
        raise TypeError(f"source must be the program's text (a str), got {type(source).__name__}")
    timeout = _check_timeout(timeout)
    folder = tempfile.mkdtemp(prefix="course-hung-")
    path = os.path.join(folder, "program.py")
    with open(path, "w", encoding="utf-8") as f:
        f.write(source)
    err_path = os.path.join(folder, "stderr.txt")
    err_file = open(err_path, "wb")  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen([sys.executable, path], stdout=subprocess.PIPE, stderr=err_file,
                            env=_python_env(), cwd=folder)
    try:
        got: list[bytes] = []

        def read_line() -> None:
            assert proc.stdout is not None
            got.append(proc.stdout.readline())

        reader = threading.Thread(target=read_line, name="hung-process-reader", daemon=True)
        reader.start()
        reader.join(timeout)
        if not got or ready.encode() not in got[0]:
            raise TimeoutError(f"the program did not print {ready!r} within {timeout:g} s")
        yield RunningProgram(proc, err_path)
    finally:
        _kill(proc)
        if proc.stdout is not None:
            proc.stdout.close()
        err_file.close()
        shutil.rmtree(folder, ignore_errors=True)


@dataclass(frozen=True)
class PySpyResult:
    """The outcome of ``py-spy dump``: its text when it worked, else the reason it did not."""

    ok: bool
    text: str
    reason: str = ""

    def __str__(self) -> str:
        return self.text if self.ok else f"py-spy could not run: {self.reason}"


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def py_spy_executable() -> str | None:
    """The ``py-spy`` program next to this Python, or on PATH; None if it is not installed."""
    here = os.path.join(os.path.dirname(sys.executable),
                        "py-spy.exe" if sys.platform == "win32" else "py-spy")
    return here if os.path.exists(here) else shutil.which("py-spy")


def py_spy_dump(pid: int, *, timeout: float = 20.0, subprocesses: bool = False) -> PySpyResult:
    """Run ``py-spy dump --pid PID`` and return its output, or why it could not attach.

    py-spy reads another process's memory, which needs the right to trace it:
    root, the same user with ``kernel.yama.ptrace_scope`` 0 or 1 for a child,
    ``--cap-add SYS_PTRACE`` in Docker, or an administrator on macOS. When it
    cannot, ``ok`` is False and ``reason`` holds py-spy's own message.
    """
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        raise ValueError(f"pid must be a positive int, got {pid!r}")
    timeout = _check_timeout(timeout)
    exe = py_spy_executable()
    if exe is None:
        return PySpyResult(False, "", "py-spy is not installed (pip install py-spy, or "
                                      "pip install -e '.[debug]')")
    command = [exe, "dump", "--pid", str(pid)] + (["--subprocesses"] if subprocesses else [])
    try:
        done = subprocess.run(command, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return PySpyResult(False, "", f"py-spy did not answer within {timeout:g} s")
    out = _ANSI.sub("", done.stdout.decode("utf-8", "replace"))
    err = _ANSI.sub("", done.stderr.decode("utf-8", "replace")).strip()
    if done.returncode != 0:
        return PySpyResult(False, out, err or f"py-spy exited with code {done.returncode}")
    return PySpyResult(True, out)


# --------------------------------------------------------------------------- logging


class ListHandler(logging.Handler):
    """A logging handler that keeps every record it is given in :attr:`records` (thread-safe)."""

    def __init__(self, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        with self.lock or contextlib.nullcontext():
            self.records.append(record)


def install_queue_handler(queue: Any, level: int = logging.INFO) -> None:
    """Pool initializer: send this process's log records to ``queue`` through a QueueHandler.

    The root logger's handlers are replaced, so a record is sent once even
    when a forked worker inherited the parent's handlers.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(logging.handlers.QueueHandler(queue))
    root.setLevel(level)


def logged_square(x: int, work: float = 0.002) -> tuple[int, int, str]:
    """Worker: log "start x", compute x * x (about ``work`` seconds), log "done x".

    Returns ``(x * x, pid, token)``; the "done" record carries the same
    ``token`` (an attribute of the record), so a test can match results and
    log records one to one.
    """
    log = logging.getLogger(WORKER_LOGGER)
    log.info("start %d", x)
    token = os.urandom(6).hex()
    end = time.perf_counter() + work
    while time.perf_counter() < end:
        pass
    log.info("done %d", x, extra={"token": token})
    return x * x, os.getpid(), token


def log_timeline(records: Sequence[logging.LogRecord], *, ax: Axes | None = None,
                 title: str | None = None) -> Axes:
    """Dots for log records: one lane per process (and thread), time across, in ms."""
    ax = new_axes(ax, (9.0, 2.8))
    lanes: dict[str, int] = {}
    records = list(records)
    t0 = min((r.created for r in records), default=0.0)
    for r in records:
        lane = f"{r.processName} / {r.threadName}"
        lanes.setdefault(lane, len(lanes))
    markers = {"start": "o", "done": "s"}
    for word, marker in markers.items():
        xs = [(r.created - t0) * 1e3 for r in records if r.getMessage().startswith(word)]
        ys = [lanes[f"{r.processName} / {r.threadName}"] for r in records
              if r.getMessage().startswith(word)]
        ax.scatter(xs, ys, marker=marker, label=word, facecolors="none" if word == "done" else None,
                   edgecolors="C1" if word == "done" else None)
    other = [r for r in records if not r.getMessage().startswith(tuple(markers))]
    if other:
        ax.scatter([(r.created - t0) * 1e3 for r in other],
                   [lanes[f"{r.processName} / {r.threadName}"] for r in other], marker="x",
                   label="other")
    ax.set_yticks(range(len(lanes)), list(lanes))
    ax.set_ylim(-0.6, max(len(lanes), 1) - 0.4)
    ax.set_xlabel("time since the first record (ms)")
    ax.set_title(title or f"{len(records)} log records from {len(lanes)} lane(s)")
    if records:
        ax.legend(loc="upper right", fontsize="small")
    return ax


# --------------------------------------------------------------------------- virtual clock


@dataclass(frozen=True)
class VirtualRun:
    """The result of :func:`run_virtual`: the value, and virtual and real seconds taken."""

    result: Any
    virtual_seconds: float
    real_seconds: float


class _VirtualSelector(selectors.DefaultSelector):
    """A selector that never sleeps: when nothing is ready it moves the clock to the next timer."""

    def __init__(self, clock: list[float], real_deadline: float, on_deadline: Callable[[], None]
                 ) -> None:
        super().__init__()
        self._clock = clock
        self._real_deadline = real_deadline
        self._on_deadline = on_deadline

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        events = super().select(0)
        if events:
            return events
        if time.monotonic() > self._real_deadline:
            self._on_deadline()
            return []
        if timeout is None:
            # Nothing scheduled at all: only I/O could wake the loop. Wait for it, in real time.
            return super().select(min(0.05, max(0.0, self._real_deadline - time.monotonic())))
        if timeout > 0:
            self._clock[0] += timeout
        return []


def run_virtual(coro_fn: Callable[..., Awaitable[T]], *args: Any, real_timeout: float = 10.0,
                max_virtual: float = 1e6) -> VirtualRun:
    """Run ``coro_fn(*args)`` on a new event loop with a virtual clock: a :class:`VirtualRun`.

    ``loop.time()`` starts at 0 and, whenever every task is waiting on a
    timer (``asyncio.sleep``, ``wait_for``, ``call_later``), jumps straight to
    the next one. An hour of ``asyncio.sleep`` takes microseconds, and the
    times a coroutine sees are exact. A ``time.sleep`` in the coroutine still
    blocks for real and does not move the virtual clock: that is how a test
    spots one. The run is cancelled (``TimeoutError``) after ``real_timeout``
    real seconds or ``max_virtual`` virtual seconds.
    """
    real_timeout = _check_timeout(real_timeout)
    max_virtual = _check_timeout(max_virtual)
    if running_loop_or_none() is not None:
        # Called from a running loop (a Jupyter cell): run on a fresh loop in a helper thread.
        outcome: dict[str, Any] = {}

        def helper() -> None:
            try:
                outcome["value"] = run_virtual(coro_fn, *args, real_timeout=real_timeout,
                                               max_virtual=max_virtual)
            except BaseException as exc:  # re-raised in the caller's thread
                outcome["error"] = exc

        thread = threading.Thread(target=helper, name="virtual-clock-loop")
        thread.start()
        thread.join()
        if "error" in outcome:
            raise outcome["error"]
        return outcome["value"]  # type: ignore[no-any-return]
    clock = [0.0]
    state: dict[str, Any] = {}

    def on_deadline() -> None:
        if "task" in state and not state["task"].done() and "why" not in state:
            state["why"] = f"it ran for more than {real_timeout:g} real seconds"
            loop.call_soon(state["task"].cancel)

    began = time.monotonic()
    selector = _VirtualSelector(clock, began + real_timeout, on_deadline)
    loop = asyncio.SelectorEventLoop(selector)
    loop.time = lambda: clock[0]  # type: ignore[method-assign]

    def stop_at_max() -> None:
        if "task" in state and not state["task"].done() and "why" not in state:
            state["why"] = f"it was still running after {max_virtual:g} virtual seconds"
            state["task"].cancel()

    try:
        coro = coro_fn(*args)
        if not asyncio.iscoroutine(coro):
            raise TypeError(f"{getattr(coro_fn, '__name__', coro_fn)!r} must be an async def "
                            f"function; calling it returned {type(coro).__name__}")
        task = loop.create_task(coro)
        state["task"] = task
        loop.call_at(max_virtual, stop_at_max)
        try:
            result = loop.run_until_complete(task)
        except asyncio.CancelledError:
            if "why" in state:
                raise TimeoutError(f"run_virtual stopped the coroutine: {state['why']}") from None
            raise
        return VirtualRun(result, clock[0], time.monotonic() - began)
    finally:
        with contextlib.suppress(Exception):
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for t in pending:
                t.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


# --------------------------------------------------------------------------- profiling


class CountingTable:
    """A read-only lookup table (a ``bytes`` object) that counts how often it is pickled.

    ``CountingTable.pickled`` counts, in *this* process, every pickling of any
    table: sending one to a pool worker as a task argument pickles it once
    per task (or per chunk); handing it over once, in a pool initializer,
    pickles it at most once per worker (never under fork).
    """

    pickled = 0
    _count_lock = threading.Lock()

    def __init__(self, data: bytes) -> None:
        if not isinstance(data, (bytes, bytearray)):
            raise TypeError(f"CountingTable holds bytes, got {type(data).__name__}")
        self.data = bytes(data)

    def __reduce__(self) -> tuple[Callable[[bytes], CountingTable], tuple[bytes]]:
        with CountingTable._count_lock:
            CountingTable.pickled += 1
        return CountingTable, (self.data,)

    def __len__(self) -> int:
        return len(self.data)

    def lookup(self, i: int) -> int:
        """The byte at position ``i`` (modulo the table's length)."""
        return self.data[i % len(self.data)]

    @classmethod
    def reset_count(cls) -> None:
        """Set :attr:`pickled` back to 0."""
        with cls._count_lock:
            cls.pickled = 0

    def __repr__(self) -> str:
        return f"CountingTable({len(self.data) / 1e6:.1f} MB)"


def _lookup_sum(table: CountingTable, chunk: Sequence[int]) -> int:
    total = 0
    for i in chunk:
        total += table.lookup(i * 7919)
    return total


def lookup_chunk(table: CountingTable, chunk: Sequence[int]) -> int:
    """Worker: the sum of ``table.lookup(i * 7919)`` over ``chunk`` (table sent with every task)."""
    return _lookup_sum(table, chunk)


_TABLE: CountingTable | None = None


def init_table(table: CountingTable) -> None:
    """Pool initializer: keep ``table`` in this worker process for :func:`lookup_chunk_global`."""
    global _TABLE
    _TABLE = table


def lookup_chunk_global(chunk: Sequence[int]) -> int:
    """Worker: like :func:`lookup_chunk`, with the table the initializer stored (sent once)."""
    if _TABLE is None:
        raise RuntimeError("no table in this worker: start the pool with "
                           "initializer=init_table, initargs=(table,)")
    return _lookup_sum(_TABLE, chunk)


def _busy_intervals(spans: Iterable[Span]) -> list[tuple[float, int]]:
    events: list[tuple[float, int]] = []
    for s in spans:
        if s.end > s.start:
            events += [(s.start, 1), (s.end, -1)]
    events.sort()
    return events


def concurrency_profile(spans: Iterable[Span], *, ax: Axes | None = None,
                        title: str | None = None) -> Axes:
    """A step plot of how many spans were running at each moment (time in ms)."""
    ax = new_axes(ax, (9.0, 2.6))
    events = _busy_intervals(spans)
    t0 = events[0][0] if events else 0.0
    xs, ys, running = [0.0], [0], 0
    for t, delta in events:
        running += delta
        xs.append((t - t0) * 1e3)
        ys.append(running)
    ax.step(xs, ys, where="post")
    ax.fill_between(xs, ys, step="post", alpha=0.3)
    ax.set_xlabel("time since the first span (ms)")
    ax.set_ylabel("workers busy")
    ax.set_ylim(0, max(ys) + 0.5)
    ax.set_title(title or "How many workers were busy at each moment")
    return ax


def serial_fraction(spans: Iterable[Span]) -> float:
    """The share of the work in a trace that ran while at most one span was running.

    With the spans of a parallel run, this is an estimate of Amdahl's serial
    fraction ``s``: the work that nothing else overlapped, divided by all the
    work (the sum of the spans' durations). Gaps where nothing ran are not
    work and are left out. Raises ``ValueError`` for a trace without work.
    """
    events = _busy_intervals(spans)
    if not events:
        raise ValueError("the trace holds no span with a positive duration")
    alone = total = 0.0
    running = 0
    previous = events[0][0]
    for t, delta in events:
        width = t - previous
        total += width * running
        if running == 1:
            alone += width
        running += delta
        previous = t
    return alone / total if total > 0 else 0.0
