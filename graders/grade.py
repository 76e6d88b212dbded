"""Autograde every submission of a course directory, in parallel and sandboxed.

COURSE_DIR holds ``nbgrader_config.py``, ``source/<assignment>/`` and
``submitted/<student>/<assignment>/``. The grader uses nbgrader's model: its
gradebook (``db_url`` from the config, SQLite by default), its preprocessors
(to restore locked cells, save scores, apply late penalties) and its
``autograded/`` layout, so the formgrader and ``nbgrader generate_feedback``
work on the result. What it does differently from ``nbgrader autograde``:

- submissions run in parallel (``workers``), each notebook in its own
  sandbox (``graders.sandbox``: process limit, memory limit, no network,
  every process and temporary file gone at the end); gradebook writes are
  serialised, one submission per transaction-like step under a lock;
- the kernel runs cell by cell with the test-integrity guard
  (``graders._guard``); a kernel that dies keeps the grades of the cells that
  ran, and the rest score zero with the reason in the notebook;
- output on stderr in a test cell (warnings, worker noise) does not cost the
  points; an error does;
- each submission gets a status (``STATUSES``) and a detail in
  ``grades.csv`` and in the returned rows.

Like nbgrader, it ignores notebooks that are not part of the assignment
(named in the detail), reads any nbformat version, copies ``timestamp.txt``
and ``submission_secret.txt`` into ``autograded/`` (feedback needs them) and
leaves graded cells a notebook no longer has (deleted, metadata stripped) to
manual grading.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
import threading
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nbformat import NotebookNode

from . import nbio
from .nbgrader_cli import last_error, run_nbgrader
from .notebooks import UsageError, nbgrader_meta, read_notebook
from .results import CSV_COLUMNS, GradeRow, atomic_write, write_detail_csv, write_grades_csv
from .sandbox import Isolation, Limits, Sandbox, detect_isolation
from .tamper import ReleasedCell, ReleasedNotebook, inspect_submission, names_bound

__all__ = ["GradeRow", "grade_course", "write_grades_csv", "CSV_COLUMNS", "STATUSES",
           "usable_cores", "RunSettings", "SubmissionJob", "Runner", "stage_inputs", "run_staged",
           "not_run", "prepare_assignment"]

STATUSES = ("graded", "timeout", "kernel-died", "memory-limit", "invalid-notebook", "tampered",
            "error")
# The status a submission gets when several things went wrong: the first that applies.
_PRIORITY = ("invalid-notebook", "tampered", "memory-limit", "kernel-died", "timeout", "error",
             "graded")
_STATE_FILE = ".graders-release.json"
_MAX_OUTPUT_CHARS = 200_000
# nbgrader's exchange files of a submission: kept out of the sandbox, copied as they are into
# autograded/ (generate_feedback carries them to feedback/, release_feedback reads them).
_SUBMISSION_FILES = ("timestamp.txt", "submission_secret.txt")
# nbgrader's preprocessors log what the grader reports itself (restored cells...).
_QUIET = logging.getLogger("graders.nbgrader")
_QUIET.setLevel(logging.ERROR)
_QUIET.propagate = False


def usable_cores() -> int:
    """CPUs this process may use (affinity and the cgroup CPU quota), as the course reports them."""
    from course_lib.machine.cores import usable_cores as machine_cores

    return machine_cores()


# ---------------------------------------------------------------- course layout

def _check_course_dir(course_dir: Path, assignment: str | None) -> list[str]:
    if not course_dir.exists():
        raise UsageError(f"{course_dir}: no such folder")
    if not course_dir.is_dir():
        raise UsageError(f"{course_dir}: not a folder (expected a course directory)")
    if not (course_dir / "nbgrader_config.py").is_file():
        raise UsageError(
            f"{course_dir}: no nbgrader_config.py (copy graders/nbgrader_config.py there)"
        )
    source = course_dir / "source"
    if not source.is_dir():
        raise UsageError(f"{course_dir}: no source/ folder with the assignments")
    if not (course_dir / "submitted").is_dir():
        raise UsageError(
            f"{course_dir}: no submitted/ folder (expected submitted/<student>/<assignment>/)"
        )
    assignments = sorted(p.name for p in source.iterdir() if p.is_dir())
    if assignment is not None:
        if assignment not in assignments:
            known = ", ".join(assignments) or "none"
            raise UsageError(
                f"{course_dir}: no assignment {assignment!r} in source/ (known: {known})"
            )
        return [assignment]
    if not assignments:
        raise UsageError(f"{course_dir}/source: no assignments")
    return assignments


def _config(course_dir: Path) -> Any:
    from traitlets.config.loader import PyFileConfigLoader

    return PyFileConfigLoader("nbgrader_config.py", path=str(course_dir)).load_config()


def _db_url(course_dir: Path) -> str:
    url = _config(course_dir).get("CourseDirectory", {}).get("db_url")
    return str(url) if url else f"sqlite:///{course_dir / 'gradebook.db'}"


def _ignored(course_dir: Path) -> list[str]:
    ignore = _config(course_dir).get("CourseDirectory", {}).get("ignore")
    return list(ignore) if ignore else [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback"]


def _source_digest(course_dir: Path, assignment: str) -> str:
    digest = hashlib.sha256((course_dir / "nbgrader_config.py").read_bytes())
    for path in sorted((course_dir / "source" / assignment).rglob("*")):
        if (
            path.is_file()
            and "__pycache__" not in path.parts
            and ".ipynb_checkpoints" not in path.parts
        ):
            digest.update(str(path.relative_to(course_dir)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def _generate(course_dir: Path, db_url: str, assignment: str) -> None:
    """``nbgrader generate_assignment``, skipped when the gradebook already has this source."""
    state_path = course_dir / _STATE_FILE
    try:
        state = json.loads(state_path.read_text())
    except (OSError, ValueError):
        state = {}
    digest = _source_digest(course_dir, assignment)
    if state.get(assignment) == [digest, db_url] and _in_gradebook(db_url, assignment):
        return
    code, output = run_nbgrader(
        course_dir, ["generate_assignment", assignment, "--force"], timeout=600
    )
    if code != 0:
        raise UsageError(f"nbgrader could not prepare {assignment}: {last_error(output)}")
    state[assignment] = [digest, db_url]
    atomic_write(state_path, json.dumps(state, indent=1))


def _in_gradebook(db_url: str, assignment: str) -> bool:
    from nbgrader.api import Gradebook, MissingEntry

    try:
        with Gradebook(db_url) as gb:
            gb.find_assignment(assignment)
        return True
    except (MissingEntry, Exception):
        return False


def _released(course_dir: Path, db_url: str, assignment: str) -> dict[str, ReleasedNotebook]:
    """The release as the gradebook stores it, plus the names reference solutions bind."""
    from nbgrader.api import Gradebook

    notebooks: dict[str, ReleasedNotebook] = {}
    with Gradebook(db_url) as gb:
        for notebook in gb.find_assignment(assignment).notebooks:
            points = {g.name: float(g.max_score) for g in notebook.grade_cells}
            solutions = {s.name for s in notebook.solution_cells}
            cells: dict[str, ReleasedCell] = {}
            for source in notebook.source_cells:
                cells[source.name] = ReleasedCell(
                    grade_id=source.name, cell_type=source.cell_type,
                    source=source.source if source.locked else None, locked=bool(source.locked),
                    points=points.get(source.name), solution=source.name in solutions)
            for name, value in points.items():
                if name not in cells:
                    cells[name] = ReleasedCell(name, "code", None, False, value, name in solutions)
            notebooks[notebook.name] = ReleasedNotebook(notebook.name, cells)
    for name, released in notebooks.items():
        path = course_dir / "source" / assignment / f"{name}.ipynb"
        student_names: set[str] = set()
        if path.is_file():
            for cell in nbio.read(path).cells:
                meta = cell.get("metadata", {}).get("nbgrader", {})
                if cell.cell_type == "code" and isinstance(meta, dict) and meta.get("solution"):
                    student_names.update(names_bound(cell.source))
        released.student_names = sorted(student_names)
    return notebooks


# ---------------------------------------------------------------- one submission

@dataclass
class _Context:
    course_dir: Path
    db_url: str
    cell_timeout: int
    budget: float
    limits: Limits
    isolation: Isolation
    lock: threading.Lock
    ignore: list[str]
    released: dict[str, dict[str, ReleasedNotebook]] = field(default_factory=dict)
    runner: Runner | None = None


@dataclass
class _NotebookRun:
    name: str
    events: list[dict[str, Any]]
    cells: dict[int, dict[str, Any]]
    timed_out: bool
    oom: bool
    process_limit: bool
    returncode: int | None
    log: str


def _resources(ctx: _Context, assignment: str, student: str, notebook: str) -> dict[str, Any]:
    return {"unique_key": notebook, "output_files_dir": f"{notebook}_files",
            "nbgrader": {"student": student, "assignment": assignment, "notebook": notebook,
                         "db_url": ctx.db_url}}


def _sanitize(nb: NotebookNode, resources: dict[str, Any]) -> NotebookNode:
    from nbgrader.preprocessors import (
        CheckCellMetadata,
        ClearOutput,
        DeduplicateIds,
        OverwriteCells,
        OverwriteKernelspec,
    )

    for preprocessor in (
        ClearOutput,
        DeduplicateIds,
        OverwriteKernelspec,
        OverwriteCells,
        CheckCellMetadata,
    ):
        nb, resources = preprocessor(log=_QUIET).preprocess(nb, resources)
    return nb


def _timestamp(folder: Path) -> Any:
    from nbgrader.utils import parse_utc

    path = folder / "timestamp.txt"
    if not path.is_file():
        return None
    try:
        return parse_utc(path.read_text().strip())
    except Exception:
        return None


def _copy_files(src: Path, dest: Path, ignore: list[str]) -> None:
    """Copy the files of ``src`` except notebooks, ignored names and ``_SUBMISSION_FILES``.

    The submission files never enter the sandbox (a submission cannot alter
    them); ``_grade_one`` copies the submitted ones straight into ``autograded/``.
    """
    if not src.is_dir():
        return
    for path in src.rglob("*"):
        rel = path.relative_to(src)
        if path.suffix == ".ipynb" or any(rel.match(p) or any(part == p for part in rel.parts)
                                          for p in ignore) or rel.as_posix() in _SUBMISSION_FILES:
            continue
        target = dest / rel
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        elif path.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)


# ---------------------------------------------------------------- the sandbox phase (hook)
# Running a submission's notebooks needs no gradebook and no course folder: only the
# sanitised notebooks, the files staged next to them, and the settings below. Local
# grading runs it in this process (``_run_here``); graders.cluster runs it on a Dask
# worker (graders.worker) and the coordinator keeps every gradebook and file write.

@dataclass(frozen=True)
class RunSettings:
    """The limits a submission runs under, wherever it runs."""

    cell_timeout: int
    budget: float
    limits: Limits
    isolation: Isolation
    ignore: list[str]


@dataclass
class SubmissionJob:
    """One submission's notebooks (sanitised, graded in place) and the names its answers bind."""

    assignment: str
    student: str
    notebooks: dict[str, NotebookNode]
    student_names: dict[str, list[str]]


