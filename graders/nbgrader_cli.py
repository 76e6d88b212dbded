"""Run an nbgrader command in its own process session, bounded in time."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from course_lib.proc import run_bounded

__all__ = ["TIMED_OUT", "last_error", "run_nbgrader"]

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

    The command gets a process session of its own, and what is left of it is
    stopped when it returns or runs past ``timeout`` (exit code TIMED_OUT):
    :func:`course_lib.proc.run_bounded`.
    """
    result = run_bounded(
        [sys.executable, "-m", "nbgrader", *args, f"--CourseDirectory.root={root}"],
        timeout, env=_environment(), cwd=root, merge_stderr=True, memory_mb=memory_mb)
    code = TIMED_OUT if result.timed_out or result.returncode is None else result.returncode
    return code, result.stdout


def last_error(output: str) -> str:
    """The most telling line of nbgrader's log."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if line.endswith("Error") or "Error:" in line]
    if not errors:
        errors = [line for line in lines if "ERROR" in line and "see the the above" not in line]
    return (errors or lines or ["unknown error"])[-1]
