"""Check helpers for the processes chapter; re-exported by :mod:`graders.checks`.

- :func:`no_process_leaks`: no child process (pool workers included, also
  those a forkserver started) may outlive the block; stragglers are killed so
  the next exercise starts clean, and a pool that was never closed is named.
- :func:`no_shm_leaks`: no shared-memory segment or semaphore that the block
  created may be left in ``/dev/shm``; leftover segments are unlinked.
- :func:`quiet_children`: what child processes write to stderr (a worker's
  traceback) becomes an AssertionError message instead of output in the cell.
- :func:`clean_processes`: the three above in one ``with``.
- :func:`expect_exitcodes`: compare exit codes, explaining what each means.
- :func:`watch_processes`: record every process started in the block (its target,
  arguments, pid) and every ``join()`` on it; :func:`assert_joined` then fails
  when a process was never joined, or joined before its results were read.
"""

from __future__ import annotations

import contextlib
import gc
import io
import multiprocessing
import os
import signal
import sys
import tempfile
import threading
import time
import warnings
import weakref
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from course_lib import internals

__all__ = [
    "ProcessRecord",
    "ProcessWatch",
    "assert_joined",
    "clean_processes",
    "expect_exitcodes",
    "no_process_leaks",
    "no_shm_leaks",
    "quiet_children",
    "watch_processes",
]

_SHM_DIR = Path("/dev/shm")
_MP_HELPERS = ("multiprocessing.resource_tracker", "multiprocessing.forkserver")


def _fail(what: str, detail: str, hint: str = "") -> AssertionError:
    from graders.checks.core import fail

    return fail(what, detail, hint)


# --------------------------------------------------------------------------- exit codes


def _explain_exitcode(code: int | None) -> str:
    """What a ``Process.exitcode`` means, in words (for feedback messages)."""
    if code is None:
        return "None: still running, or never started"
    if code == 0:
        return "0: finished normally"
    if code > 0:
        return f"{code}: exited with an error (sys.exit({code}) or an uncaught exception gives 1)"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = f"signal {-code}"
    return f"{code}: killed by {name}"


def expect_exitcodes(processes: Sequence[Any], expected: int | Sequence[int | None],
                     what: str = "exit codes") -> None:
    """Fail unless each process's ``exitcode`` equals ``expected`` (one value, or one each)."""
    wanted = list(expected) if isinstance(expected, Sequence) else [expected] * len(processes)
    if len(wanted) != len(processes):
        raise ValueError(f"{len(processes)} processes but {len(wanted)} expected exit codes")
    for process, code in zip(processes, wanted, strict=True):
        actual = process.exitcode
        if actual != code:
            name = getattr(process, "name", "process")
            raise _fail(what, f"{name} has exitcode {_explain_exitcode(actual)}; expected "
                        f"{_explain_exitcode(code)}")


# --------------------------------------------------------------------------- processes


def _helper_pids(me: Any) -> set[int]:
    """multiprocessing's own helpers among our direct children (resource tracker, forkserver)."""
    helpers: set[int] = set()
    try:
        children = me.children(recursive=False)
    except Exception:  # noqa: BLE001
        return helpers
    for child in children:
        try:
            command = " ".join(child.cmdline())
        except Exception:  # noqa: BLE001 - gone, or not ours to inspect
            continue
        if any(marker in command for marker in _MP_HELPERS):
            helpers.add(child.pid)
    return helpers


def _live_descendants() -> dict[int, Any]:
    """Living descendants of this process, multiprocessing's helpers left out.

    A forkserver's children are the workers it started for us: they count.
    """
    try:
        import psutil
    except ImportError:  # pragma: no cover - psutil is a course dependency
        return {}
    try:
        me = psutil.Process()
        everyone = me.children(recursive=True)
    except psutil.Error:
        return {}
    helpers = _helper_pids(me)
    live = {}
    for proc in everyone:
        try:
            if proc.pid in helpers or proc.status() == psutil.STATUS_ZOMBIE:
                continue
        except psutil.Error:
            continue
        live[proc.pid] = proc
    return live


