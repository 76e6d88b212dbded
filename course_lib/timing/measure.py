"""Honest measurement: :func:`benchmark`, :func:`compare` and :func:`scaling`.

Each function measures and returns a result object (:class:`Timing`,
:class:`Comparison`, :class:`Scaling`) that renders itself as a text table
(``str``) or an HTML table (Jupyter) and can draw itself with matplotlib.

How a measurement is made (the pyperf recipe, kept small):

1. warm-up calls that are not timed (imports, caches, pools start);
2. calibration: the number of calls per repeat (``loops``) grows until one
   repeat lasts at least ``min_time``, so the clock's resolution is negligible;
3. ``repeat`` timed repeats; each gives the wall and CPU time of one call;
4. the median is reported with the interquartile range (IQR) as its spread,
   and ``warnings`` says when the numbers should not be trusted.

CPU time is measured beside wall time (``time.process_time`` by default), so
``cpu_per_wall`` shows how many cores were busy: about 1 for one busy core
(for instance threads serialised by the GIL), about N for N busy cores, about
0 while the program waits (sleep, I/O, or child processes, whose CPU time
``time.process_time`` does not count).

Clocks are injectable (``clock=``, ``cpu_clock=``: callables returning float
seconds) so that tests can script time instead of sleeping. A clock object
may carry a ``resolution`` attribute (seconds); for the clocks of the
:mod:`time` module the resolution comes from :func:`time.get_clock_info`.
"""

from __future__ import annotations

import functools
import math
import reprlib
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Literal, NamedTuple, TypeVar

import numpy as np

from ._render import Table, format_seconds
from .figures import new_axes, time_unit
from .laws import fit_serial_fraction

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = [
    "Comparison",
    "ComparisonRow",
    "Scaling",
    "Timing",
    "answers_equal",
    "benchmark",
    "compare",
    "scaling",
]

T = TypeVar("T")

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


def _callable_name(fn: object) -> str:
    """A readable name for a function, a ``functools.partial`` or any callable."""
    if isinstance(fn, functools.partial):
        return _callable_name(fn.func)
    for attribute in ("__qualname__", "__name__"):
        value = getattr(fn, attribute, None)
        if isinstance(value, str):
            return value
    return type(fn).__name__


def _clock_resolution(clock: Clock) -> float:
    """Resolution of ``clock`` in seconds, 0.0 when unknown."""
    resolution = getattr(clock, "resolution", None)
    if isinstance(resolution, int | float) and not isinstance(resolution, bool):
        return float(resolution)
    for name in _TIME_CLOCKS:
        if clock is getattr(time, name, None):
            return float(time.get_clock_info(name).resolution)
    return 0.0


def _quartiles(values: Sequence[float]) -> tuple[float, float]:
    """First and third quartiles (linear interpolation, as ``numpy.percentile``)."""
    if len(values) < 2:
        return (values[0], values[0])
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return (q1, q3)


def _ratio(numerator: float, denominator: float) -> float:
    if denominator > 0 and math.isfinite(numerator) and math.isfinite(denominator):
        return numerator / denominator
    return math.nan


def _format_ratio(value: float) -> str:
    return f"{value:.2f}×" if math.isfinite(value) else "n/a"


def _format_percent(value: float) -> str:
    return f"{value:.0%}" if math.isfinite(value) else "n/a"


def _format_factor(value: float) -> str:
    return f"{value:.2f}" if math.isfinite(value) else "n/a"


