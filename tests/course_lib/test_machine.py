"""course_lib.machine (cores, start method, GIL, report) and course_lib.workers."""

from __future__ import annotations

import hashlib
import math
import multiprocessing
import os
import shutil
import sys
import sysconfig
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from course_lib import machine, workers
from course_lib.machine import MachineReport, MachineRow, cores, rows_gpu, rows_mpi, show

# --------------------------------------------------------------------------- start method


def test_start_method_default_is_available_and_not_set_globally(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("COURSE_START_METHOD", raising=False)
    before = multiprocessing.get_start_method(allow_none=True)
    method = machine.start_method()
    assert method in multiprocessing.get_all_start_methods()
    assert multiprocessing.get_start_method(allow_none=True) == before
    if before is None:
        assert method == multiprocessing.get_all_start_methods()[0]


@pytest.mark.parametrize("value", ["spawn", " Spawn ", "SPAWN"])
def test_start_method_honours_env(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("COURSE_START_METHOD", value)
    assert machine.start_method() == "spawn"
    assert machine.mp_context().get_start_method() == "spawn"


def test_empty_env_means_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COURSE_START_METHOD", "")
    assert machine.start_method() in multiprocessing.get_all_start_methods()


def test_start_method_rejects_unknown_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COURSE_START_METHOD", "threads")
    with pytest.raises(ValueError, match="COURSE_START_METHOD") as info:
        machine.start_method()
    assert "fork, spawn, forkserver" in str(info.value)
    with pytest.raises(ValueError, match="COURSE_START_METHOD"):
        machine.mp_context()


def test_start_method_unavailable_on_platform(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COURSE_START_METHOD", "fork")
    monkeypatch.setattr(multiprocessing, "get_all_start_methods", lambda: ["spawn"])
    with pytest.raises(ValueError, match="not available on this platform"):
        machine.start_method()


# --------------------------------------------------------------------------- cores


def test_usable_cores_is_between_one_and_cpu_count() -> None:
    cores = machine.usable_cores()
    assert isinstance(cores, int)
    assert 1 <= cores <= (os.cpu_count() or 1)


def test_usable_cores_respects_cgroup_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cores, "_cgroup_cpu_limit", lambda *a, **k: 1)
    monkeypatch.setattr(sys, "platform", "linux")
    assert machine.usable_cores() == 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("max 100000", None),
        ("max 100000\n", None),
        ("150000 100000", 2),
        ("200000 100000\n", 2),
        ("50000 100000", 1),
        ("1 100000", 1),
        ("400000 100000", 4),
        ("", None),
        ("garbage", None),
        ("0 100000", None),
    ],
)
def test_parse_cpu_max(text: str, expected: int | None) -> None:
    assert cores._parse_cpu_max(text) == expected


@pytest.mark.parametrize(
    ("quota", "period", "expected"),
    [
        ("-1", "100000", None),
        ("250000\n", "100000\n", 3),
        ("100000", "100000", 1),
        ("x", "1", None),
    ],
)
def test_parse_cfs_quota(quota: str, period: str, expected: int | None) -> None:
    assert cores._parse_cfs_quota(quota, period) == expected


def test_cgroup_v2_tree(tmp_path: Path) -> None:
    root = tmp_path / "cgroup"
    leaf = root / "user.slice" / "job"
    leaf.mkdir(parents=True)
    (root / "cgroup.controllers").write_text("cpu memory\n")
    (root / "user.slice" / "cpu.max").write_text("300000 100000\n")
    (leaf / "cpu.max").write_text("150000 100000\n")
    proc = tmp_path / "proc_cgroup"
    proc.write_text("0::/user.slice/job\n")
    assert cores._cgroup_cpu_limit(root, proc) == 2
    (leaf / "cpu.max").write_text("max 100000\n")
    assert cores._cgroup_cpu_limit(root, proc) == 3


def test_cgroup_v2_namespaced_root(tmp_path: Path) -> None:
    root = tmp_path / "cgroup"
    root.mkdir()
    (root / "cgroup.controllers").write_text("cpu\n")
    (root / "cpu.max").write_text("max 100000\n")
    proc = tmp_path / "proc_cgroup"
    proc.write_text("0::/\n")
    assert cores._cgroup_cpu_limit(root, proc) is None
    (root / "cpu.max").write_text("150000 100000\n")
    # a path from the host that does not exist inside the container falls back to the root
    proc.write_text("0::/docker/abc123\n")
    assert cores._cgroup_cpu_limit(root, proc) == 2


