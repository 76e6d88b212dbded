"""A whole run's trace: :class:`MPITrace` gathers the events every rank recorded.

:class:`course_lib.mpi.tracedcomm.TracedComm` records the calls; under
:func:`course_lib.mpi.run_mpi` each rank appends them to ``trace-RANK.jsonl`` in
the run's folder, and :meth:`MPITrace.load` reads them back as ``run.trace``.
Light: matplotlib is imported only when a diagram is drawn.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from course_lib._render import Table, format_seconds
from course_lib.mpi.events import (
    Message,
    TraceEvent,
    first_start,
    last_moment,
    match_messages,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from course_lib.trace import Span

__all__ = ["MPITrace"]


def read_text(path: Path) -> str:
    """The file's text ('' when it cannot be read: a rank that never wrote it)."""
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


@dataclass
class MPITrace:
    """Events that :class:`TracedComm` recorded on every rank, and the messages they make."""

    events: list[TraceEvent]
    stopped: float | None = None  # when the run was killed (same clock), if it was

    @classmethod
    def from_records(cls, records: Iterable[Mapping[str, Any]]) -> MPITrace:
        merged: dict[tuple[int, int], dict[str, Any]] = {}
        for record in records:
            key = (int(record["rank"]), int(record["id"]))
            merged.setdefault(key, {}).update(record)
        events = []
        names = TraceEvent.__dataclass_fields__
        for data in merged.values():
            if "op" not in data:
                continue  # an end without its beginning (a torn file): ignore
            data.setdefault("end", None)
            events.append(TraceEvent(**{k: v for k, v in data.items() if k in names}))
        events.sort(key=lambda e: (e.start, e.rank, e.id))
        return cls(events)

    @classmethod
    def load(cls, folder: str | os.PathLike[str]) -> MPITrace:
        """Read every ``trace-*.jsonl`` file that the ranks wrote in ``folder``."""
        records: list[dict[str, Any]] = []
        for path in sorted(Path(folder).glob("trace-*.jsonl")):
            for line in read_text(path).splitlines():
                try:
                    records.append(json.loads(line))
                except ValueError:
                    continue  # the last line of a killed rank may be cut short
        return cls.from_records(records)

    def __len__(self) -> int:
        return len(self.events)

    @property
    def ranks(self) -> list[int]:
        return sorted({e.rank for e in self.events})

    @property
    def t0(self) -> float:
        return first_start(self.events)

    @property
    def t_end(self) -> float:
        """The last moment the trace knows of (the kill, for a stopped run)."""
        return last_moment(self.events, self.stopped)

    def select(self, *, rank: int | None = None, kind: str | None = None,
               op: str | None = None) -> list[TraceEvent]:
        """Events of one rank / kind / op (None: any)."""
        return [e for e in self.events if (rank is None or e.rank == rank)
                and (kind is None or e.kind == kind) and (op is None or e.op == op)]

    def count(self, *, rank: int | None = None, kind: str | None = None,
              op: str | None = None) -> int:
        return len(self.select(rank=rank, kind=kind, op=op))

    @property
    def unfinished(self) -> list[TraceEvent]:
        """Calls that never returned (the program was stopped while inside them)."""
        return [e for e in self.events if e.end is None]

    @property
    def incomplete_requests(self) -> list[TraceEvent]:
        """isend/irecv posts whose request was never completed (no wait, Wait or waitall)."""
        completed = {(e.rank, e.request) for e in self.events if e.kind == "wait" and e.finished}
        return [e for e in self.events
                if e.kind in ("isend", "irecv") and (e.rank, e.id) not in completed]

    def _matching(self) -> tuple[list[Message], list[TraceEvent]]:
        return match_messages(self.events)

    @property
    def messages(self) -> list[Message]:
        """Every message sent and received, matched in MPI's order per (source, dest, tag)."""
        return self._matching()[0]

    @property
    def unmatched_sends(self) -> list[TraceEvent]:
        """Sends whose message no traced receive took (still in flight, or a deadlock)."""
        return self._matching()[1]

    def spans(self) -> list[Span]:
        """Each call as a :class:`course_lib.trace.Span` on lane "rank N" (for ``timeline``)."""
        from course_lib.trace import Span

        end = self.t_end
        return [Span(e.op, f"rank {e.rank}", e.start, e.end if e.end is not None else end, 0,
                     "MainThread") for e in self.events]

    def diagram(self, *, ax: Axes | None = None, title: str | None = None) -> Axes:
        """Shortcut for :func:`course_lib.mpi.pictures.message_diagram`."""
        from course_lib.mpi.pictures import message_diagram

        return message_diagram(self, ax=ax, title=title)

    def table(self) -> Table:
        rows = [(m.source, m.dest, m.tag, "?" if m.nbytes is None else m.nbytes,
                 format_seconds(m.sent - self.t0), format_seconds(m.received - m.sent),
                 f"{m.send_op} → {m.recv_op}") for m in self.messages]
        table = Table(("from", "to", "tag", "bytes", "sent at", "in flight", "calls"), rows,
                      title=f"{len(rows)} message(s) between {len(self.ranks)} rank(s)")
        stuck = self.unfinished
        if stuck:
            table.notes.append("never returned: " + ", ".join(
                f"{e.op} on rank {e.rank}" for e in stuck))
        return table

    def __str__(self) -> str:
        return self.table().text()

    def _repr_html_(self) -> str:
        return self.table().html()
