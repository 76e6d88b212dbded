"""The course installs from wheels on every platform it supports.

For Windows x64, macOS (Apple silicon and Intel) and Linux (x86_64 and aarch64), and for
CPython 3.11 and 3.13, uv resolves the default install (`make lab`'s extras) and the `cuda`
install as pip would on that machine, wheels only: no compiler is needed anywhere. A
failure names the package that has no wheel there. Only the pure-Python sdists listed in
`PURE_PYTHON_SDISTS` are built (here, once, into `py3-none-any` wheels: no compiler).

The conda `environment.yml` is checked against a list, kept here, of the conda-forge packages
that exist for linux-64, osx-arm64 and win-64 (conda-forge's channel data cannot be fetched
from the test machines).

`python -m tests.integration.test_resolution` prints the whole matrix.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pytest
import yaml
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]

# Where the course is meant to install: name -> uv's --python-platform.
PLATFORMS = {
    "windows-x86_64": "x86_64-pc-windows-msvc",
    "macos-arm64": "aarch64-apple-darwin",
    "macos-x86_64": "x86_64-apple-darwin",
    "linux-x86_64": "x86_64-manylinux_2_28",
    "linux-aarch64": "aarch64-manylinux_2_28",
}
PYTHONS = ("3.11", "3.13")
# Packages that publish only an sdist, checked to be pure Python (no compiler needed).
PURE_PYTHON_SDISTS = {
    "pycsp": "0.9.2 is an sdist only; its setup.py lists packages, no extension module",
    "scoop": "0.7.2.0 is an sdist only; pure Python (its compiled parts are pyzmq, greenlet)",
}
RESOLVE_TIMEOUT = 600.0


def _makefile_extras() -> list[str]:
    match = re.search(r"^COURSE_EXTRAS \?= *(\S+)", (REPO / "Makefile").read_text(), re.M)
    assert match, "Makefile: no `COURSE_EXTRAS ?= ...` line"
    return match.group(1).split(",")


def installs() -> dict[str, list[str]]:
    """The installs the course documents: what `make lab` installs, and that plus `cuda`."""
    default = _makefile_extras()
    return {"default": default, "cuda": [*default, "cuda"]}


@cache
def uv_program() -> str | None:
    """The uv next to this Python (the `dev` extra installs it), else on PATH."""
    here = Path(sys.executable).parent
    for name in ("uv", "uv.exe"):
        if (here / name).is_file():
            return str(here / name)
    return shutil.which("uv")


@dataclass
class Resolution:
    """One cell of the matrix: the pinned packages, or the package without a wheel."""

    platform: str
    python: str
    install: str
    packages: dict[str, str] = field(default_factory=dict)
    failing: str | None = None
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.failing is None

    def summary(self) -> str:
        if self.ok:
            return f"ok ({len(self.packages)} packages)"
        return f"FAILS: {self.failing}"


_NO_WHEEL = [
    re.compile(r"Wheels are (?:available|required) for `([A-Za-z0-9_.\-]+)`"),
    re.compile(r"([A-Za-z0-9_.\-]+)(?:[<>=!~][^\s,]*)?\s+(?:has|have) no (?:usable )?wheels"),
    re.compile(r"all versions of ([A-Za-z0-9_.\-]+) have no"),
]


def failing_package(message: str) -> str:
    """The package that uv's error blames (the one without a usable wheel), or its first line."""
    for pattern in _NO_WHEEL:
        found = pattern.search(message)
        if found:
            return canonicalize_name(found.group(1))
    lines = [ln.strip() for ln in message.splitlines() if ln.strip()]
    return lines[0] if lines else "uv failed without a message"


def _pins(text: str) -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        match = re.match(r"([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?==(\S+)", line)
        if match:
            pins[canonicalize_name(match.group(1))] = match.group(2).split(";")[0]
    return pins


@cache
def pure_python_wheels() -> Path:
    """Wheels built here from the sdists in ``PURE_PYTHON_SDISTS``; each must be ``py3-none-any``.

    uv cannot say "wheels only, except these packages", so the resolution finds these
    wheels (valid on every platform) through ``--find-links`` instead.
    """
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="course-pure-wheels-"))
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                           "--no-binary", ":all:", "--index-url", "https://pypi.org/simple",
                           "--wheel-dir", str(folder), *PURE_PYTHON_SDISTS],
                          capture_output=True, text=True, timeout=RESOLVE_TIMEOUT,
                          stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise RuntimeError(f"could not build the pure-Python sdists: {done.stderr.strip()[-800:]}")
    for wheel in folder.glob("*.whl"):
        assert wheel.name.endswith("-py3-none-any.whl") or wheel.name.endswith(
            "-py2.py3-none-any.whl"), f"{wheel.name} is not a pure-Python wheel: drop it from " \
            "PURE_PYTHON_SDISTS and give it a platform marker"
    return folder


