"""Edit a spec by hand: move a head from one tower to the other, then make mistakes.

The graph has two towers and one classifier (one set of weights) applied to each
tower's output. The Python model picked tower 0's for ``heads.cls``. Which tower
feeds the head is a matter of binding, so it can be changed in the YAML spec,
without running any model code again:

1. write the spec with ``ng.save_spec`` and show the head's part of it;
2. edit the YAML *text*, as a person would in an editor: three lines of
   ``heads.cls`` now name tower 1's tensors; ``ng.check`` says every name is
   bound, and ``ng.from_graph`` rebuilds a model whose head gives tower 1's
   numbers;
3. the same move in one call: ``spec.rescope("tower_0/", "tower_1/",
   subtree="heads.cls")`` gives the same spec as the hand edit;
4. a wrong edit (typos in two names): ``ng.check`` lists both problems, each
   with its dotted path, line and the closest name in the graph, and
   ``ng.from_graph`` raises one ``ng.BindingError`` saying the same;
5. a malformed edit (the kind word ``tensor`` deleted, so the value reads as a
   plain string) and a broken indentation: ``ng.load_spec`` raises
   ``ng.SpecError`` with the file, the line and the dotted path.

A spec edit changes what the rebuilt Python objects are bound to; it does not
rewire the graph. That is why the whole head (input, logits and probs) moves,
not only its input.

Run: ``python examples/hand_edit.py [--out DIR]``.
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
import tempfile
from collections.abc import Sequence
from typing import Any

import numpy as np
from _common import tf

import nestgraph as ng

tf1 = tf.compat.v1
FEATURES, WIDTH, CLASSES, TOWERS = 4, 8, 3, 2


class Tower(ng.GraphConvertible):
    """One dense ReLU layer under its own scope (``tower_<i>/dense``)."""

    def __init__(self, x: Any, name: str) -> None:
        with tf1.variable_scope(name), tf1.variable_scope("dense"):
            self.w = tf1.get_variable("w", [x.shape[-1], WIDTH])
            self.out = tf.nn.relu(tf.matmul(x, self.w))


class Head(ng.GraphConvertible):
    """A linear classifier with shared weights ``head_cls/{w,b}``, applied to ``features``.

    Its ops are named under the current name scope (``tower_<i>/head_cls/...``),
    so applying it to every tower gives one set of ops per tower.
    """

    def __init__(self, features: Any) -> None:
        self.input = features
        with tf1.variable_scope("head_cls", reuse=tf1.AUTO_REUSE):
            self.w = tf1.get_variable("w", [WIDTH, CLASSES])
            self.b = tf1.get_variable("b", [CLASSES])
            self.logits = tf.add(tf.matmul(features, self.w), self.b, name="logits")
            self.probs = tf.nn.softmax(self.logits, name="probs")


class Model(ng.GraphConvertible):
    """Two towers; the classifier applied to each; ``heads.cls`` is the one on tower 0."""

    def __init__(self) -> None:
        self.x = tf1.placeholder(tf.float32, [None, FEATURES], name="x")
        self.towers = [Tower(self.x, f"tower_{i}") for i in range(TOWERS)]
        per_tower = []
        for i, tower in enumerate(self.towers):
            with tf.name_scope(f"tower_{i}/"):  # re-enter the tower's name scope
                per_tower.append(Head(tower.out))
        # Only the first one is kept on the model, so only it is in the spec.
        self.heads = {"cls": per_tower[0]}


def replace_once(text: str, old: str, new: str, count: int = 1) -> str:
    """``text`` with ``old`` replaced by ``new``; ``old`` must occur exactly ``count`` times."""
    found = text.count(old)
    if found != count:
        raise SystemExit(f"hand_edit: expected {count} occurrence(s) of {old!r}, found {found}")
    return text.replace(old, new)


def line_of(text: str, fragment: str) -> int:
    """The 1-based number of the first line of ``text`` containing ``fragment``."""
    for number, line in enumerate(text.splitlines(), start=1):
        if fragment in line:
            return number
    raise SystemExit(f"hand_edit: {fragment!r} is not in the text")


def write(path: str, text: str) -> str:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


def show_diff(before: str, after: str, before_name: str, after_name: str) -> None:
    """Print the edit as a unified diff without context, as ``diff -U0`` would."""
    diff = difflib.unified_diff(
        before.splitlines(), after.splitlines(), before_name, after_name, n=0, lineterm=""
    )
    for line in diff:
        print(f"   {line}")


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Walk through the edits; print each step; return the edited texts and the messages."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="directory for the spec files (default: a temporary one)")
    args = parser.parse_args(argv)
    out = args.out or tempfile.mkdtemp(prefix="nestgraph-hand-edit-")
    os.makedirs(out, exist_ok=True)

    graph = tf.Graph()
    with graph.as_default():
        tf1.set_random_seed(0)
        model = Model()
        session = tf1.Session(graph=graph)
        session.run(tf1.global_variables_initializer())
    x = np.random.default_rng(0).normal(size=(5, FEATURES)).astype(np.float32)
    tower_probs = [
        session.run(graph.get_tensor_by_name(f"tower_{i}/head_cls/probs:0"), {model.x: x})
        for i in range(TOWERS)
    ]

    print("== 1. the spec, as ng.save_spec writes it")
    original_path = os.path.join(out, "model.yaml")
    ng.save_spec(ng.to_graph(model), original_path)
    with open(original_path, encoding="utf-8") as f:
        original = f.read()
    print("   ... heads.cls, the part we will edit:")
    head_start = original.index("  heads:")
    for line in original[head_start:].splitlines():
        print(f"   {line}")

    print("\n== 2. a hand edit of the text: heads.cls now reads tower 1's output")
    moved = replace_once(
        original, "input: tensor tower_0/dense/Relu:0", "input: tensor tower_1/dense/Relu:0"
    )
    moved = replace_once(moved, "tensor tower_0/head_cls/", "tensor tower_1/head_cls/", count=2)
    moved_path = write(os.path.join(out, "moved.yaml"), moved)
    show_diff(original, moved, "model.yaml", "moved.yaml")
    moved_spec = ng.load_spec(moved_path)
    report = ng.check(moved_spec, graph)
    print(f"   ng.check(ng.load_spec('moved.yaml'), graph): {report}")
    if not report.ok:
        raise SystemExit(f"hand_edit: the moved spec does not bind:\n{report}")
    rebuilt = ng.from_graph(moved_spec, graph)
    head = rebuilt.heads["cls"]
    got = session.run(head.probs, {rebuilt.x: x})
    on_tower_1 = bool(np.array_equal(got, tower_probs[1]))
    on_tower_0 = bool(np.array_equal(got, tower_probs[0]))
    print(f"   rebuilt heads.cls.input is {head.input.name}; probs are tower 1's: {on_tower_1}")
    print(f"   (and no longer tower 0's: {not on_tower_0}); same weights: {head.w.name}")
    if not on_tower_1 or on_tower_0:
        raise SystemExit("hand_edit: the moved head does not give tower 1's numbers")

    print("\n== 3. the same move with spec.rescope, for a whole sub-network at once")
    rescoped = ng.load_spec(original_path).rescope("tower_0/", "tower_1/", subtree="heads.cls")
    same_as_hand_edit = rescoped == moved_spec
    print('   spec.rescope("tower_0/", "tower_1/", subtree="heads.cls")')
    print(f"   equal to the hand-edited spec: {same_as_hand_edit}")
    print(f"   ng.check: {ng.check(rescoped, graph)}")
    if not same_as_hand_edit:
        raise SystemExit("hand_edit: rescope and the hand edit disagree")

    print("\n== 4. a wrong edit: two typos, 'towr_1' and an output index ':7'")
    typo = replace_once(
        moved, "input: tensor tower_1/dense/Relu:0", "input: tensor towr_1/dense/Relu:0"
    )
    typo = replace_once(typo, "tower_1/head_cls/probs:0", "tower_1/head_cls/probs:7")
    typo_path = write(os.path.join(out, "typo.yaml"), typo)
    show_diff(moved, typo, "moved.yaml", "typo.yaml")
    typo_spec = ng.load_spec(typo_path)  # well-formed: only the graph can tell it is wrong
    typo_report = ng.check(typo_spec, graph)
    print("   ng.check(spec, graph) reports, never raises:")
    for line in str(typo_report).splitlines():
        print(f"     {line}")
    try:
        ng.from_graph(typo_spec, graph)
    except ng.BindingError as exc:
        binding_error = exc
    else:
        raise SystemExit("hand_edit: from_graph accepted a spec with typos")
    print(
        f"   ng.from_graph(spec, graph) raises ng.BindingError (err.path = {binding_error.path!r}):"
    )
    for line in binding_error.message.splitlines():
        print(f"     {line}")

    print("\n== 5. malformed edits: ng.load_spec raises ng.SpecError with the file and line")
    no_kind = replace_once(
        moved, "input: tensor tower_1/dense/Relu:0", "input: tower_1/dense/Relu:0"
    )
    no_kind_path = write(os.path.join(out, "no_kind.yaml"), no_kind)
    show_diff(moved, no_kind, "moved.yaml", "no_kind.yaml")
    try:
        ng.load_spec(no_kind_path)
    except ng.SpecError as exc:
        kind_error = exc
    else:
        raise SystemExit("hand_edit: a value without its kind word was accepted")
    print(f"   ng.SpecError (err.path = {kind_error.path!r}, err.line = {kind_error.line}):")
    print(f"     {kind_error.message}")

    indent = replace_once(
        moved, "\n          w: variable head_cls/w:0", "\n           w: variable head_cls/w:0"
    )
    indent_path = write(os.path.join(out, "indent.yaml"), indent)
    show_diff(moved, indent, "moved.yaml", "indent.yaml")
    try:
        ng.load_spec(indent_path)
    except ng.SpecError as exc:
        indent_error = exc
    else:
        raise SystemExit("hand_edit: a broken indentation was accepted")
    print(f"   ng.SpecError (err.line = {indent_error.line}):")
    print(f"     {indent_error.message}")
    session.close()

    return {
        "out": out,
        "original_yaml": original,
        "moved_yaml": moved,
        "moved_check": str(report),
        "moved_on_tower_1": on_tower_1,
        "rescope_equals_hand_edit": same_as_hand_edit,
        "input_line": line_of(moved, "input: tensor"),
        "probs_line": line_of(moved, "probs: tensor"),
        "w_line": line_of(moved, "w: variable head_cls/w:0"),
        "typo_check": str(typo_report),
        "typo_findings": [
            {"path": f.path, "status": f.status, "closest": f.closest, "line": f.line}
            for f in typo_report.findings
            if not f.ok
        ],
        "binding_error": binding_error.message,
        "binding_error_path": binding_error.path,
        "spec_error": kind_error.message,
        "spec_error_path": kind_error.path,
        "spec_error_line": kind_error.line,
        "indent_error": indent_error.message,
        "indent_error_line": indent_error.line,
    }


if __name__ == "__main__":
    main(sys.argv[1:])
