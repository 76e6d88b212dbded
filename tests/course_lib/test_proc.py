"""course_lib.proc: process trees stop on every platform, also without os.killpg and SIGQUIT.

Windows has neither ``os.killpg`` nor ``signal.SIGQUIT`` (nor ``os.getpgid``); the
``no_posix_groups`` fixture deletes them for the duration of a test, as far as Linux
allows, and the trees must still stop: the launcher, its child, and a grandchild that
left for a session of its own.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from course_lib import proc
from course_lib.distributed import scoop_engine, servers
from course_lib.machine import mpiexec
from graders import sandbox

# A launcher that starts a worker in a session of its own (like MPICH's proxy), which
# starts one more process, then prints both pids and waits.
TREE = r"""
import subprocess, sys, time
code = "import subprocess, sys, time; c = subprocess.Popen([sys.executable, '-c', " \
       "'import time; time.sleep(120)']); print(c.pid, flush=True); time.sleep(120)"
worker = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                          start_new_session=True)
grandchild = worker.stdout.readline().strip()
print(worker.pid, grandchild, flush=True)
time.sleep(120)
"""


def _start_tree() -> tuple[subprocess.Popen[str], list[int]]:
    launcher = subprocess.Popen([sys.executable, "-c", TREE], stdout=subprocess.PIPE, text=True,
                                start_new_session=True)
    assert launcher.stdout is not None
    line = launcher.stdout.readline().split()
    assert len(line) == 2, "the tree did not start"
    return launcher, [launcher.pid, *map(int, line)]


def _gone(pid: int) -> bool:
    try:
        process = psutil.Process(pid)
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _assert_all_gone(pids: list[int]) -> None:
    deadline = time.monotonic() + 10
    while not all(_gone(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = [pid for pid in pids if not _gone(pid)]
    for pid in left:  # leave nothing behind, even when the test fails
        psutil.Process(pid).kill()
    assert not left, f"still running: {left}"


@pytest.fixture
def no_posix_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process looks like Windows for process control: no groups, no SIGQUIT."""
    for name in ("killpg", "getpgid", "getpgrp"):
        monkeypatch.delattr(os, name, raising=False)
    monkeypatch.delattr(signal, "SIGQUIT", raising=False)
    with pytest.raises(AttributeError):
        os.killpg  # noqa: B018 - proves the simulation is in force


@pytest.mark.parametrize("simulate", [False, True], ids=["posix", "no-killpg-no-sigquit"])
def test_kill_tree_stops_a_tree_that_left_its_session(simulate: bool,
                                                      request: pytest.FixtureRequest) -> None:
    if simulate:
        request.getfixturevalue("no_posix_groups")
    launcher, pids = _start_tree()
    try:
        left = proc.kill_tree(launcher, timeout=10, grace=0.5)
        assert left == []
        assert launcher.returncode is not None  # our own child is reaped
    finally:
        _assert_all_gone(pids)


def test_kill_tree_does_not_reap_a_child_it_was_not_given() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    assert proc.kill_tree(child.pid, timeout=10) == []
    # Its exit status is still ours to collect: kill_tree did not reap it.
    assert child.wait(timeout=10) == (-signal.SIGKILL if hasattr(signal, "SIGKILL") else 1)


@pytest.mark.skipif(not hasattr(os, "killpg"), reason="process groups are POSIX")
def test_orphans_left_in_the_group_are_found_after_the_leader_exits() -> None:
    code = ("import subprocess, sys; c = subprocess.Popen([sys.executable, '-c', "
            "'import time; time.sleep(120)']); print(c.pid, flush=True)")
    leader = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                              start_new_session=True)
    assert leader.stdout is not None
    orphan = int(leader.stdout.readline())
    leader.wait(timeout=30)
    try:
        assert proc.kill_tree(leader, timeout=10) == []
    finally:
        _assert_all_gone([orphan])


def test_kill_tree_refuses_bad_targets() -> None:
    with pytest.raises(ValueError, match="refuses"):
        proc.kill_tree(os.getpid())
    with pytest.raises(ValueError, match="expected a pid"):
        proc.kill_tree(-3)
    with pytest.raises(ValueError, match=">= 0"):
        proc.kill_tree(1, timeout=-1)


