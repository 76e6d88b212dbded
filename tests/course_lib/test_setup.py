"""`python -m course_lib setup` and `python -m course_lib lab`: the set-up that needs no make.

The unit tests check the commands setup would run (with a recording runner) on Windows
and POSIX layouts. The real tests configure Jupyter in this environment, start the lab
through `python -m course_lib lab`, and (slow, nightly: `make test-all`) create a
fresh `.venv` from a fresh clone and install the course into it.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

import pytest

from course_lib import setup as course_setup
from course_lib.proc import kill_tree

from ..conftest import REPO


class Recorder:
    """A runner that records each command and answers with ``code``."""

    def __init__(self, code: int = 0) -> None:
        self.commands: list[list[str]] = []
        self.code = code

    def __call__(self, command: Sequence[str]) -> int:
        self.commands.append(list(command))
        return self.code


def test_venv_layout_on_windows_and_posix(tmp_path: Path) -> None:
    assert course_setup.venv_python(tmp_path, "win32") == tmp_path / "Scripts" / "python.exe"
    assert course_setup.scripts_dir(tmp_path, "win32") == tmp_path / "Scripts"
    for platform in ("linux", "darwin"):
        assert course_setup.venv_python(tmp_path, platform) == tmp_path / "bin" / "python"


def test_install_uses_prefer_binary_and_remembers_what_it_installed(tmp_path: Path) -> None:
    root = tmp_path / "course"
    root.mkdir()
    (root / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    venv_dir = tmp_path / "venv"
    venv_dir.mkdir()
    run = Recorder()
    assert course_setup.install(venv_dir, ["mpi", "gpu"], root=root, runner=run)
    [command] = run.commands
    assert command[:4] == [str(course_setup.venv_python(venv_dir)), "-m", "pip", "install"]
    assert "--prefer-binary" in command and command[-2:] == ["-e", f"{root}[mpi,gpu]"]
    # Unchanged: nothing to do. Other extras, or a changed pyproject.toml: install again.
    assert not course_setup.install(venv_dir, ["gpu", "mpi"], root=root, runner=run)
    assert course_setup.install(venv_dir, ["mpi"], root=root, runner=run)
    (root / "pyproject.toml").write_text("[project]\nname = 'y'\n")
    assert course_setup.install(venv_dir, ["mpi"], root=root, runner=run)
    assert len(run.commands) == 3


def test_install_failure_says_what_to_do(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("")
    with pytest.raises(course_setup.SetupError, match="pip could not install the course"):
        course_setup.install(tmp_path, ["gpu"], root=tmp_path, runner=Recorder(code=1))
    assert not (tmp_path / course_setup.STAMP).exists()


def test_configure_jupyter_plan_and_overrides(tmp_path: Path) -> None:
    seen: list[list[str]] = []

    def child(command: Sequence[str]) -> tuple[int, str, str]:
        seen.append(list(command))
        return 0, json.dumps({"prefix": str(tmp_path)}) + "\n", ""

    overrides = course_setup.configure_jupyter("py", runner=child)
    assert overrides == tmp_path / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
    notification = json.loads(overrides.read_text())["@jupyterlab/apputils-extension:notification"]
    assert notification == {"checkForUpdates": False, "fetchNews": "false"}
    [command] = seen
    assert command[:2] == ["py", "-c"]
    plan = json.loads(command[3])
    assert "nbgrader.server_extensions.validate_assignment" in plan["server_enable"]
    assert "@jupyter/nbgrader:validate-assignment" in plan["lab_enable"]
    assert "@jupyter/nbgrader:formgrader" in plan["lab_disable"]
    instructor = course_setup.jupyter_plan(instructor=True)
    assert "@jupyter/nbgrader:formgrader" in instructor["lab_enable"]
    assert not instructor["lab_disable"]
    with pytest.raises(course_setup.SetupError, match="could not configure Jupyter.*No module"):
        course_setup.configure_jupyter(
            "py", runner=lambda c: (1, "", "ModuleNotFoundError: No module named 'jupyterlab'"))


def test_bad_arguments_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    from course_lib.__main__ import main

    assert main(["setup", "--extras", "gpu;rm -rf", "--venv", "/nonexistent/x"]) == 1
    assert "is not a name" in capsys.readouterr().err
    assert main(["lab", "--venv", "/nonexistent/venv"]) == 1
    assert "run `python -m course_lib setup` first" in capsys.readouterr().err
    with pytest.raises(course_setup.SetupError, match="Python 3.11 or newer"):
        course_setup._check_python((3, 9))


def test_lab_command_for_learners_and_instructors(tmp_path: Path) -> None:
    command, folder = course_setup.lab_command(tmp_path, root=REPO)
    assert folder == REPO / "notebooks" and f"--notebook-dir={REPO / 'notebooks'}" in command
    assert command[1:4] == ["-m", "jupyter", "lab"]
    command, folder = course_setup.lab_command(tmp_path, root=REPO, instructor=True)
    assert folder == REPO / "graders" and not any("--notebook-dir" in c for c in command)


# --- real runs -----------------------------------------------------------------------------

def _in_a_venv() -> Path:
    if sys.prefix == sys.base_prefix:
        pytest.skip("the tests do not run in a virtual environment")
    return Path(sys.prefix)


def test_configure_jupyter_for_real() -> None:
    _in_a_venv()
    done = subprocess.run([sys.executable, "-m", "course_lib", "configure-jupyter"], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    listing = subprocess.run([sys.executable, "-m", "jupyter", "labextension", "list"],
                             capture_output=True, text=True, timeout=120)
    text = listing.stdout + listing.stderr
    disabled = text.split("Disabled extensions:")[1]
    assert "@jupyter/nbgrader:formgrader" in disabled
    assert "@jupyter/nbgrader:validate-assignment" not in disabled


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_course_lib_lab_serves_the_notebooks(tmp_path: Path) -> None:
    venv_dir = _in_a_venv()
    port, token = _free_port(), secrets.token_hex(16)
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"))
    server = subprocess.Popen(
        [sys.executable, "-m", "course_lib", "lab", "--venv", str(venv_dir), "--",
         "--no-browser", f"--port={port}", "--ip=127.0.0.1", f"--IdentityProvider.token={token}"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            request = urllib.request.Request(f"http://127.0.0.1:{port}/api/contents",
                                             headers={"Authorization": f"token {token}"})
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    names = {item["name"] for item in json.loads(response.read())["content"]}
                break
            except OSError:
                assert server.poll() is None, "python -m course_lib lab exited during start-up"
                assert time.monotonic() < deadline, "the lab did not answer within 120 s"
                time.sleep(0.5)
        assert {"ch00_introduction", "ch07_gpu"} <= names  # started on notebooks/
    finally:
        kill_tree(server, timeout=20)
    assert server.poll() is not None


# CI's own `make test` runs `python -m course_lib setup` from a fresh clone before any test;
# this test repeats that inside the suite, so it runs in the nightly job (make test-all).
@pytest.mark.nightly
@pytest.mark.timeout(2400)
def test_setup_from_a_fresh_clone(tmp_path: Path) -> None:
    git = shutil.which("git")
    if git is None:
        pytest.skip("git is not installed")
    clone = tmp_path / "course"
    subprocess.run([git, "clone", "--quiet", str(REPO), str(clone)], check=True, timeout=300)
    # The working tree as it is (a commit may not have been made yet).
    for name in ("pyproject.toml", "course_lib/setup.py", "course_lib/__main__.py"):
        shutil.copy2(REPO / name, clone / name)
    done = subprocess.run([sys.executable, "-m", "course_lib", "setup", "--quiet"], cwd=clone,
                          capture_output=True, text=True, timeout=2300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    python = course_setup.venv_python(clone / ".venv")
    check = subprocess.run([str(python), "-c", "import mpi4py, numba, pyopencl, nbgrader, "
                            "course_lib, graders, hypothesis; print(course_lib.__file__)"],
                           capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert check.returncode == 0, check.stderr
    assert Path(check.stdout.strip()).is_relative_to(clone), "the course is not installed editable"
    again = subprocess.run([sys.executable, "-m", "course_lib", "setup"], cwd=clone,
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "already installed" in again.stdout, again.stdout
