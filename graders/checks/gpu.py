"""Evidence checks for the gpu exercises (re-exported by graders.checks).

Chapter 7's exercises ask for techniques (one thread per element, atomics,
shared memory and barriers, tiles loaded once, compiled code, a kernel that
really runs). A right answer alone does not show them, so these checks look
at what happened while the learner's code ran:

- ``simulator_trace()`` records, under Numba's CUDA simulator, which simulated
  thread read and wrote which element of which global array, every
  ``cuda.atomic.*`` call, every ``cuda.shared.array`` allocation and every
  ``cuda.syncthreads()``. The ``assert_*`` functions below read that record.
- ``assert_numba_compiled`` / ``assert_numba_gufunc`` check that Numba compiled
  the function in nopython mode (not object mode, not plain Python).
- ``device_like`` wraps a NumPy array in a stand-in for a device array (like a
  CuPy array: no implicit conversion to NumPy), so ``array_module`` code can be
  checked without a GPU.
- ``recording_kernel`` wraps an OpenCL kernel and records its launches.

Nothing here imports ``numba.cuda`` at import time: ``choose_backends()`` must
decide first whether it is the simulator.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from course_lib import internals

__all__: list[str] = [
    "KernelTrace",
    "simulator_trace",
    "assert_thread_per_element",
    "assert_atomic_updates",
    "assert_block_cooperation",
    "assert_reads_per_thread",
    "assert_numba_compiled",
    "assert_numba_gufunc",
    "assert_prange_reduction",
    "device_like",
    "is_device_like",
    "assert_stays_on_device",
    "recording_kernel",
]

ThreadKey = tuple[tuple[int, ...], tuple[int, ...]]   # (blockIdx, threadIdx), each (x, y, z)


def _fail(what: str, detail: str, hint: str = "") -> AssertionError:
    message = f"{what}: {detail}" if what else detail
    if hint:
        message += f". Hint: {hint}"
    return AssertionError(message)


# --------------------------------------------------------------------------------------------
# How simulator_trace() instruments numba-cuda's simulator (the private pieces it
# needs are reached through course_lib.internals).
#
# numba-cuda (0.2x-0.3x) runs a simulated launch as follows, in
# numba/cuda/simulator/: FakeCUDAKernel.__call__ (kernel.py) wraps every array
# argument in a FakeWithinKernelCUDAArray (cudadrv/devicearray.py) whose
# __getitem__/__setitem__ reach the array, replaces the name `cuda` in the
# kernel's globals by a FakeCUDAModule (kernelapi.py) whose `atomic` is a
# FakeCUDAAtomic, whose `shared` is a FakeCUDAShared and whose syncthreads()
# makes the current BlockThread (kernel.py; it carries blockIdx and threadIdx)
# wait at the barrier. simulator_trace() wraps exactly those methods, on the
# classes, for the duration of a `with` block, and restores them afterwards.
# FakeCUDAShared.array is the exception: it identifies an allocation by the
# file and line of its caller, so it is left alone and its `_allocations` dict
# (looked up once per static allocation) is replaced by a recording one.
# Dynamic shared memory (shape 0) is not counted. Shared and local arrays are
# plain NumPy arrays, so they are not counted as global reads or writes. If numba-cuda
# renames any of these, _simulator_hooks raises a RuntimeError saying internals must change.
# --------------------------------------------------------------------------------------------

_ATOMIC_OPS = ("add", "sub", "and_", "or_", "xor", "inc", "dec", "exch", "max", "min",
               "nanmax", "nanmin", "compare_and_swap", "cas")


def _simulator_hooks() -> dict[str, Any]:
    """The simulator classes that simulator_trace() wraps (see the comment above)."""
    from numba import config

    if not getattr(config, "ENABLE_CUDASIM", 0):
        raise RuntimeError("simulator_trace() needs Numba's CUDA simulator "
                           "(choose_backends() picks it when there is no GPU)")
    classes = internals.numba_simulator_classes()
    if classes is None:  # pragma: no cover - a future numba-cuda
        raise RuntimeError("this numba-cuda's simulator has changed: "
                           "course_lib/internals.py must be updated")
    return dict(classes)


def _array_key(array: Any) -> int:
    """The identity of a device array inside and outside a kernel."""
    inner = internals.kernel_array_item(array)      # FakeWithinKernelCUDAArray
    return id(inner if inner is not None else array)


def _as_index(index: Any) -> tuple[int, ...]:
    items = index if isinstance(index, tuple) else (index,)
    try:
        return tuple(int(i) for i in items)
    except TypeError:                     # a slice: record it as "no single element"
        return ()


@dataclass
class LaunchRecord:
    """One simulated kernel launch: its name, grid and block dimensions (x, y, z)."""

    kernel: str
    grid: tuple[int, ...]
    block: tuple[int, ...]

    @property
    def threads(self) -> int:
        return math.prod(self.grid) * math.prod(self.block)


@dataclass
class KernelTrace:
    """What the kernels launched inside ``simulator_trace()`` did, thread by thread."""

    launches: list[LaunchRecord] = field(default_factory=list)
    _reads: dict[int, list[tuple[tuple[int, ...], ThreadKey]]] = field(
        default_factory=lambda: defaultdict(list))
    _writes: dict[int, list[tuple[tuple[int, ...], ThreadKey]]] = field(
        default_factory=lambda: defaultdict(list))
    _atomics: list[tuple[str, int, ThreadKey]] = field(default_factory=list)
    _barriers: Counter[ThreadKey] = field(default_factory=Counter)
    _shared: Counter[ThreadKey] = field(default_factory=Counter)
    _keep: list[Any] = field(default_factory=list)          # keeps ids valid while traced
    _block_dims: dict[ThreadKey, tuple[int, ...]] = field(default_factory=dict)

    # -- reading the record ----------------------------------------------------------------
    def _select(self, table: dict[int, list[tuple[tuple[int, ...], ThreadKey]]],
                array: Any) -> list[tuple[tuple[int, ...], ThreadKey]]:
        if array is None:
            return [entry for entries in table.values() for entry in entries]
        return list(table.get(_array_key(array), []))

    def writes(self, array: Any = None) -> list[tuple[tuple[int, ...], ThreadKey]]:
        """(element index, thread) of every plain global write (to ``array``, or to any)."""
        return self._select(self._writes, array)

    def reads(self, array: Any = None) -> list[tuple[tuple[int, ...], ThreadKey]]:
        """(element index, thread) of every global read (of ``array``, or of any)."""
        return self._select(self._reads, array)

    def atomic_calls(self, array: Any = None, op: str = "add") -> Counter[ThreadKey]:
        """How many ``cuda.atomic.<op>`` calls each thread made (on ``array``, or on any)."""
        key = None if array is None else _array_key(array)
        return Counter(t for name, a, t in self._atomics if name == op and key in (None, a))

    def barriers(self) -> Counter[ThreadKey]:
        """How many ``cuda.syncthreads()`` barriers each thread passed."""
        return Counter(self._barriers)

    def shared_allocations(self) -> Counter[ThreadKey]:
        """How many ``cuda.shared.array`` calls each thread made."""
        return Counter(self._shared)

    def threads_launched(self) -> int:
        return sum(launch.threads for launch in self.launches)

    def global_index(self, thread: ThreadKey) -> tuple[int, ...]:
        """The thread's ``cuda.grid(...)`` coordinates (x, y, z)."""
        block, inner = thread
        dims = self._block_dims.get(thread, (1, 1, 1))
        return tuple(b * d + t for b, d, t in zip(block, dims, inner, strict=True))


