"""Running a program under ``mpiexec``: the command, the job, its timeout and its clean-up.

:func:`run_mpi` writes nothing into the learner's folder: every run gets a
temporary folder (under ``$COURSE_MPI_TMPDIR`` if set) where each rank writes its
output, exit code and trace, and which is removed afterwards. A job that passes
its timeout, or that the notebook's stop button interrupts, is stopped whole with
:func:`course_lib.proc.kill_tree`, and the MPICH shared-memory segments that the
killed ranks could not remove (``/dev/shm/mpich_shm_*``) are unlinked.
"""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import psutil

from course_lib.mpi.rank import BOOT_CODE
from course_lib.mpi.results import MPIRun, MPIUnavailableError, RankResult
from course_lib.mpi.settings import (
    DEFAULT_TIMEOUT,
    INSTALL_HINT,
    KILL_WAIT,
    MPI_TMPDIR_ENV,
    MPIEXEC_ENV,
    RUN_DIR_ENV,
)
from course_lib.mpi.trace import MPITrace, read_text
from course_lib.proc import family, kill_tree

__all__ = ["mpi_available", "mpiexec_command", "run_mpi"]


def mpiexec_command(mpiexec: str | Sequence[str] | None = None) -> list[str]:
    """The launcher command as a list: ``mpiexec`` if given, else ``$COURSE_MPIEXEC``, else found.

    A string is split like a shell would (``"mpiexec -f hosts"``). Found means
    the ``mpiexec`` next to ``sys.executable`` first (the kernel's PATH may not
    include the virtual environment), then the one on PATH. Raises
    :class:`MPIUnavailableError` when there is none.
    """
    source = "the mpiexec argument"
    if mpiexec is None:
        raw = os.environ.get(MPIEXEC_ENV, "").strip()
        if raw:
            mpiexec, source = raw, f"${MPIEXEC_ENV}"
    if mpiexec is None:
        from course_lib.machine.mpiexec import find_mpiexec

        found = find_mpiexec()
        if found is None:
            raise MPIUnavailableError(
                "no mpiexec found (not next to Python, not on PATH): " + INSTALL_HINT
                + f", or set {MPIEXEC_ENV} to your MPI launcher"
            )
        return [found]
    import shlex

    command = shlex.split(mpiexec) if isinstance(mpiexec, str) else [str(p) for p in mpiexec]
    if not command:
        raise MPIUnavailableError(f"{source} is empty: give a launcher such as 'mpiexec'")
    program = command[0]
    if shutil.which(program) is None and not (Path(program).is_file()
                                              and os.access(program, os.X_OK)):
        raise MPIUnavailableError(
            f"{source} names {program!r}, which is not an executable on this machine; "
            f"fix it, or unset {MPIEXEC_ENV} to use the mpiexec installed with the course"
        )
    return command


def mpi_available() -> bool:
    """True when mpi4py is installed and an mpiexec is found (does not start MPI)."""
    import importlib.util

    if importlib.util.find_spec("mpi4py") is None:
        return False
    try:
        mpiexec_command()
    except MPIUnavailableError:
        return False
    return True


