"""course_lib.gpu and course_lib.gpu_check: backends, launch checks, inputs, pictures, the runner.

choose_backends() sets NUMBA_ENABLE_CUDASIM and imports numba.cuda, which
cannot be undone in a process, so every test that needs it runs a short child
process; the rest run here, without importing numba.cuda.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import matplotlib.pyplot as plt
import nbformat
import numpy as np
import pytest

from course_lib import gpu, gpu_check
from course_lib.gpu import (
    Backends,
    GPUDevice,
    GPUMemoryError,
    GPUProbe,
    LaunchConfigError,
    blocks_for,
    check_array,
    check_launch,
    ensure_fits,
    expect_close,
    images_agree,
    launch_config,
    mandelbrot_numpy,
    mandelbrot_plane,
    memory_guard,
)
from course_lib.gpu.probe import smoke_test

from ..conftest import REPO

NO_GPU = GPUProbe(error="no CUDA driver library (libcuda) on this machine")
H100 = GPUDevice(index=0, name="NVIDIA H100 80GB HBM3", compute_capability=(9, 0),
                 total_memory=80 * 2**30, multiprocessors=132, memory_clock_khz=2_619_000,
                 memory_bus_bits=5120)


def _run_child(code: str, env: dict[str, str] | None = None,
               timeout: float = 120) -> dict[str, object]:
    """Run code in a fresh interpreter; it prints one JSON line last."""
    child_env = {k: v for k, v in os.environ.items()
                 if k not in (gpu.SIMULATOR_ENV, gpu.BACKEND_ENV)}
    child_env["PYTHONPATH"] = str(REPO)
    child_env.update(env or {})
    run = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                         text=True, timeout=timeout, cwd=REPO, env=child_env)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stderr.strip() == "", f"the child wrote to stderr: {run.stderr[-2000:]}"
    return json.loads(run.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- launch configurations


@pytest.mark.parametrize("n,tpb,blocks", [(0, 128, 0), (1, 128, 1), (128, 128, 1), (129, 128, 2),
                                           (300, 64, 5), (1000, 256, 4), (np.int64(20), 8, 3)])
def test_blocks_for_rounds_up(n: int, tpb: int, blocks: int) -> None:
    assert blocks_for(n, tpb) == blocks
    assert blocks_for(n, tpb) * tpb >= n


@pytest.mark.parametrize("n,tpb,error,words", [
    (300 / 64, 64, TypeError, "use '//'"),
    (True, 64, TypeError, "integer"),
    (-1, 64, LaunchConfigError, "at least 0"),
    (10, 0, LaunchConfigError, "at least 1"),
    (10, 2048, LaunchConfigError, "more than a block may hold"),
    ("10", 64, TypeError, "integer"),
])
def test_blocks_for_rejects_bad_input(n: object, tpb: object, error: type[Exception],
                                      words: str) -> None:
    with pytest.raises(error, match=words):
        blocks_for(n, tpb)  # type: ignore[arg-type]


def test_launch_config_covers_1d_and_2d_with_x_along_columns() -> None:
    assert launch_config(300, 64) == ((5,), (64,))
    config = launch_config((10, 13), (4, 4))
    assert config.blocks == (4, 3)           # x: 13 columns / 4, y: 10 rows / 4
    assert config.threads == (4, 4)
    assert config.total_threads == 4 * 3 * 16
    assert launch_config(0, 64).blocks == (0,)  # empty: nothing to launch, no error
    with pytest.raises(LaunchConfigError, match="one block size per dimension"):
        launch_config((10, 13), 16)
    with pytest.raises(LaunchConfigError, match="2048 threads per block"):
        launch_config((100, 100), (64, 32))


def test_check_launch_explains_what_a_gpu_refuses() -> None:
    check_launch(5, 128)
    check_launch((4, 3), (16, 16))
    with pytest.raises(LaunchConfigError, match="at most 1024"):
        check_launch(3, 2048)
    with pytest.raises(LaunchConfigError, match="no block at all"):
        check_launch(0, 128)
    with pytest.raises(LaunchConfigError, match="along y"):
        check_launch((1, 70_000), (1, 1))
    with pytest.raises(LaunchConfigError, match="along z"):
        check_launch(1, (1, 1, 128))
    with pytest.raises(LaunchConfigError, match="1 to 3 dimensions"):
        check_launch((1, 1, 1, 1), 1)
    small = GPUDevice(index=0, name="small", compute_capability=(3, 0), total_memory=2**30,
                      max_threads_per_block=256)
    with pytest.raises(LaunchConfigError, match="at most 256"):
        check_launch(1, 512, device=small)


# --------------------------------------------------------------------------- inputs


def test_check_array_names_the_problem_and_the_fix() -> None:
    x32 = np.zeros(4, dtype=np.float32)
    check_array(x32, dtype=np.float32, ndim=1, shape=(4,), name="x", contiguous=True)
    with pytest.raises(TypeError, match=r"x is a list.*np.asarray\(x, dtype=np.float32\)"):
        check_array([1.0, 2.0], dtype=np.float32, name="x")
    with pytest.raises(TypeError, match=r"float64.*expects float32.*x.astype\(np.float32\)"):
        check_array(np.zeros(4), dtype=np.float32, name="x")
    with pytest.raises(ValueError, match="2 dimension"):
        check_array(np.zeros((2, 2), np.float32), ndim=1, name="x")
    with pytest.raises(ValueError, match=r"shape \(4,\), the kernel expects \(5,\)"):
        check_array(x32, shape=(5,), name="y")
    with pytest.raises(ValueError, match="not C-contiguous"):
        check_array(np.zeros((4, 4), np.float32).T, contiguous=True, name="m")


def test_ensure_fits_refuses_what_cannot_fit() -> None:
    assert ensure_fits(1000, np.float32, where="host") == 4000
    assert ensure_fits((10, 10), np.float64, copies=3) == 2400
    with pytest.raises(GPUMemoryError, match=r"need .*TiB.*free: use a smaller size"):
        ensure_fits((10**7, 10**7), np.float64)
    with pytest.raises(ValueError, match="negative"):
        ensure_fits((-1, 4))
    with pytest.raises(ValueError, match="where must be"):
        ensure_fits(4, where="disk")


class _FakeCudaError(Exception):
    pass


def test_memory_guard_turns_out_of_memory_into_advice() -> None:
    with pytest.raises(GPUMemoryError, match="ran out of memory.*smaller size") as caught:
        with memory_guard("the big array"):
            raise MemoryError("Unable to allocate 36 TiB")
    assert "the big array" in str(caught.value)
    with pytest.raises(GPUMemoryError):
        with memory_guard():
            raise _FakeCudaError("[2] Call to cuMemAlloc results in CUDA_ERROR_OUT_OF_MEMORY")
    with pytest.raises(KeyError):                 # anything else passes through untouched
        with memory_guard():
            raise KeyError("not a memory problem")


def test_expect_close_says_where_arrays_differ() -> None:
    expect_close(np.ones(3, np.float32), [1.0, 1.0, 1.0000001], "ones")
    with pytest.raises(AssertionError,
                       match=r"2 of 5 values differ; first at index 3.*indices 3 to 4"
                             r".*round up"):
        expect_close([1, 2, 3, 0, 0], [1, 2, 3, 4, 5], "tail", hint="round up")
    with pytest.raises(AssertionError, match=r"shape \(2,\), expected \(3,\)"):
        expect_close([1, 2], [1, 2, 3], "short")
    with pytest.raises(AssertionError, match=r"index \(1, 0\)"):
        expect_close(np.eye(2), np.ones((2, 2)) - np.array([[0, 1], [0, 0]]), "2-D")
    expect_close(np.zeros(0), [], "empty")


def test_array_module_and_to_host_on_numpy() -> None:
    assert gpu.array_module(np.zeros(2)) is np
    assert gpu.array_module([1, 2]) is np
    host = gpu.to_host([1, 2, 3])
    assert isinstance(host, np.ndarray) and host.tolist() == [1, 2, 3]


# --------------------------------------------------------------------------- Mandelbrot


def _escape(c_re: float, c_im: float, max_iter: int) -> int:
    x = y = 0.0
    for n in range(max_iter):
        if x * x + y * y > 4.0:
            return n
        x, y = x * x - y * y + c_re, 2.0 * x * y + c_im
    return max_iter


def test_mandelbrot_numpy_matches_the_scalar_definition() -> None:
    re, im = mandelbrot_plane(23, 17)
    image = mandelbrot_numpy(re, im, 30)
    assert image.shape == (17, 23) and image.dtype == np.int32
    expected = np.array([[_escape(r, i, 30) for r in re] for i in im])
    assert np.array_equal(image, expected)
    assert mandelbrot_numpy(re, im, 0).max() == 0
    assert mandelbrot_numpy([-2.0, 1.0], [0.0], 50).tolist() == [[50, 3]]


def test_images_agree_allows_a_few_boundary_pixels_only() -> None:
    a = np.zeros((100, 100), dtype=np.int32)
    b = a.copy()
    b[0, :5] = 1                                  # 5 of 10,000 differ
    assert images_agree(a, b, max_fraction=1e-3)
    b[1, :20] = 1                                 # 25 of 10,000
    assert not images_agree(a, b, max_fraction=1e-3)
    assert not images_agree(a, a[:50])


# --------------------------------------------------------------------------- probe and backends


def test_probe_output_is_parsed_into_devices() -> None:
    raw = {"devices": [{"index": 0, "name": "NVIDIA H100 80GB HBM3", "total_memory": 85e9,
                        "major": 9, "minor": 0, "multiprocessors": 132, "warp_size": 32,
                        "max_threads_per_block": 1024, "memory_clock_khz": 2_619_000,
                        "memory_bus_bits": 5120, "bx": 1024, "by": 1024, "bz": 64}],
           "driver_version": 12040, "error": None}
    probe = gpu.parse_probe_output("noise\nCOURSE_CUDA_PROBE " + json.dumps(raw) + "\n")
    assert probe.found and probe.driver == "12.4"
    device = probe.devices[0]
    assert device.compute_capability == (9, 0)
    assert device.peak_bandwidth == pytest.approx(3.352e12, rel=1e-3)
    assert "compute capability 9.0" in device.describe() and "132 SMs" in device.describe()
    assert not gpu.parse_probe_output("nothing useful").found
    assert GPUDevice(0, "x", (1, 0), 1).peak_bandwidth is None


def test_detect_cuda_gpu_never_raises() -> None:
    probe = gpu.detect_cuda_gpu()
    assert isinstance(probe, GPUProbe)
    assert probe.found or probe.error               # either devices, or the reason there are none


def _backends(cuda: str, arrays: str = "numpy", probe: GPUProbe = NO_GPU) -> Backends:
    return Backends(cuda=cuda, arrays=arrays, opencl=None, pycuda=False, probe=probe, rows=[],
                    xp=np, reasons={"gpu": "this machine has no usable NVIDIA GPU",
                                    "pycuda": "there is no CUDA driver"})


def test_backends_banner_and_require(capsys: pytest.CaptureFixture[str]) -> None:
    sim = _backends("simulator")
    assert "timings under the simulator mean nothing" in str(sim)
    assert "timings under the simulator mean nothing" in sim._repr_html_()
    assert sim.require("cuda") and not sim.require("pycuda", "the PyCUDA demo")
    assert "skipped the PyCUDA demo: needs PyCUDA" in capsys.readouterr().out
    assert not sim.require("cupy")
    real = _backends("gpu", "cupy", GPUProbe(devices=(H100,)))
    assert real.banner == "" and "SIMULATOR" not in str(real)
    assert real.gpu and real.device is H100 and real.available("cupy")
    with pytest.raises(ValueError, match="unknown feature"):
        real.available("tpu")


def test_choose_backends_picks_the_simulator_without_a_gpu_and_launch_checks() -> None:
    result = _run_child("""
        import json, os, sys
        import numpy as np
        from course_lib import gpu
        fake = lambda: gpu.GPUProbe(error="no CUDA driver library (fake)")
        out = {}
        try:
            gpu.choose_backends(mode="bogus", probe=fake, opencl=False)
        except ValueError as err:
            out["bad_mode"] = str(err)
        try:
            gpu.choose_backends(mode="gpu", probe=fake, opencl=False)
        except gpu.BackendError as err:
            out["gpu_mode"] = str(err)
        out["imported_before"] = "numba.cuda" in sys.modules
        b = gpu.choose_backends(probe=fake, opencl=False)
        out.update(cuda=b.cuda, arrays=b.arrays, xp=b.xp.__name__,
                   env=os.environ.get("NUMBA_ENABLE_CUDASIM"), text=str(b),
                   current=gpu.current_backends() is b, sim=gpu.simulator_enabled())
        from numba import cuda

        @cuda.jit
        def no_bounds_check(x, out):
            i = cuda.grid(1)
            out[i] = 2 * x[i]

        @cuda.jit
        def doubled(x, out):
            i = cuda.grid(1)
            if i < x.size:
                out[i] = 2 * x[i]

        x = np.arange(100, dtype=np.float32)
        y = np.zeros_like(x)
        gpu.launch(doubled, 100, x, y, threads_per_block=64)
        out["doubled"] = bool(np.array_equal(y, 2 * x))
        try:
            gpu.launch(no_bounds_check, 100, x, y, threads_per_block=64)
        except gpu.KernelError as err:
            out["kernel_error"] = str(err)
        try:
            gpu.launch(doubled, 10**6, x, y)
        except gpu.LaunchConfigError as err:
            out["too_many"] = str(err)
        again = gpu.choose_backends(probe=fake, opencl=False)
        out["again"] = again.cuda + ": " + again.rows[0].why
        print(json.dumps(out))
    """)
    assert "not a mode" in str(result["bad_mode"])
    assert "asks for a real GPU" in str(result["gpu_mode"])
    assert "Unset COURSE_GPU" in str(result["gpu_mode"])
    assert result["imported_before"] is False
    assert (result["cuda"], result["arrays"], result["xp"], result["env"]) == (
        "simulator", "numpy", "numpy", "1")
    assert "CUDA SIMULATOR" in str(result["text"])
    assert "no CUDA driver library (fake)" in str(result["text"])
    assert result["current"] is True and result["sim"] is True
    assert result["doubled"] is True
    assert "bounds check" in str(result["kernel_error"])
    assert "if i < out.size" in str(result["kernel_error"])
    assert "under the CUDA simulator" in str(result["too_many"])
    assert str(result["again"]).startswith("simulator: numba.cuda was already imported")


def test_choose_backends_cannot_switch_after_a_real_numba_cuda_import() -> None:
    result = _run_child("""
        import json
        from numba import cuda  # imported first, without the simulator
        from course_lib import gpu
        b = gpu.choose_backends(probe=lambda: gpu.GPUProbe(error="no device (fake)"), opencl=False)
        print(json.dumps({"cuda": b.cuda, "why": b.reasons["cuda"],
                          "require": b.available("cuda")}))
    """)
    assert result["cuda"] == "unavailable" and result["require"] is False
    assert "restart the kernel" in str(result["why"])


def test_course_gpu_simulator_wins_over_a_gpu_and_opencl_is_found() -> None:
    result = _run_child("""
        import json
        from course_lib import gpu
        h100 = gpu.GPUDevice(0, "NVIDIA H100 (fake)", (9, 0), 80 * 2**30)
        b = gpu.choose_backends(probe=lambda: gpu.GPUProbe(devices=(h100,), driver_version=12040))
        print(json.dumps({"cuda": b.cuda, "arrays": b.arrays, "pycuda": b.pycuda,
                          "opencl": b.opencl, "rows": [list(r) for r in b.rows]}))
    """, env={gpu.BACKEND_ENV: "simulator"})
    assert result["cuda"] == "simulator" and result["arrays"] == "numpy"
    assert result["pycuda"] is False
    rows = {row[0]: row for row in result["rows"]}  # type: ignore[union-attr]
    assert "COURSE_GPU=simulator" in rows["CUDA kernels"][2]
    assert "NVIDIA H100 (fake)" in rows["GPU 0"][1]
    assert result["opencl"] is None or "OpenCL" in rows


def test_a_gpu_the_driver_cannot_use_is_reported_not_hidden() -> None:
    """The probe claims a GPU; on a machine without one, numba and CuPy fail and say so."""
    if gpu.detect_cuda_gpu().found:
        pytest.skip("a real GPU is present: this test needs a machine without one")
    result = _run_child("""
        import json
        from course_lib import gpu
        h100 = gpu.GPUDevice(0, "NVIDIA H100 (fake)", (9, 0), 80 * 2**30)
        b = gpu.choose_backends(probe=lambda: gpu.GPUProbe(devices=(h100,)), opencl=False)
        print(json.dumps({"cuda": b.cuda, "arrays": b.arrays, "reasons": b.reasons}))
    """)
    assert result["cuda"] == "unavailable" and result["arrays"] == "numpy"
    reasons = result["reasons"]
    assert "numba.cuda failed" in reasons["cuda"] and "numba-cuda" in reasons["cuda"]  # type: ignore[index]
    assert reasons["gpu"] == reasons["cuda"]  # type: ignore[index]
    assert "CuPy" in reasons["cupy"]  # type: ignore[index]


# --------------------------------------------------------------------------- OpenCL


def test_opencl_session_builds_runs_and_explains_compile_errors() -> None:
    pytest.importorskip("pyopencl")
    try:
        session = gpu.opencl_session()
    except gpu.BackendError as err:
        pytest.skip(f"no OpenCL device: {err}")
    with pytest.raises(RuntimeError, match="session is closed"):
        session.build("__kernel void k() {}")
    source = "__kernel void twice(__global float *x) { int i = get_global_id(0); x[i] *= 2.0f; }"
    with session:
        buffer = session.to_device(np.arange(4, dtype=np.float32))
        session.build(source).twice(session.queue, (4,), None, buffer)
        out = np.empty(4, dtype=np.float32)
        session.cl.enqueue_copy(session.queue, out, buffer)
        with pytest.raises(ValueError, match="did not compile"):
            session.build("__kernel void broken( { }")
    assert out.tolist() == [0.0, 2.0, 4.0, 6.0]
    assert "closed" in repr(session)


# --------------------------------------------------------------------------- pictures and transfers


def test_pictures_return_axes_with_titles_and_refuse_huge_grids() -> None:
    try:
        ax = gpu.grid_picture(20, 8)
        assert "3 blocks" in ax.get_title() and "n = 20" in ax.get_title()
        ax = gpu.grid_picture((10, 13), (4, 4))
        assert "10 × 13" in ax.get_title()
        _, given = plt.subplots()
        assert gpu.reduction_picture(8, ax=given) is given
        image = mandelbrot_numpy(*mandelbrot_plane(30, 20), 20)
        assert "30 × 20" in gpu.mandelbrot_picture(image).get_title()
        with pytest.raises(ValueError, match="too many to draw"):
            gpu.grid_picture(10_000, 256)
        with pytest.raises(ValueError, match="power of two"):
            gpu.reduction_picture(6)
        with pytest.raises(ValueError, match="2-D image"):
            gpu.mandelbrot_picture(np.zeros(5))
    finally:
        plt.close("all")


def test_transfer_study_models_copies_without_a_gpu() -> None:
    study = gpu.transfer_study([2**20, 2**24])
    if study.measured:
        pytest.skip("a GPU is present: the copies were measured")
    assert study.device == "a model" and len(study.host_to_device) == 2
    assert study.host_to_device[1] > 10 * study.on_device[1]     # the bus is the bottleneck
    assert "MODELLED" in str(study)
    try:
        assert "model" in study.plot().get_title()
    finally:
        plt.close("all")
    with pytest.raises(LaunchConfigError):
        gpu.transfer_study([0])


# --------------------------------------------------------------------------- benchmarks


def test_gpu_figures_refuse_the_simulator(monkeypatch: pytest.MonkeyPatch) -> None:
    import benchmarks.gpu  # noqa: F401
    from benchmarks import FIGURES, Skip

    monkeypatch.setenv(gpu.SIMULATOR_ENV, "1")
    for name in gpu_check.GPU_FIGURES:
        with pytest.raises(Skip, match="NUMBA_ENABLE_CUDASIM"):
            FIGURES[name].measure()
    assert FIGURES["numba_prange_speedup"].goal.startswith(">= ")


# --------------------------------------------------------------------------- gpu_check


def test_report_says_no_gpu_and_lists_results() -> None:
    notebooks = [gpu_check.NotebookResult("01.ipynb", 3.2),
                 gpu_check.NotebookResult("02.ipynb", 1.0, ["cell 4: ValueError: bad | pipe"])]
    figures = [gpu_check.BenchmarkResult("fast", "measured", ">= 3", 4.5, "x", "ok"),
               gpu_check.BenchmarkResult("slow", "measured", ">= 3", 1.5, "x"),
               gpu_check.BenchmarkResult("info", "measured", "informational", 2.0, "x"),
               gpu_check.BenchmarkResult("gpu", "skipped", ">= 0.8", detail="no CUDA GPU: none")]
    text = gpu_check.render_report(NO_GPU, "backends table", notebooks, figures, when="then")
    assert "**no GPU: simulator/PoCL path**" in text
    assert "| 01.ipynb | ok | 3.2 |" in text and "| 02.ipynb | FAILED |" in text
    assert "bad \\| pipe" in text
    assert "| fast | 4.5 x | >= 3 | met |" in text and "| slow | 1.5 x | >= 3 | NOT met |" in text
    assert "| gpu | skipped | >= 0.8 | skipped | no CUDA GPU: none |" in text
    assert "PROBLEMS in: 02.ipynb" in text
    with_gpu = gpu_check.render_report(GPUProbe(devices=(H100,), driver_version=12040), "b", [],
                                       [], when="then")
    assert "**GPU 0:** NVIDIA H100" in with_gpu and "## Verdict\n\nOK" in with_gpu


def _tiny_notebook(path: Path, source: str) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(source)]
    nbformat.write(nb, path)


def test_gpu_check_runs_notebooks_and_reports_failures(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYTHONPATH", raising=False)        # main() sets it; restored afterwards
    folder = tmp_path / "nbs"
    folder.mkdir()
    _tiny_notebook(folder / "a_clean.ipynb", "print('hello')")
    _tiny_notebook(folder / "b_noisy.ipynb", "import sys\nprint('oops', file=sys.stderr)")
    report = tmp_path / "out" / "report.md"
    code = gpu_check.main(["--notebooks", str(folder), "--benchmarks", "no_such_figure",
                           "--out", str(report)])
    text = report.read_text()
    assert code == 1
    assert "| a_clean.ipynb | ok |" in text
    assert "| b_noisy.ipynb | FAILED |" in text and "wrote to stderr" in text
    assert "| no_such_figure | failed |" in text and "unknown figure" in text


def test_gpu_check_usage_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYTHONPATH", raising=False)
    with pytest.raises(SystemExit) as missing:
        gpu_check.main(["--notebooks", str(tmp_path / "nowhere")])
    assert missing.value.code == 2
    with pytest.raises(SystemExit) as empty:
        gpu_check.main(["--notebooks", str(tmp_path)])
    assert empty.value.code == 2


# --------------------------------------------------------------------------- portability


def test_a_gpu_whose_test_kernel_fails_falls_back_to_the_simulator() -> None:
    """The probe's child compiled no kernel (no NVVM): the notebook runs on the simulator."""
    result = _run_child("""
        import json, os
        from course_lib import gpu
        h100 = gpu.GPUDevice(0, "NVIDIA H100 (fake)", (9, 0), 80 * 2**30)
        broken = gpu.GPUProbe(devices=(h100,), driver_version=12040, kernel_checked=True,
                              kernel_error="NvvmSupportError: libNVVM cannot be found")
        b = gpu.choose_backends(probe=lambda: broken, opencl=False)
        from numba import cuda
        @cuda.jit
        def one(a):
            a[0] = 1.0
        import numpy as np
        a = np.zeros(1, dtype=np.float32)
        one[1, 1](a)
        try:
            gpu.choose_backends(probe=lambda: broken, mode="gpu", opencl=False)
            refused = ""
        except gpu.BackendError as exc:
            refused = str(exc)
        print(json.dumps({"cuda": b.cuda, "arrays": b.arrays, "reasons": b.reasons,
                          "rows": [list(r) for r in b.rows],
                          "env": os.environ.get(gpu.SIMULATOR_ENV),
                          "ran": float(a[0]), "refused": refused, "text": str(b)}))
    """)
    assert result["cuda"] == "simulator" and result["arrays"] == "numpy"
    assert result["env"] == "1" and result["ran"] == 1.0
    reasons = result["reasons"]
    assert "libNVVM cannot be found" in reasons["gpu"] and "numba-cuda[cu12]" in reasons["gpu"]  # type: ignore[index]
    rows = {row[0]: row for row in result["rows"]}  # type: ignore[union-attr]
    assert "simulator" in rows["CUDA kernels"][1] and "libNVVM" in rows["CUDA kernels"][2]
    assert "CUDA SIMULATOR" in str(result["text"])
    assert "could not run a test kernel" in str(result["refused"])


