"""Class path <-> class, and the policy deciding which class paths may be used.

Policy (default deny; the caller sets it, a spec never can):

* Without ``allow``, a class path resolves only when its module is already
  imported and the class is a ``GraphConvertible`` subclass or ``@register``-ed.
  Nothing is imported.
* ``allow`` patterns are exactly two forms: one class (``"mypkg.models:Encoder"``
  or ``"mypkg.models.Encoder"``), or a module and everything below it
  (``"mypkg.*"``, ``"mypkg.models.*"``). A covered class may be used and its
  module imported. Any other pattern (``"*"``, ``"mypkg*"``, ``"?"``, ``"[a]"``)
  is refused; allowing every class takes the named sentinel ``UNSAFE_ALLOW_ALL``.
* ``import_modules=False`` (what ``generic=True`` asks for) imports nothing,
  whatever ``allow`` says.
* Only classes are ever used, never functions, modules or builtins, and the
  resolved class's real ``__module__`` and ``__qualname__`` must be the path
  that was asked for and must pass the policy, so ``logging:os.system`` or a
  re-exported class from an unallowed module cannot slip through.

Resolving runs no code of the modules or classes it looks at: module and class
namespaces are read through the C-level ``__dict__`` descriptors, never with
``getattr``, so no module ``__getattr__`` (PEP 562), lazy-module hook, metaclass
``__getattr__``/``__getattribute__`` or descriptor runs, and no submodule is
imported on the way. The one exception is the import an ``allow`` pattern asks for.
"""

from __future__ import annotations

import difflib
import importlib
import re
import sys
import types
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import ClassNotAllowedError
from .registry import is_trusted

__all__ = [
    "UNSAFE_ALLOW_ALL",
    "AllowPatterns",
    "AllowPolicy",
    "class_path_of",
    "normalize_allow",
    "resolve_class",
]


_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_DOTTED = rf"{_IDENT}(?:\.{_IDENT})*"
CLASS_PATH = re.compile(rf"(?P<module>{_DOTTED}):(?P<qualname>{_DOTTED})\Z")
_DOTTED_CLASS = re.compile(rf"{_IDENT}(?:\.{_IDENT})+\Z")
_MODULE_PREFIX = re.compile(rf"(?P<module>{_DOTTED})\.\*\Z")

_REFUSED_MODULES = frozenset({"builtins", "__builtin__"})
# Where GraphConvertible may live; looked up in sys.modules, never imported: if neither
# module is imported, no class can derive from it.

# The C-level slots behind ``module.__dict__``, ``cls.__dict__``, ``cls.__module__``...:
# reading through them runs no __getattribute__, __getattr__ or property of the object.
_MODULE_DICT: Any = vars(types.ModuleType)["__dict__"]
_TYPE_DICT: Any = type.__dict__["__dict__"]
_TYPE_MODULE: Any = type.__dict__["__module__"]
_TYPE_QUALNAME: Any = type.__dict__["__qualname__"]
_TYPE_MRO: Any = type.__dict__["__mro__"]

_ACCEPTED = (
    "an allow pattern is one class ('pkg.module:Class' or 'pkg.module.Class') or a module "
    "and everything below it ('pkg.*', 'pkg.module.*'); to allow every class, pass "
    "ng.UNSAFE_ALLOW_ALL"
)


class _UnsafeAllowAll:
    """The type of ``UNSAFE_ALLOW_ALL``; it has exactly one instance."""

    __slots__ = ()
    _instance: _UnsafeAllowAll | None = None

    def __new__(cls) -> _UnsafeAllowAll:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "<UNSAFE_ALLOW_ALL: a spec may import any module and use any class>"

    def __reduce__(self) -> str:
        return "UNSAFE_ALLOW_ALL"  # pickles as this module's constant, still one instance


#: ``allow=UNSAFE_ALLOW_ALL``: every class path may be used and its module imported
#: (still only classes, never builtins, and never through an alias). Only for specs
#: you wrote yourself.
UNSAFE_ALLOW_ALL = _UnsafeAllowAll()


@dataclass(frozen=True)
class AllowPolicy:
    """Checked allow patterns: exact classes, module prefixes, or everything."""

    class_paths: frozenset[str] = frozenset()  # "pkg.module:Class"
    dotted_names: frozenset[str] = frozenset()  # "pkg.module.Class"
    modules: tuple[str, ...] = ()  # "pkg" from "pkg.*"
    everything: bool = False

    def covers(self, module: str, qualname: str) -> bool:
        """Whether the caller allowed the class ``module:qualname``."""
        if self.everything:
            return True
        if f"{module}:{qualname}" in self.class_paths:
            return True
        if f"{module}.{qualname}" in self.dotted_names:
            return True
        return any(module == m or module.startswith(m + ".") for m in self.modules)

    def __bool__(self) -> bool:
        return bool(self.everything or self.class_paths or self.dotted_names or self.modules)


