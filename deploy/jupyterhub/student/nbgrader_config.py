"""nbgrader settings of every single-user server (students and instructors alike).

The hub puts this folder on JUPYTER_CONFIG_PATH and passes COURSE_ID and
COURSE_EXCHANGE (see jupyterhub_config.py), so nothing here needs editing.
Fetched chapters land in the server's root folder (~/notebooks), one folder
per chapter, as in the repository's notebooks/.
"""

import os

c = get_config()  # noqa: F821  (nbgrader injects get_config)

c.CourseDirectory.course_id = os.environ.get("COURSE_ID", "parallel-python")
c.Exchange.root = os.environ.get("COURSE_EXCHANGE", "/srv/nbgrader/exchange")
# Absolute, because nbgrader 0.9's assignment list resolves a relative one against the
# server's working directory (the home), not against its root folder (~/notebooks).
c.Exchange.assignment_dir = os.path.expanduser(
    os.path.join("~", os.environ.get("COURSE_NOTEBOOK_DIR", "notebooks")))
