"""Worker functions that communicate: queues, pipes, shared values, manager lists and dicts."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..workers import as_int
from .common import as_seconds, process_name

if TYPE_CHECKING:
    from ..trace import RemoteTracer

__all__ = [
    "add_to_value",
    "increment_in_dict",
    "pipe_echo",
    "pipe_square_server",
    "queue_worker",
    "record_in_dict",
    "set_list_item",
]


def queue_worker(fn: Callable[[Any], object], tasks: Any, results: Any,
                 tracer: RemoteTracer | None = None) -> None:
    """Take ``(task_id, item)`` pairs from ``tasks`` until ``None``; answer on ``results``.

    For each task it puts ``(task_id, worker_name, "ok", fn(item))`` on
    ``results``, or ``(task_id, worker_name, "error", "ExcType: message")``
    if ``fn`` raised, and carries on. With a ``tracer`` (``tr.for_process()``)
    each task is recorded as a span named after ``fn``. A malformed task is
    reported as an error with task id ``None``. Returns when it takes ``None``.
    """
    name = process_name()
    label = getattr(fn, "__name__", "task")
    while True:
        task = tasks.get()
        if task is None:
            return
        try:
            task_id, item = task
        except (TypeError, ValueError):
            results.put((None, name, "error", f"malformed task {task!r}: expected (task_id, item)"))
            continue
        try:
            if tracer is not None:
                with tracer.span(label):
                    value = fn(item)
            else:
                value = fn(item)
        except Exception as exc:  # noqa: BLE001 - reported to the parent
            results.put((task_id, name, "error", f"{type(exc).__name__}: {exc}"))
        else:
            results.put((task_id, name, "ok", value))


def pipe_echo(conn: Any) -> None:
    """Receive strings on ``conn`` until ``None``; send each back upper-cased, then close."""
    try:
        while True:
            message = conn.recv()
            if message is None:
                return
            conn.send(str(message).upper())
    except EOFError:  # the other end was closed: nothing more will come
        return
    finally:
        conn.close()


def pipe_square_server(conn: Any, idle_timeout: float = 30.0) -> None:
    """Serve one client on a ``Pipe`` end: answer each number ``x`` with ``(x * x, pid)``.

    Stops at the sentinel ``None`` with exit code 0.  Exits with code 3 when
    the client closes its end without sending ``None`` (``EOFError``) or sends
    nothing for ``idle_timeout`` seconds, and with code 2 after answering a
    request that is not a number with ``("error", message)``.  Closes ``conn``.
    """
    limit = as_seconds(idle_timeout, "idle_timeout")
    pid = os.getpid()
    code = 0
    try:
        while True:
            if not conn.poll(limit):
                code = 3
                break
            request = conn.recv()
            if request is None:
                break
            if isinstance(request, bool) or not isinstance(request, (int, float)):
                conn.send(("error", f"expected a number, got {type(request).__name__}"))
                code = 2
                continue
            conn.send((request * request, pid))
    except (EOFError, OSError):  # the client is gone without saying goodbye
        code = 3
    finally:
        conn.close()
    if code:
        sys.exit(code)


def add_to_value(value: Any, n: int, use_lock: bool = True, start: Any = None) -> None:
    """Add 1 to ``value.value`` ``n`` times (a ``ctx.Value``), holding its lock if ``use_lock``.

    ``start`` is an optional ``ctx.Barrier``: waiting on it makes all the
    adders begin at the same moment, however long each took to start.
    """
    steps = as_int(n, "n")
    if start is not None:
        start.wait(60)
    if use_lock:
        for _ in range(steps):
            with value.get_lock():
                value.value += 1
    else:
        for _ in range(steps):
            value.value += 1


def set_list_item(shared_list: Any, index: int, value: object) -> None:
    """``shared_list[index] = value`` (a ``ShareableList`` or a manager list proxy)."""
    shared_list[index] = value
    shm = getattr(shared_list, "shm", None)
    if shm is not None:  # a ShareableList attached in this child: let go of the mapping
        shm.close()


def record_in_dict(shared_dict: Any, key: object, value: object) -> None:
    """``shared_dict[key] = (value, worker name)`` (a manager dict proxy)."""
    shared_dict[key] = (value, process_name())


def increment_in_dict(shared_dict: Any, key: object, n: int, lock: Any = None,
                      start: Any = None) -> None:
    """``shared_dict[key] += 1``, ``n`` times; holding ``lock`` around each update if given.

    Without a lock the read and the write are two separate round trips to the
    manager, so two processes can both read the same old value. ``start`` is
    an optional ``ctx.Barrier`` to begin together (see :func:`add_to_value`).
    """
    steps = as_int(n, "n")
    if start is not None:
        start.wait(60)
    for _ in range(steps):
        if lock is None:
            shared_dict[key] = shared_dict[key] + 1
        else:
            with lock:
                shared_dict[key] = shared_dict[key] + 1
