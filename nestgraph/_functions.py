"""Leaf handler for functions: ``function module:qualname``.

A model field holding a function (``tf.nn.relu``, a user's activation) is
recorded by the function's own ``__module__`` and ``__qualname__``, so the path
is where the function really lives (``tf.nn.relu`` is
``tensorflow.python.ops.gen_nn_ops:relu``), and only if that path names the
very same function. Lambdas and nested functions have no such path: skipped.

Rebuilding resolves the path only when the caller's ``allow`` covers it: a
module is imported only then, names are read from module and class
``__dict__``s (no ``getattr``, so no lazy loader or ``__getattr__`` runs),
builtins are refused, and the function found must report the same
``__module__``/``__qualname__``. Otherwise the field comes back as a
``Placeholder`` that says what it stood for and how to allow it.
"""

from __future__ import annotations

import importlib
import re
import sys
import types
from typing import Any

from . import registry
from ._objects import Placeholder
from .classpath import AllowPolicy
from .nodes import Leaf, Skipped, SpecNode

__all__ = ["function_path", "resolve_function"]

_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_FUNCTION_PATH = re.compile(
    rf"(?P<module>{_IDENT}(?:\.{_IDENT})*):(?P<qualname>{_IDENT}(?:\.{_IDENT})*)\Z"
)
_REFUSED_MODULES = frozenset({"builtins", "__builtin__"})


def _module_name(module: str) -> str:
    # Run as ``python -m pkg.mod``, functions of the main module are recorded under
    # their importable name, as classes are.
    if module == "__main__":
        spec = getattr(sys.modules.get("__main__"), "__spec__", None)
        name = getattr(spec, "name", None)
        if isinstance(name, str) and name:
            return name
    return module


def _lookup(module: Any, qualname: str) -> Any:
    """``module.a.b`` through ``__dict__``s only (None where a name is missing)."""
    found: Any = module
    for part in qualname.split("."):
        namespace = getattr(found, "__dict__", None)
        if not isinstance(namespace, (dict, types.MappingProxyType)):
            return None
        found = namespace.get(part)
        if isinstance(found, staticmethod):
            found = found.__func__
        if found is None:
            return None
    return found


def function_path(function: types.FunctionType) -> str | None:
    """``module:qualname`` of ``function`` if that path finds this very function, else None."""
    module_name = function.__module__
    qualname = function.__qualname__
    if not isinstance(module_name, str) or not isinstance(qualname, str):
        return None
    module = sys.modules.get(module_name)
    if module is None or _lookup(module, qualname) is not function:
        return None
    path = f"{_module_name(module_name)}:{qualname}"
    return path if _FUNCTION_PATH.match(path) else None


def _how_to_allow(path: str) -> str:
    top = path.split(".", 1)[0].split(":", 1)[0]
    return f"pass allow=[{path.replace(':', '.')!r}] (or allow=[{top + '.*'!r}]) to get it back"


def resolve_function(path: str, allow: AllowPolicy) -> Any:
    """The function at ``path`` when ``allow`` covers it, else a ``Placeholder`` saying why."""

    def placeholder(why: str) -> Placeholder:
        return Placeholder("function", path, why)

    match = _FUNCTION_PATH.match(path)
    if match is None:
        return placeholder("not a function path of the form 'package.module:qualname'")
    module_name, qualname = match.group("module"), match.group("qualname")
    if module_name in _REFUSED_MODULES:
        return placeholder("builtins are never resolved")
    if not allow.covers(module_name, qualname):
        return placeholder(
            f"not resolved: functions come back only when allowed; {_how_to_allow(path)}"
        )
    module = sys.modules.get(module_name)
    if module is None:
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            return placeholder(f"module {module_name!r} cannot be imported ({exc})")
    found = _lookup(module, qualname)
    if not isinstance(found, types.FunctionType):
        what = "nothing" if found is None else f"a {type(found).__name__}"
        return placeholder(f"{path} names {what}, not a function")
    real = f"{_module_name(found.__module__)}:{found.__qualname__}"
    if real != path or found.__module__ in _REFUSED_MODULES:
        return placeholder(f"{path} resolves to {real}, which is defined elsewhere")
    return found


def _write_function(function: types.FunctionType) -> SpecNode:
    qualname = getattr(function, "__qualname__", "?")
    if "<lambda>" in qualname:
        return Skipped("a lambda has no importable name; define the function at module level")
    if "<locals>" in qualname:
        return Skipped(
            f"function {qualname} is defined inside another function and has no importable "
            "name; define it at module level"
        )
    path = function_path(function)
    if path is None:
        return Skipped(
            f"function {function.__module__}:{qualname} cannot be found again under that name "
            "(a wrapper that hides where it is defined?)"
        )
    return Leaf("function", value=path)


def _check_text(text: str) -> str | None:
    if _FUNCTION_PATH.match(text):
        return None
    return f"a function is written 'function package.module:qualname', not {text!r}"


registry.install(
    registry.LeafHandler(
        "function",
        "functions",
        lambda tp: tp is types.FunctionType,
        _write_function,
        rebuild=lambda leaf, elements, context: resolve_function(leaf.text, context.allow),
        check_text=_check_text,
    )
)
