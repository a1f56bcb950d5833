"""The built-in leaf handlers: plain values and TensorFlow's graph elements.

They are registered through ``registry.install``, the same mechanism as a
user's ``ng.register_leaf``, when ``nestgraph`` is imported. TensorFlow types
are matched only when TensorFlow is already imported, so the walker never
imports it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from .nodes import Leaf, LookupKind, Skipped, SpecNode, Value
from .registry import LeafHandler, RebuildContext, install, names_problem

__all__: list[str] = []

_PLAIN = (type(None), bool, int, float, str)


def _tf() -> Any:
    return sys.modules.get("tensorflow")


def _tf_type(attr: str) -> Callable[[type], bool]:
    def matches(tp: type) -> bool:
        tf = _tf()
        return tf is not None and issubclass(tp, getattr(tf, attr))

    return matches


def _element_name(kind: str) -> Callable[[Any], SpecNode]:
    def write(element: Any) -> SpecNode:
        return Leaf(kind, (element.name,))

    return write


def _write_tensor(tensor: Any) -> SpecNode:
    try:
        tensor.graph  # noqa: B018 - an EagerTensor has no graph: it raises here
    except AttributeError:
        tp = type(tensor)
        return Skipped(f"eager tensor {tp.__module__}:{tp.__qualname__} has no graph name")
    return Leaf(LookupKind.TENSOR, (tensor.name,))


def _write_sparse(sparse: Any) -> SpecNode:
    return Leaf("sparse", (sparse.indices.name, sparse.values.name, sparse.dense_shape.name))


def _check_sparse(elements: tuple[Any, ...]) -> str | None:
    indices, _, dense_shape = elements
    problems = []
    for part, tensor, rank in (("indices", indices, 2), ("dense_shape", dense_shape, 1)):
        dtype = getattr(tensor.dtype, "base_dtype", tensor.dtype)
        if getattr(dtype, "name", None) != "int64":
            problems.append(f"{part} {tensor.name!r} is {getattr(dtype, 'name', dtype)}, not int64")
        elif tensor.shape.rank not in (None, rank):
            problems.append(f"{part} {tensor.name!r} has rank {tensor.shape.rank}, not {rank}")
    return "; ".join(problems) or None


def _rebuild_sparse(leaf: Leaf, elements: tuple[Any, ...], context: RebuildContext) -> Any:
    return sys.modules["tensorflow"].SparseTensor(*elements)


def _first(leaf: Leaf, elements: tuple[Any, ...], context: RebuildContext) -> Any:
    return elements[0]


def _builtin(
    kind: str,
    attr: str,
    write: Callable[[Any], SpecNode],
    parts: tuple[tuple[str, str], ...],
    rebuild: Callable[[Leaf, tuple[Any, ...], RebuildContext], Any] = _first,
    check_elements: Callable[[tuple[Any, ...]], str | None] | None = None,
) -> None:
    install(
        LeafHandler(
            kind,
            f"tensorflow.{attr}",
            _tf_type(attr),
            write,
            parts=parts,
            rebuild=rebuild,
            check_text=lambda text: names_problem(kind, parts, text),
            check_elements=check_elements,
        ),
    )


install(
    LeafHandler(None, "plain values", lambda tp: tp in _PLAIN, Value, exact_type=None),
)
# Newest first: a Variable is checked before a Tensor, whatever the type hierarchy says.
_builtin("tensor", "Tensor", _write_tensor, (("", LookupKind.TENSOR),))
_builtin("op", "Operation", _element_name("op"), (("", LookupKind.OP),))
_builtin("variable", "Variable", _element_name("variable"), (("", LookupKind.VARIABLE),))
_builtin(
    "sparse",
    "SparseTensor",
    _write_sparse,
    tuple((p, LookupKind.TENSOR) for p in ("indices", "values", "dense_shape")),
    _rebuild_sparse,
    _check_sparse,
)


def _partitioned_type(tp: type) -> bool:
    # Not public API in TensorFlow 2 (no tf.compat.v1.PartitionedVariable): found
    # where get_variable(partitioner=...) makes it, if that module is loaded at all.
    module = sys.modules.get("tensorflow.python.ops.variables")
    cls = getattr(module, "PartitionedVariable", None) if module is not None else None
    return isinstance(cls, type) and issubclass(tp, cls)


def _rebuild_partitioned(leaf: Leaf, elements: tuple[Any, ...], context: RebuildContext) -> Any:
    (parts,) = elements
    info = parts[0]._save_slice_info
    # The partition count per axis is the number of distinct slice offsets on it.
    partitions = [
        len({tuple(p._save_slice_info.var_offset)[axis] for p in parts})
        for axis in range(len(info.full_shape))
    ]
    module = sys.modules["tensorflow.python.ops.variables"]
    return module.PartitionedVariable(
        name=info.full_name,
        # A TensorShape, as get_variable(partitioner=...) gives it (get_shape().as_list()).
        shape=sys.modules["tensorflow"].TensorShape(info.full_shape),
        dtype=parts[0].dtype.base_dtype,
        variable_list=list(parts),
        partitions=partitions,
    )


install(
    LeafHandler(
        "partitioned",
        "tensorflow.python.ops.variables.PartitionedVariable",
        _partitioned_type,
        lambda pv: Leaf("partitioned", (pv.name,)),
        parts=(("", LookupKind.PARTITIONED),),
        rebuild=_rebuild_partitioned,
        check_text=lambda text: names_problem("partitioned", (("", LookupKind.PARTITIONED),), text),
    ),
)
