"""Reading the command line's inputs and writing its outputs, as ``InputError`` on failure.

A bundle is told from a spec by its content (``nestgraph.bundle.is_bundle``),
not by its name. The command line reads and writes local files only.
"""

from __future__ import annotations

import codecs
import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from nestgraph._atomic import is_remote
from nestgraph.bundle import _inspect, is_bundle, read_spec
from nestgraph.errors import NestgraphError, SpecError
from nestgraph.spec import Spec
from nestgraph.specio import load_spec, save_spec

__all__ = [
    "Input",
    "InputError",
    "about",
    "open_local",
    "read_input",
    "read_json",
    "require_bundle",
    "write_spec",
]


class InputError(NestgraphError):
    """Bad input the command line itself detects: a file that is not what it should be.

    ``file`` is the file concerned; the message starts with it.

    >>> str(InputError("no such file", file="model.yaml"))
    'model.yaml: no such file'
    """

    def __init__(self, message: str, *, file: str | None = None) -> None:
        super().__init__(message if file is None else f"{file}: {message}", file=file)


@dataclass(frozen=True)
class Input:
    """A spec file, or a bundle with its spec."""

    file: str
    spec: Spec
    is_bundle: bool = False


def open_local(file: str) -> IO[bytes]:
    """``file`` opened for reading; ``InputError`` for a remote, missing or unreadable one."""
    if is_remote(file):
        raise InputError(
            "the command line reads local files only; copy it here first "
            "(the Python API reads scheme:// paths)",
            file=file,
        )
    return _inspect.open_local(file, InputError)


def _head(file: str, size: int) -> bytes:
    with open_local(file) as stream:
        return bytes(stream.read(size))


def _looks_binary(head: bytes) -> bool:
    if b"\x00" in head:
        return True
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return True
    return False


def read_input(file: str) -> Input:
    """The spec in ``file``: a spec file (YAML, or JSON by extension) or a bundle."""
    head = _head(file, 1024)
    if is_bundle(head):
        return Input(file, read_spec(file), is_bundle=True)
    if _looks_binary(head):
        raise InputError(
            "binary data, not a spec; expected a YAML or JSON spec, or a bundle "
            "(a .meta MetaGraphDef is read by 'check', 'upgrade' and 'summary --graph')",
            file=file,
        )
    return Input(file, load_spec(file))


def require_bundle(source: Input, command: str) -> None:
    if not source.is_bundle:
        raise InputError(
            f"not a bundle ({command} reads a bundle written by ng.save)", file=source.file
        )


def read_json(file: str) -> Any:
    """The JSON document in ``file``, with the line of a syntax error."""
    with open_local(file) as stream:
        data = stream.read()
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise InputError("not UTF-8 text; expected a JSON file", file=file) from None
    except json.JSONDecodeError as exc:
        raise InputError(
            f"line {exc.lineno}, column {exc.colno}: invalid JSON: {exc.msg}", file=file
        ) from None


@contextlib.contextmanager
def about(file: str) -> Iterator[None]:
    """Name ``file`` in a spec error that does not say which file it concerns."""
    try:
        yield
    except SpecError as exc:
        if exc.source is not None:
            raise
        raise InputError(exc.message, file=file) from exc


def write_spec(spec: Spec, file: str) -> None:
    """``save_spec`` (atomic); a file rewritten in place keeps its permissions."""
    if is_remote(file):
        raise InputError("the command line writes local files only", file=file)
    try:
        mode = os.stat(file).st_mode if os.path.isfile(file) else None
        save_spec(spec, file)
        if mode is not None:
            # The atomic write goes through a private (0600) temporary file.
            os.chmod(file, mode & 0o7777)
    except IsADirectoryError:
        raise InputError("cannot write: it is a directory", file=file) from None
    except OSError as exc:
        raise InputError(f"cannot write: {exc.strerror or exc}", file=file) from None
