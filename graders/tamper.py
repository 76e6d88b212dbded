"""Compare a submitted notebook with the release: wrong notebook, or tampered?

The gradebook holds the release's cells (``nbgrader generate_assignment``
stores every locked cell's source and every graded cell's points). A student
may edit solution cells and add cells of their own; anything else (a test
cell edited or deleted, a grade id renamed, points changed, nbgrader's
metadata stripped) is tampering. A notebook none of whose graded cells belong
to this assignment is the wrong notebook.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Any

from nbformat import NotebookNode

from .notebooks import strip_hidden_tests

__all__ = ["ReleasedCell", "ReleasedNotebook", "inspect_submission", "names_bound"]


@dataclass(frozen=True)
class ReleasedCell:
    grade_id: str
    cell_type: str
    source: str | None  # for locked cells
    locked: bool
    points: float | None  # for graded cells
    solution: bool


@dataclass
class ReleasedNotebook:
    name: str
    cells: dict[str, ReleasedCell]
    student_names: list[str] = field(default_factory=list)

    @property
    def test_ids(self) -> list[str]:
        return [c.grade_id for c in self.cells.values() if c.points is not None and not c.solution]


def _meta(cell: NotebookNode) -> dict[str, Any]:
    meta = cell.get("metadata", {}).get("nbgrader")
    return meta if isinstance(meta, dict) else {}


def _normalise(source: str) -> str:
    return "\n".join(line.rstrip() for line in source.strip().splitlines())


def inspect_submission(nb: NotebookNode, release: ReleasedNotebook) -> tuple[str, list[str]]:
    """Return ``(problem, findings)``: problem is non-empty for the wrong notebook."""
    findings: list[str] = []
    seen: dict[str, NotebookNode] = {}
    foreign: list[str] = []
    for cell in nb.cells:
        meta = _meta(cell)
        grade_id = meta.get("grade_id")
        if not grade_id:
            continue
        if grade_id not in release.cells:
            foreign.append(str(grade_id))
            continue
        seen[str(grade_id)] = cell
    known = [gid for gid, c in release.cells.items() if c.points is not None or c.locked]
    if known and not seen:
        if foreign:
            return (f"{release.name}.ipynb holds none of this notebook's graded cells "
                    "(is it a notebook of another assignment?)", [])
        # No nbgrader metadata at all: find the release's test cells by their text.
        sources = {_normalise(c.source) for c in nb.cells if c.cell_type == "code"}
        hits = [gid for gid in release.test_ids
                if release.cells[gid].source is not None
                and _normalise(strip_hidden_tests(release.cells[gid].source or "")) in sources]
        if hits:
            return "", ["nbgrader metadata was stripped from the notebook"]
        return (f"{release.name}.ipynb has none of the assignment's cells "
                "(an empty or unrelated notebook?)", [])
    for grade_id in foreign:
        findings.append(f"unknown grade id {grade_id!r} (renamed or copied cell)")
    for grade_id, released in release.cells.items():
        cell = seen.get(grade_id)
        is_test = released.points is not None and not released.solution
        if cell is None:
            if is_test:
                findings.append(f"test cell {grade_id!r} was deleted")
            elif released.locked:
                findings.append(f"read-only cell {grade_id!r} was deleted")
            continue
        meta = _meta(cell)
        if released.points is not None and float(meta.get("points", -1)) != released.points:
            findings.append(f"points of {grade_id!r} changed")
        if bool(meta.get("solution")) != released.solution or bool(meta.get("grade")) != (
                released.points is not None):
            findings.append(f"nbgrader metadata of {grade_id!r} changed")
        if released.locked and released.source is not None and _normalise(cell.source) not in (
                _normalise(released.source), _normalise(strip_hidden_tests(released.source))):
            findings.append(f"{'test' if is_test else 'read-only'} cell {grade_id!r} was edited")
    return "", findings


def names_bound(source: str) -> list[str]:
    """Top-level names a cell binds (assignments, defs, classes, imports)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    names: list[str] = []
    for node in tree.body:
        targets: list[ast.AST] = []
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.append(node.name)
        elif isinstance(node, ast.Assign):
            targets = list(node.targets)
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
            targets = [node.target]
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.extend((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (ast.For, ast.AsyncFor, ast.With, ast.AsyncWith)):
            for sub in ast.walk(node):
                if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store):
                    names.append(sub.id)
        for target in targets:
            for sub in ast.walk(target):
                if isinstance(sub, ast.Name):
                    names.append(sub.id)
    return sorted(set(names))
