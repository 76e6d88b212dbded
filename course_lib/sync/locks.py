"""Instrumented locks: traced, fair, and monitored for deadlock.

:class:`TracedLock` records "waiting for" and "holding" spans on a tracer (the
lock-contention timeline); :class:`LockMonitor` hands out
:class:`MonitoredLock` objects that know who holds and who waits, finds a
deadlock (a cycle of waits) and can abort every waiter, so that a deadlocked
program ends instead of hanging; :class:`FairLock` serves waiters in order.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from course_lib.sync.common import (
    Clock,
    Recorder,
    acquire_within,
    check_lock,
    check_seconds,
    lane,
)
from course_lib.sync.races import natural_key

__all__ = [
    "FairLock",
    "HoldsWaits",
    "LockAborted",
    "LockMonitor",
    "MonitoredLock",
    "TracedLock",
]

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

    def __init__(self, lock: Any, tracer: Recorder, name: str = "lock",
                 clock: Clock = time.perf_counter) -> None:
        check_lock(lock)
        if not callable(getattr(tracer, "record", None)):
            raise TypeError(f"tracer must be a course_lib.Tracer (or tracer.for_process()), "
                            f"got {type(tracer).__name__}")
        self._lock = lock
        self._tracer = tracer
        self.name = str(name)
        self._clock = clock
        self._local = threading.local()

    def __reduce__(self) -> tuple[type[TracedLock], tuple[Any, Recorder, str, Clock]]:
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
            got = acquire_within(self._lock, None if timeout is None or timeout < 0 else timeout)
        now = self._clock()
        self._tracer.record(f"waiting for {self.name}", began, now, worker=lane())
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
            self._tracer.record(f"holding {self.name}", since, until, worker=lane())

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
        self.dawdle = check_seconds(dawdle, "dawdle")
        self.poll = check_seconds(poll, "poll")
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

    @property
    def abort_reason(self) -> str | None:
        """The ``reason`` given to :meth:`abort`, or None while not aborted."""
        return self._aborted

    # The four calls below are how a MonitoredLock reports to its monitor.

    def waiting(self, lock: MonitoredLock, forever: bool) -> None:
        """The calling thread starts to wait for ``lock`` (``forever``: without a timeout)."""
        me = threading.get_ident()
        with self._state:
            self._names[me] = threading.current_thread().name
            self._waiting[me] = (lock, forever)

    def done_waiting(self, lock: MonitoredLock, got: bool) -> None:
        """The calling thread stops waiting for ``lock``; it holds it now if ``got``."""
        me = threading.get_ident()
        with self._state:
            self._waiting.pop(me, None)
            if got:
                self._holder[lock] = me

    def acquired(self, lock: MonitoredLock) -> None:
        """The calling thread took ``lock`` without waiting."""
        me = threading.get_ident()
        with self._state:
            self._names[me] = threading.current_thread().name
            self._holder[lock] = me

    def released(self, lock: MonitoredLock, unlock: Callable[[], None]) -> None:
        """``lock`` is let go: forget its holder and call ``unlock``, as one step.

        RuntimeError if ``lock`` is not locked, like ``threading.Lock.release``.
        """
        with self._state:
            if not lock.locked():
                raise RuntimeError(f"release unlocked lock {lock.name!r}")
            self._holder.pop(lock, None)
            unlock()

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
        """A snapshot if some threads wait for each other in a cycle (no timeouts), else None."""
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
        forever = timeout is None or timeout < 0
        if not blocking:
            got = self._lock.acquire(False)
            if got:
                mon.acquired(self)
        else:
            deadline = None if forever else time.monotonic() + float(timeout)
            mon.waiting(self, forever)
            got = False
            try:
                while True:
                    reason = mon.abort_reason
                    if reason is not None:
                        raise LockAborted(f"{self.name}: {reason}")
                    wait = mon.poll
                    if deadline is not None:
                        wait = min(wait, max(0.0, deadline - time.monotonic()))
                    if self._lock.acquire(True, wait):
                        reason = mon.abort_reason
                        if reason is not None:  # aborted while we waited: do not go on
                            self._lock.release()
                            raise LockAborted(f"{self.name}: {reason}")
                        got = True
                        break
                    if deadline is not None and time.monotonic() >= deadline:
                        break
            finally:
                mon.done_waiting(self, got)
        if got and mon.dawdle:
            time.sleep(mon.dawdle)
        return got

    def release(self) -> None:
        """Release the lock (RuntimeError if it is not locked, like ``threading.Lock``)."""
        self._monitor.released(self, self._lock.release)

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
