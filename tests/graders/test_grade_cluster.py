"""Grading across a Dask cluster: a real scheduler and real worker processes on 127.0.0.1.

Each test starts its own ``dask scheduler`` and ``dask worker`` processes
(context managers that stop them and check that none is left), grades through
``python -m graders grade --scheduler`` or :func:`graders.cluster.grade_on_cluster`,
and compares with local grading or with the known grades.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import redirect_stderr
from pathlib import Path

import nbformat
import psutil
import pytest

from graders.__main__ import main
from graders.cluster import grade_on_cluster
from graders.grade import GradeRow, grade_course
from graders.sandbox import Isolation, detect_isolation

from .test_grade_hostile import (
    EXPECTED,
    ORPHAN_SECONDS,
    RIGHT_MUL,
    _build_corpus,
    _make_course,
    _student_edition,
    _submit,
)

pytest.importorskip("distributed")
pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"),
    reason="the sandbox and these fault tests use Linux process control",
)

HOST = "127.0.0.1"
# A slow but right answer: long enough to kill its worker while it runs.
SLOW_MUL = "import time\ntime.sleep(6)\n" + RIGHT_MUL
# Kills the Dask worker that grades it (possible only without the PID namespace): the
# kernel's parent is graders._execute, whose parent is the worker.
WORKER_KILLER = ("import os, signal, psutil\n"
                 "os.kill(psutil.Process(os.getppid()).ppid(), signal.SIGKILL)\n" + RIGHT_MUL)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _wait_for(condition, timeout: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """End a process group this test started: SIGTERM, then SIGKILL."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # what the group left (a nanny's worker)


