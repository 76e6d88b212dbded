"""The synchronisation chapter's evidence checks fail on the lazy behaviour and pass on the
reference."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

import pytest

from course_lib.sync import TracedLock
from course_lib.trace import Span, Tracer
from graders.checks import (
    abort_barriers,
    assert_concurrent_workers,
    assert_lock_order,
    assert_phases,
    max_concurrency,
)


def _span(name: str, worker: str, start: float, end: float) -> Span:
    return Span(name, worker, start, end, os.getpid(), worker)


def _dine(start_all_first: bool) -> list[Span]:
    """Three 'philosophers' eat twice each, in threads started all at once or one at a time."""
    with Tracer() as tracer:
        def philosopher(i: int) -> None:
            for _ in range(2):
                with tracer.span("eating", worker=f"philosopher {i}"):
                    time.sleep(0.01)

        threads = [threading.Thread(target=philosopher, args=(i,)) for i in range(3)]
        if start_all_first:
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        else:
            for t in threads:
                t.start()
                t.join()
    return tracer.spans


def test_concurrent_workers_fails_when_started_and_joined_one_at_a_time() -> None:
    assert_concurrent_workers(_dine(start_all_first=True), 2, name="eating")
    with pytest.raises(AssertionError, match="at most 1 of 3 worker"):
        assert_concurrent_workers(_dine(start_all_first=False), 2, name="eating")
    with pytest.raises(ValueError):
        assert_concurrent_workers([], 0)


def _transfers(ordered: bool, global_lock: bool) -> list[Span]:
    """1 -> 2 and 4 -> 3 in two threads on traced account locks."""
    with Tracer() as tracer:
        locks = {i: TracedLock(threading.Lock(), tracer, f"account {i}") for i in (1, 2, 3, 4)}
        bank = threading.Lock()
        start = threading.Barrier(2)

        def run(src: int, dst: int) -> None:
            start.wait(5)
            first, second = sorted((src, dst)) if ordered else (src, dst)
            for _ in range(5):
                if global_lock:
                    with bank, locks[first], locks[second]:
                        time.sleep(0.003)
                else:
                    with locks[first], locks[second]:
                        time.sleep(0.003)

        threads = [
            threading.Thread(target=run, args=job, name=f"t{job}") for job in ((1, 2), (4, 3))
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    return tracer.spans


def _rank(name: str) -> int:
    return int(name.split()[-1])


def test_lock_order_passes_ordered_and_fails_source_first() -> None:
    assert_lock_order(_transfers(ordered=True, global_lock=False), _rank)
    with pytest.raises(AssertionError, match="took 'account 3' while holding 'account 4'"):
        assert_lock_order(_transfers(ordered=False, global_lock=False), _rank)


def test_one_global_lock_leaves_no_overlap_between_disjoint_transfers() -> None:
    names = ["holding account 1", "holding account 3"]
    assert max_concurrency(_transfers(ordered=True, global_lock=False), names=names) >= 2
    assert max_concurrency(_transfers(ordered=True, global_lock=True), names=names) == 1


def test_traced_lock_holding_spans_of_one_shared_lock_never_overlap() -> None:
    with Tracer() as tracer:
        lock = TracedLock(threading.Lock(), tracer, "the lock")

        def hammer() -> None:
            for _ in range(200):
                with lock:
                    pass

        threads = [threading.Thread(target=hammer) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    held = [s for s in tracer.spans if s.name == "holding the lock"]
    assert len(held) == 800
    assert max_concurrency(held) == 1


def _phased(run: Callable[[threading.Barrier | None, int], None], n: int = 3,
            phases: int = 3) -> list[Span]:
    with Tracer() as tracer:
        barrier = threading.Barrier(n)

        def worker(i: int) -> None:
            for k in range(phases):
                with tracer.span(f"phase {k}", worker=f"worker {i}"):
                    time.sleep(0.005 * (i + 1) if k % 2 == 0 else 0.005 * (n - i))
                run(barrier, i)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    return tracer.spans


def test_phases_pass_with_a_barrier_and_fail_without() -> None:
    assert assert_phases(_phased(lambda b, i: b.wait(5) if b else None)) == 3
    with pytest.raises(AssertionError, match="began phase 1 before"):
        assert_phases(_phased(lambda b, i: None))


def test_phases_fail_when_the_workers_disagree_about_stopping() -> None:
    agreed = [_span(f"phase {k}", f"worker {i}", k, k + 0.5) for k in range(2) for i in range(2)]
    assert assert_phases(agreed, workers=["worker 0", "worker 1"]) == 2
    split = agreed + [_span("phase 2", "worker 0", 2, 2.5)]
    with pytest.raises(AssertionError, match="phase 2 was not run by worker 1"):
        assert_phases(split)
    with pytest.raises(AssertionError, match="not run by worker 2"):
        assert_phases(agreed, workers=["worker 0", "worker 1", "worker 2"])
    assert assert_phases([]) == 0


def test_abort_barriers_frees_a_thread_stuck_at_a_barrier() -> None:
    barrier = threading.Barrier(2)
    outcome: list[str] = []

    def stuck() -> None:
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            outcome.append("broken")

    t = threading.Thread(target=stuck, daemon=True)
    t.start()
    time.sleep(0.05)
    assert abort_barriers() >= 1
    t.join(5)
    assert outcome == ["broken"]
