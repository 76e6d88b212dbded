"""The first process of a grading sandbox (``python -m graders._sandbox_init CONFIG``).

It joins the sandbox's control groups, sets resource limits, and, where the
kernel allows, enters new PID, mount and network namespaces: it forks the
namespace's init, which mounts a private ``/proc``, ``/tmp`` and ``/dev/shm``,
brings up a loopback-only network, runs the payload and reaps orphans. When
the payload ends, init ends, and the kernel kills every process left in the
namespace, including those that called ``setsid`` or forked twice. Both it
and init die with their parent (``PR_SET_PDEATHSIG``), so a grader or Dask
worker killed mid-run takes its sandbox with it. Without
namespaces it simply becomes the payload (the grader then tracks processes by
the marker in their environment).

Exit status: the payload's, or 128 + signal; 90 when the sandbox itself
could not be set up (the reason is on stderr).
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import json
import os
import resource
import signal
import socket
import struct
import sys
from typing import Any

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_BIND, MS_REC, MS_PRIVATE = 2, 4, 8, 4096, 16384, 1 << 18
SETUP_FAILED = 90
PR_SET_PDEATHSIG = 1

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def unshare(flags: int) -> None:
    _check(_libc.unshare(ctypes.c_int(flags)), "unshare")


def mount(source: str, target: str, fstype: str, flags: int, data: str | None = None) -> None:
    _check(_libc.mount(source.encode(), target.encode(), fstype.encode(), ctypes.c_ulong(flags),
                       data.encode() if data else None), f"mount {target}")


def loopback_up() -> None:
    """Bring up ``lo`` in a fresh network namespace (SIOCGIFFLAGS / SIOCSIFFLAGS)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        ifreq = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(sock, 0x8913, ifreq))[1]
        fcntl.ioctl(sock, 0x8914, struct.pack("16sH14x", b"lo", flags | 0x1))


def die_with_parent() -> None:
    """Be killed with the process that started this one (a grading worker killed mid-run)."""
    if sys.platform.startswith("linux"):
        _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def enter_namespaces(config: dict[str, Any]) -> None:
    uid, gid = os.getuid(), os.getgid()
    flags = CLONE_NEWNS | CLONE_NEWPID | (0 if config.get("network") else CLONE_NEWNET)
    if uid != 0:
        flags |= CLONE_NEWUSER
    unshare(flags)
    if uid != 0:
        with open("/proc/self/setgroups", "w") as f:
            f.write("deny")
        with open("/proc/self/uid_map", "w") as f:
            f.write(f"0 {uid} 1")
        with open("/proc/self/gid_map", "w") as f:
            f.write(f"0 {gid} 1")


def setup_inside(config: dict[str, Any]) -> None:
    """Run as the namespace's init: private mounts and a loopback-only network."""
    mount("none", "/", "", MS_REC | MS_PRIVATE)
    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    size = f"size={int(config['tmpfs_mb'])}m" if config.get("tmpfs_mb") else None
    for target in ("/tmp", "/dev/shm"):
        if not os.path.isdir(target):
            continue
        # Folders the sandbox needs that live under the target (the submission's
        # working folder, a virtual environment in /tmp) are bound back in.
        keep = [path for path in config.get("keep", []) if path.startswith(target + "/")]
        fds = [os.open(path, os.O_RDONLY | os.O_DIRECTORY) for path in keep]
        mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV, size)
        for path, fd in zip(keep, fds, strict=False):
            os.makedirs(path, exist_ok=True)
            mount(f"/proc/self/fd/{fd}", path, "", MS_BIND | MS_REC)
            os.close(fd)
    if not config.get("network"):
        loopback_up()


def set_limits(config: dict[str, Any]) -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if config.get("rlimit_data_mb"):
        # RLIMIT_DATA counts memory actually writable (heap, anonymous maps), unlike
        # RLIMIT_AS, which a kernel's thread stacks and arenas reserve many times over.
        limit = int(config["rlimit_data_mb"]) * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
    if config.get("rlimit_nproc"):
        limit = int(config["rlimit_nproc"])
        resource.setrlimit(resource.RLIMIT_NPROC, (limit, limit))


def join_cgroups(config: dict[str, Any]) -> None:
    for folder in config.get("cgroups", []):
        with open(os.path.join(folder, "cgroup.procs"), "w") as f:
            f.write(str(os.getpid()))


def _exit_code(status: int) -> int:
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def run_as_init(argv: list[str], env: dict[str, str]) -> int:
    payload = os.fork()
    if payload == 0:  # pragma: no cover - becomes the payload
        try:
            os.execvpe(argv[0], argv, env)
        finally:
            os._exit(127)
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            return 0
        except InterruptedError:
            continue
        if pid == payload:
            return _exit_code(status)


def main(argv: list[str]) -> int:
    config = json.loads(argv[0])
    die_with_parent()
    # the grader died before we could follow it
    if os.getppid() != config.get("parent", os.getppid()):
        return SETUP_FAILED
    payload = list(config["argv"])
    env = dict(os.environ)
    try:
        join_cgroups(config)
        set_limits(config)
        if config.get("namespaces"):
            enter_namespaces(config)
    except OSError as exc:
        print(f"graders sandbox: could not set up isolation: {exc}", file=sys.stderr)
        return SETUP_FAILED
    if not config.get("namespaces"):
        os.execvpe(payload[0], payload, env)
    init = os.fork()
    if init == 0:  # pragma: no cover - the namespace's PID 1
        code = SETUP_FAILED
        try:
            die_with_parent()  # its death ends every process in the namespace
            setup_inside(config)
            code = run_as_init(payload, env)
        except OSError as exc:
            print(f"graders sandbox: could not set up isolation: {exc}", file=sys.stderr)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    while True:
        try:
            _, status = os.waitpid(init, 0)
            return _exit_code(status)
        except InterruptedError:
            continue
        except OSError as exc:
            if exc.errno == errno.ECHILD:
                return 0
            raise


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
