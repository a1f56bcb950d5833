"""The bundle container without holding the weights: streamed writes, located reads.

``pack_streamed`` writes the same format as ``_container.pack`` but copies the
checkpoint files into the zip chunk by chunk, hashing as it goes; the
manifest (first member, holding every member's SHA-256) is written with
placeholder checksums of the same length and patched in place at the end, so
the weights pass through memory once, a few megabytes at a time.

``unpack_parts`` verifies everything ``_container.unpack(checkpoint=False)``
does, plus the checkpoint index (SHA-256), and returns where each data shard's
bytes are stored in the file instead of reading them: a load reads only the
tensors it needs, and TensorFlow checks each one's CRC-32C as it reads it.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import struct
import zipfile
import zlib
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import IO, Any

from nestgraph.bundle import _container
from nestgraph.bundle._container import (
    _CORRUPT,
    _FILE_MODE,
    _ZIP_TIMESTAMP,
    CHECKPOINT_DIR,
    FORMAT,
    GRAPH,
    MANIFEST,
    SPEC,
    SUBNET_DATA,
    VERSION,
    BundleContents,
)
from nestgraph.errors import BundleError

__all__ = [
    "BundleParts",
    "StoredMember",
    "pack_streamed",
    "read_located",
    "read_range",
    "unpack_parts",
]

_CHUNK = 8 << 20
_LOCAL_HEADER = struct.Struct("<4s22xHH")  # signature ... file name length, extra length
_LOCAL_SIGNATURE = b"PK\x03\x04"
_CRC_OFFSET = 14  # of the CRC-32 in a local file header


@dataclass(frozen=True)
class StoredMember:
    """Where a stored (uncompressed) member's bytes lie in the bundle file."""

    offset: int
    size: int


@dataclass(frozen=True)
class BundleParts:
    """A verified bundle whose weights are located, not read.

    ``index`` is the checkpoint index's bytes (checked against the manifest),
    ``shards`` maps each data shard's file name to where it is stored; both are
    empty for a bundle without a checkpoint.
    """

    contents: BundleContents
    index: bytes | None = None
    shards: Mapping[str, StoredMember] = field(default_factory=dict)
    #: Members located rather than read (``graph.pb`` when asked, ``subnets.bin``).
    located: Mapping[str, StoredMember] = field(default_factory=dict)


def _size_of(file: Any) -> int:
    file.seek(0, 2)
    size = int(file.tell())
    file.seek(0)
    return size


def _manifest_bytes(
    versions: Mapping[str, str], prefix: str | None, parts: Mapping[str, tuple[str, int]]
) -> bytes:
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        **versions,
        "checkpoint_prefix": None if prefix is None else CHECKPOINT_DIR + prefix,
        "parts": {name: {"sha256": digest, "size": size} for name, (digest, size) in parts.items()},
    }
    return json.dumps(manifest, indent=2).encode("utf-8") + b"\n"


def _info(name: str, size: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=_ZIP_TIMESTAMP)
    info.compress_type = zipfile.ZIP_STORED
    info.external_attr = _FILE_MODE
    info.file_size = size
    return info


def pack_streamed(
    graph: bytes,
    spec: bytes,
    checkpoint: Mapping[str, Any],
    prefix: str | None,
    out: IO[bytes],
    versions: Mapping[str, str],
    arrays: Mapping[str, bytes] | None = None,
) -> None:
    """Write a bundle to the seekable binary file ``out``, streaming the checkpoint.

    ``checkpoint`` maps each checkpoint file name to a readable, seekable binary
    file (local or ``tf.io.gfile``); ``prefix`` is their common prefix, or None
    for a bundle without variables; ``arrays`` are the array members
    (``arrays/<n>.npy`` -> bytes). The bytes are those ``_container.pack``
    would write for the same content, except for zip header details.
    """
    arrays = dict(sorted((arrays or {}).items()))
    if prefix is not None:
        _container._check_checkpoint_names(dict.fromkeys(checkpoint, b""), prefix, file=None)
    sizes = {CHECKPOINT_DIR + name: _size_of(f) for name, f in sorted(checkpoint.items())}
    parts: dict[str, tuple[str, int]] = {
        GRAPH: (hashlib.sha256(graph).hexdigest(), len(graph)),
        SPEC: (hashlib.sha256(spec).hexdigest(), len(spec)),
    }
    parts.update(
        (name, (hashlib.sha256(data).hexdigest(), len(data))) for name, data in arrays.items()
    )
    placeholder = "0" * 64
    parts.update((name, (placeholder, size)) for name, size in sizes.items())
    draft = _manifest_bytes(versions, prefix, parts)
    buffer = bytearray(_CHUNK)
    view = memoryview(buffer)
    with (
        concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="nestgraph-hash") as hasher,
        zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive,
    ):
        manifest_info = _info(MANIFEST, len(draft))
        archive.writestr(manifest_info, draft)
        # Stored, and with no data descriptor on a seekable file: the data ends here.
        manifest_start = out.tell() - len(draft)
        archive.writestr(_info(GRAPH, len(graph)), graph)
        archive.writestr(_info(SPEC, len(spec)), spec)
        for name, data in arrays.items():
            archive.writestr(_info(name, len(data)), data)
        for name, size in sizes.items():
            source = checkpoint[name[len(CHECKPOINT_DIR) :]]
            digest = hashlib.sha256()
            copied = 0
            large = size > zipfile.ZIP64_LIMIT
            with archive.open(_info(name, size), "w", force_zip64=large) as dest:
                while True:
                    if hasattr(source, "readinto"):
                        count = source.readinto(buffer)
                        chunk = view[:count]
                    else:  # tf.io.gfile.GFile
                        chunk = memoryview(source.read(_CHUNK))
                        count = len(chunk)
                    if not count:
                        break
                    # SHA-256 and the zip's CRC-32 both release the GIL on large
                    # buffers: hashing beside the write hides most of the hash.
                    hashing = hasher.submit(digest.update, chunk)
                    dest.write(chunk)
                    hashing.result()
                    copied += count
            if copied != size:
                raise OSError(f"checkpoint file {name} changed size while it was written")
            parts[name] = (digest.hexdigest(), size)
        final = _manifest_bytes(versions, prefix, parts)
        # Same length as the draft: the checksums are fixed-width hex.
        end = out.tell()
        out.seek(manifest_start)
        out.write(final)
        manifest_info.CRC = zlib.crc32(final)
        out.seek(manifest_info.header_offset + _CRC_OFFSET)
        out.write(struct.pack("<I", manifest_info.CRC))
        out.seek(end)


