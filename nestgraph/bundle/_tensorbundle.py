"""TensorFlow checkpoint indexes, read and rewritten without TensorFlow's help.

A checkpoint (a "tensor bundle") is an index file plus data shards. The index
is a LevelDB-format table (TensorFlow's ``core/lib/io/table``): sorted keys,
each a checkpoint key, each value a ``BundleEntryProto`` giving the tensor's
dtype, shape, shard, byte offset, size and CRC-32C; the empty key holds the
``BundleHeaderProto``. Reading the index here lets a load

- compare every variable's dtype and shape with the graph before restoring;
- find the bytes of just the tensors it needs, and
- write a *view* index: only the needed entries, all moved into one data file
  (the bundle zip itself, or a compact copy of just those bytes), so
  TensorFlow's ``RestoreV2`` reads them straight from where they are and checks
  each tensor's CRC-32C as it reads it.

Tables are written here with one data block in which every entry is a restart
point: the simplest layout TensorFlow's table reader accepts.
"""

from __future__ import annotations

import bisect
import struct
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from tensorflow.core.protobuf import tensor_bundle_pb2

from nestgraph.errors import BundleError

__all__ = [
    "CheckpointIndex",
    "crc32c",
    "masked_crc32c",
    "read_table",
    "write_table",
]

_MAGIC = 0xDB4775248B80FB57
_FOOTER_BYTES = 48
_HANDLES_BYTES = 40
_TRAILER_BYTES = 5  # compression type (1 byte) + masked CRC-32C (4 bytes)
_NO_COMPRESSION = 0
HEADER_KEY = b""
# Checkpoint keys of the slices of a partitioned variable start with this byte
# (OrderedCode's encoding of the number 0), so they sort apart from plain keys.
_SLICE_KEY_PREFIX = b"\x00"


# --------------------------------------------------------------------------- CRC-32C


def _crc_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
        table.append(crc)
    return table


_CRC_TABLE = _crc_table()


