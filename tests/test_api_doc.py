"""docs/API.md is the contract between the library and its notebooks: measured both ways.

The document is a list of sections, each headed ``### <module> ...`` (one module,
then anything). Inside a section, each line that is not indented is an entry when it
starts (after ``- `` and an optional ``Label: ``) with a code span: the span's leading
name (``name``, ``name(...)``, ``async name(...)``, or a dotted ``course_lib.x.name``)
is what the line documents.

- Every public module (a package of ``course_lib`` or ``graders``, or a module right
  under them, whose source assigns ``__all__``; found by walking the packages) has each
  name of its ``__all__`` written in code (`` `name`` or `` `name(...)``) in a section
  headed by that module, by a package above it other than the top level, or by a module
  inside it (``course_lib.mpi``'s names may sit under ``### course_lib.mpi.launch``).
  A module inside a package is covered by its package's ``__all__``.
- Every entry's name exists in its section's module: no stale entries.
- Every section names a module that exists.

Modules whose name starts with ``_`` are internal; the few others that need no
documentation are listed in ``EXEMPT`` with the reason.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import pkgutil
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pytest

from .conftest import REPO

API_MD = REPO / "docs" / "API.md"
ROOTS = ("course_lib", "graders")

# Public-looking modules that are not part of the documented contract.
EXEMPT: dict[str, str] = {}

_HEADING = re.compile(r"^### (?P<module>(?:course_lib|graders)(?:\.\w+)*)(?:\s|$)")
_ENTRY = re.compile(r"^(?:- )?(?:[^`:\n]{1,80}: )?`(?!python -m )(?:async )?"
                    r"(?P<path>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)")
_MENTION = re.compile(r"`(?:async )?(?P<path>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)")


@dataclass
class Section:
    module: str
    line: int
    text: list[str] = field(default_factory=list)

    def mentions(self) -> set[str]:
        """Every name written at the start of a code span, and the last part of dotted ones."""
        found: set[str] = set()
        for line in self.text:
            for match in _MENTION.finditer(line):
                path = match["path"]
                found.add(path)
                found.add(path.rpartition(".")[2])
        return found

    def entries(self) -> list[tuple[int, str]]:
        """(line number, leading name) of each entry line (see the module docstring)."""
        out = []
        for offset, line in enumerate(self.text, start=1):
            if line[:1].isspace():
                continue  # a sub-entry (`tr.span(...)`): an attribute of the entry above
            match = _ENTRY.match(line)
            if match:
                out.append((self.line + offset, match["path"]))
        return out


def parse_api(text: str) -> list[Section]:
    """The ``###`` sections of API.md, in order; an unparsable heading raises ValueError."""
    sections: list[Section] = []
    current: Section | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        if line.startswith("#"):
            current = None
            if line.startswith("### "):
                match = _HEADING.match(line)
                if match is None:
                    raise ValueError(f"API.md:{number}: a ### heading must start with a module "
                                     f"name: {line!r}")
                current = Section(match["module"], number)
                sections.append(current)
            continue
        if current is not None:
            current.text.append(line)
    return sections


def _assigns_all(path: Path) -> bool:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in tree.body:
        targets = (node.targets if isinstance(node, ast.Assign)
                   else [node.target] if isinstance(node, ast.AnnAssign | ast.AugAssign) else [])
        if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
            return True
    return False


@cache
def public_modules() -> tuple[str, ...]:
    """The packages, and the modules directly under ROOTS, whose source assigns ``__all__``.

    A module inside a package (``course_lib.mpi.launch``, ``graders.checks.core``) is not
    listed: its package's ``__all__`` says which of its names notebooks use, and those are
    checked under the package.
    """
    found = []
    for root in ROOTS:
        package = importlib.import_module(root)
        candidates = [(root, Path(package.__file__ or ""))]
        for info in pkgutil.walk_packages(package.__path__, f"{root}.",
                                          onerror=lambda name: None):
            parts = info.name.split(".")
            if any(part.startswith("_") for part in parts):
                continue
            if not info.ispkg and len(parts) > 2:
                continue  # a submodule of a package
            spec = importlib.util.find_spec(info.name)
            if spec is not None and spec.origin and spec.origin.endswith(".py"):
                candidates.append((info.name, Path(spec.origin)))
        found += [name for name, path in candidates
                  if path.is_file() and name not in EXEMPT and _assigns_all(path)]
    return tuple(sorted(found))


