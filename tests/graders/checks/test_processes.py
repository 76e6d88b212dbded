"""The processes chapter's evidence checks fail on the lazy behaviour and pass on the reference."""

from __future__ import annotations

import functools
import gc
import os

import pytest

import course_lib
from course_lib.processes import make_bytes, pipe_square_server, queue_worker, square, traced
from course_lib.trace import Tracer
from graders.checks import assert_joined, clean_processes, watch_processes


def _farm(order: str, n_workers: int = 2, size: int = 300_000) -> None:
    """A two-queue task farm with large results; `order` says when (and whether) it joins."""
    ctx = course_lib.mp_context()
    tasks, results = ctx.Queue(), ctx.Queue()
    workers = [ctx.Process(target=queue_worker, args=(make_bytes, tasks, results))
               for _ in range(n_workers)]
    for w in workers:
        w.start()
    for task in enumerate([size] * (2 * n_workers)):
        tasks.put(task)
    for _ in workers:
        tasks.put(None)
    if order == "join-then-drain":
        for w in workers:
            w.join(timeout=0.5)
    answers = [results.get(timeout=30) for _ in range(2 * n_workers)]
    assert len(answers) == 2 * n_workers
    if order in ("drain-then-join", "join-then-drain"):
        for w in workers:
            w.join(timeout=30)
    else:  # never joined: only wait until they are gone by themselves
        multiprocessing_wait([w.sentinel for w in workers])
    tasks.close()
    tasks.join_thread()


def multiprocessing_wait(sentinels: list[int]) -> None:
    from multiprocessing.connection import wait

    pending = list(sentinels)
    while pending:
        done = wait(pending, timeout=30)
        assert done, "a worker did not end"
        pending = [s for s in pending if s not in done]


def test_drain_then_join_passes() -> None:
    with clean_processes(), watch_processes() as watch:
        _farm("drain-then-join")
    assert len(watch.running("queue_worker")) == 2
    assert_joined(watch, "queue_worker")


def test_join_with_a_timeout_before_draining_fails() -> None:
    with clean_processes(), watch_processes() as watch:
        _farm("join-then-drain")
    with pytest.raises(
        AssertionError, match=r"join\(timeout=0.5\) .* returned while it was still running"
    ):
        assert_joined(watch, "queue_worker")


def test_never_joining_fails_even_when_the_workers_ended() -> None:
    with clean_processes(), watch_processes() as watch:
        _farm("never")
    assert all(r.exitcode == 0 for r in watch.running("queue_worker"))
    with pytest.raises(AssertionError, match="was never joined"):
        assert_joined(watch, "queue_worker")


def test_watch_restores_the_process_class_and_keeps_no_queue_alive() -> None:
    from multiprocessing.process import BaseProcess

    start, join = BaseProcess.start, BaseProcess.join
    ctx = course_lib.mp_context()
    with clean_processes(), watch_processes() as watch:
        q, answers = ctx.Queue(), ctx.Queue()  # keep both until the child has ended (spawn)
        p = ctx.Process(target=queue_worker, args=(square, q, answers))
        p.start()
        q.put(None)
        p.join(30)
        q.close()
        q.join_thread()
        answers.close()
    assert BaseProcess.start is start and BaseProcess.join is join
    record = watch.records[0]
    assert record.target == "queue_worker" and record.pid == p.pid and record.joined
    assert record.args[1] == "<Queue>"  # described, not kept: the queue can be collected
    del q, answers
    gc.collect()


def _ask(numbers: list[int], sentinel: bool) -> tuple[list[tuple[int, int]], int | None]:
    ctx = course_lib.mp_context()
    mine, theirs = ctx.Pipe()
    # Under fork the server inherits a copy of `mine` too, so closing ours is no EOF for it:
    # without the sentinel it stops after its idle timeout.
    server = ctx.Process(target=pipe_square_server, args=(theirs, 1.0))
    server.start()
    theirs.close()
    answers = []
    for x in numbers:
        mine.send(x)
        assert mine.poll(30)
        answers.append(mine.recv())
    if sentinel:
        mine.send(None)
    mine.close()
    server.join(30)
    return answers, server.exitcode


def test_pipe_square_server_answers_in_the_child_and_reports_how_it_was_stopped() -> None:
    with clean_processes():
        answers, code = _ask([3, -2], sentinel=True)
        assert [a[0] for a in answers] == [9, 4]
        assert {a[1] for a in answers} != {os.getpid()}
        assert code == 0
        _, code = _ask([1], sentinel=False)  # the client left without a goodbye
        assert code == 3


def test_traced_passes_several_arguments() -> None:
    with Tracer() as tracer:
        task = functools.partial(traced, tracer.for_process(), "pow", pow)
        assert task(2, 5) == 32
        assert functools.partial(traced, tracer.for_process(), "square", square)(4) == 16
    assert [s.name for s in tracer.spans] == ["pow", "square"]
