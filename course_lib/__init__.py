"""course_lib: the helper library of the Parallel Python course.

Modules and packages, each with one job (docs/ARCHITECTURE.md draws them):

- :mod:`course_lib.machine`  what this machine offers (cores, start method, GIL, the report)
- :mod:`course_lib.timing`   honest measurement: benchmark, compare, scaling
- :mod:`course_lib.laws`     Amdahl's and Gustafson's laws
- :mod:`course_lib.trace`    spans from threads, processes and asyncio tasks
- :mod:`course_lib.charts`   timelines, speed-up plots, the laws explorer
- :mod:`course_lib.viz`      every picture notebooks import, re-exported in one place
- :mod:`course_lib.workers`  importable worker functions (safe under spawn)
- :mod:`course_lib.proc`     running with a bound and stopping process trees
- :mod:`course_lib.fileio`   atomic file writes

Chapter packages (imported by their chapters, never by ``import course_lib``):

- :mod:`course_lib.processes`    pools, shared arrays and workers for chapter 2
- :mod:`course_lib.sync`         races, traced locks, deadlock detection (chapter 3)
- :mod:`course_lib.netserver`    the local latency server (chapter 4)
- :mod:`course_lib.aio`          async fetches and bounded coroutine runs (chapter 4)
- :mod:`course_lib.mpi`          running and tracing MPI programs (chapter 5)
- :mod:`course_lib.distributed`  local engines: ipyparallel, Dask, Celery, Pyro5, rpyc (chapter 6)
- :mod:`course_lib.dist_tasks`   what chapter 6's workers run
- :mod:`course_lib.gpu`          backend choice, kernels' launch checks (chapter 7)
- :mod:`course_lib.gpu_check`    ``make gpu-check``
- :mod:`course_lib.debugging`    chapter 8's debugging, testing and profiling helpers

Names are imported lazily, so ``import course_lib`` stays cheap and never
imports matplotlib until a picture is asked for.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "usable_cores": "machine.cores",
    "start_method": "machine.cores",
    "mp_context": "machine.cores",
    "gil_enabled": "machine.cores",
    "free_threaded_build": "machine.cores",
    "show_machine": "machine",
    "benchmark": "timing",
    "compare": "timing",
    "scaling": "timing",
    "Timing": "timing",
    "Comparison": "timing",
    "Scaling": "timing",
    "amdahl_speedup": "laws",
    "gustafson_speedup": "laws",
    "fit_serial_fraction": "laws",
    "Tracer": "trace",
    "Span": "trace",
    "timeline": "viz",
    "speedup_plot": "viz",
    "laws_plot": "viz",
    "amdahl_explorer": "viz",
    "cpu_wall_bars": "viz",
}

__all__ = [
    "Comparison",
    "Scaling",
    "Span",
    "Timing",
    "Tracer",
    "amdahl_explorer",
    "amdahl_speedup",
    "benchmark",
    "compare",
    "cpu_wall_bars",
    "fit_serial_fraction",
    "free_threaded_build",
    "gil_enabled",
    "gustafson_speedup",
    "laws_plot",
    "mp_context",
    "scaling",
    "show_machine",
    "speedup_plot",
    "start_method",
    "timeline",
    "usable_cores",
]

if TYPE_CHECKING:
    from .laws import amdahl_speedup, fit_serial_fraction, gustafson_speedup
    from .machine import show_machine
    from .machine.cores import (
        free_threaded_build,
        gil_enabled,
        mp_context,
        start_method,
        usable_cores,
    )
    from .timing import Comparison, Scaling, Timing, benchmark, compare, scaling
    from .trace import Span, Tracer
    from .viz import amdahl_explorer, cpu_wall_bars, laws_plot, speedup_plot, timeline


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'course_lib' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
