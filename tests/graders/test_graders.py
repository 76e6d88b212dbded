"""The graders pipeline on a toy course: release, self-check, grade, bad input."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import nbformat
import pytest

from graders.grade import grade_course
from graders.notebooks import UsageError
from graders.release import build_student_edition, release, stale_files
from graders.selfcheck import check_notebook

from ..conftest import REPO, nbgrader_cell, toy_notebook

WRONG = '''def add(a, b):
    return a - b
'''
RIGHT = '''def add(a, b):
    return a + b
'''


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "graders", *args], capture_output=True,
                          text=True, cwd=REPO, timeout=300)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


# ---------------------------------------------------------------- release


def test_student_edition_has_no_solution_hidden_test_or_output(
    toy_course: Path, tmp_path: Path
) -> None:
    nb = nbformat.read(toy_course / "source" / "toy" / "toy.ipynb", as_version=4)
    nb.cells[2].outputs = [nbformat.v4.new_output("stream", text="left over\n")]
    nbformat.write(nb, toy_course / "source" / "toy" / "toy.ipynb")

    target = tmp_path / "student"
    assert build_student_edition(target, toy_course / "source") == ["toy"]
    text = (target / "toy" / "toy.ipynb").read_text()
    assert "BEGIN SOLUTION" not in text and "return a + b" not in text
    assert "HIDDEN" not in text and "add(-1, 1)" not in text
    assert "raise NotImplementedError()" in text and "def add(a, b):" in text
    student = nbformat.read(target / "toy" / "toy.ipynb", as_version=4)
    assert all(not c.get("outputs") for c in student.cells if c.cell_type == "code")


def test_release_check_sees_a_stale_edition(toy_course: Path, tmp_path: Path) -> None:
    student_dir = tmp_path / "notebooks"
    release(student_dir, toy_course / "source")
    assert stale_files(student_dir, toy_course / "source") == []
    nb = nbformat.read(toy_course / "source" / "toy" / "toy.ipynb", as_version=4)
    nb.cells[0].source = "# Toy chapter, revised"
    nbformat.write(nb, toy_course / "source" / "toy" / "toy.ipynb")
    assert stale_files(student_dir, toy_course / "source") == ["toy/toy.ipynb"]


def test_release_refuses_duplicate_grade_ids_and_changes_nothing(
    toy_course: Path, tmp_path: Path
) -> None:
    student_dir = tmp_path / "notebooks"
    release(student_dir, toy_course / "source")
    before = snapshot(student_dir)
    nb = toy_notebook()
    nb.cells.append(nbgrader_cell("tests", "assert True", "ex_add_tests", points=1))
    nbformat.write(nb, toy_course / "source" / "toy" / "toy.ipynb")
    with pytest.raises(UsageError, match=r"toy.ipynb cell 4: duplicate grade_id 'ex_add_tests'"):
        release(student_dir, toy_course / "source")
    assert snapshot(student_dir) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["course", "notebooks"]


def test_release_refuses_a_solution_cell_without_metadata(toy_course: Path, tmp_path: Path) -> None:
    nb = toy_notebook()
    nb.cells.append(
        nbformat.v4.new_code_cell(
            RIGHT.replace("return", "### BEGIN SOLUTION\n    return") + "    ### END SOLUTION\n"
        )
    )
    nbformat.write(nb, toy_course / "source" / "toy" / "toy.ipynb")
    with pytest.raises(
        UsageError, match="cell 4: holds a solution region but has no nbgrader metadata"
    ):
        build_student_edition(tmp_path / "out", toy_course / "source")
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- self-check


def _student_copy(toy_course: Path, tmp_path: Path, solution: str | None) -> Path:
    build_student_edition(tmp_path / "student", toy_course / "source")
    path = tmp_path / "student" / "toy" / "toy.ipynb"
    if solution is not None:
        nb = nbformat.read(path, as_version=4)
        nb.cells[2].source = solution
        nbformat.write(nb, path)
    return path


def test_check_reports_pass_todo_and_fail(toy_course: Path, tmp_path: Path) -> None:
    source = toy_course / "source"
    untouched = _student_copy(toy_course, tmp_path, None)
    before = untouched.read_bytes()
    [result] = check_notebook(untouched, source_dir=source)
    assert result.status == "not started"
    assert untouched.read_bytes() == before  # the check never writes the notebook

    nb = nbformat.read(untouched, as_version=4)
    nb.cells[2].source = RIGHT
    nbformat.write(nb, untouched)
    [result] = check_notebook(untouched, source_dir=source)
    assert result.passed

    nb.cells[2].source = WRONG
    nbformat.write(nb, untouched)
    [result] = check_notebook(untouched, source_dir=source)
    assert result.status == "failed"
    assert result.message == "add(2, 3): got -1, expected 5"


def test_check_sees_a_stub_behind_finishes_within_as_not_started(
    toy_course: Path, tmp_path: Path
) -> None:
    # Test cells usually call the learner's function through finishes_within, which turns
    # the stub's NotImplementedError into an AssertionError: still "not started", not "failed".
    source_nb = toy_course / "source" / "toy" / "toy.ipynb"
    nb = nbformat.read(source_nb, as_version=4)
    nb.cells[3].source = ("from graders.checks import expect_equal, finishes_within\n"
                          "expect_equal(finishes_within(5, add, 2, 3), 5, 'add(2, 3)')\n")
    nbformat.write(nb, source_nb)
    untouched = _student_copy(toy_course, tmp_path, None)
    [result] = check_notebook(untouched, source_dir=toy_course / "source")
    assert result.status == "not started", result


def test_check_runs_visible_tests_only(toy_course: Path) -> None:
    # The source notebook still holds its hidden tests; an answer that passes the
    # visible test and fails the hidden one must pass the self-check.
    nb = toy_notebook()
    nb.cells[2].source = "def add(a, b):\n    return 5\n"
    path = toy_course / "source" / "toy" / "toy.ipynb"
    nbformat.write(nb, path)
    [result] = check_notebook(path, source_dir=toy_course / "source")
    assert result.passed


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: d / "missing.ipynb", "no such file"),
        (lambda d: (d / "notes.txt").write_text("hi") and d / "notes.txt", "not a notebook"),
        (
            lambda d: (d / "broken.ipynb").write_text('{"cells": [') and d / "broken.ipynb",
            "invalid JSON",
        ),
        (
            lambda d: (
                (d / "plain.ipynb").write_text(nbformat.writes(nbformat.v4.new_notebook()))
                and d / "plain.ipynb"
            ),
            "has no graded test cells",
        ),
        (
            lambda d: nbformat.write(toy_notebook(), d / "toy.ipynb") or d / "toy.ipynb",
            "match no chapter",
        ),
    ],
    ids=["missing", "not-notebook", "invalid-json", "no-exercises", "other-assignment"],
)
def test_check_bad_input_is_one_line_exit_2(
    tmp_path: Path, make: Callable[[Path], Path], message: str
) -> None:
    path = make(tmp_path)
    before = snapshot(tmp_path)
    proc = run_cli("check", str(path))
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and message in proc.stderr, proc.stderr
    assert snapshot(tmp_path) == before


def test_grade_bad_course_dir_is_one_line_exit_2(tmp_path: Path) -> None:
    for target, message in [
        (tmp_path / "nope", "no such folder"),
        (tmp_path, "no nbgrader_config.py"),
    ]:
        proc = run_cli("grade", str(target))
        assert proc.returncode == 2 and message in proc.stderr and proc.stderr.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_cli_release_check_of_the_repo_is_current() -> None:
    proc = run_cli("release", "--check")
    assert proc.returncode == 0, proc.stderr


# ---------------------------------------------------------------- grading


def test_grade_scores_each_submission(
    toy_course: Path, submit: Callable[[str, str | None], Path]
) -> None:
    submit("alice", RIGHT)
    submit("bob", None)
    submit("carol", WRONG)
    folder = toy_course / "submitted" / "dave" / "toy"
    folder.mkdir(parents=True)
    (folder / "toy.ipynb").write_text("not json")

    rows = grade_course(toy_course)
    by_student = {r.student_id: r for r in rows}
    assert {s: (r.score, r.max_score, r.status) for s, r in by_student.items()} == {
        "alice": (2.0, 2.0, "graded"),
        "bob": (0.0, 2.0, "graded"),
        "carol": (0.0, 2.0, "graded"),
        "dave": (0.0, 2.0, "invalid-notebook"),
    }
    assert "invalid JSON" in by_student["dave"].detail

    with (toy_course / "grades.csv").open() as handle:
        table = list(csv.reader(handle))
    assert table[0] == ["student_id", "assignment", "score", "max_score", "status"]
    assert sorted(table[1:]) == [
        ["alice", "toy", "2", "2", "graded"], ["bob", "toy", "0", "2", "graded"],
        ["carol", "toy", "0", "2", "graded"], ["dave", "toy", "0", "2", "invalid-notebook"],
    ]
    assert (toy_course / "gradebook.db").is_file()
    assert (toy_course / "autograded" / "alice" / "toy" / "toy.ipynb").is_file()

    # Grading again gives the same grades.
    again = grade_course(toy_course, assignment="toy")
    assert [(r.student_id, r.score, r.status) for r in again] == [
        (r.student_id, r.score, r.status) for r in rows
    ]


def test_grade_records_a_cell_timeout(
    toy_course: Path, submit: Callable[[str, str | None], Path]
) -> None:
    submit("erin", "import time\ndef add(a, b):\n    time.sleep(60)\n")
    [row] = grade_course(toy_course, cell_timeout=3)
    assert (row.score, row.status) == (0.0, "timeout")


def test_grade_cli_unknown_assignment(toy_course: Path) -> None:
    proc = run_cli("grade", str(toy_course), "--assignment", "nope")
    assert proc.returncode == 2
    assert "no assignment 'nope'" in proc.stderr
    assert not (toy_course / "grades.csv").exists()
    assert (
        json.dumps(sorted(p.name for p in toy_course.iterdir()))
        == '["nbgrader_config.py", "source", "submitted"]'
    )


def test_grade_cli_shows_progress_and_a_summary_and_feedback_works(
        toy_course: Path, submit: Callable[[str, str | None], Path]) -> None:
    submit("alice", RIGHT)
    submit("bob", WRONG)
    proc = run_cli("grade", str(toy_course), "--workers", "2", "--cell-timeout", "20")
    assert proc.returncode == 0, proc.stderr
    assert "Grading 2 submission(s); isolation:" in proc.stderr
    assert "toy/alice: 2/2 graded" in proc.stderr and "toy/bob: 0/2 graded" in proc.stderr
    summary = proc.stdout.splitlines()
    assert summary[0].split() == ["assignment", "submissions", "mean", "score", "graded"]
    assert summary[2].split() == ["toy", "2", "1.0/2", "2"]
    with (toy_course / "grades-detail.csv").open() as handle:
        detail = list(csv.reader(handle))
    assert detail[0] == [
        "student_id",
        "assignment",
        "score",
        "max_score",
        "status",
        "seconds",
        "detail",
    ]
    assert [r[:5] for r in detail[1:]] == [
        ["alice", "toy", "2", "2", "graded"],
        ["bob", "toy", "0", "2", "graded"],
    ]

    # nbgrader's own feedback step works on what the grader wrote.
    from graders.nbgrader_cli import run_nbgrader

    code, output = run_nbgrader(toy_course, ["generate_feedback", "toy", "--force"], timeout=300)
    assert code == 0, output[-2000:]
    html = (toy_course / "feedback" / "bob" / "toy" / "toy.html").read_text()
    assert "add(2, 3)" in html and "Score: 0.0 / 2.0" in html.replace("Score:</b>", "Score:")


# ---------------------------------------------------------------- nbgrader's behaviour (issue 13)

MANUAL_ANSWER = "Explain why `add` is commutative."


def _compat_notebook() -> nbformat.NotebookNode:
    """The toy notebook plus an answer the instructor grades by hand (nbgrader's manual cell)."""
    nb = toy_notebook()
    answer = nbgrader_cell(
        "solution", "### BEGIN SOLUTION\nBecause + is.\n### END SOLUTION\n", "ex_why"
    )
    answer = nbformat.v4.new_markdown_cell(answer.source, metadata=answer.metadata)
    answer.metadata["nbgrader"].update(grade=True, points=1)
    nb.cells.append(answer)
    return nb


@pytest.fixture(scope="module")
def compat_course(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, object]]:
    """One course graded once: a stray notebook, a v3 notebook, stripped metadata, a deleted
    test."""
    import shutil

    course = tmp_path_factory.mktemp("compat") / "course"
    (course / "source" / "toy").mkdir(parents=True)
    shutil.copy(REPO / "graders" / "nbgrader_config.py", course / "nbgrader_config.py")
    nbformat.write(_compat_notebook(), course / "source" / "toy" / "toy.ipynb")
    from graders.grade import _db_url, _generate

    _generate(course, _db_url(course), "toy")  # the release students answer

    def submit(
        student: str, nb: nbformat.NotebookNode, name: str = "toy.ipynb", version: int = 4
    ) -> Path:
        folder = course / "submitted" / student / "toy"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(nbformat.writes(nbformat.convert(nb, version), version=version))
        return folder

    def answered() -> nbformat.NotebookNode:
        nb = nbformat.read(course / "release" / "toy" / "toy.ipynb", as_version=4)
        nb.cells[2].source = RIGHT
        nb.cells[4].source = "Because addition of numbers is commutative."
        return nb

    folder = submit("punctual", answered())
    # As `nbgrader submit` and `collect` leave them.
    (folder / "timestamp.txt").write_text("2026-01-01 12:00:00.000000 UTC")
    (folder / "submission_secret.txt").write_text("5ecre7" * 20)
    folder = submit("stray", answered())
    submit("stray", answered(), "toy copy.ipynb")
    (folder / "Untitled.ipynb").write_text('{"cells": [')  # not even JSON: ignored all the same
    submit("only_untitled", answered(), "Untitled.ipynb")
    submit("v3", answered(), version=3)
    stripped = answered()
    for cell in stripped.cells:
        cell.metadata.pop("nbgrader", None)
    submit("stripped", stripped)
    deleted = answered()
    del deleted.cells[3]
    submit("deleted", deleted)
    rows = grade_course(course, workers=2, cell_timeout=30)
    return course, {row.student_id: row for row in rows}


