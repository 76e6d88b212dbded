"""Tests for course_lib.sync, the chapter 3 pictures in course_lib.viz, and graders.checks.sync."""

from __future__ import annotations

import itertools
import multiprocessing
import pickle
import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest
from matplotlib.axes import Axes

from course_lib import sync, viz
from course_lib.sync import (
    FairLock,
    HoldsWaits,
    LockAborted,
    LockMonitor,
    RacyCounter,
    Step,
    StepLog,
    TracedLock,
    count_race,
    dine,
    find_lost_updates,
    pictures,
)
from course_lib.trace import Span, Tracer
from graders.checks import (
    assert_exclusive,
    finishes_without_deadlock,
    forced_interleaving,
    run_in_threads,
    wait_until_waiting,
)


@pytest.fixture(autouse=True)
def no_stray_threads() -> Iterator[None]:
    """Every test ends its threads; figures are closed and rcParams untouched."""
    before = set(threading.enumerate())
    params = dict(matplotlib.rcParams)
    try:
        yield
        deadline = time.monotonic() + 3
        while any(t.is_alive() for t in set(threading.enumerate()) - before):
            left = set(threading.enumerate()) - before
            assert time.monotonic() < deadline, f"threads left: {left}"
            time.sleep(0.01)
        assert dict(matplotlib.rcParams) == params
    finally:
        plt.close("all")


def steps(*spec: tuple[str, str, int]) -> list[Step]:
    return [Step(i, thread, action, value, float(i))
            for i, (thread, action, value) in enumerate(spec)]


# --------------------------------------------------------------------------- lost updates


def test_the_classic_lost_update_is_found() -> None:
    race = steps(("A", "read", 0), ("B", "read", 0), ("A", "add", 1), ("A", "write", 1),
                 ("B", "add", 1), ("B", "write", 1))
    [lost] = find_lost_updates(race)
    assert (lost.lost.index, lost.by.index, lost.stale_read.index) == (3, 5, 1)


def test_updates_one_after_another_lose_nothing() -> None:
    fine = steps(("A", "read", 0), ("A", "add", 1), ("A", "write", 1),
                 ("B", "read", 1), ("B", "add", 2), ("B", "write", 2))
    assert find_lost_updates(fine) == []


def test_three_stale_readers_lose_two_updates_and_a_no_op_write_is_not_counted() -> None:
    race = steps(("A", "read", 0), ("B", "read", 0), ("C", "read", 0),
                 ("A", "write", 1), ("B", "write", 1), ("C", "write", 1))
    assert [u.lost.thread for u in find_lost_updates(race)] == ["A", "B"]
    # B read 1 after A's write of 1; A writing 1 again on top of it changed nothing.
    noop = steps(("A", "read", 0), ("B", "write", 1), ("B", "read", 1), ("A", "write", 1),
                 ("B", "write", 2))
    assert [u.lost.index for u in find_lost_updates(noop)] == [1]


def test_step_log_records_in_order_and_refuses_unknown_steps() -> None:
    log = StepLog(clock=itertools.count().__next__)  # type: ignore[arg-type]
    assert log.atomic("read", lambda: 5) == 5
    log.atomic("write", lambda: 6)
    assert [(s.index, s.action, s.value, s.time) for s in log.steps] == [(0, "read", 5, 0),
                                                                         (1, "write", 6, 1)]
    assert len(log) == 2 and "2 steps" in repr(log)
    with pytest.raises(ValueError, match="action"):
        log.atomic("subtract", lambda: 0)


def test_racy_counter_is_right_alone_and_checks_its_arguments() -> None:
    counter = RacyCounter(10, pause=None)
    for _ in range(5):
        counter.increment()
    counter.increment(-3)
    assert counter.value == 12
    with pytest.raises(ValueError, match="pause"):
        RacyCounter(pause=-1)
    with pytest.raises(TypeError, match="pause"):
        RacyCounter(pause="soon")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="value"):
        RacyCounter(1.5)  # type: ignore[arg-type]


