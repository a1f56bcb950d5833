"""Atomic writes: the target is either the old file or the complete new one, and no debris.

Local files are written to an unnamed file in the target's directory where the
OS has one (Linux ``O_TMPFILE``): a write killed at any point leaves nothing.
The finished file is linked into place (``linkat`` through ``/proc/self/fd``)
directly when the target does not exist, and otherwise under a temporary name
renamed over the target at once. Elsewhere a named temporary file is written.

A named temporary (that short rename window, another OS, a directory being
built) is locked (``flock``) by its writer for as long as it exists, so a later
write of the same target can tell a dead writer's debris from a live one's and
sweeps only the former. Temporary names stay within the 255-byte name limit
whatever the target's name.

Paths with a scheme (``gs://``, ``ram://``, ...) go through ``tf.io.gfile``:
the bytes are written to a temporary name next to the target, then renamed
over it, which is as atomic as the file system's rename. A scheme no
registered file system handles is refused before anything is written.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import shutil
import stat
import time
import uuid
from collections.abc import Callable, Iterator
from typing import IO

from nestgraph.errors import BundleError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no locks, no sweeping
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "check_scheme",
    "irregular_kind",
    "is_remote",
    "lock_directory",
    "move_into_place",
    "not_regular",
    "read_limited",
    "sweep_stale",
    "temporary_directory_for",
    "temporary_sibling",
    "write_atomic",
]

_NAME_MAX = 255
_RANDOM_HEX = 12
# A temporary younger than this may be one whose writer has not locked it yet.
_SWEEP_MIN_AGE_SECONDS = 2.0


def is_remote(path: str) -> bool:
    """True for paths TensorFlow's file systems handle (``scheme://...``)."""
    return "://" in path


def check_scheme(path: str) -> None:
    """Refuse, before any work, a ``scheme://`` path no TensorFlow file system handles.

    Raises ``BundleError`` naming the path (TensorFlow's own error would come
    only once the bytes are ready, and is no ``NestgraphError``).
    """
    if not is_remote(path):
        return
    import tensorflow as tf

    scheme = path.split("://", 1)[0]
    try:
        tf.io.gfile.exists(path)
    except tf.errors.UnimplementedError:
        raise BundleError(
            f"no file system handles the scheme {scheme!r} in this TensorFlow "
            "(load the plugin that registers it, or write a local path)",
            file=path,
        ) from None
    except tf.errors.OpError as exc:
        raise BundleError(f"cannot write: {exc.message}", file=path) from None


def not_regular(path: str) -> str | None:
    """Why the local ``path`` is no file to read (``"a FIFO (named pipe)"``), or None.

    Checked with ``stat`` before anything opens it: opening a FIFO blocks until a
    writer comes, and ``/dev/zero`` never ends; only a regular file has a size.
    A missing path gives None, so the caller's own open reports it.
    """
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return None
    return irregular_kind(mode)


