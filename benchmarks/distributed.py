"""Chapter 6's engines: what one task costs on each, and a word count on Dask."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from course_lib.machine.cores import usable_cores
from course_lib.timing import benchmark

from . import Result, Skip, figure

ROUND_TRIPS = 20  # per engine: enough for a median, few enough to keep the run short


def _median_ms(
    call: Callable[[], object], n: int = ROUND_TRIPS, warmup: int = 2
) -> tuple[float, float]:
    """Median and interquartile range, in ms, of ``n`` calls after ``warmup`` calls."""
    timing = benchmark(call, repeat=n, warmup=warmup, loops=1)
    return timing.median * 1e3, timing.spread * 1e3


def _needs(module: str) -> None:
    try:
        __import__(module)
    except ImportError:
        raise Skip(f"{module} is not installed: pip install -e '.[distributed]'") from None


def _celery_round_trip(broker: str | None, backend: str | None) -> tuple[float, float]:
    from course_lib.distributed import celery_worker

    with celery_worker(1, broker=broker, backend=backend, timeout=60) as workers:
        def one() -> None:
            result = workers.app.send_task("course_lib.celery_tasks.square", args=(3,))
            value = result.get(timeout=30, interval=0.005)  # poll the result store often
            result.forget()
            if value[0] != 9:
                raise AssertionError(f"square(3) came back as {value!r}")

        return _median_ms(one)


@figure("celery_roundtrip_ms", "informational (latency a broker adds)",
        f"one Celery task sent and its result fetched, median of {ROUND_TRIPS}: "
        "embedded broker (files + SQLite) and, where redis-server exists, Redis")
def celery_roundtrip_ms() -> Result:
    _needs("celery")
    embedded, embedded_iqr = _celery_round_trip(None, None)
    detail = (
        f"embedded (filesystem broker, SQLite backend) {embedded:.1f} ms (IQR {embedded_iqr:.1f})"
    )
    from course_lib.distributed import redis_available, redis_server

    if redis_available():
        with redis_server() as url:
            redis_ms, redis_iqr = _celery_round_trip(url, url)
        detail += f"; Redis {redis_ms:.1f} ms (IQR {redis_iqr:.1f})"
    else:
        detail += "; Redis not measured: redis-server is not installed"
    return Result(embedded, "ms", detail)


@figure(
    "ipp_task_overhead_ms",
    "informational",
    "one trivial task through an ipyparallel load-balanced view (2 local engines), "
    f"median of {ROUND_TRIPS}",
)
def ipp_task_overhead_ms() -> Result:
    _needs("ipyparallel")
    from course_lib.dist_tasks import square
    from course_lib.distributed import ipp_cluster

    with ipp_cluster(2, activate=False) as client:
        view = client.load_balanced_view()

        def one() -> None:
            if view.apply_async(square, 3).get(timeout=30) != 9:
                raise AssertionError("square(3) != 9 on an engine")

        median, iqr = _median_ms(one)
    return Result(median, "ms", f"IQR {iqr:.2f} ms")


@figure("dask_task_overhead_ms", "informational",
        f"one trivial task submitted to a local Dask cluster and gathered, median of {ROUND_TRIPS}")
def dask_task_overhead_ms() -> Result:
    _needs("distributed")
    from course_lib.dist_tasks import square
    from course_lib.distributed import dask_client

    with dask_client(2, processes=True) as client:
        def one() -> None:
            # pure=False: a fresh task each time, not Dask's cached result for the same key
            if client.submit(square, 3, pure=False).result(timeout=30) != 9:
                raise AssertionError("square(3) != 9 on a Dask worker")

        median, iqr = _median_ms(one)
    return Result(median, "ms", f"IQR {iqr:.2f} ms")


def _corpus(n_documents: int, words_per_document: int) -> list[str]:
    import random

    rng = random.Random(0)
    vocabulary = [f"w{i}" for i in range(5_000)]
    return [" ".join(rng.choices(vocabulary, k=words_per_document)) for _ in range(n_documents)]


@figure("wordcount_speedup", ">= 0.7 x usable cores",
        "word count of a synthetic corpus: Dask (one worker process per usable core) vs serial")
def wordcount_speedup() -> Result:
    _needs("distributed")
    from course_lib.dist_tasks import count_words, merge_counts
    from course_lib.distributed import dask_client

    cores = usable_cores()
    documents = _corpus(n_documents=4 * cores, words_per_document=1_000_000)

    def serial() -> Counter[str]:
        return merge_counts(count_words(d) for d in documents)

    with dask_client(cores, processes=True) as client:
        scattered = client.scatter(documents, broadcast=False)  # ship the text once, not per repeat

        def on_dask() -> Counter[str]:
            return merge_counts(client.gather(client.map(count_words, scattered, pure=False)))

        expected = serial()
        if on_dask() != expected:
            raise AssertionError("Dask's word count differs from the serial one")
        serial_s = benchmark(serial, repeat=3, warmup=0, loops=1).median
        dask_s = benchmark(on_dask, repeat=3, warmup=0, loops=1).median
    speedup = serial_s / dask_s
    return Result(speedup, "x", f"{cores} usable cores (goal {0.7 * cores:.2f}x); "
                  f"median of 3: serial {serial_s:.2f} s, Dask {dask_s:.2f} s")

