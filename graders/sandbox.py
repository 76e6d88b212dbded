"""A sandbox for one submission: limits, isolation, and nothing left behind.

The strongest isolation the machine allows is chosen once per grading run
(``detect_isolation``):

- **namespaces** (Linux; as root, or through a user namespace): new PID,
  mount and network namespaces. Every process the submission starts lives in
  the PID namespace and dies with it, even after ``setsid`` or a double fork;
  ``/tmp`` and ``/dev/shm`` are private tmpfs mounts that vanish with it; the
  network is loopback only.
- **cgroups** (v2, or v1 ``pids`` and ``memory``, where writable): a process
  limit and a memory limit counted in real memory, and a list of members to
  kill at the end.
- **fallback**: a process session, ``RLIMIT_DATA``/``RLIMIT_NPROC``, a private
  ``TMPDIR``, and a marker in the environment by which the grader finds and
  kills what the submission left (processes that wipe their environment
  escape this; the sweep of ``/dev/shm`` then happens after the whole run).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from course_lib import proc

__all__ = ["Isolation", "Limits", "Sandbox", "SandboxResult", "detect_isolation", "MARKER_VAR"]

MARKER_VAR = "GRADERS_SANDBOX"
CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class Isolation:
    """What this machine lets the grader use."""

    namespaces: bool
    cgroup: str | None  # "v2", "v1" or None
    cgroup_parents: tuple[str, ...] = ()

    def describe(self) -> str:
        parts = ["PID/mount/network namespaces" if self.namespaces else "process sessions + marker"]
        parts.append(f"cgroup {self.cgroup} limits" if self.cgroup else "rlimits")
        return ", ".join(parts)


@dataclass(frozen=True)
class Limits:
    memory_mb: int | None = 2048
    max_processes: int = 512
    network: bool = False


@dataclass
class SandboxResult:
    returncode: int | None
    timed_out: bool
    oom_killed: bool
    process_limit_hit: bool
    log: str
    seconds: float
    notes: list[str] = field(default_factory=list)


def _probe_namespaces() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    code = ("import json,sys\nfrom graders._sandbox_init import enter_namespaces\n"
            "enter_namespaces({'network': False})\n")
    try:
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


def _own_cgroup(controller: str) -> str | None:
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            return path
        if controller == "" and controllers == "":
            return path
    return None


def _try_cgroup_dir(parent: Path, probe_file: str) -> bool:
    probe = parent / f"graders-probe-{os.getpid()}-{secrets.token_hex(3)}"
    try:
        probe.mkdir()
    except OSError:
        return False
    try:
        return (probe / probe_file).exists()
    finally:
        try:
            probe.rmdir()
        except OSError:
            pass


def _probe_cgroups() -> tuple[str | None, tuple[str, ...]]:
    if not sys.platform.startswith("linux") or not CGROUP_ROOT.is_dir():
        return None, ()
    # cgroup v1: separate pids and memory hierarchies.
    v1 = []
    for controller in ("pids", "memory"):
        own = _own_cgroup(controller)
        base = CGROUP_ROOT / controller
        if own is None or not base.is_dir():
            break
        parent = base / own.lstrip("/")
        probe = "pids.max" if controller == "pids" else "memory.limit_in_bytes"
        if not _try_cgroup_dir(parent, probe):
            break
        v1.append(str(parent))
    if len(v1) == 2:
        return "v1", tuple(v1)
    # cgroup v2 with both controllers delegated to our subtree.
    own = _own_cgroup("")
    if own is not None and (CGROUP_ROOT / "cgroup.controllers").is_file():
        parent = CGROUP_ROOT / own.lstrip("/")
        if _try_cgroup_dir(parent, "pids.max") and _try_cgroup_dir(parent, "memory.max"):
            return "v2", (str(parent),)
    return None, ()


@functools.lru_cache(maxsize=1)
def detect_isolation() -> Isolation:
    """Probe once what the machine allows (namespaces, cgroups)."""
    if os.environ.get("GRADERS_ISOLATION") == "fallback":
        return Isolation(False, None)
    cgroup, parents = _probe_cgroups()
    return Isolation(_probe_namespaces(), cgroup, parents)


def _marked_pids(token: str) -> list[int]:
    """Processes whose environment carries the sandbox's marker (not this one).

    psutil reads the environments it may (``/proc/PID/environ`` on Linux); a
    process that exited, or whose environment is not ours to read, is skipped.
    """
    found = []
    for process in psutil.process_iter():
        if process.pid == os.getpid():
            continue
        try:
            if process.environ().get(MARKER_VAR) == token:
                found.append(process.pid)
        except (psutil.Error, OSError):
            continue
    return found


def _kill(pids: list[int]) -> None:
    """Kill these processes (SIGKILL, or TerminateProcess on Windows); wait 20 ms at most."""
    processes = []
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            processes.append(psutil.Process(pid))
    proc.kill_all(processes, timeout=0.02)


def _uid() -> int | None:
    """This user's id, None where there are none (Windows)."""
    getuid = getattr(os, "getuid", None)
    return int(getuid()) if getuid is not None else None


