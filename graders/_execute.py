"""Execute one notebook for the grader, cell by cell, inside the sandbox.

``python -m graders._execute JOB.json``. The job names the notebook, a
progress file, the per-cell timeout and the guard's secret. After every code
cell one JSON line goes to the progress file (the cell's outputs and the
kernel's reply status), so the grader keeps the grades of the cells that ran
even when the kernel, this process or the whole sandbox dies. Test cells are
preceded by the guard's ``restore`` (see ``graders._guard``).
"""
# ruff: noqa: I001  (graders._fast_start must come before nbformat)

from __future__ import annotations

from . import _fast_start  # noqa: F401  (first: see its docstring)

import ast
import asyncio
import hashlib
import hmac
import json
import secrets
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from nbclient import NotebookClient
from nbclient.exceptions import DeadKernelError
from nbformat import NotebookNode

from . import nbio

from .tamper import names_bound

CELL_TIMEOUT_ERROR = {
    "ename": "CellTimeoutError",
    "evalue": "",
    "traceback": ["CellTimeoutError: the cell ran past its time limit and was interrupted"],
}
GUARD_TIMEOUT = 60.0


def _meta(cell: NotebookNode) -> dict[str, Any]:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return meta if isinstance(meta, dict) else {}


def is_test_cell(cell: NotebookNode) -> bool:
    meta = _meta(cell)
    return bool(meta.get("grade")) and not meta.get("solution") and cell.cell_type == "code"


def is_instructor_code(cell: NotebookNode) -> bool:
    meta = _meta(cell)
    return cell.cell_type == "code" and not meta.get("solution") and not meta.get("grade")


