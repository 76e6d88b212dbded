"""Temporary: the module moved to course_lib/mpi/launch.py (split follows)."""

from course_lib.mpi.launch import *  # noqa: F403
from course_lib.mpi.launch import (  # noqa: F401
    __all__,
    _boot,
    _bundled_hydra,
    _call_entry,
    _rank_from_environment,
)