#: The binder's name for a checked policy (kept from when patterns were a tuple).
AllowPatterns = AllowPolicy
_NOTHING = AllowPolicy()


def normalize_allow(allow: Any) -> AllowPolicy:
    """Check the caller's ``allow`` argument and turn it into an ``AllowPolicy``.

    ``None`` allows nothing extra; a string is one pattern; any other iterable
    holds patterns; ``UNSAFE_ALLOW_ALL`` (alone or among the patterns) allows
    every class. Raises ``ClassNotAllowedError`` for anything else, saying what
    is accepted.

    >>> normalize_allow(["mypkg.*"]).covers("mypkg.models", "Encoder")
    True
    """
    if allow is None:
        return _NOTHING
    if isinstance(allow, AllowPolicy):
        return allow
    if allow is UNSAFE_ALLOW_ALL:
        return AllowPolicy(everything=True)
    if isinstance(allow, str):
        allow = [allow]
    elif isinstance(allow, (bytes, bytearray, Mapping)) or not isinstance(allow, Iterable):
        raise ClassNotAllowedError(
            f"allow must be None, a pattern or a list of patterns, not {type(allow).__name__}; "
            + _ACCEPTED
        )
    class_paths: set[str] = set()
    dotted: set[str] = set()
    modules: list[str] = []
    everything = False
    for pattern in allow:
        if pattern is UNSAFE_ALLOW_ALL:
            everything = True
        elif not isinstance(pattern, str):
            raise ClassNotAllowedError(
                f"allow pattern {pattern!r} is a {type(pattern).__name__}, not a string; "
                + _ACCEPTED
            )
        elif CLASS_PATH.match(pattern):
            class_paths.add(pattern)
        elif _DOTTED_CLASS.match(pattern):
            dotted.add(pattern)
        elif (prefix := _MODULE_PREFIX.match(pattern)) is not None:
            modules.append(prefix.group("module"))
        else:
            raise ClassNotAllowedError(f"allow pattern {pattern!r} is refused: {_why(pattern)}")
    return AllowPolicy(frozenset(class_paths), frozenset(dotted), tuple(modules), everything)


def _why(pattern: str) -> str:
    if not pattern:
        return "it is empty; " + _ACCEPTED
    if "*" in pattern and pattern.strip("*.") == "":
        return f"a '*' alone would allow every module on the path; {_ACCEPTED}"
    if re.fullmatch(_IDENT, pattern):
        return f"it names no class; for the whole package write {pattern + '.*'!r}. " + _ACCEPTED
    if any(c in pattern for c in "*?[]"):
        return f"only a trailing '.*' is a wildcard; {_ACCEPTED}"
    return _ACCEPTED


# Where nestgraph makes the stand-in namedtuple classes of ``generic=True``.
_GENERIC_HOME = "nestgraph._builder"


def class_path_of(cls: type) -> str:
    """``module:QualName`` for a class (a generic class keeps the path it came from)."""
    original = cls.__dict__.get("nestgraph_class")
    if isinstance(original, str) and cls.__dict__.get("__module__") == _GENERIC_HOME:
        return original  # a stand-in namedtuple class nestgraph made for that path
    return f"{_module_name(cls.__module__)}:{cls.__qualname__}"


def _main_spec_name() -> str | None:
    main = sys.modules.get("__main__")
    if not issubclass(type(main), types.ModuleType):
        return None
    main_spec = _MODULE_DICT.__get__(main).get("__spec__")
    name = getattr(main_spec, "name", None)  # a ModuleSpec that the interpreter made
    return name if isinstance(name, str) and name else None


def _module_name(module: str) -> str:
    # Run as ``python -m pkg.mod``, classes of the main module are recorded under
    # their importable name, so another process can find them.
    if module == "__main__":
        return _main_spec_name() or module
    return module


def _how_to_allow(class_path: str) -> str:
    module = class_path.split(":", 1)[0]
    top = module.split(".", 1)[0]
    return (
        f"pass allow=[{class_path.replace(':', '.')!r}] or allow=[{top + '.*'!r}] if you "
        "trust that code, or generic=True to get ng.Node objects instead"
    )