_trace_lock = threading.Lock()


@contextlib.contextmanager
def simulator_trace() -> Iterator[KernelTrace]:
    """Record, thread by thread, what simulated kernels launched in the block do.

    Only under Numba's CUDA simulator (RuntimeError otherwise), one trace at a
    time. Works together with ``forced_interleaving``. Arrays are told apart by
    identity: pass the same device array (``cuda.to_device(...)``) to the
    kernel and to the trace's methods.
    """
    hooks = _simulator_hooks()
    if not _trace_lock.acquire(blocking=False):
        raise RuntimeError("simulator_trace() is already active: nest no traces")
    trace = KernelTrace()
    record = threading.Lock()
    local = threading.local()  # .inside: depth of atomics, whose own accesses are not counted
    thread_cls = hooks["thread"]
    saved: list[tuple[type, str, Any]] = []

    def who() -> ThreadKey | None:
        current = threading.current_thread()
        if not isinstance(current, thread_cls):
            return None
        key = (tuple(current.blockIdx), tuple(current.threadIdx))
        if key not in trace._block_dims:
            trace._block_dims[key] = internals.simulated_block_dim(current) or ()
        return key

    def patch(cls: type, name: str, make: Callable[[Any], Any]) -> None:
        original = cls.__dict__[name]
        saved.append((cls, name, original))
        setattr(cls, name, make(original))

    def access(table: dict[int, list[tuple[tuple[int, ...], ThreadKey]]], array: Any,
               index: Any) -> None:
        if getattr(local, "inside", 0):
            return
        thread = who()
        if thread is None:
            return
        inner = array.__dict__["_item"]
        with record:
            trace._keep.append(inner)
            table[id(inner)].append((_as_index(index), thread))

    def traced_getitem(original: Any) -> Any:
        def __getitem__(self: Any, index: Any) -> Any:
            access(trace._reads, self, index)
            return original(self, index)
        return __getitem__

    def traced_setitem(original: Any) -> Any:
        def __setitem__(self: Any, index: Any, value: Any) -> None:
            access(trace._writes, self, index)
            original(self, index, value)
        return __setitem__

    def traced_atomic(name: str) -> Callable[[Any], Any]:
        def make(original: Any) -> Any:
            def op(self: Any, array: Any, *args: Any) -> Any:
                thread = who()
                if thread is not None:
                    with record:
                        trace._keep.append(array)
                        trace._atomics.append((name, _array_key(array), thread))
                local.inside = getattr(local, "inside", 0) + 1
                try:
                    return original(self, array, *args)
                finally:
                    local.inside -= 1
            return op
        return make

    def traced_syncthreads(original: Any) -> Any:
        def syncthreads(self: Any) -> None:
            original(self)
            thread = who()
            if thread is not None:
                with record:
                    trace._barriers[thread] += 1
        return syncthreads

    class _Allocations(dict):  # type: ignore[type-arg]
        """FakeCUDAShared's table of static allocations; each array() call looks into it once.

        (array() itself is not wrapped: it tells allocations apart by its caller's
        line, and a wrapper would become that caller.)
        """

        def get(self, key: Any, default: Any = None) -> Any:
            thread = who()
            if thread is not None:
                with record:
                    trace._shared[thread] += 1
            return super().get(key, default)

    def traced_shared_init(original: Any) -> Any:
        def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
            original(self, *args, **kwargs)
            internals.wrap_shared_allocations(self, _Allocations)
        return __init__

    def traced_call(original: Any) -> Any:
        def __call__(self: Any, *args: Any) -> Any:
            if self.grid_dim is not None and not internals.is_device_function(self):
                if internals.simulated_kernel_context() is None:
                    with record:
                        trace.launches.append(LaunchRecord(
                            getattr(self.fn, "__name__", "kernel"),
                            tuple(int(v) for v in self.grid_dim),
                            tuple(int(v) for v in self.block_dim)))
            return original(self, *args)
        return __call__

    try:
        patch(hooks["array"], "__getitem__", traced_getitem)
        patch(hooks["array"], "__setitem__", traced_setitem)
        for name in _ATOMIC_OPS:
            if name in hooks["atomic"].__dict__:
                patch(hooks["atomic"], name, traced_atomic(name))
        patch(hooks["module"], "syncthreads", traced_syncthreads)
        patch(hooks["shared"], "__init__", traced_shared_init)
        patch(hooks["kernel"], "__call__", traced_call)
        yield trace
    finally:
        for cls, name, original in reversed(saved):
            setattr(cls, name, original)
        _trace_lock.release()


