"""SCOOP for chapter 6: :func:`run_scoop` runs a program as ``python -m scoop`` with a
time limit, and stops the launcher and its workers if it runs over."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from course_lib.distributed.config import check_positive, require
from course_lib.distributed.servers import stop_tree

# The folder holding course_lib, put on the workers' path so that they import this copy.
_PROJECT_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class ScoopRun:
    """The outcome of :func:`run_scoop`."""

    returncode: int
    stdout: str
    stderr: str
    timed_out: bool


# SCOOP 0.7's worker bootstrap loads the program with importlib's load_module(), which
# warns on Python 3.12 to 3.14 (silenced: PYTHONWARNINGS=ignore) and is gone in 3.15. This
# sitecustomize, on the launcher's and the workers' path, puts back an equivalent built on
# exec_module() where it is missing. (SCOOP's TCP backend imports asyncore, gone since
# 3.12: run_scoop keeps SCOOP's default ZeroMQ backend, which does not.)
SCOOP_SITECUSTOMIZE = """
import importlib.machinery, importlib.util, sys
if not hasattr(importlib.machinery.SourceFileLoader, "load_module"):
    def _load_module(self, fullname=None):
        name = fullname or self.name
        spec = importlib.util.spec_from_file_location(name, self.path, loader=self)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        self.exec_module(module)
        return module
    importlib.machinery.SourceFileLoader.load_module = _load_module
"""


def run_scoop(program: str | os.PathLike[str], n: int = 2, *, timeout: float = 60.0,
              args: Sequence[str] = ()) -> ScoopRun:
    """Run a SCOOP program as ``python -m scoop -n N program`` with a time limit.

    ``program`` is a ``.py`` path or the source text. On timeout the whole
    process group (launcher and workers) is killed.
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n must be a positive number of workers, got {n!r}")
    check_positive("timeout", timeout)
    require("scoop")
    with tempfile.TemporaryDirectory(prefix="course-scoop-") as folder:
        path = Path(str(program))
        if not (str(program).endswith(".py") and path.is_file()):
            path = Path(folder) / "scoop_program.py"
            path.write_text(str(program), encoding="utf-8")
        (Path(folder) / "tmp").mkdir()
        shim = Path(folder) / "shim"
        shim.mkdir()
        (shim / "sitecustomize.py").write_text(SCOOP_SITECUSTOMIZE, encoding="utf-8")
        env = dict(os.environ, TMPDIR=str(Path(folder) / "tmp"), PYTHONWARNINGS="ignore",
                   PYTHONPATH=os.pathsep.join([str(_PROJECT_ROOT),
                                               str(shim), os.environ.get("PYTHONPATH", "")]))
        proc = subprocess.Popen([sys.executable, "-m", "scoop", "-n", str(n),
                                 str(path), *args], cwd=folder, env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True)
        try:
            out, err = proc.communicate(timeout=timeout)
            return ScoopRun(proc.returncode, out, err, False)
        except subprocess.TimeoutExpired:
            stop_tree(proc, grace=1.0)
            out, err = proc.communicate()
            return ScoopRun(proc.returncode, out, err, True)
