"""Check helpers for the distributed chapter; re-exported by :mod:`graders.checks`.

- :class:`CallRecorder`: wraps a client (Dask, ipyparallel view, ...) and
  records which of its methods the learner's code called, so a test can tell
  "ran on the cluster" from "computed locally".
- :func:`assert_called`: fail with advice unless one of the named methods was used.
- :func:`assert_ran_on`: the workers that reported doing the work are real
  workers of the cluster, and at least ``at_least`` of them took part.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["CallRecorder", "assert_called", "assert_ran_on"]


class CallRecorder:
    """A stand-in for ``target`` that records the names of the methods called on it.

    Attributes that are not callables (``client.scheduler_info``, say) pass
    through unchanged; ``recorder.calls`` lists method names in call order.
    """

    def __init__(self, target: Any) -> None:
        object.__setattr__(self, "_target", target)
        object.__setattr__(self, "calls", [])

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        if not callable(value) or isinstance(value, type):
            return value
        calls: list[str] = self.calls

        def recorded(*args: Any, **kwargs: Any) -> Any:
            calls.append(name)
            return value(*args, **kwargs)

        return recorded

    def __getitem__(self, key: Any) -> Any:
        object.__getattribute__(self, "calls").append("__getitem__")
        return self._target[key]

    def __repr__(self) -> str:
        return f"CallRecorder({self._target!r})"


def assert_called(recorder: CallRecorder, any_of: Iterable[str], what: str = "",
                  hint: str = "") -> None:
    """Fail unless at least one of the methods ``any_of`` was called on the recorder."""
    wanted = list(any_of)
    calls: list[str] = recorder.calls
    if not set(wanted) & set(calls):
        used = ", ".join(dict.fromkeys(calls)) or "nothing"
        message = (f"{what + ': ' if what else ''}the work never went to the cluster "
                   f"(expected a call to {' or '.join(wanted)}; your code called {used})")
        raise AssertionError(f"{message}. {hint}" if hint else message)


def assert_ran_on(labels: Iterable[object], allowed: Iterable[object], at_least: int = 1,
                  what: str = "", hint: str = "",
                  describe: Callable[[object], str] = str) -> None:
    """Every label (worker that reported doing a task) is one of ``allowed``, and at
    least ``at_least`` distinct ones appear."""
    seen = list(labels)
    allowed_set = set(allowed)
    prefix = f"{what}: " if what else ""
    strangers = sorted({describe(x) for x in seen if x not in allowed_set})
    if strangers:
        raise AssertionError(
            f"{prefix}tasks ran on {', '.join(strangers)}, which is not a worker of the "
            f"cluster (workers: {', '.join(sorted(map(describe, allowed_set)))}). "
            f"{hint or 'Send the work to the cluster instead of running it here'}")
    distinct = {x for x in seen}
    if len(distinct) < at_least:
        names = ", ".join(sorted(map(describe, distinct))) or "none"
        raise AssertionError(
            f"{prefix}{len(distinct)} worker(s) did the work ({names}), expected at least "
            f"{at_least}. {hint or 'Spread the tasks over the workers (a load-balanced view, map)'}")
