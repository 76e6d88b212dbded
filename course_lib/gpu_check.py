"""``python -m course_lib.gpu_check``: run chapter 7 and its GPU benchmarks, write a report.

On a machine with an NVIDIA GPU (``make gpu-check``) it executes the chapter's
source notebooks there (solutions and hidden tests included), so that every CUDA
and CuPy cell runs on the device, runs the GPU figures of ``python -m benchmarks``
(CuPy SAXPY bandwidth as a fraction of the device's peak, the tiled matmul against
the naive kernel, GPU against NumPy), times copies over PCIe and writes a Markdown
report: the device, the backends the notebooks picked, each notebook's result,
time and cells run, each exercise's tests, each figure against its goal, the
transfers and ``nvidia-smi``. Without a GPU it runs all the same and
says "no GPU: simulator/PoCL path".

Exit status: 0 when every notebook ran cleanly (no error, nothing on stderr)
and no figure failed (a skipped figure is fine), 1 otherwise, 2 for bad usage.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from course_lib.fileio import atomic_write
from course_lib.gpu.probe import GPUProbe, detect_cuda_gpu

__all__ = [
    "GPU_FIGURES",
    "BenchmarkResult",
    "NotebookResult",
    "main",
    "render_report",
    "run_benchmarks",
    "run_notebook",
]

REPO = Path(__file__).resolve().parent.parent
CHAPTER_DIR = REPO / "graders" / "source" / "ch07_gpu"
GPU_FIGURES = ("cupy_saxpy_bandwidth_fraction", "numba_cuda_tiled_vs_naive_matmul",
               "gpu_vs_numpy_speedup")
CPU_FIGURES = ("numba_njit_vs_python", "numba_prange_speedup", "opencl_pocl_vs_numpy")
_MARK = "COURSE_GPU_CHECK "


@dataclass
class NotebookResult:
    """One executed notebook: clean or not, how long it took, what went wrong."""

    name: str
    seconds: float
    problems: list[str] = field(default_factory=list)
    cells: int = 0
    """Code cells in the notebook."""
    executed: int = 0
    """Code cells that ran (an execution count was given)."""
    exercises: dict[str, bool] = field(default_factory=dict)
    """Each exercise's test cell (nbgrader grade id): passed or not."""

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class BenchmarkResult:
    """One figure: ``status`` is "measured", "skipped" or "failed"."""

    name: str
    status: str
    goal: str = ""
    value: float | None = None
    unit: str = ""
    detail: str = ""

    @property
    def verdict(self) -> str:
        """"met", "NOT met", or "" (informational, skipped or failed)."""
        parts = self.goal.split()
        if self.value is None or len(parts) != 2 or parts[0] not in (">=", "<="):
            return ""
        try:
            target = float(parts[1])
        except ValueError:
            return ""
        met = self.value >= target if parts[0] == ">=" else self.value <= target
        return "met" if met else "NOT met"


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH")
                                     else "")
    env.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    return env


def run_notebook(path: Path, *, cell_timeout: float = 600.0) -> NotebookResult:
    """Execute ``path`` in a fresh kernel (outputs are not saved); list errors and stderr."""
    nbformat: Any = importlib.import_module("nbformat")
    client_class: Any = importlib.import_module("nbclient").NotebookClient

    nb = nbformat.read(path, as_version=4)
    began = time.perf_counter()
    problems: list[str] = []
    try:
        client_class(nb, timeout=int(cell_timeout), kernel_name="python3", allow_errors=True,
                     resources={"metadata": {"path": str(path.parent)}}).execute()
    except Exception as exc:  # noqa: BLE001 - a kernel that died or timed out is a result
        problems.append(f"execution stopped: {type(exc).__name__}: {str(exc)[:300]}")
    code_cells = executed = 0
    exercises: dict[str, bool] = {}
    for index, cell in enumerate(nb.cells):
        if cell.get("cell_type") != "code":
            continue
        code_cells += 1
        executed += cell.get("execution_count") is not None
        failed = False
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                failed = True
                problems.append(f"cell {index}: {output.get('ename')}: "
                                f"{str(output.get('evalue'))[:300]}")
            elif output.get("output_type") == "stream" and output.get("name") == "stderr":
                problems.append(f"cell {index} wrote to stderr: {str(output.get('text'))[:300]!r}")
        grading = cell.get("metadata", {}).get("nbgrader", {})
        if grading.get("grade") and grading.get("grade_id"):
            exercises[str(grading["grade_id"])] = (not failed
                                                   and cell.get("execution_count") is not None)
    return NotebookResult(path.name, time.perf_counter() - began, problems, code_cells, executed,
                          exercises)