def _names_by_pid() -> dict[int, str]:
    try:
        # active_children() also reaps the children that have ended (no zombies left over).
        return {p.pid: p.name for p in multiprocessing.active_children() if p.pid is not None}
    except Exception:  # noqa: BLE001
        return {}


def _stop(procs: Iterable[Any]) -> None:
    """SIGKILL each process and wait until it is gone or a zombie (its parent reaps it).

    Never waitpid() here: multiprocessing must reap its own children, or their
    ``exitcode`` would stay None for ever.
    """
    from course_lib.proc import kill_all

    kill_all(procs, timeout=3.0)
    _names_by_pid()  # lets multiprocessing reap (and record the exit code of) its children


def _is_unclosed_pool(record: warnings.WarningMessage) -> bool:
    return issubclass(record.category, ResourceWarning) and "multiprocessing pool" in str(
        record.message
    )


def _pool_types() -> tuple[type, ...]:
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing.pool import Pool

    return (Pool, ProcessPoolExecutor)


def _live_pools() -> list[Any]:
    """Every multiprocessing Pool and ProcessPoolExecutor still running in this process.

    Read from multiprocessing's finalizer registry (a running Pool registers
    its terminate there) and from the executors' manager threads, which is
    much cheaper than scanning every object; falls back to the scan.
    """
    finalizers = internals.multiprocessing_finalizers()
    executors = internals.process_pool_executors()
    terminate = internals.pool_terminate_function()
    if finalizers is not None and executors is not None and terminate is not None:
        found: list[Any] = []
        for finalizer in finalizers:
            callback = internals.finalizer_callback(finalizer)
            if getattr(callback, "__func__", None) is terminate:
                pool = internals.finalizer_target(finalizer)
                if pool is not None:
                    found.append(pool)
        return found + executors
    kinds = _pool_types()  # pragma: no cover - internals changed
    # type(), not isinstance(): a weakref proxy claims the class of its (dead) referent.
    return [obj for obj in gc.get_objects() if issubclass(type(obj), kinds)]


def _still_running(pool: Any) -> bool:
    from multiprocessing.pool import RUN, Pool

    if isinstance(pool, Pool):
        return bool(getattr(pool, "_state", None) == RUN)
    return not getattr(pool, "_shutdown_thread", True)


def _shut_down(pool: Any, timeout: float) -> None:
    """Terminate an abandoned pool the way it would terminate itself, bounded in time."""
    from multiprocessing.pool import Pool

    def stop() -> None:
        with contextlib.suppress(Exception):
            if isinstance(pool, Pool):
                pool.terminate()
                pool.join()
            else:
                pool.shutdown(wait=True, cancel_futures=True)

    worker = threading.Thread(target=stop, name="shut-down-abandoned-pool", daemon=True)
    worker.start()
    worker.join(timeout)


def _describe_pool(pool: Any) -> str:
    from multiprocessing.pool import Pool

    if isinstance(pool, Pool):
        size = getattr(pool, "_processes", "?")
        return f"a multiprocessing Pool of {size} workers was never closed"
    return "a ProcessPoolExecutor was never shut down"


