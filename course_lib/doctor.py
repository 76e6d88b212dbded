"""``python -m course_lib doctor``: the machine report plus package versions and advice."""

from __future__ import annotations

import importlib.metadata
import json
import sys
from typing import Any, TextIO

from . import __version__
from .machine import NEEDS, MachineReport, MachineRow, show_machine

__all__ = ["PACKAGES", "doctor_report", "package_rows", "run_doctor"]

_BASE = "pip install -e . (make lab installs it)"

#: (row label, distribution names to try, advice when missing)
PACKAGES: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("jupyterlab", ("jupyterlab",), _BASE),
    ("nbgrader", ("nbgrader",), _BASE),
    ("ipywidgets", ("ipywidgets",), _BASE),
    ("matplotlib", ("matplotlib",), _BASE),
    ("numpy", ("numpy",), _BASE),
    ("psutil", ("psutil",), _BASE),
    ("ipyparallel", ("ipyparallel",), "pip install -e '.[distributed]'"),
    ("mpi4py", ("mpi4py",), "pip install -e '.[mpi]'"),
    ("numba", ("numba",), "pip install -e '.[gpu]'"),
    ("cupy", ("cupy", "cupy-cuda12x", "cupy-cuda13x", "cupy-cuda11x"), "pip install -e '.[gpu]'"),
)


def _version(names: tuple[str, ...]) -> str | None:
    for name in names:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def package_rows(skip: set[str] | None = None) -> list[MachineRow]:
    """One row per course package: its version, or "not installed" and how to get it."""
    rows: list[MachineRow] = []
    for label, names, advice in PACKAGES:
        if skip and label in skip:
            continue
        version = _version(names)
        if version is None:
            rows.append(MachineRow(label, "not installed", advice))
        else:
            rows.append(MachineRow(label, version))
    return rows


def doctor_report() -> MachineReport:
    """The full report: :func:`show_machine` with every need, then package versions."""
    report = show_machine(needs=NEEDS)
    report.title = f"Parallel Python doctor (course_lib {__version__})"
    seen = {row.item for row in report.rows}
    extra = package_rows(skip=seen)
    report.rows.extend(extra)
    report.facts["course_lib"] = __version__
    report.facts["packages"] = {label: _version(names) for label, names, _ in PACKAGES}
    return report


def _text(report: MachineReport) -> str:
    lines = [str(report), ""]
    todo = report.advice
    if todo:
        lines.append("What to do:")
        lines.extend(f"  - {item}" for item in todo)
    else:
        lines.append("Nothing to do: this machine has everything the course uses.")
    return "\n".join(lines)


def run_doctor(as_json: bool = False, stream: TextIO | None = None) -> int:
    """Print the doctor report (text or JSON) to ``stream``; always returns 0."""
    out = stream if stream is not None else sys.stdout
    report = doctor_report()
    if as_json:
        payload: dict[str, Any] = report.to_dict()
        payload["course_lib"] = __version__
        out.write(json.dumps(payload, indent=2, default=str) + "\n")
    else:
        out.write(_text(report) + "\n")
    out.flush()
    return 0
