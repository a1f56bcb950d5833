"""save_spec / load_spec: a Spec as a YAML (or, by extension, JSON) file."""

from __future__ import annotations

import json
import os
import sys
from typing import IO

from ._atomic import is_remote, read_limited, write_atomic
from ._yamlio import MAX_BYTES, load_json
from .errors import SpecError
from .spec import Spec

__all__ = ["load_spec", "save_spec"]


def _is_json(path: str) -> bool:
    return path.lower().endswith(".json")


def save_spec(spec: Spec, path: str | os.PathLike[str]) -> None:
    """Write ``spec`` to ``path`` atomically: YAML, or JSON when the name ends in ``.json``."""
    if not isinstance(spec, Spec):
        raise TypeError(f"save_spec takes an ng.Spec, not {type(spec).__name__}")
    path = os.fspath(path)
    if _is_json(path):
        text = json.dumps(spec.to_dict(), indent=2, ensure_ascii=False) + "\n"
    else:
        text = spec.to_yaml()
    data = text.encode("utf-8")

    def write(out: IO[bytes]) -> None:
        out.write(data)

    write_atomic(path, write)


def load_spec(path: str | os.PathLike[str]) -> Spec:
    """Read and validate a spec file (YAML, or JSON when the name ends in ``.json``).

    Raises ``SpecError`` naming the file (and line) for anything wrong with it.
    """
    path = os.fspath(path)
    try:
        data = read_limited(path, MAX_BYTES)
    except FileNotFoundError:
        raise SpecError("no such file", source=path) from None
    except (OSError, ValueError) as exc:
        raise SpecError(f"cannot read: {exc}", source=path) from None
    except Exception as exc:
        # TensorFlow's file systems (ram://, gs://, ...) raise tf.errors.OpError instead.
        tf_errors = getattr(sys.modules.get("tensorflow"), "errors", None)
        if not is_remote(path) or tf_errors is None or not isinstance(exc, tf_errors.OpError):
            raise
        if isinstance(exc, tf_errors.NotFoundError):
            raise SpecError("no such file", source=path) from None
        raise SpecError(f"cannot read: {exc.message}", source=path) from None
    if not _is_json(path):
        return Spec.from_yaml(data, source=path)
    return Spec.from_dict(load_json(data, source=path), source=path)
