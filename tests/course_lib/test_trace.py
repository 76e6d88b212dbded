"""Tests for course_lib.trace: threads, asyncio tasks, processes, capacity, Chrome JSON."""

from __future__ import annotations

import asyncio
import gc
import json
import multiprocessing
import os
import pickle
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import FrozenInstanceError
from pathlib import Path
from typing import Any

import pytest

from course_lib.trace import RemoteTracer, Span, Tracer, TraceSummary
from course_lib.trace import tracer as tracer_module
from tests.course_lib import _trace_workers as workers

METHODS = [m for m in ("fork", "spawn", "forkserver")
           if m in multiprocessing.get_all_start_methods()]


def mp_context(method: str) -> Any:
    """``multiprocessing.get_context(method)`` (typed loosely: stubs lack ``.Process``)."""
    return multiprocessing.get_context(method)


class FakeClock:
    """Returns 0.0, 1.0, 2.0, ... (seconds), one step per call."""

    def __init__(self, step: float = 1.0) -> None:
        self.now = 0.0
        self.step = step

    def __call__(self) -> float:
        value = self.now
        self.now += self.step
        return value


@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Make the tracer's temp directory land in an empty folder we can inspect."""
    if "forkserver" in METHODS:
        # Start the fork server first: it keeps its socket in a temp folder of its own.
        from multiprocessing import forkserver

        forkserver.ensure_running()
    for leftover in list(tracer_module._LIVE_TRACERS):
        leftover.close()  # earlier tests' tracers must not make folders here at fork time
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    yield tmp_path


def leftovers(folder: Path) -> list[str]:
    """Tracer directories still present in ``folder``."""
    return [p.name for p in folder.iterdir() if p.name.startswith("course-trace-")]


# --------------------------------------------------------------------------- basics


def test_span_records_name_worker_and_times() -> None:
    tr = Tracer(clock=FakeClock())
    with tr.span("load"):
        pass
    with tr.span("save", worker="disk"):
        pass
    first, second = tr.spans
    assert (first.name, first.worker, first.start, first.end) == ("load", "MainThread", 0.0, 1.0)
    assert first.thread == "MainThread" and first.task is None and first.pid == os.getpid()
    assert (second.name, second.worker, second.start, second.end) == ("save", "disk", 2.0, 3.0)
    assert second.duration == 1.0


def test_span_is_frozen_and_spans_returns_a_copy() -> None:
    tr = Tracer(clock=FakeClock())
    with tr.span("x"):
        pass
    spans = tr.spans
    with pytest.raises(FrozenInstanceError):
        spans[0].name = "y"  # type: ignore[misc]
    spans.clear()
    assert len(tr.spans) == 1


def test_span_is_recorded_when_the_body_raises() -> None:
    tr = Tracer(clock=FakeClock())
    with pytest.raises(KeyError), tr.span("boom"):
        raise KeyError("x")
    assert [s.name for s in tr.spans] == ["boom"]


def test_spans_are_sorted_by_start() -> None:
    tr = Tracer()
    tr.record("late", 5.0, 6.0)
    tr.record("early", 1.0, 2.0)
    assert [s.name for s in tr.spans] == ["early", "late"]
    tr.record("middle", 3.0, 4.0)  # after a read: the cache must not go stale
    assert [s.name for s in tr.spans] == ["early", "middle", "late"]


def test_record_and_wrap() -> None:
    tr = Tracer(clock=FakeClock())
    tr.record("io", 10.0, 12.5, worker="net")

    @tr.wrap
    def double(x: int) -> int:
        """Double x."""
        return 2 * x

    named = tr.wrap(lambda: "ok", name="lambda work")
    assert double(21) == 42 and named() == "ok"
    assert double.__name__ == "double" and double.__doc__ == "Double x."
    by_name = {s.name: s for s in tr.spans}
    assert by_name["io"].worker == "net" and by_name["io"].duration == 2.5
    assert "test_record_and_wrap.<locals>.double" in by_name
    assert "lambda work" in by_name


