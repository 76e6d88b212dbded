"""Unit tests for course_lib.timing.

No test sleeps and none asserts on real elapsed time: a fake clock advances by a
scripted amount each time the benchmarked function is called. Durations are
multiples of 1/1024 s so that the arithmetic is exact in binary floating point.
"""

from __future__ import annotations

import functools
import math
import subprocess
import sys
import time
import types
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.axes import Axes

from course_lib._render import format_seconds
from course_lib.laws import amdahl_speedup
from course_lib.timing import (
    Comparison,
    ComparisonRow,
    Scaling,
    Timing,
    answers_equal,
    benchmark,
    compare,
    measure,
    scaling,
)

U = 1.0 / 1024  # one time unit, exact in binary


class FakeClock:
    """A wall clock and a CPU clock that move only when told to."""

    def __init__(self, resolution: float = 1e-9) -> None:
        self.now = 0.0
        self.cpu_now = 0.0
        self.resolution = resolution

    def __call__(self) -> float:
        return self.now

    def cpu(self) -> float:
        return self.cpu_now

    def advance(self, wall: float, cpu: float) -> None:
        self.now += wall
        self.cpu_now += cpu


class Scripted:
    """A function to benchmark: each call advances the clock by the next scripted duration.

    After the script runs out, the last duration repeats.
    """

    def __init__(
        self,
        clock: FakeClock,
        durations: Sequence[float],
        *,
        cpu_per_wall: float = 1.0,
        result: object = None,
    ) -> None:
        self.clock = clock
        self.durations = list(durations)
        self.cpu_per_wall = cpu_per_wall
        self.result = result
        self.calls = 0
        self.args: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    def __call__(self, *args: Any, **kwargs: Any) -> object:
        index = min(self.calls, len(self.durations) - 1)
        self.calls += 1
        self.args.append((args, kwargs))
        duration = self.durations[index]
        self.clock.advance(duration, duration * self.cpu_per_wall)
        return self.result


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(autouse=True)
def _close_figures() -> Iterator[None]:
    yield
    plt.close("all")


def fake(clock: FakeClock) -> dict[str, Any]:
    return {"clock": clock, "cpu_clock": clock.cpu}


# --------------------------------------------------------------------------- benchmark


def test_median_and_spread(clock: FakeClock) -> None:
    fn = Scripted(clock, [1 * U, 2 * U, 3 * U, 4 * U, 10 * U])
    t = benchmark(fn, repeat=5, warmup=0, loops=1, **fake(clock))
    assert t.wall == [1 * U, 2 * U, 3 * U, 4 * U, 10 * U]
    assert t.cpu == t.wall
    assert t.median == 3 * U
    assert t.quartiles == (2 * U, 4 * U)
    assert t.spread == 2 * U
    assert t.relative_spread == pytest.approx(2 / 3)
    assert t.cpu_median == 3 * U
    assert t.cpu_per_wall == 1.0
    assert (t.loops, t.repeat) == (1, 5)


def test_median_of_even_count_and_single_repeat(clock: FakeClock) -> None:
    t = benchmark(
        Scripted(clock, [1 * U, 2 * U, 3 * U, 4 * U]), repeat=4, warmup=0, loops=1, **fake(clock)
    )
    assert t.median == 2.5 * U
    assert t.spread == pytest.approx(1.5 * U)  # Q1 = 1.75, Q3 = 3.25 (linear interpolation)
    single = benchmark(Scripted(clock, [U]), repeat=1, warmup=0, loops=1, **fake(clock))
    assert single.spread == 0.0
    assert single.median == U


def test_loops_divide_the_repeat_time(clock: FakeClock) -> None:
    fn = Scripted(clock, [U])
    t = benchmark(fn, repeat=3, warmup=0, loops=8, **fake(clock))
    assert t.wall == [U, U, U]
    assert t.loops == 8
    assert fn.calls == 3 * 8


