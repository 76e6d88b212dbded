"""Command line of course_lib: ``python -m course_lib setup|lab|configure-jupyter|doctor``.

Windows: ``py -m course_lib setup`` then ``py -m course_lib lab``; elsewhere ``python3 -m ...``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from . import setup as _setup


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (subcommands: setup, lab, configure-jupyter, doctor)."""
    parser = argparse.ArgumentParser(
        prog="python -m course_lib",
        description="Helpers of the Parallel Python course.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _setup.add_arguments(commands)
    doctor = commands.add_parser(
        "doctor",
        help="what this machine offers the course and what to do about anything missing",
        description="Report cores, start method, GIL, MPI, GPU, broker and package versions.",
    )
    doctor.add_argument("--json", action="store_true", help="print a JSON object instead of text")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (argparse exits 2 on bad arguments)."""
    args = build_parser().parse_args(argv)
    if args.command == "doctor":
        from .doctor import run_doctor

        return run_doctor(as_json=bool(args.json))
    return _setup.run_command(args)


if __name__ == "__main__":
    raise SystemExit(main())
