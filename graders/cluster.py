"""Grade a class across the workers of a running Dask scheduler (the coordinator side).

``python -m graders grade COURSE_DIR --scheduler tcp://host:8786`` (or with
``COURSE_DASK_SCHEDULER`` set, as chapter 6 reads it) grades as local grading
does, with one difference: each submission's notebooks run on a Dask worker
(:mod:`graders.worker`) instead of in this process. This process stays the
coordinator: it reads the submissions, restores locked cells, keeps the
gradebook, writes ``autograded/``, ``grades.csv`` and ``grades-detail.csv``.
Workers receive a copy of what they need as bytes (the sanitised notebooks and
a tar archive of the files next to them) and need the course installed, not
the course folder.

Faults:

- a worker that dies while it grades loses nothing: the scheduler gives its
  task to another worker (or to the same one after its nanny restarts it), and
  the coordinator writes the one answer it receives, so every row appears once;
- a submission that keeps killing workers stops after the scheduler's
  ``distributed.scheduler.allowed-failures`` (3 by default) and is recorded as
  ``kernel-died`` with every cell not run; the rest of the class goes on;
- a scheduler that does not answer is a :class:`~graders.notebooks.UsageError`
  (one line, exit status 2 on the command line) before anything is written.
"""

from __future__ import annotations

import logging
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from . import nbio
from .grade import GradeRow, RunSettings, SubmissionJob, grade_course, not_run, stage_inputs
from .notebooks import UsageError
from .sandbox import Isolation
from .worker import (
    PROTOCOL,
    describe,
    grade_submission,
    pack_folder,
    sweep_abandoned,
    unpack_folder,
)

__all__ = ["ClusterRunner", "connect", "check_workers", "grade_on_cluster", "scheduler_address"]

_START_HINT = (
    "start one with `dask scheduler` and `dask worker ADDRESS` (see deploy/dask/README.md)"
)


def scheduler_address(given: str | None) -> str | None:
    """``given``, else the ``COURSE_DASK_SCHEDULER`` setting (environment or cluster.toml).

    None when neither names a scheduler."""
    if given:
        return given
    from course_lib.distributed.config import DistributedError, config

    try:
        return config().get("COURSE_DASK_SCHEDULER") or None
    except DistributedError as exc:
        raise UsageError(str(exc)) from None


@contextmanager
def connect(address: str, timeout: float = 10.0) -> Iterator[Any]:
    """A ``distributed.Client`` of the scheduler at ``address``, closed after the block."""
    try:
        import distributed
    except ImportError:
        raise UsageError(
            "grading on a cluster needs Dask: pip install -e '.[distributed]'"
        ) from None
    try:
        # distributed's Client has no annotations: the ignore is for that untyped call only
        client = distributed.Client(  # type: ignore[no-untyped-call]
            address, timeout=timeout, set_as_default=False)
    except Exception as exc:  # OSError, TimeoutError, ValueError for a malformed address
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise UsageError(
            f"cannot reach the Dask scheduler at {address} ({reason}); {_START_HINT}"
        ) from None
    try:
        yield client
    finally:
        client.close(timeout=timeout)  # type: ignore[no-untyped-call]  # untyped distributed


def check_workers(client: Any, timeout: float = 60.0) -> dict[str, dict[str, Any]]:
    """Wait for a worker and check that every worker can grade; return what each offers."""
    try:
        client.wait_for_workers(1, timeout=timeout)
    except Exception:
        raise UsageError(
            f"the Dask scheduler has no workers after {timeout:g} s; "
            f"start some with `dask worker {client.scheduler.address} --nthreads 1`"
        ) from None
    answers: dict[str, Any] = client.run(describe, on_error="return")
    info: dict[str, dict[str, Any]] = {}
    for address, answer in sorted(answers.items()):
        if isinstance(answer, dict):
            info[address] = answer
        elif (
            not isinstance(answer, (OSError, TimeoutError)) and "Comm" not in type(answer).__name__
        ):
            raise UsageError(
                f"the Dask worker {address} cannot run the grader ({type(answer).__name__}: "
                f"{answer}); install the course on every worker "
                "(pip install -e . in the repository)"
            )
        # else: a worker that went away meanwhile; the scheduler stops sending it work
    if not info:
        raise UsageError(f"no Dask worker of {client.scheduler.address} answered; "
                         "check that the workers run and can reach this machine")
    stale = sorted(addr for addr, item in info.items() if item.get("protocol") != PROTOCOL)
    if stale:
        raise UsageError(f"worker(s) {', '.join(stale)} run another version of the grader: "
                         "install the same course version on the workers and here")
    return info


