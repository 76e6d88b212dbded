"""Kernel launches: configurations that cover an array, checked as a GPU checks them.

:func:`launch_config` and :func:`check_launch` refuse what a GPU would refuse
(more than 1024 threads per block, an empty grid, a float block count) and say
what to change; :func:`launch` also refuses sizes the simulator would take
minutes over and explains an out-of-bounds thread.
"""

from __future__ import annotations

import importlib
import math
import operator
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from course_lib.gpu.backends import current_backends, simulator_enabled
from course_lib.gpu.errors import KernelError, LaunchConfigError
from course_lib.gpu.probe import DEFAULT_LIMITS, GPUDevice

__all__ = ["LaunchConfig", "blocks_for", "check_launch", "launch", "launch_config"]

# The simulator runs each CUDA thread as a Python thread: about a millisecond each.
MAX_SIMULATED_THREADS = 20_000


class LaunchConfig(NamedTuple):
    """Blocks per grid and threads per block; ``kernel[config](...)`` launches with it."""

    blocks: tuple[int, ...]
    threads: tuple[int, ...]

    @property
    def total_threads(self) -> int:
        return math.prod(self.blocks) * math.prod(self.threads)


def _limits() -> GPUDevice:
    current = current_backends()
    if current is not None and current.gpu and current.device is not None:
        return current.device
    return DEFAULT_LIMITS


