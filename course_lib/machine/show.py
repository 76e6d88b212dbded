"""``show_machine``: the report of what this machine offers, from every probe."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .report import MachineReport, MachineRow, failed_row
from .rows_base import (
    core_rows,
    gil_rows,
    memory_rows,
    os_rows,
    python_rows,
    start_method_rows,
)
from .rows_broker import broker_rows
from .rows_gpu import gpu_rows
from .rows_mpi import mpi_rows

__all__ = ["NEEDS", "show_machine"]

NEEDS = ("mpi", "gpu", "broker")


_Probe = Callable[[dict[str, Any]], list[MachineRow]]

_BASE_PROBES: tuple[tuple[str, _Probe], ...] = (
    ("Python", python_rows),
    ("OS", os_rows),
    ("usable cores", core_rows),
    ("start method", start_method_rows),
    ("GIL", gil_rows),
    ("memory", memory_rows),
)
_NEED_PROBES: dict[str, tuple[str, _Probe]] = {
    "mpi": ("MPI", mpi_rows),
    "gpu": ("GPU", gpu_rows),
    "broker": ("broker", broker_rows),
}


def _safe(label: str, probe: _Probe, facts: dict[str, Any]) -> list[MachineRow]:
    try:
        return probe(facts)
    except Exception as exc:  # noqa: BLE001 - a probe never raises: it reports
        return [failed_row(label, exc)]


def _normalise_needs(needs: Iterable[str] | str) -> list[str]:
    items = [needs] if isinstance(needs, str) else list(needs)
    result: list[str] = []
    for item in items:
        name = str(item).strip().lower()
        if name not in NEEDS:
            raise ValueError(f"unknown need {item!r}; choose from {', '.join(NEEDS)}")
        if name not in result:
            result.append(name)
    return result


def show_machine(needs: Iterable[str] = ()) -> MachineReport:
    """What this machine offers: Python, OS, cores, start method, GIL, memory.

    ``needs`` may name "mpi", "gpu" and "broker" to add those rows. The extra
    probes run concurrently in threads (each waits on a child process); none
    raises, and each child is stopped after a timeout.
    """
    wanted = _normalise_needs(needs)
    facts: dict[str, Any] = {"needs": wanted}
    rows: list[MachineRow] = []
    for label, probe in _BASE_PROBES:
        rows.extend(_safe(label, probe, facts))
    if wanted:
        # Each need writes its own key(s) of facts, so sharing the dict is safe.
        with ThreadPoolExecutor(max_workers=len(wanted), thread_name_prefix="probe") as pool:
            futures = [
                pool.submit(_safe, _NEED_PROBES[name][0], _NEED_PROBES[name][1], facts)
                for name in wanted
            ]
            for future in futures:
                rows.extend(future.result())
    return MachineReport(rows=rows, facts=facts)
