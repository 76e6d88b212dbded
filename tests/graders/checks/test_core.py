"""graders.checks: each helper passes good code, fails bad code with a useful message, and stays
quiet."""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

import numpy as np
import pytest

from graders import checks


@dataclass
class FakeSpan:
    name: str
    worker: str
    start: float
    end: float


class Counter:
    def __init__(self) -> None:
        self.value = 0


def add_unlocked(counter: Counter, n: int) -> None:
    for _ in range(n):
        counter.value += 1


_lock = threading.Lock()


def add_locked(counter: Counter, n: int) -> None:
    for _ in range(n):
        with _lock:
            counter.value += 1


def run_counter(worker: object, threads: int = 4, n: int = 50) -> int:
    counter = Counter()
    pool = [threading.Thread(target=worker, args=(counter, n)) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return counter.value


# ---------------------------------------------------------------- races


def test_the_classic_unlocked_counter_fails_every_time() -> None:
    failures = 0
    for _ in range(20):
        with contextlib.suppress(AssertionError):
            checks.assert_race_free(lambda: run_counter(add_unlocked), 200, trials=1,
                                    interleave=[add_unlocked])
            continue
        failures += 1
    assert failures == 20


def test_the_race_message_says_what_happened_and_what_to_do() -> None:
    with pytest.raises(AssertionError) as caught:
        checks.assert_race_free(lambda: run_counter(add_unlocked), 200, trials=3,
                                interleave=[add_unlocked], what="final count")
    message = str(caught.value)
    assert message.startswith("final count: trial 1 of 3 gave ")
    assert "expected 200" in message and "lock" in message


def test_a_locked_counter_passes_under_forced_interleaving() -> None:
    checks.assert_race_free(lambda: run_counter(add_locked), 200, trials=3, interleave=[add_locked])


def test_forced_interleaving_restores_the_trace_hooks() -> None:
    before = (sys.gettrace(), threading.gettrace())
    with checks.forced_interleaving(add_unlocked):
        assert threading.gettrace() is not None
    assert (sys.gettrace(), threading.gettrace()) == before


def test_forced_interleaving_rejects_what_it_cannot_trace() -> None:
    with pytest.raises(TypeError, match="not a Python function"):
        with checks.forced_interleaving(len):
            pass


def test_a_stuck_race_run_fails_within_its_budget() -> None:
    lock = threading.Lock()
    lock.acquire()  # never released: every trial would block forever
    start = time.monotonic()
    with pytest.raises(AssertionError, match="did not finish within"):
        checks.assert_race_free(lambda: lock.acquire(), True, trials=2, timeout=0.3)
    assert time.monotonic() - start < 5


# ---------------------------------------------------------------- time bounds


def test_finishes_within_returns_the_result() -> None:
    assert checks.finishes_within(5, lambda x: x * 2, 21) == 42


def test_finishes_within_reports_a_deadlock() -> None:
    gate = threading.Event()
    try:
        with pytest.raises(AssertionError, match=r"wait_forever\(\) did not finish within 0.2 s"):
            def wait_forever() -> None:
                gate.wait()

            checks.finishes_within(0.2, wait_forever)
    finally:
        gate.set()


def test_finishes_within_turns_exceptions_into_messages() -> None:
    def broken() -> None:
        raise KeyError("balance")

    with pytest.raises(AssertionError, match=r"broken\(\) raised KeyError: 'balance'"):
        checks.finishes_within(5, broken)

    def todo() -> None:
        raise NotImplementedError

    with pytest.raises(AssertionError, match="not implemented yet"):
        checks.finishes_within(5, todo)


# ---------------------------------------------------------------- spans


def test_overlap_and_concurrency() -> None:
    parallel = [
        FakeSpan("io", "t0", 0, 1),
        FakeSpan("io", "t1", 0.5, 1.5),
        FakeSpan("io", "t2", 0.6, 0.9),
    ]
    assert checks.max_concurrency(parallel) == 3
    checks.assert_overlap(parallel, min_overlapping=3)
    serial = [FakeSpan("io", "t0", 0, 1), FakeSpan("io", "t1", 1, 2)]  # touching is not overlapping
    assert checks.max_concurrency(serial) == 1
    with pytest.raises(AssertionError, match="one after another"):
        checks.assert_overlap(serial)
    with pytest.raises(AssertionError, match="only 0 span"):
        checks.assert_overlap(serial, names=["cpu"])


def test_distinct_workers() -> None:
    spans = [FakeSpan("x", "a", 0, 1), FakeSpan("x", "a", 1, 2)]
    with pytest.raises(
        AssertionError, match=r"1 distinct worker\(s\) ran \(a\), expected at least 2"
    ):
        checks.assert_distinct_workers(spans, 2)
    checks.assert_distinct_workers(["a", "b", "a"], 2)


# ---------------------------------------------------------------- answers


@pytest.mark.parametrize("actual, expected", [
    (0.1 + 0.2, 0.3), (np.arange(3.0), np.array([0.0, 1.0, 2.0])), ([1, 2], [1, 2]), ("a", "a"),
])
def test_expect_equal_accepts_equal_values(actual: object, expected: object) -> None:
    checks.expect_equal(actual, expected, "value")


@pytest.mark.parametrize("actual, expected", [
    (1.0, 1.1), (np.arange(3), np.arange(4)), ([1, 2], [2, 1]), (None, 0), ("5", 5),
])
def test_expect_equal_rejects_different_values(actual: object, expected: object) -> None:
    with pytest.raises(
        AssertionError, match=r"^speed-up: got .*, expected .*\. Check the formula$"
    ):
        checks.expect_equal(actual, expected, "speed-up", "Check the formula")


def test_expect_raises() -> None:
    err = checks.expect_raises(ValueError, int, "x")
    assert isinstance(err, ValueError)
    with pytest.raises(AssertionError, match="expected ValueError, but it returned 5"):
        checks.expect_raises(ValueError, int, "5")
    with pytest.raises(AssertionError, match="expected ValueError, but it raised TypeError"):
        checks.expect_raises(ValueError, int, None)


# ---------------------------------------------------------------- clean-up and quiet


def test_no_leaks_names_a_leaked_thread() -> None:
    gate = threading.Event()
    try:
        with pytest.raises(AssertionError, match="threads still running: leaky"):
            with checks.no_leaks(timeout=0.1):
                threading.Thread(target=gate.wait, name="leaky", daemon=True).start()
    finally:
        gate.set()


def test_no_leaks_names_a_leaked_process() -> None:
    proc = None
    try:
        with pytest.raises(AssertionError, match="child processes still running"):
            with checks.no_leaks(timeout=0.1):
                proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    finally:
        if proc is not None:
            proc.kill()
            proc.wait()


def test_no_leaks_passes_when_everything_was_joined() -> None:
    with checks.no_leaks():
        t = threading.Thread(target=time.sleep, args=(0.01,))
        t.start()
        t.join()


def test_quiet_turns_thread_exceptions_into_one_assertion() -> None:
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        with pytest.raises(AssertionError, match="worker-1 raised ZeroDivisionError"):
            with checks.quiet():
                t = threading.Thread(target=lambda: 1 / 0, name="worker-1")
                t.start()
                t.join()
                print("noise", file=sys.stderr)
    assert stderr.getvalue() == ""
