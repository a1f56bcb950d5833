"""Looking at bundle files without loading them: sniff, read the spec, read the graph.

Nothing here reads or hashes the checkpoint (the bulk of a bundle), restores a
weight or creates a session; the manifest and the member list are still fully
verified. ``is_bundle`` and ``read_spec`` do not import TensorFlow;
``read_meta_graph`` parses the protobuf (TensorFlow's proto modules import
TensorFlow), and only ``import_graph`` builds a ``tf.Graph``.

One device policy for every graph imported to be looked at (``ng.check``
against a bundle, the command line, ``ng.summary``): devices are cleared
(``CLEAR_DEVICES``), so a graph saved on a cluster (``/job:worker/task:3``) or
a GPU machine imports the same everywhere. Loading to run (``ng.load``) keeps
them unless asked otherwise.
"""

from __future__ import annotations

import io
import os
from typing import IO, Any

from nestgraph._atomic import is_remote, not_regular
from nestgraph.bundle._container import GRAPH, SPEC, BundleContents, unpack
from nestgraph.errors import BundleError, NestgraphError
from nestgraph.spec import Spec

__all__ = ["CLEAR_DEVICES", "import_graph", "is_bundle", "read_meta_graph", "read_spec"]

#: Whether a graph imported for inspection loses its device placements.
CLEAR_DEVICES = True

Source = str | os.PathLike[str] | bytes | bytearray | memoryview

# A zip's local-file header, and the end-of-archive record an empty zip starts with.
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
_BYTES = "<bytes>"
_NOT_A_META_GRAPH = (
    "not a MetaGraphDef (neither a binary nor a text protobuf); expected a .meta file "
    "written by tf.compat.v1.train.export_meta_graph or Saver.save, or a bundle"
)


def _name(source: Source) -> str:
    return _BYTES if isinstance(source, (bytes, bytearray, memoryview)) else os.fspath(source)


def _read(source: Source, size: int | None = None) -> bytes:
    """The bytes of ``source`` (all, or the first ``size``), as ``BundleError`` on failure."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        return data if size is None else data[:size]
    file = os.fspath(source)
    if is_remote(file):
        import tensorflow as tf

        try:
            with tf.io.gfile.GFile(file, "rb") as remote:
                return bytes(remote.read(-1 if size is None else size))
        except tf.errors.NotFoundError:
            raise BundleError("no such file", file=file) from None
        except tf.errors.OpError as exc:
            raise BundleError(f"cannot read: {exc.message}", file=file) from None
    with open_local(file) as local:
        return local.read() if size is None else local.read(size)


def open_local(file: str, error: type[NestgraphError] = BundleError) -> IO[bytes]:
    """The local ``file`` opened for reading, or ``error(message, file=file)`` saying why not.

    Only a regular file is opened: a FIFO would block the open and ``/dev/zero``
    never ends, so both are refused by ``stat`` first.
    """
    irregular = not_regular(file)
    if irregular is not None:
        raise error(f"is {irregular}, not a file", file=file)
    try:
        return open(file, "rb")
    except FileNotFoundError:
        raise error("no such file", file=file) from None
    except IsADirectoryError:
        raise error("is a directory, not a file", file=file) from None
    except OSError as exc:
        message = f"cannot read: {exc.strerror or exc}"
        raise error(message, file=file) from None


def is_bundle(source: Source) -> bool:
    """Whether ``source`` (a path, or bytes: the whole file or its start) holds a bundle.

    Told by content (a zip archive), never by the file name; the bundle is not verified.

    >>> is_bundle(b"nestgraph: 1\\nroot: null\\n")
    False
    """
    return _read(source, 4)[:4] in _ZIP_MAGIC


def _contents(source: Source) -> tuple[str, BundleContents]:
    file = _name(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return file, unpack(io.BytesIO(bytes(source)), file, checkpoint=False)
    if is_remote(file):
        return file, unpack(io.BytesIO(_read(source)), file, checkpoint=False)
    with open_local(file) as stream:
        return file, unpack(stream, file, checkpoint=False)


def read_spec(source: Source) -> Spec:
    """The spec inside the bundle ``source`` (a path or the bundle's bytes).

    Raises:
      BundleError: not a bundle, or a truncated or corrupt one.
      SpecError: the spec inside it is malformed (named ``FILE:spec.yaml``).
    """
    file, contents = _contents(source)
    return Spec.from_yaml(contents.spec, source=f"{file}:{SPEC}")


def read_meta_graph(source: Source) -> Any:
    """The ``MetaGraphDef`` proto of a bundle, or of a ``.meta`` file (binary or text).

    The graph is parsed, not imported: no ``tf.Graph`` is built.

    Raises:
      BundleError: the file cannot be read, is a damaged bundle, is not a
        MetaGraphDef, or holds no graph.
    """
    from google.protobuf import text_format
    from google.protobuf.message import DecodeError
    from tensorflow.core.protobuf import meta_graph_pb2

    if is_bundle(source):
        # Only graph.pb is read from the zip: never the whole file, never the checkpoint.
        file, contents = _contents(source)
        data, file = contents.graph, f"{file}:{GRAPH}"
    else:
        data, file = _read(source), _name(source)
    meta_graph = meta_graph_pb2.MetaGraphDef()
    try:
        meta_graph.ParseFromString(data)
    except DecodeError:
        try:
            text_format.Parse(data.decode("utf-8"), meta_graph)
        except (UnicodeDecodeError, text_format.ParseError):
            raise BundleError(_NOT_A_META_GRAPH, file=file) from None
    if not meta_graph.graph_def.node:
        raise BundleError("the MetaGraphDef holds no graph (no nodes)", file=file)
    return meta_graph


def import_graph(source: Source | Any, *, clear_devices: bool = CLEAR_DEVICES) -> Any:
    """A new ``tf.Graph`` holding the graph of a bundle, a ``.meta`` file or a MetaGraphDef.

    For looking at, not running: no weights are restored and no session is made.
    Devices are cleared unless ``clear_devices=False`` (see ``CLEAR_DEVICES``).

    Raises:
      BundleError: as ``read_meta_graph``, or the graph does not import.
    """
    import tensorflow as tf

    if isinstance(source, (str, os.PathLike, bytes, bytearray, memoryview)):
        file = _name(source)
        meta_graph = read_meta_graph(source)
    else:
        # TensorFlow clears the devices of the proto it is given, in place: keep the caller's.
        file, meta_graph = "<MetaGraphDef>", type(source)()
        meta_graph.CopyFrom(source)
    graph = tf.Graph()
    try:
        with graph.as_default():
            tf.compat.v1.train.import_meta_graph(meta_graph, clear_devices=clear_devices)
    except (ValueError, TypeError, KeyError, tf.errors.OpError) as exc:
        raise BundleError(f"cannot import the graph: {exc}", file=file) from None
    return graph