def _namespace(obj: Any) -> Mapping[str, Any] | None:
    """A module's or class's own namespace, read without running its code."""
    if issubclass(type(obj), type):  # not isinstance: that may ask obj for __class__
        namespace: Mapping[str, Any] = _TYPE_DICT.__get__(obj)
        return namespace
    if issubclass(type(obj), types.ModuleType):
        namespace = _MODULE_DICT.__get__(obj)
        return namespace
    return None


def resolve_class(
    class_path: str,
    allow: Any = (),
    *,
    path: str | None = None,
    import_modules: bool = True,
) -> type:
    """The class named by ``class_path``, if the policy lets it be used.

    ``allow`` is an ``AllowPolicy`` (or anything ``normalize_allow`` takes).
    With ``import_modules=False`` nothing is imported even when ``allow``
    covers the class (``generic=True`` passes that). Raises
    ``ClassNotAllowedError`` (naming ``path``, the class path and how to allow
    it) for anything refused or not found.
    """

    def refuse(why: str) -> ClassNotAllowedError:
        return ClassNotAllowedError(
            f"class {class_path!r} {why}; {_how_to_allow(class_path)}",
            path=path,
            class_path=class_path,
        )

    policy = normalize_allow(allow)
    match = CLASS_PATH.match(class_path) if isinstance(class_path, str) else None
    if match is None:
        raise ClassNotAllowedError(
            f"{class_path!r} is not a class path of the form 'package.module:QualName'",
            path=path,
            class_path=class_path if isinstance(class_path, str) else None,
        )
    module_name, qualname = match.group("module"), match.group("qualname")
    if module_name in _REFUSED_MODULES:
        raise refuse("is a builtin, and builtins are never instantiated")
    explicitly_allowed = policy.covers(module_name, qualname)

    module = sys.modules.get(module_name)
    if module is None and module_name == _main_spec_name():
        module = sys.modules["__main__"]  # this process runs that module as __main__
    if module is None:
        # Import only to reach a class the caller allowed by name or pattern.
        if not explicitly_allowed:
            raise refuse(f"is not allowed: module {module_name!r} is not imported")
        if not import_modules:
            raise refuse(
                f"is not available: module {module_name!r} is not imported, and "
                "generic=True never imports"
            )
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise refuse(f"cannot be imported ({exc})") from None
        except Exception as exc:  # the allowed module's own code failed
            raise refuse(f"cannot be imported ({type(exc).__name__}: {exc})") from exc
    if not issubclass(type(module), types.ModuleType):
        raise refuse(
            f"is not allowed: sys.modules[{module_name!r}] is a {type(module).__name__}, "
            "not a module, and nestgraph reads only real modules"
        )

    obj: Any = module
    where = module_name
    for part in qualname.split("."):
        namespace = _namespace(obj)
        if namespace is None:
            raise refuse(
                f"is not a class path: {where!r} is a {type(obj).__name__}, and a class "
                "path names a class in the module that defines it"
            )
        parent, obj = namespace, namespace.get(part)
        if obj is None:
            names = [n for n in parent if isinstance(n, str) and n[:1].isupper()]
            close = difflib.get_close_matches(part, names, 1)
            hint = f" (closest: {close[0]!r})" if close else ""
            raise ClassNotAllowedError(
                f"class {class_path!r} was not found: {module_name!r} has no attribute path "
                f"{qualname!r}{hint}; fix the class path, or pass generic=True to get "
                "ng.Node objects instead",
                path=path,
                class_path=class_path,
            )
        where = f"{where}.{part}"
        if issubclass(type(obj), types.ModuleType):
            raise refuse(
                f"is not a class path: {where!r} is a module, and a class path names a "
                "class in the module that defines it"
            )
    if not issubclass(type(obj), type):
        raise refuse(f"is a {type(obj).__name__}, not a class; only classes are instantiated")
    real_module, real_qualname = _TYPE_MODULE.__get__(obj), _TYPE_QUALNAME.__get__(obj)
    if type(real_module) is not str:
        raise refuse("has no module name of its own")
    real = f"{_module_name(real_module)}:{real_qualname}"
    if real != class_path:
        raise refuse(f"resolves to {real!r}, which is defined elsewhere")
    if real_module in _REFUSED_MODULES:
        raise refuse("is a builtin, and builtins are never instantiated")
    if explicitly_allowed or is_trusted(obj):
        return obj
    raise refuse("is neither a GraphConvertible subclass nor registered with @ng.register")
