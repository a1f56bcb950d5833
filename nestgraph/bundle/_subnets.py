"""Reading one sub-network through the bundle's index (written by ``_subnetindex``).

``select`` gives what a ``load(subtree=...)`` needs, the spec part and the
pruned ``MetaGraphDef``, reading only that sub-network's slice of
``subnets.bin`` and its byte ranges of ``graph.pb``, each checked against its
SHA-256 (in ``subnets.json``, itself checked against the manifest) before it
is used. It returns None when the bundle has no index, the index was made for
another ``graph.pb`` or ``spec.yaml``, or does not hold that path: the load
then takes the full path (parse everything, prune).

A slice is data from the bundle like the rest: its spec part is validated as
``Spec.from_dict`` validates any spec, the pruned graph is what the scan and
the import see, and anything malformed is a ``BundleError``.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Mapping
from typing import IO, Any

from google.protobuf.message import DecodeError
from tensorflow.core.protobuf import meta_graph_pb2

from nestgraph._yamlio import load_json
from nestgraph.bundle._container import _CORRUPT, GRAPH, SPEC, SUBNET_DATA
from nestgraph.bundle._subnetindex import SLICE_HEADER, SUBNETS_FORMAT
from nestgraph.bundle._tensorbundle import _put_varint
from nestgraph.bundle._zipstream import BundleParts, read_range
from nestgraph.errors import BundleError
from nestgraph.paths import format_path, list_index, parse_path
from nestgraph.spec import Spec

__all__ = ["index_key", "select"]

_PLACEHOLDER = "skipped outside the loaded sub-network"
_MAX_LIST = 1 << 24


class _Corrupt(Exception):
    """A malformed index; turned into a BundleError naming the bundle."""


def index_key(subtree: str) -> str:
    """The index key of a user's dotted path: list positions as numbers.

    >>> index_key("towers[3].enc")
    'towers.3.enc'
    """
    keys = parse_path(subtree)
    return format_path(tuple(_position(k) for k in keys))


def _position(key: str) -> str | int:
    index = list_index(key)
    return key if index is None else index


def select(
    parts: BundleParts, source: IO[bytes], subtree: str, file: str
) -> tuple[Spec, meta_graph_pb2.MetaGraphDef] | None:
    """``(spec, pruned meta graph)`` for ``subtree`` from the index, or None (see above).

    The spec holds the sub-network, what its refs reach and the path down to
    them, with the lines of ``spec.yaml``; its other list items are skipped placeholders.
    """
    directory = parts.contents.subnets
    if directory is None or SUBNET_DATA not in parts.located:
        return None
    try:
        return _select(parts, source, directory, index_key(subtree), file)
    except _Corrupt as exc:
        raise BundleError(_CORRUPT.format(why=f"sub-network index: {exc}"), file=file) from None


def _select(
    parts: BundleParts, source: IO[bytes], directory: bytes, key: str, file: str
) -> tuple[Spec, meta_graph_pb2.MetaGraphDef] | None:
    index = _json(directory, "subnets.json")
    manifest_parts = parts.contents.manifest["parts"]
    if not isinstance(index, dict) or index.get("format") != SUBNETS_FORMAT:
        raise _Corrupt("subnets.json is not a sub-network index")
    if index.get("version") != 1:
        return None  # another layout: the full path still works
    if index.get("graph_sha256") != manifest_parts[GRAPH].get("sha256") or index.get(
        "spec_sha256"
    ) != manifest_parts[SPEC].get("sha256"):
        return None  # made for a graph or spec this bundle no longer holds
    entries = index.get("entries")
    if not isinstance(entries, dict):
        raise _Corrupt("subnets.json has no entries")
    entry = entries.get(key)
    if entry is None:
        return None
    offset, size, digest = _triple(entry, key)
    piece = _read(source, parts.located[SUBNET_DATA], offset, size)
    if hashlib.sha256(piece).hexdigest() != digest:
        raise _Corrupt(f"checksum mismatch for the slice of {key!r}")
    if len(piece) < SLICE_HEADER.size:
        raise _Corrupt(f"the slice of {key!r} is truncated")
    spec_size, meta_size, skeleton_size = SLICE_HEADER.unpack_from(piece)
    start = SLICE_HEADER.size
    if start + spec_size + meta_size + skeleton_size != len(piece):
        raise _Corrupt(f"the slice of {key!r} does not add up")
    spec_text = piece[start : start + spec_size]
    meta = _json(piece[start + spec_size : start + spec_size + meta_size], repr(key))
    skeleton = piece[start + spec_size + meta_size :]
    if not isinstance(meta, dict):
        raise _Corrupt(f"the slice of {key!r} has no metadata")
    source_name = f"{file}:spec.yaml"
    doc = load_json(spec_text, source=source_name)
    _expand(doc, meta.get("expand"), key)
    lines = _lines(meta.get("lines"), key)
    spec = Spec.from_dict(doc, source=source_name, _yaml_lines=lines)
    head, graph = _graph_bytes(parts, source, meta, key)
    return spec, _meta_graph(head + skeleton, graph, key)


def _json(data: bytes, what: str) -> Any:
    # Deep nesting is a RecursionError of the C scanner, not a crash.
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise _Corrupt(f"{what} is not valid JSON: {exc}") from None


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _triple(entry: Any, key: str) -> tuple[int, int, str]:
    if (
        not isinstance(entry, list)
        or len(entry) != 3
        or not all(_is_count(v) for v in entry[:2])
        or not isinstance(entry[2], str)
    ):
        raise _Corrupt(f"the entry of {key!r} is malformed")
    return entry[0], entry[1], entry[2]


def _read(source: IO[bytes], member: Any, offset: int, size: int) -> bytes:
    try:
        return read_range(source, member, offset, size)
    except (OSError, ValueError) as exc:
        raise _Corrupt(str(exc)) from None


def _walk(doc: Any, ypath: Any, key: str) -> Any:
    """The value at ``ypath`` of the (already expanded) document."""
    if not isinstance(ypath, list):
        raise _Corrupt(f"the slice of {key!r} names a malformed position")
    value = doc
    for step in ypath:
        if (isinstance(value, dict) and isinstance(step, str) and step in value) or (
            isinstance(value, list) and _is_count(step) and step < len(value)
        ):
            value = value[step]
        else:
            raise _Corrupt(f"the slice of {key!r} names a position it does not hold")
    return value


def _expand(doc: Any, expand: Any, key: str) -> None:
    """Put the list items a slice leaves out back, as skipped placeholders, in place."""
    if not isinstance(expand, list):
        raise _Corrupt(f"the slice of {key!r} has no list lengths")
    shaped = []
    for item in expand:
        if not isinstance(item, list) or len(item) != 3 or not isinstance(item[0], list):
            raise _Corrupt(f"the slice of {key!r} has a malformed list length")
        shaped.append(item)
    # Outer lists first: an inner list's position uses the outer list's full indices.
    for ypath, length, indices in sorted(shaped, key=lambda item: len(item[0])):
        if (
            not _is_count(length)
            or length > _MAX_LIST
            or not isinstance(indices, list)
            or not all(_is_count(i) and i < length for i in indices)
            or any(a >= b for a, b in itertools.pairwise(indices))
        ):
            raise _Corrupt(f"the slice of {key!r} has a malformed list length")
        value = _walk(doc, ypath, key)
        if not isinstance(value, list) or len(value) != len(indices):
            raise _Corrupt(f"the slice of {key!r} disagrees with its list lengths")
        full: list[Any] = [_PLACEHOLDER] * length
        for i, item in zip(indices, value, strict=True):
            full[i] = item
        value[:] = full


def _lines(raw: Any, key: str) -> Mapping[tuple[Any, ...], int]:
    if not isinstance(raw, list):
        raise _Corrupt(f"the slice of {key!r} has no lines")
    lines = {}
    for item in raw:
        if (
            not isinstance(item, list)
            or len(item) != 2
            or not isinstance(item[0], list)
            or not _is_count(item[1])
            or not all(isinstance(k, str) or _is_count(k) for k in item[0])
        ):
            raise _Corrupt(f"the slice of {key!r} has a malformed line")
        lines[tuple(item[0])] = item[1]
    return lines


def _graph_bytes(
    parts: BundleParts, source: IO[bytes], meta: dict[str, Any], key: str
) -> tuple[bytes, bytes]:
    """The ``meta_info_def`` record and the ``GraphDef`` records of a slice, checked."""
    head, ranges, digest = meta.get("head"), meta.get("graph"), meta.get("graph_sha256")
    if not isinstance(ranges, list) or not isinstance(digest, str):
        raise _Corrupt(f"the slice of {key!r} has no graph ranges")
    member = parts.located.get(GRAPH)
    if member is None:
        raise _Corrupt("graph.pb was not located")
    head_bytes = b"" if head is None else _read(source, member, *_range(head, key))
    chunks, end = [], 0
    for item in ranges:
        offset, size = _range(item, key)
        if offset < end:
            raise _Corrupt(f"the graph ranges of {key!r} overlap or are out of order")
        chunks.append(_read(source, member, offset, size))
        end = offset + size
    graph = b"".join(chunks)
    if hashlib.sha256(head_bytes + graph).hexdigest() != digest:
        raise _Corrupt(f"checksum mismatch for the graph ranges of {key!r}")
    return head_bytes, graph


def _range(item: Any, key: str) -> tuple[int, int]:
    if not isinstance(item, list) or len(item) != 2 or not all(_is_count(v) for v in item):
        raise _Corrupt(f"the slice of {key!r} has a malformed graph range")
    return item[0], item[1]


_GRAPH_DEF_TAG = b"\x12"  # MetaGraphDef.graph_def, length-delimited


def _meta_graph(skeleton: bytes, graph: bytes, key: str) -> meta_graph_pb2.MetaGraphDef:
    """The skeleton with the ``NodeDef`` records added: a second ``graph_def`` merges in."""
    meta_graph = meta_graph_pb2.MetaGraphDef()
    try:
        record = bytearray(_GRAPH_DEF_TAG)
        _put_varint(record, len(graph))
        meta_graph.ParseFromString(skeleton + record + graph)
    except DecodeError as exc:
        raise _Corrupt(f"the graph of {key!r} is not a MetaGraphDef: {exc}") from None
    return meta_graph
