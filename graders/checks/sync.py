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
- :func:`assert_concurrent_workers`: the workers were busy at the same time (their
  active periods overlapped), so they were not run one after another.
- :func:`assert_lock_order`: every thread took its locks in one global order
  (from ``TracedLock`` spans).
- :func:`assert_phases`: spans named "phase k" never crossed a phase boundary
  (a barrier), and every worker ran the same phases.
- :func:`abort_barriers`: break every ``threading.Barrier`` (frees threads stuck at one).

Nothing here imports :mod:`graders.checks` at module level (it imports us).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

__all__ = [
    "abort_barriers",
    "assert_concurrent_workers",
    "assert_exclusive",
    "assert_lock_order",
    "assert_phases",
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
    from graders.checks.core import fail

    return fail(what, detail, hint)


def _new_children(before: set[int]) -> list[Any]:
    """Child processes (multiprocessing's helpers left out) that were not there ``before``."""
    from graders.checks.core import child_pids as _child_pids

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

    from course_lib.proc import kill_all

    kill_all(procs, timeout=3.0)
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
    from graders.checks.core import child_pids as _child_pids

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


def _items(spans: Iterable[Any] | Any, name: str | None = None) -> list[Any]:
    return [s for s in getattr(spans, "spans", spans) if name is None or s.name == name]


def assert_concurrent_workers(
    spans: Iterable[Any] | Any,
    at_least: int = 2,
    *,
    name: str | None = None,
    what: str = "",
    hint: str = "",
) -> None:
    """Fail unless ``at_least`` workers were active at one instant.

    A worker's active period runs from the start of its first span (called
    ``name``, if given) to the end of its last one.  Workers started and joined
    one at a time have periods that follow each other and never overlap.
    """
    if at_least < 1:
        raise ValueError("at_least must be >= 1")
    periods: dict[str, list[float]] = {}
    for span in _items(spans, name):
        lo_hi = periods.setdefault(span.worker, [span.start, span.end])
        lo_hi[0] = min(lo_hi[0], span.start)
        lo_hi[1] = max(lo_hi[1], span.end)
    events = sorted([(lo, 1) for lo, hi in periods.values() if hi > lo]
                    + [(hi, -1) for lo, hi in periods.values() if hi > lo])
    running = best = 0
    for _, step in events:  # an end (-1) sorts before a start (+1) at the same instant
        running += step
        best = max(best, running)
    if best < at_least:
        raise _fail(
            what or "workers at the same time",
            f"at most {best} of {len(periods)} worker(s) were active at one instant, expected at "
            f"least {at_least}",
            hint or "Start all the workers first, and only then join them: start() then join() "
            "inside one loop runs them one after another",
        )


def assert_lock_order(
    spans: Iterable[Any] | Any,
    key: Callable[[str], Any],
    *,
    what: str = "",
    hint: str = "",
) -> None:
    """Fail if a thread took a lock while holding one that comes later in the order ``key``.

    Reads the "holding NAME" spans that :class:`course_lib.sync.TracedLock`
    records: when one thread's "holding Y" span starts inside its "holding X"
    span, the thread took Y while holding X, so ``key(X) < key(Y)`` must hold.
    ``key`` maps a lock's name to its rank (for example the account id).
    """
    held: dict[str, list[tuple[float, float, str]]] = {}
    for span in _items(spans):
        if span.name.startswith("holding "):
            lane = f"{getattr(span, 'pid', '')}/{span.worker}"
            held.setdefault(lane, []).append((span.start, span.end, span.name[len("holding "):]))
    for lane, mine in held.items():
        mine.sort()
        for i, (_start, end, outer) in enumerate(mine):
            for start2, _end2, inner in mine[i + 1:]:
                if start2 >= end:
                    break
                if inner != outer and not key(outer) < key(inner):
                    raise _fail(
                        what or "lock order",
                        f"{lane.split('/', 1)[1]} took {inner!r} while holding {outer!r}",
                        hint or "Take the locks in one global order (here: the smaller id first), "
                        "in every function that takes more than one",
                    )


def assert_phases(
    spans: Iterable[Any] | Any,
    *,
    workers: Iterable[str] | None = None,
    prefix: str = "phase ",
    what: str = "",
    hint: str = "",
) -> int:
    """Check phased work; return the number of phases that ran.

    Spans named ``prefix + str(k)`` belong to phase k.  Fails if a span of a
    later phase started before a span of an earlier phase had ended (no
    barrier between the phases), or if some worker ran a phase that another
    worker skipped (the workers did not agree when to stop).  ``workers``
    names every worker that should have run (by default: those that did).
    """
    phases: dict[int, list[Any]] = {}
    for span in _items(spans):
        if span.name.startswith(prefix):
            try:
                phases.setdefault(int(span.name[len(prefix):]), []).append(span)
            except ValueError:
                continue
    if not phases:
        return 0
    everyone = set(workers) if workers is not None else set()
    everyone |= {s.worker for group in phases.values() for s in group}
    for k in sorted(phases):
        ran = {s.worker for s in phases[k]}
        if ran != everyone:
            missing = ", ".join(sorted(everyone - ran))
            raise _fail(what or "phases", f"phase {k} was not run by {missing}",
                        hint or "Every worker must run every phase: decide once per phase, for all "
                        "workers together, whether to stop (for example in the barrier's action=), "
                        "not in each worker on its own")
    order = sorted(phases)
    if order != list(range(len(order))):
        raise _fail(what or "phases", f"the phases that ran are {order}, expected 0, 1, 2, ...")
    for k in order[:-1]:
        last_end = max(s.end for s in phases[k])
        first_next = min(phases[k + 1], key=lambda s: s.start)
        if first_next.start < last_end:
            late = max(phases[k], key=lambda s: s.end)
            raise _fail(
                what or "phases",
                f"{first_next.worker} began phase {k + 1} "
                f"before {late.worker} had finished phase {k}",
                hint or "Wait at a barrier after every phase: nobody may start phase k + 1 before "
                "everybody has finished phase k",
            )
    return len(order)


def abort_barriers() -> int:
    """Abort every ``threading.Barrier`` that is alive; return how many.

    Used as the ``release`` of :func:`finishes_without_deadlock`: threads stuck
    in ``barrier.wait()`` then raise ``BrokenBarrierError`` and can end.
    """
    import gc

    count = 0
    for obj in gc.get_objects():
        if type(obj) is threading.Barrier:
            try:
                obj.abort()
                count += 1
            except Exception:  # noqa: BLE001 - best effort
                continue
    return count
