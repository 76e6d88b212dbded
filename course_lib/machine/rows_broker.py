"""Rows of the report about brokers: redis-server, the cluster settings, Celery."""

from __future__ import annotations

import importlib
import re
import shutil
from typing import Any

from ..proc import run_bounded
from .report import MachineRow

__all__: list[str] = []


def broker_rows(facts: dict[str, Any]) -> list[MachineRow]:
    """redis-server, the cluster settings (course_lib.distributed) and Celery."""
    broker: dict[str, Any] = {}
    facts["broker"] = broker
    rows: list[MachineRow] = []
    server = shutil.which("redis-server")
    broker["redis_server"] = server
    if server is None:
        rows.append(
            MachineRow(
                "redis-server",
                "not on PATH",
                "the Celery examples need it: apt install redis-server, brew install redis "
                "or conda install redis",
            )
        )
    else:
        try:
            version_text = run_bounded([server, "--version"], 10.0).stdout
        except OSError:
            version_text = ""
        match = re.search(r"v=(\S+)", version_text)
        broker["redis_version"] = match.group(1) if match else None
        label = f"{server} (version {match.group(1)})" if match else server
        rows.append(MachineRow("redis-server", label))

    try:
        from course_lib.distributed.config import DistributedError, config, config_file

        try:
            settings = {k: v for k, v in config().items() if v}
            source = config_file()
            broker["cluster_settings"] = settings
            label = ("none: every engine starts on this machine" if not settings
                     else ", ".join(f"{k}={v}" for k, v in sorted(settings.items())))
            where = f" (file {source})" if source else ""
            rows.append(MachineRow("cluster settings", label + where))
        except DistributedError as exc:
            rows.append(MachineRow("cluster settings", "unreadable", str(exc)))
    except ImportError:
        pass

    try:
        celery: Any = importlib.import_module("celery")
        broker["celery"] = str(getattr(celery, "__version__", "?"))
        rows.append(MachineRow("celery", broker["celery"]))
    except Exception as exc:  # noqa: BLE001
        broker["celery"] = None
        if isinstance(exc, ImportError):
            rows.append(MachineRow("celery", "not installed", "pip install 'celery[redis]'"))
        else:
            rows.append(MachineRow("celery", f"import failed: {type(exc).__name__}: {exc}", ""))
    return rows
