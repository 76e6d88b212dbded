"""Evidence checks for the threads exercises (re-exported by graders.checks).

- :func:`expect_threads_joined` runs the learner's function with every thread it
  starts held back for a moment at its first instruction, so a thread that was
  started but never joined is certainly still alive when the function returns,
  however little work it had. It also reports which threads ran (name, ident).
- :func:`counter_spy` makes a subclass of a counter class whose ``value``
  attribute records which thread wrote it and when;
  :func:`assert_threads_shared_work` then checks that several threads, none of
  them the caller, did the writes, and that their work overlapped in time.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "StartedThread",
    "WatchedRun",
    "Write",
    "assert_threads_shared_work",
    "counter_spy",
    "expect_threads_joined",
]


@dataclass(frozen=True)
class StartedThread:
    """A thread seen starting during a watched call: its name and ident as it began to run."""

    name: str
    ident: int


@dataclass
class WatchedRun:
    """What :func:`expect_threads_joined` saw: the return value and the threads that ran."""

    value: Any
    started: list[StartedThread] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.started]

    @property
    def idents(self) -> set[int]:
        return {t.ident for t in self.started}


def expect_threads_joined(seconds: float, fn: Callable[..., Any], *args: Any,
                          hold: float = 0.05, what: str = "", hint: str = "",
                          **kwargs: Any) -> WatchedRun:
    """Call ``fn(*args, **kwargs)`` within ``seconds``; fail if a thread it started outlives it.

    Every thread started during the call waits ``hold`` seconds before its
    first instruction, so a thread that was not joined is still alive when
    ``fn`` returns even if its work is tiny. Returns a :class:`WatchedRun`
    with the value and the threads that started (name and ident, read inside
    each thread). Leftover threads are waited for (up to ``seconds``) before
    the failure is raised, so they do not leak into the next check.
    """
    from graders.checks.core import fail as _fail
    from graders.checks.core import finishes_within

    if not isinstance(hold, (int, float)) or isinstance(hold, bool) or hold < 0:
        raise ValueError(f"hold must be a number >= 0, got {hold!r}")
    started: list[StartedThread] = []
    lock = threading.Lock()

    def hook(frame: Any, event: str, arg: Any) -> None:
        sys.setprofile(None)  # once per thread: only the start is held back
        me = threading.current_thread()
        with lock:
            started.append(StartedThread(me.name, threading.get_ident()))
        time.sleep(hold)

    def call() -> tuple[Any, list[threading.Thread]]:
        before = set(threading.enumerate())
        previous = threading.getprofile()
        threading.setprofile(hook)
        try:
            value = fn(*args, **kwargs)
        finally:
            threading.setprofile(previous)
        me = threading.current_thread()
        alive = [t for t in threading.enumerate()
                 if t not in before and t is not me and t.is_alive()]
        return value, alive

    name = getattr(fn, "__name__", "the function")
    call.__name__ = name
    value, alive = finishes_within(seconds, call)
    if alive:
        deadline = time.monotonic() + seconds
        for thread in alive:
            thread.join(max(0.0, deadline - time.monotonic()))
        listed = ", ".join(t.name for t in alive[:5]) + (", ..." if len(alive) > 5 else "")
        raise _fail(what or f"{name}()",
                    f"returned while {len(alive)} thread(s) it started were still running "
                    f"({listed})",
                    hint or "join() every thread you start before you return: start them all, "
                    "then join them all (threads that happen to finish on their own are luck, "
                    "not a guarantee)")
    return WatchedRun(value, list(started))


@dataclass(frozen=True)
class Write:
    """One assignment to a spied attribute: when, by which thread, and the value written."""

    time: float
    ident: int
    thread: str
    value: Any


def counter_spy(base: type, attribute: str = "value") -> type:
    """A subclass of ``base`` whose ``attribute`` records every write in ``cls.writes``.

    Each write appends a :class:`Write` (``time.perf_counter()``, thread ident
    and name, value). Reading and writing go through a Python property, so an
    unlocked read-modify-write is at least as exposed to a thread switch as
    with the plain class. ``cls.writes`` is shared by all instances; clear it
    between runs.
    """
    if not isinstance(base, type):
        raise TypeError(f"counter_spy needs a class, got {type(base).__name__}")
    slot = f"_spied_{attribute}"
    writes: list[Write] = []

    def getter(self: Any) -> Any:
        return getattr(self, slot)

    def setter(self: Any, value: Any) -> None:
        me = threading.current_thread()
        writes.append(Write(time.perf_counter(), threading.get_ident(), me.name, value))
        object.__setattr__(self, slot, value)

    namespace = {attribute: property(getter, setter), "writes": writes,
                 "__doc__": f"{base.__name__} whose {attribute!r} records its writers"}
    return type(base.__name__, (base,), namespace)


def assert_threads_shared_work(writes: Sequence[Write], at_least: int, *,
                               overlapping: bool = True, caller: int | None = None,
                               what: str = "", hint: str = "") -> None:
    """Fail unless ``at_least`` threads other than ``caller`` made the writes, overlapping in time.

    ``caller`` is the ident of the thread that called the learner's function
    (default: the main thread); its writes do not count, and a run where it
    made all of them is reported as serial. With ``overlapping``, the first
    to last write of at least two threads must overlap: threads started and
    joined one at a time do not.
    """
    from graders.checks.core import fail as _fail
    from graders.checks.core import max_concurrency

    if at_least < 1:
        raise ValueError("at_least must be at least 1")
    label = what or "threads that did the work"
    main = threading.main_thread().ident if caller is None else caller
    # An ident may be reused once its thread has ended: (ident, name) tells threads apart.
    by_thread: dict[tuple[int, str], list[Write]] = {}
    for write in writes:
        by_thread.setdefault((write.ident, write.thread), []).append(write)
    workers = {key: ws for key, ws in by_thread.items() if key[0] != main}
    if len(workers) < at_least:
        by_caller = sum(len(ws) for key, ws in by_thread.items() if key[0] == main)
        detail = (f"{len(workers)} thread(s) other than the caller wrote the shared value "
                  f"(expected {at_least})")
        if by_caller:
            detail += f"; the calling thread itself made {by_caller} of the {len(writes)} writes"
        raise _fail(label, detail, hint or "Start the threads and let each of them do its share "
                    "of the work: a loop in the calling thread is serial, and a hard-coded "
                    "total does no work at all")
    if overlapping and at_least >= 2:
        spans = [_Lifetime(ws[0].time, ws[-1].time) for ws in workers.values()]
        if max_concurrency(spans) < 2:
            raise _fail(label, f"the {len(workers)} threads worked one after another: no two "
                        "of them were writing during the same stretch of time",
                        hint or "Start every thread first, then join them all: a join() inside "
                        "the start loop runs the threads one at a time")


@dataclass(frozen=True)
class _Lifetime:
    start: float
    end: float
    name: str = "writes"
