"""The MPI evidence checks fail on the lazy behaviour and pass on the reference
(graders.checks.mpi)."""

from __future__ import annotations

import pytest

from course_lib.mpi import MPITrace, mpi_available
from graders.checks import (
    assert_collective_bytes,
    assert_collective_calls,
    assert_messages,
    assert_no_collectives,
    assert_seeds,
    assert_topology,
    collective_bytes,
    run_watching_rng,
)

needs_mpi = pytest.mark.skipif(not mpi_available(), reason="mpi4py/mpiexec not installed")


def _trace(*events: dict) -> MPITrace:
    records = []
    for i, event in enumerate(events, start=1):
        records.append({"id": i, "start": float(i), "end": float(i) + 0.5, **event})
    return MPITrace.from_records(records)


def _message(source: int, dest: int, nbytes: int, op: str = "Send") -> list[dict]:
    return [{"rank": source, "op": op, "kind": "send", "dest": dest, "send_tag": 0,
             "send_nbytes": nbytes},
            {"rank": dest, "op": "Recv", "kind": "recv", "source": source, "recv_tag": 0,
             "recv_nbytes": nbytes}]


def test_assert_messages_counts_pairs_sizes_and_buffers() -> None:
    good = _trace(*_message(0, 1, 80), *_message(1, 0, 80))
    assert_messages(good, count=2, pairs=[(0, 1), (1, 0)], nbytes=80, buffers=True)
    with pytest.raises(AssertionError, match="0 message"):
        assert_messages(_trace(), count=2)            # lazy: the neighbour's data made locally
    with pytest.raises(AssertionError, match="expected"):
        assert_messages(good, pairs=[(0, 1)])
    with pytest.raises(AssertionError, match="sizes"):
        assert_messages(_trace(*_message(0, 1, 8), *_message(1, 0, 80)), nbytes=80)
    with pytest.raises(AssertionError, match="pickling"):
        assert_messages(_trace(*_message(0, 1, 80, op="send")), buffers=True)


def _collective(rank: int, op: str, sent: int | None, received: int | None) -> dict:
    event = {"rank": rank, "op": op, "kind": "collective"}
    if sent is not None:
        event["send_nbytes"] = sent
    if received is not None:
        event["recv_nbytes"] = received
    return event


def test_collective_checks() -> None:
    scattered = _trace(_collective(0, "scatter", 8100, 4050), _collective(1, "scatter", 4, 4050),
                       _collective(0, "allreduce", 20, 20), _collective(1, "allreduce", 20, 20))
    assert collective_bytes(scattered, 1, ["scatter"]) == 4050
    assert_collective_calls(scattered, ["allreduce"], range(2), times=1)
    assert_collective_bytes(scattered, ["scatter"], {1: 4000})
    token = _trace(_collective(0, "scatter", 40, 5), _collective(1, "scatter", 4, 5))
    with pytest.raises(AssertionError, match="rank 1 received 5 bytes"):
        assert_collective_bytes(token, ["scatter"], {1: 4000})
    with pytest.raises(AssertionError, match="rank 1 made 0"):
        assert_collective_calls(token, ["allreduce", "scatter"][:1], range(2))
    with pytest.raises(AssertionError, match="reduce"):
        assert_no_collectives(_trace(_collective(0, "reduce", 8, 8)))
    assert_no_collectives(_trace(*_message(1, 0, 8)))


def test_assert_topology() -> None:
    made = _trace({"rank": 0, "op": "Create_cart", "kind": "topology"},
                  {"rank": 0, "op": "Shift", "kind": "topology"},
                  {"rank": 0, "op": "Shift", "kind": "topology"})
    assert_topology(made, [0], shifts=2)
    with pytest.raises(AssertionError, match="Create_cart 0"):
        assert_topology(_trace(), [0])                 # lazy: neighbours by arithmetic


def test_assert_seeds() -> None:
    assert_seeds([[1], []], {0: [1]})
    with pytest.raises(AssertionError, match="rank 1 seeded"):
        assert_seeds([[1], [1]], {0: [1]})             # lazy: rank 1 made the data again


def _make_on_root(comm, n):  # type: ignore[no-untyped-def]
    import numpy
    data = numpy.random.default_rng(5).random(n) if comm.Get_rank() == 0 else None
    pieces = None if data is None else numpy.array_split(data, comm.Get_size())
    return float(comm.scatter(pieces, root=0).sum())


def _make_everywhere(comm, n):  # type: ignore[no-untyped-def]
    import numpy
    data = numpy.random.default_rng(5).random(n)
    return float(numpy.array_split(data, comm.Get_size())[comm.Get_rank()].sum())


@needs_mpi
def test_run_watching_rng_tells_received_from_regenerated() -> None:
    good = run_watching_rng(_make_on_root, 2, args=(1000,), timeout=30)
    lazy = run_watching_rng(_make_everywhere, 2, args=(1000,), timeout=30)
    assert good.results == pytest.approx(lazy.results)
    assert good.seeds == [[5], []] and lazy.seeds == [[5], [5]]
    assert_seeds(good.seeds, {0: [5]})
    assert_collective_bytes(good.trace, ["scatter"], {1: 8 * 500})
    with pytest.raises(AssertionError):
        assert_seeds(lazy.seeds, {0: [5]})
    with pytest.raises(AssertionError):
        assert_collective_bytes(lazy.trace, ["scatter"], {1: 8 * 500})
