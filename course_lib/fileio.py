"""Writing files so that a reader never sees half of one.

:func:`atomic_write` writes through a temporary file in the target's own folder
(so the final rename never crosses a file system), flushes it to disk, then
renames it over the target in one step: a reader sees the old file or the new
one, never a mix, and a failure leaves the old file and no temporary behind.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

__all__ = ["atomic_write", "atomic_write_with"]


def atomic_write_with(path: str | os.PathLike[str], write: Callable[[IO[Any]], object], *,
                      binary: bool = False, hidden_prefix: str = ".") -> Path:
    """Call ``write(handle)`` on a temporary file, then rename it over ``path``.

    The temporary file's name starts with ``hidden_prefix`` and ends in ``.part``,
    so that a reader globbing for the final names never picks it up. Returns the
    path written. Missing parent folders are created.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f"{hidden_prefix}{target.name}-", suffix=".part",
                               dir=target.parent)
    try:
        with (os.fdopen(fd, "wb") if binary
              else os.fdopen(fd, "w", encoding="utf-8", newline="")) as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def atomic_write(path: str | os.PathLike[str], data: str | bytes) -> Path:
    """Replace ``path`` with ``data`` (text is written as UTF-8) in one rename."""
    return atomic_write_with(path, lambda handle: handle.write(data),
                             binary=isinstance(data, bytes))
