"""Worker functions and helpers for Chapter 2 (processes).

Every function here that a child process runs is importable by name, so it
works under every start method: with ``spawn`` and ``forkserver`` a child
imports the function it should run, which fails for a function defined in a
notebook cell (the notebook's ``__main__`` cannot be imported).

Worker functions (targets for ``ctx.Process``, tasks for pools):

- identity and memory: :func:`report_identity`, :func:`write_into_copy`;
- exit codes and signals: :func:`exit_with`, :func:`raise_error`,
  :func:`logged_call`, :func:`guarded_sleep`, :func:`announce_after`,
  :func:`try_to_start_child`, :func:`die_abruptly`;
- communication: :func:`queue_worker`, :func:`pipe_echo`, :func:`add_to_value`,
  :func:`set_list_item`, :func:`record_in_dict`, :func:`increment_in_dict`;
- shared memory: :func:`scale_shared`, :func:`sum_shared`;
- pools: :func:`square`, :func:`traced`, :func:`make_bytes`, :func:`cpu_task`,
  :func:`load_model`, :func:`predict`, :func:`load_and_predict`.

Helpers: :func:`check_picklable`, :func:`pool_map` (validates its arguments,
bounds the wait, turns a worker's exception into :class:`WorkerError`),
:class:`SharedArray` and :func:`attach_array` (a NumPy array in a
``SharedMemory`` block that is always closed and unlinked), and
:func:`shm_segments` / :func:`segment_exists` to see what is left in shared
memory; :func:`shutdown_helpers` stops multiprocessing's idle fork server at
the end of a notebook.
"""

from __future__ import annotations

import contextlib
import functools
import math
import multiprocessing
import multiprocessing.context
import os
import pickle
import signal
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from multiprocessing import shared_memory
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from .machine import start_method, usable_cores
from .workers import as_int as _as_int
from .workers import busy_work

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from .trace import RemoteTracer

__all__ = [
    "ArraySpec",
    "SharedArray",
    "WorkerError",
    "add_to_value",
    "announce_after",
    "attach_array",
    "check_picklable",
    "cpu_task",
    "die_abruptly",
    "exit_with",
    "guarded_sleep",
    "increment_in_dict",
    "load_and_predict",
    "load_model",
    "logged_call",
    "make_bytes",
    "pipe_echo",
    "pipe_square_server",
    "pool_map",
    "predict",
    "queue_worker",
    "raise_error",
    "record_in_dict",
    "report_identity",
    "scale_shared",
    "segment_exists",
    "set_list_item",
    "shm_segments",
    "shutdown_helpers",
    "square",
    "sum_shared",
    "traced",
    "try_to_start_child",
    "write_into_copy",
]

T = TypeVar("T")
R = TypeVar("R")

_SHM_DIR = Path("/dev/shm")


