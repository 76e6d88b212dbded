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

The work is split by job: :mod:`~course_lib.gpu.probe` (the devices),
:mod:`~course_lib.gpu.backends` (the choice, kept in one place),
:mod:`~course_lib.gpu.launch` (launch configurations), :mod:`~course_lib.gpu.arrays`
(inputs and results), :mod:`~course_lib.gpu.mandelbrot`, :mod:`~course_lib.gpu.opencl`,
:mod:`~course_lib.gpu.transfers` and :mod:`~course_lib.gpu.pictures`; this package
only re-exports them.
"""

from __future__ import annotations

from course_lib.gpu.arrays import (
    array_module,
    check_array,
    ensure_fits,
    expect_close,
    memory_guard,
    to_host,
)
from course_lib.gpu.backends import (
    BACKEND_ENV,
    SIMULATOR_ENV,
    Backends,
    choose_backends,
    current_backends,
    simulator_enabled,
)
from course_lib.gpu.backends import BINDING_ENV as BINDING_ENV
from course_lib.gpu.backends import BackendRow as BackendRow
from course_lib.gpu.errors import BackendError, GPUMemoryError, KernelError, LaunchConfigError
from course_lib.gpu.launch import MAX_SIMULATED_THREADS as MAX_SIMULATED_THREADS
from course_lib.gpu.launch import (
    LaunchConfig,
    blocks_for,
    check_launch,
    launch,
    launch_config,
)
from course_lib.gpu.mandelbrot import (
    images_agree,
    mandelbrot_numba,
    mandelbrot_numpy,
    mandelbrot_plane,
)
from course_lib.gpu.opencl import OpenCLSession, opencl_session
from course_lib.gpu.opencl import device_has_fp64 as device_has_fp64
from course_lib.gpu.opencl import opencl_install_hint as opencl_install_hint
from course_lib.gpu.pictures import grid_picture, mandelbrot_picture, reduction_picture
from course_lib.gpu.probe import GPUDevice, GPUProbe, detect_cuda_gpu
from course_lib.gpu.probe import parse_probe_output as parse_probe_output
from course_lib.gpu.transfers import TransferStudy, transfer_study

# The ``name as name`` imports above are importable here as before, but not in __all__:
# BINDING_ENV, BackendRow, MAX_SIMULATED_THREADS, device_has_fp64, opencl_install_hint,
# parse_probe_output.

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
