"""What this machine offers the course: cores, start method, GIL, MPI, GPU, broker.

Everything here is a probe: it is quick, it never raises (a failing probe
becomes a row saying what failed), and anything that starts a process has a
timeout. Probes that could change the state of the calling process (MPI
initialisation, a CUDA context) run in a short-lived child process instead.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import math
import multiprocessing
import multiprocessing.context
import os
import platform
import re
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from ._render import Table

__all__ = [
    "NEEDS",
    "START_METHODS",
    "START_METHOD_ENV",
    "MachineReport",
    "MachineRow",
    "free_threaded_build",
    "gil_enabled",
    "mp_context",
    "show_machine",
    "start_method",
    "usable_cores",
]

START_METHOD_ENV = "COURSE_START_METHOD"
START_METHODS = ("fork", "spawn", "forkserver")
NEEDS = ("mpi", "gpu", "broker")

MPIEXEC_TIMEOUT = 30.0
_CHILD_TIMEOUT = 20.0
_GPU_TIMEOUT = 60.0

_INSTALL_MPI = "pip install -e '.[mpi]' (make lab installs it)"
_INSTALL_GPU = "pip install -e '.[gpu]'"
_NO_GPU = "none: chapter 7 runs on the simulator / PoCL / NumPy"

_CGROUP_ROOT = Path("/sys/fs/cgroup")
_PROC_SELF_CGROUP = Path("/proc/self/cgroup")


# --------------------------------------------------------------------------- cores


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


class _CoreCounts(NamedTuple):
    logical: int | None
    available: int | None  # after affinity (process_cpu_count / sched_getaffinity)
    cgroup: int | None
    usable: int


def _core_counts() -> _CoreCounts:
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
    return _CoreCounts(logical, available, cgroup, max(1, usable))


def usable_cores() -> int:
    """CPUs this process may use (affinity, cgroup quota), at least 1."""
    try:
        return _core_counts().usable
    except Exception:  # noqa: BLE001 - a probe never breaks a notebook
        return max(1, os.cpu_count() or 1)


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


def _start_method_source() -> str:
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
    is_enabled: Callable[[], bool] | None = getattr(sys, "_is_gil_enabled", None)
    return True if is_enabled is None else bool(is_enabled())


def free_threaded_build() -> bool:
    """True for a free-threaded (3.13t/3.14t) build, even if the GIL was re-enabled."""
    return bool(sysconfig.get_config_var("Py_GIL_DISABLED"))


# --------------------------------------------------------------------------- report


class MachineRow(NamedTuple):
    """One line of the report: what was probed, what was found, what to do about it."""

    item: str
    value: str
    advice: str = ""


@dataclass
class MachineReport:
    """Result of :func:`show_machine`: text with ``str()``, a table in Jupyter.

    ``rows`` are for people; ``facts`` holds the same findings as plain values
    (numbers, booleans, strings) for programs.
    """

    rows: list[MachineRow]
    facts: dict[str, Any] = field(default_factory=dict)
    title: str = "Parallel Python: this machine"

    def table(self) -> Table:
        """The rows as a :class:`~course_lib._render.Table` (item, value, advice)."""
        return Table(headers=("item", "value", "advice"), rows=self.rows, title=self.title)

    @property
    def advice(self) -> list[str]:
        """``"item: advice"`` for every row that asks for something to be done."""
        return [f"{row.item}: {row.advice}" for row in self.rows if row.advice]

    def value(self, item: str) -> str | None:
        """The value of the first row named ``item`` (None when there is none)."""
        for row in self.rows:
            if row.item == item:
                return row.value
        return None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: ``{"title", "rows": [{item, value, advice}], "facts"}``."""
        return {
            "title": self.title,
            "rows": [row._asdict() for row in self.rows],
            "facts": self.facts,
        }

    def __str__(self) -> str:
        return self.table().text()

    def _repr_html_(self) -> str:
        return self.table().html()


def _failed(item: str, exc: BaseException) -> MachineRow:
    return MachineRow(
        item,
        f"probe failed: {type(exc).__name__}: {exc}",
        "please report this with the output of: python -m course_lib doctor",
    )


def _gib(n_bytes: float) -> str:
    return f"{n_bytes / 2**30:.1f} GiB"


def _dist_version(*names: str) -> str | None:
    for name in names:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


