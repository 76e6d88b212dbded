"""Small asyncio helpers for the course: fetch from the local server, run coroutines safely.

- :func:`fetch` (``async``) and :func:`fetch_blocking`: one HTTP GET to a
  :class:`course_lib.netserver.LatencyServer` (or any ``http://`` address),
  with asyncio streams or a plain socket; both return the body as text and
  raise :class:`FetchError` for a status other than 200.
- :func:`run_in_new_loop`: run a coroutine function to the end in a fresh
  event loop on a helper thread. It does what ``asyncio.run`` does in a
  script, from code that cannot call ``asyncio.run`` because a loop is
  already running in its thread (a notebook), e.g. inside :func:`course_lib.compare`.
- :func:`run_isolated`: the same with a time bound that survives a blocked
  loop, reporting what happened (:class:`IsolatedRun`); the course's checks use it.
- :func:`default_executor`: give the running loop a private default thread
  pool for a ``with`` block, so that ``asyncio.to_thread`` leaves no thread
  behind in a notebook.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import socket
import threading
import time
import urllib.parse
import weakref
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, SupportsIndex, TypeVar

from . import internals
from .netserver import LatencyServer

__all__ = [
    "FetchError",
    "IsolatedRun",
    "default_executor",
    "fetch",
    "fetch_blocking",
    "run_in_new_loop",
    "run_isolated",
]

T = TypeVar("T")
Target = LatencyServer | int | str | tuple[str, int]

_MAX_RESPONSE = 1 << 20


class FetchError(Exception):
    """The server answered with a status other than 200 (``status``, ``path``, ``body``)."""

    def __init__(self, status: int, path: str, body: str = "") -> None:
        super().__init__(f"GET {path} answered {status}: {body.strip()[:200]}")
        self.status = status
        self.path = path
        self.body = body


# --------------------------------------------------------------------------- fetching


def _where(target: Target, path: str | None) -> tuple[str, int, str]:
    """(host, port, path) from a server, a port, an http:// URL or a (host, port) pair."""
    if isinstance(target, LatencyServer):
        host, port = target.address
    elif isinstance(target, bool):
        raise TypeError("target must be a LatencyServer, a port, a URL or (host, port), not a bool")
    elif isinstance(target, int):
        host, port = "127.0.0.1", target
    elif isinstance(target, tuple) and len(target) == 2:
        host, port = str(target[0]), int(target[1])
    elif isinstance(target, str):
        split = urllib.parse.urlsplit(target)
        if split.scheme != "http" or not split.hostname or split.port is None:
            raise ValueError(f"expected a URL like 'http://127.0.0.1:8000/path', got {target!r}")
        url_path = split.path + (f"?{split.query}" if split.query else "")
        if url_path and path is not None:
            raise ValueError(f"the URL {target!r} already has a path; do not pass path={path!r}")
        host, port, path = split.hostname, split.port, path if path is not None else url_path
    else:
        raise TypeError("target must be a LatencyServer, a port number, a URL such as "
                        "'http://127.0.0.1:8000/' or a (host, port) pair, "
                        f"got {type(target).__name__}")
    path = path or "/"
    if not isinstance(path, str) or not path.startswith("/"):
        raise ValueError(f"the path must start with '/', got {path!r}")
    if not 0 < port < 65536:
        raise ValueError(f"port must be between 1 and 65535, got {port}")
    return host, port, path


def _request(host: str, port: int, path: str) -> bytes:
    return (f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: course-lib\r\n"
            "Connection: close\r\n\r\n").encode("latin-1")


def _parse_response(data: bytes, path: str) -> str:
    head, sep, body = data.partition(b"\r\n\r\n")
    line = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = line.split(" ", 2)
    if not sep or len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise ConnectionError(f"GET {path}: the server's answer was not HTTP ({data[:60]!r})")
    status = int(parts[1])
    text = body.decode("utf-8", errors="replace")
    if status != 200:
        raise FetchError(status, path, text)
    return text


def _refused(host: str, port: int) -> ConnectionRefusedError:
    return ConnectionRefusedError(
        f"nothing is listening on {host}:{port}: is the LatencyServer running "
        "(are you inside its with-block)?")


async def fetch(target: Target, path: str | None = None, *, timeout: float | None = 30.0) -> str:
    """GET ``path`` from ``target`` with asyncio streams; return the body as text.

    ``target`` is a LatencyServer, a port on 127.0.0.1, an ``http://`` URL (then
    leave ``path`` out) or a ``(host, port)`` pair. Raises :class:`FetchError`
    for a status other than 200 and :class:`TimeoutError` after ``timeout``
    seconds (None: no limit). When the awaiting task is cancelled, the
    connection is closed at once, so the server sees the client leave.
    """
    host, port, where = _where(target, path)
    async with asyncio.timeout(timeout):  # no extra task, unlike wait_for on Python 3.11
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except ConnectionRefusedError:
            raise _refused(host, port) from None
        try:
            writer.write(_request(host, port, where))
            await writer.drain()
            data = b""
            while True:  # read to the end: the server closes the connection after its answer
                more = await reader.read(_MAX_RESPONSE)
                if not more:
                    break
                data += more
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
    return _parse_response(data, where)


