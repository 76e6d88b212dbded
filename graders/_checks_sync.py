"""Check helpers for the synchronisation chapter; re-exported by :mod:`graders.checks`.

- :func:`finishes_without_deadlock`: like ``finishes_within``, but it also
  watches a :class:`course_lib.sync.LockMonitor` and reports a deadlock the
  moment the threads wait for each other in a cycle (saying who holds what).
  On a deadlock or a timeout it frees what it can, so the next exercise
  still runs: monitored waits are aborted, a ``release`` callback is called
  (set an event, notify a condition), and child processes started by the
  call are killed.
- :func:`run_in_threads`: run calls in threads that start at the same moment.
- :func:`wait_until_waiting`: wait until threads are blocked in ``Condition.wait``.
- :func:`assert_exclusive`: no two workers of a group ran a span at the same time.

Nothing here imports :mod:`graders.checks` at module level (it imports us).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

__all__ = [
    "assert_exclusive",
    "finishes_without_deadlock",
    "run_in_threads",
    "wait_until_waiting",
]

T = TypeVar("T")

_DEADLOCK_HINT = (
    "Every thread waits for a lock that another one holds. Take the locks in one global "
    "order (for example by id), in every function that takes more than one"
)


def _fail(what: str, detail: str, hint: str = "") -> AssertionError:
    from graders.checks import _fail as fail

    return fail(what, detail, hint)


def _new_children(before: set[int]) -> list[Any]:
    """Child processes (multiprocessing's helpers left out) that were not there ``before``."""
    from graders.checks import _child_pids

    try:
        import psutil
    except ImportError:  # pragma: no cover - psutil is a course dependency
        return []
    procs = []
    for pid in _child_pids() - before:
        try:
            procs.append(psutil.Process(pid))
        except psutil.Error:
            continue
    return procs


def _stop_children(procs: Sequence[Any]) -> None:
    """Kill ``procs`` and wait until they are dead, leaving the reaping to multiprocessing.

    (psutil's ``wait_procs`` would reap a child itself, and a ``Process`` object
    whose child was reaped behind its back reports ``is_alive()`` for ever.)
    """
    import multiprocessing

    import psutil

    for proc in procs:
        try:
            proc.kill()
        except psutil.Error:
            continue
    pending = list(procs)
    deadline = time.monotonic() + 3.0
    while pending and time.monotonic() < deadline:
        alive = []
        for proc in pending:
            try:
                if proc.status() != psutil.STATUS_ZOMBIE:
                    alive.append(proc)
            except psutil.Error:
                continue
        pending = alive
        if pending:
            time.sleep(0.01)
    multiprocessing.active_children()  # reaps the ones that are ours: no zombies left over


def _free(monitor: Any, release: Callable[[], object] | None, children_before: set[int],
          threads_before: set[threading.Thread], runner: threading.Thread) -> list[str]:
    """Abort, release and kill what the call left blocked; names of threads still stuck."""
    if monitor is not None:
        monitor.abort("the check stopped a deadlocked or overdue call")
    if release is not None:
        try:
            release()
        except Exception:  # noqa: BLE001 - freeing is best effort
            pass
    _stop_children(_new_children(children_before))
    deadline = time.monotonic() + 3.0
    while True:
        stuck = [t for t in threading.enumerate()
                 if t not in threads_before and t.is_alive()]
        if not stuck or time.monotonic() >= deadline:
            return [t.name for t in stuck]
        if release is not None and runner.is_alive():
            try:
                release()
            except Exception:  # noqa: BLE001
                pass
        time.sleep(0.02)


def finishes_without_deadlock(
    seconds: float,
    fn: Callable[..., T],
    *args: Any,
    monitor: Any = None,
    release: Callable[[], object] | None = None,
    hint: str = "",
    **kwargs: Any,
) -> T:
    """Run ``fn(*args, **kwargs)`` in a daemon thread; return its result if it ends in time.

    With a ``monitor`` (a :class:`course_lib.sync.LockMonitor` whose locks the
    call uses) a deadlock is reported as soon as it forms, naming who holds
    and who waits.  On a deadlock or after ``seconds``, monitored waits are
    aborted, ``release()`` is called (to set an event or notify a condition
    the call may be stuck on), and child processes the call started are
    killed; then the check fails.  An exception from ``fn`` becomes an
    AssertionError with its type and message.
    """
    if seconds <= 0:
        raise ValueError("seconds must be positive")
    from course_lib.sync import LockAborted
    from graders.checks import _child_pids

    name = getattr(fn, "__name__", "the call")
    threads_before = set(threading.enumerate())
    children_before = _child_pids()
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = fn(*args, **kwargs)
        except BaseException as exc:  # reported to the caller below
            outcome["error"] = exc

    runner = threading.Thread(target=target, name=f"check-{name}", daemon=True)
    runner.start()
    deadline = time.monotonic() + seconds
    deadlock = None
    while True:
        runner.join(0.005)
        if not runner.is_alive():
            break
        if monitor is not None:
            deadlock = monitor.find_deadlock()
            if deadlock is not None:
                break
        if time.monotonic() >= deadline:
            break
    if runner.is_alive():
        stuck = _free(monitor, release, children_before, threads_before, runner)
        after = ("; its threads could not be stopped (" + ", ".join(stuck) + "): restart the "
                 "kernel before running more cells") if stuck else \
            "; the check stopped its threads, so you can run the next cells"
        if deadlock is not None:
            raise _fail(f"{name}()", f"deadlocked: {deadlock.describe()}{after}",
                        hint or _DEADLOCK_HINT)
        raise _fail(f"{name}()", f"did not finish within {seconds:g} s{after}",
                    hint or "Is a thread waiting forever: a lock never released, a condition "
                    "nobody notifies, a queue nobody fills, or join() on a process that can "
                    "never end?")
    error = outcome.get("error")
    if error is None:
        return outcome["value"]  # type: ignore[no-any-return]
    if any(t.is_alive() for t in threading.enumerate() if t not in threads_before):
        # It failed and left threads behind (stuck in a wait): free them before reporting.
        _free(monitor, release, children_before, threads_before, runner)
    if isinstance(error, AssertionError):
        raise error
    if isinstance(error, NotImplementedError):
        raise _fail(f"{name}()", "not implemented yet (it raised NotImplementedError)")
    if isinstance(error, LockAborted):
        raise _fail(f"{name}()", "was stopped while waiting for a lock", hint or _DEADLOCK_HINT)
    raise _fail(f"{name}()", f"raised {type(error).__name__}: {error}", hint) from None


def run_in_threads(
    calls: Sequence[Callable[[], T]],
    *,
    timeout: float = 10.0,
    names: Sequence[str] | None = None,
    hint: str = "",
) -> list[T]:
    """Run each call in its own daemon thread, all released at the same moment; return the results.

    A barrier makes the threads start together, so that their steps really
    overlap.  As soon as a call raises, the exception is re-raised here (a
    :class:`course_lib.sync.LockAborted` as it is, anything else as an
    AssertionError naming the thread, followed by ``hint``), without waiting
    for the other threads; a thread still running after ``timeout`` seconds
    is reported too.
    """
    from course_lib.sync import LockAborted

    if names is not None and len(names) != len(calls):
        raise ValueError(f"{len(calls)} calls but {len(names)} names")
    labels = list(names) if names is not None else [f"worker-{i}" for i in range(len(calls))]
    results: list[Any] = [None] * len(calls)
    errors: list[BaseException | None] = [None] * len(calls)
    start = threading.Barrier(len(calls)) if calls else None

    def run(i: int) -> None:
        try:
            if start is not None:
                start.wait(timeout)
            results[i] = calls[i]()
        except BaseException as exc:  # handed to the caller
            errors[i] = exc

    threads = [threading.Thread(target=run, args=(i,), name=labels[i], daemon=True)
               for i in range(len(calls))]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    while any(t.is_alive() for t in threads) and not any(e is not None for e in errors):
        if time.monotonic() >= deadline:
            break
        for t in threads:
            t.join(0.005)
    for error in errors:
        if isinstance(error, LockAborted):
            raise error
    for t, error in zip(threads, errors, strict=True):
        if error is None:
            continue
        if isinstance(error, AssertionError):
            raise error
        if isinstance(error, NotImplementedError):
            raise _fail(t.name, "not implemented yet (it raised NotImplementedError)")
        raise _fail(t.name, f"raised {type(error).__name__}: {error}", hint)
    late = [t.name for t in threads if t.is_alive()]
    if late:
        raise _fail("threads", f"still running after {timeout:g} s: {', '.join(late)}",
                    hint or "Is one of them waiting forever?")
    return results


def wait_until_waiting(cond: Any, n: int = 1, timeout: float = 2.0) -> bool:
    """Wait until at least ``n`` threads are blocked in ``cond.wait()``; False on timeout.

    Reads the waiter list of a ``threading.Condition``.  For other objects it
    cannot see the waiters: it sleeps a little and returns True.
    """
    waiters = getattr(cond, "_waiters", None)
    if waiters is None:
        time.sleep(min(timeout, 0.1))
        return True
    deadline = time.monotonic() + timeout
    while len(waiters) < n:
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.002)
    return True


