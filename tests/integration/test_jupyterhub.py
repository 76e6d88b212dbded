"""The class deployment in deploy/jupyterhub/, run for real.

One test starts a real JupyterHub (with configurable-http-proxy) on 127.0.0.1
from deploy/jupyterhub/jupyterhub_config.py, with real local Unix accounts
made for the test (an instructor, a student and the grader account that runs
the formgrader service), and walks the class through one assignment: release,
the student's HTTP login, fetch and submit through the student's single-user
server, collect, `python -m graders grade`, feedback. Real accounts, because
nbgrader knows a student by the Unix account that submits; it needs root,
which CI has. At the end it checks that the hub, the proxy, the servers and
the service are all gone and their ports closed, and removes the accounts.
"""

from __future__ import annotations

import csv
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy" / "jupyterhub"
BIN = Path(sys.executable).parent
COURSE_ID = "parallel-python"
MARKER = "parallel-python hub test"  # GECOS field of the accounts this test makes
PREFIX = "ppjh-"
INSTALL_HINT = ('install the hub with `.venv/bin/pip install -e ".[hub]"` and '
                "`bash deploy/jupyterhub/install.sh`")

pytestmark = pytest.mark.timeout(300)


def _missing(why: str) -> None:
    """Skip on a developer's machine; fail under CI, where everything must be there."""
    if os.environ.get("CI"):
        pytest.fail(f"{why} (CI is set, so this fails instead of skipping)", pytrace=False)
    pytest.skip(why)


def _preconditions() -> None:
    if not sys.platform.startswith("linux"):
        _missing("the JupyterHub deployment test runs on Linux only")
    if not (BIN / "jupyterhub").exists() or not (BIN / "jupyterhub-singleuser").exists():
        _missing(f"jupyterhub is not installed in {BIN.parent}: {INSTALL_HINT}")
    if not (BIN / "configurable-http-proxy").exists():
        _missing(f"configurable-http-proxy is not in {BIN}: {INSTALL_HINT}")
    if os.geteuid() != 0:
        _missing("the JupyterHub deployment test makes local Unix accounts, so it runs as root "
                 "(as CI does)")
    for tool in ("useradd", "userdel", "chpasswd"):
        if shutil.which(tool) is None:
            _missing(f"{tool} is missing (Debian package: passwd)")


