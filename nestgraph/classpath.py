"""Class path <-> class, and the policy deciding which class paths may be used.

Policy (default deny; the caller sets it, a spec never can):

* Without ``allow``, a class path resolves only when its module is already
  imported and the class is a ``GraphConvertible`` subclass or ``@register``-ed.
  Nothing is imported.
* ``allow`` patterns (``"mypkg.*"``, ``"mypkg.models.Encoder"``, or the colon
  form ``"mypkg.models:Encoder"``), matched against the dotted full name, let a
  module be imported and any class in it be used.
* Only classes are ever used, never functions, modules or builtins, and the
  resolved class's real ``__module__`` and ``__qualname__`` must be the path
  that was asked for and must pass the policy, so ``logging:os.system`` or a
  re-exported class from an unallowed module cannot slip through.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
import re
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from .errors import ClassNotAllowedError
from .registry import is_trusted

__all__ = [
    "AllowPatterns",
    "class_path_of",
    "normalize_allow",
    "resolve_class",
]

AllowPatterns = tuple[str, ...]

_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
CLASS_PATH = re.compile(
    rf"(?P<module>{_IDENT}(?:\.{_IDENT})*):(?P<qualname>{_IDENT}(?:\.{_IDENT})*)\Z"
)

_REFUSED_MODULES = frozenset({"builtins", "__builtin__"})


def class_path_of(cls: type) -> str:
    """``module:QualName`` for a class (a generic class keeps the path it came from)."""
    original = cls.__dict__.get("__nestgraph_class__")
    if isinstance(original, str):
        return original
    return f"{_module_name(cls.__module__)}:{cls.__qualname__}"


def _main_spec_name() -> str | None:
    main_spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    name = getattr(main_spec, "name", None)
    return name if isinstance(name, str) and name else None


def _module_name(module: str) -> str:
    # Run as ``python -m pkg.mod``, classes of the main module are recorded under
    # their importable name, so another process can find them.
    if module == "__main__":
        return _main_spec_name() or module
    return module


def normalize_allow(allow: str | Iterable[str] | None) -> AllowPatterns:
    """Allow patterns as a tuple of dotted-name glob patterns."""
    if allow is None:
        return ()
    if isinstance(allow, str):
        allow = [allow]
    patterns = []
    for pattern in allow:
        if not isinstance(pattern, str) or not pattern:
            raise TypeError(f"allow patterns must be non-empty strings, got {pattern!r}")
        patterns.append(pattern.replace(":", "."))
    return tuple(patterns)


def _allowed(dotted: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(dotted, p) for p in patterns)


def _how_to_allow(class_path: str) -> str:
    module = class_path.split(":", 1)[0]
    top = module.split(".", 1)[0]
    return (
        f"pass allow=[{class_path.replace(':', '.')!r}] or allow=[{top + '.*'!r}] if you "
        "trust that code, or generic=True to get ng.Node objects instead"
    )


def resolve_class(class_path: str, allow: AllowPatterns = (), *, path: str | None = None) -> type:
    """The class named by ``class_path``, if the policy lets it be used.

    Raises ``ClassNotAllowedError`` (naming ``path``, the class path and how to
    allow it) for anything refused or not found.
    """

    def refuse(why: str) -> ClassNotAllowedError:
        return ClassNotAllowedError(
            f"class {class_path!r} {why}; {_how_to_allow(class_path)}",
            path=path,
            class_path=class_path,
        )

    match = CLASS_PATH.match(class_path)
    if match is None:
        raise ClassNotAllowedError(
            f"{class_path!r} is not a class path of the form 'package.module:QualName'",
            path=path,
            class_path=class_path,
        )
    module_name, qualname = match.group("module"), match.group("qualname")
    dotted = f"{module_name}.{qualname}"
    if module_name in _REFUSED_MODULES:
        raise refuse("is a builtin, and builtins are never instantiated")
    explicitly_allowed = _allowed(dotted, allow)

    module = sys.modules.get(module_name)
    if module is None and module_name == _main_spec_name():
        module = sys.modules["__main__"]  # this process runs that module as __main__
    if module is None:
        # Import only to reach a class the caller allowed by name or pattern.
        if not explicitly_allowed:
            raise refuse(f"is not allowed: module {module_name!r} is not imported")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise refuse(f"cannot be imported ({exc})") from None

    obj: Any = module
    for part in qualname.split("."):
        parent, obj = obj, getattr(obj, part, None)
        if obj is None:
            close = difflib.get_close_matches(part, [n for n in dir(parent) if n[:1].isupper()], 1)
            hint = f" (closest: {close[0]!r})" if close else ""
            raise ClassNotAllowedError(
                f"class {class_path!r} was not found: {module_name!r} has no attribute path "
                f"{qualname!r}{hint}; fix the class path, or pass generic=True to get "
                "ng.Node objects instead",
                path=path,
                class_path=class_path,
            )
    if not isinstance(obj, type):
        raise refuse(f"is a {type(obj).__name__}, not a class; only classes are instantiated")
    real = f"{_module_name(obj.__module__)}:{obj.__qualname__}"
    if real != class_path:
        raise refuse(f"resolves to {real!r}, which is defined elsewhere")
    if obj.__module__ in _REFUSED_MODULES:
        raise refuse("is a builtin, and builtins are never instantiated")
    if explicitly_allowed or is_trusted(obj):
        return obj
    raise refuse("is neither a GraphConvertible subclass nor registered with @ng.register")
