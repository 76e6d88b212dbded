"""Races you can watch: a counter whose increment is three recorded steps.

:class:`RacyCounter` performs ``value += amount`` as three separate, recorded
steps (read, add, write); :func:`count_race` runs it in several threads and
returns every step plus the updates that were lost (:func:`find_lost_updates`).
:func:`course_lib.sync.pictures.interleaving` draws them.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from course_lib.sync.common import Clock, check_int, check_lock, check_seconds

__all__ = [
    "LostUpdate",
    "RaceResult",
    "RacyCounter",
    "Step",
    "StepLog",
    "count_race",
    "find_lost_updates",
]


def natural_key(text: str) -> list[Any]:
    """Sort key that orders embedded numbers by value: "fork 2" before "fork 10"."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


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
        self.value = check_int(value, "value", minimum=-(2**63))
        self._log = log
        self._pause = None if pause is None else check_seconds(pause, "pause")

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
    n = check_int(n_threads, "n_threads", minimum=1)
    k = check_int(increments, "increments")
    if n > 26:
        raise ValueError(f"n_threads must be at most 26 (threads are named A to Z), got {n}")
    if lock is not None:
        check_lock(lock)
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

