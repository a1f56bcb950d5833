"""The bundle container without holding the weights: streamed writes, located reads.

Writing: ``plan`` lays a bundle out (``_container``'s member order, the
checkpoint's largest data shard last) and the same layout is written either
by copying (``pack_streamed``, to any seekable file) or, on a local disk, by
making the staged shard file itself the bundle (``_zerocopy``); both give the
same bytes. The small members (manifest, graph, spec, arrays, the checkpoint
index) are rendered whole, with their SHA-256 in the manifest; data shards
carry only their size there (format version 2: TensorFlow's per-tensor CRC-32C
in the index verifies what a load reads) and the zip's CRC-32.

The last shard's data starts at a multiple of ``ALIGN`` from the start of the
archive: its local header's extra field holds padding (an Android ``zipalign``
record, id 0xD935), so that everything before it fills whole file system
blocks and can be inserted in front of the staged file.

``unpack_parts`` verifies everything ``_container.unpack(checkpoint=False)``
does, plus the checkpoint index (SHA-256), and returns where each data shard's
bytes are stored in the file instead of reading them: a load reads only the
tensors it needs, and TensorFlow checks each one's CRC-32C as it reads it.
"""

from __future__ import annotations

import concurrent.futures
import errno
import hashlib
import itertools
import json
import os
import struct
import zipfile
import zlib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from nestgraph.bundle import _container
from nestgraph.bundle._container import (
    _CORRUPT,
    _FILE_MODE,
    CHECKPOINT_DIR,
    FORMAT,
    MANIFEST,
    SHARD_CHECK,
    SUBNET_DATA,
    VERSION,
    BundleContents,
)
from nestgraph.errors import BundleError

__all__ = [
    "ALIGN",
    "BundleParts",
    "Layout",
    "StoredMember",
    "pack_streamed",
    "plan",
    "read_located",
    "read_range",
    "unpack_parts",
]

ALIGN = 4096
_CHUNK = 8 << 20
_LOCAL_HEADER = struct.Struct("<4s22xHH")  # signature ... file name length, extra length
_LOCAL_SIGNATURE = b"PK\x03\x04"
_CRC_OFFSET = 14  # of the CRC-32 in a local file header

_LOCAL = struct.Struct("<4sHHHHHIIIHH")
_CENTRAL = struct.Struct("<4sBBBBHHHHIIIHHHHHII")
_END = struct.Struct("<4sHHHHIIH")
_END64 = struct.Struct("<4sQHHIIQQQQ")
_LOCATOR64 = struct.Struct("<4sIQI")
_DOS_DATE = (1 << 5) | 1  # 1980-01-01, the fixed timestamp (_container._ZIP_TIMESTAMP)
_UNIX = 3
_ZIP64_ID = 0x0001
_ALIGNMENT_ID = 0xD935  # Android zipalign: u16 alignment, then zero padding
_LIMIT = zipfile.ZIP64_LIMIT
_COUNT_LIMIT = 0xFFFF
# copy_file_range errors that mean "not here", not "failed".
_NO_KERNEL_COPY = frozenset(
    {errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EBADF, errno.ETXTBSY}
)


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


@dataclass
class _Member:
    name: str
    size: int
    data: bytes | None = None  # a small member, rendered whole
    source: str = ""  # a data shard: its checkpoint file name
    crc: int = 0
    offset: int = 0  # of its local header
    pad: int = 0  # bytes of alignment record in its extra field

    @property
    def zip64(self) -> bool:
        return self.size >= _LIMIT

    def header(self) -> bytes:
        encoded = self.name.encode("utf-8")
        extra = b""
        if self.zip64:
            extra += struct.pack("<HHQQ", _ZIP64_ID, 16, self.size, self.size)
        if self.pad:
            extra += struct.pack("<HHH", _ALIGNMENT_ID, self.pad - 4, ALIGN)
            extra += bytes(self.pad - 6)
        stored = 0xFFFFFFFF if self.zip64 else self.size
        flags = 0 if self.name.isascii() else 0x800
        fixed = _LOCAL.pack(
            _LOCAL_SIGNATURE, self._version, flags, 0, 0, _DOS_DATE, self.crc, stored, stored,
            len(encoded), len(extra),
        )  # fmt: skip
        return fixed + encoded + extra

    @property
    def _version(self) -> int:
        return 45 if self.zip64 or self.offset >= _LIMIT else 20

    @property
    def data_offset(self) -> int:
        return self.offset + len(self.header())

    def central(self) -> bytes:
        encoded = self.name.encode("utf-8")
        large = [v for v in (self.size, self.size, self.offset) if v >= _LIMIT]
        extra = b""
        if large:
            extra = struct.pack(f"<HH{len(large)}Q", _ZIP64_ID, 8 * len(large), *large)
        size = 0xFFFFFFFF if self.zip64 else self.size
        offset = 0xFFFFFFFF if self.offset >= _LIMIT else self.offset
        flags = 0 if self.name.isascii() else 0x800
        fixed = _CENTRAL.pack(
            b"PK\x01\x02", self._version, _UNIX, self._version, 0, flags, 0, 0, _DOS_DATE,
            self.crc, size, size, len(encoded), len(extra), 0, 0, 0, _FILE_MODE, offset,
        )  # fmt: skip
        return fixed + encoded + extra


