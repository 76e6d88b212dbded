"""Arrays for kernels: check them before a GPU sees them, and compare results.

:func:`check_array` (dtypes, shapes), :func:`ensure_fits` and
:func:`memory_guard` (out of memory) say what to change where a GPU would be
silent or cryptic; :func:`array_module`, :func:`to_host` and
:func:`expect_close` let one piece of code run on NumPy and on CuPy.
"""

from __future__ import annotations

import contextlib
import importlib
import math
import sys
from collections.abc import Iterator, Sequence
from types import ModuleType
from typing import Any

import numpy as np

from course_lib.gpu.backends import current_backends
from course_lib.gpu.errors import GPUMemoryError

__all__ = ["array_module", "check_array", "ensure_fits", "expect_close", "memory_guard", "to_host"]


def _dtype_name(dtype: Any) -> str:
    return str(np.dtype(dtype))


def check_array(array: object, *, dtype: Any = None, ndim: int | None = None,
                shape: Sequence[int] | None = None, name: str = "array",
                contiguous: bool = False) -> None:
    """Raise ``TypeError``/``ValueError`` unless ``array`` is what a kernel expects.

    A kernel compiled for ``float32`` that is handed ``float64`` data reads
    garbage (OpenCL, PyCUDA) or is silently recompiled (Numba): check first.
    """
    if not hasattr(array, "dtype") or not hasattr(array, "shape"):
        dt = f", dtype=np.{_dtype_name(dtype)}" if dtype is not None else ""
        raise TypeError(
            f"{name} is a {type(array).__name__}, not an array: convert it first, e.g. "
            f"np.asarray({name}{dt})"
        )
    actual_dtype: Any = array.dtype
    if dtype is not None and np.dtype(actual_dtype) != np.dtype(dtype):
        raise TypeError(
            f"{name} has dtype {_dtype_name(actual_dtype)}, but the kernel expects "
            f"{_dtype_name(dtype)}: pass {name}.astype(np.{_dtype_name(dtype)}) (a kernel "
            "reads raw bytes, so the wrong dtype gives wrong numbers, not an error)"
        )
    actual_shape = tuple(int(s) for s in array.shape)
    if ndim is not None and len(actual_shape) != ndim:
        raise ValueError(f"{name} has {len(actual_shape)} dimension(s) {actual_shape}, "
                         f"the kernel expects {ndim}")
    if shape is not None and actual_shape != tuple(shape):
        raise ValueError(f"{name} has shape {actual_shape}, the kernel expects {tuple(shape)}")
    if contiguous:
        flags: Any = getattr(array, "flags", None)
        c_contiguous = bool(flags["C_CONTIGUOUS"]) if flags is not None else True
        if not c_contiguous:
            raise ValueError(f"{name} is not C-contiguous (a slice or a transpose?): pass "
                             f"np.ascontiguousarray({name})")


def _free_memory(where: str) -> tuple[int, str]:
    if where == "device":
        current = current_backends()
        if current is not None and current.gpu:
            cuda: Any = importlib.import_module("numba.cuda")
            free, _total = cuda.current_context().get_memory_info()
            name = current.device.name if current.device else "the GPU"
            return int(free), f"{name} has"
    import psutil

    return int(psutil.virtual_memory().available), "this machine's memory has"


def ensure_fits(shape: int | Sequence[int], dtype: Any = np.float32, *, where: str = "device",
                copies: int = 1, fraction: float = 0.9) -> int:
    """Raise :class:`GPUMemoryError` unless ``copies`` arrays of ``shape``/``dtype`` fit.

    ``where="device"`` compares with the GPU's free memory (the host's memory
    under the simulator), ``"host"`` with this machine's. Returns the bytes asked.
    """
    if where not in ("device", "host"):
        raise ValueError(f"where must be 'device' or 'host', got {where!r}")
    dims = [shape] if isinstance(shape, int | np.integer) else list(shape)
    for d in dims:
        if int(d) < 0:
            raise ValueError(f"shape {tuple(dims)} has a negative size")
    need = int(math.prod(int(d) for d in dims) * np.dtype(dtype).itemsize * copies)
    free, owner = _free_memory(where)
    if need > fraction * free:
        raise GPUMemoryError(
            f"{copies} array(s) of shape {tuple(int(d) for d in dims)} and dtype "
            f"{_dtype_name(dtype)} need {format_bytes(need)}, but {owner} "
            f"{format_bytes(free)} free: use a smaller size, a smaller dtype (float32, not "
            "float64), or process the data in chunks; free arrays you no longer need (del "
            "them; with CuPy also cupy.get_default_memory_pool().free_all_blocks())"
        )
    return need


