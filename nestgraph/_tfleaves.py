"""Leaf handlers for what a TF1 model object keeps beside its tensors.

* ``session Session``: a ``tf.compat.v1.Session`` (or ``InteractiveSession``,
  ``MonitoredSession``); rebuilt as the session the binder was given
  (``from_graph(..., session=)``), or a ``Placeholder`` saying none was.
* ``saver FILENAME:N SAVE:N RESTORE_OP max_to_keep=5 ...``: a
  ``tf.compat.v1.train.Saver`` by its ``SaverDef`` names (checked, rescoped and
  pruned like every binding) and flags; rebuilt as a working ``Saver`` on the
  bound graph that builds no new ops.
* ``dtype float32``: a ``tf.DType``, by name.
* ``shape [None, 4]`` (``shape unknown`` for an unknown rank): a ``tf.TensorShape``.
* what ``tf1.assign(v, x)`` returns for a resource variable is recorded as
  ``op`` (its assign op), not as a variable of that name.

Types are looked up through ``sys.modules``: nothing here imports TensorFlow
until a leaf is rebuilt, which only happens while binding to a graph.
"""

from __future__ import annotations

import importlib
import re
import sys
from collections.abc import Callable
from typing import Any

from . import registry
from ._objects import Placeholder
from .nodes import Leaf, LookupKind, Skipped, SpecNode

__all__ = ["format_shape", "parse_shape"]


def _tf() -> Any:
    # Only reached while rebuilding, when a graph (hence TensorFlow) is in use.
    return importlib.import_module("tensorflow")


def _class_in(module: str, name: str) -> type | None:
    found = vars(sys.modules[module]).get(name) if module in sys.modules else None
    return found if isinstance(found, type) else None


def _subclass_of(*where: tuple[str, str]) -> Callable[[type], bool]:
    def matches(tp: type) -> bool:
        bases = tuple(cls for cls in (_class_in(m, n) for m, n in where) if cls is not None)
        return bool(bases) and issubclass(tp, bases)

    return matches


# --------------------------------------------------------------------------- session

_SESSION_TYPES = (
    ("tensorflow.python.client.session", "BaseSession"),
    ("tensorflow.python.training.monitored_session", "_MonitoredSession"),
)
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def _write_session(session: Any) -> SpecNode:
    return Leaf("session", value=type(session).__name__.lstrip("_"))


def _rebuild_session(
    leaf: Leaf, elements: tuple[Any, ...], context: registry.RebuildContext
) -> Any:
    if context.session is not None:
        return context.session
    return Placeholder(
        "session",
        leaf.text,
        "no session was given; pass session= to ng.from_graph (ng.load gives the loaded one)",
    )


def _check_word(what: str) -> Callable[[str], str | None]:
    def check(text: str) -> str | None:
        return None if _WORD.match(text) else f"'{what}' takes one word (a type name), not {text!r}"

    return check


# --------------------------------------------------------------------------- saver

_SAVER_PARTS = (
    ("filename", LookupKind.TENSOR),
    ("save", LookupKind.TENSOR),
    ("restore", LookupKind.OP),
)
# SaverDef fields written after the names, with their parsers; defaults are written too,
# so the spec says exactly what the Saver will do.
_SAVER_FLAGS: dict[str, Callable[[str], Any]] = {
    "max_to_keep": int,
    "keep_checkpoint_every_n_hours": float,
    "sharded": lambda text: {"true": True, "false": False}[text],
    "version": int,
}
_TENSOR_NAME = re.compile(r"\S+:\d+\Z")
_OP_NAME = re.compile(r"[^\s:]+\Z")
_SAVER_FORM = (
    "'saver' takes the filename tensor, the save tensor and the restore op of its SaverDef, "
    "then max_to_keep=N keep_checkpoint_every_n_hours=H sharded=true|false version=N"
)


def _write_saver(saver: Any) -> SpecNode:
    saver_def = getattr(saver, "saver_def", None)
    if saver_def is None:
        return Skipped(
            "a tf.compat.v1.train.Saver whose ops are not built yet (defer_build=True); "
            "call saver.build() before walking"
        )
    flags = (
        f"max_to_keep={saver_def.max_to_keep}",
        f"keep_checkpoint_every_n_hours={float(saver_def.keep_checkpoint_every_n_hours)!r}",
        f"sharded={'true' if saver_def.sharded else 'false'}",
        f"version={int(saver_def.version)}",
    )
    names = (saver_def.filename_tensor_name, saver_def.save_tensor_name, saver_def.restore_op_name)
    return Leaf("saver", names, " ".join(flags))


def _saver_flags(text: str) -> dict[str, Any]:
    """The flags after a saver's names; ``ValueError`` naming what is wrong."""
    flags: dict[str, Any] = {}
    for item in text.split(" ") if text else ():
        key, eq, raw = item.partition("=")
        parse = _SAVER_FLAGS.get(key)
        if not eq or parse is None or key in flags:
            raise ValueError(f"{_SAVER_FORM}; {item!r} is not one of those flags (or repeats)")
        try:
            flags[key] = parse(raw)
        except (ValueError, KeyError):
            raise ValueError(f"{_SAVER_FORM}; bad value in {item!r}") from None
    return flags


def _check_saver(text: str) -> str | None:
    tokens = text.split(" ", 3)
    if len(tokens) < 3:
        return _SAVER_FORM
    filename, save, restore = tokens[:3]
    if not (_TENSOR_NAME.match(filename) and _TENSOR_NAME.match(save) and _OP_NAME.match(restore)):
        return _SAVER_FORM
    try:
        _saver_flags(tokens[3] if len(tokens) > 3 else "")
    except ValueError as exc:
        return str(exc)
    return None