@dataclass
class Layout:
    """Where every member of a bundle goes; ``members[-1]`` is the largest data shard
    (when there is one), whose data starts at ``prefix_size``, a multiple of ``ALIGN``."""

    members: list[_Member]

    @property
    def base(self) -> _Member | None:
        last = self.members[-1]
        return last if last.data is None else None

    @property
    def prefix_size(self) -> int:
        last = self.members[-1]
        return last.data_offset if last.data is None else last.data_offset + last.size

    @property
    def shards(self) -> list[_Member]:
        return [m for m in self.members if m.data is None]

    def central_directory(self) -> bytes:
        """The central directory and end records, to follow the last member's data."""
        last = self.members[-1]
        start = last.data_offset + last.size
        directory = b"".join(m.central() for m in self.members)
        count = len(self.members)
        end = b""
        if count >= _COUNT_LIMIT or start >= _LIMIT or len(directory) >= 0xFFFFFFFF:
            end64 = start + len(directory)
            end += _END64.pack(
                b"PK\x06\x06", _END64.size - 12, 45, 45, 0, 0, count, count, len(directory), start
            )
            end += _LOCATOR64.pack(b"PK\x06\x07", 0, end64, 1)
        end += _END.pack(
            b"PK\x05\x06", 0, 0, min(count, _COUNT_LIMIT), min(count, _COUNT_LIMIT),
            min(len(directory), 0xFFFFFFFF), min(start, 0xFFFFFFFF), 0,
        )  # fmt: skip
        return directory + end

    def render(self, member: _Member) -> bytes:
        """A small member's local header and data, or a shard's local header."""
        return member.header() + (member.data or b"")


def _size_of(file: Any) -> int:
    file.seek(0, 2)
    size = int(file.tell())
    file.seek(0)
    return size


def _is_shard(name: str) -> bool:
    return name.startswith(CHECKPOINT_DIR) and ".data-" in name


def plan(
    members: Sequence[tuple[str, bytes]],
    checkpoint: Mapping[str, Any],
    prefix: str | None,
    versions: Mapping[str, str],
) -> Layout:
    """Lay out a bundle of ``members`` (graph, spec, arrays... in this order, each
    with its SHA-256 in the manifest) and the checkpoint files ``checkpoint``.

    ``checkpoint`` maps each checkpoint file name to a readable, seekable binary
    file (local or ``tf.io.gfile``); ``prefix`` is their common prefix, or None
    for a bundle without variables. The index is read whole (it is small and
    hashed); data shards are only measured.
    """
    if prefix is not None:
        _container._check_checkpoint_names(dict.fromkeys(checkpoint, b""), prefix, file=None)
    small = [_Member(name, len(data), data) for name, data in members]
    shards = []
    for name, source in sorted(checkpoint.items()):
        if _is_shard(CHECKPOINT_DIR + name):
            shards.append(_Member(CHECKPOINT_DIR + name, _size_of(source), source=name))
        else:
            data = source.read()
            source.seek(0)
            small.append(_Member(CHECKPOINT_DIR + name, len(data), data))
    # The largest shard last, so that it can be the file everything else is put in front of.
    shards.sort(key=lambda m: (m.size, m.name))
    if shards:
        shards = [*sorted(shards[:-1], key=lambda m: m.name), shards[-1]]
    parts: dict[str, dict[str, Any]] = {
        m.name: {"sha256": hashlib.sha256(m.data).hexdigest(), "size": m.size}
        for m in small
        if m.data is not None
    }
    parts.update((m.name, {"size": m.size, "verified_by": SHARD_CHECK}) for m in shards)
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        **versions,
        "checkpoint_prefix": None if prefix is None else CHECKPOINT_DIR + prefix,
        "parts": parts,
    }
    manifest_bytes = json.dumps(manifest, indent=2).encode("utf-8") + b"\n"
    ordered = [_Member(MANIFEST, len(manifest_bytes), manifest_bytes), *small, *shards]
    offset = 0
    for member in ordered:
        member.offset = offset
        offset += len(member.header()) + member.size
    for member in ordered:
        member.crc = zlib.crc32(member.data) if member.data is not None else 0
    if shards:
        base = ordered[-1]
        start = base.data_offset
        # At least the record's own six bytes; never past ALIGN + 5 (an extra field holds 64 KiB).
        base.pad = (-(start + 6)) % ALIGN + 6
    return Layout(ordered)


