"""The bundle container: an uncompressed zip with a checksummed manifest.

Layout, in this order::

    manifest.json                  format, version, versions, checksums (first member)
    graph.pb                       serialized MetaGraphDef
    spec.yaml                      the nestgraph spec
    arrays/<n>.npy                 NumPy arrays too large for the spec (no pickles)
    subnets.bin, subnets.json      what a sub-network load reads (optional, ``_subnetindex``)
    checkpoint/<prefix>.index      TensorFlow checkpoint (absent in frozen bundles)
    checkpoint/<prefix>.data-*     its data shards

Every member's manifest entry holds its size and SHA-256, except (from format
version 2) a checkpoint data shard's, which holds its size and
``"verified_by": "checkpoint-index"``. Members are stored, not compressed, so a
reader never inflates untrusted data, and with a fixed timestamp, so the same
content always gives the same bytes.
This module knows nothing about TensorFlow: it packs and verifies bytes.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import struct
import zipfile
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import IO, Any

from nestgraph._atomic import irregular_kind, not_regular
from nestgraph._numpyleaves import ARRAY_MEMBER
from nestgraph.errors import BundleError

__all__ = [
    "FORMAT",
    "SHARD_CHECK",
    "SUBNETS",
    "SUBNET_DATA",
    "VERSION",
    "BundleContents",
    "check_regular",
    "pack",
    "unpack",
    "unpack_file",
]

FORMAT = "nestgraph-bundle"
# 2: a checkpoint data shard's manifest entry may give its size and SHARD_CHECK
# instead of a SHA-256 (version 1 hashed every member). Both are read.
VERSION = 2
#: What verifies a version-2 data shard in place of a SHA-256: the CRC-32C of
#: each tensor in the (hashed) checkpoint index, checked by TensorFlow as it
#: reads the tensor, and the zip's CRC-32 of the whole shard when it is read whole.
SHARD_CHECK = "checkpoint-index"

MANIFEST = "manifest.json"
GRAPH = "graph.pb"
SPEC = "spec.yaml"
CHECKPOINT_DIR = "checkpoint/"
#: The sub-network index (``_subnetindex``): its directory, and its slices (read in parts).
SUBNETS = "subnets.json"
SUBNET_DATA = "subnets.bin"

_MAX_MANIFEST_BYTES = 1 << 20
_MAX_MANIFEST_DEPTH = 8  # the manifest nests three levels; json recurses per level
_ZIP_TIMESTAMP = (1980, 1, 1, 0, 0, 0)
_FILE_MODE = 0o644 << 16
# A checkpoint file name: no directories, no dot-dot, nothing a file system could
# misread; the checkpoint files are copied into a directory under this name.
_CHECKPOINT_FILE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")
_DATA_SHARD = re.compile(r"\.data-(\d{5})-of-(\d{5})")

# What a hostile zip can make the standard library raise besides BadZipFile; all of
# them mean the same thing here (RecursionError is a RuntimeError, UnicodeDecodeError
# a ValueError).
_ZIP_ERRORS = (
    zipfile.BadZipFile,
    OSError,
    EOFError,
    ValueError,
    KeyError,
    IndexError,
    TypeError,
    OverflowError,
    NotImplementedError,
    RuntimeError,
    MemoryError,
    struct.error,
)
_LOCAL_HEADER = struct.Struct("<4s22xHH")  # signature ... name length, extra length
_LOCAL_SIGNATURE = b"PK\x03\x04"

_NOT_A_BUNDLE = "not a nestgraph bundle ({why})"
_CORRUPT = "corrupt bundle: {why}"
_TOO_NEW = (
    "bundle format version {version} is newer than this nestgraph reads (version {ours}); "
    "upgrade nestgraph to load it"
)


@dataclass(frozen=True)
class BundleContents:
    """The verified parts of a bundle.

    ``checkpoint`` maps a file name (``model.index``, ``model.data-00000-of-00001``)
    to its bytes; ``checkpoint_prefix`` is the prefix those names share, or None
    for a bundle without variables (a frozen one).
    """

    graph: bytes
    spec: bytes
    checkpoint: Mapping[str, bytes] = field(default_factory=dict)
    checkpoint_prefix: str | None = None
    manifest: Mapping[str, Any] = field(default_factory=dict)
    #: Array members (``arrays/<n>.npy`` -> ``.npy`` bytes), verified.
    arrays: Mapping[str, bytes] = field(default_factory=dict)
    #: The sub-network index's directory (``subnets.json``), verified; None if absent.
    subnets: bytes | None = None


def pack(contents: BundleContents, out: IO[bytes], versions: Mapping[str, str]) -> None:
    """Write ``contents`` as a bundle to the binary file ``out``.

    ``versions`` adds ``{"nestgraph": ..., "tensorflow": ...}`` to the manifest.
    """
    members: list[tuple[str, bytes]] = [(GRAPH, contents.graph), (SPEC, contents.spec)]
    members.extend(sorted(contents.arrays.items()))
    if contents.checkpoint_prefix is not None:
        _check_checkpoint_names(contents.checkpoint, contents.checkpoint_prefix, file=None)
        members.extend(
            (CHECKPOINT_DIR + name, data) for name, data in sorted(contents.checkpoint.items())
        )
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        **versions,
        "checkpoint_prefix": (
            None
            if contents.checkpoint_prefix is None
            else CHECKPOINT_DIR + contents.checkpoint_prefix
        ),
        "parts": {name: _entry(name, data) for name, data in members},
    }
    manifest_bytes = json.dumps(manifest, indent=2).encode("utf-8") + b"\n"
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, data in [(MANIFEST, manifest_bytes), *members]:
            info = zipfile.ZipInfo(name, date_time=_ZIP_TIMESTAMP)
            info.compress_type = zipfile.ZIP_STORED
            info.external_attr = _FILE_MODE
            archive.writestr(info, data)


def _entry(name: str, data: bytes) -> dict[str, Any]:
    if name.startswith(CHECKPOINT_DIR) and _DATA_SHARD.search(name):
        return {"size": len(data), "verified_by": SHARD_CHECK}
    return {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}


def unpack(
    source: IO[bytes], file: str, *, checkpoint: bool = True, located: Collection[str] = ()
) -> BundleContents:
    """Read and verify a bundle from the seekable binary file ``source``.

    Every member's size and SHA-256 is checked against the manifest before its
    bytes are returned. ``file`` names the bundle in error messages. With
    ``checkpoint=False`` the manifest and the member list are still verified in
    full, but the checkpoint files (the bulk of a bundle) are neither read nor
    hashed, and ``checkpoint`` comes back empty: for tools that only need the
    spec and the graph. ``subnets.bin`` is read only with ``checkpoint``, and the
    members named in ``located`` are not read (their bytes come back empty):
    their readers check the parts they use (``_zipstream.read_located``).

    Raises:
      BundleError: the data is not a bundle, is truncated or corrupt, lacks a
        member, or was written by a newer format version.
    """
    _check_stream(source, file)
    try:
        archive = zipfile.ZipFile(source)
    except _ZIP_ERRORS as exc:
        raise BundleError(
            _NOT_A_BUNDLE.format(why=f"truncated, or not a zip archive: {exc}"), file=file
        ) from None
    with archive:
        try:
            _check_layout(archive, source, file)
            return _unpack(archive, file, checkpoint, frozenset(located))
        except BundleError:
            raise
        except _ZIP_ERRORS as exc:
            why = str(exc) or type(exc).__name__
            raise BundleError(_CORRUPT.format(why=why), file=file) from None


def unpack_file(path: str, *, checkpoint: bool = True) -> BundleContents:
    """``unpack`` the local file ``path``, refusing anything but a regular file first."""
    check_regular(path)
    try:
        # Non-blocking, so a FIFO swapped in after the check cannot block the open;
        # unpack checks the opened file again (fstat) before reading it.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
        stream = os.fdopen(fd, "rb")
    except FileNotFoundError:
        raise BundleError("no such bundle", file=path) from None
    except OSError as exc:
        raise BundleError(f"cannot read: {exc.strerror or exc}", file=path) from None
    with stream:
        return unpack(stream, path, checkpoint=checkpoint)


def check_regular(path: str) -> None:
    """Refuse a directory, FIFO, device or socket before anything opens it."""
    kind = not_regular(path)
    if kind is not None:
        raise BundleError(f"is {kind}, not a regular file", file=path)


def _check_stream(source: IO[bytes], file: str) -> None:
    """A stream backed by a file descriptor must be a regular file (see ``check_regular``)."""
    try:
        descriptor = source.fileno()
    except (AttributeError, OSError, ValueError):
        return  # an in-memory stream: its size is what it holds
    try:
        mode = os.fstat(descriptor).st_mode
    except OSError as exc:
        raise BundleError(f"cannot read: {exc.strerror or exc}", file=file) from None
    kind = irregular_kind(mode)
    if kind is not None:
        raise BundleError(f"is {kind}, not a regular file", file=file)


def _check_layout(archive: zipfile.ZipFile, source: IO[bytes], file: str) -> None:
    """Every member's header and bytes lie in the file, before the directory, apart.

    The central directory may point several entries into the same bytes (a
    "zip bomb" without compression: each entry's data holding the next ones),
    so a small file would read as gigabytes. Checked from the offsets alone,
    before any member is read.
    """
    end = source.seek(0, os.SEEK_END)
    directory = getattr(archive, "start_dir", end)
    spans = []
    for info in archive.infolist():
        if info.compress_size != info.file_size and info.compress_type == zipfile.ZIP_STORED:
            why = (
                f"member {info.filename} stores {info.compress_size} bytes "
                f"for {info.file_size} bytes of data"
            )
            raise BundleError(_CORRUPT.format(why=why), file=file)
        start = info.header_offset
        if start < 0 or start + _LOCAL_HEADER.size > directory:
            why = f"member {info.filename} starts outside the archive"
            raise BundleError(_CORRUPT.format(why=why), file=file)
        source.seek(start)
        signature, name_length, extra_length = _LOCAL_HEADER.unpack(source.read(_LOCAL_HEADER.size))
        if signature != _LOCAL_SIGNATURE:
            why = f"member {info.filename} has no local header"
            raise BundleError(_CORRUPT.format(why=why), file=file)
        stop = start + _LOCAL_HEADER.size + name_length + extra_length + info.compress_size
        if stop > directory:
            why = f"member {info.filename} runs past the end of the archive's data"
            raise BundleError(_CORRUPT.format(why=why), file=file)
        spans.append((start, stop, info.filename))
    spans.sort()
    for (_, stop, name), (start, _, other) in itertools.pairwise(spans):
        if start < stop:
            why = f"members {name} and {other} overlap"
            raise BundleError(_CORRUPT.format(why=why), file=file)


def _unpack(
    archive: zipfile.ZipFile, file: str, with_checkpoint: bool, located: frozenset[str]
) -> BundleContents:
    infos = archive.infolist()
    if not infos or infos[0].filename != MANIFEST:
        first = infos[0].filename if infos else "nothing"
        why = f"its first member is {first!r}, not {MANIFEST!r}"
        raise BundleError(_NOT_A_BUNDLE.format(why=why), file=file)
    manifest = _read_manifest(archive, infos[0], file)
    parts: Mapping[str, Any] = manifest["parts"]

    by_name = {info.filename: info for info in infos[1:]}
    if len(by_name) != len(infos) - 1:
        raise BundleError(_CORRUPT.format(why="a member appears twice"), file=file)
    missing = [name for name in parts if name not in by_name]
    if missing:
        why = f"missing member(s) listed in the manifest: {', '.join(missing)}"
        raise BundleError(_CORRUPT.format(why=why), file=file)
    extra = [name for name in by_name if name not in parts]
    if extra:
        why = f"member(s) not listed in the manifest: {', '.join(extra)}"
        raise BundleError(_CORRUPT.format(why=why), file=file)

    if not with_checkpoint:
        located = located | {SUBNET_DATA}
    wanted = [
        n
        for n in parts
        if n not in located and (with_checkpoint or not n.startswith(CHECKPOINT_DIR))
    ]
    data = {name: _read_member(archive, by_name[name], parts[name], file) for name in wanted}
    data.update((name, b"") for name in located if name in parts)

    prefix_member = manifest["checkpoint_prefix"]
    # The names are checked either way; their bytes only when they were read.
    checkpoint = {
        name[len(CHECKPOINT_DIR) :]: data.get(name, b"")
        for name in parts
        if name.startswith(CHECKPOINT_DIR)
    }
    prefix = None
    if prefix_member is not None:
        prefix = prefix_member[len(CHECKPOINT_DIR) :]
        _check_checkpoint_names(checkpoint, prefix, file=file)
    elif checkpoint:
        why = "checkpoint files but no checkpoint_prefix in the manifest"
        raise BundleError(_CORRUPT.format(why=why), file=file)
    return BundleContents(
        graph=data[GRAPH],
        spec=data[SPEC],
        checkpoint=checkpoint if with_checkpoint else {},
        checkpoint_prefix=prefix,
        manifest=manifest,
        arrays={name: data[name] for name in parts if ARRAY_MEMBER.fullmatch(name)},
        subnets=data.get(SUBNETS),
    )


def _read_manifest(archive: zipfile.ZipFile, info: zipfile.ZipInfo, file: str) -> dict[str, Any]:
    if info.file_size > _MAX_MANIFEST_BYTES or info.compress_type != zipfile.ZIP_STORED:
        raise BundleError(_CORRUPT.format(why="implausible manifest.json"), file=file)
    text = archive.read(info)
    depth = _nesting_depth(text)
    if depth > _MAX_MANIFEST_DEPTH:
        why = f"manifest.json nests {depth} levels deep (at most {_MAX_MANIFEST_DEPTH})"
        raise BundleError(_CORRUPT.format(why=why), file=file)
    try:
        manifest = json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        why = f"manifest.json is not valid JSON: {exc}"
        raise BundleError(_CORRUPT.format(why=why), file=file) from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        got = manifest.get("format") if isinstance(manifest, dict) else manifest
        why = f"manifest format is {got!r}, expected {FORMAT!r}"
        raise BundleError(_NOT_A_BUNDLE.format(why=why), file=file)
    version = manifest.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        why = f"manifest version {version!r} is not a format version"
        raise BundleError(_CORRUPT.format(why=why), file=file)
    if version > VERSION:
        raise BundleError(_TOO_NEW.format(version=version, ours=VERSION), file=file)
    problems = _manifest_problems(manifest, version)
    if problems:
        why = "manifest.json " + "; ".join(problems)
        raise BundleError(_CORRUPT.format(why=why), file=file)
    return manifest


def _nesting_depth(text: bytes) -> int:
    """The deepest bracket nesting in JSON text (brackets inside strings are skipped)."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in text:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest


def _entry_problem(name: str, entry: Any, version: int) -> str | None:
    """What is wrong with one ``parts`` entry, or None.

    A ``sha256`` string and a ``size``; or, for a data shard from version 2
    on, exactly ``{"size": N, "verified_by": SHARD_CHECK}``.
    """
    if not isinstance(entry, dict):
        return f"has no sha256/size for {name!r}"
    size = entry.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        return f"has no sha256/size for {name!r}"
    if "verified_by" not in entry:
        return None if isinstance(entry.get("sha256"), str) else f"has no sha256/size for {name!r}"
    if version < 2:
        why = f"which format version {version} lacks; it needs a sha256"
        return f"has verified_by for {name!r}, {why}"
    if not (name.startswith(CHECKPOINT_DIR) and _DATA_SHARD.search(name)):
        return (
            f"says {name!r} is verified_by {entry['verified_by']!r}, but only checkpoint "
            "data shards may be; every other member needs a sha256"
        )
    if entry["verified_by"] != SHARD_CHECK or set(entry) != {"size", "verified_by"}:
        return (
            f"has an unknown check for {name!r}: a data shard's entry is "
            f'{{"size": N, "verified_by": "{SHARD_CHECK}"}} or has a sha256'
        )
    return None


def _manifest_problems(manifest: Mapping[str, Any], version: int = VERSION) -> list[str]:
    problems = []
    parts = manifest.get("parts")
    if not isinstance(parts, dict):
        return ["has no 'parts' mapping"]
    for required in (GRAPH, SPEC):
        if required not in parts:
            problems.append(f"lists no {required}")
    for name, entry in parts.items():
        checkpoint_file = name[len(CHECKPOINT_DIR) :] if name.startswith(CHECKPOINT_DIR) else ""
        if (
            name not in (GRAPH, SPEC, SUBNETS, SUBNET_DATA)
            and not _CHECKPOINT_FILE.fullmatch(checkpoint_file)
            and not ARRAY_MEMBER.fullmatch(name)
        ):
            problems.append(f"lists an unexpected member {name!r}")
        problem = _entry_problem(name, entry, version)
        if problem is not None:
            problems.append(problem)
    prefix = manifest.get("checkpoint_prefix")
    if prefix is not None and (
        not isinstance(prefix, str)
        or not prefix.startswith(CHECKPOINT_DIR)
        or not _CHECKPOINT_FILE.fullmatch(prefix[len(CHECKPOINT_DIR) :])
    ):
        problems.append(f"has an invalid checkpoint_prefix {prefix!r}")
    return problems


def _read_member(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, entry: Mapping[str, Any], file: str
) -> bytes:
    name = info.filename
    if info.compress_type != zipfile.ZIP_STORED:
        why = f"member {name} is compressed; bundles store members uncompressed"
        raise BundleError(_CORRUPT.format(why=why), file=file)
    if info.file_size != entry["size"]:
        why = f"member {name} holds {info.file_size} bytes, the manifest says {entry['size']}"
        raise BundleError(_CORRUPT.format(why=why), file=file)
    try:
        data = archive.read(info)
    except zipfile.BadZipFile as exc:
        why = f"member {name} is damaged ({exc})"
        raise BundleError(_CORRUPT.format(why=why), file=file) from exc
    if len(data) != entry["size"]:
        why = f"member {name} is truncated"
        raise BundleError(_CORRUPT.format(why=why), file=file)
    # A shard entry without a SHA-256 (SHARD_CHECK): archive.read checked the zip's CRC-32.
    if "sha256" in entry and hashlib.sha256(data).hexdigest() != entry["sha256"]:
        why = f"checksum mismatch for member {name}"
        raise BundleError(_CORRUPT.format(why=why), file=file)
    return data


def _check_checkpoint_names(checkpoint: Mapping[str, bytes], prefix: str, file: str | None) -> None:
    """The checkpoint is the prefix's index plus every one of its data shards."""
    problems = []
    if not _CHECKPOINT_FILE.fullmatch(prefix):
        problems.append(f"invalid checkpoint prefix {prefix!r}")
    shards: set[int] = set()
    counts: set[int] = set()
    for name in checkpoint:
        if not _CHECKPOINT_FILE.fullmatch(name) or not name.startswith(prefix + "."):
            problems.append(f"unexpected checkpoint file {name!r}")
            continue
        rest = name[len(prefix) :]
        shard = _DATA_SHARD.fullmatch(rest)
        if shard:
            shards.add(int(shard.group(1)))
            counts.add(int(shard.group(2)))
        elif rest != ".index":
            problems.append(f"unexpected checkpoint file {name!r}")
    if prefix + ".index" not in checkpoint:
        problems.append(f"no checkpoint index {CHECKPOINT_DIR}{prefix}.index")
    if len(counts) > 1:
        problems.append("checkpoint data shards disagree on their number")
    elif counts:
        (count,) = counts
        absent = sorted(set(range(count)) - shards)
        if absent:
            names = ", ".join(f"{prefix}.data-{i:05d}-of-{count:05d}" for i in absent)
            problems.append(f"missing checkpoint shard(s) {names}")
    else:
        problems.append("no checkpoint data shards")
    if problems:
        raise BundleError(_CORRUPT.format(why="; ".join(problems)), file=file)
