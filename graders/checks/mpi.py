"""Evidence checks for the MPI exercises (re-exported by graders.checks).

They read a :class:`course_lib.mpi.MPITrace` (``run_function(..., trace=True)``):
the messages that moved between ranks and their sizes, the collectives each
rank called and the bytes it got from them, and the topology calls. One more
tool watches the data itself: :func:`run_watching_rng` runs an exercise on the
ranks while recording which seeds each rank gave NumPy's random generators, so
a test can tell "rank 1 received its piece" from "rank 1 made the data again".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "RngWatchedRun",
    "assert_collective_bytes",
    "assert_collective_calls",
    "assert_messages",
    "assert_no_collectives",
    "assert_seeds",
    "assert_topology",
    "collective_bytes",
    "run_watching_rng",
]


def _fail(what: str, detail: str, hint: str) -> AssertionError:
    message = f"{what}: {detail}" if what else detail
    return AssertionError(f"{message}. {hint}" if hint else message)


def assert_messages(trace: Any, *, count: int | None = None,
                    pairs: Iterable[tuple[int, int]] | None = None,
                    nbytes: int | None = None, buffers: bool = False,
                    what: str = "", hint: str = "") -> None:
    """The point-to-point messages of ``trace``: how many, between whom, how big, and how sent.

    ``pairs`` is compared as a sorted list of (source, dest), one per message;
    ``nbytes`` is the size every message must have; ``buffers`` requires the
    capitalised buffer methods (``Send``, ``Sendrecv``, ``Isend``...) for every send.
    """
    messages = list(trace.messages)
    what = what or "messages between the ranks"
    if count is not None and len(messages) != count:
        raise _fail(what, f"{len(messages)} message(s) moved, expected {count}",
                    hint or "send the data between the ranks with messages")
    if pairs is not None:
        got, want = sorted((m.source, m.dest) for m in messages), sorted(pairs)
        if got != want:
            raise _fail(what, f"(from, to) of the messages were {got}, expected {want}", hint)
    if nbytes is not None:
        sizes = sorted({m.nbytes for m in messages}, key=lambda x: -1 if x is None else x)
        if sizes != [nbytes]:
            raise _fail(what, f"message sizes were {sizes} bytes, expected {nbytes} each", hint)
    if buffers:
        pickled = sorted({m.send_op for m in messages if not m.send_op[:1].isupper()})
        if pickled:
            raise _fail(what, f"sent with the pickling call(s) {', '.join(pickled)}",
                        hint or "use the capitalised buffer methods: Send, Sendrecv or Isend")


def _collectives(trace: Any, ops: Iterable[str], rank: int | None = None) -> list[Any]:
    names = set(ops)
    return [e for e in trace.select(rank=rank, kind="collective") if e.op in names]


def collective_bytes(trace: Any, rank: int, ops: Iterable[str], *, sent: bool = False) -> int:
    """Bytes ``rank`` got back from (or, with ``sent``, passed into) the collectives ``ops``."""
    total = 0
    for e in _collectives(trace, ops, rank):
        size = e.send_nbytes if sent else e.recv_nbytes
        total += size or 0
    return total


def assert_collective_calls(trace: Any, ops: Iterable[str], ranks: Iterable[int], *,
                            times: int | None = None, what: str = "", hint: str = "") -> None:
    """Each of ``ranks`` called one of ``ops`` (exactly ``times`` times, when given; else >= 1)."""
    ops = list(ops)
    counts = {r: len(_collectives(trace, ops, r)) for r in ranks}
    bad = {r: c for r, c in counts.items() if (c != times if times is not None else c < 1)}
    if bad:
        wanted = f"exactly {times}" if times is not None else "at least 1"
        raise _fail(what or f"calls of {' or '.join(ops)}",
                    "; ".join(f"rank {r} made {c}" for r, c in sorted(bad.items()))
                    + f" (expected {wanted} on every rank)",
                    hint or f"every rank must call {ops[0]}")


def assert_no_collectives(trace: Any, what: str = "", hint: str = "") -> None:
    """No rank called a collective operation."""
    used = sorted({e.op for e in trace.select(kind="collective")})
    if used:
        raise _fail(what or "collective operations", f"your code called {', '.join(used)}",
                    hint or "this exercise asks for point-to-point messages (send and recv)")


def assert_collective_bytes(trace: Any, ops: Iterable[str], at_least: Mapping[int, int], *,
                            what: str = "", hint: str = "") -> None:
    """Each rank r got at least ``at_least[r]`` bytes back from the collectives ``ops``."""
    ops = list(ops)
    short = {r: (collective_bytes(trace, r, ops), need) for r, need in at_least.items()
             if collective_bytes(trace, r, ops) < need}
    if short:
        detail = "; ".join(f"rank {r} received {got} bytes, expected at least {need}"
                           for r, (got, need) in sorted(short.items()))
        raise _fail(what or f"data received through {' or '.join(ops)}", detail,
                    hint or "the data must travel through the collective, not be made again "
                            "on every rank")


def assert_topology(trace: Any, ranks: Iterable[int], *, shifts: int = 1, what: str = "",
                    hint: str = "") -> None:
    """Every rank created a Cartesian communicator and asked it for neighbours (``Shift``)."""
    for rank in ranks:
        made = trace.count(rank=rank, kind="topology", op="Create_cart")
        shifted = trace.count(rank=rank, kind="topology", op="Shift")
        if made < 1 or shifted < shifts:
            raise _fail(what or "Cartesian topology",
                        f"rank {rank} called Create_cart {made} time(s) and Shift {shifted} "
                        f"time(s), expected at least 1 and {shifts}",
                        hint or "build the grid with comm.Create_cart and find neighbours with "
                                "cart.Shift instead of computing rank numbers yourself")


# ---------------------------------------------------------------- watching the random generators


def _rng_watch(comm: object, target: str, args: tuple[object, ...]) -> dict[str, object]:
    """Run ``target(comm, *args)`` on a rank, noting the seeds numpy's generators get.

    run_function runs this function's source on the ranks, where the module's
    imports are not made: its signature names builtins only, and the names the
    nested functions' annotations need are imported here.
    """
    from collections.abc import Callable  # noqa: F401  (the ranks evaluate annotations)
    from typing import Any  # noqa: F401  (the ranks evaluate annotations)

    import numpy

    seeds: list[int | str] = []
    names = ("default_rng", "seed")  # classes stay: numpy checks isinstance against them
    saved = {name: getattr(numpy.random, name) for name in names}

    def spy(real: Callable[..., Any]) -> Callable[..., Any]:
        def call(*a: Any, **k: Any) -> Any:
            seed = a[0] if a else k.get("seed")
            seeds.append(int(seed) if isinstance(seed, (int, numpy.integer)) else repr(seed))
            return real(*a, **k)
        return call

    for name, real in saved.items():
        setattr(numpy.random, name, spy(real))
    try:
        value = globals()[target](comm, *args)
    finally:
        for name, real in saved.items():
            setattr(numpy.random, name, real)
    return {"value": value, "seeds": seeds}


@dataclass
class RngWatchedRun:
    """A run of :func:`run_watching_rng`: the MPI run, each rank's value and the seeds it used."""

    run: Any
    results: list[Any]
    seeds: list[list[Any]]

    @property
    def trace(self) -> Any:
        return self.run.trace


