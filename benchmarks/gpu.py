"""Chapter 7's figures: Numba on the CPU (always), CuPy and Numba CUDA (where a GPU is present).

The GPU figures never run under Numba's CUDA simulator: its timings mean nothing.
They raise ``Skip`` when ``NUMBA_ENABLE_CUDASIM`` is set, when ``numba.cuda`` was
already imported as the simulator, or when the driver reports no GPU.
"""

from __future__ import annotations

import importlib
import os
import statistics
import sys
from collections.abc import Callable
from functools import cache
from typing import Any

import numpy as np

try:  # numba is optional: without it the CPU figures are skipped, and this module still imports
    from numba import prange
except ImportError:  # pragma: no cover - numba is part of the [gpu] extra
    prange = range  # type: ignore[misc]

from course_lib.gpu import (
    SIMULATOR_ENV,
    GPUDevice,
    detect_cuda_gpu,
    images_agree,
    mandelbrot_numba,
    mandelbrot_numpy,
    mandelbrot_plane,
    opencl_session,
    simulator_enabled,
)
from course_lib.machine.cores import usable_cores
from course_lib.timing import compare

from . import Result, Skip, figure

_CORES = usable_cores()
PRANGE_GOAL = round(0.85 * _CORES, 2)

LOOP_GRID = (48, 32, 60)            # width, height, max_iter of the pure-Python loop
PRANGE_ITEMS, PRANGE_STEPS = 4_000, 10_000
OPENCL_GRID = (480, 360, 80)
SAXPY_N = 2**26                     # float32 elements: 256 MiB per array, 768 MiB in all
MATMUL_N = 1024
MATMUL_TILE = 16
GPU_GRID = (1600, 1200, 200)


# --------------------------------------------------------------------------- CPU


def _escape_grid(re: Any, im: Any, max_iter: int) -> Any:
    """Escape times over a grid, as plain loops (compiled below with Numba, or not)."""
    out = np.empty((im.size, re.size), dtype=np.int32)
    for i in range(im.size):
        for j in range(re.size):
            x = 0.0
            y = 0.0
            n = 0
            while n < max_iter and x * x + y * y <= 4.0:
                x, y = x * x - y * y + re[j], 2.0 * x * y + im[i]
                n += 1
            out[i, j] = n
    return out


def _uniform_work(values: Any, steps: int) -> Any:
    """The same amount of work for every element (so that threads share it evenly)."""
    out = np.empty_like(values)
    for i in prange(values.size):
        v = values[i]
        for _ in range(steps):
            v = v * v * 0.5 + 0.25
        out[i] = v
    return out


@cache
def _compiled(name: str) -> Callable[..., Any]:
    numba: Any = importlib.import_module("numba")
    if name == "escape":
        compiled: Callable[..., Any] = numba.njit(_escape_grid)
    elif name == "serial":
        compiled = numba.njit(_uniform_work)
    else:
        compiled = numba.njit(parallel=True)(_uniform_work)
    return compiled


def _require_numba() -> None:
    try:
        import numba  # noqa: F401
    except ImportError:
        raise Skip("numba is not installed: pip install -e '.[gpu]'") from None


@figure("numba_njit_vs_python", ">= 100",
        f"escape-time loop over a {LOOP_GRID[0]} x {LOOP_GRID[1]} grid: pure Python / @njit")
def numba_njit_vs_python() -> Result:
    _require_numba()
    width, height, max_iter = LOOP_GRID
    re, im = mandelbrot_plane(width, height)
    jitted = _compiled("escape")
    comparison = compare({"Python": lambda: _escape_grid(re, im, max_iter),
                          "@njit": lambda: jitted(re, im, max_iter)},
                         baseline="Python", repeat=5, warmup=1, min_time=0.02)
    python, njit = comparison["Python"].timing, comparison["@njit"].timing
    return Result(comparison["@njit"].speedup, "x",
                  f"Python {python.median * 1e3:.1f} ms, @njit {njit.median * 1e6:.0f} µs per grid")


@figure("numba_prange_speedup", f">= {PRANGE_GOAL}",
        f"uniform loop of {PRANGE_ITEMS} x {PRANGE_STEPS} steps: @njit / @njit(parallel=True) "
        f"with prange (goal 0.85 x {_CORES} usable cores)")
