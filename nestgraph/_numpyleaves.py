"""Leaf handlers for NumPy values: scalars, and small arrays written inline.

* ``numpy float32 0.5``: a NumPy scalar of a numeric or bool dtype; it comes
  back as the same NumPy type with the same value (NaN, infinities and -0.0
  included: each element is written with NumPy's shortest text that reads back
  to the same value of its dtype; a NaN comes back as NaN, without its payload).
* ``ndarray float32 [2, 2] [[1.0, 2.0], [3.0, 4.0]]``: an ``np.ndarray`` of at
  most ``MAX_INLINE_ELEMENTS`` elements, as its dtype, shape and nested values.
  A larger array (a replay buffer, a vocabulary table) is skipped in a bare spec
  with a reason; other dtypes (strings, objects, dates, records) are skipped too.
* ``array arrays/0.npy float32 [100000, 4]``: a larger array, inside a bundle.
  While a bundle is written (:func:`collecting_arrays`), each larger array
  becomes a member of its own, in NumPy's ``.npy`` format without pickles,
  checksummed like every part; loading the bundle gives it back exactly.

NumPy types are matched only when NumPy is already imported; reading a spec
checks such a leaf's text without NumPy, which is imported only to rebuild it.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import io
import math
import re
import sys
from collections.abc import Iterator, Mapping
from typing import Any

from . import registry
from .nodes import Leaf, Skipped, SpecNode

__all__ = [
    "ARRAY_MEMBER",
    "MAX_INLINE_ELEMENTS",
    "array_from_npy",
    "collecting_arrays",
    "format_array",
    "member_name",
    "member_problem",
    "npy_bytes",
    "parse_array",
]

#: The name of a bundle member holding one array: ``arrays/<n>.npy``.
ARRAY_MEMBER = re.compile(r"arrays/(0|[1-9][0-9]{0,8})\.npy")
# The arrays of the bundle being written, member name -> array; None outside a save.
_sink: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "nestgraph_array_members", default=None
)

#: Arrays with more elements than this are not written inline in a spec.
MAX_INLINE_ELEMENTS = 256

_DTYPES = frozenset(
    {
        "bool",
        "int8",
        "int16",
        "int32",
        "int64",
        "uint8",
        "uint16",
        "uint32",
        "uint64",
        "float16",
        "float32",
        "float64",
        "complex64",
        "complex128",
    }
)
_TOKEN = re.compile(r"\s*(\[|\]|,|[^\s\[\],]+)")


def _np() -> Any:
    return importlib.import_module("numpy")


def _is_numpy(attr: str, *, exact: bool) -> Any:
    def matches(tp: type) -> bool:
        np = sys.modules.get("numpy")
        if np is None:
            return False
        cls = vars(np)[attr]
        # An ndarray subclass (matrix, masked array) would come back as a plain array.
        return tp is cls if exact else issubclass(tp, cls)

    return matches


def _check_dtype(text: str) -> str:
    if text not in _DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(sorted(_DTYPES))}, not {text!r}")
    return text


_FLOAT = re.compile(r"[-+]?(?:nan|inf|\d+\.?\d*(?:e[-+]?\d+)?|\.\d+(?:e[-+]?\d+)?)\Z")


# Finite values at or beyond these round to infinity in the dtype: NumPy would warn
# and store inf, so such text is refused instead.
_OVERFLOW = {"float16": 65520.0, "float32": 2.0**128 - 2.0**103, "float64": math.inf}


def _in_range(dtype: str, value: float, text: str) -> bool:
    if math.isnan(value) or (math.isinf(value) and "inf" in text):
        return True
    return abs(value) < _OVERFLOW[dtype]


def _check_element(dtype: str, text: str) -> None:
    """``ValueError`` unless ``text`` is a value of ``dtype`` (checked without NumPy)."""
    ok = True
    if dtype == "bool":
        ok = text in ("True", "False")
    elif dtype.startswith(("int", "uint")):
        bits = int(dtype.removeprefix("u").removeprefix("int"))
        unsigned = dtype.startswith("u")
        low = 0 if unsigned else -(2 ** (bits - 1))
        high = 2**bits - 1 if unsigned else 2 ** (bits - 1) - 1
        ok = re.fullmatch(r"[-+]?\d+", text) is not None and low <= int(text) <= high
    elif dtype.startswith("float"):
        ok = _FLOAT.match(text) is not None and _in_range(dtype, float(text), text)
    else:
        try:
            number = complex(text)
        except ValueError:
            ok = False
        else:
            part = "float32" if dtype == "complex64" else "float64"
            ok = _in_range(part, number.real, text) and _in_range(part, number.imag, text)
    if not ok:
        raise ValueError(f"{text!r} is not a {dtype} value")


def _element_text(value: Any) -> str:
    # str() of a NumPy scalar is the shortest text that reads back to the same value.
    return str(value)


def _make_element(np: Any, dtype: str, text: str) -> Any:
    tp = vars(np)[dtype if dtype != "bool" else "bool_"]
    if dtype == "bool":
        return tp(text == "True")
    if dtype.startswith(("int", "uint")):
        return tp(int(text))
    if dtype.startswith("float"):
        return tp(text)
    return tp(complex(text))


def format_array(array: Any) -> str:
    """``DTYPE [SHAPE] VALUES`` for an inline array.

    >>> import numpy as np
    >>> format_array(np.array([[1, 2], [3, 4]], dtype=np.int8))
    'int8 [2, 2] [[1, 2], [3, 4]]'
    """
    np = _np()

    def nested(part: Any) -> str:
        if part.ndim == 0:
            return _element_text(part[()])
        return "[" + ", ".join(nested(part[i]) for i in range(part.shape[0])) + "]"

    shape = "[" + ", ".join(str(d) for d in array.shape) + "]"
    return f"{array.dtype.name} {shape} {nested(np.asarray(array))}"


def _nested_values(text: str) -> tuple[Any, list[str]]:
    """``(nested lists of element texts, flat element texts)``; ``ValueError`` if malformed."""
    tokens = [m.group(1) for m in _TOKEN.finditer(text)]
    if "".join(tokens) != re.sub(r"\s+", "", text):
        raise ValueError("values are nested [..] lists of numbers")
    flat: list[str] = []
    position = 0

    def value(depth: int) -> Any:
        nonlocal position
        if depth > 32:
            raise ValueError("values are nested deeper than 32 levels")
        if position >= len(tokens):
            raise ValueError("values end too early")
        token = tokens[position]
        position += 1
        if token in (",", "]"):
            raise ValueError(f"unexpected {token!r} in values")
        if token != "[":
            flat.append(token)
            return token
        items: list[Any] = []
        if position < len(tokens) and tokens[position] == "]":
            position += 1
            return items
        while True:
            items.append(value(depth + 1))
            if position >= len(tokens):
                raise ValueError("values end too early: a ']' is missing")
            token = tokens[position]
            position += 1
            if token == "]":
                return items
            if token != ",":
                raise ValueError(f"expected ',' or ']' in values, found {token!r}")

    nested = value(0)
    if position != len(tokens):
        raise ValueError("unexpected text after the values")
    return nested, flat


def _shape_of_nested(nested: Any) -> tuple[int, ...]:
    if not isinstance(nested, list):
        return ()
    if not nested:
        return (0,)
    inner = {_shape_of_nested(item) for item in nested}
    if len(inner) != 1:
        raise ValueError("values are ragged: every row must have the same shape")
    return (len(nested), *inner.pop())


def _split_array_text(text: str) -> tuple[str, tuple[int, ...], list[str]]:
    """``(dtype, shape, flat element texts)`` of inline-array text, all checked."""
    match = re.fullmatch(r"(\S+) \[([0-9, ]*)\] (.+)", text, re.DOTALL)
    if match is None:
        raise ValueError("an inline array is written 'ndarray DTYPE [SHAPE] VALUES'")
    dtype = _check_dtype(match.group(1))
    dims = match.group(2).strip()
    try:
        shape = tuple(int(d) for d in dims.split(",")) if dims else ()
    except ValueError:
        raise ValueError(f"bad shape [{match.group(2)}]") from None
    size = math.prod(shape)
    if size > MAX_INLINE_ELEMENTS:
        raise ValueError(f"more than {MAX_INLINE_ELEMENTS} elements are not written inline")
    nested, flat = _nested_values(match.group(3))
    found = _shape_of_nested(nested)
    # Nested lists show an empty array's shape only up to its first zero dimension.
    shown = shape[: shape.index(0) + 1] if size == 0 and shape else shape
    if found != shown:
        raise ValueError(f"values have shape {list(found)}, but the shape says {list(shape)}")
    for element in flat:
        _check_element(dtype, element)
    return dtype, shape, flat


def parse_array(text: str) -> Any:
    """The array of ``format_array`` text; ``ValueError`` naming what is wrong.

    >>> parse_array("float32 [2] [0.5, nan]")
    array([0.5, nan], dtype=float32)
    """
    dtype, shape, flat = _split_array_text(text)
    np = _np()
    elements = [_make_element(np, dtype, t) for t in flat]
    return np.array(elements, dtype=dtype).reshape(shape)


def _check(check: Any) -> Any:
    def problem(text: str) -> str | None:
        try:
            check(text)
        except ValueError as exc:
            return str(exc)
        return None

    return problem


def _write_array(array: Any) -> SpecNode:
    label = f"numpy:ndarray {array.dtype} {list(array.shape)}"
    if array.dtype.name not in _DTYPES:
        return Skipped(f"{label}: arrays of dtype {array.dtype} are not recorded")
    if array.size > MAX_INLINE_ELEMENTS:
        sink = _sink.get()
        if sink is None:
            return Skipped(
                f"{label} has {array.size} elements, more than the {MAX_INLINE_ELEMENTS} "
                "written inline in a spec (a bundle stores it as a member of its own)"
            )
        name = f"arrays/{len(sink)}.npy"
        sink[name] = array  # written when the bundle is, so a later save sees new values
        shape = ", ".join(str(d) for d in array.shape)
        return Leaf("array", value=f"{name} {array.dtype.name} [{shape}]")
    return Leaf("ndarray", value=format_array(array))


@contextlib.contextmanager
def collecting_arrays() -> Iterator[dict[str, Any]]:
    """While active, walked arrays too large to write inline become bundle members.

    Yields the arrays by member name (``arrays/<n>.npy``) as the walk adds them;
    :func:`npy_bytes` gives a member's bytes.
    """
    members: dict[str, Any] = {}
    token = _sink.set(members)
    try:
        yield members
    finally:
        _sink.reset(token)


def npy_bytes(array: Any) -> bytes:
    """``array`` in NumPy's ``.npy`` format, without pickles."""
    return _npy(array)