def run_watching_rng(fn: Callable[..., Any], n: int, *, args: Sequence[object] = (),
                     helpers: Sequence[Callable[..., Any]] = (), timeout: float = 15.0,
                     trace: bool = True) -> RngWatchedRun:
    """``run_function(fn, n, args=args)``, recording the seeds each rank gave NumPy's generators
    (``default_rng`` and the legacy ``seed``) while ``fn`` ran."""
    from course_lib.mpi import run_function

    run = run_function(_rng_watch, n, args=(fn.__name__, tuple(args)),
                       helpers=(*helpers, fn), timeout=timeout, trace=trace)
    return RngWatchedRun(run, [r["value"] for r in run.results], [r["seeds"] for r in run.results])


def assert_seeds(seeds: Sequence[Sequence[Any]], allowed: Mapping[int, Iterable[Any]], *,
                 what: str = "", hint: str = "") -> None:
    """Rank r seeded random generators only with the seeds in ``allowed[r]`` (empty: none)."""
    for rank, used in enumerate(seeds):
        extra = [s for s in used if s not in set(allowed.get(rank, ()))]
        if extra:
            raise _fail(what or f"random data made on rank {rank}",
                        f"rank {rank} seeded a generator with {extra[:4]}",
                        hint or "only the rank that owns the data may make it; the others "
                                "must receive it")