class _Run(NamedTuple):
    returncode: int | None
    stdout: str
    stderr: str
    timed_out: bool
    error: str | None  # could not start it at all


def _run(cmd: Sequence[str], timeout: float, env: dict[str, str] | None = None) -> _Run:
    """Run ``cmd`` with a timeout; on timeout kill its whole process group."""
    posix = os.name == "posix"
    kwargs: dict[str, Any] = {}
    if posix:
        kwargs["start_new_session"] = True
    else:  # pragma: no cover - Windows
        kwargs["creationflags"] = getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)
    try:
        proc = subprocess.Popen(
            list(cmd),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            env=env,
            **kwargs,
        )
    except OSError as exc:
        return _Run(None, "", "", False, f"{type(exc).__name__}: {exc}")
    try:
        out, err = proc.communicate(timeout=timeout)
        return _Run(proc.returncode, out, err, False, None)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        try:
            out, err = proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            out, err = "", ""
            for pipe in (proc.stdout, proc.stderr):
                if pipe is not None:
                    pipe.close()
            proc.wait(timeout=5)
        return _Run(proc.returncode, out or "", err or "", True, None)


def _kill_group(proc: subprocess.Popen[str]) -> None:
    """Kill ``proc`` and everything under it.

    Killing the process group is not enough for MPI: MPICH's launcher starts its
    proxy and every rank in sessions of their own, so :func:`course_lib.proc.kill_tree`
    follows parent links as well (and works where there is no ``os.killpg``).
    """
    from .proc import kill_tree

    try:
        kill_tree(proc, timeout=5)
    except Exception:  # noqa: BLE001 - psutil missing or refused: kill the child at least
        try:
            proc.kill()
        except OSError:
            pass


def _last_line(text: str, limit: int = 160) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return ""
    line = lines[-1]
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _child_env() -> dict[str, str]:
    """Environment for probe children: ``course_lib`` importable from where it is now."""
    env = dict(os.environ)
    here = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = here + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


# --------------------------------------------------------------------------- base rows


def _python_rows(facts: dict[str, Any]) -> list[MachineRow]:
    impl = platform.python_implementation()
    version = platform.python_version()
    build = "free-threaded build" if free_threaded_build() else "standard build"
    facts.update(python=version, implementation=impl, executable=sys.executable)
    return [
        MachineRow("Python", f"{impl} {version} ({build})"),
        MachineRow("interpreter", sys.executable),
    ]


def _os_rows(facts: dict[str, Any]) -> list[MachineRow]:
    text = f"{platform.system()} {platform.release()} ({platform.machine()})"
    facts["os"] = text
    return [MachineRow("OS", text)]


def _core_rows(facts: dict[str, Any]) -> list[MachineRow]:
    counts = _core_counts()
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


def _start_method_rows(facts: dict[str, Any]) -> list[MachineRow]:
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
    source = _start_method_source()
    facts.update(start_method=method, start_method_source=source)
    others = [m for m in multiprocessing.get_all_start_methods() if m != method]
    value = f"{method} ({source})"
    if others:
        value += f"; also available: {', '.join(others)}"
    return [MachineRow("start method", value)]


def _gil_rows(facts: dict[str, Any]) -> list[MachineRow]:
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


def _cgroup_memory_limit() -> int | None:
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


def _memory_rows(facts: dict[str, Any]) -> list[MachineRow]:
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
    limit = _cgroup_memory_limit()
    facts.update(memory_total=total, memory_available=available, memory_limit=limit)
    if total is None:
        return [MachineRow("memory", "unknown (install psutil)", "pip install psutil")]
    parts = []
    if available is not None:
        parts.append(f"{_gib(available)} available of {_gib(total)}")
    else:
        parts.append(f"{_gib(total)} total")
    if limit is not None and limit < total:
        parts.append(f"container limit {_gib(limit)}")
    smallest = min(x for x in (available, limit, total) if x is not None)
    advice = ""
    if smallest < 2**30:
        advice = "under 1 GiB to spare: shut down other kernels; use small problem sizes"
    return [MachineRow("memory", ", ".join(parts), advice)]


# --------------------------------------------------------------------------- MPI


