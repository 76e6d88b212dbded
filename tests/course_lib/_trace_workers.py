"""Worker functions for tests/course_lib/test_trace.py (importable, so they work under spawn)."""

from __future__ import annotations

from multiprocessing.connection import Connection

from course_lib.trace import RemoteTracer

_REMOTE: RemoteTracer | None = None


def traced_square(remote: RemoteTracer, x: int) -> int:
    """Record one span named ``square`` and return ``x * x``."""
    with remote.span("square"):
        return x * x


def traced_pair(args: tuple[RemoteTracer, int]) -> int:
    """``Pool.map`` helper: ``traced_square(*args)``."""
    return traced_square(*args)


def process_main(remote: RemoteTracer, n: int) -> None:
    """Target of ``multiprocessing.Process``: ``n`` spans named ``child``."""
    for _ in range(n):
        with remote.span("child"):
            pass
    remote.record("recorded", 1.0, 2.0, worker="explicit lane")


def init_remote(remote: RemoteTracer) -> None:
    """Pool initializer: keep the tracer in a global for later tasks."""
    global _REMOTE
    _REMOTE = remote


def uses_initialized(x: int) -> int:
    """Task that records through the tracer given to :func:`init_remote`."""
    assert _REMOTE is not None
    with _REMOTE.span("init-task"):
        return x + 1


def square(x: int) -> int:
    """Plain function for ``RemoteTracer.wrap``."""
    return x * x


def record_after_close(remote: RemoteTracer) -> str:
    """Try to record through a RemoteTracer whose Tracer was closed; return the error text."""
    try:
        with remote.span("late"):
            pass
    except RuntimeError as exc:
        return str(exc)
    return "no error"


def many_spans(remote: RemoteTracer, n: int) -> None:
    """Record ``n`` spans (used for child-side capacity)."""
    for _ in range(n):
        with remote.span("many"):
            pass


def record_then_wait(remote: RemoteTracer, conn: Connection) -> None:
    """Record a span, tell the parent, wait until it closed the tracer, then try again."""
    with remote.span("before"):
        pass
    conn.send("ready")
    conn.recv()
    conn.send(record_after_close(remote))
