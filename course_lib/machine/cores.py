"""Cores, start method and GIL: light probes with the standard library only.

Chapter packages (processes, sync, distributed, mpi) import these from here,
never from :mod:`course_lib.machine` (whose report probes MPI, GPUs and brokers).
:func:`usable_cores` counts what this process may really use: affinity and a
container's CPU quota (cgroup v2 ``cpu.max`` or v1 CFS quota), not just the
CPUs the machine has.
"""

from __future__ import annotations

import math
import multiprocessing
import multiprocessing.context
import os
import sys
import sysconfig
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

__all__ = [
    "START_METHODS",
    "START_METHOD_ENV",
    "free_threaded_build",
    "gil_enabled",
    "mp_context",
    "start_method",
    "usable_cores",
]

START_METHOD_ENV = "COURSE_START_METHOD"
START_METHODS = ("fork", "spawn", "forkserver")

_CGROUP_ROOT = Path("/sys/fs/cgroup")
_PROC_SELF_CGROUP = Path("/proc/self/cgroup")


# --------------------------------------------------------------------------- cgroup quota


def _parse_cpu_max(text: str) -> int | None:
    """CPUs allowed by a cgroup v2 ``cpu.max`` ("QUOTA PERIOD" or "max PERIOD"), rounded up.

    None when there is no limit or the text cannot be read.
    """
    parts = text.split()
    if not parts or parts[0] == "max":
        return None
    try:
        quota = int(parts[0])
        period = int(parts[1]) if len(parts) > 1 else 100_000
    except ValueError:
        return None
    return _quota_to_cores(quota, period)


def _parse_cfs_quota(quota_text: str, period_text: str) -> int | None:
    """CPUs allowed by cgroup v1 ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``, rounded up."""
    try:
        quota = int(quota_text.strip())
        period = int(period_text.strip())
    except ValueError:
        return None
    return _quota_to_cores(quota, period)


def _quota_to_cores(quota: int, period: int) -> int | None:
    if quota <= 0 or period <= 0:
        return None
    return max(1, math.ceil(quota / period))


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError):
        return None


