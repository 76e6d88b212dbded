"""``shutdown_helpers``: stop multiprocessing's idle fork server at the end of a notebook."""

from __future__ import annotations

import os
from pathlib import Path

from .. import internals

__all__ = ["shutdown_helpers"]


# --------------------------------------------------------------------------- helpers


def _only_helpers_below_us() -> bool:
    """True when every child of this process is one of multiprocessing's helpers."""
    import psutil

    markers = ("multiprocessing.resource_tracker", "multiprocessing.forkserver")
    for child in psutil.Process().children(recursive=False):
        try:
            if child.status() == psutil.STATUS_ZOMBIE:
                continue
            command = " ".join(child.cmdline())
        except psutil.Error:
            continue
        if not any(marker in command for marker in markers):
            return False
    return True


def shutdown_helpers() -> list[str]:
    """Stop the idle fork server and remove multiprocessing's temporary folder; say what was done.

    ``multiprocessing`` starts helper processes on first use and keeps them
    for the rest of the session: a *fork server* (``forkserver`` start
    method) and a *resource tracker* (``spawn``, ``forkserver``, shared
    memory). The fork server's socket lives in a temporary folder
    (``pymp-...``) that is removed only when Python exits normally. Call this
    at the end of a notebook: it stops the fork server if no process it
    started is still alive and nothing else runs below this process, then
    removes the folder if it is empty. Both come back by themselves when next
    needed. The resource tracker is left alone: it ends with the kernel.
    """
    import gc

    import psutil

    done: list[str] = []
    gc.collect()
    pid = internals.forkserver_pid()  # None: none runs, or no fork server on this platform
    if pid is not None:
        try:
            busy = bool(psutil.Process(pid).children())
        except psutil.NoSuchProcess:
            busy = False
        if not busy and _only_helpers_below_us():
            internals.stop_forkserver()
            done.append(f"stopped the fork server (pid {pid})")
    config = internals.process_config()
    folder = config.get("tempdir")
    if folder and os.path.isdir(folder) and pid is not None and internals.forkserver_pid() is None:
        # Sockets of fork servers that children started (they share this folder) and that
        # have ended with them: nobody listens on them any more.
        for entry in Path(folder).iterdir():
            if entry.name.startswith("listener-") and entry.is_socket():
                entry.unlink()
    if folder and os.path.isdir(folder) and not os.listdir(folder):
        os.rmdir(folder)
        config["tempdir"] = None
        for finalizer in internals.multiprocessing_finalizers() or []:
            if folder in internals.finalizer_args(finalizer):
                finalizer.cancel()
        done.append(f"removed multiprocessing's temporary folder {folder}")
    return done
