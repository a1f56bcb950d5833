"""Spec text (YAML, or its subset JSON) <-> plain data, safely and within bounds.

Reading is driven by the parser's event stream (libyaml's C parser when
present) and builds plain data in one iterative pass, so:

* only plain data is ever constructed: str, int, float, bool, None, list, dict;
  any explicit tag other than the core ones (``!!python/...``, ``!foo``,
  ``!!binary``, ``!!set``...) is refused;
* nesting deeper than ``max_depth`` is refused before it can exhaust a stack;
* aliases are expanded against a node budget and a character budget, so an
  alias bomb is refused after a few thousand nodes instead of a few billion,
  and a large anchored string cannot be repeated into gigabytes;
* duplicate keys, merge keys (``<<``) and several documents are refused;
* numbers stay cheap and writable: YAML 1.1 sexagesimal numbers (``1:30``)
  and integers of more than ``MAX_INT_DIGITS`` decimal digits (in any base)
  are refused, and so are strings holding lone surrogates;
* every refusal is a ``SpecError`` with the source and line.

``load_json`` gives JSON text the same guarantees (duplicate keys, depth,
integer size, surrogates), and ``scalar_problem`` is the per-value check for
dict-form data that arrives without text.

It also records the line of every node, keyed by its YAML path, so schema
errors further up can say where the problem is.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import yaml

from .errors import SpecError

__all__ = [
    "MAX_ALIAS_CHARS",
    "MAX_ALIAS_NODES",
    "MAX_BYTES",
    "MAX_INT_DIGITS",
    "MAX_YAML_DEPTH",
    "dump_yaml",
    "load_json",
    "load_yaml",
    "scalar_problem",
]

if getattr(yaml, "__with_libyaml__", False):
    _Loader: Any = yaml.CSafeLoader
    _Dumper: Any = yaml.CSafeDumper
else:  # pragma: no cover - depends on how PyYAML was built
    _Loader = yaml.SafeLoader
    _Dumper = yaml.SafeDumper

MAX_BYTES = 64 * 1024 * 1024
#: Each model level is at most two YAML levels (an object's mapping, its fields).
MAX_YAML_DEPTH = 2 * 100 + 8
MAX_ALIAS_NODES = 100_000
#: Characters of scalar text that alias expansion may add (nestgraph never writes aliases).
MAX_ALIAS_CHARS = 16 * 1024 * 1024
#: Python's own default int <-> str limit: a larger integer could be read but not written.
MAX_INT_DIGITS = 4300
_INT_BOUND = 10**MAX_INT_DIGITS
# Enough binary digits for any integer below _INT_BOUND; longer literals are refused unread.
_MAX_INT_LITERAL = 4 * MAX_INT_DIGITS
_SURROGATE = re.compile("[\ud800-\udfff]")

_T = "tag:yaml.org,2002:"
_STR, _INT, _FLOAT, _BOOL, _NULL = (_T + t for t in ("str", "int", "float", "bool", "null"))
_TIMESTAMP, _SEQ, _MAP = _T + "timestamp", _T + "seq", _T + "map"
_resolver = yaml.resolver.Resolver()
_constructor = yaml.constructor.SafeConstructor()
_NO_KEY = object()


class _NoAliasDumper(_Dumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump_yaml(data: Any) -> str:
    """Block-style YAML, keys in insertion order, no aliases, no line folding."""
    text: str = yaml.dump(
        data,
        Dumper=_NoAliasDumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=1_000_000_000,
    )
    return text


def _scalar(event: Any) -> Any:
    tag = event.tag
    if tag is None or tag == "!":
        if tag == "!" or not event.implicit[0]:
            return event.value  # quoted or "!"-tagged: always a string
        tag = _resolver.resolve(yaml.ScalarNode, event.value, event.implicit)
    if tag in (_STR, _TIMESTAMP):  # dates stay text: specs hold no datetimes
        return event.value
    if tag == _NULL:
        return None
    node = yaml.ScalarNode(tag, event.value)
    if tag in (_INT, _FLOAT) and ":" in event.value:
        # YAML 1.1 reads 1:30 as 90; the conversion is quadratic in the number of parts.
        raise ValueError(
            f"sexagesimal number {_preview(event.value)} is not allowed in a spec; "
            "write the number in decimal, or quote it for text"
        )
    if tag == _INT:
        return _checked_int(event.value, lambda: _constructor.construct_yaml_int(node))
    if tag == _FLOAT:
        return _constructor.construct_yaml_float(node)
    if tag == _BOOL:
        return _constructor.construct_yaml_bool(node)
    if tag == _T + "merge":
        raise ValueError("merge keys ('<<') are not supported in a spec")
    raise ValueError(f"the tag {tag!r} is not allowed in a spec (only plain YAML data is)")


def _preview(text: str) -> str:
    return repr(text) if len(text) <= 40 else repr(text[:40]) + f"... ({len(text)} characters)"


def _int_too_large() -> ValueError:
    return ValueError(
        f"integer of more than {MAX_INT_DIGITS} decimal digits; a spec cannot hold it"
    )


def _checked_int(literal: str, convert: Any) -> int:
    body = literal.lstrip("+-")
    digits = len(body) - body.count("_")
    is_decimal = body[:1] != "0"  # YAML 1.1 prefixes: 0x, 0b, 0 (octal)
    if digits > (MAX_INT_DIGITS if is_decimal else _MAX_INT_LITERAL):
        raise _int_too_large()
    value: int = convert()
    if not -_INT_BOUND < value < _INT_BOUND:
        raise _int_too_large()
    return value


def scalar_problem(value: Any) -> str | None:
    """Why ``value`` cannot be a scalar in a spec, or None if it can.

    A spec scalar is exactly a ``str`` (no lone surrogates: they cannot be
    written as UTF-8), an ``int`` below ``10**MAX_INT_DIGITS`` in magnitude, a
    ``float``, a ``bool`` or ``None``; subclasses (enums, NumPy scalars) are
    not plain data.

    >>> scalar_problem("tensor x:0") is None, scalar_problem(10**5000)
    (True, 'integer of more than 4300 decimal digits; a spec cannot hold it')
    """
    kind = type(value)
    if kind is str:
        found = _SURROGATE.search(value)
        if found is not None:
            return (
                f"string {_preview(value)} holds a lone surrogate "
                f"(U+{ord(found.group()):04X}) at character {found.start() + 1}, which is not text"
            )
        return None
    if kind is int:
        return None if -_INT_BOUND < value < _INT_BOUND else str(_int_too_large())
    if value is None or kind in (bool, float):
        return None
    return f"{kind.__name__} is not plain data (expected str, int, float, bool or null)"


class _Frame:
    __slots__ = (
        "anchor",
        "chars",
        "container",
        "key",
        "key_line",
        "size",
        "start_line",
        "ypath",
    )

    def __init__(
        self, container: Any, ypath: tuple[Any, ...], anchor: str | None, start_line: int
    ) -> None:
        self.container = container
        self.start_line = start_line
        self.ypath = ypath
        self.anchor = anchor
        self.key: Any = _NO_KEY
        self.key_line = 0
        self.size = 1
        self.chars = 0


def load_yaml(
    data: str | bytes,
    *,
    source: str = "<string>",
    max_bytes: int = MAX_BYTES,
    max_depth: int = MAX_YAML_DEPTH,
    max_alias_nodes: int = MAX_ALIAS_NODES,
    max_alias_chars: int = MAX_ALIAS_CHARS,
) -> tuple[Any, dict[tuple[Any, ...], int]]:
    """Parse one YAML document into plain data and ``{yaml path: line}``."""
    data = _checked_text(data, source, max_bytes, "YAML")
    lines: dict[tuple[Any, ...], int] = {}
    anchors: dict[str, tuple[Any, int, int]] = {}  # value, nodes, characters
    stack: list[_Frame] = []
    result: list[Any] = []
    documents = 0
    alias_nodes = 0
    alias_chars = 0
    line = 1

    def add(value: Any, value_line: int, size: int, chars: int, is_scalar: bool) -> None:
        if not stack:
            lines[()] = value_line
            result.append(value)
            return
        frame = stack[-1]
        frame.size += size
        frame.chars += chars
        container = frame.container
        if isinstance(container, list):
            item_path = (*frame.ypath, len(container))
            lines[item_path] = value_line
            container.append(value)
        elif frame.key is _NO_KEY:
            if not is_scalar:
                raise ValueError("a mapping key must be a plain scalar, not a list or mapping")
            if value in container:
                raise ValueError(f"duplicate key {value!r}")
            frame.key, frame.key_line = value, value_line
        else:
            key_path = (*frame.ypath, frame.key)
            lines[key_path] = frame.key_line
            container[frame.key] = value
            frame.key = _NO_KEY

    loader = _Loader(data)
    try:
        while True:
            event = loader.get_event()
            if event is None:
                break
            line = event.start_mark.line + 1 if event.start_mark is not None else line
            if isinstance(event, yaml.ScalarEvent):
                value = _scalar(event)
                if isinstance(value, str) and _SURROGATE.search(value):
                    # libyaml refuses surrogate escapes; the pure-Python parser does not.
                    raise ValueError(str(scalar_problem(value)))
                chars = len(event.value)
                if event.anchor is not None:
                    anchors[event.anchor] = (value, 1, chars)
                add(value, line, 1, chars, True)
            elif isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
                is_seq = isinstance(event, yaml.SequenceStartEvent)
                if event.tag not in (None, "!", _SEQ if is_seq else _MAP):
                    raise ValueError(f"the tag {event.tag!r} is not allowed in a spec")
                if len(stack) >= max_depth:
                    raise ValueError(f"nested deeper than {max_depth} levels")
                parent_ypath = stack[-1].ypath if stack else ()
                if stack:
                    top = stack[-1]
                    here: Any = len(top.container) if isinstance(top.container, list) else top.key
                    if here is _NO_KEY:
                        raise ValueError(
                            "a mapping key must be a plain scalar, not a list or mapping"
                        )
                    ypath = (*parent_ypath, here)
                else:
                    ypath = ()
                stack.append(_Frame([] if is_seq else {}, ypath, event.anchor, line))
            elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
                frame = stack.pop()
                if frame.anchor is not None:
                    anchors[frame.anchor] = (frame.container, frame.size, frame.chars)
                add(frame.container, frame.start_line, frame.size, frame.chars, False)
            elif isinstance(event, yaml.AliasEvent):
                if event.anchor not in anchors:
                    raise ValueError(
                        f"alias *{event.anchor} refers to an unknown or unfinished anchor"
                    )
                value, size, chars = anchors[event.anchor]
                alias_nodes += size
                alias_chars += chars
                if alias_nodes > max_alias_nodes:
                    raise ValueError(
                        f"aliases expand to more than {max_alias_nodes} nodes (an alias bomb?)"
                    )
                if alias_chars > max_alias_chars:
                    raise ValueError(
                        f"aliases expand to more than {max_alias_chars} characters of text "
                        "(an alias bomb?)"
                    )
                is_scalar = not isinstance(value, (list, dict))
                add(copy.deepcopy(value), line, size, chars, is_scalar)
            elif isinstance(event, yaml.DocumentStartEvent):
                documents += 1
                if documents > 1:
                    raise ValueError("a spec is one YAML document; found a second '---'")
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context
        if "maximum nesting depth" in str(problem):
            # libyaml >= 0.2.6 stops deep nesting itself, before our own bound sees it.
            problem = f"nested deeper than {max_depth} levels"
        raise SpecError(
            f"invalid YAML: {problem}",
            source=source,
            line=mark.line + 1 if mark is not None else None,
        ) from None
    except yaml.YAMLError as exc:  # ReaderError: bad encoding or control characters
        raise SpecError(
            f"not readable as YAML text: {exc}", source=source, line=_reader_line(data, exc)
        ) from None
    except (ValueError, OverflowError, UnicodeError) as exc:
        raise SpecError(str(exc), source=source, line=line) from None
    finally:
        loader.dispose()
    if not result:
        raise SpecError("the spec is empty", source=source, line=1)
    return result[0], lines


def _reader_line(data: str | bytes, exc: yaml.YAMLError) -> int | None:
    position = getattr(exc, "position", None)
    if not isinstance(position, int):
        return None
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return raw.count(b"\n", 0, position) + 1


def _checked_text(data: Any, source: str, max_bytes: int, what: str) -> str | bytes:
    if not isinstance(data, (str, bytes, bytearray)):
        raise SpecError(f"expected {what} text or bytes, got {type(data).__name__}", source=source)
    if len(data) > max_bytes:
        raise SpecError(
            f"spec is larger than the {max_bytes} byte limit ({len(data)} bytes)", source=source
        )
    if isinstance(data, bytearray):
        return bytes(data)
    if isinstance(data, str):
        found = _SURROGATE.search(data)
        if found is not None:
            # Such a str cannot even be encoded for the parser; say where it is.
            raise SpecError(
                f"the text holds a lone surrogate (U+{ord(found.group()):04X}), which is not text",
                source=source,
                line=data.count("\n", 0, found.start()) + 1,
            )
    return data


class _JSONRefusal(Exception):
    """Raised from inside json's hooks; carries a message, never escapes this module."""


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _JSONRefusal(f"duplicate key {_preview(key)} in a JSON object")
        out[key] = value
    return out


