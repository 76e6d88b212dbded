"""Worker functions about a process's life: identity, its copy of memory, exit codes, signals.

Targets for ``ctx.Process`` in chapter 2's first notebook; importable by name, so
they run under every start method.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

from ..workers import as_int
from .common import as_seconds

__all__ = [
    "announce_after",
    "die_abruptly",
    "exit_with",
    "guarded_sleep",
    "logged_call",
    "raise_error",
    "report_identity",
    "try_to_start_child",
    "write_into_copy",
]


# --------------------------------------------------------------------------- identity, memory


def report_identity(mailbox: Any, tag: object = None) -> None:
    """Put a dict describing this process on ``mailbox`` (a queue): tag, name, pid, ppid, daemon."""
    me = multiprocessing.current_process()
    mailbox.put(
        {"tag": tag, "name": me.name, "pid": os.getpid(), "ppid": os.getppid(), "daemon": me.daemon}
    )


def write_into_copy(data: list[object], index: int, mailbox: Any) -> None:
    """Set ``data[index] = index`` in this process's copy of ``data``; report what it sees.

    Puts ``(index, pid, list(data))`` on ``mailbox``. The parent's list is not
    changed: a child process works on a copy of its arguments.
    """
    data[index] = index
    mailbox.put((index, os.getpid(), list(data)))


# --------------------------------------------------------------------------- exit codes, signals


def exit_with(code: int) -> None:
    """End the process with exit status ``code`` (``sys.exit(code)``; prints nothing)."""
    status = as_int(code, "code")
    if not 0 <= status <= 255:
        raise ValueError(f"an exit status is between 0 and 255, got {status}")
    sys.exit(status)


def raise_error(message: str) -> None:
    """Raise ``RuntimeError(message)``: an uncaught exception ends a process with exit code 1.

    Python prints the traceback on the child's stderr; run it through
    :func:`logged_call` to send that traceback to a file instead.
    """
    raise RuntimeError(message)


def logged_call(log_path: str | os.PathLike[str], fn: Callable[..., object], *args: object) -> None:
    """Process target: send this child's stderr to ``log_path``, then call ``fn(*args)``.

    Both Python's ``sys.stderr`` and file descriptor 2 are redirected, so an
    uncaught exception's traceback ends up in the log file instead of the
    terminal or the notebook. The exit code is unchanged (1 after an uncaught
    exception).
    """
    log = open(log_path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 - lives until exit
    try:
        os.dup2(log.fileno(), 2)
    except OSError:  # pragma: no cover - no fd 2 (a Windows GUI process)
        pass
    sys.stderr = log
    fn(*args)


_SIGTERM_MODES = ("default", "exit", "ignore")


def _exit_on_sigterm(signum: int, frame: object) -> None:
    sys.exit(128 + signum)


def guarded_sleep(seconds: float, ready: Any = None, cleaned: Any = None,
                  on_sigterm: str = "default") -> None:
    """Sleep ``seconds`` inside ``try/finally``; the ``finally`` block sets ``cleaned``.

    ``on_sigterm`` says what SIGTERM (``Process.terminate()`` on Unix) does:

    - ``"default"``: Python's default, the process dies at once and the
      ``finally`` block never runs (exit code -15);
    - ``"exit"``: a handler turns SIGTERM into ``sys.exit(143)``, so the
      ``finally`` block runs before the process ends (exit code 143);
    - ``"ignore"``: SIGTERM is ignored; only SIGKILL (``kill()``) stops it.

    ``ready`` and ``cleaned`` are optional ``ctx.Event()`` objects: ``ready``
    is set once the handler is installed (wait for it before signalling).
    """
    duration = as_seconds(seconds, "seconds")
    if on_sigterm not in _SIGTERM_MODES:
        raise ValueError(f"on_sigterm must be one of {_SIGTERM_MODES}, got {on_sigterm!r}")
    if on_sigterm == "exit":
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
    elif on_sigterm == "ignore":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    else:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        # Inside the try: SIGTERM may arrive while set() is still waking the parent.
        if ready is not None:
            ready.set()
        time.sleep(duration)
    finally:
        if cleaned is not None:
            cleaned.set()


def announce_after(label: str, seconds: float) -> None:
    """Sleep ``seconds``, then print ``"<label>: finished after <seconds> s"`` (for scripts)."""
    time.sleep(as_seconds(seconds, "seconds"))
    print(f"{label}: finished after {seconds:g} s", flush=True)


def try_to_start_child(mailbox: Any) -> None:
    """Try to start a grandchild process; put ``"started"`` or the error text on ``mailbox``.

    A daemon process may not have children: ``start()`` raises there.
    """
    try:
        # spawn exists everywhere and needs no fork server of its own inside this child
        context: Any = multiprocessing.get_context("spawn")
        grandchild = context.Process(target=time.sleep, args=(0,))
        grandchild.start()
        grandchild.join(5)
        mailbox.put("started a grandchild")
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        mailbox.put(f"{type(exc).__name__}: {exc}")


def die_abruptly(code: int = 1) -> None:
    """``os._exit(code)``: end the process at once, skipping all clean-up (a crash stand-in)."""
    os._exit(as_int(code, "code"))