def _describe(thread: ThreadKey) -> str:
    block, inner = thread
    return f"blockIdx {block[:2]} threadIdx {inner[:2]}"


def assert_thread_per_element(trace: KernelTrace, array: Any = None, *, count: int | None = None,
                              kind: str = "write", what: str = "", hint: str = "") -> None:
    """Fail unless each element was written (or read) once, by the thread whose grid index it is.

    For a 1-D array, element ``i`` must be touched by the thread with
    ``cuda.grid(1) == i``; for 2-D, element ``[row, col]`` by the thread with
    ``cuda.grid(2) == (col, row)``. ``count`` is how many elements must be
    touched (default: ``array.size``); ``array=None`` takes every global array
    the kernels wrote (or read).
    """
    if kind not in ("write", "read"):
        raise ValueError("kind must be 'write' or 'read'")
    entries = trace.writes(array) if kind == "write" else trace.reads(array)
    expected = count if count is not None else int(getattr(array, "size", 0))
    verb = "written" if kind == "write" else "read"
    if not trace.launches:
        raise _fail(what, "no kernel was launched", hint)
    by_element: dict[tuple[int, ...], set[ThreadKey]] = defaultdict(set)
    for index, thread in entries:
        by_element[index].add(thread)
    for index, threads in by_element.items():
        if len(threads) > 1:
            names = ", ".join(_describe(t) for t in sorted(threads)[:3])
            raise _fail(
                what, f"element {index} was {verb} by {len(threads)} threads ({names})", hint
            )
        thread = next(iter(threads))
        own = trace.global_index(thread)[:len(index)][::-1]
        if index != own:
            raise _fail(what, f"element {index} was {verb} by {_describe(thread)}, whose own "
                              f"element is {own}: each thread should handle its own element", hint)
    if len(by_element) != expected:
        raise _fail(what, f"{len(by_element)} elements were {verb} by the kernel's threads, "
                          f"expected {expected}", hint)


