"""Our grader against plain ``nbgrader autograde`` on nbgrader's own fixture notebooks.

The notebooks come from the installed nbgrader package
(``nbgrader/tests/apps/files/``), the ones its ``test_nbgrader_autograde.py``
grades: submitted-unchanged/-changed with manually graded answers, the
showtraceback cheat attempts, edited grade and locked cells, metadata
stripped, side effects, the NBGRADER_EXECUTION variable, timeout.ipynb,
autotests, a missing notebook, an empty submission and a notebook that is not
part of the assignment. Derived from them: a v3 copy, a deleted test cell, a
answer that sleeps past the cell timeout and one that warns on stderr. One
course holds them all; it is made twice and graded once by each tool (one
``generate_assignment`` serves both). Then come compared: per cell, score,
max score and needs-manual-grade; the files in ``autograded/`` and in
``feedback/`` (nbgrader's ``generate_feedback`` on both); and in each
autograded notebook, the cells' sources and nbgrader metadata and the kinds
of their outputs. Every difference must be listed in ``INTENDED`` with its
reason, and every listed difference must occur.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import nbformat
import pytest

from graders.grade import _db_url, _generate, grade_course
from graders.nbgrader_cli import last_error, run_nbgrader

nbgrader = pytest.importorskip("nbgrader")
FILES = Path(nbgrader.__file__).parent / "tests" / "apps" / "files"
CELL_TIMEOUT = 10

CONFIG = f"""c = get_config()
c.CourseDirectory.course_id = "compat"
c.Execute.timeout = {CELL_TIMEOUT}
"""

# Source notebooks of assignment ps1: notebook -> fixture.
SOURCES = {
    "p1": "submitted-unchanged.ipynb",     # test_grade, test_showtraceback_exploit, ...
    "p2": "test.ipynb",                    # test_no_execute, test_force_single_notebook
    "p3": "side-effects.ipynb",            # test_side_effects
    "p4": "validating-environment-variable.ipynb",  # test_grade_with_validating_envvar
    "p5": "timeout.ipynb",                 # test_autograde_timeout
    "p6": "autotest-multi.ipynb",          # test_grade_complex_autotest
}


def _fixture(name: str) -> nbformat.NotebookNode:
    return nbformat.read(FILES / name, as_version=4)


def _timeout_variant() -> nbformat.NotebookNode:
    """timeout.ipynb whose answer sleeps past the cell timeout."""
    nb = _fixture("timeout.ipynb")
    nb.cells[0].source = nb.cells[0].source.replace("time.sleep(5)",
                                                    f"time.sleep({CELL_TIMEOUT * 3})")
    return nb


def _stderr_variant() -> nbformat.NotebookNode:
    """timeout.ipynb whose right answer writes a warning on stderr (no sleep)."""
    nb = _fixture("timeout.ipynb")
    nb.cells[0].source = nb.cells[0].source.replace(
        "time.sleep(5)", "__import__('sys').stderr.write('DeprecationWarning: old API\\n')")
    return nb


def _deleted_test() -> nbformat.NotebookNode:
    """test.ipynb whose first test cell (correct_squares) was deleted."""
    nb = _fixture("test.ipynb")
    nb.cells = [c for c in nb.cells
                if c.metadata.get("nbgrader", {}).get("grade_id") != "correct_squares"]
    return nb


# student -> {file in submitted/<student>/ps1/: a fixture's name, a function making a notebook,
# or "<fixture>@v3" for the fixture in nbformat v3}
SUBMISSIONS: dict[str, dict[str, Any]] = {
    "foo": {"p1.ipynb": "submitted-unchanged.ipynb",
            "p1 copy.ipynb": "submitted-unchanged.ipynb",  # test_skip_extra_notebooks
            "p2.ipynb": "test.ipynb", "p3.ipynb": "side-effects.ipynb",
            "p4.ipynb": "validating-environment-variable.ipynb", "p5.ipynb": _stderr_variant,
            "p6.ipynb": "autotest-multi-unchanged.ipynb", "timestamp.txt": "timestamp.txt",
            "submission_secret.txt": "submission_secret.txt"},
    "bar": {"p1.ipynb": "submitted-changed.ipynb", "p2.ipynb": "test-with-output.ipynb",
            "p3.ipynb": "side-effects.ipynb", "p5.ipynb": _timeout_variant,
            "p6.ipynb": "autotest-multi-changed.ipynb"},  # p4 missing: test_grade_missing_notebook
    "spam": {"p1.ipynb": "submitted-cheat-attempt.ipynb"},  # test_showtraceback_exploit
    "eggs": {"p1.ipynb": "submitted-cheat-attempt-alternative.ipynb"},
    "ham": {"p1.ipynb": "submitted-grade-cell-changed.ipynb", "p2.ipynb": "test-no-metadata.ipynb"},
    "lox": {"p1.ipynb": "submitted-locked-cell-changed.ipynb", "p2.ipynb": _deleted_test},
    "vthree": {"p1.ipynb": "submitted-changed.ipynb@v3"},
    "empty": {},  # test_missing_files
}

# Our grader's status of each submission (nbgrader has none), and why.
OUR_STATUSES = {
    "foo": ("graded", "the stray 'p1 copy.ipynb' is ignored and named in the detail"),
    "bar": ("timeout", "p5's test ran past the cell timeout; nbgrader only logs it"),
    "spam": ("tampered", "showtraceback replaced: nbgrader logs nothing, the guard reports it"),
    "eggs": ("tampered", "showtraceback set to None: likewise"),
    "ham": ("tampered", "grade cell 'bar' edited (nbgrader restores it and logs a checksum "
                        "warning) and p2's metadata stripped"),
    "lox": ("tampered", "read-only cells edited and a test cell deleted"),
    "vthree": ("graded", "an nbformat v3 notebook is read as nbgrader reads it"),
    "empty": ("invalid-notebook", "no notebook in the submission folder"),
}

# Every difference between the two gradings: key -> (nbgrader's, ours, why we differ on purpose).
STDERR_REASON = ("output on stderr in a test cell (a warning, worker chatter) does not cost the "
                 "points in our grader, only an error does; nbgrader scores it 0, and we show "
                 "that output as stdout so the feedback does not look like a failure")
INTENDED: dict[tuple[str, ...], tuple[Any, Any, str]] = {
    ("cell", "foo", "p5", "correct_squares"): ((0.0, 1.0, False), (1.0, 1.0, False), STDERR_REASON),
    ("outputs", "foo", "p5", "1"): (("stream:stderr",), ("stream:stdout",), STDERR_REASON),
    ("outputs", "eggs", "p1", "2"): (
        ("error:TypeError",), ("error:NameError",),
        "the test guard restores IPython's showtraceback, which the submission set to None, so the "
        "test cell shows its real error instead of 'NoneType is not callable'; both score 0"),
    ("submission", "empty"): (
        None, "recorded",
        "an empty submission folder: nbgrader skips it, we record it as invalid-notebook with "
        "every grade 0, so the student appears in grades.csv and the gradebook with the reason"),
}


def _make_course(root: Path) -> Path:
    course = root / "course"
    (course / "source" / "ps1").mkdir(parents=True)
    (course / "nbgrader_config.py").write_text(CONFIG)
    shutil.copy(FILES / "autotests.yml", course / "autotests.yml")
    for name, fixture in SOURCES.items():
        shutil.copy(FILES / fixture, course / "source" / "ps1" / f"{name}.ipynb")
    for student, files in SUBMISSIONS.items():
        folder = course / "submitted" / student / "ps1"
        folder.mkdir(parents=True)
        for name, what in files.items():
            if callable(what):
                nbformat.write(what(), folder / name)
            elif what.endswith("@v3"):
                nb = _fixture(what.removesuffix("@v3"))
                (folder / name).write_text(nbformat.writes(nbformat.convert(nb, 3), version=3))
            else:
                shutil.copy(FILES / what, folder / name)
    return course


def _nbgrader(course: Path, *args: str) -> str:
    code, output = run_nbgrader(course, list(args), timeout=900)
    assert code == 0, f"nbgrader {' '.join(args)}: {last_error(output)}\n{output[-3000:]}"
    return output


def _kinds(cell: nbformat.NotebookNode) -> tuple[str, ...]:
    return tuple(f"{o.output_type}:{o.get('name', o.get('ename', ''))}"
                 for o in cell.get("outputs", []))


def _state(course: Path) -> dict[tuple[str, ...], Any]:
    """What a grading left: per cell (score, max score, needs manual grade), the files in
    autograded/ and feedback/, and in each autograded notebook its cells' sources and
    nbgrader metadata and the kinds of their outputs."""
    from nbgrader.api import Gradebook, MissingEntry

    state: dict[tuple[str, ...], Any] = {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        for student in SUBMISSIONS:
            try:
                submission = gb.find_submission("ps1", student)
            except MissingEntry:
                state[("submission", student)] = None
                continue
            state[("submission", student)] = "recorded"
            for notebook in submission.notebooks:
                for grade in notebook.grades:
                    state[("cell", student, notebook.name, grade.name)] = (
                        float(grade.score), float(grade.max_score), bool(grade.needs_manual_grade))
    for folder in ("autograded", "feedback"):
        for path in sorted((course / folder).rglob("*")):
            if path.is_file():
                state[("file", folder, *path.relative_to(course / folder).parts)] = "present"
    for path in sorted((course / "autograded").glob("*/ps1/*.ipynb")):
        student, notebook = path.parent.parent.name, path.stem
        nb = nbformat.read(path, as_version=4)
        state[("cells", student, notebook)] = tuple(
            (c.cell_type, c.source, json.dumps(c.metadata.get("nbgrader"), sort_keys=True))
            for c in nb.cells)
        for index, cell in enumerate(nb.cells):
            if cell.cell_type == "code":
                state[("outputs", student, notebook, str(index))] = _kinds(cell)
    return state


def _differences(theirs: dict[tuple[str, ...], Any],
                 ours: dict[tuple[str, ...], Any]) -> dict[tuple[str, ...], tuple[Any, Any]]:
    """Keys whose values differ; a submission only one side recorded is one difference."""
    diffs = {key: (theirs.get(key), ours.get(key)) for key in sorted(set(theirs) | set(ours))
             if theirs.get(key) != ours.get(key)}
    unmatched = {key[1] for key in diffs if key[0] == "submission"}
    return {key: value for key, value in diffs.items()
            if not (key[0] == "cell" and key[1] in unmatched)}


@pytest.mark.timeout(1800)  # about 1.5 min on a quiet machine; a shared one is several times slower
def test_our_grader_agrees_with_nbgrader_on_its_fixtures(tmp_path: Path) -> None:
    plain = _make_course(tmp_path / "nbgrader")
    mine = _make_course(tmp_path / "graders")
    # One generate_assignment (nbgrader's, through the grader) serves both courses.
    _generate(mine, _db_url(mine), "ps1")
    shutil.copy(mine / "gradebook.db", plain / "gradebook.db")
    shutil.copytree(mine / "release", plain / "release")

    started = time.monotonic()
    _nbgrader(plain, "autograde", "ps1")
    nbgrader_seconds = time.monotonic() - started
    started = time.monotonic()
    rows = {r.student_id: r for r in grade_course(mine, cell_timeout=CELL_TIMEOUT, workers=2)}
    ours_seconds = time.monotonic() - started
    for course in (plain, mine):
        _nbgrader(course, "generate_feedback", "ps1")
    print(f"nbgrader autograde {nbgrader_seconds:.1f} s, "
          f"python -m graders grade {ours_seconds:.1f} s")

    assert {s: r.status for s, r in rows.items()} == {s: v[0] for s, v in OUR_STATUSES.items()}, {
        s: r.detail for s, r in rows.items()}
    assert "ignored (not notebooks of ps1): p1 copy.ipynb" in rows["foo"].detail
    theirs, ours = _state(plain), _state(mine)
    # The comparison covers what it should: every student, every graded cell, both folders.
    # 7 graded students x 16 graded cells (p1 4, p2 6, p4 1, p5 1, p6 4; p3 has none).
    assert sum(key[0] == "cell" for key in theirs) == 7 * 16
    assert {key[1] for key in theirs if key[0] == "cell"} == set(SUBMISSIONS) - {"empty"}
    assert ("file", "feedback", "foo", "ps1", "p1.html") in theirs
    assert ("file", "autograded", "foo", "ps1", "side-effect.txt") in theirs

    differences = _differences(theirs, ours)
    unexpected = {k: v for k, v in differences.items() if INTENDED.get(k, (None, None))[:2] != v}
    assert not unexpected, "differences from nbgrader that are not intended:\n" + "\n".join(
        f"  {k}: nbgrader {v[0]!r}, ours {v[1]!r}" for k, v in unexpected.items())
    gone = sorted(set(INTENDED) - set(differences))
    assert not gone, f"listed as intended but no longer different (remove them): {gone}"
