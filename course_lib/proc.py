"""Stop a process and everything it started, on Linux, macOS and Windows.

:func:`kill_tree` is what the course uses to stop a launcher and its workers
(Celery, Redis, SCOOP, mpiexec, nbgrader). It finds the family through psutil
(parent links, so a child that called ``setsid`` is still found), adds the process
group where the platform has one (``os.killpg``), asks politely first when given a
grace period, then kills, and waits until every member is gone. It reaps only the
``subprocess.Popen`` it was given: another process's child that has exited is left
as a zombie for its own parent to collect.

:func:`run_bounded` runs a command for at most so many seconds and, past the bound,
stops the whole tree it started with :func:`kill_tree`.

Nothing here needs ``os.killpg``, ``signal.SIGQUIT`` or ``/proc``: where they
exist they are used, and elsewhere (Windows) psutil does the same job.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple, TypeAlias

import psutil

__all__ = [
    "QUIT_SIGNAL",
    "RunResult",
    "family",
    "kill_all",
    "kill_tree",
    "run_bounded",
    "send_to_tree",
    "wait_gone",
]

QUIT_SIGNAL: int = int(getattr(signal, "SIGQUIT", signal.SIGTERM))
"""``SIGQUIT`` where it exists (Celery's cold shutdown), else ``SIGTERM``."""

Target: TypeAlias = "int | subprocess.Popen[Any] | psutil.Process"


def _pid(target: Target) -> int:
    if isinstance(target, psutil.Process):
        return int(target.pid)
    if isinstance(target, subprocess.Popen):
        return int(target.pid)
    if isinstance(target, bool) or not isinstance(target, int) or target <= 0:
        raise ValueError(f"expected a pid, a subprocess.Popen or a psutil.Process, got {target!r}")
    return target


def _has_groups() -> bool:
    return all(hasattr(os, name) for name in ("killpg", "getpgid", "getpgrp"))


def family(target: Target) -> list[psutil.Process]:
    """The process, its descendants and (where groups exist) the members of its group.

    The root comes first. A process already gone is simply absent.
    """
    pid = _pid(target)
    members: dict[int, psutil.Process] = {}
    try:
        root = psutil.Process(pid)
        members[pid] = root
        for child in root.children(recursive=True):
            members.setdefault(child.pid, child)
    except psutil.Error:
        pass
    if _has_groups() and pid != os.getpgrp():
        # Members of its group (a session started with start_new_session), also after the
        # leader has exited and its children were re-parented.
        for process in psutil.process_iter():
            with contextlib.suppress(OSError, psutil.Error):
                if process.pid not in members and os.getpgid(process.pid) == pid:
                    members[process.pid] = process
                    for child in process.children(recursive=True):
                        members.setdefault(child.pid, child)
    members.pop(os.getpid(), None)  # never this process
    return list(members.values())


def _signal(processes: Iterable[psutil.Process], sig: int | None) -> None:
    for process in processes:
        with contextlib.suppress(psutil.Error, OSError):
            if sig is None:
                process.kill()
            elif sig == signal.SIGTERM:
                process.terminate()  # TerminateProcess on Windows
            else:
                process.send_signal(sig)


def _signal_group(pid: int, sig: int) -> None:
    """``os.killpg`` where it exists (never our own group); elsewhere nothing to do."""
    if _has_groups() and pid != os.getpgrp():
        with contextlib.suppress(OSError):
            os.killpg(pid, sig)


def send_to_tree(target: Target, sig: int) -> list[psutil.Process]:
    """Send ``sig`` to the process, its descendants and its group; returns who got it."""
    members = family(target)
    _signal_group(_pid(target), sig)
    _signal(members, sig)
    return members


def _alive(process: psutil.Process) -> bool:
    try:
        return bool(process.is_running() and process.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def wait_gone(processes: Iterable[psutil.Process], timeout: float,
              own: subprocess.Popen[Any] | None = None) -> list[psutil.Process]:
    """Wait until every process has exited (a zombie counts: its parent reaps it).

    Only ``own`` (our child) is reaped. Returns those still alive after ``timeout``.
    """
    deadline = time.monotonic() + timeout
    if own is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            own.wait(max(0.0, deadline - time.monotonic()))
    left = [p for p in processes if own is None or p.pid != own.pid]
    while True:
        left = [p for p in left if _alive(p)]
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.01)


def kill_all(processes: Iterable[psutil.Process], timeout: float = 3.0) -> list[psutil.Process]:
    """Kill each of ``processes`` (SIGKILL, or TerminateProcess on Windows) and wait until gone.

    Reaps nothing: a zombie counts as gone, and its parent (multiprocessing, for
    its own children) collects the exit code. Returns those still alive.
    """
    processes = list(processes)
    _signal(processes, None)
    return wait_gone(processes, timeout)


def kill_tree(target: Target, timeout: float = 5.0, *, grace: float = 0.0,
              sig: int = signal.SIGTERM) -> list[int]:
    """Stop ``target`` and every process under it; return the pids still alive (``[]``: done).

    With ``grace > 0`` the family first gets ``sig`` (default ``SIGTERM``;
    ``QUIT_SIGNAL`` for Celery's cold shutdown) and ``grace`` seconds to exit;
    then whatever is left is killed and waited for, up to ``timeout`` seconds.
    ``target`` is a pid, a ``subprocess.Popen`` (reaped) or a ``psutil.Process``.
    """
    if timeout < 0 or grace < 0:
        raise ValueError(f"timeout and grace must be >= 0, got {timeout!r} and {grace!r}")
    own = target if isinstance(target, subprocess.Popen) else None
    pid = _pid(target)
    if pid == os.getpid():
        raise ValueError("kill_tree() refuses to stop the process that calls it")
    members = family(target)
    if grace > 0 and members:
        _signal_group(pid, sig)
        _signal(members, sig)
        members = members + [p for p in family(target) if p.pid not in {m.pid for m in members}]
        wait_gone(members, grace)
    for _ in range(3):  # a later sweep catches what was started while the last one ran
        kill = getattr(signal, "SIGKILL", None)
        if kill is not None:
            _signal_group(pid, kill)
        _signal(members, None)
        newer = [p for m in members if _alive(m) for p in _children(m)]
        known = {m.pid for m in members}
        newer = [p for p in newer if p.pid not in known]
        if not newer:
            break
        members += newer
    left = wait_gone(members, timeout, own)
    if own is not None and own.poll() is None:
        left.insert(0, psutil.Process(own.pid))
    return [p.pid for p in left]


def _children(process: psutil.Process) -> list[psutil.Process]:
    try:
        return list(process.children(recursive=True))
    except psutil.Error:
        return []


# --------------------------------------------------------------------------- run_bounded


class RunResult(NamedTuple):
    """What :func:`run_bounded` saw: exit status, both outputs, and whether the bound hit."""

    returncode: int | None
    stdout: str
    stderr: str
    timed_out: bool


_LEFTOVER_TIMEOUT = 30.0  # stopping what the command left behind in its group


def _memory_limit(memory_mb: int) -> Any:
    """A ``preexec_fn`` capping the child's address space (POSIX only)."""

    def limit() -> None:  # pragma: no cover - runs in the child
        import resource

        size = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (size, size))

    return limit


