"""Rows of the report about MPI: mpi4py, the MPI library it loads, and a real ``mpiexec -n 4``.

Importing ``mpi4py.MPI`` would initialise MPI in the calling process (a notebook
kernel), so every probe runs in a child process, stopped after a timeout.
"""

from __future__ import annotations

import re
import sys
from typing import Any

from ..proc import RunResult, run_bounded
from .mpiexec import find_mpiexec
from .report import MachineRow, dist_version, last_line

__all__: list[str] = []

MPIEXEC_TIMEOUT = 30.0
_CHILD_TIMEOUT = 20.0

_INSTALL_MPI = "pip install -e '.[mpi]' (make lab installs it)"


def _run(cmd: list[str], timeout: float) -> tuple[RunResult | None, str | None]:
    """``run_bounded(cmd, timeout)``, or ``(None, why)`` when it could not start."""
    try:
        return run_bounded(cmd, timeout), None
    except OSError as exc:
        return None, f"{type(exc).__name__}: {exc}"


_MPI_LIBRARY_CODE = (
    "import mpi4py\n"
    "mpi4py.rc.initialize = False\n"
    "from mpi4py import MPI\n"
    "print(MPI.Get_library_version().strip().splitlines()[0])\n"
)

_MPI_RANKS_CODE = (
    "from mpi4py import MPI\n"
    "comm = MPI.COMM_WORLD\n"
    "ranks = comm.gather(comm.Get_rank(), root=0)\n"
    "if comm.Get_rank() == 0:\n"
    "    print('ranks=' + ','.join(map(str, sorted(ranks))), flush=True)\n"
)


def mpi_rows(facts: dict[str, Any], n: int = 4) -> list[MachineRow]:
    """mpi4py's version, the MPI library it loads, and whether ``mpiexec -n n`` works."""
    rows: list[MachineRow] = []
    mpi: dict[str, Any] = {}
    facts["mpi"] = mpi
    version = dist_version("mpi4py")
    mpi["mpi4py"] = version
    if version is None:
        rows.append(MachineRow("mpi4py", "not installed", _INSTALL_MPI))
    else:
        rows.append(MachineRow("mpi4py", version))
        # In a child: importing mpi4py.MPI here would initialise MPI in this kernel.
        result, error = _run([sys.executable, "-c", _MPI_LIBRARY_CODE], _CHILD_TIMEOUT)
        if result is not None and result.returncode == 0 and result.stdout.strip():
            library = result.stdout.strip().splitlines()[0]
            library = re.sub(r"\s+", " ", library)
            mpi["library"] = library
            rows.append(MachineRow("MPI library", library))
        else:
            if result is None:
                why = error
            else:
                why = "timed out" if result.timed_out else last_line(result.stderr)
            mpi["library"] = None
            rows.append(
                MachineRow(
                    "MPI library",
                    f"not found: {why or 'mpi4py could not load an MPI library'}",
                    "pip install -e '.[mpi]' installs MPICH next to mpi4py",
                )
            )

    mpiexec = find_mpiexec()
    mpi["mpiexec"] = mpiexec
    mpi["mpiexec_works"] = False
    if mpiexec is None:
        rows.append(
            MachineRow(
                "mpiexec",
                "not found (not next to Python, not on PATH)",
                "pip install -e '.[mpi]' puts MPICH's mpiexec in the environment's bin folder",
            )
        )
        return rows
    if version is None:
        rows.append(MachineRow("mpiexec", f"{mpiexec} (not tried: no mpi4py)", _INSTALL_MPI))
        return rows

    command = [mpiexec, "-n", str(n), sys.executable, "-c", _MPI_RANKS_CODE]
    result, error = _run(command, MPIEXEC_TIMEOUT)
    expected = "ranks=" + ",".join(str(i) for i in range(n))
    if result is None:
        rows.append(MachineRow(f"mpiexec -n {n}", f"could not start: {error}", ""))
    elif result.timed_out:
        rows.append(
            MachineRow(
                f"mpiexec -n {n}",
                f"hung for {MPIEXEC_TIMEOUT:.0f} s and was stopped",
                "check that mpi4py and mpiexec come from the same MPI (pip install -e '.[mpi]')",
            )
        )
    elif result.returncode == 0 and expected in result.stdout:
        mpi["mpiexec_works"] = True
        rows.append(MachineRow(f"mpiexec -n {n}", f"works ({n} ranks) with {mpiexec}"))
    else:
        why = last_line(result.stderr) or last_line(result.stdout) or "no output"
        rows.append(
            MachineRow(
                f"mpiexec -n {n}",
                f"failed (exit {result.returncode}): {why}",
                "check that mpi4py and mpiexec come from the same MPI (pip install -e '.[mpi]')",
            )
        )
    return rows