@contextlib.contextmanager
def no_process_leaks(timeout: float = 2.0, what: str = "") -> Iterator[None]:
    """Fail if a child process or a process pool started in the block outlives it.

    A ``Pool`` still running (never closed) or a ``ProcessPoolExecutor`` never
    shut down is terminated and named. Other child processes get up to
    ``timeout`` seconds to end; stragglers are then killed (so the next
    exercise starts clean) and named. Pool workers count, including those a
    forkserver started. If the block raised, its error is kept and the
    clean-up still happens.
    """
    before = set(_live_descendants())
    pools_before: weakref.WeakSet[Any] = weakref.WeakSet(_live_pools())
    abandoned: list[str] = []
    ok = False
    with warnings.catch_warnings(record=True) as caught:
        # Pool.__del__ warns "unclosed running multiprocessing pool": the record keeps the
        # pool alive, so it can be named and terminated properly below.
        warnings.simplefilter("always", ResourceWarning)
        try:
            yield
            ok = True
        finally:
            gc.collect()
            suspects = [r.source for r in caught if _is_unclosed_pool(r)] + _live_pools()
            seen: set[int] = set()
            for pool in suspects:
                if id(pool) in seen or pool in pools_before or not _still_running(pool):
                    continue
                seen.add(id(pool))
                abandoned.append(_describe_pool(pool))
                _shut_down(pool, timeout=3.0)
            del suspects
            deadline = time.monotonic() + (timeout if ok else min(timeout, 0.5))
            while True:
                names = _names_by_pid()
                leftovers = {
                    pid: p for pid, p in _live_descendants().items() if pid not in before
                }
                if not leftovers or time.monotonic() >= deadline:
                    break
                time.sleep(0.02)
            if leftovers:
                _stop(leftovers.values())
    others = [r for r in caught if not _is_unclosed_pool(r)]
    caught.clear()
    for record in others:  # not ours: pass them on to whoever handles warnings outside
        warnings.warn_explicit(record.message, record.category, record.filename, record.lineno)
    if not ok:
        return
    if abandoned:
        raise _fail(
            what or "clean-up",
            "; ".join(abandoned) + " (it has been terminated now)",
            "close() and join() a Pool before returning, or run it in `with ctx.Pool(...) as "
            "pool:` and finish your work inside the block; shut a ProcessPoolExecutor down "
            "with a with-block too",
        )
    if leftovers:
        listed = ", ".join(f"{names.get(pid, 'process')} (pid {pid})" for pid in sorted(leftovers))
        raise _fail(
            what or "clean-up",
            f"child processes still running {timeout:g} s after your code returned: {listed}; "
            "they have been killed now",
            "join() every Process you start (after its work is done), and close() and join() "
            "every pool",
        )


# --------------------------------------------------------------------------- shared memory


def _entry(name: str, rtype: str) -> str:
    bare = name.lstrip("/")
    return f"sem.{bare}" if rtype == "semaphore" else bare


def _exists(name: str, rtype: str) -> bool:
    if _SHM_DIR.is_dir():
        return (_SHM_DIR / _entry(name, rtype)).exists()
    if rtype == "shared_memory":
        from course_lib.processes import segment_exists

        return segment_exists(name)
    return False  # a semaphore's name cannot be looked up here


def _unlink_segment(name: str) -> None:
    if os.name != "posix":  # Windows frees a block when its last handle closes
        return
    from multiprocessing import resource_tracker

    internals.posix_shm_unlink(name)
    with contextlib.suppress(Exception):
        resource_tracker.unregister("/" + name.lstrip("/"), "shared_memory")


def _live_semaphore_names() -> set[str]:
    """Names of the named semaphores that living lock, queue and pool objects here hold.

    Each such semaphore registers its clean-up in multiprocessing's finalizer
    registry, which is read here (falling back to scanning every object).
    """
    from multiprocessing.synchronize import SemLock

    cleanup = internals.semlock_cleanup_function()
    finalizers = internals.multiprocessing_finalizers()
    if cleanup is not None and finalizers is not None:
        return {
            str(internals.finalizer_args(f)[0])
            for f in finalizers
            if internals.finalizer_callback(f) is cleanup and internals.finalizer_args(f)
        }
    names = set()  # pragma: no cover - internals changed: scan every object
    for obj in gc.get_objects():
        if issubclass(type(obj), SemLock):
            name = internals.semlock_name(obj)
            if name:
                names.add(name)
    return names


def _unlink_semaphore(name: str) -> None:
    from multiprocessing import resource_tracker

    if os.name != "posix":  # pragma: no cover - Windows has no named semaphores to leak
        return
    internals.posix_sem_unlink(name)
    with contextlib.suppress(Exception):
        resource_tracker.unregister(name, "semaphore")


