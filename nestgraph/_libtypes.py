"""Which objects are a user's own, which are library objects, and what a layer holds.

The walker records an instance of an ordinary user class as an object, a
TensorFlow/Keras layer (or ``tf.Module``) as an object of its variables, and
skips everything else with a reason that fits what it is. Library classes are
found through ``sys.modules`` and module ``__dict__``s only: nothing here
imports TensorFlow or Keras, or evaluates a property or a lazy module
attribute. Knows nothing of specs.
"""

from __future__ import annotations

import enum
import io
import socket
import sys
import threading
import types
import typing
from collections.abc import Callable, Iterator
from typing import Any

from ._objects import slot_names

__all__ = [
    "LIBRARY_PACKAGES",
    "is_layer_type",
    "layer_fields",
    "library_reason",
    "plain_object_reason",
]

#: Top-level packages whose objects are not a user's model objects: they are
#: recorded only through a leaf handler or the layer rule, and skipped otherwise.
LIBRARY_PACKAGES = frozenset(
    {
        "tensorflow",
        "tensorboard",
        "keras",
        "tf_keras",
        "numpy",
        "absl",
        "google",
        "threading",
        "_thread",
        "io",
        "_io",
        "socket",
        "ssl",
        "select",
        "selectors",
        "multiprocessing",
        "concurrent",
        "asyncio",
        "subprocess",
        "queue",
        "logging",
        "sqlite3",
        "weakref",
        "ctypes",
        "mmap",
        "h5py",
        "pandas",
        "scipy",
        "jax",
        "torch",
    }
)

# Layer-like base classes: (module, class name). A tf.Module holds its variables
# as attributes, and every Keras layer is one.
_LAYER_BASES = (
    ("tf_keras.src.engine.base_layer", "Layer"),
    ("tensorflow.python.keras.engine.base_layer", "Layer"),
    ("keras.src.layers.layer", "Layer"),
    ("keras.src.engine.base_layer", "Layer"),
    ("keras.engine.base_layer", "Layer"),
    ("tensorflow.python.module.module", "Module"),
)

# Library classes with a reason of their own: (module, class name, reason).
_NAMED_REASONS = (
    (
        "tensorflow.python.framework.ops",
        "Graph",
        "a tf.Graph holds the model rather than being part of it; from_graph binds "
        "to the graph it is given",
    ),
    (
        "tensorflow.python.training.optimizer",
        "Optimizer",
        "an optimizer object is Python-side; its ops and slot variables are in the graph, "
        "so record the op minimize() returned (the train op) as a field instead",
    ),
    (
        "tensorflow.python.summary.writer.writer",
        "FileWriter",
        "a tf.summary.FileWriter writes event files of this run; create a new one after loading",
    ),
    (
        "tensorflow.python.ops.summary_ops_v2",
        "SummaryWriter",
        "a summary writer writes event files of this run; create a new one after loading",
    ),
    (
        "tensorflow.python.data.ops.iterator_ops",
        "Iterator",
        "a tf.data iterator is Python-side input state; record its get_next() tensors "
        "and its initializer op as fields instead",
    ),
    (
        "tensorflow.python.data.ops.dataset_ops",
        "DatasetV2",
        "a tf.data.Dataset is a Python input pipeline; build it again after loading",
    ),
    (
        "tensorflow.python.training.coordinator",
        "Coordinator",
        "a tf.train.Coordinator coordinates the threads of this process",
    ),
    (
        "tensorflow.python.training.queue_runner_impl",
        "QueueRunner",
        "a QueueRunner starts threads of this process",
    ),
)

_LOCK_TYPES: tuple[type, ...] = (
    type(threading.Lock()),
    type(threading.RLock()),
    threading.Condition,
    threading.Semaphore,
    threading.Event,
    threading.Barrier,
)

# Built-in kinds of object with a reason of their own, checked in this order.
_STDLIB_REASONS: tuple[tuple[tuple[type, ...], str], ...] = (
    ((types.ModuleType,), "a module is code, not model state"),
    ((type,), "a class is code, not model state"),
    ((threading.Thread,), "a thread belongs to the process that started it"),
    (_LOCK_TYPES, "a lock or other synchronisation object belongs to this process"),
    ((io.IOBase,), "an open file or stream cannot be saved; open it again after loading"),
    ((socket.socket,), "a network socket belongs to this process"),
    (
        (types.GeneratorType, types.CoroutineType, types.AsyncGeneratorType),
        "a generator's (or coroutine's) paused state cannot be recorded",
    ),
    ((enum.Enum,), "an enum member is not recorded; store its value instead"),
)


def _class_in(module: str, name: str) -> type | None:
    """The class ``module.name`` if that module is imported, read from its ``__dict__``."""
    found = vars(sys.modules[module]).get(name) if module in sys.modules else None
    return found if isinstance(found, type) else None


def _loaded_classes(pairs: Iterator[tuple[str, str]]) -> tuple[type, ...]:
    return tuple(cls for cls in (_class_in(m, n) for m, n in pairs) if cls is not None)


def is_layer_type(tp: type) -> bool:
    """True for a Keras / ``tf.compat.v1.layers`` layer, RNN cell or ``tf.Module`` type."""
    bases = _loaded_classes(iter(_LAYER_BASES))
    return bool(bases) and issubclass(tp, bases)