# A runner executes a job: stages ``inputs`` (folders) under ``work_root``, runs the
# notebooks, leaves the executed notebooks in ``job.notebooks`` and every other file for
# autograded/ in ``work_root / "autograded"``, and returns (status hints, notes).
Runner = Callable[[RunSettings, SubmissionJob, list[Path], Path], tuple[list[str], list[str]]]


def stage_inputs(settings: RunSettings, inputs: list[Path], workdir: Path) -> None:
    """Copy the files a submission runs with (not its notebooks) into ``workdir``."""
    workdir.mkdir(parents=True, exist_ok=True)
    for folder in inputs:
        _copy_files(folder, workdir, settings.ignore)


def run_staged(
    settings: RunSettings, job: SubmissionJob, workdir: Path, built: Path
) -> tuple[list[str], list[str]]:
    """Run each notebook of ``job`` in its own sandbox in ``workdir``.

    The files for autograded/ go to ``built``."""
    hints: list[str] = []
    notes: list[str] = []
    for name, nb in job.notebooks.items():
        nb_path = workdir / f"{name}.ipynb"
        nbio.write(nb, nb_path)
        kernel = nb.metadata.get("kernelspec", {}).get("name", "python3")
        run = _execute(settings, workdir, nb_path, job.student_names.get(name, []), kernel)
        nb_hints, nb_notes = _apply_run(nb, run, settings.budget)
        hints.extend(nb_hints)
        notes.extend(f"{name}: {n}" for n in nb_notes)
    built.mkdir(parents=True, exist_ok=True)
    _copy_files(workdir, built, settings.ignore + [".runtime", "tmp", ".*"])
    return hints, notes