def resolve(platform: str, python: str, install: str, uv: str | None = None) -> Resolution:
    """Resolve ``install`` for ``platform`` and ``python`` from wheels only."""
    uv = uv or uv_program()
    assert uv is not None, "uv is not installed: pip install uv (the dev extra has it)"
    command = [uv, "pip", "compile", str(REPO / "pyproject.toml"), "--quiet", "--no-header",
               "--no-annotate", "--no-config", "--python-platform", PLATFORMS[platform],
               "--python-version", python, "--only-binary", ":all:",
               # pip installs no pre-release unless told to (uv would, when it is the only wheel)
               "--prerelease", "disallow",
               "--find-links", str(pure_python_wheels())]
    for extra in installs()[install]:
        command += ["--extra", extra]
    done = subprocess.run(command, capture_output=True, text=True, timeout=RESOLVE_TIMEOUT,
                          cwd=REPO, env=dict(os.environ, UV_NO_PROGRESS="1"),
                          stdin=subprocess.DEVNULL)
    result = Resolution(platform, python, install)
    if done.returncode == 0:
        result.packages = _pins(done.stdout)
    else:
        result.failing, result.message = failing_package(done.stderr), done.stderr.strip()
    return result


def resolve_matrix(workers: int = 4) -> list[Resolution]:
    """Every platform x Python x install, resolved in parallel threads (uv does the work)."""
    cells = [(p, v, i) for p in PLATFORMS for v in PYTHONS for i in installs()]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda cell: resolve(*cell), cells))


