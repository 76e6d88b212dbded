"""Chapter 7's backends and helpers: GPU or simulator, CuPy or NumPy, OpenCL, PyCUDA.

:func:`choose_backends` is called once per notebook, in its first code cell,
*before* anything imports ``numba.cuda``. It looks for an NVIDIA GPU (in a
short-lived child process, so that this process's CUDA state is untouched)
and picks:

- CUDA kernels: Numba CUDA on a real GPU, otherwise Numba's CUDA simulator
  (it sets ``NUMBA_ENABLE_CUDASIM=1`` before ``numba.cuda`` is imported);
- arrays: CuPy on a real GPU, otherwise NumPy, behind one name, ``xp``;
- OpenCL: PyOpenCL on whatever device exists (PoCL's CPU device without a GPU);
- PyCUDA: only where a CUDA driver and the package exist.

The :class:`Backends` result says what was picked and why (text, or a table in
Jupyter), with a banner when the simulator is in use: timings under the
simulator mean nothing. ``COURSE_GPU`` (``auto``, ``gpu``, ``simulator``)
overrides the choice.

The helpers check inputs before they reach a GPU, where a mistake is silent or
cryptic: :func:`launch_config` and :func:`check_launch` (launch configurations),
:func:`check_array` (dtypes, shapes), :func:`ensure_fits` and
:func:`memory_guard` (out of memory). Each error says what to change.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import importlib.util
import json
import math
import operator
import os
import shutil
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from types import ModuleType
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from ._render import Table, format_seconds
from .figures import new_axes

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = [
    "BACKEND_ENV",
    "SIMULATOR_ENV",
    "BackendError",
    "Backends",
    "GPUDevice",
    "GPUMemoryError",
    "GPUProbe",
    "KernelError",
    "LaunchConfig",
    "LaunchConfigError",
    "OpenCLSession",
    "TransferStudy",
    "array_module",
    "blocks_for",
    "check_array",
    "check_launch",
    "choose_backends",
    "current_backends",
    "detect_cuda_gpu",
    "ensure_fits",
    "expect_close",
    "grid_picture",
    "images_agree",
    "launch",
    "launch_config",
    "mandelbrot_numba",
    "mandelbrot_numpy",
    "mandelbrot_picture",
    "mandelbrot_plane",
    "memory_guard",
    "opencl_session",
    "reduction_picture",
    "simulator_enabled",
    "to_host",
    "transfer_study",
]

SIMULATOR_ENV = "NUMBA_ENABLE_CUDASIM"
BACKEND_ENV = "COURSE_GPU"
_MODES = ("auto", "gpu", "simulator")
# Numba's warnings about tiny grids and host arrays would land on stderr: the chapter
# launches tiny grids on purpose, and measures copies itself (transfer_study).
_QUIET_NUMBA_ENV = ("NUMBA_CUDA_LOW_OCCUPANCY_WARNINGS", "NUMBA_CUDA_WARN_ON_IMPLICIT_COPY")
_PROBE_TIMEOUT = 30.0
# The simulator runs each CUDA thread as a Python thread: about a millisecond each.
MAX_SIMULATED_THREADS = 20_000

_SIMULATOR_BANNER = (
    "CUDA SIMULATOR: no GPU here, so CUDA kernels run in Numba's simulator, one Python "
    "thread per CUDA thread. Results are right; timings under the simulator mean nothing."
)


class BackendError(RuntimeError):
    """A backend that was asked for is not available; the message says what to do."""


class LaunchConfigError(ValueError):
    """A kernel launch configuration that no GPU would accept; the message says what to change."""


class GPUMemoryError(MemoryError):
    """An allocation that does not fit; the message says how much was asked and what is free."""


class KernelError(RuntimeError):
    """A kernel failed while it ran; the message names the thread and the likely mistake."""


# --------------------------------------------------------------------------- device probe


@dataclass(frozen=True)
class GPUDevice:
    """One CUDA device, as the driver describes it."""

    index: int
    name: str
    compute_capability: tuple[int, int]
    total_memory: int
    """Bytes of device memory."""
    multiprocessors: int = 0
    warp_size: int = 32
    max_threads_per_block: int = 1024
    max_block_dim: tuple[int, int, int] = (1024, 1024, 64)
    max_grid_dim: tuple[int, int, int] = (2**31 - 1, 65535, 65535)
    shared_memory_per_block: int = 48 * 1024
    memory_clock_khz: int = 0
    memory_bus_bits: int = 0

    @property
    def peak_bandwidth(self) -> float | None:
        """Theoretical device-memory bandwidth in bytes/s (double data rate), None if unknown."""
        if self.memory_clock_khz <= 0 or self.memory_bus_bits <= 0:
            return None
        return 2.0 * self.memory_clock_khz * 1e3 * self.memory_bus_bits / 8.0

    def describe(self) -> str:
        """One line: name, memory, compute capability, SMs, peak bandwidth."""
        parts = [
            self.name,
            f"{self.total_memory / 2**30:.1f} GiB",
            f"compute capability {self.compute_capability[0]}.{self.compute_capability[1]}",
        ]
        if self.multiprocessors:
            parts.append(f"{self.multiprocessors} SMs")
        peak = self.peak_bandwidth
        if peak:
            parts.append(f"peak memory bandwidth {peak / 1e9:.0f} GB/s")
        return ", ".join(parts)


# Limits every CUDA device of the last decade shares; used when there is no device.
_DEFAULT_LIMITS = GPUDevice(index=-1, name="(limits of any CUDA device)",
                            compute_capability=(0, 0), total_memory=0)


@dataclass(frozen=True)
class GPUProbe:
    """What :func:`detect_cuda_gpu` found: devices, the driver version, or why none."""

    devices: tuple[GPUDevice, ...] = ()
    driver_version: int | None = None
    error: str | None = None
    kernel_checked: bool = False
    """True when a child process also compiled and ran a test kernel with Numba CUDA."""
    kernel_error: str | None = None
    """Why that test kernel failed (NVVM or libdevice missing, driver too old), or None."""

    @property
    def found(self) -> bool:
        return bool(self.devices)

    @property
    def driver(self) -> str:
        """``"12.4"`` style, or ``"none"``."""
        if self.driver_version is None:
            return "none"
        return f"{self.driver_version // 1000}.{self.driver_version % 1000 // 10}"


_PROBE_MARK = "COURSE_CUDA_PROBE "
# Self-contained (ctypes only) so that the child starts fast and never imports course_lib.
_PROBE_CODE = r"""
import ctypes, json, sys
out = {"devices": [], "driver_version": None, "error": None}
names = {"win32": ["nvcuda.dll"], "darwin": []}.get(sys.platform, ["libcuda.so.1", "libcuda.so"])
lib = None
for name in names:
    try:
        lib = ctypes.CDLL(name)
        break
    except OSError:
        continue
