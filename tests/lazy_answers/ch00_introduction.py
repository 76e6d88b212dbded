(
    """Lazy answers for chapter 0: the right values without the threads, the join or the """
    """reasoning asked for."""
)

LAZY_ANSWERS: dict[str, dict[str, list[str]]] = {
    "01_concurrency_and_parallelism.ipynb": {
        "ex00_1_wait_concurrently": [
            # Starts every thread at once but never joins: the waits happen to end before anyone
            # looks.
            '''
import threading
import time

from course_lib.workers import io_wait


def wait_concurrently(delays, tracer):
    results = [None] * len(delays)

    def wait_one(index, delay):
        with tracer.span("wait"):
            results[index] = io_wait(delay)

    for index, delay in enumerate(delays):
        threading.Thread(target=wait_one, args=(index, delay)).start()
    time.sleep(max(delays, default=0) + 0.02)    # "long enough" instead of join()
    return results
''',
            # Serial: every wait in the calling thread, one after another.
            '''
from course_lib.workers import io_wait


def wait_concurrently(delays, tracer):
    results = []
    for delay in delays:
        with tracer.span("wait"):
            results.append(io_wait(delay))
    return results
''',
        ],
        "ex00_2_classify": [
            # One label for everything that runs on several cores.
            '''
def classify_scenarios():
    keys = ["numpy_scale", "gpu_pixels", "pool_thumbnails", "etl_pipeline",
            "voting_controllers", "mpi_grid"]
    return {"sum_loop": ("SISD", "none"), **{key: ("MIMD", "data") for key in keys}}
''',
        ],
        "ex00_3_split_evenly": [
            # Round-robin chunks: sizes are even, but the order of the items is lost.
            '''
def split_evenly(items, n_chunks):
    if n_chunks < 1:
        raise ValueError("n_chunks must be at least 1")
    items = list(items)
    count = min(n_chunks, len(items))
    return [items[i::count] for i in range(count)]
''',
        ],
    },
    "02_laws_and_measurement.ipynb": {
        "ex00_4_plan_workers": [
            # Transcribes the calculus: rounds the real-valued optimum and clips it.
            '''
import math


def plan_workers(t1, serial_fraction, overhead, max_workers):
    if t1 <= 0 or not 0.0 <= serial_fraction <= 1.0 or overhead < 0 or max_workers < 1:
        raise ValueError("invalid input")
    if overhead == 0:
        n = max_workers if serial_fraction < 1 else 1
    else:
        n = min(max_workers, max(1, round(math.sqrt(t1 * (1 - serial_fraction) / overhead))))
    return n, t1 * (serial_fraction + (1 - serial_fraction) / n) + overhead * (n - 1)
''',
            # "One worker per core", whatever the model says.
            '''
def plan_workers(t1, serial_fraction, overhead, max_workers):
    if t1 <= 0 or not 0.0 <= serial_fraction <= 1.0 or overhead < 0 or max_workers < 1:
        raise ValueError("invalid input")
    n = min(max_workers, 8)
    return n, t1 * (serial_fraction + (1 - serial_fraction) / n) + overhead * (n - 1)
''',
        ],
        "ex00_5_serial_fraction": [
            # Clips the estimate to [0, 1]: throws away the slow-down and superlinear diagnostics.
            '''
def serial_fraction_from_speedup(speedup, workers):
    if workers < 2:
        raise ValueError("need at least 2 workers")
    if speedup <= 0:
        raise ValueError("speedup must be positive")
    return min(1.0, max(0.0, (1.0 / speedup - 1.0 / workers) / (1.0 - 1.0 / workers)))
''',
        ],
        "ex00_6_median_time": [
            # Times all the repeats in one block and divides: the mean, not the median.
            '''
import time


def median_time(fn, repeat=5, warmup=1, clock=time.perf_counter):
    if repeat < 1:
        raise ValueError("repeat must be at least 1")
    if warmup < 0:
        raise ValueError("warmup must be at least 0")
    for _ in range(warmup):
        fn()
    start = clock()
    for _ in range(repeat):
        fn()
    return (clock() - start) / repeat
''',
        ],
    },
}
