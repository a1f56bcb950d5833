"""Bundles: a model's graph, weights and spec in one file, and back.

A bundle is an uncompressed zip (see ``_container``) holding the graph as a
``MetaGraphDef`` (with its ``saver_def`` and collections), a TensorFlow
checkpoint of the variables, and the nestgraph spec. ``save`` / ``dumps`` and
``load`` / ``loads`` share one code path; ``dumps`` returns exactly the bytes
``save`` writes, and neither ``dumps`` nor ``loads`` touches the local disk
(the checkpoint passes through TensorFlow's ``ram://`` file system).

``load(path, subtree="towers.7")`` prunes the graph to what that sub-network
needs before importing it and restores only its variables, so the cost grows
with the sub-network, not with the model.

Plain TensorFlow can read a bundle too: unzip it, then::

    saver = tf.compat.v1.train.import_meta_graph("graph.pb")
    saver.restore(session, "checkpoint/model")
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterable, Mapping
from typing import IO, Any

import tensorflow as tf
from google.protobuf.message import DecodeError
from tensorflow.core.protobuf import meta_graph_pb2

from nestgraph import _atomic
from nestgraph.binding import check, from_graph
from nestgraph.bundle import _checkpoint, _metagraph, _scan
from nestgraph.bundle._container import BundleContents, check_regular, pack, unpack
from nestgraph.convertible import to_graph
from nestgraph.errors import BindingError, BundleError, SpecError
from nestgraph.nodes import Leaf
from nestgraph.spec import Spec

try:  # Logged once per API, not per call; the caller asked for the TF1 behaviour.
    from tensorflow.python.util.deprecation import silence as _quiet_deprecations
except ImportError:  # pragma: no cover
    _quiet_deprecations = contextlib.nullcontext

try:  # Imports a MetaGraphDef without the default Saver import_meta_graph would add.
    from tensorflow.python.framework.meta_graph import (
        import_scoped_meta_graph as _import_scoped_meta_graph,
    )
except ImportError:  # pragma: no cover - fallback for a future TensorFlow
    _import_scoped_meta_graph = None

__all__ = ["dumps", "export", "export_saved_model", "load", "loads", "save"]

tf1 = tf.compat.v1

PathOrFile = str | os.PathLike[str] | IO[bytes]

_BYTES_SOURCE = "<bytes>"
_SERVING_SIGNATURE = "serving_default"


# --------------------------------------------------------------------------- public API


def save(model: Any, session: Any, path: PathOrFile, *, spec: Spec | None = None) -> None:
    """Write ``model``'s graph, its variables' values in ``session`` and its spec to ``path``.

    The write is atomic: a temporary file next to ``path`` is written, fsynced
    and renamed over it, so a crash leaves the previous bundle intact. Paths
    with a scheme (``gs://``, ``ram://``) go through ``tf.io.gfile``. ``path``
    may also be a binary file object, written as is.

    Args:
      model: the model object (walked with ``ng.to_graph``).
      session: the ``tf.compat.v1.Session`` holding the variables' values.
      path: where to write.
      spec: use this spec instead of walking ``model``.

    The first save of a graph adds one sharded ``Saver`` to it (reused by later
    saves while the set of variables stays the same). The stored MetaGraphDef
    carries that saver's ``saver_def``, so ``tf.compat.v1.train.import_meta_graph``
    plus ``Saver.restore`` read a bundle without nestgraph.
    """
    contents = _capture(session, _spec_of(model, spec))
    _write(path, contents)


def dumps(model: Any, session: Any, *, spec: Spec | None = None) -> bytes:
    """The bundle ``save`` would write, as bytes; nothing is written to disk."""
    buffer = io.BytesIO()
    _pack(_capture(session, _spec_of(model, spec)), buffer)
    return buffer.getvalue()


def load(
    path: PathOrFile,
    subtree: str | None = None,
    allow: str | Iterable[str] | None = None,
    generic: bool = False,
    config: Any = None,
    trusted: bool = False,
) -> tuple[Any, Any]:
    """Read a bundle into a new graph and session; return ``(model, session)``.

    Args:
      path: the bundle (a local path, a ``scheme://`` path or a binary file object).
      subtree: dotted path of a sub-network (``"towers.7"``): only the ops and
        variables it needs are imported and restored, and only it is returned.
      allow, generic: the class-path policy, as for ``ng.from_graph``.
      config: the ``ConfigProto`` for the new session; by default soft placement
        is allowed, so a graph saved with devices this machine lacks still loads.
      trusted: load even if bound fields reach ops that act outside the session
        (files, network, Python callbacks, ...: see ``ng.scan``); by default such
        a bundle is refused before anything of it is imported.

    The graph is ``session.graph`` (it is not made the default graph). Train ops,
    optimizer slots and the global step come back with a full load, so training
    continues where it stopped.

    Raises:
      BundleError: the bundle is missing, truncated, corrupt or of a newer version.
      BindingError, ClassNotAllowedError, SpecError: as ``ng.from_graph``.
      Nothing is left half-built: on any error no session stays open.
    """
    file, contents = _read(path)
    return _open(contents, file, subtree, allow, generic, config, trusted)


def loads(
    data: bytes,
    subtree: str | None = None,
    allow: str | Iterable[str] | None = None,
    generic: bool = False,
    config: Any = None,
    trusted: bool = False,
) -> tuple[Any, Any]:
    """``load`` from the bytes ``dumps`` returned; nothing touches the local disk."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"loads takes bytes, not {type(data).__name__}")
    contents = unpack(io.BytesIO(bytes(data)), _BYTES_SOURCE)
    return _open(contents, _BYTES_SOURCE, subtree, allow, generic, config, trusted)


def export(
    model: Any,
    session: Any,
    path: PathOrFile,
    subtree: str | None = None,
    freeze: bool = False,
    *,
    spec: Spec | None = None,
) -> None:
    """Write a standalone bundle of one sub-network (``ng.load(path)`` returns it).

    The bundle holds only the ops the sub-network needs, a checkpoint of only
    its variables, and its spec re-rooted (``spec.subtree(subtree)``). Nothing
    is added to ``session.graph``.

    Args:
      subtree: dotted path of the sub-network; None exports what the whole spec binds.
      freeze: replace the variables by constants holding their current values
        (``convert_variables_to_constants``); the spec's variable bindings become
        tensor bindings and the bundle has no checkpoint.
    """
    full_spec = _spec_of(model, spec)
    sub_spec = full_spec.subtree(subtree) if subtree is not None else full_spec
    _write(path, _extract(session, sub_spec, freeze))


def export_saved_model(
    model: Any,
    session: Any,
    export_dir: str | os.PathLike[str],
    inputs: Mapping[str, str],
    outputs: Mapping[str, str],
    *,
    spec: Spec | None = None,
) -> None:
    """Write a SavedModel with one ``serving_default`` signature.

    ``inputs`` and ``outputs`` map signature names to dotted spec paths of tensor
    bindings (``"towers.0.out"``) or to plain graph tensor names (``"x:0"``).
    TensorFlow 2 serves it as
    ``tf.saved_model.load(export_dir).signatures["serving_default"](x=...)``.

    The directory is built next to ``export_dir`` and renamed into place, so it
    appears complete or not at all; ``export_dir`` must not exist yet (an empty
    directory is fine).
    """
    model_spec = _spec_of(model, spec)
    graph = session.graph
    signature_inputs = _signature_tensors(model_spec, graph, inputs, "input")
    signature_outputs = _signature_tensors(model_spec, graph, outputs, "output")
    target = os.fspath(export_dir)
    _refuse_existing_directory(target)
    signature = meta_graph_pb2.SignatureDef(
        method_name=tf1.saved_model.signature_constants.PREDICT_METHOD_NAME
    )
    for key, tensor in signature_inputs.items():
        signature.inputs[key].CopyFrom(_tensor_info(tensor))
    for key, tensor in signature_outputs.items():
        signature.outputs[key].CopyFrom(_tensor_info(tensor))
    saver = _checkpoint.saver_for(graph)
    with _atomic.temporary_directory_for(target) as building, graph.as_default():
        builder = tf1.saved_model.Builder(building)
        builder.add_meta_graph_and_variables(
            session,
            [tf1.saved_model.tag_constants.SERVING],
            signature_def_map={_SERVING_SIGNATURE: signature},
            saver=saver,
            strip_default_attrs=True,
        )
        builder.save()


def _tensor_info(tensor: Any) -> Any:
    return meta_graph_pb2.TensorInfo(
        name=tensor.name,
        dtype=tensor.dtype.as_datatype_enum,
        tensor_shape=tensor.shape.as_proto(),
    )


# --------------------------------------------------------------------------- writing


def _spec_of(model: Any, spec: Spec | None) -> Spec:
    if spec is not None:
        if not isinstance(spec, Spec):
            raise TypeError(f"spec must be an ng.Spec, not {type(spec).__name__}")
        return spec
    return to_graph(model)


def _check_bound(spec: Spec, graph: Any) -> None:
    """Refuse to write a bundle whose spec names something the graph lacks."""
    report = check(spec, graph)
    if not report.ok:
        raise BindingError(problems=report.problems)


def _capture(session: Any, spec: Spec) -> BundleContents:
    """The parts of a bundle of ``session.graph`` with its current variable values."""
    graph = session.graph
    _check_bound(spec, graph)
    saver = _checkpoint.saver_for(graph)
    saver_def = saver.as_saver_def() if saver is not None else None
    checkpoint = _checkpoint.save(session, saver) if saver is not None else {}
    # Graph-mode APIs refuse to run under TF2's eager default: enter the graph.
    with graph.as_default():
        meta_graph = tf1.train.export_meta_graph(
            graph=graph, saver_def=saver_def, clear_devices=False
        )
    return BundleContents(
        graph=meta_graph.SerializeToString(deterministic=True),
        spec=spec.to_yaml().encode("utf-8"),
        checkpoint=checkpoint,
        checkpoint_prefix=_checkpoint.CHECKPOINT_PREFIX if checkpoint else None,
    )


def _versions() -> dict[str, str]:
    from nestgraph import __version__

    return {"nestgraph": __version__, "tensorflow": tf.__version__}


def _pack(contents: BundleContents, out: IO[bytes]) -> None:
    pack(contents, out, _versions())


def _write(path: PathOrFile, contents: BundleContents) -> None:
    if isinstance(path, (str, os.PathLike)):
        _atomic.write_atomic(os.fspath(path), lambda out: _pack(contents, out))
    else:
        _pack(contents, path)


def _extract(session: Any, spec: Spec, freeze: bool) -> BundleContents:
    """The parts of a standalone bundle of what ``spec`` binds in ``session.graph``."""
    graph = session.graph
    _check_bound(spec, graph)
    with graph.as_default():
        full = tf1.train.export_meta_graph(graph=graph, clear_devices=False)
    seeds = [binding.name for binding in spec.bindings()]
    pruned = _metagraph.prune_meta_graph(full, seeds)
    part = tf.Graph()
    with part.as_default():
        _import_pruned(pruned)
    part_variables = part.get_collection(tf1.GraphKeys.GLOBAL_VARIABLES)
    # Fetching a tf.Variable reads its existing snapshot: no op is added to the user's graph.
    by_name = {v.name: v for v in graph.get_collection(tf1.GraphKeys.GLOBAL_VARIABLES)}
    values = session.run([by_name[v.name] for v in part_variables])
    with tf1.Session(graph=part, config=tf1.ConfigProto(allow_soft_placement=True)) as copy:
        if part_variables:
            # Feeding the initial value copies a value in without adding assign ops.
            copy.run(
                [v.initializer for v in part_variables],
                feed_dict={
                    v.initializer.inputs[1]: x for v, x in zip(part_variables, values, strict=True)
                },
            )
        if not freeze:
            return _capture(copy, spec)
        with _quiet_deprecations():
            frozen_graph_def = tf1.graph_util.convert_variables_to_constants(
                copy,
                part.as_graph_def(),
                sorted({_metagraph.node_name(name) for name in seeds}),
            )
    frozen = _metagraph.replace_graph_def(pruned, frozen_graph_def)
    frozen_spec = spec.map_bindings(
        lambda kind, name: ("tensor", name) if kind == "variable" else (kind, name)
    )
    return BundleContents(
        graph=frozen.SerializeToString(deterministic=True),
        spec=frozen_spec.to_yaml().encode("utf-8"),
    )


def _signature_tensors(
    spec: Spec, graph: Any, mapping: Mapping[str, str], role: str
) -> dict[str, Any]:
    tensors = {}
    for key, reference in mapping.items():
        name = reference
        try:
            _, node = spec.resolve(reference)
        except SpecError:
            if ":" not in reference:
                raise BindingError(
                    f"signature {role} {key!r}: {reference!r} is neither a path in the spec "
                    "nor a graph tensor name ('scope/op:0')",
                    path=reference,
                ) from None
        else:
            if not isinstance(node, Leaf) or node.kind != "tensor":
                what = f"a {node.kind} binding" if isinstance(node, Leaf) else "not a binding"
                raise BindingError(
                    f"signature {role} {key!r} must name a tensor binding; this is {what}",
                    path=reference,
                )
            name = node.names[0]
        try:
            tensors[key] = graph.get_tensor_by_name(name)
        except (KeyError, ValueError) as exc:
            raise BindingError(
                f"signature {role} {key!r}: no tensor {name!r} in the graph ({exc})",
                path=reference,
            ) from None
    return tensors


def _refuse_existing_directory(path: str) -> None:
    _atomic.check_scheme(path)
    if _atomic.is_remote(path):
        exists = tf.io.gfile.exists(path) and bool(tf.io.gfile.listdir(path))
    else:
        exists = os.path.exists(path) and (not os.path.isdir(path) or bool(os.listdir(path)))
    if exists:
        raise BundleError("already exists; remove it or choose another export_dir", file=path)


# --------------------------------------------------------------------------- reading


def _read(path: PathOrFile) -> tuple[str, BundleContents]:
    if isinstance(path, (bytes, bytearray, memoryview)):
        raise TypeError("load takes a path or a binary file; pass bytes to loads")
    if not isinstance(path, (str, os.PathLike)):
        file = str(getattr(path, "name", "<stream>"))
        return file, unpack(path, file)
    file = os.fspath(path)
    if _atomic.is_remote(file):
        try:
            with tf.io.gfile.GFile(file, "rb") as f:
                data = f.read()
        except tf.errors.NotFoundError:
            raise BundleError("no such bundle", file=file) from None
        except tf.errors.OpError as exc:
            raise BundleError(f"cannot read: {exc.message}", file=file) from None
        return file, unpack(io.BytesIO(data), file)
    check_regular(file)  # before open: a FIFO would block it
    try:
        stream = open(file, "rb")  # noqa: SIM115 - closed below, after the zip is read
    except FileNotFoundError:
        raise BundleError("no such bundle", file=file) from None
    except IsADirectoryError:
        raise BundleError("is a directory, not a bundle file", file=file) from None
    except OSError as exc:
        raise BundleError(f"cannot read: {exc.strerror or exc}", file=file) from None
    with stream:
        return file, unpack(stream, file)


def _parse(contents: BundleContents, file: str) -> tuple[Spec, Any]:
    spec = Spec.from_yaml(contents.spec, source=f"{file}:spec.yaml")
    meta_graph = meta_graph_pb2.MetaGraphDef()
    try:
        meta_graph.ParseFromString(contents.graph)
    except DecodeError as exc:
        raise BundleError(f"graph.pb is not a MetaGraphDef: {exc}", file=file) from None
    return spec, meta_graph


def _import_pruned(meta_graph: Any) -> None:
    """Import into the default graph without creating a Saver."""
    if _import_scoped_meta_graph is not None:
        _import_scoped_meta_graph(meta_graph)
    else:  # pragma: no cover
        tf1.train.import_meta_graph(meta_graph)


def _open(
    contents: BundleContents,
    file: str,
    subtree: str | None,
    allow: str | Iterable[str] | None,
    generic: bool,
    config: Any,
    trusted: bool = False,
) -> tuple[Any, Any]:
    spec, meta_graph = _parse(contents, file)
    if not trusted:
        _scan.refuse_untrusted(meta_graph, spec, subtree, file)
    if subtree is not None:
        seeds = [binding.name for binding in spec.subtree(subtree).bindings()]
        meta_graph = _metagraph.prune_meta_graph(meta_graph, seeds)
    graph = tf.Graph()
    try:
        with graph.as_default():
            if meta_graph.HasField("saver_def"):
                saver = tf1.train.import_meta_graph(meta_graph, clear_devices=False)
            else:
                _import_pruned(meta_graph)
                saver = None
    except (ValueError, TypeError, KeyError, DecodeError, tf.errors.OpError) as exc:
        raise BundleError(f"cannot import graph.pb: {exc}", file=file) from None
    # Validate every name and class before any work that a failure would waste.
    model = from_graph(spec, graph, subtree=subtree, allow=allow, generic=generic)
    session = tf1.Session(graph=graph, config=config or _default_config())
    try:
        _restore(session, saver, contents, file)
    except BaseException:
        session.close()
        raise
    return model, session


def _default_config() -> Any:
    return tf1.ConfigProto(allow_soft_placement=True)


def _restore(session: Any, saver: Any, contents: BundleContents, file: str) -> None:
    graph = session.graph
    prefix = contents.checkpoint_prefix
    variables = graph.get_collection(tf1.GraphKeys.GLOBAL_VARIABLES)
    if prefix is None:
        if variables:
            names = ", ".join(v.op.name for v in variables[:5])
            raise BundleError(f"the graph has variables ({names}) but no checkpoint", file=file)
    else:
        with (
            _checkpoint.materialized(contents.checkpoint, prefix) as checkpoint,
            graph.as_default(),
        ):
            try:
                # Checked first: TensorFlow's own message for this is a page long.
                _checkpoint.check_restorable(variables, _checkpoint.checkpoint_keys(checkpoint))
                if saver is None:
                    saver = _checkpoint.restore_saver_for(variables)
                saver.restore(session, checkpoint)
            except BundleError as exc:
                raise BundleError(exc.message, file=file) from None
            except (
                ValueError,
                TypeError,
                IndexError,
                KeyError,
                MemoryError,  # a damaged index can claim sizes the reader cannot allocate
                tf.errors.OpError,
            ) as exc:
                message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
                raise BundleError(f"cannot restore the checkpoint: {message}", file=file) from None
        _checkpoint.remember_saver(graph, saver.as_saver_def())
    local_variables = graph.get_collection(tf1.GraphKeys.LOCAL_VARIABLES)
    if local_variables:
        # Not saved by a Saver (metrics, counters): start them from their initializers.
        session.run([v.initializer for v in local_variables])
