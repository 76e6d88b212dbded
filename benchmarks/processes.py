"""Process pools and shared memory: the price and the pay-off of processes, measured."""

from __future__ import annotations

import functools
from typing import Any

from course_lib.machine.cores import mp_context, usable_cores
from course_lib.processes import SharedArray, attach_array, square
from course_lib.timing import benchmark, compare
from course_lib.workers import busy_work

from . import Result, figure

CPU_TASKS_PER_WORKER = 4
CPU_TASK_SECONDS = 0.04
TINY_ITEMS = 10_000
SHM_BYTES = 100 * 10**6  # 100 MB
SHM_STRIDE = 512  # one float64 in 512: touches every 4 KiB page, computes little


def _steps_for(seconds: float) -> int:
    per_step = benchmark(busy_work, 100_000, repeat=3, min_time=0.02).median / 100_000
    return max(1, round(seconds / per_step))


def strided_checksum(array: Any) -> float:
    """Sum of every 512th value: reads every page of the array but computes little."""
    return float(array[::SHM_STRIDE].sum())


def strided_checksum_shared(spec: Any) -> float:
    """:func:`strided_checksum` of the shared array ``spec`` (attached, never copied)."""
    with attach_array(spec) as array:
        return strided_checksum(array)


_CORES = usable_cores()


@figure(
    "pool_speedup",
    f">= {0.9 * _CORES:g}",
    f"CPU-bound pure Python ({CPU_TASKS_PER_WORKER} tasks of ~{CPU_TASK_SECONDS * 1e3:g} ms per "
    f"worker): a started pool of usable_cores() = {_CORES} processes vs serial",
)
def pool_speedup() -> Result:
    cores = usable_cores()
    steps = _steps_for(CPU_TASK_SECONDS)
    jobs = [steps] * (CPU_TASKS_PER_WORKER * cores)
    ctx = mp_context()
    with ctx.Pool(cores) as pool:
        pool.map(square, range(cores), chunksize=1)  # every worker is up before the timing
        comparison = compare(
            {"serial": lambda: [busy_work(n) for n in jobs],
             "pool": lambda: pool.map(busy_work, jobs, chunksize=1)},
            baseline="serial", workers={"pool": cores}, repeat=5, warmup=1, min_time=0.0,
        )
    row = comparison["pool"]
    return Result(
        row.speedup,
        "x",
        f"{cores} worker(s) ({ctx.get_start_method()}), efficiency {row.efficiency:.0%}; "
        f"serial {comparison['serial'].timing.median:.3f} s, pool {row.timing.median:.3f} s",
    )


@figure(
    "pool_tiny_task_ratio",
    "informational (> 1: the pool loses on tiny tasks)",
    f"squaring {TINY_ITEMS:,} ints: started pool.map (default chunksize) time / serial list(map) "
    "time; the detail gives chunksize=1 and the best chunksize measured",
)
def pool_tiny_task_ratio() -> Result:
    workers = max(2, usable_cores())
    numbers = list(range(TINY_ITEMS))
    sizes = sorted({1, 10, 100, max(1, TINY_ITEMS // (4 * workers)), max(1, TINY_ITEMS // workers)})
    ctx = mp_context()
    with ctx.Pool(workers) as pool:
        pool.map(square, range(workers), chunksize=1)  # every worker is up before the timing
        variants: dict[str, Any] = {"serial": lambda: list(map(square, numbers)),
                                    "default": lambda: pool.map(square, numbers)}
        for size in sizes:
            variants[f"chunksize={size}"] = functools.partial(pool.map, square, numbers, size)
        comparison = compare(variants, baseline="serial", repeat=3, warmup=1, min_time=0.02)
    serial = comparison["serial"].timing.median

    def ratio(name: str) -> float:
        return comparison[name].timing.median / serial

    best = min(sizes, key=lambda size: ratio(f"chunksize={size}"))
    per_task_us = comparison["chunksize=1"].timing.median / TINY_ITEMS * 1e6
    return Result(ratio("default"), "x",
                  f"{workers} workers, serial {serial * 1e3:.2f} ms; chunksize=1: "
                  f"{ratio('chunksize=1'):.0f}x (~{per_task_us:.0f} us per task); best chunksize "
                  f"measured ({best} of {sizes}): {ratio(f'chunksize={best}'):.2g}x")


@figure("shm_vs_pickle_speedup", ">= 5",
        f"handing a {SHM_BYTES // 10**6} MB float64 array to a pool worker: pickled through the "
        "pipe vs already in shared memory (only its name is sent); time ratio")
def shm_vs_pickle_speedup() -> Result:
    import numpy as np

    ctx = mp_context()
    values = np.random.default_rng(0).random(SHM_BYTES // 8)
    with SharedArray.copy_of(values) as shared, ctx.Pool(1) as pool:
        spec = shared.spec
        pool.apply(square, (2,))  # the worker is up before the timing
        comparison = compare(
            {"pickled": lambda: pool.apply(strided_checksum, (values,)),
             "shared memory": lambda: pool.apply(strided_checksum_shared, (spec,))},
            baseline="pickled", repeat=5, warmup=1, min_time=0.0,
        )
    row = comparison["shared memory"]
    return Result(row.speedup, "x",
                  f"pickled {comparison['pickled'].timing.median * 1e3:.0f} ms, shared memory "
                  f"{row.timing.median * 1e3:.1f} ms ({ctx.get_start_method()})")
