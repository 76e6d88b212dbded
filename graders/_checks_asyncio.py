"""Check helpers for the asyncio chapter; re-exported by :mod:`graders.checks`."""

from __future__ import annotations

__all__: list[str] = []
