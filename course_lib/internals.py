"""Every use of another library's private internals, in one place.

The course needs a few things that no public API offers: the process id of
multiprocessing's fork server, the thread ipyparallel leaves running, Dask's
module-level offload pool, and so on. Each is reached here through a small
accessor that says which library version it was written against and what it
returns when the internal has gone (a later version renamed or removed it):
the caller then does without (nothing to stop, nothing to restore) instead of
crashing. ``tests/course_lib/test_internals.py`` checks that every internal still exists
with the expected shape in the installed versions, so that an upgrade which
changes one fails loudly, naming the accessor.

Nothing here imports an optional library at module import time.
"""

from __future__ import annotations

import asyncio
import importlib
import multiprocessing
import threading
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

# No ``__all__``: this is not an API for notebooks (docs/API.md lists those); the
# course's own modules import the accessors they need by name.


def _unwrap(function: object) -> object:
    """The plain function under a ``staticmethod``/``classmethod`` (or bound method)."""
    return getattr(function, "__func__", function)


# --------------------------------------------------------------------------- asyncio


# asyncio exports _get_running_loop (in asyncio.events.__all__) for event loop
# implementations; it answers in about 0.15 us where the public get_running_loop()
# raising RuntimeError takes over 1.5 us, which the tracer's per-span cost cannot afford.
_get_running_loop: Callable[[], asyncio.AbstractEventLoop | None] | None = getattr(
    asyncio, "_get_running_loop", None)


def running_loop_or_none() -> asyncio.AbstractEventLoop | None:
    """The event loop running in this thread, or None.

    Uses ``asyncio._get_running_loop`` (CPython 3.11-3.14; fast, no exception);
    where it is missing, the public ``asyncio.get_running_loop()`` (same answer,
    about ten times slower outside a loop).
    """
    if _get_running_loop is not None:
        return _get_running_loop()
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def default_executor(loop: asyncio.AbstractEventLoop) -> Executor | None:
    """The pool ``loop.run_in_executor(None, ...)`` uses, or None if none was made yet.

    Reads ``BaseEventLoop._default_executor`` (CPython 3.11-3.14). None also when
    the attribute is missing (another loop implementation, a later CPython).
    """
    executor = getattr(loop, "_default_executor", None)
    return executor if isinstance(executor, Executor) else None


def set_default_executor(loop: asyncio.AbstractEventLoop, executor: Executor | None) -> bool:
    """Put ``executor`` back as ``loop``'s default pool, None included.

    ``loop.set_default_executor`` refuses None (and, since 3.11, anything but a
    ``ThreadPoolExecutor``), so restoring "no pool yet" writes
    ``BaseEventLoop._default_executor`` (CPython 3.11-3.14). Returns False, and
    changes nothing, where the loop has no such attribute.
    """
    if not hasattr(loop, "_default_executor"):
        return False
    loop._default_executor = executor
    return True


# --------------------------------------------------------------------------- the interpreter


def gil_enabled_now() -> bool | None:
    """Whether the GIL is on in this process; None where the interpreter cannot say.

    Calls ``sys._is_gil_enabled()`` (CPython 3.13+, documented despite its
    underscore). None on 3.11 and 3.12, which always have a GIL.
    """
    import sys

    is_enabled = getattr(sys, "_is_gil_enabled", None)
    return bool(is_enabled()) if callable(is_enabled) else None


# --------------------------------------------------------------------------- multiprocessing


def _forkserver() -> Any:
    try:
        forkserver = importlib.import_module("multiprocessing.forkserver")
    except ImportError:  # Windows: no fork server
        return None
    return getattr(forkserver, "_forkserver", None)


def forkserver_pid() -> int | None:
    """The pid of this process's multiprocessing fork server, or None if none runs.

    Reads ``multiprocessing.forkserver._forkserver._forkserver_pid`` (CPython
    3.11-3.14). None also where the internal is missing (Windows, a later CPython).
    """
    pid = getattr(_forkserver(), "_forkserver_pid", None)
    return pid if isinstance(pid, int) else None


def forkserver_alive() -> bool:
    """Whether this process's fork server runs (False where that cannot be known)."""
    pid = forkserver_pid()
    if pid is None:
        return False
    import psutil

    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def stop_forkserver() -> bool:
    """Stop this process's fork server (it comes back when next needed).

    Calls ``ForkServer._stop()`` (CPython 3.11-3.14). Returns False, and stops
    nothing, when no server runs or the internal is missing.
    """
    server = _forkserver()
    stop = getattr(server, "_stop", None)
    if forkserver_pid() is None or not callable(stop):
        return False
    stop()
    return True


