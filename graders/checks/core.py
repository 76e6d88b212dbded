"""Check helpers that the course's test cells call.

Every helper raises :class:`AssertionError` with a message a learner can act
on, writes nothing to stderr (nbgrader zeroes a test cell that does), and
bounds every wait, so a deadlocked answer costs one exercise rather than the
whole notebook.
"""

from __future__ import annotations

import contextlib
import io
import math
import sys
import threading
import time
import types
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Protocol, TypeVar, cast

__all__ = [
    "expect_equal",
    "expect_raises",
    "finishes_within",
    "max_concurrency",
    "assert_overlap",
    "assert_distinct_workers",
    "assert_race_free",
    "forced_interleaving",
    "no_leaks",
    "quiet",
]

T = TypeVar("T")


class _SpanLike(Protocol):
    name: str
    worker: str
    start: float
    end: float


def short(value: object, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _equal(actual: object, expected: object) -> bool:
    if isinstance(expected, float) or isinstance(actual, float):
        try:
            return math.isclose(float(actual), float(expected), rel_tol=1e-9, abs_tol=1e-12)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return False
    numpy = sys.modules.get("numpy")
    if numpy is not None and (
        isinstance(actual, numpy.ndarray) or isinstance(expected, numpy.ndarray)
    ):
        try:
            a, e = numpy.asarray(actual), numpy.asarray(expected)
            if a.shape != e.shape:
                return False
            if a.dtype.kind in "fc" or e.dtype.kind in "fc":
                return bool(numpy.allclose(a, e, rtol=1e-9, atol=1e-12, equal_nan=True))
            return bool(numpy.array_equal(a, e))
        except (TypeError, ValueError):
            return False
    try:
        return bool(actual == expected)
    except Exception:  # an __eq__ that raises is simply "not equal"
        return False


def fail(what: str, detail: str, hint: str = "") -> AssertionError:
    message = f"{what}: {detail}" if what else detail
    if hint:
        message = f"{message}. {hint}"
    return AssertionError(message)


def expect_equal(actual: object, expected: object, what: str = "", hint: str = "") -> None:
    """Fail with ``what: got X, expected Y. hint`` unless the two are equal.

    Floats compare with a tight relative tolerance, NumPy arrays element-wise.
    """
    if not _equal(actual, expected):
        raise fail(what, f"got {short(actual)}, expected {short(expected)}", hint)


def expect_raises(
    exception: type[BaseException] | tuple[type[BaseException], ...],
    fn: Callable[..., object],
    *args: object,
    what: str = "",
    hint: str = "",
    **kwargs: object,
) -> BaseException:
    """Fail unless ``fn(*args, **kwargs)`` raises ``exception``; return the exception."""
    names = (
        exception.__name__
        if isinstance(exception, type)
        else " or ".join(e.__name__ for e in exception)
    )
    call = what or f"{getattr(fn, '__name__', 'the function')}{short(args)}"
    try:
        result = fn(*args, **kwargs)
    except exception as caught:
        return caught
    except NotImplementedError:
        raise fail(call, "not implemented yet (it raised NotImplementedError)") from None
    except Exception as other:
        raise fail(call, f"expected {names}, but it raised {type(other).__name__}: {other}",
                   hint) from None
    raise fail(call, f"expected {names}, but it returned {short(result)}", hint)


def finishes_within(seconds: float, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
    """Run ``fn`` in a daemon thread and return its result if it ends in time.

    An exception from ``fn`` becomes an AssertionError naming it (so no
    traceback wall); running past ``seconds`` is reported as a probable
    deadlock or missing ``join``.
    """
    if seconds <= 0:
        raise ValueError("seconds must be positive")
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = fn(*args, **kwargs)
        except BaseException as exc:  # reported to the caller below
            outcome["error"] = exc

    name = getattr(fn, "__name__", "the call")
    runner = threading.Thread(target=target, name=f"check-{name}", daemon=True)
    runner.start()
    runner.join(seconds)
    if runner.is_alive():
        raise AssertionError(
            f"{name}() did not finish within {seconds:g} s. Is a thread waiting forever "
            "(join() on a thread that never ends, a lock that is never released, a "
            "queue nobody fills)? Restart the kernel to stop the stuck thread."
        )
    if "error" in outcome:
        error = outcome["error"]
        if isinstance(error, AssertionError):
            raise error
        if isinstance(error, NotImplementedError):
            raise AssertionError(f"{name}() is not implemented yet (it raised NotImplementedError)")
        raise AssertionError(f"{name}() raised {type(error).__name__}: {error}") from None
    return outcome["value"]  # type: ignore[no-any-return]


def _spans(spans: object) -> list[_SpanLike]:
    items = cast("Iterable[_SpanLike]", getattr(spans, "spans", spans))
    return list(items)


def max_concurrency(spans: Iterable[_SpanLike] | object, names: Iterable[str] | None = None) -> int:
    """The largest number of spans that were running at one instant."""
    wanted = set(names) if names is not None else None
    events: list[tuple[float, int]] = []
    for span in _spans(spans):
        if wanted is not None and span.name not in wanted:
            continue
        if span.end > span.start:
            events.append((span.start, 1))
            events.append((span.end, -1))
    # At equal times an end sorts before a start: touching spans do not overlap.
    events.sort()
    running = best = 0
    for _, delta in events:
        running += delta
        best = max(best, running)
    return best


def assert_overlap(
    spans: Iterable[_SpanLike] | object,
    *,
    names: Iterable[str] | None = None,
    min_overlapping: int = 2,
    what: str = "",
) -> None:
    """Fail unless at some instant at least ``min_overlapping`` spans ran together."""
    selected = [s for s in _spans(spans) if names is None or s.name in set(names)]
    if len(selected) < min_overlapping:
        raise fail(
            what or "overlap",
            f"only {len(selected)} span(s) were recorded, expected at least {min_overlapping}",
            "Did every worker run inside the tracer's span?",
        )
    peak = max_concurrency(selected)
    if peak < min_overlapping:
        raise fail(
            what or "overlap",
            f"at most {peak} of {len(selected)} spans ran at the same time, expected "
            f"{min_overlapping}",
            "The work ran one after another: start every thread first, then join them "
            "(a join() inside the start loop waits for each thread before starting the next)",
        )


def assert_distinct_workers(
    spans_or_names: Iterable[_SpanLike] | Iterable[str] | object,
    at_least: int,
    what: str = "",
) -> None:
    """Fail unless at least ``at_least`` different workers did some of the work."""
    items = list(getattr(spans_or_names, "spans", spans_or_names))  # type: ignore[call-overload]
    workers = {item if isinstance(item, str) else item.worker for item in items}
    if len(workers) < at_least:
        seen = ", ".join(sorted(map(str, workers))) or "none"
        raise fail(
            what or "workers",
            f"{len(workers)} distinct worker(s) ran ({seen}), expected at least {at_least}",
            "The work must really be spread over several threads or processes",
        )


def _code_objects(functions: Iterable[object]) -> set[types.CodeType]:
    codes: set[types.CodeType] = set()

    def add(code: types.CodeType) -> None:
        if code in codes:
            return
        codes.add(code)
        for const in code.co_consts:
            if isinstance(const, types.CodeType):
                add(const)

    for fn in functions:
        target = getattr(fn, "__func__", fn)  # bound methods
        target = getattr(target, "__wrapped__", target)  # functools.wraps
        if isinstance(target, type):  # a class: every method it defines
            for member in vars(target).values():
                member = getattr(member, "__func__", member)
                if isinstance(member, types.FunctionType):
                    add(member.__code__)
            continue
        code = getattr(target, "__code__", None)
        if not isinstance(code, types.CodeType):
            raise TypeError(f"cannot interleave {fn!r}: it is not a Python function or class")
        add(code)
    return codes


@contextlib.contextmanager
def forced_interleaving(*functions: object, pause: float = 2e-5) -> Iterator[None]:
    """Make the given functions give up the GIL between bytecodes.

    While the block runs, every thread executing one of ``functions`` sleeps
    for ``pause`` seconds before each bytecode instruction, which hands the
    interpreter to another thread. A read-modify-write that is not protected
    by a lock then loses updates every time instead of once in a blue moon
    (CPython 3.11+ switches threads so rarely that plain repetition misses
    races). Code that holds a lock across the update stays correct, because a
    paused thread keeps its lock.
    """
    codes = _code_objects(functions)
    sleep = time.sleep

    def local(frame: types.FrameType, event: str, arg: object) -> Any:
        if event == "opcode":
            sleep(pause)
        return local

    def global_trace(frame: types.FrameType, event: str, arg: object) -> Any:
        if event == "call" and frame.f_code in codes:
            frame.f_trace_opcodes = True
            return local
        return None

    previous_thread_trace = threading.gettrace()
    previous_trace = sys.gettrace()
    threading.settrace(global_trace)
    sys.settrace(global_trace)
    try:
        yield
    finally:
        sys.settrace(previous_trace)
        threading.settrace(previous_thread_trace)


def assert_race_free(
    run: Callable[[], object],
    expected: object,
    *,
    trials: int = 20,
    interleave: Sequence[object] = (),
    timeout: float = 20.0,
    what: str = "",
    hint: str = "Two threads updated the shared value at once; protect the "
    "read-modify-write with a lock (with lock: ...)",
) -> None:
    """Run ``run()`` ``trials`` times under forced interleaving; each result must be ``expected``.

    ``interleave`` lists the learner's functions (or classes) whose bytecodes
    are interleaved; with none given the run is merely repeated, which on
    CPython 3.11+ rarely exposes a race.
    """
    if trials < 1:
        raise ValueError("trials must be at least 1")
    deadline = time.monotonic() + timeout
    label = what or getattr(run, "__name__", "result")
    for trial in range(1, trials + 1):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(
                f"{label}: {trial - 1} of {trials} trials took the whole {timeout:g} s budget; "
                "is a thread stuck waiting on a lock?"
            )
        with forced_interleaving(*interleave):
            result = finishes_within(remaining, run)
        if not _equal(result, expected):
            raise fail(
                label,
                f"trial {trial} of {trials} gave {short(result)}, expected {short(expected)}",
                hint,
            )


@contextlib.contextmanager
def no_leaks(timeout: float = 2.0, what: str = "") -> Iterator[None]:
    """Fail if the block leaves a new thread or child process running.

    Waits up to ``timeout`` seconds for stragglers to end before failing.
    """
    threads_before = set(threading.enumerate())
    children_before = child_pids()
    yield
    deadline = time.monotonic() + timeout
    while True:
        new_threads = [
            t for t in threading.enumerate() if t not in threads_before and t.is_alive()
        ]
        new_children = child_pids() - children_before
        if not new_threads and not new_children:
            return
        if time.monotonic() >= deadline:
            break
        time.sleep(0.01)
    parts = []
    if new_threads:
        parts.append("threads still running: " + ", ".join(t.name for t in new_threads))
    if new_children:
        parts.append("child processes still running: " + ", ".join(map(str, sorted(new_children))))
    raise fail(
        what or "clean-up",
        "; ".join(parts),
        "join() every thread and process you start (or use a with-block) before returning",
    )


# multiprocessing's own long-lived helpers (started once, on first use, under
# spawn and forkserver): they belong to the interpreter, not to the learner's code.
_MP_HELPERS = ("multiprocessing.resource_tracker", "multiprocessing.forkserver")


def is_mp_helper(process: Any) -> bool:
    try:
        command = " ".join(process.cmdline())
    except Exception:  # gone, or not ours to inspect
        return False
    return any(helper in command for helper in _MP_HELPERS)


def child_pids() -> set[int]:
    """Live child processes of this one, leaving out multiprocessing's helpers."""
    try:
        import psutil
    except ImportError:  # pragma: no cover - psutil is a course dependency
        return set()
    try:
        children = psutil.Process().children(recursive=True)
    except psutil.Error:
        return set()
    live = set()
    for child in children:
        try:
            if child.status() != psutil.STATUS_ZOMBIE and not is_mp_helper(child):
                live.add(child.pid)
        except psutil.Error:
            continue
    return live


@contextlib.contextmanager
def quiet(what: str = "") -> Iterator[None]:
    """Keep stderr clean: capture warnings, stderr and worker-thread exceptions.

    Exceptions raised in other threads inside the block (which Python would
    print to stderr) become one AssertionError after the block.
    """
    thread_errors: list[str] = []
    previous_hook = threading.excepthook

    def hook(args: threading.ExceptHookArgs) -> None:
        name = args.thread.name if args.thread is not None else "a thread"
        thread_errors.append(f"{name} raised {args.exc_type.__name__}: {args.exc_value}")

    buffer = io.StringIO()
    threading.excepthook = hook
    try:
        with warnings.catch_warnings(record=True), contextlib.redirect_stderr(buffer):
            warnings.simplefilter("always")
            yield
    finally:
        threading.excepthook = previous_hook
    if thread_errors:
        raise fail(what or "worker threads", "; ".join(thread_errors))
