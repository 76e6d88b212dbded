"""Tests for course_lib.viz: every function returns Axes, honours ax, leaves rcParams alone."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest
from matplotlib.axes import Axes

from course_lib import viz
from course_lib.trace import Span, Tracer


@pytest.fixture(autouse=True)
def untouched_rcparams() -> Iterator[None]:
    """No viz function may change global matplotlib state; figures are closed after each test."""
    before = dict(matplotlib.rcParams)
    try:
        yield
        assert dict(matplotlib.rcParams) == before
    finally:
        plt.close("all")


def sample_spans() -> list[Span]:
    return [
        Span("load", "Thread-2", 10.0005, 10.0025, 1, "Thread-2"),
        Span("load", "Thread-1", 10.000, 10.002, 1, "Thread-1"),
        Span("compute", "Thread-1", 10.002, 10.006, 1, "Thread-1"),
        Span("save", "Process-1/MainThread", 10.006, 10.007, 2, "MainThread"),
    ]


def bar_hatches(ax: Axes) -> set[str]:
    return {c.get_hatch() or "" for c in ax.collections}


# --------------------------------------------------------------------------- timeline


def test_timeline_lanes_units_and_legend() -> None:
    ax = viz.timeline(sample_spans(), title="Three workers")
    assert isinstance(ax, Axes)
    assert ax.get_title() == "Three workers"
    # lanes in order of their first span, top to bottom
    assert [t.get_text() for t in ax.get_yticklabels()] == [
        "Thread-1", "Thread-2", "Process-1/MainThread"]
    assert "ms" in ax.get_xlabel() and ax.get_ylabel() == "worker"
    legend = ax.get_legend()
    assert legend is not None
    assert [t.get_text() for t in legend.get_texts()] == ["load", "compute", "save"]
    assert len(bar_hatches(ax)) == 3  # hatching tells the names apart, not colour alone
    # bars start at 0 ms (relative to the first span) and end near 7 ms
    lo, hi = ax.get_xlim()
    assert lo == pytest.approx(0.0, abs=1e-9) and 7.0 <= hi < 7.5


def test_timeline_labels_wide_bars_with_span_names() -> None:
    ax = viz.timeline(sample_spans())
    labels = {t.get_text() for t in ax.texts}
    assert {"load", "compute", "save"} <= labels
    ax2 = viz.timeline(sample_spans(), label_spans=False)
    assert len(ax2.texts) == 0


def test_timeline_uses_given_axes_and_accepts_a_tracer() -> None:
    tr = Tracer()
    tr.record("a", 1.0, 2.0, worker="w1")
    tr.record("b", 1.5, 3.0, worker="w2")
    fig, ax = plt.subplots()
    figures = plt.get_fignums()
    assert viz.timeline(tr, ax=ax) is ax
    assert plt.get_fignums() == figures  # no new figure
    assert [t.get_text() for t in ax.get_yticklabels()] == ["w1", "w2"]
    assert ax.get_title() == ""


def test_timeline_seconds_lanes_and_t0() -> None:
    spans = [Span("long", "a", 0.0, 30.0, 1, "a"), Span("short", "b", 5.0, 6.0, 1, "b")]
    ax = viz.timeline(spans, lanes=["b", "c"], t0=-1.0)
    assert "(s)" in ax.get_xlabel() and "t0" in ax.get_xlabel()
    assert [t.get_text() for t in ax.get_yticklabels()] == ["b", "c", "a"]


def test_timeline_without_spans() -> None:
    ax = viz.timeline([])
    assert any("no spans" in t.get_text() for t in ax.texts)


def test_timeline_with_many_spans_and_names() -> None:
    spans = [Span(f"job{i % 25}", f"w{i % 4}", i * 0.001, i * 0.001 + 0.0008, 1, "t")
             for i in range(2000)]
    ax = viz.timeline(spans)
    legend = ax.get_legend()
    assert legend is not None
    assert legend.get_texts()[-1].get_text() == "(+5 more names)"
    assert len(ax.texts) == 0  # too many spans to label each one


# --------------------------------------------------------------------------- speed-up


def test_speedup_plot_fits_amdahl() -> None:
    ax = viz.speedup_plot([1, 2, 4], [1.0, 1.8, 3.0])
    assert isinstance(ax, Axes)
    labels = [str(line.get_label()) for line in ax.get_lines()]
    assert "measured" in labels
    assert any(label.startswith("ideal") for label in labels)
    assert any(label.startswith("Amdahl") and "fitted" in label for label in labels)
    assert ax.get_xlabel() == "workers" and "speed-up" in ax.get_ylabel()
    assert ax.get_title() == "Speed-up vs workers"
    styles = {line.get_linestyle() for line in ax.get_lines()}
    assert len(styles) == 3  # lines differ in style, not only colour


def test_speedup_plot_with_given_axes_fraction_and_title() -> None:
    fig, ax = plt.subplots()
    out = viz.speedup_plot([1, 2], [1.0, 1.5], ax=ax, serial_fraction=0.25, title="mine")
    assert out is ax and ax.get_title() == "mine"
    assert any("0.250 (given)" in str(line.get_label()) for line in ax.get_lines())


def test_speedup_plot_single_point_and_bad_input() -> None:
    ax = viz.speedup_plot([1], [1.0])
    assert not any(str(line.get_label()).startswith("Amdahl") for line in ax.get_lines())
    with pytest.raises(ValueError):
        viz.speedup_plot([1, 2], [1.0])


def test_laws_plot() -> None:
    ax = viz.laws_plot(0.9, 32)
    assert isinstance(ax, Axes)
    assert "0.9" in ax.get_title()
    labels = " ".join(str(line.get_label()) for line in ax.get_lines())
    assert "Amdahl" in labels and "Gustafson" in labels
    assert ax.get_xlabel() == "workers" and "speed-up" in ax.get_ylabel()
    fig, given = plt.subplots()
    assert viz.laws_plot(1.0, 8, ax=given) is given
    with pytest.raises(ValueError):
        viz.laws_plot(1.5)
    with pytest.raises(ValueError):
        viz.laws_plot(0.5, 0)


def test_amdahl_explorer_widgets() -> None:
    import ipywidgets

    figures = plt.get_fignums()
    box = viz.amdahl_explorer(16)
    controls, output = box.children
    fraction, workers = controls.children
    assert isinstance(fraction, ipywidgets.FloatSlider)
    assert isinstance(workers, ipywidgets.IntSlider) and workers.max == 16
    assert isinstance(output, ipywidgets.Output)
    fraction.value = 0.5  # redraws without error
    workers.value = 4
    assert plt.get_fignums() == figures  # no pyplot figures pile up


def test_amdahl_explorer_without_ipywidgets(monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # makes the import fail
    assert viz.amdahl_explorer(8) is None
    assert "pip install ipywidgets" in capsys.readouterr().out
    fig = plt.gcf()
    assert len(fig.axes) == 4
    assert sorted(ax.get_title() for ax in fig.axes) == sorted(
        f"Amdahl vs Gustafson, parallel fraction p = {p:g}" for p in (0.5, 0.9, 0.95, 0.99))


# --------------------------------------------------------------------------- CPU vs wall


@dataclass
class FakeTiming:
    median: float
    cpu_median: float


def test_cpu_wall_bars() -> None:
    timings = {"threads": FakeTiming(0.020, 0.019), "processes": FakeTiming(0.011, 0.0005)}
    ax = viz.cpu_wall_bars(timings, title="GIL")
    assert isinstance(ax, Axes) and ax.get_title() == "GIL"
    assert len(ax.patches) == 4
    assert {p.get_hatch() or "" for p in ax.patches} == {"", "//"}
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    assert ticks[0].startswith("threads") and "CPU/wall 0.95" in ticks[0]
    assert "(ms)" in ax.get_ylabel()
    legend = ax.get_legend()
    assert legend is not None and len(legend.get_texts()) == 2


def test_cpu_wall_bars_given_axes() -> None:
    fig, ax = plt.subplots()
    out = viz.cpu_wall_bars({"io": FakeTiming(1.5, 0.0)}, ax=ax)
    assert out is ax and "(s)" in ax.get_ylabel()
    assert "n/a" not in ax.get_xticklabels()[0].get_text()
    assert viz.cpu_wall_bars({"zero": FakeTiming(0.0, 0.0)}) is not None


def test_importing_viz_does_not_import_pyplot() -> None:
    code = "import sys, course_lib.viz, course_lib.trace; print('matplotlib' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60, check=True)
    assert result.stdout.strip() == "False"