def check_n(n: object) -> int:
    """``n`` if it is a whole number of ranks (at least 1); else a TypeError or ValueError."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"n (the number of ranks) must be a whole number, got {n!r}")
    if n < 1:
        raise ValueError(f"n (the number of ranks) must be at least 1, got {n}")
    return n


def check_timeout(timeout: object) -> float:
    """``timeout`` in seconds if it is a positive number; else a ValueError that says why."""
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}: "
                         "every MPI run needs one, so a deadlock cannot hang the notebook")
    return float(timeout)


def _is_path(program: str | os.PathLike[str]) -> bool:
    if isinstance(program, os.PathLike):
        return True
    text = program.strip()
    return "\n" not in text and text.endswith(".py")


def run_mpi(
    program: str | os.PathLike[str],
    n: int = 4,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    args: Sequence[object] = (),
    env: Mapping[str, str] | None = None,
    mpiexec: str | Sequence[str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    check: bool = True,
    clock: Callable[[], float] = time.perf_counter,
) -> MPIRun:
    """Run ``program`` under ``mpiexec -n n`` and return every rank's output.

    ``program`` is a path to a ``.py`` file, or the program's source text.
    ``args`` become the program's ``sys.argv[1:]``; ``env`` adds environment
    variables. After ``timeout`` seconds every process of the job is killed.
    With ``check`` (the default) a failed or stopped run raises
    :class:`MPIRunError` / :class:`MPITimeoutError` naming the rank and showing
    its output; with ``check=False`` the :class:`MPIRun` is returned either way.
    """
    n = check_n(n)
    seconds = check_timeout(timeout)
    base = Path(cwd) if cwd is not None else Path.cwd()
    if not isinstance(program, str | os.PathLike):
        raise TypeError(f"program must be a path or the program's source text, got "
                        f"{type(program).__name__}")
    if _is_path(program):
        path = Path(program)
        if not path.is_absolute():
            path = base / path
        if not path.is_file():
            raise FileNotFoundError(
                f"no MPI program at {str(program)!r} (looked for {path}): write it first, "
                f"e.g. with %%writefile, or pass the program's source text instead of a path"
            )
        return execute(path.name, n, seconds, args, env, mpiexec, base, check, clock,
                        script=path)
    return execute("the MPI program", n, seconds, args, env, mpiexec, base, check, clock,
                    source=str(program))


def execute(
    label: str,
    n: int,
    timeout: float,
    args: Sequence[object],
    env: Mapping[str, str] | None,
    mpiexec: str | Sequence[str] | None,
    cwd: Path,
    check: bool,
    clock: Callable[[], float],
    *,
    script: Path | None = None,
    source: str | None = None,
    files: Mapping[str, bytes] | None = None,
    script_name: str = "program.py",
) -> MPIRun:
    """Run ``script`` (or ``source``, written to ``script_name``) on ``n`` ranks in a run folder.

    ``files`` are written next to it (``call.pkl`` for :func:`run_function`).
    The folder is removed afterwards; ``check`` raises for a failed run.
    """
    launcher = mpiexec_command(mpiexec)
    if not cwd.is_dir():
        raise FileNotFoundError(f"cwd {str(cwd)!r} is not a folder")
    parent = os.environ.get(MPI_TMPDIR_ENV) or None
    run_dir = Path(tempfile.mkdtemp(prefix="course-mpi-", dir=parent))
    try:
        if script is None:
            script = run_dir / script_name
            script.write_text(source or "", encoding="utf-8")
        for name, data in (files or {}).items():
            (run_dir / name).write_bytes(data)
        child_tmp = run_dir / "tmp"
        child_tmp.mkdir()
        child_env = dict(os.environ)
        child_env.update(env or {})
        child_env[RUN_DIR_ENV] = str(run_dir)
        for variable in ("TMPDIR", "TMP", "TEMP"):  # mpiexec's own files land in run_dir too
            child_env[variable] = str(child_tmp)
        if "HWLOC_XMLFILE" not in child_env and bundled_hydra(launcher):
            # MPICH's mpiexec (hydra) writes the machine's topology to /tmp/hydra_hwloc_xmlfile_*
            # whatever TMPDIR says, and leaves it there when a job is killed or aborted. With
            # this variable set it writes no file; the ranks then ask hwloc as usual.
            child_env["HWLOC_XMLFILE"] = str(run_dir / "no-topology-file.xml")
        package_parent = str(Path(__file__).resolve().parent.parent.parent)
        old_path = child_env.get("PYTHONPATH", "")
        child_env["PYTHONPATH"] = package_parent + (os.pathsep + old_path if old_path else "")
        command = [*launcher, "-n", str(n), sys.executable, "-c", BOOT_CODE, str(script),
                   *(str(a) for a in args)]
        returncode, elapsed, stopped = _launch(command, child_env, cwd, run_dir, timeout, clock)
        run = _collect(run_dir, label, n, command, returncode, stopped is not None, elapsed,
                       timeout)
        run.trace.stopped = stopped
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    if check:
        run.check()
    return run


def bundled_hydra(launcher: list[str]) -> bool:
    """True for the mpiexec of the mpich wheel next to this Python (not a cluster's launcher)."""
    program = Path(launcher[0])
    return (len(launcher) == 1 and program.parent == Path(sys.executable).parent
            and (program.parent / "mpichversion").exists())


def _mpich_segments() -> set[str]:
    shm = Path("/dev/shm")
    return {str(p) for p in shm.glob("mpich_shm_*")} if sys.platform.startswith("linux") else set()


def _remove_orphaned_segments(before: set[str]) -> None:
    """Unlink MPICH segments that appeared during the job and that no process maps any more.

    A rank that dies before MPI_Finalize (killed, or aborted by an error) leaves its
    segment in /dev/shm; one still mapped belongs to a job that is running.
    """
    new = _mpich_segments() - before
    if not new:
        return
    for segment in new - _shm_segments(psutil.process_iter()):
        try:
            os.unlink(segment)
        except OSError:
            pass


def _launch(command: list[str], env: dict[str, str], cwd: Path, run_dir: Path, timeout: float,
            clock: Callable[[], float]) -> tuple[int | None, float, float | None]:
    """Run the job; return (mpiexec's exit code, seconds, when it was stopped or None)."""
    before = _mpich_segments()
    try:
        return _launch_job(command, env, cwd, run_dir, timeout, clock)
    finally:
        _remove_orphaned_segments(before)


def _launch_job(command: list[str], env: dict[str, str], cwd: Path, run_dir: Path, timeout: float,
                clock: Callable[[], float]) -> tuple[int | None, float, float | None]:
    kwargs: dict[str, Any] = {}
    if os.name == "posix":
        kwargs["start_new_session"] = True
    else:  # pragma: no cover - Windows
        kwargs["creationflags"] = getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)
    with open(run_dir / "mpiexec.out", "wb") as out, open(run_dir / "mpiexec.err", "wb") as err:
        began = clock()
        try:
            proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                    env=env, cwd=str(cwd), **kwargs)
        except OSError as exc:
            raise MPIUnavailableError(
                f"could not start {command[0]!r}: {exc}. " + INSTALL_HINT
                + f", or set {MPIEXEC_ENV} to a working launcher"
            ) from None
        try:
            try:
                returncode: int | None = proc.wait(timeout=timeout)
                return returncode, clock() - began, None
            except subprocess.TimeoutExpired:
                stopped = time.perf_counter()  # on the clock that TracedComm uses
                stop_job(proc)
                return proc.returncode, clock() - began, stopped
        except BaseException:  # KeyboardInterrupt (the stop button): leave nothing running
            stop_job(proc)
            raise


