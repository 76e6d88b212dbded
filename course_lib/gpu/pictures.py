"""Chapter 7's pictures: which thread computes which element, the tree reduction, the image.

Built on :mod:`course_lib.figures`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from course_lib.figures import new_axes
from course_lib.gpu.arrays import to_host
from course_lib.gpu.launch import LaunchConfig, as_count, launch_config

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["grid_picture", "mandelbrot_picture", "reduction_picture"]


def grid_picture(shape: int | Sequence[int], threads_per_block: int | Sequence[int], *,
                 ax: Axes | None = None, title: str | None = None) -> Axes:
    """Which thread computes which element: blocks, threads and the idle threads past the end.

    1-D (``shape=n``): a row of threads grouped in blocks, each labelled with
    its ``threadIdx.x`` and its global index ``i``, above the array it covers;
    threads with ``i >= n`` are hatched (the bounds check stops them). 2-D
    (``shape=(rows, cols)``, ``threads_per_block=(x, y)``): the grid over the
    matrix, block borders drawn thick, threads outside the matrix hatched.
    """
    config = launch_config(shape, threads_per_block)
    if len(config.blocks) == 1:
        return _grid_picture_1d(int(shape if isinstance(shape, int | np.integer) else shape[0]),
                                config, ax, title)
    assert not isinstance(shape, int | np.integer)
    return _grid_picture_2d((int(shape[0]), int(shape[1])), config, ax, title)


def _grid_picture_1d(n: int, config: LaunchConfig, ax: Axes | None, title: str | None) -> Axes:
    from matplotlib.patches import Patch, Rectangle

    tpb = config.threads[0]
    blocks = config.blocks[0]
    total = blocks * tpb
    if total > 512:
        raise ValueError(f"{total} threads are too many to draw: use a small n (say 20) and "
                         "threads_per_block (say 8)")
    gap = 0.6
    width = total + gap * max(blocks - 1, 0)
    ax = new_axes(ax, (max(6.0, min(14.0, 0.45 * width + 1.5)), 3.2))
    labels = total <= 64
    for b in range(blocks):
        left = b * (tpb + gap)
        ax.add_patch(Rectangle((left - 0.1, 1.85), tpb + 0.2, 1.3, fill=False, lw=2))
        ax.text(left + tpb / 2, 3.3, f"block {b} (blockIdx.x = {b})", ha="center", fontsize=9)
        for t in range(tpb):
            i = b * tpb + t
            x = left + t
            idle = i >= n
            ax.add_patch(Rectangle((x, 2.0), 0.9, 0.9, facecolor="lightgray" if idle else
                                   "tab:blue", alpha=0.9 if not idle else 0.6,
                                   hatch="xx" if idle else "", edgecolor="black", lw=0.6))
            if labels:
                ax.text(x + 0.45, 2.68, f"t{t}", ha="center", va="center", fontsize=7,
                        color="black" if idle else "white")
                ax.text(x + 0.45, 2.25, f"i={i}", ha="center", va="center", fontsize=6.5,
                        color="black" if idle else "white")
            if not idle:
                ax.add_patch(Rectangle((i * width / max(n, 1), 0.0), 0.9 * width / max(n, 1),
                                       0.9, facecolor="white", edgecolor="black", lw=0.6))
                ax.plot([x + 0.45, (i + 0.45) * width / max(n, 1)], [2.0, 0.9], color="gray",
                        lw=0.6)
                if labels:
                    ax.text((i + 0.45) * width / max(n, 1), 0.45, f"{i}", ha="center",
                            va="center", fontsize=7)
    ax.text(-0.3, 0.45, "array", ha="right", va="center", fontsize=9)
    ax.text(-0.3, 2.45, "threads", ha="right", va="center", fontsize=9)
    ax.set_xlim(-3.0, width + 0.5)
    ax.set_ylim(-0.4, 3.8)
    ax.set_axis_off()
    idle_count = total - n
    ax.legend(handles=[Patch(facecolor="tab:blue", edgecolor="black",
                             label="thread i computes element i"),
                       Patch(facecolor="lightgray", hatch="xx", edgecolor="black",
                             label=f"idle thread (i ≥ n): stopped by 'if i < n' ({idle_count})")],
              loc="lower center", bbox_to_anchor=(0.5, -0.28), ncol=2, fontsize=8, frameon=False)
    ax.set_title(title or f"{blocks} blocks × {tpb} threads cover n = {n}: "
                          f"i = blockIdx.x × blockDim.x + threadIdx.x")
    return ax


def _grid_picture_2d(shape: tuple[int, int], config: LaunchConfig, ax: Axes | None,
                     title: str | None) -> Axes:
    from matplotlib.patches import Patch, Rectangle

    rows, cols = shape
    bx, by = config.blocks
    tx, ty = config.threads
    grid_cols, grid_rows = bx * tx, by * ty
    if grid_cols * grid_rows > 2048:
        raise ValueError("too many threads to draw: use a small shape, e.g. (10, 13) with (4, 4)")
    ax = new_axes(ax, (min(12.0, 0.4 * grid_cols + 4.0), min(9.0, 0.4 * grid_rows + 1.2)))
    for r in range(grid_rows):
        for c in range(grid_cols):
            idle = r >= rows or c >= cols
            ax.add_patch(Rectangle((c, r), 1, 1, facecolor="lightgray" if idle else "tab:blue",
                                   alpha=0.6 if idle else 0.85, hatch="xx" if idle else "",
                                   edgecolor="white", lw=0.5))
    for b_col in range(bx):
        for b_row in range(by):
            ax.add_patch(Rectangle((b_col * tx, b_row * ty), tx, ty, fill=False, lw=2.2,
                                   edgecolor="black"))
            ax.text(b_col * tx + tx / 2, b_row * ty + ty / 2, f"block\n({b_col}, {b_row})",
                    ha="center", va="center", fontsize=8, color="white",
                    bbox={"facecolor": "black", "alpha": 0.45, "pad": 1.5, "edgecolor": "none"})
    ax.set_xlim(0, grid_cols)
    ax.set_ylim(grid_rows, 0)
    ax.set_aspect("equal")
    ax.set_xlabel("column = blockIdx.x × blockDim.x + threadIdx.x   (grid x)")
    ax.set_ylabel("row = blockIdx.y × blockDim.y + threadIdx.y   (grid y)")
    ax.legend(handles=[Patch(facecolor="tab:blue", label="thread computes out[row, col]"),
                       Patch(facecolor="lightgray", hatch="xx",
                             label="idle: row ≥ rows or col ≥ cols")],
              loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    ax.set_title(title or f"A {by} × {bx} grid of {ty} × {tx} blocks covers a {rows} × {cols} "
                          "matrix")
    return ax


def reduction_picture(n: int = 8, *, ax: Axes | None = None, title: str | None = None) -> Axes:
    """The tree reduction in shared memory: at each step thread t adds ``s[t + stride]``.

    One row per step, with the ``cuda.syncthreads()`` barrier between steps
    drawn as a dashed line: no thread may read a partial sum before it is written.
    """
    from matplotlib.patches import Rectangle

    size = as_count(n, "n", 2)
    if size & (size - 1) or size > 32:
        raise ValueError(f"n must be a power of two up to 32 to draw, got {size}")
    steps = int(math.log2(size))
    ax = new_axes(ax, (max(6.0, 0.8 * size + 2.5), 1.2 * steps + 2.2))
    values = [float(v) for v in range(1, size + 1)]
    level_y = steps * 1.4
    for t, v in enumerate(values):
        ax.add_patch(Rectangle((t, level_y), 0.9, 0.8, facecolor="white", edgecolor="black"))
        ax.text(t + 0.45, level_y + 0.4, f"{v:g}", ha="center", va="center", fontsize=9)
    ax.text(-0.3, level_y + 0.4, "shared[t] = x[i]", ha="right", va="center", fontsize=8)
    stride = size // 2
    step = 1
    while stride >= 1:
        y_barrier = level_y - 0.3
        ax.plot([-0.2, size], [y_barrier, y_barrier], ls="--", color="tab:red", lw=1)
        ax.text(size + 0.1, y_barrier, "syncthreads()", va="center", fontsize=7, color="tab:red")
        new_y = level_y - 1.4
        for t in range(stride):
            values[t] = values[t] + values[t + stride]
            ax.add_patch(Rectangle((t, new_y), 0.9, 0.8, facecolor="tab:blue", alpha=0.8,
                                   edgecolor="black"))
            ax.text(t + 0.45, new_y + 0.4, f"{values[t]:g}", ha="center", va="center",
                    fontsize=9, color="white")
            ax.annotate("", xy=(t + 0.45, new_y + 0.8), xytext=(t + 0.45, level_y),
                        arrowprops={"arrowstyle": "->", "color": "gray", "lw": 0.8})
            ax.annotate("", xy=(t + 0.55, new_y + 0.8), xytext=(t + stride + 0.45, level_y),
                        arrowprops={"arrowstyle": "->", "color": "gray", "lw": 0.8, "ls": ":"})
        ax.text(-0.3, new_y + 0.4, f"step {step}: t < {stride}", ha="right", va="center",
                fontsize=8)
        level_y = new_y
        stride //= 2
        step += 1
    ax.set_xlim(-3.2, size + 1.8)
    ax.set_ylim(level_y - 0.5, steps * 1.4 + 1.2)
    ax.set_axis_off()
    ax.set_title(title or f"Tree reduction of {size} values in {steps} steps: "
                          "a barrier after every step")
    return ax


def mandelbrot_picture(counts: Any, *, re: Any = None, im: Any = None, ax: Axes | None = None,
                       title: str | None = None) -> Axes:
    """The escape-time image: points that never escaped are brightest.

    A colour bar names the steps.
    """
    image = to_host(counts)
    if image.ndim != 2:
        raise ValueError(f"counts must be a 2-D image (rows, cols), got shape {image.shape}")
    ax = new_axes(ax, (6.4, 4.6))
    extent = None
    if re is not None and im is not None:
        r, i = to_host(re), to_host(im)
        extent = (float(r[0]), float(r[-1]), float(i[0]), float(i[-1]))
    shown = ax.imshow(image, origin="lower", cmap="magma", extent=extent, aspect="auto",
                      interpolation="nearest")
    ax.figure.colorbar(shown, ax=ax, label="steps before |z| > 2 (max = never escaped)")
    ax.set_xlabel("real part of c" if extent else "column")
    ax.set_ylabel("imaginary part of c" if extent else "row")
    ax.set_title(title or f"Mandelbrot set, {image.shape[1]} × {image.shape[0]} points")
    return ax

