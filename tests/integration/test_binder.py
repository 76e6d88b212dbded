"""Binder: binder/ is what repo2docker needs, and the README's badge opens chapter 0.

repo2docker's `--no-build` mode writes the Dockerfile it would build without Docker or a
network, so the first test reads that. The others check the files themselves: the conda
environment, the postBuild and start scripts, the README badge, and that the conda
environment.yml for learners asks for what pyproject.toml asks for.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
import tomllib
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from ..conftest import REPO

BINDER = REPO / "binder"
BIN = Path(sys.executable).parent
CHAPTER0 = "notebooks/ch00_introduction/01_concurrency_and_parallelism.ipynb"
BADGE_IMAGE = "https://mybinder.org/badge_logo.svg"
BADGE = re.compile(r"\[!\[[^\]]*\]\((?P<image>[^)\s]+)\)\]\((?P<link>https://mybinder\.org/[^)\s]+)\)")


def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def _makefile_extras() -> set[str]:
    match = re.search(r"^COURSE_EXTRAS \?= *(\S+)", (REPO / "Makefile").read_text(), re.M)
    assert match, "Makefile: no `COURSE_EXTRAS ?= ...` line"
    return set(match.group(1).split(","))


def _conda_deps(path: Path) -> tuple[dict[str, str], list[str]]:
    """{name: version spec} of a conda environment file, and its pip entries."""
    env = yaml.safe_load(path.read_text())
    assert isinstance(env, dict) and isinstance(env.get("dependencies"), list), \
        f"{path.relative_to(REPO)}: expected a mapping with a `dependencies` list"
    conda: dict[str, str] = {}
    pip: list[str] = []
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            assert set(dep) == {"pip"}, f"{path.relative_to(REPO)}: unexpected entry {dep}"
            pip.extend(dep["pip"])
            continue
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)\s*(.*)", str(dep).strip())
        assert match, f"{path.relative_to(REPO)}: cannot read dependency {dep!r}"
        conda[canonicalize_name(match.group(1))] = match.group(2).replace(" ", "")
    return conda, pip


def _same_spec(conda: str, pip: SpecifierSet) -> bool:
    try:
        return SpecifierSet(conda) == pip
    except InvalidSpecifier:
        return False


def _editable_extras(line: str) -> set[str] | None:
    """The extras of a `-e ".[a,b]"` / `-e .[a,b]` pip line; None if it is not one."""
    match = re.fullmatch(r"""-e\s+["']?\.(?:\[([^\]]*)\])?["']?""", line.strip())
    if not match:
        return None
    return {e.strip() for e in (match.group(1) or "").split(",") if e.strip()}


def _expanded(extras: set[str]) -> set[str]:
    """Extras plus the ones they pull in (`cuda` -> `gpu`)."""
    own = canonicalize_name(_pyproject()["project"]["name"])
    optional = _pyproject()["project"]["optional-dependencies"]
    todo, seen = list(extras), set()
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        assert extra in optional, f"no extra {extra!r} in pyproject.toml"
        seen.add(extra)
        for req in map(Requirement, optional[extra]):
            if canonicalize_name(req.name) == own:
                todo.extend(req.extras)
    return seen


def _requirements(extras: set[str]) -> list[Requirement]:
    project = _pyproject()["project"]
    own = canonicalize_name(project["name"])
    reqs = [Requirement(r) for r in project["dependencies"]]
    for extra in sorted(_expanded(extras)):
        reqs += [r for r in map(Requirement, project["optional-dependencies"][extra])
                 if canonicalize_name(r.name) != own]
    return reqs


# --- repo2docker ---------------------------------------------------------------------------

def test_repo2docker_reads_the_binder_folder() -> None:
    r2d = shutil.which("jupyter-repo2docker", path=str(BIN)) or shutil.which("jupyter-repo2docker")
    if r2d is None:
        message = ("jupyter-repo2docker is not installed: `.venv/bin/pip install "
                   "jupyter-repo2docker` (its --no-build mode needs neither Docker nor a network)")
        if os.environ.get("CI"):
            pytest.fail(f"CI is set, so the repo2docker check must run; {message}")
        pytest.skip(message)
    done = subprocess.run([r2d, "--no-build", "--debug", str(REPO)], capture_output=True,
                          text=True, timeout=120)
    out = done.stdout + done.stderr
    assert done.returncode == 0, f"repo2docker --no-build failed:\n{out[-3000:]}"
    # binder/ wins over the top-level environment.yml, and every file in it is used.
    assert 'env update -p ${NB_PYTHON_PREFIX} --file "binder/environment.yml"' in out, out[-3000:]
    assert "src/environment.yml" not in out, "repo2docker used the top-level environment.yml"
    assert "RUN ./binder/postBuild" in out, "repo2docker does not run binder/postBuild"
    assert 'R2D_ENTRYPOINT="${REPO_DIR}/binder/start"' in out, "binder/start is not the entrypoint"
    python = re.search(r"Building conda environment for python=(\d+\.\d+)", out)
    assert python, "repo2docker did not pick a Python version from binder/environment.yml"
    requires = SpecifierSet(_pyproject()["project"]["requires-python"])
    assert Version(python.group(1)) in requires, \
        f"Binder's Python {python.group(1)} does not satisfy requires-python {requires}"


# --- the files themselves ------------------------------------------------------------------

def test_binder_environment_is_python_and_pip() -> None:
    conda, pip = _conda_deps(BINDER / "environment.yml")
    assert "pip" in conda, "binder/environment.yml needs pip (postBuild pip-installs the course)"
    version = re.fullmatch(r"=*(\d+\.\d+)(\.\*)?", conda.get("python", ""))
    assert version, f"binder/environment.yml should pin python=3.X, not {conda.get('python')!r}"
    requires = SpecifierSet(_pyproject()["project"]["requires-python"])
    assert Version(version.group(1)) in requires, \
        f"Binder's python={version.group(1)} does not satisfy requires-python {requires}"
    # The course itself comes from postBuild (one source of truth: pyproject.toml).
    assert not pip, "binder/environment.yml: install the course in postBuild, not in pip:"


@pytest.mark.parametrize("name", ["postBuild", "start", "configure-jupyter.sh"])
def test_binder_scripts_are_executable_bash(name: str) -> None:
    path = BINDER / name
    text = path.read_text()
    assert text.startswith("#!/usr/bin/env bash\n"), (
        f"binder/{name}: start with #!/usr/bin/env bash")
    assert path.stat().st_mode & stat.S_IXUSR, f"binder/{name} is not executable: chmod +x"
    listed = subprocess.run(["git", "ls-files", "-s", f"binder/{name}"], cwd=REPO,
                            capture_output=True, text=True, timeout=30)
    if listed.returncode == 0 and listed.stdout:
        assert listed.stdout.startswith("100755"), \
            f"binder/{name} is not executable in git: git update-index --chmod=+x binder/{name}"
    syntax = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True, timeout=30)
    assert syntax.returncode == 0, f"binder/{name}: bash syntax error: {syntax.stderr}"