def irregular_kind(mode: int) -> str | None:
    """What a ``st_mode`` that is not a regular file's is, or None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    for test, kind in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return kind
    return "not a regular file"


def read_limited(path: str | os.PathLike[str], limit: int) -> bytes:
    """The bytes of ``path``; ``ValueError`` if it is not a regular file or holds more
    than ``limit`` bytes."""
    path = os.fspath(path)
    if is_remote(path):
        import tensorflow as tf

        with tf.io.gfile.GFile(path, "rb") as remote:
            data: bytes = remote.read(limit + 1)
    else:
        kind = not_regular(path)
        if kind is not None:
            raise ValueError(f"is {kind}, not a regular file")
        with open(path, "rb") as local:
            data = local.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"larger than the {limit} byte limit")
    return data


# --------------------------------------------------------------------------- temporary names


def _temporary_stem(tail: str) -> str:
    """``.{name}.{hash}.``: the prefix every temporary of the target ``tail`` shares.

    The hash keeps two long names that share their first 200 bytes apart; the
    name is cut (at a character boundary) so the whole temporary name fits.
    """
    tag = hashlib.sha256(os.fsencode(tail)).hexdigest()[:8]
    room = _NAME_MAX - len(f"..{tag}.{'0' * _RANDOM_HEX}.tmp")
    name = tail
    while len(os.fsencode(name)) > room:
        name = name[:-1]
    return f".{name}.{tag}."


def temporary_sibling(path: str) -> str:
    """An unused name next to ``path`` for a file or directory being built."""
    head, tail = os.path.split(path.rstrip("/"))
    name = f"{_temporary_stem(tail)}{uuid.uuid4().hex[:_RANDOM_HEX]}.tmp"
    return f"{head}/{name}" if is_remote(path) else os.path.join(head, name)


def _lock(fd: int) -> None:
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_EX)


def lock_directory(directory: str) -> int:
    """Open and lock a temporary directory being built; close the descriptor to unlock.

    ``sweep_stale`` leaves a locked temporary alone, however old it looks.
    """
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        _lock(fd)
    except BaseException:
        os.close(fd)
        raise
    return fd


def sweep_stale(path: str) -> list[str]:
    """Remove the temporaries that dead writers of ``path`` left; return their names.

    A candidate must carry ``path``'s own temporary prefix, be a regular file or
    directory (never a symlink) owned by this user, be older than a moment, and
    be unlocked: its writer holds a lock on it as long as it lives.
    """
    if fcntl is None or is_remote(path):
        return []
    head, tail = os.path.split(os.path.abspath(path.rstrip("/")))
    pattern = re.compile(re.escape(_temporary_stem(tail)) + rf"[0-9a-f]{{{_RANDOM_HEX}}}\.tmp")
    removed = []
    try:
        entries = list(os.scandir(head))
    except OSError:
        return []
    for entry in entries:
        if pattern.fullmatch(entry.name) and _remove_if_stale(entry.path):
            removed.append(entry.name)
    return removed


def _remove_if_stale(candidate: str) -> bool:
    assert fcntl is not None
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(candidate, flags)
    except OSError:
        return False
    try:
        info = os.fstat(fd)
        is_dir = stat.S_ISDIR(info.st_mode)
        if not (stat.S_ISREG(info.st_mode) or is_dir) or info.st_uid != os.geteuid():
            return False
        if time.time() - info.st_mtime < _SWEEP_MIN_AGE_SECONDS:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False  # a live writer holds it
        if is_dir:
            shutil.rmtree(candidate, ignore_errors=True)
        else:
            os.unlink(candidate)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- writing


def write_atomic(path: str, write: Callable[[IO[bytes]], None]) -> None:
    """Call ``write(file)`` on a temporary file, then move it onto ``path``.

    If ``write`` (or anything before the move) fails, nothing is left behind and
    ``path`` is as it was.
    """
    if is_remote(path):
        check_scheme(path)
        _write_remote(path, write)
    else:
        _write_local(path, write)


def _open_unnamed(directory: str) -> int | None:
    """A file in ``directory`` that has no name yet, or None where the OS has none."""
    flag = getattr(os, "O_TMPFILE", None)
    if flag is None or not os.path.isdir("/proc/self/fd"):
        return None
    try:
        # os.open applies the umask, so the bundle gets the mode a plain open() would.
        return os.open(directory, flag | os.O_WRONLY, 0o666)
    except OSError as exc:
        if exc.errno in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOENT):
            return None  # the file system has no unnamed files
        raise


def _write_local(path: str, write: Callable[[IO[bytes]], None]) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    sweep_stale(path)
    fd = _open_unnamed(directory)
    temporary = None
    if fd is None:
        temporary = temporary_sibling(path)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
        fd = os.open(temporary, flags, 0o666)
    try:
        _lock(fd)
        with os.fdopen(fd, "wb", closefd=False) as out:
            write(out)
            out.flush()
            os.fsync(out.fileno())
        if temporary is None:
            _link_into_place(fd, path)
        else:
            os.replace(temporary, path)
            temporary = None
    except BaseException:
        if temporary is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
        raise
    finally:
        os.close(fd)
    _fsync_directory(directory)


def move_into_place(finished: str, path: str) -> None:
    """Rename the complete, fsynced local file ``finished`` onto ``path`` and make it durable.

    ``finished`` lies in a locked temporary directory next to ``path`` (so a
    crash before this leaves debris ``sweep_stale`` removes, and ``path`` as it was).
    """
    os.replace(finished, path)
    _fsync_directory(os.path.dirname(os.path.abspath(path)))


def _link_into_place(fd: int, path: str) -> None:
    """Give the unnamed file ``fd`` the name ``path``, replacing any file there."""
    # linkat(AT_SYMLINK_FOLLOW) on /proc/self/fd/N names the open file itself. os.link
    # calls plain link() (which links the symlink) unless a directory fd is given.
    proc = os.open("/proc/self/fd", os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:

        def link(name: str) -> None:
            os.link(str(fd), name, src_dir_fd=proc, follow_symlinks=True)

        try:
            link(path)  # no file there yet: it appears complete, under its name
            return
        except FileExistsError:
            pass
        # linkat cannot replace: link under a temporary name (locked through fd), rename.
        temporary = temporary_sibling(path)
        link(temporary)
        try:
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise
    finally:
        os.close(proc)


def _fsync_directory(directory: str) -> None:
    """Make the rename itself durable; not every platform can open a directory."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_remote(path: str, write: Callable[[IO[bytes]], None]) -> None:
    import io

    import tensorflow as tf

    buffer = io.BytesIO()
    write(buffer)
    temporary = temporary_sibling(path)
    try:
        with tf.io.gfile.GFile(temporary, "wb") as out:
            out.write(buffer.getvalue())
        tf.io.gfile.rename(temporary, path, overwrite=True)
    except BaseException:
        with contextlib.suppress(Exception):
            if tf.io.gfile.exists(temporary):
                tf.io.gfile.remove(temporary)
        raise


