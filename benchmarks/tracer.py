"""What one recorded span costs."""

from __future__ import annotations

import statistics
import time

from course_lib.trace import Tracer

from . import Result, figure

SPANS = 100_000
REPEATS = 7


@figure("tracer_overhead_us", "<= 2", "cost of one `with tracer.span(...)` minus an empty loop")
def tracer_overhead_us() -> Result:
    costs = []
    for _ in range(REPEATS):
        with Tracer(capacity=SPANS) as tracer:
            span = tracer.span
            start = time.perf_counter()
            for _ in range(SPANS):
                with span("work"):
                    pass
            traced = time.perf_counter() - start
            start = time.perf_counter()
            for _ in range(SPANS):
                pass
            empty = time.perf_counter() - start
            if tracer.dropped:
                raise RuntimeError("the benchmark tracer dropped spans; raise its capacity")
        costs.append((traced - empty) / SPANS * 1e6)
    spread = max(costs) - min(costs)
    return Result(statistics.median(costs), "us", f"median of {REPEATS} runs of {SPANS} spans; "
                  f"range {spread:.3f} us")
