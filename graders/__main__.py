"""Command line: ``python -m graders release|check|grade``.

``grade --scheduler ADDRESS`` (or ``COURSE_DASK_SCHEDULER``) grades on the
workers of a running Dask scheduler (``graders.cluster``).

Bad input (a missing path, a file that is not a notebook, invalid JSON, a
notebook of another assignment) gets one line on stderr and exit status 2,
and nothing is written.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from . import _fast_start  # noqa: F401  (first: see its docstring)
from .notebooks import STUDENT_DIR, UsageError


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m graders",
        description="Release, self-check and autograde the Parallel Python course.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    release = commands.add_parser("release", help="regenerate notebooks/ from graders/source/")
    release.add_argument("--check", action="store_true",
                         help="change nothing; exit 1 if notebooks/ is out of date")

    check = commands.add_parser(
        "check", help="run a notebook and report each exercise (visible tests)"
    )
    check.add_argument(
        "notebook",
        type=Path,
        help="the notebook to check, e.g. notebooks/ch01_threads/01_threads.ipynb",
    )
    check.add_argument(
        "--cell-timeout",
        type=_positive_int,
        default=60,
        metavar="S",
        help="seconds a cell may run (default 60)",
    )

    grade = commands.add_parser(
        "grade", help="autograde every submission under COURSE_DIR/submitted/"
    )
    grade.add_argument("course_dir", type=Path, metavar="COURSE_DIR")
    grade.add_argument("--assignment", metavar="A", help="grade only this assignment")
    grade.add_argument("--workers", type=_positive_int, default=None, metavar="N",
                       help="submissions graded at once (default: the usable cores)")
    grade.add_argument("--cell-timeout", type=_positive_int, default=60, metavar="S",
                       help="seconds a cell may run (default 60)")
    grade.add_argument("--memory-mb", type=_positive_int, default=2048, metavar="M",
                       help="memory limit of each submission, in MiB (default 2048)")
    grade.add_argument("--max-processes", type=_positive_int, default=512, metavar="P",
                       help="processes and threads a submission may run at once (default 512)")
    grade.add_argument("--budget", type=_positive_int, default=1800, metavar="S",
                       help="seconds a whole notebook may run (default 1800)")
    where = grade.add_mutually_exclusive_group()
    where.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        default=None,
        help="grade on the workers of this running Dask scheduler, e.g. tcp://host:8786 "
        "(default: COURSE_DASK_SCHEDULER if set; see deploy/dask/README.md); "
        "--workers is then the number of submissions sent at once",
    )
    where.add_argument(
        "--local",
        action="store_true",
        help="grade on this machine even if COURSE_DASK_SCHEDULER is set",
    )
    return parser


def _release(check: bool) -> int:
    from .release import release, stale_files

    if check:
        stale = stale_files()
        if stale:
            print(
                "notebooks/ is out of date; run `python -m graders release`. Differs:",
                file=sys.stderr,
            )
            for name in stale[:20]:
                print(f"  {name}", file=sys.stderr)
            return 1
        print("notebooks/ is up to date.")
        return 0
    chapters = release()
    print(f"Released {len(chapters)} chapter(s) into {STUDENT_DIR}: {', '.join(chapters)}")
    return 0


def _check(notebook: Path, cell_timeout: int) -> int:
    from .selfcheck import check_notebook, format_report

    results = check_notebook(notebook, cell_timeout=cell_timeout)
    print(format_report(notebook, results))
    return 0 if all(r.passed for r in results) else 1


def _grade(args: argparse.Namespace) -> int:
    from .grade import grade_course
    from .report import GradingProgress, summary_table

    options = dict(
        assignment=args.assignment,
        cell_timeout=args.cell_timeout,
        memory_mb=args.memory_mb,
        max_processes=args.max_processes,
        notebook_budget=args.budget,
    )
    scheduler = None
    if not args.local:
        from .cluster import scheduler_address

        scheduler = scheduler_address(args.scheduler)
    with GradingProgress(sys.stderr) as bar:
        if scheduler:
            from .cluster import grade_on_cluster

            def connected(info: dict[str, dict[str, object]]) -> None:
                kinds = sorted({str(item["isolation"]) for item in info.values()})
                print(
                    f"Dask scheduler {scheduler}: {len(info)} worker(s); "
                    f"their sandbox: {'; '.join(kinds)}",
                    file=sys.stderr,
                    flush=True,
                )

            rows = grade_on_cluster(
                args.course_dir,
                scheduler,
                in_flight=args.workers,
                on_connect=connected,
                progress=bar.update,
                on_start=bar.start,
                **options,
            )
        else:
            rows = grade_course(args.course_dir, workers=args.workers, progress=bar.update,
                                on_start=bar.start, **options)
    print(summary_table(rows))
    print(
        f"Grades in {args.course_dir / 'grades.csv'}; "
        f"details in {args.course_dir / 'grades-detail.csv'}"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    try:
        if args.command == "release":
            return _release(args.check)
        if args.command == "check":
            return _check(args.notebook, args.cell_timeout)
        return _grade(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
