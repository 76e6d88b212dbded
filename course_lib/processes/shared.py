"""NumPy arrays in shared memory that are always closed and unlinked, and what is left in it.

:class:`SharedArray` creates and owns a ``SharedMemory`` block; workers attach
with :func:`attach_array`. :func:`shm_segments` and :func:`segment_exists` show
what exists in shared memory now.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from multiprocessing import shared_memory
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from .. import internals
from ..workers import as_int

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = [
    "ArraySpec",
    "SharedArray",
    "attach_array",
    "scale_shared",
    "segment_exists",
    "shm_segments",
    "sum_shared",
]

_SHM_DIR = Path("/dev/shm")


# --------------------------------------------------------------------------- shared memory


class ArraySpec(NamedTuple):
    """What a worker needs to find a :class:`SharedArray`: segment name, shape and dtype."""

    name: str
    shape: tuple[int, ...]
    dtype: str


def _closed_error(name: str) -> ValueError:
    return ValueError(
        f"the shared block {name!r} is closed: its memory is no longer mapped in this process. "
        "Use the array inside the with-block, or copy what you need out first (arr.copy())"
    )


def _release_mapping(shm: shared_memory.SharedMemory) -> bool:
    """Close ``shm``; if NumPy views still point into it, leave the mapping to them.

    Returns False when views were still alive: the segment's file descriptor
    is closed, but the memory stays mapped until the last view is gone.
    """
    try:
        shm.close()
        return True
    except BufferError:
        # SharedMemory.close() would unmap memory that live arrays still use. Hand the
        # mapping to those arrays (it is unmapped when the last one is freed), close the rest.
        internals.release_shared_memory_mapping(shm)
        shm.close()
        return False


def _view(shm: shared_memory.SharedMemory, shape: tuple[int, ...], dtype: Any) -> NDArray[Any]:
    """A NumPy array on ``shm`` that keeps the mapping alive for as long as it lives.

    ``np.ndarray(buffer=shm.buf)`` would not: ``shm.close()`` would then unmap
    memory the array still points to, and the next access would crash Python.
    Through its own memoryview, the array holds a buffer export, so closing
    the block while a view is alive raises ``BufferError`` instead.
    """
    import numpy as np

    buffer = shm.buf
    if buffer is None:
        raise _closed_error(shm.name)
    count = int(math.prod(shape))
    return np.frombuffer(memoryview(buffer), dtype=dtype, count=count).reshape(shape)


class SharedArray:
    """A NumPy array in a ``SharedMemory`` block that this object creates and owns.

    Use it as a context manager::

        with SharedArray.copy_of(data) as shared:
            ...  # pass shared.spec to workers; they use attach_array(spec)
            result = shared.array.copy()

    Leaving the block closes the block in this process and unlinks (destroys)
    it, even after an exception, so no segment is left in ``/dev/shm``. After
    that, ``.array`` raises ``ValueError``. A worker attaches with
    :func:`attach_array`, which closes but never unlinks.
    """

    def __init__(self, shape: int | Sequence[int], dtype: Any = "float64") -> None:
        import numpy as np

        dims = (shape,) if isinstance(shape, int) else tuple(shape)
        checked = tuple(as_int(d, "shape") for d in dims)
        if any(d < 0 for d in checked):
            raise ValueError(f"shape must not hold negative sizes, got {checked}")
        kind = np.dtype(dtype)
        if kind.hasobject:
            raise TypeError(
                "an array of Python objects cannot live in shared memory (it holds pointers "
                "into one process's memory); use a numeric dtype"
            )
        nbytes = int(math.prod(checked)) * kind.itemsize
        # SharedMemory refuses size 0; an empty array still gets a (one-byte) block.
        self._shm = shared_memory.SharedMemory(create=True, size=max(nbytes, 1))
        self._spec = ArraySpec(self._shm.name, checked, kind.str)
        self._array: NDArray[Any] | None = _view(self._shm, checked, kind)
        self._closed = False

    @classmethod
    def copy_of(cls, array: Any) -> SharedArray:
        """A new shared block holding a copy of ``array``."""
        import numpy as np

        source = np.asarray(array)
        shared = cls(source.shape, source.dtype)
        assert shared._array is not None
        shared._array[...] = source
        return shared

    @property
    def spec(self) -> ArraySpec:
        """``ArraySpec(name, shape, dtype)``: small and picklable; send this to workers."""
        return self._spec

    @property
    def name(self) -> str:
        """The segment's name (as in ``/dev/shm`` on Linux)."""
        return self._spec.name

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def array(self) -> NDArray[Any]:
        """The NumPy view of the shared block (no copy)."""
        if self._array is None:
            raise _closed_error(self.name)
        return self._array

    def close(self) -> None:
        """Close and unlink the block (idempotent).

        Raises ``BufferError`` (after unlinking) if arrays taken from ``.array``
        are still alive: they keep the memory mapped until they are deleted.
        """
        if self._closed:
            return
        self._closed = True
        self._array = None
        released = _release_mapping(self._shm)
        with contextlib.suppress(FileNotFoundError):
            self._shm.unlink()
        if not released:
            raise BufferError(
                f"the shared block {self.name!r} was unlinked, but NumPy arrays taken from "
                ".array still point into it. Copy what you need (arr.copy()) and `del` the "
                "views before the block closes."
            )

    def __enter__(self) -> SharedArray:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __reduce__(self) -> Any:
        raise TypeError(
            "a SharedArray is owned by the process that created it: send shared.spec to the "
            "worker and attach there with course_lib.processes.attach_array(spec)"
        )

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        spec = self._spec
        return f"<SharedArray {self.name!r} shape={spec.shape} dtype={spec.dtype} {state}>"


