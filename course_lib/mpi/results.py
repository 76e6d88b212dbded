"""What a run left behind: :class:`MPIRun` (one :class:`RankResult` per rank) and the errors.

A failed run explains itself: :meth:`MPIRun.error_message` names the rank that
failed first and shows its output, or the ranks still inside the program when
the timeout stopped the job (a deadlock?).
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from course_lib._render import Table, format_seconds
from course_lib.mpi.trace import MPITrace

__all__ = [
    "MPIError",
    "MPIRun",
    "MPIRunError",
    "MPITimeoutError",
    "MPIUnavailableError",
    "RankResult",
]

_TAIL_LINES = 12


class MPIError(RuntimeError):
    """Base class of this module's errors."""


class MPIUnavailableError(MPIError):
    """No usable mpiexec or mpi4py on this machine; the message says what to install."""


class MPIRunError(MPIError):
    """An MPI program failed: a rank exited non-zero, or the job was stopped.

    ``run`` is the :class:`MPIRun` with every rank's output.
    """

    def __init__(self, message: str, run: MPIRun) -> None:
        super().__init__(message)
        self.run = run


class MPITimeoutError(MPIRunError, TimeoutError):
    """The program ran past its timeout; every rank was killed."""


@dataclass(frozen=True)
class RankResult:
    """What one rank left behind: its output, its exit code, and (run_function) its value.

    ``exit_code`` is None when the rank never finished its program: it was
    killed (timeout) or stopped because another rank failed.
    """

    rank: int
    stdout: str
    stderr: str
    exit_code: int | None
    result: Any = None
    result_error: str | None = None

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and self.result_error is None


def _tail(text: str, lines: int = _TAIL_LINES) -> str:
    kept = text.rstrip("\n").splitlines()
    if len(kept) <= lines:
        return "\n".join(kept)
    return "\n".join([f"... ({len(kept) - lines} earlier lines)"] + kept[-lines:])


def _indent(text: str) -> str:
    return textwrap.indent(text, "    ") if text else "    (nothing)"


def _summary_line(stderr: str) -> str:
    """The line that says what went wrong: the exception, not MPI's abort notice."""
    for line in reversed(stderr.strip().splitlines()):
        if line.strip() and not line[:1].isspace() and not line.startswith(("Abort(", "[")):
            return line.strip()
    return "(no message on stderr)"


def _rank_list(ranks: Sequence[int]) -> str:
    names = ", ".join(str(r) for r in ranks)
    return f"rank {names}" if len(ranks) == 1 else f"ranks {names}"


