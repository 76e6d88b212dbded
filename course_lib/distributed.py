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

Pointing the same code at a real cluster is configuration, not edits:

``COURSE_IPP_PROFILE``      ipyparallel profile of a running cluster (``ipcluster start --profile=NAME``)
``COURSE_DASK_SCHEDULER``   address of a running Dask scheduler (``tcp://host:8786``)
``COURSE_CELERY_BROKER``    Celery broker URL (``redis://host:6379/0``)
``COURSE_CELERY_BACKEND``   Celery result backend URL (``redis://host:6379/1``)
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from multiprocessing.managers import BaseManager
from pathlib import Path
from typing import Any

__all__ = [
    "ENV_VARS",
    "DistributedError",
    "QueueClient",
    "QueueServer",
    "Replica",
    "ReplicatedStore",
    "ScoopRun",
    "Unavailable",
    "celery_worker",
    "config",
    "dashboard_link",
    "dask_client",
    "free_port",
    "ipp_cluster",
    "pyro_daemon",
    "pyro_nameserver",
    "queue_manager_server",
    "redis_available",
    "redis_server",
    "rpyc_server",
    "run_scoop",
    "task_spans",
]

ENV_VARS = {
    "COURSE_IPP_PROFILE": "ipyparallel profile of a running cluster",
    "COURSE_DASK_SCHEDULER": "address of a running Dask scheduler, e.g. tcp://host:8786",
    "COURSE_CELERY_BROKER": "Celery broker URL, e.g. redis://host:6379/0",
    "COURSE_CELERY_BACKEND": "Celery result backend URL, e.g. redis://host:6379/1",
}

HOST = "127.0.0.1"
_INSTALL = "pip install -e '.[distributed]' (make lab installs it)"


class DistributedError(RuntimeError):
    """An engine could not start or stop; the message says what to do."""


def _import(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError:
        raise DistributedError(f"{name.split('.')[0]} is not installed: {_INSTALL}") from None


def _check_positive(name: str, value: float) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")


def config() -> dict[str, str | None]:
    """The cluster settings taken from the environment (None: start a local one)."""
    return {name: (os.environ.get(name) or None) for name in ENV_VARS}


def free_port(host: str = HOST) -> int:
    """A TCP port that is free right now on ``host``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _kill_tree(proc: subprocess.Popen[Any], grace: float = 5.0) -> None:
    """SIGTERM the process group, wait ``grace`` s, then SIGKILL it."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(grace)


def _stop_all(procs: Sequence[subprocess.Popen[Any]], sig: int, grace: float) -> None:
    """Send ``sig`` to every process group at once, wait ``grace`` s, then SIGKILL the rest."""
    for proc in procs:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
    deadline = time.monotonic() + grace
    for proc in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(max(0.0, deadline - time.monotonic()))
    for proc in procs:
        _kill_tree(proc, grace=grace)


# --------------------------------------------------------------------------- ipyparallel


def _stop_ipp_loop_thread(cluster: Any) -> None:
    """ipyparallel runs ``*_sync`` calls on a helper thread when a loop is running (Jupyter);
    end it, since ipyparallel leaves it running until the process exits."""
    loop = getattr(cluster, "_thread_loop", None)
    thread = getattr(cluster, "_async_thread", None)
    if loop is None or thread is None:
        return
    loop.add_callback(loop.stop)
    thread.join(5.0)
    if not thread.is_alive():
        loop.close()
    cluster._async_thread = None


@contextlib.contextmanager
def ipp_cluster(n: int = 2, profile: str | None = None, *, timeout: float = 60.0,
                activate: bool = True) -> Iterator[Any]:
    """An ``ipyparallel.Client`` connected to ``n`` engines; everything stops after the block.

    With ``profile`` (or ``$COURSE_IPP_PROFILE``) it connects to a cluster that
    is already running (``ipcluster start --profile=NAME``) and leaves it
    running. Otherwise it starts a controller and ``n`` local engines in a
    temporary profile folder, removed at the end. With ``activate`` the
    ``%px``/``%%px`` magics use all engines.
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n must be a positive number of engines, got {n!r}")
    _check_positive("timeout", timeout)
    ipp = _import("ipyparallel")
    profile = profile or config()["COURSE_IPP_PROFILE"]
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
    traitlets = _import("traitlets.config")
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
                _stop_ipp_loop_thread(cluster)
                folder.cleanup()


# --------------------------------------------------------------------------- Dask


@contextlib.contextmanager
def dask_client(n_workers: int = 2, *, threads_per_worker: int = 1, processes: bool = False,
                address: str | None = None, timeout: float = 30.0) -> Iterator[Any]:
    """A ``distributed.Client``; the local cluster (if any) stops after the block.

    With ``address`` (or ``$COURSE_DASK_SCHEDULER``) it connects to a running
    scheduler. Otherwise it starts a ``LocalCluster`` on 127.0.0.1 with
    ephemeral ports: ``processes=False`` (the default) keeps the workers in
    this process, which starts in about a second; ``processes=True`` gives
    each worker its own process.
    """
    if not isinstance(n_workers, int) or isinstance(n_workers, bool) or n_workers < 1:
        raise ValueError(f"n_workers must be a positive number, got {n_workers!r}")
    _check_positive("timeout", timeout)
    distributed = _import("distributed")
    address = address or config()["COURSE_DASK_SCHEDULER"]
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
    dask_config = _import("dask.config")
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
    utils = _import("distributed.utils")
    from concurrent.futures import ThreadPoolExecutor

    old = utils._offload_executor
    utils._offload_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="Dask-Offload")
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


# --------------------------------------------------------------------------- Redis


def redis_available() -> bool:
    """True when a ``redis-server`` program is on PATH."""
    return shutil.which("redis-server") is not None


@contextlib.contextmanager
def redis_server(*, timeout: float = 10.0) -> Iterator[str]:
    """A private redis-server on 127.0.0.1 and an ephemeral port; yields ``redis://...``.

    Nothing is saved to disk; the server is stopped after the block.
    """
    _check_positive("timeout", timeout)
    program = shutil.which("redis-server")
    if program is None:
        raise DistributedError("redis-server is not installed (apt install redis-server, "
                               "brew install redis); the course falls back to files and SQLite")
    port = free_port()
    folder = tempfile.TemporaryDirectory(prefix="course-redis-")
    proc = subprocess.Popen(
        [program, "--bind", HOST, "--port", str(port), "--save", "", "--appendonly", "no",
         "--dir", folder.name, "--protected-mode", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(OSError), socket.create_connection((HOST, port), 0.2) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise DistributedError(f"redis-server did not start on port {port} "
                                       f"within {timeout:g} s")
            time.sleep(0.05)
        yield f"redis://{HOST}:{port}"
    finally:
        _kill_tree(proc)
        folder.cleanup()


# --------------------------------------------------------------------------- Celery


@dataclass
class CeleryWorkers:
    """What :func:`celery_worker` yields: the app to send tasks with, and the workers."""

    app: Any
    broker: str
    backend: str
    names: list[str]
    processes: list[subprocess.Popen[Any]] = field(repr=False)


def _queue_of(worker: str) -> str:
    return "q-" + worker.split("@", 1)[0]


@contextlib.contextmanager
def celery_worker(n: int = 1, *, concurrency: int = 1, broker: str | None = None,
                  backend: str | None = None, timeout: float = 30.0) -> Iterator[CeleryWorkers]:
    """``n`` Celery worker processes serving ``course_lib.celery_tasks``; stopped after the block.

    The broker and result backend are ``broker``/``backend``, else
    ``$COURSE_CELERY_BROKER``/``$COURSE_CELERY_BACKEND``, else a folder of
    files (kombu's filesystem transport) and an SQLite database in a
    temporary folder, so nothing beyond Python packages is needed.
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n must be a positive number of workers, got {n!r}")
    _check_positive("timeout", timeout)
    _import("celery")
    settings = config()
    broker = broker or settings["COURSE_CELERY_BROKER"]
    backend = backend or settings["COURSE_CELERY_BACKEND"]
    folder = tempfile.TemporaryDirectory(prefix="course-celery-")
    root = Path(folder.name)
    (root / "tmp").mkdir()
    if broker is None:
        (root / "queue").mkdir()
        broker = "filesystem://"
    if backend is None:
        backend = f"db+sqlite:///{root / 'results.sqlite'}"
    env = dict(os.environ, COURSE_CELERY_BROKER=broker, COURSE_CELERY_BACKEND=backend,
               COURSE_CELERY_FOLDER=str(root / "queue"), TMPDIR=str(root / "tmp"),
               PYTHONWARNINGS="ignore")
    from course_lib import celery_tasks

    app = celery_tasks.make_app(broker, backend, str(root / "queue"))
    names = [f"worker{i + 1}@{HOST}" for i in range(n)]
    procs: list[subprocess.Popen[Any]] = []
    try:
        for name in names:
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "course_lib.celery_tasks", "worker",
                 "-n", name, "-Q", f"celery,{_queue_of(name)}", "--pool=prefork" if concurrency > 1 else "--pool=solo",
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
                        f"(broker {broker}, backend {backend})")
                if time.monotonic() > deadline:
                    raise DistributedError(f"Celery worker {name} did not start within "
                                           f"{timeout:g} s (broker {broker})")
                time.sleep(0.05)
            result.get(timeout=timeout)
            result.forget()
        yield CeleryWorkers(app, broker, backend, names, procs)
    finally:
        _stop_all(procs, signal.SIGQUIT, grace=3.0)  # SIGQUIT: Celery's cold shutdown
        with contextlib.suppress(Exception):
            app.close()
        folder.cleanup()


# --------------------------------------------------------------------------- Pyro5


@contextlib.contextmanager
def pyro_nameserver(*, host: str = HOST) -> Iterator[Any]:
    """A Pyro5 name server on ``host`` and an ephemeral port, in a thread; yields its URI."""
    nameserver = _import("Pyro5.nameserver")
    uri, daemon, _broadcast = nameserver.start_ns(host=host, port=0, enableBroadcast=False)
    thread = threading.Thread(target=daemon.requestLoop, name="pyro-nameserver", daemon=True)
    thread.start()
    try:
        yield uri
    finally:
        daemon.shutdown()
        thread.join(5.0)
        daemon.close()


@contextlib.contextmanager
def pyro_daemon(objects: Mapping[str, object], *, nameserver: Any = None,
                host: str = HOST) -> Iterator[dict[str, Any]]:
    """Serve ``objects`` (name -> object or class) with a Pyro5 daemon in a thread.

    Yields ``{name: uri}``; with ``nameserver`` (a URI) each name is also
    registered there and removed again at the end.
    """
    api = _import("Pyro5.api")
    daemon = api.Daemon(host=host, port=0)
    uris = {name: daemon.register(obj, objectId=name) for name, obj in objects.items()}
    thread = threading.Thread(target=daemon.requestLoop, name="pyro-daemon", daemon=True)
    thread.start()
    try:
        if nameserver is not None:
            with api.Proxy(nameserver) as ns:
                for name, uri in uris.items():
                    ns.register(name, uri)
        yield uris
    finally:
        try:
            if nameserver is not None:
                with contextlib.suppress(Exception), api.Proxy(nameserver) as ns:
                    for name in uris:
                        ns.remove(name)
        finally:
            daemon.shutdown()
            thread.join(5.0)
            daemon.close()


# --------------------------------------------------------------------------- rpyc


@contextlib.contextmanager
def rpyc_server(service: Any, *, host: str = HOST) -> Iterator[int]:
    """An rpyc ``ThreadedServer`` for ``service`` on an ephemeral port; yields the port."""
    utils = _import("rpyc.utils.server")
    logger = logging.getLogger("course-rpyc")
    logger.setLevel(logging.ERROR)
    server = utils.ThreadedServer(service, hostname=host, port=0, logger=logger,
                                  protocol_config={"allow_public_attrs": False})
    thread = threading.Thread(target=server.start, name="rpyc-server", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 5
        while not server.active and time.monotonic() < deadline:
            time.sleep(0.01)
        yield int(server.port)
    finally:
        server.close()
        thread.join(5.0)


# --------------------------------------------------------------------------- managers

_QUEUES: dict[str, Any] = {}


def _queue(name: str) -> Any:
    import queue

    return _QUEUES.setdefault(name, queue.Queue())


def _tasks() -> Any:
    return _queue("tasks")


def _results() -> Any:
    return _queue("results")


class QueueServer(BaseManager):
    """A manager process that shares a ``tasks`` and a ``results`` queue over TCP."""

    @property
    def authkey(self) -> bytes:
        """The shared secret a worker needs to connect (plain bytes, so it pickles)."""
        return bytes(self._authkey)  # type: ignore[attr-defined]


QueueServer.register("tasks", callable=_tasks)
QueueServer.register("results", callable=_results)


class QueueClient(BaseManager):
    """What a worker (on this or another machine) uses to reach a :class:`QueueServer`."""


QueueClient.register("tasks")
QueueClient.register("results")


@contextlib.contextmanager
def queue_manager_server(*, host: str = HOST, port: int = 0,
                         authkey: bytes | None = None) -> Iterator[QueueServer]:
    """Start a :class:`QueueServer` in its own process; yields it (``.address``, ``.tasks()``,
    ``.results()``, ``._authkey``); shut down after the block.

    A worker elsewhere connects with ``QueueClient(address=..., authkey=...)``.
    """
    from course_lib.machine import mp_context

    key = authkey if authkey is not None else os.urandom(16)
    server = QueueServer(address=(host, port), authkey=key, ctx=mp_context())
    server.start()
    try:
        yield server
    finally:
        server.shutdown()


# --------------------------------------------------------------------------- SCOOP


@dataclass(frozen=True)
class ScoopRun:
    """The outcome of :func:`run_scoop`."""

    returncode: int
    stdout: str
    stderr: str
    timed_out: bool


def run_scoop(program: str | os.PathLike[str], n: int = 2, *, timeout: float = 60.0,
              args: Sequence[str] = ()) -> ScoopRun:
    """Run a SCOOP program as ``python -m scoop -n N program`` with a time limit.

    ``program`` is a ``.py`` path or the source text. On timeout the whole
    process group (launcher and workers) is killed.
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n must be a positive number of workers, got {n!r}")
    _check_positive("timeout", timeout)
    _import("scoop")
    with tempfile.TemporaryDirectory(prefix="course-scoop-") as folder:
        path = Path(str(program))
        if not (str(program).endswith(".py") and path.is_file()):
            path = Path(folder) / "scoop_program.py"
            path.write_text(str(program), encoding="utf-8")
        (Path(folder) / "tmp").mkdir()
        env = dict(os.environ, TMPDIR=str(Path(folder) / "tmp"), PYTHONWARNINGS="ignore",
                   PYTHONPATH=os.pathsep.join([str(Path(__file__).resolve().parent.parent),
                                               os.environ.get("PYTHONPATH", "")]))
        proc = subprocess.Popen([sys.executable, "-m", "scoop", "-n", str(n),
                                 str(path), *args], cwd=folder, env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True)
        try:
            out, err = proc.communicate(timeout=timeout)
            return ScoopRun(proc.returncode, out, err, False)
        except subprocess.TimeoutExpired:
            _kill_tree(proc, grace=1.0)
            out, err = proc.communicate()
            return ScoopRun(proc.returncode, out, err, True)


# --------------------------------------------------------------------------- pictures


def task_spans(records: Iterable[Sequence[Any]], name: str = "task") -> list[Any]:
    """Spans for :func:`course_lib.viz.timeline` from ``(result, worker, start, end)``
    records, as :func:`course_lib.dist_tasks.slow_square` returns them."""
    from course_lib.trace import Span

    spans = []
    for record in records:
        _, worker, start, end = record[:4]
        pid = int(str(worker).rsplit(":", 1)[-1]) if str(worker).rsplit(":", 1)[-1].isdigit() else 0
        spans.append(Span(name, str(worker), float(start), float(end), pid, "MainThread"))
    return sorted(spans, key=lambda s: s.start)


# --------------------------------------------------------------------------- CAP


class Unavailable(Exception):
    """The store refused the request: too few replicas could be reached."""


@dataclass
class Replica:
    """One copy of the data: ``key -> (version, value)``; unreachable during a partition."""

    name: str
    data: dict[str, tuple[int, Any]] = field(default_factory=dict)
    reachable: bool = True

    def read(self, key: str) -> tuple[int, Any]:
        """``(version, value)``; ``(0, None)`` for a key never written."""
        if not self.reachable:
            raise Unavailable(f"replica {self.name} cannot be reached")
        return self.data.get(key, (0, None))

    def write(self, key: str, version: int, value: Any) -> None:
        """Store ``value`` if ``version`` is newer than what this replica has."""
        if not self.reachable:
            raise Unavailable(f"replica {self.name} cannot be reached")
        if version > self.data.get(key, (0, None))[0]:
            self.data[key] = (version, value)


class ReplicatedStore:
    """A toy key-value store with ``n`` replicas and a partition you can switch on.

    Clients talk to one replica (``at=i``); it reaches the replicas on its side
    of the partition. In ``"CP"`` mode a request needs a majority on its side
    (else :class:`Unavailable`), so the two sides never disagree. In ``"AP"``
    mode every request is served by whatever is reachable, so a minority side
    keeps answering, possibly with stale data, and the sides diverge until
    :meth:`heal` reconciles them (the highest version wins).
    """

    def __init__(self, n: int = 3, mode: str = "CP") -> None:
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError(f"n must be a positive number of replicas, got {n!r}")
        if mode not in ("CP", "AP"):
            raise ValueError(f"mode must be 'CP' or 'AP', got {mode!r}")
        self.mode = mode
        self.replicas = [Replica(f"r{i}") for i in range(n)]
        self.sides: list[set[int]] = [set(range(n))]
        self.log: list[tuple[str, int, str, str]] = []

    def partition(self, *groups: Iterable[int]) -> None:
        """Cut the network into the given groups of replica indices."""
        sides = [set(g) for g in groups]
        seen = set().union(*sides) if sides else set()
        if seen != set(range(len(self.replicas))) or sum(map(len, sides)) != len(seen):
            raise ValueError("partition() needs every replica index in exactly one group")
        self.sides = sides

    def heal(self) -> None:
        """Reconnect every replica and copy the newest version of each key everywhere."""
        self.sides = [set(range(len(self.replicas)))]
        for r in self.replicas:
            r.reachable = True
        keys = {k for r in self.replicas for k in r.data}
        for key in keys:
            version, value = max((r.data.get(key, (0, None)) for r in self.replicas),
                                 key=lambda pair: pair[0])
            for r in self.replicas:
                r.write(key, version, value)

    def _side(self, at: int) -> list[Replica]:
        if not 0 <= at < len(self.replicas):
            raise ValueError(f"at must name a replica 0..{len(self.replicas) - 1}, got {at}")
        side = next(s for s in self.sides if at in s)
        for i, r in enumerate(self.replicas):
            r.reachable = i in side
        return [self.replicas[i] for i in sorted(side)]

    def _check_quorum(self, side: list[Replica], action: str, at: int) -> None:
        majority = len(self.replicas) // 2 + 1
        if self.mode == "CP" and len(side) < majority:
            self.log.append((action, at, "refused", f"{len(side)} of {len(self.replicas)}"))
            raise Unavailable(f"{action} at r{at} refused: it reaches {len(side)} of "
                              f"{len(self.replicas)} replicas, a majority is {majority}")

    def put(self, key: str, value: Any, *, at: int = 0) -> int:
        """Write through replica ``at``; returns the version written."""
        side = self._side(at)
        self._check_quorum(side, "put", at)
        version = max(r.read(key)[0] for r in side) + 1
        for r in side:
            r.write(key, version, value)
        self.log.append(("put", at, "ok", f"{key}={value!r} v{version}"))
        return version

    def get(self, key: str, *, at: int = 0) -> Any:
        """Read through replica ``at``: the newest value its side knows."""
        side = self._side(at)
        self._check_quorum(side, "get", at)
        version, value = max((r.read(key) for r in side), key=lambda pair: pair[0])
        self.log.append(("get", at, "ok", f"{key}={value!r} v{version}"))
        return value