def _as_seconds(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, got {type(value).__name__}")
    seconds = float(value)
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return seconds


def _process_name() -> str:
    return multiprocessing.current_process().name


# --------------------------------------------------------------------------- identity, memory


def report_identity(mailbox: Any, tag: object = None) -> None:
    """Put a dict describing this process on ``mailbox`` (a queue): tag, name, pid, ppid, daemon."""
    me = multiprocessing.current_process()
    mailbox.put(
        {"tag": tag, "name": me.name, "pid": os.getpid(), "ppid": os.getppid(), "daemon": me.daemon}
    )


def write_into_copy(data: list[object], index: int, mailbox: Any) -> None:
    """Set ``data[index] = index`` in this process's copy of ``data``; report what it sees.

    Puts ``(index, pid, list(data))`` on ``mailbox``. The parent's list is not
    changed: a child process works on a copy of its arguments.
    """
    data[index] = index
    mailbox.put((index, os.getpid(), list(data)))


# --------------------------------------------------------------------------- exit codes, signals


def exit_with(code: int) -> None:
    """End the process with exit status ``code`` (``sys.exit(code)``; prints nothing)."""
    status = _as_int(code, "code")
    if not 0 <= status <= 255:
        raise ValueError(f"an exit status is between 0 and 255, got {status}")
    sys.exit(status)


def raise_error(message: str) -> None:
    """Raise ``RuntimeError(message)``: an uncaught exception ends a process with exit code 1.

    Python prints the traceback on the child's stderr; run it through
    :func:`logged_call` to send that traceback to a file instead.
    """
    raise RuntimeError(message)


def logged_call(log_path: str | os.PathLike[str], fn: Callable[..., object], *args: object) -> None:
    """Process target: send this child's stderr to ``log_path``, then call ``fn(*args)``.

    Both Python's ``sys.stderr`` and file descriptor 2 are redirected, so an
    uncaught exception's traceback ends up in the log file instead of the
    terminal or the notebook. The exit code is unchanged (1 after an uncaught
    exception).
    """
    log = open(log_path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 - lives until exit
    try:
        os.dup2(log.fileno(), 2)
    except OSError:  # pragma: no cover - no fd 2 (a Windows GUI process)
        pass
    sys.stderr = log
    fn(*args)


_SIGTERM_MODES = ("default", "exit", "ignore")


def _exit_on_sigterm(signum: int, frame: object) -> None:
    sys.exit(128 + signum)


def guarded_sleep(seconds: float, ready: Any = None, cleaned: Any = None,
                  on_sigterm: str = "default") -> None:
    """Sleep ``seconds`` inside ``try/finally``; the ``finally`` block sets ``cleaned``.

    ``on_sigterm`` says what SIGTERM (``Process.terminate()`` on Unix) does:

    - ``"default"``: Python's default, the process dies at once and the
      ``finally`` block never runs (exit code -15);
    - ``"exit"``: a handler turns SIGTERM into ``sys.exit(143)``, so the
      ``finally`` block runs before the process ends (exit code 143);
    - ``"ignore"``: SIGTERM is ignored; only SIGKILL (``kill()``) stops it.

    ``ready`` and ``cleaned`` are optional ``ctx.Event()`` objects: ``ready``
    is set once the handler is installed (wait for it before signalling).
    """
    duration = _as_seconds(seconds, "seconds")
    if on_sigterm not in _SIGTERM_MODES:
        raise ValueError(f"on_sigterm must be one of {_SIGTERM_MODES}, got {on_sigterm!r}")
    if on_sigterm == "exit":
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
    elif on_sigterm == "ignore":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    else:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        # Inside the try: SIGTERM may arrive while set() is still waking the parent.
        if ready is not None:
            ready.set()
        time.sleep(duration)
    finally:
        if cleaned is not None:
            cleaned.set()


def announce_after(label: str, seconds: float) -> None:
    """Sleep ``seconds``, then print ``"<label>: finished after <seconds> s"`` (for scripts)."""
    time.sleep(_as_seconds(seconds, "seconds"))
    print(f"{label}: finished after {seconds:g} s", flush=True)


def try_to_start_child(mailbox: Any) -> None:
    """Try to start a grandchild process; put ``"started"`` or the error text on ``mailbox``.

    A daemon process may not have children: ``start()`` raises there.
    """
    try:
        # spawn exists everywhere and needs no fork server of its own inside this child
        context: Any = multiprocessing.get_context("spawn")
        grandchild = context.Process(target=time.sleep, args=(0,))
        grandchild.start()
        grandchild.join(5)
        mailbox.put("started a grandchild")
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        mailbox.put(f"{type(exc).__name__}: {exc}")


def die_abruptly(code: int = 1) -> None:
    """``os._exit(code)``: end the process at once, skipping all clean-up (a crash stand-in)."""
    os._exit(_as_int(code, "code"))


# --------------------------------------------------------------------------- communication


def queue_worker(fn: Callable[[Any], object], tasks: Any, results: Any,
                 tracer: RemoteTracer | None = None) -> None:
    """Take ``(task_id, item)`` pairs from ``tasks`` until ``None``; answer on ``results``.

    For each task it puts ``(task_id, worker_name, "ok", fn(item))`` on
    ``results``, or ``(task_id, worker_name, "error", "ExcType: message")``
    if ``fn`` raised, and carries on. With a ``tracer`` (``tr.for_process()``)
    each task is recorded as a span named after ``fn``. A malformed task is
    reported as an error with task id ``None``. Returns when it takes ``None``.
    """
    name = _process_name()
    label = getattr(fn, "__name__", "task")
    while True:
        task = tasks.get()
        if task is None:
            return
        try:
            task_id, item = task
        except (TypeError, ValueError):
            results.put((None, name, "error", f"malformed task {task!r}: expected (task_id, item)"))
            continue
        try:
            if tracer is not None:
                with tracer.span(label):
                    value = fn(item)
            else:
                value = fn(item)
        except Exception as exc:  # noqa: BLE001 - reported to the parent
            results.put((task_id, name, "error", f"{type(exc).__name__}: {exc}"))
        else:
            results.put((task_id, name, "ok", value))


def pipe_echo(conn: Any) -> None:
    """Receive strings on ``conn`` until ``None``; send each back upper-cased, then close."""
    try:
        while True:
            message = conn.recv()
            if message is None:
                return
            conn.send(str(message).upper())
    except EOFError:  # the other end was closed: nothing more will come
        return
    finally:
        conn.close()


def pipe_square_server(conn: Any, idle_timeout: float = 30.0) -> None:
    """Serve one client on a ``Pipe`` end: answer each number ``x`` with ``(x * x, pid)``.

    Stops at the sentinel ``None`` with exit code 0.  Exits with code 3 when
    the client closes its end without sending ``None`` (``EOFError``) or sends
    nothing for ``idle_timeout`` seconds, and with code 2 after answering a
    request that is not a number with ``("error", message)``.  Closes ``conn``.
    """
    limit = _as_seconds(idle_timeout, "idle_timeout")
    pid = os.getpid()
    code = 0
    try:
        while True:
            if not conn.poll(limit):
                code = 3
                break
            request = conn.recv()
            if request is None:
                break
            if isinstance(request, bool) or not isinstance(request, (int, float)):
                conn.send(("error", f"expected a number, got {type(request).__name__}"))
                code = 2
                continue
            conn.send((request * request, pid))
    except (EOFError, OSError):  # the client is gone without saying goodbye
        code = 3
    finally:
        conn.close()
    if code:
        sys.exit(code)


def add_to_value(value: Any, n: int, use_lock: bool = True, start: Any = None) -> None:
    """Add 1 to ``value.value`` ``n`` times (a ``ctx.Value``), holding its lock if ``use_lock``.

    ``start`` is an optional ``ctx.Barrier``: waiting on it makes all the
    adders begin at the same moment, however long each took to start.
    """
    steps = _as_int(n, "n")
    if start is not None:
        start.wait(60)
    if use_lock:
        for _ in range(steps):
            with value.get_lock():
                value.value += 1
    else:
        for _ in range(steps):
            value.value += 1


def set_list_item(shared_list: Any, index: int, value: object) -> None:
    """``shared_list[index] = value`` (a ``ShareableList`` or a manager list proxy)."""
    shared_list[index] = value
    shm = getattr(shared_list, "shm", None)
    if shm is not None:  # a ShareableList attached in this child: let go of the mapping
        shm.close()


def record_in_dict(shared_dict: Any, key: object, value: object) -> None:
    """``shared_dict[key] = (value, worker name)`` (a manager dict proxy)."""
    shared_dict[key] = (value, _process_name())


def increment_in_dict(shared_dict: Any, key: object, n: int, lock: Any = None,
                      start: Any = None) -> None:
    """``shared_dict[key] += 1``, ``n`` times; holding ``lock`` around each update if given.

    Without a lock the read and the write are two separate round trips to the
    manager, so two processes can both read the same old value. ``start`` is
    an optional ``ctx.Barrier`` to begin together (see :func:`add_to_value`).
    """
    steps = _as_int(n, "n")
    if start is not None:
        start.wait(60)
    for _ in range(steps):
        if lock is None:
            shared_dict[key] = shared_dict[key] + 1
        else:
            with lock:
                shared_dict[key] = shared_dict[key] + 1


# --------------------------------------------------------------------------- pickling checks


def _describe(fn: object) -> str:
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)


def _interactive_main() -> bool:
    main = sys.modules.get("__main__")
    return main is None or not getattr(main, "__file__", None)


def check_picklable(fn: Callable[..., object], method: str | None = None) -> None:
    """Raise ``TypeError`` unless a worker process started with ``method`` can receive ``fn``.

    A child receives a function as a reference, *module + name*, and imports
    it. That fails for a lambda, a function defined inside another function,
    and, under ``spawn`` and ``forkserver``, for a function defined in a
    notebook or an interactive session (its module, ``__main__``, cannot be
    imported). Under ``fork`` the child is a copy of the parent, so a notebook
    function defined before the pool was created is found. ``method``
    defaults to :func:`course_lib.start_method`.
    """
    method = start_method() if method is None else method
    if not callable(fn):
        raise TypeError(f"expected a function to run in the workers, got {type(fn).__name__}")
    inner = fn.func if isinstance(fn, functools.partial) else fn
    name = _describe(inner)
    try:
        pickle.dumps(fn)
    except Exception as exc:  # noqa: BLE001 - every pickling failure gets the same advice
        raise TypeError(
            f"{name} cannot be sent to a worker process ({type(exc).__name__}: {exc}). A worker "
            "gets a function by module and name: define it with `def` at the top level of a "
            ".py module and import it (lambdas and functions defined inside other functions "
            "have no importable name). course_lib.processes has the workers this chapter needs."
        ) from None
    module = getattr(inner, "__module__", None)
    if module == "__main__" and method != "fork" and _interactive_main():
        raise TypeError(
            f"{name} is defined in this notebook (module __main__). Under the {method!r} start "
            "method each worker is a fresh Python that imports the function by name, and a "
            "notebook cannot be imported, so the worker would fail with AttributeError. Put the "
            "function in a .py module and import it from there (course_lib.processes has the "
            "workers this chapter needs)."
        )


def _check_workers(workers: object) -> int:
    count = _as_int(workers, "workers")
    if count < 1:
        raise ValueError(
            f"workers must be at least 1, got {count}: pass a positive number of processes, or "
            f"None for one per usable core ({usable_cores()} here)"
        )
    return count


# --------------------------------------------------------------------------- pool_map


class WorkerError(RuntimeError):
    """A task raised in a worker process; ``index``, ``item`` and ``error`` say which and what."""

    def __init__(self, index: int, item: object, error: BaseException) -> None:
        text = repr(item)
        if len(text) > 80:
            text = text[:77] + "..."
        super().__init__(
            f"task {index} (item {text}) raised {type(error).__name__} in a worker process: {error}"
        )
        self.index = index
        self.item = item
        self.error = error

    def __reduce__(self) -> tuple[type[WorkerError], tuple[int, object, BaseException]]:
        return (WorkerError, (self.index, self.item, self.error))


def _picklable_error(error: Exception) -> Exception:
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:  # noqa: BLE001
        return RuntimeError(f"{type(error).__name__}: {error}")
    return error


def _run_chunk(fn: Callable[[Any], object], chunk: Sequence[object]) -> list[tuple[bool, object]]:
    """Pool task of :func:`pool_map`: ``fn`` on every item, stopping at the first exception."""
    out: list[tuple[bool, object]] = []
    for item in chunk:
        try:
            out.append((True, fn(item)))
        except Exception as exc:  # noqa: BLE001 - sent back to the parent
            out.append((False, _picklable_error(exc)))
            break
    return out


def pool_map(
    fn: Callable[[Any], R],
    items: Iterable[Any],
    workers: int | None = None,
    *,
    chunksize: int | None = None,
    timeout: float = 60.0,
    progress: bool = False,
    ctx: multiprocessing.context.BaseContext | None = None,
) -> list[R]:
    """``[fn(x) for x in items]`` computed by a pool of ``workers`` processes, in input order.

    Checks its arguments first: ``fn`` must reach a worker under the start
    method (:func:`check_picklable`), ``workers`` must be >= 1 (None: one per
    usable core), ``chunksize`` >= 1 (None: about four chunks per worker).
    Waits at most ``timeout`` seconds in all, then stops the pool and raises
    ``TimeoutError``. A task that raises stops the pool and raises
    :class:`WorkerError` naming the item (the worker's exception is its
    ``__cause__``). ``progress=True`` shows a tqdm progress bar. The pool is
    closed and joined before it returns, whatever happens.
    """
    context = ctx if ctx is not None else multiprocessing.get_context(start_method())
    check_picklable(fn, context.get_start_method())
    count = usable_cores() if workers is None else _check_workers(workers)
    seconds = _as_seconds(timeout, "timeout")
    if seconds == 0:
        raise ValueError("timeout must be positive")
    data = list(items)
    if not data:
        return []
    if chunksize is None:
        size = max(1, math.ceil(len(data) / (count * 4)))
    else:
        size = _as_int(chunksize, "chunksize")
        if size < 1:
            raise ValueError(f"chunksize must be at least 1, got {size}")
    chunks = [data[i : i + size] for i in range(0, len(data), size)]
    bar: Any = None
    if progress:
        from tqdm.auto import tqdm

        tqdm.monitor_interval = 0  # no background monitor thread left behind
        bar = tqdm(total=len(data), desc=getattr(fn, "__name__", "tasks"), file=sys.stdout)
    deadline = time.monotonic() + seconds
    results: list[R] = []
    pool = context.Pool(min(count, len(chunks)))
    finished = False
    try:
        iterator = pool.imap(functools.partial(_run_chunk, fn), chunks)
        for chunk_index in range(len(chunks)):
            remaining = deadline - time.monotonic()
            try:
                answers = iterator.next(max(remaining, 1e-3))
            except multiprocessing.TimeoutError:
                raise TimeoutError(
                    f"pool_map: {len(results)} of {len(data)} results after {seconds:g} s; the "
                    "pool was stopped. Is a task stuck or much slower than expected?"
                ) from None
            for offset, (ok, value) in enumerate(answers):
                if not ok:
                    index = chunk_index * size + offset
                    error = value if isinstance(value, BaseException) else RuntimeError(str(value))
                    raise WorkerError(index, data[index], error) from error
                results.append(value)  # type: ignore[arg-type]
            if bar is not None:
                bar.update(len(answers))
        finished = True
        return results
    finally:
        if bar is not None:
            bar.close()
        if finished:
            pool.close()
        else:
            pool.terminate()
        pool.join()


# --------------------------------------------------------------------------- pool tasks


def square(x: Any) -> Any:
    """``x * x``: a task so tiny that sending it to a worker costs more than doing it."""
    return x * x


def traced(tracer: RemoteTracer, name: str, fn: Callable[..., R], *args: Any) -> R:
    """``fn(*args)`` recorded as a span called ``name`` on ``tracer`` (a ``tr.for_process()``).

    Use it with ``functools.partial(traced, remote, "name", fn)`` as a pool task,
    with ``map`` (one argument per task) or ``starmap`` (several).
    """
    with tracer.span(name):
        return fn(*args)


def make_bytes(n: int) -> bytes:
    """``n`` bytes (a large result that fills the pipe behind a queue)."""
    size = _as_int(n, "n")
    if size < 0:
        raise ValueError(f"n must be >= 0, got {size}")
    return bytes(size)


def cpu_task(n: int) -> tuple[int, int]:
    """``(busy_work(n), pid)``: CPU-bound pure Python, and which process did it."""
    return busy_work(n), os.getpid()


_MODEL: dict[str, object] | None = None
_LOADS = 0


def load_model(seconds: float = 0.2) -> None:
    """Pool initializer: pretend to import a heavy library (sleep ``seconds``), keep a model.

    The model lives in a global of the worker process, so every task that
    worker runs afterwards can use it without loading it again.
    """
    global _MODEL, _LOADS
    time.sleep(_as_seconds(seconds, "seconds"))
    _LOADS += 1
    _MODEL = {"slope": 2, "intercept": 1, "pid": os.getpid()}


def predict(x: float) -> tuple[float, int, int]:
    """``(2 * x + 1, pid, loads)`` with the model :func:`load_model` loaded in this worker.

    ``loads`` counts how many times this worker process loaded the model (1
    when a pool initializer did it once). Raises ``RuntimeError`` when no
    model was loaded in this process.
    """
    if _MODEL is None:
        raise RuntimeError(
            "no model loaded in this worker process: create the pool with "
            "initializer=load_model (and initargs=(seconds,)) so each worker loads it once"
        )
    slope, intercept = _MODEL["slope"], _MODEL["intercept"]
    return slope * x + intercept, os.getpid(), _LOADS  # type: ignore[operator]


def load_and_predict(x: float, seconds: float = 0.2) -> tuple[float, int, int]:
    """Load the model (again) and predict: what a task does when there is no initializer."""
    load_model(seconds)
    return predict(x)


# --------------------------------------------------------------------------- shared memory


class ArraySpec(NamedTuple):
    """What a worker needs to find a :class:`SharedArray`: segment name, shape and dtype."""

    name: str
    shape: tuple[int, ...]
    dtype: str


def _closed_error(name: str) -> ValueError:
    return ValueError(
        f"the shared block {name!r} is closed: its memory is no longer mapped in this process. "
        "Use the array inside the with-block, or copy what you need out first (arr.copy())"
    )


def _release_mapping(shm: shared_memory.SharedMemory) -> bool:
    """Close ``shm``; if NumPy views still point into it, leave the mapping to them.

    Returns False when views were still alive: the segment's file descriptor
    is closed, but the memory stays mapped until the last view is gone.
    """
    try:
        shm.close()
        return True
    except BufferError:
        # SharedMemory.close() would unmap memory that live arrays still use. Hand the
        # mapping to those arrays (it is unmapped when the last one is freed), close the rest.
        shm_any: Any = shm
        shm_any._buf = None
        shm_any._mmap = None
        shm.close()
        return False


def _view(shm: shared_memory.SharedMemory, shape: tuple[int, ...], dtype: Any) -> NDArray[Any]:
    """A NumPy array on ``shm`` that keeps the mapping alive for as long as it lives.

    ``np.ndarray(buffer=shm.buf)`` would not: ``shm.close()`` would then unmap
    memory the array still points to, and the next access would crash Python.
    Through its own memoryview, the array holds a buffer export, so closing
    the block while a view is alive raises ``BufferError`` instead.
    """
    import numpy as np

    buffer = shm.buf
    if buffer is None:
        raise _closed_error(shm.name)
    count = int(math.prod(shape))
    return np.frombuffer(memoryview(buffer), dtype=dtype, count=count).reshape(shape)


class SharedArray:
    """A NumPy array in a ``SharedMemory`` block that this object creates and owns.

    Use it as a context manager::

        with SharedArray.copy_of(data) as shared:
            ...  # pass shared.spec to workers; they use attach_array(spec)
            result = shared.array.copy()

    Leaving the block closes the block in this process and unlinks (destroys)
    it, even after an exception, so no segment is left in ``/dev/shm``. After
    that, ``.array`` raises ``ValueError``. A worker attaches with
    :func:`attach_array`, which closes but never unlinks.
    """

    def __init__(self, shape: int | Sequence[int], dtype: Any = "float64") -> None:
        import numpy as np

        dims = (shape,) if isinstance(shape, int) else tuple(shape)
        checked = tuple(_as_int(d, "shape") for d in dims)
        if any(d < 0 for d in checked):
            raise ValueError(f"shape must not hold negative sizes, got {checked}")
        kind = np.dtype(dtype)
        if kind.hasobject:
            raise TypeError(
                "an array of Python objects cannot live in shared memory (it holds pointers "
                "into one process's memory); use a numeric dtype"
            )
        nbytes = int(math.prod(checked)) * kind.itemsize
        # SharedMemory refuses size 0; an empty array still gets a (one-byte) block.
        self._shm = shared_memory.SharedMemory(create=True, size=max(nbytes, 1))
        self._spec = ArraySpec(self._shm.name, checked, kind.str)
        self._array: NDArray[Any] | None = _view(self._shm, checked, kind)
        self._closed = False

    @classmethod
    def copy_of(cls, array: Any) -> SharedArray:
        """A new shared block holding a copy of ``array``."""
        import numpy as np

        source = np.asarray(array)
        shared = cls(source.shape, source.dtype)
        assert shared._array is not None
        shared._array[...] = source
        return shared

    @property
    def spec(self) -> ArraySpec:
        """``ArraySpec(name, shape, dtype)``: small and picklable; send this to workers."""
        return self._spec

    @property
    def name(self) -> str:
        """The segment's name (as in ``/dev/shm`` on Linux)."""
        return self._spec.name

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def array(self) -> NDArray[Any]:
        """The NumPy view of the shared block (no copy)."""
        if self._array is None:
            raise _closed_error(self.name)
        return self._array

    def close(self) -> None:
        """Close and unlink the block (idempotent).

        Raises ``BufferError`` (after unlinking) if arrays taken from ``.array``
        are still alive: they keep the memory mapped until they are deleted.
        """
        if self._closed:
            return
        self._closed = True
        self._array = None
        released = _release_mapping(self._shm)
        with contextlib.suppress(FileNotFoundError):
            self._shm.unlink()
        if not released:
            raise BufferError(
                f"the shared block {self.name!r} was unlinked, but NumPy arrays taken from "
                ".array still point into it. Copy what you need (arr.copy()) and `del` the "
                "views before the block closes."
            )

    def __enter__(self) -> SharedArray:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __reduce__(self) -> Any:
        raise TypeError(
            "a SharedArray is owned by the process that created it: send shared.spec to the "
            "worker and attach there with course_lib.processes.attach_array(spec)"
        )

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<SharedArray {self.name!r} shape={self._spec.shape} dtype={self._spec.dtype} {state}>"


@contextlib.contextmanager
def attach_array(spec: ArraySpec | Sequence[Any]) -> Iterator[NDArray[Any]]:
    """Attach to the shared array ``spec`` describes; yield a NumPy view; close on exit.

    For workers: it never unlinks (the creator does). Raises
    ``FileNotFoundError`` with advice if the block no longer exists.
    """
    import numpy as np

    name, shape, dtype = ArraySpec(*spec)
    try:
        shm = shared_memory.SharedMemory(name=name)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"no shared-memory block named {name!r}: was it already unlinked? The creator must "
            "keep it until every worker is done (join the workers first)"
        ) from None
    view: NDArray[Any] | None = _view(shm, tuple(shape), np.dtype(dtype))
    try:
        yield view  # type: ignore[misc]
    finally:
        view = None
        _release_mapping(shm)


