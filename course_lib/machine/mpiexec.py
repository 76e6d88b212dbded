"""Find the MPI launcher of this environment (``mpiexec``), with the standard library only."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

__all__: list[str] = []  # find_mpiexec is for course_lib.mpi, not for notebooks


def mpiexec_folders(executable: str | None = None, prefix: str | None = None) -> list[Path]:
    """Where an environment's own MPI launcher may be: next to Python (the mpich wheel,
    ``Scripts`` on Windows), and ``Library\\bin`` (Intel MPI's impi-rt wheel on Windows)."""
    here = Path(executable or sys.executable).parent
    root = Path(prefix or sys.prefix)
    folders = [here, root / "Scripts", root / "bin", root / "Library" / "bin"]
    unique: list[Path] = []
    for folder in folders:
        if folder not in unique:
            unique.append(folder)
    return unique


def find_mpiexec(executable: str | None = None, prefix: str | None = None) -> str | None:
    """``mpiexec`` of this environment (see :func:`mpiexec_folders`), else on PATH."""
    for folder in mpiexec_folders(executable, prefix):
        for name in ("mpiexec", "mpiexec.exe", "mpirun"):
            candidate = folder / name
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return str(candidate)
    return shutil.which("mpiexec") or shutil.which("mpirun")