def test_warmup_calls_are_counted_and_not_timed(clock: FakeClock) -> None:
    # Three slow warm-up calls, then fast calls: the slow ones must not be measured.
    fn = Scripted(clock, [100 * U, 100 * U, 100 * U, U])
    t = benchmark(fn, repeat=5, warmup=3, loops=2, **fake(clock))
    assert fn.calls == 3 + 5 * 2
    assert t.wall == [U] * 5


def test_calibration_picks_smallest_loops_reaching_min_time(clock: FakeClock) -> None:
    fn = Scripted(clock, [U])
    min_time = 0.05
    t = benchmark(fn, repeat=5, warmup=1, min_time=min_time, **fake(clock))
    assert t.loops * U >= min_time > (t.loops - 1) * U
    assert t.loops == 52
    # warm-up, calibration rounds of 1, 10 and 52 calls, then the repeats
    assert fn.calls == 1 + (1 + 10 + 52) + 5 * 52
    assert t.median == U


def test_calibration_grows_by_at_most_ten_per_round(clock: FakeClock) -> None:
    fn = Scripted(clock, [U])
    t = benchmark(fn, repeat=1, warmup=0, min_time=2.0, **fake(clock))
    assert t.loops == 2048
    calibration_calls = fn.calls - t.loops
    # rounds of 1, 10, 100 and 1000 calls, then the estimate (2048 < 10 * 1000)
    assert calibration_calls == 1 + 10 + 100 + 1000 + 2048


def test_calibration_of_slow_function_uses_one_loop(clock: FakeClock) -> None:
    fn = Scripted(clock, [0.5])
    t = benchmark(fn, repeat=3, warmup=0, min_time=0.05, **fake(clock))
    assert t.loops == 1
    assert fn.calls == 1 + 3


def test_min_time_zero_means_one_loop(clock: FakeClock) -> None:
    fn = Scripted(clock, [U])
    t = benchmark(fn, repeat=4, warmup=2, min_time=0, **fake(clock))
    assert t.loops == 1
    assert fn.calls == 2 + 4


