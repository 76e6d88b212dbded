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

The same four settings can live in a TOML file (keys ``ipp_profile``,
``dask_scheduler``, ``celery_broker``, ``celery_backend``), read from
``$COURSE_CLUSTER_CONFIG`` or else ``~/.config/parallel-python/cluster.toml``;
an environment variable wins over the file. ``local=True`` on the engine
functions ignores both and always starts a private local engine (the failure
demos kill workers: never on a shared cluster).

Failure and bad input: :func:`is_worker_lost` recognises a task lost with its
worker (ipyparallel, Dask, Celery); :func:`check_broker` fails fast with advice
when a broker does not answer; :func:`pyro_proxy` names the known names when a
lookup fails; :func:`check_payload` names the part of a task's arguments that
cannot be serialised, and says what to send instead.
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
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from multiprocessing.managers import BaseManager
from pathlib import Path
from typing import Any

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

ENV_VARS = {
    "COURSE_IPP_PROFILE": "ipyparallel profile of a running cluster",
    "COURSE_DASK_SCHEDULER": "address of a running Dask scheduler, e.g. tcp://host:8786",
    "COURSE_CELERY_BROKER": "Celery broker URL, e.g. redis://host:6379/0",
    "COURSE_CELERY_BACKEND": "Celery result backend URL, e.g. redis://host:6379/1",
}

CONFIG_FILE_VAR = "COURSE_CLUSTER_CONFIG"
DEFAULT_CONFIG_FILE = Path("~/.config/parallel-python/cluster.toml")

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


# Celery's cold shutdown; Windows has no SIGQUIT, and SIGTERM there is TerminateProcess.
QUIT_SIGNAL = int(getattr(signal, "SIGQUIT", signal.SIGTERM))


def free_port(host: str = HOST) -> int:
    """A TCP port that is free right now on ``host``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _kill_tree(proc: subprocess.Popen[Any], grace: float = 5.0) -> None:
    """SIGTERM the process, its descendants and its group, wait ``grace`` s, then kill them.

    :func:`course_lib.proc.kill_tree` does it on every platform (no ``os.killpg`` needed).
    """
    from .proc import kill_tree

    kill_tree(proc, timeout=grace, grace=grace if proc.poll() is None else 0.0)


def _stop_all(procs: Sequence[subprocess.Popen[Any]], sig: int, grace: float) -> None:
    """Send ``sig`` to every process tree at once, wait ``grace`` s, then kill the rest."""
    from .proc import kill_tree, send_to_tree, wait_gone

    families = [send_to_tree(proc, sig) for proc in procs if proc.poll() is None]
    wait_gone([member for members in families for member in members], grace)
    for proc in procs:
        kill_tree(proc, timeout=grace)


def kill_process(pid: int) -> None:
    """Kill process ``pid`` at once (SIGKILL on Unix): a crash, not a shutdown.

    The failure demos use it to kill one worker mid-task; killing a process
    that has already gone is not an error.
    """
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        raise ValueError(f"pid must be a positive process id, got {pid!r}")
    if pid == os.getpid():
        raise ValueError("kill_process() refuses to kill the process that calls it")
    import psutil

    with contextlib.suppress(psutil.NoSuchProcess):
        process = psutil.Process(pid)
        process.kill()
        # Wait until it is gone, without reaping it: its parent collects its exit status.
        deadline = time.monotonic() + 5
        while (process.is_running() and process.status() != psutil.STATUS_ZOMBIE
               and time.monotonic() < deadline):
            time.sleep(0.01)


def wait_for(predicate: Any, timeout: float, what: str, *, interval: float = 0.02,
             clock: Any = time.monotonic, sleep: Any = time.sleep) -> None:
    """Call ``predicate()`` until it is true; ``TimeoutError`` naming ``what`` after
    ``timeout`` seconds."""
    _check_positive("timeout", timeout)
    deadline = clock() + timeout
    while not predicate():
        if clock() > deadline:
            raise TimeoutError(f"{what} did not happen within {timeout:g} s")
        sleep(interval)


_LOST = {"EngineError", "KilledWorker", "WorkerLostError"}


def is_worker_lost(error: BaseException) -> bool:
    """True when ``error`` says the task was lost with the worker running it.

    ipyparallel: ``EngineError`` (usually wrapped in a ``RemoteError`` whose
    ``ename`` is ``"EngineError"``); Dask: ``KilledWorker``; Celery:
    ``WorkerLostError``. An exception the task raised itself is not a loss.
    """
    names = {type(error).__name__, str(getattr(error, "ename", ""))}
    return bool(names & _LOST)


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
    _check_positive("timeout", timeout)
    ipp = _import("ipyparallel")
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
    _check_positive("timeout", timeout)
    distributed = _import("distributed")
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
    _check_positive("timeout", timeout)
    if not isinstance(url, str) or "://" not in url:
        raise ValueError(f"{what} URL must look like redis://host:6379/0, got {url!r}")
    if url.split("://", 1)[0] in ("filesystem", "memory"):
        return
    kombu = _import("kombu")
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
    _check_positive("timeout", timeout)
    _import("celery")
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
    _check_positive("timeout", timeout)
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
        stack.callback(lambda: _stop_all(procs, QUIT_SIGNAL, grace=3.0))
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


# --------------------------------------------------------------------------- payloads


class PayloadError(DistributedError, TypeError):
    """A task's arguments cannot be serialised; the message names the part and a fix."""


