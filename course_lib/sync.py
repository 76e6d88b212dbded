"""Models, worker functions and instruments for the synchronisation chapter.

- **Races you can watch**: :class:`RacyCounter` performs ``value += amount`` as
  three separate, recorded steps (read, add, write); :func:`count_race` runs it
  in several threads and returns every step plus the updates that were lost
  (:func:`find_lost_updates`).  ``course_lib.viz.interleaving`` draws them.
- **Worker functions for child processes** (importable, so they work under the
  fork, spawn and forkserver start methods): :func:`deposit_many`,
  :func:`use_resource`, :func:`wait_for_go`, :func:`phase_worker`,
  :func:`wait_until_at_least`, :func:`square_worker`, :func:`nested_acquire`.
  Inside a child process they never print a traceback: a failure becomes one
  line on stdout and exit code 1.
- **Instruments**: :class:`TracedLock` records "waiting for" and "holding"
  spans on a tracer (the lock-contention timeline); :class:`LockMonitor` hands
  out :class:`MonitoredLock` objects that know who holds and who waits, find a
  deadlock (a cycle of waits) and can abort every waiter, so that a deadlocked
  program ends instead of hanging; :class:`FairLock` serves waiters in order.
- **Dining philosophers**: :func:`dine` runs the table with one of
  :data:`STRATEGIES` and reports meals, retries and any deadlock, leaving no
  thread behind.
"""

from __future__ import annotations

import collections
import functools
import multiprocessing
import operator
import queue
import random
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, ParamSpec, Protocol, TypeVar

__all__ = [
    "STRATEGIES",
    "DiningResult",
    "FairLock",
    "HoldsWaits",
    "LockAborted",
    "LockMonitor",
    "LostUpdate",
    "MonitoredLock",
    "RaceResult",
    "RacyCounter",
    "Step",
    "StepLog",
    "TracedLock",
    "count_race",
    "deposit_many",
    "dine",
    "find_lost_updates",
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
Clock = Callable[[], float]


class _Recorder(Protocol):
    """What the instruments need from a :class:`course_lib.Tracer` (or its RemoteTracer)."""

    def record(self, name: str, start: float, end: float, worker: str | None = None) -> None: ...


class _SpanRecorder(_Recorder, Protocol):
    def span(self, name: str, worker: str | None = None) -> Any: ...


def _lane() -> str:
    """A timeline lane for the caller: the process name in a child process, else the thread name."""
    if multiprocessing.parent_process() is not None:
        return multiprocessing.current_process().name
    return threading.current_thread().name


def _check_int(value: object, name: str, minimum: int = 0) -> int:
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got a bool")
    try:
        number = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"{name} must be an int, got {type(value).__name__}") from None
    if number < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {number}")
    return number


def _check_seconds(value: object, name: str, allow_none: bool = False) -> float:
    if value is None and allow_none:
        return -1.0
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, got {type(value).__name__}")
    seconds = float(value)
    if not seconds >= 0 or seconds == float("inf"):
        raise ValueError(f"{name} must be a finite number of seconds >= 0, got {value!r}")
    return seconds


def _check_lock(lock: object, name: str = "lock") -> None:
    if not (callable(getattr(lock, "acquire", None)) and callable(getattr(lock, "release", None))):
        raise TypeError(
            f"{name} must be a lock (with acquire() and release()), got {type(lock).__name__}: "
            "create one with threading.Lock() or course_lib.mp_context().Lock()"
        )


# --------------------------------------------------------------------------- races


@dataclass(frozen=True, slots=True)
class Step:
    """One recorded step of a read-modify-write: ``thread`` did ``action`` with ``value``.

    ``index`` is the step's place in the global order (0, 1, 2, ...); ``action``
    is "read" (value read), "add" (value computed) or "write" (value written).
    """

    index: int
    thread: str
    action: str
    value: int
    time: float


@dataclass(frozen=True, slots=True)
class LostUpdate:
    """``lost`` (a write) was overwritten by ``by``, a write computed from ``stale_read``.

    ``stale_read`` happened before ``lost``, so the value written by ``by``
    never included the update that ``lost`` made.
    """

    lost: Step
    by: Step
    stale_read: Step


