"""Recording every call on a communicator: :func:`TracedComm`.

Runs in the ranks, so it stays light: ``mpi4py.MPI`` is looked up only when a
communicator is wrapped, and nothing else heavy is imported. Each process keeps
its events in memory and, under :func:`course_lib.mpi.run_mpi`, appends them
line by line to ``trace-RANK.jsonl`` in the run's folder (a killed rank loses
at most the line it was writing).
"""

from __future__ import annotations

import atexit
import importlib
import json
import os
import pickle
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from course_lib.mpi.settings import RUN_DIR_ENV
from course_lib.mpi.trace import MPITrace

__all__ = ["TracedComm"]

_COLLECTIVES: dict[str, int | None] = {  # name -> position of the root argument (None: no root)
    "barrier": None, "Barrier": None, "bcast": 1, "Bcast": 1, "scatter": 1, "Scatter": 2,
    "Scatterv": 2, "gather": 1, "Gather": 2, "Gatherv": 2, "allgather": None,
    "Allgather": None, "Allgatherv": None, "reduce": 2, "Reduce": 3, "allreduce": None,
    "Allreduce": None, "alltoall": None, "Alltoall": None, "Alltoallv": None, "scan": None,
    "Scan": None, "exscan": None, "Exscan": None, "Reduce_scatter": None,
    "Reduce_scatter_block": None,
}
_SENDS = ("send", "ssend", "bsend", "Send", "Ssend", "Bsend", "Rsend")
_ISENDS = ("isend", "issend", "Isend", "Issend")
_RECVS = ("recv", "Recv")
_IRECVS = ("irecv", "Irecv")


def _arg(args: tuple[Any, ...], kwargs: dict[str, Any], index: int, name: str,
         default: Any) -> Any:
    if len(args) > index:
        return args[index]
    return kwargs.get(name, default)


def _nbytes(data: Any, uppercase: bool) -> int | None:
    """Bytes in a buffer spec (``arr`` or ``[arr, MPI.DOUBLE]``), or in a pickled object."""
    if uppercase:
        buffer = data[0] if isinstance(data, list | tuple) and data else data
        try:
            return memoryview(buffer).nbytes
        except TypeError:
            return None
    buffers: list[pickle.PickleBuffer] = []
    try:  # out-of-band buffers: a big array is measured, not copied
        head = pickle.dumps(data, protocol=5, buffer_callback=buffers.append)
    except Exception:  # noqa: BLE001 - an object pickle cannot take: mpi4py will say so
        return None
    return len(head) + sum(b.raw().nbytes for b in buffers)


class _Recorder:
    """The events of one process: kept in memory and, in a run, appended line by line to a file."""

    def __init__(self, rank: int, path: Path | None, clock: Callable[[], float]) -> None:
        self.rank = rank
        self.clock = clock
        self.records: list[dict[str, Any]] = []
        self.pending: list[Any] = []  # TracedRequests not yet completed
        self._next = 0
        self.last_start = 0.0
        self._file = open(path, "a", buffering=1, encoding="utf-8") if path else None  # noqa: SIM115
        # A program that never closes its trace: notice its last requests at exit (this runs
        # before mpi4py's own exit handler, which was registered earlier, finalizes MPI).
        atexit.register(self.close)

    def _write(self, record: dict[str, Any]) -> None:
        self.records.append(record)
        if self._file is not None:
            self._file.write(json.dumps(record) + "\n")

    def begin(self, op: str, kind: str, **fields: Any) -> int:
        self.poll()
        self._next += 1
        self.last_start = self.clock()
        record: dict[str, Any] = {"rank": self.rank, "id": self._next, "op": op, "kind": kind,
                                  "start": self.last_start}
        record.update({k: v for k, v in fields.items() if v is not None})
        self._write(record)
        return self._next

    def end(self, event_id: int, **fields: Any) -> None:
        record = {"rank": self.rank, "id": event_id, "end": self.clock()}
        record.update({k: v for k, v in fields.items() if v is not None})
        self._write(record)

    def poll(self) -> None:
        """Notice requests completed by calls the trace does not see (``MPI.Request.Waitall``)."""
        if not self.pending:
            return
        mpi: Any = importlib.import_module("mpi4py.MPI")
        still = []
        for request in self.pending:
            if request._course_done:
                continue
            if request == mpi.REQUEST_NULL:
                request._course_done = True
                self._next += 1  # not begin(): it would poll again
                now = self.clock()
                record = {"rank": self.rank, "id": self._next, "op": "(completed by waitall)",
                          "kind": "wait", "start": now, "end": now,
                          "request": request._course_post, "posted": request._course_posted}
                if request._course_kind == "irecv":
                    record.update({k: v for k, v in request._course_expect.items()
                                   if v is not None})
                self._write(record)
            else:
                still.append(request)
        self.pending = still

    def close(self) -> None:
        self.poll()
        if self._file is not None:
            self._file.close()
            self._file = None