def test_wrap_works_on_methods_and_coroutines() -> None:
    tr = Tracer(clock=FakeClock())

    class Worker:
        @tr.wrap
        def run(self, x: int) -> int:
            return x + 1

    async def fetch(x: int) -> int:
        await asyncio.sleep(0)
        return x

    assert Worker().run(1) == 2
    assert asyncio.run(tr.wrap(fetch, name="fetch")(7)) == 7
    assert sorted(s.name for s in tr.spans) == [
        "fetch", "test_wrap_works_on_methods_and_coroutines.<locals>.Worker.run"]


def test_spans_from_four_threads() -> None:
    tr = Tracer()
    barrier = threading.Barrier(4)

    def work() -> None:
        barrier.wait()
        for _ in range(500):
            with tr.span("step"):
                pass

    threads = [threading.Thread(target=work, name=f"worker-{i}") for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    spans = tr.spans
    assert len(spans) == 2000 and tr.dropped == 0
    counts = {name: sum(s.worker == name for s in spans) for name in {s.worker for s in spans}}
    assert counts == {f"worker-{i}": 500 for i in range(4)}
    assert all(s.thread == s.worker for s in spans)


def test_capacity_keeps_the_first_spans_and_counts_the_rest() -> None:
    tr = Tracer(capacity=5, clock=FakeClock())
    for i in range(8):
        with tr.span(f"s{i}"):
            pass
    assert [s.name for s in tr.spans] == [f"s{i}" for i in range(5)]
    assert tr.dropped == 3
    summary = tr.summary()
    assert isinstance(summary, TraceSummary)
    assert "3 spans were dropped" in str(summary) and "capacity=5" in str(summary)
    assert "3 spans were dropped" in summary._repr_html_()


def test_capacity_is_exact_with_many_threads() -> None:
    tr = Tracer(capacity=1000)

    def work() -> None:
        for _ in range(400):
            with tr.span("x"):
                pass

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(tr.spans) == 1000 and tr.dropped == 600


def test_summary_without_drops_lists_workers() -> None:
    tr = Tracer(clock=FakeClock())
    with tr.span("a"):
        pass
    tr.record("b", 0.0, 1.0, worker="other")
    text = str(tr.summary())
    assert "MainThread" in text and "other" in text and "dropped" not in text
    assert "<table>" in tr._repr_html_()
    assert "no spans recorded" in str(Tracer().summary())


@pytest.mark.parametrize("capacity", [-1, 1.5, True])
def test_capacity_must_be_a_non_negative_int(capacity: object) -> None:
    with pytest.raises(ValueError, match="capacity"):
        Tracer(capacity=capacity)  # type: ignore[arg-type]


def test_clear_forgets_spans_and_drops() -> None:
    tr = Tracer(capacity=1)
    tr.record("a", 0.0, 1.0)
    tr.record("b", 0.0, 1.0)
    assert tr.dropped == 1
    tr.clear()
    assert tr.spans == [] and tr.dropped == 0
    tr.record("c", 0.0, 1.0)
    assert [s.name for s in tr.spans] == ["c"]


def test_overhead_per_span_is_small() -> None:
    # Not a timing test of the learner's code: a loose bound (the real cost is ~1 µs)
    # so that a regression to, e.g., building a dataclass per span is noticed.
    tr = Tracer(capacity=20_000)
    best = float("inf")
    for _ in range(3):
        tr.clear()
        start = time.perf_counter()
        for _ in range(20_000):
            with tr.span("x"):
                pass
        best = min(best, (time.perf_counter() - start) / 20_000)
    assert best < 10e-6


# --------------------------------------------------------------------------- asyncio


def test_asyncio_task_names_become_lanes() -> None:
    tr = Tracer()

    async def job() -> None:
        with tr.span("job"):
            await asyncio.sleep(0)

    async def main() -> str:
        await asyncio.gather(
            asyncio.create_task(job(), name="alpha"), asyncio.create_task(job(), name="beta")
        )
        with tr.span("main"):
            pass
        task = asyncio.current_task()
        assert task is not None
        return task.get_name()

    main_name = asyncio.run(main())
    with tr.span("outside"):
        pass
    lanes = {s.name + ":" + s.worker for s in tr.spans}
    assert lanes == {"job:alpha", "job:beta", f"main:{main_name}", "outside:MainThread"}
    assert {s.task for s in tr.spans if s.name == "job"} == {"alpha", "beta"}


def test_notebook_kernel_task_is_not_a_lane() -> None:
    # Jupyter runs each cell inside a task of ipykernel; those spans belong to the thread.
    fake = os.path.join(os.sep, "site-packages", "ipykernel", "kernelbase.py")
    namespace: dict[str, object] = {}
    exec(compile("async def shell_main(tr):\n    with tr.span('cell'):\n        pass\n",
                 fake, "exec"), namespace)
    tr = Tracer()
    asyncio.run(namespace["shell_main"](tr))  # type: ignore[operator]
    (span,) = tr.spans
    assert span.worker == "MainThread" and span.task is None


# --------------------------------------------------------------------------- Chrome JSON


def _traced_sample() -> Tracer:
    tr = Tracer(clock=FakeClock(0.001))
    with tr.span("read"):
        pass
    with tr.span("write", worker="disk"):
        pass
    with tr.span("read"):
        pass
    return tr


def test_to_chrome_structure() -> None:
    trace = _traced_sample().to_chrome()
    assert json.loads(json.dumps(trace)) == trace
    assert trace["displayTimeUnit"] == "ms"
    events = trace["traceEvents"]
    complete = [e for e in events if e["ph"] == "X"]
    assert len(complete) == 3
    for e in complete:
        assert {"name", "ph", "ts", "dur", "pid", "tid"} <= e.keys()
        assert isinstance(e["pid"], int) and isinstance(e["tid"], int)
        assert e["dur"] == pytest.approx(1000.0)  # 1 ms in microseconds
    assert [e["ts"] for e in complete] == pytest.approx([0.0, 2000.0, 4000.0])
    names = {e["tid"]: e["args"]["name"] for e in events
             if e["ph"] == "M" and e["name"] == "thread_name"}
    assert sorted(names.values()) == ["MainThread", "disk"]
    assert {e["tid"] for e in complete} == set(names)
    assert Tracer().to_chrome()["traceEvents"] == []


def test_to_chrome_writes_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tr = _traced_sample()
    target = tmp_path / "trace.json"
    returned = tr.to_chrome(target)
    assert json.loads(target.read_text()) == returned
    assert sorted(p.name for p in tmp_path.iterdir()) == ["trace.json"]

    def broken_dump(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(json, "dump", broken_dump)
    with pytest.raises(OSError, match="disk full"):
        tr.to_chrome(str(target))
    assert json.loads(target.read_text()) == returned  # the old file is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["trace.json"]  # no temp file


def test_timeline_shortcut_returns_axes() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.axes import Axes

    fig, ax = plt.subplots()
    try:
        assert _traced_sample().timeline(ax=ax, title="demo") is ax
        assert isinstance(ax, Axes) and ax.get_title() == "demo"
    finally:
        plt.close(fig)


# --------------------------------------------------------------------------- processes


def _check_child_spans(tr: Tracer, name: str, count: int, before: float, after: float) -> None:
    spans = [s for s in tr.spans if s.name == name]
    assert len(spans) == count, tr.spans
    for s in spans:
        assert s.pid != os.getpid()
        assert before <= s.start <= s.end <= after  # one clock for all processes
        prefix, _, thread = s.worker.partition("/")
        assert prefix and thread == "MainThread" == s.thread


@pytest.mark.parametrize("method", METHODS)
def test_remote_tracer_in_process(method: str, private_tmp: Path) -> None:
    ctx = mp_context(method)
    before = time.perf_counter()
    with Tracer() as tr:
        proc = ctx.Process(target=workers.process_main, args=(tr.for_process(), 3))
        proc.start()
        proc.join(60)
        assert proc.exitcode == 0
    _check_child_spans(tr, "child", 3, before, time.perf_counter())
    assert {s.worker for s in tr.spans if s.name == "child"} == {f"{proc.name}/MainThread"}
    assert [s.worker for s in tr.spans if s.name == "recorded"] == ["explicit lane"]
    assert leftovers(private_tmp) == []  # close() removed the temp directory


@pytest.mark.parametrize("method", METHODS)
def test_remote_tracer_in_pool(method: str, private_tmp: Path) -> None:
    ctx = mp_context(method)
    before = time.perf_counter()
    with Tracer() as tr:
        remote = tr.for_process()
        with ctx.Pool(2, initializer=workers.init_remote, initargs=(remote,)) as pool:
            assert pool.starmap(workers.traced_square, [(remote, i) for i in range(6)]) == [
                i * i for i in range(6)]
            assert pool.apply_async(workers.traced_square, (remote, 7)).get(60) == 49
            assert pool.map(remote.wrap(workers.square, name="wrapped"), range(4)) == [0, 1, 4, 9]
            assert pool.map(workers.uses_initialized, range(3)) == [1, 2, 3]
        # the pool was terminated on leaving its block: every span was already written
    after = time.perf_counter()
    _check_child_spans(tr, "square", 7, before, after)
    _check_child_spans(tr, "wrapped", 4, before, after)
    _check_child_spans(tr, "init-task", 3, before, after)
    assert all("PoolWorker" in s.worker for s in tr.spans)
    assert leftovers(private_tmp) == []


@pytest.mark.parametrize("method", METHODS)
def test_remote_tracer_in_process_pool_executor(method: str, private_tmp: Path) -> None:
    ctx = mp_context(method)
    before = time.perf_counter()
    with Tracer() as tr:
        remote = tr.for_process()
        with ProcessPoolExecutor(2, mp_context=ctx) as pool:
            futures = [pool.submit(workers.traced_square, remote, i) for i in range(4)]
            assert [f.result(60) for f in futures] == [0, 1, 4, 9]
    _check_child_spans(tr, "square", 4, before, time.perf_counter())
    assert leftovers(private_tmp) == []


def test_remote_tracer_pickles_small_and_works_in_the_parent(private_tmp: Path) -> None:
    with Tracer(capacity=3) as tr:
        remote = pickle.loads(pickle.dumps(tr.for_process()))
        assert isinstance(remote, RemoteTracer)
        assert len(pickle.dumps(remote)) < 200
        for _ in range(5):
            with remote.span("here"):
                pass
        remote.record("explicit", 1.0, 2.0)
        assert [s.worker for s in tr.spans] == ["MainThread"] * 3  # main process: no prefix
        assert tr.dropped == 3  # the remote side stops at capacity too
    assert leftovers(private_tmp) == []


def test_capacity_is_shared_by_local_and_remote_spans(private_tmp: Path) -> None:
    with Tracer(capacity=4) as tr:
        remote = tr.for_process()
        for i in range(3):
            tr.record(f"local{i}", i, i + 1.0)
            remote.record(f"remote{i}", i, i + 1.0)
        assert len(tr.spans) == 4 and tr.dropped == 2


def test_clear_discards_child_spans(private_tmp: Path) -> None:
    with Tracer(capacity=2) as tr:
        remote = tr.for_process()
        for _ in range(3):
            remote.record("old", 0.0, 1.0)
        assert tr.dropped == 1
        tr.clear()
        assert tr.spans == [] and tr.dropped == 0
        remote.record("new", 0.0, 1.0)
        assert [s.name for s in tr.spans] == ["new"]


def test_spans_stay_readable_after_close(private_tmp: Path) -> None:
    tr = Tracer()
    with tr:
        tr.for_process().record("remote", 0.0, 1.0)
        tr.record("local", 2.0, 3.0)
    assert tr.closed
    assert [s.name for s in tr.spans] == ["remote", "local"]
    tr.close()  # twice is harmless
    with pytest.raises(RuntimeError, match="closed"):
        tr.for_process()
    assert leftovers(private_tmp) == []


def test_forgotten_tracer_removes_its_directory(private_tmp: Path) -> None:
    tr = Tracer()
    tr.for_process().record("x", 0.0, 1.0)
    assert len(leftovers(private_tmp)) == 1
    del tr
    gc.collect()
    assert leftovers(private_tmp) == []


def test_remote_tracer_after_close_raises_in_parent(private_tmp: Path) -> None:
    tr = Tracer()
    remote = tr.for_process()
    remote.record("fine", 0.0, 1.0)
    tr.close()
    with pytest.raises(RuntimeError, match="closed"):
        remote.record("late", 0.0, 1.0)
    assert [s.name for s in tr.spans] == ["fine"]


@pytest.mark.parametrize("method", ["fork"] if "fork" in METHODS else METHODS[:1])
def test_remote_tracer_after_close_raises_in_child(method: str, private_tmp: Path) -> None:
    ctx = mp_context(method)
    parent_end, child_end = ctx.Pipe()
    tr = Tracer()
    proc = ctx.Process(target=workers.record_then_wait, args=(tr.for_process(), child_end))
    proc.start()
    try:
        assert parent_end.poll(60) and parent_end.recv() == "ready"
        tr.close()
        parent_end.send("closed")
        assert parent_end.poll(60)
        message = parent_end.recv()
    finally:
        proc.join(60)
    assert "closed" in message
    assert [s.name for s in tr.spans] == ["before"]
    assert leftovers(private_tmp) == []


def test_child_capacity_counts_drops(private_tmp: Path) -> None:
    ctx = mp_context(METHODS[0])
    with Tracer(capacity=3) as tr:
        proc = ctx.Process(target=workers.many_spans, args=(tr.for_process(), 10))
        proc.start()
        proc.join(60)
        assert len(tr.spans) == 3 and tr.dropped == 7
        assert "7 spans were dropped" in str(tr.summary())


def test_chrome_trace_separates_processes(private_tmp: Path) -> None:
    ctx = mp_context(METHODS[0])
    with Tracer() as tr:
        with tr.span("parent"):
            proc = ctx.Process(target=workers.process_main, args=(tr.for_process(), 1))
            proc.start()
            proc.join(60)
        trace = tr.to_chrome()
    complete = [e for e in trace["traceEvents"] if e["ph"] == "X"]
    assert {e["pid"] for e in complete} == {os.getpid(), proc.pid}
    lanes = {(e["pid"], e["tid"]): e["args"]["name"] for e in trace["traceEvents"]
             if e["ph"] == "M" and e["name"] == "thread_name"}
    assert lanes[(os.getpid(), next(e["tid"] for e in complete if e["name"] == "parent"))] == (
        "MainThread")
    assert f"{proc.name}/MainThread" in lanes.values()


@pytest.mark.skipif("fork" not in METHODS, reason="needs the fork start method")
def test_tracer_itself_works_in_a_forked_child(private_tmp: Path) -> None:
    ctx = mp_context("fork")
    with Tracer() as tr:
        # under fork the child inherits ``tr`` (no pickling): its copy forwards to files
        proc = ctx.Process(target=workers.process_main, args=(tr, 2))
        proc.start()
        proc.join(60)
        assert proc.exitcode == 0
        with tr.span("parent"):
            pass
    assert sorted(s.worker for s in tr.spans) == sorted(
        [f"{proc.name}/MainThread"] * 2 + ["explicit lane", "MainThread"])
    assert leftovers(private_tmp) == []


def test_tracer_refuses_to_be_pickled() -> None:
    with pytest.raises(TypeError, match="for_process"):
        pickle.dumps(Tracer())


def test_span_dataclass_fields() -> None:
    span = Span("n", "w", 1.0, 3.5, 42, "MainThread")
    assert span.task is None and span.duration == 2.5
