"""asyncio against serial code and threads: many waits and many fetches at once.

Serial runs of hundreds of 50 ms waits would take many seconds, so the serial
variants run a smaller count and the figures compare the cost *per wait* (or
per fetch): serial seconds per item over concurrent seconds per item, which is
the speed-up a serial run of the full count would show. The detail says so.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from course_lib.aio import fetch, fetch_blocking, run_in_new_loop
from course_lib.netserver import LatencyServer
from course_lib.timing import benchmark

from . import Result, figure

T = TypeVar("T")

SLEEPS = 1000
SLEEP_SECONDS = 0.05
SERIAL_SLEEPS = 10
FETCHES = 200
LATENCY = 0.05
SERIAL_FETCHES = 10
REPEAT = 3


def _median_time(fn: Callable[[], object], repeat: int = REPEAT) -> float:
    """Median wall seconds of ``repeat`` single calls (no warm-up)."""
    return benchmark(fn, repeat=repeat, warmup=0, loops=1).median


def _run(coro_fn: Callable[[], Awaitable[T]]) -> T:
    # Like asyncio.run(coro_fn()), and it also works where a loop is already running (Jupyter).
    return run_in_new_loop(coro_fn, timeout=120)


@figure("asyncio_sleep_concurrency", ">= 200",
        f"{SLEEPS} concurrent asyncio.sleep({SLEEP_SECONDS}) vs awaiting them one by one "
        "(per-wait cost ratio)")
def asyncio_sleep_concurrency() -> Result:
    async def concurrent() -> None:
        await asyncio.gather(*(asyncio.sleep(SLEEP_SECONDS) for _ in range(SLEEPS)))

    async def serial() -> None:
        for _ in range(SERIAL_SLEEPS):
            await asyncio.sleep(SLEEP_SECONDS)

    _run(concurrent)  # warm-up
    together = _median_time(lambda: _run(concurrent))
    one_by_one = _median_time(lambda: _run(serial))
    ratio = (one_by_one / SERIAL_SLEEPS) / (together / SLEEPS)
    return Result(ratio, "x", f"serial: {SERIAL_SLEEPS} waits measured ({one_by_one:.3f} s), "
                  f"scaled per wait; concurrent: {SLEEPS} waits in {together:.3f} s (median of "
                  f"{REPEAT}); value = serial s/wait / concurrent s/wait")


def _fetch_times(server: LatencyServer, paths: list[str]) -> tuple[float, float, float]:
    """Seconds per fetch: serial (SERIAL_FETCHES measured), asyncio and threads (all paths)."""
    def serial() -> None:
        for path in paths[:SERIAL_FETCHES]:
            fetch_blocking(server, path)

    async def gathered() -> list[str]:
        return await asyncio.gather(*(fetch(server, path) for path in paths))

    def threaded() -> None:
        with ThreadPoolExecutor(max_workers=len(paths)) as pool:
            list(pool.map(lambda path: fetch_blocking(server, path), paths))

    bodies = _run(gathered)  # warm-up, and a check that the answers are right
    if bodies != [server.body_for(p) for p in paths]:
        raise RuntimeError("the asyncio fetches returned wrong bodies")
    with_asyncio = _median_time(lambda: _run(gathered)) / len(paths)
    with_threads = _median_time(threaded) / len(paths)
    one_by_one = _median_time(serial) / SERIAL_FETCHES
    return one_by_one, with_asyncio, with_threads


@figure("asyncio_fetch_speedup", ">= 20",
        f"{FETCHES} fetches from the local server ({LATENCY * 1e3:g} ms latency): asyncio vs "
        "serial (per-fetch cost ratio)")
def asyncio_fetch_speedup() -> Result:
    paths = [f"/bench/{i}" for i in range(FETCHES)]
    with LatencyServer(latency=LATENCY) as server:
        serial, with_asyncio, _ = _fetch_times(server, paths)
        peak = server.log.max_in_flight()
    return Result(serial / with_asyncio, "x",
                  f"serial {serial * 1e3:.1f} ms/fetch ({SERIAL_FETCHES} measured, scaled), "
                  f"asyncio {with_asyncio * 1e3:.2f} ms/fetch over {FETCHES} at once; "
                  f"server saw at most {peak} in flight")


@figure("threads_vs_asyncio_fetch_ratio", "informational (> 1: threads slower)",
        f"{FETCHES} fetches from the local server: one thread per fetch vs asyncio "
        "(time ratio)")
def threads_vs_asyncio_fetch_ratio() -> Result:
    paths = [f"/bench/{i}" for i in range(FETCHES)]
    with LatencyServer(latency=LATENCY) as server:
        _, with_asyncio, with_threads = _fetch_times(server, paths)
    return Result(with_threads / with_asyncio, "x",
                  f"{FETCHES} threads {with_threads * FETCHES:.3f} s, asyncio "
                  f"{with_asyncio * FETCHES:.3f} s (medians of {REPEAT}); the server runs in "
                  "this process, so both share its GIL")