def _npy(array: Any) -> bytes:
    np = _np()
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def _split_member_text(text: str) -> tuple[str, str, tuple[int, ...]]:
    """``(member, dtype, shape)`` of an array-member leaf's text, all checked."""
    match = re.fullmatch(r"(\S+) (\S+) \[([0-9, ]*)\]", text)
    if match is None or not ARRAY_MEMBER.fullmatch(match.group(1)):
        raise ValueError("an array in a bundle is written 'array arrays/N.npy DTYPE [SHAPE]'")
    dtype = _check_dtype(match.group(2))
    dims = match.group(3).strip()
    try:
        shape = tuple(int(d) for d in dims.split(",")) if dims else ()
    except ValueError:
        raise ValueError(f"bad shape [{match.group(3)}]") from None
    return match.group(1), dtype, shape


def member_name(leaf: Leaf) -> str | None:
    """The bundle member an ``array`` leaf names (None for any other leaf)."""
    return leaf.text.split(" ", 1)[0] if leaf.kind == "array" else None


def member_problem(leaf: Leaf, members: Mapping[str, bytes]) -> str | None:
    """Why the member an ``array`` leaf names is missing or is not what it says, or None.

    Reads only the ``.npy`` header (dtype, shape, no pickles), not the values.
    """
    name, dtype, shape = _split_member_text(leaf.text)
    data = members.get(name)
    if data is None:
        return f"the bundle has no member {name}"
    np = _np()
    stream = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            found_shape, _, found_dtype = np.lib.format.read_array_header_1_0(stream)
        else:
            found_shape, _, found_dtype = np.lib.format.read_array_header_2_0(stream)
    except (ValueError, OSError, EOFError, SyntaxError) as exc:
        return f"{name} is not an array in .npy format ({exc})"
    if found_dtype.hasobject:
        return f"{name} holds Python objects; only plain dtypes are read"
    if found_dtype.name != dtype or tuple(found_shape) != shape:
        return (
            f"{name} holds {found_dtype.name} {list(found_shape)}, the spec says "
            f"{dtype} {list(shape)}"
        )
    return None