def find_lost_updates(steps: Iterable[Step]) -> list[LostUpdate]:
    """The writes that another thread overwrote with a value based on an older read.

    A write ``W`` by thread T is based on T's latest read ``R`` before it.
    A write ``L`` by another thread between ``R`` and ``W`` is lost: ``W``
    replaces it with a value that never saw it.  (When ``L`` wrote the very
    value that ``R`` had read, ``L`` itself changed nothing, and it is not
    counted.)  Each lost write is listed once, so for increments the list is
    as long as the number of increments missing from the final value.
    """
    ordered = sorted(steps, key=lambda s: s.index)
    last_read: dict[str, Step] = {}
    writes: list[Step] = []
    lost: dict[int, LostUpdate] = {}
    for step in ordered:
        if step.action == "read":
            last_read[step.thread] = step
        elif step.action == "write":
            read = last_read.get(step.thread)
            if read is not None:
                for other in writes:
                    if (other.thread != step.thread and read.index < other.index
                            and other.value != read.value and other.index not in lost):
                        lost[other.index] = LostUpdate(other, step, read)
            writes.append(step)
    return [lost[i] for i in sorted(lost)]


class StepLog:
    """A thread-safe record of read/add/write steps, in the order they really happened.

    :meth:`atomic` performs one step and records it under the log's own lock,
    so each *step* is indivisible (like one bytecode under the GIL) while the
    sequence of steps is not: exactly the situation of ``x += 1`` in threads.
    """

    def __init__(self, clock: Clock = time.perf_counter) -> None:
        self._lock = threading.Lock()
        self._steps: list[Step] = []
        self._clock = clock

    def atomic(self, action: str, do: Callable[[], int]) -> int:
        """Run ``do()`` and record its result as one step named ``action``; return the result."""
        if action not in ("read", "add", "write"):
            raise ValueError(f"action must be 'read', 'add' or 'write', got {action!r}")
        with self._lock:
            value = do()
            self._steps.append(Step(len(self._steps), threading.current_thread().name, action,
                                    value, self._clock()))
        return value

    @property
    def steps(self) -> list[Step]:
        """Every step so far, in order."""
        with self._lock:
            return list(self._steps)

    def lost_updates(self) -> list[LostUpdate]:
        """See :func:`find_lost_updates`."""
        return find_lost_updates(self.steps)

    def __len__(self) -> int:
        with self._lock:
            return len(self._steps)

    def __repr__(self) -> str:
        return f"<StepLog {len(self)} steps>"


class RacyCounter:
    """A shared integer whose :meth:`increment` is three separate steps: read, add, write.

    Nothing in it is thread-safe: that is the point.  With a :class:`StepLog`
    every step is recorded.  ``pause`` is slept between the steps: ``0`` calls
    ``time.sleep(0)``, which hands the GIL to a waiting thread (so the steps of
    two threads interleave on almost every call), a positive number widens the
    window further, and ``None`` does not pause at all (then CPython 3.11+
    rarely switches threads inside an increment).
    """

    def __init__(self, value: int = 0, *, log: StepLog | None = None,
                 pause: float | None = 0.0) -> None:
        self.value = _check_int(value, "value", minimum=-(2**63))
        self._log = log
        self._pause = None if pause is None else _check_seconds(pause, "pause")

    def _step(self, action: str, do: Callable[[], int]) -> int:
        return self._log.atomic(action, do) if self._log is not None else do()

    def _wait(self) -> None:
        if self._pause is not None:
            time.sleep(self._pause)

    def increment(self, amount: int = 1) -> None:
        """``value += amount``, as read, (pause), add, (pause), write."""
        seen = self._step("read", lambda: self.value)
        self._wait()
        new = self._step("add", lambda: seen + amount)
        self._wait()

        def write() -> int:
            self.value = new
            return new

        self._step("write", write)

    def __repr__(self) -> str:
        return f"<RacyCounter value={self.value}>"


@dataclass(frozen=True)
class RaceResult:
    """What :func:`count_race` returns."""

    expected: int
    final: int
    steps: list[Step]
    lost: list[LostUpdate]

    @property
    def lost_count(self) -> int:
        """How many increments are missing from the final value."""
        return self.expected - self.final

    def __str__(self) -> str:
        return (f"expected {self.expected}, got {self.final}: "
                f"{self.lost_count} update(s) lost in {len(self.steps)} steps")


