"""Generate the student edition (``notebooks/``) from ``graders/source/``.

nbgrader's ``generate_assignment`` strips solutions, hidden tests and outputs
into a scratch folder; only when every chapter succeeded is ``notebooks/``
swapped for the new tree, so a failure leaves the old edition as it was.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from . import nbio
from .nbgrader_cli import last_error, run_nbgrader
from .notebooks import (
    COURSE_DIR,
    SOURCE_DIR,
    STUDENT_DIR,
    UsageError,
    read_notebook,
    source_notebooks,
    validate_source_notebook,
)

__all__ = ["build_student_edition", "release", "stale_files"]

# Files in the student edition that release does not generate.
KEPT_FILES = {"README.md"}


def _validate_sources(source_dir: Path) -> list[str]:
    chapters = (
        sorted(p.name for p in source_dir.iterdir() if p.is_dir()) if source_dir.is_dir() else []
    )
    if not chapters:
        raise UsageError(f"{source_dir}: no chapter folders to release")
    for chapter in chapters:
        seen: dict[str, str] = {}
        for _, path in ((c, p) for c, p in source_notebooks(source_dir) if c == chapter):
            validate_source_notebook(path, read_notebook(path), seen)
    return chapters


def build_student_edition(
    target: Path, source_dir: Path = SOURCE_DIR, config: Path | None = None
) -> list[str]:
    """Write the student edition of every chapter into ``target`` (which must not exist)."""
    chapters = _validate_sources(source_dir)
    config = config or COURSE_DIR / "nbgrader_config.py"
    with tempfile.TemporaryDirectory(prefix="course-release-") as scratch:
        root = Path(scratch)
        # Hidden files and folders (.hypothesis/ from running a chapter, editors' files) are not
        # course material: they never reach the student edition.
        shutil.copytree(source_dir, root / "source",
                        ignore=shutil.ignore_patterns(".*", "__pycache__"))
        shutil.copy(config, root / "nbgrader_config.py")
        for chapter in chapters:
            code, output = run_nbgrader(
                root, ["generate_assignment", chapter, "--force", "--no-db"], timeout=600
            )
            if code != 0:
                raise UsageError(f"nbgrader could not release {chapter}: {last_error(output)}")
        shutil.copytree(root / "release", target)
    for path in target.rglob("*.ipynb"):
        _normalise(path)
    return chapters


def _normalise(path: Path) -> None:
    """Stable bytes for the same content, so `release --check` compares fairly."""
    nb = nbio.read(path)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    nbio.write(nb, path)


def _tree(root: Path) -> dict[str, bytes]:
    if not root.is_dir():
        return {}
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
        and p.name not in KEPT_FILES
    }


def _same(a: bytes, b: bytes, name: str) -> bool:
    if a == b:
        return True
    if name.endswith(".ipynb"):
        try:
            return bool(json.loads(a) == json.loads(b))
        except json.JSONDecodeError:
            return False
    return False


def stale_files(student_dir: Path = STUDENT_DIR, source_dir: Path = SOURCE_DIR) -> list[str]:
    """Files of the student edition that differ from a fresh release (empty when up to date)."""
    with tempfile.TemporaryDirectory(prefix="course-release-check-") as scratch:
        fresh = Path(scratch) / "notebooks"
        build_student_edition(fresh, source_dir)
        new, old = _tree(fresh), _tree(student_dir)
    names = sorted(set(new) | set(old))
    return [n for n in names if n not in new or n not in old or not _same(new[n], old[n], n)]


def release(student_dir: Path = STUDENT_DIR, source_dir: Path = SOURCE_DIR) -> list[str]:
    """Regenerate ``student_dir`` atomically; return the chapters released."""
    parent = student_dir.parent
    staging = Path(tempfile.mkdtemp(prefix=".notebooks-new-", dir=parent))
    backup = parent / f".notebooks-old-{os.getpid()}"
    try:
        fresh = staging / "notebooks"
        chapters = build_student_edition(fresh, source_dir)
        for kept in KEPT_FILES:
            if (student_dir / kept).is_file():
                shutil.copy2(student_dir / kept, fresh / kept)
        if student_dir.exists():
            student_dir.rename(backup)
        try:
            fresh.rename(student_dir)
        except OSError:
            if backup.exists():
                backup.rename(student_dir)
            raise
        shutil.rmtree(backup, ignore_errors=True)
        return chapters
    finally:
        shutil.rmtree(staging, ignore_errors=True)