_BENCH_CODE = f"""
import json, sys
import benchmarks.gpu  # noqa: F401  (registers the chapter's figures)
from benchmarks import FIGURES, Skip
rows = []
for name in sys.argv[1].split(","):
    fig = FIGURES.get(name)
    if fig is None:
        rows.append({{"name": name, "status": "failed", "detail": "unknown figure"}})
        continue
    try:
        result = fig.measure()
        rows.append({{"name": name, "status": "measured", "goal": fig.goal, "value": result.value,
                     "unit": result.unit, "detail": result.detail}})
    except Skip as reason:
        rows.append({{"name": name, "status": "skipped", "goal": fig.goal, "detail": str(reason)}})
    except Exception as exc:
        rows.append({{"name": name, "status": "failed", "goal": fig.goal,
                     "detail": f"{{type(exc).__name__}}: {{exc}}"}})
print({_MARK!r} + json.dumps(rows), flush=True)
"""


def run_benchmarks(names: Sequence[str], *, timeout: float = 1800.0) -> list[BenchmarkResult]:
    """Measure the named figures in a child process (a crash there cannot stop the report)."""
    if not names:
        return []
    try:
        run = subprocess.run([sys.executable, "-c", _BENCH_CODE, ",".join(names)],
                             capture_output=True, text=True, timeout=timeout, cwd=REPO,
                             env=_child_env(), stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return [BenchmarkResult(n, "failed", detail=f"the benchmarks took over {timeout:g} s")
                for n in names]
    for line in reversed(run.stdout.splitlines()):
        if line.startswith(_MARK):
            rows: list[dict[str, Any]] = json.loads(line[len(_MARK):])
            return [BenchmarkResult(**row) for row in rows]
    why = (run.stderr.strip().splitlines() or ["no output"])[-1]
    return [BenchmarkResult(n, "failed", detail=f"benchmark process exited {run.returncode}: {why}")
            for n in names]


def nvidia_smi(timeout: float = 60.0) -> str:
    """``nvidia-smi``'s output, or why there is none."""
    import shutil

    program = shutil.which("nvidia-smi")
    if program is None:
        return "nvidia-smi not found: no NVIDIA driver on this machine"
    try:
        run = subprocess.run([program], capture_output=True, text=True, timeout=timeout,
                             stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"nvidia-smi failed: {exc}"
    text = (run.stdout + run.stderr).strip()
    return text or f"nvidia-smi printed nothing (exit {run.returncode})"


_TRANSFER_CODE = f"""
import json
from course_lib.gpu import choose_backends, transfer_study
choose_backends(opencl=False)
study = transfer_study()
print({_MARK!r} + json.dumps({{"measured": study.measured, "device": study.device,
      "sizes": study.sizes, "host_to_device": study.host_to_device,
      "on_device": study.on_device, "device_to_host": study.device_to_host}}))
"""


def run_transfers(timeout: float = 600.0) -> dict[str, Any]:
    """Host↔device copy times from :func:`course_lib.gpu.transfer_study`, in a child process
    (measured on a GPU; the model otherwise, marked ``measured: False``)."""
    try:
        run = subprocess.run([sys.executable, "-c", _TRANSFER_CODE], capture_output=True,
                             text=True, timeout=timeout, cwd=REPO, env=_child_env(),
                             stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return {"error": f"the transfer study took over {timeout:g} s"}
    for line in reversed(run.stdout.splitlines()):
        if line.startswith(_MARK):
            data: dict[str, Any] = json.loads(line[len(_MARK):])
            return data
    return {"error": "the transfer study failed: "
                     + (run.stderr.strip().splitlines() or ["no output"])[-1]}


def _transfer_lines(transfers: dict[str, Any] | None) -> list[str]:
    if not transfers:
        return ["not run"]
    if "error" in transfers:
        return [f"FAILED: {transfers['error']}"]
    source = (f"measured on {transfers['device']}" if transfers["measured"] else
              "NOT measured: no GPU, these are the model's figures (PCIe 4.0 x16 ~25 GB/s)")
    lines = [source, "", "| size | host → device | device → host | on the device |",
             "| --- | --- | --- | --- |"]
    def rate(size: int, seconds: float, factor: float = 1.0) -> str:
        return f"{factor * size / seconds / 1e9:.1f} GB/s" if seconds > 0 else "?"

    for i, size in enumerate(transfers["sizes"]):
        lines.append(f"| {size / 2**20:g} MiB | {rate(size, transfers['host_to_device'][i])} | "
                     f"{rate(size, transfers['device_to_host'][i])} | "
                     f"{rate(size, transfers['on_device'][i], 2.0)} |")
    return lines


def _backends_text(timeout: float = 120.0) -> str:
    """What ``choose_backends()`` picks in a fresh process (as the notebooks will)."""
    code = "from course_lib.gpu import choose_backends\nprint(choose_backends())\n"
    try:
        run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             timeout=timeout, cwd=REPO, env=_child_env(), stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return f"choose_backends() took over {timeout:g} s"
    if run.returncode != 0:
        return "choose_backends() failed: " + (run.stderr.strip().splitlines() or ["?"])[-1]
    return run.stdout.strip()


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_report(probe: GPUProbe, backends: str, notebooks: Sequence[NotebookResult],
                  benchmarks: Sequence[BenchmarkResult], *, when: str | None = None,
                  smi: str | None = None, transfers: dict[str, Any] | None = None) -> str:
    """The Markdown report: device, backends, every notebook's cells and exercise tests,
    the GPU figures, the host↔device transfers and ``nvidia-smi``."""
    stamp = when or datetime.datetime.now().isoformat(timespec="seconds")
    lines = ["# GPU check: chapter 7", "",
             f"- when: {stamp}",
             f"- machine: {platform.node()} ({platform.system()} {platform.machine()}), "
             f"Python {platform.python_version()}"]
    if probe.found:
        for device in probe.devices:
            lines.append(f"- **GPU {device.index}:** {device.describe()} (driver {probe.driver})")
    else:
        lines.append(f"- **no GPU: simulator/PoCL path** ({probe.error or 'no device found'})")
    lines += ["", "## Backends", "", "```text", backends, "```", ""]

    lines += ["## Notebooks", ""]
    if notebooks:
        lines += ["| notebook | result | seconds | problems | code cells run |",
                  "| --- | --- | --- | --- | --- |"]
        for nb in notebooks:
            result = "ok" if nb.ok else "FAILED"
            problems = "; ".join(nb.problems) if nb.problems else ""
            lines.append(f"| {nb.name} | {result} | {nb.seconds:.1f} | {_cell(problems)} | "
                         f"{nb.executed}/{nb.cells} |")
        tests = [(nb.name, grade_id, ok)
                 for nb in notebooks for grade_id, ok in nb.exercises.items()]
        lines += ["", "### Exercise tests", ""]
        if tests:
            lines += ["| notebook | test cell | result |", "| --- | --- | --- |"]
            lines += [f"| {name} | {grade_id} | {'pass' if ok else 'FAIL'} |"
                      for name, grade_id, ok in tests]
        else:
            lines.append("none found")
    else:
        lines.append("not run")
    lines += ["", "## Benchmarks", ""]
    if benchmarks:
        lines += ["| figure | value | goal | verdict | detail |", "| --- | --- | --- | --- | --- |"]
        for b in benchmarks:
            value = f"{b.value:.4g} {b.unit}" if b.value is not None else b.status
            verdict = b.verdict or b.status
            lines.append(f"| {b.name} | {value} | {_cell(b.goal)} | {verdict} | "
                         f"{_cell(b.detail)} |")
    else:
        lines.append("not run")
    lines += ["", "## Transfers over PCIe", "", *_transfer_lines(transfers)]
    lines += ["", "## nvidia-smi", "", "```text", smi or "not run", "```"]
    failed = [nb.name for nb in notebooks if not nb.ok] + \
             [b.name for b in benchmarks if b.status == "failed"] + \
             (["transfers"] if transfers and "error" in transfers else [])
    lines += ["", "## Verdict", "",
              "OK" if not failed else f"PROBLEMS in: {', '.join(failed)}", ""]
    return "\n".join(lines)


def _select(choice: str) -> list[str]:
    if choice == "none":
        return []
    if choice == "gpu":
        return list(GPU_FIGURES)
    if choice == "all":
        return list(CPU_FIGURES) + list(GPU_FIGURES)
    return [name.strip() for name in choice.split(",") if name.strip()]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib.gpu_check", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("gpu-check-report.md"),
                        help="where to write the Markdown report (default: %(default)s)")
    parser.add_argument("--notebooks", type=Path, default=CHAPTER_DIR, metavar="DIR",
                        help="folder of notebooks to execute (default: chapter 7's sources)")
    parser.add_argument("--no-notebooks", action="store_true", help="do not execute notebooks")
    parser.add_argument("--benchmarks", default="gpu", metavar="WHICH",
                        help="gpu (default), all, none, or comma-separated figure names")
    parser.add_argument("--cell-timeout", type=float, default=600.0, metavar="SECONDS")
    args = parser.parse_args(argv)

    notebooks_dir: Path = args.notebooks
    paths: list[Path] = []
    if not args.no_notebooks:
        if not notebooks_dir.is_dir():
            parser.error(f"--notebooks {notebooks_dir}: no such folder")
        paths = sorted(notebooks_dir.glob("*.ipynb"))
        if not paths:
            parser.error(f"--notebooks {notebooks_dir}: no .ipynb files there")

    # The notebooks' kernels and the benchmark process import course_lib from this checkout.
    os.environ.update({"PYTHONPATH": _child_env()["PYTHONPATH"]})
    probe = detect_cuda_gpu()
    print("GPU:", probe.devices[0].describe() if probe.found else
          f"no GPU: simulator/PoCL path ({probe.error})", flush=True)
    backends = _backends_text()
    results: list[NotebookResult] = []
    for path in paths:
        print(f"running {path.name} ...", flush=True)
        result = run_notebook(path, cell_timeout=args.cell_timeout)
        print(f"  {'ok' if result.ok else 'FAILED'} in {result.seconds:.1f} s", flush=True)
        for problem in result.problems:
            print(f"  - {problem}", flush=True)
        results.append(result)
    names = _select(args.benchmarks)
    if names:
        print(f"measuring {', '.join(names)} ...", flush=True)
    figures = run_benchmarks(names)
    print("timing host <-> device copies ...", flush=True)
    transfers = run_transfers()
    smi = nvidia_smi()
    report = render_report(probe, backends, results, figures, smi=smi, transfers=transfers)
    out: Path = args.out
    atomic_write(out, report)
    print(report)
    print(f"report written to {out}")
    bad = (any(not r.ok for r in results) or any(f.status == "failed" for f in figures)
           or "error" in transfers)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
