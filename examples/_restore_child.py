"""The code-free half of ``restore_without_code.py``: imports nestgraph and numpy only.

Usage: ``python -I examples/_restore_child.py BUNDLE INPUTS.npy OUTPUTS.npz``.

It prints what it does, one step per line, then one JSON line of results (the
last line). Predictions go to ``OUTPUTS.npz`` (arrays ``full`` and ``sub``), so
the parent compares them bit for bit.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

import nestgraph as ng


def describe(obj: Any) -> str:
    """``Node standing for module:Class`` for a generic object, else its type name."""
    stands_for = getattr(obj, "nestgraph_class", None)
    name = type(obj).__name__
    return f"{name} standing for {stands_for}" if stands_for else name


def main(bundle: str, inputs_path: str, outputs_path: str) -> dict[str, Any]:
    x = np.load(inputs_path)
    # Nothing of the example is imported here: with -I its directory is not on sys.path.
    here = os.path.dirname(os.path.abspath(__file__))
    model_modules = sorted(
        name
        for name, module in list(sys.modules.items())
        if name != "__main__"
        and os.path.dirname(os.path.abspath(getattr(module, "__file__", None) or "")) == here
    )
    print(f"modules of the example imported here: {model_modules or 'none'}")

    # The spec's classes cannot be used (their module is not imported, and nestgraph never
    # imports a module the caller did not allow), so generic=True rebuilds every object as
    # an ng.Node holding the same fields.
    model, session = ng.load(bundle, generic=True)
    graph = session.graph
    full_ops = len(graph.get_operations())
    print(f"ng.load(bundle, generic=True) -> a {describe(model)}; its graph has {full_ops} ops")
    print(f"  model.encoder is a {describe(model.encoder)} with {len(model.encoder.layers)} layers")
    print(f"  model.heads is a {type(model.heads).__name__} with keys {sorted(model.heads)}")
    # The input's tensor name comes from the rebuilt model itself, not from this script.
    input_name = model.x.name
    full = session.run(model.heads["cls"].probs, {input_name: x})
    print(f"  session.run(model.heads['cls'].probs, {{{input_name!r}: x}}) -> shape {full.shape}")
    session.close()

    head, sub_session = ng.load(bundle, subtree="heads.cls", generic=True)
    sub_graph = sub_session.graph
    sub_ops = len(sub_graph.get_operations())
    print(
        f"ng.load(bundle, subtree='heads.cls', generic=True) -> a {describe(head)}; "
        f"its graph has {sub_ops} ops"
    )
    probs = head.probs  # the first attribute access fills the lazily rebuilt object
    print(f"  fields of the head: {[k for k in vars(head) if not k.startswith('_')]}")
    has_aux = any(op.name.startswith("head_aux/") for op in sub_graph.get_operations())
    has_train = any(op.name.startswith("train") for op in sub_graph.get_operations())
    print(f"  ops of head_aux in that graph: {has_aux}; ops of the train step: {has_train}")
    sub = sub_session.run(probs, {input_name: x})
    same = bool(np.array_equal(sub, full))
    print(f"  the head alone gives the same numbers as the whole model: {same}")
    sub_session.close()

    np.savez(outputs_path, full=full, sub=sub)
    return {
        "model_modules": model_modules,
        "root": describe(model),
        "head": describe(head),
        "generic": isinstance(model, ng.Node) and isinstance(head, ng.Node),
        "full_ops": full_ops,
        "sub_ops": sub_ops,
        "sub_has_aux": has_aux,
        "sub_has_train": has_train,
        "sub_equals_full": same,
        "input_name": input_name,
    }


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:4])))
