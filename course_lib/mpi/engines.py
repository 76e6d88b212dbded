"""ipyparallel engines that are MPI ranks, for ``%%px`` cells: :class:`MPIEngines`.

ipyparallel is imported only when the engines start, so importing this module
stays cheap.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from course_lib.internals import stop_ipyparallel_loop_thread
from course_lib.mpi.launch import check_n, check_timeout, mpiexec_command
from course_lib.mpi.results import MPIUnavailableError
from course_lib.mpi.settings import KILL_WAIT

if TYPE_CHECKING:
    import tempfile

__all__ = ["MPIEngines"]


class MPIEngines:
    """ipyparallel engines started with ``mpiexec`` (the engines are MPI ranks), for ``%%px``.

    ``with MPIEngines(2) as rc:`` starts a controller and ``n`` engines and
    returns a connected ``ipyparallel.Client`` (``rc[:]`` is a view on all
    engines; with ``activate`` the ``%px``/``%%px`` magics use it), and stops
    everything at the end of the block. Across notebook cells call
    :meth:`start` and, in a clean-up cell, :meth:`stop`. The cluster's files
    live in a temporary folder that :meth:`stop` removes.
    """

    def __init__(self, n: int = 2, *, timeout: float = 60.0,
                 mpiexec: str | Sequence[str] | None = None, activate: bool = True) -> None:
        self.n = check_n(n)
        self.timeout = check_timeout(timeout)
        self.activate = activate
        self._mpiexec = mpiexec
        self._cluster: Any = None
        self._client: Any = None
        self._folder: tempfile.TemporaryDirectory[str] | None = None

    @property
    def client(self) -> Any:
        """The connected ``ipyparallel.Client`` (None when not started)."""
        return self._client

    def start(self) -> Any:
        """Start the controller and the engines; return the connected client."""
        if self._client is not None:
            return self._client
        import logging
        import tempfile

        try:
            ipp: Any = importlib.import_module("ipyparallel")
        except ImportError:
            raise MPIUnavailableError("ipyparallel is not installed: pip install -e "
                                      "'.[distributed]' (make lab installs it)") from None
        config_module: Any = importlib.import_module("traitlets.config")
        launcher = mpiexec_command(self._mpiexec)
        self._folder = tempfile.TemporaryDirectory(prefix="course-ipp-")
        root = Path(self._folder.name)
        (root / "tmp").mkdir()
        environment = {"TMPDIR": str(root / "tmp"), "PYTHONWARNINGS": "ignore"}
        config = config_module.Config()
        config.MPIEngineSetLauncher.mpi_cmd = launcher
        config.MPIEngineSetLauncher.environment = environment
        config.LocalControllerLauncher.environment = environment
        try:
            self._cluster = ipp.Cluster(
                engines="mpi", n=self.n, profile_dir=str(root / "profile"), config=config,
                log_level=logging.ERROR, delay=0.1, engine_timeout=int(self.timeout),
                controller_args=["--HeartMonitor.period=250"],  # engines register sooner
            )
            self._cluster.start_cluster_sync(n=self.n)
            client = self._cluster.connect_client_sync()
            self._client = client
            client.wait_for_engines(self.n, timeout=self.timeout, block=True, interactive=False)
            if self.activate:
                client.activate()
        except BaseException:
            self.stop()
            raise
        return self._client

    def stop(self) -> None:
        """Close the client, stop the engines, then the controller; remove the files."""
        if self._client is not None:
            try:
                self._client.close()
            finally:
                self._client = None
        if self._cluster is not None:
            cluster, self._cluster = self._cluster, None
            try:
                cluster.stop_engines_sync()
            finally:
                try:
                    cluster.stop_controller_sync()
                finally:
                    # ipyparallel runs *_sync calls on a thread it never stops (Jupyter)
                    stop_ipyparallel_loop_thread(cluster, KILL_WAIT)
        if self._folder is not None:
            self._folder.cleanup()
            self._folder = None

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
