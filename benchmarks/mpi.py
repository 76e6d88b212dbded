"""MPI (chapter 5): start-up cost, buffers against pickles, collective latency, a stencil.

Each figure runs one small program under ``course_lib.mpi.run_mpi``; the
programs time themselves with ``time.perf_counter`` between
barriers and print one JSON line on rank 0, so only ratios and latencies
measured inside one run are reported.
"""

from __future__ import annotations

import json
from typing import Any

from course_lib.timing import benchmark

from . import Result, Skip, figure

STARTUP_RANKS = 4
STARTUP_REPEAT = 5
MESSAGE_BYTES = 10_000_000
ALLREDUCE_RANKS = 4
HEAT_POINTS = 100_000
HEAT_STEPS = 400
TIMEOUT = 120.0


def _mpi() -> Any:
    try:
        from course_lib import mpi
    except ImportError as exc:  # pragma: no cover - course_lib is this repository
        raise Skip(f"course_lib.mpi cannot be imported: {exc}") from None
    if not mpi.mpi_available():
        raise Skip("mpi4py or mpiexec is missing: pip install -e '.[mpi]'")
    return mpi


def _rank0_json(source: str, n: int) -> dict[str, Any]:
    run = _mpi().run_mpi(source, n=n, timeout=TIMEOUT)
    lines = [line for line in run.stdout[0].splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"the benchmark program printed no result on rank 0:\n{run}")
    parsed: dict[str, Any] = json.loads(lines[-1])
    return parsed


_TRIVIAL = "from mpi4py import MPI\nMPI.COMM_WORLD.Barrier()\n"


@figure("mpi_startup_seconds", "<= 0.6",
        f"run_mpi of a trivial program (import mpi4py, one barrier) on {STARTUP_RANKS} ranks: "
        "median wall time, start to every rank gone")
def mpi_startup_seconds() -> Result:
    mpi = _mpi()
    # one warm-up run (file caches), then STARTUP_REPEAT timed runs
    timing = benchmark(mpi.run_mpi, _TRIVIAL, n=STARTUP_RANKS, timeout=TIMEOUT,
                       repeat=STARTUP_REPEAT, warmup=1, loops=1)
    times = timing.wall
    return Result(timing.median, "s",
                  f"min {min(times):.3f} s, max {max(times):.3f} s over {STARTUP_REPEAT} runs")


_PINGPONG = f"""
import json, time
import numpy as np
from mpi4py import MPI

comm = MPI.COMM_WORLD
data = np.random.default_rng(0).random({MESSAGE_BYTES} // 8)
back = np.empty_like(data)

def objects():
    if comm.rank == 0:
        comm.send(data, dest=1)
        comm.recv(source=1)
    else:
        comm.send(comm.recv(source=0), dest=0)

def buffers():
    if comm.rank == 0:
        comm.Send(data, dest=1)
        comm.Recv(back, source=1)
    else:
        comm.Recv(back, source=0)
        comm.Send(back, dest=0)

medians = {{}}
for name, exchange in (("send", objects), ("Send", buffers)):
    exchange()
    times = []
    for _ in range(7):
        comm.Barrier()
        began = time.perf_counter()
        exchange()
        times.append(time.perf_counter() - began)
    medians[name] = sorted(times)[len(times) // 2]
if comm.rank == 0:
    print(json.dumps(medians))
"""


@figure("mpi_buffer_vs_pickle_speedup", ">= 3",
        f"ping-pong of a {MESSAGE_BYTES // 10**6} MB NumPy array between 2 ranks: "
        "time with send/recv (pickled) / time with Send/Recv (buffer)")
def mpi_buffer_vs_pickle_speedup() -> Result:
    medians = _rank0_json(_PINGPONG, 2)
    return Result(medians["send"] / medians["Send"], "x",
                  f"send {medians['send'] * 1e3:.2f} ms, Send {medians['Send'] * 1e3:.2f} ms "
                  "per round trip")


_ALLREDUCE = """
import json, time
import numpy as np
from mpi4py import MPI

comm = MPI.COMM_WORLD
mine, total = np.ones(1), np.empty(1)
for _ in range(200):
    comm.Allreduce(mine, total)
batches = []
for _ in range(7):
    comm.Barrier()
    began = time.perf_counter()
    for _ in range(200):
        comm.Allreduce(mine, total)
    batches.append((time.perf_counter() - began) / 200)
if comm.rank == 0:
    print(json.dumps({"seconds": sorted(batches)[len(batches) // 2]}))
"""


@figure("mpi_allreduce_us", "informational",
        f"latency of Allreduce of one float64 on {ALLREDUCE_RANKS} ranks (median of batches)")
def mpi_allreduce_us() -> Result:
    seconds = _rank0_json(_ALLREDUCE, ALLREDUCE_RANKS)["seconds"]
    return Result(seconds * 1e6, "us", f"{ALLREDUCE_RANKS} ranks on this machine's cores")


_HEAT = f"""
import json, time
import numpy as np
from mpi4py import MPI

comm = MPI.COMM_WORLD
size, rank = comm.Get_size(), comm.Get_rank()
n, steps, alpha = {HEAT_POINTS}, {HEAT_STEPS}, 0.25
counts = [n // size + (1 if r < n % size else 0) for r in range(size)]
lo = sum(counts[:rank])
u = np.zeros(counts[rank] + 2)
u[1:-1] = np.sin(np.linspace(0, np.pi, n))[lo:lo + counts[rank]]
left = rank - 1 if rank > 0 else MPI.PROC_NULL
right = rank + 1 if rank < size - 1 else MPI.PROC_NULL
change = np.empty(counts[rank])
comm.Barrier()
began = time.perf_counter()
for _ in range(steps):
    comm.Sendrecv(u[1:2], dest=left, recvbuf=u[-1:], source=right)
    comm.Sendrecv(u[-2:-1], dest=right, recvbuf=u[0:1], source=left)
    # In place, no temporaries: an MPI library may change how malloc hands out big
    # blocks, and temporary arrays would then time the allocator, not the stencil.
    np.add(u[:-2], u[2:], out=change)
    change -= u[1:-1]
    change -= u[1:-1]
    change *= alpha
    u[1:-1] += change
comm.Barrier()
elapsed = time.perf_counter() - began
if rank == 0:
    print(json.dumps({{"seconds": elapsed}}))
"""


@figure("heat_mpi_speedup", "informational (2 cores: at most 2)",
        f"1-D heat stencil, {HEAT_POINTS} points x {HEAT_STEPS} steps with halo exchange: "
        "time on 1 rank / time on 2 ranks")
def heat_mpi_speedup() -> Result:
    one = min(_rank0_json(_HEAT, 1)["seconds"] for _ in range(3))
    two = min(_rank0_json(_HEAT, 2)["seconds"] for _ in range(3))
    return Result(one / two, "x", f"1 rank {one * 1e3:.1f} ms, 2 ranks {two * 1e3:.1f} ms "
                  "(best of 3 each)")