@contextlib.contextmanager
def no_shm_leaks(what: str = "", *, collect: bool = True) -> Iterator[None]:
    """Fail if the block leaves a shared-memory segment or a semaphore it created.

    Watches what this process registers with multiprocessing's resource
    tracker while the block runs (every ``SharedMemory(create=True)``, and
    every lock, queue or semaphore under spawn and forkserver). After the
    block (and a garbage collection), a segment that still exists was closed
    but never unlinked, or never closed: it is unlinked now, so the next
    exercise is unaffected, and the check fails naming it. A semaphore is
    freed with the lock, queue or pool that holds it: one held by a living
    object is fine; one that no living object holds is a leak. ``collect=False``
    skips the garbage collection (when the caller has just run one).
    """
    created: list[tuple[str, str]] = []
    ok = False
    try:
        from multiprocessing import resource_tracker
    except ImportError:  # pragma: no cover - Windows without _posixshmem
        yield
        return
    tracker: Any = resource_tracker
    original = tracker.register
    owner = os.getpid()

    def register(name: str, rtype: str) -> None:
        if os.getpid() == owner:  # a forked child runs this copy too: not ours to record
            created.append((name, rtype))
        original(name, rtype)

    tracker.register = register
    try:
        yield
        ok = True
    finally:
        tracker.register = original
        if collect:
            gc.collect()
        segments = [n for n, t in created if t == "shared_memory" and _exists(n, t)]
        owned = _live_semaphore_names() if any(t == "semaphore" for _, t in created) else set()
        semaphores = [
            n for n, t in created if t == "semaphore" and n not in owned and _exists(n, t)
        ]
        for name in segments:
            _unlink_segment(name)
        for name in semaphores:
            _unlink_semaphore(name)
    if not ok or not (segments or semaphores):
        return
    parts = []
    if segments:
        listed = ", ".join(sorted({n.lstrip("/") for n in segments}))
        parts.append(f"shared-memory segment(s) left in /dev/shm: {listed} (unlinked now)")
    if semaphores:
        listed = ", ".join(sorted({_entry(n, "semaphore") for n in semaphores}))
        parts.append(f"semaphore(s) left in /dev/shm by no living lock or queue: {listed} "
                     "(unlinked now)")
    hints = []
    if segments:
        hints.append("every process close()s the block when done with it, and the creator "
                     "also unlink()s it once, in a finally: block or a with-block")
    if semaphores:
        hints.append("a lock or queue was lost without its clean-up: create them with "
                     "ctx.Lock(), ctx.Queue() and let multiprocessing manage them")
    raise _fail(what or "shared memory", "; ".join(parts), "; ".join(hints).capitalize())


# --------------------------------------------------------------------------- child stderr

def _restart_forkserver(stderr: IO[bytes] | None) -> bool:
    """Stop the idle forkserver; with ``stderr``, start a new one writing its stderr there.

    Children started by a forkserver inherit the server's stderr, not ours, so
    capturing them means restarting the server. Does nothing (returns False)
    while the server still has children, or where the forkserver is missing.
    """
    try:
        from multiprocessing import forkserver

        import psutil

        pid = internals.forkserver_pid()
        if pid is not None:
            with contextlib.suppress(psutil.NoSuchProcess):
                if psutil.Process(pid).children():
                    return False
            internals.stop_forkserver()
        if stderr is None:
            return True
        saved = os.dup(2)
        try:
            os.dup2(stderr.fileno(), 2)
            forkserver.ensure_running()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        return True
    except Exception:  # noqa: BLE001 - best effort: the check goes on without it
        return False


def _tail(text: str, lines: int = 1) -> str:
    kept = [line for line in text.strip().splitlines() if line.strip(" ^~")]
    return " | ".join(line.strip() for line in kept[-lines:])


