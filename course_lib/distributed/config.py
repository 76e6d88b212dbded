"""Where chapter 6's engines run: the cluster settings, the host, and the error type.

Pointing the course's code at a real cluster is configuration, not edits:

``COURSE_IPP_PROFILE``      ipyparallel profile of a running cluster
                            (``ipcluster start --profile=NAME``)
``COURSE_DASK_SCHEDULER``   address of a running Dask scheduler (``tcp://host:8786``)
``COURSE_CELERY_BROKER``    Celery broker URL (``redis://host:6379/0``)
``COURSE_CELERY_BACKEND``   Celery result backend URL (``redis://host:6379/1``)

The same four settings can live in a TOML file (keys ``ipp_profile``,
``dask_scheduler``, ``celery_broker``, ``celery_backend``), read from
``$COURSE_CLUSTER_CONFIG`` or else ``~/.config/parallel-python/cluster.toml``;
an environment variable wins over the file.

This module imports only the standard library (``course_lib.machine`` reads the
settings from here for its broker rows), and every engine module builds on it.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ENV_VARS = {
    "COURSE_IPP_PROFILE": "ipyparallel profile of a running cluster",
    "COURSE_DASK_SCHEDULER": "address of a running Dask scheduler, e.g. tcp://host:8786",
    "COURSE_CELERY_BROKER": "Celery broker URL, e.g. redis://host:6379/0",
    "COURSE_CELERY_BACKEND": "Celery result backend URL, e.g. redis://host:6379/1",
}

CONFIG_FILE_VAR = "COURSE_CLUSTER_CONFIG"
DEFAULT_CONFIG_FILE = Path("~/.config/parallel-python/cluster.toml")

HOST = "127.0.0.1"
INSTALL_HINT = "pip install -e '.[distributed]' (make lab installs it)"


class DistributedError(RuntimeError):
    """An engine could not start or stop; the message says what to do."""


def require(name: str) -> Any:
    """Import the module ``name``, or raise :class:`DistributedError` saying how to install it."""
    try:
        return importlib.import_module(name)
    except ImportError:
        raise DistributedError(f"{name.split('.')[0]} is not installed: {INSTALL_HINT}") from None


def check_positive(name: str, value: float) -> None:
    """``ValueError`` naming ``name`` unless ``value`` is a positive number."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")


def config_file(environ: Mapping[str, str] | None = None) -> Path | None:
    """The settings file :func:`config` reads: ``$COURSE_CLUSTER_CONFIG`` (which must
    exist), else ``~/.config/parallel-python/cluster.toml`` if it exists, else None."""
    env = os.environ if environ is None else environ
    named = env.get(CONFIG_FILE_VAR)
    if named:
        path = Path(named).expanduser()
        if not path.is_file():
            raise DistributedError(f"{CONFIG_FILE_VAR} names {path}, which is not a file: "
                                   f"create it or unset {CONFIG_FILE_VAR}")
        return path
    home = env.get("HOME")
    default = (Path(home) / DEFAULT_CONFIG_FILE.relative_to("~") if home
               else DEFAULT_CONFIG_FILE.expanduser())
    return default if default.is_file() else None


def config(environ: Mapping[str, str] | None = None) -> dict[str, str | None]:
    """The cluster settings (None: start a local one).

    Each ``COURSE_*`` environment variable wins; otherwise the value comes from
    the settings file (:func:`config_file`), whose keys are the variable names
    in lower case without ``COURSE_`` (``dask_scheduler = "tcp://host:8786"``).
    """
    env = os.environ if environ is None else environ
    from_file: dict[str, Any] = {}
    path = config_file(env)
    if path is not None:
        import tomllib

        try:
            from_file = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
            raise DistributedError(f"cannot read the cluster settings in {path}: {error}. "
                                   'Write lines like dask_scheduler = "tcp://host:8786"') from None
        known = {name.removeprefix("COURSE_").lower() for name in ENV_VARS}
        unknown = sorted(set(from_file) - known)
        if unknown:
            raise DistributedError(f"{path} has unknown setting(s) {', '.join(unknown)}; "
                                   f"the known ones are {', '.join(sorted(known))}")
    settings: dict[str, str | None] = {}
    for name in ENV_VARS:
        value = env.get(name) or from_file.get(name.removeprefix("COURSE_").lower())
        settings[name] = str(value) if value else None
    return settings
