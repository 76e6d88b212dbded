"""Pool tasks: tiny and large results, CPU-bound work, spans, and a model loaded once per worker."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from ..workers import as_int, busy_work
from .common import as_seconds

if TYPE_CHECKING:
    from ..trace import RemoteTracer

__all__ = [
    "cpu_task",
    "load_and_predict",
    "load_model",
    "make_bytes",
    "predict",
    "square",
    "traced",
]

R = TypeVar("R")


# --------------------------------------------------------------------------- pool tasks


def square(x: Any) -> Any:
    """``x * x``: a task so tiny that sending it to a worker costs more than doing it."""
    return x * x


def traced(tracer: RemoteTracer, name: str, fn: Callable[..., R], *args: Any) -> R:
    """``fn(*args)`` recorded as a span called ``name`` on ``tracer`` (a ``tr.for_process()``).

    Use it with ``functools.partial(traced, remote, "name", fn)`` as a pool task,
    with ``map`` (one argument per task) or ``starmap`` (several).
    """
    with tracer.span(name):
        return fn(*args)


def make_bytes(n: int) -> bytes:
    """``n`` bytes (a large result that fills the pipe behind a queue)."""
    size = as_int(n, "n")
    if size < 0:
        raise ValueError(f"n must be >= 0, got {size}")
    return bytes(size)


def cpu_task(n: int) -> tuple[int, int]:
    """``(busy_work(n), pid)``: CPU-bound pure Python, and which process did it."""
    return busy_work(n), os.getpid()


_MODEL: dict[str, object] | None = None
_LOADS = 0


def load_model(seconds: float = 0.2) -> None:
    """Pool initializer: pretend to import a heavy library (sleep ``seconds``), keep a model.

    The model lives in a global of the worker process, so every task that
    worker runs afterwards can use it without loading it again.
    """
    global _MODEL, _LOADS
    time.sleep(as_seconds(seconds, "seconds"))
    _LOADS += 1
    _MODEL = {"slope": 2, "intercept": 1, "pid": os.getpid()}


def predict(x: float) -> tuple[float, int, int]:
    """``(2 * x + 1, pid, loads)`` with the model :func:`load_model` loaded in this worker.

    ``loads`` counts how many times this worker process loaded the model (1
    when a pool initializer did it once). Raises ``RuntimeError`` when no
    model was loaded in this process.
    """
    if _MODEL is None:
        raise RuntimeError(
            "no model loaded in this worker process: create the pool with "
            "initializer=load_model (and initargs=(seconds,)) so each worker loads it once"
        )
    slope, intercept = _MODEL["slope"], _MODEL["intercept"]
    return slope * x + intercept, os.getpid(), _LOADS  # type: ignore[operator]


def load_and_predict(x: float, seconds: float = 0.2) -> tuple[float, int, int]:
    """Load the model (again) and predict: what a task does when there is no initializer."""
    load_model(seconds)
    return predict(x)