def assert_exclusive(
    spans: Iterable[Any] | Any,
    groups: Iterable[Iterable[str]],
    *,
    name: str | None = None,
    what: str = "",
    hint: str = "",
) -> None:
    """Fail if two different workers of one group ran a span (called ``name``) at the same time.

    ``groups`` lists sets of workers that must exclude each other, for
    example neighbouring philosophers: ``[("philosopher 0", "philosopher 1"), ...]``.
    Touching spans (one ends exactly when the next starts) do not overlap.
    """
    items = [s for s in getattr(spans, "spans", spans) if name is None or s.name == name]
    if items:
        t0 = min(s.start for s in items)
    for group in groups:
        members = set(group)
        mine = sorted((s for s in items if s.worker in members), key=lambda s: (s.start, s.end))
        running: list[Any] = []
        for span in mine:
            running = [r for r in running if r.end > span.start]
            clash = next((r for r in running if r.worker != span.worker), None)
            if clash is not None:
                label = f"{name!r} " if name else ""
                raise _fail(
                    what or "mutual exclusion",
                    f"{clash.worker} and {span.worker} ran {label}at the same time "
                    f"(from {1e3 * (span.start - t0):.1f} ms to "
                    f"{1e3 * (min(span.end, clash.end) - t0):.1f} ms)",
                    hint or "They share a resource: each must hold its lock for the whole time "
                    "it uses it",
                )
            running.append(span)
