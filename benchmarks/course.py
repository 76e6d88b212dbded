"""How long the course's chapters take to execute with their solutions."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from graders.notebooks import SOURCE_DIR

from . import Result, Skip, figure

CHAPTERS = ("ch00_introduction", "ch01_threads")


def execute_notebook(path: Path, timeout: int = 120) -> None:
    """Execute a source notebook (solutions included) in a fresh kernel; raise on any error."""
    from nbclient import NotebookClient

    from graders import nbio

    nb = nbio.read(path)
    NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    ).execute(stderr=subprocess.DEVNULL)


@figure("course_exec_seconds", "<= 60", "executing chapters 0 and 1 with their solutions")
def course_exec_seconds() -> Result:
    notebooks = [p for chapter in CHAPTERS for p in sorted((SOURCE_DIR / chapter).glob("*.ipynb"))]
    if not notebooks:
        raise Skip(f"no notebooks for {', '.join(CHAPTERS)} in {SOURCE_DIR}")
    start = time.perf_counter()
    for path in notebooks:
        execute_notebook(path)
    elapsed = time.perf_counter() - start
    return Result(elapsed, "s", f"{len(notebooks)} notebooks, kernel start-up included")
