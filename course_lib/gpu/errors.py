"""The errors of chapter 7's helpers: each message says what to change."""

from __future__ import annotations

__all__ = ["BackendError", "GPUMemoryError", "KernelError", "LaunchConfigError"]


class BackendError(RuntimeError):
    """A backend that was asked for is not available; the message says what to do."""


class LaunchConfigError(ValueError):
    """A kernel launch configuration that no GPU would accept; the message says what to change."""


class GPUMemoryError(MemoryError):
    """An allocation that does not fit; the message says how much was asked and what is free."""


class KernelError(RuntimeError):
    """A kernel failed while it ran; the message names the thread and the likely mistake."""