@dataclass(frozen=True)
class MPIRun:
    """The outcome of :func:`run_mpi` / :func:`run_function`: one :class:`RankResult` per rank.

    ``stdout``/``stderr``/``exit_codes``/``results`` are lists indexed by rank.
    ``trace`` holds the events recorded by :class:`TracedComm` (empty if none).
    ``launcher_stdout``/``launcher_stderr`` are mpiexec's own messages.
    """

    label: str
    n: int
    command: tuple[str, ...]
    returncode: int | None
    timed_out: bool
    elapsed: float
    timeout: float
    ranks: tuple[RankResult, ...]
    launcher_stdout: str = ""
    launcher_stderr: str = ""
    trace: MPITrace = field(default_factory=lambda: MPITrace([]))

    @property
    def stdout(self) -> list[str]:
        return [r.stdout for r in self.ranks]

    @property
    def stderr(self) -> list[str]:
        return [r.stderr for r in self.ranks]

    @property
    def exit_codes(self) -> list[int | None]:
        return [r.exit_code for r in self.ranks]

    @property
    def results(self) -> list[Any]:
        """What each rank's function returned (:func:`run_function`); None for a failed rank."""
        return [r.result for r in self.ranks]

    @property
    def ok(self) -> bool:
        """Every rank finished with exit code 0 and the job was not stopped."""
        return not self.timed_out and all(r.ok for r in self.ranks) and self.returncode == 0

    @property
    def still_running(self) -> list[int]:
        """Ranks that never finished their program (killed, or stopped by another's failure)."""
        return [r.rank for r in self.ranks if r.exit_code is None]

    @property
    def failed_ranks(self) -> list[int]:
        """Ranks that finished with a non-zero exit code, or whose value could not be read."""
        return [r.rank for r in self.ranks
                if (r.exit_code is not None and r.exit_code != 0) or r.result_error]

    def lines(self, rank: int | None = None) -> list[str]:
        """Output lines, each whole: of one rank, or of all ranks prefixed ``[rank]``."""
        if rank is not None:
            return self.ranks[rank].stdout.splitlines()
        return [f"[{r.rank}] {line}" for r in self.ranks for line in r.stdout.splitlines()]

    def error_message(self) -> str | None:
        """Why this run failed, naming the rank and showing its output; None if it did not."""
        if self.ok:
            return None
        parts: list[str] = []
        if self.timed_out:
            stuck = self.still_running
            parts.append(
                f"{self.label} did not finish within {self.timeout:g} s with {self.n} rank(s), "
                "so every rank was stopped."
            )
            if stuck:
                parts.append(
                    f"Still inside the program at that moment: {_rank_list(stuck)}. A rank that "
                    "waits for a message nobody sends, or sends one nobody receives, waits "
                    "forever: is this a deadlock?"
                )
            shown = stuck or list(range(self.n))
        elif self.failed_ranks:
            first = self.ranks[self.failed_ranks[0]]
            if first.result_error and first.exit_code == 0:
                parts.append(f"{self.label}: rank {first.rank} of {self.n}: {first.result_error}")
            else:
                parts.append(f"{self.label}: rank {first.rank} of {self.n} failed "
                             f"(exit code {first.exit_code}): {_summary_line(first.stderr)}")
            others = [r for r in self.failed_ranks[1:]]
            if others:
                parts.append(f"Also failed: {_rank_list(others)}.")
            if self.still_running:
                verb = "was" if len(self.still_running) == 1 else "were"
                parts.append(f"{_rank_list(self.still_running).capitalize()} {verb} stopped "
                             "when it failed (MPI_Abort).")
            shown = [first.rank]
        else:
            code = self.returncode
            if self.still_running:
                parts.append(
                    f"{self.label}: {_rank_list(self.still_running)} never finished the program "
                    f"and mpiexec exited with code {code}: a rank was killed (out of memory? "
                    "MPI_Abort?) or could not start."
                )
            else:
                parts.append(f"{self.label}: every rank finished, but mpiexec exited with code "
                             f"{code}.")
            shown = self.still_running or []
            if self.launcher_stderr.strip() or self.launcher_stdout.strip():
                parts.append("mpiexec said:\n" + _indent(
                    _tail(self.launcher_stderr + self.launcher_stdout)))
        quiet_ranks = []
        for rank in shown[:4]:
            r = self.ranks[rank]
            if not (r.stderr.strip() or r.stdout.strip()):
                quiet_ranks.append(rank)
                continue
            for name, text in (("stderr", r.stderr), ("stdout", r.stdout)):
                if text.strip():
                    parts.append(f"--- rank {rank} {name} ---\n{_indent(_tail(text))}")
        if quiet_ranks:
            parts.append(f"({_rank_list(quiet_ranks)} wrote no output.)")
        return "\n".join(parts)

    def check(self) -> MPIRun:
        """Raise :class:`MPITimeoutError` or :class:`MPIRunError` if the run failed; else self."""
        message = self.error_message()
        if message is None:
            return self
        if self.timed_out:
            raise MPITimeoutError(message, self)
        raise MPIRunError(message, self)

    def _status(self) -> str:
        if self.timed_out:
            return (f"stopped after the {self.timeout:g} s timeout: every rank was killed "
                    f"(still running: {', '.join(map(str, self.still_running)) or 'none'})")
        if self.ok:
            return f"{self.n} rank(s) finished in {format_seconds(self.elapsed)}"
        return f"FAILED after {format_seconds(self.elapsed)} (mpiexec exit code {self.returncode})"

    @staticmethod
    def _code(rank: RankResult) -> str:
        if rank.exit_code is None:
            return "killed / stopped"
        return str(rank.exit_code)

    def table(self) -> Table:
        rows = [(r.rank, self._code(r), _tail(r.stdout, 20), _tail(r.stderr, 20))
                for r in self.ranks]
        return Table(("rank", "exit", "stdout", "stderr"), rows,
                     title=f"{self.label}: {self._status()}")

    def __str__(self) -> str:
        lines = [f"{self.label}: {self._status()}"]
        for r in self.ranks:
            lines.append(f"--- rank {r.rank} (exit {self._code(r)}) ---")
            if r.stdout:
                lines.append(r.stdout.rstrip("\n"))
            if r.stderr:
                lines.append("[stderr]\n" + r.stderr.rstrip("\n"))
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        import html

        esc = html.escape
        cell = "text-align:left;vertical-align:top"
        pre = "margin:0;white-space:pre-wrap;font-size:90%"
        rows = []
        for r in self.ranks:
            err = (f"<pre style='{pre};color:#a00'>{esc(_tail(r.stderr, 20))}</pre>"
                   if r.stderr else "")
            rows.append(f"<tr><td style='{cell}'>{r.rank}</td><td style='{cell}'>"
                        f"{esc(self._code(r))}</td><td style='{cell}'><pre style='{pre}'>"
                        f"{esc(_tail(r.stdout, 20))}</pre>{err}</td></tr>")
        head = "".join(f"<th style='text-align:left'>{h}</th>" for h in
                       ("rank", "exit", "output (stdout; stderr in red)"))
        return (f"<table><caption style='text-align:left'><b>{esc(self.label)}</b>: "
                f"{esc(self._status())}</caption><thead><tr>{head}</tr></thead>"
                f"<tbody>{''.join(rows)}</tbody></table>")
