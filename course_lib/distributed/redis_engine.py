"""Redis for chapter 6: :func:`redis_server`, a private redis-server (when one is
installed) on 127.0.0.1 and an ephemeral port, for Celery's broker and backend."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator

from course_lib.distributed.config import HOST, DistributedError, check_positive
from course_lib.distributed.servers import free_port, stop_tree


def redis_available() -> bool:
    """True when a ``redis-server`` program is on PATH."""
    return shutil.which("redis-server") is not None


@contextlib.contextmanager
def redis_server(*, timeout: float = 10.0) -> Iterator[str]:
    """A private redis-server on 127.0.0.1 and an ephemeral port; yields ``redis://...``.

    Nothing is saved to disk; the server is stopped after the block.
    """
    check_positive("timeout", timeout)
    program = shutil.which("redis-server")
    if program is None:
        raise DistributedError("redis-server is not installed (apt install redis-server, "
                               "brew install redis); the course falls back to files and SQLite")
    port = free_port()
    folder = tempfile.TemporaryDirectory(prefix="course-redis-")
    proc = subprocess.Popen(
        [program, "--bind", HOST, "--port", str(port), "--save", "", "--appendonly", "no",
         "--dir", folder.name, "--protected-mode", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(OSError), socket.create_connection((HOST, port), 0.2) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise DistributedError(f"redis-server did not start on port {port} "
                                       f"within {timeout:g} s")
            time.sleep(0.05)
        yield f"redis://{HOST}:{port}"
    finally:
        stop_tree(proc)
        folder.cleanup()
