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
as an :class:`MPITrace` (``run.trace``) for :func:`course_lib.viz.message_diagram`.
:class:`MPIEngines` starts ipyparallel engines under ``mpiexec`` for ``%%px``.

Importing this module never imports ``mpi4py.MPI`` (that would initialise MPI
in the notebook's kernel); only the ranks do.

Configuration, so that the same programs run on a cluster without edits:

- ``COURSE_MPIEXEC``: the launcher and its options, e.g. ``mpiexec -f hosts``,
  ``srun`` or ``mpiexec --oversubscribe`` (Open MPI). Default: the ``mpiexec``
  next to this Python (the mpich wheel puts it there), else the one on PATH.
- ``COURSE_MPI_TMPDIR``: where run folders are made; on a cluster, a folder
  every node can see (the ranks write their output there).
"""

from __future__ import annotations

import atexit
import importlib
import json
import os
import pickle
import re
import runpy
import shutil
import sys
import textwrap
import time
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from course_lib._render import Table, format_seconds

if TYPE_CHECKING:  # the heavier modules are imported where used: each rank imports this one
    import subprocess
    import tempfile

    from matplotlib.axes import Axes

    from course_lib.trace import Span

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

MPIEXEC_ENV = "COURSE_MPIEXEC"
MPI_TMPDIR_ENV = "COURSE_MPI_TMPDIR"
RUN_DIR_ENV = "COURSE_MPI_RUN_DIR"
DEFAULT_TIMEOUT = 30.0
_KILL_WAIT = 5.0
_TAIL_LINES = 12
_INSTALL = "pip install -e '.[mpi]' (make lab installs it)"

# Environment variables in which launchers tell a process its rank, before MPI starts.
_RANK_VARIABLES = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK", "MV2_COMM_WORLD_RANK",
                   "SLURM_PROCID")

_BOOT_CODE = "import course_lib.mpi as _m; _m._boot()"


# --------------------------------------------------------------------------- errors


class MPIError(RuntimeError):
    """Base class of this module's errors."""


class MPIUnavailableError(MPIError):
    """No usable mpiexec or mpi4py on this machine; the message says what to install."""


class MPIRunError(MPIError):
    """An MPI program failed: a rank exited non-zero, or the job was stopped.

    ``run`` is the :class:`MPIRun` with every rank's output.
    """

    def __init__(self, message: str, run: MPIRun) -> None:
        super().__init__(message)
        self.run = run


class MPITimeoutError(MPIRunError, TimeoutError):
    """The program ran past its timeout; every rank was killed."""


# --------------------------------------------------------------------------- discovery


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
        from course_lib.machine import find_mpiexec

        found = find_mpiexec()
        if found is None:
            raise MPIUnavailableError(
                "no mpiexec found (not next to Python, not on PATH): " + _INSTALL
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


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class RankResult:
    """What one rank left behind: its output, its exit code, and (run_function) its value.

    ``exit_code`` is None when the rank never finished its program: it was
    killed (timeout) or stopped because another rank failed.
    """

    rank: int
    stdout: str
    stderr: str
    exit_code: int | None
    result: Any = None
    result_error: str | None = None

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and self.result_error is None


def _tail(text: str, lines: int = _TAIL_LINES) -> str:
    kept = text.rstrip("\n").splitlines()
    if len(kept) <= lines:
        return "\n".join(kept)
    return "\n".join([f"... ({len(kept) - lines} earlier lines)"] + kept[-lines:])


def _indent(text: str) -> str:
    return textwrap.indent(text, "    ") if text else "    (nothing)"


def _summary_line(stderr: str) -> str:
    """The line that says what went wrong: the exception, not MPI's abort notice."""
    for line in reversed(stderr.strip().splitlines()):
        if line.strip() and not line[:1].isspace() and not line.startswith(("Abort(", "[")):
            return line.strip()
    return "(no message on stderr)"


def _rank_list(ranks: Sequence[int]) -> str:
    names = ", ".join(str(r) for r in ranks)
    return f"rank {names}" if len(ranks) == 1 else f"ranks {names}"


@dataclass(frozen=True)
class MPIRun:
    """The outcome of :func:`run_mpi` / :func:`run_function`: one :class:`RankResult` per rank.

    ``stdout``/``stderr``/``exit_codes``/``results`` are lists indexed by rank.
    ``trace`` holds the events recorded by :class:`TracedComm` (empty if none).
    ``launcher_stdout``/``launcher_stderr`` are mpiexec's own messages.
    """

    label: str
    n: int
    command: tuple[str, ...]
    returncode: int | None
    timed_out: bool
    elapsed: float
    timeout: float
    ranks: tuple[RankResult, ...]
    launcher_stdout: str = ""
    launcher_stderr: str = ""
    trace: MPITrace = field(default_factory=lambda: MPITrace([]))

    @property
    def stdout(self) -> list[str]:
        return [r.stdout for r in self.ranks]

    @property
    def stderr(self) -> list[str]:
        return [r.stderr for r in self.ranks]

    @property
    def exit_codes(self) -> list[int | None]:
        return [r.exit_code for r in self.ranks]

    @property
    def results(self) -> list[Any]:
        """What each rank's function returned (:func:`run_function`); None for a failed rank."""
        return [r.result for r in self.ranks]

    @property
    def ok(self) -> bool:
        """Every rank finished with exit code 0 and the job was not stopped."""
        return not self.timed_out and all(r.ok for r in self.ranks) and self.returncode == 0

    @property
    def still_running(self) -> list[int]:
        """Ranks that never finished their program (killed, or stopped by another's failure)."""
        return [r.rank for r in self.ranks if r.exit_code is None]

    @property
    def failed_ranks(self) -> list[int]:
        """Ranks that finished with a non-zero exit code, or whose value could not be read."""
        return [r.rank for r in self.ranks
                if (r.exit_code is not None and r.exit_code != 0) or r.result_error]

    def lines(self, rank: int | None = None) -> list[str]:
        """Output lines, each whole: of one rank, or of all ranks prefixed ``[rank]``."""
        if rank is not None:
            return self.ranks[rank].stdout.splitlines()
        return [f"[{r.rank}] {line}" for r in self.ranks for line in r.stdout.splitlines()]

    def error_message(self) -> str | None:
        """Why this run failed, naming the rank and showing its output; None if it did not."""
        if self.ok:
            return None
        parts: list[str] = []
        if self.timed_out:
            stuck = self.still_running
            parts.append(
                f"{self.label} did not finish within {self.timeout:g} s with {self.n} rank(s), "
                "so every rank was stopped."
            )
            if stuck:
                parts.append(
                    f"Still inside the program at that moment: {_rank_list(stuck)}. A rank that "
                    "waits for a message nobody sends, or sends one nobody receives, waits "
                    "forever: is this a deadlock?"
                )
            shown = stuck or list(range(self.n))
        elif self.failed_ranks:
            first = self.ranks[self.failed_ranks[0]]
            if first.result_error and first.exit_code == 0:
                parts.append(f"{self.label}: rank {first.rank} of {self.n}: {first.result_error}")
            else:
                parts.append(f"{self.label}: rank {first.rank} of {self.n} failed "
                             f"(exit code {first.exit_code}): {_summary_line(first.stderr)}")
            others = [r for r in self.failed_ranks[1:]]
            if others:
                parts.append(f"Also failed: {_rank_list(others)}.")
            if self.still_running:
                verb = "was" if len(self.still_running) == 1 else "were"
                parts.append(f"{_rank_list(self.still_running).capitalize()} {verb} stopped "
                             "when it failed (MPI_Abort).")
            shown = [first.rank]
        else:
            code = self.returncode
            if self.still_running:
                parts.append(
                    f"{self.label}: {_rank_list(self.still_running)} never finished the program "
                    f"and mpiexec exited with code {code}: a rank was killed (out of memory? "
                    "MPI_Abort?) or could not start."
                )
            else:
                parts.append(f"{self.label}: every rank finished, but mpiexec exited with code "
                             f"{code}.")
            shown = self.still_running or []
            if self.launcher_stderr.strip() or self.launcher_stdout.strip():
                parts.append("mpiexec said:\n" + _indent(
                    _tail(self.launcher_stderr + self.launcher_stdout)))
        quiet_ranks = []
        for rank in shown[:4]:
            r = self.ranks[rank]
            if not (r.stderr.strip() or r.stdout.strip()):
                quiet_ranks.append(rank)
                continue
            for name, text in (("stderr", r.stderr), ("stdout", r.stdout)):
                if text.strip():
                    parts.append(f"--- rank {rank} {name} ---\n{_indent(_tail(text))}")
        if quiet_ranks:
            parts.append(f"({_rank_list(quiet_ranks)} wrote no output.)")
        return "\n".join(parts)

    def check(self) -> MPIRun:
        """Raise :class:`MPITimeoutError` or :class:`MPIRunError` if the run failed; else self."""
        message = self.error_message()
        if message is None:
            return self
        if self.timed_out:
            raise MPITimeoutError(message, self)
        raise MPIRunError(message, self)

    def _status(self) -> str:
        if self.timed_out:
            return (f"stopped after the {self.timeout:g} s timeout: every rank was killed "
                    f"(still running: {', '.join(map(str, self.still_running)) or 'none'})")
        if self.ok:
            return f"{self.n} rank(s) finished in {format_seconds(self.elapsed)}"
        return f"FAILED after {format_seconds(self.elapsed)} (mpiexec exit code {self.returncode})"

    @staticmethod
    def _code(rank: RankResult) -> str:
        if rank.exit_code is None:
            return "killed / stopped"
        return str(rank.exit_code)

    def table(self) -> Table:
        rows = [(r.rank, self._code(r), _tail(r.stdout, 20), _tail(r.stderr, 20))
                for r in self.ranks]
        return Table(("rank", "exit", "stdout", "stderr"), rows,
                     title=f"{self.label}: {self._status()}")

    def __str__(self) -> str:
        lines = [f"{self.label}: {self._status()}"]
        for r in self.ranks:
            lines.append(f"--- rank {r.rank} (exit {self._code(r)}) ---")
            if r.stdout:
                lines.append(r.stdout.rstrip("\n"))
            if r.stderr:
                lines.append("[stderr]\n" + r.stderr.rstrip("\n"))
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        import html

        esc = html.escape
        cell = "text-align:left;vertical-align:top"
        pre = "margin:0;white-space:pre-wrap;font-size:90%"
        rows = []
        for r in self.ranks:
            err = (f"<pre style='{pre};color:#a00'>{esc(_tail(r.stderr, 20))}</pre>"
                   if r.stderr else "")
            rows.append(f"<tr><td style='{cell}'>{r.rank}</td><td style='{cell}'>"
                        f"{esc(self._code(r))}</td><td style='{cell}'><pre style='{pre}'>"
                        f"{esc(_tail(r.stdout, 20))}</pre>{err}</td></tr>")
        head = "".join(f"<th style='text-align:left'>{h}</th>" for h in
                       ("rank", "exit", "output (stdout; stderr in red)"))
        return (f"<table><caption style='text-align:left'><b>{esc(self.label)}</b>: "
                f"{esc(self._status())}</caption><thead><tr>{head}</tr></thead>"
                f"<tbody>{''.join(rows)}</tbody></table>")


# --------------------------------------------------------------------------- running


def _check_n(n: object) -> int:
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"n (the number of ranks) must be a whole number, got {n!r}")
    if n < 1:
        raise ValueError(f"n (the number of ranks) must be at least 1, got {n}")
    return n


def _check_timeout(timeout: object) -> float:
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
    n = _check_n(n)
    seconds = _check_timeout(timeout)
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
        return _execute(path.name, n, seconds, args, env, mpiexec, base, check, clock,
                        script=path)
    return _execute("the MPI program", n, seconds, args, env, mpiexec, base, check, clock,
                    source=str(program))


def _execute(
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
    import tempfile

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
        if "HWLOC_XMLFILE" not in child_env and _bundled_hydra(launcher):
            # MPICH's mpiexec (hydra) writes the machine's topology to /tmp/hydra_hwloc_xmlfile_*
            # whatever TMPDIR says, and leaves it there when a job is killed or aborted. With
            # this variable set it writes no file; the ranks then ask hwloc as usual.
            child_env["HWLOC_XMLFILE"] = str(run_dir / "no-topology-file.xml")
        package_parent = str(Path(__file__).resolve().parent.parent.parent)
        old_path = child_env.get("PYTHONPATH", "")
        child_env["PYTHONPATH"] = package_parent + (os.pathsep + old_path if old_path else "")
        command = [*launcher, "-n", str(n), sys.executable, "-c", _BOOT_CODE, str(script),
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


def _bundled_hydra(launcher: list[str]) -> bool:
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
    import psutil

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
    import subprocess
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
                f"could not start {command[0]!r}: {exc}. " + _INSTALL
                + f", or set {MPIEXEC_ENV} to a working launcher"
            ) from None
        try:
            try:
                returncode: int | None = proc.wait(timeout=timeout)
                return returncode, clock() - began, None
            except subprocess.TimeoutExpired:
                stopped = time.perf_counter()  # on the clock that TracedComm uses
                _stop_job(proc)
                return proc.returncode, clock() - began, stopped
        except BaseException:  # KeyboardInterrupt (the stop button): leave nothing running
            _stop_job(proc)
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


def _stop_job(proc: subprocess.Popen[bytes]) -> None:
    """Kill mpiexec and every process under it (launchers put ranks in sessions of their own)."""
    from course_lib.proc import family, kill_tree

    members = family(proc)
    segments = _shm_segments(members) if sys.platform.startswith("linux") else set()
    # kill_tree follows parent links (a rank in a session of its own is still found),
    # kills the group where there are groups, and sweeps again for late children.
    kill_tree(proc, timeout=_KILL_WAIT)
    for segment in segments:  # killed ranks cannot remove their shared memory themselves
        try:
            os.unlink(segment)
        except OSError:
            pass


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _collect(run_dir: Path, label: str, n: int, command: list[str], returncode: int | None,
             timed_out: bool, elapsed: float, timeout: float) -> MPIRun:
    ranks = []
    for rank in range(n):
        exit_text = _read(run_dir / f"rank-{rank}.exit").strip()
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
        ranks.append(RankResult(rank, _read(run_dir / f"rank-{rank}.out"),
                                _read(run_dir / f"rank-{rank}.err"), exit_code, result,
                                result_error))
    return MPIRun(label, n, tuple(command), returncode, timed_out, elapsed, timeout, tuple(ranks),
                  _read(run_dir / "mpiexec.out"), _read(run_dir / "mpiexec.err"),
                  MPITrace.load(run_dir))


# --------------------------------------------------------------------------- functions


_HEADER = """\
# Written by course_lib.mpi.run_function: your function, then a call on every rank.
from mpi4py import MPI
"""


def _function_source(fn: Callable[..., Any]) -> str:
    if not callable(fn) or not hasattr(fn, "__code__"):
        raise TypeError(f"run_function needs a Python function defined with def, got {fn!r}")
    name = getattr(fn, "__name__", "")
    if name == "<lambda>" or not name.isidentifier():
        raise TypeError("run_function needs a function defined with def (not a lambda), so that "
                        "its source can be sent to the ranks")
    import inspect

    try:
        return textwrap.dedent(inspect.getsource(fn))
    except (OSError, TypeError) as exc:
        raise TypeError(f"cannot read the source of {name}(): {exc}. Define it with def in a "
                        "notebook cell or a file") from None


def _brief(value: object) -> str:
    """A short description of an argument for messages: arrays by their shape and type."""
    shape, dtype = getattr(value, "shape", None), getattr(value, "dtype", None)
    if shape is not None and dtype is not None:
        return f"<{dtype} array of shape {tuple(shape)}>"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def run_function(
    fn: Callable[..., Any],
    n: int = 4,
    *,
    args: Sequence[object] = (),
    kwargs: Mapping[str, object] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    trace: bool = False,
    helpers: Sequence[Callable[..., Any]] = (),
    env: Mapping[str, str] | None = None,
    mpiexec: str | Sequence[str] | None = None,
    check: bool = True,
    clock: Callable[[], float] = time.perf_counter,
) -> MPIRun:
    """Run ``fn(comm, *args, **kwargs)`` on ``n`` ranks; ``run.results[r]`` is what rank r returned.

    The ranks run a program made of ``from mpi4py import MPI``, ``import numpy
    as np`` (when the source uses ``np.``), the source of each function in
    ``helpers``, the source of ``fn`` and
    a call of ``fn`` with ``comm = MPI.COMM_WORLD`` (a :class:`TracedComm` when
    ``trace`` is true, so that ``run.trace`` records every message). ``fn`` must
    be self-contained apart from those names. Arguments and return values
    travel by pickle. Errors and timeouts as in :func:`run_mpi`.
    """
    n = _check_n(n)
    _check_timeout(timeout)
    sources = [_function_source(h) for h in helpers] + [_function_source(fn)]
    name = fn.__name__
    try:
        call = pickle.dumps((tuple(args), dict(kwargs or {})), protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:  # noqa: BLE001 - reported with advice
        raise TypeError(f"the arguments for {name}() cannot be sent to the ranks ({exc}); pass "
                        "numbers, strings, lists, dicts or NumPy arrays") from None
    header = _HEADER + ("import numpy as np\n" if re.search(r"\bnp\.", "".join(sources)) else "")
    program = header + "\n\n" + "\n\n".join(sources) + (
        "\n\nif __name__ == '__main__':\n"
        "    import course_lib.mpi as _course_mpi\n"
        f"    _course_mpi._call_entry({name!r}, globals(), trace={bool(trace)!r})\n"
    )
    shown = ", ".join([*(_brief(a) for a in args),
                       *(f"{k}={_brief(v)}" for k, v in (kwargs or {}).items())])
    if len(shown) > 70:
        shown = shown[:67] + "..."
    label = f"{name}(comm{', ' + shown if shown else ''})"
    return _execute(label, n, _check_timeout(timeout), (), env, mpiexec, Path.cwd(), check, clock,
                    source=program, files={"call.pkl": call}, script_name=f"{name}.py")


def _call_entry(name: str, namespace: dict[str, Any], trace: bool = False) -> None:
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


# --------------------------------------------------------------------------- in each rank


def _rank_from_environment() -> int | None:
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
    skip = {os.path.abspath(__file__), os.path.abspath(runpy.__file__ or "")}

    def internal(filename: str) -> bool:
        return filename.startswith("<frozen") or os.path.abspath(filename) in skip

    report = traceback.TracebackException(type(exc), exc, exc.__traceback__)
    own = [frame for frame in report.stack if not internal(frame.filename)
           and "_course_mpi._call_entry" not in (frame.line or "")]
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


def _boot() -> None:
    """Run in each rank by :func:`run_mpi`: own output files, run the script, record the exit."""
    run_dir = Path(os.environ[RUN_DIR_ENV])
    script, args = sys.argv[1], sys.argv[2:]
    rank = _rank_from_environment()
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


# --------------------------------------------------------------------------- tracing


@dataclass(frozen=True)
class TraceEvent:
    """One call on a :class:`TracedComm`, on one rank.

    ``kind`` is "send", "recv", "sendrecv" (blocking), "isend"/"irecv" (a
    non-blocking post, which returns at once), "wait" (completing a request;
    ``request`` is the id of its post), "collective" (``send_nbytes``: what this
    rank passed in, ``recv_nbytes``: what it got back, pickled size or buffer
    size) or "topology" (``Create_cart``, ``Shift``). Ranks are
    ``MPI.COMM_WORLD`` ranks; ``dest``/``source`` are None where there is no
    peer (or ``MPI.PROC_NULL``). ``end`` is None for a call that never returned.
    """

    rank: int
    id: int
    op: str
    kind: str
    start: float
    end: float | None
    dest: int | None = None
    send_tag: int | None = None
    send_nbytes: int | None = None
    source: int | None = None
    recv_tag: int | None = None
    recv_nbytes: int | None = None
    root: int | None = None
    request: int | None = None
    posted: float | None = None

    @property
    def finished(self) -> bool:
        return self.end is not None


@dataclass(frozen=True)
class Message:
    """A message matched from the trace: who sent it, who received it, and when."""

    source: int
    dest: int
    tag: int
    nbytes: int | None
    sent: float
    received: float
    send_op: str
    recv_op: str


_SENDING = ("send", "sendrecv", "isend")
_RECEIVING = ("recv", "sendrecv", "wait")


@dataclass
class MPITrace:
    """Events that :class:`TracedComm` recorded on every rank, and the messages they make."""

    events: list[TraceEvent]
    stopped: float | None = None  # when the run was killed (same clock), if it was

    @classmethod
    def from_records(cls, records: Iterable[Mapping[str, Any]]) -> MPITrace:
        merged: dict[tuple[int, int], dict[str, Any]] = {}
        for record in records:
            key = (int(record["rank"]), int(record["id"]))
            merged.setdefault(key, {}).update(record)
        events = []
        names = TraceEvent.__dataclass_fields__
        for data in merged.values():
            if "op" not in data:
                continue  # an end without its beginning (a torn file): ignore
            data.setdefault("end", None)
            events.append(TraceEvent(**{k: v for k, v in data.items() if k in names}))
        events.sort(key=lambda e: (e.start, e.rank, e.id))
        return cls(events)

    @classmethod
    def load(cls, folder: str | os.PathLike[str]) -> MPITrace:
        """Read every ``trace-*.jsonl`` file that the ranks wrote in ``folder``."""
        records: list[dict[str, Any]] = []
        for path in sorted(Path(folder).glob("trace-*.jsonl")):
            for line in _read(path).splitlines():
                try:
                    records.append(json.loads(line))
                except ValueError:
                    continue  # the last line of a killed rank may be cut short
        return cls.from_records(records)

    def __len__(self) -> int:
        return len(self.events)

    @property
    def ranks(self) -> list[int]:
        return sorted({e.rank for e in self.events})

    @property
    def t0(self) -> float:
        return min((e.start for e in self.events), default=0.0)

    @property
    def t_end(self) -> float:
        """The last moment the trace knows of (the kill, for a stopped run)."""
        times = [e.end if e.end is not None else e.start for e in self.events]
        if self.stopped is not None and self.events:
            times.append(self.stopped)
        return max(times, default=0.0)

    def select(self, *, rank: int | None = None, kind: str | None = None,
               op: str | None = None) -> list[TraceEvent]:
        """Events of one rank / kind / op (None: any)."""
        return [e for e in self.events if (rank is None or e.rank == rank)
                and (kind is None or e.kind == kind) and (op is None or e.op == op)]

    def count(self, *, rank: int | None = None, kind: str | None = None,
              op: str | None = None) -> int:
        return len(self.select(rank=rank, kind=kind, op=op))

    @property
    def unfinished(self) -> list[TraceEvent]:
        """Calls that never returned (the program was stopped while inside them)."""
        return [e for e in self.events if e.end is None]

    @property
    def incomplete_requests(self) -> list[TraceEvent]:
        """isend/irecv posts whose request was never completed (no wait, Wait or waitall)."""
        completed = {(e.rank, e.request) for e in self.events if e.kind == "wait" and e.finished}
        return [e for e in self.events
                if e.kind in ("isend", "irecv") and (e.rank, e.id) not in completed]

    def _matching(self) -> tuple[list[Message], list[TraceEvent]]:
        sends: dict[tuple[int, int, int], list[TraceEvent]] = {}
        recvs: dict[tuple[int, int, int], list[TraceEvent]] = {}
        for e in self.events:
            if e.kind in _SENDING and e.dest is not None and e.send_tag is not None:
                sends.setdefault((e.rank, e.dest, e.send_tag), []).append(e)
            if (e.kind in _RECEIVING and e.source is not None and e.recv_tag is not None
                    and e.end is not None):
                recvs.setdefault((e.source, e.rank, e.recv_tag), []).append(e)
        posts: dict[tuple[int, int | None], str] = {
            (e.rank, e.id): e.op for e in self.events if e.kind in ("isend", "irecv")}
        messages: list[Message] = []
        unmatched: list[TraceEvent] = []
        for key, out in sends.items():
            out.sort(key=lambda e: (e.start, e.id))
            into = sorted(recvs.get(key, []),
                          key=lambda e: (e.posted if e.posted is not None else e.start, e.id))
            for i, s in enumerate(out):
                if i >= len(into):
                    unmatched.append(s)
                    continue
                r = into[i]
                assert r.end is not None
                nbytes = r.recv_nbytes if r.recv_nbytes is not None else s.send_nbytes
                recv_op = r.op
                if r.kind == "wait" and (r.rank, r.request) in posts:
                    recv_op = f"{posts[(r.rank, r.request)]} + {r.op}"
                messages.append(Message(key[0], key[1], key[2], nbytes, s.start, r.end, s.op,
                                        recv_op))
        messages.sort(key=lambda m: (m.sent, m.source, m.dest))
        return messages, unmatched

    @property
    def messages(self) -> list[Message]:
        """Every message that was sent and received, matched in MPI's order per (source, dest, tag)."""
        return self._matching()[0]

    @property
    def unmatched_sends(self) -> list[TraceEvent]:
        """Sends whose message no traced receive took (still in flight, or a deadlock)."""
        return self._matching()[1]

    def spans(self) -> list[Span]:
        """Each call as a :class:`course_lib.trace.Span` on lane "rank N" (for ``timeline``)."""
        from course_lib.trace import Span

        end = self.t_end
        return [Span(e.op, f"rank {e.rank}", e.start, e.end if e.end is not None else end, 0,
                     "MainThread") for e in self.events]

    def diagram(self, *, ax: Axes | None = None, title: str | None = None) -> Axes:
        """Shortcut for :func:`course_lib.viz.message_diagram`."""
        from course_lib.viz import message_diagram

        return message_diagram(self, ax=ax, title=title)

    def table(self) -> Table:
        rows = [(m.source, m.dest, m.tag, "?" if m.nbytes is None else m.nbytes,
                 format_seconds(m.sent - self.t0), format_seconds(m.received - m.sent),
                 f"{m.send_op} → {m.recv_op}") for m in self.messages]
        table = Table(("from", "to", "tag", "bytes", "sent at", "in flight", "calls"), rows,
                      title=f"{len(rows)} message(s) between {len(self.ranks)} rank(s)")
        stuck = self.unfinished
        if stuck:
            table.notes.append("never returned: " + ", ".join(
                f"{e.op} on rank {e.rank}" for e in stuck))
        return table

    def __str__(self) -> str:
        return self.table().text()

    def _repr_html_(self) -> str:
        return self.table().html()


_COLLECTIVES: dict[str, int | None] = {  # name -> position of the root argument (None: no root)
    "barrier": None, "Barrier": None, "bcast": 1, "Bcast": 1, "scatter": 1, "Scatter": 2,
    "Scatterv": 2, "gather": 1, "Gather": 2, "Gatherv": 2, "allgather": None,
    "Allgather": None, "Allgatherv": None, "reduce": 2, "Reduce": 3, "allreduce": None,
    "Allreduce": None, "alltoall": None, "Alltoall": None, "Alltoallv": None, "scan": None,
    "Scan": None, "exscan": None, "Exscan": None, "Reduce_scatter": None,
    "Reduce_scatter_block": None,
}
_SENDS = ("send", "ssend", "bsend", "Send", "Ssend", "Bsend", "Rsend")
_ISENDS = ("isend", "issend", "Isend", "Issend")
_RECVS = ("recv", "Recv")
_IRECVS = ("irecv", "Irecv")


def _arg(args: tuple[Any, ...], kwargs: dict[str, Any], index: int, name: str,
         default: Any) -> Any:
    if len(args) > index:
        return args[index]
    return kwargs.get(name, default)


def _nbytes(data: Any, uppercase: bool) -> int | None:
    """Bytes in a buffer spec (``arr`` or ``[arr, MPI.DOUBLE]``), or in a pickled object."""
    if uppercase:
        buffer = data[0] if isinstance(data, list | tuple) and data else data
        try:
            return memoryview(buffer).nbytes
        except TypeError:
            return None
    buffers: list[pickle.PickleBuffer] = []
    try:  # out-of-band buffers: a big array is measured, not copied
        head = pickle.dumps(data, protocol=5, buffer_callback=buffers.append)
    except Exception:  # noqa: BLE001 - an object pickle cannot take: mpi4py will say so
        return None
    return len(head) + sum(b.raw().nbytes for b in buffers)


class _Recorder:
    """The events of one process: kept in memory and, in a run, appended line by line to a file."""

    def __init__(self, rank: int, path: Path | None, clock: Callable[[], float]) -> None:
        self.rank = rank
        self.clock = clock
        self.records: list[dict[str, Any]] = []
        self.pending: list[Any] = []  # TracedRequests not yet completed
        self._next = 0
        self.last_start = 0.0
        self._file = open(path, "a", buffering=1, encoding="utf-8") if path else None  # noqa: SIM115
        # A program that never closes its trace: notice its last requests at exit (this runs
        # before mpi4py's own exit handler, which was registered earlier, finalizes MPI).
        atexit.register(self.close)

    def _write(self, record: dict[str, Any]) -> None:
        self.records.append(record)
        if self._file is not None:
            self._file.write(json.dumps(record) + "\n")

    def begin(self, op: str, kind: str, **fields: Any) -> int:
        self.poll()
        self._next += 1
        self.last_start = self.clock()
        record: dict[str, Any] = {"rank": self.rank, "id": self._next, "op": op, "kind": kind,
                                  "start": self.last_start}
        record.update({k: v for k, v in fields.items() if v is not None})
        self._write(record)
        return self._next

    def end(self, event_id: int, **fields: Any) -> None:
        record = {"rank": self.rank, "id": event_id, "end": self.clock()}
        record.update({k: v for k, v in fields.items() if v is not None})
        self._write(record)

    def poll(self) -> None:
        """Notice requests completed by calls the trace does not see (``MPI.Request.Waitall``)."""
        if not self.pending:
            return
        mpi: Any = importlib.import_module("mpi4py.MPI")
        still = []
        for request in self.pending:
            if request._course_done:
                continue
            if request == mpi.REQUEST_NULL:
                request._course_done = True
                self._next += 1  # not begin(): it would poll again
                now = self.clock()
                record = {"rank": self.rank, "id": self._next, "op": "(completed by waitall)",
                          "kind": "wait", "start": now, "end": now,
                          "request": request._course_post, "posted": request._course_posted}
                if request._course_kind == "irecv":
                    record.update({k: v for k, v in request._course_expect.items()
                                   if v is not None})
                self._write(record)
            else:
                still.append(request)
        self.pending = still

    def close(self) -> None:
        self.poll()
        if self._file is not None:
            self._file.close()
            self._file = None


_RECORDER: _Recorder | None = None
_TYPES: dict[type, type] = {}


def _recorder(path: str | os.PathLike[str] | None, clock: Callable[[], float]) -> _Recorder:
    global _RECORDER
    if _RECORDER is None or _RECORDER._file is None and path is not None:
        mpi: Any = importlib.import_module("mpi4py.MPI")
        rank = int(mpi.COMM_WORLD.Get_rank())
        target: Path | None = Path(path) if path is not None else None
        if target is None and os.environ.get(RUN_DIR_ENV):
            target = Path(os.environ[RUN_DIR_ENV]) / f"trace-{rank}.jsonl"
        _RECORDER = _Recorder(rank, target, clock)
    return _RECORDER


class _TracingComm:
    """Methods mixed into a subclass of the wrapped communicator's own class."""

    _course_rec: _Recorder
    _course_world: list[int]

    def _course_peer(self, rank: Any) -> int | None:
        if rank is None or not isinstance(rank, int) or rank < 0:
            return None  # PROC_NULL, ANY_SOURCE (negative in every MPI)
        try:
            return self._course_world[rank]
        except IndexError:
            return None

    def _course_send(self, op: str, fn: Callable[..., Any], a: tuple[Any, ...],
                     k: dict[str, Any]) -> Any:
        data = _arg(a, k, 0, "buf" if op[0].isupper() else "obj", None)
        eid = self._course_rec.begin(op, "send", dest=self._course_peer(_arg(a, k, 1, "dest", None)),
                                     send_tag=_arg(a, k, 2, "tag", 0),
                                     send_nbytes=_nbytes(data, op[0].isupper()))
        try:
            return fn(*a, **k)
        finally:  # a call that raised did return: only a stuck call has no end
            self._course_rec.end(eid)

    def _course_recv(self, op: str, fn: Callable[..., Any], a: tuple[Any, ...],
                     k: dict[str, Any]) -> Any:
        mpi: Any = importlib.import_module("mpi4py.MPI")
        buf = _arg(a, k, 0, "buf", None)
        source = _arg(a, k, 1, "source", mpi.ANY_SOURCE)
        tag = _arg(a, k, 2, "tag", mpi.ANY_TAG)
        status = _arg(a, k, 3, "status", None) or mpi.Status()
        eid = self._course_rec.begin(op, "recv")
        try:
            result = fn(buf, source, tag, status)
        except BaseException:
            self._course_rec.end(eid)
            raise
        self._course_rec.end(eid, **self._course_status(status))
        return result

    def _course_status(self, status: Any) -> dict[str, Any]:
        source = self._course_peer(status.Get_source())
        if source is None:
            return {}
        return {"source": source, "recv_tag": status.Get_tag(),
                "recv_nbytes": status.Get_count()}

    def _course_sendrecv(self, op: str, fn: Callable[..., Any], a: tuple[Any, ...],
                         k: dict[str, Any]) -> Any:
        mpi: Any = importlib.import_module("mpi4py.MPI")
        replace = op == "Sendrecv_replace"
        first = "buf" if replace else ("sendbuf" if op[0].isupper() else "sendobj")
        data = _arg(a, k, 0, first, None)
        dest = _arg(a, k, 1, "dest", mpi.PROC_NULL)
        sendtag = _arg(a, k, 2, "sendtag", 0)
        offset = 0 if replace else 1
        recvbuf = None if replace else _arg(a, k, 3, "recvbuf", None)
        source = _arg(a, k, 3 + offset, "source", mpi.ANY_SOURCE)
        recvtag = _arg(a, k, 4 + offset, "recvtag", mpi.ANY_TAG)
        status = _arg(a, k, 5 + offset, "status", None) or mpi.Status()
        peer = self._course_peer(dest)
        eid = self._course_rec.begin(op, "sendrecv", dest=peer,
                                     send_tag=sendtag if peer is not None else None,
                                     send_nbytes=_nbytes(data, op[0].isupper())
                                     if peer is not None else None)
        try:
            if replace:
                result = fn(data, dest, sendtag, source, recvtag, status)
            else:
                result = fn(data, dest, sendtag, recvbuf, source, recvtag, status)
        except BaseException:
            self._course_rec.end(eid)
            raise
        self._course_rec.end(eid, **self._course_status(status))
        return result

    def _course_post(self, op: str, fn: Callable[..., Any], a: tuple[Any, ...],
                     k: dict[str, Any], receiving: bool) -> Any:
        mpi: Any = importlib.import_module("mpi4py.MPI")
        if receiving:
            source = self._course_peer(_arg(a, k, 1, "source", mpi.ANY_SOURCE))
            tag = _arg(a, k, 2, "tag", mpi.ANY_TAG)
            tag = tag if isinstance(tag, int) and tag >= 0 else None
            eid = self._course_rec.begin(op, "irecv", source=source, recv_tag=tag)
            expect = {"source": source, "recv_tag": tag}
        else:
            data = _arg(a, k, 0, "buf" if op[0].isupper() else "obj", None)
            eid = self._course_rec.begin(op, "isend",
                                         dest=self._course_peer(_arg(a, k, 1, "dest", None)),
                                         send_tag=_arg(a, k, 2, "tag", 0),
                                         send_nbytes=_nbytes(data, op[0].isupper()))
            expect = {}
        posted = self._course_rec.last_start  # receives match in the order they were posted
        try:
            request = fn(*a, **k)
        finally:
            self._course_rec.end(eid)
        traced = _traced_type(type(request))(request)
        traced._course_setup(self, "irecv" if receiving else "isend", eid, posted, expect)
        self._course_rec.pending.append(traced)
        return traced

    def _course_collective(self, op: str, fn: Callable[..., Any], a: tuple[Any, ...],
                           k: dict[str, Any]) -> Any:
        position = _COLLECTIVES[op]
        root = None if position is None else self._course_peer(_arg(a, k, position, "root", 0))
        upper = op[0].isupper()
        first = {"bcast": "obj", "Bcast": "buf"}.get(op, "sendbuf" if upper else "sendobj")
        sent = None if op in ("barrier", "Barrier") else _nbytes(_arg(a, k, 0, first, None), upper)
        eid = self._course_rec.begin(op, "collective", root=root, send_nbytes=sent)
        try:
            result = fn(*a, **k)
        except BaseException:
            self._course_rec.end(eid)
            raise
        # What this rank got back: the pickled result, or the receiving buffer.
        if op in ("barrier", "Barrier"):
            received = None
        elif not upper:
            received = _nbytes(result, False)
        else:
            received = _nbytes(_arg(a, k, 0, "buf", None) if op == "Bcast"
                               else _arg(a, k, 1, "recvbuf", None), True)
        self._course_rec.end(eid, recv_nbytes=received)
        return result

    def _course_wrap(self, comm: Any) -> Any:
        mpi: Any = importlib.import_module("mpi4py.MPI")
        if comm == mpi.COMM_NULL:
            return comm
        return _wrap_comm(comm, self._course_rec)

    def close_trace(self) -> None:
        """Finish this process's trace: notice completed requests and close the file."""
        self._course_rec.close()

    def trace(self) -> MPITrace:
        """This process's events so far (one rank's view)."""
        self._course_rec.poll()
        return MPITrace.from_records(self._course_rec.records)

    # Communicators made from a traced one are traced too.
    def Create_cart(self, *a: Any, **k: Any) -> Any:
        eid = self._course_rec.begin("Create_cart", "topology")
        try:
            return self._course_wrap(super().Create_cart(*a, **k))  # type: ignore[misc]
        finally:
            self._course_rec.end(eid)

    def Shift(self, *a: Any, **k: Any) -> Any:
        """``Shift`` of a Cartesian communicator, recorded (kind "topology")."""
        eid = self._course_rec.begin("Shift", "topology")
        try:
            return super().Shift(*a, **k)  # type: ignore[misc]
        finally:
            self._course_rec.end(eid)

    def Dup(self, *a: Any, **k: Any) -> Any:
        return self._course_wrap(super().Dup(*a, **k))  # type: ignore[misc]

    def Split(self, *a: Any, **k: Any) -> Any:
        return self._course_wrap(super().Split(*a, **k))  # type: ignore[misc]

    def Sub(self, *a: Any, **k: Any) -> Any:
        return self._course_wrap(super().Sub(*a, **k))  # type: ignore[misc]


def _method(name: str, handler: str, *extra: Any) -> Callable[..., Any]:
    def method(self: Any, *a: Any, **k: Any) -> Any:
        fn = getattr(super(_TracingComm, self), name)
        return getattr(self, handler)(name, fn, a, k, *extra)

    method.__name__ = name
    method.__doc__ = f"``{name}`` of the wrapped communicator, recorded in the trace."
    return method


for _name in _SENDS:
    setattr(_TracingComm, _name, _method(_name, "_course_send"))
for _name in _RECVS:
    setattr(_TracingComm, _name, _method(_name, "_course_recv"))
for _name in ("sendrecv", "Sendrecv", "Sendrecv_replace"):
    setattr(_TracingComm, _name, _method(_name, "_course_sendrecv"))
for _name in _ISENDS:
    setattr(_TracingComm, _name, _method(_name, "_course_post", False))
for _name in _IRECVS:
    setattr(_TracingComm, _name, _method(_name, "_course_post", True))
for _name in _COLLECTIVES:
    setattr(_TracingComm, _name, _method(_name, "_course_collective"))


class _TracingRequest:
    """Methods mixed into a subclass of ``MPI.Request``: completion is recorded."""

    _course_rec: _Recorder
    _course_comm: Any
    _course_kind: str
    _course_post: int
    _course_posted: float
    _course_expect: dict[str, Any]
    _course_done: bool

    def _course_setup(self, comm: Any, kind: str, post: int, posted: float,
                      expect: dict[str, Any]) -> None:
        self._course_rec = comm._course_rec
        self._course_comm = comm
        self._course_kind = kind
        self._course_post = post
        self._course_posted = posted
        self._course_expect = expect
        self._course_done = False

    def _course_complete(self, op: str, fn: Callable[..., Any], a: tuple[Any, ...],
                         k: dict[str, Any], testing: bool) -> Any:
        mpi: Any = importlib.import_module("mpi4py.MPI")
        if self._course_done:
            return fn(*a, **k)
        status = _arg(a, k, 0, "status", None) or mpi.Status()
        eid = self._course_rec.begin(op, "wait", request=self._course_post,
                                     posted=self._course_posted)
        result = fn(status)
        flag = (result[0] if isinstance(result, tuple) else bool(result)) if testing else True
        fields: dict[str, Any] = {}
        if flag:
            self._course_done = True
            if self._course_kind == "irecv":
                fields = self._course_comm._course_status(status)
        else:  # a test() that found the request still pending: not a completion
            fields = {"request": -1}
        self._course_rec.end(eid, **fields)
        return result


def _request_method(name: str, testing: bool) -> Callable[..., Any]:
    def method(self: Any, *a: Any, **k: Any) -> Any:
        fn = getattr(super(_TracingRequest, self), name)
        return self._course_complete(name, fn, a, k, testing)

    method.__name__ = name
    return method


for _name, _testing in (("wait", False), ("Wait", False), ("test", True), ("Test", True)):
    setattr(_TracingRequest, _name, _request_method(_name, _testing))


def _traced_type(base: type) -> type:
    made = _TYPES.get(base)
    if made is None:
        mpi: Any = importlib.import_module("mpi4py.MPI")
        mixin = _TracingRequest if issubclass(base, mpi.Request) else _TracingComm
        made = type(f"Traced{base.__name__}", (mixin, base), {"__module__": __name__})
        _TYPES[base] = made
    return made


def _wrap_comm(comm: Any, recorder: _Recorder) -> Any:
    mpi: Any = importlib.import_module("mpi4py.MPI")
    traced = _traced_type(type(comm))(comm)
    traced._course_rec = recorder
    size = comm.Get_size()
    if comm == mpi.COMM_WORLD:
        traced._course_world = list(range(size))
    else:
        group, world = comm.Get_group(), mpi.COMM_WORLD.Get_group()
        traced._course_world = [int(r) for r in mpi.Group.Translate_ranks(group, list(range(size)),
                                                                           world)]
        group.Free()
        world.Free()
    return traced


def TracedComm(  # noqa: N802 - used like a class
    comm: Any,
    path: str | os.PathLike[str] | None = None,
    *,
    clock: Callable[[], float] = time.perf_counter,
) -> Any:
    """``comm`` (an mpi4py communicator) with every message and collective call recorded.

    The result *is* a communicator of the same class (``Intracomm``,
    ``Cartcomm``...): pass it wherever ``comm`` went. Point-to-point calls
    (``send``/``recv``/``Send``/``Recv``/``sendrecv``/``isend``/``irecv``...,
    with their requests' ``wait``/``Wait``/``test``), collectives and
    ``Create_cart``/``Dup``/``Split`` are recorded with ``time.perf_counter``
    (one clock for every process on one machine). Under :func:`run_mpi` each
    rank appends its events to a file in the run's folder and ``run.trace``
    gathers them; elsewhere they are written to ``path`` (if given) and
    ``comm.trace()`` returns this rank's own.
    """
    return _wrap_comm(comm, _recorder(path, clock))


# --------------------------------------------------------------------------- ipyparallel


def _stop_loop_thread(cluster: Any) -> None:
    """End the thread in which ipyparallel runs ``*_sync`` calls when an event loop is running
    (as in Jupyter); ipyparallel itself leaves it running until the process exits."""
    loop = getattr(cluster, "_thread_loop", None)
    thread = getattr(cluster, "_async_thread", None)
    if loop is None or thread is None:
        return
    loop.add_callback(loop.stop)
    thread.join(_KILL_WAIT)
    if not thread.is_alive():
        loop.close()
    cluster._async_thread = None


class MPIEngines:
    """ipyparallel engines started with ``mpiexec`` (the engines are MPI ranks), for ``%%px``.

    ``with MPIEngines(2) as rc:`` starts a controller and ``n`` engines and
    returns a connected ``ipyparallel.Client`` (``rc[:]`` is a view on all
    engines; with ``activate`` the ``%px``/``%%px`` magics use it), and stops
    everything at the end of the block. Across notebook cells call
    :meth:`start` and, in a clean-up cell, :meth:`stop`. The cluster's files
    live in a temporary folder that :meth:`stop` removes.
    """

    def __init__(self, n: int = 2, *, timeout: float = 60.0,
                 mpiexec: str | Sequence[str] | None = None, activate: bool = True) -> None:
        self.n = _check_n(n)
        self.timeout = _check_timeout(timeout)
        self.activate = activate
        self._mpiexec = mpiexec
        self._cluster: Any = None
        self._client: Any = None
        self._folder: tempfile.TemporaryDirectory[str] | None = None

    @property
    def client(self) -> Any:
        """The connected ``ipyparallel.Client`` (None when not started)."""
        return self._client

    def start(self) -> Any:
        """Start the controller and the engines; return the connected client."""
        if self._client is not None:
            return self._client
        import logging
        import tempfile

        try:
            ipp: Any = importlib.import_module("ipyparallel")
        except ImportError:
            raise MPIUnavailableError("ipyparallel is not installed: pip install -e "
                                      "'.[distributed]' (make lab installs it)") from None
        config_module: Any = importlib.import_module("traitlets.config")
        launcher = mpiexec_command(self._mpiexec)
        self._folder = tempfile.TemporaryDirectory(prefix="course-ipp-")
        root = Path(self._folder.name)
        (root / "tmp").mkdir()
        environment = {"TMPDIR": str(root / "tmp"), "PYTHONWARNINGS": "ignore"}
        config = config_module.Config()
        config.MPIEngineSetLauncher.mpi_cmd = launcher
        config.MPIEngineSetLauncher.environment = environment
        config.LocalControllerLauncher.environment = environment
        try:
            self._cluster = ipp.Cluster(
                engines="mpi", n=self.n, profile_dir=str(root / "profile"), config=config,
                log_level=logging.ERROR, delay=0.1, engine_timeout=int(self.timeout),
                controller_args=["--HeartMonitor.period=250"],  # engines register sooner
            )
            self._cluster.start_cluster_sync(n=self.n)
            client = self._cluster.connect_client_sync()
            self._client = client
            client.wait_for_engines(self.n, timeout=self.timeout, block=True, interactive=False)
            if self.activate:
                client.activate()
        except BaseException:
            self.stop()
            raise
        return self._client

    def stop(self) -> None:
        """Close the client, stop the engines, then the controller; remove the files."""
        if self._client is not None:
            try:
                self._client.close()
            finally:
                self._client = None
        if self._cluster is not None:
            cluster, self._cluster = self._cluster, None
            try:
                cluster.stop_engines_sync()
            finally:
                try:
                    cluster.stop_controller_sync()
                finally:
                    _stop_loop_thread(cluster)
        if self._folder is not None:
            self._folder.cleanup()
            self._folder = None

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