def test_calibration_stops_when_the_clock_never_advances(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(measure, "_STALLED_LOOPS", 1000)
    fn = Scripted(clock, [0.0])
    t = benchmark(fn, repeat=3, warmup=0, **fake(clock))
    assert t.loops == 1000
    assert t.median == 0.0
    assert t.unstable
    assert any("did not advance" in w for w in t.warnings)
    assert math.isnan(t.cpu_per_wall)


@pytest.mark.parametrize(("cpu_per_wall", "expected"), [(1.0, 1.0), (2.0, 2.0), (0.0, 0.0)])
def test_cpu_per_wall(clock: FakeClock, cpu_per_wall: float, expected: float) -> None:
    fn = Scripted(clock, [4 * U], cpu_per_wall=cpu_per_wall)
    t = benchmark(fn, repeat=3, warmup=0, loops=1, **fake(clock))
    assert t.cpu_median == 4 * U * cpu_per_wall
    assert t.cpu_per_wall == expected


def test_stable_timing_has_no_warnings(clock: FakeClock) -> None:
    t = benchmark(Scripted(clock, [U]), repeat=5, warmup=0, loops=4, **fake(clock))
    assert not t.unstable
    assert t.warnings == []


def test_unstable_warning_fires_above_ten_percent(clock: FakeClock) -> None:
    noisy = benchmark(
        Scripted(clock, [8 * U, 8 * U, 10 * U, 12 * U, 12 * U]),
        repeat=5,
        warmup=0,
        loops=1,
        **fake(clock),
    )
    assert noisy.relative_spread == pytest.approx(0.4)
    assert noisy.unstable
    assert any(w.startswith("unstable") and "40%" in w for w in noisy.warnings)
    # Exactly 10 %: not flagged (the threshold is 'over 10 %').
    calm = benchmark(
        Scripted(clock, [10 * U, 10 * U, 10 * U, 11 * U, 11 * U]),
        repeat=5,
        warmup=0,
        loops=1,
        **fake(clock),
    )
    assert not calm.unstable
    assert calm.warnings == []


def test_too_few_repeats_warn(clock: FakeClock) -> None:
    t = benchmark(Scripted(clock, [U]), repeat=2, warmup=0, loops=1, **fake(clock))
    assert any("repeat" in w for w in t.warnings)
    assert not t.unstable  # too few repeats is a warning, not noise


def test_repeat_shorter_than_clock_resolution_warns() -> None:
    coarse = FakeClock(resolution=1e-3)
    t = benchmark(Scripted(coarse, [1e-3]), repeat=3, warmup=0, loops=1, **fake(coarse))
    assert t.resolution == 1e-3
    assert t.unstable
    assert any("resolution" in w for w in t.warnings)
    # The same time on a fine clock is fine.
    fine = FakeClock(resolution=1e-9)
    assert (
        benchmark(Scripted(fine, [1e-3]), repeat=3, warmup=0, loops=1, **fake(fine)).warnings == []
    )


def test_resolution_of_known_and_unknown_clocks() -> None:
    expected = time.get_clock_info("perf_counter").resolution
    assert measure.clock_resolution(time.perf_counter) == expected
    assert measure.clock_resolution(time.monotonic) == time.get_clock_info("monotonic").resolution
    assert measure.clock_resolution(lambda: 0.0) == 0.0


def test_real_clocks_smoke() -> None:
    # Real clocks, no assertion on the durations themselves.
    t = benchmark(sum, range(10), repeat=3, min_time=0.001)
    assert t.loops >= 1
    assert len(t.wall) == len(t.cpu) == 3
    assert t.median > 0
    assert t.resolution == time.get_clock_info("perf_counter").resolution


def test_arguments_are_passed_and_name_defaults(clock: FakeClock) -> None:
    fn = Scripted(clock, [U])
    benchmark(fn, 1, 2, repeat=1, warmup=0, loops=1, key="value", **fake(clock))
    assert fn.args == [((1, 2), {"key": "value"})]

    def work(n: int) -> int:
        clock.advance(U, U)
        return n

    assert benchmark(work, 3, repeat=1, warmup=0, min_time=0, **fake(clock)).name.endswith("work")
    partial = functools.partial(work, 3)
    assert benchmark(partial, repeat=1, warmup=0, min_time=0, **fake(clock)).name.endswith("work")
    named = benchmark(work, 3, repeat=1, warmup=0, min_time=0, name="mine", **fake(clock))
    assert named.name == "mine"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"repeat": 0},
        {"repeat": -1},
        {"repeat": 2.5},
        {"warmup": -1},
        {"min_time": -0.1},
        {"min_time": math.nan},
        {"min_time": math.inf},
        {"loops": 0},
    ],
)
def test_benchmark_rejects_bad_arguments(clock: FakeClock, kwargs: dict[str, Any]) -> None:
    fn = Scripted(clock, [U])
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        benchmark(fn, **kwargs, **fake(clock))
    assert fn.calls == 0


def test_benchmark_rejects_non_callable() -> None:
    with pytest.raises(TypeError, match="callable"):
        benchmark(42)  # type: ignore[arg-type]


def test_timing_validates_its_fields() -> None:
    with pytest.raises(ValueError):
        Timing("x", wall=[], cpu=[], loops=1, repeat=0)
    with pytest.raises(ValueError):
        Timing("x", wall=[1.0], cpu=[1.0, 2.0], loops=1, repeat=1)
    with pytest.raises(ValueError):
        Timing("x", wall=[1.0, 2.0], cpu=[1.0, 2.0], loops=1, repeat=3)
    with pytest.raises(ValueError):
        Timing("x", wall=[1.0], cpu=[1.0], loops=0, repeat=1)


def test_timing_text_and_html(clock: FakeClock) -> None:
    fn = Scripted(clock, [1 * U, 2 * U, 3 * U, 4 * U, 10 * U], cpu_per_wall=2.0)
    t = benchmark(fn, repeat=5, warmup=0, loops=1, name="<busy>", **fake(clock))
    text = str(t)
    assert "<busy>" in text
    assert format_seconds(t.median) in text
    assert "CPU/wall" in text
    assert "2.00" in text
    assert "1 × 5" in text
    assert "note: unstable" in text
    page = t._repr_html_()
    assert page.startswith("<table>")
    assert "&lt;busy&gt;" in page and "<busy>" not in page
    assert format_seconds(t.median) in page
    assert "unstable" in page
    assert "median=" in repr(t)


