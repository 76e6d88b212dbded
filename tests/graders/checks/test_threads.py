"""The thread evidence checks fail on the lazy behaviour and pass on the reference."""

from __future__ import annotations

import threading

import pytest

from graders.checks import (
    assert_race_free,
    assert_threads_shared_work,
    counter_spy,
    expect_threads_joined,
)


def _named(n: int, *, join: bool = True) -> list[tuple[str, int]]:
    seen: list[tuple[str, int]] = [("", 0)] * n

    def record(i: int) -> None:
        seen[i] = (threading.current_thread().name, threading.get_ident())

    threads = [threading.Thread(target=record, args=(i,), name=f"worker-{i}") for i in range(n)]
    for t in threads:
        t.start()
    if join:
        for t in threads:
            t.join()
    return seen


def test_expect_threads_joined_passes_and_reports_who_ran() -> None:
    run = expect_threads_joined(5, _named, 3)
    assert [name for name, _ in run.value] == ["worker-0", "worker-1", "worker-2"]
    assert sorted(run.names) == ["worker-0", "worker-1", "worker-2"]
    assert run.idents == {ident for _, ident in run.value}


def test_expect_threads_joined_catches_a_missing_join_even_for_tiny_work() -> None:
    before = set(threading.enumerate())
    with pytest.raises(AssertionError, match=r"3 thread\(s\) it started were still running.*join"):
        expect_threads_joined(5, _named, 3, join=False)
    assert [t for t in threading.enumerate() if t not in before] == []  # waited for them


def test_expect_threads_joined_leaves_no_profile_hook_behind() -> None:
    expect_threads_joined(5, _named, 2)
    assert threading.getprofile() is None


def test_expect_threads_joined_rejects_a_bad_hold() -> None:
    with pytest.raises(ValueError):
        expect_threads_joined(5, _named, 1, hold=-1)


class Counter:
    def __init__(self) -> None:
        self.value = 0


def _threaded(counter_cls: type, n_threads: int, n: int, *, together: bool = True,
              lock: bool = True) -> int:
    counter = counter_cls()
    guard = threading.Lock()

    def add() -> None:
        for _ in range(n):
            if lock:
                with guard:
                    counter.value += 1
            else:
                counter.value += 1

    threads = [threading.Thread(target=add) for _ in range(n_threads)]
    for t in threads:
        t.start()
        if not together:
            t.join()
    for t in threads:
        t.join()
    return counter.value  # type: ignore[no-any-return]


def _serial(counter_cls: type, n_threads: int, n: int) -> int:
    counter = counter_cls()
    for _ in range(n_threads * n):
        counter.value += 1
    return counter.value  # type: ignore[no-any-return]


def test_counter_spy_records_every_write_with_its_thread() -> None:
    spy = counter_spy(Counter)
    assert issubclass(spy, Counter) and spy.__name__ == "Counter"
    total = _threaded(spy, 3, 50)
    assert total == 150
    writes = spy.writes  # type: ignore[attr-defined]
    assert len(writes) == 151  # __init__ writes 0 once
    assert len({(w.ident, w.thread) for w in writes}) == 4
    with pytest.raises(TypeError):
        counter_spy(Counter())  # type: ignore[arg-type]


def _trial(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
    spy = counter_spy(Counter)
    caller = threading.get_ident()
    records: list[object] = []

    def run() -> int:
        spy.writes.clear()  # type: ignore[attr-defined]
        value: int = fn(spy, *args, **kwargs)
        records.append(list(spy.writes))  # type: ignore[attr-defined]
        return value

    return spy, run, records, caller


def test_shared_work_passes_on_the_reference_under_forced_interleaving() -> None:
    spy, run, records, _ = _trial(_threaded, 3, 20)
    assert_race_free(run, 60, trials=3, interleave=(_threaded,))
    for writes in records:
        # run() executes in finishes_within's helper thread: that thread is the caller.
        callers = {w.ident for w in writes if w.value == 0}
        assert_threads_shared_work(writes, 3, caller=callers.pop())


def test_shared_work_fails_a_serial_loop() -> None:
    spy = counter_spy(Counter)
    assert _serial(spy, 3, 20) == 60
    with pytest.raises(AssertionError, match="calling thread itself made 61"):
        assert_threads_shared_work(spy.writes, 3, caller=threading.get_ident())  # type: ignore[attr-defined]


def test_shared_work_fails_threads_joined_one_at_a_time() -> None:
    spy, run, records, _ = _trial(_threaded, 3, 20, together=False)
    assert_race_free(run, 60, trials=2, interleave=(_threaded,))
    for writes in records:
        callers = {w.ident for w in writes if w.value == 0}
        with pytest.raises(AssertionError, match="one after another"):
            assert_threads_shared_work(writes, 3, caller=callers.pop())


def test_shared_work_fails_a_hard_coded_total() -> None:
    with pytest.raises(AssertionError, match=r"0 thread\(s\) other than the caller"):
        assert_threads_shared_work([], 2)
    with pytest.raises(ValueError):
        assert_threads_shared_work([], 0)


def test_forced_interleaving_still_exposes_an_unlocked_spied_counter() -> None:
    spy, run, _, _ = _trial(_threaded, 3, 20, lock=False)
    with pytest.raises(AssertionError, match="trial"):
        assert_race_free(run, 60, trials=3, interleave=(_threaded,))