def test_count_race_loses_updates_without_a_lock_and_none_with_one() -> None:
    with forced_interleaving(RacyCounter):
        racy = count_race(3, 6, pause=None)
    assert racy.lost_count > 0
    assert len(racy.lost) == racy.lost_count  # each missing increment is one lost write
    assert len(racy.steps) == 3 * 6 * 3
    assert "lost" in str(racy)
    with forced_interleaving(RacyCounter):
        safe = count_race(3, 6, lock=threading.Lock(), pause=None)
    assert (safe.final, safe.lost_count, safe.lost) == (18, 0, [])
    assert {s.thread for s in safe.steps} == {"A", "B", "C"}


def test_count_race_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="n_threads"):
        count_race(0)
    with pytest.raises(ValueError, match="26"):
        count_race(27)
    with pytest.raises(TypeError, match="lock"):
        count_race(2, lock=object())
    with pytest.raises(ValueError, match="increments"):
        count_race(2, -1)


def test_count_race_gives_up_on_a_lock_held_elsewhere() -> None:
    lock = threading.Lock()
    lock.acquire()
    try:
        with pytest.raises(RuntimeError, match="did not finish"):
            count_race(2, 1, lock=lock, timeout=0.2)
    finally:
        lock.release()


# --------------------------------------------------------------------------- workers


class Box:
    def __init__(self) -> None:
        self.value = 0


def test_deposit_many_in_threads_with_and_without_a_lock() -> None:
    box, lock = Box(), threading.Lock()
    start = threading.Barrier(3)
    run_in_threads([lambda: sync.deposit_many(box, lock, 10, start, think=0)] * 3)
    assert box.value == 30
    racy = Box()
    with forced_interleaving(sync.deposit_many.__wrapped__):  # type: ignore[attr-defined]
        run_in_threads([lambda: sync.deposit_many(racy, None, 10, think=0)] * 3)
    assert racy.value < 30


def test_deposit_many_refuses_bad_input() -> None:
    with pytest.raises(TypeError, match="value"):
        sync.deposit_many(object(), None, 1)
    with pytest.raises(TypeError, match="lock"):
        sync.deposit_many(Box(), "a lock", 1)
    with pytest.raises(TypeError, match="barrier"):
        sync.deposit_many(Box(), None, 1, start=42)
    with pytest.raises(ValueError, match="n"):
        sync.deposit_many(Box(), None, -1)
    with pytest.raises(ValueError, match="think"):
        sync.deposit_many(Box(), None, 1, think=-0.1)


def test_deposit_many_in_processes_and_a_quiet_failure(capfd: pytest.CaptureFixture[str]) -> None:
    ctx = multiprocessing.get_context("fork")
    balance, lock, start = ctx.Value("q", 0, lock=False), ctx.Lock(), ctx.Barrier(2)
    procs = [ctx.Process(target=sync.deposit_many, args=(balance, lock, 5, start, 1, 0.0))
             for _ in range(2)]
    broken = ctx.Process(target=sync.deposit_many, args=(object(), None, 1), name="broken")
    for p in [*procs, broken]:
        p.start()
    for p in [*procs, broken]:
        p.join(10)
    assert balance.value == 10
    assert [p.exitcode for p in procs] == [0, 0]
    assert broken.exitcode == 1
    out, err = capfd.readouterr()
    assert "broken: deposit_many failed: TypeError" in out
    assert err == ""  # no traceback from the child