def assert_atomic_updates(trace: KernelTrace, array: Any, count: int, *, op: str = "add",
                          what: str = "", hint: str = "") -> None:
    """Fail unless ``count`` distinct threads each made one ``cuda.atomic.<op>`` on ``array``,
    and no thread wrote to ``array`` with a plain (racy) store."""
    calls = trace.atomic_calls(array, op)
    plain = trace.writes(array)
    if plain:
        raise _fail(what, f"{len(plain)} plain writes (such as counts[v] += 1) went to the array "
                          f"that should only be updated with cuda.atomic.{op}", hint)
    if len(calls) != count or any(n != 1 for n in calls.values()):
        busiest = max(calls.values(), default=0)
        raise _fail(what, f"cuda.atomic.{op} was called by {len(calls)} threads (at most {busiest} "
                          f"times by one), expected {count} threads, once each", hint)


def assert_block_cooperation(trace: KernelTrace, *, min_barriers: int, what: str = "",
                             hint: str = "") -> None:
    """Fail unless every launched thread allocated shared memory and passed ``min_barriers``
    ``cuda.syncthreads()`` barriers."""
    launched = trace.threads_launched()
    if not launched:
        raise _fail(what, "no kernel was launched", hint)
    shared = trace.shared_allocations()
    if len(shared) < launched:
        raise _fail(what, f"{len(shared)} of {launched} threads called cuda.shared.array", hint)
    barriers = trace.barriers()
    fewest = min((barriers.get(t, 0) for t in shared), default=0)
    if len(barriers) < launched or fewest < min_barriers:
        raise _fail(what, f"some thread passed only {fewest if len(barriers) == launched else 0} "
                          f"cuda.syncthreads() barriers, expected at least {min_barriers} "
                          "for every thread", hint)


def assert_reads_per_thread(trace: KernelTrace, array: Any, at_most: int, *, what: str = "",
                            hint: str = "") -> None:
    """Fail unless every thread read at most ``at_most`` elements of the global ``array``
    (and some thread read it at all)."""
    reads = Counter(thread for _, thread in trace.reads(array))
    if not reads:
        raise _fail(what, "the kernel never read this array", hint)
    thread, most = reads.most_common(1)[0]
    if most > at_most:
        raise _fail(
            what,
            f"{_describe(thread)} read {most} elements from global memory, "
            f"expected at most {at_most} (all threads together: {sum(reads.values())})",
            hint,
        )


# --------------------------------------------------------------------------------------------
# Numba on the CPU
# --------------------------------------------------------------------------------------------

def assert_numba_compiled(fn: Any, what: str = "", hint: str = "") -> None:
    """Fail unless ``fn`` is a Numba dispatcher that has compiled in nopython mode.

    Call it after ``fn`` has run at least once. A plain Python function, one
    dressed up with a ``py_func`` attribute, and ``@jit(forceobj=True)``
    (object mode: the interpreter still does every step) all fail.
    """
    from numba.core.dispatcher import Dispatcher

    if not isinstance(fn, Dispatcher):
        raise _fail(what, f"{type(fn).__name__} is not a function compiled by Numba", hint)
    if not fn.nopython_signatures:
        raise _fail(what, "Numba compiled it only in object mode (or not yet)", hint)