def _resource_tracker() -> Any:
    try:
        tracker = importlib.import_module("multiprocessing.resource_tracker")
    except ImportError:
        return None
    return getattr(tracker, "_resource_tracker", None)


def resource_tracker_pid() -> int | None:
    """The pid of multiprocessing's resource tracker, or None if none runs.

    Reads ``multiprocessing.resource_tracker._resource_tracker._pid`` (CPython
    3.11-3.14). None also where the internal is missing.
    """
    pid = getattr(_resource_tracker(), "_pid", None)
    return pid if isinstance(pid, int) else None


def stop_resource_tracker() -> int | None:
    """Stop the resource tracker (it comes back when next needed); the pid it had.

    Calls ``ResourceTracker._stop()`` (CPython 3.11-3.14). None, and nothing
    stopped, when no tracker runs or the internal is missing.
    """
    tracker = _resource_tracker()
    pid = resource_tracker_pid()
    stop = getattr(tracker, "_stop", None)
    if pid is None or not callable(stop):
        return None
    stop()
    return pid


def process_config() -> dict[str, Any]:
    """The current process's multiprocessing settings (``tempdir``, ``authkey``, ...).

    Reads ``multiprocessing.current_process()._config`` (CPython 3.11-3.14); an
    empty dict where it is missing (so "no temporary folder known").
    """
    config = getattr(multiprocessing.current_process(), "_config", None)
    return config if isinstance(config, dict) else {}


def multiprocessing_finalizers() -> list[Any] | None:
    """The ``multiprocessing.util.Finalize`` objects registered in this process.

    Reads ``multiprocessing.util._finalizer_registry`` (CPython 3.11-3.14). None
    where it is missing: the caller falls back to scanning every object.
    """
    from multiprocessing import util

    registry = getattr(util, "_finalizer_registry", None)
    return list(registry.values()) if isinstance(registry, dict) else None


def finalizer_callback(finalizer: object) -> object:
    """What a ``Finalize`` calls (``Finalize._callback``); None if unknown."""
    return getattr(finalizer, "_callback", None)


def finalizer_args(finalizer: object) -> tuple[Any, ...]:
    """The arguments a ``Finalize`` passes (``Finalize._args``); () if unknown."""
    args = getattr(finalizer, "_args", None)
    return tuple(args) if isinstance(args, (tuple, list)) else ()


def finalizer_target(finalizer: object) -> object:
    """The object a ``Finalize`` is attached to (``Finalize._weakref``); None if gone."""
    ref = getattr(finalizer, "_weakref", None)
    return ref() if callable(ref) else None


def pool_terminate_function() -> object:
    """The function a running ``multiprocessing.Pool`` registers as its finalizer.

    ``Pool._terminate_pool`` (a classmethod, CPython 3.11-3.14); None if missing.
    """
    from multiprocessing.pool import Pool

    found = Pool.__dict__.get("_terminate_pool")
    return None if found is None else _unwrap(found)


def semlock_cleanup_function() -> object:
    """The function a named semaphore registers to unlink itself.

    ``multiprocessing.synchronize.SemLock._cleanup`` (a staticmethod, CPython
    3.11-3.14); None if missing.
    """
    from multiprocessing.synchronize import SemLock

    found = SemLock.__dict__.get("_cleanup")
    return None if found is None else _unwrap(found)


def semlock_name(lock: object) -> str | None:
    """The ``/dev/shm`` name of a multiprocessing lock's semaphore (``SemLock._semlock.name``).

    None when it has none (unnamed) or the internal is missing (CPython 3.11-3.14).
    """
    name = getattr(getattr(lock, "_semlock", None), "name", None)
    return name if isinstance(name, str) and name else None


def process_pool_executors() -> list[Any] | None:
    """Every ``ProcessPoolExecutor`` of this process whose manager thread still runs.

    Reads ``concurrent.futures.process._threads_wakeups`` (manager thread ->
    wake-up pipe) and each thread's ``executor_reference`` (CPython 3.11-3.14).
    None where they are missing: the caller falls back to scanning every object.
    """
    from concurrent.futures import process

    wakeups = getattr(process, "_threads_wakeups", None)
    if wakeups is None:
        return None
    found = []
    for thread in list(wakeups.keys()):
        reference = getattr(thread, "executor_reference", None)
        if not callable(reference):
            return None
        executor = reference()
        if executor is not None:
            found.append(executor)
    return found


