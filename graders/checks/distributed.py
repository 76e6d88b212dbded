"""Check helpers for the distributed chapter; re-exported by :mod:`graders.checks`.

- :class:`CallRecorder`: wraps a client (Dask, ipyparallel view, ...) and
  records which of its methods the learner's code called, so a test can tell
  "ran on the cluster" from "computed locally".
- :func:`assert_called`: fail with advice unless one of the named methods was used.
- :func:`assert_ran_on`: the workers that reported doing the work are real
  workers of the cluster, and at least ``at_least`` of them took part.
- (joins are checked with ``watch_processes``/``assert_joined`` of
  :mod:`graders.checks.processes`, which chapters 2 and 6 share.)
- :func:`dask_task_records` / :func:`assert_dask_tasks`: the tasks the Dask
  scheduler ran (its task stream), not what the answer says it did.
- :func:`hub_task_records` / :func:`assert_hub_engines` / :func:`results_of_type`:
  the tasks the ipyparallel hub recorded, with their engines and results.
- :func:`call_concurrently`: many threads, each with its own proxy, calling a
  remote method at once.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from course_lib import internals

__all__ = ["CallRecorder", "assert_called", "assert_dask_tasks", "assert_hub_engines",
           "assert_ran_on", "call_concurrently", "dask_task_records", "hub_task_records",
           "results_of_type"]


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
            f"{at_least}. {hint or 'Spread the tasks over the workers (a load-balanced view, map)'}"
        )


# ------------------------------------------------------------------ processes a farm starts


@contextlib.contextmanager
def dask_task_records(client: Any) -> Iterator[list[dict[str, Any]]]:
    """Every task the Dask scheduler ran during the block (its task stream): a list of dicts
    with ``key``, ``prefix`` (the function's name, from the key) and ``worker``; filled at exit."""
    from dask.utils import key_split
    from distributed import get_task_stream

    records: list[dict[str, Any]] = []
    with get_task_stream(client) as stream:
        yield records
    for entry in stream.data:
        records.append({"key": str(entry["key"]), "prefix": key_split(entry["key"]),
                        "worker": entry.get("worker"), "status": entry.get("status")})


def assert_dask_tasks(records: Iterable[dict[str, Any]], prefix: str, at_least: int, *,
                      workers: int = 1, what: str = "", hint: str = "") -> None:
    """The scheduler ran at least ``at_least`` tasks of function ``prefix``, on at least
    ``workers`` distinct workers."""
    mine = [r for r in records if r["prefix"] == prefix]
    prefix_text = f"{what}: " if what else ""
    if len(mine) < at_least:
        seen = Counter(r["prefix"] for r in records)
        listed = ", ".join(f"{name} x{count}" for name, count in sorted(seen.items())) or "none"
        raise AssertionError(
            f"{prefix_text}the Dask scheduler ran {len(mine)} {prefix} task(s), expected at least "
            f"{at_least} (tasks it ran: {listed}). "
            f"{hint or f'submit {prefix} to the cluster instead of calling it here'}")
    used = {r["worker"] for r in mine}
    if len(used) < workers:
        raise AssertionError(
            f"{prefix_text}{prefix} ran on {len(used)} worker(s), expected at least {workers}. "
            f"{hint or 'send the tasks to the cluster so that its workers share them'}")


@contextlib.contextmanager
def hub_task_records(client: Any, timeout: float = 10.0) -> Iterator[list[dict[str, Any]]]:
    """The tasks the ipyparallel hub recorded during the block: dicts with ``msg_id``,
    ``engine`` (the engine id that ran it), ``completed``, ``result`` (deserialised) and
    ``error`` (the remote exception's name, or None); filled at exit."""
    from ipyparallel.serialize import deserialize_object

    before = set(client.hub_history())
    records: list[dict[str, Any]] = []
    yield records
    new = [m for m in client.hub_history() if m not in before]
    if not new:
        return
    engines = {uuid: eid for eid, uuid in internals.ipp_client_engines(client).items()}
    rows = client.db_query({"msg_id": {"$in": new}},
                           keys=["msg_id", "engine_uuid", "completed", "result_buffers",
                                 "result_content"])
    for row in rows:
        result = None
        if row.get("result_buffers"):
            try:
                result, _ = deserialize_object(row["result_buffers"])
            except Exception:  # noqa: BLE001 - a result we cannot read is just not evidence
                result = None
        content = row.get("result_content") or {}
        records.append(
            {
                "msg_id": row["msg_id"],
                "engine": engines.get(row.get("engine_uuid"), row.get("engine_uuid")),
                "completed": row.get("completed"),
                "result": result,
                "error": content.get("ename") if content.get("status") == "error" else None,
            }
        )


def results_of_type(records: Iterable[dict[str, Any]], kind: type) -> list[Any]:
    """Every value of type ``kind`` inside the records' results (lists and tuples are opened)."""
    found: list[Any] = []

    def walk(value: Any) -> None:
        if isinstance(value, kind):
            found.append(value)
        elif isinstance(value, list | tuple):
            for item in value:
                walk(item)

    for record in records:
        walk(record.get("result"))
    return found


def assert_hub_engines(records: Iterable[dict[str, Any]], at_least: int, *, tasks: int = 1,
                       what: str = "", hint: str = "") -> None:
    """The hub recorded at least ``tasks`` tasks, run by at least ``at_least`` distinct engines."""
    done = [r for r in records if r.get("engine") is not None]
    prefix = f"{what}: " if what else ""
    if len(done) < tasks:
        raise AssertionError(
            f"{prefix}the ipyparallel hub recorded {len(done)} task(s), expected at least {tasks}. "
            f"{hint or 'send one task per item to the engines (view.map or apply_async)'}")
    engines = {r["engine"] for r in done}
    if len(engines) < at_least:
        raise AssertionError(
            f"{prefix}the hub's records show {len(engines)} engine(s) at work, expected at least "
            f"{at_least}. {hint or 'use a load-balanced view so that every engine takes tasks'}")


# ------------------------------------------------------------------ concurrent callers


def call_concurrently(make_caller: Callable[[], Any], method: str,
                      args_per_thread: Sequence[Sequence[Any]], timeout: float = 30.0) -> list[Any]:
    """Start one thread per entry of ``args_per_thread``; each makes its own caller (a proxy)
    with ``make_caller()`` and calls ``caller.<method>(arg)`` for each of its args, all threads
    released together. Returns every answer; raises AssertionError on an error or a hang."""
    barrier = threading.Barrier(len(args_per_thread))
    answers: list[Any] = []
    errors: list[str] = []
    lock = threading.Lock()

    def run(args: Sequence[Any]) -> None:
        try:
            caller = make_caller()
            try:
                barrier.wait(timeout)
                for arg in args:
                    value = getattr(caller, method)(arg)
                    with lock:
                        answers.append(value)
            finally:
                close = getattr(caller, "_pyroRelease", None) or getattr(caller, "close", None)
                if close is not None:
                    close()
        except Exception as error:  # noqa: BLE001 - reported below
            with lock:
                errors.append(f"{type(error).__name__}: {error}")

    threads = [threading.Thread(target=run, args=(args,), name=f"caller-{i}", daemon=True)
               for i, args in enumerate(args_per_thread)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    if any(thread.is_alive() for thread in threads):
        raise AssertionError(f"calls to {method} from {len(threads)} threads did not finish within "
                             f"{timeout:g} s: is a lock never released?")
    if errors:
        raise AssertionError(f"calls to {method} failed: {errors[0]}")
    return answers