KNOWN = {100: "no CUDA-capable device is detected", 34: "the driver library is the toolkit's stub",
         35: "the driver is older than this CUDA version", 3: "the driver is not initialised",
         999: "unknown driver error"}
ATTRS = [("max_threads_per_block", 1), ("bx", 2), ("by", 3), ("bz", 4), ("gx", 5), ("gy", 6),
         ("gz", 7), ("shared_memory_per_block", 8), ("warp_size", 10), ("multiprocessors", 16),
         ("memory_clock_khz", 36), ("memory_bus_bits", 37), ("major", 75), ("minor", 76)]
def call(fn, *args):
    rc = getattr(lib, fn)(*args)
    if rc != 0:
        raise RuntimeError(f"{fn} returned CUDA error {rc} ({KNOWN.get(rc, 'see cuda.h')})")
if lib is None:
    out["error"] = "no CUDA driver library (libcuda) on this machine"
else:
    try:
        v = ctypes.c_int()
        try:
            call("cuDriverGetVersion", ctypes.byref(v))
            out["driver_version"] = v.value
        except Exception:
            pass
        call("cuInit", 0)
        count = ctypes.c_int()
        call("cuDeviceGetCount", ctypes.byref(count))
        if count.value == 0:
            out["error"] = "the CUDA driver sees no device"
        for i in range(count.value):
            dev = ctypes.c_int()
            call("cuDeviceGet", ctypes.byref(dev), i)
            buf = ctypes.create_string_buffer(256)
            call("cuDeviceGetName", buf, 256, dev)
            mem = ctypes.c_size_t()
            call("cuDeviceTotalMem_v2", ctypes.byref(mem), dev)
            attrs = {}
            for key, code in ATTRS:
                value = ctypes.c_int()
                try:
                    call("cuDeviceGetAttribute", ctypes.byref(value), code, dev)
                    attrs[key] = value.value
                except Exception:
                    attrs[key] = 0
            out["devices"].append({"index": i, "name": buf.value.decode(errors="replace"),
                                   "total_memory": mem.value, **attrs})
    except Exception as exc:
        out["error"] = str(exc)
print(MARK + json.dumps(out), flush=True)
""".replace("MARK", repr(_PROBE_MARK), 1)


def _device_from(raw: dict[str, Any]) -> GPUDevice:
    def pick(key: str, default: int) -> int:
        value = raw.get(key) or 0
        return int(value) if int(value) > 0 else default

    return GPUDevice(
        index=int(raw.get("index", 0)),
        name=str(raw.get("name", "unknown GPU")),
        compute_capability=(int(raw.get("major", 0)), int(raw.get("minor", 0))),
        total_memory=int(raw.get("total_memory", 0)),
        multiprocessors=pick("multiprocessors", 0),
        warp_size=pick("warp_size", 32),
        max_threads_per_block=pick("max_threads_per_block", 1024),
        max_block_dim=(pick("bx", 1024), pick("by", 1024), pick("bz", 64)),
        max_grid_dim=(pick("gx", 2**31 - 1), pick("gy", 65535), pick("gz", 65535)),
        shared_memory_per_block=pick("shared_memory_per_block", 48 * 1024),
        memory_clock_khz=pick("memory_clock_khz", 0),
        memory_bus_bits=pick("memory_bus_bits", 0),
    )


def parse_probe_output(stdout: str) -> GPUProbe:
    """The :class:`GPUProbe` in the probe child's output (its marked JSON line)."""
    for line in reversed(stdout.splitlines()):
        if line.startswith(_PROBE_MARK):
            raw = json.loads(line[len(_PROBE_MARK):])
            devices = tuple(_device_from(d) for d in raw.get("devices", []))
            return GPUProbe(devices, raw.get("driver_version"), raw.get("error"))
    return GPUProbe(error="the GPU probe printed no answer")


_SMOKE_MARK = "COURSE_CUDA_SMOKE "
# Compiles and runs one tiny kernel with Numba CUDA in GPU mode. A child does it, so that a
# failure (no NVVM, no libdevice, a driver too old for this numba-cuda) leaves the notebook
# free to import numba.cuda in simulator mode instead.
_SMOKE_CODE = r"""
import json, os
os.environ.pop("NUMBA_ENABLE_CUDASIM", None)
out = {"error": None}
try:
    import numpy as np
    from numba import cuda
    if not cuda.is_available():
        raise RuntimeError("numba.cuda.is_available() is False")
    @cuda.jit
    def smoke(a):
        a[0] = 1.0
    a = cuda.to_device(np.zeros(1, dtype=np.float32))
    smoke[1, 1](a)
    if float(a.copy_to_host()[0]) != 1.0:
        raise RuntimeError("a test kernel ran but did not write its result")
except BaseException as exc:
    out["error"] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
print(MARK + json.dumps(out), flush=True)
""".replace("MARK", repr(_SMOKE_MARK), 1)


