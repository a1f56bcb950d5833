"""Where a loaded graph runs: saved placements kept, cleared or replaced, and checked.

A bundle saved on a cluster keeps the devices its ops ran on
(``/job:ps/task:1``). A load keeps them by default, which is right for
resuming on the same cluster shape; ``clear_devices=True`` drops them (one
machine), and ``device_fn`` (a device string or a device function such as
``tf.compat.v1.train.replica_device_setter(ps_tasks=3)``) places the imported
graph afresh, with the saved placements dropped first so that the function
alone decides (a device function keeps an op's own device when it has one).

Before any session runs, every placement of the imported graph is checked
against the devices the session target offers, so a placement that cannot be
satisfied gives one ``BundleError`` with the way out, instead of TensorFlow's
error on the first run. Asking a remote target for its devices is bounded by
the config's ``operation_timeout_in_ms``: a target that nothing answers fails
within it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import tensorflow as tf

from nestgraph.errors import BundleError

__all__ = [
    "CONNECT_TIMEOUT_MS",
    "check_device_fn",
    "check_placements",
    "clear",
    "placements",
    "placing",
    "session_devices",
]

tf1 = tf.compat.v1

# Used when the config sets no operation timeout: without one, TensorFlow's gRPC
# client retries an unreachable master for ever.
CONNECT_TIMEOUT_MS = 60_000

_HINT = (
    "pass clear_devices=True to drop the saved placements (one machine), or "
    "device_fn=... (a device string, or a device function such as "
    "tf.compat.v1.train.replica_device_setter(...)) to place the graph on this cluster"
)

DeviceFn = str | Callable[[Any], Any]


def check_device_fn(device_fn: Any) -> None:
    """Raise ``TypeError`` unless ``device_fn`` is None, a device string or a callable."""
    if device_fn is None or isinstance(device_fn, str) or callable(device_fn):
        return
    raise TypeError(
        "device_fn must be a device string ('/job:worker/task:0') or a device function "
        "(op -> device, e.g. tf.compat.v1.train.replica_device_setter(...)), "
        f"not {type(device_fn).__name__}"
    )


def clear(meta_graph: Any) -> None:
    """Drop every saved placement of ``meta_graph`` (in place), function bodies included."""
    for node in meta_graph.graph_def.node:
        node.device = ""
    for function in meta_graph.graph_def.library.function:
        for node in function.node_def:
            node.device = ""


@contextlib.contextmanager
def placing(graph: Any, device_fn: DeviceFn | None) -> Iterator[None]:
    """Apply ``device_fn`` to every op created in ``graph`` inside the block."""
    if device_fn is None:
        yield
        return
    # graph.device takes functions as well as strings; tf.device refuses functions.
    with graph.device(device_fn):
        yield


def session_devices(target: str, config: Any, file: str) -> list[Any] | None:
    """The ``DeviceSpec``s a session on ``target`` offers, or None for a local session.

    A local session offers this process's devices, so its check needs no list
    (see :func:`check_placements`); asking a remote target is bounded by the
    config's operation timeout, or by ``CONNECT_TIMEOUT_MS``.
    """
    if not target:
        return None
    probe_config = tf1.ConfigProto()
    if config is not None:
        probe_config.CopyFrom(config)
    if probe_config.operation_timeout_in_ms <= 0:
        probe_config.operation_timeout_in_ms = CONNECT_TIMEOUT_MS
    timeout = probe_config.operation_timeout_in_ms
    try:
        with tf1.Session(target, graph=tf.Graph(), config=probe_config) as probe:
            devices = probe.list_devices()
    except tf.errors.DeadlineExceededError:
        raise BundleError(
            f"session target {target!r} did not answer within {timeout} ms "
            "(config.operation_timeout_in_ms); is the cluster running?",
            file=file,
        ) from None
    except tf.errors.OpError as exc:
        message = f"cannot reach session target {target!r}: {exc.message}"
        raise BundleError(message, file=file) from None
    return [tf.DeviceSpec.from_string(device.name) for device in devices]


def _satisfies(available: Any, wanted: Any, soft: bool) -> bool:
    for field in ("job", "replica", "task"):
        want = getattr(wanted, field)
        if want is not None and getattr(available, field) != want:
            return False
    if soft:  # soft placement picks another device of the task when this one is missing
        return True
    if wanted.device_type is not None and (
        (available.device_type or "").upper() != wanted.device_type.upper()
    ):
        return False
    return wanted.device_index is None or available.device_index == wanted.device_index


def _local_task(wanted: Any) -> bool:
    """Whether a local (in-process, non-cluster) session has the task ``wanted`` names."""
    return (
        wanted.job in (None, "localhost")
        and wanted.replica in (None, 0)
        and wanted.task in (None, 0)
    )


def placements(nodes: Iterable[Any]) -> dict[str, str]:
    """``{device: name of the first node placed there}`` over NodeDefs or operations."""
    found: dict[str, str] = {}
    for node in nodes:
        device = node.device
        if device and device not in found:
            found[device] = node.name
    return found


def check_placements(
    placed: Mapping[str, str], devices: list[Any] | None, config: Any, file: str
) -> None:
    """Raise ``BundleError`` (with the way out) for a placement the session cannot satisfy.

    ``placed`` is what :func:`placements` returned; ``devices`` what
    :func:`session_devices` returned. For a local session only the task is
    checked (job ``localhost``, replica and task 0); device types and indices
    are left to TensorFlow, which knows this machine's devices.
    """
    soft = config is None or config.allow_soft_placement
    for placement, op_name in placed.items():
        wanted = tf.DeviceSpec.from_string(placement)
        if devices is None:
            ok = _local_task(wanted)
            offered = "a local session has only /job:localhost/replica:0/task:0"
        else:
            ok = any(_satisfies(device, wanted, soft) for device in devices)
            tasks = sorted({f"/job:{d.job}/task:{d.task}" for d in devices})
            offered = "the session target has " + ", ".join(tasks)
        if not ok:
            raise BundleError(
                f"the graph places op {op_name!r} on {placement!r}, which this session cannot "
                f"satisfy ({offered}); {_HINT}",
                file=file,
            )