def _min_limit(a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


def _own_and_ancestors(mount: Path, relative: str) -> list[Path]:
    """``mount/relative`` and its parents up to ``mount`` (those that exist)."""
    dirs: list[Path] = []
    here = mount / relative.strip("/") if relative.strip("/") else mount
    try:
        here.relative_to(mount)
    except ValueError:
        here = mount
    while True:
        if here.is_dir():
            dirs.append(here)
        if here == mount or here.parent == here:
            break
        here = here.parent
    if mount not in dirs and mount.is_dir():
        dirs.append(mount)
    return dirs


def _cgroup_cpu_limit(
    root: Path = _CGROUP_ROOT, proc_self_cgroup: Path = _PROC_SELF_CGROUP
) -> int | None:
    """CPUs this process's cgroup (v2 ``cpu.max`` or v1 CFS quota) allows, or None."""
    membership = _read(proc_self_cgroup) or ""
    v2_path = "/"
    v1_path: str | None = None
    for line in membership.splitlines():
        fields = line.split(":", 2)
        if len(fields) != 3:
            continue
        if fields[0] == "0" and fields[1] == "":
            v2_path = fields[2]
        elif "cpu" in fields[1].split(","):
            v1_path = fields[2]

    limit: int | None = None
    if (root / "cgroup.controllers").exists() or (root / "cpu.max").exists():
        for directory in _own_and_ancestors(root, v2_path):
            text = _read(directory / "cpu.max")
            if text is not None:
                limit = _min_limit(limit, _parse_cpu_max(text))
        return limit

    for mount in (root / "cpu", root / "cpu,cpuacct", root / "cpuacct,cpu"):
        if not mount.is_dir():
            continue
        for directory in _own_and_ancestors(mount, v1_path or "/"):
            quota = _read(directory / "cpu.cfs_quota_us")
            period = _read(directory / "cpu.cfs_period_us")
            if quota is not None and period is not None:
                limit = _min_limit(limit, _parse_cfs_quota(quota, period))
        break
    return limit


class CoreCounts(NamedTuple):
    """CPU counts: the machine's, after affinity, the cgroup quota, and what is usable."""

    logical: int | None
    available: int | None  # after affinity (process_cpu_count / sched_getaffinity)
    cgroup: int | None
    usable: int


def core_counts() -> CoreCounts:
    """Logical CPUs, those affinity allows, the container quota and the usable count."""
    logical = os.cpu_count()
    available: int | None = None
    process_cpu_count: Callable[[], int | None] | None = getattr(os, "process_cpu_count", None)
    if process_cpu_count is not None:
        available = process_cpu_count()
    elif hasattr(os, "sched_getaffinity"):
        try:
            available = len(os.sched_getaffinity(0))
        except OSError:
            available = None
    if available is None:
        available = logical
    cgroup = _cgroup_cpu_limit() if sys.platform.startswith("linux") else None
    usable = available or 1
    if cgroup is not None:
        usable = min(usable, cgroup)
    return CoreCounts(logical, available, cgroup, max(1, usable))


def usable_cores() -> int:
    """CPUs this process may use (affinity, cgroup quota), at least 1."""
    try:
        return core_counts().usable
    except Exception:  # noqa: BLE001 - a probe never breaks a notebook
        return max(1, os.cpu_count() or 1)


def cgroup_memory_limit() -> int | None:
    """Bytes of memory this container (cgroup v2 or v1) may use, or None (no limit, not Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    text = _read(_CGROUP_ROOT / "memory.max")
    if text is None:
        text = _read(_CGROUP_ROOT / "memory" / "memory.limit_in_bytes")
    if text is None or text.strip() == "max":
        return None
    try:
        value = int(text.strip())
    except ValueError:
        return None
    return value if 0 < value < 2**60 else None


# --------------------------------------------------------------------------- start method


def start_method() -> str:
    """The multiprocessing start method the course uses.

    ``$COURSE_START_METHOD`` (fork, spawn or forkserver) when set, else the
    method already chosen with ``multiprocessing.set_start_method``, else the
    platform default. Never sets the global start method.
    """
    raw = os.environ.get(START_METHOD_ENV, "")
    if raw.strip():
        method = raw.strip().lower()
        if method not in START_METHODS:
            raise ValueError(
                f"{START_METHOD_ENV}={raw!r} is not a start method; "
                f"use one of {', '.join(START_METHODS)} (or unset {START_METHOD_ENV})"
            )
        available = multiprocessing.get_all_start_methods()
        if method not in available:
            raise ValueError(
                f"{START_METHOD_ENV}={raw!r}: the {method!r} start method is not available "
                f"on this platform ({sys.platform}); available here: {', '.join(available)}"
            )
        return method
    chosen = multiprocessing.get_start_method(allow_none=True)
    if chosen is not None:
        return chosen
    return multiprocessing.get_all_start_methods()[0]  # the first is the platform default


def start_method_source() -> str:
    """Where :func:`start_method` comes from: the environment, the program, or the platform."""
    if os.environ.get(START_METHOD_ENV, "").strip():
        return f"from {START_METHOD_ENV}"
    if multiprocessing.get_start_method(allow_none=True) is not None:
        return "set by multiprocessing.set_start_method"
    return "platform default"


def mp_context() -> multiprocessing.context.BaseContext:
    """A multiprocessing context for :func:`start_method`."""
    return multiprocessing.get_context(start_method())


# --------------------------------------------------------------------------- GIL


def gil_enabled() -> bool:
    """False only on a free-threaded build running without the GIL."""
    from course_lib.internals import gil_enabled_now

    enabled = gil_enabled_now()
    return True if enabled is None else enabled


def free_threaded_build() -> bool:
    """True for a free-threaded (3.13t/3.14t) build, even if the GIL was re-enabled."""
    return bool(sysconfig.get_config_var("Py_GIL_DISABLED"))

