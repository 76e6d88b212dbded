"""Imported first by the grader's own processes, to make them start faster.

jsonschema (through nbformat) imports ``rfc3987_syntax`` when it is installed,
to check IRI formats, and that import builds a parser grammar for over a second.
Notebooks never need IRI checks; marking the module absent makes jsonschema
skip that one format (it guards the import with ``suppress(ImportError)``).
"""

import sys

sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]