def _check_count(what: str, value: int, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{what} must be an integer >= {minimum}, got {value!r}")


def _check_min_time(min_time: float) -> None:
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
        _check_count("loops", self.loops, 1)

    @property
    def median(self) -> float:
        """Median wall seconds per call."""
        return float(statistics.median(self.wall))

    @property
    def spread(self) -> float:
        """Interquartile range (Q3 - Q1) of the wall seconds per call."""
        q1, q3 = _quartiles(self.wall)
        return q3 - q1

    @property
    def quartiles(self) -> tuple[float, float]:
        """First and third quartiles of the wall seconds per call."""
        return _quartiles(self.wall)

    @property
    def relative_spread(self) -> float:
        """``spread / median`` (NaN when the median is not positive)."""
        return _ratio(self.spread, self.median)

    @property
    def cpu_median(self) -> float:
        """Median CPU seconds per call."""
        return float(statistics.median(self.cpu))

    @property
    def cpu_per_wall(self) -> float:
        """CPU time / wall time: ~1 one busy core, ~N for N busy cores, ~0 while waiting."""
        return _ratio(self.cpu_median, self.median)

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
            f"cpu_per_wall={_format_factor(self.cpu_per_wall)}, "
            f"loops={self.loops}, repeat={self.repeat})"
        )

    def table(self) -> Table:
        """The timing as a one-row :class:`~course_lib._render.Table`."""
        row = [
            self.name,
            format_seconds(self.median),
            f"{format_seconds(self.spread)} ({_format_percent(self.relative_spread)})",
            format_seconds(self.cpu_median),
            _format_factor(self.cpu_per_wall),
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
    _check_count("repeat", repeat, 1)
    _check_count("warmup", warmup, 0)
    _check_min_time(min_time)
    if loops is not None:
        _check_count("loops", loops, 1)

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
        name=name if name is not None else _callable_name(fn),
        wall=wall,
        cpu=cpu,
        loops=loops,
        repeat=repeat,
        resolution=_clock_resolution(clock),
    )


# --------------------------------------------------------------------------- answers


def _is_float(value: object) -> bool:
    return isinstance(value, float | np.floating | complex | np.complexfloating)


def answers_equal(expected: object, actual: object) -> bool:
    """The default equality of :func:`compare`.

    numpy arrays and scalars: same shape and ``numpy.array_equal`` (``numpy.allclose``
    when either holds floats); Python floats: ``numpy.isclose`` tolerances; lists,
    tuples and dicts: element by element; anything else: ``==``.
    """
    if isinstance(expected, np.ndarray | np.generic) or isinstance(actual, np.ndarray | np.generic):
        try:
            a = np.asarray(expected)
            b = np.asarray(actual)
            if a.shape != b.shape:
                return False
            if np.issubdtype(a.dtype, np.inexact) or np.issubdtype(b.dtype, np.inexact):
                return bool(np.allclose(a, b, equal_nan=True))
            return bool(np.array_equal(a, b))
        except (TypeError, ValueError):
            return False
    if _is_float(expected) or _is_float(actual):
        if isinstance(expected, int | float | complex) and isinstance(
            actual, int | float | complex
        ):
            return bool(np.isclose(expected, actual, equal_nan=True))
        return False
    if isinstance(expected, list | tuple) and isinstance(actual, list | tuple):
        return (
            type(expected) is type(actual)
            and len(expected) == len(actual)
            and all(answers_equal(x, y) for x, y in zip(expected, actual, strict=True))
        )
    if isinstance(expected, dict) and isinstance(actual, dict):
        return expected.keys() == actual.keys() and all(
            answers_equal(value, actual[key]) for key, value in expected.items()
        )
    try:
        return bool(expected == actual)
    except (TypeError, ValueError):
        return expected is actual


_BRIEF = reprlib.Repr()
_BRIEF.maxstring = 60
_BRIEF.maxother = 80
_BRIEF.maxlist = 8
_BRIEF.maxtuple = 8
_BRIEF.maxdict = 6
_BRIEF.maxset = 8


def _brief(value: object) -> str:
    """A short, one-line description of an answer for error messages."""
    if isinstance(value, np.ndarray):
        body = np.array2string(value, threshold=12, edgeitems=3, max_line_width=10**6)
        body = " ".join(body.split())
        if len(body) > 120:
            body = body[:117] + "..."
        return f"array(shape={value.shape}, dtype={value.dtype}) {body}"
    text = " ".join(_BRIEF.repr(value).split())
    return text if len(text) <= 160 else text[:157] + "..."


