"""course_lib.debugging, graders.checks.debugging: hung programs, py-spy, logging, virtual clock."""

from __future__ import annotations

import asyncio
import logging
import logging.handlers
import pickle
import queue
import threading
import time

import matplotlib
import pytest

from course_lib import Tracer
from course_lib.debugging import (
    CountingTable,
    ListHandler,
    concurrency_profile,
    hung_process,
    init_table,
    install_queue_handler,
    log_timeline,
    logged_square,
    lookup_chunk,
    lookup_chunk_global,
    py_spy_dump,
    py_spy_executable,
    run_script,
    run_virtual,
    serial_fraction,
)
from course_lib.trace import Span
from graders.checks import assert_test_catches

matplotlib.use("Agg")

DEADLOCK = """
import threading, time
a, b = threading.Lock(), threading.Lock()
def one():
    with a:
        time.sleep(0.05)
        with b:
            pass
def two():
    with b:
        time.sleep(0.05)
        with a:
            pass
ts = [threading.Thread(target=one), threading.Thread(target=two)]
for t in ts:
    t.start()
print("ready", flush=True)
for t in ts:
    t.join()
"""


# --------------------------------------------------------------------------- hangs


def test_run_script_returns_output_and_exit_code() -> None:
    result = run_script("import sys\nprint('hi')\nsys.exit(3)", timeout=30)
    assert (result.returncode, result.stdout, result.timed_out) == (3, "hi\n", False)


def test_run_script_kills_a_hung_program_and_keeps_the_faulthandler_dump() -> None:
    source = "import faulthandler\nfaulthandler.dump_traceback_later(0.3, exit=True)\n" + DEADLOCK
    result = run_script(source, timeout=20)
    assert not result.timed_out and result.returncode == 1
    assert "Timeout" in result.stderr and "in one" in result.stderr and "in two" in result.stderr
    stuck = run_script("import time\ntime.sleep(60)", timeout=0.5)
    assert stuck.timed_out and stuck.returncode is None and stuck.elapsed < 15


def test_run_script_rejects_bad_input() -> None:
    with pytest.raises(TypeError, match="program's text"):
        run_script(b"print(1)")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="positive"):
        run_script("pass", timeout=0)


def test_hung_process_is_killed_at_the_end_of_the_block() -> None:
    with hung_process(DEADLOCK) as program:
        assert program.proc.poll() is None
    assert program.proc.poll() is not None
    with pytest.raises(TimeoutError, match="did not print"), \
            hung_process("import time\ntime.sleep(5)", timeout=0.3):
        pass


@pytest.mark.skipif(py_spy_executable() is None, reason="py-spy is not installed")
def test_py_spy_dump_shows_where_each_thread_waits_or_says_why_not() -> None:
    with hung_process(DEADLOCK) as program:
        time.sleep(0.3)
        dump = py_spy_dump(program.pid)
    if dump.ok:
        assert "one (program.py" in dump.text and "two (program.py" in dump.text
        assert "\x1b[" not in dump.text
    else:  # no ptrace rights here: the reason is py-spy's own message
        assert dump.reason and str(dump).startswith("py-spy could not run")


def test_py_spy_dump_rejects_a_bad_pid() -> None:
    with pytest.raises(ValueError, match="positive int"):
        py_spy_dump(0)


# --------------------------------------------------------------------------- logging


def test_queue_logging_from_a_worker_function() -> None:
    q: queue.Queue[logging.LogRecord] = queue.Queue()
    handler = ListHandler()
    listener = logging.handlers.QueueListener(q, handler)
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    listener.start()
    try:
        install_queue_handler(q)
        square, pid, token = logged_square(7, work=0.0)
    finally:
        listener.stop()
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    assert square == 49
    assert [r.getMessage() for r in handler.records] == ["start 7", "done 7"]
    assert handler.records[1].token == token and handler.records[1].process == pid  # type: ignore[attr-defined]
    ax = log_timeline(handler.records)
    assert ax.get_xlabel().startswith("time")


# --------------------------------------------------------------------------- virtual clock


def test_run_virtual_jumps_to_each_timer() -> None:
    async def main() -> list[float]:
        loop = asyncio.get_running_loop()
        seen = [loop.time()]
        await asyncio.sleep(3600)
        seen.append(loop.time())
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.sleep(100), 5)
        seen.append(loop.time())
        return seen

    run = run_virtual(main)
    assert run.result == [0.0, 3600.0, 3605.0]
    assert run.virtual_seconds == 3605.0 and run.real_seconds < 5


def test_run_virtual_shows_a_blocking_sleep_and_bounds_endless_runs() -> None:
    async def blocking() -> float:
        time.sleep(0.05)
        return asyncio.get_running_loop().time()

    assert run_virtual(blocking).result == 0.0

    async def forever() -> None:
        while True:
            await asyncio.sleep(1)

    with pytest.raises(TimeoutError, match="virtual seconds"):
        run_virtual(forever, max_virtual=50)

    async def spin() -> None:
        while True:
            await asyncio.sleep(0)

    with pytest.raises(TimeoutError, match="real seconds"):
        run_virtual(spin, real_timeout=0.3)