def _mpiexec_folders(executable: str | None = None, prefix: str | None = None) -> list[Path]:
    """Where an environment's own MPI launcher may be: next to Python (the mpich wheel,
    ``Scripts`` on Windows), and ``Library\\bin`` (Intel MPI's impi-rt wheel on Windows)."""
    here = Path(executable or sys.executable).parent
    root = Path(prefix or sys.prefix)
    folders = [here, root / "Scripts", root / "bin", root / "Library" / "bin"]
    unique: list[Path] = []
    for folder in folders:
        if folder not in unique:
            unique.append(folder)
    return unique


def find_mpiexec(executable: str | None = None, prefix: str | None = None) -> str | None:
    """``mpiexec`` of this environment (see :func:`_mpiexec_folders`), else on PATH."""
    for folder in _mpiexec_folders(executable, prefix):
        for name in ("mpiexec", "mpiexec.exe", "mpirun"):
            candidate = folder / name
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return str(candidate)
    return shutil.which("mpiexec") or shutil.which("mpirun")


_MPI_LIBRARY_CODE = (
    "import mpi4py\n"
    "mpi4py.rc.initialize = False\n"
    "from mpi4py import MPI\n"
    "print(MPI.Get_library_version().strip().splitlines()[0])\n"
)

_MPI_RANKS_CODE = (
    "from mpi4py import MPI\n"
    "comm = MPI.COMM_WORLD\n"
    "ranks = comm.gather(comm.Get_rank(), root=0)\n"
    "if comm.Get_rank() == 0:\n"
    "    print('ranks=' + ','.join(map(str, sorted(ranks))), flush=True)\n"
)


def _mpi_rows(facts: dict[str, Any], n: int = 4) -> list[MachineRow]:
    rows: list[MachineRow] = []
    mpi: dict[str, Any] = {}
    facts["mpi"] = mpi
    version = _dist_version("mpi4py")
    mpi["mpi4py"] = version
    if version is None:
        rows.append(MachineRow("mpi4py", "not installed", _INSTALL_MPI))
    else:
        rows.append(MachineRow("mpi4py", version))
        # In a child: importing mpi4py.MPI here would initialise MPI in this kernel.
        result = _run([sys.executable, "-c", _MPI_LIBRARY_CODE], _CHILD_TIMEOUT)
        if result.returncode == 0 and result.stdout.strip():
            library = result.stdout.strip().splitlines()[0]
            library = re.sub(r"\s+", " ", library)
            mpi["library"] = library
            rows.append(MachineRow("MPI library", library))
        else:
            why = result.error or ("timed out" if result.timed_out else _last_line(result.stderr))
            mpi["library"] = None
            rows.append(
                MachineRow(
                    "MPI library",
                    f"not found: {why or 'mpi4py could not load an MPI library'}",
                    "pip install -e '.[mpi]' installs MPICH next to mpi4py",
                )
            )

    mpiexec = find_mpiexec()
    mpi["mpiexec"] = mpiexec
    mpi["mpiexec_works"] = False
    if mpiexec is None:
        rows.append(
            MachineRow(
                "mpiexec",
                "not found (not next to Python, not on PATH)",
                "pip install -e '.[mpi]' puts MPICH's mpiexec in the environment's bin folder",
            )
        )
        return rows
    if version is None:
        rows.append(MachineRow("mpiexec", f"{mpiexec} (not tried: no mpi4py)", _INSTALL_MPI))
        return rows

    result = _run([mpiexec, "-n", str(n), sys.executable, "-c", _MPI_RANKS_CODE], MPIEXEC_TIMEOUT)
    expected = "ranks=" + ",".join(str(i) for i in range(n))
    if result.timed_out:
        rows.append(
            MachineRow(
                f"mpiexec -n {n}",
                f"hung for {MPIEXEC_TIMEOUT:.0f} s and was stopped",
                "check that mpi4py and mpiexec come from the same MPI (pip install -e '.[mpi]')",
            )
        )
    elif result.error is not None:
        rows.append(MachineRow(f"mpiexec -n {n}", f"could not start: {result.error}", ""))
    elif result.returncode == 0 and expected in result.stdout:
        mpi["mpiexec_works"] = True
        rows.append(MachineRow(f"mpiexec -n {n}", f"works ({n} ranks) with {mpiexec}"))
    else:
        why = _last_line(result.stderr) or _last_line(result.stdout) or "no output"
        rows.append(
            MachineRow(
                f"mpiexec -n {n}",
                f"failed (exit {result.returncode}): {why}",
                "check that mpi4py and mpiexec come from the same MPI (pip install -e '.[mpi]')",
            )
        )
    return rows