_ADVICE = {
    "lock": "a lock only works inside one process: create it inside the task, or use the "
            "cluster's own synchronisation (a Dask Lock, a Celery chain)",
    "thread": "a thread cannot travel: send the data it works on instead",
    "socket": "a connection cannot travel: send its address and connect inside the task",
    "file": "an open file cannot travel: send its path (on a shared disk) or its contents",
    "generator": "a generator cannot travel: send list(generator)",
    "module": "a module cannot travel: import it inside the task",
}


def _advice(obj: object, serializer: str) -> str:
    kind = type(obj).__name__.lower()
    for key, text in _ADVICE.items():
        if key in kind or (key == "file" and hasattr(obj, "readable") and hasattr(obj, "fileno")):
            return text
    if serializer == "json":
        if isinstance(obj, (set, frozenset)):
            return "JSON has no sets: send sorted(the_set) and rebuild the set in the task"
        if isinstance(obj, (bytes, bytearray)):
            return "JSON has no bytes: send base64 text, or a path to the data"
        if hasattr(obj, "tolist"):
            return "JSON has no arrays: send array.tolist() and rebuild it in the task"
        return ("JSON carries only numbers, strings, lists, dicts, True/False and None: send "
                "those and rebuild the object inside the task")
    return "send plain data (numbers, strings, lists, dicts, NumPy arrays) instead"


def _serialise(obj: object, serializer: str) -> None:
    if serializer == "json":
        import json

        json.dumps(obj)
    else:
        try:
            import cloudpickle

            cloudpickle.dumps(obj)
        except ImportError:
            import pickle

            pickle.dumps(obj)


def _parts(obj: object) -> list[tuple[str, object]]:
    """The pieces of ``obj`` to look into: (path suffix, piece)."""
    if isinstance(obj, dict):
        return [(f"[{key!r}]", value) for key, value in obj.items()] + [
            (f" key {key!r}", key) for key in obj]
    if isinstance(obj, (list, tuple)):
        return [(f"[{i}]", value) for i, value in enumerate(obj)]
    if isinstance(obj, (set, frozenset)):
        return [(" item", value) for value in obj]
    state = getattr(obj, "__dict__", None)
    if isinstance(state, dict) and not isinstance(obj, type):
        return [(f".{name}", value) for name, value in state.items()]
    return []


def check_payload(obj: object, *, serializer: str = "pickle", what: str = "payload") -> None:
    """Raise :class:`PayloadError` if ``obj`` cannot be serialised the way a cluster sends it.

    ``serializer`` is ``"pickle"`` (cloudpickle when installed, as Dask and
    ipyparallel use) or ``"json"`` (Celery's default). The message names the
    innermost offending part (``payload[1]['lock']``), its type, and what to
    send instead.
    """
    if serializer not in ("pickle", "json"):
        raise ValueError(f"serializer must be 'pickle' or 'json', got {serializer!r}")
    try:
        _serialise(obj, serializer)
        return
    except Exception as error:  # each serializer raises its own types
        first_error: Exception = error
    path, culprit, seen = "", obj, {id(obj)}
    descended = True
    while descended:
        descended = False
        for suffix, part in _parts(culprit):
            if id(part) in seen:
                continue
            seen.add(id(part))
            try:
                _serialise(part, serializer)
            except Exception as error:
                path, culprit, first_error, descended = path + suffix, part, error, True
                break
    advice = _advice(culprit, serializer)
    shown = repr(culprit)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    raise PayloadError(
        f"{what}{path} is a {type(culprit).__module__}.{type(culprit).__qualname__} "
        f"({shown}), which cannot be sent with {serializer} ({first_error}). "
        f"{advice[:1].upper()}{advice[1:]}")


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
                host: str = HOST, servertype: str | None = None) -> Iterator[dict[str, Any]]:
    """Serve ``objects`` (name -> object or class) with a Pyro5 daemon in a thread.

    Yields ``{name: uri}``; with ``nameserver`` (a URI) each name is also
    registered there and removed again at the end. ``servertype`` picks Pyro5's
    server: ``"thread"`` (a pool of threads: concurrent calls run at once) or
    ``"multiplex"`` (one thread: calls run one at a time); None keeps
    ``Pyro5.config.SERVERTYPE`` ("thread" unless you changed it).
    """
    if servertype not in (None, "thread", "multiplex"):
        raise ValueError(f"servertype must be 'thread' or 'multiplex', not {servertype!r}")
    api = _import("Pyro5.api")
    config = _import("Pyro5").config
    previous = config.SERVERTYPE
    if servertype is not None:
        config.SERVERTYPE = servertype   # read once, when the daemon is made
    try:
        daemon = api.Daemon(host=host, port=0)
    finally:
        config.SERVERTYPE = previous
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


