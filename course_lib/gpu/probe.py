"""The GPU probe: which CUDA devices the driver sees, asked in a child process.

:func:`detect_cuda_gpu` asks the CUDA driver (through ``ctypes``, in a short-lived
child, so that this process's CUDA state is untouched) and, when a device is
found, compiles and runs a tiny Numba CUDA kernel in a second child.
:func:`machine_gpu_facts` adds what numba, CuPy and PyOpenCL say, as the plain
dict that ``course_lib.machine``'s report shows (it runs it in a child through
:data:`MACHINE_PROBE_CODE`).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import json
import os
import subprocess
import sys
from dataclasses import dataclass, replace
from typing import Any

from course_lib.gpu.opencl import opencl_devices

__all__ = ["GPUDevice", "GPUProbe", "detect_cuda_gpu"]

PROBE_TIMEOUT = 30.0
"""Seconds the driver probe child may take."""


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
DEFAULT_LIMITS = GPUDevice(index=-1, name="(limits of any CUDA device)",
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
    text = str(exc).strip()
    out["error"] = f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"
print(MARK + json.dumps(out), flush=True)
""".replace("MARK", repr(_SMOKE_MARK), 1)


def smoke_test(timeout: float) -> str | None:
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


def detect_cuda_gpu(timeout: float = PROBE_TIMEOUT, *, kernel: bool = True) -> GPUProbe:
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
        probe = replace(probe, kernel_checked=True, kernel_error=smoke_test(4 * timeout))
    return probe


# --------------------------------------------------------------------------- machine report

MACHINE_PROBE_MARK = "COURSE_GPU_PROBE "
MACHINE_PROBE_CODE = (
    "import json\n"
    "from course_lib.gpu.probe import machine_gpu_facts\n"
    f"print({MACHINE_PROBE_MARK!r} + json.dumps(machine_gpu_facts()), flush=True)\n"
)
"""``python -c`` code printing :func:`machine_gpu_facts`; :func:`parse_machine_facts` reads it."""


def dist_version(name: str) -> str | None:
    """The installed version of the distribution ``name``, or None."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def machine_gpu_facts(timeout: float = PROBE_TIMEOUT) -> dict[str, Any]:
    """What numba/CUDA, CuPy and PyOpenCL offer, probed in *this* process; never raises.

    It imports ``numba.cuda``, so ``course_lib.machine`` runs it in a child
    (:data:`MACHINE_PROBE_CODE`). The CUDA devices are the driver's, from
    :func:`detect_cuda_gpu` (no kernel test), listed when Numba can use a GPU
    (not under the simulator). Keys: ``numba``, ``numba_cuda``, ``cuda_simulator``,
    ``cuda_available``, ``cuda_error``, ``cuda_devices`` (``name``,
    ``compute_capability`` as ``"9.0"``, ``memory`` in bytes), ``cuda_driver``,
    ``cupy``, ``cupy_error``, ``cupy_devices``, ``opencl``, ``opencl_error``,
    ``opencl_devices`` (labels, GPUs first).
    """
    info: dict[str, Any] = {
        "numba": dist_version("numba"),
        "numba_cuda": dist_version("numba-cuda"),
        "cuda_simulator": os.environ.get("NUMBA_ENABLE_CUDASIM", "") not in ("", "0"),
        "cuda_available": None,
        "cuda_error": None,
        "cuda_devices": [],
        "cuda_driver": None,
        "cupy": None,
        "cupy_error": None,
        "cupy_devices": None,
        "opencl": None,
        "opencl_error": None,
        "opencl_devices": [],
    }
    try:
        cuda: Any = importlib.import_module("numba.cuda")
        info["cuda_available"] = bool(cuda.is_available())
    except Exception as exc:  # noqa: BLE001
        info["cuda_error"] = _error_text(exc)
    if info["cuda_available"] and not info["cuda_simulator"]:
        found = detect_cuda_gpu(timeout, kernel=False)
        info["cuda_driver"] = found.driver
        info["cuda_devices"] = [
            {"name": device.name,
             "compute_capability": "{}.{}".format(*device.compute_capability),
             "memory": device.total_memory or None}
            for device in found.devices
        ]
    try:
        cupy: Any = importlib.import_module("cupy")
        info["cupy"] = str(cupy.__version__)
        try:
            info["cupy_devices"] = int(cupy.cuda.runtime.getDeviceCount())
        except Exception as exc:  # noqa: BLE001
            info["cupy_devices"] = 0
            info["cupy_error"] = _error_text(exc)
    except Exception as exc:  # noqa: BLE001
        info["cupy_error"] = _error_text(exc)
    try:
        cl: Any = importlib.import_module("pyopencl")
        info["opencl"] = str(cl.VERSION_TEXT)
        try:
            info["opencl_devices"] = [label for _platform, _device, label in opencl_devices()]
        except Exception as exc:  # noqa: BLE001
            info["opencl_error"] = _error_text(exc)
    except Exception as exc:  # noqa: BLE001
        info["opencl_error"] = _error_text(exc)
    return info


def parse_machine_facts(stdout: str) -> dict[str, Any] | None:
    """The facts dict in the output of :data:`MACHINE_PROBE_CODE`, or None if it printed none."""
    for line in reversed(stdout.splitlines()):
        if line.startswith(MACHINE_PROBE_MARK):
            parsed: dict[str, Any] = json.loads(line[len(MACHINE_PROBE_MARK):])
            return parsed
    return None
