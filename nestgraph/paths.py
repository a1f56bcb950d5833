"""Dotted paths: ``heads.cls.w``, list items as ``layers.0``.

A path is a tuple of keys: ``str`` for object fields and dict keys, ``int`` for
list and tuple positions. In text, a key that is not a plain word
(``[A-Za-z0-9_-]+``) is written as a bracketed JSON string, so every key has
exactly one spelling: ``heads["a.b"].w``. On input ``layers[0]`` is accepted as
a synonym for ``layers.0``. The root is the empty path, written ``""``.
"""

from __future__ import annotations

import json
import re

from .errors import SpecError

__all__ = ["Key", "PathTuple", "format_path", "join", "parse_path"]

Key = str | int
PathTuple = tuple[Key, ...]

_PLAIN_KEY = re.compile(r"[A-Za-z0-9_\-]+\Z")
_TOKEN = re.compile(
    r"""
      \.?(?P<word>[A-Za-z0-9_\-]+)          # .field or .0 (the dot is optional at the start)
    | \[(?P<index>\d+)\]                    # [0]
    | \[(?P<quoted>"(?:[^"\\]|\\.)*")\]     # ["any key"]
    """,
    re.VERBOSE,
)


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


def parse_path(text: str) -> tuple[str, ...]:
    """Split a dotted path into its keys, as strings.

    Digits stay strings here (``"0"``): whether a key is a list position or a
    dict key is decided by the container it is applied to.

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
            raise SpecError(
                f"malformed path {text!r} at character {pos + 1}: use dots between "
                'keys (layers.0.w) and ["..."] for keys that are not plain words'
            )
        if match.group("word") is not None:
            keys.append(match.group("word"))
        elif match.group("index") is not None:
            keys.append(match.group("index"))
        else:
            keys.append(json.loads(match.group("quoted")))
        pos = match.end()
    return tuple(keys)