class NameNotFound(DistributedError, LookupError):
    """A name server does not know the name asked for; the message lists the names it knows."""


def pyro_proxy(name: str, nameserver: Any, *, timeout: float = 10.0) -> Any:
    """A ``Pyro5.api.Proxy`` for the object registered as ``name`` on ``nameserver``
    (its URI), with every remote call bounded by ``timeout`` seconds.

    An unknown name raises :class:`NameNotFound` listing the names the server
    knows; a name server that does not answer raises ``DistributedError``.
    """
    _check_positive("timeout", timeout)
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string, got {name!r}")
    api = _import("Pyro5.api")
    errors = _import("Pyro5.errors")
    try:
        with api.Proxy(nameserver) as ns:
            ns._pyroTimeout = timeout
            try:
                uri = ns.lookup(name)
            except errors.NamingError:
                known = sorted(str(k) for k in ns.list() if k != "Pyro.NameServer")
                raise NameNotFound(
                    f"the name server at {nameserver} knows no object named {name!r}; it "
                    f"knows {', '.join(map(repr, known)) or 'no names at all'}. Check the "
                    "spelling, or register the object (pyro_daemon({name: obj}, "
                    "nameserver=...))") from None
    except errors.CommunicationError as error:
        raise DistributedError(f"the Pyro5 name server at {nameserver} does not answer "
                               f"({error}): start it (pyro_nameserver(), or python -m "
                               "Pyro5.nameserver) and check its host and port") from None
    proxy = api.Proxy(uri)
    proxy._pyroTimeout = timeout
    return proxy


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


# SCOOP 0.7's worker bootstrap loads the program with importlib's load_module(), which
# warns on Python 3.12 to 3.14 (silenced: PYTHONWARNINGS=ignore) and is gone in 3.15. This
# sitecustomize, on the launcher's and the workers' path, puts back an equivalent built on
# exec_module() where it is missing. (SCOOP's TCP backend imports asyncore, gone since
# 3.12: run_scoop keeps SCOOP's default ZeroMQ backend, which does not.)
_SCOOP_SITECUSTOMIZE = """
import importlib.machinery, importlib.util, sys
if not hasattr(importlib.machinery.SourceFileLoader, "load_module"):
    def _load_module(self, fullname=None):
        name = fullname or self.name
        spec = importlib.util.spec_from_file_location(name, self.path, loader=self)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        self.exec_module(module)
        return module
    importlib.machinery.SourceFileLoader.load_module = _load_module
"""


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
        shim = Path(folder) / "shim"
        shim.mkdir()
        (shim / "sitecustomize.py").write_text(_SCOOP_SITECUSTOMIZE, encoding="utf-8")
        env = dict(os.environ, TMPDIR=str(Path(folder) / "tmp"), PYTHONWARNINGS="ignore",
                   PYTHONPATH=os.pathsep.join([str(Path(__file__).resolve().parent.parent),
                                               str(shim), os.environ.get("PYTHONPATH", "")]))
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
    records, as :func:`course_lib.dist_tasks.slow_square` returns them; a fifth
    element, when present, names that span instead of ``name``."""
    from course_lib.trace import Span

    spans = []
    for record in records:
        _, worker, start, end = record[:4]
        label = str(record[4]) if len(record) > 4 else name
        pid = int(str(worker).rsplit(":", 1)[-1]) if str(worker).rsplit(":", 1)[-1].isdigit() else 0
        spans.append(Span(label, str(worker), float(start), float(end), pid, "MainThread"))
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
