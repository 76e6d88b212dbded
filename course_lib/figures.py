"""Small building blocks every picture in the course shares.

No course_lib imports and no matplotlib at import time, so that any module
(generic pictures in :mod:`course_lib.viz`, a chapter's own pictures next to
its chapter) can use them without an import cycle. None of them changes global
matplotlib state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["HATCHES", "label_bars", "new_axes", "time_unit"]

#: Hatch patterns, so that colour is never the only carrier of meaning.
HATCHES = ("", "//", "..", "xx", "\\\\", "++", "oo", "--", "**", "||")


def new_axes(ax: Axes | None, figsize: tuple[float, float]) -> Axes:
    """``ax`` itself, or the Axes of a new figure of ``figsize`` (constrained layout)."""
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, new_ax = plt.subplots(figsize=figsize, layout="constrained")
    return new_ax


def label_bars(ax: Axes, bars: list[tuple[float, float, int, str]]) -> None:
    """Write each name on its bar when the text fits inside it (estimated in pixels)."""
    fontsize = 8.0
    dpi = ax.figure.dpi
    x0, x1 = ax.get_xlim()
    axes_px = 0.8 * ax.get_window_extent().width  # the legend outside takes some room later
    if x1 <= x0 or axes_px <= 0:
        return
    px_per_unit = axes_px / (x1 - x0)
    for left, width, row, name in bars:
        text_px = (0.6 * len(name) + 1.0) * fontsize * dpi / 72.0  # average glyph + padding
        if width * px_per_unit >= text_px:
            ax.text(left + width / 2, row, name, ha="center", va="center", fontsize=fontsize,
                    clip_on=True, bbox={"boxstyle": "round,pad=0.15", "facecolor": "white",
                                        "edgecolor": "none", "alpha": 0.8})


def time_unit(seconds: float) -> tuple[float, str]:
    """Scale and unit name for an axis whose values go up to ``seconds``."""
    if seconds >= 1.0:
        return 1.0, "s"
    if seconds >= 1e-3:
        return 1e3, "ms"
    if seconds >= 1e-6:
        return 1e6, "µs"
    return 1e9, "ns"
