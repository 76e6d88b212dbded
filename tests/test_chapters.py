"""Every chapter: executes cleanly with its solutions, and grades honestly.

- each source notebook runs with its solutions: no error, nothing on stderr,
  and no thread, child process or temporary file left behind;
- the student edition holds no solution, no hidden test and no output;
- an nbgrader round trip per chapter: the reference answers score full
  marks, the untouched student edition scores 0 without upsetting the
  grader, and a plausible wrong answer for every exercise loses that
  exercise's points.
"""

from __future__ import annotations

import importlib
import json
import shutil
import time
from pathlib import Path

import nbformat
import psutil
import pytest

from graders.grade import grade_course
from graders.notebooks import SOURCE_DIR, STUDENT_DIR, grade_cells, strip_solution_markers
from graders.release import build_student_edition

from .conftest import REPO

CHAPTERS = sorted(p.name for p in SOURCE_DIR.iterdir() if p.is_dir())
NOTEBOOKS = [p for chapter in CHAPTERS for p in sorted((SOURCE_DIR / chapter).glob("*.ipynb"))]

# Run first and last in the kernel: which threads exist, and which are new.
BASELINE_CELL = """\
import threading as _t
_threads_at_start = set(_t.enumerate())
"""
LEFTOVER_CELL = """\
import json as _json, time as _time, psutil as _psutil, threading as _t
_deadline = _time.monotonic() + 3
while True:
    # pyzmq starts its garbage-collector thread lazily, for large outputs: not the notebook's.
    _new = [t.name for t in _t.enumerate() if t not in _threads_at_start and t.is_alive()
            and type(t).__name__ != "GarbageCollectorThread"]
    from graders.checks import _child_pids
    _kids = sorted(_child_pids())     # multiprocessing's resource tracker and forkserver excluded
    if (not _new and not _kids) or _time.monotonic() > _deadline:
        break
    _time.sleep(0.05)
print(_json.dumps({"threads": _new, "children": _kids}))
"""


# Chapters that start processes run under every start method (course_lib honours
# COURSE_START_METHOD); the others once, under the platform default.
MULTI_START_METHOD = {"ch02_processes", "ch03_synchronisation"}
START_METHODS = ["fork", "spawn", "forkserver"]
RUNS = [(p, m) for p in NOTEBOOKS
        for m in (START_METHODS if p.parent.name in MULTI_START_METHOD else [None])]


def _shm_entries() -> set[str]:
    shm = Path("/dev/shm")
    return {p.name for p in shm.iterdir()} if shm.is_dir() else set()


def _new_shm_entries(before: set[str], grace: float = 2.0) -> set[str]:
    """Entries of /dev/shm that appeared since `before` and are still there after `grace` s.

    multiprocessing unlinks its named semaphores right after creating them, so a
    short-lived entry is not a leak. (Other programs using /dev/shm at the same
    time can still show up here: run this test on a quiet machine, as CI does.)
    """
    deadline = time.monotonic() + grace
    while True:
        new = _shm_entries() - before
        if not new or time.monotonic() > deadline:
            return new
        time.sleep(0.1)


@pytest.mark.parametrize("path,method", RUNS,
                         ids=[f"{p.parent.name}/{p.name}" + (f"[{m}]" if m else "") for p, m in RUNS])
