"""The Mandelbrot image, chapter 7's common problem: the plane, NumPy's and Numba's answers."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from functools import cache
from typing import Any

import numpy as np

from course_lib.gpu.arrays import to_host
from course_lib.gpu.launch import as_count

__all__ = ["images_agree", "mandelbrot_numba", "mandelbrot_numpy", "mandelbrot_plane"]


def mandelbrot_plane(width: int, height: int, *, x: tuple[float, float] = (-2.2, 0.8),
                     y: tuple[float, float] = (-1.2, 1.2)) -> tuple[np.ndarray[Any, Any],
                                                                    np.ndarray[Any, Any]]:
    """``(re, im)``: ``width`` real parts and ``height`` imaginary parts (float64)."""
    w = as_count(width, "width", 1)
    h = as_count(height, "height", 1)
    return np.linspace(x[0], x[1], w), np.linspace(y[0], y[1], h)


def mandelbrot_numpy(re: Any, im: Any, max_iter: int) -> np.ndarray[Any, Any]:
    """Escape times, shape ``(len(im), len(re))``, dtype int32: the reference answer.

    For ``c = re[j] + 1j * im[i]``: iterate ``z = z*z + c`` from 0; the count is
    the first ``n`` at which ``|z|**2 > 4`` (checked before each step), or
    ``max_iter``. Only points still inside are updated, so nothing overflows.
    """
    limit = as_count(max_iter, "max_iter", 0)
    c_re = np.asarray(re, dtype=np.float64)
    c_im = np.asarray(im, dtype=np.float64)
    cr = np.broadcast_to(c_re[None, :], (c_im.size, c_re.size)).ravel()
    ci = np.broadcast_to(c_im[:, None], (c_im.size, c_re.size)).ravel()
    counts = np.full(cr.size, limit, dtype=np.int32)
    index = np.arange(cr.size)
    x = np.zeros(cr.size)
    y = np.zeros(cr.size)
    for n in range(limit):
        escaped = x * x + y * y > 4.0
        if escaped.any():
            counts[index[escaped]] = n
            keep = ~escaped
            index, x, y = index[keep], x[keep], y[keep]
        if index.size == 0:
            break
        x, y = x * x - y * y + cr[index], 2.0 * x * y + ci[index]
    return counts.reshape(c_im.size, c_re.size)


@cache
def _numba_mandelbrot(parallel: bool) -> Callable[..., Any]:
    numba: Any = importlib.import_module("numba")

    @numba.njit(cache=False)  # type: ignore[untyped-decorator]
    def escape(cr: float, ci: float, max_iter: int) -> int:
        x = 0.0
        y = 0.0
        for n in range(max_iter):
            if x * x + y * y > 4.0:
                return n
            x, y = x * x - y * y + cr, 2.0 * x * y + ci
        return max_iter

    @numba.njit(parallel=parallel, cache=False)  # type: ignore[untyped-decorator]
    def image(re: Any, im: Any, max_iter: int) -> Any:
        out = np.empty((im.size, re.size), dtype=np.int32)
        for i in numba.prange(im.size):
            for j in range(re.size):
                out[i, j] = escape(re[j], im[i], max_iter)
        return out

    compiled: Callable[..., Any] = image
    return compiled


def mandelbrot_numba(re: Any, im: Any, max_iter: int, *, parallel: bool = False
                     ) -> np.ndarray[Any, Any]:
    """:func:`mandelbrot_numpy`'s answer from a Numba loop (``parallel``: rows over cores)."""
    fn = _numba_mandelbrot(bool(parallel))
    result: np.ndarray[Any, Any] = fn(np.ascontiguousarray(re, dtype=np.float64),
                                      np.ascontiguousarray(im, dtype=np.float64),
                                      as_count(max_iter, "max_iter", 0))
    return result


def images_agree(a: Any, b: Any, max_fraction: float = 1e-3) -> bool:
    """Same shape, and at most ``max_fraction`` of the escape counts differ.

    GPUs fuse multiply-adds (one rounding instead of two), so a point right on
    the set's boundary may escape a step earlier or later than on the CPU.
    """
    x, y = to_host(a), to_host(b)
    if x.shape != y.shape:
        return False
    if x.size == 0:
        return True
    return float(np.count_nonzero(x != y)) <= max_fraction * x.size

