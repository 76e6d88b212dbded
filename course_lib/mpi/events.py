"""What a trace is made of: one :class:`TraceEvent` per call, and the messages they make.

:func:`match_messages` pairs sends with receives the way MPI does (in order, per
source, destination and tag). Both :class:`course_lib.mpi.trace.MPITrace` and the
pictures use it. Standard library only.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["Message", "TraceEvent"]

@dataclass(frozen=True)
class TraceEvent:
    """One call on a :class:`TracedComm`, on one rank.

    ``kind`` is "send", "recv", "sendrecv" (blocking), "isend"/"irecv" (a
    non-blocking post, which returns at once), "wait" (completing a request;
    ``request`` is the id of its post), "collective" (``send_nbytes``: what this
    rank passed in, ``recv_nbytes``: what it got back, pickled size or buffer
    size) or "topology" (``Create_cart``, ``Shift``). Ranks are
    ``MPI.COMM_WORLD`` ranks; ``dest``/``source`` are None where there is no
    peer (or ``MPI.PROC_NULL``). ``end`` is None for a call that never returned.
    """

    rank: int
    id: int
    op: str
    kind: str
    start: float
    end: float | None
    dest: int | None = None
    send_tag: int | None = None
    send_nbytes: int | None = None
    source: int | None = None
    recv_tag: int | None = None
    recv_nbytes: int | None = None
    root: int | None = None
    request: int | None = None
    posted: float | None = None

    @property
    def finished(self) -> bool:
        return self.end is not None


@dataclass(frozen=True)
class Message:
    """A message matched from the trace: who sent it, who received it, and when."""

    source: int
    dest: int
    tag: int
    nbytes: int | None
    sent: float
    received: float
    send_op: str
    recv_op: str


_SENDING = ("send", "sendrecv", "isend")
_RECEIVING = ("recv", "sendrecv", "wait")




def first_start(events: Iterable[TraceEvent]) -> float:
    """When the first call began (0.0 for no events)."""
    return min((e.start for e in events), default=0.0)


def last_moment(events: Iterable[TraceEvent], stopped: float | None = None) -> float:
    """The last moment the events know of; ``stopped`` (when a run was killed) counts too."""
    events = list(events)
    times = [e.end if e.end is not None else e.start for e in events]
    if stopped is not None and events:
        times.append(stopped)
    return max(times, default=0.0)


def match_messages(events: Iterable[TraceEvent]) -> tuple[list[Message], list[TraceEvent]]:
    """(messages sent and received, sends that no traced receive took), in MPI's order."""
    events = list(events)
    sends: dict[tuple[int, int, int], list[TraceEvent]] = {}
    recvs: dict[tuple[int, int, int], list[TraceEvent]] = {}
    for e in events:
        if e.kind in _SENDING and e.dest is not None and e.send_tag is not None:
            sends.setdefault((e.rank, e.dest, e.send_tag), []).append(e)
        if (e.kind in _RECEIVING and e.source is not None and e.recv_tag is not None
                and e.end is not None):
            recvs.setdefault((e.source, e.rank, e.recv_tag), []).append(e)
    posts: dict[tuple[int, int | None], str] = {
        (e.rank, e.id): e.op for e in events if e.kind in ("isend", "irecv")}
    messages: list[Message] = []
    unmatched: list[TraceEvent] = []
    for key, out in sends.items():
        out.sort(key=lambda e: (e.start, e.id))
        into = sorted(recvs.get(key, []),
                      key=lambda e: (e.posted if e.posted is not None else e.start, e.id))
        for i, s in enumerate(out):
            if i >= len(into):
                unmatched.append(s)
                continue
            r = into[i]
            assert r.end is not None
            nbytes = r.recv_nbytes if r.recv_nbytes is not None else s.send_nbytes
            recv_op = r.op
            if r.kind == "wait" and (r.rank, r.request) in posts:
                recv_op = f"{posts[(r.rank, r.request)]} + {r.op}"
            messages.append(Message(key[0], key[1], key[2], nbytes, s.start, r.end, s.op,
                                    recv_op))
    messages.sort(key=lambda m: (m.sent, m.source, m.dest))
    return messages, unmatched
