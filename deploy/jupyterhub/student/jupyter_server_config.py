"""Server extensions of a learner's single-user server: the nbgrader
assignment list (fetch, submit, feedback) and Validate on; the instructor
tools off (the formgrader lives in the course's own service)."""

c = get_config()  # noqa: F821  (Jupyter injects get_config)

c.ServerApp.jpserver_extensions.update({
    "nbgrader.server_extensions.assignment_list": True,
    "nbgrader.server_extensions.validate_assignment": True,
    "nbgrader.server_extensions.formgrader": False,
    "nbgrader.server_extensions.course_list": False,
})
