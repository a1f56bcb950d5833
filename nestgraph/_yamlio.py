"""YAML text <-> plain data, safely and within bounds.

Reading is driven by the parser's event stream (libyaml's C parser when
present) and builds plain data in one iterative pass, so:

* only plain data is ever constructed: str, int, float, bool, None, list, dict;
  any explicit tag other than the core ones (``!!python/...``, ``!foo``,
  ``!!binary``, ``!!set``...) is refused;
* nesting deeper than ``max_depth`` is refused before it can exhaust a stack;
* aliases are expanded against a node budget, so an alias bomb is refused
  after a few thousand nodes instead of after a few billion;
* duplicate keys, merge keys (``<<``) and several documents are refused;
* every refusal is a ``SpecError`` with the source and line.

It also records the line of every node, keyed by its YAML path, so schema
errors further up can say where the problem is.
"""

from __future__ import annotations

import copy
from typing import Any

import yaml

from .errors import SpecError

__all__ = ["MAX_ALIAS_NODES", "MAX_BYTES", "MAX_YAML_DEPTH", "dump_yaml", "load_yaml"]

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
    if tag == _INT:
        return _constructor.construct_yaml_int(node)
    if tag == _FLOAT:
        return _constructor.construct_yaml_float(node)
    if tag == _BOOL:
        return _constructor.construct_yaml_bool(node)
    if tag == _T + "merge":
        raise ValueError("merge keys ('<<') are not supported in a spec")
    raise ValueError(f"the tag {tag!r} is not allowed in a spec (only plain YAML data is)")


class _Frame:
    __slots__ = ("anchor", "container", "key", "key_line", "size", "start_line", "ypath")

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


def load_yaml(
    data: str | bytes,
    *,
    source: str = "<string>",
    max_bytes: int = MAX_BYTES,
    max_depth: int = MAX_YAML_DEPTH,
    max_alias_nodes: int = MAX_ALIAS_NODES,
) -> tuple[Any, dict[tuple[Any, ...], int]]:
    """Parse one YAML document into plain data and ``{yaml path: line}``."""
    if not isinstance(data, (str, bytes, bytearray)):
        raise SpecError(f"expected YAML text or bytes, got {type(data).__name__}", source=source)
    if len(data) > max_bytes:
        raise SpecError(
            f"spec is larger than the {max_bytes} byte limit ({len(data)} bytes)", source=source
        )
    if isinstance(data, bytearray):
        data = bytes(data)
    lines: dict[tuple[Any, ...], int] = {}
    anchors: dict[str, tuple[Any, int]] = {}
    stack: list[_Frame] = []
    result: list[Any] = []
    documents = 0
    alias_nodes = 0
    line = 1

    def add(value: Any, value_line: int, size: int, is_scalar: bool) -> None:
        if not stack:
            lines[()] = value_line
            result.append(value)
            return
        frame = stack[-1]
        frame.size += size
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
                if event.anchor is not None:
                    anchors[event.anchor] = (value, 1)
                add(value, line, 1, True)
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
                    anchors[frame.anchor] = (frame.container, frame.size)
                add(frame.container, frame.start_line, frame.size, False)
            elif isinstance(event, yaml.AliasEvent):
                if event.anchor not in anchors:
                    raise ValueError(
                        f"alias *{event.anchor} refers to an unknown or unfinished anchor"
                    )
                value, size = anchors[event.anchor]
                alias_nodes += size
                if alias_nodes > max_alias_nodes:
                    raise ValueError(
                        f"aliases expand to more than {max_alias_nodes} nodes (an alias bomb?)"
                    )
                add(copy.deepcopy(value), line, size, not isinstance(value, (list, dict)))
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
        raise SpecError(f"not readable as YAML text: {exc}", source=source) from None
    except (ValueError, OverflowError, UnicodeError) as exc:
        raise SpecError(str(exc), source=source, line=line) from None
    finally:
        loader.dispose()
    if not result:
        raise SpecError("the spec is empty", source=source, line=1)
    return result[0], lines