class Sandbox:
    """Run one command isolated and limited; ``close()`` (or ``with``) leaves nothing."""

    def __init__(self, workdir: Path, limits: Limits, isolation: Isolation | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.workdir = workdir
        self.limits = limits
        self.isolation = isolation if isolation is not None else detect_isolation()
        self.token = secrets.token_hex(12)
        self.clock = clock
        self.cgroups: list[Path] = []
        self._proc: subprocess.Popen[bytes] | None = None
        self._process_limit_hit = False

    # -- cgroups -----------------------------------------------------------
    def _make_cgroups(self) -> None:
        name = f"graders-{os.getpid()}-{self.token[:8]}"
        limits = self.limits
        for parent in self.isolation.cgroup_parents:
            folder = Path(parent) / name
            folder.mkdir()
            self.cgroups.append(folder)
            if (folder / "pids.max").exists():
                (folder / "pids.max").write_text(str(limits.max_processes))
            if limits.memory_mb:
                memory = str(limits.memory_mb * 1024 * 1024)
                for knob in ("memory.limit_in_bytes", "memory.max"):
                    if (folder / knob).exists():
                        (folder / knob).write_text(memory)
                for knob in ("memory.memsw.limit_in_bytes", "memory.swap.max"):
                    if (folder / knob).exists():
                        try:
                            (folder / knob).write_text(memory if "memsw" in knob else "0")
                        except OSError:
                            pass

    def _cgroup_pids(self) -> list[int]:
        pids: set[int] = set()
        for folder in self.cgroups:
            try:
                pids.update(int(p) for p in (folder / "cgroup.procs").read_text().split())
            except OSError:
                pass
        return sorted(pids)

    def oom_killed(self) -> bool:
        for folder in self.cgroups:
            for name in ("memory.oom_control", "memory.events"):
                try:
                    text = (folder / name).read_text()
                except OSError:
                    continue
                for line in text.splitlines():
                    key, _, value = line.partition(" ")
                    if key == "oom_kill" and value.strip() not in ("", "0"):
                        return True
            try:
                if int((folder / "memory.failcnt").read_text()) > 0 and not self._alive():
                    return True
            except (OSError, ValueError):
                pass
        return False

    def _pids_limit_hit(self) -> bool:
        for folder in self.cgroups:
            try:
                text = (folder / "pids.events").read_text()
            except OSError:
                continue
            for line in text.splitlines():
                key, _, value = line.partition(" ")
                if key == "max" and value.strip() not in ("", "0"):
                    return True
        return self._process_limit_hit

    def _alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # -- running -----------------------------------------------------------
    def environment(self, base: dict[str, str]) -> dict[str, str]:
        env = dict(base)
        env[MARKER_VAR] = self.token
        if not self.isolation.namespaces:
            tmp = self.workdir / "tmp"
            tmp.mkdir(exist_ok=True)
            env["TMPDIR"] = str(tmp)
        else:
            env["TMPDIR"] = "/tmp"
        return env

    def run(self, argv: list[str], env: dict[str, str], timeout: float,
            log_path: Path) -> SandboxResult:
        """Run ``argv`` in the sandbox until it exits or ``timeout`` s pass; then kill the rest."""
        limits = self.limits
        if self.isolation.cgroup:
            self._make_cgroups()
        config = {
            "argv": argv,
            # the sandbox dies with this process (_sandbox_init.die_with_parent)
            "parent": os.getpid(),
            "namespaces": self.isolation.namespaces,
            "network": limits.network,
            "cgroups": [str(c) for c in self.cgroups],
            "tmpfs_mb": limits.memory_mb,
            "keep": _needed_paths(self.workdir),
            "rlimit_data_mb": None if self.isolation.cgroup else limits.memory_mb,
            "rlimit_nproc": (None if self.isolation.cgroup or _uid() in (0, None)
                             else limits.max_processes + _user_process_count()),
        }
        start = self.clock()
        timed_out = False
        with log_path.open("wb") as log:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "graders._sandbox_init", json.dumps(config)],
                cwd=self.workdir, env=self.environment(env), stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
            watchdog = None
            if not self.isolation.cgroup and _uid() == 0:
                watchdog = threading.Thread(target=self._count_processes, daemon=True)
                watchdog.start()
            try:
                code: int | None = self._proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                timed_out, code = True, None
            oom = self.oom_killed()
            self.kill_all()
            if watchdog is not None:
                watchdog.join(timeout=2)
        return SandboxResult(
            returncode=code, timed_out=timed_out, oom_killed=oom,
            process_limit_hit=self._pids_limit_hit(),
            log=log_path.read_text(errors="replace"), seconds=self.clock() - start,
        )

    def _count_processes(self) -> None:
        """Fallback process limit (root, no cgroups): kill the sandbox past the limit."""
        while self._alive():
            if len(_marked_pids(self.token)) > self.limits.max_processes:
                self._process_limit_hit = True
                self.kill_all()
                return
            time.sleep(0.25)

    def kill_all(self) -> None:
        """Kill every process of the sandbox, by session, cgroup and marker; wait for them."""
        if self._proc is not None:
            # Its session and every descendant (os.killpg where it exists, else psutil).
            proc.kill_tree(self._proc, timeout=10)
            self._proc.wait()
        for _ in range(100):
            pids = set(self._cgroup_pids())
            pids.update(_marked_pids(self.token))
            if not pids:
                break
            _kill(sorted(pids))
            time.sleep(0.02)

    def close(self) -> None:
        self.kill_all()
        for folder in self.cgroups:
            for _ in range(50):
                try:
                    folder.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.05)
        self.cgroups = []

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _user_process_count() -> int:
    """How many processes this user runs (by real user id, as ``RLIMIT_NPROC`` counts)."""
    uid = _uid()
    if uid is None:
        return 0
    count = 0
    for process in psutil.process_iter(["uids"]):
        uids = process.info.get("uids")
        if uids is not None and uids.real == uid:
            count += 1
    return count


def _needed_paths(workdir: Path) -> list[str]:
    """Folders the sandboxed kernel must still see when /tmp becomes private."""
    import graders

    candidates = [workdir, Path(sys.prefix), Path(sys.base_prefix),
                  Path(graders.__file__).resolve().parent.parent, *map(Path, sys.path)]
    paths: list[str] = []
    for path in candidates:
        try:
            real = str(path.resolve())
        except OSError:
            continue
        if real.startswith(("/tmp/", "/dev/shm/")) and Path(real).is_dir():
            paths.append(real)
    # Parents first, and no path inside another kept path.
    paths = sorted(set(paths), key=len)
    return [p for i, p in enumerate(paths) if not any(p.startswith(q + "/") for q in paths[:i])]
