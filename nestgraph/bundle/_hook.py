"""Bundles from training loops: ``BundleSaverHook`` and ``latest_bundle``.

They work the way ``CheckpointSaverHook`` and ``latest_checkpoint`` work for
checkpoints: the hook writes ``model-<global step>.ng`` into its directory
every ``save_steps`` steps or ``save_secs`` seconds and at the end, and keeps
the newest ``max_to_keep``. ``MonitoredSession`` finalizes the graph after
``begin()``, so ``begin()`` adds nestgraph's saver to it while it still can.
"""

from __future__ import annotations

import contextlib
import os
import re
from typing import Any

import tensorflow as tf

from nestgraph import _atomic
from nestgraph._numpyleaves import collecting_arrays
from nestgraph.bundle import _checkpoint
from nestgraph.bundle._save import _check_bound, _save_checked
from nestgraph.bundle._savespec import walk_in
from nestgraph.convertible import spec_for_save
from nestgraph.errors import BundleError
from nestgraph.spec import Spec

__all__ = ["BundleSaverHook", "bundle_steps", "latest_bundle"]

tf1 = tf.compat.v1

_BUNDLE_NAME = re.compile(r"model-(\d+)\.ng")


def _join(directory: str, name: str) -> str:
    return (
        directory.rstrip("/") + "/" + name
        if _atomic.is_remote(directory)
        else os.path.join(directory, name)
    )


def bundle_steps(directory: str | os.PathLike[str]) -> dict[int, str]:
    """``{global step: path}`` of the ``model-<step>.ng`` bundles in ``directory``."""
    folder = os.fspath(directory)
    try:
        if _atomic.is_remote(folder):
            names = tf.io.gfile.listdir(folder) if tf.io.gfile.isdir(folder) else []
        else:
            names = os.listdir(folder)
    except FileNotFoundError:
        return {}
    steps = {}
    for name in names:
        match = _BUNDLE_NAME.fullmatch(name.rstrip("/"))
        if match:
            steps[int(match.group(1))] = _join(folder, match.group(0))
    return steps


def latest_bundle(directory: str | os.PathLike[str]) -> str | None:
    """The path of the bundle with the highest global step in ``directory``, or None.

    Like ``tf.compat.v1.train.latest_checkpoint``, a missing or empty directory
    gives None. Only names ``BundleSaverHook`` writes (``model-<step>.ng``) count.
    """
    steps = bundle_steps(directory)
    return steps[max(steps)] if steps else None


class BundleSaverHook(tf1.train.SessionRunHook):  # type: ignore[name-defined]
    """Write ``model``'s bundle every ``save_steps`` steps or ``save_secs`` seconds.

    Args:
      model: the model object; walked once, here, so a ``SkippedFieldsWarning``
        names the line that made the hook.
      directory: where ``model-<global step>.ng`` files go (made if missing).
      save_steps, save_secs: exactly one of them.
      max_to_keep: the newest bundles kept; older ones are removed after each
        save. None or 0 keeps all.

    The graph needs a global step (``tf.compat.v1.train.get_or_create_global_step``).
    A bundle is also written at the end of training, unless that step is saved already.
    """

    def __init__(
        self,
        model: Any,
        directory: str | os.PathLike[str],
        save_steps: int | None = None,
        save_secs: float | None = None,
        max_to_keep: int | None = 5,
        *,
        spec: Spec | None = None,
    ) -> None:
        if (save_steps is None) == (save_secs is None):
            raise ValueError("BundleSaverHook needs exactly one of save_steps and save_secs")
        if max_to_keep is not None and max_to_keep < 0:
            raise ValueError(f"max_to_keep must be None or >= 0, not {max_to_keep}")
        with collecting_arrays() as arrays:  # large arrays: written with each bundle
            self._spec = spec_for_save(model, spec, stacklevel=3)
        if arrays:
            self._spec._arrays = arrays
        self._model = model if spec is None else None
        self._directory = os.fspath(directory)
        _atomic.check_scheme(self._directory)
        self._timer = tf1.train.SecondOrStepTimer(every_secs=save_secs, every_steps=save_steps)
        self._max_to_keep = max_to_keep or None
        self._global_step: Any = None

    def begin(self) -> None:
        graph = tf1.get_default_graph()
        self._global_step = tf1.train.get_global_step(graph)
        if self._global_step is None:
            raise BundleError(
                "BundleSaverHook needs a global step in the graph; "
                "create it with tf.compat.v1.train.get_or_create_global_step()",
                file=self._directory,
            )
        if self._model is not None:
            walk_in(self._model, graph)  # refuses elements of another graph
        _check_bound(self._spec, graph)
        # The graph is finalized after begin(); the saver must exist before that.
        _checkpoint.saver_for(graph)
        if _atomic.is_remote(self._directory):
            tf.io.gfile.makedirs(self._directory)
        else:
            os.makedirs(self._directory, exist_ok=True)

    def after_create_session(self, session: Any, coord: Any) -> None:
        # Like CheckpointSaverHook: the first step counts from here.
        self._timer.update_last_triggered_step(session.run(self._global_step))

    def before_run(self, run_context: Any) -> Any:
        return tf1.train.SessionRunArgs(self._global_step)

    def after_run(self, run_context: Any, run_values: Any) -> None:
        stale_step = int(run_values.results)
        if self._timer.should_trigger_for_step(stale_step + 1):
            step = int(run_context.session.run(self._global_step))
            if self._timer.should_trigger_for_step(step):
                self._save(run_context.session, step)

    def end(self, session: Any) -> None:
        step = int(session.run(self._global_step))
        if step != self._timer.last_triggered_step():
            self._save(session, step)

    def _save(self, session: Any, step: int) -> None:
        self._timer.update_last_triggered_step(step)
        _save_checked(session, _join(self._directory, f"model-{step}.ng"), self._spec)
        self._rotate()

    def _rotate(self) -> None:
        if self._max_to_keep is None:
            return
        steps = bundle_steps(self._directory)
        for old in sorted(steps)[: -self._max_to_keep]:
            with contextlib.suppress(FileNotFoundError, tf.errors.NotFoundError):
                if _atomic.is_remote(steps[old]):
                    tf.io.gfile.remove(steps[old])
                else:
                    os.remove(steps[old])
