"""The raw ``tf.compat.v1.Session`` inside a session wrapper.

``MonitoredSession`` and ``MonitoredTrainingSession`` wrap the session in
several layers (recoverable, coordinated, hooked), and a run through the
wrapper would run every hook again. Saving needs the raw session: the one
``Saver.save`` and nestgraph's reads run on.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from nestgraph.errors import BundleError

__all__ = ["raw_session"]

# A wrapper chain deeper than this is a cycle, not a session.
_MAX_WRAPPERS = 32


def raw_session(session: Any) -> Any:
    """``session`` itself if it is a TensorFlow session, else the one it wraps.

    Follows ``_tf_sess()`` (the monitored sessions) and ``_sess`` (their
    layers, and debugger wrappers); an object with neither is returned as is,
    so duck-typed sessions keep working.
    """
    current = session
    for _ in range(_MAX_WRAPPERS):
        if isinstance(current, tf.compat.v1.Session | tf.compat.v1.InteractiveSession):
            return current
        tf_sess = getattr(current, "_tf_sess", None)
        inner = tf_sess() if callable(tf_sess) else getattr(current, "_sess", None)
        if inner is None:
            if getattr(current, "_tf_sess", None) is not None or hasattr(current, "_sess"):
                raise BundleError("the monitored session is closed; save before closing it")
            return current
        current = inner
    raise BundleError(f"{type(session).__name__} wraps sessions {_MAX_WRAPPERS} levels deep")
