"""``python -m benchmarks [--only NAME,NAME] [--json FILE]``."""

from __future__ import annotations

import argparse
import json
import operator
import sys
from pathlib import Path

from course_lib.fileio import atomic_write

from . import (  # noqa: F401  (importing a module registers its figures)
    FIGURES,
    Result,
    Skip,
    aio,
    course,
    distributed,
    gpu,
    grading,
    mpi,
    processes,
    threads,
    tracer,
)

_COMPARE = {">=": operator.ge, "<=": operator.le}


def _goal_met(goal: str, value: float) -> str:
    parts = goal.split()
    if len(parts) == 2 and parts[0] in _COMPARE:
        return "met" if _COMPARE[parts[0]](value, float(parts[1])) else "NOT met"
    return ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--only", help="comma-separated figure names (default: all)")
    parser.add_argument(
        "--json", type=Path, metavar="FILE", help="also write {name: value} to FILE"
    )
    parser.add_argument("--list", action="store_true", help="list the figures and exit")
    args = parser.parse_args(argv)

    if args.list:
        for fig in FIGURES.values():
            print(f"{fig.name}: {fig.description} (goal: {fig.goal})")
        return 0
    names = list(FIGURES)
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in names if n not in FIGURES]
        if unknown:
            print(f"error: unknown figure(s) {', '.join(unknown)}; known: {', '.join(FIGURES)}",
                  file=sys.stderr)
            return 2

    values: dict[str, float | None] = {}
    summary: list[str] = []
    for name in names:
        fig = FIGURES[name]
        try:
            result: Result = fig.measure()
        except Skip as reason:
            print(f"{name}: skipped ({reason})", flush=True)
            values[name] = None
            continue
        values[name] = result.value
        print(f"{name}: {result.value:.4g} {result.unit}", flush=True)
        verdict = _goal_met(fig.goal, result.value)
        detail = f"; {result.detail}" if result.detail else ""
        summary.append(
            f"#   {name}: goal {fig.goal}{' (' + verdict + ')' if verdict else ''}{detail}"
        )
    if summary:
        print("# goals and details:")
        print("\n".join(summary))
    if args.json:
        atomic_write(args.json, json.dumps(values, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
