"""Worker functions for child processes, importable so they work under every start method.

:func:`deposit_many`, :func:`use_resource`, :func:`wait_for_go`,
:func:`phase_worker`, :func:`wait_until_at_least`, :func:`square_worker` and
:func:`nested_acquire` work under the fork, spawn and forkserver start methods
(a child imports the function it runs by name).  Inside a child process they
never print a traceback: a failure becomes one line on stdout and exit code 1.
:func:`stop_helper_processes` stops the helpers multiprocessing leaves running.
"""

from __future__ import annotations

import functools
import multiprocessing
import queue
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, ParamSpec, TypeVar

from course_lib.sync.common import (
    SpanRecorder,
    acquire_within,
    check_int,
    check_lock,
    check_seconds,
    lane,
)

__all__ = [
    "deposit_many",
    "nested_acquire",
    "phase_worker",
    "square_worker",
    "stop_helper_processes",
    "use_resource",
    "wait_for_go",
    "wait_until_at_least",
]

P = ParamSpec("P")
R = TypeVar("R")


def _child_entry(fn: Callable[P, R]) -> Callable[P, R]:
    """In a child process, turn an exception into one stdout line and exit code 1.

    A traceback printed by a child would land on the notebook's stderr (which
    nbgrader punishes); the parent sees the exit code instead.  Called in the
    main process (from a thread, say), the function raises as usual.
    """

    @functools.wraps(fn)
    def entry(*args: P.args, **kwargs: P.kwargs) -> R:
        if multiprocessing.parent_process() is None:
            return fn(*args, **kwargs)
        try:
            return fn(*args, **kwargs)
        except SystemExit:
            raise
        except BaseException as exc:  # reported on stdout, never as a traceback
            name = multiprocessing.current_process().name
            print(f"{name}: {fn.__name__} failed: {type(exc).__name__}: {exc}", flush=True)
            sys.exit(1)

    return entry


@_child_entry
def deposit_many(balance: Any, lock: Any, n: int, start: Any = None, amount: int = 1,
                 think: float = 0.001, timeout: float = 10.0) -> None:
    """Deposit ``amount`` into ``balance.value`` ``n`` times, like a slow bank clerk.

    Each deposit reads the balance, thinks for ``think`` seconds, then writes
    the new balance: a read-modify-write with a wide window.  With a ``lock``
    (any lock: ``ctx.Lock()``, ``balance.get_lock()``, ``threading.Lock()``)
    each deposit runs inside ``with lock:``; with ``lock=None`` it is
    unprotected, and depositors running at the same time lose each other's
    deposits.  ``balance`` is a ``multiprocessing`` ``Value``/``RawValue`` (or
    any object with a ``.value``).  ``start``, if given, is a barrier (for
    example ``ctx.Barrier(n_processes)``) that every depositor waits at, for at
    most ``timeout`` seconds, before its first deposit: processes start up
    one after another, and without it the first may be done before the last
    begins.  Safe to run in a child process.
    """
    count = check_int(n, "n")
    pause = check_seconds(think, "think")
    limit = check_seconds(timeout, "timeout")
    if not hasattr(balance, "value"):
        raise TypeError("balance must have a .value "
                        "(use ctx.Value('q', 0) or ctx.RawValue('q', 0))")
    if lock is not None:
        check_lock(lock)
    if start is not None:
        if not callable(getattr(start, "wait", None)):
            raise TypeError(f"start must be a barrier (ctx.Barrier(n)), got {type(start).__name__}")
        start.wait(limit)

    def deposit_once() -> None:
        current = balance.value
        if pause:
            time.sleep(pause)
        balance.value = current + amount

    for _ in range(count):
        if lock is None:
            deposit_once()
        else:
            with lock:
                deposit_once()


@_child_entry
def use_resource(sem: Any, tracer: SpanRecorder, seconds: float,
                 name: str = "using the resource") -> None:
    """Hold one slot of ``sem`` (a semaphore) for ``seconds``, inside a span called ``name``."""
    pause = check_seconds(seconds, "seconds")
    check_lock(sem, "sem")
    with sem, tracer.span(name, worker=lane()):
        time.sleep(pause)


@_child_entry
def wait_for_go(go: Any, tracer: SpanRecorder, seconds: float = 0.05,
                timeout: float = 10.0, ready: Any = None) -> None:
    """Wait for the event ``go`` (span "waiting for the event"), then work ``seconds`` ("working").

    With ``ready`` (a semaphore that starts at 0), release it once just before
    waiting, so the parent can tell when every worker is in place.  Exits
    with code 3 (returns in the main process) if ``go`` was not set within
    ``timeout`` seconds.
    """
    pause = check_seconds(seconds, "seconds")
    limit = check_seconds(timeout, "timeout")
    worker = lane()
    if ready is not None:
        check_lock(ready, "ready")
        ready.release()
    with tracer.span("waiting for the event", worker=worker):
        started = go.wait(limit)
    if not started:
        _give_up(3)
        return
    with tracer.span("working", worker=worker):
        time.sleep(pause)