def as_count(value: object, name: str, minimum: int) -> int:
    """``value`` as an int of at least ``minimum``; a float or a bool is a ``TypeError``."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    try:
        number = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        hint = ""
        if isinstance(value, float):
            hint = f": a float like {value!r} comes from '/', use '//' or math.ceil"
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}{hint}"
                        ) from None
    if number < minimum:
        raise LaunchConfigError(f"{name} must be at least {minimum}, got {number}")
    return int(number)


def blocks_for(n: int, threads_per_block: int = 128) -> int:
    """Blocks needed so that ``threads_per_block``-thread blocks cover ``n`` elements.

    Rounds **up** (``(n + threads_per_block - 1) // threads_per_block``): the last
    block may hold threads past the end, which the kernel's bounds check stops.
    ``n == 0`` gives 0 blocks: skip the launch for an empty array.
    """
    count = as_count(n, "n", 0)
    per_block = as_count(threads_per_block, "threads_per_block", 1)
    limit = _limits().max_threads_per_block
    if per_block > limit:
        raise LaunchConfigError(
            f"threads_per_block={per_block} is more than a block may hold ({limit}): "
            "use 128 or 256 (a multiple of the warp size, 32)"
        )
    return (count + per_block - 1) // per_block


def launch_config(shape: int | Sequence[int], threads_per_block: int | Sequence[int] = 128,
                  ) -> LaunchConfig:
    """The launch configuration that covers ``shape`` with one thread per element.

    ``shape`` is ``n`` (1-D) or ``(rows, cols)`` (2-D). In 2-D the grid's x axis
    runs along the columns (the contiguous axis, so neighbouring threads touch
    neighbouring addresses) and y along the rows: use ``col, row = cuda.grid(2)``.
    ``threads_per_block`` is an int (1-D) or ``(x, y)``.
    """
    if isinstance(shape, int | np.integer):
        dims = [as_count(shape, "n", 0)]
    else:
        dims = [as_count(s, "shape entry", 0) for s in shape]
        if len(dims) not in (1, 2):
            raise LaunchConfigError(f"shape must be n or (rows, cols), got {tuple(shape)}")
    if isinstance(threads_per_block, int | np.integer):
        threads = [as_count(threads_per_block, "threads_per_block", 1)]
    else:
        threads = [as_count(t, "threads_per_block entry", 1) for t in threads_per_block]
    if len(threads) != len(dims):
        raise LaunchConfigError(
            f"shape {tuple(dims)} has {len(dims)} dimension(s) but threads_per_block "
            f"{tuple(threads)} has {len(threads)}: give one block size per dimension"
        )
    extent = dims if len(dims) == 1 else [dims[1], dims[0]]  # grid order: x (cols), y (rows)
    blocks = tuple((e + t - 1) // t for e, t in zip(extent, threads, strict=True))
    config = LaunchConfig(blocks, tuple(threads))
    if all(b > 0 for b in blocks):
        check_launch(config.blocks, config.threads)
    return config


def check_launch(blocks: int | Sequence[int], threads: int | Sequence[int],
                 device: GPUDevice | None = None) -> None:
    """Raise :class:`LaunchConfigError` for a configuration a GPU would refuse.

    Checks what CUDA checks (at most 1024 threads per block, block and grid
    limits per dimension, nothing zero) and says what to change.
    """
    limits = device or _limits()
    b = [blocks] if isinstance(blocks, int | np.integer) else list(blocks)
    t = [threads] if isinstance(threads, int | np.integer) else list(threads)
    if not 1 <= len(b) <= 3 or not 1 <= len(t) <= 3:
        raise LaunchConfigError(f"blocks {b} and threads {t} must each have 1 to 3 dimensions")
    b = [as_count(v, "blocks", 0) for v in b]
    t = [as_count(v, "threads per block", 0) for v in t]
    if 0 in b:
        raise LaunchConfigError(
            f"blocks={tuple(b)} launches no block at all: is the array empty? skip the launch "
            "when n == 0, and otherwise round the block count up with blocks_for(n, threads)"
        )
    if 0 in t:
        raise LaunchConfigError(
            f"threads={tuple(t)}: every block dimension needs at least 1 thread")
    per_block = math.prod(t)
    if per_block > limits.max_threads_per_block:
        shape = f"{' x '.join(map(str, t))} = " if len(t) > 1 else ""
        raise LaunchConfigError(
            f"{shape}{per_block} threads per block, but a block holds at "
            f"most {limits.max_threads_per_block}: use fewer threads per block (128 or 256 in "
            "1-D, 16 x 16 in 2-D) and more blocks"
        )
    axes = "xyz"
    for i, (value, limit) in enumerate(zip(t, limits.max_block_dim, strict=False)):
        if value > limit:
            raise LaunchConfigError(f"threads per block along {axes[i]} is {value}; the limit is "
                                    f"{limit}")
    for i, (value, limit) in enumerate(zip(b, limits.max_grid_dim, strict=False)):
        if value > limit:
            raise LaunchConfigError(
                f"{value} blocks along {axes[i]}; the limit is {limit}: use more threads per "
                "block, or a grid-stride loop (each thread handles several elements)"
            )


def _translate_kernel_error(exc: BaseException) -> KernelError | None:
    text = str(exc)
    if isinstance(exc, IndexError):
        return KernelError(
            f"a thread read or wrote past the end of an array ({text}). Every thread of the "
            "last block runs, even those past the end: guard the body with a bounds check such "
            "as 'if i < out.size:' (and in 2-D, check the row and the column)"
        )
    if isinstance(exc, NotImplementedError):
        return None
    return None


def launch(kernel: Any, shape: int | Sequence[int], *args: Any,
           threads_per_block: int | Sequence[int] = 128,
           max_simulated_threads: int = MAX_SIMULATED_THREADS) -> LaunchConfig:
    """Launch ``kernel`` with one thread per element of ``shape``, checked first.

    Computes the configuration with :func:`launch_config`, refuses sizes the
    simulator would take minutes over, waits for the kernel to finish, and
    turns a thread's out-of-bounds access (caught by the simulator) into a
    :class:`KernelError` that says how to fix it. Empty shapes launch nothing.
    """
    config = launch_config(shape, threads_per_block)
    if not all(config.blocks):
        return config
    simulated = simulator_enabled()
    if simulated and config.total_threads > max_simulated_threads:
        raise LaunchConfigError(
            f"{config.total_threads:,} threads under the CUDA simulator (one Python thread each, "
            f"about a millisecond apiece): use a tiny problem here, at most "
            f"{max_simulated_threads:,} threads; on a real GPU the same launch is fine"
        )
    try:
        kernel[config.blocks, config.threads](*args)
        if not simulated:
            cuda: Any = importlib.import_module("numba.cuda")
            cuda.synchronize()
    except Exception as exc:
        translated = _translate_kernel_error(exc)
        if translated is not None:
            raise translated from exc
        raise
    return config