def assert_numba_gufunc(fn: Any, layout: str, what: str = "", hint: str = "") -> None:
    """Fail unless ``fn`` is a Numba ``@guvectorize`` gufunc with ``layout``, compiled in
    nopython mode (not ``forceobj=True``)."""
    from numba.np.ufunc.gufunc import GUFunc

    if not isinstance(fn, GUFunc):
        raise _fail(what, f"{type(fn).__name__} is not a gufunc made by @guvectorize", hint)
    if fn.signature != layout:
        raise _fail(what, f"its layout is {fn.signature!r}, expected {layout!r}", hint)
    overloads = getattr(getattr(fn, "_dispatcher", None), "overloads", {})
    if not overloads or all(getattr(c, "objectmode", False) for c in overloads.values()):
        raise _fail(what, "it was compiled in object mode (forceobj), not nopython mode", hint)


def _prange_loops(fn: Any) -> list[Any]:
    """The parallel loops that came from ``prange`` in ``fn``'s compiled versions.

    This reads Numba's own record of its parallel transformation (numba 0.5x-0.6x):
    each compile result's ``metadata["parfor_diagnostics"].get_parfors()`` lists
    the parfors, each with ``.patterns`` (``("prange", "user", "")`` for a loop
    the learner wrote with ``prange``, others for NumPy calls such as
    ``np.zeros``) and ``.redvars`` (the reduction variables Numba found in it).
    """
    loops = []
    for cres in getattr(fn, "overloads", {}).values():
        diagnostics = getattr(cres, "metadata", {}).get("parfor_diagnostics")
        if diagnostics is None:
            continue
        for parfor in diagnostics.get_parfors():
            if any(pattern and pattern[0] == "prange" for pattern in parfor.patterns):
                loops.append(parfor)
    return loops


def assert_prange_reduction(fn: Any, what: str = "", hint: str = "") -> None:
    """Fail unless ``fn`` was compiled with ``parallel=True``, has a ``prange`` loop, and that
    loop has a reduction (``total += ...`` or ``counts += local``) that Numba recognised.

    Call it after ``fn`` has run. A NumPy answer, a serial ``range`` loop, and a
    ``prange`` loop that updates ``counts[v] += 1`` (a race, no reduction) fail.
    """
    assert_numba_compiled(fn, what, hint)
    if not fn.targetoptions.get("parallel"):
        raise _fail(what, "it is compiled without parallel=True, so it runs on one core", hint)
    loops = _prange_loops(fn)
    if not loops:
        raise _fail(what, "Numba found no prange loop in it: every loop ran serially", hint)
    if not any(parfor.redvars for parfor in loops):
        raise _fail(what, "its prange loop has no reduction that Numba recognised: updates of one "
                          "element picked by the data (counts[v] += 1) race between threads", hint)


# --------------------------------------------------------------------------------------------
# Array-module code: a stand-in device array
# --------------------------------------------------------------------------------------------

def _unwrap(value: Any) -> Any:
    if isinstance(value, _DeviceLike):
        return value._data
    if isinstance(value, (list, tuple)):
        return type(value)(_unwrap(v) for v in value)
    return value


def _wrap(value: Any) -> Any:
    return _DeviceLike(value) if isinstance(value, np.ndarray) else value


class _DeviceNamespace:
    """The array module of ``device_like`` arrays: NumPy's functions, on wrapped data."""

    __name__ = "device_like_namespace"

    def __getattr__(self, name: str) -> Any:
        target = getattr(np, name)
        if not callable(target) or isinstance(target, type):
            return target

        def call(*args: Any, **kwargs: Any) -> Any:
            result = target(*_unwrap(args), **{k: _unwrap(v) for k, v in kwargs.items()})
            return _wrap(result)
        return call


_NAMESPACE = _DeviceNamespace()


