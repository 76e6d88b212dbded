"""Run an nbgrader command in its own process session, bounded in time."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from course_lib.proc import kill_tree

__all__ = ["run_nbgrader", "TIMED_OUT"]

TIMED_OUT = 124


def _environment() -> dict[str, str]:
    env = dict(os.environ, PYTHONWARNINGS="ignore", PYDEVD_DISABLE_FILE_VALIDATION="1")
    # nbgrader calls `alembic` by name: the environment's own scripts come first.
    scripts = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([scripts, env.get("PATH", "")])
    return env


def run_nbgrader(
    root: Path, args: list[str], *, timeout: float, memory_mb: int | None = None
) -> tuple[int, str]:
    """Run ``nbgrader ARGS`` for the course at ``root``; return (exit code, output).

    The command gets a process session of its own, and the whole group is
    killed when it returns or runs past ``timeout`` (exit code TIMED_OUT).
    """

    def limits() -> None:  # pragma: no cover - runs in the child
        if memory_mb:
            import resource

            limit = memory_mb * 1024 * 1024
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    with tempfile.TemporaryFile(mode="w+") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "nbgrader", *args, f"--CourseDirectory.root={root}"],
            cwd=root, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=_environment(), start_new_session=True,
            preexec_fn=limits if (os.name == "posix" and memory_mb) else None,
        )
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            code = TIMED_OUT
        finally:
            # The whole tree, group included where there are groups (course_lib.proc works
            # without os.killpg too, e.g. on Windows).
            kill_tree(proc, timeout=30)
            proc.wait()
        log.seek(0)
        return code, log.read()


def last_error(output: str) -> str:
    """The most telling line of nbgrader's log."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if line.endswith("Error") or "Error:" in line]
    if not errors:
        errors = [line for line in lines if "ERROR" in line and "see the the above" not in line]
    return (errors or lines or ["unknown error"])[-1]
