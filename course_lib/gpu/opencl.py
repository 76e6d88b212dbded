"""OpenCL for chapter 7: the devices, what to install, and a session (context and queue)."""

from __future__ import annotations

import importlib
import sys
import warnings
from typing import Any

import numpy as np

from course_lib.gpu.errors import BackendError

__all__ = ["OpenCLSession", "opencl_session"]


def opencl_devices() -> list[tuple[Any, Any, str]]:
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
        devices = opencl_devices()
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

