"""The asyncio evidence checks fail on the lazy behaviour and pass on the reference."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from course_lib.aio import fetch, fetch_blocking
from course_lib.netserver import LatencyServer
from graders.checks import (
    assert_in_flight_at_most,
    assert_loop_responsive,
    assert_no_threads_started,
    assert_requests_overlapped,
    watch_loop,
)

PATHS = ["/a", "/b", "/c", "/d"]


async def gathered(server: LatencyServer, paths: list[str]) -> list[str]:
    return list(await asyncio.gather(*(fetch(server, p) for p in paths)))


async def one_by_one(server: LatencyServer, paths: list[str]) -> list[str]:
    return [await fetch(server, p) for p in paths]


async def in_threads(server: LatencyServer, paths: list[str]) -> list[str]:
    return list(
        await asyncio.gather(*(asyncio.to_thread(fetch_blocking, server, p) for p in paths))
    )


async def pool_map_in_loop(server: LatencyServer, paths: list[str]) -> list[str]:
    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(lambda p: fetch_blocking(server, p), paths))


async def bounded(server: LatencyServer, paths: list[str], limit: int) -> list[str]:
    sem = asyncio.Semaphore(limit)

    async def one(path: str) -> str:
        async with sem:
            return await fetch(server, path)

    return list(await asyncio.gather(*(one(p) for p in paths)))


async def forgot_await(server: LatencyServer, paths: list[str]) -> list[Any]:
    return [fetch(server, p) for p in paths]


@pytest.fixture
def server() -> Any:
    with LatencyServer(latency=0.2) as srv:
        yield srv


def test_watch_loop_passes_the_reference(server: LatencyServer) -> None:
    watch = watch_loop(5, gathered, server, PATHS)
    assert watch.value == [server.body_for(p) for p in PATHS]
    assert watch.threads == [] and watch.max_gap < 0.3 and watch.name == "gathered"
    assert_no_threads_started(watch)
    assert_loop_responsive(watch)
    assert_requests_overlapped(server, at_least=4)


def test_sequential_awaits_fail_the_overlap_check(server: LatencyServer) -> None:
    watch_loop(5, one_by_one, server, PATHS)
    with pytest.raises(AssertionError, match="one after another"):
        assert_requests_overlapped(server, at_least=2)


def test_threads_instead_of_the_loop_are_named(server: LatencyServer) -> None:
    watch = watch_loop(5, in_threads, server, PATHS)
    assert watch.value == [server.body_for(p) for p in PATHS]
    with pytest.raises(AssertionError, match=r"started 4 thread\(s\) \(asyncio_"):
        assert_no_threads_started(watch)


def test_a_blocked_loop_shows_as_a_long_heartbeat_gap(server: LatencyServer) -> None:
    watch = watch_loop(5, pool_map_in_loop, server, PATHS)
    assert watch.max_gap >= 0.15
    with pytest.raises(AssertionError, match="the loop was blocked"):
        assert_loop_responsive(watch, 0.1)


def test_watch_loop_still_reports_a_forgotten_await(server: LatencyServer) -> None:
    with pytest.raises(AssertionError, match="returned a coroutine object"):
        watch_loop(5, forgot_await, server, PATHS)


def test_watch_loop_rejects_a_plain_function_and_a_bad_interval(server: LatencyServer) -> None:
    with pytest.raises(AssertionError, match="not a coroutine"):
        watch_loop(5, lambda: 42)
    with pytest.raises(ValueError):
        watch_loop(5, gathered, server, PATHS, interval=0)


def test_a_semaphore_bound_is_respected_and_reached(server: LatencyServer) -> None:
    paths = [f"/p/{i}" for i in range(9)]
    watch_loop(5, bounded, server, paths, 3)
    assert_in_flight_at_most(server, 3)
    assert_requests_overlapped(server, at_least=3)
    mark = server.log.mark()
    watch_loop(5, gathered, server, paths)
    with pytest.raises(AssertionError, match="limit was 3"):
        assert_in_flight_at_most(server, 3, since=mark)
