"""JupyterHub configuration for teaching Parallel Python to a class.

Start it as root from the repository's virtual environment:

    sudo COURSE_INSTRUCTORS=alice COURSE_STUDENTS="bob carol" \\
        .venv/bin/jupyterhub -f deploy/jupyterhub/jupyterhub_config.py

Everything a site must decide is read from the environment variables listed in
SITE SETTINGS below; nothing else in this file should need editing. See
deploy/jupyterhub/README.md for the whole walk-through.

Design (nbgrader 0.9's "one class, several graders" pattern):
- every person logs in with their own Unix account (PAM) and gets their own
  single-user JupyterLab, run under that account, opening ~/notebooks;
- the formgrader runs as a JupyterHub *service* named after the course, under a
  dedicated grader account, in the course directory; only the `instructors`
  group may open it;
- assignments move through an nbgrader exchange directory shared by all accounts.
  nbgrader knows a student by the Unix account that submits, so each student
  needs a real account: a shared account would make every submission the same.
"""

from __future__ import annotations

import os
import pwd
import shutil
import sys
from pathlib import Path

c = get_config()  # noqa: F821  (JupyterHub injects get_config)


def _env(name: str, default: str) -> str:
    return os.environ.get(name, "").strip() or default


def _names(name: str) -> list[str]:
    return sorted({n for n in os.environ.get(name, "").replace(",", " ").split() if n})


# ---------------------------------------------------------------------------
# SITE SETTINGS: set these environment variables (or change the defaults here).
# ---------------------------------------------------------------------------
# nbgrader course id; must equal c.CourseDirectory.course_id of the course's nbgrader_config.py.
COURSE_ID = _env("COURSE_ID", "parallel-python")
# The instructors' course directory: nbgrader_config.py, source/, release/, submitted/, ...
COURSE_DIR = _env("COURSE_DIR", "/srv/parallel-python/course")
# The nbgrader exchange, shared by every account (created by README step 3).
EXCHANGE = _env("COURSE_EXCHANGE", "/srv/nbgrader/exchange")
# Unix account that owns COURSE_DIR and runs the formgrader service.
GRADER_USER = _env("COURSE_GRADER_USER", "grader-parallel-python")
# Unix accounts of the class, separated by spaces or commas.
INSTRUCTORS = _names("COURSE_INSTRUCTORS")
STUDENTS = _names("COURSE_STUDENTS")
# Hub administrators (optional; they may manage every user).
ADMINS = _names("COURSE_HUB_ADMINS")
# How people log in: "pam" (Unix passwords) or any JupyterHub authenticator class.
AUTHENTICATOR = _env("COURSE_HUB_AUTHENTICATOR", "pam")
# Where the hub keeps its database, cookie secret and proxy pid file.
STATE_DIR = _env("COURSE_HUB_STATE_DIR", "/srv/jupyterhub")
# Public address. Put TLS in front (a reverse proxy, or c.JupyterHub.ssl_cert/ssl_key).
BIND_URL = _env("COURSE_HUB_BIND_URL", "http://:8000")
# Internal addresses: the hub's API and the proxy's API (loopback only).
HUB_API_URL = _env("COURSE_HUB_API_URL", "http://127.0.0.1:8081")
PROXY_API_URL = _env("COURSE_PROXY_API_URL", "http://127.0.0.1:8001")
FORMGRADER_PORT = int(_env("COURSE_FORMGRADER_PORT", "9999"))
# Folder in each home where a learner's chapters land (like the repository's notebooks/).
NOTEBOOK_DIR = _env("COURSE_NOTEBOOK_DIR", "notebooks")
# ---------------------------------------------------------------------------

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent  # the course's virtual environment
SINGLEUSER = str(BIN / "jupyterhub-singleuser")

os.makedirs(STATE_DIR, mode=0o700, exist_ok=True)