class Runner:
    def __init__(self, job: dict[str, Any], progress: TextIO) -> None:
        self.job = job
        self.progress = progress
        self.nb = nbio.read(job["notebook"])
        self.secret = secrets.token_hex(16)
        self.guard_ok = True
        self.client = NotebookClient(
            self.nb,
            timeout=int(job["cell_timeout"]),
            interrupt_on_timeout=True,
            allow_errors=True,
            error_on_timeout=CELL_TIMEOUT_ERROR,
            kernel_name=job.get("kernel_name") or "python3",
            resources={"metadata": {"path": str(Path(job["notebook"]).parent)}},
            extra_arguments=["--HistoryManager.hist_file=:memory:"],
            shutdown_kernel="immediate",
            record_timing=False,
            iopub_timeout=10,
            on_cell_executed=self._on_cell_executed,
        )
        self.last_reply: dict[str, Any] = {}

    def emit(self, record: dict[str, Any]) -> None:
        self.progress.write(json.dumps(record) + "\n")
        self.progress.flush()

    def _on_cell_executed(self, **kwargs: Any) -> None:
        self.last_reply = kwargs.get("execute_reply") or {}

    async def _silent(self, code: str, expressions: dict[str, str] | None = None,
                      timeout: float = GUARD_TIMEOUT) -> dict[str, Any] | None:
        """Run code without output or history; the reply content, or None on no answer."""
        kc = self.client.kc
        assert kc is not None
        msg_id = kc.execute(code, silent=True, store_history=False,
                            user_expressions=expressions or {}, allow_stdin=False)
        try:
            reply = await asyncio.wait_for(self.client.async_wait_for_reply(msg_id), timeout)
        except TimeoutError:
            return None
        return reply.get("content") if reply else None

    async def _guard(self, what: str, *args: Any) -> dict[str, Any] | None:
        """Call the kernel-side guard; None when its answer is forged or broken.

        A kernel too busy to answer in time (a loaded machine) is not tampering:
        the answer is then ``{"unanswered": True}``.
        """
        nonce = secrets.token_hex(8)
        extra = "".join(f", {arg!r}" for arg in args)
        expression = (f"__import__('graders._guard', fromlist=['call'])"
                      f".call({what!r}, {nonce!r}{extra})")
        content = await self._silent("", {"g": expression})
        if content is None:
            return {"unanswered": True}
        try:
            value = content["user_expressions"]["g"]["data"]["text/plain"]
            payload = json.loads(ast.literal_eval(value))
        except Exception:
            return None
        expected = hmac.new(self.secret.encode(), nonce.encode(), hashlib.sha256).hexdigest()
        if not isinstance(payload, dict) or payload.get("mac") != expected:
            return None
        return payload

    async def install_guard(self) -> None:
        # Installed the way it is later called (a user expression), so that both see
        # the kernel in the same state (IPython swaps display hooks while a cell runs).
        expression = (f"__import__('graders._guard', fromlist=['install']).install("
                      f"{self.secret!r}, {list(self.job.get('student_names', []))!r})")
        content = await self._silent("", {"g": expression}, timeout=60)
        result = ((content or {}).get("user_expressions") or {}).get("g", {})
        if result.get("status") != "ok":
            self.guard_ok = False
            self.emit({"event": "guard", "ok": False,
                       "detail": result.get("evalue") or "no answer from the kernel"})

    async def run(self) -> None:
        client = self.client
        async with client.async_setup_kernel():
            await self.install_guard()
            execution_count = 0
            for index, cell in enumerate(self.nb.cells):
                if cell.cell_type != "code":
                    continue
                record: dict[str, Any] = {"index": index}
                if self.guard_ok and is_test_cell(cell):
                    restored = await self._guard("restore")
                    if restored is None:
                        record["tampering"] = ["the grader's guard was broken or its answer forged"]
                    elif restored.get("unanswered"):
                        record["guard_unanswered"] = True
                    else:
                        record["tampering"] = restored.get("tampering", [])
                        record["rebound"] = restored.get("rebound", [])
                execution_count += 1
                self.last_reply = {}
                started = time.monotonic()
                try:
                    await client.async_execute_cell(cell, index, execution_count=execution_count)
                except DeadKernelError as exc:
                    record["outputs"] = cell.get("outputs", [])
                    self.emit(record)
                    self.emit({"event": "kernel-died", "index": index, "detail": str(exc)})
                    return
                status = self.last_reply.get("content", {}).get("status", "ok")
                outputs = list(cell.get("outputs", []))
                if status == "error" and not any(o.get("output_type") == "error" for o in outputs):
                    content = self.last_reply.get("content", {})
                    outputs.append(nbio.new_output(
                        "error", ename=content.get("ename", "Error"),
                        evalue=content.get("evalue", ""),
                        traceback=content.get("traceback") or [
                            "the kernel reported an error that the cell did not display"]))
                    cell.outputs = outputs
                limit = float(self.job["cell_timeout"])
                if (time.monotonic() - started >= limit - 0.5
                        and not any(o.get("ename") == "CellTimeoutError" for o in outputs)):
                    # nbclient interrupted the kernel: say why, not just "KeyboardInterrupt".
                    outputs.append(nbio.new_output(
                        "error", ename="CellTimeoutError",
                        evalue=f"the cell ran past its {limit:g} s limit and was interrupted",
                        traceback=[f"CellTimeoutError: the cell ran past its {limit:g} s limit "
                                   "and was interrupted"]))
                    cell.outputs = outputs
                record.update(outputs=outputs, execution_count=execution_count, status=status)
                self.emit(record)
                if self.guard_ok and is_instructor_code(cell):
                    # Only after the cell: a silent request just before a cell can
                    # confuse widgets that look up the "current" request (seen with
                    # ipywidgets' Output under ipykernel 7: the cell never finished).
                    await self._guard("record", names_bound(cell.source))
                if any(o.get("ename") == "CellTimeoutError" for o in outputs):
                    # The interrupt may not have landed (a cell that ignores SIGINT): stop
                    # rather than let every later cell time out too.
                    alive = await self._silent("pass", timeout=10)
                    if alive is None:
                        self.emit({"event": "unresponsive", "index": index})
                        return
            self.emit({"event": "finished"})


def main(argv: list[str]) -> int:
    job = json.loads(Path(argv[0]).read_text())
    with open(job["progress"], "a", encoding="utf-8") as progress:
        runner = Runner(job, progress)
        try:
            asyncio.run(runner.run())
        except DeadKernelError as exc:
            runner.emit({"event": "kernel-died", "index": None, "detail": str(exc)})
        except Exception as exc:  # the kernel would not start, the notebook is unreadable...
            runner.emit({"event": "error", "detail": f"{type(exc).__name__}: {exc}"})
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
