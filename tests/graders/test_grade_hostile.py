"""The grader against a corpus of hostile and broken submissions.

Every submission of the corpus is graded in one parallel run, each must get
its expected status and score within its time bound, and nothing may be left
running or lying around afterwards: no process, no shared-memory segment, no
temporary folder, no control group.
"""

from __future__ import annotations

import csv
import os
import shutil
import socket
import time
from pathlib import Path

import nbformat
import psutil
import pytest

from graders.checks.core import is_mp_helper as _is_mp_helper
from graders.grade import GradeRow, _db_url, _generate, grade_course
from graders.sandbox import Isolation, detect_isolation

from ..conftest import REPO, nbgrader_cell

ADD = "def add(a, b):\n    ### BEGIN SOLUTION\n    return a + b\n    ### END SOLUTION\n"
MUL = "def mul(a, b):\n    ### BEGIN SOLUTION\n    return a * b\n    ### END SOLUTION\n"
ADD_TESTS = 'from graders.checks import expect_equal\nexpect_equal(add(2, 3), 5, "add(2, 3)")\n'
MUL_TESTS = '''from graders.checks import expect_equal
expect_equal(mul(3, 4), EXPECTED_PRODUCT, "mul(3, 4)")
### BEGIN HIDDEN TESTS
expect_equal(mul(-2, 5), -10, "mul(-2, 5)")
### END HIDDEN TESTS
'''
LEAK_NAME = "graders_hostile_leak"
ORPHAN_SECONDS = "317"  # an unusual number: the test looks for `sleep 317` afterwards


def hostile_notebook(mul_solution: str = MUL) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    setup = nbgrader_cell("prompt", "EXPECTED_PRODUCT = 12\n", "setup")
    setup = nbformat.v4.new_code_cell(setup.source, metadata=setup.metadata)
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Two exercises"),
        setup,
        nbgrader_cell("solution", ADD, "ex_add"),
        nbgrader_cell("tests", ADD_TESTS, "ex_add_tests", points=2),
        nbgrader_cell("solution", mul_solution, "ex_mul"),
        nbgrader_cell("tests", MUL_TESTS, "ex_mul_tests", points=2),
    ]
    return nb


RIGHT_MUL = "def mul(a, b):\n    return a * b\n"
WRONG_MUL = "def mul(a, b):\n    return 0\n"

# student -> code of the second solution cell (the first exercise is always right).
SOLUTIONS = {
    "right": RIGHT_MUL,
    "infinite_loop": "while True:\n    pass\n",
    "deadlock": "import threading\nlock = threading.Lock()\nlock.acquire()\nlock.acquire()\n",
    "fork_bomb": (
        "import os, time\nfor _ in range(400):\n    if os.fork() == 0:\n"
        "        time.sleep(60)\n        os._exit(0)\n"
    ),
    "orphan": (
        f"import os, subprocess\nsubprocess.Popen(['setsid', 'sleep', '{ORPHAN_SECONDS}'])\n"
        "if os.fork() == 0:\n    if os.fork() == 0:\n"
        f"        os.execvp('sleep', ['sleep', '{ORPHAN_SECONDS}'])\n"
        "    os._exit(0)\n" + RIGHT_MUL
    ),
    "shm_leak": (
        "from multiprocessing import shared_memory\n"
        f"segment = shared_memory.SharedMemory(name='{LEAK_NAME}', create=True, size=4096)\n"
        "segment.close()\n" + RIGHT_MUL
    ),
    "memory_hog": "hog = bytearray(3 * 1024**3)\n" + RIGHT_MUL,
    "os_exit": "import os\nos._exit(3)\n",
    "sys_exit": "import sys\nsys.exit(0)\n" + RIGHT_MUL,
    "kill_kernel": "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n",
    "print_flood": (
        "import time\nend = time.monotonic() + 3\nwhile time.monotonic() < end:\n"
        "    print('x' * 100_000)\n    time.sleep(0.05)\n" + RIGHT_MUL
    ),
    "stderr_noise": (
        "import sys, threading\nprint('noise from the student', file=sys.stderr)\n"
        "def mul(a, b):\n    print('worker chatter on stderr', file=sys.stderr)\n    return a * b\n"
    ),
    "patched_helpers": (
        "import graders.checks\ngraders.checks.expect_equal = lambda *args, **kwargs: None\n"
        "expect_equal = graders.checks.expect_equal\n" + WRONG_MUL
    ),
    "swallowed_errors": (
        "get_ipython().set_custom_exc((Exception,), lambda *args, **kwargs: None)\n" + WRONG_MUL
    ),
    "overwritten_expected": "EXPECTED_PRODUCT = 0\n" + WRONG_MUL,
    "fake_output": "print('All tests passed! 4/4 points')\n" + WRONG_MUL,
    "redefined_assert": ("import builtins\nclass Quiet(Exception):\n    pass\n"
                         "builtins.AssertionError = Quiet\n" + WRONG_MUL),
    "plain_wrong": WRONG_MUL,
    # {port} is a server the test runs on the host's 127.0.0.1: the sandbox must not reach it.
    "network": (
        "import socket\ntry:\n"
        "    socket.create_connection(('127.0.0.1', {port}), timeout=2).close()\n"
        "    reached = True\nexcept OSError:\n    reached = False\n"
        "def mul(a, b):\n    return 0 if reached else a * b\n"
    ),
}

