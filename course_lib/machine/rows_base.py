"""Rows of the report that need no child process: Python, OS, cores, start method, GIL, memory."""

from __future__ import annotations

import multiprocessing
import os
import platform
import sys
from typing import Any

from .cores import (
    START_METHOD_ENV,
    cgroup_memory_limit,
    core_counts,
    free_threaded_build,
    gil_enabled,
    start_method,
    start_method_source,
)
from .report import MachineRow, gib

__all__: list[str] = []


def python_rows(facts: dict[str, Any]) -> list[MachineRow]:
    """The Python version, build and interpreter."""
    impl = platform.python_implementation()
    version = platform.python_version()
    build = "free-threaded build" if free_threaded_build() else "standard build"
    facts.update(python=version, implementation=impl, executable=sys.executable)
    return [
        MachineRow("Python", f"{impl} {version} ({build})"),
        MachineRow("interpreter", sys.executable),
    ]


def os_rows(facts: dict[str, Any]) -> list[MachineRow]:
    """The operating system and processor architecture."""
    text = f"{platform.system()} {platform.release()} ({platform.machine()})"
    facts["os"] = text
    return [MachineRow("OS", text)]


def core_rows(facts: dict[str, Any]) -> list[MachineRow]:
    """Usable cores, and what limits them (affinity, a container's quota)."""
    counts = core_counts()
    physical: int | None = None
    try:
        import psutil

        physical = psutil.cpu_count(logical=False)
    except Exception:  # noqa: BLE001
        physical = None
    facts.update(
        usable_cores=counts.usable,
        logical_cpus=counts.logical,
        affinity_cpus=counts.available,
        cgroup_cpu_limit=counts.cgroup,
        physical_cores=physical,
    )
    logical = counts.logical if counts.logical is not None else "?"
    value = f"{counts.usable} of {logical} logical CPUs"
    limits = []
    if counts.available is not None and counts.logical and counts.available < counts.logical:
        limits.append(f"affinity allows {counts.available}")
    if counts.cgroup is not None and (counts.logical is None or counts.cgroup < counts.logical):
        limits.append(f"container quota {counts.cgroup}")
    if physical:
        limits.append(f"{physical} physical")
    if limits:
        value += f" ({', '.join(limits)})"
    if counts.usable < 2:
        advice = "one core: parallel code runs but cannot get faster here; try a machine with 2+"
    elif counts.logical and counts.usable < counts.logical:
        advice = f"limited by affinity or a container: expect speed-ups of at most {counts.usable}x"
    else:
        advice = ""
    return [MachineRow("usable cores", value, advice)]


def start_method_rows(facts: dict[str, Any]) -> list[MachineRow]:
    """The start method, where it comes from, and the others available."""
    try:
        method = start_method()
    except ValueError as exc:
        facts["start_method"] = None
        return [
            MachineRow(
                "start method",
                f"invalid {START_METHOD_ENV}={os.environ.get(START_METHOD_ENV)!r}",
                f"{exc}",
            )
        ]
    source = start_method_source()
    facts.update(start_method=method, start_method_source=source)
    others = [m for m in multiprocessing.get_all_start_methods() if m != method]
    value = f"{method} ({source})"
    if others:
        value += f"; also available: {', '.join(others)}"
    return [MachineRow("start method", value)]


def gil_rows(facts: dict[str, Any]) -> list[MachineRow]:
    """Whether the GIL is on, and whether this is a free-threaded build."""
    enabled = gil_enabled()
    threaded = free_threaded_build()
    facts.update(gil_enabled=enabled, free_threaded_build=threaded)
    if not threaded:
        return [MachineRow("GIL", "enabled (standard build)")]
    if enabled:
        return [
            MachineRow(
                "GIL",
                "enabled on a free-threaded build",
                "an extension or PYTHON_GIL=1 turned it back on; set PYTHON_GIL=0 to turn it off",
            )
        ]
    return [MachineRow("GIL", "disabled (free-threaded build)")]


def memory_rows(facts: dict[str, Any]) -> list[MachineRow]:
    """Memory available, total, and a container's limit."""
    total: int | None = None
    available: int | None = None
    try:
        import psutil

        vm = psutil.virtual_memory()
        total, available = int(vm.total), int(vm.available)
    except Exception:  # noqa: BLE001
        try:
            total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            total = None
    limit = cgroup_memory_limit()
    facts.update(memory_total=total, memory_available=available, memory_limit=limit)
    if total is None:
        return [MachineRow("memory", "unknown (install psutil)", "pip install psutil")]
    parts = []
    if available is not None:
        parts.append(f"{gib(available)} available of {gib(total)}")
    else:
        parts.append(f"{gib(total)} total")
    if limit is not None and limit < total:
        parts.append(f"container limit {gib(limit)}")
    smallest = min(x for x in (available, limit, total) if x is not None)
    advice = ""
    if smallest < 2**30:
        advice = "under 1 GiB to spare: shut down other kernels; use small problem sizes"
    return [MachineRow("memory", ", ".join(parts), advice)]

