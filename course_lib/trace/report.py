"""Reading a trace back: the per-worker summary and the Chrome trace event format.

Part of the :mod:`course_lib.trace` package: notebooks import from the package.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from course_lib._render import Table, format_seconds
from course_lib.spans import Span


class TraceSummary:
    """What :meth:`Tracer.summary` returns: one row per worker, plus warnings."""

    def __init__(self, spans: list[Span], dropped: int, capacity: int) -> None:
        self.spans = spans
        self.dropped = dropped
        self.capacity = capacity

    def table(self) -> Table:
        """The summary as a :class:`course_lib._render.Table`."""
        lanes: dict[str, list[Span]] = {}
        for s in self.spans:
            lanes.setdefault(s.worker, []).append(s)
        t0 = min((s.start for s in self.spans), default=0.0)
        t1 = max((s.end for s in self.spans), default=0.0)
        wall = t1 - t0
        rows: list[list[object]] = []
        for worker, spans in lanes.items():
            busy = sum(s.duration for s in spans)
            share = f"{busy / wall:.0%}" if wall > 0 else "n/a"
            rows.append([worker, len(spans), format_seconds(busy), share,
                         format_seconds(spans[0].start - t0)])
        title = (f"{len(self.spans)} spans on {len(lanes)} workers over {format_seconds(wall)}"
                 if self.spans else "no spans recorded")
        notes = []
        if self.dropped:
            notes.append(
                f"{self.dropped} spans were dropped because capacity={self.capacity} was reached; "
                "use Tracer(capacity=...) or record fewer, longer spans"
            )
        return Table(["worker", "spans", "busy", "busy share", "first start"], rows, title, notes)

    def __str__(self) -> str:
        return self.table().text()

    def _repr_html_(self) -> str:
        return self.table().html()

    def __repr__(self) -> str:
        return f"<TraceSummary {len(self.spans)} spans, {self.dropped} dropped>"


# --------------------------------------------------------------------------- chrome


def _lanes(spans: Iterable[Span]) -> Iterator[tuple[int, str]]:
    seen: set[tuple[int, str]] = set()
    for s in spans:
        key = (s.pid, s.worker)
        if key not in seen:
            seen.add(key)
            yield key


def chrome_trace(spans: list[Span], own_pid: int, dropped: int) -> dict[str, Any]:
    t0 = min((s.start for s in spans), default=0.0)
    tids: dict[tuple[int, str], int] = {}
    events: list[dict[str, Any]] = []
    process_names: dict[int, str] = {}
    for index, (pid, worker) in enumerate(_lanes(spans)):
        tid = tids[(pid, worker)] = index + 1
        events.append({"ph": "M", "name": "thread_name", "pid": pid, "tid": tid,
                       "args": {"name": worker}})
        events.append({"ph": "M", "name": "thread_sort_index", "pid": pid, "tid": tid,
                       "args": {"sort_index": index}})
        if pid not in process_names:
            name = "MainProcess" if pid == own_pid else (
                worker.split("/", 1)[0] if "/" in worker else "process")
            process_names[pid] = name
            events.append({"ph": "M", "name": "process_name", "pid": pid, "tid": 0,
                           "args": {"name": f"{name} (pid {pid})"}})
    for s in spans:
        args: dict[str, Any] = {"thread": s.thread}
        if s.task is not None:
            args["task"] = s.task
        events.append({
            "name": s.name, "cat": "span", "ph": "X",
            "ts": (s.start - t0) * 1e6, "dur": max(0.0, s.end - s.start) * 1e6,
            "pid": s.pid, "tid": tids[(s.pid, s.worker)], "args": args,
        })
    return {
        "traceEvents": events,
        "displayTimeUnit": "ms",
        "otherData": {"clock": "time.perf_counter", "t0_seconds": t0, "dropped": dropped},
    }