# student -> (score, status); max score is 4 for everyone.
EXPECTED = {
    "right": (4, "graded"),
    "infinite_loop": (2, "timeout"),
    "deadlock": (2, "timeout"),
    "fork_bomb": (2, "graded"),
    "orphan": (4, "graded"),
    "shm_leak": (4, "graded"),
    "memory_hog": (2, "memory-limit"),
    "os_exit": (2, "kernel-died"),
    "sys_exit": (
        2,
        "graded",
    ),  # IPython turns SystemExit into an error: the cell's code after it never runs
    "kill_kernel": (2, "kernel-died"),
    "print_flood": (4, "graded"),
    "stderr_noise": (4, "graded"),
    "patched_helpers": (2, "tampered"),
    "swallowed_errors": (2, "tampered"),
    "overwritten_expected": (2, "graded"),
    "fake_output": (2, "graded"),
    "redefined_assert": (2, "tampered"),
    "plain_wrong": (2, "graded"),
    "edited_test": (2, "tampered"),
    "deleted_test": (
        2,
        "tampered",
    ),  # the deleted test is left for manual grading, as nbgrader does
    "stripped_metadata": (
        0,
        "tampered",
    ),  # no grade ids left to grade by: all left for manual grading
    "invalid_json": (0, "invalid-notebook"),
    "other_assignment": (0, "invalid-notebook"),
    "network": (4, "graded"),  # with network namespaces; 2 where the host's loopback is reachable
}


def _make_course(root: Path) -> Path:
    course = root / "course"
    (course / "source" / "hostile").mkdir(parents=True)
    (course / "submitted").mkdir()
    shutil.copy(REPO / "graders" / "nbgrader_config.py", course / "nbgrader_config.py")
    nbformat.write(hostile_notebook(), course / "source" / "hostile" / "hostile.ipynb")
    # The release, as students receive it (nbgrader generate_assignment).
    _generate(course, _db_url(course), "hostile")
    global _RELEASE
    _RELEASE = course / "release" / "hostile" / "hostile.ipynb"
    return course


_RELEASE = Path()


def _student_edition(solution: str) -> nbformat.NotebookNode:
    nb = nbformat.read(_RELEASE, as_version=4)
    nb.cells[2].source = "def add(a, b):\n    return a + b\n"
    nb.cells[4].source = solution
    return nb


def _submit(course: Path, student: str, nb: nbformat.NotebookNode | str) -> None:
    folder = course / "submitted" / student / "hostile"
    folder.mkdir(parents=True)
    if isinstance(nb, str):
        (folder / "hostile.ipynb").write_text(nb)
    else:
        nbformat.write(nb, folder / "hostile.ipynb")


