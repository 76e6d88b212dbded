"""course_lib.processes and graders.checks.processes: helpers, bad input, leak checks."""

from __future__ import annotations

import functools
import multiprocessing
import os
import pickle
import queue
import signal
import sys
import threading
import time
import types
from multiprocessing import shared_memory
from pathlib import Path

import numpy as np
import pytest

from course_lib import processes as P
from course_lib.processes import tasks as P_tasks
from course_lib.workers import busy_work, io_wait
from graders.checks import (
    clean_processes,
    expect_exitcodes,
    no_process_leaks,
    no_shm_leaks,
    quiet_children,
)

METHODS = [m for m in ("fork", "spawn") if m in multiprocessing.get_all_start_methods()]


@pytest.fixture(params=METHODS)
def ctx(request: pytest.FixtureRequest,
        monkeypatch: pytest.MonkeyPatch) -> multiprocessing.context.BaseContext:
    """A context for each start method, also chosen for course_lib through the environment."""
    monkeypatch.setenv("COURSE_START_METHOD", request.param)
    return multiprocessing.get_context(request.param)


def _nested() -> object:
    def inner(x: int) -> int:
        return x

    return inner


# --------------------------------------------------------------------------- check_picklable


def test_check_picklable_accepts_module_functions_and_partials() -> None:
    for method in ("fork", "spawn", "forkserver"):
        P.check_picklable(P.square, method)
        P.check_picklable(functools.partial(P.load_and_predict, seconds=0.1), method)


@pytest.mark.parametrize("fn", [lambda x: x, _nested()], ids=["lambda", "nested"])
def test_check_picklable_rejects_lambdas_and_local_functions(fn: object) -> None:
    expected = "cannot be sent to a worker process.*top level of a .py module"
    with pytest.raises(TypeError, match=expected):
        P.check_picklable(fn, "fork")  # type: ignore[arg-type]


def test_check_picklable_rejects_notebook_functions_except_under_fork(
        monkeypatch: pytest.MonkeyPatch) -> None:
    notebook = types.ModuleType("__main__")  # like a kernel's __main__: no __file__

    def double(x: int) -> int:
        return 2 * x

    double.__module__ = "__main__"
    double.__qualname__ = "double"
    notebook.double = double  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "__main__", notebook)
    P.check_picklable(double, "fork")
    for method in ("spawn", "forkserver"):
        with pytest.raises(TypeError, match=f"defined in this notebook.*'{method}'.*module"):
            P.check_picklable(double, method)
    monkeypatch.setattr(notebook, "__file__", "/tmp/script.py", raising=False)
    P.check_picklable(double, "spawn")  # a script's __main__ is re-imported by spawn: fine


def test_check_picklable_rejects_non_callables() -> None:
    with pytest.raises(TypeError, match="expected a function"):
        P.check_picklable(42, "spawn")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- pool_map


def test_pool_map_keeps_order_and_leaves_nothing(ctx: multiprocessing.context.BaseContext) -> None:
    with clean_processes():
        assert P.pool_map(P.square, range(23), workers=2, chunksize=4, ctx=ctx) == [
            x * x for x in range(23)
        ]
        assert P.pool_map(busy_work, [10, 20], workers=2) == [busy_work(10), busy_work(20)]


def test_pool_map_with_no_items_starts_nothing() -> None:
    with clean_processes():
        assert P.pool_map(P.square, [], workers=3) == []


@pytest.mark.parametrize("workers,error,text", [(0, ValueError, "at least 1"),
                                                (-2, ValueError, "at least 1"),
                                                (True, TypeError, "bool"), (1.5, TypeError, "int")])
def test_pool_map_rejects_bad_worker_counts(workers: object, error: type[Exception],
                                            text: str) -> None:
    with pytest.raises(error, match=text):
        P.pool_map(P.square, [1], workers=workers)  # type: ignore[arg-type]


def test_pool_map_rejects_bad_chunksize_and_timeout() -> None:
    with pytest.raises(ValueError, match="chunksize must be at least 1"):
        P.pool_map(P.square, [1], workers=1, chunksize=0)
    with pytest.raises(ValueError, match="timeout must be positive"):
        P.pool_map(P.square, [1], workers=1, timeout=0)