def test_event_barrier_condition_semaphore_workers_in_the_main_process() -> None:
    with Tracer() as tracer:
        sync.use_resource(threading.BoundedSemaphore(1), tracer, 0.0, "printing")
        go = threading.Event()
        go.set()
        ready = threading.Semaphore(0)
        sync.wait_for_go(go, tracer, 0.0, ready=ready)
        assert ready.acquire(blocking=False)
        sync.wait_for_go(threading.Event(), tracer, 0.0, timeout=0.01)  # gives up, no "working"
        sync.phase_worker(threading.Barrier(1), tracer, [0.0, 0.0])
    names = [s.name for s in tracer.spans]
    assert names.count("printing") == 1 and names.count("working") == 3
    assert names.count("waiting for the event") == 2
    assert names.count("waiting at the barrier") == 2
    cond, counter = threading.Condition(), Box()
    counter.value = 3
    sync.wait_until_at_least(cond, counter, 3, timeout=0.01)  # already true: returns at once
    sync.wait_until_at_least(cond, counter, 4, timeout=0.01)  # times out quietly
    with pytest.raises(TypeError, match="sem"):
        sync.use_resource(object(), tracer, 0.0)
    with pytest.raises(ValueError, match="timeout"):
        sync.wait_for_go(go, tracer, 0.0, timeout=-1)


def test_square_worker_stops_at_the_sentinel_or_when_idle() -> None:
    tasks: queue.Queue[Any] = queue.Queue()
    results: queue.Queue[Any] = queue.Queue()
    for item in [(0, 3), (1, -4), None]:
        tasks.put(item)
    sync.square_worker(tasks, results)
    assert [results.get_nowait()[:2] for _ in range(2)] == [(0, 9), (1, 16)]
    sync.square_worker(tasks, results, idle_timeout=0.01)  # nothing comes: it gives up
    tasks.put(7)
    with pytest.raises(TypeError, match=r"\(index, number\)"):
        sync.square_worker(tasks, results)


def test_nested_acquire_needs_a_reentrant_lock() -> None:
    sync.nested_acquire(threading.RLock(), depth=3)
    lock = threading.Lock()
    with pytest.raises(TimeoutError, match="RLock"):
        sync.nested_acquire(lock, depth=2, timeout=0.01)
    assert not lock.locked()  # what it took, it gave back
    with pytest.raises(ValueError, match="depth"):
        sync.nested_acquire(threading.RLock(), depth=0)


def test_stop_helper_processes_stops_the_resource_tracker() -> None:
    lock = multiprocessing.get_context("spawn").Lock()  # starts the resource tracker
    del lock
    stopped = sync.stop_helper_processes()
    assert any("resource tracker" in s for s in stopped)
    assert sync.stop_helper_processes() == []


# --------------------------------------------------------------------------- traced lock


class FakeLock:
    """A picklable lock that records how acquire was called."""

    def __init__(self, grant: bool = True) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.grant = grant

    def acquire(self, *args: Any) -> bool:
        self.calls.append(args)
        return self.grant

    def release(self) -> None:
        self.calls.append(("release",))


def test_traced_lock_records_waiting_and_holding() -> None:
    clock = itertools.count().__next__
    with Tracer(clock=clock) as tracer:  # type: ignore[arg-type]
        lock = TracedLock(threading.Lock(), tracer, "the lock", clock=clock)  # type: ignore[arg-type]
        with lock:
            assert lock.locked()
        assert not lock.acquire(blocking=True, timeout=0) or lock.release() is None
    spans = [s for s in tracer.spans if s.name in ("waiting for the lock", "holding the lock")]
    assert [s.name for s in spans][:2] == ["waiting for the lock", "holding the lock"]
    assert spans[0].end == spans[1].start  # holding starts when waiting ends
    assert all(s.worker == threading.current_thread().name for s in spans)


def test_traced_lock_passes_timeouts_the_multiprocessing_way_and_pickles() -> None:
    with Tracer() as tracer:
        fake = FakeLock(grant=False)
        traced = TracedLock(fake, tracer.for_process(), "slot")
        assert traced.acquire(timeout=0.5) is False
        traced.acquire()
        traced.acquire(False)
        assert fake.calls == [(True, 0.5), (True,), (False,)]
        assert [s.name for s in tracer.spans] == ["waiting for slot"] * 3  # nothing was held
        copy = pickle.loads(pickle.dumps(traced))
        assert copy.name == "slot" and isinstance(copy._lock, FakeLock)
    with pytest.raises(TypeError, match="lock"):
        TracedLock(object(), Tracer())
    with pytest.raises(TypeError, match="tracer"):
        TracedLock(threading.Lock(), object())  # type: ignore[arg-type]