def _gradebook(course: Path, student: str) -> dict[str, tuple[float | None, bool]]:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        notebook = gb.find_submission_notebook("toy", "toy", student)
        return {g.name: (g.auto_score, bool(g.needs_manual_grade)) for g in notebook.grades}


def test_feedback_can_be_generated_and_released_after_grading(
    compat_course: tuple[Path, dict],
) -> None:
    # nbgrader's release_feedback reads feedback/<student>/<assignment>/timestamp.txt (and
    # submission_secret.txt), which generate_feedback copies from autograded/: keep them there.
    course, rows = compat_course
    assert rows["punctual"].status == "graded"
    autograded = course / "autograded" / "punctual" / "toy"
    assert (autograded / "timestamp.txt").read_text() == "2026-01-01 12:00:00.000000 UTC"
    assert (autograded / "submission_secret.txt").read_text() == "5ecre7" * 20
    from graders.nbgrader_cli import run_nbgrader

    exchange = course.parent / "exchange"
    exchange.mkdir(exist_ok=True)
    for step in ("generate_feedback", "release_feedback"):
        code, output = run_nbgrader(course, [step, "toy", "--student", "punctual",
                                             f"--Exchange.root={exchange}"], timeout=300)
        assert code == 0, f"nbgrader {step} failed:\n{output[-3000:]}"
    assert (course / "feedback" / "punctual" / "toy" / "timestamp.txt").is_file()
    from nbgrader.utils import notebook_hash

    # Published under the name that only the student's secret gives (fetch_feedback finds it).
    released = list((exchange / "parallel-python" / "feedback").glob("*.html"))
    assert [p.name for p in released] == [
        f"{notebook_hash(secret='5ecre7' * 20, notebook_id='toy')}.html"
    ]
    assert "Score: 2.0 / 3.0" in released[0].read_text().replace("Score:</b>", "Score:")


