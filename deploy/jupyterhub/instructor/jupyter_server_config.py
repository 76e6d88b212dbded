"""Server extensions of the formgrader service: the formgrader and Create
Assignment on; the learner's assignment list off (the grader account is not
a student)."""

c = get_config()  # noqa: F821  (Jupyter injects get_config)

c.ServerApp.jpserver_extensions.update({
    "nbgrader.server_extensions.formgrader": True,
    "nbgrader.server_extensions.validate_assignment": True,
    "nbgrader.server_extensions.assignment_list": False,
    "nbgrader.server_extensions.course_list": False,
})
