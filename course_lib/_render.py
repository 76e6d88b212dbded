"""Render small tables as plain text (terminals, logs) and HTML (Jupyter).

Every result object in course_lib builds a :class:`Table` and hands its
``text()`` to ``__str__`` and its ``html()`` to ``_repr_html_``, so the look is
the same everywhere.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["Table", "format_seconds"]


def format_seconds(seconds: float) -> str:
    """Format a duration with a unit a person reads at a glance (ns, µs, ms, s)."""
    if seconds != seconds:  # NaN
        return "n/a"
    magnitude = abs(seconds)
    if magnitude >= 1.0:
        return f"{seconds:.3g} s"
    if magnitude >= 1e-3:
        return f"{seconds * 1e3:.3g} ms"
    if magnitude >= 1e-6:
        return f"{seconds * 1e6:.3g} µs"
    return f"{seconds * 1e9:.3g} ns"


@dataclass
class Table:
    """A titled table with optional notes (warnings) under it."""

    headers: Sequence[str]
    rows: Sequence[Sequence[object]]
    title: str = ""
    notes: list[str] = field(default_factory=list)

    def _cells(self) -> list[list[str]]:
        return [[str(cell) for cell in row] for row in self.rows]

    def text(self) -> str:
        cells = self._cells()
        widths = [len(h) for h in self.headers]
        for row in cells:
            for i, cell in enumerate(row):
                widths[i] = max(widths[i], len(cell))
        lines = []
        if self.title:
            lines.append(self.title)
        lines.append("  ".join(h.ljust(w) for h, w in zip(self.headers, widths, strict=True)))
        lines.append("  ".join("-" * w for w in widths))
        for row in cells:
            lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)).rstrip())
        lines.extend(f"note: {note}" for note in self.notes)
        return "\n".join(lines)

    def html(self) -> str:
        esc = html.escape
        head = "".join(f"<th style='text-align:left'>{esc(h)}</th>" for h in self.headers)
        body = "".join(
            "<tr>" + "".join(f"<td style='text-align:left'>{esc(c)}</td>" for c in row) + "</tr>"
            for row in self._cells()
        )
        caption = (f"<caption style='text-align:left'><b>{esc(self.title)}</b></caption>"
                   if self.title else "")
        notes = "".join(f"<p style='color:#a15c00'>⚠ {esc(n)}</p>" for n in self.notes)
        return f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{notes}"
