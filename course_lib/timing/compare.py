"""Comparing variants of one computation: :func:`compare` and :class:`Comparison`.

Part of the :mod:`course_lib.timing` package: notebooks import from the package.
"""

from __future__ import annotations

import math
import reprlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, NamedTuple, TypeVar

import numpy as np

from course_lib._render import Table, format_seconds
from course_lib.figures import new_axes, time_unit
from course_lib.timing.measure import (
    Clock,
    Timing,
    benchmark,
    check_count,
    check_min_time,
    format_factor,
    format_percent,
    format_ratio,
    ratio,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes

T = TypeVar("T")

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
                    f"{format_seconds(timing.spread)} ({format_percent(timing.relative_spread)})",
                    format_factor(timing.cpu_per_wall),
                    format_ratio(row.speedup),
                    format_percent(row.efficiency),
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
            text = "baseline" if row.name == self.baseline else format_ratio(row.speedup)
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
    check_count("repeat", repeat, 1)
    check_count("warmup", warmup, 0)
    check_min_time(min_time)
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
        speedup = ratio(base_median, timings[name].median)
        rows.append(ComparisonRow(name, timings[name], count, speedup, speedup / count))
    return Comparison(rows=rows, baseline=baseline, result=expected)