@contextlib.contextmanager
def quiet_children(what: str = "") -> Iterator[None]:
    """Turn whatever child processes write to stderr in the block into an AssertionError.

    If the block itself raised, the AssertionError carries both its error and
    what the children wrote (usually the reason).

    Redirects file descriptor 2 (which children started with spawn inherit)
    and ``sys.stderr`` (which forked children inherit) to a temporary file.
    With forkserver, children inherit the server's stderr instead, so an idle
    forkserver is restarted for the block (and once more after it). On
    Windows it only captures ``sys.stderr``.
    """
    forkserver = _start_method() == "forkserver" and os.name == "posix"
    ok = False
    error: Exception | None = None
    with tempfile.TemporaryFile() as log:
        restarted = forkserver and _restart_forkserver(log)
        saved: int | None = None
        previous = sys.stderr
        stream = io.TextIOWrapper(os.fdopen(os.dup(log.fileno()), "wb"), encoding="utf-8",
                                  errors="replace", line_buffering=True)
        try:
            if os.name == "posix":
                saved = os.dup(2)
                os.dup2(log.fileno(), 2)
            sys.stderr = stream
            try:
                yield
                ok = True
            except Exception as exc:  # reported below, with what the children wrote
                error = exc
            finally:
                sys.stderr = previous
                stream.flush()
                stream.close()
        finally:
            if saved is not None:
                os.dup2(saved, 2)
                os.close(saved)
            if restarted:
                # Later children (outside this check) get a server that writes to the notebook.
                _restart_forkserver(None)
        log.seek(0)
        text = log.read().decode("utf-8", "replace")
    hint = (
        "A worker failed. If it says AttributeError: Can't get attribute ... on __main__, the "
        "worker function is defined in the notebook: use the one from course_lib.processes"
    )
    if error is not None:
        if not text.strip():
            raise error
        raise _fail(
            what or "child processes",
            f"{error if isinstance(error, AssertionError) else repr(error)}; meanwhile a child "
            f"process wrote to stderr: {_tail(text)}",
            hint,
        ) from error
    if ok and text.strip():
        raise _fail(what or "child processes", f"something wrote to stderr: {_tail(text)}", hint)


@contextlib.contextmanager
def clean_processes(timeout: float = 2.0, what: str = "") -> Iterator[None]:
    """``no_process_leaks``, ``no_shm_leaks`` and ``quiet_children`` in one ``with``.

    The usual guard of a test cell that runs processes::

        with quiet(), no_leaks(), clean_processes():
            ...
    """
    # Exits in reverse: children quiet, processes stopped (and garbage collected), then shm.
    with no_shm_leaks(what, collect=False), no_process_leaks(timeout, what), quiet_children(what):
        yield


def _start_method() -> str:
    """The start method the course uses now (``course_lib.start_method()``)."""
    from course_lib.machine.cores import start_method

    return start_method()


# --------------------------------------------------------------------------- start and join records


def _target_name(target: object) -> str:
    func = getattr(target, "func", target)  # functools.partial
    return str(getattr(func, "__qualname__", None) or getattr(func, "__name__", None) or repr(func))


def _plain(value: Any) -> Any:
    """``value`` if it is plain data (numbers, strings, tuples of them), else a description."""
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        return value
    if isinstance(value, tuple):
        items = [_plain(v) for v in value]
        try:
            return type(value)(*items) if hasattr(value, "_fields") else tuple(items)
        except TypeError:
            return tuple(items)
    return f"<{type(value).__name__}>"