class Cluster:
    """A scheduler and its workers, each ``dask`` process in its own process group."""

    def __init__(self, root: Path, allowed_failures: int = 3) -> None:
        self.root = root
        self.address = f"tcp://{HOST}:{_free_port()}"
        # Worker saturation 1.0: a single-thread worker holds one task, so when a submission
        # kills it only that submission is suspected (deploy/dask/README.md says so too).
        self.env = dict(
            os.environ,
            DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES=str(allowed_failures),
            DASK_DISTRIBUTED__SCHEDULER__WORKER_SATURATION="1.0",
        )
        self.procs: list[subprocess.Popen[bytes]] = []
        self.workers: dict[str, subprocess.Popen[bytes]] = {}

    def _spawn(self, args: list[str], log: str) -> subprocess.Popen[bytes]:
        with (self.root / log).open("ab") as out:
            proc = subprocess.Popen([sys.executable, "-m", *args], env=self.env, stdout=out,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
        self.procs.append(proc)
        return proc

    def start_scheduler(self) -> None:
        port = self.address.rsplit(":", 1)[1]
        self._spawn(["distributed.cli.dask_scheduler", "--host", HOST, "--port", port,
                     "--no-dashboard", "--no-show"], "scheduler.log")

    def start_worker(self, name: str, nanny: bool = False) -> None:
        folder = self.root / f"dask-{name}"
        folder.mkdir(exist_ok=True)
        self.workers[name] = self._spawn(
            ["distributed.cli.dask_worker", self.address, "--name", name, "--nthreads", "1",
             "--host", HOST, "--no-dashboard", "--local-directory", str(folder),
             "--nanny" if nanny else "--no-nanny"], f"worker-{name}.log")

    def client_info(self) -> dict[str, dict[str, object]]:
        from distributed import Client

        with Client(self.address, timeout=30, set_as_default=False) as client:
            return dict(client.scheduler_info()["workers"])

    def wait_for_workers(self, count: int) -> None:
        from distributed import Client

        with Client(self.address, timeout=60, set_as_default=False) as client:
            client.wait_for_workers(count, timeout=120)

    def worker_pid(self, name: str) -> int:
        """The pid of the process that runs worker ``name``'s tasks (the nanny's child)."""
        proc = psutil.Process(self.workers[name].pid)
        for child in proc.children():
            with contextlib.suppress(psutil.Error):
                if "spawn_main" in " ".join(child.cmdline()):
                    return child.pid
        return proc.pid

    def stop(self) -> None:
        for proc in reversed(self.procs):
            _stop(proc)


@contextlib.contextmanager
def dask_cluster(
    root: Path, workers: dict[str, bool], allowed_failures: int = 3
) -> Iterator[Cluster]:
    """Scheduler plus workers (name -> with a nanny) on 127.0.0.1; all stopped after the block."""
    root.mkdir(parents=True, exist_ok=True)
    cluster = Cluster(root, allowed_failures)
    try:
        cluster.start_scheduler()
        for name, nanny in workers.items():
            cluster.start_worker(name, nanny)
        cluster.wait_for_workers(len(workers))
        yield cluster
    finally:
        cluster.stop()
    left = [p.pid for p in cluster.procs if p.poll() is None]
    assert left == [], f"dask processes still running: {left}"


def _leftovers() -> list[str]:
    """Processes we started that still run (not multiprocessing's helpers of pytest), orphans,
    folders."""
    found = []
    for proc in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            cmdline = " ".join(proc.cmdline())
            if (
                proc.is_running()
                and "forkserver" not in cmdline
                and "resource_tracker" not in cmdline
            ):
                found.append(f"process {proc.pid}: {cmdline}")
    for proc in psutil.process_iter(["pid", "cmdline"]):
        if f"sleep {ORPHAN_SECONDS}" in " ".join(proc.info["cmdline"] or []):
            found.append(f"orphan {proc.info['pid']}")
    import tempfile

    found += [
        f"worker folder {p}"
        for p in Path(tempfile.gettempdir()).glob("graders-w*-*")
        if re.match(r"graders-w\d+-", p.name)
    ]  # graders.worker's folders, not a student "w..."
    return found


def _assert_nothing_left() -> None:
    deadline = time.monotonic() + 10
    while _leftovers() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _leftovers() == []


def _rows(
    rows: list[GradeRow], course: Path
) -> dict[str, tuple[float, float, str, str, dict[str, float]]]:
    """Each row, with the course folder in the details written COURSE (the two courses differ)."""
    return {
        r.student_id: (
            r.score,
            r.max_score,
            r.status,
            r.detail.replace(str(course.resolve()), "COURSE"),
            r.cell_scores,
        )
        for r in rows
    }


def _csv_rows(course: Path) -> list[list[str]]:
    with (course / "grades.csv").open(newline="") as handle:
        return list(csv.reader(handle))


def _gradebook_submissions(course: Path) -> list[tuple[str, float]]:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        return sorted((s.student.id, float(s.score)) for s in gb.assignment_submissions("hostile"))


def _autograded(course: Path) -> dict[str, object]:
    """autograded/: each file, and for notebooks each code cell's source and error names."""
    found: dict[str, object] = {}
    for path in sorted((course / "autograded").rglob("*")):
        rel = str(path.relative_to(course / "autograded"))
        if path.suffix == ".ipynb":
            nb = nbformat.read(path, as_version=4)
            # Error names only: how many stream outputs a flood of prints gets split into
            # depends on timing, on a worker as here.
            found[rel] = [(c.source, [o.get("ename") for o in c.get("outputs", [])
                                      if o.get("output_type") == "error"])
                          for c in nb.cells if c.cell_type == "code"]
        elif path.is_file():
            found[rel] = path.read_bytes()
    return found


def test_hostile_corpus_on_the_cluster_gives_the_rows_of_local_grading(
        tmp_path: Path, request: pytest.FixtureRequest) -> None:
    students = list(EXPECTED)
    expected = dict(EXPECTED)
    if not detect_isolation().namespaces:
        expected["network"] = (2, "graded")
    server = socket.create_server(
        (HOST, 0)
    )  # the sandboxes, here and on workers, must not reach it
    request.addfinalizer(server.close)
    port = server.getsockname()[1]
    local = _make_course(tmp_path / "local")
    _build_corpus(local, students, port=port)
    remote = _make_course(tmp_path / "remote")
    _build_corpus(remote, students, port=port)
    options = dict(cell_timeout=5, memory_mb=512, max_processes=64, notebook_budget=90)
    local_rows = grade_course(local, workers=2, **options)
    with dask_cluster(tmp_path / "dask", {"a": False, "b": False}) as cluster:
        remote_rows = grade_on_cluster(remote, cluster.address, **options)
    _assert_nothing_left()
    assert _rows(remote_rows, remote) == _rows(local_rows, local)
    assert {r.student_id: (r.score, r.status) for r in remote_rows} == {
        s: (float(score), status) for s, (score, status) in expected.items()}
    assert _csv_rows(remote) == _csv_rows(local)
    assert _autograded(remote) == _autograded(local)
    assert _gradebook_submissions(remote) == _gradebook_submissions(local)


def _slow_class(root: Path, students: int) -> Path:
    course = _make_course(root)
    for i in range(students):
        _submit(course, f"slow{i}", _student_edition(SLOW_MUL))
    return course


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _sandboxes_of(pid: int) -> list[psutil.Process]:
    with contextlib.suppress(psutil.Error):
        return [p for p in psutil.Process(pid).children(recursive=True)
                if "-m graders._sandbox_init" in " ".join(p.cmdline())]
    return []


def _grade_in_thread(
    course: Path, address: str, **options: object
) -> tuple[Iterator[None], list[object]]:
    import threading

    result: list[object] = []

    def run() -> None:
        try:
            result.append(
                grade_on_cluster(course, address, cell_timeout=30, memory_mb=512, **options)
            )
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            result.append(exc)

    thread = threading.Thread(target=run)
    thread.start()

    @contextlib.contextmanager
    def joined() -> Iterator[None]:
        try:
            yield
        finally:
            thread.join(timeout=300)
            assert not thread.is_alive(), "grading did not finish"
    return joined(), result


def _graded_once(
    course: Path, result: list[object], students: list[str], score: float = 4.0
) -> None:
    assert len(result) == 1 and isinstance(result[0], list), result
    rows: list[GradeRow] = result[0]
    assert sorted(r.student_id for r in rows) == sorted(students)
    assert {(r.status, r.score) for r in rows} == {("graded", score)}, [
        (r.student_id, r.detail) for r in rows
    ]
    table = _csv_rows(course)
    assert sorted(r[0] for r in table[1:]) == sorted(students)  # each row once
    assert _gradebook_submissions(course) == sorted((s, score) for s in students)


def test_a_worker_killed_mid_run_loses_nothing(tmp_path: Path) -> None:
    course = _slow_class(tmp_path / "course", 4)
    students = [f"slow{i}" for i in range(4)]
    with dask_cluster(tmp_path / "dask", {"a": False, "b": False}) as cluster:
        joined, result = _grade_in_thread(course, cluster.address)
        with joined:
            victim = cluster.worker_pid("a")
            sandboxes = _wait_for(lambda: _sandboxes_of(victim), 120, "worker a to grade")
            os.kill(victim, signal.SIGKILL)
            # Its sandbox dies with it (PR_SET_PDEATHSIG), not at the end of the notebook.
            _wait_for(lambda: not any(_alive(p) for p in sandboxes), 10, "the sandbox to die")
        assert cluster.workers["a"].wait(timeout=10) is not None
        assert len(cluster.client_info()) == 1
    _assert_nothing_left()
    _graded_once(course, result, students)


def test_a_worker_that_dies_is_restarted_by_its_nanny_and_grading_goes_on(tmp_path: Path) -> None:
    course = _slow_class(tmp_path / "course", 2)
    with dask_cluster(tmp_path / "dask", {"a": True}) as cluster:
        joined, result = _grade_in_thread(course, cluster.address)
        with joined:
            victim = cluster.worker_pid("a")
            _wait_for(lambda: _sandboxes_of(victim), 120, "worker a to grade")
            os.kill(victim, signal.SIGKILL)
            restarted = _wait_for(
                lambda: (
                    cluster.worker_pid("a") not in (victim, cluster.workers["a"].pid)
                    and cluster.worker_pid("a")
                ),
                60,
                "the nanny to restart worker a",
            )
        assert restarted != victim
    _assert_nothing_left()
    _graded_once(course, result, ["slow0", "slow1"])


def test_a_submission_that_keeps_killing_workers_ends_as_kernel_died(tmp_path: Path) -> None:
    course = _make_course(tmp_path / "course")
    _submit(course, "killer", _student_edition(WORKER_KILLER))
    _submit(course, "right", _student_edition(RIGHT_MUL))
    # Without the PID namespace the kernel can see (and kill) the worker above it.
    fallback = Isolation(namespaces=False, cgroup=None)
    with dask_cluster(tmp_path / "dask", {"a": True}, allowed_failures=1) as cluster:
        rows = {
            r.student_id: r
            for r in grade_on_cluster(
                course, cluster.address, isolation=fallback, cell_timeout=30, memory_mb=512
            )
        }
    _assert_nothing_left()
    assert (rows["right"].status, rows["right"].score) == ("graded", 4.0)
    killer = rows["killer"]
    assert (killer.status, killer.score, killer.max_score) == ("kernel-died", 0.0, 4.0)
    assert "killed a Dask worker each time it ran (2 tries)" in killer.detail
    nb = nbformat.read(course / "autograded" / "killer" / "hostile" / "hostile.ipynb", as_version=4)
    assert {o["ename"] for c in nb.cells if c.cell_type == "code" for o in c.outputs} == {"NotRun"}


def test_an_unreachable_scheduler_is_one_line_and_exit_2_with_nothing_written(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    course = _make_course(tmp_path / "course")
    _build_corpus(course, ["right"])
    before = {p: p.stat().st_mtime_ns for p in course.rglob("*")}
    closed = f"tcp://{HOST}:{_free_port()}"
    for argv, env in ((["--scheduler", closed], None), ([], closed)):
        if env:
            monkeypatch.setenv("COURSE_DASK_SCHEDULER", env)
        err = io.StringIO()
        with redirect_stderr(err):
            code = main(["grade", str(course), *argv])
        assert code == 2
        lines = err.getvalue().strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(
            f"error: cannot reach the Dask scheduler at {closed}"
        ), lines
        assert {p: p.stat().st_mtime_ns for p in course.rglob("*")} == before


def test_isolation_the_workers_report_matches_this_machine(tmp_path: Path) -> None:
    """Workers grade in the strongest sandbox their machine allows, as local grading does."""
    from graders.cluster import check_workers, connect

    with (
        dask_cluster(tmp_path / "dask", {"a": False}) as cluster,
        connect(cluster.address) as client,
    ):
        info = check_workers(client)
    assert [item["isolation"] for item in info.values()] == [detect_isolation().describe()]