# --- the hub and its proxy ---------------------------------------------------
c.JupyterHub.bind_url = BIND_URL
c.JupyterHub.hub_bind_url = HUB_API_URL
c.ConfigurableHTTPProxy.api_url = PROXY_API_URL
c.JupyterHub.db_url = f"sqlite:///{os.path.join(STATE_DIR, 'jupyterhub.sqlite')}"
c.JupyterHub.cookie_secret_file = os.path.join(STATE_DIR, "jupyterhub_cookie_secret")
c.ConfigurableHTTPProxy.pid_file = os.path.join(STATE_DIR, "jupyterhub-proxy.pid")
# configurable-http-proxy comes from npm: deploy/jupyterhub/install.sh puts it in the venv.
_proxy = BIN / "configurable-http-proxy"
if _proxy.exists():
    c.ConfigurableHTTPProxy.command = [str(_proxy)]
elif shutil.which("configurable-http-proxy") is None:
    sys.exit("configurable-http-proxy is missing: run `bash deploy/jupyterhub/install.sh`.")
# Stopping the hub stops the proxy and every single-user server too.
c.JupyterHub.cleanup_servers = True
c.JupyterHub.cleanup_proxy = True

# --- who may log in ------------------------------------------------------------
c.JupyterHub.authenticator_class = AUTHENTICATOR
c.PAMAuthenticator.open_sessions = False
c.Authenticator.allowed_users = set(INSTRUCTORS) | set(STUDENTS) | set(ADMINS)
c.Authenticator.admin_users = set(ADMINS)
if not (INSTRUCTORS or STUDENTS or ADMINS):
    print("warning: COURSE_INSTRUCTORS and COURSE_STUDENTS are empty: nobody can log in.",
          file=sys.stderr)

# --- groups and what they may do ---------------------------------------------------
c.JupyterHub.load_groups = {
    "instructors": {"users": INSTRUCTORS},
    "students": {"users": STUDENTS},
}
c.JupyterHub.load_roles = [
    {
        "name": "course-instructor",
        "description": "Open the course's formgrader; see, start, stop and open students' servers.",
        "groups": ["instructors"],
        "scopes": [
            f"access:services!service={COURSE_ID}",
            "list:services",
            f"read:services!service={COURSE_ID}",
            "admin-ui",
            "list:users!group=students",
            "read:users!group=students",
            "admin:servers!group=students",
            "access:servers!group=students",
        ],
    },
    {
        "name": "course-student",
        "description": "See that the course service exists (it is not open to students).",
        "groups": ["students"],
        "scopes": ["list:services", f"read:services!service={COURSE_ID}"],
    },
]

# --- everyone's single-user server ---------------------------------------------------
_course_env = {"COURSE_ID": COURSE_ID, "COURSE_EXCHANGE": EXCHANGE, "COURSE_DIR": COURSE_DIR,
               "COURSE_NOTEBOOK_DIR": NOTEBOOK_DIR}
c.Spawner.cmd = [SINGLEUSER]
c.Spawner.default_url = "/lab"
c.Spawner.notebook_dir = f"~/{NOTEBOOK_DIR}"
# deploy/jupyterhub/student/ holds nbgrader_config.py (course id, exchange), the server
# extensions (assignment list and validate on, formgrader off) and the lab page config.
c.Spawner.environment = {"JUPYTER_CONFIG_PATH": str(HERE / "student"), **_course_env}
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 60


def _make_notebook_dir(spawner) -> None:  # type: ignore[no-untyped-def]
    """Create ~/NOTEBOOK_DIR for the user before the server starts there."""
    try:
        account = pwd.getpwnam(spawner.user.name)
    except KeyError:
        return  # not a Unix account: another spawner creates the folder
    folder = Path(account.pw_dir) / NOTEBOOK_DIR
    if not folder.is_dir():
        folder.mkdir(parents=True, mode=0o755)
        os.chown(folder, account.pw_uid, account.pw_gid)


c.Spawner.pre_spawn_hook = _make_notebook_dir

# --- the formgrader: a service run by the grader account in COURSE_DIR ---------------------
c.JupyterHub.services = [
    {
        "name": COURSE_ID,
        "display": True,
        "url": f"http://127.0.0.1:{FORMGRADER_PORT}",
        "command": [SINGLEUSER, f"--ServerApp.root_dir={COURSE_DIR}"],
        "user": GRADER_USER,
        "cwd": COURSE_DIR,
        "oauth_no_confirm": True,
        "environment": {
            "JUPYTER_CONFIG_PATH": str(HERE / "instructor"),
            "JUPYTERHUB_DEFAULT_URL": "/formgrader",
            **_course_env,
        },
    }
]
