"""Check helpers for the asyncio chapter; re-exported by :mod:`graders.checks`.

The learner's coroutine runs in a fresh event loop on a helper thread
(:func:`course_lib.aio.run_isolated`), never on the notebook's own loop, so a
coroutine that blocks its loop (``time.sleep`` inside ``async def``) or never
finishes costs one exercise, within a time bound, and the next cell still runs.
Overlap and bounded concurrency are judged from the local server's own log of
requests in flight, never from a timing.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import gc
import inspect
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "LoopWatch",
    "assert_in_flight_at_most",
    "assert_loop_responsive",
    "assert_no_threads_started",
    "assert_requests_overlapped",
    "expect_async_raises",
    "run_coroutine_within",
    "watch_loop",
]

_GRACE = 1.0
_BLOCKING_HINT = (
    "A blocking call inside async def freezes the event loop, and every other task with it: "
    "use await asyncio.sleep(...) instead of time.sleep(...), await fetch(...) instead of "
    "fetch_blocking(...), and await asyncio.to_thread(...) for other blocking work"
)


def _awaitables_in(value: object, depth: int = 0) -> list[object]:
    """Coroutines, Tasks and Futures inside a result (lists, tuples, sets, dict values)."""
    if inspect.isawaitable(value) or isinstance(value, concurrent.futures.Future):
        return [value]
    if depth >= 3:
        return []
    items: list[object] = []
    if isinstance(value, dict):
        items = list(value.values())
    elif isinstance(value, (list, tuple, set, frozenset)):
        items = list(value)
    found: list[object] = []
    for item in items[:10_000]:
        found += _awaitables_in(item, depth + 1)
    return found


def _kind(value: object) -> str:
    if inspect.iscoroutine(value):
        return f"a coroutine object ({getattr(value, '__qualname__', 'coroutine')})"
    if isinstance(value, asyncio.Task):
        return "an asyncio.Task"
    if isinstance(value, (asyncio.Future, concurrent.futures.Future)):
        return "a Future"
    return f"an awaitable {type(value).__name__}"


def _run(seconds: float, coro_fn: Callable[..., Any], args: tuple[Any, ...],
         kwargs: dict[str, Any]) -> tuple[Any, list[str]]:
    """Run the learner's coroutine; returns (IsolatedRun, never-awaited coroutine names)."""
    from course_lib.aio import run_isolated

    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or seconds <= 0:
        raise ValueError(f"seconds must be a positive number, got {seconds!r}")
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        gc.collect()  # coroutines dropped by earlier code warn now, not during this run
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = run_isolated(coro_fn, args, kwargs, timeout=seconds, grace=_GRACE,
                           watch_blocking=True)
        if run.finished:
            for awaitable in _awaitables_in(run.value):
                if inspect.iscoroutine(awaitable):
                    awaitable.close()  # reported below, not as a RuntimeWarning later
            # The frames of a traceback may hold coroutines that were never awaited: free
            # them now, so that they warn inside this run instead of in a later cell.
            error, seen = run.error, set()
            while error is not None and id(error) not in seen:
                seen.add(id(error))
                traceback.clear_frames(error.__traceback__)
                error = error.__cause__ or error.__context__
        gc.collect()
    unawaited = []
    for warning in caught:
        text = str(warning.message)
        if "was never awaited" in text:
            unawaited.append(text.split("'")[1] if text.count("'") >= 2 else text)
    return run, unawaited


