"""course_lib.netserver, course_lib.aio and the asyncio checks: behaviour, bad input, clean-up."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from course_lib.aio import (
    FetchError,
    default_executor,
    fetch,
    fetch_blocking,
    run_in_new_loop,
    run_isolated,
)
from course_lib.netserver import ConnectionLog, LatencyServer
from graders.checks import (
    assert_in_flight_at_most,
    assert_requests_overlapped,
    expect_async_raises,
    run_coroutine_within,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _server_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("latency-server")]


def _wait_for_threads_to_end(prefix: str, timeout: float = 5.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        left = [t for t in threading.enumerate() if t.name.startswith(prefix)]
        if not left or time.monotonic() > deadline:
            return [t.name for t in left]
        left[0].join(0.05)


@pytest.fixture
def server() -> Iterator[LatencyServer]:
    with LatencyServer(latency=0.0) as running:
        yield running
    assert _server_threads() == []


def _raw(server: LatencyServer, payload: bytes, *, read: bool = True) -> bytes:
    with socket.create_connection(server.address, timeout=5) as conn:
        conn.sendall(payload)
        if not read:
            return b""
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


# --------------------------------------------------------------------------- the log


def _log_with(intervals: list[tuple[float, float]]) -> ConnectionLog:
    clock = FakeClock()
    log = ConnectionLog(clock)
    for start, _ in intervals:  # recorded in order of start; ends set afterwards
        clock.now = start
        conn = log.begin()
        log.received(conn, f"/r/{conn}", f"/r/{conn}")
    for conn, (_, end) in enumerate(intervals):
        clock.now = end
        log.finish(conn, 200, "ok")
    return log


def test_log_counts_requests_in_flight_from_a_fake_clock() -> None:
    log = _log_with([(0.0, 1.0), (0.5, 1.5), (0.6, 0.7), (1.5, 2.0)])
    assert log.max_in_flight() == 3
    assert log.in_flight() == [(0.0, 1), (0.5, 2), (0.6, 3), (0.7, 2), (1.0, 1), (1.5, 1), (2.0, 0)]
    assert log.outcomes() == {"ok": 4}
    assert log.max_in_flight(since=3) == 1
    assert [r.target for r in log.requests(since=2)] == ["/r/2", "/r/3"]


def test_touching_requests_do_not_overlap() -> None:
    assert _log_with([(0.0, 1.0), (1.0, 2.0), (2.0, 3.0)]).max_in_flight() == 1


def test_log_spans_use_one_lane_per_concurrent_request() -> None:
    spans = _log_with([(0.0, 1.0), (0.2, 0.4), (0.5, 2.0), (1.2, 1.3)]).spans()
    assert [s.worker for s in spans] == ["slot 0", "slot 1", "slot 1", "slot 0"]
    assert {s.name for s in spans} == {"ok"}


def test_log_attempts_open_requests_and_wait_idle() -> None:
    clock = FakeClock()
    log = ConnectionLog(clock)
    first, second = log.begin(), log.begin()
    assert log.received(first, "/x?fail_first=1", "/x") == 1
    assert log.received(second, "/x?fail_first=1", "/x") == 2
    garbage = log.begin()
    log.finish(garbage, 400, "bad request")
    assert log.open_connections == 2
    assert log.wait_idle(timeout=0.01) is False
    assert log.wait_idle(timeout=0.01, requests_only=True) is False
    idle = log.begin()  # never sends a request head
    clock.now = 5.0
    assert log.max_in_flight() == 2  # open requests count until now
    log.finish(second, None, "client left")
    log.finish(first, 503, "error status")
    assert log.wait_idle(timeout=0.01, requests_only=True) is True
    assert log.wait_idle(timeout=0.01) is False
    log.finish(idle, 408, "idle timeout")
    log.finish(first, 200, "ok")  # the first call wins
    assert log.wait_idle(timeout=0.01) is True
    assert [r.status for r in log.records()] == [503, None, 400, 408]
    assert len(log.requests()) == 2 and len(log) == 4
    with pytest.raises(ValueError, match="outcome"):
        log.finish(first, 200, "fine")
    with pytest.raises(ValueError, match="since"):
        log.records(since=-1)


def test_log_renders_text_html_and_plots() -> None:
    log = _log_with([(0.0, 0.1), (0.05, 0.2)])
    assert "peak in flight" in str(log) and "<table>" in log._repr_html_()
    ax = log.plot()
    assert "at most 2 in flight" in ax.get_title()
    assert "no requests recorded" in [t.get_text() for t in ConnectionLog().plot().texts]


# --------------------------------------------------------------------------- the server


@pytest.mark.parametrize("kwargs,message", [
    ({"latency": -1}, "latency"),
    ({"latency": float("nan")}, "latency"),
    ({"failure_rate": 1.5}, "failure_rate"),
    ({"host": "localhost"}, "numeric IP"),
    ({"port": 70000}, "port"),
    ({"max_connections": 0}, "max_connections"),
])
def test_server_rejects_bad_settings(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LatencyServer(**kwargs)  # type: ignore[arg-type]


def test_server_is_not_usable_outside_its_block() -> None:
    server = LatencyServer()
    with pytest.raises(RuntimeError, match="with-block"):
        _ = server.port
    with server:
        port = server.port
        with pytest.raises(RuntimeError, match="already started"):
            server.start()
    server.stop()  # idempotent
    assert not server.running and "stopped" in repr(server)
    with pytest.raises(ConnectionRefusedError, match="LatencyServer running"):
        fetch_blocking(port, "/after")


def test_bodies_and_failures_are_reproducible() -> None:
    a, b = LatencyServer(seed=1), LatencyServer(seed=1)
    assert a.body_for("/x?delay=1") == b.body_for("/x") != a.body_for("/y")
    assert LatencyServer(seed=2).body_for("/x") != a.body_for("/x")
    always, never = LatencyServer(failure_rate=1.0), LatencyServer(failure_rate=0.0)
    assert always.will_fail("/x") and not never.will_fail("/x")
    half = LatencyServer(failure_rate=0.5, seed=3)
    draws = [half.will_fail(f"/p/{i}") for i in range(200)]
    assert 60 < sum(draws) < 140 and draws == [half.will_fail(f"/p/{i}") for i in range(200)]
    assert half.delay_for("/x?delay=0.25") == 0.25


def test_server_answers_status_delay_and_flaky_requests(server: LatencyServer) -> None:
    assert fetch_blocking(server, "/hello") == server.body_for("/hello")
    with pytest.raises(FetchError) as caught:
        fetch_blocking(server, "/boom?status=500")
    assert caught.value.status == 500 and caught.value.path == "/boom?status=500"
    with pytest.raises(FetchError, match="503"):
        fetch_blocking(server, "/flaky?fail_first=1")
    assert fetch_blocking(server, "/flaky?fail_first=1") == server.body_for("/flaky")
    fetch_blocking(server.url("/late?delay=0.05"))
    late = server.log.requests()[-1]
    assert late.attempt == 1 and late.closed is not None and late.received is not None
    assert late.closed - late.received >= 0.045  # the server waited (a lower bound, not a speed)
    with pytest.raises(FetchError, match="400"):
        fetch_blocking(server, "/x?delay=soon")
    with pytest.raises(FetchError, match="400"):
        fetch_blocking(server, "/x?status=99")
    assert server.log.outcomes() == {"ok": 3, "error status": 2, "bad request": 2}


def test_failure_rate_answers_503_for_the_drawn_paths() -> None:
    with LatencyServer(latency=0.0, failure_rate=0.5, seed=5) as server:
        for i in range(12):
            path = f"/p/{i}"
            if server.will_fail(path):
                with pytest.raises(FetchError, match="503"):
                    fetch_blocking(server, path)
            else:
                assert fetch_blocking(server, path) == server.body_for(path)


def test_garbage_and_bad_requests_get_4xx_and_the_server_keeps_serving(
        server: LatencyServer) -> None:
    assert _raw(server, b"\x00\xff\xfe garbage \r\n\r\n").startswith(b"HTTP/1.1 400")
    assert _raw(server, b"POST /x HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 405")
    assert _raw(server, b"GET nope HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 400")
    assert _raw(server, b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 431")
    _raw(server, b"GET /half", read=False)  # the client hangs up in the middle of its request
    assert fetch_blocking(server, "/still-here") == server.body_for("/still-here")
    assert server.log.wait_idle(2.0)
    outcomes = server.log.outcomes()
    assert outcomes == {"bad request": 3, "too large": 1, "client left": 1, "ok": 1}
    assert server.log.errors == []


def test_an_idle_client_times_out_without_holding_up_others() -> None:
    with LatencyServer(latency=0.0, request_timeout=0.2) as server:
        with socket.create_connection(server.address, timeout=5) as idle:
            assert fetch_blocking(server, "/meanwhile") == server.body_for("/meanwhile")
            assert idle.recv(100).startswith(b"HTTP/1.1 408")
        assert server.log.outcomes() == {"ok": 1, "idle timeout": 1}


def test_more_than_max_connections_get_503_busy() -> None:
    with LatencyServer(latency=0.0, max_connections=3) as server:
        idle = [socket.create_connection(server.address, timeout=5) for _ in range(3)]
        try:
            deadline = time.monotonic() + 5
            while server.log.open_connections < 3 and time.monotonic() < deadline:
                time.sleep(0.005)
            with pytest.raises(FetchError, match="503"):
                fetch_blocking(server, "/one-too-many")
        finally:
            for conn in idle:
                conn.close()
        assert server.log.wait_idle(2.0)
        assert server.log.outcomes()["busy"] == 1


def _many() -> int:
    """About a thousand connections, fewer where the file-descriptor limit is low."""
    try:
        import resource
    except ImportError:  # Windows: no per-process descriptor limit of this kind
        return 1000
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    # both ends of each connection live in this process
    return max(50, min(1000, (soft - 100) // 2))


def test_many_concurrent_requests_all_answered_and_all_in_flight_at_once() -> None:
    n = _many()
    with LatencyServer(latency=0.3) as server:
        async def all_at_once() -> list[str]:
            return await asyncio.gather(*(fetch(server, f"/m/{i}") for i in range(n)))

        expected = [server.body_for(f"/m/{i}") for i in range(n)]
        assert run_in_new_loop(all_at_once, timeout=30) == expected
        assert server.log.max_in_flight() > n // 2
        assert server.log.outcomes() == {"ok": n}


def test_thousands_of_idle_and_garbage_connections_do_not_stop_the_server() -> None:
    n = _many()
    with LatencyServer(latency=0.0, request_timeout=10) as server:
        conns = []
        try:
            for i in range(n):
                conn = socket.create_connection(server.address, timeout=5)
                if i % 2:
                    conn.sendall(b"\x16\x03\x01 not http at all")  # garbage without an end
                conns.append(conn)
            assert fetch_blocking(server, "/through") == server.body_for("/through")
            # An exercise's check still works: concurrent requests, judged from the log.
            mark = server.log.mark()

            async def ten() -> list[str]:
                return await asyncio.gather(*(fetch(server, f"/t/{i}?delay=0.1")
                                              for i in range(10)))

            assert run_coroutine_within(10, ten) == [server.body_for(f"/t/{i}") for i in range(10)]
            assert_requests_overlapped(server, at_least=5, since=mark)
            assert_in_flight_at_most(server, 10, since=mark)
            assert server.log.open_connections == n
        finally:
            for conn in conns:
                conn.close()
        assert server.log.wait_idle(5.0)
        assert server.log.outcomes() == {"ok": 11, "client left": n}
        assert server.log.errors == []


def test_stopping_ends_open_requests_and_the_thread() -> None:
    server = LatencyServer(latency=5.0).start()
    conn = socket.create_connection(server.address, timeout=5)
    try:
        conn.sendall(b"GET /waiting HTTP/1.1\r\n\r\n")
        deadline = time.monotonic() + 5
        while not server.log.requests() and time.monotonic() < deadline:
            time.sleep(0.005)
        began = time.monotonic()
        server.stop()
        assert time.monotonic() - began < 2.0
    finally:
        conn.close()
    assert _server_threads() == []
    assert server.log.outcomes() == {"server stopped": 1}


def test_async_with_works_and_cancelled_fetches_show_as_client_left() -> None:
    async def main() -> tuple[str, dict[str, int]]:
        async with LatencyServer(latency=0.0) as server:
            body = await fetch(server.url("/via-url"))
            with pytest.raises(TimeoutError):
                await fetch(server, "/slow?delay=5", timeout=0.1)
            assert server.log.wait_idle(2.0)
            return body, server.log.outcomes()

    body, outcomes = run_in_new_loop(main, timeout=10)
    assert body.startswith("/via-url ")
    assert outcomes == {"ok": 1, "client left": 1}
    assert _server_threads() == []


# --------------------------------------------------------------------------- clients


@pytest.mark.parametrize("target,path,error", [
    ("https://127.0.0.1:80/x", None, ValueError),
    ("http://127.0.0.1:8000/x", "/y", ValueError),
    ("127.0.0.1:8000", None, ValueError),
    (8000, "no-slash", ValueError),
    (True, "/x", TypeError),
    (3.5, "/x", TypeError),
    (0, "/x", ValueError),
])
def test_fetch_rejects_bad_targets(target: object, path: str | None,
                                   error: type[Exception]) -> None:
    with pytest.raises(error):
        fetch_blocking(target, path)  # type: ignore[arg-type]


def test_fetch_accepts_a_port_a_pair_and_a_url(server: LatencyServer) -> None:
    expected = server.body_for("/p")
    assert fetch_blocking(server.port, "/p") == expected
    assert fetch_blocking(("127.0.0.1", server.port), "/p") == expected
    assert fetch_blocking(server.url("/p")) == expected
    assert run_in_new_loop(fetch, server.url("/p")) == expected


# --------------------------------------------------------------------------- running coroutines


async def _double(x: int) -> int:
    await asyncio.sleep(0)
    return 2 * x


def test_run_in_new_loop_returns_raises_and_times_out() -> None:
    assert run_in_new_loop(_double, 21) == 42

    async def bad() -> None:
        raise KeyError("k")

    with pytest.raises(KeyError):
        run_in_new_loop(bad)
    with pytest.raises(TimeoutError, match="within 0.1 s"):
        run_in_new_loop(asyncio.sleep, 10, timeout=0.1)
    with pytest.raises(TypeError, match="not a coroutine"):
        run_in_new_loop(lambda: 5)  # type: ignore[arg-type, return-value]

    async def from_inside_a_running_loop() -> int:
        return run_in_new_loop(_double, 4)  # asyncio.run would raise RuntimeError here

    assert asyncio.run(from_inside_a_running_loop()) == 8
    assert _wait_for_threads_to_end("isolated-loop") == []


def test_run_isolated_reports_pending_tasks_and_loop_errors() -> None:
    async def leaves_a_task() -> str:
        asyncio.create_task(asyncio.sleep(10), name="forgotten")
        return "done"

    run = run_isolated(leaves_a_task, timeout=2)
    assert run.ok and run.value == "done" and run.pending_tasks == ["forgotten (sleep)"]

    async def fails_unseen() -> None:
        task = asyncio.create_task(_boom())
        await asyncio.sleep(0.01)
        del task

    run = run_isolated(fails_unseen, timeout=2)
    assert run.ok and any("never retrieved" in e for e in run.loop_errors)


async def _boom() -> None:
    raise ValueError("boom")


def test_run_isolated_survives_a_blocked_loop_and_notes_the_blocking_call() -> None:
    async def blocks() -> None:
        time.sleep(1.5)

    began = time.monotonic()
    run = run_isolated(blocks, timeout=0.2, grace=0.2, watch_blocking=True)
    assert time.monotonic() - began < 1.2  # timeout + grace + 0.3 s at most, not the 1.5 s sleep
    assert run.abandoned and not run.loop_responsive and run.blocking_calls == ["time.sleep(1.5)"]
    assert time.sleep.__name__ == "sleep"  # the watcher is gone again
    assert _wait_for_threads_to_end("isolated-loop") == []


def test_run_isolated_abandons_a_coroutine_that_swallows_cancellation() -> None:
    async def stubborn() -> None:
        for _ in range(100):
            try:
                await asyncio.sleep(1)
            except asyncio.CancelledError:
                pass

    run = run_isolated(stubborn, timeout=0.1, grace=0.2)
    assert run.abandoned and run.loop_responsive
    assert _wait_for_threads_to_end("isolated-loop") == []


def test_default_executor_gives_to_thread_a_private_pool() -> None:
    async def main() -> tuple[list[str], object]:
        loop = asyncio.get_running_loop()
        with default_executor(max_workers=2) as pool:
            names = await asyncio.gather(
                *(asyncio.to_thread(lambda: threading.current_thread().name) for _ in range(4)))
        assert isinstance(pool, ThreadPoolExecutor)
        return list(names), getattr(loop, "_default_executor", "missing")

    names, restored = asyncio.run(main())
    assert all(name.startswith("to_thread") for name in names) and restored is None
    assert _wait_for_threads_to_end("to_thread") == []
    with pytest.raises(RuntimeError, match="running event loop"):
        with default_executor():
            pass


# --------------------------------------------------------------------------- the checks


def test_run_coroutine_within_returns_a_good_result() -> None:
    assert run_coroutine_within(2, _double, 5) == 10
    assert expect_async_raises(ValueError, 2, _boom).args == ("boom",)


def _message(excinfo: pytest.ExceptionInfo[AssertionError]) -> str:
    return str(excinfo.value)


def test_blocking_sleep_inside_a_coroutine_fails_with_advice() -> None:
    async def naps() -> int:
        time.sleep(0.01)
        return 1

    with pytest.raises(AssertionError) as caught:
        run_coroutine_within(2, naps)
    assert "time.sleep(0.01)" in _message(caught) and "await asyncio.sleep" in _message(caught)


def test_fetch_blocking_inside_a_coroutine_fails(server: LatencyServer) -> None:
    async def serial_blocking() -> str:
        return fetch_blocking(server, "/b")

    with pytest.raises(AssertionError, match=r"fetch_blocking\('/b'\)"):
        run_coroutine_within(2, serial_blocking)


def test_forgotten_awaits_fail() -> None:
    async def forgets_sleep() -> int:
        asyncio.sleep(0.01)  # type: ignore[unused-coroutine]
        return 1

    with pytest.raises(AssertionError, match="never awaited"):
        run_coroutine_within(2, forgets_sleep)

    async def returns_coroutines() -> list[object]:
        return [_double(i) for i in range(3)]

    with pytest.raises(AssertionError, match="coroutine object .* forgot an await"):
        run_coroutine_within(2, returns_coroutines)

    async def returns_futures() -> list[object]:
        loop = asyncio.get_running_loop()
        return [loop.run_in_executor(None, int, "1")]

    with pytest.raises(AssertionError, match="a Future"):
        run_coroutine_within(2, returns_futures)


def test_a_coroutine_that_never_finishes_fails_in_time_and_the_next_run_works() -> None:
    async def forever() -> None:
        await asyncio.Event().wait()

    began = time.monotonic()
    with pytest.raises(AssertionError, match="did not finish within 0.3 s"):
        run_coroutine_within(0.3, forever)
    # 0.3 s bound, with slack for a loaded 2-core machine: the point is "not forever"
    assert time.monotonic() - began < 3.0

    async def hard_block() -> None:
        time.sleep(6)

    began = time.monotonic()
    with pytest.raises(AssertionError, match="blocked its event loop"):
        run_coroutine_within(0.2, hard_block)
    # bound + 1 s grace + 0.3 s (plus slack for a loaded machine), not the 6 s sleep
    assert time.monotonic() - began < 4.0
    assert run_coroutine_within(2, _double, 1) == 2  # the next exercise still runs
    assert _wait_for_threads_to_end("isolated-loop", timeout=10) == []


def test_other_failures_have_clear_messages() -> None:
    with pytest.raises(AssertionError, match="not a coroutine"):
        run_coroutine_within(1, lambda: 3)

    async def todo() -> None:
        raise NotImplementedError

    with pytest.raises(AssertionError, match="not implemented yet"):
        run_coroutine_within(1, todo)
    with pytest.raises(AssertionError, match="raised ValueError: boom"):
        run_coroutine_within(1, _boom)

    async def leaves() -> None:
        asyncio.create_task(asyncio.sleep(5))

    with pytest.raises(AssertionError, match=r"still running \(sleep\)"):
        run_coroutine_within(1, leaves)
    async def nested_run() -> int:
        return asyncio.run(_double(1))

    with pytest.raises(AssertionError, match="await the coroutine instead"):
        run_coroutine_within(1, nested_run)
    with pytest.raises(AssertionError, match="expected KeyError, but it raised ValueError"):
        expect_async_raises(KeyError, 1, _boom)
    with pytest.raises(AssertionError, match="expected ValueError, but it returned 4"):
        expect_async_raises(ValueError, 1, _double, 2)


def test_overlap_and_bound_checks_read_the_server_log() -> None:
    paths = [f"/c/{i}" for i in range(8)]
    with LatencyServer(latency=0.05) as server:
        async def serial() -> list[str]:
            return [await fetch(server, p) for p in paths]

        async def unbounded() -> list[str]:
            return await asyncio.gather(*(fetch(server, p) for p in paths))

        run_coroutine_within(5, serial)
        with pytest.raises(AssertionError, match="never had more than 1 of the 8"):
            assert_requests_overlapped(server, at_least=2)
        assert_in_flight_at_most(server, 1)
        mark = server.log.mark()
        run_coroutine_within(5, unbounded)
        assert_requests_overlapped(server, at_least=4, since=mark)
        with pytest.raises(AssertionError, match="Semaphore"):
            assert_in_flight_at_most(server, 3, since=mark)
        with pytest.raises(AssertionError, match="received 0 request"):
            assert_requests_overlapped(server, since=server.log.mark())
    with pytest.raises(TypeError, match="LatencyServer"):
        assert_requests_overlapped(object())


def test_checks_write_nothing_to_stderr(capfd: pytest.CaptureFixture[str]) -> None:
    async def messy() -> None:
        asyncio.create_task(_boom())
        asyncio.sleep(1)  # type: ignore[unused-coroutine]
        time.sleep(0.01)

    with pytest.raises(AssertionError):
        run_coroutine_within(1, messy)
    with LatencyServer(latency=0.0) as server:
        _raw(server, b"\xff" * 100 + b"\r\n\r\n")
    assert capfd.readouterr().err == ""
