"""Set up and open the course on any operating system: ``python -m course_lib setup|lab``.

``setup`` creates the project's virtual environment (``.venv``), installs the course
into it (``pip install --prefer-binary -e ".[EXTRAS]"``, wheels wherever a release has
them) and configures JupyterLab for learners. ``lab`` opens JupyterLab on ``notebooks/``.
Only the standard library is used here: it runs with the Python that creates ``.venv``,
on Windows (``py -m course_lib setup``) as on Linux and macOS (``python3 -m ...``).

The Jupyter configuration (nbgrader's assignment list and Validate button on, the
instructor tools off, no news or update pop-ups) is :func:`configure_jupyter`; ``make lab``,
Binder's ``postBuild`` and ``binder/configure-jupyter.sh`` use it too.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import subprocess
import sys
import venv
from collections.abc import Callable, Sequence
from pathlib import Path

__all__ = [
    "DEFAULT_EXTRAS",
    "REPO",
    "SetupError",
    "configure_jupyter",
    "jupyter_plan",
    "install",
    "lab_command",
    "main",
    "scripts_dir",
    "setup",
    "venv_python",
]

REPO = Path(__file__).resolve().parent.parent
DEFAULT_EXTRAS = ("mpi", "distributed", "gpu", "debug")
MIN_PYTHON = (3, 11)
STAMP = ".course-setup.json"

_LEARNER_SERVER_EXTENSIONS = ("nbgrader.server_extensions.assignment_list",
                              "nbgrader.server_extensions.validate_assignment")
_LEARNER_LAB_PLUGINS = ("@jupyter/nbgrader:assignment-list",
                        "@jupyter/nbgrader:validate-assignment", "@jupyter/nbgrader:menu")
_INSTRUCTOR_LAB_PLUGINS = ("@jupyter/nbgrader:formgrader",
                           "@jupyter/nbgrader:create-assignment", "@jupyter/nbgrader:course-list")
_OVERRIDES = {"@jupyterlab/apputils-extension:notification": {"checkForUpdates": False,
                                                              "fetchNews": "false"}}

Runner = Callable[[Sequence[str]], int]


class SetupError(RuntimeError):
    """Setting up failed; the message says what to do."""


def _windows(platform: str | None = None) -> bool:
    return (platform or sys.platform) == "win32"


def scripts_dir(venv_dir: Path, platform: str | None = None) -> Path:
    """Where a virtual environment keeps its programs: ``Scripts`` on Windows, else ``bin``."""
    return Path(venv_dir) / ("Scripts" if _windows(platform) else "bin")


def venv_python(venv_dir: Path, platform: str | None = None) -> Path:
    """The Python of a virtual environment (``Scripts\\python.exe`` or ``bin/python``)."""
    return scripts_dir(venv_dir, platform) / ("python.exe" if _windows(platform) else "python")


def _program(venv_dir: Path, name: str) -> Path:
    folder = scripts_dir(venv_dir)
    exe = folder / f"{name}.exe"
    return exe if exe.exists() else folder / name


def _run(command: Sequence[str], *, quiet: bool = False, cwd: Path | None = None,
         env: dict[str, str] | None = None) -> int:
    """Run a command and return its exit status (its output shows unless ``quiet``)."""
    out = subprocess.DEVNULL if quiet else None
    return subprocess.run(list(command), cwd=cwd, env=env, stdout=out, stderr=out,
                          stdin=subprocess.DEVNULL).returncode


def _check_python(version: tuple[int, ...] = tuple(sys.version_info[:2])) -> None:
    if version < MIN_PYTHON:
        found = ".".join(map(str, version))
        raise SetupError(f"Python 3.11 or newer is needed, this is {found}: run setup with a newer "
                         "one (Windows: py -3.13 -m course_lib setup; elsewhere: python3.13 -m "
                         "course_lib setup)")


def _parse_extras(extras: str | Sequence[str]) -> list[str]:
    items = extras.split(",") if isinstance(extras, str) else list(extras)
    names = [item.strip() for item in items if item.strip()]
    for name in names:
        if not name.replace("-", "").replace("_", "").isalnum():
            raise SetupError(f"extra {name!r} is not a name: give a comma-separated list such as "
                             f"{','.join(DEFAULT_EXTRAS)}")
    return names


def _stamp_data(extras: Sequence[str], root: Path) -> dict[str, str]:
    digest = hashlib.sha256((root / "pyproject.toml").read_bytes()).hexdigest()
    return {"extras": ",".join(sorted(extras)), "pyproject": digest}


def install(venv_dir: Path, extras: Sequence[str], *, root: Path = REPO, force: bool = False,
            quiet: bool = False, runner: Runner | None = None) -> bool:
    """``pip install --prefer-binary -e ROOT[EXTRAS]`` into ``venv_dir``; False if up to date.

    A stamp file in the environment remembers the extras and pyproject.toml it was
    installed from, so running setup again installs only after either changed.
    """
    stamp = Path(venv_dir) / STAMP
    wanted = _stamp_data(extras, root)
    if not force and stamp.is_file():
        try:
            if json.loads(stamp.read_text(encoding="utf-8")) == wanted:
                return False
        except (OSError, ValueError):
            pass
    run = runner or (lambda cmd: _run(cmd, quiet=False))
    python = str(venv_python(venv_dir))
    target = f"{root}[{','.join(extras)}]" if extras else str(root)
    command = [python, "-m", "pip", "install", "--prefer-binary", "-e", target]
    if quiet:
        command.insert(4, "--quiet")
    if run(command) != 0:
        raise SetupError(f"pip could not install the course ({' '.join(command)}). Read pip's "
                         "message above; a package that needs a compiler usually means no wheel "
                         "for this platform: tell the course maintainers which one")
    stamp.write_text(json.dumps(wanted), encoding="utf-8")
    return True


# Run by the environment's own Python, in one process (each `jupyter ...` command would
# start a Python of its own: a minute or more on a busy laptop).
_CONFIGURE_CODE = r"""
import json, sys
plan = json.loads(sys.argv[1])
from jupyter_server.extension.serverextension import toggle_server_extension_python
from jupyterlab.commands import disable_extension, enable_extension
for name in plan["server_enable"]:
    toggle_server_extension_python(name, enabled=True, sys_prefix=True)