def test_celery_style_stop_without_sigquit(no_posix_groups: None) -> None:
    """distributed.servers.stop_all (Celery's workers) stops every tree with the fallback signal."""
    trees = [_start_tree() for _ in range(2)]
    try:
        servers.stop_all([launcher for launcher, _ in trees],
                              int(getattr(signal, "SIGQUIT", signal.SIGTERM)), grace=1.0)
    finally:
        _assert_all_gone([pid for _, pids in trees for pid in pids])


def test_redis_and_scoop_style_kill_without_killpg(no_posix_groups: None) -> None:
    launcher, pids = _start_tree()
    try:
        servers.stop_tree(launcher, grace=1.0)
    finally:
        _assert_all_gone(pids)


def test_run_bounded_stops_the_tree_without_killpg(no_posix_groups: None,
                                                           tmp_path: Path) -> None:
    pid_file = tmp_path / "pids"
    code = TREE.replace("time.sleep(120)\n", f"open({str(pid_file)!r}, 'w').write("
                        "f'{worker.pid} {grandchild}')\ntime.sleep(120)\n", 1)
    began = time.monotonic()
    run = proc.run_bounded([sys.executable, "-c", code], timeout=5)
    assert run.timed_out and time.monotonic() - began < 30
    _assert_all_gone([int(p) for p in pid_file.read_text().split()])


# --------------------------------------------------------------------------- run_bounded


def test_run_bounded_returns_the_output_of_a_fast_command() -> None:
    code = "import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)"
    began = time.monotonic()
    run = proc.run_bounded([sys.executable, "-c", code], timeout=30)
    assert run == proc.RunResult(3, "out\n", "err\n", False)
    assert time.monotonic() - began < 20


def test_run_bounded_passes_env_and_cwd(tmp_path: Path) -> None:
    code = "import os; print(os.environ['RUN_BOUNDED_TEST'], os.getcwd())"
    env = dict(os.environ, RUN_BOUNDED_TEST="here")
    run = proc.run_bounded([sys.executable, "-c", code], 30, env=env, cwd=tmp_path)
    assert run.returncode == 0 and not run.timed_out
    word, folder = run.stdout.split(maxsplit=1)
    assert word == "here" and Path(folder.strip()).resolve() == tmp_path.resolve()


# The child prints its pid, starts a grandchild that leaves for a session of its own
# (os.setsid) and prints its pid too, then both sleep far past the bound.
SETSID_TREE = r"""
import subprocess, sys, time
grandchild = subprocess.Popen([sys.executable, "-c",
    "import os, sys, time; os.setsid(); print(os.getpid(), flush=True); time.sleep(120)"],
    stdout=subprocess.PIPE, text=True)
print(subprocess.os.getpid(), grandchild.stdout.readline().strip(), flush=True)
time.sleep(120)
"""


@pytest.mark.skipif(not hasattr(os, "setsid"), reason="os.setsid is POSIX")
def test_run_bounded_kills_a_grandchild_that_called_setsid() -> None:
    began = time.monotonic()
    run = proc.run_bounded([sys.executable, "-c", SETSID_TREE], timeout=3)
    assert run.timed_out
    assert time.monotonic() - began < 20
    # The output written before the bound is kept: no survivor holds the pipe open.
    pids = [int(pid) for pid in run.stdout.split()]
    assert len(pids) == 2, run.stdout
    assert run.returncode is not None  # our own child was reaped
    _assert_all_gone(pids)