def _top_package(tp: type) -> str:
    module = tp.__module__ if isinstance(tp.__module__, str) else ""
    return module.split(".", 1)[0]


def _type_label(tp: type) -> str:
    return f"{tp.__module__}:{tp.__qualname__}"


def library_reason(tp: type) -> str | None:
    """Why an instance of ``tp`` is skipped, when ``tp`` is not a user's own class.

    None for a class a user wrote (or an ordinary pure-data class of the standard
    library, such as ``argparse.Namespace``): those are walked as objects.
    """
    label = _type_label(tp)
    for module, name, reason in _NAMED_REASONS:
        cls = _class_in(module, name)
        if cls is not None and issubclass(tp, cls):
            return f"{label}: {reason}"
    for kinds, reason in _STDLIB_REASONS:
        if issubclass(tp, kinds):
            return f"{label}: {reason}"
    top = _top_package(tp)
    if top in ("builtins", "__builtin__"):
        return (
            f"{label} is not a graph element, plain value, list, tuple, dict or object "
            "nestgraph can record"
        )
    if top in LIBRARY_PACKAGES:
        return (
            f"{label} is a {top} object that nestgraph cannot record "
            "(teach it with ng.register_leaf if it should be part of the spec)"
        )
    return None


# Py_TPFLAGS_IMMUTABLETYPE (Python 3.10+): set for types compiled into CPython or an
# extension module (functools.partial, collections.deque), never for a class statement.
_COMPILED_TYPE = 1 << 8
# Compiled bases that keep no state outside the instance dict (typing.Generic is
# compiled from Python 3.12 on).
_STATELESS_COMPILED = frozenset({object, types.SimpleNamespace, typing.Generic})


def plain_object_reason(tp: type) -> str | None:
    """Why an instance of a user's class ``tp`` cannot be walked from its fields, or None.

    Its fields must be all there is: a class whose data lives in a built-in base
    (a ``dict`` or ``list`` subclass, say) would lose that data.
    """
    builtin_base = next(
        (
            base
            for base in tp.__mro__[1:]
            if base is not object and _top_package(base) in ("builtins", "__builtin__")
        ),
        None,
    )
    if builtin_base is not None:
        return (
            f"{_type_label(tp)} derives from the built-in {builtin_base.__name__}, whose "
            f"contents its fields do not show; store a plain {builtin_base.__name__} "
            "instead, or teach nestgraph the type with ng.register_leaf"
        )
    compiled = next(
        (
            base
            for base in tp.__mro__
            if base not in _STATELESS_COMPILED and base.__flags__ & _COMPILED_TYPE
        ),
        None,
    )
    if compiled is not None:
        return (
            f"{_type_label(tp)} is (or derives from) {_type_label(compiled)}, a type "
            "implemented in C whose state its fields do not show; teach nestgraph the "
            "type with ng.register_leaf"
        )
    if tp.__dictoffset__ == 0 and not slot_names(tp):
        return f"{_type_label(tp)} has neither an instance dict nor slots to record"
    return None


def layer_fields(layer: Any, is_variable: Callable[[Any], bool]) -> list[tuple[str, Any]]:
    """A layer's variables and sub-layers by attribute name, read from its ``__dict__``.

    Public attributes holding a variable, a layer, or a non-empty list or tuple of
    those keep their names. A variable under a private name (``_kernel`` of an RNN
    cell) is named without the leading underscores. Layers tracked but not held
    by a public attribute (a ``Sequential``'s) are ``layers``; variables found
    only in the layer's weight lists are named by the last part of their graph
    name. No property (``weights``, ``variables``, ``layers``) is evaluated.
    """
    try:
        attrs = object.__getattribute__(layer, "__dict__")
    except AttributeError:
        return []
    if not isinstance(attrs, dict):
        return []

    def wanted(value: Any) -> bool:
        return is_variable(value) or is_layer_type(type(value))

    fields: dict[str, Any] = {}
    seen: set[int] = set()

    def add(name: str, value: Any) -> None:
        if name in fields or not name:
            return
        if isinstance(value, list) and type(value) is not list:
            value = list(value)  # a tracking wrapper (ListWrapper) around a plain list
        fields[name] = value
        for item in value if isinstance(value, (list, tuple)) else (value,):
            seen.add(id(item))

    for name, value in attrs.items():
        if not isinstance(name, str):
            continue
        if not name.startswith("_"):
            if wanted(value) or (
                isinstance(value, (list, tuple)) and value and all(wanted(v) for v in value)
            ):
                add(name, value)
        elif is_variable(value) and id(value) not in seen:
            add(name.lstrip("_"), value)
    # A Sequential or functional model keeps its layers only in its tracking list.
    tracked = attrs.get("_self_tracked_trackables")
    if isinstance(tracked, list) and "layers" not in fields:
        layers = [t for t in tracked if is_layer_type(type(t)) and id(t) not in seen]
        if layers:
            add("layers", layers)
    for list_name in ("_trainable_weights", "_non_trainable_weights"):
        weights = attrs.get(list_name)
        if not isinstance(weights, list):
            continue
        for variable in weights:
            if not is_variable(variable) or id(variable) in seen:
                continue
            short = str(getattr(variable, "name", "")).rsplit("/", 1)[-1].split(":", 1)[0]
            name = (
                short if short.isidentifier() and short not in fields else f"weight_{len(fields)}"
            )
            add(name, variable)
    return list(fields.items())