for name in plan["lab_enable"]:
    enable_extension(name, level="sys_prefix")
for name in plan["lab_disable"]:
    disable_extension(name, level="sys_prefix")
print(json.dumps({"prefix": sys.prefix}))
"""


def jupyter_plan(instructor: bool = False) -> dict[str, list[str]]:
    """What :func:`configure_jupyter` turns on and off."""
    return {"server_enable": list(_LEARNER_SERVER_EXTENSIONS),
            "lab_enable": [*_LEARNER_LAB_PLUGINS, *(_INSTRUCTOR_LAB_PLUGINS if instructor else ())],
            "lab_disable": [] if instructor else list(_INSTRUCTOR_LAB_PLUGINS)}


def _configure_in_child(command: Sequence[str]) -> tuple[int, str, str]:
    done = subprocess.run(list(command), capture_output=True, text=True,
                          stdin=subprocess.DEVNULL)
    return done.returncode, done.stdout, done.stderr


def configure_jupyter(python: Path | str = sys.executable, *, instructor: bool = False,
                      runner: Callable[[Sequence[str]], tuple[int, str, str]] | None = None
                      ) -> Path:
    """Turn nbgrader's learner tools on (instructor tools off unless ``instructor``) and quiet
    JupyterLab's news, in the environment of ``python``; returns the overrides file written.

    ``runner`` runs the child command and returns (exit code, stdout, stderr) (tests).
    """
    run = runner or _configure_in_child
    command = [str(python), "-c", _CONFIGURE_CODE, json.dumps(jupyter_plan(instructor))]
    code, out, err = run(command)
    prefix = None
    for line in reversed(out.splitlines()):
        with contextlib.suppress(ValueError, TypeError, KeyError):
            prefix = Path(json.loads(line)["prefix"])
            break
    if code != 0 or prefix is None:
        last = (err.strip().splitlines() or ["no message"])[-1]
        raise SetupError(f"could not configure Jupyter with {python} ({last}): is the course "
                         "installed there? run: python -m course_lib setup")
    settings = prefix / "share" / "jupyter" / "lab" / "settings"
    settings.mkdir(parents=True, exist_ok=True)
    overrides = settings / "overrides.json"
    overrides.write_text(json.dumps(_OVERRIDES, indent=2) + "\n", encoding="utf-8")
    return overrides


def setup(venv_dir: Path = REPO / ".venv", extras: Sequence[str] = DEFAULT_EXTRAS, *,
          root: Path = REPO, force: bool = False, quiet: bool = False,
          instructor: bool = False) -> Path:
    """Create ``venv_dir`` (if needed), install the course, configure Jupyter; return its Python."""
    _check_python()
    venv_dir = Path(venv_dir)
    python = venv_python(venv_dir)
    if not python.exists():
        print(f"creating {venv_dir} ...", flush=True)
        venv.EnvBuilder(with_pip=True, upgrade_deps=False).create(venv_dir)
        if _run([str(python), "-m", "pip", "install", "--quiet", "--upgrade", "pip"]) != 0:
            raise SetupError(f"could not upgrade pip in {venv_dir}: delete it and run setup again")
    print(f"installing the course into {venv_dir} (extras: {','.join(extras) or 'none'}) ...",
          flush=True)
    if not install(venv_dir, extras, root=root, force=force, quiet=quiet):
        print("already installed (pyproject.toml and the extras are unchanged)", flush=True)
    configure_jupyter(python, instructor=instructor)
    print(f"JupyterLab configured (nbgrader: assignment list + validate; instructor tools: "
          f"{'enabled' if instructor else 'disabled'})", flush=True)
    return python


def lab_command(venv_dir: Path = REPO / ".venv", *, root: Path = REPO, instructor: bool = False,
                extra_args: Sequence[str] = ()) -> tuple[list[str], Path]:
    """The JupyterLab command line and the folder it starts in (notebooks/, or graders/)."""
    python = venv_python(venv_dir)
    folder = root / ("graders" if instructor else "notebooks")
    command = [str(python), "-m", "jupyter", "lab"]
    if not instructor:
        command.append(f"--notebook-dir={folder}")
    # JupyterLab refuses to run as root (containers, CI) without --allow-root.
    if hasattr(os, "getuid") and os.getuid() == 0:
        command.append("--allow-root")
    return [*command, *extra_args], folder


def lab(venv_dir: Path = REPO / ".venv", *, root: Path = REPO, instructor: bool = False,
        extra_args: Sequence[str] = ()) -> int:
    """Open JupyterLab on the course (after setup); returns its exit status."""
    python = venv_python(venv_dir)
    if not python.exists():
        raise SetupError(f"no environment at {venv_dir}: run `python -m course_lib setup` first "
                         "(Windows: py -m course_lib setup)")
    configure_jupyter(python, instructor=instructor)
    command, folder = lab_command(venv_dir, root=root, instructor=instructor,
                                  extra_args=extra_args)
    env = dict(os.environ)
    if instructor:  # the formgrader reads nbgrader_config.py from the folder Lab starts in
        env["COURSE_INSTRUCTOR"] = "1"
    try:
        return subprocess.call(command, cwd=folder, env=env)
    except KeyboardInterrupt:  # Ctrl+C reached JupyterLab too; it shuts itself down
        return 130


def add_arguments(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """The ``setup``, ``lab`` and ``configure-jupyter`` subcommands."""
    default_venv = REPO / ".venv"
    setup_parser = commands.add_parser(
        "setup", help="create .venv, install the course (wheels first), configure JupyterLab",
        description="Create the virtual environment, install the course into it with pip "
                    "--prefer-binary and configure JupyterLab for learners.")
    setup_parser.add_argument("--venv", type=Path, default=default_venv,
                              help="where the environment goes (default: %(default)s)")
    setup_parser.add_argument("--extras", default=",".join(DEFAULT_EXTRAS),
                              help="comma-separated extras to install (default: %(default)s; "
                                   "add cuda on a machine with an NVIDIA GPU)")
    setup_parser.add_argument("--force", action="store_true",
                              help="reinstall even if nothing changed")
    setup_parser.add_argument("--quiet", action="store_true", help="less pip output")
    lab_parser = commands.add_parser("lab", help="open JupyterLab on notebooks/",
                                     description="Open JupyterLab on the course's notebooks "
                                                 "(run setup first). Extra arguments go to "
                                                 "jupyter lab, e.g. -- --no-browser.")
    lab_parser.add_argument("--venv", type=Path, default=default_venv,
                            help="the environment setup created (default: %(default)s)")
    lab_parser.add_argument("--instructor", action="store_true",
                            help="nbgrader's instructor tools, started in graders/")
    lab_parser.add_argument("jupyter_args", nargs="*", metavar="ARG",
                            help="passed on to jupyter lab (after --)")
    configure = commands.add_parser("configure-jupyter",
                                    help="configure JupyterLab in this Python's environment")
    configure.add_argument("--python", default=sys.executable,
                           help="the environment's Python (default: this one)")
    configure.add_argument("--instructor", action="store_true",
                           help="leave nbgrader's instructor tools on")


def run_command(args: argparse.Namespace) -> int:
    """Run a parsed ``setup``, ``lab`` or ``configure-jupyter`` command; its exit status."""
    try:
        if args.command == "setup":
            setup(args.venv, _parse_extras(args.extras), force=args.force, quiet=args.quiet)
            activate = (rf"{args.venv}\Scripts\activate" if _windows()
                        else f"source {args.venv}/bin/activate")
            print(f"done. Open the course with: {Path(sys.executable).name} -m course_lib lab "
                  f"(or {activate}, then jupyter lab)")
            return 0
        if args.command == "lab":
            return lab(args.venv, instructor=args.instructor, extra_args=args.jupyter_args)
        if args.command == "configure-jupyter":
            instructor = args.instructor or os.environ.get("COURSE_INSTRUCTOR") == "1"
            path = configure_jupyter(args.python, instructor=instructor)
            print(f"JupyterLab configured ({path}); instructor tools: "
                  f"{'enabled' if instructor else 'disabled'}")
            return 0
    except SetupError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m course_lib.setup COMMAND``: the same commands as ``python -m course_lib``."""
    parser = argparse.ArgumentParser(prog="python -m course_lib.setup")
    add_arguments(parser.add_subparsers(dest="command", metavar="COMMAND", required=True))
    return run_command(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
