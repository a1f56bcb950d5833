"""The zip CRC-32 of a large file on every core, a few megabytes of memory at a time.

``zlib.crc32`` releases the GIL, so the file is cut into one span per thread,
each span read with ``os.preadv`` into a buffer the thread reuses, and the
spans' checksums joined with ``crc32_combine`` (zlib's GF(2) matrix method,
which ``zlib`` computes but Python's module does not expose).
"""

from __future__ import annotations

import concurrent.futures
import os
import zlib

__all__ = ["crc32_combine", "crc32_file"]

_POLYNOMIAL = 0xEDB88320  # CRC-32 (ISO-HDLC, the zip one), reflected
_CHUNK = 4 << 20
# Below this a second thread costs more than it saves.
_SPLIT_MIN = 32 << 20


def _times(matrix: list[int], vector: int) -> int:
    """``matrix`` (32 columns over GF(2)) applied to the 32-bit ``vector``."""
    total = 0
    row = 0
    while vector:
        if vector & 1:
            total ^= matrix[row]
        vector >>= 1
        row += 1
    return total


def _square(matrix: list[int]) -> list[int]:
    return [_times(matrix, column) for column in matrix]


def crc32_combine(first: int, second: int, second_length: int) -> int:
    """The CRC-32 of ``a + b`` from ``crc32(a)``, ``crc32(b)`` and ``len(b)``.

    >>> import zlib
    >>> crc32_combine(zlib.crc32(b"nest"), zlib.crc32(b"graph"), 5) == zlib.crc32(b"nestgraph")
    True
    """
    if second_length <= 0:
        return first
    # The operator that appends one zero bit, squared into the one for a zero byte,
    # then squared again for each further bit of the length (as zlib does).
    odd = [_POLYNOMIAL] + [1 << n for n in range(31)]
    even = _square(odd)  # two zero bits
    odd = _square(even)  # four
    length = second_length
    while True:
        even = _square(odd)
        if length & 1:
            first = _times(even, first)
        length >>= 1
        if not length:
            break
        odd = _square(even)
        if length & 1:
            first = _times(odd, first)
        length >>= 1
        if not length:
            break
    return first ^ second


def _span_crc(fd: int, start: int, size: int) -> int:
    buffer = bytearray(min(_CHUNK, max(size, 1)))
    view = memoryview(buffer)
    crc = 0
    done = 0
    while done < size:
        want = min(len(buffer), size - done)
        count = os.preadv(fd, [view[:want]], start + done)
        if count <= 0:
            raise OSError(f"file ended {size - done} bytes early while its CRC-32 was computed")
        crc = zlib.crc32(view[:count], crc)
        done += count
    return crc


def crc32_file(fd: int, start: int, size: int, threads: int | None = None) -> int:
    """The CRC-32 of ``size`` bytes of the file ``fd`` from offset ``start``.

    Reads with ``os.preadv`` (the file position is left alone), on ``threads``
    threads (default: one per core, at most two per 32 MiB), each holding one
    4 MiB buffer.
    """
    if threads is None:
        threads = min(os.cpu_count() or 1, max(1, size // _SPLIT_MIN))
    threads = max(1, min(threads, size // _CHUNK or 1))
    if threads == 1:
        return _span_crc(fd, start, size)
    # Spans of whole chunks, the last one taking the rest.
    step = (size // threads // _CHUNK or 1) * _CHUNK
    spans = [(start + i * step, step) for i in range(threads - 1)]
    spans.append((start + (threads - 1) * step, size - (threads - 1) * step))
    with concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix="nestgraph-crc") as pool:
        crcs = list(pool.map(lambda span: _span_crc(fd, *span), spans))
    crc = crcs[0]
    for (_, length), part in zip(spans[1:], crcs[1:], strict=True):
        crc = crc32_combine(crc, part, length)
    return crc