def test_pool_map_rejects_a_lambda_before_starting_a_pool() -> None:
    with clean_processes(), pytest.raises(TypeError, match="cannot be sent to a worker"):
        P.pool_map(lambda x: x, [1, 2], workers=2)


def test_pool_map_turns_a_worker_exception_into_worker_error(
        ctx: multiprocessing.context.BaseContext) -> None:
    with clean_processes():
        with pytest.raises(P.WorkerError, match=r"task 3 \(item -1\) raised ValueError") as caught:
            P.pool_map(P.make_bytes, [1, 2, 3, -1, 5], workers=2, chunksize=2, ctx=ctx)
    assert caught.value.index == 3 and caught.value.item == -1
    assert isinstance(caught.value.__cause__, ValueError)
    assert pickle.loads(pickle.dumps(caught.value)).index == 3


def test_pool_map_bounds_the_wait_and_stops_the_pool() -> None:
    began = time.monotonic()
    with clean_processes():
        with pytest.raises(TimeoutError, match="the pool was stopped"):
            P.pool_map(io_wait, [0.0, 10.0], workers=2, chunksize=1, timeout=0.5)
    assert time.monotonic() - began < 8


def test_pool_map_progress_bar_goes_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    assert P.pool_map(P.square, range(5), workers=1, progress=True) == [0, 1, 4, 9, 16]
    captured = capsys.readouterr()
    assert "square" in captured.out and captured.err == ""


# --------------------------------------------------------------------------- shared memory


def test_shared_array_is_shared_with_workers_and_unlinked(
        ctx: multiprocessing.context.BaseContext) -> None:
    with no_shm_leaks(), no_process_leaks():
        with P.SharedArray.copy_of(np.arange(8.0)) as shared:
            workers = [ctx.Process(target=P.scale_shared, args=(shared.spec, lo, lo + 4, 3.0))
                       for lo in (0, 4)]
            for w in workers:
                w.start()
            for w in workers:
                w.join(30)
            expect_exitcodes(workers, 0)
            np.testing.assert_array_equal(shared.array, np.arange(8.0) * 3)
            assert P.sum_shared(shared.spec, 0, 4) == 18.0
            assert P.segment_exists(shared.name)
            if Path("/dev/shm").is_dir():
                assert shared.name in P.shm_segments()
        assert shared.closed and not P.segment_exists(shared.name)
        with pytest.raises(ValueError, match="closed.*copy what you need"):
            shared.array  # noqa: B018


def test_shared_array_handles_empty_and_rejects_bad_input() -> None:
    with no_shm_leaks():
        with P.SharedArray(0) as empty:
            assert empty.array.shape == (0,)
        with pytest.raises(ValueError, match="negative"):
            P.SharedArray((2, -1))
        with pytest.raises(TypeError, match="Python objects"):
            P.SharedArray(3, dtype=object)
        with P.SharedArray((2, 3), "int32") as grid:
            with pytest.raises(TypeError, match=r"send shared.spec"):
                pickle.dumps(grid)
            assert grid.spec.shape == (2, 3) and np.dtype(grid.spec.dtype) == np.int32


def test_shared_array_close_with_a_live_view_unlinks_and_explains() -> None:
    with no_shm_leaks():
        shared = P.SharedArray.copy_of(np.ones(4))
        view = shared.array[1:]
        with pytest.raises(BufferError, match="still point into it"):
            shared.close()
        assert not P.segment_exists(shared.name)
        assert view.sum() == 3.0  # the mapping lives on with the view
        del view
        shared.close()  # idempotent


def test_attach_array_to_a_missing_block_explains() -> None:
    with pytest.raises(FileNotFoundError, match="already unlinked"):
        with P.attach_array(P.ArraySpec("psm_no_such_block_here", (1,), "<f8")):
            pass


def test_segment_exists_rejects_an_empty_name() -> None:
    with pytest.raises(ValueError):
        P.segment_exists("/")


# --------------------------------------------------------------------------- workers in-process


