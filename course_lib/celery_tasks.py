"""Celery tasks for chapter 6; the worker process imports this module by name.

The broker and backend come from ``$COURSE_CELERY_BROKER`` and
``$COURSE_CELERY_BACKEND`` (set by :func:`course_lib.distributed.celery_worker`
for the workers it starts, or by you for a real cluster).
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery

from course_lib import dist_tasks


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
    return application


def _where() -> str:
    from celery import current_task

    hostname = getattr(current_task.request, "hostname", None)
    return str(hostname or dist_tasks.where())


def _square(x: int) -> list[Any]:
    return [x * x, _where()]


def _count_words(text: str) -> dict[str, int]:
    return dict(dist_tasks.count_words(text))


app = make_app()
