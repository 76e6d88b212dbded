"""Kernel-side guard: test cells see the check helpers the course shipped.

The grader installs the guard in the student's kernel before the first cell
and calls it around cells (silently: nothing reaches the notebook):

- after each read-only (instructor) code cell, ``record`` notes the data that
  cell bound (the names its code assigns: expected values, inputs);
- before each test cell, ``restore`` puts back what a student's cell may have
  replaced: the attributes of ``graders.*`` modules (the check helpers), core
  builtins and ``math``/``operator``/``numpy`` functions, ``sys.stdout`` and
  friends, IPython's error display, custom exception handlers, event hooks
  and input/AST transformers, and the data bindings noted by ``record``
  (names that the reference solution binds are the student's and are left
  alone).

Every call answers with an HMAC of the grader's nonce, keyed by a secret that
only the installing call saw, so a replaced guard is noticed. The guard stops
the usual tricks (monkeypatching a helper, swallowing exceptions, overwriting
an expected value, printing fake output); it is not a security boundary
against code that rewrites the kernel itself: the sandbox is, and the
instructor sees the status ``tampered`` with what was found.
"""

from __future__ import annotations

import builtins
import hashlib
import hmac
import json
import sys
import types
from typing import Any

__all__ = ["install"]

_WATCHED_BUILTINS = (
    "print", "isinstance", "issubclass", "len", "abs", "round", "sorted", "sum", "min", "max",
    "all", "any", "set", "frozenset", "list", "dict", "tuple", "str", "int", "float", "bool",
    "repr", "type", "__import__", "getattr", "setattr", "hasattr", "id", "iter", "next", "range",
    "zip", "map", "filter", "enumerate", "compile", "eval", "exec", "object", "callable",
)
_WATCHED_MODULES = ("math", "operator", "numpy", "numpy.testing")
_SHELL_METHODS = ("run_cell", "run_cell_async", "run_ast_nodes", "run_code", "showtraceback",
                  "_showtraceback", "showsyntaxerror", "transform_cell")
_SYS_NAMES = ("stdout", "stderr", "displayhook", "excepthook")
_DATA_TYPES = (int, float, complex, str, bytes, bool, list, tuple, dict, set, frozenset, type(None))


def _from_notebook(obj: Any) -> bool:
    """Was this callable (or the class of this object) defined in a notebook cell?"""
    target = obj
    for attr in ("__func__", "func"):  # bound methods, functools.partial
        target = getattr(target, attr, target)
    if not hasattr(target, "__code__") and not isinstance(target, type):
        target = type(target)
    module = getattr(target, "__module__", None) or ""
    code = getattr(target, "__code__", None)
    filename = getattr(code, "co_filename", "") if code is not None else ""
    return module == "__main__" or filename.startswith("<") or "ipykernel_" in filename


def _is_data(value: Any) -> bool:
    if isinstance(value, _DATA_TYPES):
        return True
    module = getattr(type(value), "__module__", "") or ""
    return module.startswith("numpy")