def test_missing_cuda_bindings_switch_the_simulator_to_numbas_own_binding() -> None:
    result = _run_child("""
        import json, os
        from course_lib import gpu
        from course_lib.gpu import backends
        backends.has_cuda_bindings = lambda: False    # as on macOS: numba-cuda without the wheel
        b = gpu.choose_backends(probe=lambda: gpu.GPUProbe(error="no GPU (fake)"), opencl=False)
        print(json.dumps({"cuda": b.cuda, "env": os.environ.get(gpu.BINDING_ENV),
                          "notes": b.notes}))
    """)
    assert result["cuda"] == "simulator" and result["env"] == "0"
    assert any("cuda-bindings is not installed" in n for n in result["notes"])  # type: ignore[union-attr]
    kept = _run_child("""
        import json, os
        from course_lib import gpu
        from course_lib.gpu.backends import has_cuda_bindings
        gpu.choose_backends(probe=lambda: gpu.GPUProbe(error="no GPU (fake)"), opencl=False)
        print(json.dumps({"env": os.environ.get(gpu.BINDING_ENV),
                          "has": has_cuda_bindings()}))
    """)
    assert kept["env"] is None or not kept["has"], "set although cuda-bindings is installed"


def test_the_machine_report_asks_the_same_probe_in_a_child() -> None:
    from course_lib.gpu.probe import MACHINE_PROBE_CODE, parse_machine_facts

    env = {k: v for k, v in os.environ.items() if k not in (gpu.SIMULATOR_ENV, gpu.BACKEND_ENV)}
    env["PYTHONPATH"] = str(REPO)
    run = subprocess.run([sys.executable, "-c", MACHINE_PROBE_CODE], capture_output=True,
                         text=True, timeout=120, cwd=REPO, env=env)
    facts = parse_machine_facts(run.stdout)
    assert facts is not None, run.stderr[-2000:]
    assert {"numba", "numba_cuda", "cuda_simulator", "cuda_available", "cuda_error",
            "cuda_devices", "cupy", "cupy_error", "cupy_devices", "opencl", "opencl_error",
            "opencl_devices"} <= set(facts)
    found = gpu.detect_cuda_gpu(kernel=False)
    if facts["cuda_available"]:
        assert [d["name"] for d in facts["cuda_devices"]] == [d.name for d in found.devices]
    else:
        assert facts["cuda_devices"] == []
    assert parse_machine_facts("no marked line\n") is None


