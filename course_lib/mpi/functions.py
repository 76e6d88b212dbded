"""Running one Python function on every rank: :func:`run_function`.

The ranks get a program made of the function's source (and its helpers'), ending
with a call of :func:`course_lib.mpi.rank.call_entry`, which calls the function
with the communicator and pickles what it returned into the run's folder.
"""

from __future__ import annotations

import pickle
import re
import textwrap
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from course_lib.mpi.launch import check_n, check_timeout, execute
from course_lib.mpi.rank import ENTRY_CALL
from course_lib.mpi.results import MPIRun
from course_lib.mpi.settings import DEFAULT_TIMEOUT

__all__ = ["run_function"]


_HEADER = """\
# Written by course_lib.mpi.run_function: your function, then a call on every rank.
from mpi4py import MPI
"""


def _function_source(fn: Callable[..., Any]) -> str:
    if not callable(fn) or not hasattr(fn, "__code__"):
        raise TypeError(f"run_function needs a Python function defined with def, got {fn!r}")
    name = getattr(fn, "__name__", "")
    if name == "<lambda>" or not name.isidentifier():
        raise TypeError("run_function needs a function defined with def (not a lambda), so that "
                        "its source can be sent to the ranks")
    import inspect

    try:
        return textwrap.dedent(inspect.getsource(fn))
    except (OSError, TypeError) as exc:
        raise TypeError(f"cannot read the source of {name}(): {exc}. Define it with def in a "
                        "notebook cell or a file") from None


def _brief(value: object) -> str:
    """A short description of an argument for messages: arrays by their shape and type."""
    shape, dtype = getattr(value, "shape", None), getattr(value, "dtype", None)
    if shape is not None and dtype is not None:
        return f"<{dtype} array of shape {tuple(shape)}>"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def run_function(
    fn: Callable[..., Any],
    n: int = 4,
    *,
    args: Sequence[object] = (),
    kwargs: Mapping[str, object] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    trace: bool = False,
    helpers: Sequence[Callable[..., Any]] = (),
    env: Mapping[str, str] | None = None,
    mpiexec: str | Sequence[str] | None = None,
    check: bool = True,
    clock: Callable[[], float] = time.perf_counter,
) -> MPIRun:
    """Run ``fn(comm, *args, **kwargs)`` on ``n`` ranks; ``run.results[r]`` is what rank r returned.

    The ranks run a program made of ``from mpi4py import MPI``, ``import numpy
    as np`` (when the source uses ``np.``), the source of each function in
    ``helpers``, the source of ``fn`` and
    a call of ``fn`` with ``comm = MPI.COMM_WORLD`` (a :class:`TracedComm` when
    ``trace`` is true, so that ``run.trace`` records every message). ``fn`` must
    be self-contained apart from those names. Arguments and return values
    travel by pickle. Errors and timeouts as in :func:`run_mpi`.
    """
    n = check_n(n)
    check_timeout(timeout)
    sources = [_function_source(h) for h in helpers] + [_function_source(fn)]
    name = fn.__name__
    try:
        call = pickle.dumps((tuple(args), dict(kwargs or {})), protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:  # noqa: BLE001 - reported with advice
        raise TypeError(f"the arguments for {name}() cannot be sent to the ranks ({exc}); pass "
                        "numbers, strings, lists, dicts or NumPy arrays") from None
    header = _HEADER + ("import numpy as np\n" if re.search(r"\bnp\.", "".join(sources)) else "")
    program = header + "\n\n" + "\n\n".join(sources) + (
        "\n\nif __name__ == '__main__':\n"
        "    import course_lib.mpi.rank as _course_mpi\n"
        f"    {ENTRY_CALL}({name!r}, globals(), trace={bool(trace)!r})\n"
    )
    shown = ", ".join([*(_brief(a) for a in args),
                       *(f"{k}={_brief(v)}" for k, v in (kwargs or {}).items())])
    if len(shown) > 70:
        shown = shown[:67] + "..."
    label = f"{name}(comm{', ' + shown if shown else ''})"
    return execute(label, n, check_timeout(timeout), (), env, mpiexec, Path.cwd(), check, clock,
                    source=program, files={"call.pkl": call}, script_name=f"{name}.py")