def install(secret: str, student_names: list[str]) -> str:
    """Snapshot the pristine kernel; expose ``record`` and ``restore`` on this module."""
    import importlib

    from IPython import get_ipython

    import graders.checks  # noqa: F401  (loads every helper module before the snapshot)

    shell = get_ipython()
    ns = shell.user_ns
    key = secret.encode()
    for name in _WATCHED_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    modules = {name: mod for name, mod in sys.modules.items()
               if isinstance(mod, types.ModuleType)
               and (name == "graders" or name.startswith("graders.") or name in _WATCHED_MODULES)}
    module_attrs = {name: dict(vars(mod)) for name, mod in modules.items()}
    builtin_attrs = {name: getattr(builtins, name) for name in _WATCHED_BUILTINS}
    # Exception classes too: `builtins.AssertionError = ...` must not change what a test raises.
    builtin_attrs.update({name: value for name, value in vars(builtins).items()
                          if isinstance(value, type) and issubclass(value, BaseException)})
    sys_attrs = {name: getattr(sys, name) for name in _SYS_NAMES}
    shell_class_attrs = {(cls, name): cls.__dict__[name] for cls in type(shell).__mro__
                         for name in _SHELL_METHODS if name in cls.__dict__}
    shell_instance_attrs = {
        name: vars(shell)[name] for name in _SHELL_METHODS if name in vars(shell)
    }
    hooks = {event: list(callbacks) for event, callbacks in shell.events.callbacks.items()}
    transformer_lists = [lst for lst in (
        getattr(shell, "ast_transformers", None),
        getattr(shell, "input_transformers_post", None),
        getattr(getattr(shell, "input_transformer_manager", None), "cleanup_transforms", None),
        getattr(getattr(shell, "input_transformer_manager", None), "line_transforms", None),
        getattr(getattr(shell, "input_transformer_manager", None), "token_transformers", None),
    ) if isinstance(lst, list)]
    transformers = [(lst, list(lst)) for lst in transformer_lists]
    protected_names = set(student_names)
    instructor_data: dict[str, Any] = {}

    def sign(nonce: str, payload: dict[str, Any]) -> str:
        payload["mac"] = hmac.new(key, nonce.encode(), hashlib.sha256).hexdigest()
        return json.dumps(payload)

    def record(nonce: str, names: list[str]) -> str:
        for name in names:
            value = ns.get(name, _MISSING)
            if not name.startswith("_") and name not in protected_names and _is_data(value):
                instructor_data[name] = value
        return sign(nonce, {})

    def restore(nonce: str) -> str:
        found: list[str] = []
        if sys.modules.get(__name__) is not _this or _this.__dict__.get("_calls") is not calls:
            found.append("the grader's guard was replaced")
        for name, mod in modules.items():
            if sys.modules.get(name) is not mod:
                sys.modules[name] = mod
                found.append(f"sys.modules[{name!r}] replaced")
            current = vars(mod)
            for attr, value in module_attrs[name].items():
                if current.get(attr, _MISSING) is not value:
                    current[attr] = value
                    found.append(f"{name}.{attr} replaced")
        for name, value in builtin_attrs.items():
            if getattr(builtins, name, _MISSING) is not value:
                setattr(builtins, name, value)
                found.append(f"builtins.{name} replaced")
        for name, value in sys_attrs.items():
            if getattr(sys, name) is not value:
                setattr(sys, name, value)
                found.append(f"sys.{name} replaced")
        for (cls, name), value in shell_class_attrs.items():
            if cls.__dict__.get(name, _MISSING) is not value:
                setattr(cls, name, value)
                found.append(f"IPython {cls.__name__}.{name} replaced")
        for name in _SHELL_METHODS:
            original = shell_instance_attrs.get(name, _MISSING)
            if vars(shell).get(name, _MISSING) is not original:
                if original is _MISSING:
                    delattr(shell, name)
                else:
                    setattr(shell, name, original)
                found.append(f"IPython shell.{name} replaced")
        if shell.custom_exceptions:
            shell.set_custom_exc((), None)
            found.append("a custom exception handler was installed")
        # Libraries register hooks too (matplotlib's inline backend does): only
        # callables written in the notebook are taken out.
        for event, callbacks in shell.events.callbacks.items():
            added = [
                cb for cb in callbacks if cb not in hooks.get(event, []) and _from_notebook(cb)
            ]
            if added:
                callbacks[:] = [cb for cb in callbacks if cb not in added]
                found.append(f"an IPython {event} hook was registered")
        for lst, original in transformers:
            added = [t for t in lst if t not in original and _from_notebook(t)]
            if added:
                lst[:] = [t for t in lst if t not in added]
                found.append("an input transformer was installed")
        rebound = []
        for name, value in instructor_data.items():
            if ns.get(name, _MISSING) is not value:
                ns[name] = value
                rebound.append(name)
        return sign(nonce, {"tampering": found, "rebound": rebound})

    calls: dict[str, Any] = {"record": record, "restore": restore}
    _this._calls = calls  # type: ignore[attr-defined]
    return "installed"


class _Missing:
    pass


_MISSING = _Missing()
_this = sys.modules[__name__]


def call(what: str, nonce: str, *args: Any) -> str:
    """Entry point the grader evaluates (as a user expression) around cells."""
    calls = getattr(_this, "_calls", None)
    if not calls:
        return json.dumps({"error": "guard not installed"})
    return str(calls[what](nonce, *args))