# --------------------------------------------------------------------------- compare


class ComparisonRow(NamedTuple):
    """One variant of a :class:`Comparison`."""

    name: str
    timing: Timing
    workers: int
    speedup: float
    """Median time of the baseline / median time of this variant."""
    efficiency: float
    """``speedup / workers``."""


@dataclass
class Comparison(Generic[T]):
    """Result of :func:`compare`: one row per variant, speed-ups against ``baseline``."""

    rows: list[ComparisonRow]
    baseline: str
    result: T
    """The answer every variant returned (the baseline's)."""

    def __getitem__(self, name: str) -> ComparisonRow:
        for row in self.rows:
            if row.name == name:
                return row
        raise KeyError(name)

    @property
    def timings(self) -> dict[str, Timing]:
        """``{variant name: Timing}``, for instance for ``viz.cpu_wall_bars``."""
        return {row.name: row.timing for row in self.rows}

    @property
    def warnings(self) -> list[str]:
        """The warnings of every timing, each prefixed by its variant's name."""
        return [f"{row.name}: {note}" for row in self.rows for note in row.timing.warnings]

    def table(self) -> Table:
        """The comparison as a :class:`~course_lib._render.Table`."""
        rows = []
        for row in self.rows:
            timing = row.timing
            label = f"{row.name} (baseline)" if row.name == self.baseline else row.name
            rows.append(
                [
                    label,
                    row.workers,
                    format_seconds(timing.median),
                    f"{format_seconds(timing.spread)} ({_format_percent(timing.relative_spread)})",
                    _format_factor(timing.cpu_per_wall),
                    _format_ratio(row.speedup),
                    _format_percent(row.efficiency),
                ]
            )
        return Table(
            headers=[
                "variant",
                "workers",
                "median",
                "IQR",
                "CPU/wall",
                "speed-up",
                "efficiency",
            ],
            rows=rows,
            title=f"compare: speed-up against {self.baseline!r} (same answer from every variant)",
            notes=self.warnings,
        )

    def __str__(self) -> str:
        return self.table().text()

    def _repr_html_(self) -> str:
        return self.table().html()

    def plot(self, ax: Axes | None = None) -> Axes:
        """Horizontal bars of the median time per variant (IQR as error bars), speed-ups noted."""
        ax = new_axes(ax, (6.4, 0.6 * len(self.rows) + 1.4))
        medians = [row.timing.median for row in self.rows]
        largest = max((m for m in medians if math.isfinite(m)), default=0.0)
        factor, unit = time_unit(largest)
        positions = list(range(len(self.rows)))
        lower = [(row.timing.median - row.timing.quartiles[0]) * factor for row in self.rows]
        upper = [(row.timing.quartiles[1] - row.timing.median) * factor for row in self.rows]
        bars = ax.barh(
            positions,
            [m * factor for m in medians],
            xerr=[lower, upper],
            color="tab:blue",
            edgecolor="black",
            capsize=4,
        )
        for bar, row in zip(bars, self.rows, strict=True):
            if row.name == self.baseline:
                bar.set_hatch("//")
                bar.set_facecolor("lightgray")
            text = "baseline" if row.name == self.baseline else _format_ratio(row.speedup)
            ax.annotate(
                text,
                xy=(row.timing.quartiles[1] * factor, bar.get_y() + bar.get_height() / 2),
                xytext=(6, 0),
                textcoords="offset points",
                va="center",
            )
        ax.set_yticks(positions)
        ax.set_yticklabels([row.name for row in self.rows])
        ax.invert_yaxis()
        ax.set_xlabel(f"median time per call ({unit})")
        ax.set_title(f"Speed-up against {self.baseline}")
        ax.margins(x=0.2)
        return ax


