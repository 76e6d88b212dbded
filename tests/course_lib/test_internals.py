"""course_lib.internals: each private internal still has the shape its accessor expects.

A library upgrade that renames or removes one of these makes the matching
``test_*_internal_exists`` test fail with a message naming the accessor to fix;
the ``*_fallback`` tests show what the course does meanwhile (nothing crashes).
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import multiprocessing
import sys
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from multiprocessing import shared_memory
from typing import Any

import pytest

from course_lib import internals


def _require(condition: bool, accessor: str, what: str) -> None:
    if not condition:
        pytest.fail(f"course_lib.internals.{accessor}: {what} has changed in the installed "
                    "library; update the accessor (and its fallback) for the new version")


def _optional(module: str) -> Any:
    return pytest.importorskip(module)


# --------------------------------------------------------------------------- asyncio


def test_running_loop_or_none_internal_exists() -> None:
    _require(callable(getattr(asyncio, "_get_running_loop", None)), "running_loop_or_none",
             "asyncio._get_running_loop")
    _check_running_loop()


def test_running_loop_or_none_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(internals, "_get_running_loop", None)
    _check_running_loop()


def _check_running_loop() -> None:
    assert internals.running_loop_or_none() is None

    async def inside() -> asyncio.AbstractEventLoop | None:
        return internals.running_loop_or_none()

    loop = asyncio.new_event_loop()
    try:
        assert loop.run_until_complete(inside()) is loop
    finally:
        loop.close()


def test_default_executor_internal_exists() -> None:
    loop = asyncio.new_event_loop()
    try:
        _require(hasattr(loop, "_default_executor"), "default_executor",
                 "BaseEventLoop._default_executor")
        assert internals.default_executor(loop) is None
        pool = ThreadPoolExecutor(1)
        loop.set_default_executor(pool)
        assert internals.default_executor(loop) is pool
        assert internals.set_default_executor(loop, None)
        assert internals.default_executor(loop) is None
        pool.shutdown()
    finally:
        loop.close()


def test_default_executor_fallback() -> None:
    class Bare:
        pass

    bare: Any = Bare()
    assert internals.default_executor(bare) is None
    assert internals.set_default_executor(bare, None) is False
    assert not hasattr(bare, "_default_executor")


# --------------------------------------------------------------------------- multiprocessing


def test_forkserver_internal_exists() -> None:
    forkserver = _optional("multiprocessing.forkserver")
    server = getattr(forkserver, "_forkserver", None)
    _require(server is not None and hasattr(server, "_forkserver_pid"), "forkserver_pid",
             "multiprocessing.forkserver._forkserver._forkserver_pid")
    _require(callable(getattr(server, "_stop", None)), "stop_forkserver", "ForkServer._stop")
    pid = internals.forkserver_pid()
    assert pid is None or isinstance(pid, int)
    assert internals.forkserver_alive() == (pid is not None and internals.forkserver_alive())


def test_forkserver_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    forkserver = _optional("multiprocessing.forkserver")
    monkeypatch.delattr(forkserver, "_forkserver")
    assert internals.forkserver_pid() is None
    assert internals.forkserver_alive() is False
    assert internals.stop_forkserver() is False


def test_resource_tracker_internal_exists() -> None:
    tracker_module = _optional("multiprocessing.resource_tracker")
    tracker = getattr(tracker_module, "_resource_tracker", None)
    _require(tracker is not None and hasattr(tracker, "_pid"), "resource_tracker_pid",
             "multiprocessing.resource_tracker._resource_tracker._pid")
    _require(callable(getattr(tracker, "_stop", None)), "stop_resource_tracker",
             "ResourceTracker._stop")
    pid = internals.resource_tracker_pid()
    assert pid is None or isinstance(pid, int)


def test_resource_tracker_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    tracker_module = _optional("multiprocessing.resource_tracker")
    monkeypatch.delattr(tracker_module, "_resource_tracker")
    assert internals.resource_tracker_pid() is None
    assert internals.stop_resource_tracker() is None


def test_process_config_internal_exists() -> None:
    _require(isinstance(getattr(multiprocessing.current_process(), "_config", None), dict),
             "process_config", "multiprocessing.current_process()._config")
    assert "authkey" in internals.process_config()


def test_process_config_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(multiprocessing.current_process(), "_config")
    assert internals.process_config() == {}


def test_finalizers_internal_exists() -> None:
    from multiprocessing import util

    _require(isinstance(getattr(util, "_finalizer_registry", None), dict),
             "multiprocessing_finalizers", "multiprocessing.util._finalizer_registry")

    class Owner:
        pass

    owner = Owner()
    finalizer = util.Finalize(owner, print, args=("x",), exitpriority=None)
    try:
        found = internals.multiprocessing_finalizers()
        assert found is not None and finalizer in found
        _require(internals.finalizer_callback(finalizer) is print, "finalizer_callback",
                 "Finalize._callback")
        _require(internals.finalizer_args(finalizer) == ("x",), "finalizer_args",
                 "Finalize._args")
        _require(internals.finalizer_target(finalizer) is owner, "finalizer_target",
                 "Finalize._weakref")
    finally:
        finalizer.cancel()


def test_finalizers_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    from multiprocessing import util

    monkeypatch.delattr(util, "_finalizer_registry")
    assert internals.multiprocessing_finalizers() is None
    assert internals.finalizer_callback(object()) is None
    assert internals.finalizer_args(object()) == ()
    assert internals.finalizer_target(object()) is None


def test_pool_terminate_function_internal_exists() -> None:
    from multiprocessing.pool import Pool

    function = internals.pool_terminate_function()
    _require(inspect.isfunction(function), "pool_terminate_function", "Pool._terminate_pool")
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        registered = [f for f in internals.multiprocessing_finalizers() or ()
                      if internals.finalizer_target(f) is pool]
        _require(any(getattr(internals.finalizer_callback(f), "__func__", None) is function
                     for f in registered), "pool_terminate_function",
                 "the finalizer a running Pool registers")
    assert isinstance(pool, Pool)


def test_pool_terminate_function_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    from multiprocessing.pool import Pool

    monkeypatch.delattr(Pool, "_terminate_pool")
    assert internals.pool_terminate_function() is None


def test_semlock_internals_exist() -> None:
    cleanup = internals.semlock_cleanup_function()
    _require(inspect.isfunction(cleanup), "semlock_cleanup_function", "SemLock._cleanup")
    lock = multiprocessing.get_context("spawn").Lock()
    name = internals.semlock_name(lock)
    _require(name is not None, "semlock_name", "SemLock._semlock.name")
    registered = [f for f in internals.multiprocessing_finalizers() or ()
                  if internals.finalizer_callback(f) is cleanup]
    _require(any(internals.finalizer_args(f)[:1] == (name,) for f in registered),
             "semlock_cleanup_function", "the finalizer a named semaphore registers")


def test_semlock_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    from multiprocessing.synchronize import SemLock

    monkeypatch.delattr(SemLock, "_cleanup")
    assert internals.semlock_cleanup_function() is None
    assert internals.semlock_name(object()) is None


def test_process_pool_executors_internal_exists() -> None:
    from concurrent.futures import process

    _require(hasattr(process, "_threads_wakeups"), "process_pool_executors",
             "concurrent.futures.process._threads_wakeups")
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as executor:
        executor.submit(int, "1").result(timeout=60)
        found = internals.process_pool_executors()
        _require(found is not None and executor in found, "process_pool_executors",
                 "the manager thread's executor_reference")


def test_process_pool_executors_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    from concurrent.futures import process

    monkeypatch.delattr(process, "_threads_wakeups")
    assert internals.process_pool_executors() is None


def test_release_shared_memory_mapping_internal_exists() -> None:
    numpy = _optional("numpy")
    shm = shared_memory.SharedMemory(create=True, size=64)
    try:
        _require(hasattr(shm, "_buf") and hasattr(shm, "_mmap"),
                 "release_shared_memory_mapping", "SharedMemory._buf and _mmap")
        view = numpy.ndarray((8,), dtype=numpy.int64, buffer=shm.buf)
        view[:] = 7
        assert internals.release_shared_memory_mapping(shm)
        shm.close()  # no BufferError: the view keeps the mapping
        assert int(view.sum()) == 56
        del view
    finally:
        shm.unlink()


def test_release_shared_memory_mapping_fallback() -> None:
    assert internals.release_shared_memory_mapping(object()) is False


@pytest.mark.skipif(sys.platform == "win32", reason="no POSIX shared memory on Windows")
def test_posix_shm_internals_exist() -> None:
    module = importlib.import_module("_posixshmem")
    _require(callable(getattr(module, "shm_open", None)), "posix_shm_exists",
             "_posixshmem.shm_open")
    _require(callable(getattr(module, "shm_unlink", None)), "posix_shm_unlink",
             "_posixshmem.shm_unlink")
    shm = shared_memory.SharedMemory(create=True, size=16)
    try:
        assert internals.posix_shm_exists(shm.name) is True
    finally:
        shm.close()
        shm.unlink()
    assert internals.posix_shm_exists(shm.name) is False
    assert internals.posix_shm_unlink(shm.name) is False  # already gone


def test_posix_shm_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(internals, "_posixshmem", lambda: None)
    assert internals.posix_shm_exists("psm_nothing") is None
    assert internals.posix_shm_unlink("psm_nothing") is False


@pytest.mark.skipif(sys.platform == "win32", reason="no named semaphores on Windows")
def test_posix_sem_unlink_internal_exists() -> None:
    module = importlib.import_module("_multiprocessing")
    _require(callable(getattr(module, "sem_unlink", None)), "posix_sem_unlink",
             "_multiprocessing.sem_unlink")
    assert internals.posix_sem_unlink("/mp-course-internals-no-such-semaphore") is False


def test_posix_sem_unlink_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    module = pytest.importorskip("_multiprocessing")
    monkeypatch.delattr(module, "sem_unlink", raising=False)
    assert internals.posix_sem_unlink("/mp-anything") is False


# --------------------------------------------------------------------------- Dask


def test_dask_offload_executor_internal_exists() -> None:
    utils = _optional("distributed.utils")
    _require(isinstance(getattr(utils, "_offload_executor", None), ThreadPoolExecutor),
             "dask_offload_executor", "distributed.utils._offload_executor")
    old = internals.dask_offload_executor()
    fresh = ThreadPoolExecutor(1, thread_name_prefix="Dask-Offload")
    assert internals.replace_dask_offload_executor(fresh) is old
    assert internals.dask_offload_executor() is fresh
    assert internals.replace_dask_offload_executor(old) is fresh  # type: ignore[arg-type]
    fresh.shutdown()


def test_dask_offload_executor_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    utils = _optional("distributed.utils")
    monkeypatch.delattr(utils, "_offload_executor")
    assert internals.dask_offload_executor() is None
    assert internals.replace_dask_offload_executor(ThreadPoolExecutor(1)) is None
    assert not hasattr(utils, "_offload_executor")


# --------------------------------------------------------------------------- ipyparallel


def test_ipyparallel_loop_thread_internal_exists() -> None:
    _optional("ipyparallel")
    module = importlib.import_module("ipyparallel._async")
    first = getattr(module, "AsyncFirst", None)
    _require(first is not None and "_async_thread" in vars(first), "ipyparallel_loop_thread",
             "ipyparallel._async.AsyncFirst._async_thread")
    source = inspect.getsource(module)
    _require("self._thread_loop" in source, "stop_ipyparallel_loop_thread",
             "AsyncFirst._thread_loop")

    # The real mixin: start its thread the way a *_sync call in Jupyter does, then stop it.
    class Probe(first):  # type: ignore[misc, valid-type]
        pass

    probe = Probe()
    init = getattr(probe, "_in_thread", None)
    _require(callable(init), "ipyparallel_loop_thread", "AsyncFirst._in_thread")

    async def answer() -> int:
        return 42

    assert probe._in_thread(answer) == 42
    thread = internals.ipyparallel_loop_thread(probe)
    assert thread is not None and thread.is_alive()
    assert internals.stop_ipyparallel_loop_thread(probe, timeout=10)
    assert not thread.is_alive()
    assert internals.ipyparallel_loop_thread(probe) is None


def test_ipyparallel_loop_thread_fallback() -> None:
    assert internals.ipyparallel_loop_thread(object()) is None
    assert internals.stop_ipyparallel_loop_thread(object()) is False


def test_ipp_client_engines_internal_exists() -> None:
    ipp = _optional("ipyparallel")
    _require("_engines" in ipp.Client.class_traits(), "ipp_client_engines",
             "ipyparallel.Client._engines (a ReverseDict trait)")
    util = importlib.import_module("ipyparallel.util")
    engines = util.ReverseDict()
    engines[0] = "uuid-a"
    engines[1] = "uuid-b"

    class Fake:
        _engines = engines

    assert internals.ipp_client_engines(Fake()) == {0: "uuid-a", 1: "uuid-b"}


def test_ipp_client_engines_fallback() -> None:
    assert internals.ipp_client_engines(object()) == {}


# --------------------------------------------------------------------------- kombu


def test_retry_queue_bind_internal_exists() -> None:
    filesystem = _optional("kombu.transport.filesystem")
    base = filesystem.Channel
    _require(callable(getattr(base, "_queue_bind", None)), "retry_queue_bind",
             "kombu.transport.filesystem.Channel._queue_bind")
    parameters = list(inspect.signature(base._queue_bind).parameters)
    _require(parameters == ["self", "exchange", "routing_key", "pattern", "queue"],
             "retry_queue_bind", "the signature of Channel._queue_bind")

    calls: list[str] = []

    class Base:
        def _queue_bind(self, *args: Any) -> str:
            calls.append("bind")
            if len(calls) < 3:
                raise ValueError("half written")
            return "bound"

    def again(read: Any) -> Any:
        for _ in range(5):
            try:
                return read()
            except ValueError:
                continue
        return read()

    retrying: Any = internals.retry_queue_bind(Base, again)
    assert issubclass(retrying, Base) and retrying.__name__ == "Base"
    assert retrying()._queue_bind("ex", "key", "pattern", "queue") == "bound"
    assert calls == ["bind"] * 3
    assert issubclass(internals.retry_queue_bind(base, again), base)


def test_retry_queue_bind_fallback() -> None:
    class Plain:
        pass

    assert internals.retry_queue_bind(Plain, lambda read: read()) is Plain


def test_every_accessor_is_tested() -> None:
    source = inspect.getsource(sys.modules[__name__])
    accessors = [name for name, value in vars(internals).items()
                 if inspect.isfunction(value) and value.__module__ == internals.__name__
                 and not name.startswith("_")]
    assert len(accessors) >= 20
    untested = [name for name in accessors if f"internals.{name}(" not in source]
    assert not untested, f"accessors without a test here: {untested}"



# --------------------------------------------------------------------------- the interpreter


def test_gil_enabled_now_internal_exists() -> None:
    if sys.version_info >= (3, 13):
        _require(callable(getattr(sys, "_is_gil_enabled", None)), "gil_enabled_now",
                 "sys._is_gil_enabled")
        assert internals.gil_enabled_now() is bool(sys._is_gil_enabled())
    else:
        assert internals.gil_enabled_now() is None


def test_gil_enabled_now_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(sys, "_is_gil_enabled", raising=False)
    assert internals.gil_enabled_now() is None


# --------------------------------------------------------------------------- numba-cuda's simulator

SIMULATED = r"""
import os, threading
os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
import numpy as np
from numba import cuda
from course_lib import internals

