"""Run MPI programs from a notebook: per-rank output, timeouts, traces, ipyparallel engines.

:func:`run_mpi` starts a program (a file, or source text) under ``mpiexec -n N``
and returns an :class:`MPIRun` with each rank's stdout, stderr and exit code.
Every rank writes to files of its own in a temporary folder that the call owns
and removes, so lines from different ranks are never torn into each other. A
run that passes its ``timeout`` is stopped: every process of the job (mpiexec,
its proxies, every rank) is killed and any shared-memory segment they held is
removed. A rank that fails makes the whole job stop (``MPI_Abort``) and the
error names that rank and shows its output.

:func:`run_function` runs a function ``fn(comm, *args)`` on every rank and
hands back what each rank returned. :class:`TracedComm` wraps a communicator
and records each message and collective call, which :func:`run_mpi` collects
as an :class:`MPITrace` (``run.trace``) for :func:`course_lib.mpi.pictures.message_diagram`.
:class:`MPIEngines` starts ipyparallel engines under ``mpiexec`` for ``%%px``.

Importing this module never imports ``mpi4py.MPI`` (that would initialise MPI
in the notebook's kernel); only the ranks do.

Configuration, so that the same programs run on a cluster without edits:

- ``COURSE_MPIEXEC``: the launcher and its options, e.g. ``mpiexec -f hosts``,
  ``srun`` or ``mpiexec --oversubscribe`` (Open MPI). Default: the ``mpiexec``
  next to this Python (the mpich wheel puts it there), else the one on PATH.
- ``COURSE_MPI_TMPDIR``: where run folders are made; on a cluster, a folder
  every node can see (the ranks write their output there).

Submodules, each with one job (this package only re-exports, lazily, so that a
rank importing :mod:`course_lib.mpi.rank` loads neither the launcher nor psutil):

- :mod:`~course_lib.mpi.settings`    environment variable names and defaults
- :mod:`~course_lib.mpi.launch`      mpiexec's command, running a job, timeouts, clean-up
- :mod:`~course_lib.mpi.functions`   :func:`run_function`
- :mod:`~course_lib.mpi.results`     :class:`MPIRun`, :class:`RankResult` and the errors
- :mod:`~course_lib.mpi.rank`        what every rank runs around the program (light)
- :mod:`~course_lib.mpi.tracedcomm`  :func:`TracedComm`, which records the calls (light)
- :mod:`~course_lib.mpi.events`      :class:`TraceEvent`, :class:`Message`, message matching
- :mod:`~course_lib.mpi.trace`       :class:`MPITrace`, a whole run's trace
- :mod:`~course_lib.mpi.pictures`    ``message_diagram`` and ``collective_diagram``
- :mod:`~course_lib.mpi.engines`     :class:`MPIEngines` (ipyparallel)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = [
    "MPIEXEC_ENV",
    "MPI_TMPDIR_ENV",
    "MPIEngines",
    "MPIError",
    "MPIRun",
    "MPIRunError",
    "MPITimeoutError",
    "MPITrace",
    "MPIUnavailableError",
    "Message",
    "RankResult",
    "TraceEvent",
    "TracedComm",
    "mpi_available",
    "mpiexec_command",
    "run_function",
    "run_mpi",
]

_EXPORTS = {
    "MPIEXEC_ENV": "settings",
    "MPI_TMPDIR_ENV": "settings",
    "MPIEngines": "engines",
    "MPIError": "results",
    "MPIRun": "results",
    "MPIRunError": "results",
    "MPITimeoutError": "results",
    "MPITrace": "trace",
    "MPIUnavailableError": "results",
    "Message": "events",
    "RankResult": "results",
    "TraceEvent": "events",
    "TracedComm": "tracedcomm",
    "mpi_available": "launch",
    "mpiexec_command": "launch",
    "run_function": "functions",
    "run_mpi": "launch",
}

if TYPE_CHECKING:
    from course_lib.mpi.engines import MPIEngines
    from course_lib.mpi.events import Message, TraceEvent
    from course_lib.mpi.functions import run_function
    from course_lib.mpi.launch import mpi_available, mpiexec_command, run_mpi
    from course_lib.mpi.results import (
        MPIError,
        MPIRun,
        MPIRunError,
        MPITimeoutError,
        MPIUnavailableError,
        RankResult,
    )
    from course_lib.mpi.settings import MPI_TMPDIR_ENV, MPIEXEC_ENV
    from course_lib.mpi.trace import MPITrace
    from course_lib.mpi.tracedcomm import TracedComm


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'course_lib.mpi' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"course_lib.mpi.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
