"""Amdahl's and Gustafson's laws, and a fit of the serial fraction to measurements."""

from __future__ import annotations

from collections.abc import Sequence
from typing import overload

import numpy as np
from numpy.typing import NDArray

__all__ = ["amdahl_speedup", "gustafson_speedup", "fit_serial_fraction"]


def _check_fraction(parallel_fraction: float) -> None:
    if not 0.0 <= parallel_fraction <= 1.0:
        raise ValueError(
            f"parallel_fraction must be between 0 and 1, got {parallel_fraction!r}"
        )


@overload
def amdahl_speedup(parallel_fraction: float, workers: int) -> float: ...
@overload
def amdahl_speedup(parallel_fraction: float, workers: NDArray[np.int_]) -> NDArray[np.float64]: ...
def amdahl_speedup(parallel_fraction: float,
                   workers: int | NDArray[np.int_]) -> float | NDArray[np.float64]:
    """Speed-up of a fixed-size job when ``parallel_fraction`` of it runs on ``workers``."""
    _check_fraction(parallel_fraction)
    n = np.asarray(workers, dtype=float)
    if np.any(n < 1):
        raise ValueError("workers must be at least 1")
    result = 1.0 / ((1.0 - parallel_fraction) + parallel_fraction / n)
    return float(result) if np.ndim(result) == 0 else result


@overload
def gustafson_speedup(parallel_fraction: float, workers: int) -> float: ...
@overload
def gustafson_speedup(parallel_fraction: float,
                      workers: NDArray[np.int_]) -> NDArray[np.float64]: ...
def gustafson_speedup(parallel_fraction: float,
                      workers: int | NDArray[np.int_]) -> float | NDArray[np.float64]:
    """Scaled speed-up when the job grows with ``workers`` (the parallel part scales)."""
    _check_fraction(parallel_fraction)
    n = np.asarray(workers, dtype=float)
    if np.any(n < 1):
        raise ValueError("workers must be at least 1")
    result = (1.0 - parallel_fraction) + parallel_fraction * n
    return float(result) if np.ndim(result) == 0 else result


def fit_serial_fraction(workers: Sequence[int], speedups: Sequence[float]) -> float:
    """Least-squares estimate of Amdahl's serial fraction from measured speed-ups.

    Amdahl says ``1/S = s + (1 - s)/n``, which is linear in ``s``:
    ``1/S - 1/n = s * (1 - 1/n)``. Points with n == 1 carry no information.
    """
    n = np.asarray(workers, dtype=float)
    s = np.asarray(speedups, dtype=float)
    if n.shape != s.shape or n.size == 0:
        raise ValueError("workers and speedups must be non-empty and of equal length")
    if np.any(s <= 0) or np.any(n < 1):
        raise ValueError("speed-ups must be positive and workers at least 1")
    x = 1.0 - 1.0 / n
    y = 1.0 / s - 1.0 / n
    denominator = float(np.dot(x, x))
    if denominator == 0.0:
        return float("nan")
    return float(np.clip(np.dot(x, y) / denominator, 0.0, 1.0))
