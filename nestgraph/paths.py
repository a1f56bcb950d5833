"""Dotted paths: ``heads.cls.w``, list items as ``layers.0``.

A path is a tuple of keys: ``str`` for object fields and dict keys, ``int`` for
list and tuple positions. In text, a key that is a plain word
(``[A-Za-z0-9_-]+``) is written as it is; any other key is a bracketed JSON
string: ``heads["a.b"].w``. ``format_path`` writes that one spelling.

``parse_path`` reads exactly that spelling, plus one documented synonym for a
position, ``layers[0]`` for ``layers.0``. Everything else that would be a
second spelling of the same key is refused with the spelling to use instead:
a bracketed plain word (``["w"]``: write ``.w``), escapes JSON does not need
(``["\\u00e9"]``: write ``["é"]``), positions with leading zeros or non-ASCII
digits (``[01]``, ``[٣]``). Invalid JSON escapes and lone surrogates are
refused too. The root is the empty path, written ``""`` (``.`` is accepted).
"""

from __future__ import annotations

import json
import re

from .errors import SpecError

__all__ = ["Key", "PathTuple", "format_key", "format_path", "join", "list_index", "parse_path"]

Key = str | int
PathTuple = tuple[Key, ...]

_PLAIN_KEY = re.compile(r"[A-Za-z0-9_\-]+\Z")
# ASCII only, no leading zeros: the one spelling of a position. (``\d`` and
# ``str.isdigit`` also accept other scripts' digits, which int() then reads.)
_INDEX = re.compile(r"(?:0|[1-9][0-9]*)\Z")
_TOKEN = re.compile(
    r"""
      \.?(?P<word>[A-Za-z0-9_\-]+)          # .field or .0 (the dot is optional at the start)
    | \[(?P<index>[^\]"]*)\]                # [0] (checked below, so the message is precise)
    | \[(?P<quoted>"(?:[^"\\]|\\.)*")\]     # ["any key"]
    """,
    re.VERBOSE,
)
_SURROGATE = re.compile("[\ud800-\udfff]")
_HINT = 'use dots between keys (layers.0.w) and ["..."] for keys that are not plain words'


def format_key(key: Key) -> str:
    """One path component as text (without the joining dot)."""
    if isinstance(key, int):
        return str(key)
    if _PLAIN_KEY.match(key):
        return key
    return "[" + json.dumps(key, ensure_ascii=False) + "]"


def format_path(path: PathTuple) -> str:
    """``("heads", "a.b", 0)`` -> ``heads["a.b"].0``."""
    out: list[str] = []
    for key in path:
        text = format_key(key)
        if out and not text.startswith("["):
            out.append(".")
        out.append(text)
    return "".join(out)


def join(prefix: str, key: Key) -> str:
    """Append one key to an already formatted path."""
    text = format_key(key)
    if not prefix or text.startswith("["):
        return prefix + text
    return f"{prefix}.{text}"


def list_index(key: str) -> int | None:
    """The list position a parsed key names, or None if it names none.

    Only the canonical spelling counts (``"0"``, ``"12"``; not ``"01"``,
    ``"+1"`` or other scripts' digits), so one position has one path.

    >>> list_index("12"), list_index("012")
    (12, None)
    """
    return int(key) if _INDEX.match(key) else None


def parse_path(text: str) -> tuple[str, ...]:
    """Split a dotted path into its keys, as strings.

    Digits stay strings here (``"0"``): whether a key is a list position or a
    dict key is decided by the container it is applied to (see ``list_index``).
    Raises ``SpecError`` for anything but the one spelling described above.

    >>> parse_path('heads["a.b"].layers[2].w')
    ('heads', 'a.b', 'layers', '2', 'w')
    """
    if not isinstance(text, str):
        raise SpecError(f"a path must be a string, not {type(text).__name__}")
    if text in ("", "."):
        return ()
    keys: list[str] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if (
            match is None
            or (pos == 0 and text.startswith("."))
            or (pos > 0 and match.group("word") is not None and text[pos] != ".")
        ):
            raise _malformed(text, pos, _HINT)
        if match.group("word") is not None:
            keys.append(match.group("word"))
        elif match.group("index") is not None:
            index = match.group("index")
            if not _INDEX.match(index):
                raise _malformed(
                    text,
                    pos,
                    f"[{index}] is not a list position; write positions as ASCII digits "
                    'without leading zeros ([0], [12]) and other keys as ["..."]',
                )
            keys.append(index)
        else:
            keys.append(_quoted_key(text, pos, match.group("quoted")))
        pos = match.end()
    return tuple(keys)


def _quoted_key(text: str, pos: int, quoted: str) -> str:
    try:
        key = json.loads(quoted)
    except ValueError as exc:  # a bad escape or a raw control character
        why = f"the key {quoted} is not a valid JSON string ({exc})"
        raise _malformed(text, pos, why) from None
    if not isinstance(key, str):  # pragma: no cover - the pattern only matches JSON strings
        raise _malformed(text, pos, "a bracketed key must be a JSON string")
    if _SURROGATE.search(key):
        raise _malformed(text, pos, f"the key {quoted} holds a lone surrogate (not text)")
    canonical = format_key(key)
    if canonical != f"[{quoted}]":
        spelled = canonical if canonical.startswith("[") or pos == 0 else f".{canonical}"
        raise _malformed(text, pos, f"the key {quoted} is spelled {spelled} in a path")
    return key


def _malformed(text: str, pos: int, why: str) -> SpecError:
    return SpecError(f"malformed path {text!r} at character {pos + 1}: {why}")
