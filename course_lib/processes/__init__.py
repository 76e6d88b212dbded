"""Worker functions and helpers for Chapter 2 (processes).

Every function here that a child process runs is importable by name, so it
works under every start method: with ``spawn`` and ``forkserver`` a child
imports the function it should run, which fails for a function defined in a
notebook cell (the notebook's ``__main__`` cannot be imported).

Worker functions (targets for ``ctx.Process``, tasks for pools):

- identity and memory: :func:`report_identity`, :func:`write_into_copy`;
- exit codes and signals: :func:`exit_with`, :func:`raise_error`,
  :func:`logged_call`, :func:`guarded_sleep`, :func:`announce_after`,
  :func:`try_to_start_child`, :func:`die_abruptly`;
- communication: :func:`queue_worker`, :func:`pipe_echo`, :func:`add_to_value`,
  :func:`set_list_item`, :func:`record_in_dict`, :func:`increment_in_dict`;
- shared memory: :func:`scale_shared`, :func:`sum_shared`;
- pools: :func:`square`, :func:`traced`, :func:`make_bytes`, :func:`cpu_task`,
  :func:`load_model`, :func:`predict`, :func:`load_and_predict`.

Helpers: :func:`check_picklable`, :func:`pool_map` (validates its arguments,
bounds the wait, turns a worker's exception into :class:`WorkerError`),
:class:`SharedArray` and :func:`attach_array` (a NumPy array in a
``SharedMemory`` block that is always closed and unlinked), and
:func:`shm_segments` / :func:`segment_exists` to see what is left in shared
memory; :func:`shutdown_helpers` stops multiprocessing's idle fork server at
the end of a notebook.

The package by job: :mod:`~course_lib.processes.lifecycle` (identity, exit
codes, signals), :mod:`~course_lib.processes.messaging` (queues, pipes, shared
values), :mod:`~course_lib.processes.pools` (check_picklable, pool_map),
:mod:`~course_lib.processes.tasks` (pool tasks), :mod:`~course_lib.processes.shared`
(shared memory) and :mod:`~course_lib.processes.cleanup` (shutdown_helpers).
"""

from __future__ import annotations

from .cleanup import shutdown_helpers
from .lifecycle import (
    announce_after,
    die_abruptly,
    exit_with,
    guarded_sleep,
    logged_call,
    raise_error,
    report_identity,
    try_to_start_child,
    write_into_copy,
)
from .messaging import (
    add_to_value,
    increment_in_dict,
    pipe_echo,
    pipe_square_server,
    queue_worker,
    record_in_dict,
    set_list_item,
)
from .pools import WorkerError, check_picklable, pool_map
from .shared import (
    ArraySpec,
    SharedArray,
    attach_array,
    scale_shared,
    segment_exists,
    shm_segments,
    sum_shared,
)
from .tasks import cpu_task, load_and_predict, load_model, make_bytes, predict, square, traced

__all__ = [
    "ArraySpec",
    "SharedArray",
    "WorkerError",
    "add_to_value",
    "announce_after",
    "attach_array",
    "check_picklable",
    "cpu_task",
    "die_abruptly",
    "exit_with",
    "guarded_sleep",
    "increment_in_dict",
    "load_and_predict",
    "load_model",
    "logged_call",
    "make_bytes",
    "pipe_echo",
    "pipe_square_server",
    "pool_map",
    "predict",
    "queue_worker",
    "raise_error",
    "record_in_dict",
    "report_identity",
    "scale_shared",
    "segment_exists",
    "set_list_item",
    "shm_segments",
    "shutdown_helpers",
    "square",
    "sum_shared",
    "traced",
    "try_to_start_child",
    "write_into_copy",
]

