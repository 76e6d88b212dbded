"""Distributed Python engines for chapter 6, each owned by a context manager.

Every engine is the real library, started on 127.0.0.1 with ephemeral ports
and stopped when its ``with`` block ends:

- :func:`ipp_cluster`: an ipyparallel controller and engines (or a client of a
  running cluster, named by a profile);
- :func:`dask_client`: a Dask ``LocalCluster`` (or a client of a running
  scheduler); :func:`dashboard_link` gives a dashboard URL that also works
  behind JupyterHub and Binder (jupyter-server-proxy);
- :func:`celery_worker`: Celery worker processes with a broker and a result
  backend (files and SQLite by default, Redis when configured);
- :func:`redis_server`: a private redis-server, when one is installed;
- :func:`pyro_nameserver`, :func:`pyro_daemon`: Pyro5 name server and remote objects;
- :func:`rpyc_server`: an rpyc service;
- :func:`queue_manager_server`: ``multiprocessing.managers`` sharing queues over TCP;
- :func:`run_scoop`: a SCOOP program run as ``python -m scoop``;
- :class:`ReplicatedStore`: a toy replicated key-value store with a partition switch (CAP).

Pointing the same code at a real cluster is configuration, not edits: four
settings (``COURSE_IPP_PROFILE``, ``COURSE_DASK_SCHEDULER``,
``COURSE_CELERY_BROKER``, ``COURSE_CELERY_BACKEND``) in the environment or a
TOML file, described in :mod:`course_lib.distributed.config`. ``local=True`` on the engine
functions ignores both and always starts a private local engine (the failure
demos kill workers: never on a shared cluster).

Failure and bad input: :func:`is_worker_lost` recognises a task lost with its
worker (ipyparallel, Dask, Celery); :func:`check_broker` fails fast with advice
when a broker does not answer; :func:`pyro_proxy` names the known names when a
lookup fails; :func:`check_payload` names the part of a task's arguments that
cannot be serialised, and says what to send instead.

One module per job: ``config`` (settings, host, error type), ``servers``
(starting and stopping processes, failure tools), ``payloads``, ``cap``,
``pictures``, and one module per engine (``ipp``, ``dask_engine``,
``celery_engine``, ``redis_engine``, ``pyro_engine``, ``rpyc_engine``,
``mp_managers``, ``scoop_engine``). The functions workers run live in
``course_lib.dist_tasks`` and ``course_lib.celery_tasks``, which import nothing
from here. This file only re-exports.
"""

from __future__ import annotations

from course_lib.dist_tasks import QueueClient
from course_lib.distributed.cap import Replica, ReplicatedStore, Unavailable
from course_lib.distributed.celery_engine import (
    CeleryBroker,
    CeleryWorkers,
    celery_broker,
    celery_worker,
    check_broker,
)
from course_lib.distributed.config import (
    CONFIG_FILE_VAR,
    ENV_VARS,
    DistributedError,
    config,
    config_file,
)
from course_lib.distributed.config import DEFAULT_CONFIG_FILE as DEFAULT_CONFIG_FILE
from course_lib.distributed.config import HOST as HOST
from course_lib.distributed.dask_engine import dashboard_link, dask_client
from course_lib.distributed.ipp import ipp_cluster
from course_lib.distributed.mp_managers import QueueServer, queue_manager_server
from course_lib.distributed.payloads import PayloadError, check_payload
from course_lib.distributed.pictures import task_spans
from course_lib.distributed.pyro_engine import (
    NameNotFound,
    pyro_daemon,
    pyro_nameserver,
    pyro_proxy,
)
from course_lib.distributed.redis_engine import redis_available, redis_server
from course_lib.distributed.rpyc_engine import rpyc_server
from course_lib.distributed.scoop_engine import ScoopRun, run_scoop
from course_lib.distributed.servers import free_port, is_worker_lost, kill_process, wait_for
from course_lib.proc import QUIT_SIGNAL as QUIT_SIGNAL

__all__ = [
    "CONFIG_FILE_VAR",
    "ENV_VARS",
    "CeleryBroker",
    "CeleryWorkers",
    "DistributedError",
    "NameNotFound",
    "PayloadError",
    "QueueClient",
    "QueueServer",
    "Replica",
    "ReplicatedStore",
    "ScoopRun",
    "Unavailable",
    "celery_broker",
    "celery_worker",
    "check_broker",
    "check_payload",
    "config",
    "config_file",
    "dashboard_link",
    "dask_client",
    "free_port",
    "ipp_cluster",
    "is_worker_lost",
    "kill_process",
    "pyro_daemon",
    "pyro_nameserver",
    "pyro_proxy",
    "queue_manager_server",
    "redis_available",
    "redis_server",
    "rpyc_server",
    "run_scoop",
    "task_spans",
    "wait_for",
]