def _json_int(literal: str) -> int:
    if len(literal.lstrip("-")) > MAX_INT_DIGITS:
        raise _JSONRefusal(str(_int_too_large()))
    return int(literal)


def load_json(
    data: str | bytes,
    *,
    source: str = "<string>",
    max_bytes: int = MAX_BYTES,
    max_depth: int = MAX_YAML_DEPTH,
) -> Any:
    """Parse JSON text into plain data, with the bounds and refusals of ``load_yaml``.

    ``NaN`` and ``Infinity`` are read as floats, as YAML's ``.nan`` and ``.inf``
    are (and as ``json.dumps`` writes them), so a spec of such values round-trips.
    """
    text = _checked_text(data, source, max_bytes, "JSON")
    try:
        tree = json.loads(text, object_pairs_hook=_json_object, parse_int=_json_int)
    except _JSONRefusal as exc:
        raise SpecError(str(exc), source=source) from None
    except json.JSONDecodeError as exc:
        raise SpecError(f"invalid JSON: {exc.msg}", source=source, line=exc.lineno) from None
    except RecursionError:
        # The C scanner recurses per level; far deeper than max_depth ends here.
        raise SpecError(
            f"nested deeper than {max_depth} levels",
            source=source,
            line=_json_depth_line(text, max_depth),
        ) from None
    except UnicodeError as exc:  # bytes that are not UTF-8 (nor UTF-16/32)
        raise SpecError(f"not UTF-8 text: {exc}", source=source) from None
    _check_json_tree(tree, text, source, max_depth)
    return tree


def _check_json_tree(tree: Any, text: str | bytes, source: str, max_depth: int) -> None:
    # Iterative, so depth itself cannot exhaust the stack.
    stack: list[tuple[Any, int]] = [(tree, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, (dict, list)):
            if depth >= max_depth:
                raise SpecError(
                    f"nested deeper than {max_depth} levels",
                    source=source,
                    line=_json_depth_line(text, max_depth),
                )
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                if isinstance(key, str):
                    stack.append((key, depth))
                stack.append((item, depth + 1))
            continue
        problem = scalar_problem(value)
        if problem is not None:
            raise SpecError(problem, source=source)


_JSON_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}\n]')


def _json_depth_line(text: str | bytes, max_depth: int) -> int | None:
    """The line where ``text`` first opens more than ``max_depth`` brackets."""
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    depth, line = 0, 1
    for match in _JSON_TOKEN.finditer(raw):
        token = match.group()
        if token == b"\n":
            line += 1
        elif token in (b"[", b"{"):
            depth += 1
            if depth > max_depth:
                return line
        elif token in (b"]", b"}"):
            depth -= 1
        else:
            line += token.count(b"\n")
    return None
