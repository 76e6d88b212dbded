"""graders.checks.gpu: each evidence check passes on the reference and fails on the lazy answer.

The simulator checks need NUMBA_ENABLE_CUDASIM before numba.cuda is imported,
which cannot be undone in a process, so they run in one short child process
that reports every scenario as JSON; the rest run here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from typing import Any

import numpy as np
import pytest

from course_lib import gpu
from course_lib.gpu import array_module
from graders.checks import (
    assert_numba_compiled,
    assert_numba_gufunc,
    assert_prange_reduction,
    assert_stays_on_device,
    device_like,
    is_device_like,
    recording_kernel,
)

from ...conftest import REPO

_CHILD = r'''
import json
import numpy as np
from course_lib.gpu import choose_backends, launch, blocks_for
choose_backends()
from numba import cuda
from graders.checks import (assert_atomic_updates, assert_block_cooperation,
                            assert_reads_per_thread, assert_thread_per_element,
                            forced_interleaving, simulator_trace)

TILE = 4
BLOCK = 16
results = {}


def outcome(name, check):
    try:
        check()
        results[name] = "ok"
    except AssertionError as exc:
        results[name] = "failed: " + str(exc)


@cuda.jit
def saxpy(a, x, y, out):
    i = cuda.grid(1)
    if i < out.size:
        out[i] = a * x[i] + y[i]


@cuda.jit
def saxpy_one_thread(a, x, y, out):
    if cuda.grid(1) == 0:
        for j in range(out.size):
            out[j] = a * x[j] + y[j]


@cuda.jit
def hist_atomic(values, counts):
    i = cuda.grid(1)
    if i < values.size:
        cuda.atomic.add(counts, values[i], 1)


@cuda.jit
def hist_one_thread(values, counts):
    if cuda.grid(1) == 0:
        for j in range(values.size):
            counts[values[j]] += 1


@cuda.jit
def hist_one_thread_atomic(values, counts):
    if cuda.grid(1) == 0:
        for j in range(values.size):
            cuda.atomic.add(counts, values[j], 1)


@cuda.jit
def block_sum(x, partial):
    shared = cuda.shared.array(BLOCK, dtype=np.float64)
    t = cuda.threadIdx.x
    i = cuda.grid(1)
    shared[t] = x[i] if i < x.size else 0.0
    cuda.syncthreads()
    stride = BLOCK // 2
    while stride > 0:
        if t < stride:
            shared[t] += shared[t + stride]
        cuda.syncthreads()
        stride //= 2
    if t == 0:
        partial[cuda.blockIdx.x] = shared[0]


@cuda.jit
def block_sum_serial(x, partial):
    if cuda.threadIdx.x == 0:
        start = cuda.blockIdx.x * BLOCK
        total = 0.0
        for j in range(start, min(start + BLOCK, x.size)):
            total += x[j]
        partial[cuda.blockIdx.x] = total


@cuda.jit
def block_sum_one_barrier(x, partial):
    shared = cuda.shared.array(BLOCK, dtype=np.float64)
    t = cuda.threadIdx.x
    i = cuda.grid(1)
    shared[t] = x[i] if i < x.size else 0.0
    cuda.syncthreads()
    if t == 0:
        total = 0.0
        for j in range(BLOCK):
            total += shared[j]
        partial[cuda.blockIdx.x] = total


@cuda.jit
def matmul_naive(A, B, C):
    col, row = cuda.grid(2)
    if row < C.shape[0] and col < C.shape[1]:
        total = 0.0
        for k in range(A.shape[1]):
            total += A[row, k] * B[k, col]
        C[row, col] = total


@cuda.jit
def matmul_tiled(A, B, C):
    sA = cuda.shared.array((TILE, TILE), dtype=np.float32)
    sB = cuda.shared.array((TILE, TILE), dtype=np.float32)
    tx = cuda.threadIdx.x
    ty = cuda.threadIdx.y
    col, row = cuda.grid(2)
    acc = 0.0
    for t in range((A.shape[1] + TILE - 1) // TILE):
        k = t * TILE + tx
        sA[ty, tx] = A[row, k] if row < A.shape[0] and k < A.shape[1] else 0.0
        k = t * TILE + ty
        sB[ty, tx] = B[k, col] if k < B.shape[0] and col < B.shape[1] else 0.0
        cuda.syncthreads()
        for j in range(TILE):
            acc += sA[ty, j] * sB[j, tx]
        cuda.syncthreads()
    if row < C.shape[0] and col < C.shape[1]:
        C[row, col] = acc


# one thread per element
x = np.arange(40, dtype=np.float32)
d_x = cuda.to_device(x)
for name, kernel in [("saxpy", saxpy), ("saxpy_one_thread", saxpy_one_thread)]:
    d_out = cuda.device_array_like(d_x)
    with simulator_trace() as trace:
        launch(kernel, 40, np.float32(2.0), d_x, d_x, d_out, threads_per_block=16)
    results[name + "_values"] = bool(np.allclose(d_out.copy_to_host(), 3 * x))
    outcome("per_element:" + name, lambda: assert_thread_per_element(trace, d_out, what=name))
    outcome("per_element_none:" + name,
            lambda: assert_thread_per_element(trace, count=40, what=name))
with simulator_trace() as empty:
    pass
outcome("per_element:no_launch", lambda: assert_thread_per_element(empty, count=40))

# atomics
values = np.random.default_rng(1).integers(0, 4, size=50).astype(np.int32)
d_values = cuda.to_device(values)
for name, kernel in [("hist_atomic", hist_atomic), ("hist_one_thread", hist_one_thread),
                     ("hist_one_thread_atomic", hist_one_thread_atomic)]:
    d_counts = cuda.to_device(np.zeros(4, dtype=np.int32))
    with simulator_trace() as trace, forced_interleaving(kernel.py_func):
        launch(kernel, 50, d_values, d_counts, threads_per_block=16)
    results[name + "_values"] = bool(np.array_equal(d_counts.copy_to_host(),
                                                    np.bincount(values, minlength=4)))
    outcome("atomic:" + name, lambda: assert_atomic_updates(trace, d_counts, 50, what=name))

# shared memory and barriers
xs = np.arange(37, dtype=np.float64)
d_xs = cuda.to_device(xs)
for name, kernel in [("block_sum", block_sum), ("block_sum_serial", block_sum_serial),
                     ("block_sum_one_barrier", block_sum_one_barrier)]:
    d_partial = cuda.to_device(np.zeros(blocks_for(37, BLOCK)))
    with simulator_trace() as trace:
        launch(kernel, 37, d_xs, d_partial, threads_per_block=BLOCK)
    results[name + "_values"] = bool(np.allclose(d_partial.copy_to_host(),
                                                 np.add.reduceat(xs, np.arange(0, 37, BLOCK))))
    outcome("reads:" + name, lambda: assert_thread_per_element(trace, d_xs, kind="read", what=name))
    outcome("coop:" + name, lambda: assert_block_cooperation(trace, min_barriers=5, what=name))

# global reads of a tiled and a naive matrix multiply
rng = np.random.default_rng(2)
A = rng.random((9, 10), dtype=np.float32)
B = rng.random((10, 7), dtype=np.float32)
d_A, d_B = cuda.to_device(A), cuda.to_device(B)
steps = (10 + TILE - 1) // TILE
for name, kernel in [("matmul_tiled", matmul_tiled), ("matmul_naive", matmul_naive)]:
    C = cuda.to_device(np.zeros((9, 7), dtype=np.float32))
    with simulator_trace() as trace:
        launch(kernel, (9, 7), d_A, d_B, C, threads_per_block=(TILE, TILE))
    results[name + "_values"] = bool(np.allclose(C.copy_to_host(), A @ B, rtol=1e-5))
    results[name + "_global_reads"] = len(trace.reads(d_A)) + len(trace.reads(d_B))
    outcome("writes:" + name, lambda: assert_thread_per_element(trace, C, what=name))
    outcome("tile_reads:" + name, lambda: assert_reads_per_thread(trace, d_A, steps, what=name))
    outcome("coop:" + name,
            lambda: assert_block_cooperation(trace, min_barriers=2 * steps, what=name))

# nesting is refused; the simulator is left as it was
try:
    with simulator_trace(), simulator_trace():
        pass
    results["nested"] = "allowed"
except RuntimeError as exc:
    results["nested"] = str(exc)
from numba.cuda.simulator.cudadrv.devicearray import FakeWithinKernelCUDAArray
results["restored"] = FakeWithinKernelCUDAArray.__getitem__.__module__
print(json.dumps(results))
'''


@pytest.fixture(scope="module")
def sim() -> dict[str, Any]:
    """Run every simulator scenario once, in a child process."""
    env = {k: v for k, v in os.environ.items() if k not in (gpu.SIMULATOR_ENV, gpu.BACKEND_ENV)}
    env["PYTHONPATH"] = str(REPO)
    env[gpu.BACKEND_ENV] = "simulator"
    run = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_CHILD)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env=env,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_all_simulated_answers_compute_the_right_values(sim: dict[str, Any]) -> None:
    """The lazy kernels are right, so only the evidence can tell them apart."""
    right = {k: v for k, v in sim.items() if k.endswith("_values")}
    assert len(right) == 10
    assert all(right.values()), right


def test_thread_per_element(sim: dict[str, Any]) -> None:
    assert sim["per_element:saxpy"] == "ok"
    assert sim["per_element_none:saxpy"] == "ok"
    assert sim["per_element:saxpy_one_thread"].startswith(
        "failed: saxpy_one_thread: element (1,) was written by"
    )
    assert "whose own element is (0,)" in sim["per_element_none:saxpy_one_thread"]
    assert sim["per_element:no_launch"] == "failed: no kernel was launched"


def test_atomic_updates(sim: dict[str, Any]) -> None:
    assert sim["atomic:hist_atomic"] == "ok"
    assert "plain writes" in sim["atomic:hist_one_thread"]
    assert (
        "called by 1 threads (at most 50 times by one), expected 50"
        in sim["atomic:hist_one_thread_atomic"]
    )


def test_block_reads_and_cooperation(sim: dict[str, Any]) -> None:
    assert sim["reads:block_sum"] == "ok"
    assert sim["coop:block_sum"] == "ok"
    assert "was read by blockIdx (0, 0) threadIdx (0, 0)" in sim["reads:block_sum_serial"]
    assert "threads called cuda.shared.array" in sim["coop:block_sum_serial"]
    assert sim["reads:block_sum_one_barrier"] == "ok"  # it loads cooperatively...
    assert (
        "passed only 1 cuda.syncthreads() barriers" in sim["coop:block_sum_one_barrier"]
    )  # ...but no tree


def test_tiled_reads_and_barriers(sim: dict[str, Any]) -> None:
    assert sim["writes:matmul_tiled"] == "ok"
    assert sim["writes:matmul_naive"] == "ok"                       # one thread per element too
    assert sim["tile_reads:matmul_tiled"] == "ok"
    assert (
        "read 10 elements from global memory, expected at most 3" in sim["tile_reads:matmul_naive"]
    )
    assert sim["coop:matmul_tiled"] == "ok"
    assert "threads called cuda.shared.array" in sim["coop:matmul_naive"]
    # 9 x 7 = 63 threads each read a row of 10 and a column of 10; tiles of 4 cut that about 4-fold
    assert sim["matmul_naive_global_reads"] == 2 * 9 * 7 * 10
    assert sim["matmul_tiled_global_reads"] == 2 * 9 * 10 + 3 * 10 * 7
    assert sim["matmul_tiled_global_reads"] * 3 < sim["matmul_naive_global_reads"]


def test_trace_cannot_nest_and_restores_the_simulator(sim: dict[str, Any]) -> None:
    assert "already active" in sim["nested"]
    assert "simulator" in sim["restored"]


def test_simulator_trace_refuses_without_the_simulator() -> None:
    code = ("from graders.checks import simulator_trace\n"
            "try:\n    simulator_trace().__enter__()\nexcept RuntimeError as e:\n    print(e)\n")
    env = {k: v for k, v in os.environ.items() if k != gpu.SIMULATOR_ENV}
    env["PYTHONPATH"] = str(REPO)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         cwd=REPO, env=env)
    assert "needs Numba's CUDA simulator" in run.stdout, run.stderr[-2000:]


# ------------------------------------------------------------------------------ Numba on the CPU

def _escape(c_re: float, c_im: float, max_iter: int) -> int:
    x = y = 0.0
    for n in range(max_iter):
        if x * x + y * y > 4.0:
            return n
        x, y = x * x - y * y + c_re, 2.0 * x * y + c_im
    return max_iter


def test_numba_compiled_passes_on_njit_and_fails_on_lazy_routes() -> None:
    import numba

    compiled = numba.njit(_escape)
    assert compiled(1.0, 0.0, 50) == 3
    assert_numba_compiled(compiled)

    with pytest.raises(AssertionError, match="not a function compiled by Numba"):
        assert_numba_compiled(_escape)

    def dressed(c_re: float, c_im: float, max_iter: int) -> int:
        return _escape(c_re, c_im, max_iter)

    dressed.py_func = dressed  # type: ignore[attr-defined]
    dressed.signatures = ["(float64,)"]  # type: ignore[attr-defined]
    with pytest.raises(AssertionError, match="not a function compiled by Numba"):
        assert_numba_compiled(dressed)

    objmode = numba.jit(forceobj=True)(_escape)
    assert objmode(1.0, 0.0, 50) == 3
    with pytest.raises(AssertionError, match="object mode"):
        assert_numba_compiled(objmode, "escape_time", hint="keep @njit")


def test_numba_gufunc_passes_on_guvectorize_and_fails_on_numpy_and_object_mode() -> None:
    from numba import guvectorize

    @guvectorize(["void(float64[:], int64, float64[:])"], "(n),()->(n)")
    def running(x: Any, w: Any, out: Any) -> None:
        total = 0.0
        for i in range(x.shape[0]):
            total += x[i]
            out[i] = total

    assert_numba_gufunc(running, "(n),()->(n)")
    with pytest.raises(
        AssertionError, match=r"layout is '\(n\),\(\)->\(n\)', expected '\(n\)->\(\)'"
    ):
        assert_numba_gufunc(running, "(n)->()")

    def with_numpy(x: Any, w: int, out: Any = None) -> Any:
        return np.cumsum(x)

    with pytest.raises(AssertionError, match="not a gufunc"):
        assert_numba_gufunc(with_numpy, "(n),()->(n)")

    @guvectorize(["void(float64[:], int64, float64[:])"], "(n),()->(n)", forceobj=True)
    def objmode(x: Any, w: Any, out: Any) -> None:
        out[:] = np.cumsum(x)

    with pytest.raises(AssertionError, match="object mode"):
        assert_numba_gufunc(objmode, "(n),()->(n)")


def test_prange_reduction_passes_on_an_array_reduction_and_fails_on_race_serial_and_numpy() -> None:
    import numba
    from numba import prange

    def chunked(values: Any, n_bins: int) -> Any:
        counts = np.zeros(n_bins, dtype=np.int64)
        n = values.shape[0]
        for c in prange(4):
            local = np.zeros(n_bins, dtype=np.int64)
            for i in range(c * n // 4, (c + 1) * n // 4):
                local[values[i]] += 1
            counts += local
        return counts

    def racy(values: Any, n_bins: int) -> Any:
        counts = np.zeros(n_bins, dtype=np.int64)
        for i in prange(values.shape[0]):
            counts[values[i]] += 1
        return counts

    def serial(values: Any, n_bins: int) -> Any:
        counts = np.zeros(n_bins, dtype=np.int64)
        for i in range(values.shape[0]):
            counts[values[i]] += 1
        return counts

    values = np.random.default_rng(3).integers(0, 5, size=300)
    expected = np.bincount(values, minlength=5)
    reference = numba.njit(parallel=True)(chunked)
    assert np.array_equal(reference(values, 5), expected)
    assert_prange_reduction(reference)

    race = numba.njit(parallel=True)(racy)
    race(values, 5)
    with pytest.raises(AssertionError, match=r"no reduction .* race"):
        assert_prange_reduction(race)

    serial_parallel = numba.njit(parallel=True)(serial)
    assert np.array_equal(
        serial_parallel(values, 5), expected
    )  # np.zeros is a parfor, the loop is not
    with pytest.raises(AssertionError, match="no prange loop"):
        assert_prange_reduction(serial_parallel)

    one_core = numba.njit(chunked)                                      # prange is range here
    assert np.array_equal(one_core(values, 5), expected)
    with pytest.raises(AssertionError, match="without parallel=True"):
        assert_prange_reduction(one_core)

    with pytest.raises(AssertionError, match="not a function compiled by Numba"):
        assert_prange_reduction(lambda v, n: np.bincount(v, minlength=n))


# ------------------------------------------------------------------------------ array-module code

def _softmax_xp(a: Any) -> Any:
    xp = array_module(a)
    e = xp.exp(a - xp.max(a, axis=1, keepdims=True))
    return e / xp.sum(e, axis=1, keepdims=True)


def _softmax_np(a: Any) -> Any:
    e = np.exp(a - np.max(a, axis=1, keepdims=True))
    return e / np.sum(e, axis=1, keepdims=True)


def test_stays_on_device_passes_on_xp_code_and_fails_on_numpy_code() -> None:
    rows = np.array([[1.0, 2.0, 3.0], [1000.0, 0.0, 5.0]], dtype=np.float32)
    got = assert_stays_on_device(_softmax_xp, rows, what="softmax")
    np.testing.assert_allclose(got, _softmax_np(rows), rtol=1e-6)
    assert got.dtype == np.float32
    with pytest.raises(AssertionError, match="raised TypeError on a device array"):
        assert_stays_on_device(_softmax_np, rows, what="softmax", hint="use xp")
    with pytest.raises(AssertionError, match="returned a numpy.ndarray"):
        assert_stays_on_device(lambda a: a.get() * 1.0, rows, what="copied back")
    with pytest.raises(AssertionError, match="TypeError"):       # np.asarray / to_host on it
        assert_stays_on_device(lambda a: gpu.to_host(a), rows)


def test_device_like_behaves_like_a_device_array() -> None:
    a = device_like([[1.0, 2.0]])
    assert is_device_like(a) and not is_device_like(np.ones(2))
    assert array_module(a) is not np and array_module(np.ones(2)) is np
    assert array_module(np.float64(1.0)) is np
    with pytest.raises(TypeError, match="implicit conversion"):
        np.asarray(a)
    with pytest.raises(TypeError, match="keep all arrays on one device"):
        a + np.ones(2)
    assert is_device_like(a * 2 - a) and is_device_like(-a[0])
    assert a.shape == (1, 2) and a.dtype == np.float64


# ------------------------------------------------------------------------------ OpenCL launches

def test_recording_kernel_records_launches_and_forwards() -> None:
    calls: list[tuple[Any, ...]] = []

    class Kernel:
        function_name = "saxpy"

        def __call__(self, queue: Any, global_size: Any, local_size: Any, *args: Any) -> str:
            calls.append((queue, global_size, local_size, args))
            return "event"

    kernel = recording_kernel(Kernel())
    assert kernel("q", (128,), (64,), 1, 2) == "event"
    kernel("q", [64], None)
    assert kernel.launches == [((128,), (64,)), ((64,), None)]
    assert calls[0] == ("q", (128,), (64,), (1, 2))
    assert kernel.function_name == "saxpy"