def run_bounded(cmd: Sequence[str], timeout: float, *, env: Mapping[str, str] | None = None,
                cwd: str | os.PathLike[str] | None = None, merge_stderr: bool = False,
                memory_mb: int | None = None) -> RunResult:
    """Run ``cmd`` (no shell, no stdin) for at most ``timeout`` seconds; capture its output.

    The child starts in a process group of its own (a new session on POSIX,
    ``CREATE_NEW_PROCESS_GROUP`` on Windows). When it returns, or past the
    bound (``timed_out=True``), :func:`kill_tree` stops whatever is left of the
    tree, also processes that left for a session of their own (MPICH's proxy
    and ranks), and waits until they are gone; only our own child is reaped.
    Output goes to temporary files, so a leftover process holding it open
    cannot stall the caller, and what was written before the bound is kept.
    ``merge_stderr`` sends stderr into stdout; ``memory_mb`` caps the child's
    address space where ``resource`` exists (ignored elsewhere). Raises
    ``FileNotFoundError`` / ``PermissionError`` (an ``OSError`` naming the
    program) when the command cannot be started.
    """
    argv = [os.fspath(part) for part in cmd]
    if not argv:
        raise ValueError("run_bounded() needs a command, got an empty one")
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"timeout must be a number of seconds, got {type(timeout).__name__}")
    if not math.isfinite(timeout) or timeout <= 0:
        raise ValueError(f"timeout must be a finite number of seconds > 0, got {timeout!r}")
    kwargs: dict[str, Any] = {}
    if os.name == "posix":
        kwargs["start_new_session"] = True
        if memory_mb:
            kwargs["preexec_fn"] = _memory_limit(memory_mb)
    else:  # pragma: no cover - Windows
        kwargs["creationflags"] = getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        try:
            child = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT if merge_stderr else err,
                env=None if env is None else dict(env), cwd=cwd, **kwargs,
            )
        except OSError as exc:  # OSError(errno, ...) is FileNotFoundError, PermissionError, ...
            raise OSError(exc.errno, f"cannot start {argv[0]!r}: {exc.strerror or exc}") from exc
        timed_out = False
        try:
            child.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:  # KeyboardInterrupt included: leave nothing running
            kill_tree(child, timeout=_LEFTOVER_TIMEOUT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=_LEFTOVER_TIMEOUT)
        return RunResult(child.returncode, _text(out), _text(err), timed_out)


def _text(file: Any) -> str:
    """What a temporary output file holds, as text with universal newlines."""
    file.seek(0)
    return str(file.read().decode(errors="replace")).replace("\r\n", "\n")