@contextlib.contextmanager
def attach_array(spec: ArraySpec | Sequence[Any]) -> Iterator[NDArray[Any]]:
    """Attach to the shared array ``spec`` describes; yield a NumPy view; close on exit.

    For workers: it never unlinks (the creator does). Raises
    ``FileNotFoundError`` with advice if the block no longer exists.
    """
    import numpy as np

    name, shape, dtype = ArraySpec(*spec)
    try:
        shm = shared_memory.SharedMemory(name=name)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"no shared-memory block named {name!r}: was it already unlinked? The creator must "
            "keep it until every worker is done (join the workers first)"
        ) from None
    view: NDArray[Any] | None = _view(shm, tuple(shape), np.dtype(dtype))
    try:
        yield view  # type: ignore[misc]
    finally:
        view = None
        _release_mapping(shm)


def scale_shared(spec: ArraySpec, start: int, stop: int, factor: float) -> None:
    """Multiply ``array[start:stop]`` of the shared array ``spec`` by ``factor``, in place."""
    lo, hi = as_int(start, "start"), as_int(stop, "stop")
    with attach_array(spec) as array:
        if not 0 <= lo <= hi <= len(array):
            raise ValueError(f"slice {lo}:{hi} is outside the array of length {len(array)}")
        array[lo:hi] *= factor


def sum_shared(spec: ArraySpec, start: int = 0, stop: int | None = None) -> float:
    """Sum of ``array[start:stop]`` of the shared array ``spec``, read in place (no copy)."""
    with attach_array(spec) as array:
        return float(array[start:stop].sum())


def shm_segments() -> list[str]:
    """Names of the POSIX shared-memory segments that exist now (Linux: ``/dev/shm``).

    Semaphores (``sem.*``) are left out. Other programs' segments are listed
    too. On macOS and Windows segments cannot be listed: returns ``[]`` (use
    :func:`segment_exists`).
    """
    if not _SHM_DIR.is_dir():
        return []
    return sorted(p.name for p in _SHM_DIR.iterdir() if not p.name.startswith("sem."))


def segment_exists(name: str) -> bool:
    """Whether a shared-memory segment called ``name`` exists (without attaching to it for good)."""
    bare = name.lstrip("/")
    if not bare:
        raise ValueError("name must not be empty")
    if _SHM_DIR.is_dir():
        return (_SHM_DIR / bare).exists()
    exists = internals.posix_shm_exists(bare)  # macOS: shm_open, not registered with the tracker
    if exists is not None:
        return exists
    try:  # Windows: a block exists while someone has it open
        shm = shared_memory.SharedMemory(name=bare)
    except FileNotFoundError:
        return False
    shm.close()
    return True