# --------------------------------------------------------------------------- compare


def two_variants(clock: FakeClock, answer: object = 42) -> tuple[Scripted, Scripted]:
    slow = Scripted(clock, [4 * U], result=answer)
    fast = Scripted(clock, [U], cpu_per_wall=2.0, result=answer)
    return slow, fast


def test_compare_speedup_and_efficiency(clock: FakeClock) -> None:
    slow, fast = two_variants(clock)
    result = compare(
        {"serial": slow, "threads": fast},
        workers={"threads": 2},
        repeat=3,
        min_time=0,
        **fake(clock),
    )
    assert isinstance(result, Comparison)
    assert result.baseline == "serial"
    assert result.result == 42
    assert [row.name for row in result.rows] == ["serial", "threads"]
    serial, threads = result.rows
    assert isinstance(serial, ComparisonRow)
    assert (serial.workers, serial.speedup, serial.efficiency) == (1, 1.0, 1.0)
    assert (threads.workers, threads.speedup, threads.efficiency) == (2, 4.0, 2.0)
    assert threads.timing.median == U
    assert threads.timing.cpu_per_wall == 2.0
    assert result["threads"] is threads
    assert result.timings == {"serial": serial.timing, "threads": threads.timing}
    with pytest.raises(KeyError):
        result["missing"]
    # The answer call is the first warm-up call: 1 + repeat calls with warmup=1, min_time=0.
    assert slow.calls == fast.calls == 1 + 3


def test_compare_extra_warmup_and_calibration(clock: FakeClock) -> None:
    slow, fast = two_variants(clock)
    result = compare(
        {"slow": slow, "fast": fast}, warmup=3, repeat=2, min_time=4 * U, **fake(clock)
    )
    assert result["slow"].timing.loops == 1
    assert result["fast"].timing.loops == 4
    assert slow.calls == 3 + 1 + 2 * 1
    assert fast.calls == 3 + (1 + 4) + 2 * 4


def test_compare_explicit_baseline(clock: FakeClock) -> None:
    slow, fast = two_variants(clock)
    result = compare(
        {"slow": slow, "fast": fast}, baseline="fast", repeat=3, min_time=0, **fake(clock)
    )
    assert result.baseline == "fast"
    assert result["slow"].speedup == 0.25
    assert result["fast"].speedup == 1.0


def test_compare_detects_a_wrong_variant_before_timing(clock: FakeClock) -> None:
    good = Scripted(clock, [U], result=45)
    bad = Scripted(clock, [U], result=44)
    also_good = Scripted(clock, [U], result=45)
    with pytest.raises(ValueError) as info:
        compare({"serial": good, "pool": also_good, "racy threads": bad}, min_time=0, **fake(clock))
    message = str(info.value)
    assert "'racy threads'" in message
    assert "'serial'" in message
    assert "44" in message and "45" in message
    assert "'pool'" not in message
    # Fail fast: every variant was called once for its answer, none was timed.
    assert (good.calls, also_good.calls, bad.calls) == (1, 1, 1)


def test_compare_reports_type_mismatch(clock: FakeClock) -> None:
    with pytest.raises(ValueError, match=r"'text'.*\(str vs int\)"):
        compare(
            {"number": Scripted(clock, [U], result=3), "text": Scripted(clock, [U], result="3")},
            min_time=0,
            **fake(clock),
        )