def test_the_kernel_test_runs_in_a_child_and_reports_failure_here() -> None:
    if gpu.detect_cuda_gpu(kernel=False).found:
        pytest.skip("a real GPU is present: this checks the failure path")
    imported_before = "numba.cuda" in sys.modules
    error = smoke_test(120)
    assert error  # no GPU here: the child says why instead of raising
    assert ("numba.cuda" in sys.modules) == imported_before, "the test kernel ran in this process"
    assert not gpu.detect_cuda_gpu().kernel_checked, "no device, so no kernel test"


class _FakeDevice:
    def __init__(self, extensions: str, double: int = 0) -> None:
        self.extensions = extensions
        self.double_fp_config = double


def test_fp64_detection_and_the_skip_reason(capsys: pytest.CaptureFixture[str]) -> None:
    assert gpu.device_has_fp64(_FakeDevice("cl_khr_icd cl_khr_fp64 cl_khr_int64_base_atomics"))
    assert gpu.device_has_fp64(_FakeDevice("cl_khr_icd", double=63))   # OpenCL 3.0 style
    assert not gpu.device_has_fp64(_FakeDevice("cl_khr_icd cl_khr_fp16"))   # Apple, many Intel
    apple = _backends("simulator", "numpy", NO_GPU)
    apple.opencl, apple.opencl_fp64 = "Apple: Apple M2 (GPU)", False
    apple.reasons["opencl_fp64"] = "Apple M2 has no double precision (cl_khr_fp64)"
    assert apple.available("opencl") and not apple.available("opencl_fp64")
    assert not apple.require("opencl_fp64", "the OpenCL variant")
    out = capsys.readouterr().out
    assert "skipped the OpenCL variant" in out and "cl_khr_fp64" in out