def _problems(run: Any, unawaited: list[str], seconds: float, *, expect_error: bool) -> None:
    """Raise an AssertionError for whatever went wrong besides the answer itself."""
    from graders.checks.core import fail as _fail

    name = f"{run.name}()"
    if run.not_awaitable:
        raise _fail(name, f"returned {run.not_awaitable}, not a coroutine",
                    "Define it with async def, so that calling it gives a coroutine to await")
    blocking = ", ".join(dict.fromkeys(run.blocking_calls))
    if run.abandoned:
        if not run.loop_responsive or blocking:
            raise _fail(name, f"blocked its event loop and was still running {seconds:g} s after "
                        "it started" + (f" (it called {blocking})" if blocking else ""),
                        _BLOCKING_HINT)
        raise _fail(name, f"did not finish within {seconds:g} s and did not stop when it was "
                    "cancelled", "Never swallow asyncio.CancelledError: after clean-up, re-raise "
                    "it (or use try/finally instead of except)")
    if run.timed_out:
        detail = f"did not finish within {seconds:g} s (it was cancelled)"
        if blocking:
            raise _fail(name, f"{detail}; it called {blocking} inside the event loop",
                        _BLOCKING_HINT)
        raise _fail(name, detail, "Is it awaiting something that never happens: a task that "
                    "was never started, a queue nobody fills, an Event nobody sets, a request "
                    "without a timeout?")
    if blocking:
        raise _fail(name, f"called {blocking} inside the event loop", _BLOCKING_HINT)
    if isinstance(run.error, RuntimeError) and "running event loop" in str(run.error):
        raise _fail(name, f"raised RuntimeError: {run.error}",
                    "Inside async def, await the coroutine instead: asyncio.run() belongs only "
                    "at the top of a script, and a notebook cell can await directly")
    if unawaited:
        names = ", ".join(dict.fromkeys(unawaited))
        raise _fail(name, f"created coroutine(s) {names} and never awaited them",
                    "Calling an async function only creates a coroutine; nothing runs until "
                    "you await it (or wrap it in create_task / gather)")
    if run.finished and run.error is None:
        found = _awaitables_in(run.value)
        if found:
            raise _fail(name, f"returned {_kind(found[0])} where a result was expected",
                        "You forgot an await: await the coroutine, or gather the tasks and "
                        "return their results")
    if run.error is not None and not expect_error:
        error = run.error
        if isinstance(error, AssertionError):
            raise error
        if isinstance(error, NotImplementedError):
            raise AssertionError(f"{name} is not implemented yet (it raised NotImplementedError)")
        raise _fail(name, f"raised {type(error).__name__}: {error}")
    if run.pending_tasks:
        running = collections.Counter(task.rsplit(" (", 1)[-1].rstrip(")")
                                      for task in run.pending_tasks)
        listed = ", ".join(f"{n} x {what}" if n > 1 else what for what, n in running.most_common(3))
        raise _fail(name, f"returned while {len(run.pending_tasks)} task(s) it started were "
                    f"still running ({listed})",
                    "Await every task you create (gather, TaskGroup), or cancel the ones you no "
                    "longer need and await them so the cancellation completes")
    if run.loop_errors:
        raise _fail(name, f"the event loop reported: {run.loop_errors[0]}",
                    "A task failed and nobody awaited it: await every task you create")


def run_coroutine_within(seconds: float, coro_fn: Callable[..., Any], *args: Any,
                         **kwargs: Any) -> Any:
    """Run ``await coro_fn(*args, **kwargs)`` in a fresh event loop, bounded by ``seconds``.

    Returns its result. Fails (AssertionError with advice) when it is not a
    coroutine, does not finish in time (cancelled after ``seconds``; a blocked
    loop is abandoned after one more second), calls ``time.sleep`` or
    ``fetch_blocking`` inside the loop, creates a coroutine it never awaits,
    returns a coroutine/Future instead of a value, raises, or leaves tasks running.
    """
    run, unawaited = _run(seconds, coro_fn, args, kwargs)
    _problems(run, unawaited, seconds, expect_error=False)
    return run.value


def expect_async_raises(
    exception: type[BaseException] | tuple[type[BaseException], ...],
    seconds: float,
    coro_fn: Callable[..., Any],
    *args: Any,
    what: str = "",
    hint: str = "",
    **kwargs: Any,
) -> BaseException:
    """Fail unless ``await coro_fn(*args, **kwargs)`` raises ``exception`` within ``seconds``."""
    from graders.checks.core import fail as _fail
    from graders.checks.core import short as _short

    names = (exception.__name__ if isinstance(exception, type)
             else " or ".join(e.__name__ for e in exception))
    label = what or f"{getattr(coro_fn, '__name__', 'coroutine')}{_short(args)}"
    run, unawaited = _run(seconds, coro_fn, args, kwargs)
    _problems(run, unawaited, seconds, expect_error=True)
    error = run.error
    if error is None:
        raise _fail(label, f"expected {names}, but it returned {_short(run.value)}", hint)
    if isinstance(error, exception):
        return error
    if isinstance(error, NotImplementedError):
        raise _fail(label, "not implemented yet (it raised NotImplementedError)")
    raise _fail(label, f"expected {names}, but it raised {type(error).__name__}: {error}", hint)


def _log_of(server: Any) -> Any:
    log = getattr(server, "log", server)
    if not hasattr(log, "max_in_flight"):
        raise TypeError(
            f"expected a LatencyServer or its ConnectionLog, got {type(server).__name__}"
        )
    log.wait_idle(2.0, requests_only=True)  # let the server note clients that just left
    return log


def assert_requests_overlapped(server: Any, *, at_least: int = 2, since: int = 0,
                               what: str = "", hint: str = "") -> None:
    """Fail unless the server had ``at_least`` requests in flight at one instant (from its log)."""
    from graders.checks.core import fail as _fail

    log = _log_of(server)
    label = what or "requests in flight at once"
    count = len(log.requests(since))
    if count < at_least:
        raise _fail(label, f"the server received {count} request(s), expected at least "
                    f"{at_least}", hint or "Did every fetch really reach the server?")
    peak = log.max_in_flight(since)
    if peak < at_least:
        raise _fail(label, f"the server never had more than {peak} of the {count} requests in "
                    f"flight at once (expected at least {at_least})",
                    hint or "Your fetches ran one after another. Create all the tasks (or pass "
                    "all the coroutines to asyncio.gather) before awaiting any; an await inside "
                    "the loop, or a blocking call, serialises them")


