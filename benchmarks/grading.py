"""The classroom grader against plain nbgrader and against a bare run.

Both figures grade reference answers in temporary course folders; the
release step (``nbgrader generate_assignment``) happens before the clock
starts, as it does once per assignment for a class. The throughput figure
uses chapter 1's first notebook as the assignment (20 submissions of a whole
chapter would take a quarter of an hour); the overhead figure grades one
whole chapter-1 submission (its three notebooks). The cluster figures grade
the throughput course on a Dask ``LocalCluster`` of single-thread worker
processes on 127.0.0.1 (started before the clock, as a class's cluster is).
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from graders import nbio
from graders.notebooks import COURSE_DIR, SOURCE_DIR, strip_solution_markers

from . import Result, Skip, figure

ASSIGNMENT = "ch01_threads"
NOTEBOOK = "01_threads.ipynb"
SUBMISSIONS = 20


def _course(root: Path, students: int, notebooks: tuple[str, ...] = (NOTEBOOK,)) -> Path:
    """A course folder with one assignment and ``students`` reference submissions."""
    course = root / "course"
    (course / "source" / ASSIGNMENT).mkdir(parents=True)
    shutil.copy(COURSE_DIR / "nbgrader_config.py", course)
    for name in notebooks:
        source = SOURCE_DIR / ASSIGNMENT / name
        if not source.is_file():
            raise Skip(f"{source} is missing")
        shutil.copy(source, course / "source" / ASSIGNMENT / name)
    from graders.grade import prepare_assignment

    prepare_assignment(course, ASSIGNMENT)
    for name in notebooks:
        released = nbio.read(course / "release" / ASSIGNMENT / name)
        reference = nbio.read(SOURCE_DIR / ASSIGNMENT / name)
        answers = {
            c.metadata["nbgrader"]["grade_id"]: strip_solution_markers(c.source)
            for c in reference.cells
            if c.get("metadata", {}).get("nbgrader", {}).get("solution")
        }
        for cell in released.cells:
            grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
            if grade_id in answers:
                cell.source = answers[grade_id]
        for i in range(students):
            folder = course / "submitted" / f"student{i:03d}" / ASSIGNMENT
            folder.mkdir(parents=True, exist_ok=True)
            nbio.write(released, folder / name)
    return course


def _nbgrader_autograde(course: Path) -> float:
    from graders.nbgrader_cli import run_nbgrader

    start = time.perf_counter()
    code, output = run_nbgrader(course, ["autograde", ASSIGNMENT, "--force"], timeout=3600)
    elapsed = time.perf_counter() - start
    if code != 0:
        raise Skip(f"nbgrader autograde failed: {output.strip().splitlines()[-1:]}")
    return elapsed


def _course_grade(course: Path, workers: int | None = None) -> float:
    from graders.grade import grade_course

    start = time.perf_counter()
    rows = grade_course(course, assignment=ASSIGNMENT, workers=workers)
    elapsed = time.perf_counter() - start
    bad = [r for r in rows if r.status != "graded" or r.score != r.max_score]
    if bad:
        raise Skip(f"the grader did not give full marks to a reference answer: {bad[0]}")
    return elapsed


@figure(
    "grade_throughput_ratio",
    ">= 0.85 x usable cores",
    f"{SUBMISSIONS} submissions: nbgrader autograde one after another / python -m graders grade",
)
def grade_throughput_ratio() -> Result:
    from graders.grade import usable_cores

    with tempfile.TemporaryDirectory(prefix="bench-grade-") as tmp:
        plain = _course(Path(tmp) / "plain", SUBMISSIONS)
        ours = _course(Path(tmp) / "ours", SUBMISSIONS)
        serial = _nbgrader_autograde(plain)
        parallel = _course_grade(ours)
    cores = usable_cores()
    ratio = serial / parallel
    return Result(
        ratio,
        "x",
        f"nbgrader {serial:.1f} s, graders {parallel:.1f} s on {cores} usable "
        f"core(s); goal {0.85 * cores:.2f}",
    )


def _bare(path: Path) -> float:
    from nbclient import NotebookClient

    nb = nbio.read(path)
    start = time.perf_counter()
    NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    ).execute(stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


@figure("grade_overhead_ratio", "<= 1.3",
        "one chapter-1 submission: python -m graders grade (sandbox, guard, gradebook) / "
        "executing its notebooks bare")
def grade_overhead_ratio() -> Result:
    names = tuple(sorted(p.name for p in (SOURCE_DIR / ASSIGNMENT).glob("*.ipynb")))
    with tempfile.TemporaryDirectory(prefix="bench-overhead-") as tmp:
        course = _course(Path(tmp), 1, names)
        submission = sorted((course / "submitted").glob(f"*/{ASSIGNMENT}/*.ipynb"))

        def bare_run() -> float:
            return sum(_bare(path) for path in submission)

        bare_run()  # warm the caches (imports, matplotlib fonts) for both sides
        graded, bare = [], []
        for _ in range(3):
            bare.append(bare_run())
            graded.append(_course_grade(course, workers=1))
    ratio = statistics.median(graded) / statistics.median(bare)
    return Result(ratio, "x", f"median graded {statistics.median(graded):.2f} s, bare "
                              f"{statistics.median(bare):.2f} s (3 runs each; {sys.platform})")


# ---------------------------------------------------------------- on a Dask cluster

OVERHEAD_SUBMISSIONS = 6


@contextmanager
def _dask_workers(n_workers: int) -> Iterator[str]:
    """A scheduler and ``n_workers`` single-thread worker processes on 127.0.0.1.

    Yields the scheduler's address."""
    try:
        import distributed
    except ImportError:
        raise Skip("Dask is not installed (pip install -e '.[distributed]')") from None
    import logging

    with tempfile.TemporaryDirectory(prefix="bench-dask-") as scratch:
        # distributed's LocalCluster has no annotations: ignore that one untyped call
        cluster = distributed.LocalCluster(  # type: ignore[no-untyped-call]
            n_workers=n_workers, threads_per_worker=1, processes=True, host="127.0.0.1",
            scheduler_port=0, dashboard_address=None, local_directory=scratch,
            silence_logs=logging.ERROR)
        try:
            yield str(cluster.scheduler_address)
        finally:
            cluster.close(timeout=30)


