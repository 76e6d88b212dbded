"""Autograde every submission of a course directory with nbgrader.

COURSE_DIR holds ``nbgrader_config.py``, ``source/<assignment>/`` and
``submitted/<student>/<assignment>/``. Grades go to nbgrader's gradebook (so
the formgrader and ``nbgrader generate_feedback`` work on them) and to
``COURSE_DIR/grades.csv``.

This first grader runs one submission after another; each one runs in its
own process session with a per-cell timeout, a whole-notebook budget and an
optional memory limit.
"""

from __future__ import annotations

import csv
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from ._run import TIMED_OUT, last_error, run_nbgrader
from .notebooks import UsageError, grade_cells, read_notebook

__all__ = ["GradeRow", "grade_course", "write_grades_csv", "CSV_COLUMNS"]

CSV_COLUMNS = ["student_id", "assignment", "score", "max_score", "status"]


@dataclass
class GradeRow:
    student_id: str
    assignment: str
    score: float
    max_score: float
    status: str
    detail: str = ""
    cell_scores: dict[str, float] = field(default_factory=dict)

    def csv_row(self) -> list[str]:
        return [self.student_id, self.assignment, f"{self.score:g}", f"{self.max_score:g}", self.status]


def _check_course_dir(course_dir: Path, assignment: str | None) -> list[str]:
    if not course_dir.exists():
        raise UsageError(f"{course_dir}: no such folder")
    if not course_dir.is_dir():
        raise UsageError(f"{course_dir}: not a folder (expected a course directory)")
    if not (course_dir / "nbgrader_config.py").is_file():
        raise UsageError(f"{course_dir}: no nbgrader_config.py (copy graders/nbgrader_config.py there)")
    source = course_dir / "source"
    if not source.is_dir():
        raise UsageError(f"{course_dir}: no source/ folder with the assignments")
    if not (course_dir / "submitted").is_dir():
        raise UsageError(f"{course_dir}: no submitted/ folder (expected submitted/<student>/<assignment>/)")
    assignments = sorted(p.name for p in source.iterdir() if p.is_dir())
    if assignment is not None:
        if assignment not in assignments:
            known = ", ".join(assignments) or "none"
            raise UsageError(f"{course_dir}: no assignment {assignment!r} in source/ (known: {known})")
        return [assignment]
    if not assignments:
        raise UsageError(f"{course_dir}/source: no assignments")
    return assignments


def _db_url(course_dir: Path) -> str:
    from traitlets.config.loader import PyFileConfigLoader

    config = PyFileConfigLoader("nbgrader_config.py", path=str(course_dir)).load_config()
    url = config.get("CourseDirectory", {}).get("db_url")
    return str(url) if url else f"sqlite:///{course_dir / 'gradebook.db'}"


def _invalid_submission(course_dir: Path, assignment: str, student: str) -> str:
    """Why a submission cannot be graded, or '' when it can."""
    source_names = {p.name for p in (course_dir / "source" / assignment).glob("*.ipynb")}
    submitted = sorted((course_dir / "submitted" / student / assignment).glob("*.ipynb"))
    if not submitted:
        return "no notebook submitted"
    for path in submitted:
        try:
            nb = read_notebook(path)
        except UsageError as exc:
            return str(exc)
        if path.name not in source_names:
            return f"{path.name} is not a notebook of {assignment}"
        if not grade_cells(nb):
            return f"{path.name} has no nbgrader cells (metadata stripped?)"
    return ""


def _timed_out(course_dir: Path, assignment: str, student: str) -> bool:
    for path in (course_dir / "autograded" / student / assignment).glob("*.ipynb"):
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            for output in cell.get("outputs", []):
                if output.get("ename") == "CellTimeoutError":
                    return True
    return False


def _scores(db_url: str, assignment: str, student: str) -> tuple[float, float, dict[str, float]]:
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(db_url) as gb:
        max_score = float(gb.find_assignment(assignment).max_score)
        try:
            submission = gb.find_submission(assignment, student)
        except MissingEntry:
            return 0.0, max_score, {}
        cells: dict[str, float] = {}
        for notebook in submission.notebooks:
            for grade in notebook.grades:
                cells[grade.name] = float(grade.score)
        return float(submission.score), max_score, cells


def grade_course(
    course_dir: Path,
    *,
    assignment: str | None = None,
    cell_timeout: int = 60,
    memory_mb: int | None = None,
    notebook_budget: float = 1800.0,
    progress: Callable[[GradeRow], None] | None = None,
) -> list[GradeRow]:
    """Autograde every submission; return one row per (student, assignment)."""
    course_dir = course_dir.resolve()
    assignments = _check_course_dir(course_dir, assignment)
    db_url = _db_url(course_dir)
    rows: list[GradeRow] = []
    for name in assignments:
        code, output = run_nbgrader(course_dir, ["generate_assignment", name, "--force"], timeout=600)
        if code != 0:
            raise UsageError(f"nbgrader could not prepare {name}: {last_error(output)}")
        students = sorted(
            p.parent.name for p in (course_dir / "submitted").glob(f"*/{name}") if p.is_dir()
        )
        for student in students:
            row = _grade_one(course_dir, db_url, name, student, cell_timeout, memory_mb, notebook_budget)
            rows.append(row)
            if progress is not None:
                progress(row)
    write_grades_csv(course_dir / "grades.csv", rows, replace_assignments=set(assignments))
    return rows


def _grade_one(
    course_dir: Path, db_url: str, assignment: str, student: str,
    cell_timeout: int, memory_mb: int | None, budget: float,
) -> GradeRow:
    problem = _invalid_submission(course_dir, assignment, student)
    if problem:
        _, max_score, _ = _scores(db_url, assignment, student)
        return GradeRow(student, assignment, 0.0, max_score, "invalid-notebook", problem)
    code, output = run_nbgrader(
        course_dir,
        ["autograde", assignment, f"--student={student}", "--force", "--create",
         f"--ExecutePreprocessor.timeout={cell_timeout}"],
        timeout=budget, memory_mb=memory_mb,
    )
    score, max_score, cells = _scores(db_url, assignment, student)
    if code == TIMED_OUT:
        return GradeRow(student, assignment, 0.0, max_score, "timeout",
                        f"the notebook ran past its {budget:g} s budget", cells)
    if code != 0:
        lowered = output.lower()
        if "memoryerror" in lowered or "cannot allocate memory" in lowered:
            status = "memory-limit"
        elif "dead" in lowered and "kernel" in lowered or "kernel died" in lowered:
            status = "kernel-died"
        else:
            status = "error"
        return GradeRow(student, assignment, score, max_score, status, last_error(output), cells)
    status = "timeout" if _timed_out(course_dir, assignment, student) else "graded"
    return GradeRow(student, assignment, score, max_score, status, "", cells)


def write_grades_csv(path: Path, rows: list[GradeRow], replace_assignments: set[str]) -> None:
    """Write grades.csv atomically, keeping rows of assignments not graded this time."""
    kept: list[list[str]] = []
    if path.is_file():
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header == CSV_COLUMNS:
                kept = [r for r in reader if len(r) == len(CSV_COLUMNS) and r[1] not in replace_assignments]
    new = [row.csv_row() for row in rows]
    all_rows = sorted(kept + new, key=lambda r: (r[1], r[0]))
    fd, tmp = tempfile.mkstemp(prefix=".grades-", suffix=".csv", dir=path.parent)
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(CSV_COLUMNS)
            writer.writerows(all_rows)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
