"""``python -m course_lib doctor`` and its pieces."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from course_lib import doctor, machine
from course_lib.__main__ import main

ROOT = Path(__file__).resolve().parents[2]


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "course_lib", *args],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def test_doctor_text() -> None:
    result = _cli("doctor")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for item in ("usable cores", "start method", "GIL", "memory", "jupyterlab", "nbgrader"):
        assert item in out
    for item in ("mpi4py", "GPU for chapter 7", "redis-server", "celery"):
        assert item in out
    assert "What to do" in out or "Nothing to do" in out


def test_doctor_json() -> None:
    result = _cli("doctor", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["facts"]["usable_cores"] >= 1
    items = {row["item"] for row in data["rows"]}
    assert {"usable cores", "start method", "GIL", "mpi4py", "celery", "ipyparallel"} <= items
    assert all(set(row) == {"item", "value", "advice"} for row in data["rows"])
    assert data["course_lib"]


def test_doctor_survives_a_bad_env() -> None:
    env = dict(os.environ, COURSE_START_METHOD="bogus")
    result = _cli("doctor", "--json", env=env)
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)["rows"]
    row = next(r for r in rows if r["item"] == "start method")
    assert "COURSE_START_METHOD" in row["advice"]


@pytest.mark.parametrize("args", [(), ("frobnicate",), ("doctor", "--nope")])
def test_bad_usage_exits_2(args: tuple[str, ...]) -> None:
    result = _cli(*args)
    assert result.returncode == 2
    assert "usage:" in result.stderr
    assert result.stdout == ""


def _fast_report(needs: Any = ()) -> machine.MachineReport:
    return machine.MachineReport(rows=[machine.MachineRow("usable cores", "2 of 2")], facts={})


def test_main_in_process(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(doctor, "show_machine", _fast_report)
    assert main(["doctor", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["rows"][0]["item"] == "usable cores"
    assert "jupyterlab" in data["facts"]["packages"]


def test_package_rows_advice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        doctor,
        "PACKAGES",
        (
            ("nothere", ("surely-not-a-real-dist-xyz",), "pip install -e '.[gpu]'"),
            ("pytest", ("pytest",), "x"),
        ),
    )
    rows = doctor.package_rows()
    assert rows[0] == machine.MachineRow("nothere", "not installed", "pip install -e '.[gpu]'")
    assert rows[1].value == pytest.__version__
    assert doctor.package_rows(skip={"nothere"})[0].item == "pytest"


def test_run_doctor_text(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(doctor, "show_machine", _fast_report)
    buf = io.StringIO()
    assert doctor.run_doctor(stream=buf) == 0
    assert "usable cores" in buf.getvalue()
