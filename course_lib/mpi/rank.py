"""What every rank runs before and after the learner's program.

:func:`course_lib.mpi.run_mpi` starts each rank as ``python -c BOOT_CODE
script args...``: :func:`boot` sends the rank's stdout and stderr to files of
its own in the run's folder, runs the script, writes the exit code, and aborts
the whole job when the script failed (so no other rank waits forever).
:func:`call_entry` is the last line of a :func:`course_lib.mpi.run_function`
program. Every rank imports this module, so it stays light: standard library,
the settings and the tracing communicator only (``mpi4py.MPI`` when needed).
"""

from __future__ import annotations

import importlib
import os
import pickle
import runpy
import sys
import traceback
from pathlib import Path
from typing import Any

from course_lib.mpi.settings import RUN_DIR_ENV
from course_lib.mpi.tracedcomm import TracedComm

__all__: list[str] = []

BOOT_CODE = "import course_lib.mpi.rank as _m; _m.boot()"
"""The ``python -c`` code that starts a rank (the script and its arguments follow)."""
ENTRY_CALL = "_course_mpi.call_entry"
"""How a :func:`course_lib.mpi.run_function` program calls :func:`call_entry`."""

# Environment variables in which launchers tell a process its rank, before MPI starts.
_RANK_VARIABLES = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK", "MV2_COMM_WORLD_RANK",
                   "SLURM_PROCID")


def call_entry(name: str, namespace: dict[str, Any], trace: bool = False) -> None:
    """In a rank: call ``namespace[name](comm, *args)`` and store what it returned."""
    run_dir = Path(os.environ[RUN_DIR_ENV])
    args, kwargs = pickle.loads((run_dir / "call.pkl").read_bytes())
    mpi: Any = importlib.import_module("mpi4py.MPI")
    world = mpi.COMM_WORLD
    comm = TracedComm(world) if trace else world
    try:
        value = namespace[name](comm, *args, **kwargs)
    finally:
        if trace:
            comm.close_trace()
    try:
        data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:  # noqa: BLE001 - turned into a clear message
        raise TypeError(f"{name}() returned a {type(value).__name__}, which cannot be sent back "
                        f"to the notebook ({exc}); return numbers, strings, lists, tuples, dicts "
                        "or NumPy arrays") from None
    (run_dir / f"result-{world.Get_rank()}.pkl").write_bytes(data)



def rank_from_environment() -> int | None:
    """This process's rank as the launcher announced it, before MPI starts; else None."""
    for variable in _RANK_VARIABLES:
        value = os.environ.get(variable, "")
        if value.isdigit():
            return int(value)
    return None


def _exit_code(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def _print_user_traceback(exc: BaseException) -> None:
    """The traceback without this module's and runpy's frames: only the learner's code."""
    skip = {os.path.abspath(__file__), os.path.abspath(TracedComm.__code__.co_filename),
            os.path.abspath(runpy.__file__ or "")}

    def internal(filename: str) -> bool:
        return filename.startswith("<frozen") or os.path.abspath(filename) in skip

    report = traceback.TracebackException(type(exc), exc, exc.__traceback__)
    own = [frame for frame in report.stack if not internal(frame.filename)
           and ENTRY_CALL not in (frame.line or "")]
    if own:
        report.stack = traceback.StackSummary.from_list(own)
    print("".join(report.format()), end="", file=sys.stderr)


def _unlink_own_shm_segments() -> None:
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            paths = {line.split(None, 5)[-1].strip().removesuffix(" (deleted)")
                     for line in maps if "/dev/shm/" in line}
    except OSError:
        return
    for path in paths:
        if path.startswith("/dev/shm/"):
            try:
                os.unlink(path)
            except OSError:
                pass


def boot() -> None:
    """Run in each rank by :func:`run_mpi`: own output files, run the script, record the exit."""
    run_dir = Path(os.environ[RUN_DIR_ENV])
    script, args = sys.argv[1], sys.argv[2:]
    rank = rank_from_environment()
    if rank is None:  # an unknown launcher: ask MPI itself
        rank = int(importlib.import_module("mpi4py.MPI").COMM_WORLD.Get_rank())
    for fd, suffix in ((1, "out"), (2, "err")):
        target = os.open(run_dir / f"rank-{rank}.{suffix}",
                         os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(target, fd)
        os.close(target)
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(line_buffering=True)  # whole lines reach the file, even if killed later
    sys.argv = [script, *args]
    sys.path[0] = os.path.dirname(os.path.abspath(script))
    code = 0
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as exc:
        code = _exit_code(exc.code)
    except BaseException as exc:  # noqa: BLE001 - reported on this rank's stderr
        _print_user_traceback(exc)
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    (run_dir / f"rank-{rank}.exit").write_text(str(code))
    if code:
        mpi = sys.modules.get("mpi4py.MPI")
        if mpi is not None and mpi.Is_initialized() and not mpi.Is_finalized():
            # Like `python -m mpi4py`: abort the whole job, so no other rank waits forever.
            # MPI_Abort leaves MPICH's shared-memory segments behind: remove their names
            # first (the mappings stay valid until every rank has gone).
            _unlink_own_shm_segments()
            from mpi4py.run import set_abort_status

            set_abort_status(code)
    sys.exit(code)