def release_shared_memory_mapping(shm: object) -> bool:
    """Let ``shm.close()`` succeed while NumPy views still use the memory.

    Drops ``SharedMemory._buf`` and ``_mmap`` (CPython 3.11-3.14), handing the
    mapping to the views (unmapped when the last one is freed). Returns False,
    changing nothing, where those attributes are missing.
    """
    if not (hasattr(shm, "_buf") and hasattr(shm, "_mmap")):
        return False
    shm._buf = None
    shm._mmap = None
    return True


def _posixshmem() -> Any:
    try:
        return importlib.import_module("_posixshmem")
    except ImportError:  # Windows
        return None


def posix_shm_exists(name: str) -> bool | None:
    """Whether the POSIX shared-memory segment ``name`` exists, without registering it.

    Asks ``_posixshmem.shm_open`` (the C module under ``multiprocessing.shared_memory``,
    CPython 3.11-3.14), read-only. None where that module is missing (Windows): the
    caller must find out another way.
    """
    module = _posixshmem()
    if module is None or not callable(getattr(module, "shm_open", None)):
        return None
    import os

    try:
        fd = module.shm_open("/" + name.lstrip("/"), os.O_RDONLY, mode=0o600)
    except FileNotFoundError:
        return False
    os.close(fd)
    return True


def posix_shm_unlink(name: str) -> bool:
    """Unlink the POSIX shared-memory segment ``name`` (``_posixshmem.shm_unlink``).

    Returns False when there is no such segment, or no such function (Windows,
    where a block is freed when its last handle closes).
    """
    unlink = getattr(_posixshmem(), "shm_unlink", None)
    if not callable(unlink):
        return False
    try:
        unlink("/" + name.lstrip("/"))
    except FileNotFoundError:
        return False
    return True


def posix_sem_unlink(name: str) -> bool:
    """Unlink the named POSIX semaphore ``name`` (``_multiprocessing.sem_unlink``).

    Written against CPython 3.11-3.14. Returns False when there is no such
    semaphore, or no such function (Windows has no named semaphores to leak).
    """
    try:
        module = importlib.import_module("_multiprocessing")
    except ImportError:
        return False
    unlink = getattr(module, "sem_unlink", None)
    if not callable(unlink):
        return False
    try:
        unlink(name)
    except OSError:
        return False
    return True


# --------------------------------------------------------------------------- Dask


def dask_offload_executor() -> Executor | None:
    """Dask's module-level one-thread pool (``distributed.utils._offload_executor``).

    Written against distributed 2024.8-2026.8. None when Dask is not installed
    or the internal is missing.
    """
    try:
        utils = importlib.import_module("distributed.utils")
    except ImportError:
        return None
    executor = getattr(utils, "_offload_executor", None)
    return executor if isinstance(executor, Executor) else None


def replace_dask_offload_executor(new: Executor) -> Executor | None:
    """Put ``new`` in place of Dask's offload pool; return the old one.

    None, and nothing replaced, when Dask or the internal is missing.
    """
    old = dask_offload_executor()
    if old is None:
        return None
    utils: Any = importlib.import_module("distributed.utils")
    utils._offload_executor = new
    return old


# --------------------------------------------------------------------------- ipyparallel


def ipyparallel_loop_thread(obj: object) -> threading.Thread | None:
    """The thread in which an ipyparallel Client or Cluster runs its ``*_sync`` calls.

    ipyparallel (9.0-9.2) starts it (``AsyncFirst._async_thread``) when an event
    loop is already running, as in Jupyter, and never stops it. None when there
    is none or the internal is missing.
    """
    thread = getattr(obj, "_async_thread", None)
    return thread if isinstance(thread, threading.Thread) else None


def stop_ipyparallel_loop_thread(obj: object, timeout: float = 5.0) -> bool:
    """End the thread of :func:`ipyparallel_loop_thread` and close its loop.

    Stops ``obj._thread_loop`` (a tornado IOLoop), waits up to ``timeout``
    seconds, and forgets the thread so a later ``*_sync`` call starts a new one.
    Returns False, doing nothing, when there is no such thread or loop.
    """
    loop = getattr(obj, "_thread_loop", None)
    thread = ipyparallel_loop_thread(obj)
    if loop is None or thread is None:
        return False
    loop.add_callback(loop.stop)
    thread.join(timeout)
    if not thread.is_alive():
        loop.close()
    obj._async_thread = None  # type: ignore[attr-defined]
    return True


