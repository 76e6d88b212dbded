"""Celery for chapter 6: a broker and result backend (:func:`celery_broker`; files and
SQLite by default, Redis or another broker when configured) and worker processes
serving ``course_lib.celery_tasks`` (:func:`celery_worker`); :func:`check_broker` fails
fast with advice when a broker does not answer."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from course_lib.distributed.config import (
    HOST,
    DistributedError,
    check_positive,
    config,
    require,
)
from course_lib.distributed.payloads import check_payload
from course_lib.distributed.servers import stop_all
from course_lib.proc import QUIT_SIGNAL


def _safe_url(url: str) -> str:
    """``url`` with any password masked."""
    parts = urllib.parse.urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urllib.parse.urlunsplit(parts._replace(netloc=netloc))
    return url


def check_broker(url: str, *, timeout: float = 3.0, what: str = "Celery broker",
                 setting: str = "COURSE_CELERY_BROKER") -> None:
    """Connect to the broker at ``url`` once; ``DistributedError`` within about ``timeout``
    seconds, naming the URL and what to do, when it does not answer."""
    check_positive("timeout", timeout)
    if not isinstance(url, str) or "://" not in url:
        raise ValueError(f"{what} URL must look like redis://host:6379/0, got {url!r}")
    if url.split("://", 1)[0] in ("filesystem", "memory"):
        return
    kombu = require("kombu")
    connection = kombu.Connection(url, connect_timeout=timeout)
    try:
        connection.ensure_connection(max_retries=1, interval_start=0, interval_step=0.1,
                                     interval_max=0.1, timeout=timeout)
    except Exception as error:  # kombu raises OperationalError, or a transport's own error
        raise DistributedError(
            f"the {what} at {_safe_url(url)} does not answer ({error}). Start it (for Redis: "
            "redis-server, or docker run -p 6379:6379 redis), correct the URL, or unset "
            f"{setting} to use the course's local file broker") from None
    finally:
        connection.release()


@dataclass(frozen=True)
class CeleryBroker:
    """What :func:`celery_broker` yields: where task messages and results are kept."""

    broker: str
    backend: str
    folder: str | None
    """The filesystem transport's message folder (None for a real broker)."""

    def app(self) -> Any:
        """A Celery app that sends to this broker (``app.send_task(name, args=...)``)."""
        from course_lib import celery_tasks

        return celery_tasks.make_app(self.broker, self.backend, self.folder)

    def messages(self) -> list[str]:
        """Names of the task messages waiting in the folder (empty for a real broker)."""
        if self.folder is None:
            return []
        return sorted(p.name for p in Path(self.folder).glob("*.msg"))


@contextlib.contextmanager
def celery_broker(*, broker: str | None = None, backend: str | None = None,
                  local: bool = False, timeout: float = 3.0) -> Iterator[CeleryBroker]:
    """A broker and result backend for Celery, with no worker yet.

    ``broker``/``backend``, else the ``COURSE_CELERY_BROKER``/``COURSE_CELERY_BACKEND``
    settings, else (and always with ``local=True``) a folder of files (kombu's
    filesystem transport) and an SQLite database in a temporary folder, removed
    after the block. A broker that does not answer raises ``DistributedError``
    within about ``timeout`` seconds.
    """
    check_positive("timeout", timeout)
    require("celery")
    if not local:
        settings = config()
        broker = broker or settings["COURSE_CELERY_BROKER"]
        backend = backend or settings["COURSE_CELERY_BACKEND"]
    folder = tempfile.TemporaryDirectory(prefix="course-celery-")
    try:
        root = Path(folder.name)
        queue_folder: str | None = None
        if broker is None:
            (root / "queue").mkdir()
            broker, queue_folder = "filesystem://", str(root / "queue")
        else:
            check_broker(broker, timeout=timeout)
        if backend is None:
            backend = f"db+sqlite:///{root / 'results.sqlite'}"
        elif backend.startswith(("redis://", "rediss://", "amqp://")):
            check_broker(backend, timeout=timeout, what="Celery result backend",
                         setting="COURSE_CELERY_BACKEND")
        yield CeleryBroker(broker, backend, queue_folder)
    finally:
        folder.cleanup()


