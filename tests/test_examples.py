"""Every example in ``examples/`` runs, and says what it claims; so does the spec benchmark.

Each example runs in its own subprocess: examples set environment variables
before they import TensorFlow, which only works in a fresh interpreter. An
example exposes ``main(argv) -> dict``; the driver below calls it and prints the
dict as JSON on a marked line, so a test can check the numbers as well as the
printed text. Add one ``test_example_<name>`` function per new example
(``test_every_example_has_a_test`` insists).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import tensorflow as tf
from conftest import run_python

import nestgraph as ng

tf1 = tf.compat.v1

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
BENCHMARKS = ROOT / "benchmarks"
TIMEOUT_S = 180
RESULT_MARKER = "@@nestgraph-example-result@@ "

# Imports the example as a module (so its classes have a stable path) and runs main().
_DRIVER = """
import importlib, json, sys
sys.path.insert(0, {directory!r})
result = importlib.import_module({module!r}).main({argv!r})
print({marker!r} + json.dumps(result))
"""


# TensorFlow's native start-up chatter on a machine without a GPU; examples keep it off stderr.
CHATTER = ("cuInit", "oneDNN", "absl::InitializeLog", "cuda drivers")


def _spawn(args: list[str], **env_extra: str) -> subprocess.CompletedProcess[str]:
    # The scripts must set up TensorFlow themselves; don't lend them the test process's set-up.
    return run_python(
        *args,
        cwd=ROOT,
        env=env_extra,
        unset=("TF_USE_LEGACY_KERAS", "NESTGRAPH_DEBUG"),
        timeout=TIMEOUT_S,
    )


def _run(args: list[str], quiet: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a script; with ``quiet``, insist that TensorFlow's chatter stayed off its stderr."""
    proc = _spawn(args)
    assert proc.returncode == 0, (
        f"exit {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    )
    noise = [line for line in proc.stderr.splitlines() if any(c in line for c in CHATTER)]
    assert not (quiet and noise), f"TensorFlow's start-up chatter reached stderr: {noise}"
    return proc


def run_example(name: str, *argv: str) -> tuple[dict[str, Any], str]:
    """Run ``examples/<name>.py``'s ``main(argv)``; its returned dict and its stdout."""
    driver = _DRIVER.format(
        directory=str(EXAMPLES), module=name, argv=list(argv), marker=RESULT_MARKER
    )
    stdout = _run(["-c", driver]).stdout
    marked = [line for line in stdout.splitlines() if line.startswith(RESULT_MARKER)]
    assert len(marked) == 1, stdout[-2000:]
    return json.loads(marked[0][len(RESULT_MARKER) :]), stdout


def test_every_example_has_a_test() -> None:
    examples = sorted(p.stem for p in EXAMPLES.glob("*.py") if not p.stem.startswith("_"))
    assert examples, "no examples found"
    untested = [name for name in examples if f"test_example_{name}" not in globals()]
    assert not untested, f"add a test_example_<name> function to {__file__} for {untested}"


def test_quiet_output_still_shows_real_errors_and_debug_shows_everything() -> None:
    demo = str(EXAMPLES / "demo.py")
    quiet = _spawn([demo, "--no-such-option"])
    assert quiet.returncode == 2
    assert "demo.py: error: unrecognized arguments: --no-such-option" in quiet.stderr
    assert not any(c in quiet.stderr for c in CHATTER), quiet.stderr
    loud = _spawn([demo, "--no-such-option"], NESTGRAPH_DEBUG="1")
    assert loud.returncode == 2 and "unrecognized arguments" in loud.stderr
    if not any(c in loud.stderr for c in CHATTER):
        pytest.skip("this TensorFlow build prints no start-up chatter here; nothing to hide")
    assert len(loud.stderr.splitlines()) > len(quiet.stderr.splitlines())


# --------------------------------------------------------------------------- examples


def test_example_composite_mnist(tmp_path: Path) -> None:
    result, stdout = run_example("composite_mnist", "--out", str(tmp_path))
    before, after = result["before"], result["after"]

    # It learned something, and the rebuilt model scores exactly the same.
    assert before["digit_accuracy"] > 0.8
    assert after["digit_accuracy"] == before["digit_accuracy"]
    assert after["parity_accuracy"] == before["parity_accuracy"]
    assert after["parity_subtree_accuracy"] == before["parity_accuracy"]
    assert after["loss"] == pytest.approx(before["loss"], rel=1e-5)
    assert after["global_step"] == result["steps"]
    assert after["learning_rate"] == pytest.approx(3e-3)
    assert after["blocks"] == 2

    # The spec is a tree with the model's dotted paths, nothing skipped.
    assert result["skipped"] == {}
    paths = set(result["paths"])
    assert {
        "x",
        "y",
        "blocks.0.conv",
        "blocks.0.pool",
        "blocks.0.kernel",
        "blocks.1.kernel",
        "features",
        "heads.digit.accuracy",
        "heads.digit.kernel",
        "heads.parity.logits",
        "loss",
        "global_step",
        "train_op",
        "accuracy",
    } <= paths
    assert not any(p.startswith("classifier") for p in paths)  # a ref, not a copy
    assert result["bindings"] == len(paths) == 27
    for line in (
        "nestgraph: 1",
        "class: composite_mnist:MNISTModel",
        "- class: composite_mnist:ConvBlock",
        "kernel: variable block_0/conv/kernel:0",
        "accuracy: tensor digit/accuracy:0",
        "classifier: ref heads.digit",
        "train_op: op train",
        "learning_rate: 0.003",
    ):
        assert line in stdout, line
    assert "digit_accuracy:" in stdout and "after rebuilding" in stdout

    # The files it wrote rebuild the model in this process too, without the example's code.
    checkpoints = sorted(tmp_path.glob("model-*.meta"))
    assert len(checkpoints) == 1
    spec = ng.load_spec(tmp_path / "model.yaml")
    assert sorted(spec.flatten()) == result["paths"]
    with tf.Graph().as_default() as graph:
        tf1.train.import_meta_graph(str(checkpoints[0]))
        assert ng.check(spec, graph).ok
        with pytest.raises(
            ng.ClassNotAllowedError, match=r"'composite_mnist:MNISTModel' is not allowed"
        ):
            ng.from_graph(spec, graph)
        generic = ng.from_graph(spec, graph, generic=True)
        assert isinstance(generic, ng.Node)
        assert generic.heads["digit"].accuracy is graph.get_tensor_by_name("digit/accuracy:0")
        assert generic.classifier is generic.heads["digit"]
        assert generic.blocks[1].filters == 16


def test_example_demo(tmp_path: Path) -> None:
    result, stdout = run_example("demo", "--out", str(tmp_path))
    assert result["identical"] is True
    assert 0 < result["sub_ops"] < result["full_ops"]  # only heads.digit was loaded
    assert Path(result["bundle"]).is_file()
    spec = ng.Spec.from_yaml(result["spec_yaml"])
    flat = spec.flatten()
    assert {"x", "heads.digit.probs", "heads.parity.logits", "towers.0.layers.1.w"} <= set(flat)
    assert "best_tower: ref towers.0" in result["spec_yaml"]
    assert "predictions identical to the original process: True" in stdout


# --------------------------------------------------------------------------- benchmarks


def test_spec_bench_quick_runs_and_prints_the_table() -> None:
    # The benchmark prints timings, not a user's output: its stderr is not checked.
    stdout = _run([str(BENCHMARKS / "spec_bench.py"), "--quick"], quiet=False).stdout
    assert "| operation | ours ms | TF ms | ratio | target | result |" in stdout
    rows = [line for line in stdout.splitlines() if line.startswith("| (")]
    assert [row[:4] for row in rows] == ["| (a", "| (b"]
    assert all(row.rstrip().endswith(("| pass |", "| FAIL |")) for row in rows)
    assert "bindings: 21; graph ops:" in stdout
    assert "libyaml" in stdout
    assert "command:" in stdout and "--quick" in stdout


def test_example_restore_without_code(tmp_path: Path) -> None:
    import numpy as np  # local: this file's header belongs to the existing tests

    result, stdout = run_example("restore_without_code", "--out", str(tmp_path))
    child = result["child"]

    # The child imported nothing of the example and rebuilt every object generically.
    assert child["model_modules"] == []
    assert child["generic"] is True
    assert child["root"] == "Node standing for restore_without_code:Model"
    assert child["head"] == "Node standing for restore_without_code:Head"
    assert child["input_name"] == "x:0"

    # Bit-identical predictions, whole model and heads.cls alone; the head's graph is smaller
    # and holds neither the other head nor the train step.
    assert result["full_identical"] is True
    assert result["sub_identical"] is True
    assert child["sub_equals_full"] is True
    assert 0 < result["sub_ops"] < result["full_ops"]
    # A full load holds the model's ops and nestgraph's own restore, not the bundle's saver.
    assert result["original_ops"] < result["full_ops"] < result["saved_ops"]
    assert child["sub_has_aux"] is False and child["sub_has_train"] is False

    # Checked again here, from the files, by a process that never imported the example.
    expected = np.asarray(result["expected"], dtype=np.float32)
    with np.load(tmp_path / "outputs.npz") as outputs:
        assert np.array_equal(outputs["full"], expected)
        assert np.array_equal(outputs["sub"], expected)
    head, session = ng.load(tmp_path / "model.ng", subtree="heads.cls", generic=True)
    with session:
        got = session.run(head.probs, {"x:0": np.load(tmp_path / "inputs.npy")})
    assert np.array_equal(got, expected)

    for line in (
        "== 3. a fresh process with no model code",
        "child | modules of the example imported here: none",
        "child | ng.load(bundle, subtree='heads.cls', generic=True) -> a Node standing for",
        "whole model restored generically: predictions bit-identical: True",
        f"heads.cls restored alone ({result['sub_ops']} ops instead of {result['full_ops']}): "
        "predictions bit-identical: True",
    ):
        assert line in stdout, line


def test_example_hand_edit(tmp_path: Path) -> None:
    result, stdout = run_example("hand_edit", "--out", str(tmp_path))
    original, moved = result["original_yaml"], result["moved_yaml"]
    input_line, probs_line = result["input_line"], result["probs_line"]

    # The hand edit changed exactly the three lines of heads.cls that name tower 0's tensors.
    changed = [
        (a, b) for a, b in zip(original.splitlines(), moved.splitlines(), strict=True) if a != b
    ]
    assert [b.strip() for _, b in changed] == [
        "input: tensor tower_1/dense/Relu:0",
        "logits: tensor tower_1/head_cls/logits:0",
        "probs: tensor tower_1/head_cls/probs:0",
    ]
    assert result["moved_check"] == "all 10 bindings found in the graph"
    assert result["moved_on_tower_1"] is True
    assert result["rescope_equals_hand_edit"] is True
    edited = ng.load_spec(tmp_path / "moved.yaml")
    assert edited == ng.load_spec(tmp_path / "model.yaml").rescope(
        "tower_0/", "tower_1/", subtree="heads.cls"
    )
    assert edited.flatten()["heads.cls.w"] == "head_cls/w:0"  # shared weights: not rescoped

    # Typos: ng.check reports both, with path, line and the closest name in the graph.
    assert result["typo_findings"] == [
        {
            "path": "heads.cls.input",
            "status": "missing",
            "closest": "tower_1/dense/Relu:0",
            "line": input_line,
        },
        {
            "path": "heads.cls.probs",
            "status": "missing",
            "closest": "tower_1/head_cls/probs:0",
            "line": probs_line,
        },
    ]
    input_problem = (
        f"heads.cls.input (line {input_line}): no tensor 'towr_1/dense/Relu:0' in the graph "
        "(closest: 'tower_1/dense/Relu:0')"
    )
    probs_problem = (
        f"heads.cls.probs (line {probs_line}): op 'tower_1/head_cls/probs' has 1 output(s), "
        "so no 'tower_1/head_cls/probs:7' (closest: 'tower_1/head_cls/probs:0')"
    )
    assert result["typo_check"].splitlines() == [
        "2 of 10 bindings have problems:",
        f"  {input_problem}",
        f"  {probs_problem}",
    ]
    # ...and ng.from_graph raises one BindingError saying the same.
    assert result["binding_error_path"] == "heads.cls.input"
    assert result["binding_error"].splitlines() == [
        "2 problems:",
        f"  {input_problem}",
        f"  {probs_problem}",
    ]

    # Malformed edits: SpecError with file, line and dotted path.
    assert result["spec_error_path"] == "heads.cls.input"
    assert result["spec_error_line"] == input_line
    assert result["spec_error"] == (
        f"{tmp_path / 'no_kind.yaml'}: heads.cls.input (line {input_line}): "
        "'tower_1/dense/Relu:0' does not start with a kind (tensor, op, variable, sparse, ref, "
        "str, skipped, or another kind of the spec format); a plain string is written "
        "'str tower_1/dense/Relu:0'"
    )
    with pytest.raises(ng.SpecError, match=rf"heads\.cls\.input \(line {input_line}\)"):
        ng.load_spec(tmp_path / "no_kind.yaml")
    assert result["indent_error_line"] == result["w_line"]
    assert result["indent_error"].startswith(
        f"{tmp_path / 'indent.yaml'}, line {result['w_line']}: invalid YAML"
    )

    assert "ng.check(ng.load_spec('moved.yaml'), graph): all 10 bindings found" in stdout
    assert "+          input: tensor tower_1/dense/Relu:0" in stdout
    assert "raises ng.BindingError (err.path = 'heads.cls.input')" in stdout


def test_example_serve_subnetwork(tmp_path: Path) -> None:
    import numpy as np  # local: this file's header belongs to the existing tests

    result, stdout = run_example("serve_subnetwork", "--out", str(tmp_path))

    # The SavedModel served from TF2 eager code gives the graph session's numbers.
    assert result["served_keys"] == ["probs"]
    assert result["served_max_abs_diff"] <= 1e-6
    # The frozen encoder: its own class, no variables, no head, fewer ops, a smaller file.
    assert result["encoder_class"] == "Encoder"
    assert result["encoder_variables"] == 0
    assert result["encoder_w_op"] == "Const"
    assert result["encoder_has_heads"] is False
    assert 0 < result["encoder_ops"] < result["full_ops"]
    assert 0 < result["encoder_bytes"] < result["bundle_bytes"]
    assert result["features_max_abs_diff"] <= 1e-6

    # Checked again here: the SavedModel against heads.cls loaded from the full bundle, and
    # the encoder bundle holds the encoder alone.
    x = np.random.default_rng(7).normal(size=(5, 8)).astype(np.float32)
    serving = tf.saved_model.load(str(tmp_path / "served")).signatures["serving_default"]
    served = serving(x=tf.constant(x))["probs"].numpy()
    head, session = ng.load(tmp_path / "model.ng", subtree="heads.cls", generic=True)
    with session:
        expected = session.run(head.probs, {"x:0": x})
    np.testing.assert_allclose(served, expected, rtol=0, atol=1e-6)
    encoder, session = ng.load(tmp_path / "encoder.ng", generic=True)
    with session:
        assert encoder.nestgraph_class == "serve_subnetwork:Encoder"
        assert not session.graph.get_collection(tf1.GraphKeys.GLOBAL_VARIABLES)
        assert {op.name.split("/")[0] for op in session.graph.get_operations()} == {
            "x",
            "encoder",
        }
        features = session.run(encoder.out, {encoder.x: x})
    assert features.shape == (5, 16)

    assert "max |served - session| =" in stdout
    assert "ng.load('encoder.ng') -> Encoder, 2 layers" in stdout


def test_example_existing_code(tmp_path: Path) -> None:
    result, stdout = run_example("existing_code", "--out", str(tmp_path))
    child = result["child"]
    # The fresh process got the same kinds of objects back, bound to the loaded session.
    assert child["class"] == "Policy"
    assert child["identical"] is True
    assert child["session_is_loaded"] is True
    assert child["saver"] == "Saver"
    assert child["learning_rate"] == "np.float32(0.1)"
    assert child["activation_is_tanh"] is True
    # Trained on from the saved step under MonitoredTrainingSession; the hook rotated.
    assert child["start_step"] == 5
    assert child["latest_step"] == 10 and child["latest"] == "model-10.ng"
    assert child["kept"] == ["model-10.ng", "model-9.ng"]
    assert "child | ng.load -> Policy; predictions bit-identical: True" in stdout
    # And the script runs as a plain script, quietly.
    script = _run([str(EXAMPLES / "existing_code.py"), "--out", str(tmp_path / "script")])
    assert "bundles kept: ['model-10.ng', 'model-9.ng']" in script.stdout
