"""Chapter 7's backends: GPU or simulator, CuPy or NumPy, OpenCL, PyCUDA.

:func:`choose_backends` is called once per notebook, in its first code cell,
*before* anything imports ``numba.cuda``; the :class:`Backends` it returns says
what was picked and why. The last choice is kept here, the one place that holds
it: :func:`current_backends` reads it.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, NamedTuple

import numpy as np

from course_lib._render import Table
from course_lib.gpu.errors import BackendError
from course_lib.gpu.opencl import device_has_fp64, opencl_devices, opencl_install_hint
from course_lib.gpu.probe import GPUDevice, GPUProbe, detect_cuda_gpu, dist_version

__all__ = [
    "BACKEND_ENV",
    "SIMULATOR_ENV",
    "Backends",
    "choose_backends",
    "current_backends",
    "simulator_enabled",
]

SIMULATOR_ENV = "NUMBA_ENABLE_CUDASIM"
BACKEND_ENV = "COURSE_GPU"
_MODES = ("auto", "gpu", "simulator")
# Numba's warnings about tiny grids and host arrays would land on stderr: the chapter
# launches tiny grids on purpose, and measures copies itself (transfer_study).
_QUIET_NUMBA_ENV = ("NUMBA_CUDA_LOW_OCCUPANCY_WARNINGS", "NUMBA_CUDA_WARN_ON_IMPLICIT_COPY")

_SIMULATOR_BANNER = (
    "CUDA SIMULATOR: no GPU here, so CUDA kernels run in Numba's simulator, one Python "
    "thread per CUDA thread. Results are right; timings under the simulator mean nothing."
)


def has_cuda_bindings() -> bool:
    """True when NVIDIA's ``cuda-bindings`` (``cuda.bindings``) can be imported."""
    try:
        return importlib.util.find_spec("cuda.bindings") is not None
    except (ImportError, ValueError):
        return False


BINDING_ENV = "NUMBA_CUDA_USE_NVIDIA_BINDING"


def _simulator_without_bindings(notes: list[str]) -> None:
    """numba-cuda releases without a wheel of ``cuda-bindings`` (macOS) need this for the
    simulator, or it stops with "CUDA bindings not found"."""
    if not has_cuda_bindings() and BINDING_ENV not in os.environ:
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


_KERNEL_FIX = ("Install the CUDA 12 compiler parts with pip install -e '.[cuda]' "
               "(numba-cuda[cu12]: NVVM and libdevice), or update the NVIDIA driver")


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
    version = dist_version("numba-cuda") or dist_version("numba") or "?"
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



def _choose_opencl(rows: list[BackendRow], reasons: dict[str, str]) -> tuple[str | None, bool]:
    not_available = "OpenCL not available"
    try:
        devices = opencl_devices()
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
        reasons["pycuda"] = ("pycuda is not installed: pip install pycuda "
                             "(it needs the CUDA toolkit)")
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

    from course_lib.machine.cores import usable_cores

    cores = usable_cores()
    threads = "?"
    numba_version = dist_version("numba")
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