def _build_corpus(course: Path, students: list[str], port: int = 9) -> None:
    for student in students:
        if student in SOLUTIONS:
            _submit(
                course, student, _student_edition(SOLUTIONS[student].replace("{port}", str(port)))
            )
    if "edited_test" in students:
        nb = _student_edition(WRONG_MUL)
        nb.cells[5].source = "pass\n"
        _submit(course, "edited_test", nb)
    if "deleted_test" in students:
        nb = _student_edition(RIGHT_MUL)
        del nb.cells[5]
        _submit(course, "deleted_test", nb)
    if "stripped_metadata" in students:
        nb = _student_edition(RIGHT_MUL)
        for cell in nb.cells:
            cell.metadata.pop("nbgrader", None)
        _submit(course, "stripped_metadata", nb)
    if "invalid_json" in students:
        _submit(course, "invalid_json", '{"cells": [')
    if "other_assignment" in students:
        nb = _student_edition(RIGHT_MUL)
        for cell in nb.cells:
            if "nbgrader" in cell.metadata:
                cell.metadata["nbgrader"]["grade_id"] = (
                    "ch99_" + cell.metadata["nbgrader"]["grade_id"]
                )
        _submit(course, "other_assignment", nb)


def _leftovers(before_tmp: set[str]) -> list[str]:
    """What the grading left: our descendants, the corpus's orphans, segments, folders, cgroups.

    multiprocessing's forkserver and resource tracker are not leftovers: they belong to the
    pytest process itself (an earlier test in the session started them) and live as long as it.
    """
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            if child.is_running() and not _is_mp_helper(child):
                found.append(f"process {child.pid}: {' '.join(child.cmdline())}")
        except psutil.Error:
            continue  # ended while we looked
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if f"sleep {ORPHAN_SECONDS}" in cmdline:
            found.append(f"process {proc.info['pid']}: {cmdline}")
    if Path("/dev/shm", LEAK_NAME).exists():
        found.append(f"/dev/shm/{LEAK_NAME}")
    found += [f"temp folder {p}" for p in _graders_tmp() - before_tmp]
    for root in ("/sys/fs/cgroup/pids", "/sys/fs/cgroup/memory", "/sys/fs/cgroup"):
        found += (
            [f"cgroup {p}" for p in Path(root).rglob(f"graders-{os.getpid()}-*")]
            if Path(root).is_dir()
            else []
        )
    return found


def _graders_tmp() -> set[str]:
    import tempfile

    students = (*SOLUTIONS, *EXPECTED, "slowpoke")
    return {p.name for p in Path(tempfile.gettempdir()).glob("graders-*")
            if p.name.rsplit("-", 1)[0].removeprefix("graders-") in students}


def _grade(
    course: Path, isolation: Isolation | None = None, budget: float = 90
) -> dict[str, GradeRow]:
    before_tmp = _graders_tmp()
    rows = grade_course(course, workers=2, cell_timeout=5, memory_mb=512, max_processes=64,
                        notebook_budget=budget, isolation=isolation)
    deadline = time.monotonic() + 5
    while _leftovers(before_tmp) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _leftovers(before_tmp) == []
    return {row.student_id: row for row in rows}