@pytest.mark.parametrize("own_session", [False, True], ids=["same-group", "own-session"])
def test_run_bounded_kills_the_process_group_on_timeout(own_session: bool) -> None:
    # MPICH's launcher puts its ranks in sessions of their own: they must die too.
    code = (
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'],"
        f" start_new_session={own_session})\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    start = time.perf_counter()
    result = proc.run_bounded([sys.executable, "-c", code], timeout=2)
    assert result.timed_out
    assert time.perf_counter() - start < 15
    if os.name == "posix":
        # A surviving grandchild keeps the pipe open, and its output would be lost.
        assert result.stdout.strip(), "the output was lost: a grandchild kept the pipe open"
        pid = int(result.stdout.split()[0])
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                    break
            except psutil.NoSuchProcess:
                break
            time.sleep(0.05)
        else:
            pytest.fail(f"grandchild {pid} still running after the timeout")


def test_run_bounded_stops_what_a_finished_command_left_running() -> None:
    # nbgrader leaves nothing behind on purpose, but a command that exits while a child
    # still runs must neither make the caller wait for that child nor leave it running.
    code = (
        "import subprocess, sys\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
        "print(child.pid, flush=True)\n"
        "print('to stderr', file=sys.stderr, flush=True)\n"
    )
    began = time.monotonic()
    result = proc.run_bounded([sys.executable, "-c", code], timeout=60, merge_stderr=True)
    assert not result.timed_out and result.returncode == 0
    assert time.monotonic() - began < 30
    pid_line, err_line = result.stdout.split("\n")[:2]
    assert err_line == "to stderr" and result.stderr == ""
    _assert_all_gone([int(pid_line)])


@pytest.mark.skipif(os.name != "posix", reason="resource limits are POSIX")
def test_run_bounded_caps_memory() -> None:
    code = "b = bytearray(400 * 1024 * 1024); print('allocated')"
    result = proc.run_bounded([sys.executable, "-c", code], 60, memory_mb=200)
    assert result.returncode != 0 and "MemoryError" in result.stderr
    assert proc.run_bounded([sys.executable, "-c", code], 60).stdout == "allocated\n"


def test_run_bounded_names_a_missing_program() -> None:
    with pytest.raises(FileNotFoundError, match="cannot start '/nonexistent/program-xyz'"):
        proc.run_bounded(["/nonexistent/program-xyz"], timeout=5)


def test_run_bounded_checks_its_arguments() -> None:
    with pytest.raises(ValueError, match="empty"):
        proc.run_bounded([], timeout=5)
    for bad in (0, -1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="> 0"):
            proc.run_bounded([sys.executable, "-c", "pass"], timeout=bad)
    with pytest.raises(TypeError):
        proc.run_bounded([sys.executable, "-c", "pass"], timeout="5")  # type: ignore[arg-type]


def test_find_mpiexec_in_library_bin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """impi-rt on Windows puts mpiexec.exe in <venv>\\Library\\bin, not next to python.exe."""
    scripts = tmp_path / "Scripts"
    library = tmp_path / "Library" / "bin"
    scripts.mkdir()
    library.mkdir(parents=True)
    launcher = library / "mpiexec.exe"
    launcher.write_text("")
    launcher.chmod(0o755)
    monkeypatch.setenv("PATH", "")
    found = mpiexec.find_mpiexec(str(scripts / "python.exe"), str(tmp_path))
    assert found == str(launcher)
    assert library in mpiexec.mpiexec_folders(str(scripts / "python.exe"), str(tmp_path))


def test_sandbox_marker_scan_without_proc() -> None:
    """The sandbox finds its processes through psutil (no /proc scan: macOS, Windows too)."""
    token = "portable-test-token"
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                             env=dict(os.environ, **{sandbox.MARKER_VAR: token}))
    try:
        assert sandbox._marked_pids(token) == [child.pid]
        sandbox._kill([child.pid])
        assert child.wait(timeout=10) != 0
    finally:
        child.kill()
        child.wait()


def test_scoop_shim_restores_load_module_where_python_removed_it(tmp_path: Path) -> None:
    """Python 3.15 drops SourceFileLoader.load_module(), which SCOOP 0.7's workers call."""
    program = tmp_path / "learner_program.py"
    program.write_text("ANSWER = 42\n")
    code = (
        "import importlib.machinery as m\n"
        "for cls in m.SourceFileLoader.__mro__:\n"
        "    if 'load_module' in vars(cls):\n"
        "        delattr(cls, 'load_module')\n"
        "assert not hasattr(m.SourceFileLoader, 'load_module')\n"
        f"exec({scoop_engine.SCOOP_SITECUSTOMIZE!r})\n"
        f"module = m.SourceFileLoader('learner_program', {str(program)!r}).load_module()\n"
        "import sys\n"
        "print(module.ANSWER, sys.modules['learner_program'] is module)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["42", "True"]
