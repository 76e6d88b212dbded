"""Chapter 6's pictures: :func:`task_spans` turns the records that remote tasks return
into spans for a timeline (drawn by ``course_lib.viz.timeline``); nothing here draws."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any


def task_spans(records: Iterable[Sequence[Any]], name: str = "task") -> list[Any]:
    """Spans for :func:`course_lib.viz.timeline` from ``(result, worker, start, end)``
    records, as :func:`course_lib.dist_tasks.slow_square` returns them; a fifth
    element, when present, names that span instead of ``name``."""
    from course_lib.trace import Span

    spans = []
    for record in records:
        _, worker, start, end = record[:4]
        label = str(record[4]) if len(record) > 4 else name
        pid = int(str(worker).rsplit(":", 1)[-1]) if str(worker).rsplit(":", 1)[-1].isdigit() else 0
        spans.append(Span(label, str(worker), float(start), float(end), pid, "MainThread"))
    return sorted(spans, key=lambda s: s.start)