@cache
def sections() -> tuple[Section, ...]:
    return tuple(parse_api(API_MD.read_text(encoding="utf-8")))


def _resolve(path: str) -> object:
    """The object a dotted ``package.module.name`` path names; AttributeError/ImportError."""
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            target: object = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attribute in parts[cut:]:
            target = getattr(target, attribute)
        return target
    raise ImportError(path)


def _may_document(section: str, module: str) -> bool:
    """Whether a section headed ``section`` may document ``module``'s names."""
    if section == module:
        return True
    if module in ROOTS:
        return False  # the top-level names need their own section
    above = module.startswith(f"{section}.") and section not in ROOTS
    return above or section.startswith(f"{module}.")


# --------------------------------------------------------------------------- the parser


def test_parser_reads_sections_entries_and_mentions() -> None:
    text = "\n".join([
        "# title", "## chapter", "### course_lib.x  (note)",
        "- `alpha(a, b) -> int`: does; see `beta`.",
        "  - `tr.sub()`: a method, not an entry.",
        "- Label: `gamma` and `course_lib.y.delta(...)`",
        "`async epsilon(x)`, `zeta`", "- `python -m course_lib doctor`: a command",
        "### graders.z", "- `course_lib.q.eta`",
    ])
    first, second = parse_api(text)
    assert (first.module, second.module) == ("course_lib.x", "graders.z")
    assert [name for _, name in first.entries()] == ["alpha", "gamma", "epsilon"]
    assert [name for _, name in second.entries()] == ["course_lib.q.eta"]
    assert {"alpha", "beta", "gamma", "delta", "epsilon", "zeta"} <= first.mentions()
    assert "python" not in {name for _, name in first.entries()}
    with pytest.raises(ValueError, match="must start with a module"):
        parse_api("### The grader")


def test_which_sections_may_document_a_module() -> None:
    assert _may_document("course_lib.mpi", "course_lib.mpi")
    assert _may_document("course_lib.mpi.launch", "course_lib.mpi")
    assert _may_document("course_lib.mpi", "course_lib.mpi.pictures")
    assert not _may_document("course_lib", "course_lib.mpi")
    assert not _may_document("course_lib.mpi", "course_lib")
    assert not _may_document("course_lib.mpich", "course_lib.mpi")


def test_public_modules_are_found_by_walking_the_packages() -> None:
    modules = public_modules()
    assert {"course_lib", "course_lib.trace", "graders.checks", "graders.grade"} <= set(modules)
    assert "graders.checks.core" not in modules  # documented through graders.checks
    assert not [m for m in modules if any(p.startswith("_") for p in m.split("."))]


# --------------------------------------------------------------------------- the contract


def test_every_section_names_a_module() -> None:
    missing = []
    for section in sections():
        try:
            importlib.import_module(section.module)
        except ImportError as exc:
            missing.append(f"API.md:{section.line}: {section.module} ({exc})")
    assert not missing, f"sections for modules that do not exist: {missing}"


@pytest.mark.parametrize("module", public_modules())
def test_every_public_name_is_documented_under_its_module(module: str) -> None:
    names = getattr(importlib.import_module(module), "__all__", ())
    documented: set[str] = set()
    for section in sections():
        if _may_document(section.module, module):
            documented |= section.mentions()
    missing = sorted(set(names) - documented)
    assert not missing, (f"docs/API.md does not document {module}'s {missing} in a section "
                         f"headed `### {module}` (or a package above it, or a module inside)")


@pytest.mark.parametrize("section", sections(), ids=lambda s: f"{s.module}@{s.line}")
def test_every_documented_name_exists(section: Section) -> None:
    module = importlib.import_module(section.module)
    stale = []
    for line, path in section.entries():
        try:
            if path.split(".")[0] in ROOTS:
                _resolve(path)
            else:
                getattr(module, path)
        except (AttributeError, ImportError):
            stale.append(f"API.md:{line}: {path}")
    assert not stale, f"entries under `### {section.module}` that it does not have: {stale}"

