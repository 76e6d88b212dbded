"""Celery tasks for chapter 6; the worker process imports this module by name.

The broker and backend come from ``$COURSE_CELERY_BROKER`` and
``$COURSE_CELERY_BACKEND`` (set by :func:`course_lib.distributed.celery_worker`
for the workers it starts, or by you for a real cluster).

Tasks (names ``course_lib.celery_tasks.NAME``):

- ``where()``, ``square(x)``, ``count_words(text)``: the basics;
- ``slow_square(x, delay)``: acknowledged when it starts (Celery's default), so a
  worker process killed mid-task loses it;
- ``slow_square_late(x, delay)``: ``acks_late`` and ``reject_on_worker_lost``, so the
  broker hands it out again when the process running it dies;
- ``flaky_square(x, failures, countdown=0.1, max_retries=3)``: fails ``failures`` times
  with a transient ``ConnectionError`` and retries itself after ``countdown`` s;
- ``fail(message)``: raises ``ValueError(message)``.

The slow tasks report ``{"pid", "start"}`` as their ``STARTED`` state, so the
caller can see which process runs them, and return ``[x*x, "host:pid", start, end]``.

Importing this module also makes kombu's ``filesystem://`` transport (the
course's local broker) safe on a busy machine: kombu writes a message file in
place, so a worker polling the folder can read it half-written and die with a
``JSONDecodeError``; here each message is written to a hidden file and renamed
into place (:func:`course_lib.fileio.atomic_write`), and a half-written exchange
table is read again.
"""

from __future__ import annotations

import importlib
import os
import time
import uuid
from typing import Any

from celery import Celery
from kombu.exceptions import ChannelError
from kombu.transport import TRANSPORT_ALIASES
from kombu.utils import json as kombu_json

from course_lib import dist_tasks
from course_lib.fileio import atomic_write
from course_lib.internals import retry_queue_bind

_filesystem: Any = importlib.import_module("kombu.transport.filesystem")
_dumps: Any = kombu_json.dumps


class _AtomicChannel(_filesystem.Channel):  # type: ignore[misc]  # kombu's class is untyped
    """kombu's filesystem channel, with messages that appear complete or not at all."""

    def _put(self, queue: Any, message: Any, **kwargs: Any) -> None:
        name = f"{int(round(time.monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        folder = str(self.data_folder_out)
        data = str(_dumps(message)).encode("utf-8")
        try:
            # The temporary file ".NAME-xxxx.part" never matches "*.QUEUE.msg": kombu's
            # reader compares what follows the first dot with "QUEUE.msg".
            atomic_write(os.path.join(folder, name), data)
        except OSError as exc:
            raise ChannelError(f"Cannot add a message to {folder!r}") from exc

    def get_table(self, exchange: str) -> Any:
        return _again_if_half_written(lambda: super(_AtomicChannel, self).get_table(exchange))


def _again_if_half_written(read: Any, tries: int = 100) -> Any:
    """Call ``read()``; while another process is rewriting the file, try again."""
    for _ in range(tries - 1):
        try:
            return read()
        except ValueError:            # json.JSONDecodeError: an empty or partial file
            time.sleep(0.01)
    return read()


class FilesystemTransport(_filesystem.Transport):  # type: ignore[misc]
    """The ``filesystem://`` transport with atomic messages (see the module docstring)."""

    # _put above is the virtual transport's interface (kombu calls it to send); binding
    # a queue reads the exchange table through a private method, retried via internals.
    Channel = retry_queue_bind(_AtomicChannel, _again_if_half_written)


TRANSPORT_ALIASES["filesystem"] = "course_lib.celery_tasks:FilesystemTransport"


def make_app(broker: str | None = None, backend: str | None = None,
             folder: str | None = None) -> Celery:
    """A Celery app for ``broker``/``backend`` with this module's tasks registered."""
    broker = broker or os.environ.get("COURSE_CELERY_BROKER") or "memory://"
    backend = backend or os.environ.get("COURSE_CELERY_BACKEND") or "cache+memory://"
    folder = folder or os.environ.get("COURSE_CELERY_FOLDER")
    application = Celery("course", broker=broker, backend=backend, set_as_current=False)
    settings: dict[str, Any] = {
        "task_serializer": "json", "result_serializer": "json", "accept_content": ["json"],
        "worker_hijack_root_logger": False, "broker_connection_retry_on_startup": True,
        "worker_prefetch_multiplier": 1, "result_extended": True,
        # After a pool process dies, wait this long for a result it may have sent (default 10 s).
        "worker_lost_wait": 0.5,
    }
    if broker.startswith("filesystem://") and folder:
        # The filesystem transport polls its folder; its default of once a second would
        # add up to a second to every task.
        settings["broker_transport_options"] = {
            "data_folder_in": folder, "data_folder_out": folder, "control_folder": folder,
            "polling_interval": 0.02}
    application.conf.update(settings)
    application.task(name="course_lib.celery_tasks.where")(_where)
    application.task(name="course_lib.celery_tasks.square")(_square)
    application.task(name="course_lib.celery_tasks.count_words")(_count_words)
    application.task(name="course_lib.celery_tasks.fail")(_fail)
    application.task(name="course_lib.celery_tasks.slow_square", bind=True)(_slow_square)
    application.task(name="course_lib.celery_tasks.slow_square_late", bind=True,
                     acks_late=True, reject_on_worker_lost=True)(_slow_square)
    application.task(name="course_lib.celery_tasks.flaky_square", bind=True)(_flaky_square)
    return application


def _where() -> str:
    from celery import current_task

    hostname = getattr(current_task.request, "hostname", None)
    return str(hostname or dist_tasks.where())


def _square(x: int) -> list[Any]:
    return [x * x, _where()]


def _count_words(text: str) -> dict[str, int]:
    return dict(dist_tasks.count_words(text))


def _fail(message: str) -> None:
    raise ValueError(message)


def _slow_square(task: Any, x: int, delay: float = 1.0) -> list[Any]:
    start = time.perf_counter()
    task.update_state(state="STARTED", meta={"pid": os.getpid(), "start": start})
    time.sleep(delay)
    return [x * x, dist_tasks.where(), start, time.perf_counter()]


def _flaky_square(task: Any, x: int, failures: int, countdown: float = 0.1,
                  max_retries: int = 3) -> list[Any]:
    attempt = int(task.request.retries)
    if attempt < failures:
        error = ConnectionError(f"transient failure on attempt {attempt + 1} (the service "
                                "was busy)")
        raise task.retry(exc=error, countdown=countdown, max_retries=max_retries)
    return [x * x, attempt, _where()]


app = make_app()