def test_queue_worker_reports_values_errors_and_malformed_tasks() -> None:
    tasks: queue.Queue[object] = queue.Queue()
    results: queue.Queue[tuple[object, ...]] = queue.Queue()
    for task in [(0, 3), (1, -1), "junk", None]:
        tasks.put(task)
    P.queue_worker(P.make_bytes, tasks, results)
    answers = [results.get_nowait() for _ in range(3)]
    assert answers[0][0] == 0 and answers[0][2:] == ("ok", bytes(3))
    assert answers[1][0] == 1 and answers[1][2] == "error" and "n must be >= 0" in answers[1][3]
    assert answers[2][0] is None and "malformed task" in answers[2][3]


def test_pipe_echo_answers_and_stops() -> None:
    mine, theirs = multiprocessing.Pipe()
    echo = threading.Thread(target=P.pipe_echo, args=(theirs,))
    echo.start()
    mine.send("abc")
    assert mine.recv() == "ABC"
    mine.send(None)
    echo.join(5)
    assert not echo.is_alive()
    mine.close()


def test_predict_needs_the_initializer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(P_tasks, "_MODEL", None)
    monkeypatch.setattr(P_tasks, "_LOADS", 0)
    with pytest.raises(RuntimeError, match="initializer=load_model"):
        P.predict(1)
    P.load_model(0)
    assert P.predict(3) == (7, os.getpid(), 1)
    assert P.load_and_predict(1, seconds=0)[2] == 2


