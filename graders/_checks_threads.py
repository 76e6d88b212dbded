"""Evidence checks for the threads exercises (re-exported by graders.checks)."""

from __future__ import annotations

__all__: list[str] = []
