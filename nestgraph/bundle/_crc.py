"""The zip CRC-32 of a large file on every core, a few megabytes of memory at a time.

``zlib.crc32`` releases the GIL, so the file is cut into one span per thread,
each span read with ``os.preadv`` into a buffer the thread reuses, and the
spans' checksums joined with ``crc32_combine`` (zlib's GF(2) matrix method,
which ``zlib`` computes but Python's module does not expose).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import threading
import zlib
from collections.abc import Iterator

__all__ = ["GrowingFiles", "crc32_combine", "crc32_file", "watching"]

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


def _span_crc(fd: int, start: int, size: int, crc: int = 0, buffer: bytearray | None = None) -> int:
    """``crc`` carried over ``size`` bytes of ``fd`` from ``start``, read into ``buffer``."""
    if buffer is None:
        buffer = bytearray(min(_CHUNK, max(size, 1)))
    view = memoryview(buffer)
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


class GrowingFiles:
    """CRC-32s of the checkpoint data files TensorFlow is writing under a directory.

    TensorFlow's ``SaveV2`` appends each data shard in order (to a temporary
    name it renames at the end) and releases the GIL while it does, so a thread
    can checksum every byte once it is written, beside the write, instead of
    reading the whole file again afterwards. ``finish()`` (after the save)
    reads what is left and returns ``{inode: (size, crc)}``; a file's inode
    survives TensorFlow's renames, so callers match it against the final
    files with ``os.fstat``. Anything unexpected (a file that shrinks, an
    error) just leaves that file out: the caller checksums it itself.
    """

    def __init__(self, directory: str, marker: str = ".data-") -> None:
        self._directory = directory
        self._marker = marker
        self._stop = threading.Event()
        self._files: dict[str, tuple[int, int, int, int]] = {}  # path -> fd, inode, size, crc
        self._dropped: set[int] = set()
        self._thread = threading.Thread(target=self._run, name="nestgraph-crc-tail", daemon=True)
        self._thread.start()

    def finish(self) -> dict[int, tuple[int, int]]:
        self._stop.set()
        self._thread.join()
        found = {
            inode: (size, crc)
            for _, inode, size, crc in self._files.values()
            if inode not in self._dropped
        }
        for fd, *_ in self._files.values():
            os.close(fd)
        self._files.clear()
        return found

    def _run(self) -> None:
        buffer = bytearray(_CHUNK)
        try:
            while True:
                stopping = self._stop.is_set()  # then one last pass over complete files
                self._discover()
                progressed = any([self._advance(path, buffer) for path in list(self._files)])
                if stopping:
                    return
                if not progressed:
                    self._stop.wait(0.002)
        except Exception:  # pragma: no cover - an unexpected failure: the caller checksums
            self._dropped.update(inode for _, inode, _, _ in self._files.values())

    def _discover(self) -> None:
        for root, _, names in os.walk(self._directory):
            for name in names:
                path = os.path.join(root, name)
                if self._marker not in name or path in self._files:
                    continue
                with contextlib.suppress(OSError):  # renamed or removed meanwhile
                    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
                    inode = os.fstat(fd).st_ino
                    if any(known == inode for _, known, _, _ in self._files.values()):
                        os.close(fd)  # the same file under its final name
                        continue
                    self._files[path] = (fd, inode, 0, 0)

    def _advance(self, path: str, buffer: bytearray) -> bool:
        fd, inode, done, crc = self._files[path]
        size = os.fstat(fd).st_size
        if size < done:
            self._dropped.add(inode)
        if inode in self._dropped or size == done:
            return False
        try:
            crc = _span_crc(fd, done, size - done, crc, buffer)
        except OSError:  # it ended early: changed under us, not appended to
            self._dropped.add(inode)
            return False
        self._files[path] = (fd, inode, size, crc)
        return True


@contextlib.contextmanager
def watching(directory: str) -> Iterator[dict[int, tuple[int, int]]]:
    """``GrowingFiles`` of ``directory`` for the ``with`` block; the dict is filled on exit."""
    found: dict[int, tuple[int, int]] = {}
    watcher = GrowingFiles(directory)
    try:
        yield found
    finally:
        found.update(watcher.finish())