def _check_saver_elements(elements: tuple[Any, ...]) -> str | None:
    # Saver.save feeds a path string to the filename tensor and returns the save tensor.
    problems = [
        f"its {part} tensor {tensor.name!r} is {tensor.dtype.name}, not string"
        for part, tensor in zip(("filename", "save"), elements[:2], strict=True)
        if tensor.dtype.base_dtype.name != "string"
    ]
    return "; ".join(problems) or None


def _rebuild_saver(leaf: Leaf, elements: tuple[Any, ...], context: registry.RebuildContext) -> Any:
    tf = _tf()
    filename, save, restore = elements
    saver_def = tf.compat.v1.train.SaverDef(
        filename_tensor_name=filename.name,
        save_tensor_name=save.name,
        restore_op_name=restore.name,
        **_saver_flags(leaf.value or ""),
    )
    # A Saver given a SaverDef builds no ops: it runs the bound ones, on their graph.
    with filename.graph.as_default():
        return tf.compat.v1.train.Saver(saver_def=saver_def)


# --------------------------------------------------------------------------- dtype, shape

_DIM = r"\s*(?:None|\d+)\s*"
_SHAPE = re.compile(rf"unknown\Z|\[(?:{_DIM}(?:,{_DIM})*)?\]\Z")


def format_shape(dims: list[int | None] | None) -> str:
    """``[None, 4]`` for those dims, ``unknown`` for an unknown rank.

    >>> format_shape([None, 4]), format_shape([]), format_shape(None)
    ('[None, 4]', '[]', 'unknown')
    """
    if dims is None:
        return "unknown"
    return "[" + ", ".join("None" if d is None else str(d) for d in dims) + "]"


def parse_shape(text: str) -> list[int | None] | None:
    """The dims of ``format_shape`` text; ``ValueError`` if it is not that form.

    >>> parse_shape("[None, 4]"), parse_shape("unknown")
    ([None, 4], None)
    """
    if not _SHAPE.match(text):
        raise ValueError(f"a shape is written [None, 4], [] or unknown, not {text!r}")
    if text == "unknown":
        return None
    inner = text[1:-1].strip()
    if not inner:
        return []
    return [None if d.strip() == "None" else int(d) for d in inner.split(",")]


def _check_shape(text: str) -> str | None:
    try:
        parse_shape(text)
    except ValueError as exc:
        return str(exc)
    return None


def _write_shape(shape: Any) -> SpecNode:
    return Leaf("shape", value=format_shape(shape.as_list() if shape.rank is not None else None))


def _rebuild_shape(leaf: Leaf, elements: tuple[Any, ...], context: registry.RebuildContext) -> Any:
    return _tf().TensorShape(parse_shape(leaf.text))


_DTYPE_NAME = re.compile(r"[a-z][a-z0-9_]*\Z")


def _check_dtype(text: str) -> str | None:
    if not _DTYPE_NAME.match(text):
        return f"a dtype is written by its name (float32, int64, ...), not {text!r}"
    return None


def _rebuild_dtype(leaf: Leaf, elements: tuple[Any, ...], context: registry.RebuildContext) -> Any:
    tf = _tf()
    try:
        return tf.as_dtype(leaf.text)
    except TypeError:
        return Placeholder("dtype", leaf.text, "this TensorFlow has no dtype of that name")


# --------------------------------------------------------------------------- registration


def _install(
    kind: str,
    label: str,
    matches: Callable[[type], bool],
    write: Callable[[Any], SpecNode],
    rebuild: Callable[[Leaf, tuple[Any, ...], registry.RebuildContext], Any],
    check_text: Callable[[str], str | None],
    parts: tuple[tuple[str, str], ...] = (),
    check_elements: Callable[[tuple[Any, ...]], str | None] | None = None,
    expected_families: frozenset[str] = frozenset(),
) -> None:
    registry.install(
        registry.LeafHandler(
            kind,
            label,
            matches,
            write,
            parts=parts,
            rebuild=rebuild,
            check_text=check_text,
            check_elements=check_elements,
            expected_families=expected_families,
        )
    )


_install(
    "session",
    "tf.compat.v1.Session and MonitoredSession",
    _subclass_of(*_SESSION_TYPES),
    _write_session,
    _rebuild_session,
    _check_word("session"),
)
_install(
    "saver",
    "tf.compat.v1.train.Saver",
    _subclass_of(("tensorflow.python.training.saver", "Saver")),
    _write_saver,
    _rebuild_saver,
    _check_saver,
    _SAVER_PARTS,
    _check_saver_elements,
    frozenset({"checkpoint"}),
)
_install(
    "dtype",
    "tf.DType",
    _subclass_of(("tensorflow.python.framework.dtypes", "DType")),
    lambda dtype: Leaf("dtype", value=dtype.name),
    _rebuild_dtype,
    _check_dtype,
)
_install(
    "shape",
    "tf.TensorShape",
    _subclass_of(("tensorflow.python.framework.tensor_shape", "TensorShape")),
    _write_shape,
    _rebuild_shape,
    _check_shape,
)
# ``tf1.assign(v, x)`` on a resource variable (a target-network update) returns an
# "unread variable" named after its assign op: what running it does is that op.
registry.install(
    registry.LeafHandler(
        None,
        "the result of assigning to a resource variable",
        _subclass_of(("tensorflow.python.ops.resource_variable_ops", "_UnreadVariable")),
        lambda unread: Leaf(LookupKind.OP, (unread.op.name,)),
    )
)
# Layers and other TensorFlow/Keras objects recorded as objects come back as ng.Node:
# an instance made with __new__ and given its variables is not a working layer.
for _prefix in ("tensorflow.", "tf_keras.", "keras."):
    registry.rebuild_as_node(_prefix)
