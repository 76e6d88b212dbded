"""``multiprocessing.managers`` for chapter 6: :class:`QueueServer` shares a ``tasks``
and a ``results`` queue over TCP, started and stopped by :func:`queue_manager_server`.

Workers reach it with :class:`course_lib.dist_tasks.QueueClient`, which lives with the
functions workers run, so that they import nothing from here.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from multiprocessing.managers import BaseManager
from typing import Any

from course_lib.distributed.config import HOST

_QUEUES: dict[str, Any] = {}


def _queue(name: str) -> Any:
    import queue

    return _QUEUES.setdefault(name, queue.Queue())


def _tasks() -> Any:
    return _queue("tasks")


def _results() -> Any:
    return _queue("results")


class QueueServer(BaseManager):
    """A manager process that shares a ``tasks`` and a ``results`` queue over TCP."""

    def __init__(self, address: tuple[str, int], authkey: bytes, **kwargs: Any) -> None:
        super().__init__(address=address, authkey=authkey, **kwargs)
        self._key = bytes(authkey)

    @property
    def authkey(self) -> bytes:
        """The shared secret a worker needs to connect (plain bytes, so it pickles)."""
        return self._key


QueueServer.register("tasks", callable=_tasks)
QueueServer.register("results", callable=_results)


@contextlib.contextmanager
def queue_manager_server(*, host: str = HOST, port: int = 0,
                         authkey: bytes | None = None) -> Iterator[QueueServer]:
    """Start a :class:`QueueServer` in its own process; yields it (``.address``, ``.tasks()``,
    ``.results()``, ``.authkey``); shut down after the block.

    A worker elsewhere connects with ``QueueClient(address=..., authkey=...)``.
    """
    from course_lib.machine.cores import mp_context

    key = authkey if authkey is not None else os.urandom(16)
    server = QueueServer(address=(host, port), authkey=key, ctx=mp_context())
    server.start()
    try:
        yield server
    finally:
        server.shutdown()