class ClusterRunner:
    """The ``runner`` hook of :func:`graders.grade.grade_course` that grades on Dask workers."""

    def __init__(self, client: Any, isolation: Isolation | None = None) -> None:
        self.client = client
        self.isolation = isolation  # None: each worker uses the strongest its machine allows
        self.graded_on: dict[tuple[str, str], str] = {}

    def sweep(self, wait_for: int = 0, timeout: float = 20.0) -> None:
        """Have every worker remove the folders that killed workers left on its host.

        ``wait_for``: first wait up to ``timeout`` s for that many workers (nannies
        restarting the killed ones). A worker that does not answer sweeps before its next task.
        """
        with suppress(Exception):
            if wait_for:
                self.client.wait_for_workers(wait_for, timeout=timeout)
        with suppress(Exception):
            self.client.run(sweep_abandoned)

    def __call__(self, settings: RunSettings, job: SubmissionJob, inputs: list[Path],
                 work_root: Path) -> tuple[list[str], list[str]]:
        from distributed import KilledWorker

        staged = work_root / "staged"
        stage_inputs(settings, inputs, staged)
        given = self.isolation
        request = {
            "protocol": PROTOCOL, "assignment": job.assignment, "student": job.student,
            "notebooks": {name: nbio.writes(nb) for name, nb in job.notebooks.items()},
            "student_names": job.student_names,
            "cell_timeout": settings.cell_timeout, "budget": settings.budget,
            "memory_mb": settings.limits.memory_mb, "max_processes": settings.limits.max_processes,
            "ignore": settings.ignore, "files": pack_folder(staged),
            "isolation": None if given is None else {
                "namespaces": given.namespaces, "cgroup": given.cgroup,
                "cgroup_parents": list(given.cgroup_parents)},
        }
        key = f"grade-{job.assignment}-{job.student}-{uuid.uuid4().hex[:8]}"
        built = work_root / "autograded"
        future = self.client.submit(grade_submission, request, key=key, pure=False)
        try:
            answer = future.result()
        except KilledWorker as exc:
            reason = ("grading this submission killed a Dask worker each time it ran "
                      f"({exc.allowed_failures + 1} tries); nothing of it was graded")
            for nb in job.notebooks.values():
                not_run(nb, reason)
            shutil.copytree(staged, built, dirs_exist_ok=True)
            self.sweep()
            return ["kernel-died"], [reason]
        except Exception as exc:
            if self.client.status not in ("running", "connecting"):
                raise UsageError(f"lost the Dask scheduler while grading ({type(exc).__name__}); "
                                 "grades saved so far are in the gradebook: grade again") from None
            raise
        finally:
            future.release()
            shutil.rmtree(staged, ignore_errors=True)
        for name, text in answer["notebooks"].items():
            job.notebooks[name] = nbio.reads(text)
        unpack_folder(answer["files"], built)
        self.graded_on[(job.assignment, job.student)] = answer["worker"]
        return list(answer["hints"]), list(answer["notes"])


def grade_on_cluster(
    course_dir: Path,
    scheduler: str,
    *,
    in_flight: int | None = None,
    isolation: Isolation | None = None,
    connect_timeout: float = 10.0,
    worker_timeout: float = 60.0,
    on_connect: Callable[[dict[str, dict[str, Any]]], None] | None = None,
    **options: Any,
) -> list[GradeRow]:
    """Grade ``course_dir`` on the Dask scheduler at ``scheduler``; rows as :func:`grade_course`.

    ``in_flight`` submissions are sent at once (default: twice the workers' threads,
    so each worker has the next one waiting); ``options`` go to ``grade_course``.
    """
    logging.getLogger("distributed").setLevel(logging.ERROR)
    with connect(scheduler, connect_timeout) as client:
        info = check_workers(client, worker_timeout)
        if on_connect is not None:
            on_connect(info)
        threads = sum(client.nthreads().values())
        runner = ClusterRunner(client, isolation)
        try:
            return grade_course(course_dir, workers=in_flight or max(2, 2 * threads),
                                runner=runner, isolation=isolation, **options)
        finally:
            runner.sweep(wait_for=len(info))