def format_bytes(n: float) -> str:
    """``n`` bytes in B, KiB, MiB, GiB or TiB."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


@contextlib.contextmanager
def memory_guard(what: str = "the allocation") -> Iterator[None]:
    """Turn out-of-memory errors (NumPy, CuPy, Numba CUDA) into a :class:`GPUMemoryError`."""
    try:
        yield
    except GPUMemoryError:
        raise
    except Exception as exc:
        text = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, MemoryError) or "OUT_OF_MEMORY" in text.upper() \
                or "OutOfMemory" in type(exc).__name__:
            raise GPUMemoryError(
                f"{what} ran out of memory ({text.splitlines()[0][:200]}): use a smaller size "
                "or process the data in chunks, and free arrays you no longer need (del them; "
                "with CuPy also cupy.get_default_memory_pool().free_all_blocks())"
            ) from exc
        raise


# --------------------------------------------------------------------------- arrays


def array_module(*arrays: object) -> ModuleType:
    """CuPy if any argument is a CuPy array, else NumPy (like ``cupy.get_array_module``).

    Write ``xp = array_module(a)`` at the top of a function and ``xp.`` instead
    of ``np.``: the same code then runs on the CPU and on the GPU. Other array
    types that declare their module the Array API way (``__array_namespace__``)
    get that module: the graders use one to check ``xp`` code without a GPU.
    """
    for array in arrays:
        if isinstance(array, (np.ndarray, np.generic)) or type(array).__module__.startswith("cupy"):
            continue
        namespace = getattr(array, "__array_namespace__", None)
        if callable(namespace):
            found: ModuleType = namespace()
            return found
    cupy: Any = sys.modules.get("cupy")
    if cupy is not None:
        try:
            module: ModuleType = cupy.get_array_module(*arrays)
            return module
        except Exception:  # noqa: BLE001 - a CuPy that cannot run: NumPy
            return np
    return np


def to_host(array: Any) -> np.ndarray[Any, Any]:
    """A NumPy array with the data of ``array`` (CuPy, Numba device array, list, NumPy)."""
    if hasattr(array, "get") and type(array).__module__.startswith("cupy"):
        return np.asarray(array.get())
    if hasattr(array, "copy_to_host"):
        return np.asarray(array.copy_to_host())
    return np.asarray(array)


def expect_close(actual: Any, expected: Any, what: str = "", *, rtol: float = 1e-5,
                 atol: float = 1e-6, hint: str = "") -> None:
    """AssertionError, with where and how the arrays differ, unless they are close.

    For test cells: floats on a GPU differ from NumPy's in the last bits (fused
    multiply-adds, another summation order), so compare with a tolerance.
    """
    label = what or "result"
    try:
        got = to_host(actual)
    except Exception as exc:  # noqa: BLE001
        raise AssertionError(f"{label}: could not read the result as an array ({exc})") from None
    want = to_host(expected)
    if got.shape != want.shape:
        raise AssertionError(_join(f"{label}: shape {got.shape}, expected {want.shape}", hint))
    if got.size == 0:
        return
    with np.errstate(all="ignore"):
        ok = np.isclose(got, want, rtol=rtol, atol=atol, equal_nan=True)
    if bool(ok.all()):
        return
    bad = np.argwhere(~ok)
    first = tuple(int(i) for i in bad[0])
    where = first[0] if len(first) == 1 else first
    detail = (f"{label}: {len(bad)} of {got.size} values differ; first at index {where}: got "
              f"{got[first]!r}, expected {want[first]!r}")
    if got.ndim == 1 and len(bad) > 1:
        detail += f" (indices {int(bad[0][0])} to {int(bad[-1][0])})"
    raise AssertionError(_join(detail, hint))


def _join(message: str, hint: str) -> str:
    return f"{message}. {hint}" if hint else message