def fetch_blocking(target: Target, path: str | None = None, *, timeout: float = 30.0) -> str:
    """The same GET as :func:`fetch`, with a plain blocking socket (for serial code and threads).

    Never call it inside ``async def``: it blocks the event loop, and with it
    every other task, until the answer arrives.
    """
    host, port, where = _where(target, path)
    _note_blocking_call(f"fetch_blocking({where!r})")
    try:
        conn = socket.create_connection((host, port), timeout=timeout)
    except ConnectionRefusedError:
        raise _refused(host, port) from None
    with conn:
        conn.sendall(_request(host, port, where))
        chunks = []
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    return _parse_response(b"".join(chunks), where)


# --------------------------------------------------------------------------- blocking calls

# Loops run by run_isolated(watch_blocking=True): blocking calls made while they run are noted.
_WATCHED: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, list[str]] = (
    weakref.WeakKeyDictionary())
_WATCH_LOCK = threading.Lock()
_watchers = 0
_real_sleep = time.sleep


def _note_blocking_call(description: str) -> None:
    """Record ``description`` if the calling thread is running a watched event loop."""
    loop = internals.running_loop_or_none()
    if loop is not None:
        calls = _WATCHED.get(loop)
        if calls is not None:
            calls.append(description)


def _watching_sleep(seconds: float | SupportsIndex) -> None:
    if isinstance(seconds, (int, float)) and seconds > 0:
        _note_blocking_call(f"time.sleep({seconds!r})")
    _real_sleep(seconds)


@contextlib.contextmanager
def _watch_time_sleep() -> Iterator[None]:
    """While active, ``time.sleep`` inside a watched loop is recorded (it still sleeps)."""
    global _watchers
    with _WATCH_LOCK:
        _watchers += 1
        if _watchers == 1:
            time.sleep = _watching_sleep
    try:
        yield
    finally:
        with _WATCH_LOCK:
            _watchers -= 1
            if _watchers == 0:
                time.sleep = _real_sleep


# --------------------------------------------------------------------------- running coroutines


@dataclass
class IsolatedRun:
    """What :func:`run_isolated` saw. ``value``/``error`` hold the outcome when ``finished``."""

    name: str
    finished: bool = False
    value: Any = None
    error: BaseException | None = None
    timed_out: bool = False
    abandoned: bool = False
    loop_responsive: bool = True
    pending_tasks: list[str] = field(default_factory=list)  # "Task-7 (fetch)"
    loop_errors: list[str] = field(default_factory=list)
    blocking_calls: list[str] = field(default_factory=list)
    not_awaitable: str = ""
    elapsed: float = 0.0

    @property
    def ok(self) -> bool:
        """It finished in time without an exception."""
        return self.finished and self.error is None and not self.timed_out


async def _await(awaitable: Awaitable[T]) -> T:
    return await awaitable


def _describe_task(task: asyncio.Task[Any]) -> str:
    """``"Task-7 (fetch)"``: the task's name and the coroutine it runs."""
    coro = task.get_coro()
    what = getattr(coro, "__qualname__", None) or type(coro).__name__
    return f"{task.get_name()} ({what})"


def _describe_context(context: Mapping[str, Any]) -> str:
    message = str(context.get("message", "error"))
    exc = context.get("exception")
    if exc is not None:
        message += f" ({type(exc).__name__}: {exc})"
    task = context.get("task") or context.get("future")
    if isinstance(task, asyncio.Task):
        message += f" [task {task.get_name()}]"
    return message