seen = {}

@cuda.jit
def kernel(out):
    i = cuda.grid(1)
    if i == 0:
        seen["dims"] = internals.simulated_block_dim(threading.current_thread())
        seen["inside"] = internals.simulated_kernel_context() is not None
        seen["item"] = internals.kernel_array_item(out) is not None
        seen["shared"] = internals.wrap_shared_allocations(cuda.shared, lambda old: old)
    out[i] = i

out = cuda.to_device(np.zeros(8))
kernel[2, 4](out)
print(sorted(seen.items()), internals.simulated_kernel_context() is None,
      internals.is_device_function(kernel), internals.numba_simulator_classes() is not None)
"""


def test_numba_simulator_internals_exist() -> None:
    import subprocess

    _optional("numba.cuda")
    run = subprocess.run([sys.executable, "-c", SIMULATED], capture_output=True, text=True,
                         timeout=120, check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    expected = ("[('dims', (4, 1, 1)), ('inside', True), ('item', True), ('shared', True)] "
                "True False True")
    _require(run.stdout.strip() == expected, "simulated_block_dim and its neighbours",
             f"numba-cuda's simulator (a launch saw {run.stdout.strip()!r})")


def test_numba_simulator_fallbacks(monkeypatch: pytest.MonkeyPatch) -> None:
    class Plain:
        pass

    assert internals.simulated_block_dim(Plain()) is None
    assert internals.kernel_array_item(Plain()) is None
    assert internals.wrap_shared_allocations(Plain(), lambda old: old) is False
    assert internals.is_device_function(Plain()) is False
    real = importlib.import_module

    def missing(name: str, package: str | None = None) -> Any:
        if name.startswith("numba"):
            raise ImportError(name)
        return real(name, package)

    monkeypatch.setattr(internals.importlib, "import_module", missing)
    assert internals.numba_simulator_classes() is None
    assert internals.simulated_kernel_context() is None
