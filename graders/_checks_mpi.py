"""Evidence checks for the mpi exercises (re-exported by graders.checks)."""

from __future__ import annotations

__all__: list[str] = []
