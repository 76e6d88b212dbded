"""Payload checks for chapter 6: :func:`check_payload` names the part of a task's
arguments that cannot be serialised (pickle or JSON), and says what to send instead."""

from __future__ import annotations

from course_lib.distributed.config import DistributedError


class PayloadError(DistributedError, TypeError):
    """A task's arguments cannot be serialised; the message names the part and a fix."""


_ADVICE = {
    "lock": "a lock only works inside one process: create it inside the task, or use the "
            "cluster's own synchronisation (a Dask Lock, a Celery chain)",
    "thread": "a thread cannot travel: send the data it works on instead",
    "socket": "a connection cannot travel: send its address and connect inside the task",
    "file": "an open file cannot travel: send its path (on a shared disk) or its contents",
    "generator": "a generator cannot travel: send list(generator)",
    "module": "a module cannot travel: import it inside the task",
}


def _advice(obj: object, serializer: str) -> str:
    kind = type(obj).__name__.lower()
    for key, text in _ADVICE.items():
        if key in kind or (key == "file" and hasattr(obj, "readable") and hasattr(obj, "fileno")):
            return text
    if serializer == "json":
        if isinstance(obj, (set, frozenset)):
            return "JSON has no sets: send sorted(the_set) and rebuild the set in the task"
        if isinstance(obj, (bytes, bytearray)):
            return "JSON has no bytes: send base64 text, or a path to the data"
        if hasattr(obj, "tolist"):
            return "JSON has no arrays: send array.tolist() and rebuild it in the task"
        return ("JSON carries only numbers, strings, lists, dicts, True/False and None: send "
                "those and rebuild the object inside the task")
    return "send plain data (numbers, strings, lists, dicts, NumPy arrays) instead"


def _serialise(obj: object, serializer: str) -> None:
    if serializer == "json":
        import json

        json.dumps(obj)
    else:
        try:
            import cloudpickle

            cloudpickle.dumps(obj)
        except ImportError:
            import pickle

            pickle.dumps(obj)


def _parts(obj: object) -> list[tuple[str, object]]:
    """The pieces of ``obj`` to look into: (path suffix, piece)."""
    if isinstance(obj, dict):
        return [(f"[{key!r}]", value) for key, value in obj.items()] + [
            (f" key {key!r}", key) for key in obj]
    if isinstance(obj, (list, tuple)):
        return [(f"[{i}]", value) for i, value in enumerate(obj)]
    if isinstance(obj, (set, frozenset)):
        return [(" item", value) for value in obj]
    state = getattr(obj, "__dict__", None)
    if isinstance(state, dict) and not isinstance(obj, type):
        return [(f".{name}", value) for name, value in state.items()]
    return []


def check_payload(obj: object, *, serializer: str = "pickle", what: str = "payload") -> None:
    """Raise :class:`PayloadError` if ``obj`` cannot be serialised the way a cluster sends it.

    ``serializer`` is ``"pickle"`` (cloudpickle when installed, as Dask and
    ipyparallel use) or ``"json"`` (Celery's default). The message names the
    innermost offending part (``payload[1]['lock']``), its type, and what to
    send instead.
    """
    if serializer not in ("pickle", "json"):
        raise ValueError(f"serializer must be 'pickle' or 'json', got {serializer!r}")
    try:
        _serialise(obj, serializer)
        return
    except Exception as error:  # each serializer raises its own types
        first_error: Exception = error
    path, culprit, seen = "", obj, {id(obj)}
    descended = True
    while descended:
        descended = False
        for suffix, part in _parts(culprit):
            if id(part) in seen:
                continue
            seen.add(id(part))
            try:
                _serialise(part, serializer)
            except Exception as error:
                path, culprit, first_error, descended = path + suffix, part, error, True
                break
    advice = _advice(culprit, serializer)
    shown = repr(culprit)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    raise PayloadError(
        f"{what}{path} is a {type(culprit).__module__}.{type(culprit).__qualname__} "
        f"({shown}), which cannot be sent with {serializer} ({first_error}). "
        f"{advice[:1].upper()}{advice[1:]}")
