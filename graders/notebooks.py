"""Reading course notebooks: paths, validation and nbgrader cell metadata.

Shared by ``release``, ``check`` and ``grade`` so that each of them refuses
bad input with the same one-line messages.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nbformat import NotebookNode

from . import nbio

__all__ = [
    "REPO_ROOT",
    "COURSE_DIR",
    "SOURCE_DIR",
    "STUDENT_DIR",
    "UsageError",
    "GradeCell",
    "read_notebook",
    "grade_cells",
    "nbgrader_meta",
    "validate_source_notebook",
    "source_notebooks",
    "find_source_for",
    "strip_hidden_tests",
    "strip_solution_markers",
]

REPO_ROOT = Path(__file__).resolve().parent.parent
COURSE_DIR = REPO_ROOT / "graders"
SOURCE_DIR = COURSE_DIR / "source"
STUDENT_DIR = REPO_ROOT / "notebooks"

HIDDEN_TESTS = re.compile(
    r"^[ \t]*### BEGIN HIDDEN TESTS[^\n]*\n.*?^[ \t]*### END HIDDEN TESTS[^\n]*(\n|$)",
    re.MULTILINE | re.DOTALL,
)
SOLUTION_MARKER = re.compile(r"^[ \t]*### (BEGIN|END) SOLUTION[^\n]*\n?", re.MULTILINE)


class UsageError(Exception):
    """Bad input from the command line: reported as one line, exit status 2."""


@dataclass(frozen=True)
class GradeCell:
    """A cell nbgrader knows by its grade id."""

    grade_id: str
    index: int
    kind: str  # "tests", "solution", "task" or "readonly"
    points: float


def read_notebook(path: Path) -> NotebookNode:
    """Read and validate a notebook (any nbformat version, as v4), or raise UsageError."""
    if not path.exists():
        raise UsageError(f"{path}: no such file")
    if path.is_dir():
        raise UsageError(f"{path}: is a folder, expected a .ipynb notebook")
    if path.suffix != ".ipynb":
        raise UsageError(f"{path}: not a notebook (expected a .ipynb file)")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot be read ({exc})") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path}: invalid JSON at line {exc.lineno}: {exc.msg}") from None
    if not isinstance(raw, dict) or not (
        "cells" in raw or "worksheets" in raw or "nbformat" in raw
    ):
        raise UsageError(f"{path}: not a Jupyter notebook (no 'cells' list)")
    # nbformat converts older formats first: v3 notebooks keep their cells under 'worksheets'.
    try:
        nb = nbio.reads(text)
        nbio.validate(nb)
    except Exception as exc:  # nbformat raises several unrelated types
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"{path}: not a valid notebook ({first_line})") from None
    if not isinstance(nb.get("cells"), list):
        raise UsageError(f"{path}: not a Jupyter notebook (no 'cells' list)")
    return nb


def nbgrader_meta(cell: NotebookNode) -> dict[str, Any]:
    meta = cell.get("metadata", {}).get("nbgrader")
    return dict(meta) if isinstance(meta, dict) else {}


def grade_cells(nb: NotebookNode) -> list[GradeCell]:
    """Every cell with an nbgrader grade id, in notebook order."""
    cells = []
    for index, cell in enumerate(nb.cells):
        meta = nbgrader_meta(cell)
        grade_id = meta.get("grade_id")
        if not grade_id:
            continue
        if meta.get("task"):
            kind = "task"
        elif meta.get("grade"):
            kind = "tests" if cell.cell_type == "code" else "task"
        elif meta.get("solution"):
            kind = "solution"
        else:
            kind = "readonly"
        cells.append(GradeCell(str(grade_id), index, kind, float(meta.get("points", 0) or 0)))
    return cells


def validate_source_notebook(path: Path, nb: NotebookNode, seen_ids: dict[str, str]) -> None:
    """Refuse a source notebook that nbgrader would mis-handle, naming the cell.

    ``seen_ids`` maps grade ids already used in this chapter to where, so
    duplicates across the chapter's notebooks are caught too.
    """
    for index, cell in enumerate(nb.cells):
        where = f"{path.name} cell {index}"
        source = cell.get("source", "")
        meta = nbgrader_meta(cell)
        has_solution = "### BEGIN SOLUTION" in source
        has_hidden = "### BEGIN HIDDEN TESTS" in source
        if (has_solution or has_hidden) and not meta:
            marker = "a solution region" if has_solution else "hidden tests"
            raise UsageError(f"{where}: holds {marker} but has no nbgrader metadata")
        if not meta:
            continue
        grade_id = meta.get("grade_id")
        if not grade_id:
            raise UsageError(f"{where}: nbgrader metadata without a grade_id")
        if grade_id in seen_ids:
            raise UsageError(
                f"{where}: duplicate grade_id {grade_id!r} (also used in {seen_ids[grade_id]})"
            )
        seen_ids[grade_id] = where
        if has_solution and not meta.get("solution"):
            raise UsageError(f"{where}: has a solution region but is not marked as a solution cell")
        if has_hidden and not meta.get("grade"):
            raise UsageError(f"{where}: has hidden tests but is not marked as a graded cell")
        if meta.get("grade") and not meta.get("points"):
            raise UsageError(f"{where}: graded cell {grade_id!r} has no points")
        if has_solution and "### END SOLUTION" not in source:
            raise UsageError(f"{where}: '### BEGIN SOLUTION' without '### END SOLUTION'")
        if has_hidden and "### END HIDDEN TESTS" not in source:
            raise UsageError(f"{where}: '### BEGIN HIDDEN TESTS' without '### END HIDDEN TESTS'")


def source_notebooks(source_dir: Path = SOURCE_DIR) -> Iterator[tuple[str, Path]]:
    """(assignment, notebook path) for every source notebook, sorted."""
    if not source_dir.is_dir():
        return
    for chapter in sorted(p for p in source_dir.iterdir() if p.is_dir()):
        for path in sorted(chapter.glob("*.ipynb")):
            yield chapter.name, path


def find_source_for(nb: NotebookNode, name: str, source_dir: Path = SOURCE_DIR) -> tuple[str, Path]:
    """The assignment and source notebook that ``nb`` (a learner's copy) comes from.

    Matched by file name and by grade ids: a notebook whose graded cells are
    not all in the source of the same name belongs to another assignment.
    """
    ids = {c.grade_id for c in grade_cells(nb) if c.kind == "tests"}
    if not ids:
        raise UsageError(f"{name}: has no graded test cells; is it a notebook of this course?")
    for assignment, path in source_notebooks(source_dir):
        source_ids = {c.grade_id for c in grade_cells(nbio.read(path))}
        if path.name == name and ids <= source_ids:
            return assignment, path
    for assignment, path in source_notebooks(source_dir):
        source_ids = {c.grade_id for c in grade_cells(nbio.read(path))}
        if ids & source_ids:
            raise UsageError(
                f"{name}: its exercises belong to {assignment}/{path.name}; "
                "rename it back or check the right notebook"
            )
    raise UsageError(f"{name}: its exercises match no chapter in {source_dir}")


def strip_hidden_tests(source: str) -> str:
    """Remove hidden test regions (the learner's check runs the visible tests only)."""
    return HIDDEN_TESTS.sub("", source)


def strip_solution_markers(source: str) -> str:
    """The reference answer as a learner would have typed it: markers removed."""
    return SOLUTION_MARKER.sub("", source)
