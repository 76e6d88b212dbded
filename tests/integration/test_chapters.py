"""Every chapter: executes cleanly with its solutions, and grades honestly.

- each source notebook runs with its solutions: no error, nothing on stderr,
  and no thread, child process or temporary file left behind;
- the student edition holds no solution, no hidden test and no output;
- an nbgrader round trip per chapter: the reference answers score full
  marks, the untouched student edition scores 0 without upsetting the
  grader, a plausible wrong answer for every exercise loses that
  exercise's points, and so does every *lazy* answer (the right values
  reached serially, hard-coded, or without the technique the exercise names);
- the mistake each exercise teaches (its wrong answer) fails a *visible*
  test with a hint, because a learner in self-study sees only those.

Chapters that start processes run under fork, spawn and forkserver; the
others run under the platform default here, and under the two other start
methods in the nightly job (`make test-all`).
"""

from __future__ import annotations

import importlib
import importlib.util
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
from graders.selfcheck import check_notebook

from ..conftest import REPO

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
    from graders.checks.core import child_pids as _child_pids
    _kids = sorted(_child_pids())     # multiprocessing's resource tracker and forkserver excluded
    if (not _new and not _kids) or _time.monotonic() > _deadline:
        break
    _time.sleep(0.05)
print(_json.dumps({"threads": _new, "children": _kids}))
"""


# Chapters 2 and 3, about processes themselves, run under every start method
# (course_lib honours COURSE_START_METHOD) in every run of the suite; the others
# (chapter 8 included) run under the platform default, and under spawn and
# forkserver in the nightly job (`make test-all`), which keeps `make test` short.
MULTI_START_METHOD = {"ch02_processes", "ch03_synchronisation"}
START_METHODS = ["fork", "spawn", "forkserver"]
RUNS = [
    pytest.param(p, m, id=f"{p.parent.name}/{p.name}" + (f"[{m}]" if m else ""),
                 marks=([pytest.mark.nightly]
                        if m and p.parent.name not in MULTI_START_METHOD else []))
    for p in NOTEBOOKS
    for m in (START_METHODS if p.parent.name in MULTI_START_METHOD
              else [None, "spawn", "forkserver"])
]


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


@pytest.mark.parametrize("path,method", RUNS)
def test_source_notebook_runs_cleanly_with_solutions(
        path: Path, method: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
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
    assert _new_shm_entries(shm_before) == set(), (
        "shared-memory segments or semaphores were left in /dev/shm")


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
            assert set(wrong.get(path.name, {})) == solutions, (
                f"{path.name}: a wrong answer per exercise")
        assert tests_total >= 5, f"{chapter}: at least five graded exercises"


def _submission(student_nb: Path, replacements: dict[str, str]) -> nbformat.NotebookNode:
    nb = nbformat.read(student_nb, as_version=4)
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in replacements:
            cell.source = replacements[grade_id]
    return nb


def _lazy_answers(chapter: str) -> dict[str, dict[str, list[str]]] | None:
    """The chapter's lazy answers (tests/lazy_answers/<chapter>.py), or None if it has none yet."""
    name = f"tests.lazy_answers.{chapter}"
    if importlib.util.find_spec(name) is None:
        return None
    lazy: dict[str, dict[str, list[str]]] = importlib.import_module(name).LAZY_ANSWERS
    return lazy


def _exercise(grade_id: str) -> str:
    """'ex02_3_task_farm' -> 'ex02_3': the prefix a solution shares with its test cell."""
    return "_".join(grade_id.split("_")[:2])


def _lazy_rounds(lazy: dict[str, dict[str, list[str]]]) -> int:
    return max((len(answers) for per_nb in lazy.values() for answers in per_nb.values()), default=0)


def test_every_lazy_answer_names_a_real_exercise() -> None:
    for chapter in CHAPTERS:
        lazy = _lazy_answers(chapter)
        if lazy is None:
            continue
        for path in sorted((SOURCE_DIR / chapter).glob("*.ipynb")):
            solutions = {c.grade_id for c in grade_cells(nbformat.read(path, as_version=4))
                         if c.kind == "solution"}
            unknown = set(lazy.get(path.name, {})) - solutions
            assert not unknown, f"{chapter}/{path.name}: lazy answers for unknown ids {unknown}"
            missing = solutions - set(lazy.get(path.name, {}))
            assert not missing, f"{chapter}/{path.name}: exercises without a lazy answer: {missing}"
            assert all(lazy[path.name].values()), (
                f"{chapter}/{path.name}: an empty list of lazy answers")


