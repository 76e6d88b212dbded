"""The structure's rules, measured on the source (imports inside functions included).

- no import cycle between the project's modules: a lazy import hides a cycle,
  it does not remove it;
- no `_private` name imported from another module;
- no module over 800 lines.

docs/ARCHITECTURE.md draws the packages these rules keep apart;
tests/test_api_doc.py holds docs/API.md to every module's `__all__`.
"""

from __future__ import annotations

import ast
from pathlib import Path

from .conftest import REPO

PACKAGES = ("course_lib", "graders", "benchmarks")
MAX_LINES = 800



def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            if "source" in path.relative_to(REPO).parts:
                continue
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _owner(name: str, modules: dict[str, Path]) -> str:
    """The project module that `name` (a dotted import target) lives in, or ''."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name


def _imports(module: str, path: Path, modules: dict[str, Path]) -> tuple[set[str], set[str]]:
    """(project modules imported anywhere in the file, private names imported from others)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    edges: set[str] = set()
    private: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                target = _owner(alias.name, modules)
                if target and target != module:
                    edges.add(target)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                full = f"{source}.{alias.name}"
                target = full if full in modules else _owner(source, modules)
                if not target or target == module:
                    continue
                edges.add(target)
                dunder = alias.name.startswith("__")
                if full not in modules and alias.name.startswith("_") and not dunder:
                    private.add(f"{module} -> {target}.{alias.name}")
    return edges, private


def _graph() -> tuple[dict[str, set[str]], set[str]]:
    modules = _modules()
    graph, private = {}, set()
    for module, path in modules.items():
        graph[module], found = _imports(module, path, modules)
        private |= found
    return graph, private


def _cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected groups of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                group = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.add(member)
                    if member == node:
                        break
                if len(group) > 1:
                    groups.append(group)
    return groups


def test_cycle_finder_finds_a_cycle_through_a_lazy_import() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [{"a", "b", "c"}]


def test_no_import_cycles() -> None:
    graph, _ = _graph()
    cycles = [sorted(c) for c in _cycles(graph)]
    assert not cycles, ("import cycles (imports inside functions count: a lazy import hides a "
                        f"cycle, it does not remove it): {cycles}")


def test_no_private_names_imported_from_another_module() -> None:
    _, private = _graph()
    assert not private, (
        "a `_private` name imported from another module: make it public (and document it) "
        f"or keep the code where it is used: {sorted(private)}")


def test_no_module_over_800_lines() -> None:
    large = {m: n for m, p in _modules().items()
             if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not large, f"modules over {MAX_LINES} lines: split them by job: {large}"


def test_the_rules_see_the_packages() -> None:
    """The walk finds subpackages' modules, so the rules cannot pass by not looking."""
    modules = _modules()
    for name in ("course_lib.mpi.rank", "course_lib.sync.locks", "course_lib.machine.cores",
                 "graders.checks.core", "benchmarks"):
        assert name in modules, f"{name} is not measured"
    graph, _ = _graph()
    assert "course_lib.machine.cores" in graph["course_lib.processes.pools"]


MACHINE_FACTS = {"course_lib.machine.cores", "course_lib.machine.mpiexec"}
MACHINE_REPORT_USERS = {"course_lib", "course_lib.doctor"}


def test_chapters_import_the_machines_facts_not_its_report() -> None:
    """The machine report probes the chapters (GPU, brokers, MPI), so they must not import it."""
    graph, _ = _graph()
    wrong = sorted(
        f"{module} -> {target}"
        for module, targets in graph.items()
        if not module.startswith("course_lib.machine") and module not in MACHINE_REPORT_USERS
        for target in targets
        if target.startswith("course_lib.machine") and target not in MACHINE_FACTS)
    assert not wrong, ("import usable_cores, mp_context, start_method ... from "
                       "course_lib.machine.cores and find_mpiexec from "
                       f"course_lib.machine.mpiexec: {wrong}")
