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
import gc
import inspect
import traceback
import warnings
from collections.abc import Callable
from typing import Any

__all__ = [
    "assert_in_flight_at_most",
    "assert_requests_overlapped",
    "expect_async_raises",
    "run_coroutine_within",
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
    from graders.checks import _fail

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
        running = collections.Counter(task.rsplit(" (", 1)[-1].rstrip(")") for task in run.pending_tasks)
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
    from graders.checks import _fail, _short

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
        raise TypeError(f"expected a LatencyServer or its ConnectionLog, got {type(server).__name__}")
    log.wait_idle(2.0, requests_only=True)  # let the server note clients that just left
    return log


def assert_requests_overlapped(server: Any, *, at_least: int = 2, since: int = 0,
                               what: str = "", hint: str = "") -> None:
    """Fail unless the server had ``at_least`` requests in flight at one instant (from its log)."""
    from graders.checks import _fail

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
    from graders.checks import _fail

    log = _log_of(server)
    peak = log.max_in_flight(since)
    if peak > limit:
        raise _fail(what or "requests in flight at once",
                    f"the server had {peak} requests in flight at one instant; the limit was "
                    f"{limit}", hint or "Bound the fan-out: hold an asyncio.Semaphore(limit) "
                    "around each fetch (async with sem: ...), or start only `limit` worker tasks")
