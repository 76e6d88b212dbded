"""Threads on I/O-bound and CPU-bound work: the GIL's price, measured."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from course_lib.timing import compare
from course_lib.workers import busy_work, io_wait

from . import Result, figure

IO_TASKS = 50
IO_SECONDS = 0.02
CPU_THREADS = 2
CPU_WORK = 1_500_000


@figure("threads_io_speedup", ">= 10",
        f"{IO_TASKS} simulated I/O waits of {IO_SECONDS * 1e3:g} ms: {IO_TASKS} threads vs serial")
def threads_io_speedup() -> Result:
    def serial() -> list[float]:
        return [io_wait(IO_SECONDS) for _ in range(IO_TASKS)]

    def threaded() -> list[float]:
        with ThreadPoolExecutor(max_workers=IO_TASKS) as pool:
            return list(pool.map(io_wait, [IO_SECONDS] * IO_TASKS))

    comparison = compare({"serial": serial, "threads": threaded}, baseline="serial",
                         repeat=5, warmup=1, min_time=0.0)
    row = comparison["threads"]
    return Result(row.speedup, "x", f"serial median {comparison['serial'].timing.median:.3f} s, "
                  f"threads {row.timing.median:.3f} s")


@figure("threads_cpu_ratio", "informational (>= 1 means the GIL costs time)",
        f"pure-Python CPU work split over {CPU_THREADS} threads: threaded time / serial time")
def threads_cpu_ratio() -> Result:
    def serial() -> list[int]:
        return [busy_work(CPU_WORK) for _ in range(CPU_THREADS)]

    def threaded() -> list[int]:
        with ThreadPoolExecutor(max_workers=CPU_THREADS) as pool:
            return list(pool.map(busy_work, [CPU_WORK] * CPU_THREADS))

    comparison = compare({"serial": serial, "threads": threaded}, baseline="serial",
                         repeat=7, warmup=1, min_time=0.0)
    serial_t = comparison["serial"].timing
    threads_t = comparison["threads"].timing
    return Result(threads_t.median / serial_t.median, "x",
                  f"CPU/wall with threads {threads_t.cpu_per_wall:.2f} (1.0 = one core busy)")
