"""Typed access to nbformat, which ships without type annotations.

Every read, write and node the grader and the benchmarks make goes through these
small wrappers, so the rest of ``graders`` and ``benchmarks`` is checked by
``mypy --strict`` without untyped calls. Notebooks are always read as version 4.

Each ``# type: ignore[no-untyped-call]`` below is there because nbformat (5.10)
has no annotations; the wrapper states the type it returns.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, cast

import nbformat
from nbformat import NotebookNode

__all__ = ["NotebookNode", "from_dict", "new_output", "read", "reads", "validate", "write",
           "writes"]

AS_VERSION = 4


def read(path: str | os.PathLike[str]) -> NotebookNode:
    """The notebook at ``path``, converted to nbformat 4."""
    nb = nbformat.read(path, as_version=AS_VERSION)  # type: ignore[no-untyped-call]
    return cast(NotebookNode, nb)


def reads(text: str) -> NotebookNode:
    """The notebook in the JSON text ``text``, converted to nbformat 4."""
    nb = nbformat.reads(text, as_version=AS_VERSION)  # type: ignore[no-untyped-call]
    return cast(NotebookNode, nb)


def write(nb: NotebookNode, path: str | os.PathLike[str]) -> None:
    """Write ``nb`` to ``path`` as nbformat 4 JSON."""
    nbformat.write(nb, path)  # type: ignore[no-untyped-call]


def writes(nb: NotebookNode) -> str:
    """``nb`` as nbformat 4 JSON text."""
    return cast(str, nbformat.writes(nb))  # type: ignore[no-untyped-call]


def validate(nb: NotebookNode) -> None:
    """Raise ``nbformat.ValidationError`` when ``nb`` does not follow the schema."""
    nbformat.validate(nb)


def new_output(output_type: str, **fields: Any) -> NotebookNode:
    """A new code cell output (``stream``, ``error``, ``display_data``, ...)."""
    output = nbformat.v4.new_output(output_type, **fields)  # type: ignore[no-untyped-call]
    return cast(NotebookNode, output)


def from_dict(data: Mapping[str, Any]) -> NotebookNode:
    """``data`` (nested dicts and lists) as notebook nodes."""
    return cast(NotebookNode, nbformat.from_dict(data))  # type: ignore[no-untyped-call]
