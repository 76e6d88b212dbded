"""Starting and stopping the processes behind the engines, and the failure demos' tools.

:func:`stop_tree` and :func:`stop_all` stop a launcher and every process it
started through :mod:`course_lib.proc` (Celery workers, redis-server, SCOOP);
:func:`kill_process` crashes one worker on purpose; :func:`is_worker_lost`
recognises a task lost with its worker (ipyparallel, Dask, Celery).
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Sequence
from typing import Any

import psutil

from course_lib.distributed.config import HOST, check_positive
from course_lib.proc import kill_all, kill_tree, send_to_tree, wait_gone


def free_port(host: str = HOST) -> int:
    """A TCP port that is free right now on ``host``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def stop_tree(proc: subprocess.Popen[Any], grace: float = 5.0) -> None:
    """SIGTERM the process, its descendants and its group, wait ``grace`` s, then kill them.

    :func:`course_lib.proc.kill_tree` does it on every platform (no ``os.killpg`` needed).
    """
    kill_tree(proc, timeout=grace, grace=grace if proc.poll() is None else 0.0)


def stop_all(procs: Sequence[subprocess.Popen[Any]], sig: int, grace: float) -> None:
    """Send ``sig`` to every process tree at once, wait ``grace`` s, then kill the rest."""
    families = [send_to_tree(proc, sig) for proc in procs if proc.poll() is None]
    wait_gone([member for members in families for member in members], grace)
    for proc in procs:
        kill_tree(proc, timeout=grace)


def kill_process(pid: int) -> None:
    """Kill process ``pid`` at once (SIGKILL on Unix): a crash, not a shutdown.

    The failure demos use it to kill one worker mid-task; killing a process
    that has already gone is not an error.
    """
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        raise ValueError(f"pid must be a positive process id, got {pid!r}")
    if pid == os.getpid():
        raise ValueError("kill_process() refuses to kill the process that calls it")
    try:
        process = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return
    # Wait until it is gone, without reaping it: its parent collects its exit status.
    kill_all([process], timeout=5.0)


def wait_for(predicate: Any, timeout: float, what: str, *, interval: float = 0.02,
             clock: Any = time.monotonic, sleep: Any = time.sleep) -> None:
    """Call ``predicate()`` until it is true; ``TimeoutError`` naming ``what`` after
    ``timeout`` seconds."""
    check_positive("timeout", timeout)
    deadline = clock() + timeout
    while not predicate():
        if clock() > deadline:
            raise TimeoutError(f"{what} did not happen within {timeout:g} s")
        sleep(interval)


_LOST = {"EngineError", "KilledWorker", "WorkerLostError"}


def is_worker_lost(error: BaseException) -> bool:
    """True when ``error`` says the task was lost with the worker running it.

    ipyparallel: ``EngineError`` (usually wrapped in a ``RemoteError`` whose
    ``ename`` is ``"EngineError"``); Dask: ``KilledWorker``; Celery:
    ``WorkerLostError``. An exception the task raised itself is not a loss.
    """
    names = {type(error).__name__, str(getattr(error, "ename", ""))}
    return bool(names & _LOST)
