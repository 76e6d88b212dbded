"""The machine report's objects: :class:`MachineRow`, :class:`MachineReport`, and row helpers.

Every probe (``rows_*`` modules) returns rows; :func:`course_lib.machine.show.show_machine`
puts them together. The helpers here are shared by the probes: a failed probe's
row, GiB formatting, a distribution's version, the last line of a child's output,
and the environment a probe's child process needs.
"""

from __future__ import annotations

import importlib.metadata
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from .._render import Table

__all__ = ["MachineReport", "MachineRow"]


class MachineRow(NamedTuple):
    """One line of the report: what was probed, what was found, what to do about it."""

    item: str
    value: str
    advice: str = ""


@dataclass
class MachineReport:
    """Result of :func:`show_machine`: text with ``str()``, a table in Jupyter.

    ``rows`` are for people; ``facts`` holds the same findings as plain values
    (numbers, booleans, strings) for programs.
    """

    rows: list[MachineRow]
    facts: dict[str, Any] = field(default_factory=dict)
    title: str = "Parallel Python: this machine"

    def table(self) -> Table:
        """The rows as a :class:`~course_lib._render.Table` (item, value, advice)."""
        return Table(headers=("item", "value", "advice"), rows=self.rows, title=self.title)

    @property
    def advice(self) -> list[str]:
        """``"item: advice"`` for every row that asks for something to be done."""
        return [f"{row.item}: {row.advice}" for row in self.rows if row.advice]

    def value(self, item: str) -> str | None:
        """The value of the first row named ``item`` (None when there is none)."""
        for row in self.rows:
            if row.item == item:
                return row.value
        return None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: ``{"title", "rows": [{item, value, advice}], "facts"}``."""
        return {
            "title": self.title,
            "rows": [row._asdict() for row in self.rows],
            "facts": self.facts,
        }

    def __str__(self) -> str:
        return self.table().text()

    def _repr_html_(self) -> str:
        return self.table().html()


def failed_row(item: str, exc: BaseException) -> MachineRow:
    """The row of a probe that raised: what failed, and how to report it."""
    return MachineRow(
        item,
        f"probe failed: {type(exc).__name__}: {exc}",
        "please report this with the output of: python -m course_lib doctor",
    )


def gib(n_bytes: float) -> str:
    """``n_bytes`` as ``"1.5 GiB"``."""
    return f"{n_bytes / 2**30:.1f} GiB"


def dist_version(*names: str) -> str | None:
    """Version of the first installed distribution among ``names`` (None: none installed)."""
    for name in names:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def last_line(text: str, limit: int = 160) -> str:
    """The last non-empty line of ``text``, cut to ``limit`` characters."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return ""
    line = lines[-1]
    return line if len(line) <= limit else line[: limit - 1] + "…"


def child_env() -> dict[str, str]:
    """Environment for probe children: ``course_lib`` importable from where it is now."""
    env = dict(os.environ)
    here = str(Path(__file__).resolve().parent.parent.parent)
    env["PYTHONPATH"] = here + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env
