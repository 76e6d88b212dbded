"""Rows of the report about GPUs: numba's CUDA, CuPy and OpenCL, probed in a child process.

A CUDA context would stay in the calling process (a notebook kernel), so
:func:`course_lib.gpu.probe.machine_gpu_facts` runs in a short-lived child, stopped after a
timeout.
"""

from __future__ import annotations

import sys
from typing import Any

from ..proc import run_bounded
from .report import MachineRow, child_env, gib, last_line

__all__: list[str] = []

_GPU_TIMEOUT = 60.0

_INSTALL_GPU = "pip install -e '.[gpu]'"
_NO_GPU = "none: chapter 7 runs on the simulator / PoCL / NumPy"


def _gpu_info() -> dict[str, Any]:
    """The GPU facts of :func:`course_lib.gpu.probe.machine_gpu_facts`, gathered in a child."""
    from ..gpu.probe import MACHINE_PROBE_CODE, parse_machine_facts

    try:
        result = run_bounded([sys.executable, "-c", MACHINE_PROBE_CODE], _GPU_TIMEOUT,
                             env=child_env())
    except OSError as exc:
        raise RuntimeError(f"{type(exc).__name__}: {exc}") from exc
    parsed = parse_machine_facts(result.stdout)
    if parsed is not None:
        return parsed
    if result.timed_out:
        raise TimeoutError(f"the GPU probe took over {_GPU_TIMEOUT:.0f} s and was stopped")
    raise RuntimeError(last_line(result.stderr) or f"GPU probe exited {result.returncode}")


def _not_installed(missing: str | None) -> bool:
    return missing is not None and missing.startswith(("ModuleNotFoundError", "ImportError"))


def gpu_rows(facts: dict[str, Any]) -> list[MachineRow]:
    """numba, CUDA devices, CuPy, OpenCL, and which GPU chapter 7 will use."""
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
        memory = gib(device["memory"]) if device.get("memory") else "memory unknown"
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