def test_source_notebook_runs_cleanly_with_solutions(path: Path, method: str | None,
                                                     tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    nb.cells.insert(0, nbformat.v4.new_code_cell(BASELINE_CELL))
    nb.cells.append(nbformat.v4.new_code_cell(LEFTOVER_CELL))
    # A private temporary folder for the kernel: whatever is left in it was left by the notebook.
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(private_tmp))
    if method:
        monkeypatch.setenv("COURSE_START_METHOD", method)
    shm_before = _shm_entries()
    children_before = {p.pid for p in psutil.Process().children(recursive=True)}

    NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(path.parent)}}).execute()

    problems = []
    for index, cell in enumerate(nb.cells[1:-1]):
        for output in cell.get("outputs", []):
            if output.output_type == "error":
                problems.append(f"cell {index}: {output.ename}: {output.evalue}")
            elif output.output_type == "stream" and output.name == "stderr":
                problems.append(f"cell {index} wrote to stderr: {output.text[:300]!r}")
    assert not problems, "\n".join(problems)

    report = json.loads(nb.cells[-1].outputs[0]["text"])
    assert report == {"threads": [], "children": []}, f"left running at the end: {report}"
    assert {p.pid for p in psutil.Process().children(recursive=True)} <= children_before
    assert sorted(p.name for p in private_tmp.iterdir()) == [], "temporary files were left behind"
    assert _new_shm_entries(shm_before) == set(), "shared-memory segments or semaphores were left in /dev/shm"


def test_student_edition_holds_no_solution_hidden_test_or_output() -> None:
    student = sorted(STUDENT_DIR.rglob("*.ipynb"))
    assert {p.parent.name for p in student} == set(CHAPTERS)
    for path in student:
        text = path.read_text(encoding="utf-8")
        assert "BEGIN SOLUTION" not in text and "HIDDEN TESTS" not in text, path
        nb = nbformat.read(path, as_version=4)
        assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), path


def test_every_source_notebook_has_graded_exercises_and_wrong_answers() -> None:
    for chapter in CHAPTERS:
        wrong = importlib.import_module(f"tests.wrong_answers.{chapter}").WRONG_ANSWERS
        tests_total = 0
        for path in sorted((SOURCE_DIR / chapter).glob("*.ipynb")):
            cells = grade_cells(nbformat.read(path, as_version=4))
            solutions = {c.grade_id for c in cells if c.kind == "solution"}
            tests_total += sum(c.kind == "tests" for c in cells)
            assert set(wrong.get(path.name, {})) == solutions, f"{path.name}: a wrong answer per exercise"
        assert tests_total >= 5, f"{chapter}: at least five graded exercises"


def _submission(student_nb: Path, replacements: dict[str, str]) -> nbformat.NotebookNode:
    nb = nbformat.read(student_nb, as_version=4)
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in replacements:
            cell.source = replacements[grade_id]
    return nb


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_nbgrader_round_trip(chapter: str, tmp_path: Path) -> None:
    course = tmp_path / "course"
    (course / "source").mkdir(parents=True)
    shutil.copy(REPO / "graders" / "nbgrader_config.py", course)
    shutil.copytree(SOURCE_DIR / chapter, course / "source" / chapter)
    student_dir = tmp_path / "student"
    build_student_edition(student_dir, course / "source")
    wrong = importlib.import_module(f"tests.wrong_answers.{chapter}").WRONG_ANSWERS

    for source in sorted((SOURCE_DIR / chapter).glob("*.ipynb")):
        reference = {
            c.metadata["nbgrader"]["grade_id"]: strip_solution_markers(c.source)
            for c in nbformat.read(source, as_version=4).cells
            if c.metadata.get("nbgrader", {}).get("solution")
        }
        student_nb = student_dir / chapter / source.name
        for student, replacements in [("reference", reference), ("untouched", {}),
                                      ("wrong", wrong[source.name])]:
            folder = course / "submitted" / student / chapter
            folder.mkdir(parents=True, exist_ok=True)
            nbformat.write(_submission(student_nb, replacements), folder / source.name)

    rows = {r.student_id: r for r in grade_course(course, assignment=chapter, cell_timeout=120)}
    ref, untouched, wrong_row = rows["reference"], rows["untouched"], rows["wrong"]
    assert ref.status == "graded" and ref.score == ref.max_score > 0, ref
    assert untouched.status == "graded" and untouched.score == 0, untouched
    assert wrong_row.status == "graded" and wrong_row.score < wrong_row.max_score, wrong_row
    kept_points = {gid: s for gid, s in wrong_row.cell_scores.items() if gid.endswith("_tests") and s > 0}
    assert kept_points == {}, f"wrong answers that still scored: {kept_points}"