class ProcessRecord:
    """One process started inside :func:`watch_processes`: what it ran, and how it was joined."""

    def __init__(self, process: Any) -> None:
        self.process = process
        self.name: str = getattr(process, "name", "process")
        self.target: str = _target_name(getattr(process, "_target", None))
        # Only plain values are kept (a queue kept alive here would keep its feeder thread).
        self.args: tuple[Any, ...] = tuple(_plain(a) for a in getattr(process, "_args", ()) or ())
        self.kwargs: dict[str, Any] = {k: _plain(v) for k, v in
                                       dict(getattr(process, "_kwargs", {}) or {}).items()}
        self.pid: int | None = None
        self.started_at = time.monotonic()
        self.joins: list[tuple[float | None, bool]] = []  # (timeout, still alive afterwards)

    @property
    def exitcode(self) -> int | None:
        return getattr(self.process, "exitcode", None)

    @property
    def joined(self) -> bool:
        """A join() returned after the process had ended."""
        return any(not alive for _, alive in self.joins)

    @property
    def timed_out_joins(self) -> int:
        """join(timeout) calls that returned while the process was still running."""
        return sum(1 for _, alive in self.joins if alive)

    def __repr__(self) -> str:
        return (f"ProcessRecord({self.name!r}, target={self.target!r}, pid={self.pid}, "
                f"joins={self.joins}, exitcode={self.exitcode})")


class ProcessWatch:
    """What :func:`watch_processes` saw: ``records`` in start order."""

    def __init__(self) -> None:
        self.records: list[ProcessRecord] = []
        self._by_id: dict[int, ProcessRecord] = {}

    def running(self, target: str | None = None) -> list[ProcessRecord]:
        """The records whose target is called ``target`` (all of them if None)."""
        return [r for r in self.records if target is None or r.target.split(".")[-1] == target]


@contextlib.contextmanager
def watch_processes() -> Iterator[ProcessWatch]:
    """Record every ``multiprocessing`` process started in the block, and every ``join()``.

    Patches ``BaseProcess.start`` and ``BaseProcess.join`` of this process for
    the duration of the block (children are not affected: under spawn and
    forkserver they import an unpatched class, and under fork they never
    start or join themselves).  Pool and executor workers are recorded too.
    """
    from multiprocessing.process import BaseProcess

    watch = ProcessWatch()
    original_start, original_join = BaseProcess.start, BaseProcess.join
    guard = threading.Lock()

    def start(self: Any) -> None:
        record = ProcessRecord(self)
        with guard:
            watch.records.append(record)
            watch._by_id[id(self)] = record
        original_start(self)
        record.pid = self.pid

    def join(self: Any, timeout: float | None = None) -> None:
        try:
            original_join(self, timeout)
        finally:
            record = watch._by_id.get(id(self))
            if record is not None:
                record.joins.append((timeout, self.exitcode is None))

    BaseProcess.start = start  # type: ignore[method-assign]
    BaseProcess.join = join  # type: ignore[method-assign]
    try:
        yield watch
    finally:
        BaseProcess.start = original_start  # type: ignore[method-assign]
        BaseProcess.join = original_join  # type: ignore[method-assign]


def assert_joined(watch: ProcessWatch, target: str | None = None, *, started: int | None = None,
                  what: str = "", hint: str = "") -> None:
    """Fail if a watched process (running ``target``) was never joined, or was joined too early.

    "Too early" means a ``join(timeout)`` that returned while the process was
    still running: with queues, a worker that still has results to send
    cannot end, so joining before draining the results only wastes the timeout.
    With ``started``, exactly that many processes (running ``target``) must have
    been started in the block: an answer that does the work itself starts none.
    """
    records = watch.running(target)
    if started is not None and len(records) != started:
        raise _fail(
            what or "processes",
            f"{len(records)} process(es) were started, expected {started}",
            hint or "start one worker process per worker asked for (ctx.Process(...).start())",
        )
    for record in records:
        if record.timed_out_joins:
            timeout = next(t for t, alive in record.joins if alive)
            raise _fail(
                what or "join",
                f"join(timeout={timeout}) on {record.name} returned while it was still running",
                hint
                or "Drain, then join: read every result first; a worker that still has results "
                "to send cannot end, so a join before that only waits out its timeout",
            )
        if not record.joined:
            raise _fail(
                what or "join",
                f"{record.name} (running {record.target}) was never joined",
                hint or "join() every process you start, once its work is done, before you return",
            )