def count_race(n_threads: int = 2, increments: int = 3, *, lock: Any = None,
               pause: float | None = 0.0, timeout: float = 10.0) -> RaceResult:
    """Run ``n_threads`` threads that each increment one :class:`RacyCounter` ``increments`` times.

    The threads are named A, B, C, ... and start together (behind a barrier).
    With a ``lock`` each whole increment runs inside ``with lock:``.  Returns
    the expected and final values, every recorded step and the lost updates.
    Raises RuntimeError if the threads have not finished after ``timeout`` s.
    """
    n = _check_int(n_threads, "n_threads", minimum=1)
    k = _check_int(increments, "increments")
    if n > 26:
        raise ValueError(f"n_threads must be at most 26 (threads are named A to Z), got {n}")
    if lock is not None:
        _check_lock(lock)
    log = StepLog()
    counter = RacyCounter(log=log, pause=pause)
    start = threading.Barrier(n)

    def run() -> None:
        try:
            start.wait(timeout)
        except threading.BrokenBarrierError:
            return
        for _ in range(k):
            if lock is None:
                counter.increment()
            else:
                with lock:
                    counter.increment()

    threads = [threading.Thread(target=run, name=chr(ord("A") + i), daemon=True)
               for i in range(n)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    if any(t.is_alive() for t in threads):
        start.abort()
        raise RuntimeError(f"count_race: the threads did not finish within {timeout:g} s "
                           "(is the lock held by someone else?)")
    return RaceResult(n * k, counter.value, log.steps, log.lost_updates())


# --------------------------------------------------------------------------- child processes


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


def _acquire(lock: Any, timeout: float | None) -> bool:
    """``acquire`` with a timeout for threading and multiprocessing locks alike (None: forever)."""
    if timeout is None:
        return bool(lock.acquire(True))
    return bool(lock.acquire(True, timeout))  # positional: (blocking, timeout) and (block, timeout)


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
    count = _check_int(n, "n")
    pause = _check_seconds(think, "think")
    limit = _check_seconds(timeout, "timeout")
    if not hasattr(balance, "value"):
        raise TypeError("balance must have a .value (use ctx.Value('q', 0) or ctx.RawValue('q', 0))")
    if lock is not None:
        _check_lock(lock)
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
def use_resource(sem: Any, tracer: _SpanRecorder, seconds: float,
                 name: str = "using the resource") -> None:
    """Hold one slot of ``sem`` (a semaphore) for ``seconds``, inside a span called ``name``."""
    pause = _check_seconds(seconds, "seconds")
    _check_lock(sem, "sem")
    with sem, tracer.span(name, worker=_lane()):
        time.sleep(pause)


@_child_entry
def wait_for_go(go: Any, tracer: _SpanRecorder, seconds: float = 0.05,
                timeout: float = 10.0, ready: Any = None) -> None:
    """Wait for the event ``go`` (span "waiting for the event"), then work ``seconds`` ("working").

    With ``ready`` (a semaphore that starts at 0), release it once just before
    waiting, so the parent can tell when every worker is in place.  Exits
    with code 3 (returns in the main process) if ``go`` was not set within
    ``timeout`` seconds.
    """
    pause = _check_seconds(seconds, "seconds")
    limit = _check_seconds(timeout, "timeout")
    lane = _lane()
    if ready is not None:
        _check_lock(ready, "ready")
        ready.release()
    with tracer.span("waiting for the event", worker=lane):
        started = go.wait(limit)
    if not started:
        _give_up(3)
        return
    with tracer.span("working", worker=lane):
        time.sleep(pause)


def _give_up(code: int) -> None:
    """Exit a child process with ``code``; in the main process simply return."""
    if multiprocessing.parent_process() is not None:
        sys.exit(code)


@_child_entry
def phase_worker(barrier: Any, tracer: _SpanRecorder, durations: Sequence[float],
                 timeout: float = 10.0) -> None:
    """Work ``durations[k]`` seconds in phase k, then wait at ``barrier`` before phase k+1.

    Records "working" and "waiting at the barrier" spans.  Exits with code 4
    if the barrier is broken or times out.
    """
    pauses = [_check_seconds(d, "durations[i]") for d in durations]
    limit = _check_seconds(timeout, "timeout")
    lane = _lane()
    for pause in pauses:
        with tracer.span("working", worker=lane):
            time.sleep(pause)
        try:
            with tracer.span("waiting at the barrier", worker=lane):
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
    goal = _check_int(target, "target", minimum=-(2**63))
    limit = _check_seconds(timeout, "timeout")
    with cond:
        reached = cond.wait_for(lambda: counter.value >= goal, limit)
    if not reached:
        _give_up(5)


@_child_entry
def square_worker(tasks: Any, results: Any, idle_timeout: float = 30.0) -> None:
    """Take ``(index, number)`` pairs from ``tasks``; put ``(index, number**2, worker)`` on ``results``.

    Stops at the sentinel ``None``, or after ``idle_timeout`` seconds without a
    task (a safety net, so a forgotten sentinel cannot keep it alive forever).
    ``worker`` is the name of the process (or thread) that did the work.
    """
    limit = _check_seconds(idle_timeout, "idle_timeout")
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
            raise TypeError(f"tasks must hold (index, number) pairs or None, got {item!r}") from None
        results.put((index, number * number, me))


@_child_entry
def nested_acquire(lock: Any, depth: int = 2, timeout: float = 0.2) -> None:
    """Acquire ``lock`` ``depth`` times in a row without releasing, then release it as often.

    An ``RLock`` allows this; a plain ``Lock`` blocks on the second acquire.
    Each acquire waits at most ``timeout`` seconds: if one fails, the locks
    taken so far are released and the call exits with code 2 (in a child
    process) or raises TimeoutError (in the main process).
    """
    levels = _check_int(depth, "depth", minimum=1)
    limit = _check_seconds(timeout, "timeout")
    _check_lock(lock)
    taken = 0
    try:
        for _ in range(levels):
            if not _acquire(lock, limit):
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
    from .processes import shutdown_helpers

    stopped = shutdown_helpers()
    try:
        from multiprocessing import resource_tracker

        tracker: Any = getattr(resource_tracker, "_resource_tracker", None)
        pid = getattr(tracker, "_pid", None)
        if pid is not None and callable(getattr(tracker, "_stop", None)):
            tracker._stop()
            stopped.append(f"stopped the resource tracker (pid {pid})")
    except (ImportError, OSError, ChildProcessError):
        pass
    return stopped


# --------------------------------------------------------------------------- traced lock


class TracedLock:
    """Wrap a lock so each use records a "waiting for NAME" and a "holding NAME" span.

    Works with ``threading`` and ``multiprocessing`` locks and semaphores,
    and is picklable when the lock and tracer are (pass ``tracer.for_process()``
    to child processes).  ``clock`` must be the tracer's clock (by default
    both are ``time.perf_counter``).  The spans feed the lock-contention
    timeline: ``tracer.timeline()`` and ``course_lib.viz.contention``.
    """

    __slots__ = ("_lock", "_tracer", "name", "_clock", "_local")

    def __init__(self, lock: Any, tracer: _Recorder, name: str = "lock",
                 clock: Clock = time.perf_counter) -> None:
        _check_lock(lock)
        if not callable(getattr(tracer, "record", None)):
            raise TypeError(f"tracer must be a course_lib.Tracer (or tracer.for_process()), "
                            f"got {type(tracer).__name__}")
        self._lock = lock
        self._tracer = tracer
        self.name = str(name)
        self._clock = clock
        self._local = threading.local()

    def __reduce__(self) -> tuple[type[TracedLock], tuple[Any, _Recorder, str, Clock]]:
        return (TracedLock, (self._lock, self._tracer, self.name, self._clock))

    def _held_since(self) -> list[float]:
        stack: list[float] | None = getattr(self._local, "stack", None)
        if stack is None:
            stack = self._local.stack = []
        return stack

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        """Acquire the wrapped lock (same arguments as ``threading.Lock.acquire``)."""
        began = self._clock()
        if not blocking:
            got = bool(self._lock.acquire(False))
        else:
            got = _acquire(self._lock, None if timeout is None or timeout < 0 else timeout)
        now = self._clock()
        self._tracer.record(f"waiting for {self.name}", began, now, worker=_lane())
        if got:
            self._held_since().append(now)
        return got

    def release(self) -> None:
        """Release the wrapped lock and record the "holding" span."""
        stack = self._held_since()
        since = stack.pop() if stack else None
        until = self._clock()  # read before letting go: two "holding" spans never overlap
        self._lock.release()
        if since is not None:
            self._tracer.record(f"holding {self.name}", since, until, worker=_lane())

    def locked(self) -> bool:
        """Whether the wrapped lock is held (when the lock can tell)."""
        probe = getattr(self._lock, "locked", None)
        if callable(probe):
            return bool(probe())
        raise TypeError(f"{type(self._lock).__name__} cannot tell whether it is locked")

    def __enter__(self) -> TracedLock:
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"<TracedLock {self.name!r} around {self._lock!r}>"


# --------------------------------------------------------------------------- fair lock


class FairLock:
    """A lock that serves waiters in the order they arrived (first come, first served).

    ``threading.Lock`` makes no such promise: a thread that releases it and
    asks again at once usually gets it back, and a waiting thread can starve.
    :meth:`release` hands a FairLock directly to the longest waiter.  Same
    interface as ``threading.Lock``: ``acquire(blocking=True, timeout=-1)``,
    ``release()``, ``locked()``, ``with``.
    """

    __slots__ = ("_mutex", "_locked", "_waiters")

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._locked = False
        self._waiters: collections.deque[threading.Event] = collections.deque()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        """Wait for the lock; True once held, False when not blocking or out of time."""
        with self._mutex:
            if not self._locked and not self._waiters:
                self._locked = True
                return True
            if not blocking:
                return False
            turn = threading.Event()
            self._waiters.append(turn)
        if turn.wait(None if timeout is None or timeout < 0 else timeout):
            return True  # release() handed the lock to us: it stayed locked
        with self._mutex:
            if turn.is_set():  # handed over just as the wait timed out
                return True
            self._waiters.remove(turn)
            return False

    def release(self) -> None:
        """Hand the lock to the longest waiter, or unlock it if nobody waits."""
        with self._mutex:
            if not self._locked:
                raise RuntimeError("release unlocked lock")
            if self._waiters:
                self._waiters.popleft().set()
            else:
                self._locked = False

    def locked(self) -> bool:
        """Whether some thread holds the lock."""
        with self._mutex:
            return self._locked

    def __enter__(self) -> FairLock:
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def __repr__(self) -> str:
        with self._mutex:
            state, waiting = ("locked" if self._locked else "unlocked"), len(self._waiters)
        return f"<FairLock {state}, {waiting} waiting>"


# --------------------------------------------------------------------------- monitored locks


class LockAborted(BaseException):
    """Raised in a thread blocked on a :class:`MonitoredLock` when its monitor aborts.

    It derives from BaseException (like ``asyncio.CancelledError``) so that an
    ``except Exception`` in the code under test does not swallow it: the thread
    unwinds, its ``with`` blocks release what they hold, and it ends.
    """


def natural_key(text: str) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


@dataclass(frozen=True)
class HoldsWaits:
    """Who holds which locks and who waits for which, at one instant.

    ``holds`` maps a thread name to the names of the locks it holds,
    ``waits`` a thread name to the lock it is blocked on, ``holders`` a lock
    name to its holder.  ``cycle`` lists the threads of a deadlock (each waits
    for a lock the next one holds), empty when there is none.
    """

    holds: dict[str, tuple[str, ...]]
    waits: dict[str, str]
    cycle: tuple[str, ...] = ()
    locks: tuple[str, ...] = field(default=())

    @property
    def holders(self) -> dict[str, str]:
        """Lock name -> the thread holding it."""
        return {lock: thread for thread, locks in self.holds.items() for lock in locks}

    @property
    def deadlocked(self) -> bool:
        """True when the snapshot contains a cycle of waits."""
        return bool(self.cycle)

    def describe(self) -> str:
        """One sentence per thread in the cycle (or per waiting thread when there is no cycle)."""
        holders = self.holders
        who = self.cycle or tuple(sorted(self.waits, key=natural_key))
        parts = []
        for thread in who:
            held = self.holds.get(thread, ())
            wanted = self.waits.get(thread)
            text = thread
            text += f" holds {' and '.join(held)}" if held else " holds nothing"
            if wanted is not None:
                owner = holders.get(wanted)
                text += f" and waits for {wanted}" + (f" (held by {owner})" if owner else "")
            parts.append(text)
        return "; ".join(parts) if parts else "nobody is waiting"

    def __str__(self) -> str:
        return ("deadlock: " if self.cycle else "") + self.describe()


class LockMonitor:
    """Hands out :class:`MonitoredLock` objects and watches them for deadlock.

    ``monitor.lock(name)`` makes a lock.  :meth:`snapshot` says who holds and
    who waits, :meth:`find_deadlock` returns a snapshot with a cycle of waits
    (or None), and :meth:`abort` makes every blocked acquire raise
    :class:`LockAborted`, so that deadlocked threads end instead of hanging.
    ``dawdle`` seconds are slept right after each successful acquire: it
    widens the window between taking one lock and the next, so that code
    which *can* deadlock *does* deadlock in a test.  ``poll`` is how often a
    blocked acquire looks at the abort flag.
    """

    def __init__(self, *, dawdle: float = 0.0, poll: float = 0.005) -> None:
        self.dawdle = _check_seconds(dawdle, "dawdle")
        self.poll = _check_seconds(poll, "poll")
        if self.poll == 0:
            raise ValueError("poll must be > 0")
        self._state = threading.Lock()
        self._locks: list[MonitoredLock] = []
        self._holder: dict[MonitoredLock, int] = {}
        self._waiting: dict[int, tuple[MonitoredLock, bool]] = {}  # ident -> (lock, forever)
        self._names: dict[int, str] = {}
        self._aborted: str | None = None

    def lock(self, name: str) -> MonitoredLock:
        """A new :class:`MonitoredLock` called ``name`` (names should be unique)."""
        made = MonitoredLock(self, str(name))
        with self._state:
            self._locks.append(made)
        return made

    @property
    def aborted(self) -> bool:
        """True after :meth:`abort`."""
        return self._aborted is not None

    def abort(self, reason: str = "the lock monitor aborted the wait") -> None:
        """Make every blocked (and every later blocking) acquire raise :class:`LockAborted`."""
        with self._state:
            if self._aborted is None:
                self._aborted = reason

    def _thread_name(self, ident: int) -> str:
        return self._names.get(ident, f"thread {ident}")

    def _snapshot_locked(self) -> HoldsWaits:
        names = {ident: self._thread_name(ident) for ident in
                 set(self._holder.values()) | set(self._waiting)}
        counts = collections.Counter(names.values())
        label = {ident: (name if counts[name] == 1 else f"{name} (id {ident})")
                 for ident, name in names.items()}
        holds: dict[str, list[str]] = {}
        for lock in self._locks:  # in creation order
            ident = self._holder.get(lock)
            if ident is not None:
                holds.setdefault(label[ident], []).append(lock.name)
        waits = {label[ident]: lock.name for ident, (lock, _) in self._waiting.items()}
        cycle = tuple(label[i] for i in self._find_cycle())
        return HoldsWaits({k: tuple(v) for k, v in holds.items()}, waits, cycle,
                          tuple(lock.name for lock in self._locks))

    def _find_cycle(self) -> list[int]:
        for start in sorted(self._waiting):
            path: list[int] = []
            ident: int | None = start
            while ident is not None and ident not in path:
                wait = self._waiting.get(ident)
                if wait is None or not wait[1]:  # not waiting, or waiting with a timeout
                    break
                path.append(ident)
                ident = self._holder.get(wait[0])
            if ident is not None and ident in path:
                return path[path.index(ident):]
        return []

    def snapshot(self) -> HoldsWaits:
        """Who holds and who waits now (``cycle`` filled in when they are deadlocked)."""
        with self._state:
            return self._snapshot_locked()

    def find_deadlock(self) -> HoldsWaits | None:
        """A snapshot if some threads wait for each other in a cycle (without timeouts), else None."""
        with self._state:
            if not self._find_cycle():
                return None
            return self._snapshot_locked()

    def __repr__(self) -> str:
        return f"<LockMonitor {len(self._locks)} locks{', aborted' if self.aborted else ''}>"


class MonitoredLock:
    """A ``threading.Lock`` that tells its :class:`LockMonitor` who holds it and who waits.

    Made by :meth:`LockMonitor.lock`.  Same interface as ``threading.Lock``:
    ``acquire(blocking=True, timeout=-1)``, ``release()``, ``locked()``,
    ``with``.  A blocked acquire raises :class:`LockAborted` once the monitor
    is aborted.
    """

    __slots__ = ("name", "_monitor", "_lock", "__weakref__")

    def __init__(self, monitor: LockMonitor, name: str) -> None:
        self.name = name
        self._monitor = monitor
        self._lock = threading.Lock()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        """Acquire the lock; raises :class:`LockAborted` if the monitor aborts the wait."""
        mon = self._monitor
        me = threading.get_ident()
        forever = timeout is None or timeout < 0
        if not blocking:
            got = self._lock.acquire(False)
        else:
            deadline = None if forever else time.monotonic() + float(timeout)
            with mon._state:
                mon._names[me] = threading.current_thread().name
                mon._waiting[me] = (self, forever)
            got = False
            try:
                while True:
                    if mon._aborted is not None:
                        raise LockAborted(f"{self.name}: {mon._aborted}")
                    wait = mon.poll
                    if deadline is not None:
                        wait = min(wait, max(0.0, deadline - time.monotonic()))
                    if self._lock.acquire(True, wait):
                        if mon._aborted is not None:  # aborted while we waited: do not go on
                            self._lock.release()
                            raise LockAborted(f"{self.name}: {mon._aborted}")
                        got = True
                        break
                    if deadline is not None and time.monotonic() >= deadline:
                        break
            finally:
                with mon._state:
                    mon._waiting.pop(me, None)
                    if got:
                        mon._holder[self] = me
        if got and not blocking:
            with mon._state:
                mon._names[me] = threading.current_thread().name
                mon._holder[self] = me
        if got and mon.dawdle:
            time.sleep(mon.dawdle)
        return got

    def release(self) -> None:
        """Release the lock (RuntimeError if it is not locked, like ``threading.Lock``)."""
        mon = self._monitor
        with mon._state:
            if not self._lock.locked():
                raise RuntimeError(f"release unlocked lock {self.name!r}")
            mon._holder.pop(self, None)
            self._lock.release()

    def locked(self) -> bool:
        """Whether some thread holds the lock."""
        return self._lock.locked()

    def __enter__(self) -> MonitoredLock:
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"<MonitoredLock {self.name!r} {'locked' if self.locked() else 'unlocked'}>"


# --------------------------------------------------------------------------- philosophers

STRATEGIES = ("left-first", "ordered", "waiter", "polite", "polite-random")
"""How :func:`dine`'s philosophers pick up their forks.

- ``left-first``: left fork, then right fork, blocking: can deadlock;
- ``ordered``: the lower-numbered fork first (a global lock order): cannot deadlock;
- ``waiter``: at most n-1 philosophers may reach for forks at once (a semaphore);
- ``polite``: left fork, then *try* the right one; if it is taken, put the left
  one back and wait a fixed ``backoff`` before trying again: can livelock;
- ``polite-random``: the same with a random back-off, which breaks the symmetry.
"""


@dataclass(frozen=True)
class DiningResult:
    """What :func:`dine` returns."""

    strategy: str
    meals: list[int]  # meals eaten, per philosopher
    retries: list[int]  # forks put back, per philosopher (polite strategies)
    deadlock: HoldsWaits | None  # who held and waited when the deadlock was found
    timed_out: bool  # stopped by the timeout, or a polite philosopher gave up
    elapsed: float  # seconds
    wanted: int  # meals each philosopher was meant to eat

    @property
    def finished(self) -> bool:
        """Every philosopher ate every meal."""
        return all(m == self.wanted for m in self.meals)

    def __str__(self) -> str:
        if self.deadlock is not None:
            outcome = f"DEADLOCK after {self.elapsed * 1e3:.0f} ms: {self.deadlock.describe()}"
        elif self.timed_out:
            outcome = f"gave up after {self.elapsed * 1e3:.0f} ms"
        else:
            outcome = f"done in {self.elapsed * 1e3:.0f} ms"
        return (f"{self.strategy}: meals {self.meals} (wanted {self.wanted} each), "
                f"forks put back {sum(self.retries)} times; {outcome}")


def dine(n: int = 5, meals: int = 3, strategy: str = "ordered", *, eat: float = 0.002,
         think: float = 0.0, dawdle: float = 0.002, backoff: float = 0.002,
         max_retries: int = 100, timeout: float = 5.0, tracer: _Recorder | None = None,
         seed: int | None = None, clock: Clock = time.perf_counter) -> DiningResult:
    """Seat ``n`` philosophers around ``n`` forks; each eats ``meals`` times using ``strategy``.

    Philosopher i needs fork i (left) and fork (i+1) % n (right).  Forks are
    :class:`MonitoredLock` objects that dawdle ``dawdle`` s after each pick-up,
    which makes an unsafe strategy deadlock reliably.  A deadlock is detected
    as soon as it happens (a cycle of waits), the waits are aborted, and every
    thread ends: nothing is left running.  ``timeout`` bounds the whole
    dinner (a livelock gives up then, or after ``max_retries`` put-backs per
    philosopher).  With a ``tracer`` (whose clock is ``clock``), spans are
    recorded on lanes "philosopher i": "waiting for forks" and "eating", and
    for the polite strategies "holding left fork" and "backing off".
    """
    count = _check_int(n, "n", minimum=2)
    wanted = _check_int(meals, "meals")
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}: use one of {', '.join(STRATEGIES)}")
    eat_s = _check_seconds(eat, "eat")
    think_s = _check_seconds(think, "think")
    backoff_s = _check_seconds(backoff, "backoff")
    retries_max = _check_int(max_retries, "max_retries")
    limit = _check_seconds(timeout, "timeout")
    if limit == 0:
        raise ValueError("timeout must be > 0")

    monitor = LockMonitor(dawdle=dawdle)
    forks = [monitor.lock(f"fork {i}") for i in range(count)]
    seats = threading.Semaphore(count - 1)
    eaten = [0] * count
    retries = [0] * count
    rngs = [random.Random(None if seed is None else seed * 1000 + i) for i in range(count)]

    def record(name: str, i: int, start: float) -> None:
        if tracer is not None:
            tracer.record(name, start, clock(), worker=f"philosopher {i}")

    def eat_now(i: int) -> None:
        start = clock()
        time.sleep(eat_s)
        eaten[i] += 1
        record("eating", i, start)

    def blocking_meal(i: int, first: MonitoredLock, second: MonitoredLock) -> None:
        start = clock()
        with first, second:
            record("waiting for forks", i, start)
            eat_now(i)

    rounds = threading.Barrier(count)

    def polite_philosopher(i: int, jitter: bool) -> None:
        # Everyone acts in the same rounds, as if retrying on one shared timer:
        # 1. pick up the left fork; 2. try the right one; 3. eat, or put the left one back.
        left, right = forks[i], forks[(i + 1) % count]
        while True:
            hungry = eaten[i] < wanted
            acts = hungry and (not jitter or rngs[i].random() < 0.5)
            start = clock()
            if acts:
                left.acquire()  # always free at the start of a round
            rounds.wait(limit)
            got_right = acts and right.acquire(False)
            rounds.wait(limit)
            if got_right:
                try:
                    eat_now(i)
                finally:
                    right.release()
                    left.release()
            elif acts:
                left.release()
                record("holding left fork", i, start)
                retries[i] += 1
            elif hungry:
                time.sleep(backoff_s)
                record("backing off", i, start)
            rounds.wait(limit)
            if all(e >= wanted for e in eaten) or any(r >= retries_max for r in retries):
                return

    def philosopher(i: int) -> None:
        left, right = forks[i], forks[(i + 1) % count]
        low, high = (left, right) if i < (i + 1) % count else (right, left)
        try:
            if strategy in ("polite", "polite-random"):
                polite_philosopher(i, strategy == "polite-random")
                return
            for _ in range(wanted):
                if think_s:
                    time.sleep(think_s)
                if strategy == "left-first":
                    blocking_meal(i, left, right)
                elif strategy == "ordered":
                    blocking_meal(i, low, high)
                else:
                    with seats:
                        blocking_meal(i, left, right)
        except (LockAborted, threading.BrokenBarrierError):
            return

    threads = [threading.Thread(target=philosopher, args=(i,), name=f"philosopher {i}",
                                daemon=True) for i in range(count)]
    began = time.perf_counter()
    for t in threads:
        t.start()
    deadlock: HoldsWaits | None = None
    timed_out = False
    deadline = time.monotonic() + limit
    while any(t.is_alive() for t in threads):
        deadlock = monitor.find_deadlock()
        if deadlock is not None:
            break
        if time.monotonic() >= deadline:
            timed_out = True
            break
        time.sleep(0.002)
    elapsed = time.perf_counter() - began
    if deadlock is not None or timed_out:
        monitor.abort("the dinner was stopped")
        rounds.abort()
    for t in threads:
        t.join(max(1.0, 10 * monitor.poll))
    if not timed_out and deadlock is None:
        timed_out = any(m < wanted for m in eaten)  # a polite philosopher gave up
    return DiningResult(strategy, eaten, retries, deadlock, timed_out, elapsed, wanted)
