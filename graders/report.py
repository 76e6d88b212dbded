"""What the instructor sees while and after grading: a progress bar and a summary."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any, TextIO

from .results import DETAIL_COLUMNS, GradeRow, write_detail_csv

if TYPE_CHECKING:
    from .sandbox import Isolation

__all__ = ["GradingProgress", "summary_table", "write_detail_csv", "DETAIL_COLUMNS"]


class GradingProgress:
    """A tqdm bar on a terminal; one line per submission elsewhere (logs, CI)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.bar: Any = None
        self.counts: Counter[str] = Counter()

    def start(self, total: int, isolation: Isolation) -> None:
        print(f"Grading {total} submission(s); isolation: {isolation.describe()}",
              file=self.stream, flush=True)
        if self.stream.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, file=self.stream, unit="submission", dynamic_ncols=True)

    def update(self, row: GradeRow) -> None:
        self.counts[row.status] += 1
        if self.bar is not None:
            self.bar.set_postfix({k: v for k, v in sorted(self.counts.items())}, refresh=False)
            self.bar.update(1)
        else:
            detail = f" ({row.detail})" if row.detail else ""
            print(f"  {row.assignment}/{row.student_id}: {row.score:g}/{row.max_score:g} "
                  f"{row.status}{detail}", file=self.stream, flush=True)

    def __enter__(self) -> GradingProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()


def summary_table(rows: list[GradeRow]) -> str:
    """Per assignment: how many of each status and the mean score; then what needs a look."""
    if not rows:
        return "No submissions found."
    lines = []
    assignments = sorted({r.assignment for r in rows})
    statuses = sorted({r.status for r in rows}, key=lambda s: (s != "graded", s))
    header = ["assignment", "submissions", "mean score", *statuses]
    table = [header]
    for name in assignments:
        mine = [r for r in rows if r.assignment == name]
        counts = Counter(r.status for r in mine)
        mean = sum(r.score for r in mine) / len(mine)
        table.append([name, str(len(mine)), f"{mean:.1f}/{mine[0].max_score:g}",
                      *[str(counts.get(s, 0)) for s in statuses]])
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for i, row in enumerate(table):
        lines.append(
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)).rstrip()
        )
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    review = [r for r in rows if r.status != "graded" or r.detail]
    if review:
        lines.append("")
        lines.append("To look at:")
        for r in review:
            lines.append(f"  {r.assignment}/{r.student_id}: {r.status} {r.score:g}/{r.max_score:g}"
                         + (f" - {r.detail}" if r.detail else ""))
    return "\n".join(lines)
