"""The dining philosophers: :func:`dine` runs the table with one of :data:`STRATEGIES`.

It reports meals, retries and any deadlock, leaving no thread behind.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass

from course_lib.sync.common import Clock, Recorder, check_int, check_seconds
from course_lib.sync.locks import HoldsWaits, LockAborted, LockMonitor, MonitoredLock

__all__ = ["STRATEGIES", "DiningResult", "dine"]

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
         max_retries: int = 100, timeout: float = 5.0, tracer: Recorder | None = None,
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
    count = check_int(n, "n", minimum=2)
    wanted = check_int(meals, "meals")
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}: use one of {', '.join(STRATEGIES)}")
    eat_s = check_seconds(eat, "eat")
    think_s = check_seconds(think, "think")
    backoff_s = check_seconds(backoff, "backoff")
    retries_max = check_int(max_retries, "max_retries")
    limit = check_seconds(timeout, "timeout")
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