def test_run_virtual_works_from_inside_a_running_loop_and_rejects_plain_functions() -> None:
    async def inner() -> float:
        await asyncio.sleep(10)
        return asyncio.get_running_loop().time()

    async def outer() -> float:
        return run_virtual(inner).result  # type: ignore[no-any-return]

    assert asyncio.run(outer()) == 10.0
    with pytest.raises(TypeError, match="async def"):
        run_virtual(lambda: 3)  # type: ignore[arg-type,return-value]


# --------------------------------------------------------------------------- profiling


def test_counting_table_counts_pickles_and_the_workers_agree() -> None:
    table = CountingTable(bytes(range(256)))
    CountingTable.reset_count()
    copy = pickle.loads(pickle.dumps(table))
    assert CountingTable.pickled == 1 and copy.data == table.data and len(copy) == 256
    expected = sum(table.data[(i * 7919) % 256] for i in range(100))
    assert lookup_chunk(table, range(100)) == expected
    init_table(table)
    assert lookup_chunk_global(range(100)) == expected
    with pytest.raises(TypeError, match="bytes"):
        CountingTable("text")  # type: ignore[arg-type]


def _span(start: float, end: float, worker: str) -> Span:
    return Span("work", worker, start, end, 1, worker, None)


def test_serial_fraction_reads_amdahls_s_off_a_trace() -> None:
    spans = [_span(0.0, 1.0, "main")] + [_span(1.0, 2.0, f"w{i}") for i in range(4)]
    assert serial_fraction(spans) == pytest.approx(0.2)
    assert serial_fraction([_span(0, 1, "a"), _span(0, 1, "b")]) == 0.0
    with pytest.raises(ValueError, match="no span"):
        serial_fraction([])
    ax = concurrency_profile(spans)
    assert ax.get_ylabel() == "workers busy"


def test_serial_fraction_of_a_real_trace() -> None:
    with Tracer() as tracer:
        with tracer.span("serial"):
            time.sleep(0.05)
        threads = [threading.Thread(target=lambda: tracer.wrap(time.sleep, "p")(0.05))
                   for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert 0.2 < serial_fraction(tracer.spans) < 0.5


# --------------------------------------------------------------------------- mutation grading


def _counter_factory(locked: bool):  # type: ignore[no-untyped-def]
    def make(monitor):  # type: ignore[no-untyped-def]
        class Counter:
            def __init__(self) -> None:
                self.lock = monitor.lock("counter")
                self.value = 0

            def add(self) -> None:
                if locked:
                    with self.lock:
                        self.value += 1
                else:
                    self.value += 1

        return Counter

    return make


def _deadlocking(monitor):  # type: ignore[no-untyped-def]
    class Counter:
        def __init__(self) -> None:
            self.lock = monitor.lock("counter")
            self.value = 0

        def add(self) -> None:
            with self.lock, self.lock:
                self.value += 1

    return Counter


def test_assert_test_catches_passes_a_good_test_and_fails_weak_ones() -> None:
    from graders.checks import forced_interleaving

    def good(cls) -> None:  # type: ignore[no-untyped-def]
        c = cls()

        def work() -> None:
            for _ in range(20):
                c.add()

        with forced_interleaving(cls):
            ts = [threading.Thread(target=work) for _ in range(3)]
            for t in ts:
                t.start()
            for t in ts:
                t.join(5)
        assert not any(t.is_alive() for t in ts), "stuck"
        assert c.value == 60

    correct = {"a locked counter": _counter_factory(True)}
    buggy = {"an unlocked counter": (_counter_factory(False), "force the interleaving"),
             "a deadlocking counter": (_deadlocking, "bound the waits")}
    assert_test_catches(good, correct, buggy, seconds=20)

    with pytest.raises(AssertionError,
                       match="passed on an unlocked counter.*force the interleaving"):
        assert_test_catches(lambda cls: None, correct, buggy, seconds=5)
    with pytest.raises(AssertionError, match="failed on a locked counter"):
        assert_test_catches(lambda cls: 1 / 0, correct, buggy, seconds=5)

    def unbounded(cls) -> None:  # type: ignore[no-untyped-def]
        c = cls()
        t = threading.Thread(target=c.add)
        t.start()
        t.join()  # hangs on the deadlocking counter
        assert c.value == 1

    with pytest.raises(AssertionError, match="hung on a deadlocking counter"):
        assert_test_catches(unbounded, correct,
                            {"a deadlocking counter": buggy["a deadlocking counter"]}, seconds=1)
    assert not [t for t in threading.enumerate() if t.name == "check-your-test" and t.is_alive()]