def test_pocl_reports_double_precision() -> None:
    pytest.importorskip("pyopencl")
    result = _run_child("""
        import json
        from course_lib import gpu
        b = gpu.choose_backends(probe=lambda: gpu.GPUProbe(error="no GPU (fake)"))
        print(json.dumps({"opencl": b.opencl, "fp64": b.opencl_fp64, "reasons": b.reasons}))
    """)
    if result["opencl"] is None:
        assert "OpenCL not available" in result["reasons"]["opencl"]  # type: ignore[index]
        return
    assert result["fp64"] is True, "PoCL's CPU device computes in double precision"


@pytest.mark.parametrize("platform,machine,expected", [
    ("linux", "x86_64", "pip install pocl-binary-distribution"),
    ("linux", "aarch64", "pocl-opencl-icd"),
    ("darwin", "arm64", "macOS ships OpenCL"),
    ("win32", "AMD64", "GPU vendor's driver"),
])
def test_opencl_install_hint_fits_the_platform(platform: str, machine: str, expected: str) -> None:
    assert expected in gpu.opencl_install_hint(platform, machine)


def test_report_covers_exercises_transfers_and_nvidia_smi() -> None:
    notebook = gpu_check.NotebookResult("03.ipynb", 9.0, ["cell 21: AssertionError: x"], 30, 30,
                                        {"ex07_8_opencl_saxpy_tests": False, "ex07_9_tests": True})
    transfers = {"measured": False, "device": "a model", "sizes": [2**20],
                 "host_to_device": [2**20 / 25e9], "on_device": [2 * 2**20 / 1.5e12],
                 "device_to_host": [2**20 / 25e9]}
    text = gpu_check.render_report(NO_GPU, "b", [notebook], [], when="then",
                                   smi="nvidia-smi not found: no NVIDIA driver on this machine",
                                   transfers=transfers)
    assert "| 03.ipynb | FAILED | 9.0 | cell 21: AssertionError: x | 30/30 |" in text
    assert "| 03.ipynb | ex07_8_opencl_saxpy_tests | FAIL |" in text
    assert "| 03.ipynb | ex07_9_tests | pass |" in text
    assert "NOT measured: no GPU" in text
    assert "| 1 MiB | 25.0 GB/s | 25.0 GB/s | 1500.0 GB/s |" in text
    assert "## nvidia-smi\n\n```text\nnvidia-smi not found" in text
    broken = gpu_check.render_report(NO_GPU, "b", [], [], transfers={"error": "boom"})
    assert "FAILED: boom" in broken and "PROBLEMS in: transfers" in broken