@contextlib.contextmanager
def temporary_directory_for(path: str) -> Iterator[str]:
    """A name next to ``path`` for a directory to build; on success it is renamed onto ``path``.

    The name does not exist yet (a SavedModel builder insists on making it).
    ``path`` must not exist (or be an empty local directory). On failure what
    was built is deleted. Locally the name lies inside a locked temporary
    directory, so the debris of a killed build is swept by the next build of
    the same ``path``.
    """
    if is_remote(path):
        check_scheme(path)
        with _remote_directory_for(path) as building:
            yield building
        return
    sweep_stale(path)
    holder = temporary_sibling(path)
    os.mkdir(holder)
    fd = os.open(holder, os.O_RDONLY)
    try:
        _lock(fd)
        building = os.path.join(holder, "building")
        yield building
        os.replace(building, path.rstrip("/"))
    finally:
        shutil.rmtree(holder, ignore_errors=True)
        os.close(fd)
    _fsync_directory(os.path.dirname(os.path.abspath(path.rstrip("/"))))


@contextlib.contextmanager
def _remote_directory_for(path: str) -> Iterator[str]:
    """Build under a temporary name, then copy into ``path`` with top-level files last.

    File systems behind a scheme may not rename directories (``ram://`` moves
    none of their files), so the tree is copied. A SavedModel is found by its
    top-level ``saved_model.pb``; it is written last, so an interrupted copy
    is never a loadable model.
    """
    import tensorflow as tf

    temporary = temporary_sibling(path)
    target = path.rstrip("/")
    try:
        yield temporary
        tf.io.gfile.makedirs(target)
        top_files = []
        for directory, _, files in tf.io.gfile.walk(temporary):
            relative = directory[len(temporary) :].lstrip("/")
            for name in files:
                pair = (
                    f"{directory.rstrip('/')}/{name}",
                    "/".join(p for p in (target, relative, name) if p),
                )
                if relative:
                    tf.io.gfile.makedirs(f"{target}/{relative}")
                    tf.io.gfile.copy(*pair, overwrite=False)
                else:
                    top_files.append(pair)
        for source, destination in top_files:
            tf.io.gfile.copy(source, destination, overwrite=False)
    finally:
        with contextlib.suppress(Exception):
            if tf.io.gfile.exists(temporary):
                tf.io.gfile.rmtree(temporary)
