"""`make lab`'s JupyterLab: it starts on notebooks/ with nbgrader's learner extensions on."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from ..conftest import REPO

BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str, token: str) -> tuple[int, str]:
    request = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, response.read().decode()


def test_learner_extensions_are_configured() -> None:
    subprocess.run(["bash", str(REPO / "binder" / "configure-jupyter.sh"), str(BIN)],
                   check=True, capture_output=True, timeout=120)
    lab = subprocess.run([str(BIN / "jupyter"), "labextension", "list"], capture_output=True,
                         text=True, timeout=120)
    listing = lab.stdout + lab.stderr
    assert "@jupyter/nbgrader" in listing
    disabled = listing.split("Disabled extensions:")[1]
    for plugin in ("formgrader", "create-assignment", "course-list"):
        assert f"@jupyter/nbgrader:{plugin}" in disabled
    for plugin in ("assignment-list", "validate-assignment"):
        assert f"@jupyter/nbgrader:{plugin}" not in disabled
    overrides = Path(sys.prefix) / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
    notification = json.loads(overrides.read_text())["@jupyterlab/apputils-extension:notification"]
    assert notification["fetchNews"] == "false"


def test_jupyterlab_serves_the_course_and_stops_cleanly(tmp_path: Path) -> None:
    port, token = _free_port(), secrets.token_hex(16)
    args = [str(BIN / "jupyter"), "lab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
            f"--IdentityProvider.token={token}", f"--notebook-dir={REPO / 'notebooks'}"]
    if hasattr(os, "getuid") and os.getuid() == 0:
        args.append("--allow-root")
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"))
    server = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                              start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                status, _ = _get(f"{base}/api/status", token)
                break
            except OSError:
                assert server.poll() is None, "jupyter lab exited during start-up"
                assert time.monotonic() < deadline, "jupyter lab did not answer within 60 s"
                time.sleep(0.5)
        status, page = _get(f"{base}/lab", token)
        assert status == 200 and "@jupyter/nbgrader" in page
        _, contents = _get(f"{base}/api/contents", token)
        names = {item["name"] for item in json.loads(contents)["content"]}
        assert {"ch00_introduction", "ch01_threads"} <= names
        # The Validate button needs nbgrader's server extension.
        extensions = subprocess.run([str(BIN / "jupyter"), "server", "extension", "list"],
                                    capture_output=True, text=True, timeout=120)
        assert ("nbgrader.server_extensions.validate_assignment"
                in extensions.stdout + extensions.stderr)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
    assert server.poll() is not None
