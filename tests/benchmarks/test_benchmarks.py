"""`python -m benchmarks`: the output format and bad input, never the speed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import FIGURES, Result, Skip, figure
from benchmarks.__main__ import main

from ..conftest import REPO


def test_issue_figures_are_registered() -> None:
    assert {"threads_io_speedup", "threads_cpu_ratio", "tracer_overhead_us",
            "course_exec_seconds", "asyncio_sleep_concurrency", "asyncio_fetch_speedup",
            "threads_vs_asyncio_fetch_ratio", "mpi_startup_seconds", "mpi_buffer_vs_pickle_speedup",
            "mpi_allreduce_us", "heat_mpi_speedup", "numba_njit_vs_python", "numba_prange_speedup",
            "opencl_pocl_vs_numpy", "cupy_saxpy_bandwidth_fraction",
            "numba_cuda_tiled_vs_naive_matmul", "gpu_vs_numpy_speedup", "pool_speedup",
            "pool_tiny_task_ratio", "shm_vs_pickle_speedup", "celery_roundtrip_ms",
            "ipp_task_overhead_ms", "dask_task_overhead_ms", "wordcount_speedup",
            "grade_throughput_ratio", "grade_overhead_ratio"} <= set(FIGURES)


def test_prints_name_value_unit_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "figures.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--only", "tracer_overhead_us", "--json", str(out)],
        capture_output=True, text=True, cwd=REPO, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    first = proc.stdout.splitlines()[0]
    name, rest = first.split(": ", 1)
    value, unit = rest.split()
    assert (name, unit) == ("tracer_overhead_us", "us") and float(value) > 0
    assert json.loads(out.read_text()) == {
        "tracer_overhead_us": pytest.approx(float(value), rel=1e-3)
    }


def test_unknown_figure_is_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--only", "nope"]) == 2
    assert "unknown figure(s) nope" in capsys.readouterr().err


def test_a_skipped_figure_says_why(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    @figure("_test_skip", "informational", "always skipped")
    def _skip() -> Result:
        raise Skip("no GPU on this machine")

    try:
        assert main(["--only", "_test_skip", "--json", str(tmp_path / "f.json")]) == 0
    finally:
        del FIGURES["_test_skip"]
    assert "_test_skip: skipped (no GPU on this machine)" in capsys.readouterr().out
    assert json.loads((tmp_path / "f.json").read_text()) == {"_test_skip": None}