def run_isolated(
    coro_fn: Callable[..., Any],
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    *,
    timeout: float | None,
    grace: float = 1.0,
    watch_blocking: bool = False,
    name: str | None = None,
) -> IsolatedRun:
    """Run ``coro_fn(*args, **kwargs)`` in a fresh event loop on a daemon helper thread.

    The coroutine is cancelled once ``timeout`` seconds have passed
    (``timed_out``). If even ``grace`` seconds later it has not stopped (its
    code blocks the loop, e.g. with ``time.sleep``, or it swallows the
    cancellation), the helper thread is abandoned (``abandoned``; it stops its
    loop as soon as it gets control back) and this call returns anyway, so it
    never waits more than ``timeout + grace + 0.3`` seconds. Tasks still running
    when the coroutine returned are listed in ``pending_tasks`` and cancelled;
    errors the loop reported (a task's exception nobody retrieved) are in
    ``loop_errors``. With ``watch_blocking``, ``time.sleep`` and
    :func:`fetch_blocking` called inside the loop are listed in ``blocking_calls``.
    Nothing is printed.
    """
    if timeout is not None and not (isinstance(timeout, (int, float)) and timeout > 0):
        raise ValueError(f"timeout must be a positive number of seconds or None, got {timeout!r}")
    if not callable(coro_fn):
        raise TypeError(f"expected a coroutine function, got {type(coro_fn).__name__}")
    label = str(name or getattr(coro_fn, "__name__", "coroutine"))
    run = IsolatedRun(label)
    holder: dict[str, asyncio.AbstractEventLoop] = {}
    kwargs = dict(kwargs or {})

    def on_loop_error(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        run.loop_errors.append(_describe_context(context))

    def target() -> None:
        loop = asyncio.new_event_loop()
        holder["loop"] = loop
        loop.set_exception_handler(on_loop_error)
        if watch_blocking:
            _WATCHED[loop] = run.blocking_calls
        expired = False
        main: asyncio.Task[Any] | None = None

        def expire() -> None:
            nonlocal expired
            expired = True
            if main is not None:
                main.cancel()

        try:
            try:
                made = coro_fn(*args, **kwargs)
            except BaseException as exc:
                run.finished, run.error = True, exc
                return
            if not inspect.isawaitable(made):
                run.not_awaitable = type(made).__name__
                run.finished, run.value = True, made
                return
            main = loop.create_task(
                made if inspect.iscoroutine(made) else _await(made), name=label)
            if timeout is not None:
                loop.call_later(timeout, expire)
            try:
                run.value = loop.run_until_complete(main)
                run.finished = True
            except asyncio.CancelledError as exc:
                if expired:
                    run.timed_out = True
                else:
                    run.finished, run.error = True, exc
            except RuntimeError as exc:
                if main.done():  # the coroutine's own RuntimeError, not loop.stop() from outside
                    run.finished, run.error = True, exc
            except BaseException as exc:
                run.finished, run.error = True, exc
            left = [t for t in asyncio.all_tasks(loop) if not t.done()]
            if run.finished:
                run.pending_tasks = sorted(_describe_task(t) for t in left)
            for task in left:
                task.cancel()
            if left and not run.abandoned:
                with contextlib.suppress(BaseException):
                    loop.run_until_complete(asyncio.wait(left, timeout=grace))
            if not run.abandoned:
                with contextlib.suppress(BaseException):
                    loop.run_until_complete(loop.shutdown_asyncgens())
                with contextlib.suppress(BaseException):
                    loop.run_until_complete(
                        asyncio.wait_for(loop.shutdown_default_executor(), grace))
        finally:
            _WATCHED.pop(loop, None)
            loop.close()

    thread = threading.Thread(target=target, name=f"isolated-loop-{label}", daemon=True)
    began = time.perf_counter()
    with _watch_time_sleep() if watch_blocking else contextlib.nullcontext():
        thread.start()
        thread.join(None if timeout is None else timeout + grace)
        if thread.is_alive():
            run.abandoned = True
            loop = holder.get("loop")
            if loop is not None:
                ping = threading.Event()
                try:
                    loop.call_soon_threadsafe(ping.set)
                    run.loop_responsive = ping.wait(0.1)
                    loop.call_soon_threadsafe(loop.stop)
                except RuntimeError:  # closed in the meantime
                    pass
            thread.join(0.2)
    run.elapsed = time.perf_counter() - began
    return run


def run_in_new_loop(coro_fn: Callable[..., Awaitable[T]], *args: Any,
                    timeout: float | None = None, **kwargs: Any) -> T:
    """Run ``coro_fn(*args, **kwargs)`` to the end in a fresh event loop; return its result.

    Like ``asyncio.run`` in a script, but callable where a loop is already
    running in this thread (a notebook cell, a function handed to
    :func:`course_lib.compare`): the loop lives on a helper thread and is
    closed at the end, with any task left over cancelled. Re-raises the
    coroutine's exception; raises :class:`TimeoutError` after ``timeout`` s.
    """
    run = run_isolated(coro_fn, args, kwargs, timeout=timeout)
    if run.not_awaitable:
        raise TypeError(f"{run.name}() returned {run.not_awaitable}, not a coroutine: "
                        "pass an async def function")
    if run.error is not None:
        raise run.error
    if run.timed_out or run.abandoned:
        blocked = "" if run.loop_responsive else " (its event loop was blocked)"
        raise TimeoutError(f"{run.name}() did not finish within {timeout:g} s{blocked}")
    return run.value  # type: ignore[no-any-return]


@contextlib.contextmanager
def default_executor(max_workers: int | None = None) -> Iterator[ThreadPoolExecutor]:
    """Give the running loop a fresh default thread pool for the block; shut it down after.

    ``asyncio.to_thread`` and ``loop.run_in_executor(None, ...)`` use the loop's
    default pool, whose threads live as long as the loop: in a notebook, as long
    as the kernel. Inside this block they use a private pool instead, whose
    threads end with the block. Call it where a loop is running (a notebook
    cell, or inside ``async def``).
    """
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        raise RuntimeError("default_executor() needs a running event loop: use it in a notebook "
                           "cell or inside async def") from None
    if max_workers is not None and (isinstance(max_workers, bool) or max_workers < 1):
        raise ValueError(f"max_workers must be at least 1, got {max_workers!r}")
    previous = internals.default_executor(loop)
    pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="to_thread")
    loop.set_default_executor(pool)
    try:
        yield pool
    finally:
        internals.set_default_executor(loop, previous)
        pool.shutdown(wait=True, cancel_futures=True)
