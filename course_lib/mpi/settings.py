"""Names and defaults that the launcher, the ranks and the engines share.

No imports: every rank imports this module before it runs the program.
"""

from __future__ import annotations

__all__ = ["MPIEXEC_ENV", "MPI_TMPDIR_ENV"]

MPIEXEC_ENV = "COURSE_MPIEXEC"
MPI_TMPDIR_ENV = "COURSE_MPI_TMPDIR"
RUN_DIR_ENV = "COURSE_MPI_RUN_DIR"
"""Where a rank finds its run folder (output files, trace files, the call's arguments)."""
DEFAULT_TIMEOUT = 30.0
KILL_WAIT = 5.0
"""Seconds to wait for killed processes (and ipyparallel's loop thread) to be gone."""
INSTALL_HINT = "pip install -e '.[mpi]' (make lab installs it)"
