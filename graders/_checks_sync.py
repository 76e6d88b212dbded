"""Check helpers for the sync chapter; re-exported by :mod:`graders.checks`."""

from __future__ import annotations

__all__: list[str] = []