def _smoke_test(timeout: float) -> str | None:
    """Compile and run a kernel with Numba CUDA in a child; None if it worked, else why not."""
    if importlib.util.find_spec("numba") is None:
        return "numba is not installed: pip install -e '.[gpu]'"
    try:
        run = subprocess.run([sys.executable, "-c", _SMOKE_CODE], capture_output=True, text=True,
                             timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return f"compiling a test kernel took over {timeout:g} s"
    except OSError as exc:
        return f"could not start the kernel test: {exc}"
    for line in reversed(run.stdout.splitlines()):
        if line.startswith(_SMOKE_MARK):
            error: str | None = json.loads(line[len(_SMOKE_MARK):])["error"]
            return error
    last = (run.stderr.strip().splitlines() or [f"exit code {run.returncode}"])[-1]
    return f"the kernel test crashed: {last}"


def detect_cuda_gpu(timeout: float = _PROBE_TIMEOUT, *, kernel: bool = True) -> GPUProbe:
    """Ask the CUDA driver for its devices, in a child process; never raises.

    A child keeps this process free of CUDA state (a CUDA context does not
    survive ``fork``) and cannot hang it: it is stopped after ``timeout`` s.
    When a device is found and ``kernel`` is true, a second child compiles and
    runs a tiny Numba CUDA kernel (``kernel_checked``/``kernel_error``), so that
    a GPU Numba cannot use is known before this process imports ``numba.cuda``.
    """
    try:
        run = subprocess.run([sys.executable, "-c", _PROBE_CODE], capture_output=True,
                             text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return GPUProbe(error=f"the GPU probe took over {timeout:g} s and was stopped")
    except OSError as exc:
        return GPUProbe(error=f"could not start the GPU probe: {exc}")
    probe = parse_probe_output(run.stdout)
    if probe.error == "the GPU probe printed no answer" and run.stderr.strip():
        return GPUProbe(error=f"the GPU probe failed: {run.stderr.strip().splitlines()[-1]}")
    if probe.found and kernel:
        probe = replace(probe, kernel_checked=True, kernel_error=_smoke_test(4 * timeout))
    return probe


def _has_cuda_bindings() -> bool:
    """True when NVIDIA's ``cuda-bindings`` (``cuda.bindings``) can be imported."""
    try:
        return importlib.util.find_spec("cuda.bindings") is not None
    except (ImportError, ValueError):
        return False


BINDING_ENV = "NUMBA_CUDA_USE_NVIDIA_BINDING"


def _simulator_without_bindings(notes: list[str]) -> None:
    """numba-cuda releases without a wheel of ``cuda-bindings`` (macOS) need this for the
    simulator, or it stops with "CUDA bindings not found"."""
    if not _has_cuda_bindings() and BINDING_ENV not in os.environ:
        os.environ[BINDING_ENV] = "0"
        notes.append(f"cuda-bindings is not installed (it has no wheel for this platform): "
                     f"{BINDING_ENV}=0 was set so that the simulator runs without it.")


# --------------------------------------------------------------------------- backends


class BackendRow(NamedTuple):
    """One line of the :class:`Backends` table."""

    what: str
    picked: str
    why: str


@dataclass(repr=False)
class Backends:
    """Result of :func:`choose_backends`: what each kind of cell will use, and why."""

    cuda: str
    """``"gpu"``, ``"simulator"`` or ``"unavailable"``."""
    arrays: str
    """``"cupy"`` or ``"numpy"``."""
    opencl: str | None
    """The OpenCL device picked (``"platform: device (type)"``), or None."""
    pycuda: bool
    probe: GPUProbe
    rows: list[BackendRow]
    xp: ModuleType
    """CuPy on a GPU, else NumPy: write ``xp.`` where you would write ``np.``."""
    cores: int = 1
    notes: list[str] = field(default_factory=list)
    reasons: dict[str, str] = field(default_factory=dict)
    """Why each feature is unavailable: keys ``gpu``, ``cupy``, ``opencl``, ``opencl_fp64``,
    ``pycuda``, ``cuda``."""
    opencl_fp64: bool = False
    """True when the OpenCL device computes in double precision (``cl_khr_fp64``)."""

    @property
    def simulator(self) -> bool:
        """True when CUDA kernels run in Numba's simulator."""
        return self.cuda == "simulator"

    @property
    def gpu(self) -> bool:
        """True when CUDA kernels run on a real GPU."""
        return self.cuda == "gpu"

    @property
    def device(self) -> GPUDevice | None:
        """The first GPU, or None."""
        return self.probe.devices[0] if self.probe.devices else None

    def available(self, feature: str) -> bool:
        """Whether ``feature`` can run here: ``gpu``, ``cuda`` (GPU or simulator), ``cupy``,
        ``opencl``, ``opencl_fp64`` (an OpenCL device with double precision) or ``pycuda``."""
        checks = {
            "gpu": self.gpu,
            "cuda": self.cuda in ("gpu", "simulator"),
            "cupy": self.arrays == "cupy",
            "opencl": self.opencl is not None,
            "opencl_fp64": self.opencl is not None and self.opencl_fp64,
            "pycuda": self.pycuda,
        }
        if feature not in checks:
            raise ValueError(f"unknown feature {feature!r}; choose from {', '.join(checks)}")
        return checks[feature]

    def require(self, feature: str, what: str = "this cell") -> bool:
        """True if ``feature`` is available; otherwise print why ``what`` is skipped, False.

        Use it as ``if backends.require("cupy", "ElementwiseKernel"): ...`` so that a
        cell explains itself and skips cleanly where the hardware is missing.
        """
        if self.available(feature):
            return True
        why = self.reasons.get(feature) or self.reasons.get("gpu") or "not available here"
        print(f"skipped {what}: needs {_FEATURE_NAMES[feature]}; {why}.")
        return False

    def table(self) -> Table:
        """What was picked for each kind of cell, and why (the banner is separate)."""
        return Table(headers=("for", "picked", "why"), rows=self.rows,
                     title="Chapter 7 backends (chosen once for this notebook)", notes=self.notes)

    @property
    def banner(self) -> str:
        """The warning shown above the table under the simulator ("" on a GPU)."""
        return _SIMULATOR_BANNER if self.simulator else ""

    def __str__(self) -> str:
        text = self.table().text()
        if self.simulator:
            line = "!" * 78
            text = f"{line}\n{_SIMULATOR_BANNER}\n{line}\n{text}"
        return text

    def __repr__(self) -> str:
        return self.__str__()

    def _repr_html_(self) -> str:
        banner = ""
        if self.simulator:
            banner = (
                "<div style='border:2px solid #a15c00;background:#fff4e0;padding:6px;"
                "margin-bottom:6px'><b>⚠ CUDA simulator.</b> No GPU here: CUDA kernels run in "
                "Numba's simulator, one Python thread per CUDA thread. The results are right; "
                "<b>timings under the simulator mean nothing</b>.</div>"
            )
        return banner + self.table().html()


_FEATURE_NAMES = {
    "gpu": "an NVIDIA GPU",
    "cuda": "Numba CUDA (a GPU or the simulator)",
    "cupy": "CuPy on an NVIDIA GPU",
    "opencl": "PyOpenCL with a device",
    "opencl_fp64": "an OpenCL device with double precision (cl_khr_fp64)",
    "pycuda": "PyCUDA on an NVIDIA GPU",
}

_CURRENT: Backends | None = None


def current_backends() -> Backends | None:
    """The :class:`Backends` the last :func:`choose_backends` call picked (None before)."""
    return _CURRENT


def simulator_enabled() -> bool:
    """True when ``numba.cuda`` is (or, once imported, will be) Numba's simulator."""
    module = sys.modules.get("numba.cuda")
    if module is not None:
        return _imported_cuda_is_simulator(module)
    return os.environ.get(SIMULATOR_ENV, "").strip() not in ("", "0")


def _imported_cuda_is_simulator(module: ModuleType) -> bool:
    config = sys.modules.get("numba.cuda.core.config")
    if config is not None and hasattr(config, "ENABLE_CUDASIM"):
        return bool(config.ENABLE_CUDASIM)
    return "numba.cuda.simulator" in sys.modules


def _quiet_numba_warnings() -> None:
    for name in _QUIET_NUMBA_ENV:
        os.environ.setdefault(name, "0")
    config = sys.modules.get("numba.cuda.core.config")
    if config is not None:
        for attr, env in (("CUDA_LOW_OCCUPANCY_WARNINGS", _QUIET_NUMBA_ENV[0]),
                          ("CUDA_WARN_ON_IMPLICIT_COPY", _QUIET_NUMBA_ENV[1])):
            if hasattr(config, attr):
                setattr(config, attr, int(os.environ.get(env, "0") or 0))


def _dist_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


_KERNEL_FIX = ("Install the CUDA 12 compiler parts with pip install -e '.[cuda]' (numba-cuda[cu12]: "
               "NVVM and libdevice), or update the NVIDIA driver")


def _smoke_kernel(out: Any) -> None:
    out[0] = 1.0


def _choose_cuda(mode: str, probe: GPUProbe, rows: list[BackendRow],
                 reasons: dict[str, str], notes: list[str]) -> str:
    sim_env = os.environ.get(SIMULATOR_ENV, "").strip()
    already = sys.modules.get("numba.cuda")
    no_gpu = probe.error or "no CUDA device found"
    if mode == "gpu" and not probe.found:
        raise BackendError(
            f"{BACKEND_ENV}=gpu asks for a real GPU, but none was found ({no_gpu}). "
            f"Unset {BACKEND_ENV} (or set it to 'auto') to use the CUDA simulator."
        )
    if mode == "gpu" and probe.kernel_error:
        raise BackendError(
            f"{BACKEND_ENV}=gpu asks for the GPU ({probe.devices[0].name}), but Numba could "
            f"not run a test kernel on it: {probe.kernel_error}. {_KERNEL_FIX}"
        )
    if already is not None:
        simulated = _imported_cuda_is_simulator(already)
        if simulated:
            why = "numba.cuda was already imported in simulator mode"
            if probe.found:
                why += "; restart the kernel and call choose_backends() first to use the GPU"
            rows.append(BackendRow("CUDA kernels", "Numba CUDA simulator", why))
            return "simulator"
        if probe.found:
            rows.append(BackendRow("CUDA kernels", f"Numba CUDA on {probe.devices[0].name}",
                                   "numba.cuda was already imported, on the GPU"))
            return "gpu"
        reasons["cuda"] = (f"numba.cuda was imported before choose_backends() without the "
                           f"simulator, and there is no GPU ({no_gpu}): restart the kernel and "
                           "run choose_backends() before anything imports numba.cuda")
        rows.append(BackendRow("CUDA kernels", "unavailable", reasons["cuda"]))
        return "unavailable"

    if importlib.util.find_spec("numba") is None:
        reasons["cuda"] = "numba is not installed: pip install -e '.[gpu]'"
        rows.append(BackendRow("CUDA kernels", "unavailable", reasons["cuda"]))
        return "unavailable"

    if mode == "simulator" or sim_env not in ("", "0"):
        source = f"{BACKEND_ENV}=simulator" if mode == "simulator" else f"{SIMULATOR_ENV}={sim_env}"
        why = f"{source} asks for the simulator"
        if probe.found:
            why += f" (a GPU is present: {probe.devices[0].name})"
        os.environ[SIMULATOR_ENV] = "1"
        picked = "simulator"
    elif probe.found and probe.kernel_error:
        os.environ[SIMULATOR_ENV] = "1"
        reasons["gpu"] = (f"a GPU is here ({probe.devices[0].name}), but Numba could not run a "
                          f"test kernel on it ({probe.kernel_error}). {_KERNEL_FIX}")
        why = reasons["gpu"] + f"; so {SIMULATOR_ENV}=1 was set: the simulator instead"
        notes.append("The GPU is not used: " + reasons["gpu"])
        picked = "simulator"
    elif probe.found:
        why = f"found {probe.devices[0].describe()}; driver {probe.driver}"
        if probe.kernel_checked:
            why += "; a test kernel compiled and ran"
        picked = "gpu"
    elif sim_env == "0":
        reasons["cuda"] = (f"{SIMULATOR_ENV}=0 forbids the simulator and there is no GPU "
                           f"({no_gpu}): unset {SIMULATOR_ENV}")
        rows.append(BackendRow("CUDA kernels", "unavailable", reasons["cuda"]))
        return "unavailable"
    else:
        os.environ[SIMULATOR_ENV] = "1"
        why = f"no GPU ({no_gpu}); {SIMULATOR_ENV}=1 was set before importing numba.cuda"
        picked = "simulator"

    if picked == "simulator":
        _simulator_without_bindings(notes)
    _quiet_numba_warnings()
    try:
        cuda: Any = importlib.import_module("numba.cuda")
        _quiet_numba_warnings()
        if picked == "gpu":
            if not cuda.is_available():
                raise BackendError("numba.cuda.is_available() is False")
            # Compile and run one tiny kernel: a missing NVVM or a driver too old for this
            # numba-cuda shows up here, with its message, rather than in a later cell.
            out = cuda.to_device(np.zeros(1, dtype=np.float32))
            cuda.jit(_smoke_kernel)[1, 1](out)
            if float(out.copy_to_host()[0]) != 1.0:
                raise BackendError("a test kernel ran but did not write its result")
    except Exception as exc:  # noqa: BLE001 - reported, never raised
        reasons["cuda"] = (f"numba.cuda failed: {type(exc).__name__}: {exc} (check that "
                           "numba-cuda matches the CUDA driver: pip install 'numba-cuda[cu12]')")
        rows.append(BackendRow("CUDA kernels", "unavailable", reasons["cuda"]))
        return "unavailable"
    version = _dist_version("numba-cuda") or _dist_version("numba") or "?"
    if picked == "gpu":
        rows.append(BackendRow("CUDA kernels", f"Numba CUDA {version} on the GPU", why))
        notes.append("Numba's low-occupancy and implicit-copy warnings are off: the chapter "
                     "launches tiny grids on purpose and measures copies itself.")
    else:
        rows.append(BackendRow("CUDA kernels", f"Numba CUDA simulator ({version})", why))
    return picked


def _choose_arrays(cuda: str, probe: GPUProbe, rows: list[BackendRow],
                   reasons: dict[str, str]) -> tuple[str, ModuleType]:
    if not probe.found:
        reasons["cupy"] = f"there is no GPU here ({probe.error or 'no CUDA device'})"
        rows.append(BackendRow("arrays (xp)", f"NumPy {np.__version__}",
                               "no GPU, so CuPy cannot run; the same xp code runs on NumPy"))
        return "numpy", np
    if cuda == "simulator":
        reasons["cupy"] = ("Numba could not use the GPU, so the chapter runs on the simulator and "
                           "arrays stay on the CPU" if probe.kernel_error else
                           "the simulator was asked for, so arrays stay on the CPU")
        rows.append(BackendRow("arrays (xp)", f"NumPy {np.__version__}", reasons["cupy"]))
        return "numpy", np
    try:
        cupy: Any = importlib.import_module("cupy")
        count = int(cupy.cuda.runtime.getDeviceCount())
        if count < 1:
            raise RuntimeError("CuPy sees no device")
        # The first compiled kernel is where a broken install fails (e.g. NVRTC missing).
        int((cupy.arange(4) * 2).sum().item())
    except ImportError:
        reasons["cupy"] = "CuPy is not installed: pip install -e '.[cuda]' (cupy-cuda12x)"
        rows.append(BackendRow("arrays (xp)", f"NumPy {np.__version__}", reasons["cupy"]))
        return "numpy", np
    except Exception as exc:  # noqa: BLE001
        reasons["cupy"] = f"CuPy failed on this GPU: {type(exc).__name__}: {exc}"
        rows.append(BackendRow("arrays (xp)", f"NumPy {np.__version__}", reasons["cupy"]))
        return "numpy", np
    module: ModuleType = cupy
    rows.append(BackendRow("arrays (xp)", f"CuPy {cupy.__version__}",
                           f"GPU present and CuPy works on {probe.devices[0].name}"))
    return "cupy", module


def _opencl_devices() -> list[tuple[Any, Any, str]]:
    """(platform, device, label) for every OpenCL device, GPUs first."""
    cl: Any = importlib.import_module("pyopencl")
    found: list[tuple[Any, Any, str]] = []
    for platform in cl.get_platforms():
        try:
            devices = platform.get_devices()
        except Exception:  # noqa: BLE001 - a platform without devices
            continue
        for device in devices:
            kind = ("GPU" if device.type & cl.device_type.GPU else
                    "CPU" if device.type & cl.device_type.CPU else "accelerator")
            label = f"{platform.name.strip()}: {device.name.strip()} ({kind})"
            found.append((platform, device, label))
    found.sort(key=lambda item: 0 if item[1].type & cl.device_type.GPU else 1)
    return found


def opencl_install_hint(platform: str | None = None, machine: str | None = None) -> str:
    """What to install for an OpenCL device on this platform (PoCL's wheel is Linux x86_64 only)."""
    import platform as _platform

    system = platform or sys.platform
    arch = (machine or _platform.machine()).lower()
    if system.startswith("linux") and arch in ("x86_64", "amd64"):
        return "pip install pocl-binary-distribution (a CPU device; make lab installs it)"
    if system.startswith("linux"):
        return ("install PoCL from your distribution (sudo apt install pocl-opencl-icd) or "
                "conda (conda install -c conda-forge pocl), or your GPU vendor's OpenCL driver")
    if system == "darwin":
        return ("macOS ships OpenCL, so a device should be listed: if none is, "
                "conda install -c conda-forge pocl adds a CPU device")
    if system == "win32":
        return ("install your GPU vendor's driver (Intel, AMD and NVIDIA drivers include "
                "OpenCL), or conda install -c conda-forge pocl for a CPU device")
    return "install an OpenCL driver (PoCL gives a CPU device)"


def device_has_fp64(device: Any) -> bool:
    """True when an OpenCL device computes in double precision (``cl_khr_fp64``).

    Apple GPUs and many Intel GPUs have no double precision: a kernel that uses
    ``double`` does not build there.
    """
    try:
        if "cl_khr_fp64" in str(device.extensions).split():
            return True
    except Exception:  # noqa: BLE001 - a driver that cannot say
        pass
    try:
        return bool(device.double_fp_config)
    except Exception:  # noqa: BLE001
        return False


def _choose_opencl(rows: list[BackendRow], reasons: dict[str, str]) -> tuple[str | None, bool]:
    not_available = "OpenCL not available"
    try:
        devices = _opencl_devices()
    except ImportError:
        reasons["opencl"] = f"{not_available}: pyopencl is not installed: pip install pyopencl"
        rows.append(BackendRow("OpenCL", "unavailable", reasons["opencl"]))
        return None, False
    except Exception as exc:  # noqa: BLE001
        reasons["opencl"] = (f"{not_available}: no OpenCL platform ({type(exc).__name__}: {exc}); "
                             + opencl_install_hint())
        rows.append(BackendRow("OpenCL", "unavailable", reasons["opencl"]))
        return None, False
    if not devices:
        reasons["opencl"] = f"{not_available}: no OpenCL device; " + opencl_install_hint()
        rows.append(BackendRow("OpenCL", "unavailable", reasons["opencl"]))
        return None, False
    label = devices[0][2]
    why = "a GPU device comes first" if "GPU" in label else "the only kind of device here"
    fp64 = device_has_fp64(devices[0][1])
    if fp64:
        why += "; double precision (cl_khr_fp64) available"
    else:
        reasons["opencl_fp64"] = (f"{label} has no double precision (cl_khr_fp64), as Apple GPUs "
                                  "and many Intel GPUs; kernels with double cannot build there "
                                  "(set PYOPENCL_CTX to pick another device, or use float32)")
        why += "; NO double precision (cl_khr_fp64): float64 kernels are skipped"
    rows.append(BackendRow("OpenCL", f"PyOpenCL on {label}", why))
    return label, fp64


def _choose_pycuda(cuda: str, probe: GPUProbe, rows: list[BackendRow],
                   reasons: dict[str, str]) -> bool:
    if not probe.found:
        reasons["pycuda"] = "there is no CUDA driver and GPU here; its cells explain and skip"
    elif cuda == "simulator":
        reasons["pycuda"] = "the simulator was asked for; PyCUDA has none"
    elif importlib.util.find_spec("pycuda") is None:
        reasons["pycuda"] = "pycuda is not installed: pip install pycuda (it needs the CUDA toolkit)"
    elif shutil.which("nvcc") is None:
        reasons["pycuda"] = ("PyCUDA's SourceModule compiles with nvcc, which is not on PATH: "
                             "install the CUDA toolkit or add its bin folder to PATH")
    else:
        rows.append(BackendRow("PyCUDA", "available", f"pycuda installed, {probe.devices[0].name}"))
        return True
    rows.append(BackendRow("PyCUDA", "skipped", reasons["pycuda"]))
    return False


def choose_backends(
    *,
    mode: str | None = None,
    probe: Callable[[], GPUProbe] | None = None,
    opencl: bool = True,
) -> Backends:
    """Pick the chapter's backends once, at the top of a notebook, and say why.

    Call it before anything imports ``numba.cuda``: without a GPU it sets
    ``NUMBA_ENABLE_CUDASIM=1`` first, so the CUDA cells run in the simulator.
    ``mode`` (default ``$COURSE_GPU`` or ``"auto"``) may be ``"gpu"`` (fail
    unless a GPU is found) or ``"simulator"``. ``probe`` replaces the GPU probe
    (tests); ``opencl=False`` skips looking for OpenCL devices.
    """
    global _CURRENT
    chosen = (mode or os.environ.get(BACKEND_ENV, "") or "auto").strip().lower()
    if chosen not in _MODES:
        raise ValueError(f"{BACKEND_ENV}={chosen!r} is not a mode; use one of {', '.join(_MODES)}")
    found = (probe or detect_cuda_gpu)()
    rows: list[BackendRow] = []
    reasons: dict[str, str] = {}
    notes: list[str] = []
    if not found.found:
        reasons["gpu"] = f"this machine has no usable NVIDIA GPU ({found.error or 'none found'})"
    for device in found.devices:
        rows.append(BackendRow(f"GPU {device.index}", device.describe(), f"driver {found.driver}"))

    cuda = _choose_cuda(chosen, found, rows, reasons, notes)
    if cuda != "gpu" and "gpu" not in reasons:
        reasons["gpu"] = reasons.get("cuda", "the simulator was asked for")
    arrays, xp = _choose_arrays(cuda, found, rows, reasons)
    opencl_label, opencl_fp64 = _choose_opencl(rows, reasons) if opencl else (None, False)
    if not opencl:
        reasons["opencl"] = "not looked for (opencl=False)"
    if opencl_label is None:
        reasons.setdefault("opencl_fp64", reasons["opencl"])
    has_pycuda = _choose_pycuda(cuda, found, rows, reasons)

    from .machine import usable_cores

    cores = usable_cores()
    threads = "?"
    numba_version = _dist_version("numba")
    if numba_version is not None:
        numba: Any = importlib.import_module("numba")
        threads = str(numba.get_num_threads())
        rows.append(BackendRow("Numba on the CPU", f"numba {numba_version}, {threads} threads",
                               f"{cores} usable core(s); NUMBA_NUM_THREADS sets the number"))
    backends = Backends(cuda=cuda, arrays=arrays, opencl=opencl_label, pycuda=has_pycuda,
                        probe=found, rows=rows, xp=xp, cores=cores, notes=notes, reasons=reasons,
                        opencl_fp64=opencl_fp64)
    _CURRENT = backends
    return backends


# --------------------------------------------------------------------------- launches


class LaunchConfig(NamedTuple):
    """Blocks per grid and threads per block; ``kernel[config](...)`` launches with it."""

    blocks: tuple[int, ...]
    threads: tuple[int, ...]

    @property
    def total_threads(self) -> int:
        return math.prod(self.blocks) * math.prod(self.threads)


def _limits() -> GPUDevice:
    current = _CURRENT
    if current is not None and current.gpu and current.device is not None:
        return current.device
    return _DEFAULT_LIMITS


def _as_count(value: object, name: str, minimum: int) -> int:
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
    count = _as_count(n, "n", 0)
    per_block = _as_count(threads_per_block, "threads_per_block", 1)
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
        dims = [_as_count(shape, "n", 0)]
    else:
        dims = [_as_count(s, "shape entry", 0) for s in shape]
        if len(dims) not in (1, 2):
            raise LaunchConfigError(f"shape must be n or (rows, cols), got {tuple(shape)}")
    if isinstance(threads_per_block, int | np.integer):
        threads = [_as_count(threads_per_block, "threads_per_block", 1)]
    else:
        threads = [_as_count(t, "threads_per_block entry", 1) for t in threads_per_block]
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
    b = [_as_count(v, "blocks", 0) for v in b]
    t = [_as_count(v, "threads per block", 0) for v in t]
    if 0 in b:
        raise LaunchConfigError(
            f"blocks={tuple(b)} launches no block at all: is the array empty? skip the launch "
            "when n == 0, and otherwise round the block count up with blocks_for(n, threads)"
        )
    if 0 in t:
        raise LaunchConfigError(f"threads={tuple(t)}: every block dimension needs at least 1 thread")
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


# --------------------------------------------------------------------------- inputs


def _dtype_name(dtype: Any) -> str:
    return str(np.dtype(dtype))


def check_array(array: object, *, dtype: Any = None, ndim: int | None = None,
                shape: Sequence[int] | None = None, name: str = "array",
                contiguous: bool = False) -> None:
    """Raise ``TypeError``/``ValueError`` unless ``array`` is what a kernel expects.

    A kernel compiled for ``float32`` that is handed ``float64`` data reads
    garbage (OpenCL, PyCUDA) or is silently recompiled (Numba): check first.
    """
    if not hasattr(array, "dtype") or not hasattr(array, "shape"):
        dt = f", dtype=np.{_dtype_name(dtype)}" if dtype is not None else ""
        raise TypeError(
            f"{name} is a {type(array).__name__}, not an array: convert it first, e.g. "
            f"np.asarray({name}{dt})"
        )
    actual_dtype: Any = array.dtype
    if dtype is not None and np.dtype(actual_dtype) != np.dtype(dtype):
        raise TypeError(
            f"{name} has dtype {_dtype_name(actual_dtype)}, but the kernel expects "
            f"{_dtype_name(dtype)}: pass {name}.astype(np.{_dtype_name(dtype)}) (a kernel "
            "reads raw bytes, so the wrong dtype gives wrong numbers, not an error)"
        )
    actual_shape = tuple(int(s) for s in array.shape)
    if ndim is not None and len(actual_shape) != ndim:
        raise ValueError(f"{name} has {len(actual_shape)} dimension(s) {actual_shape}, "
                         f"the kernel expects {ndim}")
    if shape is not None and actual_shape != tuple(shape):
        raise ValueError(f"{name} has shape {actual_shape}, the kernel expects {tuple(shape)}")
    if contiguous:
        flags: Any = getattr(array, "flags", None)
        c_contiguous = bool(flags["C_CONTIGUOUS"]) if flags is not None else True
        if not c_contiguous:
            raise ValueError(f"{name} is not C-contiguous (a slice or a transpose?): pass "
                             f"np.ascontiguousarray({name})")


def _free_memory(where: str) -> tuple[int, str]:
    if where == "device":
        current = _CURRENT
        if current is not None and current.gpu:
            cuda: Any = importlib.import_module("numba.cuda")
            free, _total = cuda.current_context().get_memory_info()
            name = current.device.name if current.device else "the GPU"
            return int(free), f"{name} has"
    import psutil

    return int(psutil.virtual_memory().available), "this machine's memory has"


def ensure_fits(shape: int | Sequence[int], dtype: Any = np.float32, *, where: str = "device",
                copies: int = 1, fraction: float = 0.9) -> int:
    """Raise :class:`GPUMemoryError` unless ``copies`` arrays of ``shape``/``dtype`` fit.

    ``where="device"`` compares with the GPU's free memory (the host's memory
    under the simulator), ``"host"`` with this machine's. Returns the bytes asked.
    """
    if where not in ("device", "host"):
        raise ValueError(f"where must be 'device' or 'host', got {where!r}")
    dims = [shape] if isinstance(shape, int | np.integer) else list(shape)
    for d in dims:
        if int(d) < 0:
            raise ValueError(f"shape {tuple(dims)} has a negative size")
    need = int(math.prod(int(d) for d in dims) * np.dtype(dtype).itemsize * copies)
    free, owner = _free_memory(where)
    if need > fraction * free:
        raise GPUMemoryError(
            f"{copies} array(s) of shape {tuple(int(d) for d in dims)} and dtype "
            f"{_dtype_name(dtype)} need {_bytes(need)}, but {owner} {_bytes(free)} free: use a "
            "smaller size, a smaller dtype (float32, not float64), or process the data in "
            "chunks; free arrays you no longer need (del them; with CuPy also "
            "cupy.get_default_memory_pool().free_all_blocks())"
        )
    return need


def _bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


@contextlib.contextmanager
def memory_guard(what: str = "the allocation") -> Iterator[None]:
    """Turn out-of-memory errors (NumPy, CuPy, Numba CUDA) into a :class:`GPUMemoryError`."""
    try:
        yield
    except GPUMemoryError:
        raise
    except Exception as exc:
        text = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, MemoryError) or "OUT_OF_MEMORY" in text.upper() \
                or "OutOfMemory" in type(exc).__name__:
            raise GPUMemoryError(
                f"{what} ran out of memory ({text.splitlines()[0][:200]}): use a smaller size "
                "or process the data in chunks, and free arrays you no longer need (del them; "
                "with CuPy also cupy.get_default_memory_pool().free_all_blocks())"
            ) from exc
        raise


# --------------------------------------------------------------------------- arrays


def array_module(*arrays: object) -> ModuleType:
    """CuPy if any argument is a CuPy array, else NumPy (like ``cupy.get_array_module``).

    Write ``xp = array_module(a)`` at the top of a function and ``xp.`` instead
    of ``np.``: the same code then runs on the CPU and on the GPU. Other array
    types that declare their module the Array API way (``__array_namespace__``)
    get that module: the graders use one to check ``xp`` code without a GPU.
    """
    for array in arrays:
        if isinstance(array, (np.ndarray, np.generic)) or type(array).__module__.startswith("cupy"):
            continue
        namespace = getattr(array, "__array_namespace__", None)
        if callable(namespace):
            found: ModuleType = namespace()
            return found
    cupy: Any = sys.modules.get("cupy")
    if cupy is not None:
        try:
            module: ModuleType = cupy.get_array_module(*arrays)
            return module
        except Exception:  # noqa: BLE001 - a CuPy that cannot run: NumPy
            return np
    return np


def to_host(array: Any) -> np.ndarray[Any, Any]:
    """A NumPy array with the data of ``array`` (CuPy, Numba device array, list, NumPy)."""
    if hasattr(array, "get") and type(array).__module__.startswith("cupy"):
        return np.asarray(array.get())
    if hasattr(array, "copy_to_host"):
        return np.asarray(array.copy_to_host())
    return np.asarray(array)


def expect_close(actual: Any, expected: Any, what: str = "", *, rtol: float = 1e-5,
                 atol: float = 1e-6, hint: str = "") -> None:
    """AssertionError, with where and how the arrays differ, unless they are close.

    For test cells: floats on a GPU differ from NumPy's in the last bits (fused
    multiply-adds, another summation order), so compare with a tolerance.
    """
    label = what or "result"
    try:
        got = to_host(actual)
    except Exception as exc:  # noqa: BLE001
        raise AssertionError(f"{label}: could not read the result as an array ({exc})") from None
    want = to_host(expected)
    if got.shape != want.shape:
        raise AssertionError(_join(f"{label}: shape {got.shape}, expected {want.shape}", hint))
    if got.size == 0:
        return
    with np.errstate(all="ignore"):
        ok = np.isclose(got, want, rtol=rtol, atol=atol, equal_nan=True)
    if bool(ok.all()):
        return
    bad = np.argwhere(~ok)
    first = tuple(int(i) for i in bad[0])
    where = first[0] if len(first) == 1 else first
    detail = (f"{label}: {len(bad)} of {got.size} values differ; first at index {where}: got "
              f"{got[first]!r}, expected {want[first]!r}")
    if got.ndim == 1 and len(bad) > 1:
        detail += f" (indices {int(bad[0][0])} to {int(bad[-1][0])})"
    raise AssertionError(_join(detail, hint))


def _join(message: str, hint: str) -> str:
    return f"{message}. {hint}" if hint else message


# --------------------------------------------------------------------------- Mandelbrot


def mandelbrot_plane(width: int, height: int, *, x: tuple[float, float] = (-2.2, 0.8),
                     y: tuple[float, float] = (-1.2, 1.2)) -> tuple[np.ndarray[Any, Any],
                                                                    np.ndarray[Any, Any]]:
    """``(re, im)``: ``width`` real parts and ``height`` imaginary parts (float64)."""
    w = _as_count(width, "width", 1)
    h = _as_count(height, "height", 1)
    return np.linspace(x[0], x[1], w), np.linspace(y[0], y[1], h)


def mandelbrot_numpy(re: Any, im: Any, max_iter: int) -> np.ndarray[Any, Any]:
    """Escape times, shape ``(len(im), len(re))``, dtype int32: the reference answer.

    For ``c = re[j] + 1j * im[i]``: iterate ``z = z*z + c`` from 0; the count is
    the first ``n`` at which ``|z|**2 > 4`` (checked before each step), or
    ``max_iter``. Only points still inside are updated, so nothing overflows.
    """
    limit = _as_count(max_iter, "max_iter", 0)
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
                                      _as_count(max_iter, "max_iter", 0))
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