def test_cgroup_v1(tmp_path: Path) -> None:
    root = tmp_path / "cgroup"
    mount = root / "cpu,cpuacct"
    mount.mkdir(parents=True)
    (mount / "cpu.cfs_quota_us").write_text("250000\n")
    (mount / "cpu.cfs_period_us").write_text("100000\n")
    proc = tmp_path / "proc_cgroup"
    proc.write_text("4:cpu,cpuacct:/\n3:memory:/\n")
    assert cores._cgroup_cpu_limit(root, proc) == 3
    (mount / "cpu.cfs_quota_us").write_text("-1\n")
    assert cores._cgroup_cpu_limit(root, proc) is None


def test_no_cgroup_at_all(tmp_path: Path) -> None:
    assert cores._cgroup_cpu_limit(tmp_path / "nothing", tmp_path / "missing") is None


# --------------------------------------------------------------------------- GIL


def test_gil_functions() -> None:
    assert machine.free_threaded_build() == bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
    assert isinstance(machine.gil_enabled(), bool)
    if not machine.free_threaded_build():
        assert machine.gil_enabled()


# --------------------------------------------------------------------------- report


BASE_ITEMS = ["Python", "OS", "usable cores", "start method", "GIL", "memory"]


def test_report_rows_text_and_html(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COURSE_START_METHOD", raising=False)
    report = machine.show_machine()
    assert isinstance(report, MachineReport)
    items = [row.item for row in report.rows]
    for item in BASE_ITEMS:
        assert item in items
    text = str(report)
    html = report._repr_html_()
    for item in BASE_ITEMS:
        assert item in text
        assert item in html
    assert "<table>" in html
    assert f"{machine.usable_cores()} of" in (report.value("usable cores") or "")
    assert report.facts["usable_cores"] == machine.usable_cores()
    assert report.facts["start_method"] == machine.start_method()
    data = report.to_dict()
    assert {"item", "value", "advice"} <= set(data["rows"][0])


def test_report_is_quick_without_needs() -> None:
    start = time.perf_counter()
    machine.show_machine()
    assert time.perf_counter() - start < 5


def test_bad_env_becomes_a_row_not_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COURSE_START_METHOD", "bogus")
    report = machine.show_machine()
    row = next(r for r in report.rows if r.item == "start method")
    assert "invalid" in row.value
    assert "fork, spawn, forkserver" in row.advice


def test_needs_validation() -> None:
    with pytest.raises(ValueError, match="mpi, gpu, broker"):
        machine.show_machine(needs=["gpus"])


def test_failing_probe_becomes_a_row(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(facts: dict[str, Any]) -> list[MachineRow]:
        raise RuntimeError("boom")

    monkeypatch.setitem(show._NEED_PROBES, "gpu", ("GPU", broken))
    report = machine.show_machine(needs="gpu")
    row = next(r for r in report.rows if r.item == "GPU")
    assert "probe failed: RuntimeError: boom" in row.value


def test_broker_rows() -> None:
    report = machine.show_machine(needs=["broker"])
    items = [row.item for row in report.rows]
    assert "redis-server" in items
    assert "celery" in items


def test_mpi_rows_without_mpiexec(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rows_mpi, "find_mpiexec", lambda: None)
    monkeypatch.setattr(rows_mpi, "dist_version", lambda *names: None)
    report = machine.show_machine(needs=["mpi"])
    assert report.value("mpi4py") == "not installed"
    row = next(r for r in report.rows if r.item == "mpiexec")
    assert "not found" in row.value
    assert ".[mpi]" in row.advice


FAKE_GPU: dict[str, Any] = {
    "numba": "0.61.0",
    "numba_cuda": "0.20.0",
    "cuda_simulator": False,
    "cuda_available": True,
    "cuda_error": None,
    "cuda_devices": [{"name": "NVIDIA H100", "compute_capability": "9.0", "memory": 80 * 2**30}],
    "cupy": "13.3.0",
    "cupy_error": None,
    "cupy_devices": 1,
    "opencl": None,
    "opencl_error": "ModuleNotFoundError: No module named 'pyopencl'",
    "opencl_devices": [],
}


def test_gpu_rows_with_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rows_gpu, "_gpu_info", lambda: dict(FAKE_GPU))
    report = machine.show_machine(needs=["gpu"])
    gpu0 = report.value("GPU 0") or ""
    assert "NVIDIA H100" in gpu0 and "80.0 GiB" in gpu0 and "9.0" in gpu0
    assert "CUDA" in (report.value("GPU for chapter 7") or "")
    assert report.value("cupy") == "13.3.0, 1 device(s)"


def test_gpu_rows_without_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    info = dict(FAKE_GPU, cuda_available=False, cuda_devices=[], cupy=None, cupy_devices=None)
    info["cupy_error"] = "ModuleNotFoundError: No module named 'cupy'"
    monkeypatch.setattr(rows_gpu, "_gpu_info", lambda: info)
    report = machine.show_machine(needs=["gpu"])
    expected = "none: chapter 7 runs on the simulator / PoCL / NumPy"
    assert report.value("GPU for chapter 7") == expected
    assert "GPU 0" not in [row.item for row in report.rows]


# --------------------------------------------------------------------------- workers


@pytest.mark.parametrize("n", [0, 1, 2, 10, 1000])
def test_busy_work_checksum(n: int) -> None:
    expected = ((n - 1) * n * (2 * n - 1) // 6) % (2**61 - 1) if n else 0
    assert workers.busy_work(n) == expected
    assert workers.busy_work(n) == workers.busy_work(n)


def test_busy_work_validates() -> None:
    with pytest.raises(ValueError, match="n must be >= 0"):
        workers.busy_work(-1)
    with pytest.raises(TypeError):
        workers.busy_work(1.5)  # type: ignore[arg-type]


def test_io_wait() -> None:
    start = time.perf_counter()
    assert workers.io_wait(0.02) == 0.02
    assert time.perf_counter() - start >= 0.015
    assert workers.io_wait(0) == 0.0
    for bad in (-0.1, math.nan, math.inf):
        with pytest.raises(ValueError):
            workers.io_wait(bad)
    with pytest.raises(TypeError):
        workers.io_wait("1")  # type: ignore[arg-type]


def test_hash_block() -> None:
    assert workers.hash_block(b"abc") == hashlib.sha256(b"abc").hexdigest()
    data = bytes(range(256)) * 64  # 16 KiB: hashlib releases the GIL for this
    first = hashlib.sha256(data).digest()
    second = hashlib.sha256(first + data).hexdigest()
    assert workers.hash_block(data, rounds=2) == second
    assert workers.hash_block(bytearray(data)) == workers.hash_block(memoryview(data))
    with pytest.raises(TypeError, match="encode"):
        workers.hash_block("text")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="rounds"):
        workers.hash_block(b"x", rounds=0)


def test_count_primes() -> None:
    assert workers.count_primes(0, 100) == 25
    assert workers.count_primes(0, 2) == 0
    assert workers.count_primes(2, 3) == 1
    assert workers.count_primes(0, 10_000) == 1229
    assert workers.count_primes(0, 5000) + workers.count_primes(5000, 10_000) == 1229
    assert workers.count_primes(7, 7) == 0
    with pytest.raises(ValueError, match="lo must be >= 0"):
        workers.count_primes(-5, 10)
    with pytest.raises(ValueError, match="hi must be >= lo"):
        workers.count_primes(10, 5)


def test_workers_run_under_spawn() -> None:
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        assert pool.submit(workers.busy_work, 100).result(timeout=60) == workers.busy_work(100)
        assert pool.submit(workers.count_primes, 0, 100).result(timeout=60) == 25
        assert pool.submit(workers.hash_block, b"abc").result(timeout=60) == (
            hashlib.sha256(b"abc").hexdigest()
        )


def test_mpi_rows_when_mpiexec_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    failing = shutil.which("false")
    if failing is None:
        pytest.skip("no `false` program")
    monkeypatch.setattr(rows_mpi, "find_mpiexec", lambda: failing)
    monkeypatch.setattr(rows_mpi, "dist_version", lambda *names: "4.0.0")
    report = machine.show_machine(needs=["mpi"])
    row = next(r for r in report.rows if r.item == "mpiexec -n 4")
    assert row.value.startswith("failed (exit 1)")
    assert report.facts["mpi"]["mpiexec_works"] is False


def test_mpi_rows_when_mpiexec_cannot_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rows_mpi, "find_mpiexec", lambda: "/nonexistent/mpiexec-xyz")
    monkeypatch.setattr(rows_mpi, "dist_version", lambda *names: "4.0.0")
    report = machine.show_machine(needs=["mpi"])
    row = next(r for r in report.rows if r.item == "mpiexec -n 4")
    assert row.value.startswith("could not start: FileNotFoundError")
    assert "/nonexistent/mpiexec-xyz" in row.value
    assert report.facts["mpi"]["mpiexec_works"] is False
