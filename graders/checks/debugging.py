"""Check helpers for the debugging chapter; re-exported by :mod:`graders.checks`.

- :func:`assert_test_catches`: grade a learner's *test* by mutation. The test
  must pass on every correct implementation and fail on every buggy one,
  within a time bound (a test that hangs on a deadlocking implementation
  fails the check instead of hanging the grader).

Nothing here imports :mod:`graders.checks` at module level (it imports us).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["assert_test_catches"]


def _fail(what: str, detail: str, hint: str = "") -> AssertionError:
    from graders.checks.core import fail

    return fail(what, detail, hint)


def _run_once(test: Callable[[type], object], factory: Callable[[Any], type], seconds: float
              ) -> tuple[str, BaseException | None, list[str]]:
    """Run ``test(factory(monitor))`` bounded; return (outcome, error, thread errors).

    outcome is "passed", "failed" or "hung". Afterwards the monitor is aborted
    (so threads blocked on its locks end) and the test's threads are waited for.
    """
    from course_lib.sync import LockAborted, LockMonitor

    monitor = LockMonitor()
    cls = factory(monitor)
    before = set(threading.enumerate())
    thread_errors: list[str] = []
    previous_hook = threading.excepthook

    def hook(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is not None and issubclass(args.exc_type, LockAborted):
            return
        name = args.thread.name if args.thread is not None else "a thread"
        thread_errors.append(
            f"{name} raised {getattr(args.exc_type, '__name__', '?')}: {args.exc_value}"
        )

    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            test(cls)
            outcome["result"] = "passed"
        except BaseException as exc:  # reported below
            outcome["result"] = "failed"
            outcome["error"] = exc

    switch = sys.getswitchinterval()
    trace, thread_trace = sys.gettrace(), threading.gettrace()
    threading.excepthook = hook
    try:
        runner = threading.Thread(target=target, name="check-your-test", daemon=True)
        runner.start()
        runner.join(seconds)
        hung = runner.is_alive()
        monitor.abort("the grader stopped the test")
        deadline = time.monotonic() + 5
        for t in [t for t in threading.enumerate() if t not in before]:
            t.join(max(0.0, deadline - time.monotonic()))
    finally:
        threading.excepthook = previous_hook
        sys.setswitchinterval(switch)
        sys.settrace(trace)
        threading.settrace(thread_trace)
    if hung:
        return "hung", None, thread_errors
    return outcome["result"], outcome.get("error"), thread_errors


def assert_test_catches(
    test: Callable[[type], object],
    correct: Mapping[str, Callable[[Any], type]],
    buggy: Mapping[str, tuple[Callable[[Any], type], str]],
    *,
    seconds: float = 20.0,
    what: str = "your test",
) -> None:
    """Fail unless ``test(cls)`` passes for every correct class and fails for every buggy one.

    ``correct`` maps a description to a factory ``make(monitor) -> class``,
    ``buggy`` maps a description to ``(make, hint)``. Each factory gets a
    fresh :class:`course_lib.sync.LockMonitor` for its locks; after each run
    the monitor is aborted, so a test left blocked on a deadlocked
    implementation's lock ends. The test "fails" when it raises any
    exception; running past ``seconds`` counts as hanging, which is itself a
    failure of the check: a test must bound its waits.
    """
    if not callable(test):
        raise _fail(what, f"expected a function test(cls), got {type(test).__name__}")
    if seconds <= 0:
        raise ValueError("seconds must be positive")
    for name, make in correct.items():
        result, error, _ = _run_once(test, make, seconds)
        if result == "hung":
            raise _fail(what, f"it did not finish within {seconds:g} s on {name}",
                        "A test must be quick on correct code: use fewer threads or calls, and "
                        "bound every wait (join(timeout=...))")
        if result == "failed":
            if isinstance(error, NotImplementedError):
                raise _fail(what, "not implemented yet (it raised NotImplementedError)")
            raise _fail(what, f"it failed on {name}, which is correct: "
                              f"{type(error).__name__}: {error}",
                        "Check only what the specification promises")
    for name, (make, hint) in buggy.items():
        result, error, thread_errors = _run_once(test, make, seconds)
        if result == "hung":
            raise _fail(what, f"it hung on {name}: still running after {seconds:g} s",
                        "Bound every wait in the test (thread.join(timeout=...), then check "
                        "is_alive(), or finishes_within) so that a deadlock fails the test "
                        "instead of hanging it")
        if result == "passed":
            extra = ""
            if thread_errors:
                extra = (f" (meanwhile {thread_errors[0]}: an exception in a worker thread does "
                         "not fail the test; collect results and assert in the test itself)")
            raise _fail(what, f"it passed on {name}, which is wrong{extra}", hint)