# --------------------------------------------------------------------------- fair lock


def test_fair_lock_serves_waiters_in_arrival_order() -> None:
    lock, order = FairLock(), []
    lock.acquire()
    threads = []
    for i in range(3):
        t = threading.Thread(target=lambda i=i: (lock.acquire(), order.append(i), lock.release()))
        t.start()
        threads.append(t)
        deadline = time.monotonic() + 5
        while len(lock._waiters) < i + 1:  # wait until thread i is in the queue
            assert time.monotonic() < deadline
            time.sleep(0.001)
    lock.release()
    for t in threads:
        t.join(5)
    assert order == [0, 1, 2]
    assert not lock.locked()


def test_fair_lock_timeouts_and_misuse() -> None:
    lock = FairLock()
    with lock:
        assert lock.locked() and "locked" in repr(lock)
        assert lock.acquire(blocking=False) is False
        assert run_in_threads([lambda: lock.acquire(timeout=0.02)]) == [False]
        assert len(lock._waiters) == 0  # the timed-out waiter left the queue
    with pytest.raises(RuntimeError, match="unlocked"):
        lock.release()


# --------------------------------------------------------------------------- monitored locks


def test_monitor_finds_a_deadlock_and_abort_ends_it() -> None:
    monitor = LockMonitor(dawdle=0.02)
    a, b = monitor.lock("a"), monitor.lock("b")
    aborted: list[str] = []
    # Both hold their first lock before either asks for its second, however late the
    # second thread starts on a loaded machine: the deadlock is certain, not likely.
    both_hold = threading.Barrier(2)

    def cross(first: Any, second: Any) -> None:
        try:
            with first:
                both_hold.wait(10)
                with second:
                    pass
        except LockAborted:
            aborted.append(threading.current_thread().name)

    threads = [threading.Thread(target=cross, args=(a, b), name="T1"),
               threading.Thread(target=cross, args=(b, a), name="T2")]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 5
    while (found := monitor.find_deadlock()) is None:
        assert time.monotonic() < deadline, "no deadlock found"
        time.sleep(0.005)
    assert found.deadlocked and set(found.cycle) == {"T1", "T2"}
    assert found.holders == {"a": "T1", "b": "T2"}
    assert "T1 holds a and waits for b (held by T2)" in found.describe()
    assert str(found).startswith("deadlock: ")
    monitor.abort()
    for t in threads:
        t.join(5)
    assert sorted(aborted) == ["T1", "T2"] and monitor.aborted
    assert not a.locked() and not b.locked()  # the with-blocks released on the way out


def test_a_thread_waiting_for_its_own_lock_is_a_deadlock_but_a_timed_wait_is_not() -> None:
    monitor = LockMonitor()
    lock = monitor.lock("only")

    def twice() -> None:
        with lock, lock:
            pass

    with pytest.raises(AssertionError, match="holds only and waits for only"):
        finishes_without_deadlock(5, twice, monitor=monitor)
    other = LockMonitor()
    held = other.lock("held")
    held.acquire()
    assert run_in_threads([lambda: held.acquire(timeout=0.05)]) == [False]
    assert other.find_deadlock() is None
    snap = other.snapshot()
    assert snap.holds == {threading.current_thread().name: ("held",)} and snap.waits == {}
    held.release()
    with pytest.raises(RuntimeError, match="unlocked"):
        held.release()


def test_monitor_refuses_bad_settings_and_describes_an_empty_table() -> None:
    with pytest.raises(ValueError, match="dawdle"):
        LockMonitor(dawdle=-1)
    with pytest.raises(ValueError, match="poll"):
        LockMonitor(poll=0)
    assert HoldsWaits({}, {}).describe() == "nobody is waiting"
    assert not HoldsWaits({}, {}).deadlocked