_RECORDER: _Recorder | None = None
_TYPES: dict[type, type] = {}


def _recorder(path: str | os.PathLike[str] | None, clock: Callable[[], float]) -> _Recorder:
    global _RECORDER
    if _RECORDER is None or _RECORDER._file is None and path is not None:
        mpi: Any = importlib.import_module("mpi4py.MPI")
        rank = int(mpi.COMM_WORLD.Get_rank())
        target: Path | None = Path(path) if path is not None else None
        if target is None and os.environ.get(RUN_DIR_ENV):
            target = Path(os.environ[RUN_DIR_ENV]) / f"trace-{rank}.jsonl"
        _RECORDER = _Recorder(rank, target, clock)
    return _RECORDER


class _TracingComm:
    """Methods mixed into a subclass of the wrapped communicator's own class."""

    _course_rec: _Recorder
    _course_world: list[int]

    def _course_peer(self, rank: Any) -> int | None:
        if rank is None or not isinstance(rank, int) or rank < 0:
            return None  # PROC_NULL, ANY_SOURCE (negative in every MPI)
        try:
            return self._course_world[rank]
        except IndexError:
            return None

    def _course_send(self, op: str, fn: Callable[..., Any], a: tuple[Any, ...],
                     k: dict[str, Any]) -> Any:
        data = _arg(a, k, 0, "buf" if op[0].isupper() else "obj", None)
        dest = self._course_peer(_arg(a, k, 1, "dest", None))
        eid = self._course_rec.begin(op, "send", dest=dest, send_tag=_arg(a, k, 2, "tag", 0),
                                     send_nbytes=_nbytes(data, op[0].isupper()))
        try:
            return fn(*a, **k)
        finally:  # a call that raised did return: only a stuck call has no end
            self._course_rec.end(eid)

    def _course_recv(self, op: str, fn: Callable[..., Any], a: tuple[Any, ...],
                     k: dict[str, Any]) -> Any:
        mpi: Any = importlib.import_module("mpi4py.MPI")
        buf = _arg(a, k, 0, "buf", None)
        source = _arg(a, k, 1, "source", mpi.ANY_SOURCE)
        tag = _arg(a, k, 2, "tag", mpi.ANY_TAG)
        status = _arg(a, k, 3, "status", None) or mpi.Status()
        eid = self._course_rec.begin(op, "recv")
        try:
            result = fn(buf, source, tag, status)
        except BaseException:
            self._course_rec.end(eid)
            raise
        self._course_rec.end(eid, **self._course_status(status))
        return result

    def _course_status(self, status: Any) -> dict[str, Any]:
        source = self._course_peer(status.Get_source())
        if source is None:
            return {}
        return {"source": source, "recv_tag": status.Get_tag(),
                "recv_nbytes": status.Get_count()}

    def _course_sendrecv(self, op: str, fn: Callable[..., Any], a: tuple[Any, ...],
                         k: dict[str, Any]) -> Any:
        mpi: Any = importlib.import_module("mpi4py.MPI")
        replace = op == "Sendrecv_replace"
        first = "buf" if replace else ("sendbuf" if op[0].isupper() else "sendobj")
        data = _arg(a, k, 0, first, None)
        dest = _arg(a, k, 1, "dest", mpi.PROC_NULL)
        sendtag = _arg(a, k, 2, "sendtag", 0)
        offset = 0 if replace else 1
        recvbuf = None if replace else _arg(a, k, 3, "recvbuf", None)
        source = _arg(a, k, 3 + offset, "source", mpi.ANY_SOURCE)
        recvtag = _arg(a, k, 4 + offset, "recvtag", mpi.ANY_TAG)
        status = _arg(a, k, 5 + offset, "status", None) or mpi.Status()
        peer = self._course_peer(dest)
        eid = self._course_rec.begin(op, "sendrecv", dest=peer,
                                     send_tag=sendtag if peer is not None else None,
                                     send_nbytes=_nbytes(data, op[0].isupper())
                                     if peer is not None else None)
        try:
            if replace:
                result = fn(data, dest, sendtag, source, recvtag, status)
            else:
                result = fn(data, dest, sendtag, recvbuf, source, recvtag, status)
        except BaseException:
            self._course_rec.end(eid)
            raise
        self._course_rec.end(eid, **self._course_status(status))
        return result

    def _course_post(self, op: str, fn: Callable[..., Any], a: tuple[Any, ...],
                     k: dict[str, Any], receiving: bool) -> Any:
        mpi: Any = importlib.import_module("mpi4py.MPI")
        if receiving:
            source = self._course_peer(_arg(a, k, 1, "source", mpi.ANY_SOURCE))
            tag = _arg(a, k, 2, "tag", mpi.ANY_TAG)
            tag = tag if isinstance(tag, int) and tag >= 0 else None
            eid = self._course_rec.begin(op, "irecv", source=source, recv_tag=tag)
            expect = {"source": source, "recv_tag": tag}
        else:
            data = _arg(a, k, 0, "buf" if op[0].isupper() else "obj", None)
            eid = self._course_rec.begin(op, "isend",
                                         dest=self._course_peer(_arg(a, k, 1, "dest", None)),
                                         send_tag=_arg(a, k, 2, "tag", 0),
                                         send_nbytes=_nbytes(data, op[0].isupper()))
            expect = {}
        posted = self._course_rec.last_start  # receives match in the order they were posted
        try:
            request = fn(*a, **k)
        finally:
            self._course_rec.end(eid)
        traced = _traced_type(type(request))(request)
        traced._course_setup(self, "irecv" if receiving else "isend", eid, posted, expect)
        self._course_rec.pending.append(traced)
        return traced

    def _course_collective(self, op: str, fn: Callable[..., Any], a: tuple[Any, ...],
                           k: dict[str, Any]) -> Any:
        position = _COLLECTIVES[op]
        root = None if position is None else self._course_peer(_arg(a, k, position, "root", 0))
        upper = op[0].isupper()
        first = {"bcast": "obj", "Bcast": "buf"}.get(op, "sendbuf" if upper else "sendobj")
        sent = None if op in ("barrier", "Barrier") else _nbytes(_arg(a, k, 0, first, None), upper)
        eid = self._course_rec.begin(op, "collective", root=root, send_nbytes=sent)
        try:
            result = fn(*a, **k)
        except BaseException:
            self._course_rec.end(eid)
            raise
        # What this rank got back: the pickled result, or the receiving buffer.
        if op in ("barrier", "Barrier"):
            received = None
        elif not upper:
            received = _nbytes(result, False)
        else:
            received = _nbytes(_arg(a, k, 0, "buf", None) if op == "Bcast"
                               else _arg(a, k, 1, "recvbuf", None), True)
        self._course_rec.end(eid, recv_nbytes=received)
        return result

    def _course_wrap(self, comm: Any) -> Any:
        mpi: Any = importlib.import_module("mpi4py.MPI")
        if comm == mpi.COMM_NULL:
            return comm
        return _wrap_comm(comm, self._course_rec)

    def close_trace(self) -> None:
        """Finish this process's trace: notice completed requests and close the file."""
        self._course_rec.close()

    def trace(self) -> MPITrace:
        """This process's events so far (one rank's view)."""
        self._course_rec.poll()
        return MPITrace.from_records(self._course_rec.records)

    # Communicators made from a traced one are traced too.
    def Create_cart(self, *a: Any, **k: Any) -> Any:
        eid = self._course_rec.begin("Create_cart", "topology")
        try:
            return self._course_wrap(super().Create_cart(*a, **k))  # type: ignore[misc]
        finally:
            self._course_rec.end(eid)

    def Shift(self, *a: Any, **k: Any) -> Any:
        """``Shift`` of a Cartesian communicator, recorded (kind "topology")."""
        eid = self._course_rec.begin("Shift", "topology")
        try:
            return super().Shift(*a, **k)  # type: ignore[misc]
        finally:
            self._course_rec.end(eid)

    def Dup(self, *a: Any, **k: Any) -> Any:
        return self._course_wrap(super().Dup(*a, **k))  # type: ignore[misc]

    def Split(self, *a: Any, **k: Any) -> Any:
        return self._course_wrap(super().Split(*a, **k))  # type: ignore[misc]

    def Sub(self, *a: Any, **k: Any) -> Any:
        return self._course_wrap(super().Sub(*a, **k))  # type: ignore[misc]


