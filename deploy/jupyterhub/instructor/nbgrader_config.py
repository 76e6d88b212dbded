"""nbgrader settings of the formgrader service (the grader account, in COURSE_DIR).

The hub puts this folder on JUPYTER_CONFIG_PATH and passes COURSE_ID,
COURSE_DIR and COURSE_EXCHANGE (see jupyterhub_config.py). The course's own
settings (cell timeout, folders, stubs) stay in COURSE_DIR/nbgrader_config.py,
a copy of graders/nbgrader_config.py, which nbgrader reads after this file
when it runs in COURSE_DIR.

In a terminal outside the hub, get the same settings with
    export JUPYTER_CONFIG_PATH=/path/to/deploy/jupyterhub/instructor COURSE_DIR=... COURSE_EXCHANGE=...
"""

import os

c = get_config()  # noqa: F821  (nbgrader injects get_config)

c.CourseDirectory.course_id = os.environ.get("COURSE_ID", "parallel-python")
c.CourseDirectory.root = os.environ.get("COURSE_DIR", "/srv/parallel-python/course")
c.Exchange.root = os.environ.get("COURSE_EXCHANGE", "/srv/nbgrader/exchange")
