"""Timing one callable: :func:`benchmark` and its result :class:`Timing`.

Also the small helpers the other parts of :mod:`course_lib.timing` share (names,
clock resolution, ratios and their formatting, argument checks). Part of the
:mod:`course_lib.timing` package: notebooks import from the package.
"""

from __future__ import annotations

import functools
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from course_lib._render import Table, format_seconds

Clock = Callable[[], float]

#: A timing whose IQR exceeds this fraction of its median is ``unstable``.
UNSTABLE_SPREAD = 0.10
#: A repeat shorter than this many ticks of the clock is too short to trust.
MIN_TICKS = 100
#: Fewer repeats than this give no usable spread.
MIN_REPEAT = 3
#: Calibration never goes beyond this many calls per repeat.
MAX_LOOPS = 10**9
#: Calibration gives up growing ``loops`` when the clock has not advanced by now.
_STALLED_LOOPS = 10**6

_ClockName = Literal["perf_counter", "monotonic", "time", "process_time", "thread_time"]
_TIME_CLOCKS: tuple[_ClockName, ...] = (
    "perf_counter",
    "monotonic",
    "time",
    "process_time",
    "thread_time",
)


# --------------------------------------------------------------------------- helpers


def callable_name(fn: object) -> str:
    """A readable name for a function, a ``functools.partial`` or any callable."""
    if isinstance(fn, functools.partial):
        return callable_name(fn.func)
    for attribute in ("__qualname__", "__name__"):
        value = getattr(fn, attribute, None)
        if isinstance(value, str):
            return value
    return type(fn).__name__


def clock_resolution(clock: Clock) -> float:
    """Resolution of ``clock`` in seconds, 0.0 when unknown."""
    resolution = getattr(clock, "resolution", None)
    if isinstance(resolution, int | float) and not isinstance(resolution, bool):
        return float(resolution)
    for name in _TIME_CLOCKS:
        if clock is getattr(time, name, None):
            return float(time.get_clock_info(name).resolution)
    return 0.0


def quartiles(values: Sequence[float]) -> tuple[float, float]:
    """First and third quartiles (linear interpolation, as ``numpy.percentile``)."""
    if len(values) < 2:
        return (values[0], values[0])
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return (q1, q3)


def ratio(numerator: float, denominator: float) -> float:
    if denominator > 0 and math.isfinite(numerator) and math.isfinite(denominator):
        return numerator / denominator
    return math.nan


def format_ratio(value: float) -> str:
    return f"{value:.2f}×" if math.isfinite(value) else "n/a"


def format_percent(value: float) -> str:
    return f"{value:.0%}" if math.isfinite(value) else "n/a"


def format_factor(value: float) -> str:
    return f"{value:.2f}" if math.isfinite(value) else "n/a"


