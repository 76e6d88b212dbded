"""The course in a real browser: JupyterLab as `make lab` serves it, driven by headless Chromium.

A learner's path, end to end: open a notebook in the course's folder, run a cell that draws a
course_lib timeline and see the picture, then press nbgrader's Validate button and read the
result. Needs Chromium (Debian: `apt-get install -y chromium`) and Playwright's Python package
(`.venv/bin/pip install playwright`; its own browser download is not used). Outside CI the test
skips when either is missing; with $CI set it fails instead.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import psutil
import pytest

from ..conftest import REPO, nbgrader_cell

BIN = Path(sys.executable).parent
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
INSTALL_HINT = ("install Chromium (Debian/Ubuntu: `apt-get install -y chromium`) and Playwright "
                "(`.venv/bin/pip install playwright`), or set COURSE_CHROMIUM to a Chromium binary")
NOTEBOOK = "ch00_introduction/zz_browser_check.ipynb"
# The execution indicator says "idle" once before any kernel exists ("No Kernel"), so wait
# for a named kernel that is idle.
KERNEL_READY = """() => {
  const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
  if (!panel) return false;
  const status = panel.querySelector('.jp-Notebook-ExecutionIndicator');
  const name = panel.querySelector('.jp-Toolbar-kernelName');
  return !!status && status.getAttribute('data-status') === 'idle'
    && !!name && name.innerText.trim() !== '' && !/No Kernel/.test(name.innerText);
}"""

TIMELINE_CELL = """\
import matplotlib.pyplot as plt
from course_lib.trace import Span
from course_lib.viz import timeline

spans = [Span("compute", "worker-1", 0.00, 0.03, 1, 1, None),
         Span("wait", "worker-2", 0.01, 0.05, 1, 2, None),
         Span("compute", "worker-2", 0.05, 0.08, 1, 2, None)]
timeline(spans, title="browser check")
plt.show()
"""

SOLUTION_CELL = '''def add(a, b):
    """Return a + b."""
    ### BEGIN SOLUTION
    return a + b
    ### END SOLUTION
'''

TESTS_CELL = '''from graders.checks import expect_equal
expect_equal(add(2, 3), 5, "add(2, 3)")
'''


def _unavailable(reason: str) -> None:
    message = f"{reason}: {INSTALL_HINT}"
    if os.environ.get("CI"):
        pytest.fail(f"CI is set, so the browser test must run; {message}")
    pytest.skip(message)


def _chromium() -> str:
    override = os.environ.get("COURSE_CHROMIUM")
    candidates = [override] if override else [
        "/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser"),
        shutil.which("google-chrome")]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    _unavailable("no Chromium found" + (f" at COURSE_CHROMIUM={override}" if override else ""))
    raise AssertionError("unreachable")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _browser_notebook() -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                 "language": "python"}
    nb.cells = [
        nbformat.v4.new_code_cell(TIMELINE_CELL),
        nbgrader_cell("prompt", "Write `add(a, b)`.", "ex_add_prompt"),
        nbgrader_cell("solution", SOLUTION_CELL, "ex_add"),
        nbgrader_cell("tests", TESTS_CELL, "ex_add_tests", points=1),
    ]
    return nb


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _cmd(proc: psutil.Process) -> str:
    try:
        return " ".join(proc.cmdline())[:120]
    except psutil.Error:
        return "(gone)"


def _stop(server: subprocess.Popen[bytes]) -> None:
    if server.poll() is not None:
        return
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=10)


@pytest.fixture
def chromium() -> str:
    """The Chromium binary, once Playwright is known to be importable (else skip, or fail in CI)."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _unavailable("Playwright's Python package is not installed")
    return _chromium()


@pytest.fixture
def lab(chromium: str, tmp_path: Path) -> Iterator[tuple[str, str, subprocess.Popen[bytes]]]:
    """JupyterLab as `make lab` starts it, on a temp copy of notebooks/.

    The environment is the one `make install` configured with binder/configure-jupyter.sh
    (test_lab.py checks that script; running it here would cost half a minute).
    """
    root = tmp_path / "course"
    shutil.copytree(REPO / "notebooks", root / "notebooks",
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    nbformat.write(_browser_notebook(), root / "notebooks" / NOTEBOOK)
    port, token = _free_port(), secrets.token_hex(16)
    args = [str(BIN / "jupyter"), "lab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
            f"--IdentityProvider.token={token}", f"--notebook-dir={root / 'notebooks'}"]
    if hasattr(os, "getuid") and os.getuid() == 0:
        args.append("--allow-root")
    # Keep the learner's own Jupyter state (workspaces, settings, runtime files) out of it.
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
               JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "workspaces"),
               JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "settings"),
               PYDEVD_DISABLE_FILE_VALIDATION="1")
    log = open(tmp_path / "jupyter.log", "wb")  # noqa: SIM115 (closed below)
    server = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root,
                              start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                request = urllib.request.Request(f"{base}/api/status",
                                                 headers={"Authorization": f"token {token}"})
                with urllib.request.urlopen(request, timeout=5):
                    break
            except OSError:
                assert server.poll() is None, \
                    f"jupyter lab exited during start-up; log: {tmp_path / 'jupyter.log'}"
                assert time.monotonic() < deadline, "jupyter lab did not answer within 60 s"
                time.sleep(0.3)
        yield base, token, server
    finally:
        _stop(server)
        log.close()
    assert _port_is_free(port), f"port {port} is still taken after JupyterLab stopped"


