"""Shared fixtures: a tiny nbgrader course built in a temporary folder."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import matplotlib
import nbformat
import pytest

matplotlib.use("Agg")

REPO = Path(__file__).resolve().parent.parent

os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")


def nbgrader_cell(kind: str, source: str, grade_id: str, points: int = 0) -> nbformat.NotebookNode:
    """A cell with nbgrader metadata: kind is 'solution', 'tests' or 'prompt'."""
    meta = {"grade": kind == "tests", "solution": kind == "solution", "locked": kind != "solution",
            "task": False, "grade_id": grade_id, "schema_version": 3}
    if kind == "tests":
        meta["points"] = points
    if kind == "prompt":
        cell = nbformat.v4.new_markdown_cell(source)
    else:
        cell = nbformat.v4.new_code_cell(source)
    cell.metadata["nbgrader"] = meta
    return cell


TOY_SOLUTION = '''def add(a, b):
    """Return a + b."""
    ### BEGIN SOLUTION
    return a + b
    ### END SOLUTION
'''

TOY_STUB = '''def add(a, b):
    """Return a + b."""
    # YOUR CODE HERE
    raise NotImplementedError()
'''

TOY_TESTS = '''from graders.checks import expect_equal
expect_equal(add(2, 3), 5, "add(2, 3)")
### BEGIN HIDDEN TESTS
expect_equal(add(-1, 1), 0, "add(-1, 1)")
### END HIDDEN TESTS
'''


def toy_notebook() -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                 "language": "python"}
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Toy chapter"),
        nbgrader_cell("prompt", "Write `add(a, b)`.", "ex_add_prompt"),
        nbgrader_cell("solution", TOY_SOLUTION, "ex_add"),
        nbgrader_cell("tests", TOY_TESTS, "ex_add_tests", points=2),
    ]
    return nb


@pytest.fixture
def toy_course(tmp_path: Path) -> Path:
    """A course directory with one assignment 'toy' holding one notebook."""
    course = tmp_path / "course"
    (course / "source" / "toy").mkdir(parents=True)
    (course / "submitted").mkdir()
    shutil.copy(REPO / "graders" / "nbgrader_config.py", course / "nbgrader_config.py")
    nbformat.write(toy_notebook(), course / "source" / "toy" / "toy.ipynb")
    return course


@pytest.fixture
def submit(toy_course: Path) -> Callable[[str, str], Path]:
    """Submit a notebook as a student: submit(student, solution_source)."""

    def _submit(student: str, solution: str | None) -> Path:
        nb = toy_notebook()
        nb.cells[2].source = solution if solution is not None else TOY_STUB
        folder = toy_course / "submitted" / student / "toy"
        folder.mkdir(parents=True)
        path = folder / "toy.ipynb"
        nbformat.write(nb, path)
        return path

    return _submit


# Slow integration tests: whole notebooks, round trips, real servers, browsers
# and resolvers. `make test-fast` leaves them out; `make test` runs them all.
SLOW_MODULES = {
    "test_binder", "test_browser", "test_jupyterhub", "test_lab", "test_grade_cluster",
    "test_nbgrader_compat", "test_resolution", "test_setup", "test_grade_hostile",
}
# Whole grading runs and releases in otherwise quick modules.
SLOW_TESTS = {
    "test_cli_release_check_of_the_repo_is_current",
    "test_grade_cli_shows_progress_and_a_summary_and_feedback_works",
    "test_grade_scores_each_submission", "test_release_check_sees_a_stale_edition",
    "test_grade_records_a_cell_timeout", "test_check_reports_pass_todo_and_fail",
    "test_check_sees_a_stub_behind_finishes_within_as_not_started",
    "test_student_edition_has_no_solution_hidden_test_or_output",
}
SLOW_CHAPTER_TESTS = ("test_source_notebook_runs_cleanly", "test_nbgrader_round_trip",
                      "test_each_mistake_fails_a_visible_test")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        module = item.module.__name__.rsplit(".", 1)[-1] if item.module else ""
        if module in SLOW_MODULES or item.originalname in SLOW_TESTS or (
            module == "test_chapters" and item.name.startswith(SLOW_CHAPTER_TESTS)
        ):
            item.add_marker(pytest.mark.slow)
