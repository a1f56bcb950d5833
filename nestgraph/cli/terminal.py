"""Terminal plumbing: progress lines, TensorFlow's native log lines held back, tables.

Shared by the command line and the examples, so both print only their own
output on a machine without a GPU. TensorFlow's C++ side writes its start-up
chatter (absl pre-init warnings, oneDNN notices, ``cuInit`` errors) straight to
file descriptor 2 during ``import tensorflow`` and the first device probe,
whatever Python's logging is set to; ``quiet_tensorflow`` holds that back and
replays it only when the import itself fails. ``--debug`` (the command line) or
``NESTGRAPH_DEBUG=1`` (the examples) shows everything.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from typing import Any, TextIO

from nestgraph._table import format_table
from nestgraph.errors import NestgraphError

__all__ = [
    "DEBUG_ENVIRONMENT",
    "debug_requested",
    "native_stderr_held",
    "print_table",
    "progress",
    "quiet_tensorflow",
    "tensorflow_work",
]

#: Set to 1 to see TensorFlow's native log lines in the examples.
DEBUG_ENVIRONMENT = "NESTGRAPH_DEBUG"


def debug_requested() -> bool:
    """Whether ``NESTGRAPH_DEBUG`` asks for everything TensorFlow prints."""
    return os.environ.get(DEBUG_ENVIRONMENT, "").strip().lower() not in ("", "0", "false", "no")


def _ellipsis(stream: TextIO) -> str:
    encoding = (getattr(stream, "encoding", None) or "").lower().replace("-", "")
    return "…" if encoding == "utf8" else "..."


@contextlib.contextmanager
def progress(label: str, stream: TextIO | None = None) -> Iterator[None]:
    """Report ``label... done in 1.2 s`` on ``stream`` (stderr), only when it is a terminal.

    Piped or redirected output stays clean, so scripts see only results.

    >>> import io
    >>> with progress("loading", io.StringIO()):  # not a terminal: prints nothing
    ...     pass
    """
    out = sys.stderr if stream is None else stream
    isatty = getattr(out, "isatty", None)
    if not (callable(isatty) and isatty()):
        yield
        return
    out.write(f"{label}{_ellipsis(out)} ")
    out.flush()
    start = time.perf_counter()
    try:
        yield
    except BaseException:
        out.write("failed\n")
        out.flush()
        raise
    out.write(f"done in {time.perf_counter() - start:.1f} s\n")
    out.flush()


@contextlib.contextmanager
def native_stderr_held() -> Iterator[None]:
    """Hold back what is written to file descriptor 2 inside the block.

    The held-back text is replayed if the block fails unexpectedly, so nothing
    needed to understand a crash is lost; a ``NestgraphError`` is reported in one
    line by the caller, where the log lines would only be noise. Python's own
    ``sys.stderr`` writes inside the block are held too (they go to fd 2).
    """
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real fd 2 (an embedded interpreter): nothing to hold
        yield
        return
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        replay = True
        try:
            yield
            replay = False
        except NestgraphError:
            replay = False
            raise
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            if replay:
                held.seek(0)
                sys.stderr.write(held.read().decode("utf-8", "replace"))
                sys.stderr.flush()


@contextlib.contextmanager
def tensorflow_work(label: str, debug: bool) -> Iterator[None]:
    """A slow TensorFlow step: progress on a terminal, native log lines held back."""
    quiet = contextlib.nullcontext() if debug else native_stderr_held()
    with progress(label), quiet:
        yield


def quiet_tensorflow(debug: bool | None = None) -> Any:
    """Import TensorFlow (once) without its start-up chatter, unless ``debug``; return it.

    ``debug=None`` reads ``NESTGRAPH_DEBUG``. The import and the first device
    probe (where ``cuInit`` complains on a machine without a GPU) run with fd 2
    held back; TensorFlow's Python logger is set to ERROR, so real errors and
    warnings of one's own code still show.
    """
    if debug is None:
        debug = debug_requested()
    if "tensorflow" not in sys.modules:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        with tensorflow_work("loading TensorFlow", debug):
            import tensorflow

            # The device probe logs once per process; done here, inside the hold.
            tensorflow.config.list_physical_devices()
    tf: Any = sys.modules["tensorflow"]
    if not debug:
        tf.get_logger().setLevel("ERROR")
    return tf


def print_table(
    rows: Sequence[Sequence[str]],
    stream: TextIO | None = None,
    *,
    right: frozenset[int] = frozenset(),
) -> None:
    """Print ``rows`` as aligned columns (see ``nestgraph._table.format_table``)."""
    out = sys.stdout if stream is None else stream
    for line in format_table(rows, right=right):
        print(line, file=out)