def test_timeline_and_validate_in_the_browser(
        chromium: str, lab: tuple[str, str, subprocess.Popen[bytes]], tmp_path: Path) -> None:
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    base, token, server = lab
    me = psutil.Process()
    before = {p.pid for p in me.children(recursive=True)}
    server_children: list[psutil.Process] = []

    def shot(page: Any, name: str) -> str:
        path = tmp_path / f"{name}.png"
        if page is None:
            return "(no page to screenshot)"
        try:
            page.screenshot(path=str(path), full_page=True)
        except PlaywrightError:
            return "(no screenshot)"
        return f"screenshot: {path}; server log: {tmp_path / 'jupyter.log'}"

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, timeout=30_000)
        page, step = None, "start"
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(30_000)
            # 1. The notebook opens and its kernel becomes idle.
            step = "open"
            page.goto(f"{base}/lab/tree/{NOTEBOOK}?reset&token={token}", timeout=30_000)
            try:
                page.locator(".jp-NotebookPanel .jp-Cell").first.wait_for(timeout=30_000)
                page.wait_for_function(KERNEL_READY, timeout=30_000)
            except PlaywrightError as exc:
                pytest.fail(f"the notebook or its kernel was not ready within 30 s ({exc}); "
                            + shot(page, step))
            server_children = psutil.Process(server.pid).children(recursive=True)

            # 2. Run the timeline cell: a PNG appears in its output area.
            step = "timeline"
            page.locator(".jp-Cell").first.locator(".jp-InputArea-editor").click()
            page.keyboard.press("Shift+Enter")
            cell = page.locator(".jp-Cell").first
            try:  # "[1]:" once the cell has run ("[*]:" while it runs, "[ ]:" before).
                cell.locator(".jp-InputPrompt").filter(has_text=re.compile(r"\[\d+\]")) \
                    .wait_for(timeout=30_000)
            except PlaywrightError as exc:
                pytest.fail(f"the timeline cell did not finish within 30 s ({exc}); "
                            + shot(page, step))
            outputs = cell.locator(".jp-OutputArea")
            image = outputs.locator(".jp-OutputArea-output img[src^='data:image/png;base64,']")
            try:
                image.first.wait_for(timeout=5_000)
            except PlaywrightError:
                pytest.fail("the timeline cell ran but shows no PNG; its output: "
                            f"{outputs.inner_text()[:1500]!r}; " + shot(page, step))
            src = image.first.get_attribute("src") or ""
            assert len(src) > 5_000, (
                f"the timeline PNG is suspiciously small ({len(src)} chars); " + shot(page, step))
            width = image.first.evaluate("img => img.naturalWidth")
            assert width > 100, f"the timeline image did not decode (naturalWidth={width}); " \
                + shot(page, step)

            # 3. nbgrader's Validate button in the notebook toolbar shows the results dialog.
            step = "validate"
            button = page.locator(".jp-NotebookPanel-toolbar .validate-button")
            try:
                button.wait_for(timeout=10_000)
            except PlaywrightError:
                pytest.fail("no Validate button in the notebook toolbar: is nbgrader's "
                            "validate-assignment extension enabled (binder/configure-jupyter.sh)? "
                            + shot(page, step))
            button.locator("jp-button, button").first.click()
            dialog = page.locator(".jp-Dialog")
            try:
                dialog.wait_for(timeout=45_000)
                page.wait_for_function(
                    "() => { const d = document.querySelector('.jp-Dialog');"
                    " return d && !/Validating|Saving/.test(d.innerText); }", timeout=5_000)
            except PlaywrightError as exc:
                pytest.fail(f"no validation dialog within 45 s ({exc}); " + shot(page, step))
            title = dialog.locator(".jp-Dialog-header").inner_text()
            body = dialog.locator(".jp-Dialog-body").inner_text()
            assert title.strip() == "Validation Results", \
                f"the dialog is {title!r}: {body[:800]!r}; " + shot(page, step)
            assert "Success! Your notebook passes all the tests." in body, \
                f"validation did not pass: {body[:800]!r}; " + shot(page, step)
            dialog.locator(".jp-Dialog-footer button").first.click()
            dialog.wait_for(state="detached", timeout=10_000)
        except PlaywrightError as exc:
            pytest.fail(f"the browser failed at step {step!r}: {exc}; " + shot(page, step))
        finally:
            browser.close()

    _stop(server)
    deadline = time.monotonic() + 10
    leftovers = [p for p in me.children(recursive=True) if p.pid not in before]
    leftovers += server_children
    while True:
        leftovers = [p for p in leftovers if _alive(p)]
        if not leftovers or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert not leftovers, "still running after the browser and JupyterLab stopped: " + ", ".join(
        f"{p.pid} {_cmd(p)}" for p in leftovers)