def check_count(what: str, value: int, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{what} must be an integer >= {minimum}, got {value!r}")


def check_min_time(min_time: float) -> None:
    if not isinstance(min_time, int | float) or not min_time >= 0 or math.isinf(min_time):
        raise ValueError(f"min_time must be a finite number of seconds >= 0, got {min_time!r}")


# --------------------------------------------------------------------------- Timing


@dataclass(repr=False)
class Timing:
    """Result of :func:`benchmark`: wall and CPU seconds per call, one value per repeat."""

    name: str
    wall: list[float]
    cpu: list[float]
    loops: int
    repeat: int
    resolution: float = 0.0
    """Resolution of the wall clock in seconds (0.0 when unknown)."""

    def __post_init__(self) -> None:
        if not self.wall:
            raise ValueError("a Timing needs at least one wall-time value")
        if len(self.cpu) != len(self.wall):
            raise ValueError(
                f"wall and cpu must have one value per repeat, got {len(self.wall)} and "
                f"{len(self.cpu)}"
            )
        if self.repeat != len(self.wall):
            raise ValueError(f"repeat={self.repeat} but {len(self.wall)} wall-time values")
        check_count("loops", self.loops, 1)

    @property
    def median(self) -> float:
        """Median wall seconds per call."""
        return float(statistics.median(self.wall))

    @property
    def spread(self) -> float:
        """Interquartile range (Q3 - Q1) of the wall seconds per call."""
        q1, q3 = quartiles(self.wall)
        return q3 - q1

    @property
    def quartiles(self) -> tuple[float, float]:
        """First and third quartiles of the wall seconds per call."""
        return quartiles(self.wall)

    @property
    def relative_spread(self) -> float:
        """``spread / median`` (NaN when the median is not positive)."""
        return ratio(self.spread, self.median)

    @property
    def cpu_median(self) -> float:
        """Median CPU seconds per call."""
        return float(statistics.median(self.cpu))

    @property
    def cpu_per_wall(self) -> float:
        """CPU time / wall time: ~1 one busy core, ~N for N busy cores, ~0 while waiting."""
        return ratio(self.cpu_median, self.median)

    @property
    def _shortest_repeat(self) -> float:
        return min(self.wall) * self.loops

    @property
    def _too_short(self) -> bool:
        shortest = self._shortest_repeat
        return shortest <= 0 or shortest < MIN_TICKS * self.resolution

    @property
    def unstable(self) -> bool:
        """True when the numbers are noisy (IQR > 10 % of the median) or too short to trust."""
        relative = self.relative_spread
        return self._too_short or (math.isfinite(relative) and relative > UNSTABLE_SPREAD)

    @property
    def warnings(self) -> list[str]:
        """Reasons not to trust this timing (empty when it looks sound)."""
        notes: list[str] = []
        relative = self.relative_spread
        if math.isfinite(relative) and relative > UNSTABLE_SPREAD:
            notes.append(
                f"unstable: the spread (IQR) is {relative:.0%} of the median (over "
                f"{UNSTABLE_SPREAD:.0%}); close other programs or raise repeat / min_time"
            )
        shortest = self._shortest_repeat
        if shortest <= 0:
            notes.append(
                "the clock did not advance during a repeat: the call is shorter than the "
                "clock's resolution; raise min_time or loops"
            )
        elif shortest < MIN_TICKS * self.resolution:
            notes.append(
                f"a repeat took only {format_seconds(shortest)}, under {MIN_TICKS} ticks of "
                f"the clock (resolution {format_seconds(self.resolution)}); raise min_time "
                "or loops"
            )
        if self.repeat < MIN_REPEAT:
            notes.append(
                f"only {self.repeat} repeat(s): the spread cannot be judged; use repeat >= "
                f"{MIN_REPEAT}"
            )
        return notes

    def __repr__(self) -> str:
        return (
            f"Timing(name={self.name!r}, median={format_seconds(self.median)}, "
            f"spread={format_seconds(self.spread)}, "
            f"cpu_per_wall={format_factor(self.cpu_per_wall)}, "
            f"loops={self.loops}, repeat={self.repeat})"
        )

    def table(self) -> Table:
        """The timing as a one-row :class:`~course_lib._render.Table`."""
        row = [
            self.name,
            format_seconds(self.median),
            f"{format_seconds(self.spread)} ({format_percent(self.relative_spread)})",
            format_seconds(self.cpu_median),
            format_factor(self.cpu_per_wall),
            f"{self.loops} × {self.repeat}",
        ]
        return Table(
            headers=["benchmark", "median", "IQR", "CPU time", "CPU/wall", "loops × repeats"],
            rows=[row],
            title=f"benchmark: {self.name} (per call)",
            notes=self.warnings,
        )

    def __str__(self) -> str:
        return self.table().text()

    def _repr_html_(self) -> str:
        return self.table().html()


def _run_loops(
    call: Callable[[], object], loops: int, clock: Clock, cpu_clock: Clock
) -> tuple[float, float]:
    """Wall and CPU seconds taken by ``loops`` calls of ``call``."""
    iterations = range(loops)
    cpu_start = cpu_clock()
    wall_start = clock()
    for _ in iterations:
        call()
    wall_end = clock()
    cpu_end = cpu_clock()
    return wall_end - wall_start, cpu_end - cpu_start


def _calibrate(call: Callable[[], object], min_time: float, clock: Clock, cpu_clock: Clock) -> int:
    """Smallest-ish number of calls for which one repeat lasts at least ``min_time``."""
    loops = 1
    if min_time <= 0:
        return loops
    while True:
        elapsed, _ = _run_loops(call, loops, clock, cpu_clock)
        if elapsed >= min_time or loops >= MAX_LOOPS:
            return loops
        if elapsed <= 0:
            if loops >= _STALLED_LOOPS:
                return loops
            estimate = loops * 10
        else:
            estimate = math.ceil(loops * min_time / elapsed)
        loops = min(max(estimate, loops + 1), loops * 10, MAX_LOOPS)


def benchmark(
    fn: Callable[..., object],
    /,
    *args: Any,
    repeat: int = 5,
    warmup: int = 1,
    min_time: float = 0.05,
    loops: int | None = None,
    name: str | None = None,
    clock: Clock = time.perf_counter,
    cpu_clock: Clock = time.process_time,
    **kwargs: Any,
) -> Timing:
    """Time ``fn(*args, **kwargs)``: warm-up, calibrated loops, repeats, median and IQR.

    ``loops`` calls make one repeat; when ``loops`` is None it is chosen so that
    one repeat lasts at least ``min_time`` seconds (``min_time=0``: one call).
    """
    if not callable(fn):
        raise TypeError(f"benchmark() needs a callable, got {fn!r}")
    check_count("repeat", repeat, 1)
    check_count("warmup", warmup, 0)
    check_min_time(min_time)
    if loops is not None:
        check_count("loops", loops, 1)

    def call() -> object:
        return fn(*args, **kwargs)

    for _ in range(warmup):
        call()
    if loops is None:
        loops = _calibrate(call, min_time, clock, cpu_clock)
    wall: list[float] = []
    cpu: list[float] = []
    for _ in range(repeat):
        elapsed, cpu_elapsed = _run_loops(call, loops, clock, cpu_clock)
        wall.append(elapsed / loops)
        cpu.append(cpu_elapsed / loops)
    return Timing(
        name=name if name is not None else callable_name(fn),
        wall=wall,
        cpu=cpu,
        loops=loops,
        repeat=repeat,
        resolution=clock_resolution(clock),
    )