def _method(name: str, handler: str, *extra: Any) -> Callable[..., Any]:
    def method(self: Any, *a: Any, **k: Any) -> Any:
        fn = getattr(super(_TracingComm, self), name)
        return getattr(self, handler)(name, fn, a, k, *extra)

    method.__name__ = name
    method.__doc__ = f"``{name}`` of the wrapped communicator, recorded in the trace."
    return method


for _name in _SENDS:
    setattr(_TracingComm, _name, _method(_name, "_course_send"))
for _name in _RECVS:
    setattr(_TracingComm, _name, _method(_name, "_course_recv"))
for _name in ("sendrecv", "Sendrecv", "Sendrecv_replace"):
    setattr(_TracingComm, _name, _method(_name, "_course_sendrecv"))
for _name in _ISENDS:
    setattr(_TracingComm, _name, _method(_name, "_course_post", False))
for _name in _IRECVS:
    setattr(_TracingComm, _name, _method(_name, "_course_post", True))
for _name in _COLLECTIVES:
    setattr(_TracingComm, _name, _method(_name, "_course_collective"))


class _TracingRequest:
    """Methods mixed into a subclass of ``MPI.Request``: completion is recorded."""

    _course_rec: _Recorder
    _course_comm: Any
    _course_kind: str
    _course_post: int
    _course_posted: float
    _course_expect: dict[str, Any]
    _course_done: bool

    def _course_setup(self, comm: Any, kind: str, post: int, posted: float,
                      expect: dict[str, Any]) -> None:
        self._course_rec = comm._course_rec
        self._course_comm = comm
        self._course_kind = kind
        self._course_post = post
        self._course_posted = posted
        self._course_expect = expect
        self._course_done = False

    def _course_complete(self, op: str, fn: Callable[..., Any], a: tuple[Any, ...],
                         k: dict[str, Any], testing: bool) -> Any:
        mpi: Any = importlib.import_module("mpi4py.MPI")
        if self._course_done:
            return fn(*a, **k)
        status = _arg(a, k, 0, "status", None) or mpi.Status()
        eid = self._course_rec.begin(op, "wait", request=self._course_post,
                                     posted=self._course_posted)
        result = fn(status)
        flag = (result[0] if isinstance(result, tuple) else bool(result)) if testing else True
        fields: dict[str, Any] = {}
        if flag:
            self._course_done = True
            if self._course_kind == "irecv":
                fields = self._course_comm._course_status(status)
        else:  # a test() that found the request still pending: not a completion
            fields = {"request": -1}
        self._course_rec.end(eid, **fields)
        return result