def numba_prange_speedup() -> Result:
    _require_numba()
    numba: Any = importlib.import_module("numba")
    values = np.random.default_rng(7).random(PRANGE_ITEMS)
    serial, parallel = _compiled("serial"), _compiled("parallel")
    comparison = compare({"serial": lambda: serial(values, PRANGE_STEPS),
                          "prange": lambda: parallel(values, PRANGE_STEPS)},
                         baseline="serial", repeat=7, warmup=1, min_time=0.05)
    row = comparison["prange"]
    return Result(row.speedup, "x",
                  f"{numba.get_num_threads()} threads ({numba.threading_layer()} layer) on "
                  f"{_CORES} usable cores; CPU/wall {row.timing.cpu_per_wall:.2f}")


@figure("opencl_pocl_vs_numpy", "informational",
        f"Mandelbrot {OPENCL_GRID[0]} x {OPENCL_GRID[1]}: NumPy time / OpenCL time "
        "(first OpenCL device, PoCL's CPU device without a GPU)")
def opencl_pocl_vs_numpy() -> Result:
    try:
        session = opencl_session()
    except Exception as exc:  # noqa: BLE001 - no pyopencl or no device: report why
        raise Skip(f"no OpenCL device: {exc}") from None
    width, height, max_iter = OPENCL_GRID
    re, im = mandelbrot_plane(width, height)
    with session:
        cl = session.cl
        kernel = session.build(_MANDELBROT_CL).mandelbrot
        flags = cl.mem_flags
        re_buf = cl.Buffer(session.context, flags.READ_ONLY | flags.COPY_HOST_PTR, hostbuf=re)
        im_buf = cl.Buffer(session.context, flags.READ_ONLY | flags.COPY_HOST_PTR, hostbuf=im)

        def opencl() -> Any:
            out = np.empty((height, width), dtype=np.int32)
            out_buf = cl.Buffer(session.context, flags.WRITE_ONLY, out.nbytes)
            kernel(session.queue, (width, height), None, re_buf, im_buf, np.int32(width),
                   np.int32(height), np.int32(max_iter), out_buf)
            cl.enqueue_copy(session.queue, out, out_buf)
            return out

        comparison = compare({"NumPy": lambda: mandelbrot_numpy(re, im, max_iter),
                              "OpenCL": opencl},
                             baseline="NumPy", equal=images_agree, repeat=5, min_time=0.05)
    return Result(comparison["OpenCL"].speedup, "x", f"OpenCL device: {session.label}")


_MANDELBROT_CL = """
#pragma OPENCL EXTENSION cl_khr_fp64 : enable
#pragma OPENCL FP_CONTRACT OFF
__kernel void mandelbrot(__global const double *re, __global const double *im,
                         const int width, const int height, const int max_iter,
                         __global int *out)
{
    int col = get_global_id(0);
    int row = get_global_id(1);
    if (col >= width || row >= height)
        return;
    double c_re = re[col], c_im = im[row], x = 0.0, y = 0.0;
    int n = 0;
    while (n < max_iter && x * x + y * y <= 4.0) {
        double x_next = x * x - y * y + c_re;
        y = 2.0 * x * y + c_im;
        x = x_next;
        n++;
    }
    out[row * width + col] = n;
}
"""


# --------------------------------------------------------------------------- GPU


@cache
def _probe() -> Any:
    return detect_cuda_gpu()


def _require_gpu() -> GPUDevice:
    """The first GPU, or Skip: never the simulator, never without a device."""
    if os.environ.get(SIMULATOR_ENV, "").strip() not in ("", "0"):
        raise Skip(f"{SIMULATOR_ENV} is set, so CUDA would be simulated and its timings mean "
                   f"nothing: unset {SIMULATOR_ENV} to measure a real GPU")
    if "numba.cuda" in sys.modules and simulator_enabled():
        raise Skip("numba.cuda was imported as the CUDA simulator in this process")
    probe = _probe()
    if not probe.found:
        raise Skip(f"no CUDA GPU: {probe.error or 'the driver reports no device'}")
    device: GPUDevice = probe.devices[0]
    return device


def _cuda() -> Any:
    os.environ.setdefault("NUMBA_CUDA_LOW_OCCUPANCY_WARNINGS", "0")
    os.environ.setdefault("NUMBA_CUDA_WARN_ON_IMPLICIT_COPY", "0")
    try:
        cuda: Any = importlib.import_module("numba.cuda")
    except ImportError:
        raise Skip("numba-cuda is not installed: pip install -e '.[gpu]'") from None
    if not cuda.is_available():
        raise Skip("numba.cuda cannot use the GPU (is numba-cuda built for this CUDA version?)")
    return cuda


