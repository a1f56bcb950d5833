"""ng.scan and trusted=False loads: honest bundles pass, bound fields reaching the world do not."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tensorflow as tf
from conftest import edit_graph
from tensorflow.core.framework import node_def_pb2

import nestgraph as ng
from benchmarks._models import build_tower_model
from nestgraph.bundle import _closure, _scan

tf1 = tf.compat.v1
ALLOW = ["benchmarks._models.*"]


class Net(ng.GraphConvertible):
    """A bag of bound fields; each test sets the ones it needs."""

    def __init__(self, **fields: Any) -> None:
        self.__dict__.update(fields)


def _dumps(build: Callable[[], Any]) -> bytes:
    """The bundle of the model ``build()`` makes in a fresh graph, variables initialized."""
    with tf.Graph().as_default():
        model = build()
        with tf1.Session() as session:
            session.run(tf1.global_variables_initializer())
            return ng.dumps(model, session)


def _small_dense() -> Net:
    x = tf1.placeholder(tf.float32, [None, 3], name="x")
    w = tf1.get_variable("w", [3, 2])
    return Net(x=x, w=w, out=tf.matmul(x, w, name="out"))


# --------------------------------------------------------------------------- honest bundles


def test_an_honest_training_model_scans_clean_and_loads() -> None:
    def build() -> Any:
        return build_tower_model(towers=2, layers=2, width=4)

    blob = _dumps(build)
    report = ng.scan(blob)
    assert report.ok and report.findings == ()
    # Its own Saver ops are on the list, but reached from no bound field.
    assert {f.op_type for f in report.unreached} >= {"SaveV2", "RestoreV2", "MergeV2Checkpoints"}
    assert all(f.paths == () for f in report.unreached)
    assert "clean" in str(report) and "save/SaveV2" in str(report)
    model, session = ng.loads(blob, allow=ALLOW)
    with session:
        assert type(model).__name__ == "TowerModel"


@pytest.mark.filterwarnings("ignore:`tf.layers:UserWarning")
def test_layers_with_batch_norm_dropout_and_losses_scan_clean() -> None:
    def build() -> Net:
        x = tf1.placeholder(tf.float32, [None, 6, 6, 1], name="x")
        y = tf1.placeholder(tf.int32, [None], name="y")
        h = tf1.layers.conv2d(x, 2, 3, padding="same", activation=tf.nn.relu)
        h = tf1.layers.flatten(tf1.layers.max_pooling2d(h, 2, 2))
        h = tf1.layers.batch_normalization(tf1.layers.dense(h, 4), training=True)
        out = tf1.layers.dense(tf1.layers.dropout(h, 0.5, training=True), 3)
        loss = tf1.losses.softmax_cross_entropy(tf.one_hot(y, 3), out) + tf.reduce_sum(out**2)
        step = tf1.train.get_or_create_global_step()
        with tf.control_dependencies(tf1.get_collection(tf1.GraphKeys.UPDATE_OPS)):
            train = tf1.train.AdamOptimizer(0.01).minimize(loss, global_step=step)
        return Net(x=x, y=y, out=out, loss=loss, train=train, step=step)

    report = ng.scan(_dumps(build))
    assert report.ok, str(report)


def test_a_tf_data_iterator_model_scans_clean() -> None:
    def build() -> Net:
        values = np.arange(16, dtype=np.float32).reshape(8, 2)
        dataset = tf.data.Dataset.from_tensor_slices(values).map(lambda v: v * 2.0)
        iterator = tf1.data.make_initializable_iterator(dataset.shuffle(4, seed=1).batch(2))
        batch = iterator.get_next()
        return Net(batch=batch, start=iterator.initializer, total=tf.reduce_sum(batch))

    blob = _dumps(build)
    assert ng.scan(blob).ok, str(ng.scan(blob))
    model, session = ng.loads(blob)
    with session:
        session.run(model.start)
        assert session.run(model.total) > 0


# --------------------------------------------------------------------------- hostile bundles


def _with_write_file() -> Net:
    net = _small_dense()
    write = tf.io.write_file("/tmp/nestgraph-scan-never-written", tf.strings.as_string(1.0))
    with tf.control_dependencies([write]):
        net.out = tf.identity(net.out, name="out_after_write")
    return net


def _with_py_func() -> Net:
    x = tf1.placeholder(tf.float32, [2], name="x")
    (called,) = tf1.py_func(lambda v: v + 1, [x], [tf.float32], name="callback")
    return Net(x=x, out=called)


def _with_read_file() -> Net:
    contents = tf.io.read_file("/etc/hostname", name="peek")
    return Net(length=tf.strings.length(contents))


def _with_print() -> Net:
    net = _small_dense()
    net.out = tf.identity(net.out)
    with tf.control_dependencies([tf.print("leak", net.x, name="say")]):
        net.loss = tf.reduce_sum(net.out, name="loss")
    return net


def _with_function_body() -> Net:
    @tf.function
    def hidden(v: Any) -> Any:
        tf.io.write_file("/tmp/nestgraph-scan-never-written", tf.strings.as_string(v[0]))
        return v * 2.0

    x = tf1.placeholder(tf.float32, [2], name="x")
    return Net(x=x, doubled=hidden(x))


def _with_cond_branch() -> Net:
    x = tf1.placeholder(tf.float32, [2], name="x")

    def noisy() -> Any:
        with tf.control_dependencies([tf.print("branch taken")]):
            return tf.identity(x)

    return Net(x=x, picked=tf.cond(tf.reduce_sum(x) > 0, noisy, lambda: x))


@pytest.mark.parametrize(
    ("build", "op_type", "family", "path"),
    [
        (_with_write_file, "WriteFile", "file", "out"),
        (_with_py_func, "PyFunc", "python", "out"),
        (_with_read_file, "ReadFile", "file", "length"),
        (_with_print, "PrintV2", "debug", "loss"),
        (_with_function_body, "WriteFile", "file", "doubled"),
        (_with_cond_branch, "PrintV2", "debug", "picked"),
    ],
)
def test_a_bound_field_reaching_a_listed_op_is_refused_unless_trusted(
    build: Callable[[], Net], op_type: str, family: str, path: str
) -> None:
    blob = _dumps(build)
    report = ng.scan(blob)
    assert not report.ok
    (finding,) = [f for f in report.findings if f.op_type == op_type]
    assert finding.family == family and path in finding.paths
    with pytest.raises(ng.BundleError, match=rf"(?s)refused.*{op_type} .*reached from .*{path}"):
        ng.loads(blob)
    model, session = ng.loads(blob, trusted=True)
    with session:
        assert isinstance(model, Net)
    if build in (_with_function_body, _with_cond_branch):
        assert finding.function is not None and "in function" in finding.where


def test_load_from_a_file_is_refused_too(tmp_path: Path) -> None:
    path = tmp_path / "evil.ng"
    path.write_bytes(_dumps(_with_write_file))
    with pytest.raises(ng.BundleError, match=r"(?s)evil.ng: refused.*WriteFile"):
        ng.load(path)
    model, session = ng.load(path, trusted=True)
    session.close()
    assert isinstance(model, Net)
    assert ng.scan(str(path)).file == str(path)
    with open(path, "rb") as stream:
        assert not ng.scan(stream).ok
    remote = "ram://nestgraph-test-scan/evil.ng"
    with tf.io.gfile.GFile(remote, "wb") as out:
        out.write(path.read_bytes())
    try:
        assert ng.scan(remote).findings[0].op_type == "WriteFile"
    finally:
        tf.io.gfile.remove(remote)
    with pytest.raises(ng.BundleError, match="nestgraph-test-scan/absent.ng: no such bundle"):
        ng.scan("ram://nestgraph-test-scan/absent.ng")


def test_only_the_paths_that_reach_an_op_are_listed_and_subtree_narrows_the_scan() -> None:
    def build() -> Net:
        net = _with_write_file()
        net.head = Net(clean=tf.nn.relu(net.x, name="clean"))
        net.tail = Net(dirty=net.out)
        return net

    blob = _dumps(build)
    (finding,) = ng.scan(blob).findings
    assert finding.paths == ("out", "tail.dirty")
    assert ng.scan(blob, subtree="tail").findings[0].paths == ("dirty",)
    assert ng.scan(blob, subtree="head").ok
    head, session = ng.loads(blob, subtree="head")
    session.close()
    assert head.clean.name == "clean:0"
    with pytest.raises(ng.BundleError, match="WriteFile"):
        ng.loads(blob, subtree="tail")


def test_a_bound_variable_brings_its_initializer_into_the_closure() -> None:
    def build() -> Net:
        seed = tf.cast(tf.strings.length(tf.io.read_file(__file__)), tf.float32)
        return Net(v=tf1.Variable(tf.fill([2], seed), name="v"))

    (finding,) = ng.scan(_dumps(build)).findings
    assert finding.op_type == "ReadFile" and finding.paths == ("v",)


def test_allocation_sizes_are_read_from_constants_and_shapes() -> None:
    def build() -> Net:
        x = tf1.placeholder(tf.float32, [None, 3], name="x")
        n = tf1.placeholder(tf.int32, [], name="n")
        return Net(
            small=tf.fill([4, 4], 1.0, name="small"),
            like_x=tf.fill(tf.shape(x), 1.0, name="like_x"),
            huge=tf.fill([1 << 20, 1 << 20], 1.0, name="huge"),
            fed=tf.fill(tf.stack([n, n]), 1.0, name="fed"),
        )

    report = ng.scan(_dumps(build))
    found = {f.op: f for f in report.findings}
    assert set(found) == {"huge", "fed"}
    assert all(f.family == "allocation" for f in found.values())


# --------------------------------------------------------------------------- doctored graphs


def _add_node(meta_graph: Any, name: str, op: str, inputs: list[str]) -> None:
    node = meta_graph.graph_def.node.add()
    node.name, node.op = name, op
    node.input.extend(inputs)


def test_an_unknown_op_type_or_missing_function_is_a_finding() -> None:
    blob = _dumps(_small_dense)

    def edit(meta_graph: Any) -> None:
        _add_node(meta_graph, "mystery", "NotARealOpAnywhere", [])
        out = next(n for n in meta_graph.graph_def.node if n.name == "out")
        out.input.append("^mystery")
        caller = meta_graph.graph_def.node.add()
        caller.CopyFrom(node_def_pb2.NodeDef(name="caller", op="PartitionedCall"))
        caller.attr["f"].func.name = "no_such_function"
        out.input.append("^caller")

    report = ng.scan(edit_graph(blob, edit))
    assert sorted((f.op, f.family) for f in report.findings) == [
        ("caller", "unknown"),
        ("mystery", "unknown"),
    ]
    with pytest.raises(ng.BundleError, match="NotARealOpAnywhere 'mystery'"):
        ng.loads(edit_graph(blob, edit))


def test_cycles_and_long_chains_are_walked_without_recursion() -> None:
    blob = _dumps(_small_dense)
    length = 20_000

    def edit(meta_graph: Any) -> None:
        _add_node(meta_graph, "chain_0", "WriteFile", [])
        for i in range(1, length):
            _add_node(meta_graph, f"chain_{i}", "NoOp", [f"^chain_{i - 1}", f"^chain_{i + 1}"])
        _add_node(meta_graph, f"chain_{length}", "NoOp", [f"^chain_{length - 1}"])
        out = next(n for n in meta_graph.graph_def.node if n.name == "out")
        out.input.append(f"^chain_{length // 2}")

    (finding,) = ng.scan(edit_graph(blob, edit)).findings
    assert finding.op == "chain_0" and finding.paths == ("out",)


def test_recursive_functions_terminate() -> None:
    blob = _dumps(_small_dense)

    def edit(meta_graph: Any) -> None:
        library = meta_graph.graph_def.library
        for name, other in (("ping", "pong"), ("pong", "ping")):
            function = library.function.add()
            function.signature.name = name
            call = function.node_def.add()
            call.name, call.op = "call", other
        leak = library.function[1].node_def.add()
        leak.name, leak.op = "leak", "EagerPyFunc"
        _add_node(meta_graph, "enter", "ping", [])
        out = next(n for n in meta_graph.graph_def.node if n.name == "out")
        out.input.append("^enter")

    (finding,) = ng.scan(edit_graph(blob, edit)).findings
    assert (finding.op_type, finding.function, finding.paths) == ("EagerPyFunc", "pong", ("out",))


# --------------------------------------------------------------------------- the command


def test_the_command_prints_a_table_and_exits_by_the_rule(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from nestgraph import cli

    clean, dirty = tmp_path / "clean.ng", tmp_path / "dirty.ng"
    clean.write_bytes(_dumps(_small_dense))
    dirty.write_bytes(_dumps(_with_py_func))
    assert cli.main(["scan", str(clean)]) == 0
    assert capsys.readouterr().out.startswith(f"{clean}: clean")
    assert cli.main(["scan", str(dirty)]) == 1
    text = capsys.readouterr().out
    assert "PyFunc" in text and "callback" in text and "python" in text
    assert "calls a Python function" in text
    assert cli.main(["scan", str(tmp_path / "missing.ng")]) == 2
    assert "no such" in capsys.readouterr().err
    if os.path.exists("/dev/zero"):
        assert cli.main(["scan", "/dev/zero"]) == 2
        assert "nestgraph: error: /dev/zero" in capsys.readouterr().err


def test_findings_are_data() -> None:
    report = ng.scan(_dumps(_with_py_func))
    assert isinstance(report, ng.ScanReport)
    with pytest.raises(AttributeError):
        report.findings = ()  # type: ignore[misc]
    assert not report.ok and str(report) == _scan.format_report(report)


def test_the_table_names_real_op_types_and_leaves_pure_ops_alone() -> None:
    from tensorflow.python.framework import op_def_registry

    from nestgraph.bundle import _optable

    exact = {op for _, ops, _ in _optable.FAMILIES.values() for op in ops} | set(_optable._SIZED)
    # A typo would be a hole in the list. Rpc and TryRpc came with tf.contrib.rpc: kept
    # for graphs written by a TensorFlow that had them.
    assert {op for op in exact if op_def_registry.get(op) is None} == {"Rpc", "TryRpc"}

    def judge(op: str) -> Any:
        return _optable.classify(node_def_pb2.NodeDef(op=op), lambda ref: None)

    found = {judge(op) for op in dir(tf.raw_ops)}
    assert {d.family for d in found if d is not None} == set(_optable.FAMILIES) | {"allocation"}
    for pure in ("MatMul", "Assert", "Identity", "ScalarSummary", "Snapshot", "IteratorGetNext"):
        assert judge(pure) is None, pure


def test_thousands_of_listed_ops_are_capped_in_the_report(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_closure, "MAX_FINDINGS", 10)
    blob = _dumps(_small_dense)

    def edit(meta_graph: Any) -> None:
        out = next(n for n in meta_graph.graph_def.node if n.name == "out")
        for i in range(25):
            _add_node(meta_graph, f"say_{i}", "PrintV2", [])
            out.input.append(f"^say_{i}")

    report = ng.scan(edit_graph(blob, edit))
    # Ten tracked one by one (the Saver's own ops among them, unreached), then one for the rest.
    assert len(report.findings) + len(report.unreached) == 11
    listed = len(report.findings) - 1
    last = report.findings[-1]
    assert last.op == f"say_{listed} (+{25 - listed - 1} more)" and last.family == "many"
    assert all(f.paths == ("out",) for f in report.findings)


def test_a_constant_that_inflates_is_an_allocation_finding(monkeypatch: pytest.MonkeyPatch) -> None:
    from nestgraph.bundle import _optable

    monkeypatch.setattr(_optable, "MAX_ELEMENTS", 100)
    blob = _dumps(_small_dense)

    def edit(meta_graph: Any) -> None:
        out = next(n for n in meta_graph.graph_def.node if n.name == "out")
        for name, values in (("inflated", [7.0]), ("carried", [float(i) for i in range(200)])):
            const = tf.make_tensor_proto(np.zeros(200, np.float32), dtype=tf.float32)
            const.ClearField("tensor_content")
            const.float_val.extend(values)
            node = node_def_pb2.NodeDef(name=name, op="Const")
            node.attr["value"].tensor.CopyFrom(const)
            node.attr["dtype"].type = const.dtype
            meta_graph.graph_def.node.append(node)
            out.input.append(f"^{name}")

    (finding,) = ng.scan(edit_graph(blob, edit)).findings
    assert (finding.op, finding.family) == ("inflated", "allocation")
    assert "declaring 200 elements from 1 values" in finding.reason


def test_a_long_chain_of_functions_is_walked_once() -> None:
    blob = _dumps(_small_dense)
    length = 3000

    def edit(meta_graph: Any) -> None:
        library = meta_graph.graph_def.library
        for i in range(length):
            function = library.function.add()
            function.signature.name = f"f_{i}"
            call = function.node_def.add()
            call.name, call.op = "next", f"f_{i + 1}" if i + 1 < length else "EagerPyFunc"
        out = next(n for n in meta_graph.graph_def.node if n.name == "out")
        for i in range(0, length, 7):
            caller = node_def_pb2.NodeDef(name=f"call_{i}", op="PartitionedCall")
            caller.attr["f"].func.name = f"f_{i}"
            meta_graph.graph_def.node.append(caller)
            out.input.append(f"^call_{i}")

    (finding,) = ng.scan(edit_graph(blob, edit)).findings
    assert (finding.op_type, finding.function) == ("EagerPyFunc", f"f_{length - 1}")


def test_a_saver_field_may_reach_its_checkpoint_ops_but_nothing_else() -> None:
    def honest() -> Net:
        net = _small_dense()
        net.saver = tf1.train.Saver([net.w])
        return net

    blob = _dumps(honest)
    assert ng.scan(blob).ok  # its save and restore ops are what a Saver is for
    ng.loads(blob, generic=True)[1].close()

    def restore_writes_a_file() -> Net:
        net = honest()
        evil = tf.io.write_file("/tmp/nestgraph-should-not-exist", "x", name="evil")
        net.saver.saver_def.restore_op_name = evil.name
        return net

    hostile = _dumps(restore_writes_a_file)
    report = ng.scan(hostile)
    assert [(f.op, f.paths) for f in report.findings] == [("evil", ("saver.restore",))]
    with pytest.raises(ng.BundleError, match=r"WriteFile 'evil' .* reached from saver\.restore"):
        ng.loads(hostile, generic=True)
    assert not os.path.exists("/tmp/nestgraph-should-not-exist")


def test_an_embedding_lookup_on_a_partitioned_variable_scans_clean() -> None:
    def embedding() -> Net:
        ids = tf1.placeholder(tf.int64, [None], name="ids")
        table = tf1.get_variable("table", [20, 4], partitioner=tf1.fixed_size_partitioner(3))
        return Net(ids=ids, table=table, out=tf.nn.embedding_lookup(table, ids))

    assert ng.scan(_dumps(embedding)).ok  # its Range ops count rows of existing tensors


def test_allocations_sized_by_constants_or_products_of_sizes_stay_findings() -> None:
    def quadratic() -> Net:
        x = tf1.placeholder(tf.float32, [None], name="x")
        n = tf.size(x)
        return Net(x=x, out=tf.fill(tf.stack([n, n]), 1.0), r=tf.range(0, n * n))

    report = ng.scan(_dumps(quadratic))
    assert sorted(f.op_type for f in report.findings) == ["Fill", "Range"]