def test_every_hostile_submission_gets_its_status_and_nothing_is_left(
        tmp_path: Path, request: pytest.FixtureRequest) -> None:
    course = _make_course(tmp_path)
    expected = dict(EXPECTED)
    if not detect_isolation().namespaces:
        expected["network"] = (2, "graded")
    server = socket.create_server(("127.0.0.1", 0))
    request.addfinalizer(server.close)
    _build_corpus(course, list(expected), port=server.getsockname()[1])
    start = time.monotonic()
    rows = _grade(course)
    elapsed = time.monotonic() - start
    got = {student: (row.score, row.status) for student, row in rows.items()}
    assert got == {
        student: (float(score), status) for student, (score, status) in expected.items()
    }, {s: rows[s].detail for s in rows if got[s] != (float(expected[s][0]), expected[s][1])}
    # Bounded: 22 submissions on 2 workers, the slowest a few 5-second timeouts.
    assert elapsed < 240, elapsed

    # The reasons are there for the instructor.
    assert "killed" in rows["memory_hog"].detail or "memory" in rows["memory_hog"].detail.lower()
    assert "died" in rows["os_exit"].detail
    assert "test cell 'ex_mul_tests' was edited" in rows["edited_test"].detail
    assert "test cell 'ex_mul_tests' was deleted" in rows["deleted_test"].detail
    assert "metadata was stripped" in rows["stripped_metadata"].detail
    # What the grader cannot score is left to the instructor (nbgrader: needs manual grade).
    assert rows["deleted_test"].needs_manual == ["ex_mul_tests"]
    assert rows["stripped_metadata"].needs_manual == ["ex_add_tests", "ex_mul_tests"]
    assert rows["edited_test"].needs_manual == [] and rows["right"].needs_manual == []
    assert "graders.checks.expect_equal replaced" in rows["patched_helpers"].detail
    assert "custom exception handler" in rows["swallowed_errors"].detail
    assert "builtins.AssertionError replaced" in rows["redefined_assert"].detail
    assert "invalid JSON" in rows["invalid_json"].detail
    assert "another assignment" in rows["other_assignment"].detail
    if detect_isolation().cgroup or detect_isolation().namespaces:
        assert "process limit" in rows["fork_bomb"].detail

    # A dead kernel keeps the first exercise's grade and says why the rest is zero.
    autograded = course / "autograded"
    nb = nbformat.read(autograded / "os_exit" / "hostile" / "hostile.ipynb", as_version=4)
    assert [o.get("ename") for o in nb.cells[5].outputs] == ["NotRun"]
    assert "kernel died" in nb.cells[5].outputs[0]["evalue"]
    assert rows["os_exit"].cell_scores == {"ex_add_tests": 2.0, "ex_mul_tests": 0.0}
    # The print flood was capped; stderr in a test cell did not cost the points.
    flood = autograded / "print_flood" / "hostile" / "hostile.ipynb"
    assert flood.stat().st_size < 1_000_000
    # The edited test cell was restored from the release before it ran.
    edited = nbformat.read(autograded / "edited_test" / "hostile" / "hostile.ipynb", as_version=4)
    assert "expect_equal(mul(-2, 5), -10" in edited.cells[5].source

    with (course / "grades.csv").open() as handle:
        table = {row[0]: row for row in csv.reader(handle)}
    assert table["student_id"] == ["student_id", "assignment", "score", "max_score", "status"]
    assert table["memory_hog"] == ["memory_hog", "hostile", "2", "4", "memory-limit"]

    # Grading again gives the same grades.
    again = _grade(course)
    assert {s: (r.score, r.status) for s, r in again.items()} == got


@pytest.mark.skipif(
    not os.path.isdir("/proc"), reason="the fallback tracks processes through /proc"
)
def test_fallback_isolation_still_kills_orphans_and_removes_segments(tmp_path: Path) -> None:
    """Without namespaces or cgroups: process sessions, the environment marker, rlimits."""
    course = _make_course(tmp_path)
    _build_corpus(course, ["orphan", "shm_leak", "memory_hog", "right"])
    rows = _grade(course, isolation=Isolation(namespaces=False, cgroup=None))
    assert {s: (r.score, r.status) for s, r in rows.items()} == {
        "orphan": (4.0, "graded"), "shm_leak": (4.0, "graded"),
        "memory_hog": (2.0, "memory-limit"), "right": (4.0, "graded")}


def test_a_notebook_past_its_budget_is_a_timeout_and_keeps_earlier_grades(tmp_path: Path) -> None:
    course = _make_course(tmp_path)
    slow = "import time\nfor _ in range(4):\n    time.sleep(1)\n" + RIGHT_MUL
    nb = _student_edition(slow)
    nb.cells.insert(4, nbformat.v4.new_code_cell("import time\ntime.sleep(4)"))
    _submit(course, "slowpoke", nb)
    row = _grade(course, budget=7)["slowpoke"]
    assert row.status == "timeout"
    assert "budget" in row.detail
    assert row.cell_scores == {"ex_add_tests": 2.0, "ex_mul_tests": 0.0}