@figure("cupy_saxpy_bandwidth_fraction", ">= 0.8",
        f"CuPy ElementwiseKernel SAXPY on {SAXPY_N:,} float32 values: achieved / peak "
        "device-memory bandwidth (12 bytes per element)")
def cupy_saxpy_bandwidth_fraction() -> Result:
    device = _require_gpu()
    peak = device.peak_bandwidth
    if peak is None:
        raise Skip(f"the driver does not report {device.name}'s memory clock and bus width")
    try:
        cp: Any = importlib.import_module("cupy")
    except ImportError:
        raise Skip("CuPy is not installed: pip install -e '.[cuda]'") from None
    n = SAXPY_N
    while n * 12 > device.total_memory // 2:
        n //= 2
    saxpy = cp.ElementwiseKernel("float32 a, float32 x, float32 y", "float32 out",
                                 "out = a * x + y", "bench_saxpy")
    x = cp.ones(n, dtype=cp.float32)
    y = cp.ones(n, dtype=cp.float32)
    out = cp.empty_like(x)
    a = cp.float32(2.0)
    start, end = cp.cuda.Event(), cp.cuda.Event()
    for _ in range(3):
        saxpy(a, x, y, out)
    cp.cuda.Device().synchronize()
    seconds = []
    for _ in range(20):
        start.record()
        saxpy(a, x, y, out)
        end.record()
        end.synchronize()
        seconds.append(cp.cuda.get_elapsed_time(start, end) / 1e3)
    if not bool(cp.all(out == 3.0)):
        raise RuntimeError("the SAXPY kernel computed a wrong result")
    achieved = 12 * n / statistics.median(seconds)
    del x, y, out
    cp.get_default_memory_pool().free_all_blocks()
    return Result(achieved / peak, "of peak",
                  f"{achieved / 1e9:.0f} GB/s of {peak / 1e9:.0f} GB/s on {device.name}")


