"""Functions that remote workers run (chapter 6): importable, so safe under spawn.

ipyparallel engines, Dask workers, Celery workers, SCOOP workers and
``multiprocessing`` processes all import this module by name; nothing here
may live only in a notebook. It imports nothing from ``course_lib.distributed``
(the code that starts and stops engines), so a worker stays light.
"""

from __future__ import annotations

import os
import queue
import re
import socket
import time
from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from multiprocessing.managers import BaseManager
from typing import Any

import numpy as np

_WORD = re.compile(r"[a-z0-9']+")


def where() -> str:
    """A label for the process running this call: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def square(x: int) -> int:
    """The smallest possible task."""
    return x * x


def slow_square(x: int, delay: float = 0.05) -> tuple[int, str, float, float]:
    """``x*x`` after ``delay`` s; returns (result, worker, start, end) for a timeline."""
    start = time.perf_counter()
    time.sleep(delay)
    return x * x, where(), start, time.perf_counter()


def fragile_square(x: int, victims: Collection[int] = (), delay: float = 0.05) -> tuple[int, str]:
    """``(x*x, "host:pid")`` after ``delay`` s, except in a process whose pid is in
    ``victims``: that process kills itself (SIGKILL) as soon as it starts the task,
    a crash on cue.

    The fault-tolerance tests pass the pids of some engines or workers, so the
    tasks they start are lost for certain, whatever the timing.
    """
    if os.getpid() in set(victims):
        import signal

        os.kill(os.getpid(), getattr(signal, "SIGKILL", signal.SIGTERM))
        time.sleep(60)  # not reached on Unix; Windows' SIGTERM ends the process as well
    time.sleep(delay)
    return x * x, where()


def fail(message: str) -> None:
    """A task that raises ``ValueError(message)``: what a failing remote task looks like."""
    raise ValueError(message)


def fail_logged(message: str, log: str) -> None:
    """Like :func:`fail`, and first appends the running process's ``host:pid`` to the file
    ``log``: a test counts the lines to see how many times the task ran."""
    with open(log, "a", encoding="utf-8") as handle:
        handle.write(where() + "\n")
    raise ValueError(message)


def words(text: str) -> list[str]:
    """Lower-cased words of ``text`` (letters, digits, apostrophes)."""
    return _WORD.findall(text.lower())


def count_words(text: str) -> Counter[str]:
    """The map step of a word count: how often each word occurs in ``text``."""
    return Counter(words(text))


def merge_counts(counts: Iterable[Mapping[str, int]]) -> Counter[str]:
    """The reduce step: add the partial counts word by word."""
    total: Counter[str] = Counter()
    for part in counts:
        total.update(part)
    return total


def count_words_where(text: str) -> tuple[Counter[str], str]:
    """``count_words`` plus the worker that did it (``host:pid``)."""
    return count_words(text), where()


def shard_gradient(w: Any, X: Any, y: Any) -> tuple[Any, int]:
    """Gradient of the summed squared error on one shard, and the shard's size.

    ``sum((X @ w - y)**2)`` has gradient ``2 X^T (X w - y)``; the parameter
    server adds the shards' gradients and divides by the total row count.
    """
    w, X, y = np.asarray(w, float), np.asarray(X, float), np.asarray(y, float)
    return 2.0 * X.T @ (X @ w - y), len(y)


def shard_gradient_where(w: Any, X: Any, y: Any) -> tuple[Any, int, str]:
    """``shard_gradient`` plus the worker that computed it."""
    grad, n = shard_gradient(w, X, y)
    return grad, n, _worker_name()


def _worker_name() -> str:
    """The Dask worker's name when run by Dask, else ``host:pid``."""
    try:
        from distributed import get_worker

        return str(get_worker().name)
    except (ImportError, ValueError):
        return where()


class QueueClient(BaseManager):
    """What a worker (on this or another machine) uses to reach a
    :class:`course_lib.distributed.QueueServer`: its ``tasks()`` and ``results()`` queues.

    It lives here, with the functions workers run, so that a worker imports nothing
    that starts or stops engines; ``course_lib.distributed`` re-exports it.
    """


QueueClient.register("tasks")
QueueClient.register("results")


def farm_worker(address: tuple[str, int], authkey: bytes, name: str,
                idle_timeout: float = 5.0) -> None:
    """Master/worker over the network: take numbers from the manager's task queue,
    put ``(number, number**2, name)`` on its result queue, stop at ``None``.

    A worker that waits ``idle_timeout`` s for a task gives up and exits, so a
    master that forgets the stop signal cannot leave it running forever.
    """
    manager = QueueClient(address=address, authkey=authkey)
    try:
        manager.connect()
    except OSError:
        return
    tasks: Any = manager.tasks()  # type: ignore[attr-defined]
    results: Any = manager.results()  # type: ignore[attr-defined]
    while True:
        try:
            item = tasks.get(timeout=idle_timeout)
        except (queue.Empty, EOFError, OSError):
            return
        if item is None:
            return
        results.put((item, item * item, name))


def toy_regression(n_rows: int = 200, n_features: int = 3, *, noise: float = 0.1,
                   seed: int = 0) -> tuple[Any, Any, Any]:
    """``(X, y, w_true)`` for a linear model ``y = X @ w_true + noise`` (X standardised)."""
    if n_rows < 1 or n_features < 1:
        raise ValueError("n_rows and n_features must be at least 1")
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_rows, n_features))
    w_true = rng.uniform(-2.0, 2.0, n_features)
    y = X @ w_true + noise * rng.standard_normal(n_rows)
    return X, y, w_true