def crc32c(data: bytes | bytearray | memoryview) -> int:
    """CRC-32C (Castagnoli), as TensorFlow computes it.

    Pure Python, so only for small data (table blocks): about 10 MB/s.

    >>> hex(crc32c(b"123456789"))
    '0xe3069283'
    """
    crc = 0xFFFFFFFF
    table = _CRC_TABLE
    for byte in bytes(data):
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data: bytes | bytearray | memoryview) -> int:
    """The masked form TensorFlow stores, so a CRC of data holding CRCs stays strong."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


# --------------------------------------------------------------------------- table format


class _Corrupt(Exception):
    """The table is malformed; turned into a BundleError naming the index file."""


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise _Corrupt("bad varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _put_varint(out: bytearray, value: int) -> None:
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def _block(data: bytes, handle: tuple[int, int]) -> bytes:
    offset, size = handle
    if offset + size + _TRAILER_BYTES > len(data):
        raise _Corrupt("a block lies outside the file")
    if data[offset + size] != _NO_COMPRESSION:
        raise _Corrupt("a block is compressed; TensorFlow writes checkpoint indexes uncompressed")
    return data[offset : offset + size]


def _entries(block: bytes, start: int = 0) -> Iterator[tuple[bytes, bytes]]:
    """The ``(key, value)`` entries of a block, from the restart point at ``start`` on."""
    if len(block) < 4:
        raise _Corrupt("a block is too short")
    (restarts,) = struct.unpack_from("<I", block, len(block) - 4)
    limit = len(block) - 4 - 4 * restarts
    if limit < 0:
        raise _Corrupt("a block's restart array is too long")
    pos, key = start, b""
    while pos < limit:
        shared, pos = _varint(block, pos)
        own, pos = _varint(block, pos)
        size, pos = _varint(block, pos)
        if shared > len(key) or pos + own + size > limit:
            raise _Corrupt("an entry runs past its block")
        key = key[:shared] + block[pos : pos + own]
        pos += own
        yield key, block[pos : pos + size]
        pos += size


def _find(block: bytes, wanted: bytes) -> bytes | None:
    """The value of ``wanted`` in one block, found through its restart points.

    TensorFlow writes indexes as one large block (a whole checkpoint's entries,
    each 16th a restart point holding its full key): a binary search over the
    restart points and a scan of at most one run reads a few entries, not all.
    """
    if len(block) < 4:
        raise _Corrupt("a block is too short")
    (restarts,) = struct.unpack_from("<I", block, len(block) - 4)
    limit = len(block) - 4 - 4 * restarts
    if limit < 0 or restarts == 0:
        raise _Corrupt("a block's restart array is malformed")
    points = struct.unpack_from(f"<{restarts}I", block, limit)

    def key_at(point: int) -> bytes:
        if point >= limit:
            raise _Corrupt("a restart point lies outside its block")
        shared, pos = _varint(block, point)
        own, pos = _varint(block, pos)
        _, pos = _varint(block, pos)
        if shared != 0 or pos + own > limit:
            raise _Corrupt("a restart point does not start a full key")
        return block[pos : pos + own]

    low, high = 0, restarts - 1  # the last restart point whose key is <= wanted
    while low < high:
        middle = (low + high + 1) // 2
        if key_at(points[middle]) <= wanted:
            low = middle
        else:
            high = middle - 1
    for key, value in _entries(block, points[low]):
        if key == wanted:
            return value
        if key > wanted:
            return None
    return None


def _handle(value: bytes) -> tuple[int, int]:
    offset, pos = _varint(value, 0)
    size, _ = _varint(value, pos)
    return offset, size


def _encode_handle(out: bytearray, offset: int, size: int) -> None:
    _put_varint(out, offset)
    _put_varint(out, size)


def read_table(data: bytes) -> tuple[list[bytes], list[tuple[int, int]]]:
    """The index block of a table: each data block's last key and its (offset, size)."""
    if len(data) < _FOOTER_BYTES:
        raise _Corrupt("shorter than a table footer")
    footer = data[-_FOOTER_BYTES:]
    if struct.unpack("<Q", footer[_HANDLES_BYTES:])[0] != _MAGIC:
        raise _Corrupt("no table magic number")
    _, pos = _varint(footer, _varint(footer, 0)[1])  # skip the metaindex handle
    index_offset, pos = _varint(footer, pos)
    index_size, _ = _varint(footer, pos)
    keys, handles = [], []
    for key, value in _entries(_block(data, (index_offset, index_size))):
        keys.append(key)
        handles.append(_handle(value))
    return keys, handles


def write_table(entries: Iterable[tuple[bytes, bytes]]) -> bytes:
    """A table holding ``entries`` (already sorted by key, bytewise)."""
    out = bytearray()

    def add_block(block: bytearray) -> tuple[int, int]:
        start = len(out)
        block.append(_NO_COMPRESSION)
        out.extend(block)
        out.extend(struct.pack("<I", masked_crc32c(block)))
        return start, len(block) - 1

    data, restarts, last = bytearray(), [], b""
    for key, value in entries:
        restarts.append(len(data))
        _put_varint(data, 0)
        _put_varint(data, len(key))
        _put_varint(data, len(value))
        data.extend(key)
        data.extend(value)
        last = key
    data.extend(struct.pack(f"<{len(restarts) + 1}I", *restarts, len(restarts)))
    data_handle = add_block(data)
    meta_handle = add_block(bytearray(struct.pack("<II", 0, 1)))
    index = bytearray()
    _put_varint(index, 0)
    _put_varint(index, len(last))
    handle = bytearray()
    _encode_handle(handle, *data_handle)
    _put_varint(index, len(handle))
    index.extend(last)
    index.extend(handle)
    index.extend(struct.pack("<II", 0, 1))
    index_handle = add_block(index)
    footer = bytearray()
    _encode_handle(footer, *meta_handle)
    _encode_handle(footer, *index_handle)
    footer.extend(b"\x00" * (_HANDLES_BYTES - len(footer)))
    footer.extend(struct.pack("<Q", _MAGIC))
    out.extend(footer)
    return bytes(out)


# --------------------------------------------------------------------------- checkpoint index


Placer = Callable[[str, Any], int]


def _encode(key: str) -> bytes:
    # Slice keys are OrderedCode bytes, not UTF-8: surrogateescape keeps them exact.
    return key.encode("utf-8", "surrogateescape")