def ipp_client_engines(client: object) -> dict[int, str]:
    """An ipyparallel Client's engines: engine id -> engine uuid (``Client._engines``).

    Written against ipyparallel 9.0-9.2. Empty when the internal is missing (no
    engine can then be named from a task's uuid).
    """
    engines = getattr(client, "_engines", None)
    if engines is None:
        return {}
    return {int(eid): str(uuid) for eid, uuid in dict(engines).items()}


# --------------------------------------------------------------------------- kombu


def retry_queue_bind(channel: type, again: Callable[[Callable[[], Any]], Any]) -> type:
    """A subclass of a kombu virtual ``Channel`` whose ``_queue_bind`` goes through ``again``.

    kombu's filesystem transport (5.3-5.7) reads its exchange table in
    ``Channel._queue_bind(exchange, routing_key, pattern, queue)``, which fails
    while another process rewrites the file; ``again(read)`` calls ``read`` until
    it succeeds. Where ``channel`` has no ``_queue_bind`` it is returned as it is.
    """
    parent_bind = getattr(channel, "_queue_bind", None)
    if not callable(parent_bind):
        return channel

    def _queue_bind(self: Any, *args: Any) -> Any:
        return again(lambda: parent_bind(self, *args))  # the parent's, as super() would

    subclass = type(channel.__name__, (channel,), {
        "_queue_bind": _queue_bind,
        "__module__": channel.__module__,
        "__doc__": channel.__doc__,
        "__qualname__": channel.__qualname__,
    })
    return subclass


# --------------------------------------------------------------------------- numba-cuda's simulator
# graders.checks.gpu.simulator_trace() wraps methods of the simulator's classes to
# record what each simulated GPU thread reads and writes; these are the private
# pieces it needs, written against numba-cuda 0.2x (numba/cuda/simulator/).


def numba_simulator_classes() -> dict[str, type] | None:
    """The simulator classes a trace wraps: kernel, array, module, shared, atomic, thread.

    ``kernel.FakeCUDAKernel``, ``cudadrv.devicearray.FakeWithinKernelCUDAArray``,
    ``kernelapi.FakeCUDAModule``, ``FakeCUDAShared``, ``FakeCUDAAtomic`` and
    ``kernel.BlockThread``. None when numba-cuda is missing or has renamed one.
    """
    try:
        kernel = importlib.import_module("numba.cuda.simulator.kernel")
        kernelapi = importlib.import_module("numba.cuda.simulator.kernelapi")
        devicearray = importlib.import_module("numba.cuda.simulator.cudadrv.devicearray")
        return {
            "kernel": kernel.FakeCUDAKernel,
            "array": devicearray.FakeWithinKernelCUDAArray,
            "module": kernelapi.FakeCUDAModule,
            "shared": kernelapi.FakeCUDAShared,
            "atomic": kernelapi.FakeCUDAAtomic,
            "thread": kernel.BlockThread,
        }
    except (ImportError, AttributeError):
        return None


def simulated_block_dim(thread: object) -> tuple[int, ...] | None:
    """The block shape a simulated GPU thread (a ``BlockThread``) belongs to.

    Reads ``BlockThread._manager._block_dim``; None where that is missing.
    """
    dims = getattr(getattr(thread, "_manager", None), "_block_dim", None)
    return None if dims is None else tuple(int(d) for d in dims)


def simulated_kernel_context() -> object | None:
    """The launch the simulator is running in this thread, or None outside one.

    Calls ``numba.cuda.simulator.kernel._get_kernel_context()``; None also where
    it is missing (every launch then counts as an outer one).
    """
    try:
        kernel = importlib.import_module("numba.cuda.simulator.kernel")
    except ImportError:
        return None
    get = getattr(kernel, "_get_kernel_context", None)
    return get() if callable(get) else None


def is_device_function(kernel: object) -> bool:
    """Whether a simulated kernel object is a device function (``FakeCUDAKernel._device``)."""
    return bool(getattr(kernel, "_device", False))


def kernel_array_item(array: object) -> object | None:
    """The array a ``FakeWithinKernelCUDAArray`` wraps (its ``_item``), or None for others."""
    return getattr(array, "__dict__", {}).get("_item")


def wrap_shared_allocations(shared: object, wrap: Callable[[Any], Any]) -> bool:
    """Replace a ``FakeCUDAShared``'s ``_allocations`` dict by ``wrap(old)``.

    ``cuda.shared.array`` looks a static allocation up there once per block, by its
    caller's file and line. Returns False, changing nothing, where it is missing.
    """
    old = getattr(shared, "_allocations", None)
    if old is None:
        return False
    shared._allocations = wrap(old)  # type: ignore[attr-defined]
    return True