# --------------------------------------------------------------------------- philosophers


def test_left_first_deadlocks_and_leaves_nothing_running() -> None:
    dinner = dine(5, 5, "left-first", dawdle=0.05)
    assert dinner.deadlock is not None and len(dinner.deadlock.cycle) == 5
    assert not dinner.finished and "DEADLOCK" in str(dinner)
    assert not [t for t in threading.enumerate() if t.name.startswith("philosopher")]


@pytest.mark.parametrize("strategy", ["ordered", "waiter", "polite-random"])
def test_safe_strategies_feed_everybody(strategy: str) -> None:
    with Tracer() as tracer:
        dinner = dine(5, 2, strategy, seed=1, tracer=tracer, dawdle=0.001)
    assert dinner.finished and dinner.deadlock is None and not dinner.timed_out
    eating = [s for s in tracer.spans if s.name == "eating"]
    assert len(eating) == 10
    assert_exclusive(eating, [(f"philosopher {i}", f"philosopher {(i + 1) % 5}") for i in range(5)],
                     name="eating")


def test_polite_philosophers_in_step_livelock() -> None:
    dinner = dine(3, 1, "polite", max_retries=5)
    assert dinner.meals == [0, 0, 0] and dinner.timed_out and dinner.deadlock is None
    assert dinner.retries == [5, 5, 5]


def test_dine_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="strategy"):
        dine(strategy="greedy")
    with pytest.raises(ValueError, match="n"):
        dine(1)
    with pytest.raises(ValueError, match="timeout"):
        dine(timeout=0)


# --------------------------------------------------------------------------- pictures

# viz re-exports the chapter's pictures from course_lib.sync.pictures: both must draw the same.
PICTURES = pytest.mark.parametrize("pics", [viz, pictures], ids=["viz", "sync.pictures"])


@PICTURES
def test_interleaving_marks_lost_writes(pics: Any) -> None:
    race = steps(("A", "read", 0), ("B", "read", 0), ("A", "add", 1), ("B", "add", 1),
                 ("A", "write", 1), ("B", "write", 1))
    ax = pics.interleaving(race)
    assert isinstance(ax, Axes)
    texts = [t.get_text() for t in ax.texts]
    assert texts.count("LOST") == 1 and "write\n1" in texts
    assert "1 update(s) lost" in ax.get_title()
    assert [t.get_text() for t in ax.get_yticklabels()] == ["thread A", "thread B"]
    fig, own = plt.subplots()
    assert pics.interleaving(race[:3], ax=own) is own
    assert "No update lost" in own.get_title()
    with pytest.raises(TypeError, match="Step"):
        pics.interleaving([1, 2, 3])


@PICTURES
def test_contention_adds_up_holding_and_waiting(pics: Any) -> None:
    spans = [Span("waiting for x", "T1", 0.0, 0.002, 1, "T1"),
             Span("holding x", "T1", 0.002, 0.010, 1, "T1"),
             Span("waiting for x", "T2", 0.0, 0.010, 1, "T2")]
    ax = pics.contention(spans, title="who waited")
    assert ax.get_title() == "who waited"
    labels = {t.get_text() for t in ax.texts}
    assert {"holding 80%", "waiting 20%", "waiting 100%"} <= labels
    assert {p.get_hatch() or "" for p in ax.patches} >= {"", "//", ".."}
    empty = pics.contention([])
    assert any("no spans" in t.get_text() for t in empty.texts)


@PICTURES
def test_wait_for_graph_draws_the_cycle(pics: Any) -> None:
    dinner = dine(4, 5, "left-first", dawdle=0.05)
    assert dinner.deadlock is not None
    ax = pics.wait_for_graph(dinner.deadlock)
    assert ax.get_title().startswith("Deadlock: 4 threads")
    names = {t.get_text() for t in ax.texts}
    assert {"fork 0", "philosopher 3"} <= names
    calm = pics.wait_for_graph(HoldsWaits({"T": ("a",)}, {}))
    assert "No cycle" in calm.get_title()
    with pytest.raises(TypeError, match="HoldsWaits"):
        pics.wait_for_graph(None)