def array_from_npy(data: bytes, dtype: str, shape: tuple[int, ...]) -> Any:
    """The array in ``.npy`` bytes (no pickles), checked to be of ``dtype`` and ``shape``.

    Raises ``ValueError`` saying what is wrong.
    """
    np = _np()
    try:
        array = np.lib.format.read_array(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise ValueError(f"not an array in .npy format ({exc})") from None
    if array.dtype.name != dtype or tuple(array.shape) != shape:
        raise ValueError(
            f"holds {array.dtype.name} {list(array.shape)}, the spec says {dtype} {list(shape)}"
        )
    return array


def _rebuild_member(leaf: Leaf, elements: tuple[Any, ...], context: registry.RebuildContext) -> Any:
    from ._objects import Placeholder

    name, dtype, shape = _split_member_text(leaf.text)
    members: Mapping[str, bytes] = context.members or {}
    data = members.get(name)
    if data is None:
        return Placeholder("array", leaf.text, f"the bundle member {name} is not at hand here")
    try:
        return array_from_npy(data, dtype, shape)
    except ValueError as exc:
        return Placeholder("array", leaf.text, f"the bundle member {name} {exc}")


def _split_scalar_text(text: str) -> tuple[str, str]:
    dtype, space, value = text.partition(" ")
    if not space:
        raise ValueError("a NumPy scalar is written 'numpy DTYPE VALUE'")
    _check_element(_check_dtype(dtype), value)
    return dtype, value


def _parse_scalar(text: str) -> Any:
    return _make_element(_np(), *_split_scalar_text(text))


def _write_scalar(value: Any) -> SpecNode:
    if value.dtype.name not in _DTYPES:
        return Skipped(f"numpy:{type(value).__name__} scalars are not recorded")
    return Leaf("numpy", value=f"{value.dtype.name} {_element_text(value)}")


def _install(kind: str, attr: str, write: Any, check: Any, parse: Any, *, exact: bool) -> None:
    registry.install(
        registry.LeafHandler(
            kind,
            f"numpy.{attr}",
            _is_numpy(attr, exact=exact),
            write,
            rebuild=lambda leaf, elements, context: parse(leaf.text),
            check_text=_check(check),
        )
    )


_install("numpy", "generic", _write_scalar, _split_scalar_text, _parse_scalar, exact=False)
_install("ndarray", "ndarray", _write_array, _split_array_text, parse_array, exact=True)
registry.install(
    registry.LeafHandler(
        "array",
        "numpy.ndarray (a bundle member)",
        lambda tp: False,  # written by the ndarray handler while a bundle is being saved
        _write_array,
        rebuild=_rebuild_member,
        check_text=_check(_split_member_text),
    )
)