def pack_streamed(
    members: Sequence[tuple[str, bytes]],
    checkpoint: Mapping[str, Any],
    prefix: str | None,
    out: IO[bytes],
    versions: Mapping[str, str],
    crcs: Mapping[str, int] | None = None,
) -> None:
    """Write a bundle to the seekable binary file ``out``, copying the checkpoint.

    ``members``, ``checkpoint``, ``prefix`` and ``versions`` are as for ``plan``.
    ``crcs`` may give the data shards' CRC-32s (by checkpoint file name), already
    computed; otherwise each is computed while its shard is copied and written
    into its local header afterwards.
    """
    layout = plan(members, checkpoint, prefix, versions)
    start = out.tell()
    for member in layout.members:
        if member.data is not None:
            out.write(layout.render(member))
            continue
        known = crcs is not None and member.source in crcs
        if crcs is not None and known:
            member.crc = crcs[member.source]
        out.write(member.header())
        crc = _copy(checkpoint[member.source], out, member.size, need_crc=not known)
        if not known:
            member.crc = crc
            end = out.tell()
            out.seek(start + member.offset + _CRC_OFFSET)
            out.write(struct.pack("<I", crc))
            out.seek(end)
    out.write(layout.central_directory())


def _copy(source: Any, out: IO[bytes], size: int, *, need_crc: bool) -> int:
    """Copy ``size`` bytes of ``source`` (from its start) to ``out``; their CRC-32 if needed."""
    source.seek(0)
    if not need_crc and _copy_in_kernel(source, out, size):
        return 0
    buffers = [bytearray(_CHUNK), bytearray(_CHUNK)]
    crc = [0]
    copied = 0

    def update(chunk: memoryview) -> None:
        crc[0] = zlib.crc32(chunk, crc[0])

    pending: list[concurrent.futures.Future[None]] = []
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="nestgraph-crc") as pool:
        for turn in itertools.count():
            if len(pending) == 2:  # the buffer about to be reused may still be being read
                pending.pop(0).result()
            buffer = buffers[turn % 2] if hasattr(source, "readinto") else None
            if buffer is not None:
                count = source.readinto(buffer)
                chunk = memoryview(buffer)[:count]
            else:  # tf.io.gfile.GFile
                chunk = memoryview(source.read(_CHUNK))
                count = len(chunk)
            if not count:
                break
            # zlib.crc32 releases the GIL: the check runs beside the write.
            if need_crc:
                pending.append(pool.submit(update, chunk))
            out.write(chunk)
            copied += count
        for done in pending:
            done.result()
    if copied != size:
        raise OSError(f"a checkpoint file changed size while it was written ({copied} of {size})")
    return crc[0]


def _copy_in_kernel(source: Any, out: IO[bytes], size: int) -> bool:
    """``copy_file_range`` between two local files (a reflink where the disk shares blocks)."""
    try:
        source_fd, out_fd = source.fileno(), out.fileno()
    except (AttributeError, OSError, ValueError):
        return False
    out.flush()
    position = out.tell()
    copied = 0
    try:
        while copied < size:
            count = os.copy_file_range(source_fd, out_fd, size - copied, copied, position + copied)
            if count <= 0:
                raise OSError(f"a checkpoint file ended early ({copied} of {size} bytes)")
            copied += count
    except OSError as exc:
        if copied or exc.errno not in _NO_KERNEL_COPY:
            raise
        return False  # not between these file systems: copy through memory
    out.seek(position + size)
    return True


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