def _shm_segments(processes: Iterable[Any]) -> set[str]:
    """Files under /dev/shm that the given processes have mapped (MPICH's segments)."""
    found: set[str] = set()
    for process in processes:
        try:
            for mapping in process.memory_maps(grouped=True):
                path = str(mapping.path).removesuffix(" (deleted)")
                if path.startswith("/dev/shm/"):
                    found.add(path)
        except Exception:  # noqa: BLE001 - gone already, or not ours to inspect
            continue
    return found


def stop_job(proc: subprocess.Popen[bytes]) -> None:
    """Kill mpiexec and every process under it (launchers put ranks in sessions of their own)."""
    members = family(proc)
    segments = _shm_segments(members) if sys.platform.startswith("linux") else set()
    # kill_tree follows parent links (a rank in a session of its own is still found),
    # kills the group where there are groups, and sweeps again for late children.
    kill_tree(proc, timeout=KILL_WAIT)
    for segment in segments:  # killed ranks cannot remove their shared memory themselves
        try:
            os.unlink(segment)
        except OSError:
            pass


def _collect(run_dir: Path, label: str, n: int, command: list[str], returncode: int | None,
             timed_out: bool, elapsed: float, timeout: float) -> MPIRun:
    ranks = []
    for rank in range(n):
        exit_text = read_text(run_dir / f"rank-{rank}.exit").strip()
        exit_code = int(exit_text) if exit_text.lstrip("-").isdigit() else None
        result: Any = None
        result_error: str | None = None
        result_file = run_dir / f"result-{rank}.pkl"
        if result_file.is_file():
            try:
                result = pickle.loads(result_file.read_bytes())
            except Exception as exc:  # noqa: BLE001 - reported, not raised
                result_error = (f"its return value could not be read back in the notebook "
                                f"({type(exc).__name__}: {exc}); return numbers, strings, "
                                "lists, tuples, dicts or NumPy arrays")
        ranks.append(RankResult(rank, read_text(run_dir / f"rank-{rank}.out"),
                                read_text(run_dir / f"rank-{rank}.err"), exit_code, result,
                                result_error))
    return MPIRun(label, n, tuple(command), returncode, timed_out, elapsed, timeout, tuple(ranks),
                  read_text(run_dir / "mpiexec.out"), read_text(run_dir / "mpiexec.err"),
                  MPITrace.load(run_dir))
