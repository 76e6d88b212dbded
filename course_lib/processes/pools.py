"""Process pools done carefully: :func:`check_picklable` and :func:`pool_map`.

:func:`pool_map` validates its arguments, bounds the wait, and turns a
worker's exception into :class:`WorkerError`; its pool is always shut down.
"""

from __future__ import annotations

import functools
import math
import multiprocessing
import multiprocessing.context
import pickle
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from ..machine.cores import start_method, usable_cores
from ..workers import as_int
from .common import as_seconds

__all__ = ["WorkerError", "check_picklable", "pool_map"]

R = TypeVar("R")


# --------------------------------------------------------------------------- pickling checks


def _describe(fn: object) -> str:
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)


def _interactive_main() -> bool:
    main = sys.modules.get("__main__")
    return main is None or not getattr(main, "__file__", None)


def check_picklable(fn: Callable[..., object], method: str | None = None) -> None:
    """Raise ``TypeError`` unless a worker process started with ``method`` can receive ``fn``.

    A child receives a function as a reference, *module + name*, and imports
    it. That fails for a lambda, a function defined inside another function,
    and, under ``spawn`` and ``forkserver``, for a function defined in a
    notebook or an interactive session (its module, ``__main__``, cannot be
    imported). Under ``fork`` the child is a copy of the parent, so a notebook
    function defined before the pool was created is found. ``method``
    defaults to :func:`course_lib.start_method`.
    """
    method = start_method() if method is None else method
    if not callable(fn):
        raise TypeError(f"expected a function to run in the workers, got {type(fn).__name__}")
    inner = fn.func if isinstance(fn, functools.partial) else fn
    name = _describe(inner)
    try:
        pickle.dumps(fn)
    except Exception as exc:  # noqa: BLE001 - every pickling failure gets the same advice
        raise TypeError(
            f"{name} cannot be sent to a worker process ({type(exc).__name__}: {exc}). A worker "
            "gets a function by module and name: define it with `def` at the top level of a "
            ".py module and import it (lambdas and functions defined inside other functions "
            "have no importable name). course_lib.processes has the workers this chapter needs."
        ) from None
    module = getattr(inner, "__module__", None)
    if module == "__main__" and method != "fork" and _interactive_main():
        raise TypeError(
            f"{name} is defined in this notebook (module __main__). Under the {method!r} start "
            "method each worker is a fresh Python that imports the function by name, and a "
            "notebook cannot be imported, so the worker would fail with AttributeError. Put the "
            "function in a .py module and import it from there (course_lib.processes has the "
            "workers this chapter needs)."
        )


def _check_workers(workers: object) -> int:
    count = as_int(workers, "workers")
    if count < 1:
        raise ValueError(
            f"workers must be at least 1, got {count}: pass a positive number of processes, or "
            f"None for one per usable core ({usable_cores()} here)"
        )
    return count


# --------------------------------------------------------------------------- pool_map


class WorkerError(RuntimeError):
    """A task raised in a worker process; ``index``, ``item`` and ``error`` say which and what."""

    def __init__(self, index: int, item: object, error: BaseException) -> None:
        text = repr(item)
        if len(text) > 80:
            text = text[:77] + "..."
        super().__init__(
            f"task {index} (item {text}) raised {type(error).__name__} in a worker process: {error}"
        )
        self.index = index
        self.item = item
        self.error = error

    def __reduce__(self) -> tuple[type[WorkerError], tuple[int, object, BaseException]]:
        return (WorkerError, (self.index, self.item, self.error))


def _picklable_error(error: Exception) -> Exception:
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:  # noqa: BLE001
        return RuntimeError(f"{type(error).__name__}: {error}")
    return error


def _run_chunk(fn: Callable[[Any], object], chunk: Sequence[object]) -> list[tuple[bool, object]]:
    """Pool task of :func:`pool_map`: ``fn`` on every item, stopping at the first exception."""
    out: list[tuple[bool, object]] = []
    for item in chunk:
        try:
            out.append((True, fn(item)))
        except Exception as exc:  # noqa: BLE001 - sent back to the parent
            out.append((False, _picklable_error(exc)))
            break
    return out


def pool_map(
    fn: Callable[[Any], R],
    items: Iterable[Any],
    workers: int | None = None,
    *,
    chunksize: int | None = None,
    timeout: float = 60.0,
    progress: bool = False,
    ctx: multiprocessing.context.BaseContext | None = None,
) -> list[R]:
    """``[fn(x) for x in items]`` computed by a pool of ``workers`` processes, in input order.

    Checks its arguments first: ``fn`` must reach a worker under the start
    method (:func:`check_picklable`), ``workers`` must be >= 1 (None: one per
    usable core), ``chunksize`` >= 1 (None: about four chunks per worker).
    Waits at most ``timeout`` seconds in all, then stops the pool and raises
    ``TimeoutError``. A task that raises stops the pool and raises
    :class:`WorkerError` naming the item (the worker's exception is its
    ``__cause__``). ``progress=True`` shows a tqdm progress bar. The pool is
    closed and joined before it returns, whatever happens.
    """
    context = ctx if ctx is not None else multiprocessing.get_context(start_method())
    check_picklable(fn, context.get_start_method())
    count = usable_cores() if workers is None else _check_workers(workers)
    seconds = as_seconds(timeout, "timeout")
    if seconds == 0:
        raise ValueError("timeout must be positive")
    data = list(items)
    if not data:
        return []
    if chunksize is None:
        size = max(1, math.ceil(len(data) / (count * 4)))
    else:
        size = as_int(chunksize, "chunksize")
        if size < 1:
            raise ValueError(f"chunksize must be at least 1, got {size}")
    chunks = [data[i : i + size] for i in range(0, len(data), size)]
    bar: Any = None
    if progress:
        from tqdm.auto import tqdm

        tqdm.monitor_interval = 0  # no background monitor thread left behind
        bar = tqdm(total=len(data), desc=getattr(fn, "__name__", "tasks"), file=sys.stdout)
    deadline = time.monotonic() + seconds
    results: list[R] = []
    pool = context.Pool(min(count, len(chunks)))
    finished = False
    try:
        iterator = pool.imap(functools.partial(_run_chunk, fn), chunks)
        for chunk_index in range(len(chunks)):
            remaining = deadline - time.monotonic()
            try:
                answers = iterator.next(max(remaining, 1e-3))
            except multiprocessing.TimeoutError:
                raise TimeoutError(
                    f"pool_map: {len(results)} of {len(data)} results after {seconds:g} s; the "
                    "pool was stopped. Is a task stuck or much slower than expected?"
                ) from None
            for offset, (ok, value) in enumerate(answers):
                if not ok:
                    index = chunk_index * size + offset
                    error = value if isinstance(value, BaseException) else RuntimeError(str(value))
                    raise WorkerError(index, data[index], error) from error
                results.append(value)  # type: ignore[arg-type]
            if bar is not None:
                bar.update(len(answers))
        finished = True
        return results
    finally:
        if bar is not None:
            bar.close()
        if finished:
            pool.close()
        else:
            pool.terminate()
        pool.join()
