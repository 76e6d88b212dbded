"""The course's performance figures: ``python -m benchmarks``.

Each figure is a function registered with :func:`figure`. It returns a
:class:`Result` (a number with its unit, measured within one run: ratios of
medians, never a raw time compared with another machine) or raises
:class:`Skip` with the reason when this machine cannot measure it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["FIGURES", "Figure", "Result", "Skip", "figure"]


class Skip(Exception):
    """This machine cannot measure the figure; the message says why."""


@dataclass(frozen=True)
class Result:
    value: float
    unit: str
    detail: str = ""


@dataclass(frozen=True)
class Figure:
    name: str
    measure: Callable[[], Result]
    goal: str  # e.g. ">= 10" or "informational"
    description: str


FIGURES: dict[str, Figure] = {}


def figure(
    name: str, goal: str, description: str
) -> Callable[[Callable[[], Result]], Callable[[], Result]]:
    """Register a figure under ``name``."""

    def register(measure: Callable[[], Result]) -> Callable[[], Result]:
        FIGURES[name] = Figure(name, measure, goal, description)
        return measure

    return register
