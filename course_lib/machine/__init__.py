"""What this machine offers the course: cores, start method, GIL, MPI, GPU, broker.

Everything here is a probe: it is quick, it never raises (a failing probe
becomes a row saying what failed), and anything that starts a process has a
timeout. Probes that could change the state of the calling process (MPI
initialisation, a CUDA context) run in a short-lived child process instead.

The package by job:

- :mod:`~course_lib.machine.cores`: usable cores (affinity, cgroup quota),
  start method, GIL; standard library only, for the chapter packages;
- :mod:`~course_lib.machine.mpiexec`: :func:`find_mpiexec`;
- :mod:`~course_lib.machine.report`: :class:`MachineRow`, :class:`MachineReport`;
- ``rows_base``, ``rows_mpi``, ``rows_gpu``, ``rows_broker``: the probes;
- :mod:`~course_lib.machine.show`: :func:`show_machine` and ``NEEDS``.
"""

from __future__ import annotations

from .cores import (
    START_METHOD_ENV,
    START_METHODS,
    free_threaded_build,
    gil_enabled,
    mp_context,
    start_method,
    usable_cores,
)
from .mpiexec import find_mpiexec as find_mpiexec
from .report import MachineReport, MachineRow
from .rows_mpi import MPIEXEC_TIMEOUT as MPIEXEC_TIMEOUT
from .show import NEEDS, show_machine

__all__ = [
    "NEEDS",
    "START_METHODS",
    "START_METHOD_ENV",
    "MachineReport",
    "MachineRow",
    "free_threaded_build",
    "gil_enabled",
    "mp_context",
    "show_machine",
    "start_method",
    "usable_cores",
]
