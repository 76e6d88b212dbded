"""Plausible wrong answers, one per exercise: the suite proves each one fails its test cell."""

WRONG_ANSWERS: dict[str, dict[str, str]] = {
    "01_concurrency_and_parallelism.ipynb": {
        # Seed 003's bug: join() inside the start loop runs the waits one after another.
        "ex00_1_wait_concurrently": '''
import threading

from course_lib.workers import io_wait


def wait_concurrently(delays, tracer):
    results = [None] * len(delays)

    def wait_one(index, delay):
        with tracer.span("wait"):
            results[index] = io_wait(delay)

    for index, delay in enumerate(delays):
        thread = threading.Thread(target=wait_one, args=(index, delay))
        thread.start()
        thread.join()
    return results
''',
        # "Same function on many data items" mistaken for SIMD: a process pool is MIMD.
        "ex00_2_classify": '''
def classify_scenarios():
    return {
        "sum_loop": ("SISD", "none"),
        "numpy_scale": ("SIMD", "data"),
        "gpu_pixels": ("SIMD", "data"),
        "pool_thumbnails": ("SIMD", "data"),
        "etl_pipeline": ("MIMD", "task"),
        "voting_controllers": ("MISD", "task"),
        "mpi_grid": ("MIMD", "data"),
    }
''',
        # Ceil-sized slices: 10 items in 4 chunks give sizes 3, 3, 3, 1.
        "ex00_3_split_evenly": '''
import math


def split_evenly(items, n_chunks):
    if n_chunks < 1:
        raise ValueError("n_chunks must be at least 1")
    items = list(items)
    if not items:
        return []
    size = math.ceil(len(items) / n_chunks)
    return [items[start:start + size] for start in range(0, len(items), size)]
''',
    },
    "02_laws_and_measurement.ipynb": {
        # Trusts Amdahl alone: more workers always look faster, so it always takes max_workers.
        "ex00_4_plan_workers": '''
def plan_workers(t1, serial_fraction, overhead, max_workers):
    if t1 <= 0 or not 0.0 <= serial_fraction <= 1.0 or overhead < 0 or max_workers < 1:
        raise ValueError("invalid input")
    n = max_workers
    return n, t1 * (serial_fraction + (1.0 - serial_fraction) / n) + overhead * (n - 1)
''',
        # "Serial fraction = 1 - efficiency": right only for perfect scaling.
        "ex00_5_serial_fraction": '''
def serial_fraction_from_speedup(speedup, workers):
    if workers < 2:
        raise ValueError("need at least 2 workers")
    if speedup <= 0:
        raise ValueError("speedup must be positive")
    return 1.0 - speedup / workers
''',
        # The mean of the repeats instead of their median.
        "ex00_6_median_time": '''
import statistics
import time


def median_time(fn, repeat=5, warmup=1, clock=time.perf_counter):
    if repeat < 1:
        raise ValueError("repeat must be at least 1")
    if warmup < 0:
        raise ValueError("warmup must be at least 0")
    for _ in range(warmup):
        fn()
    durations = []
    for _ in range(repeat):
        start = clock()
        fn()
        durations.append(clock() - start)
    return statistics.mean(durations)
''',
    },
}