# --------------------------------------------------------------------------- OpenCL


class OpenCLSession:
    """An OpenCL context and command queue on one device; use it in a ``with`` block.

    ``session.context``, ``session.queue``, ``session.device``, ``session.cl``
    (the pyopencl module); :meth:`build` compiles OpenCL C and explains errors.
    Leaving the block waits for queued work and drops the context.
    """

    def __init__(self, prefer_gpu: bool = True) -> None:
        try:
            self.cl: Any = importlib.import_module("pyopencl")
        except ImportError:
            raise BackendError("OpenCL not available: pyopencl is not installed: "
                               "pip install pyopencl") from None
        devices = _opencl_devices()
        if not devices:
            raise BackendError("OpenCL not available: no OpenCL device; " + opencl_install_hint())
        if not prefer_gpu:
            devices.sort(key=lambda item: 0 if "GPU" not in item[2] else 1)
        _platform, self.device, self.label = devices[0]
        self.context: Any = None
        self.queue: Any = None
        self.build_messages: list[str] = []

    def __enter__(self) -> OpenCLSession:
        self.context = self.cl.Context([self.device])
        self.queue = self.cl.CommandQueue(self.context)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.queue is not None:
            self.queue.finish()
        self.queue = None
        self.context = None

    def _require_open(self) -> None:
        if self.context is None:
            raise RuntimeError("the OpenCL session is closed: use it inside 'with opencl_session() "
                               "as session:'")

    def build(self, source: str) -> Any:
        """Compile OpenCL C ``source`` for this device; a failure shows the compiler's log."""
        self._require_open()
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                program = self.cl.Program(self.context, source).build()
        except self.cl.RuntimeError as exc:
            raise ValueError(f"the OpenCL C source did not compile:\n{exc}") from None
        # Compiler chatter (PyOpenCL's CompilerWarning) is kept here, off stderr.
        self.build_messages.extend(str(w.message) for w in caught)
        return program

    def to_device(self, array: Any) -> Any:
        """A read-write buffer holding a copy of ``array`` (contiguous)."""
        self._require_open()
        host = np.ascontiguousarray(array)
        flags = self.cl.mem_flags
        return self.cl.Buffer(self.context, flags.READ_WRITE | flags.COPY_HOST_PTR, hostbuf=host)

    def __repr__(self) -> str:
        state = "open" if self.context is not None else "closed"
        return f"OpenCLSession({self.label!r}, {state})"