# --------------------------------------------------------------------------- checks


def test_finishes_without_deadlock_returns_and_reports_errors() -> None:
    assert finishes_without_deadlock(5, sum, [1, 2]) == 3
    with pytest.raises(AssertionError, match="not implemented"):
        finishes_without_deadlock(5, lambda: (_ for _ in ()).throw(NotImplementedError()))
    with pytest.raises(AssertionError, match="raised KeyError"):
        finishes_without_deadlock(5, {}.__getitem__, "x")
    with pytest.raises(ValueError):
        finishes_without_deadlock(0, sum, [])


def test_a_timeout_calls_release_and_frees_the_threads() -> None:
    stuck = threading.Event()

    def waits_for_ever() -> None:
        helper = threading.Thread(target=stuck.wait, name="helper")
        helper.start()
        helper.join()

    began = time.monotonic()
    with pytest.raises(AssertionError, match=r"did not finish within 0.2 s; the check stopped"):
        finishes_without_deadlock(0.2, waits_for_ever, release=stuck.set)
    assert time.monotonic() - began < 3


def test_a_timeout_kills_the_child_processes_of_the_call() -> None:
    ctx = multiprocessing.get_context("fork")

    def starts_a_sleeper() -> None:
        sleeper = ctx.Process(target=time.sleep, args=(60,), name="sleeper")
        sleeper.start()
        sleeper.join()

    with pytest.raises(AssertionError, match="did not finish"):
        finishes_without_deadlock(0.3, starts_a_sleeper)
    assert not [p for p in multiprocessing.active_children() if p.name == "sleeper"]


def test_run_in_threads_results_errors_and_timeouts() -> None:
    assert run_in_threads([lambda: 1, lambda: 2]) == [1, 2]
    assert run_in_threads([]) == []
    with pytest.raises(AssertionError,
                       match="worker-1: raised ZeroDivisionError.*divide carefully"):
        run_in_threads([lambda: 1, lambda: 1 / 0], hint="divide carefully")
    release = threading.Event()
    try:
        with pytest.raises(AssertionError, match="still running after 0.1 s: slow"):
            run_in_threads([release.wait], timeout=0.1, names=["slow"])
    finally:
        release.set()
    with pytest.raises(ValueError, match="names"):
        run_in_threads([lambda: 1], names=["a", "b"])


def test_wait_until_waiting_sees_threads_inside_wait() -> None:
    cond = threading.Condition()
    assert wait_until_waiting(cond, 1, timeout=0.05) is False
    waiter = threading.Thread(target=lambda: cond.acquire() and (cond.wait(5), cond.release()))
    waiter.start()
    assert wait_until_waiting(cond, 1, timeout=5) is True
    with cond:
        cond.notify_all()
    waiter.join(5)
    assert wait_until_waiting(object(), timeout=0.01) is True  # cannot see: sleeps, says yes


def test_assert_exclusive_catches_neighbours_together() -> None:
    ok = [Span("eating", "p0", 0.0, 1.0, 1, "t0"), Span("eating", "p1", 1.0, 2.0, 1, "t1"),
          Span("thinking", "p1", 0.5, 0.8, 1, "t1")]
    assert_exclusive(ok, [("p0", "p1")], name="eating")  # touching is not overlapping
    clash = [*ok, Span("eating", "p1", 0.9, 1.1, 1, "t1")]
    with pytest.raises(AssertionError, match="p0 and p1 ran 'eating' at the same time"):
        assert_exclusive(clash, [("p0", "p1")], name="eating")
    assert_exclusive(clash, [("p0", "p2")], name="eating")  # not in the same group