def _variant_error(name: str, baseline: str, actual: object, expected: object) -> ValueError:
    expected_type, actual_type = type(expected).__name__, type(actual).__name__
    types = f" ({actual_type} vs {expected_type})" if expected_type != actual_type else ""
    return ValueError(
        f"variant {name!r} returned a different answer from the baseline {baseline!r}{types}:\n"
        f"  {name}: {_brief(actual)}\n"
        f"  {baseline}: {_brief(expected)}"
    )


def compare(
    variants: Mapping[str, Callable[[], T]],
    *,
    baseline: str | None = None,
    workers: Mapping[str, int] | None = None,
    equal: Callable[[T, T], bool] | None = None,
    repeat: int = 5,
    warmup: int = 1,
    min_time: float = 0.05,
    clock: Clock = time.perf_counter,
    cpu_clock: Clock = time.process_time,
) -> Comparison[T]:
    """Check that every variant gives the baseline's answer, then time them all.

    Each variant is called once for its answer (this call is its first warm-up)
    and compared with ``equal(baseline_answer, answer)`` (default
    :func:`answers_equal`); a different answer raises ``ValueError`` naming the
    variant. ``baseline`` defaults to the first variant, ``workers`` to 1 each.
    """
    if not variants:
        raise ValueError("compare() needs at least one variant, got an empty mapping")
    names = list(variants)
    for name in names:
        if not callable(variants[name]):
            raise TypeError(f"variant {name!r} is not callable: {variants[name]!r}")
    if baseline is None:
        baseline = names[0]
    elif baseline not in variants:
        raise ValueError(f"unknown baseline {baseline!r}; the variants are {names}")
    worker_counts = dict(workers or {})
    unknown = [name for name in worker_counts if name not in variants]
    if unknown:
        raise ValueError(f"workers names unknown variant(s) {unknown}; the variants are {names}")
    for name, count in worker_counts.items():
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"workers[{name!r}] must be a positive integer, got {count!r}")
    _check_count("repeat", repeat, 1)
    _check_count("warmup", warmup, 0)
    _check_min_time(min_time)
    same = equal if equal is not None else answers_equal

    def answer_of(name: str) -> T:
        try:
            return variants[name]()
        except Exception as error:
            error.add_note(f"raised by variant {name!r} of compare()")
            raise

    expected = answer_of(baseline)
    for name in names:
        if name == baseline:
            continue
        actual = answer_of(name)
        if not same(expected, actual):
            raise _variant_error(name, baseline, actual, expected)

    timings = {
        name: benchmark(
            variants[name],
            repeat=repeat,
            warmup=max(warmup - 1, 0),
            min_time=min_time,
            name=name,
            clock=clock,
            cpu_clock=cpu_clock,
        )
        for name in names
    }
    base_median = timings[baseline].median
    rows = []
    for name in names:
        count = worker_counts.get(name, 1)
        speedup = _ratio(base_median, timings[name].median)
        rows.append(ComparisonRow(name, timings[name], count, speedup, speedup / count))
    return Comparison(rows=rows, baseline=baseline, result=expected)


# --------------------------------------------------------------------------- scaling