def _decode(key: bytes) -> str:
    return key.decode("utf-8", "surrogateescape")


class CheckpointIndex:
    """The parsed index of one checkpoint; entries are parsed when first asked for.

    ``name`` names the index file in error messages. A lookup of a few keys
    reads only the table blocks that hold them, so it costs what they cost.
    """

    def __init__(self, data: bytes, name: str) -> None:
        self._data = data
        self._name = name
        self._blocks: dict[int, dict[bytes, bytes]] = {}
        try:
            self._last_keys, self._handles = read_table(data)
            header_value = self._lookup(HEADER_KEY)
        except (_Corrupt, struct.error) as exc:
            raise self._error(str(exc)) from None
        if header_value is None:
            raise self._error("no checkpoint header")
        try:
            self.header = tensor_bundle_pb2.BundleHeaderProto.FromString(header_value)
        except Exception as exc:  # a DecodeError from a malformed header
            raise self._error(f"the header is not a BundleHeaderProto ({exc})") from None

    def _error(self, why: str) -> BundleError:
        return BundleError(f"corrupt bundle: checkpoint index {self._name}: {why}")

    def _block_entries(self, number: int) -> dict[bytes, bytes]:
        if number not in self._blocks:
            self._blocks[number] = dict(_entries(_block(self._data, self._handles[number])))
        return self._blocks[number]

    def _lookup(self, key: bytes) -> bytes | None:
        number = bisect.bisect_left(self._last_keys, key)
        if number == len(self._last_keys):
            return None
        if number in self._blocks:
            return self._blocks[number].get(key)
        return _find(_block(self._data, self._handles[number]), key)

    def entries(self, keys: Iterable[str] | None = None) -> dict[str, Any]:
        """``{key: BundleEntryProto}`` for ``keys`` present in the index (None: every key).

        Keys are ``str``; the few that are not UTF-8 (slice keys) are decoded
        with ``surrogateescape``, so they encode back to the same bytes.

        Slices of partitioned variables are included whenever any entry asked
        for is partitioned (they are keyed apart from their variable).
        """
        try:
            if keys is None:
                raw = {
                    key: value
                    for number in range(len(self._handles))
                    for key, value in self._block_entries(number).items()
                    if key != HEADER_KEY
                }
            else:
                raw = {}
                for key in keys:
                    value = self._lookup(_encode(key))
                    if value is not None:
                        raw[_encode(key)] = value
            parsed = {
                key: tensor_bundle_pb2.BundleEntryProto.FromString(value)
                for key, value in raw.items()
            }
            if keys is not None and any(entry.slices for entry in parsed.values()):
                parsed.update(
                    (key, tensor_bundle_pb2.BundleEntryProto.FromString(value))
                    for number in range(len(self._handles))
                    for key, value in self._block_entries(number).items()
                    if key.startswith(_SLICE_KEY_PREFIX)
                )
        except (_Corrupt, struct.error, IndexError) as exc:
            raise self._error(str(exc)) from None
        except Exception as exc:  # a DecodeError from a malformed entry
            raise self._error(f"an entry is not a BundleEntryProto ({exc})") from None
        return {_decode(key): entry for key, entry in parsed.items()}

    def view(self, entries: Mapping[str, Any], place: Placer) -> bytes:
        """A one-shard index of ``entries``, each moved to where ``place`` put its bytes.

        ``place(key, entry)`` returns the entry's new offset in the one data file
        (``*.data-00000-of-00001``) the view's prefix names. Entries that only
        describe a partitioned variable hold no bytes and keep offset 0.
        """
        header = tensor_bundle_pb2.BundleHeaderProto()
        header.CopyFrom(self.header)
        header.num_shards = 1
        moved = []
        for key in sorted(entries, key=_encode):
            entry = tensor_bundle_pb2.BundleEntryProto()
            entry.CopyFrom(entries[key])
            if not entry.slices:
                entry.offset = place(key, entries[key])
            entry.shard_id = 0
            moved.append((_encode(key), entry.SerializeToString(deterministic=True)))
        return write_table([(HEADER_KEY, header.SerializeToString(deterministic=True)), *moved])
