"""Dask for chapter 6: :func:`dask_client`, a ``LocalCluster`` on 127.0.0.1 (or a client
of a running scheduler), and :func:`dashboard_link`, a dashboard URL that also works
behind JupyterHub and Binder (jupyter-server-proxy)."""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Iterator, Mapping
from typing import Any

from course_lib.distributed.config import HOST, check_positive, config, require
from course_lib.internals import replace_dask_offload_executor


@contextlib.contextmanager
def dask_client(n_workers: int = 2, *, threads_per_worker: int = 1, processes: bool = False,
                address: str | None = None, timeout: float = 30.0,
                local: bool = False) -> Iterator[Any]:
    """A ``distributed.Client``; the local cluster (if any) stops after the block.

    With ``address`` (or the ``COURSE_DASK_SCHEDULER`` setting) it connects to
    a running scheduler. Otherwise, or with ``local=True``, it starts a
    ``LocalCluster`` on 127.0.0.1 with ephemeral ports: ``processes=False``
    (the default) keeps the workers in this process, which starts in about a
    second; ``processes=True`` gives each worker its own process, watched by a
    nanny that restarts it if it dies.
    """
    if not isinstance(n_workers, int) or isinstance(n_workers, bool) or n_workers < 1:
        raise ValueError(f"n_workers must be a positive number, got {n_workers!r}")
    check_positive("timeout", timeout)
    distributed = require("distributed")
    if local and address:
        raise ValueError("give an address or local=True, not both")
    address = None if local else (address or config()["COURSE_DASK_SCHEDULER"])
    if address:
        client = distributed.Client(address, timeout=timeout)
        try:
            yield client
        finally:
            client.close(timeout=timeout)
        return
    for name in ("distributed", "bokeh", "tornado"):
        logging.getLogger(name).setLevel(logging.ERROR)
    scratch = tempfile.TemporaryDirectory(prefix="course-dask-")
    dask_config = require("dask.config")
    with contextlib.ExitStack() as stack:
        stack.callback(scratch.cleanup)
        # Dask's scratch space goes to our folder, not the kernel's TMPDIR.
        stack.enter_context(dask_config.set({"temporary-directory": scratch.name}))
        cluster = distributed.LocalCluster(
            local_directory=scratch.name, n_workers=n_workers,
            threads_per_worker=threads_per_worker, processes=processes, scheduler_port=0,
            dashboard_address=f"{HOST}:0", silence_logs=logging.ERROR,
            **({"host": HOST} if processes else {}))  # without processes: in-process, no TCP
        stack.callback(_renew_dask_offload_thread)
        stack.callback(cluster.close, timeout=timeout)
        client = distributed.Client(cluster, timeout=timeout)
        stack.callback(client.close, timeout=timeout)
        client.wait_for_workers(n_workers, timeout=timeout)
        yield client


def _renew_dask_offload_thread() -> None:
    """Dask keeps a module-level one-thread pool alive for ever; end its thread and put
    a fresh pool (no thread until used) in its place, so nothing is left running."""
    require("distributed.utils")
    from concurrent.futures import ThreadPoolExecutor

    fresh = ThreadPoolExecutor(max_workers=1, thread_name_prefix="Dask-Offload")
    old = replace_dask_offload_executor(fresh)
    if old is not None:
        old.shutdown(wait=True)


def dashboard_link(client: Any = None, *, port: int | None = None,
                   environ: Mapping[str, str] | None = None) -> str:
    """The Dask dashboard's status page, as a link that opens from this browser.

    Behind JupyterHub (``JUPYTERHUB_SERVICE_PREFIX``) or Binder the dashboard
    port is not reachable directly; jupyter-server-proxy forwards
    ``{prefix}proxy/{port}/status`` to it, so that is the link given.
    """
    env = os.environ if environ is None else environ
    if port is None:
        if client is None:
            raise ValueError("give the Dask client or the dashboard port")
        link = str(client.dashboard_link)
        port = int(link.split("://", 1)[-1].split("/", 1)[0].rsplit(":", 1)[1])
    prefix = env.get("JUPYTERHUB_SERVICE_PREFIX")
    if prefix:
        return f"{prefix.rstrip('/')}/proxy/{port}/status"
    return f"http://{HOST}:{port}/status"