def _cluster_grade(course: Path, address: str) -> float:
    from graders.cluster import grade_on_cluster

    start = time.perf_counter()
    rows = grade_on_cluster(course, address, assignment=ASSIGNMENT)
    elapsed = time.perf_counter() - start
    bad = [r for r in rows if r.status != "graded" or r.score != r.max_score]
    if bad:
        raise Skip(f"the grader on Dask did not give full marks to a reference answer: {bad[0]}")
    return elapsed


def _local_and_cluster(submissions: int, workers: int) -> tuple[float, float]:
    """Seconds to grade ``submissions`` here with --workers 1, and on ``workers`` Dask workers."""
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as tmp:
        here = _course(Path(tmp) / "here", submissions)
        there = _course(Path(tmp) / "there", submissions)
        local = _course_grade(here, workers=1)
        with _dask_workers(workers) as address:
            remote = _cluster_grade(there, address)
    return local, remote


@figure(
    "grade_cluster_ratio",
    ">= 1.6",
    f"{SUBMISSIONS} submissions: python -m graders grade --workers 1 / the same on 2 single-thread "
    "Dask workers (--scheduler)",
)
def grade_cluster_ratio() -> Result:
    from graders.grade import usable_cores

    local, remote = _local_and_cluster(SUBMISSIONS, 2)
    return Result(
        local / remote,
        "x",
        f"local --workers 1 {local:.1f} s, 2 Dask workers {remote:.1f} s; "
        f"{usable_cores()} usable core(s) on this machine",
    )


@figure(
    "grade_cluster_overhead_s",
    "<= 1.0",
    f"{OVERHEAD_SUBMISSIONS} submissions on 1 single-thread Dask worker minus --workers 1 here, "
    "per submission (shipping the files, the worker's folder, the round trips)",
)
def grade_cluster_overhead_s() -> Result:
    local, remote = _local_and_cluster(OVERHEAD_SUBMISSIONS, 1)
    added = (remote - local) / OVERHEAD_SUBMISSIONS
    return Result(added, "s", f"local {local:.1f} s, 1 Dask worker {remote:.1f} s "
                              f"for {OVERHEAD_SUBMISSIONS} submissions")