def test_run_notebook_counts_cells_and_exercise_tests(tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    passing = nbformat.v4.new_code_cell("assert 1 + 1 == 2")
    passing.metadata["nbgrader"] = {"grade": True, "grade_id": "good_tests", "points": 1}
    failing = nbformat.v4.new_code_cell("assert 1 + 1 == 3, 'wrong'")
    failing.metadata["nbgrader"] = {"grade": True, "grade_id": "bad_tests", "points": 1}
    nb.cells = [nbformat.v4.new_markdown_cell("# t"), nbformat.v4.new_code_cell("x = 1"),
                passing, failing]
    path = tmp_path / "t.ipynb"
    nbformat.write(nb, path)
    result = gpu_check.run_notebook(path, cell_timeout=120)
    assert (result.cells, result.executed) == (3, 3)
    assert result.exercises == {"good_tests": True, "bad_tests": False}
    assert not result.ok and "AssertionError: wrong" in result.problems[0]


def test_transfers_without_a_gpu_are_the_model() -> None:
    if gpu.detect_cuda_gpu(kernel=False).found:
        pytest.skip("a real GPU is present")
    data = gpu_check.run_transfers(timeout=300)
    assert data.get("measured") is False and len(data["sizes"]) == len(data["host_to_device"]) > 0
