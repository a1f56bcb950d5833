"""Writing bundles: ``save``, ``dumps``, ``export`` and ``export_saved_model``.

A bundle is an uncompressed zip (see ``_container``) holding the graph as a
``MetaGraphDef`` (with its ``saver_def`` and collections), a TensorFlow
checkpoint of the variables, and the nestgraph spec. ``save`` and ``dumps``
share one code path, so ``dumps`` returns exactly the bytes ``save`` writes.

The checkpoint is never held whole in memory: ``Saver.save`` writes it to a
staging directory (beside the target for a local file, ``ram://`` otherwise).
On a local disk its largest data shard becomes the bundle file in place
(``_zerocopy``); elsewhere ``_zipstream.pack_streamed`` copies it into the zip
a chunk at a time. Both write the same bytes.

Plain TensorFlow can read a bundle too: unzip it, then::

    saver = tf.compat.v1.train.import_meta_graph("graph.pb")
    saver.restore(session, "checkpoint/model")
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from collections.abc import Iterator, Mapping
from typing import IO, Any

import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2

from nestgraph import _atomic
from nestgraph.binding import check
from nestgraph.bundle import _checkpoint, _devices, _metagraph, _remote, _runcheck, _zerocopy
from nestgraph.bundle._container import GRAPH, SPEC
from nestgraph.bundle._freeze import repair_function_reads, without_updates
from nestgraph.bundle._savespec import _array_members, _spec_of
from nestgraph.bundle._sessions import raw_session
from nestgraph.bundle._subnetindex import build_index
from nestgraph.bundle._zipstream import pack_streamed
from nestgraph.convertible import SkippedFieldsWarning
from nestgraph.errors import BindingError, BundleError, SpecError, WalkError
from nestgraph.nodes import describe
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

__all__ = ["dumps", "export", "export_saved_model", "import_graph", "save"]

tf1 = tf.compat.v1

PathOrFile = str | os.PathLike[str] | IO[bytes]

_SERVING_SIGNATURE = "serving_default"
_BINDING_KINDS = frozenset({"variable", "op", "sparse"})


# --------------------------------------------------------------------------- public API


def save(model: Any, session: Any, path: PathOrFile, *, spec: Spec | None = None) -> None:
    """Write ``model``'s graph, its variables' values in ``session`` and its spec to ``path``.

    The write is atomic: a temporary file next to ``path`` is written, fsynced
    and renamed over it, so a crash leaves the previous bundle intact. Paths
    with a scheme (``gs://``, ``ram://``) go through ``tf.io.gfile``. ``path``
    may also be a binary file object, written as is.

    Args:
      model: the model object (walked with ``ng.to_graph``).
      session: the ``tf.compat.v1.Session`` holding the variables' values, or a
        wrapper of one (``MonitoredSession``, ``MonitoredTrainingSession``).
      path: where to write.
      spec: use this spec instead of walking ``model``.

    The first save of a graph adds one sharded ``Saver`` to it (reused by later
    saves while the set of variables stays the same). The stored MetaGraphDef
    carries that saver's ``saver_def``, so ``tf.compat.v1.train.import_meta_graph``
    plus ``Saver.restore`` read a bundle without nestgraph.
    """
    _check_destination(path)
    _save_checked(session, path, _spec_of(model, spec, session))


def _save_checked(session: Any, path: PathOrFile, spec: Spec) -> None:
    """``save`` of an already checked spec (``BundleSaverHook`` walks its model once)."""
    session = raw_session(session)
    graph_bytes, spec_bytes, saver, members = _prepare(session, spec)
    _write(path, graph_bytes, spec_bytes, session, saver, members)


def dumps(model: Any, session: Any, *, spec: Spec | None = None) -> bytes:
    """The bundle ``save`` would write, as bytes; nothing is written to disk."""
    model_spec = _spec_of(model, spec, session)
    session = raw_session(session)
    graph_bytes, spec_bytes, saver, members = _prepare(session, model_spec)
    buffer = io.BytesIO()
    with _checkpoint_files(session, saver) as files:
        _pack(graph_bytes, spec_bytes, files, buffer, members)
    # Shares the buffer's memory instead of copying it (CPython's BytesIO).
    return buffer.getvalue()


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
        tensor bindings and the bundle has no checkpoint. Fields that update
        variables (train ops, ``UPDATE_OPS``, assigns) cannot run on constants:
        they are left out, written as ``skipped frozen: it updates variables (...)``,
        and a ``SkippedFieldsWarning`` lists them; if nothing else is bound, a
        ``BundleError`` lists them instead.
    """
    _check_destination(path)
    full_spec = _spec_of(model, spec, session)
    sub_spec = full_spec.subtree(subtree) if subtree is not None else full_spec
    if subtree is not None and not sub_spec.flatten():
        raise WalkError(
            "the sub-network binds no tensor, op or variable; a bundle of it would hold no model",
            path=subtree,
        )
    _extract(raw_session(session), sub_spec, freeze, path, subtree)


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
    _check_destination(export_dir)
    model_spec = _spec_of(model, spec, session)
    session = raw_session(session)
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
    _check_save(graph, saver)
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


def _check_bound(spec: Spec, graph: Any) -> None:
    """Refuse to write a bundle whose spec names something the graph lacks."""
    report = check(spec, graph)
    if not report.ok:
        raise BindingError(problems=report.problems)


def _prepare(session: Any, spec: Spec) -> tuple[bytes, bytes, Any, dict[str, bytes]]:
    """The serialized graph and spec of a bundle of ``session.graph``, its saver, its members.

    The members are the large arrays' and the sub-network index's.
    """
    graph = session.graph
    _check_bound(spec, graph)
    saver = _checkpoint.saver_for(graph)
    _check_save(graph, saver)
    saver_def = saver.as_saver_def() if saver is not None else None
    # Graph-mode APIs refuse to run under TF2's eager default: enter the graph.
    with graph.as_default():
        meta_graph = tf1.train.export_meta_graph(
            graph=graph, saver_def=saver_def, clear_devices=False
        )
    graph_bytes = meta_graph.SerializeToString(deterministic=True)
    spec_bytes = spec.to_yaml().encode("utf-8")
    return graph_bytes, spec_bytes, saver, _extra_members(meta_graph, graph_bytes, spec, spec_bytes)


def _extra_members(
    meta_graph: Any, graph: bytes, spec: Spec, spec_bytes: bytes
) -> dict[str, bytes]:
    """The large arrays' members and the sub-network index's."""
    return {**_array_members(spec), **build_index(meta_graph, graph, spec, spec_bytes)}


@contextlib.contextmanager
def _checkpoint_files(
    session: Any, saver: Any, beside: str | None = None, crcs: dict[str, int] | None = None
) -> Iterator[dict[str, Any]]:
    if saver is None:
        yield {}
        return
    if _remote.needs_client(session, session.graph.get_collection(tf1.GraphKeys.GLOBAL_VARIABLES)):
        # The saver's own ops would write on the ps tasks, out of the client's reach.
        saver = _remote.ClientSaver(session.graph)
    with _checkpoint.saved_files(session, saver, beside, crcs) as files:
        yield files


def _check_save(graph: Any, saver: Any | None) -> None:
    """In a graph nestgraph loaded, a save runs only the save ops of nestgraph's own saver."""
    if saver is not None and _checkpoint.came_from_bundle(graph):
        saver_def = saver.as_saver_def()
        _runcheck.check_runnable(
            [graph.get_tensor_by_name(saver_def.save_tensor_name)],
            _runcheck.SAVE_OPS,
            "saving a loaded graph",
            feeds=[graph.get_tensor_by_name(saver_def.filename_tensor_name)],
        )


def _versions() -> dict[str, str]:
    from nestgraph import __version__

    return {"nestgraph": __version__, "tensorflow": tf.__version__}


def _members(
    graph: bytes, spec: bytes, arrays: Mapping[str, bytes] | None = None
) -> list[tuple[str, bytes]]:
    """The members written before the checkpoint, in order (each hashed in the manifest)."""
    return [(GRAPH, graph), (SPEC, spec), *sorted((arrays or {}).items())]


def _pack(
    graph: bytes,
    spec: bytes,
    files: Mapping[str, Any],
    out: IO[bytes],
    arrays: Mapping[str, bytes] | None = None,
) -> None:
    prefix = _checkpoint.CHECKPOINT_PREFIX if files else None
    pack_streamed(_members(graph, spec, arrays), files, prefix, out, _versions())


def _write(
    path: PathOrFile,
    graph: bytes,
    spec: bytes,
    session: Any,
    saver: Any | None,
    arrays: Mapping[str, bytes] | None = None,
) -> None:
    """Write a bundle to ``path`` (atomically) or to a binary file object."""
    if isinstance(path, (str, os.PathLike)):
        target = os.fspath(path)
        if _atomic.is_remote(target):
            with _checkpoint_files(session, saver, beside=target) as files:
                _atomic.write_atomic(target, lambda out: _pack(graph, spec, files, out, arrays))
            return
        crcs: dict[str, int] = {}  # the shards' CRC-32s, computed as TensorFlow writes them
        with _checkpoint_files(session, saver, beside=target, crcs=crcs) as files:
            prefix = _checkpoint.CHECKPOINT_PREFIX if files else None
            members = _members(graph, spec, arrays)
            _zerocopy.write_bundle(target, members, files, prefix, _versions(), crcs)
        return
    with _checkpoint_files(session, saver) as files:
        if _seekable(path):
            _pack(graph, spec, files, path, arrays)
        else:  # the manifest is patched at the end, which needs a seekable file
            buffer = io.BytesIO()
            _pack(graph, spec, files, buffer, arrays)
            path.write(buffer.getbuffer())


def _seekable(out: IO[bytes]) -> bool:
    seekable = getattr(out, "seekable", None)
    return bool(seekable is not None and seekable())


def _extract(
    session: Any, spec: Spec, freeze: bool, path: PathOrFile, subtree: str | None = None
) -> None:
    """Write a standalone bundle of what ``spec`` binds in ``session.graph`` to ``path``."""
    graph = session.graph
    _check_bound(spec, graph)
    with graph.as_default():
        full = tf1.train.export_meta_graph(graph=graph, clear_devices=False)
    if freeze:
        spec = _inference_part(spec, full.graph_def, subtree)
    seeds = [binding.name for binding in spec.bindings()]
    pruned = _metagraph.prune_meta_graph(full, seeds)
    if _remote.needs_client(session, graph.get_collection(tf1.GraphKeys.GLOBAL_VARIABLES)):
        # The copy below runs in a local session; a cluster's placements cannot hold there.
        _devices.clear(pruned)
    part = tf.Graph()
    with part.as_default():
        import_graph(pruned)
    loaded = _checkpoint.came_from_bundle(graph)
    if loaded:
        _checkpoint.mark_loaded(part)
    part_variables = part.get_collection(tf1.GraphKeys.GLOBAL_VARIABLES)
    # Fetching a tf.Variable reads its existing snapshot: no op is added to the user's graph.
    by_name = {v.name: v for v in graph.get_collection(tf1.GraphKeys.GLOBAL_VARIABLES)}
    sources = [by_name[v.name] for v in part_variables]
    if loaded:
        _runcheck.check_runnable(sources, _runcheck.READ_OPS, "reading the variables to export")
    values = session.run(sources)
    with tf1.Session(graph=part, config=tf1.ConfigProto(allow_soft_placement=True)) as copy:
        if part_variables:
            initializers = [v.initializer for v in part_variables]
            initial_values = [v.initializer.inputs[1] for v in part_variables]
            if loaded:
                _runcheck.check_runnable(
                    initializers,
                    _runcheck.VARIABLE_OPS | {"Assign", "AssignVariableOp"},
                    "copying the variables to export",
                    feeds=initial_values,
                )
            # Feeding the initial value copies a value in without adding assign ops.
            copy.run(initializers, feed_dict=dict(zip(initial_values, values, strict=True)))
        if not freeze:
            graph_bytes, spec_bytes, saver, members = _prepare(copy, spec)
            _write(path, graph_bytes, spec_bytes, copy, saver, members)
            return
        if loaded:
            _runcheck.check_runnable(part_variables, _runcheck.READ_OPS, "freezing the variables")
        with _quiet_deprecations():
            frozen_graph_def = tf1.graph_util.convert_variables_to_constants(
                copy,
                part.as_graph_def(),
                sorted({_metagraph.node_name(name) for name in seeds}),
            )
    repair_function_reads(frozen_graph_def)
    frozen = _metagraph.replace_graph_def(pruned, frozen_graph_def)
    frozen_spec = spec.map_bindings(
        lambda kind, name: ("tensor", name) if kind == "variable" else (kind, name)
    )
    graph_bytes = frozen.SerializeToString(deterministic=True)
    spec_bytes = frozen_spec.to_yaml().encode("utf-8")
    _write(
        path,
        graph_bytes,
        spec_bytes,
        None,
        None,
        _extra_members(frozen, graph_bytes, frozen_spec, spec_bytes),
    )


def _inference_part(spec: Spec, graph_def: Any, subtree: str | None) -> Spec:
    """``spec`` without the fields that update variables (freezing would break them).

    Warns with their paths (in the whole model: ``subtree`` in front); refuses
    when nothing else is left to freeze.
    """
    inference, found = without_updates(spec, graph_def)
    if not found:
        return inference
    updates = {
        (f"{subtree}.{path}" if path else subtree) if subtree else path: op
        for path, op in found.items()
    }
    listed = "\n".join(f"  {path or '<root>'}: {op}" for path, op in updates.items())
    if not inference.flatten():
        raise BundleError(
            "freeze=True: every bound field updates variables, so a frozen bundle would hold "
            f"nothing; export with freeze=False to keep training ops:\n{listed}",
            path=next(iter(updates)),
        )
    # Frames: this function, _extract, export, then the caller.
    warnings.warn(
        SkippedFieldsWarning(
            f"freeze=True: {len(updates)} field{'s' if len(updates) != 1 else ''} "
            f"update variables and are left out of the frozen bundle (skipped):\n{listed}"
        ),
        stacklevel=4,
    )
    return inference


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
            kind, detail = describe(node)
            if kind != "tensor":
                what = f"a {kind} binding" if kind in _BINDING_KINDS else "not a binding"
                raise BindingError(
                    f"signature {role} {key!r} must name a tensor binding; this is {what}",
                    path=reference,
                )
            name = detail
        try:
            tensors[key] = graph.get_tensor_by_name(name)
        except (KeyError, ValueError) as exc:
            raise BindingError(
                f"signature {role} {key!r}: no tensor {name!r} in the graph ({exc})",
                path=reference,
            ) from None
    return tensors


def _check_destination(path: Any) -> None:
    """Refuse a local target whose directory is missing, naming the path the user gave.

    Checked before any work; otherwise the first failure would name a temporary file.
    """
    if not isinstance(path, (str, os.PathLike)):
        return
    target = os.fspath(path)
    if _atomic.is_remote(target):
        return  # object stores have no directories to be missing
    parent = os.path.dirname(os.path.abspath(target))
    if not os.path.isdir(parent):
        what = "is not a directory" if os.path.exists(parent) else "does not exist"
        raise BundleError(f"cannot write: the directory {parent!r} {what}", file=target)


def _refuse_existing_directory(path: str) -> None:
    _atomic.check_scheme(path)
    if _atomic.is_remote(path):
        exists = tf.io.gfile.exists(path) and bool(tf.io.gfile.listdir(path))
    else:
        exists = os.path.exists(path) and (not os.path.isdir(path) or bool(os.listdir(path)))
    if exists:
        raise BundleError("already exists; remove it or choose another export_dir", file=path)


def import_graph(meta_graph: Any, import_scope: str | None = None) -> None:
    """Import into the default graph (names under ``import_scope``) without creating a Saver."""
    if _import_scoped_meta_graph is not None:
        _import_scoped_meta_graph(meta_graph, import_scope=import_scope)
    else:  # pragma: no cover
        tf1.train.import_meta_graph(meta_graph, import_scope=import_scope)