def scale_shared(spec: ArraySpec, start: int, stop: int, factor: float) -> None:
    """Multiply ``array[start:stop]`` of the shared array ``spec`` by ``factor``, in place."""
    lo, hi = _as_int(start, "start"), _as_int(stop, "stop")
    with attach_array(spec) as array:
        if not 0 <= lo <= hi <= len(array):
            raise ValueError(f"slice {lo}:{hi} is outside the array of length {len(array)}")
        array[lo:hi] *= factor


def sum_shared(spec: ArraySpec, start: int = 0, stop: int | None = None) -> float:
    """Sum of ``array[start:stop]`` of the shared array ``spec``, read in place (no copy)."""
    with attach_array(spec) as array:
        return float(array[start:stop].sum())


def shm_segments() -> list[str]:
    """Names of the POSIX shared-memory segments that exist now (Linux: ``/dev/shm``).

    Semaphores (``sem.*``) are left out. Other programs' segments are listed
    too. On macOS and Windows segments cannot be listed: returns ``[]`` (use
    :func:`segment_exists`).
    """
    if not _SHM_DIR.is_dir():
        return []
    return sorted(p.name for p in _SHM_DIR.iterdir() if not p.name.startswith("sem."))


def segment_exists(name: str) -> bool:
    """Whether a shared-memory segment called ``name`` exists (without attaching to it for good)."""
    bare = name.lstrip("/")
    if not bare:
        raise ValueError("name must not be empty")
    if _SHM_DIR.is_dir():
        return (_SHM_DIR / bare).exists()
    if os.name == "posix":  # macOS: ask shm_open, which does not register with the tracker
        import _posixshmem

        try:
            fd = _posixshmem.shm_open("/" + bare, os.O_RDONLY, mode=0o600)
        except FileNotFoundError:
            return False
        os.close(fd)
        return True
    try:  # Windows: a block exists while someone has it open
        shm = shared_memory.SharedMemory(name=bare)
    except FileNotFoundError:
        return False
    shm.close()
    return True