def _give_up(code: int) -> None:
    """Exit a child process with ``code``; in the main process simply return."""
    if multiprocessing.parent_process() is not None:
        sys.exit(code)


@_child_entry
def phase_worker(barrier: Any, tracer: SpanRecorder, durations: Sequence[float],
                 timeout: float = 10.0) -> None:
    """Work ``durations[k]`` seconds in phase k, then wait at ``barrier`` before phase k+1.

    Records "working" and "waiting at the barrier" spans.  Exits with code 4
    if the barrier is broken or times out.
    """
    pauses = [check_seconds(d, "durations[i]") for d in durations]
    limit = check_seconds(timeout, "timeout")
    worker = lane()
    for pause in pauses:
        with tracer.span("working", worker=worker):
            time.sleep(pause)
        try:
            with tracer.span("waiting at the barrier", worker=worker):
                barrier.wait(limit)
        except threading.BrokenBarrierError:
            _give_up(4)
            return


@_child_entry
def wait_until_at_least(cond: Any, counter: Any, target: int, timeout: float = 10.0) -> None:
    """Wait on the condition ``cond`` until ``counter.value >= target``.

    Uses ``cond.wait_for``, which re-checks the predicate after every wake-up.
    Exits with code 5 if the target was not reached within ``timeout`` seconds.
    """
    goal = check_int(target, "target", minimum=-(2**63))
    limit = check_seconds(timeout, "timeout")
    with cond:
        reached = cond.wait_for(lambda: counter.value >= goal, limit)
    if not reached:
        _give_up(5)


@_child_entry
def square_worker(tasks: Any, results: Any, idle_timeout: float = 30.0) -> None:
    """Take ``(index, number)`` pairs from ``tasks``; put ``(index, number**2, worker)`` on results.

    Stops at the sentinel ``None``, or after ``idle_timeout`` seconds without a
    task (a safety net, so a forgotten sentinel cannot keep it alive forever).
    ``worker`` is the name of the process (or thread) that did the work.
    """
    limit = check_seconds(idle_timeout, "idle_timeout")
    me = (multiprocessing.current_process().name if multiprocessing.parent_process() is not None
          else threading.current_thread().name)
    while True:
        try:
            item = tasks.get(timeout=limit)
        except queue.Empty:
            return
        if item is None:
            return
        try:
            index, number = item
        except (TypeError, ValueError):
            raise TypeError(f"tasks must hold (index, number) pairs or None, "
                            f"got {item!r}") from None
        results.put((index, number * number, me))


@_child_entry
def nested_acquire(lock: Any, depth: int = 2, timeout: float = 0.2) -> None:
    """Acquire ``lock`` ``depth`` times in a row without releasing, then release it as often.

    An ``RLock`` allows this; a plain ``Lock`` blocks on the second acquire.
    Each acquire waits at most ``timeout`` seconds: if one fails, the locks
    taken so far are released and the call exits with code 2 (in a child
    process) or raises TimeoutError (in the main process).
    """
    levels = check_int(depth, "depth", minimum=1)
    limit = check_seconds(timeout, "timeout")
    check_lock(lock)
    taken = 0
    try:
        for _ in range(levels):
            if not acquire_within(lock, limit):
                break
            taken += 1
    finally:
        for _ in range(taken):
            lock.release()
    if taken < levels:
        if multiprocessing.parent_process() is not None:
            sys.exit(2)
        raise TimeoutError(f"acquire number {taken + 1} of {levels} timed out: the lock is not "
                           "re-entrant (use an RLock)")


def stop_helper_processes() -> list[str]:
    """Stop the helper processes multiprocessing starts for spawn and forkserver; say which.

    Under those start methods multiprocessing keeps a *resource tracker*
    (and, for forkserver, the *fork server*) running until the interpreter
    exits.  A notebook that wants to leave nothing running calls this in its
    last cell, after every lock, queue and process it made is gone: a lock
    or queue still alive would be reported as leaked.  The fork server and its
    temporary folder go as in :func:`course_lib.processes.shutdown_helpers`;
    the resource tracker is stopped too.  Both start again by themselves when
    a process or lock is next created.
    """
    from course_lib.processes.cleanup import shutdown_helpers

    stopped = shutdown_helpers()
    from course_lib.internals import stop_resource_tracker

    try:
        pid = stop_resource_tracker()
    except (OSError, ChildProcessError):
        pid = None
    if pid is not None:
        stopped.append(f"stopped the resource tracker (pid {pid})")
    return stopped