def matrix_table(results: list[Resolution]) -> str:
    """A Markdown table: one row per platform and Python, one column per install."""
    names = list(installs())
    lines = ["| platform | python | " + " | ".join(names) + " |",
             "| --- | --- | " + " | ".join("---" for _ in names) + " |"]
    by_cell = {(r.platform, r.python, r.install): r for r in results}
    for platform in PLATFORMS:
        for python in PYTHONS:
            row = [by_cell[(platform, python, n)].summary() for n in names]
            lines.append(f"| {platform} | {python} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def _uv_or_skip() -> str:
    uv = uv_program()
    if uv is None:
        message = "uv is not installed: pip install -e '.[dev]' (or pip install uv)"
        if os.environ.get("CI"):
            pytest.fail(f"CI is set, so the resolution test must run; {message}")
        pytest.skip(message)
    return uv


@pytest.fixture(scope="module")
def matrix() -> list[Resolution]:
    _uv_or_skip()
    try:
        pure_python_wheels()
    except RuntimeError as error:  # most often: PyPI cannot be reached
        if os.environ.get("CI"):
            pytest.fail(str(error))
        pytest.skip(str(error))
    results = resolve_matrix()
    if all(not r.ok and ("Failed to fetch" in r.message or "dns error" in r.message.lower()
                         or "network" in r.message.lower()) for r in results):
        message = f"PyPI cannot be reached: {results[0].message.splitlines()[0]}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return results


@pytest.mark.parametrize("install", ["default", "cuda"])
@pytest.mark.parametrize("python", PYTHONS)
@pytest.mark.parametrize("platform", list(PLATFORMS))
def test_install_resolves_from_wheels(matrix: list[Resolution], platform: str, python: str,
                                      install: str) -> None:
    result = next(r for r in matrix
                  if (r.platform, r.python, r.install) == (platform, python, install))
    assert result.ok, (f"`pip install -e .[{','.join(installs()[install])}]` on {platform}, "
                       f"Python {python}: {result.failing} has no wheel there. Add a platform "
                       f"marker in pyproject.toml.\n{result.message[-2000:]}")
    # What the course needs on every platform is there.
    for needed in ("mpi4py", "numba", "pyopencl", "nbgrader", "jupyterlab"):
        assert needed in result.packages, f"{needed} is missing on {platform}, Python {python}"


def test_platform_specific_choices(matrix: list[Resolution]) -> None:
    """MPICH where it has wheels and impi-rt on Windows; PoCL and CUDA only where they exist."""
    cells = {(r.platform, r.python, r.install): r.packages for r in matrix if r.ok}
    for platform in PLATFORMS:
        default = cells.get((platform, "3.11", "default"))
        cuda = cells.get((platform, "3.11", "cuda"))
        if default is None or cuda is None:
            continue  # reported by test_install_resolves_from_wheels
        windows, mac = platform.startswith("windows"), platform.startswith("macos")
        assert ("impi-rt" in default) == windows, f"{platform}: impi-rt only on Windows"
        assert ("mpich" in default) == (not windows), f"{platform}: mpich off Windows"
        assert ("pocl-binary-distribution" in default) == (platform == "linux-x86_64"), platform
        assert "cupy-cuda12x" not in default, f"{platform}: CuPy belongs to the cuda extra"
        assert ("cupy-cuda12x" in cuda) == (not mac), f"{platform}: CuPy wherever it has wheels"
        # numba-cuda[cu12] brings the CUDA bindings and NVVM on a machine with only a driver.
        assert ("cuda-bindings" in cuda) == (not mac), f"{platform}: cuda-bindings via [cu12]"
        for tool in ("py-spy", "viztracer", "hypothesis", "pytest-timeout"):
            assert tool in default, f"{platform}: the debug extra's {tool} is missing"


def test_failing_package_is_named() -> None:
    """The message parser finds the blamed package in uv's real wording."""
    mpich = ("  cause: Because mpich>=4.2.3 has no wheels with a matching platform tag (e.g., "
             "`win_amd64`) and only the following versions of mpich are available:\n\n"
             "hint: Wheels are available for `mpich` (v5.0.2) on the following platforms: "
             "`manylinux_2_28_aarch64`")
    assert failing_package(mpich) == "mpich"
    pycsp = ("  cause: Because pycsp>=0.9.0 has no usable wheels and parallel-python-course "
             "depends on pycsp>=0.9, we can conclude that your requirements are unsatisfiable.")
    assert failing_package(pycsp) == "pycsp"
    assert failing_package("error: something else\nmore") == "error: something else"


# --- conda ---------------------------------------------------------------------------------

# conda-forge packages known to exist for each subdir (checked on anaconda.org by hand,
# 2026-12: numba, psutil, numpy, matplotlib have native builds for all three; the Jupyter
# packages are noarch). conda-forge has NO mpich for win-64 (only msmpi and impi_rt),
# which is why environment.yml gets MPI from pip's `mpi` extra (MPICH or impi-rt wheels).
CONDA_FORGE: dict[str, set[str]] = {
    "noarch": {"jupyterlab", "notebook", "nbgrader", "nbclient", "nbformat", "ipykernel",
               "ipywidgets", "ipyparallel", "tqdm", "pip"},
    "linux-64": {"python", "numpy", "matplotlib", "psutil", "numba", "mpich", "mpi4py",
                 "pocl"},
    "osx-arm64": {"python", "numpy", "matplotlib", "psutil", "numba", "mpich", "mpi4py",
                  "pocl"},
    "win-64": {"python", "numpy", "matplotlib", "psutil", "numba", "mpi4py", "msmpi",
               "impi_rt"},
}
CONDA_SUBDIRS = ("linux-64", "osx-arm64", "win-64")


def _environment() -> tuple[list[str], list[str]]:
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    conda: list[str] = []
    pip: list[str] = []
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            pip.extend(dep.get("pip", []))
        else:
            name = re.match(r"[A-Za-z0-9_.\-]+", str(dep).strip())
            assert name, f"environment.yml: cannot read {dep!r}"
            conda.append(name.group(0).lower())
    return conda, pip


@pytest.mark.parametrize("subdir", CONDA_SUBDIRS)
def test_conda_packages_exist(subdir: str) -> None:
    conda, _ = _environment()
    available = CONDA_FORGE["noarch"] | CONDA_FORGE[subdir]
    missing = [name for name in conda if name not in available]
    assert not missing, (f"environment.yml asks conda-forge for {missing}, which it has not for "
                         f"{subdir}: get them from the pip section's extras instead")


def test_conda_pip_section_installs_the_course_from_wheels() -> None:
    _, pip = _environment()
    assert "--prefer-binary" in pip, "environment.yml's pip section: add --prefer-binary"
    editable = [line for line in pip if line.startswith("-e")]
    assert editable, "environment.yml's pip section does not install the course (-e .[...])"
    extras = set(re.findall(r"\[([^\]]*)\]", editable[0])[0].split(","))
    conda, _ = _environment()
    assert "mpi" in extras or "mpich" in conda, "environment.yml: MPI comes from neither side"
    assert set(_makefile_extras()) <= extras | {"mpi"} and "mpi" in extras, \
        f"environment.yml's pip extras {sorted(extras)} should cover make lab's"


if __name__ == "__main__":
    import time

    began = time.perf_counter()
    table = resolve_matrix()
    print(matrix_table(table))
    for cell in table:
        if not cell.ok:
            print(f"\n{cell.platform} {cell.python} {cell.install}:\n{cell.message[-1500:]}")
    print(f"\n{len(table)} resolutions in {time.perf_counter() - began:.0f} s")