class _DeviceLike:
    """A NumPy array posing as a device array: like CuPy, it refuses to become NumPy silently."""

    __array_ufunc__ = None           # np.exp(a) raises TypeError, as it does for a CuPy array

    def __init__(self, data: np.ndarray[Any, Any]) -> None:
        self._data = data

    def __array_namespace__(self, api_version: str | None = None) -> _DeviceNamespace:
        return _NAMESPACE

    def __array__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("implicit conversion of a device array to a NumPy array is not allowed "
                        "(as in CuPy): compute with xp = array_module(a), not np")

    shape = property(lambda self: self._data.shape)
    dtype = property(lambda self: self._data.dtype)
    ndim = property(lambda self: self._data.ndim)
    size = property(lambda self: self._data.size)
    T = property(lambda self: _DeviceLike(self._data.T))

    def get(self) -> np.ndarray[Any, Any]:
        """Copy to the host (as ``cupy.ndarray.get``)."""
        return self._data.copy()

    def __len__(self) -> int:
        return len(self._data)

    def __getitem__(self, index: Any) -> Any:
        return _wrap(self._data[_unwrap(index)])

    def __repr__(self) -> str:
        return f"device_like({self._data!r})"

    def __neg__(self) -> Any:
        return _DeviceLike(-self._data)

    __hash__ = None  # type: ignore[assignment]


def _method(name: str) -> Callable[..., Any]:
    def method(self: _DeviceLike, *args: Any, **kwargs: Any) -> Any:
        result = getattr(self._data, name)(*_unwrap(args),
                                           **{k: _unwrap(v) for k, v in kwargs.items()})
        return _wrap(result)
    method.__name__ = name
    return method


def _binary(name: str) -> Callable[..., Any]:
    def op(self: _DeviceLike, other: Any) -> Any:
        if isinstance(other, np.ndarray):
            raise TypeError(f"a NumPy array mixed with a device array in {name}: "
                            "keep all arrays on one device (use xp, not np)")
        return _wrap(getattr(self._data, name)(_unwrap(other)))
    op.__name__ = name
    return op


for _name in ("max", "min", "sum", "mean", "astype", "reshape", "copy", "argmax", "argmin"):
    setattr(_DeviceLike, _name, _method(_name))
for _name in (
    "__add__",
    "__radd__",
    "__sub__",
    "__rsub__",
    "__mul__",
    "__rmul__",
    "__truediv__",
    "__rtruediv__",
    "__pow__",
    "__lt__",
    "__le__",
    "__gt__",
    "__ge__",
    "__eq__",
    "__ne__",
):
    setattr(_DeviceLike, _name, _binary(_name))
del _name


def device_like(array: Any) -> Any:
    """A copy of ``array`` posing as a device array (its module is not NumPy).

    ``array_module`` returns its namespace, whose functions mirror NumPy's;
    ``np.*`` on it raises ``TypeError``, as on a CuPy array. ``.get()`` copies
    it back. It checks, without a GPU, that code uses ``xp`` throughout.
    """
    return _DeviceLike(np.array(array))


def is_device_like(value: object) -> bool:
    """True if ``value`` is a ``device_like`` array (it never went through NumPy)."""
    return isinstance(value, _DeviceLike)


def assert_stays_on_device(fn: Callable[..., Any], array: Any, *args: Any, what: str = "",
                           hint: str = "") -> np.ndarray[Any, Any]:
    """Call ``fn(device_like(array), *args)``; fail unless it ran on the stand-in device and
    returned an array still on it. Return the result copied to the host."""
    try:
        result = fn(device_like(array), *args)
    except TypeError as exc:
        raise _fail(what, f"it raised TypeError on a device array ({exc})", hint) from None
    if not is_device_like(result):
        raise _fail(what, f"it returned a {type(result).__module__}.{type(result).__name__}, "
                          "not an array on the same device", hint)
    host: np.ndarray[Any, Any] = result.get()
    return host


# --------------------------------------------------------------------------------------------
# OpenCL: launches of a kernel
# --------------------------------------------------------------------------------------------

class _RecordingKernel:
    """Forwards calls to an OpenCL kernel and records (global size, local size) of each."""

    def __init__(self, kernel: Any) -> None:
        self._kernel = kernel
        self.launches: list[tuple[tuple[int, ...], tuple[int, ...] | None]] = []

    def __call__(self, queue: Any, global_size: Any, local_size: Any, *args: Any,
                 **kwargs: Any) -> Any:
        self.launches.append((tuple(int(g) for g in global_size),
                              None if local_size is None else tuple(int(v) for v in local_size)))
        return self._kernel(queue, global_size, local_size, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._kernel, name)


def recording_kernel(kernel: Any) -> Any:
    """Wrap an OpenCL kernel: calls go through; ``.launches`` lists (global size, local size)."""
    return _RecordingKernel(kernel)