def test_compare_numpy_answers(clock: FakeClock) -> None:
    data = np.random.default_rng(0).random(10_000)
    # The same sums in a different order: equal up to rounding.
    forward = Scripted(clock, [U], result=np.array([sum(data.tolist())] * 3))
    backward = Scripted(clock, [U], result=np.array([sum(data[::-1].tolist())] * 3))
    result = compare(
        {"forward": forward, "backward": backward}, repeat=3, min_time=0, **fake(clock)
    )
    assert result.result is forward.result  # the baseline's answer

    ints = Scripted(clock, [U], result=np.arange(100))
    off_by_one = Scripted(clock, [U], result=np.arange(100) + (np.arange(100) == 50))
    with pytest.raises(ValueError) as info:
        compare({"ints": ints, "off by one": off_by_one}, min_time=0, **fake(clock))
    message = str(info.value)
    assert "'off by one'" in message
    assert "shape=(100,)" in message
    assert len(message) < 600  # the answers are shown briefly


def test_compare_float_rounding_is_tolerated(clock: FakeClock) -> None:
    values = [0.1] * 10
    in_order = Scripted(clock, [U], result=sum(values))
    chunked = Scripted(clock, [U], result=sum(values[:5]) + sum(values[5:]) + 1e-15)
    result = compare({"sum": in_order, "chunks": chunked}, repeat=3, min_time=0, **fake(clock))
    assert result.result == pytest.approx(1.0)


def test_compare_custom_equal(clock: FakeClock) -> None:
    seen: list[tuple[object, object]] = []

    def same_length(expected: object, actual: object) -> bool:
        seen.append((expected, actual))
        assert isinstance(expected, list) and isinstance(actual, list)
        return len(expected) == len(actual)

    result = compare(
        {"base": Scripted(clock, [U], result=[1, 2]), "other": Scripted(clock, [U], result=[2, 1])},
        equal=same_length,
        repeat=3,
        min_time=0,
        **fake(clock),
    )
    assert result.result == [1, 2]
    assert seen == [([1, 2], [2, 1])]


def test_compare_variant_exception_names_the_variant(clock: FakeClock) -> None:
    def broken() -> int:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom") as info:
        compare({"ok": Scripted(clock, [U], result=1), "broken": broken}, min_time=0, **fake(clock))
    assert any("'broken'" in note for note in getattr(info.value, "__notes__", []))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"baseline": "nope"}, "unknown baseline 'nope'"),
        ({"workers": {"nope": 2}}, "unknown variant"),
        ({"workers": {"a": 0}}, "positive"),
        ({"workers": {"a": 1.5}}, "positive"),
        ({"repeat": 0}, "repeat"),
        ({"warmup": -1}, "warmup"),
        ({"min_time": -1.0}, "min_time"),
    ],
)
def test_compare_rejects_bad_arguments(
    clock: FakeClock, kwargs: dict[str, Any], match: str
) -> None:
    a = Scripted(clock, [U], result=1)
    with pytest.raises(ValueError, match=match):
        compare({"a": a, "b": Scripted(clock, [U], result=1)}, **kwargs, **fake(clock))
    assert a.calls == 0


def test_compare_rejects_empty_and_non_callable() -> None:
    with pytest.raises(ValueError, match="at least one variant"):
        compare({})
    with pytest.raises(TypeError, match="'b'"):
        compare({"a": lambda: 1, "b": 2})  # type: ignore[arg-type]


def test_compare_text_and_html(clock: FakeClock) -> None:
    slow, fast = two_variants(clock)
    result = compare(
        {"serial": slow, "threads": fast},
        workers={"threads": 2},
        repeat=3,
        min_time=0,
        **fake(clock),
    )
    text = str(result)
    assert "serial (baseline)" in text
    assert "threads" in text
    assert "4.00×" in text
    assert "200%" in text
    assert format_seconds(4 * U) in text
    page = result._repr_html_()
    assert page.count("<tr>") == 3  # header + two rows
    assert "serial (baseline)" in page and "4.00×" in page
    assert result.table().rows[1][0] == "threads"


def test_compare_warnings_reach_the_table(clock: FakeClock) -> None:
    noisy = Scripted(clock, [U, U, 8 * U, 12 * U, 12 * U, 12 * U], result=1)
    result = compare(
        {"steady": Scripted(clock, [U], result=1), "noisy": noisy},
        repeat=5,
        min_time=0,
        **fake(clock),
    )
    assert result.warnings and all(w.startswith("noisy: ") for w in result.warnings)
    assert "note: noisy: unstable" in str(result)


