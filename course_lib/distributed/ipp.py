"""ipyparallel for chapter 6: :func:`ipp_cluster`, a controller and engines on 127.0.0.1
(or a client of a running cluster, named by a profile), stopped after the block."""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from course_lib.distributed.config import HOST, check_positive, config, require
from course_lib.internals import stop_ipyparallel_loop_thread


@contextlib.contextmanager
def ipp_cluster(n: int = 2, profile: str | None = None, *, timeout: float = 60.0,
                activate: bool = True, local: bool = False) -> Iterator[Any]:
    """An ``ipyparallel.Client`` connected to ``n`` engines; everything stops after the block.

    With ``profile`` (or the ``COURSE_IPP_PROFILE`` setting, see :func:`config`)
    it connects to a cluster that is already running (``ipcluster start
    --profile=NAME``) and leaves it running. Otherwise, or with ``local=True``,
    it starts a controller and ``n`` local engines in a temporary profile
    folder, removed at the end. (Each engine's nanny process reports its death
    to the controller at once; a direct task then fails at once, a load-balanced
    one after ipyparallel's 5 s grace.) With ``activate`` the ``%px``/``%%px``
    magics use all engines.
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n must be a positive number of engines, got {n!r}")
    check_positive("timeout", timeout)
    ipp = require("ipyparallel")
    if local and profile:
        raise ValueError("give a profile or local=True, not both")
    profile = None if local else (profile or config()["COURSE_IPP_PROFILE"])
    if profile:
        remote = ipp.Client(profile=profile, timeout=timeout)
        try:
            if activate:
                remote.activate()
            yield remote
        finally:
            remote.close()
        return
    folder = tempfile.TemporaryDirectory(prefix="course-ipp-")
    root = Path(folder.name)
    (root / "tmp").mkdir()
    env = {"TMPDIR": str(root / "tmp"), "PYTHONWARNINGS": "ignore"}
    traitlets = require("traitlets.config")
    cfg = traitlets.Config()
    cfg.LocalControllerLauncher.environment = env
    cfg.LocalEngineSetLauncher.environment = env
    cluster = ipp.Cluster(n=n, profile_dir=str(root / "profile"), config=cfg,
                          log_level=logging.ERROR, delay=0.1, engine_timeout=int(timeout),
                          controller_ip=HOST, controller_args=["--HeartMonitor.period=250"])
    client: Any = None
    try:
        cluster.start_cluster_sync(n=n)
        client = cluster.connect_client_sync()
        client.wait_for_engines(n, timeout=timeout, block=True, interactive=False)
        if activate:
            client.activate()
        yield client
    finally:
        try:
            if client is not None:
                client.close()
        finally:
            try:
                with contextlib.suppress(Exception):
                    cluster.stop_engines_sync()
                with contextlib.suppress(Exception):
                    cluster.stop_controller_sync()
            finally:
                # ipyparallel runs *_sync calls on a thread it never stops (Jupyter)
                stop_ipyparallel_loop_thread(cluster, 5.0)
                folder.cleanup()
