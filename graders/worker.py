"""What a Dask worker runs when the grader grades on a cluster (``graders.cluster``).

The coordinator sends one submission as plain data: its sanitised notebooks
(JSON text), the names their answers bind, the limits, and the files staged
next to them as the bytes of a tar archive. :func:`grade_submission` unpacks
that into a temporary folder, runs the notebooks in the same sandbox as local
grading (``graders.grade.run_staged``), and answers with the executed
notebooks, the status hints and notes, and the files for ``autograded/`` as
another tar archive. It touches no gradebook and needs no course folder: only
the course installed (``graders`` and ``course_lib`` importable), so that the
sandbox, the test guard and the kernels work as they do locally.

A worker killed while it grades leaves its temporary folder behind; the next
submission graded on that host removes the folders of workers that are gone.
"""

from __future__ import annotations

import io
import os
import platform
import shutil
import sys
import tarfile
import tempfile
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

from . import nbio
from .grade import RunSettings, SubmissionJob, run_staged
from .sandbox import Isolation, Limits, detect_isolation

__all__ = [
    "grade_submission",
    "describe",
    "pack_folder",
    "unpack_folder",
    "sweep_abandoned",
    "PROTOCOL",
]

# Bumped when the request or the answer changes shape: the coordinator refuses workers
# that run another version of the course.
PROTOCOL = 1
_PREFIX = "graders-w"


def pack_folder(folder: Path) -> bytes:
    """The files under ``folder`` as an uncompressed tar archive (paths relative to it)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for path in sorted(folder.rglob("*")):
            if (path.is_file() or path.is_dir()) and not path.is_symlink():
                archive.add(path, arcname=str(path.relative_to(folder)), recursive=False)
    return buffer.getvalue()


def unpack_folder(data: bytes, folder: Path) -> None:
    """Unpack :func:`pack_folder`'s archive into ``folder``; refuses links and paths outside it."""
    folder.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r") as archive:
        if hasattr(tarfile, "data_filter"):
            archive.extractall(folder, filter="data")
            return
        root = folder.resolve()  # pragma: no cover - Python without tarfile filters
        for member in archive.getmembers():
            target = (root / member.name).resolve()
            if not (member.isfile() or member.isdir()) or root not in (target, *target.parents):
                raise ValueError(f"refusing archive member {member.name!r}")
        archive.extractall(folder)


@lru_cache(maxsize=1)
def _isolation() -> Isolation:
    return detect_isolation()


def describe() -> dict[str, Any]:
    """What this worker offers: the protocol, Python, platform and sandbox isolation."""
    isolation = _isolation()
    return {"protocol": PROTOCOL, "python": platform.python_version(), "platform": sys.platform,
            "host": platform.node(), "isolation": isolation.describe(),
            "namespaces": isolation.namespaces, "cgroup": isolation.cgroup}


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        import psutil
    except ImportError:  # pragma: no cover - psutil comes with distributed
        return True
    try:
        # killed, not yet reaped: gone
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:
        return True


def sweep_abandoned(tmp: Path | None = None) -> list[Path]:
    """Remove the temporary folders of grading workers that no longer run; return them."""
    removed: list[Path] = []
    root = Path(tmp or tempfile.gettempdir())
    for path in root.glob(f"{_PREFIX}*-*"):
        pid_text = path.name[len(_PREFIX):].split("-", 1)[0]
        if pid_text.isdigit() and not _pid_alive(int(pid_text)):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def grade_submission(request: dict[str, Any]) -> dict[str, Any]:
    """Run one submission's notebooks in the sandbox; see the module docstring."""
    started = time.monotonic()
    if request.get("protocol") != PROTOCOL:
        raise RuntimeError(f"this worker speaks grading protocol {PROTOCOL}, the coordinator "
                           f"{request.get('protocol')}: install the same course version on both")
    sweep_abandoned()
    given = request.get("isolation")
    isolation = Isolation(given["namespaces"], given["cgroup"], tuple(given["cgroup_parents"])) \
        if given else _isolation()
    settings = RunSettings(
        cell_timeout=int(request["cell_timeout"]), budget=float(request["budget"]),
        limits=Limits(memory_mb=request["memory_mb"], max_processes=int(request["max_processes"])),
        isolation=isolation, ignore=list(request["ignore"]))
    notebooks = {name: nbio.reads(text) for name, text in request["notebooks"].items()}
    job = SubmissionJob(request["assignment"], request["student"], notebooks,
                        {name: list(names) for name, names in request["student_names"].items()})
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in job.student)[:40]
    work_root = Path(tempfile.mkdtemp(prefix=f"{_PREFIX}{os.getpid()}-{safe}-"))
    try:
        workdir = work_root / job.assignment
        unpack_folder(request["files"], workdir)
        built = work_root / "autograded"
        hints, notes = run_staged(settings, job, workdir, built)
        return {"notebooks": {name: nbio.writes(nb) for name, nb in job.notebooks.items()},
                "hints": hints, "notes": notes, "files": pack_folder(built),
                "worker": f"{platform.node()}:{os.getpid()}", "seconds": time.monotonic() - started}
    finally:
        shutil.rmtree(work_root, ignore_errors=True)
