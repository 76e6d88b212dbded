"""nbgrader configuration of the Parallel Python course.

`python -m graders release` and `python -m graders grade` run nbgrader with
this file as the course configuration; a class's own COURSE_DIR carries a copy.
"""

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # nbgrader injects get_config when it runs this file
    from traitlets.config import Config

    def get_config() -> Config: ...

c = get_config()  # noqa: F821  (nbgrader injects get_config)

c.CourseDirectory.course_id = "parallel-python"
c.CourseDirectory.source_directory = "source"
c.CourseDirectory.release_directory = "release"
c.CourseDirectory.submitted_directory = "submitted"
c.CourseDirectory.autograded_directory = "autograded"
c.CourseDirectory.feedback_directory = "feedback"
# Only notebooks and small data files belong to an assignment.
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback"]

# Parallel code waits on threads, processes and clusters: give every cell a
# bound, so one deadlocked answer costs one exercise, not the whole notebook.
c.ExecutePreprocessor.timeout = 60
c.ExecutePreprocessor.interrupt_on_timeout = True

c.ClearSolutions.code_stub = {
    "python": "# YOUR CODE HERE\nraise NotImplementedError()",
}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"