def assert_in_flight_at_most(server: Any, limit: int, *, since: int = 0, what: str = "",
                             hint: str = "") -> None:
    """Fail if the server ever had more than ``limit`` requests in flight (from its log)."""
    from graders.checks.core import fail as _fail

    log = _log_of(server)
    peak = log.max_in_flight(since)
    if peak > limit:
        raise _fail(what or "requests in flight at once",
                    f"the server had {peak} requests in flight at one instant; the limit was "
                    f"{limit}", hint or "Bound the fan-out: hold an asyncio.Semaphore(limit) "
                    "around each fetch (async with sem: ...), or start only `limit` worker tasks")


@dataclass
class LoopWatch:
    """What :func:`watch_loop` saw while the learner's coroutine ran.

    ``value``: what it returned; ``threads``: names of the threads started
    while it ran (asyncio's default executor calls them ``asyncio_N``);
    ``max_gap``: the longest time between two beats of a heartbeat task that
    asks to wake every ``interval`` seconds (a blocked loop shows as a long gap).
    """

    value: Any
    threads: list[str] = field(default_factory=list)
    max_gap: float = 0.0
    name: str = "coroutine"


def watch_loop(seconds: float, coro_fn: Callable[..., Any], *args: Any, interval: float = 0.01,
               **kwargs: Any) -> LoopWatch:
    """Like :func:`run_coroutine_within`, and also note threads started and heartbeat gaps.

    A heartbeat task runs beside the coroutine on the same loop; every thread
    started while the coroutine runs is named in ``threads``. All the checks
    of :func:`run_coroutine_within` apply (time bound, blocking calls, tasks
    left running, forgotten awaits).
    """
    from graders.checks.core import fail as _fail

    if not isinstance(interval, (int, float)) or isinstance(interval, bool) or interval <= 0:
        raise ValueError(f"interval must be a positive number of seconds, got {interval!r}")
    started: list[str] = []
    name = getattr(coro_fn, "__name__", "coroutine")

    def hook(frame: Any, event: str, arg: Any) -> None:
        sys.setprofile(None)  # only the thread's start is of interest
        started.append(threading.current_thread().name)

    async def watched(*a: Any, **kw: Any) -> tuple[Any, list[str], float]:
        made = coro_fn(*a, **kw)
        if not inspect.isawaitable(made):
            raise TypeError(f"{name}() returned {type(made).__name__}, not a coroutine: define it "
                            "with async def")
        gaps: list[float] = []
        last = time.perf_counter()

        async def beat() -> None:
            nonlocal last
            while True:
                await asyncio.sleep(interval)
                now = time.perf_counter()
                gaps.append(now - last)
                last = now

        heart = asyncio.get_running_loop().create_task(beat(), name="heartbeat")
        previous = threading.getprofile()
        threading.setprofile(hook)
        try:
            value = await made
            gaps.append(time.perf_counter() - last)  # the stretch since the last beat counts too
        finally:
            threading.setprofile(previous)
            heart.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heart
        return value, list(started), max(gaps, default=0.0)

    watched.__name__ = watched.__qualname__ = name
    value, threads, gap = run_coroutine_within(seconds, watched, *args, **kwargs)
    if _awaitables_in(value):
        raise _fail(f"{name}()", f"returned {_kind(_awaitables_in(value)[0])} where a result was "
                    "expected", "You forgot an await: await the coroutine, or gather the tasks and "
                    "return their results")
    return LoopWatch(value, threads, gap, name)


def assert_no_threads_started(watch: LoopWatch, *, what: str = "", hint: str = "") -> None:
    """Fail if the coroutine started threads: the event loop itself should have done the waiting."""
    from graders.checks.core import fail as _fail

    if watch.threads:
        listed = ", ".join(dict.fromkeys(watch.threads))
        raise _fail(
            what or f"{watch.name}()",
            f"started {len(watch.threads)} thread(s) ({listed}) while it ran",
            hint
            or "Let the event loop do the waiting: create a task per fetch (or pass "
            "the coroutines to asyncio.gather) and await them. asyncio.to_thread and thread "
            "pools are for blocking calls that have no async version",
        )


def assert_loop_responsive(watch: LoopWatch, max_gap: float = 0.3, *, what: str = "",
                           hint: str = "") -> None:
    """Fail if the loop's heartbeat was held up longer than ``max_gap`` seconds."""
    from graders.checks.core import fail as _fail

    if watch.max_gap > max_gap:
        raise _fail(what or f"the event loop while {watch.name}() ran",
                    f"a task that asks to wake every few milliseconds waited {watch.max_gap:.2f} s "
                    f"(more than {max_gap:g} s): the loop was blocked",
                    hint or "Never wait for a result in the coroutine itself (future.result(), "
                    "executor.map, a blocking call): await it, so the loop goes on running the "
                    "other tasks meanwhile")