# --- small helpers ---------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _wait(what: str, probe: Callable[[], Any], timeout: float, log: Path | None = None) -> Any:
    """Call probe until it returns something truthy; fail with `what` after timeout seconds."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            value = probe()
        except Exception as exc:  # noqa: BLE001 - the probe's error is the message
            value, last = None, exc
        if value:
            return value
        time.sleep(0.25)
    tail = _tail(log) if log else ""
    pytest.fail(f"timed out after {timeout:g} s waiting for {what} (last error: {last!r}){tail}",
                pytrace=False)


def _tail(log: Path, lines: int = 40) -> str:
    try:
        text = log.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return ""
    return "\n--- last lines of " + log.name + " ---\n" + "\n".join(text)


def _toy_notebook(solution: str) -> nbformat.NotebookNode:
    """The toy assignment of tests/conftest.py: one exercise worth 2 points."""

    def cell(kind: str, source: str, grade_id: str, points: int = 0) -> nbformat.NotebookNode:
        meta = {"grade": kind == "tests", "solution": kind == "solution",
                "locked": kind != "solution", "task": False, "grade_id": grade_id,
                "schema_version": 3}
        if kind == "tests":
            meta["points"] = points
        new = nbformat.v4.new_markdown_cell if kind == "prompt" else nbformat.v4.new_code_cell
        made = new(source)
        made.metadata["nbgrader"] = meta
        return made

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                 "language": "python"}
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Toy chapter"),
        cell("prompt", "Write `add(a, b)`.", "ex_add_prompt"),
        cell("solution", solution, "ex_add"),
        cell("tests", "from graders.checks import expect_equal\n"
                      "expect_equal(add(2, 3), 5, 'add(2, 3)')\n"
                      "### BEGIN HIDDEN TESTS\n"
                      "expect_equal(add(-1, 1), 0, 'add(-1, 1)')\n"
                      "### END HIDDEN TESTS\n", "ex_add_tests", points=2),
    ]
    return nb


SOLUTION = ('def add(a, b):\n    """Return a + b."""\n'
            "    ### BEGIN SOLUTION\n    return a + b\n    ### END SOLUTION\n")
ANSWER = 'def add(a, b):\n    """Return a + b."""\n    return a + b\n'


# --- local accounts ----------------------------------------------------------------------------

@dataclass
class Account:
    name: str
    password: str
    home: Path
    uid: int = 0
    gid: int = 0


def _ours(name: str) -> bool:
    try:
        return pwd.getpwnam(name).pw_gecos == MARKER
    except KeyError:
        return False


def _remove_account(name: str) -> None:
    subprocess.run(["userdel", name], capture_output=True, timeout=30, check=False)


def _make_account(role: str, homes: Path) -> Account:
    name = PREFIX + role
    try:
        pwd.getpwnam(name)
    except KeyError:
        pass
    else:
        if not _ours(name):
            pytest.fail(f"a Unix account {name!r} exists and was not made by this test; "
                        "remove it or run the test elsewhere", pytrace=False)
        _remove_account(name)  # left over by an interrupted run
    home = homes / name
    subprocess.run(["useradd", "--create-home", "--home-dir", str(home), "--shell", "/bin/bash",
                    "--comment", MARKER, name], check=True, capture_output=True, timeout=30)
    password = secrets.token_urlsafe(16)
    subprocess.run(["chpasswd"], input=f"{name}:{password}\n", text=True, check=True,
                   capture_output=True, timeout=30)
    entry = pwd.getpwnam(name)
    return Account(name, password, home, entry.pw_uid, entry.pw_gid)


# --- an interpreter every account can run ----------------------------------------------------

def _runs_as(account: Account, python: Path) -> bool:
    try:
        done = subprocess.run([str(python), "-c", "import jupyterhub, nbgrader"],
                              user=account.uid, group=account.gid, extra_groups=[],
                              capture_output=True, timeout=60, cwd="/")
    except OSError:
        return False
    return done.returncode == 0


def _shared_bin(root: Path, account: Account) -> Path:
    """The bin/ folder the hub runs from: the project's own when every account may run its
    interpreter (README: build the venv from a Python outside any private home); otherwise,
    as on a machine whose Python lives under /root, a thin venv in ROOT made from the
    system's Python of the same version that reuses the project's site-packages."""
    if _runs_as(account, BIN / "python"):
        return BIN
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    system = next((p for p in (Path("/usr/bin") / version, Path("/usr/local/bin") / version)
                   if p.exists()), None)
    if system is None:
        _missing(f"other accounts cannot run {BIN / 'python'} and there is no /usr/bin/{version} "
                 "to stand in: build the venv from a Python every account can run")
    venv = root / "venv"
    subprocess.run([str(system), "-m", "venv", "--without-pip", str(venv)], check=True,
                   capture_output=True, timeout=60)
    site_packages = next((BIN.parent / "lib").glob("python3*/site-packages"))
    own = next((venv / "lib").glob("python3*/site-packages"))
    (own / "course.pth").write_text(f"import site; site.addsitedir({str(site_packages)!r})\n")
    shebang = f"#!{BIN / 'python'}"
    for script in BIN.iterdir():
        if script.is_file() and not (venv / "bin" / script.name).exists():
            try:
                text = script.read_text()
            except UnicodeDecodeError:
                continue
            first, _, rest = text.partition("\n")
            if first.startswith(shebang):
                (venv / "bin" / script.name).write_text(f"#!{venv / 'bin' / 'python'}\n{rest}")
                (venv / "bin" / script.name).chmod(0o755)
    (venv / "bin" / "configurable-http-proxy").symlink_to(BIN / "configurable-http-proxy")
    for shared in ("etc", "share"):  # Jupyter's config (extensions) and data (JupyterLab, kernels)
        if (BIN.parent / shared).is_dir():
            (venv / shared).symlink_to(BIN.parent / shared)
    for path in [venv, *venv.rglob("*")]:
        if not path.is_symlink():
            path.chmod(path.stat().st_mode | 0o755 if path.is_dir() else
                       path.stat().st_mode | 0o444)
    if not _runs_as(account, venv / "bin" / "python"):
        _missing(f"other accounts cannot run {BIN / 'python'}, and the stand-in {system} "
                 "cannot import the project's packages")
    return venv / "bin"


# --- the hub -------------------------------------------------------------------------------

@dataclass
class Hub:
    root: Path
    course: Path
    exchange: Path
    log: Path
    ports: dict[str, int]
    env: dict[str, str]
    instructor: Account
    student: Account
    grader: Account
    bin: Path
    proc: subprocess.Popen[bytes] | None = None
    pids: set[int] = field(default_factory=set)
    left: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.ports['public']}"

    def as_grader(self, *args: str, timeout: float = 120) -> str:
        """Run a command as the grader account in the course directory, as an instructor would
        in the formgrader service's terminal."""
        env = dict(self.env, HOME=str(self.grader.home), USER=self.grader.name,
                   LOGNAME=self.grader.name,
                   JUPYTER_CONFIG_PATH=str(DEPLOY / "instructor"),
                   PATH=f"{self.bin}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}")
        done = subprocess.run(list(args), cwd=self.course, env=env, user=self.grader.uid,
                              group=self.grader.gid, extra_groups=[], capture_output=True,
                              text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            pytest.fail(f"`{' '.join(args)}` as {self.grader.name} failed "
                        f"({done.returncode}):\n{done.stdout}\n{done.stderr}", pytrace=False)
        return done.stdout + done.stderr

    def as_root_for_grader(self, *args: str, timeout: float = 120) -> str:
        """Run a command with the grader account's settings but as root (for an interpreter the
        grader account cannot run), then give what it wrote in the course back to the grader."""
        env = dict(self.env, HOME=str(self.grader.home), USER=self.grader.name,
                   LOGNAME=self.grader.name, JUPYTER_CONFIG_PATH=str(DEPLOY / "instructor"))
        done = subprocess.run(list(args), cwd=self.course, env=env, capture_output=True,
                              text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        for path in [self.course, *self.course.rglob("*")]:
            os.chown(path, self.grader.uid, self.grader.gid, follow_symlinks=False)
        if done.returncode != 0:
            pytest.fail(f"`{' '.join(args)}` as root failed ({done.returncode}):\n"
                        f"{done.stdout}\n{done.stderr}", pytrace=False)
        return done.stdout + done.stderr


def _html_export_works(hub: Hub, python: Path) -> bool:
    """Whether the grader account's interpreter can run nbconvert's HTML export (soupsieve)."""
    probe = "import bs4; bs4.BeautifulSoup('<p>x</p>', 'html.parser').select('p')"
    done = subprocess.run([str(python), "-c", probe], user=hub.grader.uid, group=hub.grader.gid,
                          extra_groups=[], capture_output=True, timeout=60, cwd="/")
    return done.returncode == 0


@pytest.fixture
def hub() -> Iterator[Hub]:
    _preconditions()
    root = Path(tempfile.mkdtemp(prefix="ppjh-"))
    root.chmod(0o755)
    accounts: list[Account] = []
    made: Hub | None = None
    try:
        homes = root / "home"
        homes.mkdir(mode=0o755)
        for role in ("grader", "instructor", "student"):
            accounts.append(_make_account(role, homes))
        grader, instructor, student = accounts
        bin_dir = _shared_bin(root, grader)
        # README step 3: the course directory belongs to the grader account.
        course = root / "course"
        (course / "source" / "toy").mkdir(parents=True)
        shutil.copy(REPO / "graders" / "nbgrader_config.py", course / "nbgrader_config.py")
        nbformat.write(_toy_notebook(SOLUTION), course / "source" / "toy" / "toy.ipynb")
        for path in [course, *course.rglob("*")]:
            os.chown(path, grader.uid, grader.gid)
        # ... and the exchange is shared by every account.
        exchange = root / "exchange"
        exchange.mkdir()
        exchange.chmod(0o777)
        os.chown(exchange, grader.uid, grader.gid)
        state = root / "state"
        ports = {name: _free_port() for name in ("public", "hub_api", "proxy_api", "formgrader")}
        env = dict(
            os.environ,
            COURSE_ID=COURSE_ID,
            COURSE_DIR=str(course),
            COURSE_EXCHANGE=str(exchange),
            COURSE_GRADER_USER=grader.name,
            COURSE_INSTRUCTORS=instructor.name,
            COURSE_STUDENTS=student.name,
            COURSE_HUB_STATE_DIR=str(state),
            COURSE_HUB_BIND_URL=f"http://127.0.0.1:{ports['public']}",
            COURSE_HUB_API_URL=f"http://127.0.0.1:{ports['hub_api']}",
            COURSE_PROXY_API_URL=f"http://127.0.0.1:{ports['proxy_api']}",
            COURSE_FORMGRADER_PORT=str(ports["formgrader"]),
            PYTHONWARNINGS="ignore",
            PYDEVD_DISABLE_FILE_VALIDATION="1",
        )
        for name in ("JUPYTER_CONFIG_PATH", "JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR",
                     "JUPYTER_RUNTIME_DIR", "JUPYTERHUB_API_TOKEN", "CONFIGPROXY_AUTH_TOKEN"):
            env.pop(name, None)
        made = Hub(root, course, exchange, root / "jupyterhub.log", ports, env,
                   instructor, student, grader, bin_dir)
        yield made
    finally:
        try:
            if made is not None:
                _stop(made)
        finally:
            for account in accounts:
                _kill_account_processes(account)
                _remove_account(account.name)
            shutil.rmtree(root, ignore_errors=True)
    assert made is not None
    _check_all_gone(made, accounts)


def _start(hub: Hub) -> None:
    with hub.log.open("wb") as log:
        hub.proc = subprocess.Popen(
            [str(hub.bin / "jupyterhub"), "-f", str(DEPLOY / "jupyterhub_config.py")],
            cwd=hub.root, env=hub.env, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
    hub.pids.add(hub.proc.pid)
    import requests

    def ready() -> bool:
        if hub.proc is not None and hub.proc.poll() is not None:
            pytest.fail(f"jupyterhub exited with status {hub.proc.returncode} while starting"
                        f"{_tail(hub.log)}", pytrace=False)
        return requests.get(f"{hub.url}/hub/api/", timeout=5).status_code == 200

    _wait("the hub to answer on /hub/api/", ready, 60, hub.log)


def _snapshot_children(hub: Hub) -> None:
    """Remember every process the hub started (proxy, servers, service) and its ports."""
    import psutil

    assert hub.proc is not None
    for child in psutil.Process(hub.proc.pid).children(recursive=True):
        hub.pids.add(child.pid)
        try:
            for conn in child.net_connections(kind="inet"):
                if conn.status == psutil.CONN_LISTEN and conn.laddr:
                    hub.ports.setdefault(f"pid{child.pid}:{conn.laddr.port}", conn.laddr.port)
        except psutil.Error:
            pass


def _stop(hub: Hub) -> None:
    """Stop the hub the way an operator does (SIGTERM); it stops the proxy, servers, service."""
    import psutil

    if hub.proc is None:
        return
    if hub.proc.poll() is None:
        _snapshot_children(hub)
        hub.proc.send_signal(signal.SIGTERM)
        try:
            hub.proc.wait(timeout=45)
        except subprocess.TimeoutExpired:
            hub.proc.kill()
            hub.proc.wait(timeout=10)
    # Anything still alive is a failure (reported by _check_all_gone); end it here.
    for pid in sorted(hub.pids):
        try:
            proc = psutil.Process(pid)
            if proc.status() != psutil.STATUS_ZOMBIE:
                hub.left.append(f"{pid} {proc.name()}")
                proc.kill()
        except psutil.Error:
            pass


def _kill_account_processes(account: Account) -> None:
    import psutil

    for proc in psutil.process_iter(["uids"]):
        try:
            if proc.info["uids"] and proc.info["uids"].real == account.uid:
                proc.kill()
        except psutil.Error:
            pass


def _check_all_gone(hub: Hub, accounts: list[Account]) -> None:
    assert not hub.left, f"still running after the hub stopped: {hub.left}"
    open_ports = [f"{name}={port}" for name, port in hub.ports.items() if _port_open(port)]
    assert not open_ports, f"ports still open after the hub stopped: {open_ports}"
    for account in accounts:
        with pytest.raises(KeyError):
            pwd.getpwnam(account.name)


# --- HTTP as a person would ----------------------------------------------------------------

def _login(hub: Hub, account: Account, next_url: str) -> Any:
    import requests

    session = requests.Session()
    session.get(f"{hub.url}/hub/login", timeout=10).raise_for_status()
    xsrf = session.cookies.get("_xsrf", path="/hub/")
    response = session.post(
        f"{hub.url}/hub/login", params={"next": next_url},
        data={"username": account.name, "password": account.password, "_xsrf": xsrf},
        timeout=60,
    )
    assert response.status_code < 400, (
        f"login as {account.name} failed: HTTP {response.status_code}{_tail(hub.log)}")
    assert "invalid username or password" not in response.text.lower(), (
        f"the hub refused {account.name}'s password{_tail(hub.log)}")
    return session


def _server_api(hub: Hub, session: Any, user: str) -> Callable[..., Any]:
    """Call the student's single-user server as their browser does (cookie + XSRF header)."""
    prefix = f"{hub.url}/user/{user}"

    def call(method: str, path: str, **kwargs: Any) -> Any:
        xsrf = session.cookies.get("_xsrf", path=f"/user/{user}/")
        headers = {"X-XSRFToken": xsrf} if xsrf else {}
        response = session.request(method, prefix + path, headers=headers, timeout=60, **kwargs)
        assert response.status_code == 200 and response.url.startswith(prefix), (
            f"{method} {path}: HTTP {response.status_code} at {response.url}\n"
            f"{response.text[:500]}{_tail(hub.log)}")
        return response.json()

    return call


def _assignment(listing: dict[str, Any], assignment: str) -> list[str]:
    assert listing.get("success"), f"nbgrader assignment list failed: {listing.get('value')}"
    return sorted(a["status"] for a in listing["value"] if a["assignment_id"] == assignment)


# --- the test -------------------------------------------------------------------------------

def test_a_class_on_jupyterhub(hub: Hub) -> None:
    started = time.monotonic()
    # The instructor generates and releases the assignment (in the formgrader's terminal).
    hub.as_grader(str(hub.bin / "nbgrader"), "generate_assignment", "toy")
    hub.as_grader(str(hub.bin / "nbgrader"), "release_assignment", "toy")
    assert (hub.exchange / COURSE_ID / "outbound" / "toy" / "toy.ipynb").is_file()

    _start(hub)

    # The student logs in through the hub's login form and lands on "spawn": their server starts.
    student = _login(hub, hub.student, "/hub/spawn")
    prefix = f"{hub.url}/user/{hub.student.name}/"

    def server_up() -> bool:
        # A page, as a browser asks: the OAuth redirects give the server's cookies (and _xsrf).
        response = student.get(prefix + "lab", timeout=30)
        return response.status_code == 200 and response.url.startswith(prefix)

    _wait(f"{hub.student.name}'s single-user server", server_up, 90, hub.log)
    call = _server_api(hub, student, hub.student.name)

    # The server opens ~/notebooks with the nbgrader assignment list.
    assert _assignment(call("GET", "/assignments", params={"course_id": COURSE_ID}), "toy") == [
        "released"]
    listing = call("POST", "/assignments/fetch", data={"course_id": COURSE_ID,
                                                       "assignment_id": "toy"})
    assert "fetched" in _assignment(listing, "toy"), listing
    fetched = hub.student.home / "notebooks" / "toy" / "toy.ipynb"
    assert fetched.is_file() and fetched.stat().st_uid == hub.student.uid, (
        f"not at {fetched}: {listing} {sorted(map(str, hub.student.home.rglob('*.ipynb')))}")

    # The student answers through the contents API, as JupyterLab saves, and submits.
    model = call("GET", "/api/contents/toy/toy.ipynb", params={"content": "1"})
    for cell in model["content"]["cells"]:
        if cell["metadata"].get("nbgrader", {}).get("grade_id") == "ex_add":
            assert "NotImplementedError" in "".join(cell["source"]), "the stub was not released"
            cell["source"] = ANSWER
    call("PUT", "/api/contents/toy/toy.ipynb",
         data=json.dumps({"type": "notebook", "format": "json", "content": model["content"]}))
    listing = call("POST", "/assignments/submit", data={"course_id": COURSE_ID,
                                                        "assignment_id": "toy"})
    assert "submitted" in _assignment(listing, "toy"), listing

    # Only instructors may open the formgrader service.
    instructor = _login(hub, hub.instructor, "/hub/home")
    formgrader = f"{hub.url}/services/{COURSE_ID}/formgrader"

    def formgrader_up() -> bool:
        response = instructor.get(formgrader, timeout=10)
        return response.status_code == 200 and response.url.startswith(formgrader)

    _wait("the formgrader service", formgrader_up, 60, hub.log)
    assert "Manage Assignments" in instructor.get(formgrader, timeout=10).text
    refused = student.get(formgrader, timeout=10)
    assert refused.status_code == 403, f"a student reached the formgrader: {refused.status_code}"
    _snapshot_children(hub)

    # The instructor collects and autograds with the course's grader.
    hub.as_grader(str(hub.bin / "nbgrader"), "collect", "toy")
    submitted = hub.course / "submitted" / hub.student.name / "toy" / "toy.ipynb"
    assert submitted.is_file(), "nbgrader collect brought nothing"
    output = hub.as_grader(str(hub.bin / "python"), "-m", "graders", "grade", str(hub.course),
                           "--assignment", "toy", "--cell-timeout", "30")
    with (hub.course / "grades.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows == [{"student_id": hub.student.name, "assignment": "toy", "score": "2",
                     "max_score": "2", "status": "graded"}], output

    # Feedback goes back through the exchange; the student fetches it from their server.
    # release_feedback needs timestamp.txt and submission_secret.txt in feedback/, which
    # generate_feedback copies from autograded/: the grader must have kept them there.
    autograded = hub.course / "autograded" / hub.student.name / "toy"
    assert (autograded / "timestamp.txt").is_file()
    assert (autograded / "submission_secret.txt").is_file()
    # Probe even the project's own venv: a copied interpreter (`venv --copies`) that cannot read
    # its home (/root/.pyenv) runs as the grader with the system's older standard library.
    if _html_export_works(hub, hub.bin / "python"):
        hub.as_grader(str(hub.bin / "nbgrader"), "generate_feedback", "toy")
    else:
        # The stand-in is the system's Python, and nbconvert's HTML export (soupsieve) needs
        # Python >= 3.11.5: the project's interpreter exports, as root, for the grader account.
        hub.as_root_for_grader(str(BIN / "nbgrader"), "generate_feedback", "toy")
    hub.as_grader(str(hub.bin / "nbgrader"), "release_feedback", "toy")
    call("POST", "/assignments/fetch_feedback", data={"course_id": COURSE_ID,
                                                      "assignment_id": "toy"})
    feedback = list((hub.student.home / "notebooks" / "toy" / "feedback").rglob("toy.html"))
    assert feedback, "the student received no feedback"
    assert "2 / 2" in feedback[0].read_text() or "2.0 / 2.0" in feedback[0].read_text()

    print(f"class walk-through took {time.monotonic() - started:.1f} s")