@dataclass
class CeleryWorkers:
    """What :func:`celery_worker` yields: the app to send tasks with, and the workers."""

    app: Any
    broker: str
    backend: str
    names: list[str]
    processes: list[subprocess.Popen[Any]] = field(repr=False)

    def send(self, task: str, *args: Any, **kwargs: Any) -> Any:
        """Send ``course_lib.celery_tasks.<task>(*args, **kwargs)``; returns its
        ``AsyncResult``. Arguments that JSON cannot carry raise :class:`PayloadError`
        naming the argument, before anything is sent."""
        check_payload(list(args), serializer="json", what=f"{task}() argument ")
        check_payload(kwargs, serializer="json", what=f"{task}() keyword argument ")
        name = task if "." in task else f"course_lib.celery_tasks.{task}"
        return self.app.send_task(name, args=args, kwargs=kwargs)


def _queue_of(worker: str) -> str:
    return "q-" + worker.split("@", 1)[0]


@contextlib.contextmanager
def celery_worker(n: int = 1, *, concurrency: int = 1, broker: str | CeleryBroker | None = None,
                  backend: str | None = None, timeout: float = 30.0,
                  local: bool = False) -> Iterator[CeleryWorkers]:
    """``n`` Celery worker processes serving ``course_lib.celery_tasks``; stopped after the block.

    ``broker`` is a URL, a :class:`CeleryBroker` from :func:`celery_broker` (its
    waiting messages are then served), or None: see :func:`celery_broker` for the
    defaults. ``concurrency > 1`` gives each worker a pool of that many processes
    (prefork). A broker that does not answer raises ``DistributedError`` within a
    few seconds, with what to do.
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n must be a positive number of workers, got {n!r}")
    if not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 1:
        raise ValueError(f"concurrency must be a positive number of processes, got {concurrency!r}")
    check_positive("timeout", timeout)
    with contextlib.ExitStack() as stack:
        if isinstance(broker, CeleryBroker):
            if backend is not None:
                raise ValueError("the CeleryBroker already names its backend: drop backend=")
            where = broker
        else:
            where = stack.enter_context(celery_broker(broker=broker, backend=backend,
                                                      local=local,
                                                      timeout=min(timeout, 5.0)))
        scratch = stack.enter_context(tempfile.TemporaryDirectory(prefix="course-celery-tmp-"))
        env = dict(os.environ, COURSE_CELERY_BROKER=where.broker,
                   COURSE_CELERY_BACKEND=where.backend, COURSE_CELERY_FOLDER=where.folder or "",
                   TMPDIR=scratch, PYTHONWARNINGS="ignore")
        app = where.app()
        stack.callback(app.close)
        names = [f"worker{i + 1}@{HOST}" for i in range(n)]
        procs: list[subprocess.Popen[Any]] = []
        # SIGQUIT (SIGTERM where there is none): Celery's cold shutdown, then kill what is left.
        stack.callback(lambda: stop_all(procs, QUIT_SIGNAL, grace=3.0))
        for name in names:
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "course_lib.celery_tasks", "worker",
                 "-n", name, "-Q", f"celery,{_queue_of(name)}",
                 "--pool=prefork" if concurrency > 1 else "--pool=solo",
                 f"--concurrency={concurrency}", "--loglevel=ERROR", "--without-gossip",
                 "--without-mingle", "--without-heartbeat"],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True))
        # Each worker also serves a queue of its own name: ready once each has run a task.
        deadline = time.monotonic() + timeout
        pending = {name: app.send_task("course_lib.celery_tasks.where", queue=_queue_of(name))
                   for name in names}
        for name, result in pending.items():
            while not result.ready():
                dead = [p for p in procs if p.poll() is not None]
                if dead:
                    raise DistributedError(
                        f"a Celery worker exited with code {dead[0].returncode} "
                        f"(broker {_safe_url(where.broker)}, backend {_safe_url(where.backend)})")
                if time.monotonic() > deadline:
                    raise DistributedError(f"Celery worker {name} did not start within "
                                           f"{timeout:g} s (broker {_safe_url(where.broker)})")
                time.sleep(0.05)
            result.get(timeout=timeout)
            result.forget()
        yield CeleryWorkers(app, where.broker, where.backend, names, procs)