def _local_header(source: Any, offset: int) -> tuple[int, int]:
    """File name and extra field lengths of the local header at ``offset``."""
    source.seek(offset)
    header = source.read(_LOCAL_HEADER.size)
    if len(header) != _LOCAL_HEADER.size:
        raise zipfile.BadZipFile("truncated local file header")
    signature, name_length, extra_length = _LOCAL_HEADER.unpack(header)
    if signature != _LOCAL_SIGNATURE:
        raise zipfile.BadZipFile("bad local file header")
    return name_length, extra_length


def unpack_parts(source: IO[bytes], file: str, located: Collection[str] = ()) -> BundleParts:
    """Verify the bundle in the seekable binary file ``source``; locate its weights.

    The manifest, the member list, ``graph.pb``, ``spec.yaml`` and the checkpoint
    index are verified as ``_container.unpack`` verifies them (size and SHA-256);
    each data shard's size and storage are checked and its position found, but
    its bytes are not read. So are ``subnets.bin`` and the members named in
    ``located`` (``graph.pb`` for a sub-network load): :func:`read_located`
    reads and checks them, or the parts of them that are used.

    Raises:
      BundleError: as ``_container.unpack``, or a data shard lies outside the file.
    """
    contents = _container.unpack(source, file, checkpoint=False, located=located)
    parts: Mapping[str, Any] = contents.manifest["parts"]
    lazy = [name for name in (*located, SUBNET_DATA) if name in parts]
    prefix = contents.checkpoint_prefix
    if prefix is None and not lazy:
        return BundleParts(contents)
    index_name = f"{CHECKPOINT_DIR}{prefix}.index"
    try:
        with zipfile.ZipFile(source) as archive:
            file_size = _size_of(source)
            where = {
                name: _locate(source, archive.getinfo(name), parts[name], file_size, file)
                for name in lazy
            }
            if prefix is None:
                return BundleParts(contents, located=where)
            index = _container._read_member(
                archive, archive.getinfo(index_name), parts[index_name], file
            )
            shards = {}
            for name in parts:
                if not name.startswith(CHECKPOINT_DIR) or name == index_name:
                    continue
                shards[name[len(CHECKPOINT_DIR) :]] = _locate(
                    source, archive.getinfo(name), parts[name], file_size, file
                )
    except BundleError:
        raise
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, KeyError, struct.error) as exc:
        raise BundleError(_CORRUPT.format(why=str(exc)), file=file) from exc
    return BundleParts(contents, index, shards, where)


def read_range(source: IO[bytes], member: StoredMember, offset: int, size: int) -> bytes:
    """``size`` bytes at ``offset`` of a located member; a range outside it is a ValueError."""
    if offset < 0 or size < 0 or offset + size > member.size:
        raise ValueError(f"bytes {offset}..{offset + size} lie outside the member")
    source.seek(member.offset + offset)
    data = source.read(size)
    if len(data) != size:
        raise ValueError("the member is truncated")
    return data


def read_located(source: IO[bytes], parts: BundleParts, name: str, file: str) -> bytes:
    """The whole located member ``name``, checked against its size and SHA-256."""
    member = parts.located[name]
    entry = parts.contents.manifest["parts"][name]
    try:
        data = read_range(source, member, 0, member.size)
    except (OSError, ValueError) as exc:
        raise BundleError(_CORRUPT.format(why=f"member {name}: {exc}"), file=file) from None
    if hashlib.sha256(data).hexdigest() != entry.get("sha256"):
        raise BundleError(_CORRUPT.format(why=f"checksum mismatch for member {name}"), file=file)
    return data


def _locate(
    source: Any, info: zipfile.ZipInfo, entry: Mapping[str, Any], file_size: int, file: str
) -> StoredMember:
    name = info.filename
    if info.compress_type != zipfile.ZIP_STORED:
        why = f"member {name} is compressed; bundles store members uncompressed"
        raise BundleError(_CORRUPT.format(why=why), file=file)
    if info.file_size != entry["size"] or info.compress_size != info.file_size:
        why = f"member {name} holds {info.file_size} bytes, the manifest says {entry['size']}"
        raise BundleError(_CORRUPT.format(why=why), file=file)
    name_length, extra_length = _local_header(source, info.header_offset)
    start = info.header_offset + _LOCAL_HEADER.size + name_length + extra_length
    if start + info.file_size > file_size:
        raise BundleError(_CORRUPT.format(why=f"member {name} is truncated"), file=file)
    return StoredMember(start, info.file_size)
