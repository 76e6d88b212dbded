"""A local HTTP server with simulated latency and failures: real I/O without the internet.

:class:`LatencyServer` listens on ``127.0.0.1`` (an ephemeral port by default)
and answers ``GET`` requests after a simulated delay. It runs its own asyncio
event loop in a background thread, so blocking clients (plain sockets, threads)
and asyncio clients in a notebook can all talk to it. It is a context manager,
usable with ``with`` and ``async with``; leaving the block stops the thread.

Every connection is written to a :class:`ConnectionLog` (times on the server's
clock, ``time.perf_counter`` by default, the clock of :class:`course_lib.Tracer`).
The log answers what timing cannot prove: how many requests were *in flight at
once* (``max_in_flight``, ``in_flight`` over time), which were answered, which
clients gave up (``"client left"``, the mark of a cancelled request).

What a request can ask for (query parameters, all optional)::

    GET /any/path                 200 after `latency` s, body server.body_for("/any/path")
    GET /slow?delay=2             200 after 2 s instead of `latency`
    GET /broken?status=500        answers 500 (any status 100-599)
    GET /flaky?fail_first=2       the first 2 requests for this exact target get 503, then 200

``failure_rate`` makes that share of (path, attempt) pairs answer 503, chosen
by a hash of ``seed``, so a run is reproducible. Garbage bytes get ``400``, a
request head over ``max_request_bytes`` gets ``431``, a client that sends
nothing for ``request_timeout`` seconds gets ``408``; a client that disconnects
is logged and forgotten. None of these disturbs other connections.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import ipaddress
import math
import os
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ._render import Table, format_seconds
from .figures import new_axes

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from .spans import Span

__all__ = ["ConnectionLog", "ConnectionRecord", "LatencyServer", "OUTCOMES"]

Clock = Callable[[], float]

#: What can happen to a connection, as written in :attr:`ConnectionRecord.outcome`.
OUTCOMES = (
    "in progress",   # still open
    "ok",            # answered 200
    "error status",  # answered with a simulated failure (status >= 400 asked for or drawn)
    "bad request",   # garbage, a method other than GET, a malformed parameter: 400/405
    "too large",     # the request head exceeded max_request_bytes: 431
    "idle timeout",  # nothing (complete) arrived within request_timeout: 408
    "busy",          # more than max_connections were open: 503 at once
    "client left",   # the client closed the connection before the answer (e.g. it was cancelled)
    "server stopped",  # the server shut down while the request was open
)

_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            408: "Request Timeout", 431: "Request Header Fields Too Large",
            500: "Internal Server Error", 503: "Service Unavailable"}
_MAX_DELAY = 60.0


# --------------------------------------------------------------------------- the log


@dataclass(frozen=True)
class ConnectionRecord:
    """One connection as the server saw it (times in seconds on the server's clock).

    ``opened``: accepted; ``received``: the whole request head had arrived (None
    if it never did); ``closed``: the answer was about to be written, or the
    connection was given up (None while in progress). ``target`` is the request
    target (path and query), ``attempt`` counts requests for the same target
    (1 for the first). A *request* is in flight from ``received`` to ``closed``.
    """

    id: int
    opened: float
    received: float | None
    closed: float | None
    target: str | None
    path: str | None
    attempt: int
    status: int | None
    outcome: str

    @property
    def is_request(self) -> bool:
        """True when a complete request head arrived (garbage and idle connections are not)."""
        return self.received is not None


@dataclass
class _Conn:
    id: int
    opened: float
    received: float | None = None
    closed: float | None = None
    target: str | None = None
    path: str | None = None
    attempt: int = 0
    status: int | None = None
    outcome: str = "in progress"

    def freeze(self) -> ConnectionRecord:
        return ConnectionRecord(self.id, self.opened, self.received, self.closed, self.target,
                                self.path, self.attempt, self.status, self.outcome)


def _check_since(since: int) -> int:
    if isinstance(since, bool) or not isinstance(since, int) or since < 0:
        raise ValueError(f"since must be an int >= 0 (a value of log.mark()), got {since!r}")
    return since


class ConnectionLog:
    """Thread-safe record of a server's connections; the server writes, anyone reads.

    The server calls :meth:`begin`, :meth:`received` and :meth:`finish` (they use
    ``clock``, so a test can script time). Readers take ``since=log.mark()`` to
    look only at connections opened after the mark.
    """

    def __init__(self, clock: Clock = time.perf_counter) -> None:
        self._clock = clock
        self._lock = threading.Condition()
        self._conns: list[_Conn] = []
        self._attempts: collections.Counter[str] = collections.Counter()
        self._open = 0
        self._open_requests = 0
        self.errors: list[str] = []

    # -- written by the server ---------------------------------------------------

    def begin(self) -> int:
        """A connection was accepted; returns its id."""
        with self._lock:
            conn = _Conn(len(self._conns), self._clock())
            self._conns.append(conn)
            self._open += 1
            return conn.id

    def received(self, conn_id: int, target: str, path: str) -> int:
        """The request head for ``target`` arrived; returns the attempt number for that target."""
        with self._lock:
            conn = self._conns[conn_id]
            self._attempts[target] += 1
            if conn.received is None and conn.closed is None:
                self._open_requests += 1
            conn.received, conn.target, conn.path = self._clock(), target, path
            conn.attempt = self._attempts[target]
            return conn.attempt

    def finish(self, conn_id: int, status: int | None, outcome: str) -> None:
        """The connection is answered (``status``) or given up; the first call wins."""
        if outcome not in OUTCOMES or outcome == "in progress":
            raise ValueError(f"outcome must be one of {OUTCOMES[1:]}, got {outcome!r}")
        with self._lock:
            conn = self._conns[conn_id]
            if conn.closed is not None:
                return
            conn.closed, conn.status, conn.outcome = self._clock(), status, outcome
            self._open -= 1
            if conn.received is not None:
                self._open_requests -= 1
            self._lock.notify_all()

    def note_error(self, message: str) -> None:
        """Keep an error the server handled (it never reaches stderr)."""
        with self._lock:
            self.errors.append(message)

    # -- read by anyone ----------------------------------------------------------

    def mark(self) -> int:
        """A position in the log: pass it as ``since=`` to look only at what came after."""
        with self._lock:
            return len(self._conns)

    def __len__(self) -> int:
        return self.mark()

    def records(self, since: int = 0) -> list[ConnectionRecord]:
        """Every connection opened since the mark, in the order they were accepted."""
        start = _check_since(since)
        with self._lock:
            return [c.freeze() for c in self._conns[start:]]

    def requests(self, since: int = 0) -> list[ConnectionRecord]:
        """The connections that carried a complete request (garbage and idle ones left out)."""
        return [r for r in self.records(since) if r.is_request]

    @property
    def open_connections(self) -> int:
        """Connections accepted and not yet answered or given up."""
        with self._lock:
            return self._open

    def wait_idle(self, timeout: float = 2.0, *, requests_only: bool = False) -> bool:
        """Wait until no connection is open (at most ``timeout`` s); True if idle.

        With ``requests_only``, wait only for requests in flight: connections
        that never sent a complete request head (idle or garbage) are ignored.
        """
        deadline = time.monotonic() + timeout
        with self._lock:
            while (self._open_requests if requests_only else self._open) > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(left)
            return True

    def outcomes(self, since: int = 0) -> dict[str, int]:
        """How many connections ended each way, e.g. ``{"ok": 10, "client left": 2}``."""
        return dict(collections.Counter(r.outcome for r in self.records(since)))

    def _intervals(self, since: int) -> list[tuple[float, float, ConnectionRecord]]:
        now = self._clock()
        return [(r.received, r.closed if r.closed is not None else now, r)
                for r in self.requests(since) if r.received is not None]

    def in_flight(self, since: int = 0) -> list[tuple[float, int]]:
        """Requests in flight over time: ``(time, count from then on)`` at every change.

        A request is in flight from the moment its request head arrived until
        the server answered or gave it up. Open requests count until now.
        """
        events: list[tuple[float, int]] = []
        for start, end, _ in self._intervals(since):
            events.append((start, 1))
            events.append((max(start, end), -1))
        events.sort()  # at equal times an end (-1) sorts first: touching requests do not overlap
        steps: list[tuple[float, int]] = []
        running = 0
        for moment, delta in events:
            running += delta
            if steps and steps[-1][0] == moment:
                steps[-1] = (moment, running)
            else:
                steps.append((moment, running))
        return steps

    def max_in_flight(self, since: int = 0) -> int:
        """The largest number of requests that were in flight at one instant."""
        return max((count for _, count in self.in_flight(since)), default=0)

    # -- pictures and tables -----------------------------------------------------

    def spans(self, since: int = 0) -> list[Span]:
        """The requests as :class:`course_lib.Span` objects for :func:`course_lib.timeline`.

        Each request gets a lane "slot k": the lowest slot free when it arrived,
        so the number of lanes is the peak number of requests in flight. The
        span name is the outcome ("ok", "client left", ...).
        """
        from .spans import Span

        slots: list[float] = []
        out: list[Span] = []
        pid = os.getpid()
        for start, end, outcome in sorted((s, e, r.outcome) for s, e, r in self._intervals(since)):
            for index, busy_until in enumerate(slots):
                if busy_until <= start:
                    slots[index] = end
                    break
            else:
                index = len(slots)
                slots.append(end)
            out.append(Span(outcome, f"slot {index}", start, end, pid, "latency-server"))
        return out

    def plot(self, ax: Axes | None = None, *, title: str | None = None, since: int = 0,
             t0: float | None = None) -> Axes:
        """Step plot of the requests in flight over time (ms), with the peak marked."""
        steps = self.in_flight(since)
        ax = new_axes(ax, (10.0, 3.0))
        peak = max((n for _, n in steps), default=0)
        count = len(self.requests(since))
        ax.set_title(title if title is not None else
                     f"{count} requests, at most {peak} in flight at once")
        ax.set_ylabel("requests in flight")
        if not steps:
            ax.set_xlabel("time (ms)")
            ax.text(0.5, 0.5, "no requests recorded", transform=ax.transAxes,
                    ha="center", va="center")
            return ax
        origin = steps[0][0] if t0 is None else t0
        xs = [(moment - origin) * 1e3 for moment, _ in steps]
        ys = [n for _, n in steps]
        from matplotlib.ticker import MaxNLocator

        ax.fill_between(xs, ys, step="post", color="C0", alpha=0.25, linewidth=0)
        ax.step(xs, ys, where="post", color="C0", linewidth=1.5, label="in flight")
        ax.axhline(peak, color="black", linestyle="--", linewidth=1, label=f"peak: {peak}")
        ax.set_ylim(0, max(1, peak) * 1.15 + 0.5)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("time since " + ("the first request" if t0 is None else "t0") + " (ms)")
        ax.grid(alpha=0.3)
        ax.legend(loc="upper right", fontsize=8)
        return ax

    def table(self, since: int = 0) -> Table:
        """A summary: how many requests, the peak in flight, how they ended."""
        requests = self.requests(since)
        durations = sorted((r.closed or 0.0) - (r.received or 0.0)
                           for r in requests if r.closed is not None)
        median = durations[len(durations) // 2] if durations else math.nan
        rows: list[list[object]] = [
            ["connections", len(self.records(since))],
            ["requests", len(requests)],
            ["peak in flight", self.max_in_flight(since)],
            ["median time at the server", format_seconds(median)],
        ]
        rows += [[f"outcome: {name}", n] for name, n in sorted(self.outcomes(since).items())]
        notes = [f"{len(self.errors)} server-side errors were handled: {self.errors[-1]}"
                 ] if self.errors else []
        return Table(["", "value"], rows, "connection log", notes)

    def __str__(self) -> str:
        return self.table().text()

    def _repr_html_(self) -> str:
        return self.table().html()

    def __repr__(self) -> str:
        return f"<ConnectionLog {len(self)} connections, {self.open_connections} open>"


# --------------------------------------------------------------------------- the server


class _Reject(Exception):
    """Answer with ``status`` and stop handling the request."""

    def __init__(self, status: int, outcome: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.outcome = outcome


def _unit(seed: int, *parts: object) -> float:
    """A reproducible number in [0, 1) from ``seed`` and ``parts``."""
    text = "\x1f".join(map(str, (seed, *parts))).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big") / 2.0**64


def _number(value: object, name: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    number = float(value)
    if not (math.isfinite(number) and low <= number <= high):
        raise ValueError(f"{name} must be between {low:g} and {high:g}, got {value!r}")
    return number


def _integer(value: object, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name} must be an int between {low} and {high}, got {value!r}")
    return value


class LatencyServer:
    """A local HTTP server that answers after ``latency`` seconds; see the module docstring.

    ``with LatencyServer(latency=0.05) as server:`` starts it on
    ``127.0.0.1`` and an ephemeral port, and stops it (and its thread) at the
    end of the block; ``async with`` works the same. ``server.url(path)``,
    ``server.port`` and ``server.address`` tell clients where it is;
    ``server.log`` is its :class:`ConnectionLog`; ``server.body_for(path)`` is
    the body a successful request for ``path`` returns.
    """

    def __init__(
        self,
        latency: float = 0.05,
        *,
        jitter: float = 0.0,
        failure_rate: float = 0.0,
        seed: int = 0,
        host: str = "127.0.0.1",
        port: int = 0,
        request_timeout: float = 5.0,
        max_request_bytes: int = 8192,
        max_connections: int = 10_000,
        backlog: int = 1024,
        clock: Clock = time.perf_counter,
    ) -> None:
        self.latency = _number(latency, "latency", 0.0, _MAX_DELAY)
        self.jitter = _number(jitter, "jitter", 0.0, _MAX_DELAY)
        self.failure_rate = _number(failure_rate, "failure_rate", 0.0, 1.0)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an int, got {type(seed).__name__}")
        self.seed = seed
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"host must be a numeric IP address such as '127.0.0.1', got {host!r} "
                             "(a name would need a DNS lookup)") from None
        self.host = host
        self._port = _integer(port, "port", 0, 65535)
        self.request_timeout = _number(request_timeout, "request_timeout", 0.001, 3600.0)
        self.max_request_bytes = _integer(max_request_bytes, "max_request_bytes", 64, 1 << 20)
        self.max_connections = _integer(max_connections, "max_connections", 1, 1 << 20)
        self.backlog = _integer(backlog, "backlog", 1, 1 << 16)
        self.log = ConnectionLog(clock)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._handlers: set[asyncio.Task[Any]] = set()
        self._active = 0
        self._startup_error: BaseException | None = None

    # -- what clients need -------------------------------------------------------

    @property
    def running(self) -> bool:
        """True between start() and stop()."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def port(self) -> int:
        """The TCP port it listens on (known once started)."""
        if not self.running:
            raise RuntimeError("the LatencyServer is not running: use it inside its with-block "
                               "(with LatencyServer() as server: ...)")
        return self._port

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)``."""
        return self.host, self.port

    def url(self, path: str = "/") -> str:
        """``http://127.0.0.1:PORT/path``."""
        if not path.startswith("/"):
            raise ValueError(f"a path starts with '/', got {path!r}")
        return f"http://{self.host}:{self.port}{path}"

    def body_for(self, path: str) -> str:
        """The body a successful request for ``path`` (query ignored) returns."""
        path = urllib.parse.urlsplit(path).path or path
        digest = hashlib.blake2b(f"{self.seed}:{path}".encode(), digest_size=4).hexdigest()
        return f"{path} {digest}"

    def will_fail(self, path: str, attempt: int = 1) -> bool:
        """Whether ``failure_rate`` makes this (path, attempt) answer 503."""
        path = urllib.parse.urlsplit(path).path or path
        return _unit(self.seed, "fail", path, attempt) < self.failure_rate

    def delay_for(self, target: str, attempt: int = 1) -> float:
        """The simulated latency of a request (``delay=`` wins over latency and jitter)."""
        split = urllib.parse.urlsplit(target)
        params = urllib.parse.parse_qs(split.query)
        if "delay" in params:
            return _number(float(params["delay"][-1]), "delay", 0.0, _MAX_DELAY)
        return self.latency + self.jitter * _unit(self.seed, "jitter", target, attempt)

    # -- life cycle --------------------------------------------------------------

    def start(self) -> LatencyServer:
        """Start listening (in a background thread); returns self."""
        if self._thread is not None:
            raise RuntimeError("this LatencyServer was already started; create a new one")
        try:
            sock = socket.create_server((self.host, self._port), backlog=self.backlog)
        except OSError as exc:
            raise OSError(exc.errno, f"cannot listen on {self.host}:{self._port}: {exc.strerror}; "
                          "use port=0 to get a free port") from None
        sock.setblocking(False)
        self._port = sock.getsockname()[1]
        ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(sock, ready),
                                        name=f"latency-server-{self._port}", daemon=True)
        self._thread.start()
        if not ready.wait(10.0) or self._startup_error is not None:
            self.stop()
            raise RuntimeError(f"the LatencyServer did not start: {self._startup_error!r}")
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving, end open connections ("server stopped"), end the thread. Idempotent."""
        thread, loop = self._thread, self._loop
        if thread is None or not thread.is_alive():
            return
        if loop is not None and not loop.is_closed():
            try:
                asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
            except RuntimeError:  # the loop already stopped
                pass
        thread.join(timeout)
        if thread.is_alive():
            raise RuntimeError(f"the LatencyServer thread did not stop within {timeout:g} s")

    def __enter__(self) -> LatencyServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    async def __aenter__(self) -> LatencyServer:
        return self.start()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = f"http://{self.host}:{self._port}" if self.running else "stopped"
        return (f"<LatencyServer {where} latency={format_seconds(self.latency)} "
                f"connections={len(self.log)}>")

    def _repr_html_(self) -> str:
        table = self.log.table()
        table.title = repr(self)
        return table.html()

    # -- inside the server thread ------------------------------------------------

    def _serve(self, sock: socket.socket, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        loop.set_exception_handler(self._loop_error)
        self._loop = loop
        try:
            try:
                self._server = loop.run_until_complete(asyncio.start_server(
                    self._handle, sock=sock, limit=self.max_request_bytes, backlog=self.backlog))
            except BaseException as exc:  # reported by start()
                self._startup_error = exc
                sock.close()
                return
            finally:
                ready.set()
            loop.run_forever()
        finally:
            try:
                if self._handlers:  # stopped without _shutdown (should not happen): end them
                    for task in list(self._handlers):
                        task.cancel()
                    loop.run_until_complete(asyncio.wait(list(self._handlers), timeout=2.0))
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()

    async def _shutdown(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            if self._server is not None:
                self._server.close()
            tasks = list(self._handlers)
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.wait(tasks, timeout=2.0)
        finally:
            loop.stop()

    def _loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        message = str(context.get("message", "error"))
        self.log.note_error(f"{message}: {exc!r}" if exc is not None else message)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        conn = self.log.begin()
        self._active += 1
        try:
            status, outcome, body = await self._serve_one(conn, reader)
            self.log.finish(conn, status, outcome)  # before writing: the client may go on at once
            if status is not None:
                reason = _REASONS.get(status, "Status")
                payload = body.encode()
                writer.write(f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; "
                             f"charset=utf-8\r\nContent-Length: {len(payload)}\r\n"
                             "Connection: close\r\n\r\n".encode() + payload)
                await writer.drain()
                if writer.can_write_eof():
                    writer.write_eof()
                await self._linger(reader)
        except asyncio.CancelledError:
            self.log.finish(conn, None, "server stopped")
        except (ConnectionError, OSError):
            self.log.finish(conn, None, "client left")
        except Exception as exc:  # a bug here must not stop the server, nor print anything
            self.log.note_error(f"connection {conn}: {exc!r}")
            self.log.finish(conn, None, "client left")
        finally:
            self._active -= 1
            try:
                writer.close()
            except Exception:
                pass
            if task is not None:
                self._handlers.discard(task)

    async def _linger(self, reader: asyncio.StreamReader) -> None:
        """Drop what the client still sends until it hangs up (at most 1 s).

        Closing a socket with unread input makes the kernel reset the
        connection, and the client could lose the answer just written.
        """
        try:
            async with asyncio.timeout(1.0):
                while await reader.read(65536):
                    pass
        except (TimeoutError, OSError):
            pass

    async def _serve_one(self, conn: int, reader: asyncio.StreamReader,
                         ) -> tuple[int | None, str, str]:
        """(status or None for no answer, outcome, body) for one connection."""
        if self._active > self.max_connections:
            return 503, "busy", f"server busy: more than {self.max_connections} connections\n"
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), self.request_timeout)
        except asyncio.LimitOverrunError:
            return 431, "too large", f"request head longer than {self.max_request_bytes} bytes\n"
        except asyncio.IncompleteReadError:
            return None, "client left", ""
        except TimeoutError:
            return 408, "idle timeout", f"no request within {self.request_timeout:g} s\n"
        try:
            target, path, params = self._parse(head)
        except _Reject as reject:
            return reject.status, reject.outcome, f"{reject}\n"
        attempt = self.log.received(conn, target, path)
        try:
            delay = self.delay_for(target, attempt)
            status = self._status_for(path, params, attempt)
        except (TypeError, ValueError) as exc:
            return 400, "bad request", f"bad query parameter in {target!r}: {exc}\n"
        if delay > 0 and not await self._wait_unless_client_leaves(reader, delay):
            return None, "client left", ""
        if status == 200:
            return 200, "ok", self.body_for(path)
        return status, "error status", f"{status} {_REASONS.get(status, 'Status')}: {path}\n"

    def _parse(self, head: bytes) -> tuple[str, str, dict[str, list[str]]]:
        line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = line.split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/") or not parts[1].startswith("/"):
            raise _Reject(400, "bad request", f"not an HTTP request line: {line[:80]!r}")
        method, target = parts[0], parts[1]
        if method != "GET":
            raise _Reject(405, "bad request", f"only GET is served, not {method[:20]!r}")
        split = urllib.parse.urlsplit(target)
        return target, split.path, urllib.parse.parse_qs(split.query)

    def _status_for(self, path: str, params: dict[str, list[str]], attempt: int) -> int:
        if "status" in params:
            return _integer(int(params["status"][-1]), "status", 100, 599)
        if "fail_first" in params:
            fail_first = _integer(int(params["fail_first"][-1]), "fail_first", 0, 1_000_000)
            if attempt <= fail_first:
                return 503
        if self.will_fail(path, attempt):
            return 503
        return 200

    async def _wait_unless_client_leaves(self, reader: asyncio.StreamReader, delay: float) -> bool:
        """Sleep ``delay`` s; False as soon as the client closes its end (a cancelled request)."""
        sleeper = asyncio.ensure_future(asyncio.sleep(delay))
        watcher = asyncio.ensure_future(reader.read(1))
        try:
            while True:
                done, _ = await asyncio.wait({sleeper, watcher},
                                             return_when=asyncio.FIRST_COMPLETED)
                if sleeper in done:
                    return True
                if watcher.exception() is not None or watcher.result() == b"":
                    return False
                watcher = asyncio.ensure_future(reader.read(1))  # extra bytes: ignore them
        finally:
            for waiting in (sleeper, watcher):
                if not waiting.done():
                    waiting.cancel()
            await asyncio.gather(sleeper, watcher, return_exceptions=True)