# --------------------------------------------------------------------------- GPU


def _probe_gpu_here() -> dict[str, Any]:
    """Probe numba/CUDA, CuPy and PyOpenCL in *this* process (run in a child by the report)."""
    from .gpu.probe import machine_gpu_facts

    return machine_gpu_facts()


def _gpu_info() -> dict[str, Any]:
    from .gpu.probe import MACHINE_PROBE_CODE, parse_machine_facts

    result = _run([sys.executable, "-c", MACHINE_PROBE_CODE], _GPU_TIMEOUT, env=_child_env())
    parsed = parse_machine_facts(result.stdout)
    if parsed is not None:
        return parsed
    if result.timed_out:
        raise TimeoutError(f"the GPU probe took over {_GPU_TIMEOUT:.0f} s and was stopped")
    raise RuntimeError(
        result.error or _last_line(result.stderr) or f"GPU probe exited {result.returncode}"
    )


def _not_installed(missing: str | None) -> bool:
    return missing is not None and missing.startswith(("ModuleNotFoundError", "ImportError"))


def _gpu_rows(facts: dict[str, Any]) -> list[MachineRow]:
    info = _gpu_info()
    facts["gpu"] = info
    rows: list[MachineRow] = []

    if info["numba"] is None:
        rows.append(
            MachineRow(
                "numba", "not installed", f"{_INSTALL_GPU} (its CUDA simulator needs no GPU)"
            )
        )
    else:
        rows.append(MachineRow("numba", str(info["numba"])))

    cuda_label = "CUDA (numba-cuda)"
    suffix = f"numba-cuda {info['numba_cuda']}" if info["numba_cuda"] else "numba's built-in CUDA"
    if info["cuda_simulator"]:
        rows.append(MachineRow(cuda_label, f"simulator (NUMBA_ENABLE_CUDASIM=1), {suffix}"))
    elif info["cuda_available"]:
        count = len(info["cuda_devices"])
        rows.append(MachineRow(cuda_label, f"available: {count} GPU(s), {suffix}"))
    elif info["cuda_error"] is not None and _not_installed(info["cuda_error"]):
        rows.append(MachineRow(cuda_label, "not installed", _INSTALL_GPU))
    elif info["cuda_error"] is not None:
        rows.append(MachineRow(cuda_label, f"failed: {info['cuda_error']}", ""))
    else:
        rows.append(MachineRow(cuda_label, f"no CUDA GPU or driver ({suffix})"))

    for index, device in enumerate(info["cuda_devices"]):
        memory = _gib(device["memory"]) if device.get("memory") else "memory unknown"
        rows.append(
            MachineRow(
                f"GPU {index}",
                f"{device['name']}, {memory}, compute capability {device['compute_capability']}",
            )
        )

    if info["cupy"] is not None:
        devices = info["cupy_devices"]
        extra = f", {devices} device(s)" if devices else ", no usable CUDA device"
        rows.append(MachineRow("cupy", f"{info['cupy']}{extra}"))
    elif _not_installed(info["cupy_error"]):
        if info["cuda_devices"]:
            rows.append(MachineRow("cupy", "not installed", _INSTALL_GPU))
        else:
            rows.append(MachineRow("cupy", "not installed (only useful with an NVIDIA GPU)"))
    else:
        rows.append(MachineRow("cupy", f"import failed: {info['cupy_error']}", ""))

    if info["opencl"] is None:
        if _not_installed(info["opencl_error"]):
            rows.append(
                MachineRow("OpenCL", "pyopencl not installed", f"{_INSTALL_GPU} (adds PoCL)")
            )
        else:
            rows.append(MachineRow("OpenCL", f"import failed: {info['opencl_error']}", ""))
    elif info["opencl_devices"]:
        rows.append(MachineRow("OpenCL", "; ".join(info["opencl_devices"])))
    else:
        why = info["opencl_error"] or "no device"
        rows.append(
            MachineRow(
                "OpenCL", f"no OpenCL device ({why})", "pip install pocl-binary-distribution"
            )
        )

    if info["cuda_devices"]:
        first = info["cuda_devices"][0]["name"]
        rows.append(MachineRow("GPU for chapter 7", f"{first} (CUDA)"))
    else:
        rows.append(MachineRow("GPU for chapter 7", _NO_GPU))
    return rows


