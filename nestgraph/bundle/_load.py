"""Reading bundles: ``load`` and ``loads``.

What a load reads and checks, in order:

1. the manifest, the member list, ``graph.pb``, ``spec.yaml`` and the
   checkpoint index, each against its size and SHA-256 in the manifest;
   the data shards' sizes and storage (their bytes are not read here);
2. the spec, and the graph, pruned to what ``subtree`` needs when given;
3. :func:`prepare`, the hook for checks of the parsed bundle before import;
4. the import (no ``Saver`` is made and the bundle's ``saver_def`` is never
   used), then ``from_graph``, which checks every name and class;
5. every variable's dtype and shape against the checkpoint index;
6. the restore, with ops nestgraph builds, from a view of only the needed
   tensors (``_view``): TensorFlow checks each tensor's CRC-32C as it reads it.

``load(path, subtree="towers.7")`` imports only the ops and reads only the
tensors that sub-network needs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import IO, Any

import tensorflow as tf
from google.protobuf.message import DecodeError
from tensorflow.core.protobuf import meta_graph_pb2

from nestgraph import _atomic
from nestgraph._numpyleaves import member_problem
from nestgraph.binding import validate
from nestgraph.bundle import (
    _checkpoint,
    _devices,
    _metagraph,
    _remote,
    _restore,
    _scan,
    _subnets,
)
from nestgraph.bundle._container import GRAPH, check_regular
from nestgraph.bundle._save import import_graph
from nestgraph.bundle._tensorbundle import CheckpointIndex
from nestgraph.bundle._view import checkpoint_view
from nestgraph.bundle._zipstream import BundleParts, read_located, unpack_parts
from nestgraph.errors import BundleError
from nestgraph.nodes import Leaf, iter_nodes
from nestgraph.paths import format_path
from nestgraph.spec import Spec

__all__ = ["load", "loads", "prepare"]

tf1 = tf.compat.v1

PathOrFile = str | os.PathLike[str] | IO[bytes]

_BYTES_SOURCE = "<bytes>"


def load(
    path: PathOrFile,
    subtree: str | None = None,
    allow: str | Iterable[str] | None = None,
    generic: bool = False,
    config: Any = None,
    graph: Any = None,
    import_scope: str | None = None,
    *,
    clear_devices: bool = False,
    device_fn: str | Callable[[Any], Any] | None = None,
    target: str = "",
    trusted: bool = False,
) -> tuple[Any, Any]:
    """Read a bundle into a new graph and session; return ``(model, session)``.

    Args:
      path: the bundle (a local path, a ``scheme://`` path or a binary file object).
      subtree: dotted path of a sub-network (``"towers.7"``): only the ops and
        variables it needs are imported and restored, and only it is returned.
      allow, generic: the class-path policy, as for ``ng.from_graph``.
      config: the ``ConfigProto`` for the new session; by default soft placement
        is allowed, so a graph saved with GPUs still loads on a CPU. Its
        ``operation_timeout_in_ms`` bounds the wait for a ``target``.
      graph: load into this existing ``tf.Graph`` (next to other models) instead
        of a new one; the returned session runs on it and holds this bundle's
        variables' values (not those of models already in the graph).
      import_scope: a name prefix for every imported op (``"agent_a"`` makes
        ``x:0`` into ``agent_a/x:0``); the model is bound through it, as
        ``ng.from_graph(spec, graph, import_scope=...)`` binds. A prefix, or an
        op name, already used in ``graph`` is refused: TensorFlow would rename
        the imported ops silently and the model would bind to the wrong ones.
      clear_devices: drop the saved placements (load a cluster's bundle on one machine).
      device_fn: a device string or a device function (``replica_device_setter``)
        that places the imported graph; the saved placements are dropped first.
      target: the session target of the returned session (``server.target``,
        ``"grpc://host:port"``); the default is an in-process session.
      trusted: load even if bound fields reach ops that act outside the session
        (files, network, Python callbacks, ...: see ``ng.scan``); by default such
        a bundle is refused before anything of it is imported.

    The graph is ``session.graph`` (it is not made the default graph). A load
    into an existing ``graph`` that fails after the import leaves the imported
    ops in that graph (a ``tf.Graph`` cannot remove ops); no session stays open. Train ops,
    optimizer slots and the global step come back with a full load, so training
    continues where it stopped.

    Raises:
      BundleError: the bundle is missing, truncated, corrupt or of a newer
        version; its checkpoint disagrees with its graph; or restoring it would
        run an op nestgraph did not build; the saved placements cannot be
        satisfied by the session (the message says to pass ``clear_devices=True``
        or a ``device_fn``); the target does not answer within the timeout.
      TypeError: ``device_fn`` is neither a string nor a callable.
      BindingError, ClassNotAllowedError, SpecError: as ``ng.from_graph``.
      Nothing is left half-built: on any error no session stays open.
    """
    if isinstance(path, (bytes, bytearray, memoryview)):
        raise TypeError("load takes a path or a binary file; pass bytes to loads")
    placement = _Placement.checked(
        clear_devices, device_fn, target, trusted, graph=graph, import_scope=import_scope
    )
    with _opened(path) as (file, stream, local_path):
        parts = unpack_parts(stream, file, _located(subtree))
        return _open(parts, file, stream, local_path, subtree, allow, generic, config, placement)


def loads(
    data: bytes,
    subtree: str | None = None,
    allow: str | Iterable[str] | None = None,
    generic: bool = False,
    config: Any = None,
    graph: Any = None,
    import_scope: str | None = None,
    *,
    clear_devices: bool = False,
    device_fn: str | Callable[[Any], Any] | None = None,
    target: str = "",
    trusted: bool = False,
) -> tuple[Any, Any]:
    """``load`` from the bytes ``dumps`` returned; nothing touches the local disk."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"loads takes bytes, not {type(data).__name__}")
    placement = _Placement.checked(
        clear_devices, device_fn, target, trusted, graph=graph, import_scope=import_scope
    )
    stream = io.BytesIO(data)
    parts = unpack_parts(stream, _BYTES_SOURCE, _located(subtree))
    return _open(parts, _BYTES_SOURCE, stream, None, subtree, allow, generic, config, placement)


@dataclasses.dataclass(frozen=True)
class _Placement:
    """Where the loaded graph goes and runs (see ``_devices``), and whether it is trusted."""

    clear_devices: bool = False
    device_fn: str | Callable[[Any], Any] | None = None
    target: str = ""
    trusted: bool = False
    graph: Any = None
    import_scope: str | None = None

    @classmethod
    def checked(
        cls,
        clear_devices: bool,
        device_fn: Any,
        target: str,
        trusted: bool = False,
        *,
        graph: Any = None,
        import_scope: str | None = None,
    ) -> _Placement:
        _devices.check_device_fn(device_fn)
        if graph is not None and not isinstance(graph, tf.Graph):
            raise TypeError(f"graph must be a tf.Graph, not {type(graph).__name__}")
        if graph is not None and graph.finalized:
            raise BundleError("the graph to load into is finalized; nothing can be imported")
        if import_scope is not None and not isinstance(import_scope, str):
            raise TypeError(f"import_scope must be a str, not {type(import_scope).__name__}")
        scope = (import_scope or "").strip("/") or None
        return cls(bool(clear_devices), device_fn, target or "", bool(trusted), graph, scope)

    @property
    def prefix(self) -> str:
        return f"{self.import_scope}/" if self.import_scope else ""


def prepare(
    meta_graph: Any, spec: Spec, subtree: str | None, file: str, *, trusted: bool = False
) -> None:
    """The checks of a parsed bundle, run before anything is imported.

    ``meta_graph`` is the ``MetaGraphDef`` about to be imported (already pruned
    to ``subtree`` when one is given), ``spec`` the whole spec. Unless
    ``trusted``, a bundle whose bound fields reach an op that acts outside the
    session is refused (``ng.scan``), with a ``BundleError`` naming ``file``.
    """
    if not trusted:
        _scan.refuse_untrusted(meta_graph, spec, subtree, file)


@contextlib.contextmanager
def _opened(path: PathOrFile) -> Iterator[tuple[str, IO[bytes], str | None]]:
    """``(name for messages, seekable binary stream, local path or None)``."""
    if not isinstance(path, (str, os.PathLike)):
        yield str(getattr(path, "name", "<stream>")), path, None
        return
    file = os.fspath(path)
    if _atomic.is_remote(file):
        try:
            with tf.io.gfile.GFile(file, "rb") as f:
                data = f.read()
        except tf.errors.NotFoundError:
            raise BundleError("no such bundle", file=file) from None
        except tf.errors.OpError as exc:
            raise BundleError(f"cannot read: {exc.message}", file=file) from None
        yield file, io.BytesIO(data), None
        return
    check_regular(file)  # before open: a FIFO would block it
    try:
        stream = open(file, "rb")  # noqa: SIM115 - closed below, after the load
    except FileNotFoundError:
        raise BundleError("no such bundle", file=file) from None
    except IsADirectoryError:
        raise BundleError("is a directory, not a bundle file", file=file) from None
    except OSError as exc:
        raise BundleError(f"cannot read: {exc.strerror or exc}", file=file) from None
    with stream:
        yield file, stream, file


def _located(subtree: str | None) -> tuple[str, ...]:
    """A sub-network load reads ``graph.pb`` in parts when the bundle's index allows."""
    return (GRAPH,) if subtree is not None else ()


def _parse(parts: BundleParts, file: str, stream: IO[bytes]) -> tuple[Spec, Any]:
    spec = Spec.from_yaml(parts.contents.spec, source=f"{file}:spec.yaml")
    graph = parts.contents.graph
    if GRAPH in parts.located:
        graph = read_located(stream, parts, GRAPH, file)
    meta_graph = meta_graph_pb2.MetaGraphDef()
    try:
        meta_graph.ParseFromString(graph)
    except DecodeError as exc:
        raise BundleError(f"graph.pb is not a MetaGraphDef: {exc}", file=file) from None
    return spec, meta_graph


def _open(
    parts: BundleParts,
    file: str,
    stream: IO[bytes],
    local_path: str | None,
    subtree: str | None,
    allow: str | Iterable[str] | None,
    generic: bool,
    config: Any,
    placement: _Placement,
) -> tuple[Any, Any]:
    # Parsing and importing make hundreds of thousands of protobuf and tf.Operation
    # objects, and the cyclic collector would scan them all again every few hundred
    # allocations: measured on the 40-tower benchmark model (4 loads each way, one
    # process, a loaded 2-core machine), a full load took 7.2 s with it paused and
    # 10.2 s without; a one-tower load was the same either way.
    with _metagraph.gc_paused():
        # A sub-network through the bundle's index: only its slices are read.
        selected = None if subtree is None else _subnets.select(parts, stream, subtree, file)
        if selected is not None:
            spec, meta_graph = selected
        else:
            spec, meta_graph = _parse(parts, file, stream)
        try:
            if subtree is not None:
                records = list(spec.subtree(subtree).bindings())
                if selected is None:
                    seeds = [r.name for r in records]
                    meta_graph = _metagraph.prune_meta_graph(meta_graph, seeds)
                paths = _variable_paths(records, subtree)
            else:
                paths = _variable_paths(spec.bindings(), None)
            prepare(meta_graph, spec, subtree, file, trusted=placement.trusted)
            # The saver_def names ops the bundle chose; nestgraph restores with its own.
            meta_graph = _metagraph.without_saver(meta_graph)
        except BundleError as exc:
            raise exc if exc.file else _in_file(exc, file) from None
        meta_graph.ClearField("saver_def")
        if placement.clear_devices or placement.device_fn is not None:
            _devices.clear(meta_graph)
        try:
            variables = _restore.plan(meta_graph)
            index, entries = _checked_index(parts, variables, paths)
            ops = _restore.add_restore_ops(meta_graph, variables) if variables else None
            if ops is not None:
                _restore.check_closure(meta_graph, ops)
        except BundleError as exc:
            raise _in_file(exc, file) from None
        # Read from the NodeDefs (6x faster than from the operations) unless device_fn moves them.
        placed = (
            _devices.placements(meta_graph.graph_def.node) if placement.device_fn is None else {}
        )
        graph = placement.graph if placement.graph is not None else tf.Graph()
        earlier_locals = {id(v) for v in graph.get_collection(tf1.GraphKeys.LOCAL_VARIABLES)}
        if placement.graph is not None:
            _refuse_name_clashes(graph, meta_graph, placement.import_scope, file)
        _checkpoint.mark_loaded(graph)
        try:
            with graph.as_default(), _devices.placing(graph, placement.device_fn):
                import_graph(meta_graph, placement.import_scope)
        except (ValueError, TypeError, KeyError, DecodeError, tf.errors.OpError) as exc:
            raise BundleError(f"cannot import graph.pb: {exc}", file=file) from None
        del meta_graph
        # Validate every name and class before any work that a failure would waste.
        checked = validate(
            spec,
            graph,
            subtree=subtree,
            import_scope=placement.import_scope,
            allow=allow,
            generic=generic,
        )
        _check_array_members(spec, subtree, parts.contents.arrays, file)
        config = config or _default_config()
        devices = _devices.session_devices(placement.target, config, file)
        if placement.device_fn is not None:
            placed = _devices.placements(graph.get_operations())
        _devices.check_placements(placed, devices, config, file)
        session = tf1.Session(placement.target, graph=graph, config=config)
        try:
            # A session field of the model is this session; arrays come from their members.
            model = checked.build(session, members=parts.contents.arrays)
            if ops is not None and index is not None and parts.contents.checkpoint_prefix:
                view = checkpoint_view(
                    index,
                    entries,
                    parts.contents.checkpoint_prefix,
                    parts.shards,
                    stream,
                    bundle_path=local_path,
                )
                with _restore_errors(file), view as prefix:
                    _remote.run_restore(
                        session,
                        graph.get_operation_by_name(placement.prefix + ops.restore_op),
                        graph.get_tensor_by_name(placement.prefix + ops.filename_tensor),
                        prefix,
                    )
            local_variables = [
                v
                for v in graph.get_collection(tf1.GraphKeys.LOCAL_VARIABLES)
                if id(v) not in earlier_locals
            ]
            if local_variables:
                with _restore_errors(file):
                    _restore.initialize_local(session, local_variables, paths)
        except BaseException:
            session.close()
            raise
    return model, session


def _refuse_name_clashes(graph: Any, meta_graph: Any, scope: str | None, file: str) -> None:
    """Refuse an import TensorFlow would make unique by renaming (``x_1``, ``scope_1/x``)."""
    existing = {op.name for op in graph.get_operations()}
    if scope is not None:
        prefix = scope + "/"
        # unique_name also knows name scopes that hold no op yet.
        taken = graph.unique_name(scope, mark_as_used=False) != scope
        if taken or scope in existing or any(name.startswith(prefix) for name in existing):
            raise BundleError(
                f"import_scope {scope!r} is already used in the graph; choose another prefix",
                file=file,
            )
        return
    clashes = [node.name for node in meta_graph.graph_def.node if node.name in existing]
    if clashes:
        shown = ", ".join(repr(name) for name in clashes[:5])
        more = f" and {len(clashes) - 5} more" if len(clashes) > 5 else ""
        raise BundleError(
            f"the graph already has ops named {shown}{more}; "
            "pass import_scope='...' to load next to them",
            file=file,
        )


def _check_array_members(
    spec: Spec, subtree: str | None, members: Mapping[str, bytes], file: str
) -> None:
    """Every ``array`` leaf of what is loaded names a member that holds what it says."""
    start, root = spec.resolve(subtree if subtree is not None else ())
    for path, node in iter_nodes(root, start):
        if isinstance(node, Leaf) and node.kind == "array":
            problem = member_problem(node, members)
            if problem is not None:
                raise BundleError(f"corrupt bundle: {problem}", path=format_path(path), file=file)


def _in_file(exc: BundleError, file: str) -> BundleError:
    error = BundleError(exc.message, file=file)
    error.path = exc.path
    return error


def _checked_index(
    parts: BundleParts, variables: list[_restore.Variable], paths: dict[str, str]
) -> tuple[CheckpointIndex | None, dict[str, Any]]:
    """The checkpoint index and the entries of ``variables``, checked against them."""
    prefix = parts.contents.checkpoint_prefix
    if not variables:
        return None, {}
    if prefix is None or parts.index is None:
        names = ", ".join(v.op_name for v in variables[:5])
        raise BundleError(f"the graph has variables ({names}) but no checkpoint")
    index = CheckpointIndex(parts.index, f"checkpoint/{prefix}.index")
    entries = index.entries(_restore.keys(variables))
    # Checked first: TensorFlow's own message for a mismatch is a page long.
    _restore.check_against_index(variables, entries, paths)
    return index, entries


@contextlib.contextmanager
def _restore_errors(file: str) -> Iterator[None]:
    try:
        yield
    except BundleError as exc:
        raise _in_file(exc, file) from None
    except (ValueError, tf.errors.OpError) as exc:
        message = getattr(exc, "message", None) or str(exc)
        raise BundleError(f"cannot restore the checkpoint: {_gist(message)}", file=file) from None


def _default_config() -> Any:
    return tf1.ConfigProto(allow_soft_placement=True)


def _variable_paths(records: Iterable[Any], subtree: str | None) -> dict[str, str]:
    """``{variable op name: dotted path}`` for messages about variables.

    ``records`` are a spec's ``bindings()``; those of a subtree get its path in front.
    """
    paths = {}
    for record in records:
        if record.kind == "variable":
            path = record.path
            if subtree is not None:
                path = f"{subtree}.{path}" if path else subtree
            paths[_metagraph.node_name(record.name)] = path
    return paths


def _gist(message: str) -> str:
    """What a TensorFlow run error says went wrong, without its tracebacks.

    Graph execution errors read "...Node: 'name'", then the problem, then
    "[[{{node name}}]]" and stack traces; other errors are returned whole.
    """
    _, found, rest = message.partition("\nNode: ")
    if not found:
        return message.strip()
    problem = rest.partition("\n")[2].split("[[", 1)[0]
    return " ".join(problem.split()) or message.strip()