def _request_method(name: str, testing: bool) -> Callable[..., Any]:
    def method(self: Any, *a: Any, **k: Any) -> Any:
        fn = getattr(super(_TracingRequest, self), name)
        return self._course_complete(name, fn, a, k, testing)

    method.__name__ = name
    return method


for _name, _testing in (("wait", False), ("Wait", False), ("test", True), ("Test", True)):
    setattr(_TracingRequest, _name, _request_method(_name, _testing))


def _traced_type(base: type) -> type:
    made = _TYPES.get(base)
    if made is None:
        mpi: Any = importlib.import_module("mpi4py.MPI")
        mixin = _TracingRequest if issubclass(base, mpi.Request) else _TracingComm
        made = type(f"Traced{base.__name__}", (mixin, base), {"__module__": __name__})
        _TYPES[base] = made
    return made


def _wrap_comm(comm: Any, recorder: _Recorder) -> Any:
    mpi: Any = importlib.import_module("mpi4py.MPI")
    traced = _traced_type(type(comm))(comm)
    traced._course_rec = recorder
    size = comm.Get_size()
    if comm == mpi.COMM_WORLD:
        traced._course_world = list(range(size))
    else:
        group, world = comm.Get_group(), mpi.COMM_WORLD.Get_group()
        traced._course_world = [int(r) for r in mpi.Group.Translate_ranks(group, list(range(size)),
                                                                           world)]
        group.Free()
        world.Free()
    return traced


def TracedComm(  # noqa: N802 - used like a class
    comm: Any,
    path: str | os.PathLike[str] | None = None,
    *,
    clock: Callable[[], float] = time.perf_counter,
) -> Any:
    """``comm`` (an mpi4py communicator) with every message and collective call recorded.

    The result *is* a communicator of the same class (``Intracomm``,
    ``Cartcomm``...): pass it wherever ``comm`` went. Point-to-point calls
    (``send``/``recv``/``Send``/``Recv``/``sendrecv``/``isend``/``irecv``...,
    with their requests' ``wait``/``Wait``/``test``), collectives and
    ``Create_cart``/``Dup``/``Split`` are recorded with ``time.perf_counter``
    (one clock for every process on one machine). Under :func:`run_mpi` each
    rank appends its events to a file in the run's folder and ``run.trace``
    gathers them; elsewhere they are written to ``path`` (if given) and
    ``comm.trace()`` returns this rank's own.
    """
    return _wrap_comm(comm, _recorder(path, clock))