# --------------------------------------------------------------------------- broker


def _broker_rows(facts: dict[str, Any]) -> list[MachineRow]:
    broker: dict[str, Any] = {}
    facts["broker"] = broker
    rows: list[MachineRow] = []
    server = shutil.which("redis-server")
    broker["redis_server"] = server
    if server is None:
        rows.append(
            MachineRow(
                "redis-server",
                "not on PATH",
                "the Celery examples need it: apt install redis-server, brew install redis "
                "or conda install redis",
            )
        )
    else:
        result = _run([server, "--version"], 10.0)
        match = re.search(r"v=(\S+)", result.stdout)
        broker["redis_version"] = match.group(1) if match else None
        label = f"{server} (version {match.group(1)})" if match else server
        rows.append(MachineRow("redis-server", label))

    try:
        from course_lib.distributed import DistributedError, config, config_file

        try:
            settings = {k: v for k, v in config().items() if v}
            source = config_file()
            broker["cluster_settings"] = settings
            label = ("none: every engine starts on this machine" if not settings
                     else ", ".join(f"{k}={v}" for k, v in sorted(settings.items())))
            rows.append(MachineRow("cluster settings", label + (f" (file {source})" if source else "")))
        except DistributedError as exc:
            rows.append(MachineRow("cluster settings", "unreadable", str(exc)))
    except ImportError:
        pass

    try:
        celery: Any = importlib.import_module("celery")
        broker["celery"] = str(getattr(celery, "__version__", "?"))
        rows.append(MachineRow("celery", broker["celery"]))
    except Exception as exc:  # noqa: BLE001
        broker["celery"] = None
        if isinstance(exc, ImportError):
            rows.append(MachineRow("celery", "not installed", "pip install 'celery[redis]'"))
        else:
            rows.append(MachineRow("celery", f"import failed: {type(exc).__name__}: {exc}", ""))
    return rows


# --------------------------------------------------------------------------- show_machine

_Probe = Callable[[dict[str, Any]], list[MachineRow]]

_BASE_PROBES: tuple[tuple[str, _Probe], ...] = (
    ("Python", _python_rows),
    ("OS", _os_rows),
    ("usable cores", _core_rows),
    ("start method", _start_method_rows),
    ("GIL", _gil_rows),
    ("memory", _memory_rows),
)
_NEED_PROBES: dict[str, tuple[str, _Probe]] = {
    "mpi": ("MPI", _mpi_rows),
    "gpu": ("GPU", _gpu_rows),
    "broker": ("broker", _broker_rows),
}


def _safe(label: str, probe: _Probe, facts: dict[str, Any]) -> list[MachineRow]:
    try:
        return probe(facts)
    except Exception as exc:  # noqa: BLE001 - a probe never raises: it reports
        return [_failed(label, exc)]


def _normalise_needs(needs: Iterable[str] | str) -> list[str]:
    items = [needs] if isinstance(needs, str) else list(needs)
    result: list[str] = []
    for item in items:
        name = str(item).strip().lower()
        if name not in NEEDS:
            raise ValueError(f"unknown need {item!r}; choose from {', '.join(NEEDS)}")
        if name not in result:
            result.append(name)
    return result


def show_machine(needs: Iterable[str] = ()) -> MachineReport:
    """What this machine offers: Python, OS, cores, start method, GIL, memory.

    ``needs`` may name "mpi", "gpu" and "broker" to add those rows. The extra
    probes run concurrently in threads (each waits on a child process); none
    raises, and each child is stopped after a timeout.
    """
    wanted = _normalise_needs(needs)
    facts: dict[str, Any] = {"needs": wanted}
    rows: list[MachineRow] = []
    for label, probe in _BASE_PROBES:
        rows.extend(_safe(label, probe, facts))
    if wanted:
        # Each need writes its own key(s) of facts, so sharing the dict is safe.
        with ThreadPoolExecutor(max_workers=len(wanted), thread_name_prefix="probe") as pool:
            futures = [
                pool.submit(_safe, _NEED_PROBES[name][0], _NEED_PROBES[name][1], facts)
                for name in wanted
            ]
            for future in futures:
                rows.extend(future.result())
    return MachineReport(rows=rows, facts=facts)