@cache
def _matmul_kernels() -> tuple[Any, Any, Any]:
    cuda: Any = importlib.import_module("numba.cuda")
    float32: Any = importlib.import_module("numba").float32

    tile = MATMUL_TILE

    @cuda.jit  # type: ignore[untyped-decorator]
    def naive(A: Any, B: Any, C: Any) -> None:
        # The Numba documentation's first version: x runs along rows (uncoalesced reads).
        row, col = cuda.grid(2)
        if row < C.shape[0] and col < C.shape[1]:
            total = float32(0.0)
            for k in range(A.shape[1]):
                total += A[row, k] * B[k, col]
            C[row, col] = total

    @cuda.jit  # type: ignore[untyped-decorator]
    def naive_coalesced(A: Any, B: Any, C: Any) -> None:
        col, row = cuda.grid(2)
        if row < C.shape[0] and col < C.shape[1]:
            total = float32(0.0)
            for k in range(A.shape[1]):
                total += A[row, k] * B[k, col]
            C[row, col] = total

    @cuda.jit  # type: ignore[untyped-decorator]
    def tiled(A: Any, B: Any, C: Any) -> None:
        sA = cuda.shared.array((tile, tile), dtype=float32)
        sB = cuda.shared.array((tile, tile), dtype=float32)
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        col, row = cuda.grid(2)
        acc = float32(0.0)
        for t in range((A.shape[1] + tile - 1) // tile):
            k = t * tile + tx
            sA[ty, tx] = A[row, k] if row < A.shape[0] and k < A.shape[1] else float32(0.0)
            k = t * tile + ty
            sB[ty, tx] = B[k, col] if k < B.shape[0] and col < B.shape[1] else float32(0.0)
            cuda.syncthreads()
            for j in range(tile):
                acc += sA[ty, j] * sB[j, tx]
            cuda.syncthreads()
        if row < C.shape[0] and col < C.shape[1]:
            C[row, col] = acc

    return naive, naive_coalesced, tiled


def _time_kernel(cuda: Any, launch: Callable[[], None], repeat: int = 10) -> float:
    launch()
    cuda.synchronize()
    start, end = cuda.event(), cuda.event()
    samples = []
    for _ in range(repeat):
        start.record()
        launch()
        end.record()
        end.synchronize()
        samples.append(cuda.event_elapsed_time(start, end) / 1e3)
    return float(statistics.median(samples))


@figure("numba_cuda_tiled_vs_naive_matmul", ">= 3",
        f"{MATMUL_N} x {MATMUL_N} float32 matrix product with Numba CUDA: naive kernel time "
        f"(Numba docs' version, thread x along rows) / shared-memory {MATMUL_TILE} x "
        f"{MATMUL_TILE} tiled kernel time")
def numba_cuda_tiled_vs_naive_matmul() -> Result:
    device = _require_gpu()
    cuda = _cuda()
    naive, naive_coalesced, tiled = _matmul_kernels()
    n, t = MATMUL_N, MATMUL_TILE
    rng = np.random.default_rng(7)
    a = rng.random((n, n), dtype=np.float32)
    b = rng.random((n, n), dtype=np.float32)
    d_a, d_b = cuda.to_device(a), cuda.to_device(b)
    results = {}
    timings = {}
    blocks = ((n + t - 1) // t, (n + t - 1) // t)
    for name, kernel in (("naive", naive), ("coalesced", naive_coalesced), ("tiled", tiled)):
        d_c = cuda.device_array((n, n), dtype=np.float32)

        def run(kernel: Any = kernel, d_c: Any = d_c) -> None:
            kernel[blocks, (t, t)](d_a, d_b, d_c)

        timings[name] = _time_kernel(cuda, run)
        results[name] = d_c.copy_to_host()
    expected = a @ b
    for name, c in results.items():
        if not np.allclose(c, expected, rtol=1e-3, atol=1e-2):
            raise RuntimeError(f"the {name} matmul kernel computed a wrong result")
    flops = 2.0 * n**3
    return Result(timings["naive"] / timings["tiled"], "x",
                  f"tiled {flops / timings['tiled'] / 1e12:.2f} TFLOP/s on {device.name}; "
                  f"tiled vs a coalesced naive kernel: "
                  f"{timings['coalesced'] / timings['tiled']:.2f}x")


@cache
def _mandelbrot_kernel() -> Any:
    cuda: Any = importlib.import_module("numba.cuda")

    @cuda.jit  # type: ignore[untyped-decorator]
    def mandelbrot(re: Any, im: Any, max_iter: int, out: Any) -> None:
        col, row = cuda.grid(2)
        if row < out.shape[0] and col < out.shape[1]:
            c_re = re[col]
            c_im = im[row]
            x = 0.0
            y = 0.0
            n = 0
            while n < max_iter and x * x + y * y <= 4.0:
                x, y = x * x - y * y + c_re, 2.0 * x * y + c_im
                n += 1
            out[row, col] = n

    return mandelbrot


@figure("gpu_vs_numpy_speedup", "informational",
        f"the chapter's shared problem, Mandelbrot {GPU_GRID[0]} x {GPU_GRID[1]} "
        f"(max_iter {GPU_GRID[2]}): NumPy time / Numba CUDA time, copy of the image back "
        "included")
def gpu_vs_numpy_speedup() -> Result:
    device = _require_gpu()
    cuda = _cuda()
    kernel = _mandelbrot_kernel()
    width, height, max_iter = GPU_GRID
    re, im = mandelbrot_plane(width, height)
    d_re, d_im = cuda.to_device(re), cuda.to_device(im)
    blocks = ((width + 15) // 16, (height + 15) // 16)

    def on_gpu() -> Any:
        out = cuda.device_array((height, width), dtype=np.int32)
        kernel[blocks, (16, 16)](d_re, d_im, max_iter, out)
        return out.copy_to_host()

    comparison = compare({"NumPy": lambda: mandelbrot_numpy(re, im, max_iter),
                          "Numba @njit": lambda: mandelbrot_numba(re, im, max_iter),
                          "Numba CUDA": on_gpu},
                         baseline="NumPy", equal=images_agree, repeat=3, min_time=0.05)
    row = comparison["Numba CUDA"]
    return Result(row.speedup, "x",
                  f"NumPy {comparison['NumPy'].timing.median:.3f} s, @njit "
                  f"{comparison['Numba @njit'].timing.median:.3f} s, CUDA "
                  f"{row.timing.median * 1e3:.2f} ms on {device.name}")