def test_postbuild_installs_what_make_lab_installs() -> None:
    text = (BINDER / "postBuild").read_text()
    assert re.search(r"^set -euo pipefail$", text, re.M), "postBuild must stop at the first error"
    install = re.search(r"pip install[^\n]*?-e\s+(\S+)", text)
    assert install, "postBuild does not pip-install the course (-e .[...])"
    extras = _editable_extras(f"-e {install.group(1)}")
    assert extras is not None, f"postBuild installs {install.group(1)!r}, not the repository"
    assert extras == _makefile_extras(), \
        f"postBuild installs extras {sorted(extras)}, `make lab` {sorted(_makefile_extras())}"
    assert "binder/configure-jupyter.sh" in text, \
        "postBuild must run binder/configure-jupyter.sh (Validate button, assignment list)"


def test_start_hands_over_to_binders_command() -> None:
    lines = [ln.strip() for ln in (BINDER / "start").read_text().splitlines()
             if ln.strip() and not ln.lstrip().startswith("#")]
    assert lines and lines[-1] == 'exec "$@"', 'binder/start must end with exec "$@"'


def test_start_runs_the_given_command(tmp_path: Path) -> None:
    done = subprocess.run([str(BINDER / "start"), sys.executable, "-c",
                           "import os; print(os.environ['PYDEVD_DISABLE_FILE_VALIDATION'])"],
                          capture_output=True, text=True, timeout=30, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1"
    failing = subprocess.run([str(BINDER / "start"), "bash", "-c", "exit 7"], timeout=30)
    assert failing.returncode == 7, "binder/start must pass on the command's exit status"


# --- the learners' conda environment.yml matches pyproject.toml ----------------------------

def test_conda_environment_matches_pyproject() -> None:
    conda, pip = _conda_deps(REPO / "environment.yml")
    requires = _pyproject()["project"]["requires-python"].replace(" ", "")
    assert conda.get("python") == requires, \
        f"environment.yml: python{conda.get('python')} but requires-python is {requires}"
    via_pip: set[str] = set()  # names that the pip `-e ".[extras]"` line installs
    for line in pip:
        extras = _editable_extras(line)
        if extras is not None:
            via_pip |= {canonicalize_name(r.name) for r in _requirements(extras)}
    missing, different = [], []
    for req in _requirements(_makefile_extras()):
        name = canonicalize_name(req.name)
        if name in conda:
            if not _same_spec(conda[name], req.specifier):
                different.append(f"{name}: conda {conda[name]!r}, pyproject {str(req.specifier)!r}")
        elif name not in via_pip:
            missing.append(str(req))
    assert not missing, ("environment.yml lacks requirements that `make lab` installs "
                         f"(add them, or the extra, to its pip `-e` line): {missing}")
    assert not different, f"environment.yml and pyproject.toml disagree: {different}"


# --- README badge ----------------------------------------------------------------------------

def _github_repo() -> str | None:
    """owner/name from the git remote or pyproject's URLs; None when neither names one."""
    urls = list(_pyproject()["project"].get("urls", {}).values())
    remote = subprocess.run(["git", "remote", "-v"], cwd=REPO, capture_output=True, text=True,
                            timeout=30)
    urls += remote.stdout.split() if remote.returncode == 0 else []
    for url in urls:
        match = re.search(r"github\.com[:/]([\w.-]+)/([\w.-]+?)(?:\.git)?/?$", url)
        if match:
            return f"{match.group(1)}/{match.group(2)}"
    return None


def test_readme_binder_badge_opens_chapter_0() -> None:
    readme = (REPO / "README.md").read_text()
    badges = list(BADGE.finditer(readme))
    assert badges, ("README.md has no Binder badge; add "
                    f"[![Binder]({BADGE_IMAGE})](https://mybinder.org/v2/gh/OWNER/REPO/HEAD"
                    f"?urlpath=lab/tree/{CHAPTER0})")
    badge = badges[0]
    assert badge.group("image") == BADGE_IMAGE, f"badge image {badge.group('image')!r}"
    link = urlsplit(badge.group("link"))
    parts = link.path.split("/")
    assert parts[:4] == ["", "v2", "gh", parts[3]] and len(parts) == 6, \
        f"expected https://mybinder.org/v2/gh/OWNER/REPO/REF, got {badge.group('link')!r}"
    owner, name, ref = parts[3], parts[4], parts[5]
    assert owner and name and ref == "HEAD", f"owner {owner!r}, repo {name!r}, ref {ref!r}"
    assert owner.upper() != "OWNER", "README's Binder badge still has the OWNER placeholder"
    expected = _github_repo()
    if expected is not None:
        assert f"{owner}/{name}".lower() == expected.lower(), \
            f"the badge opens {owner}/{name}, the repository is {expected}"
    urlpath = parse_qs(link.query).get("urlpath", [""])[0]
    assert urlpath == f"lab/tree/{CHAPTER0}", \
        f"the badge should open lab/tree/{CHAPTER0}, it opens {urlpath!r}"
    assert (REPO / CHAPTER0).is_file(), f"{CHAPTER0} does not exist"
