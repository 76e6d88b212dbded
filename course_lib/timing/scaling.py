"""How a computation scales with workers: :func:`scaling` and :class:`Scaling`.

Part of the :mod:`course_lib.timing` package: notebooks import from the package.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from course_lib._render import Table, format_seconds
from course_lib.laws import fit_serial_fraction
from course_lib.timing.measure import (
    Clock,
    Timing,
    benchmark,
    callable_name,
    format_factor,
    format_percent,
    format_ratio,
    ratio,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes

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
        return [ratio(base, timing.median) for timing in self.timings]

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
                f"{format_seconds(timing.spread)} ({format_percent(timing.relative_spread)})",
                format_factor(timing.cpu_per_wall),
                format_ratio(speedup),
                format_percent(efficiency),
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
        from course_lib.charts import speedup_plot

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
    return Scaling(workers=counts, timings=timings, name=callable_name(fn))
