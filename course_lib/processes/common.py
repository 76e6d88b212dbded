"""Argument checks and small facts shared by the chapter 2 modules."""

from __future__ import annotations

import math
import multiprocessing

__all__: list[str] = []


def as_seconds(value: object, name: str) -> float:
    """``value`` as a finite number of seconds >= 0; ``TypeError`` / ``ValueError`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, got {type(value).__name__}")
    seconds = float(value)
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return seconds


def process_name() -> str:
    """The name of the process that calls it (``multiprocessing.current_process().name``)."""
    return multiprocessing.current_process().name