def test_a_stray_notebook_is_ignored_and_named(compat_course: tuple[Path, dict]) -> None:
    course, rows = compat_course
    row = rows["stray"]
    # ex_add_tests scored; ex_why waits for the instructor (nbgrader: needs manual grade).
    assert (row.score, row.max_score, row.status) == (2.0, 3.0, "graded"), row.detail
    assert row.needs_manual == ["ex_why"]
    assert "ignored (not notebooks of toy): Untitled.ipynb, toy copy.ipynb" in row.detail
    assert sorted(p.name for p in (course / "autograded" / "stray" / "toy").iterdir()) == [
        "toy.ipynb"
    ]
    with (course / "grades-detail.csv").open(newline="") as handle:
        detail = {r["student_id"]: r for r in csv.DictReader(handle)}
    assert "toy copy.ipynb" in detail["stray"]["detail"] and detail["stray"]["status"] == "graded"
    # Nothing of the assignment at all is still an invalid submission, with the files named.
    only = rows["only_untitled"]
    assert (only.score, only.status) == (0.0, "invalid-notebook")
    assert "no notebook of the assignment submitted (found only Untitled.ipynb)" in only.detail


def test_an_nbformat_v3_notebook_is_graded(compat_course: tuple[Path, dict]) -> None:
    course, rows = compat_course
    assert (
        json.loads((course / "submitted" / "v3" / "toy" / "toy.ipynb").read_text())["nbformat"] == 3
    )
    row = rows["v3"]
    assert (row.score, row.status, row.detail) == (2.0, "graded", "")
    assert (
        nbformat.read(course / "autograded" / "v3" / "toy" / "toy.ipynb", as_version=4).nbformat
        == 4
    )