def _round_trip(chapter: str, tmp_path: Path, rounds: range, classic: bool) -> None:
    """Grade a class of made-up students with the real grader and check every row.

    With `classic`: the reference (full marks), the untouched student edition (0)
    and the wrong answers (each loses its points). Lazy round k submits, for every
    exercise with more than k lazy answers, its k-th lazy answer, and the reference
    answer for the other exercises: each substituted exercise must score 0.
    """
    course = tmp_path / "course"
    (course / "source").mkdir(parents=True)
    shutil.copy(REPO / "graders" / "nbgrader_config.py", course)
    shutil.copytree(SOURCE_DIR / chapter, course / "source" / chapter)
    student_dir = tmp_path / "student"
    build_student_edition(student_dir, course / "source")
    wrong = importlib.import_module(f"tests.wrong_answers.{chapter}").WRONG_ANSWERS
    lazy = _lazy_answers(chapter) or {}
    lazy_exercises: dict[str, set[str]] = {f"lazy-{k}": set() for k in rounds}

    for source in sorted((SOURCE_DIR / chapter).glob("*.ipynb")):
        reference = {
            c.metadata["nbgrader"]["grade_id"]: strip_solution_markers(c.source)
            for c in nbformat.read(source, as_version=4).cells
            if c.metadata.get("nbgrader", {}).get("solution")
        }
        student_nb = student_dir / chapter / source.name
        submissions = ([("reference", reference), ("untouched", {}), ("wrong", wrong[source.name])]
                       if classic else [])
        for k in rounds:
            chosen = {gid: answers[k] for gid, answers in lazy.get(source.name, {}).items()
                      if len(answers) > k}
            lazy_exercises[f"lazy-{k}"] |= {_exercise(gid) for gid in chosen}
            submissions.append((f"lazy-{k}", {**reference, **chosen}))
        for student, replacements in submissions:
            folder = course / "submitted" / student / chapter
            folder.mkdir(parents=True, exist_ok=True)
            nbformat.write(_submission(student_nb, replacements), folder / source.name)

    rows = {r.student_id: r for r in grade_course(course, assignment=chapter, cell_timeout=120)}
    if classic:
        ref, untouched, wrong_row = rows["reference"], rows["untouched"], rows["wrong"]
        assert ref.status == "graded" and ref.score == ref.max_score > 0, ref
        assert untouched.status == "graded" and untouched.score == 0, untouched
        assert wrong_row.status == "graded" and wrong_row.score < wrong_row.max_score, wrong_row
        kept_points = {gid: s for gid, s in wrong_row.cell_scores.items()
                       if gid.endswith("_tests") and s > 0}
        assert kept_points == {}, f"wrong answers that still scored: {kept_points}"
    for student, exercises in lazy_exercises.items():
        row = rows[student]
        assert row.status == "graded", row
        kept = {gid: s for gid, s in row.cell_scores.items()
                if gid.endswith("_tests") and _exercise(gid) in exercises and s > 0}
        assert kept == {}, f"{student}: lazy answers that still scored: {kept}"


# Whole-chapter gradings: bounded against a hang, never a speed assertion.
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("chapter", CHAPTERS)
def test_nbgrader_round_trip(chapter: str, tmp_path: Path) -> None:
    """Reference full marks, untouched 0, every wrong answer and each first lazy answer lose."""
    _round_trip(chapter, tmp_path, range(min(1, _lazy_rounds(_lazy_answers(chapter) or {}))),
                classic=True)


@pytest.mark.nightly
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("chapter", CHAPTERS)
def test_nbgrader_round_trip_of_the_other_lazy_answers(chapter: str, tmp_path: Path) -> None:
    """The second and later lazy answers of each exercise lose their points too (nightly)."""
    rounds = _lazy_rounds(_lazy_answers(chapter) or {})
    if rounds < 2:
        pytest.skip(f"{chapter}: one lazy answer per exercise, graded by test_nbgrader_round_trip")
    _round_trip(chapter, tmp_path, range(1, rounds), classic=False)


def test_every_chapter_has_lazy_answers() -> None:
    missing = [c for c in CHAPTERS if _lazy_answers(c) is None]
    assert not missing, f"chapters without tests/lazy_answers/<chapter>.py: {missing}"


@pytest.mark.timeout(1800)
@pytest.mark.parametrize("chapter", CHAPTERS)
def test_each_mistake_fails_a_visible_test_with_a_hint(chapter: str, tmp_path: Path) -> None:
    """What a learner sees (`python -m graders check`): every wrong answer fails, with a message.

    """
    wrong = importlib.import_module(f"tests.wrong_answers.{chapter}").WRONG_ANSWERS
    build_student_edition(tmp_path / "student", SOURCE_DIR)
    problems = []
    for source in sorted((SOURCE_DIR / chapter).glob("*.ipynb")):
        path = tmp_path / "student" / chapter / source.name
        nbformat.write(_submission(path, wrong[source.name]), path)
        for result in check_notebook(path, cell_timeout=120):
            if result.status != "failed":
                problems.append(f"{source.name} {result.grade_id}: {result.status}")
            elif result.message in ("", "assertion failed") or len(result.message) < 20:
                problems.append(f"{source.name} {result.grade_id}: failed without a hint "
                                f"({result.message!r})")
    assert not problems, "visible tests that miss the mistake:\n" + "\n".join(problems)