def test_compare_plot_returns_axes(clock: FakeClock) -> None:
    slow, fast = two_variants(clock)
    result = compare({"serial": slow, "threads": fast}, repeat=3, min_time=0, **fake(clock))
    style_before = dict(matplotlib.rcParams)
    ax = result.plot()
    assert isinstance(ax, Axes)
    assert [label.get_text() for label in ax.get_yticklabels()] == ["serial", "threads"]
    assert "ms" in ax.get_xlabel()
    _, given = plt.subplots()
    assert result.plot(ax=given) is given
    assert dict(matplotlib.rcParams) == style_before


# --------------------------------------------------------------------------- answers_equal


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (1, 1, True),
        (1, 2, False),
        ("x", "x", True),
        (0.1 + 0.2, 0.3, True),
        (1.0, 1.1, False),
        (math.nan, math.nan, True),
        ([1, 2.0000000001], [1, 2.0], True),
        ([1, 2], [1, 2, 3], False),
        ([1, 2], (1, 2), False),
        ({"a": 1.0, "b": [1]}, {"a": 1.0 + 1e-12, "b": [1]}, True),
        ({"a": 1}, {"b": 1}, False),
        (np.arange(5), np.arange(5), True),
        (np.arange(5), np.arange(6), False),
        (np.arange(5), np.arange(5).reshape(5, 1), False),
        (np.arange(5), [0, 1, 2, 3, 4], True),
        (np.ones(3) * 0.1 * 3, np.ones(3) * 0.3, True),
        (np.ones(3), np.ones(3) * 1.1, False),
        (np.int64(7), 7, True),
        (np.float32(0.1), 0.1, True),
        ([np.arange(3), np.arange(3)], [np.arange(3), np.arange(3)], True),
        (None, None, True),
        (None, 0, False),
        (1.0, "1.0", False),
    ],
)
def test_answers_equal(a: object, b: object, expected: bool) -> None:
    assert answers_equal(a, b) is expected
    assert answers_equal(b, a) is expected


# --------------------------------------------------------------------------- scaling


def amdahl_work(clock: FakeClock, serial: float, total: float = 1.0) -> Callable[[int], None]:
    def run(n: int) -> None:
        wall = total * (serial + (1 - serial) / n)
        clock.advance(wall, wall)

    return run


def test_scaling_recovers_amdahl_serial_fraction(clock: FakeClock) -> None:
    workers = [1, 2, 4, 8, 16]
    result = scaling(amdahl_work(clock, 0.2), workers, **fake(clock))
    assert isinstance(result, Scaling)
    assert result.workers == workers
    assert len(result.timings) == len(workers)
    expected = [amdahl_speedup(0.8, n) for n in workers]
    assert result.speedups == pytest.approx(expected, rel=1e-12)
    efficiencies = [s / n for s, n in zip(expected, workers, strict=True)]
    assert result.efficiencies == pytest.approx(efficiencies, rel=1e-12)
    assert result.serial_fraction == pytest.approx(0.2, abs=1e-6)


def test_scaling_relative_to_first_worker_count(clock: FakeClock) -> None:
    workers = [2, 4, 8]
    result = scaling(amdahl_work(clock, 0.2), workers, **fake(clock))
    times = [0.2 + 0.8 / n for n in workers]
    assert result.speedups == pytest.approx([times[0] / t for t in times], rel=1e-12)
    assert result.speedups[0] == 1.0
    assert result.efficiencies == pytest.approx(
        [s * 2 / n for s, n in zip(result.speedups, workers, strict=True)], rel=1e-12
    )
    assert result.serial_fraction == pytest.approx(0.2, abs=1e-6)