def test_stripped_metadata_and_a_deleted_test_are_left_for_manual_grading(
        compat_course: tuple[Path, dict]) -> None:
    course, rows = compat_course
    stripped = rows["stripped"]
    assert (stripped.score, stripped.status) == (0.0, "tampered")
    assert "metadata was stripped" in stripped.detail
    # Not scored 0 automatically: no auto score, and the formgrader asks for a manual grade.
    assert _gradebook(course, "stripped") == {"ex_add_tests": (None, True), "ex_why": (None, True)}
    assert stripped.needs_manual == ["ex_add_tests", "ex_why"]

    deleted = rows["deleted"]
    assert (deleted.score, deleted.status) == (0.0, "tampered")
    assert "test cell 'ex_add_tests' was deleted" in deleted.detail
    assert "left for manual grading (not in the notebook): ex_add_tests" in deleted.detail
    assert _gradebook(course, "deleted") == {"ex_add_tests": (None, True), "ex_why": (None, True)}
    # The untampered submission's test was scored automatically.
    assert _gradebook(course, "punctual") == {"ex_add_tests": (2.0, False), "ex_why": (None, True)}


def test_check_reads_an_nbformat_v3_notebook(toy_course: Path, tmp_path: Path) -> None:
    nb = toy_notebook()
    nb.cells[2].source = RIGHT
    path = tmp_path / "toy.ipynb"
    path.write_text(nbformat.writes(nbformat.convert(nb, 3), version=3))
    [result] = check_notebook(path, source_dir=toy_course / "source")
    assert result.passed, result
    # The command line reads it too: it gets as far as matching the chapter.
    proc = run_cli("check", str(path))
    assert proc.returncode == 2 and "match no chapter" in proc.stderr, proc.stderr


@pytest.mark.skipif(not Path("/dev/shm").is_dir(), reason="POSIX shared memory in /dev/shm")
def test_a_segment_still_mapped_by_a_process_is_seen_as_in_use() -> None:
    """The grader removes only leaked segments, never one a process still maps."""
    from multiprocessing import shared_memory

    import graders.grade as grade

    shm = shared_memory.SharedMemory(create=True, size=4096)
    try:
        assert shm.name.lstrip("/") in grade._mapped_shm()
    finally:
        shm.close()
        shm.unlink()
    assert shm.name.lstrip("/") not in grade._mapped_shm()