@pytest.mark.parametrize("call,error", [
    (lambda: P.exit_with(300), ValueError), (lambda: P.exit_with("x"), TypeError),
    (lambda: P.guarded_sleep(0, on_sigterm="nope"), ValueError),
    (lambda: P.guarded_sleep(-1), ValueError),
    (lambda: P.make_bytes(-1), ValueError), (lambda: P.cpu_task("3"), TypeError),
])
def test_workers_reject_bad_arguments(call: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        call()  # type: ignore[operator]


def test_logged_call_sends_the_traceback_to_the_log(ctx: multiprocessing.context.BaseContext,
                                                     tmp_path: Path,
                                                     capfd: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "child.log"
    child = ctx.Process(target=P.logged_call, args=(log, P.raise_error, "boom"))
    child.start()
    child.join(30)
    assert child.exitcode == 1
    assert log.read_text().strip().endswith("RuntimeError: boom")
    assert "boom" not in capfd.readouterr().err


# --------------------------------------------------------------------------- the checks


def test_no_shm_leaks_names_and_unlinks_a_leaked_segment() -> None:
    with pytest.raises(AssertionError, match=r"left in /dev/shm: psm_\w+ \(unlinked now\).*unlink"):
        with no_shm_leaks():
            block = shared_memory.SharedMemory(create=True, size=64)
            block.close()
    assert not P.segment_exists(block.name)


def test_no_shm_leaks_passes_clean_code_and_keeps_the_blocks_error() -> None:
    with no_shm_leaks():
        block = shared_memory.SharedMemory(create=True, size=64)
        block.close()
        block.unlink()
    with pytest.raises(KeyError):
        with no_shm_leaks():
            block = shared_memory.SharedMemory(create=True, size=64)
            raise KeyError("the learner's own error")
    assert not P.segment_exists(block.name)  # cleaned up all the same
    block.close()


def test_no_process_leaks_kills_and_names_a_forgotten_process(
        ctx: multiprocessing.context.BaseContext) -> None:
    with pytest.raises(AssertionError, match=r"still running .*\(pid \d+\).*killed now"):
        with no_process_leaks(timeout=0.2):
            child = ctx.Process(target=P.guarded_sleep, args=(30,), name="forgotten")
            child.start()
    child.join(5)
    assert child.exitcode == -signal.SIGKILL  # reaped by multiprocessing, so its exit code is known


def _abandon_a_pool(ctx: multiprocessing.context.BaseContext) -> int:
    pool = ctx.Pool(2)
    return sum(pool.map(P.square, [1, 2, 3]))


def test_no_process_leaks_catches_a_pool_never_closed(
        ctx: multiprocessing.context.BaseContext) -> None:
    with pytest.raises(AssertionError, match="Pool of 2 workers was never closed"):
        with no_process_leaks():
            assert _abandon_a_pool(ctx) == 14
    assert multiprocessing.active_children() == []


def test_no_process_leaks_catches_an_executor_never_shut_down(
        ctx: multiprocessing.context.BaseContext) -> None:
    from concurrent.futures import ProcessPoolExecutor

    with pytest.raises(AssertionError, match="ProcessPoolExecutor was never shut down"):
        with no_process_leaks():
            executor = ProcessPoolExecutor(max_workers=1, mp_context=ctx)
            assert executor.submit(P.square, 3).result(timeout=30) == 9
    assert executor.submit  # still referenced here, and shut down by the check
    with pytest.raises(RuntimeError):
        executor.submit(P.square, 1)


def test_no_process_leaks_passes_pools_closed_properly(
        ctx: multiprocessing.context.BaseContext) -> None:
    with no_process_leaks(), no_shm_leaks():
        with ctx.Pool(2) as pool:
            assert pool.map(P.square, range(4)) == [0, 1, 4, 9]
        other = ctx.Pool(1)
        other.close()
        other.join()


@pytest.mark.parametrize("method", [m for m in ("fork", "spawn", "forkserver")
                                    if m in multiprocessing.get_all_start_methods()])
def test_quiet_children_turns_a_child_traceback_into_an_assertion(
        method: str, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("COURSE_START_METHOD", method)
    ctx = multiprocessing.get_context(method)
    with pytest.raises(AssertionError, match=r"wrote to stderr: .*RuntimeError: boom"):
        with quiet_children():
            child = ctx.Process(target=P.raise_error, args=("boom",))
            child.start()
            child.join(30)
    assert "boom" not in capfd.readouterr().err
    with quiet_children():
        child = ctx.Process(target=P.exit_with, args=(0,))
        child.start()
        child.join(30)


def test_expect_exitcodes_explains_the_codes() -> None:
    class Fake:
        def __init__(self, name: str, exitcode: int | None) -> None:
            self.name, self.exitcode = name, exitcode

    expect_exitcodes([Fake("a", 0), Fake("b", 0)], 0)
    expected = r"b has exitcode -15: killed by SIGTERM; expected 0: finished"
    with pytest.raises(AssertionError, match=expected):
        expect_exitcodes([Fake("a", 0), Fake("b", -15)], 0)
    with pytest.raises(AssertionError, match=r"None: still running"):
        expect_exitcodes([Fake("c", None)], [3])
    with pytest.raises(ValueError, match="expected exit codes"):
        expect_exitcodes([Fake("a", 0)], [0, 0])


@pytest.mark.skipif("forkserver" not in multiprocessing.get_all_start_methods(),
                    reason="no forkserver")
def test_shutdown_helpers_stops_the_idle_fork_server_and_removes_its_folder(
        tmp_path: Path) -> None:
    import subprocess

    script = (
        "import multiprocessing, os\n"
        "from course_lib.processes import exit_with, shutdown_helpers\n"
        "if __name__ == '__main__':\n"
        "    p = multiprocessing.get_context('forkserver').Process(target=exit_with, args=(0,))\n"
        "    p.start(); p.join(30)\n"
        "    print(len(os.listdir(os.environ['TMPDIR'])), flush=True)\n"
        "    print(shutdown_helpers(), flush=True)\n"
        "    print(os.listdir(os.environ['TMPDIR']), shutdown_helpers(), flush=True)\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120, env={**os.environ, "TMPDIR": str(tmp_path)})
    lines = run.stdout.splitlines()
    assert run.returncode == 0, run.stderr
    assert lines[0] == "1"  # multiprocessing's pymp-* folder, holding the fork server's socket
    assert "stopped the fork server" in lines[1] and "temporary folder" in lines[1]
    assert lines[2] == "[] []"  # nothing left, and nothing more to do


def test_quiet_children_adds_the_childs_reason_to_the_blocks_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COURSE_START_METHOD", "fork")
    ctx = multiprocessing.get_context("fork")
    with pytest.raises(AssertionError,
                       match=r"no answer; meanwhile a child process wrote to stderr: "
                             r"RuntimeError: the reason"):
        with quiet_children():
            child = ctx.Process(target=P.raise_error, args=("the reason",))
            child.start()
            child.join(30)
            raise AssertionError("no answer")
    with pytest.raises(KeyError):  # nothing written: the block's own error goes through unchanged
        with quiet_children():
            raise KeyError("x")
