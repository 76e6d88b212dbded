"""Every picture of the course, importable from one place.

The generic charts (timelines, speed-up plots, the laws explorer, CPU against
wall time) live in :mod:`course_lib.charts`; each chapter's own pictures live
next to their chapter (:mod:`course_lib.sync.pictures`,
:mod:`course_lib.mpi.pictures`, :mod:`course_lib.gpu.pictures`). This module
re-exports the ones notebooks import from ``course_lib.viz``, so that
``from course_lib.viz import timeline`` keeps working. It draws nothing itself.

No picture changes global matplotlib state (style, rcParams); each draws on the
``ax`` it is given, or on a new figure when ``ax`` is None, and returns the
Axes. Colour is never the only carrier of meaning: lines differ in style and
markers, bars in hatching, and legends or text labels name everything.
"""

from __future__ import annotations

from .charts import amdahl_explorer, cpu_wall_bars, laws_plot, speedup_plot, timeline
from .mpi.pictures import collective_diagram, message_diagram
from .sync.pictures import contention, interleaving, wait_for_graph

__all__ = [
    # generic (course_lib.charts)
    "timeline", "speedup_plot", "laws_plot", "amdahl_explorer", "cpu_wall_bars",
    # chapter 3 (course_lib.sync.pictures)
    "interleaving", "contention", "wait_for_graph",
    # chapter 5 (course_lib.mpi.pictures)
    "message_diagram", "collective_diagram",
]