# --------------------------------------------------------------------------- helpers


def _only_helpers_below_us() -> bool:
    """True when every child of this process is one of multiprocessing's helpers."""
    import psutil

    markers = ("multiprocessing.resource_tracker", "multiprocessing.forkserver")
    for child in psutil.Process().children(recursive=False):
        try:
            if child.status() == psutil.STATUS_ZOMBIE:
                continue
            command = " ".join(child.cmdline())
        except psutil.Error:
            continue
        if not any(marker in command for marker in markers):
            return False
    return True


def shutdown_helpers() -> list[str]:
    """Stop the idle fork server and remove multiprocessing's temporary folder; say what was done.

    ``multiprocessing`` starts helper processes on first use and keeps them
    for the rest of the session: a *fork server* (``forkserver`` start
    method) and a *resource tracker* (``spawn``, ``forkserver``, shared
    memory). The fork server's socket lives in a temporary folder
    (``pymp-...``) that is removed only when Python exits normally. Call this
    at the end of a notebook: it stops the fork server if no process it
    started is still alive and nothing else runs below this process, then
    removes the folder if it is empty. Both come back by themselves when next
    needed. The resource tracker is left alone: it ends with the kernel.
    """
    import gc

    import psutil

    done: list[str] = []
    gc.collect()
    try:
        from multiprocessing import forkserver

        server: Any = forkserver._forkserver
        pid = server._forkserver_pid
    except (ImportError, AttributeError):  # no fork server on this platform
        pid = None
    if pid is not None:
        try:
            busy = bool(psutil.Process(pid).children())
        except psutil.NoSuchProcess:
            busy = False
        if not busy and _only_helpers_below_us():
            server._stop()
            done.append(f"stopped the fork server (pid {pid})")
    config: dict[str, Any] = multiprocessing.current_process()._config  # type: ignore[attr-defined]
    folder = config.get("tempdir")
    if folder and os.path.isdir(folder) and pid is not None and not server._forkserver_pid:
        # Sockets of fork servers that children started (they share this folder) and that
        # have ended with them: nobody listens on them any more.
        for entry in Path(folder).iterdir():
            if entry.name.startswith("listener-") and entry.is_socket():
                entry.unlink()
    if folder and os.path.isdir(folder) and not os.listdir(folder):
        os.rmdir(folder)
        config["tempdir"] = None
        from multiprocessing import util

        registry: dict[Any, Any] = getattr(util, "_finalizer_registry", {})
        for finalizer in list(registry.values()):
            args = getattr(finalizer, "_args", None) or ()
            if folder in args:
                finalizer.cancel()
        done.append(f"removed multiprocessing's temporary folder {folder}")
    return done