@dataclass
class Scaling:
    """Result of :func:`scaling`: one timing per worker count."""

    workers: list[int]
    timings: list[Timing]
    name: str = ""

    def __post_init__(self) -> None:
        if not self.workers or len(self.workers) != len(self.timings):
            raise ValueError("workers and timings must be non-empty and of equal length")

    @property
    def speedups(self) -> list[float]:
        """Median time with ``workers[0]`` workers / median time with each worker count."""
        base = self.timings[0].median
        return [_ratio(base, timing.median) for timing in self.timings]

    @property
    def efficiencies(self) -> list[float]:
        """``speedup * workers[0] / workers``: 1.0 is perfect scaling."""
        first = self.workers[0]
        return [s * first / n for s, n in zip(self.speedups, self.workers, strict=True)]

    @property
    def serial_fraction(self) -> float:
        """Amdahl's serial fraction fitted to the measurements (NaN when it cannot be fitted).

        With ``workers[0] == 1`` this is :func:`course_lib.laws.fit_serial_fraction`;
        otherwise the medians are fitted to ``T(n) = a + b / n`` and ``s = a / (a + b)``.
        """
        speedups = self.speedups
        if not all(math.isfinite(s) and s > 0 for s in speedups):
            return math.nan
        if self.workers[0] == 1:
            return fit_serial_fraction(self.workers, speedups)
        n = np.asarray(self.workers, dtype=float)
        if np.ptp(n) == 0:
            return math.nan
        times = np.asarray([timing.median for timing in self.timings], dtype=float)
        design = np.column_stack([np.ones_like(n), 1.0 / n])
        (a, b), *_ = np.linalg.lstsq(design, times, rcond=None)
        total = float(a + b)
        if total <= 0:
            return math.nan
        return float(np.clip(a / total, 0.0, 1.0))

    @property
    def warnings(self) -> list[str]:
        """The warnings of every timing, each prefixed by its worker count."""
        return [
            f"{n} worker{'' if n == 1 else 's'}: {note}"
            for n, timing in zip(self.workers, self.timings, strict=True)
            for note in timing.warnings
        ]

    def table(self) -> Table:
        """The scaling measurements as a :class:`~course_lib._render.Table`."""
        rows = [
            [
                n,
                format_seconds(timing.median),
                f"{format_seconds(timing.spread)} ({_format_percent(timing.relative_spread)})",
                _format_factor(timing.cpu_per_wall),
                _format_ratio(speedup),
                _format_percent(efficiency),
            ]
            for n, timing, speedup, efficiency in zip(
                self.workers, self.timings, self.speedups, self.efficiencies, strict=True
            )
        ]
        fraction = self.serial_fraction
        title = f"scaling of {self.name}" if self.name else "scaling"
        first = self.workers[0]
        title += f" (speed-up against {first} worker{'' if first == 1 else 's'})"
        if math.isfinite(fraction):
            limit = "no limit" if fraction == 0 else f"at most {1 / fraction:.3g}×"
            title += f"; Amdahl fit: serial fraction {fraction:.3f} ({limit})"
        return Table(
            headers=["workers", "median", "IQR", "CPU/wall", "speed-up", "efficiency"],
            rows=rows,
            title=title,
            notes=self.warnings,
        )

    def __str__(self) -> str:
        return self.table().text()

    def _repr_html_(self) -> str:
        return self.table().html()

    def plot(self, ax: Axes | None = None) -> Axes:
        """Measured speed-ups, the ideal line and the fitted Amdahl curve."""
        from .charts import speedup_plot

        fraction = self.serial_fraction
        axes: Axes = speedup_plot(
            self.workers,
            self.speedups,
            ax=ax,
            serial_fraction=fraction if math.isfinite(fraction) else None,
        )
        return axes


def scaling(
    fn: Callable[[int], object],
    workers: Sequence[int],
    *,
    repeat: int = 3,
    warmup: int = 1,
    min_time: float = 0.0,
    clock: Clock = time.perf_counter,
    cpu_clock: Clock = time.process_time,
) -> Scaling:
    """Time ``fn(n)`` for each ``n`` in ``workers``; speed-ups relative to ``workers[0]``."""
    if not callable(fn):
        raise TypeError(f"scaling() needs a callable, got {fn!r}")
    counts = list(workers)
    if not counts:
        raise ValueError("scaling() needs at least one worker count")
    for n in counts:
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
            raise ValueError(f"worker counts must be positive integers, got {n!r} in {counts}")
    counts = [int(n) for n in counts]
    timings = [
        benchmark(
            fn,
            n,
            repeat=repeat,
            warmup=warmup,
            min_time=min_time,
            name=f"{n} worker{'' if n == 1 else 's'}",
            clock=clock,
            cpu_clock=cpu_clock,
        )
        for n in counts
    ]
    return Scaling(workers=counts, timings=timings, name=_callable_name(fn))