def _run_here(settings: RunSettings, job: SubmissionJob, inputs: list[Path],
              work_root: Path) -> tuple[list[str], list[str]]:
    workdir = work_root / job.assignment
    stage_inputs(settings, inputs, workdir)
    return run_staged(settings, job, workdir, work_root / "autograded")


def not_run(nb: NotebookNode, reason: str) -> None:
    """Mark every code cell of ``nb`` as not run, with ``reason`` (it then scores zero)."""
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [_not_run(reason)]
            cell.execution_count = None


def _execute(ctx: _Context | RunSettings, workdir: Path, nb_path: Path, student_names: list[str],
             kernel_name: str) -> _NotebookRun:
    progress = workdir / f".{nb_path.stem}.progress.jsonl"
    job = {"notebook": str(nb_path), "progress": str(progress), "cell_timeout": ctx.cell_timeout,
           "kernel_name": kernel_name, "student_names": student_names}
    job_path = workdir / f".{nb_path.stem}.job.json"
    job_path.write_text(json.dumps(job))
    # NBGRADER_EXECUTION as nbgrader sets it: notebooks may skip interactive widgets.
    env = dict(os.environ, PYTHONWARNINGS="ignore", PYDEVD_DISABLE_FILE_VALIDATION="1",
               JUPYTER_RUNTIME_DIR=str(workdir / ".runtime"), MPLBACKEND="Agg",
               NBGRADER_EXECUTION="autograde")
    env.pop("JPY_PARENT_PID", None)
    with Sandbox(workdir, ctx.limits, ctx.isolation) as sandbox:
        result = sandbox.run([sys.executable, "-m", "graders._execute", str(job_path)], env,
                             timeout=ctx.budget, log_path=workdir / f".{nb_path.stem}.log")
    events: list[dict[str, Any]] = []
    cells: dict[int, dict[str, Any]] = {}
    if progress.is_file():
        for line in progress.read_text(errors="replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a line cut short when the sandbox was killed
            if "event" in record:
                events.append(record)
            elif isinstance(record.get("index"), int):
                cells[record["index"]] = record
    return _NotebookRun(nb_path.stem, events, cells, result.timed_out, result.oom_killed,
                        result.process_limit_hit, result.returncode, result.log)


def _not_run(reason: str) -> NotebookNode:
    return nbio.new_output("error", ename="NotRun", evalue=reason,
                                  traceback=[f"NotRun: {reason}"])


def _cap(outputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Keep outputs readable: a print loop must not make a 100 MB notebook."""
    total = 0
    kept: list[dict[str, Any]] = []
    truncated = False
    for output in outputs:
        size = len(json.dumps(output))
        if total + size > _MAX_OUTPUT_CHARS and output.get("output_type") != "error":
            if not truncated:
                kept.append(
                    {
                        "output_type": "stream",
                        "name": "stdout",
                        "text": "[output truncated by the grader after "
                        f"{_MAX_OUTPUT_CHARS} characters]\n",
                    }
                )
                truncated = True
            continue
        total += size
        kept.append(output)
    return kept


def _apply_run(nb: NotebookNode, run: _NotebookRun, budget: float) -> tuple[list[str], list[str]]:
    """Put the outputs into ``nb``; mark cells that did not run. Return (status hints, notes)."""
    hints: list[str] = []
    notes: list[str] = []
    ending = {e["event"]: e for e in run.events}
    stopped_at: int | None = None
    if "finished" in ending:
        reason = ""
    elif run.oom:
        reason, stopped_at = "the notebook ran out of memory and its kernel was killed", None
        hints.append("memory-limit")
    elif run.timed_out:
        reason = f"the notebook ran past its {budget:g} s budget"
        hints.append("timeout")
    elif "unresponsive" in ending:
        reason = "the kernel stopped answering after a cell timed out"
        hints.append("timeout")
    elif "kernel-died" in ending:
        stopped_at = ending["kernel-died"].get("index")
        where = f" in cell {stopped_at}" if isinstance(stopped_at, int) else ""
        reason = f"the kernel died{where}"
        hints.append("kernel-died")
    elif "error" in ending:
        reason = f"the grader could not run the notebook: {ending['error'].get('detail', '')}"
        hints.append("error")
    else:
        reason = f"the notebook's process ended early (exit status {run.returncode})"
        hints.append("kernel-died")
    if run.process_limit:
        notes.append("hit the sandbox's process limit")
    if "guard" in ending:
        notes.append(f"the test guard could not be installed: {ending['guard'].get('detail', '')}")
    tampering: list[str] = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        record = run.cells.get(index)
        if record is None or (index == stopped_at and not record.get("outputs")):
            cell.outputs = [_not_run(reason or "the cell did not run")]
            cell.execution_count = None
            continue
        outputs = _cap(record.get("outputs", []))
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("grade") and not meta.get("solution"):
            # Warnings and worker chatter on stderr are not failures: only errors are.
            for output in outputs:
                if output.get("output_type") == "stream" and output.get("name") == "stderr":
                    output["name"] = "stdout"
        if index == stopped_at:
            outputs.append(_not_run(reason))
        cell.outputs = [nbio.from_dict(o) for o in outputs]
        cell.execution_count = record.get("execution_count")
        tampering.extend(record.get("tampering", []))
        if record.get("guard_unanswered"):
            notes.append(f"the test guard did not answer before cell {index} (a busy machine?)")
        for output in outputs:
            if output.get("ename") == "MemoryError":
                hints.append("memory-limit")
            if output.get("ename") == "CellTimeoutError":
                hints.append("timeout")
    if tampering:
        hints.append("tampered")
        unique = list(dict.fromkeys(tampering))
        notes.append(
            "while running: " + "; ".join(unique[:5]) + (" ..." if len(unique) > 5 else "")
        )
    if reason:
        notes.append(reason)
    return hints, notes


def _save_grades(ctx: _Context, nb: NotebookNode, resources: dict[str, Any],
                 released: ReleasedNotebook) -> NotebookNode:
    from nbgrader.api import Gradebook
    from nbgrader.preprocessors import (
        AssignLatePenalties,
        CheckCellMetadata,
        LimitOutput,
        SaveAutoGrades,
    )

    # Late penalties need a submission time (timestamp.txt); without one there is none to apply.
    steps = [LimitOutput, SaveAutoGrades, CheckCellMetadata]
    if resources["nbgrader"].get("timestamped"):
        steps.insert(2, AssignLatePenalties)
    for preprocessor in steps:
        nb, resources = preprocessor(log=_QUIET).preprocess(nb, resources)
    present = {cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") for cell in nb.cells}
    missing = [
        gid for gid, c in released.cells.items() if c.points is not None and gid not in present
    ]
    if missing:
        # A graded cell the notebook no longer has (deleted, or its metadata stripped) is left
        # to the instructor, as nbgrader leaves it: no automatic score, flagged for manual grading.
        info = resources["nbgrader"]
        with Gradebook(ctx.db_url) as gb:
            for grade_id in missing:
                grade = gb.find_grade(
                    grade_id, info["notebook"], info["assignment"], info["student"]
                )
                grade.auto_score = None
                grade.needs_manual_grade = True
            gb.db.commit()
    return nb


def _scores(db_url: str, assignment: str, student: str) -> tuple[float, float, dict[str, float]]:
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(db_url) as gb:
        max_score = float(gb.find_assignment(assignment).max_score)
        try:
            submission = gb.find_submission(assignment, student)
        except MissingEntry:
            return 0.0, max_score, {}
        cells: dict[str, float] = {}
        for notebook in submission.notebooks:
            for grade in notebook.grades:
                cells[grade.name] = float(grade.score)
        return float(submission.score), max_score, cells


def _needs_manual(db_url: str, assignment: str, student: str) -> list[str]:
    """Grade ids of the submission that the formgrader flags for manual grading."""
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(db_url) as gb:
        try:
            submission = gb.find_submission(assignment, student)
        except MissingEntry:
            return []
        return sorted(
            g.name for nb in submission.notebooks for g in nb.grades if g.needs_manual_grade
        )


def _zero_submission(ctx: _Context, assignment: str, student: str, notebooks: list[str]) -> None:
    """Record a submission that could not be graded: every grade zero, in the gradebook."""
    from nbgrader.api import Gradebook

    with Gradebook(ctx.db_url) as gb:
        gb.update_or_create_student(student)
        gb.update_or_create_submission(assignment, student)
        for name in notebooks:
            submission = gb.find_submission_notebook(name, assignment, student)
            for grade in submission.grades:
                grade.auto_score = 0
                grade.needs_manual_grade = False
        gb.db.commit()


def _install_autograded(ctx: _Context, assignment: str, student: str, built: Path) -> None:
    """Swap ``autograded/<student>/<assignment>`` for ``built`` in one rename."""
    dest = ctx.course_dir / "autograded" / student / assignment
    dest.parent.mkdir(parents=True, exist_ok=True)
    old = dest.parent / f".{assignment}.old-{os.getpid()}-{threading.get_ident()}"
    if dest.exists():
        os.replace(dest, old)
    os.replace(built, dest)
    shutil.rmtree(old, ignore_errors=True)


def _grade_one(ctx: _Context, assignment: str, student: str) -> GradeRow:
    import time

    started = time.monotonic()
    released = ctx.released[assignment]
    folder = ctx.course_dir / "submitted" / student / assignment
    submitted = sorted(folder.glob("*.ipynb"))

    def finish(status: str, detail: str) -> GradeRow:
        with ctx.lock:
            score, max_score, cells = _scores(ctx.db_url, assignment, student)
            manual = _needs_manual(ctx.db_url, assignment, student)
        if status == "invalid-notebook":
            score, manual = 0.0, []
        return GradeRow(student, assignment, score, max_score, status, detail, cells,
                        time.monotonic() - started, manual)

    # 1. Is it a submission of this assignment at all? Notebooks the assignment does not have
    #    ("p1 copy.ipynb", "Untitled.ipynb") are ignored, as nbgrader ignores them.
    notebooks: dict[str, NotebookNode] = {}
    ignored = [p.name for p in submitted if p.stem not in released]
    submitted = [p for p in submitted if p.stem in released]
    problem = ""
    if not submitted:
        problem = "no notebook of the assignment submitted" + (
            f" (found only {', '.join(ignored)})" if ignored else "")
    findings: list[str] = []
    for path in submitted:
        if problem:
            break
        try:
            nb = read_notebook(path)
        except UsageError as exc:
            problem = str(exc)
            break
        problem, found = inspect_submission(nb, released[path.stem])
        findings.extend(f"{path.name}: {f}" for f in found)
        notebooks[path.stem] = nb
    if problem:
        with ctx.lock:
            _zero_submission(ctx, assignment, student, list(released))
        return finish("invalid-notebook", problem)

    # 2. Restore locked cells from the gradebook and register the submission.
    work_root = Path(tempfile.mkdtemp(prefix=f"graders-{student}-"))
    try:
        with ctx.lock:
            from nbgrader.api import Gradebook

            with Gradebook(ctx.db_url) as gb:
                gb.update_or_create_student(student)
                timestamp = _timestamp(folder)
                if timestamp is not None:
                    gb.update_or_create_submission(assignment, student, timestamp=timestamp)
                else:
                    gb.update_or_create_submission(assignment, student)
            for name, nb in notebooks.items():
                notebooks[name] = _sanitize(nb, _resources(ctx, assignment, student, name))
        # 3. Run each notebook in its own sandbox: here, or on a cluster worker (ctx.runner).
        hints: list[str] = ["tampered"] if findings else []
        notes: list[str] = list(findings)
        settings = RunSettings(ctx.cell_timeout, ctx.budget, ctx.limits, ctx.isolation, ctx.ignore)
        job = SubmissionJob(assignment, student, notebooks,
                            {name: released[name].student_names for name in notebooks})
        run_hints, run_notes = (ctx.runner or _run_here)(
            settings, job, [folder, ctx.course_dir / "source" / assignment], work_root)
        hints.extend(run_hints)
        notes.extend(run_notes)

        # 4. Save grades (nbgrader's own preprocessors) and publish autograded/.
        built = work_root / "autograded"
        built.mkdir(parents=True, exist_ok=True)
        # nbgrader's own files (release_feedback needs timestamp.txt) come from the submission
        # itself, here on the coordinator, never through the sandbox.
        for name in _SUBMISSION_FILES:
            if (folder / name).is_file():
                shutil.copyfile(folder / name, built / name)
        with ctx.lock:
            for name, nb in notebooks.items():
                resources = _resources(ctx, assignment, student, name)
                resources["nbgrader"]["timestamped"] = timestamp is not None
                nb = _save_grades(ctx, nb, resources, released[name])
                nbio.write(nb, built / f"{name}.ipynb")
                present = {nbgrader_meta(cell).get("grade_id") for cell in nb.cells}
                lost = [gid for gid, c in released[name].cells.items()
                        if c.points is not None and gid not in present]
                if lost:
                    notes.append(f"{name}: left for manual grading (not in the notebook): "
                                 + ", ".join(lost))
            missing = [n for n in released if n not in notebooks]
            if missing:
                _zero_submission(ctx, assignment, student, missing)
                notes.append("not submitted: " + ", ".join(f"{n}.ipynb" for n in missing))
            if ignored:
                notes.append(f"ignored (not notebooks of {assignment}): " + ", ".join(ignored))
            _install_autograded(ctx, assignment, student, built)
    except UsageError:
        raise
    except Exception as exc:  # one student's failure never touches another's grade
        return finish("error", f"{type(exc).__name__}: {exc}")
    finally:
        shutil.rmtree(work_root, ignore_errors=True)
    status = next(s for s in _PRIORITY if s in hints or s == "graded")
    return finish(status, "; ".join(dict.fromkeys(notes)))


# ---------------------------------------------------------------- the course

def _shm_entries() -> set[str]:
    shm = Path("/dev/shm")
    try:
        return {p.name for p in shm.iterdir()} if shm.is_dir() else set()
    except OSError:
        return set()


def _mapped_shm() -> set[str]:
    """Names in /dev/shm that some process still maps (psutil reads each one's maps)."""
    import psutil

    names: set[str] = set()
    if not Path("/dev/shm").is_dir():  # macOS, Windows: no such folder (nor memory_maps on macOS)
        return names
    for process in psutil.process_iter():
        try:
            for region in process.memory_maps(grouped=True):
                if region.path.startswith("/dev/shm/"):
                    names.add(region.path[len("/dev/shm/"):].split(" ")[0])  # " (deleted)"
        except (psutil.Error, OSError):
            continue
    return names


def grade_course(
    course_dir: Path,
    *,
    assignment: str | None = None,
    workers: int | None = None,
    cell_timeout: int = 60,
    memory_mb: int | None = 2048,
    max_processes: int = 512,
    notebook_budget: float = 1800.0,
    progress: Callable[[GradeRow], None] | None = None,
    on_start: Callable[[int, Isolation], None] | None = None,
    isolation: Isolation | None = None,
    runner: Runner | None = None,
) -> list[GradeRow]:
    """Autograde every submission; return one row per (student, assignment), sorted.

    ``runner`` runs each submission's notebooks elsewhere (graders.cluster); the
    gradebook, autograded/ and the CSV files are still written here only.
    """
    course_dir = course_dir.resolve()
    assignments = _check_course_dir(course_dir, assignment)
    db_url = _db_url(course_dir)
    ctx = _Context(course_dir, db_url, cell_timeout, notebook_budget,
                   Limits(memory_mb=memory_mb, max_processes=max_processes),
                   isolation if isolation is not None else detect_isolation(),
                   threading.Lock(), _ignored(course_dir), runner=runner)
    jobs: list[tuple[str, str]] = []
    for name in assignments:
        _generate(course_dir, db_url, name)
        ctx.released[name] = _released(course_dir, db_url, name)
        students = sorted(
            p.parent.name for p in (course_dir / "submitted").glob(f"*/{name}") if p.is_dir()
        )
        jobs.extend((name, student) for student in students)
    if on_start is not None:
        on_start(len(jobs), ctx.isolation)
    shm_before = _shm_entries()
    rows: list[GradeRow] = []
    warnings.filterwarnings("ignore", message=".*not in session.*")
    with ThreadPoolExecutor(
        max_workers=workers or usable_cores(), thread_name_prefix="grade"
    ) as pool:
        futures = [pool.submit(_grade_one, ctx, a, s) for a, s in jobs]
        for future in futures:
            row = future.result()
            rows.append(row)
            if progress is not None:
                progress(row)
    if not ctx.isolation.namespaces:
        # Without private /dev/shm mounts, remove segments the submissions left (unmapped, new).
        for name in _shm_entries() - shm_before - _mapped_shm():
            (Path("/dev/shm") / name).unlink(missing_ok=True)
    rows.sort(key=lambda r: (r.assignment, r.student_id))
    write_grades_csv(course_dir / "grades.csv", rows, replace_assignments=set(assignments))
    write_detail_csv(course_dir / "grades-detail.csv", rows, replace_assignments=set(assignments))
    return rows


def prepare_assignment(course_dir: Path, assignment: str) -> None:
    """``nbgrader generate_assignment`` for ``assignment``, skipped while its source is the same."""
    course_dir = course_dir.resolve()
    _generate(course_dir, _db_url(course_dir), assignment)
