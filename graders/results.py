"""What grading produces: one row per submission, and the files that hold the rows.

`GradeRow` is the result of grading one student's submission of one assignment.
`grades.csv` (nbgrader's columns) and `grades-detail.csv` (plus seconds and
the reason for each status) are rewritten atomically: rows of assignments not
graded this time are kept, and a crash never leaves a half-written file.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from course_lib import fileio

__all__ = ["CSV_COLUMNS", "DETAIL_COLUMNS", "GradeRow", "atomic_write", "write_detail_csv",
           "write_grades_csv"]

CSV_COLUMNS = ["student_id", "assignment", "score", "max_score", "status"]
DETAIL_COLUMNS = ["student_id", "assignment", "score", "max_score", "status", "seconds", "detail"]


@dataclass
class GradeRow:
    student_id: str
    assignment: str
    score: float
    max_score: float
    status: str
    detail: str = ""
    cell_scores: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    # Grade ids the formgrader asks a person to grade (answers, deleted or unreadable tests).
    needs_manual: list[str] = field(default_factory=list)

    def csv_row(self) -> list[str]:
        return [self.student_id, self.assignment, f"{self.score:g}", f"{self.max_score:g}",
                self.status]

    def detail_row(self) -> list[str]:
        return [*self.csv_row(), f"{self.seconds:.1f}", self.detail]


def atomic_write(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` in one rename: readers see the old file or the new one."""
    fileio.atomic_write(path, text)


def _rewrite_csv(path: Path, columns: list[str], new: list[list[str]],
                 replace_assignments: set[str]) -> None:
    kept: list[list[str]] = []
    if path.is_file():
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            if next(reader, None) == columns:
                kept = [r for r in reader
                        if len(r) == len(columns) and r[1] not in replace_assignments]
    rows = sorted(kept + new, key=lambda r: (r[1], r[0]))

    def write(handle: IO[Any]) -> None:
        writer = csv.writer(handle)
        writer.writerow(columns)
        writer.writerows(rows)

    fileio.atomic_write_with(path, write)


def write_grades_csv(path: Path, rows: list[GradeRow], replace_assignments: set[str]) -> None:
    """Write grades.csv atomically, keeping rows of assignments not graded this time."""
    _rewrite_csv(path, CSV_COLUMNS, [row.csv_row() for row in rows], replace_assignments)


def write_detail_csv(path: Path, rows: list[GradeRow], replace_assignments: set[str]) -> None:
    """``grades-detail.csv``: grades.csv plus seconds and the reason for each status."""
    _rewrite_csv(path, DETAIL_COLUMNS, [row.detail_row() for row in rows], replace_assignments)
