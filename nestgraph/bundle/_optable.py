"""Which TensorFlow op types can act outside a session's memory, and why.

The scan (``_scan``) walks a graph; this module only judges one ``NodeDef`` at a
time. The table is a denylist by family, kept conservative: when in doubt an op
is listed, and ``ng.load(..., trusted=True)`` is the way to load a bundle that
uses one on purpose. The README's "Security model" documents the same families.

Allocation ops are listed only when their size is not visibly bounded: a size
input that is a constant within the limits below (or the ``Shape`` of an
existing tensor, which bounds it by tensors the session holds anyway) is fine;
a size computed any other way at run time is a finding.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["FAMILIES", "Danger", "classify"]


@dataclass(frozen=True)
class Danger:
    """Why one op is on the list: its family and a short reason."""

    family: str
    reason: str


# family -> (why the family is on the list, exact op types, op-type patterns)
FAMILIES: dict[str, tuple[str, frozenset[str], tuple[str, ...]]] = {
    "file": (
        "reads, writes or lists files on the machine that runs the session",
        frozenset(
            {
                "ReadFile",
                "WriteFile",
                "MatchingFiles",
                "ImmutableConst",  # memory-maps a file named by an attribute
                "LoadAndRemapMatrix",
                "GenerateVocabRemapping",
                "InitializeTableFromTextFile",
                "InitializeTableFromTextFileV2",
                "DecodeProtoV2",  # descriptor_source may name a file
                "EncodeProto",
                "FileSystemSetConfiguration",
                "RecordInput",  # reads the files its file_pattern matches
            }
        ),
        (),
    ),
    "checkpoint": (
        "writes or reads a checkpoint at a path the graph chooses",
        frozenset(
            {
                "Save",
                "SaveV2",
                "SaveSlices",
                "MergeV2Checkpoints",
                "Restore",
                "RestoreV2",
                "RestoreSlice",
            }
        ),
        (),
    ),
    "summary": (
        "writes event files or a summary database",
        frozenset({"ImportEvent"}),
        (r"Write\w*Summary", r"\w*SummaryWriter\w*", r"CreateSummary\w*"),
    ),
    "debug": (
        "prints to the process's streams or sends tensors to debug URLs",
        frozenset({"Print", "PrintV2", "Copy", "CopyHost"}),
        (r"Debug(Identity|NanCount|NumericSummary)\w*",),
    ),
    "python": (
        "calls a Python function registered in the loading process",
        frozenset({"PyFunc", "PyFuncStateless", "EagerPyFunc"}),
        (),
    ),
    "dataset": (
        "a dataset or reader that reads files, a database or a remote service",
        frozenset(),
        (
            r"(Experimental)?(TFRecord|TextLine|FixedLengthRecord|CSV|Sql|LMDB)Dataset(V\d)?",
            r"(Experimental)?(Snapshot|Save|Load|Cache|MatchingFiles)Dataset\w*",
            r"Snapshot\w+Dataset\w*|SnapshotNestedDatasetReader|ListSnapshotChunksDataset",
            # A dataset graph or iterator state in a tensor: ops the scan cannot see.
            r"DatasetFromGraph|DeserializeIterator",
            r"(Experimental)?DatasetToTFRecord",
            r"DataServiceDataset\w*|RegisterDataset\w*|DistributedSave",
            r"(TFRecord|TextLine|WholeFile|FixedLengthRecord|Identity|LMDB)Reader(V2)?",
        ),
    ),
    "network": (
        "sends or receives tensors to or from other processes or machines",
        frozenset(
            {
                "Send",
                "Recv",
                "_Send",
                "_Recv",
                "_HostSend",
                "_HostRecv",
                "Rpc",
                "TryRpc",
                "RemoteCall",
                "WorkerHeartbeat",
            }
        ),
        (
            r"Collective\w*",
            r"Nccl\w*",
            r"(Infeed|Outfeed)\w*",
            r"_?Xla(Send|Recv)\w*",
            r"Rpc\w+",
            r"\w*TPUEmbedding\w*",
        ),
    ),
    "process": (
        "ends the process or reconfigures devices outside the session",
        frozenset({"Abort"}),
        (r"_?(Configure|Shutdown|InitializeHostFor)Distributed\w*", r"ConfigureTPUEmbedding\w*"),
    ),
    "loop": (
        "a loop whose number of iterations is decided at run time (can run forever)",
        frozenset({"While", "StatelessWhile", "_While", "LoopCond", "For"}),
        (),
    ),
    "blocking": (
        "waits on a queue, barrier, stage or lock that may never be filled or released",
        frozenset({"Stage", "Unstage", "StagePeek", "ConsumeMutexLock"}),
        # (SleepDataset: sleeps per element, by an amount from its input.)
        (
            r"\w*Queue(V2)?",
            r"Queue(Enqueue|Dequeue)\w*",
            r"Barrier\w*",
            r"(Ordered)?Map(Stage|Unstage|Peek)\w*",
            r"\w*ConditionalAccumulator",
            r"\w*AccumulatorTakeGradient",
            r"Mutex\w*",
            r"(Experimental)?SleepDataset",
        ),
    ),
    "decode": (
        "decompresses or decodes data into an output whose size the data's header sets",
        frozenset(
            {
                "DecodeCompressed",
                "DecodePng",
                "DecodeJpeg",
                "DecodeAndCropJpeg",
                "DecodeGif",
                "DecodeBmp",
                "DecodeImage",
                "DecodeWebP",
                "DecodeJxl",
            }
        ),
        (),
    ),
}

_EXACT = {op: family for family, (_, ops, _) in FAMILIES.items() for op in ops}
_PATTERNS = [
    (re.compile(pattern), family)
    for family, (_, _, patterns) in FAMILIES.items()
    for pattern in patterns
]

# Allocation: op type -> (index of the input that sets the size, how it is read, limit).
# "shape": the product of a shape vector; "count": one scalar; "pads": every entry.
MAX_ELEMENTS = 1 << 26  # 256 MiB of float32
MAX_FACTOR = 1 << 20  # a multiplier of an input that is bounded already
MAX_PAD = 1 << 12
_RANDOM = (
    "RandomUniform",
    "RandomStandardNormal",
    "TruncatedNormal",
    "RandomUniformInt",
    "ParameterizedTruncatedNormal",
    "RandomGamma",
    "RandomPoisson",
    "RandomPoissonV2",
)
_STATELESS = ("Uniform", "Normal", "TruncatedNormal", "UniformInt", "UniformFullInt")
_SIZED: dict[str, tuple[int, str, int]] = {
    "Fill": (0, "shape", MAX_ELEMENTS),
    "Empty": (0, "shape", MAX_ELEMENTS),
    **{op: (0, "shape", MAX_ELEMENTS) for op in _RANDOM},
    **{
        f"Stateless{'Random' if kind != 'TruncatedNormal' else ''}{kind}{version}": (
            0,
            "shape",
            MAX_ELEMENTS,
        )
        for kind in _STATELESS
        for version in ("", "V2")
    },
    "BroadcastTo": (1, "shape", MAX_ELEMENTS),
    "ScatterNd": (2, "shape", MAX_ELEMENTS),
    "SparseToDense": (1, "shape", MAX_ELEMENTS),
    "Tile": (1, "shape", MAX_FACTOR),
    "OneHot": (1, "count", MAX_FACTOR),
    "TensorArrayV3": (0, "count", MAX_FACTOR),
    "TensorListReserve": (1, "count", MAX_FACTOR),
    "StackV2": (0, "count", MAX_FACTOR),
    "UnsortedSegmentSum": (2, "count", MAX_FACTOR),
    "UnsortedSegmentMax": (2, "count", MAX_FACTOR),
    "UnsortedSegmentMin": (2, "count", MAX_FACTOR),
    "UnsortedSegmentProd": (2, "count", MAX_FACTOR),
    "Bincount": (1, "count", MAX_FACTOR),
    "DenseBincount": (1, "count", MAX_FACTOR),
    "Multinomial": (1, "count", MAX_FACTOR),
    "DecodePaddedRaw": (1, "count", MAX_FACTOR),
    "ResizeBilinear": (1, "shape", MAX_FACTOR),
    "ResizeNearestNeighbor": (1, "shape", MAX_FACTOR),
    "ResizeBicubic": (1, "shape", MAX_FACTOR),
    "ResizeArea": (1, "shape", MAX_FACTOR),
    "Pad": (1, "pads", MAX_PAD),
    "PadV2": (1, "pads", MAX_PAD),
    "MirrorPad": (1, "pads", MAX_PAD),
    "Range": (1, "count", MAX_ELEMENTS),  # its limit; start and delta are checked too
}
ALLOCATION_REASON = "allocates memory in an amount computed at run time, or beyond {limit:,}"

# A shape vector has a handful of entries; a "shape" of more is not one we read.
_MAX_SHAPE_ENTRIES = 64
_INT32, _INT64 = 3, 9
_MAX_IDENTITY_HOPS = 16

# Resolves one input reference of a node to the NodeDef it names (or None).
Lookup = Callable[[str], Any]


def classify(node: Any, lookup: Lookup) -> Danger | None:
    """The reason ``node`` (a ``NodeDef``) is on the list, or None if it is not.

    ``lookup(input_ref)`` returns the ``NodeDef`` an input reference names in the
    same graph or function body, or None (a function argument, a missing node).
    """
    op = node.op
    family = _family_of(op)
    if family is not None:
        return Danger(family, FAMILIES[family][0])
    sized = _SIZED.get(op)
    if sized is not None and not _bounded(node, sized, lookup):
        return Danger("allocation", ALLOCATION_REASON.format(limit=sized[2]))
    if op in ("Const", "HostConst"):
        return _inflating_constant(node)
    return None


def _inflating_constant(node: Any) -> Danger | None:
    """A constant that declares far more elements than its proto holds.

    TensorFlow fills a partly given constant by repeating its last value, so a
    few bytes can declare gigabytes. A large constant that carries its data is
    bounded by the bundle's size and is fine.
    """
    if "value" not in node.attr:
        return None
    tensor = node.attr["value"].tensor
    count = 1
    for dim in tensor.tensor_shape.dim:
        count *= max(dim.size, 0)
    if count <= MAX_ELEMENTS:
        return None
    held = sum(
        len(value)
        for field, value in tensor.ListFields()
        if field.name not in ("dtype", "tensor_shape", "version_number")
    )
    if held >= count:
        return None
    return Danger(
        "allocation",
        f"a constant declaring {count:,} elements from {held:,} values "
        "(TensorFlow repeats the last one)",
    )


@functools.lru_cache(maxsize=4096)
def _family_of(op_type: str) -> str | None:
    family = _EXACT.get(op_type)
    if family is None:
        family = next((f for pattern, f in _PATTERNS if pattern.fullmatch(op_type)), None)
    return family


def _bounded(node: Any, sized: tuple[int, str, int], lookup: Lookup) -> bool:
    index, mode, limit = sized
    data_inputs = [ref for ref in node.input if not ref.startswith("^")]
    if index >= len(data_inputs):
        return False
    source = _through_identity(data_inputs[index], lookup)
    if source is None:
        return False
    if mode == "shape" and source.op in ("Shape", "ShapeN"):
        # As large as a tensor that exists already (times the input, for Tile).
        return True
    if node.op == "Range":
        return _range_bounded(data_inputs, source, lookup, limit)
    if mode == "count" and _from_sizes(source, lookup, _MAX_SIZE_DEPTH):
        return True
    values = _const_ints(source)
    if values is None:
        return False
    if mode == "pads":
        return all(0 <= v <= limit for v in values)
    if mode == "count":
        return len(values) == 1 and 0 <= values[0] <= limit
    product = 1
    for value in values:
        if value < 0:
            return False
        product *= value
        if product > limit:
            return False
    return True


def _range_bounded(inputs: list[str], limit_source: Any, lookup: Lookup, limit: int) -> bool:
    """A ``Range`` is bounded by constants, or by existing sizes with an integral step."""
    if len(inputs) < 3:
        return False
    start_node, delta_node = (_through_identity(ref, lookup) for ref in (inputs[0], inputs[2]))
    start = _const_ints(start_node) if start_node is not None else None
    delta = _const_ints(delta_node) if delta_node is not None else None
    if delta is None or len(delta) != 1 or delta[0] == 0:
        return False
    limit_values = _const_ints(limit_source)
    if start is not None and len(start) == 1 and limit_values is not None:
        return len(limit_values) == 1 and 0 <= (limit_values[0] - start[0]) // delta[0] <= limit
    # range(0, tf.size(x)) and the like (embedding lookups make these): no more
    # elements than a tensor that exists already.
    start_ok = (start is not None and len(start) == 1 and start[0] >= 0) or (
        start_node is not None and _from_sizes(start_node, lookup, _MAX_SIZE_DEPTH)
    )
    return start_ok and abs(delta[0]) >= 1 and _from_sizes(limit_source, lookup, _MAX_SIZE_DEPTH)


# Ops that keep a value linear in the sizes it is computed from: what
# ``_from_sizes`` follows. Multiplication is not among them (size * size is not
# linear), except by a small constant, which ``_from_sizes`` allows explicitly.
_SIZE_OPS = frozenset({"Shape", "ShapeN", "Size", "Rank"})
_LINEAR_OPS = frozenset(
    {
        "Identity",
        "Cast",
        "Squeeze",
        "ExpandDims",
        "Reshape",
        "Pack",
        "ConcatV2",
        "Concat",
        "Add",
        "AddV2",
        "Sub",
        "Maximum",
        "Minimum",
        "Abs",
    }
)
_FIRST_INPUT_OPS = frozenset({"StridedSlice", "Slice", "GatherV2", "Gather", "FloorDiv", "Prod"})
_MAX_SIZE_DEPTH = 12


def _from_sizes(node: Any, lookup: Lookup, depth: int) -> bool:
    """True when ``node`` computes a value linear in the sizes of tensors that exist already."""
    if node is None or depth <= 0:
        return False
    if node.op in _SIZE_OPS:
        return True
    if node.op in ("Const", "HostConst"):
        values = _const_ints(node)
        return values is not None and all(abs(v) <= MAX_FACTOR for v in values)
    data = [ref for ref in node.input if not ref.startswith("^")]
    if node.op in _FIRST_INPUT_OPS and data:
        return _from_sizes(lookup(data[0]), lookup, depth - 1)
    if node.op in ("Mul",) and len(data) == 2:
        a, b = (lookup(ref) for ref in data)
        small = [n for n in (a, b) if n is not None and n.op == "Const" and _small_const(n)]
        other = [n for n in (a, b) if n not in small]
        return len(small) >= 1 and all(_from_sizes(n, lookup, depth - 1) for n in other)
    if node.op in _LINEAR_OPS and data:
        operands = data if node.op not in ("Reshape", "ConcatV2", "ExpandDims") else data[:-1]
        if node.op == "Concat":
            operands = data[1:]
        return all(_from_sizes(lookup(ref), lookup, depth - 1) for ref in operands)
    return False


def _small_const(node: Any) -> bool:
    values = _const_ints(node)
    return values is not None and all(abs(v) <= MAX_FACTOR for v in values)


def _through_identity(ref: str, lookup: Lookup) -> Any:
    node = lookup(ref)
    for _ in range(_MAX_IDENTITY_HOPS):
        if node is None or node.op != "Identity" or not node.input:
            return node
        node = lookup(node.input[0])
    return None


def _const_ints(node: Any) -> list[int] | None:
    """The integer values of a small ``Const`` node, read from its proto (never materialized)."""
    if node.op != "Const" or "value" not in node.attr:
        return None
    tensor = node.attr["value"].tensor
    count = 1
    for dim in tensor.tensor_shape.dim:
        count *= max(dim.size, 0)
        if count > _MAX_SHAPE_ENTRIES:
            return None
    if tensor.dtype not in (_INT32, _INT64):
        return None
    if tensor.tensor_content:
        width = 4 if tensor.dtype == _INT32 else 8
        content = tensor.tensor_content
        if len(content) != count * width:
            return None
        return [
            int.from_bytes(content[i : i + width], "little", signed=True)
            for i in range(0, len(content), width)
        ]
    raw = list(tensor.int_val if tensor.dtype == _INT32 else tensor.int64_val)
    if not raw:
        return [0] * count
    if len(raw) > count:
        return None
    # TensorFlow repeats the last value to fill a partly given tensor.
    return raw + [raw[-1]] * (count - len(raw))