def test_scaling_perfect_and_single_point(clock: FakeClock) -> None:
    perfect = scaling(amdahl_work(clock, 0.0), [1, 2, 4], **fake(clock))
    assert perfect.efficiencies == pytest.approx([1.0, 1.0, 1.0])
    assert perfect.serial_fraction == pytest.approx(0.0, abs=1e-9)
    single = scaling(amdahl_work(clock, 0.5), [4], **fake(clock))
    assert single.speedups == [1.0]
    assert math.isnan(single.serial_fraction)
    assert "serial fraction" not in str(single)


def test_scaling_passes_worker_counts_and_counts_calls(clock: FakeClock) -> None:
    fn = Scripted(clock, [U])
    result = scaling(fn, [1, 3], repeat=4, warmup=2, **fake(clock))
    counts = [args[0] for args, _ in fn.args]
    assert counts == [1] * (2 + 4) + [3] * (2 + 4)
    assert [t.loops for t in result.timings] == [1, 1]
    assert [t.name for t in result.timings] == ["1 worker", "3 workers"]


def test_scaling_zero_time_gives_nan_fit(clock: FakeClock) -> None:
    result = scaling(lambda n: None, [1, 2], **fake(clock))
    assert all(math.isnan(s) for s in result.speedups[1:])
    assert math.isnan(result.serial_fraction)
    assert "n/a" in str(result)


@pytest.mark.parametrize("workers", [[], [0], [1, -2], [1, 2.5], [True, 2]])
def test_scaling_rejects_bad_workers(clock: FakeClock, workers: list[Any]) -> None:
    fn = Scripted(clock, [U])
    with pytest.raises(ValueError, match="worker"):
        scaling(fn, workers, **fake(clock))
    assert fn.calls == 0


def test_scaling_accepts_numpy_integers(clock: FakeClock) -> None:
    counts = np.array([1, 2, 4])
    result = scaling(amdahl_work(clock, 0.1), counts, **fake(clock))  # type: ignore[arg-type]
    assert result.workers == [1, 2, 4]
    assert all(type(n) is int for n in result.workers)


def test_scaling_text_and_html(clock: FakeClock) -> None:
    result = scaling(amdahl_work(clock, 0.2), [1, 2, 4], **fake(clock))
    text = str(result)
    assert "serial fraction 0.200" in text
    assert "at most 5×" in text
    assert "speed-up against 1 worker)" in text
    lines = text.splitlines()
    assert any(line.startswith("2 ") and "1.67×" in line and "83%" in line for line in lines)
    page = result._repr_html_()
    assert page.count("<tr>") == 4
    assert "2.50×" in page and "serial fraction 0.200" in page


def test_scaling_plot_calls_charts_speedup_plot(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[dict[str, Any]] = []
    sentinel = object()

    def speedup_plot(
        workers: Sequence[int],
        speedups: Sequence[float],
        *,
        ax: Any = None,
        serial_fraction: float | None = None,
        title: str | None = None,
    ) -> Any:
        calls.append(
            {
                "workers": list(workers),
                "speedups": list(speedups),
                "ax": ax,
                "serial_fraction": serial_fraction,
            }
        )
        return sentinel

    stub = types.ModuleType("course_lib.charts")
    stub.speedup_plot = speedup_plot  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "course_lib.charts", stub)
    result = scaling(amdahl_work(clock, 0.2), [1, 2, 4], **fake(clock))
    given = object()
    assert result.plot(ax=given) is sentinel  # type: ignore[arg-type]
    (call,) = calls
    assert call["workers"] == [1, 2, 4]
    assert call["speedups"] == result.speedups
    assert call["ax"] is given
    assert call["serial_fraction"] == pytest.approx(0.2, abs=1e-6)


def test_scaling_plot_returns_axes(clock: FakeClock) -> None:
    pytest.importorskip("course_lib.viz")
    result = scaling(amdahl_work(clock, 0.2), [1, 2, 4], **fake(clock))
    assert isinstance(result.plot(), Axes)
    _, given = plt.subplots()
    assert result.plot(ax=given) is given


def test_importing_timing_does_not_import_matplotlib() -> None:
    code = "import sys, course_lib.timing; assert 'matplotlib' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
