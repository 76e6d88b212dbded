"""The learner's self-check: run a notebook and report each exercise.

Only the visible tests run (hidden tests, if the notebook holds any, are
removed first). The notebook file is never modified.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from nbformat import NotebookNode

from .notebooks import (
    SOURCE_DIR,
    find_source_for,
    grade_cells,
    read_notebook,
    strip_hidden_tests,
)

__all__ = ["ExerciseResult", "check_notebook", "format_report"]

ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass(frozen=True)
class ExerciseResult:
    grade_id: str
    points: float
    status: str  # "passed", "failed", "not started", "not run"
    message: str = ""

    @property
    def passed(self) -> bool:
        return self.status == "passed"


def _error_of(cell: NotebookNode) -> tuple[str, str] | None:
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            return str(output.get("ename", "Error")), ANSI.sub("", str(output.get("evalue", "")))
    return None


def _stderr_of(cell: NotebookNode) -> str:
    return "".join(
        "".join(o.get("text", ""))
        for o in cell.get("outputs", [])
        if o.get("output_type") == "stream" and o.get("name") == "stderr"
    ).strip()


def check_notebook(
    path: Path, *, cell_timeout: int = 60, source_dir: Path = SOURCE_DIR
) -> list[ExerciseResult]:
    """Execute a copy of the notebook in memory and return one result per exercise."""
    nb = read_notebook(path)
    find_source_for(nb, path.name, source_dir)
    tests = [c for c in grade_cells(nb) if c.kind == "tests"]
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.source = strip_hidden_tests(cell.source)

    from nbclient import NotebookClient
    from nbclient.exceptions import DeadKernelError

    client = NotebookClient(
        nb,
        timeout=cell_timeout,
        kernel_name="python3",
        allow_errors=True,
        interrupt_on_timeout=True,
        resources={"metadata": {"path": str(path.parent.resolve())}},
    )
    died = ""
    try:
        # The kernel's own log (e.g. ipykernel's transport warning) is not the learner's output.
        client.execute(stderr=subprocess.DEVNULL)
    except DeadKernelError as exc:
        died = f"the kernel died ({exc}); exercises after that were not run"

    results = []
    for test in tests:
        cell = nb.cells[test.index]
        if cell.get("execution_count") is None and not cell.get("outputs"):
            results.append(
                ExerciseResult(test.grade_id, test.points, "not run", died or "not executed")
            )
            continue
        error = _error_of(cell)
        if error is None:
            noise = _stderr_of(cell)
            if noise:
                first = noise.splitlines()[0]
                results.append(ExerciseResult(
                    test.grade_id, test.points, "failed",
                    f"the test cell wrote to stderr, which nbgrader scores as zero: {first}",
                ))
            else:
                results.append(ExerciseResult(test.grade_id, test.points, "passed"))
            continue
        ename, evalue = error
        if ename == "NotImplementedError" or (
            ename == "AssertionError" and "raised NotImplementedError" in evalue
        ):
            results.append(ExerciseResult(test.grade_id, test.points, "not started",
                                          "replace `raise NotImplementedError()` with your answer"))
        elif ename == "CellTimeoutError":
            results.append(
                ExerciseResult(
                    test.grade_id,
                    test.points,
                    "failed",
                    f"the test did not finish within {cell_timeout} s (a deadlock?)",
                )
            )
        elif ename == "AssertionError":
            results.append(
                ExerciseResult(test.grade_id, test.points, "failed", evalue or "assertion failed")
            )
        else:
            results.append(
                ExerciseResult(test.grade_id, test.points, "failed", f"{ename}: {evalue}")
            )
    return results


def format_report(path: Path, results: list[ExerciseResult]) -> str:
    marks = {"passed": "PASS", "failed": "FAIL", "not started": "TODO", "not run": "SKIP"}
    lines = [f"Self-check of {path.name} (visible tests only; the grade also uses hidden tests)"]
    for result in results:
        line = f"  {marks[result.status]}  {result.grade_id} ({result.points:g} pt)"
        if result.message:
            line += f": {result.message}"
        lines.append(line)
    passed = sum(r.passed for r in results)
    lines.append(f"{passed} of {len(results)} exercises pass the visible tests.")
    return "\n".join(lines)