def opencl_session(prefer_gpu: bool = True) -> OpenCLSession:
    """An :class:`OpenCLSession` on the first GPU (or, without one, the first device)."""
    return OpenCLSession(prefer_gpu=prefer_gpu)


# --------------------------------------------------------------------------- transfers

# Typical figures, used only to draw the model where no GPU can be measured.
_MODEL_LINK = 25e9        # bytes/s: PCIe 4.0 x16, in practice
_MODEL_LINK_LATENCY = 10e-6
_MODEL_DEVICE = 1.5e12    # bytes/s: device memory of a recent data-centre GPU
_MODEL_DEVICE_LATENCY = 5e-6


@dataclass(repr=False)
class TransferStudy:
    """Seconds to copy host→device, device→device and device→host, per size in bytes."""

    sizes: list[int]
    host_to_device: list[float]
    on_device: list[float]
    device_to_host: list[float]
    measured: bool
    device: str

    def table(self) -> Table:
        rows = []
        for i, size in enumerate(self.sizes):
            rows.append([_bytes(size), format_seconds(self.host_to_device[i]),
                         format_seconds(self.on_device[i]), format_seconds(self.device_to_host[i]),
                         f"{self.host_to_device[i] / max(self.on_device[i], 1e-12):.0f}x"])
        title = (f"copies measured on {self.device}" if self.measured else
                 "copies MODELLED (no GPU here): PCIe 4.0 x16 ~25 GB/s, device memory ~1.5 TB/s")
        return Table(headers=("size", "host → device", "on the device", "device → host",
                              "host→device / on-device"), rows=rows, title=title)

    def __str__(self) -> str:
        return self.table().text()

    def __repr__(self) -> str:
        return self.table().text()

    def _repr_html_(self) -> str:
        return self.table().html()

    def plot(self, ax: Axes | None = None) -> Axes:
        """Log-log lines of copy time against size, one per direction."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(6.4, 4.0), layout="constrained")
        mib = [s / 2**20 for s in self.sizes]
        ax.loglog(mib, [t * 1e3 for t in self.host_to_device], "o-", label="host → device")
        ax.loglog(mib, [t * 1e3 for t in self.device_to_host], "s--", label="device → host")
        ax.loglog(mib, [t * 1e3 for t in self.on_device], "^:", label="copy on the device")
        ax.set_xlabel("size (MiB)")
        ax.set_ylabel("time (ms)")
        source = f"measured on {self.device}" if self.measured else "a model, not measured"
        ax.set_title(f"Crossing to the GPU costs far more than copying on it\n({source})")
        ax.legend()
        ax.grid(True, which="both", alpha=0.3)
        return ax


def transfer_study(sizes: Sequence[int] | None = None, *, repeat: int = 5) -> TransferStudy:
    """Time copies with Numba CUDA on a real GPU; elsewhere, draw them from a model.

    Call :func:`choose_backends` first. ``sizes`` are in bytes (default 64 KiB
    to 64 MiB). The simulator's copies are NumPy copies, so they are not timed.
    """
    chosen = list(sizes) if sizes is not None else [2**16, 2**19, 2**22, 2**26]
    for size in chosen:
        _as_count(size, "size in bytes", 1)
    current = _CURRENT
    if current is None or not current.gpu:
        return TransferStudy(
            sizes=chosen,
            host_to_device=[_MODEL_LINK_LATENCY + s / _MODEL_LINK for s in chosen],
            on_device=[_MODEL_DEVICE_LATENCY + 2 * s / _MODEL_DEVICE for s in chosen],
            device_to_host=[_MODEL_LINK_LATENCY + s / _MODEL_LINK for s in chosen],
            measured=False, device="a model")
    cuda: Any = importlib.import_module("numba.cuda")
    h2d: list[float] = []
    d2d: list[float] = []
    d2h: list[float] = []
    for size in chosen:
        host = np.ones(size // 4, dtype=np.float32)
        device = cuda.to_device(host)
        other = cuda.device_array_like(device)
        samples: list[list[float]] = [[], [], []]
        for _ in range(repeat):
            cuda.synchronize()
            start = time.perf_counter()
            cuda.to_device(host, to=device)
            cuda.synchronize()
            middle = time.perf_counter()
            other.copy_to_device(device)
            cuda.synchronize()
            late = time.perf_counter()
            other.copy_to_host(host)
            end = time.perf_counter()
            samples[0].append(middle - start)
            samples[1].append(late - middle)
            samples[2].append(end - late)
        h2d.append(float(np.median(samples[0])))
        d2d.append(float(np.median(samples[1])))
        d2h.append(float(np.median(samples[2])))
        del device, other
    name = current.device.name if current.device else "the GPU"
    return TransferStudy(chosen, h2d, d2d, d2h, measured=True, device=name)


# --------------------------------------------------------------------------- pictures


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

    size = _as_count(n, "n", 2)
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
    """The escape-time image: points that never escaped are brightest; a colour bar names the steps."""
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
