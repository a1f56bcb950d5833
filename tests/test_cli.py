"""The command line, run as a person would: ``python -m nestgraph`` and the ``nestgraph`` script.

Spec-only commands run in subprocesses that never import TensorFlow, so they
are fast. The graph commands (check, show on a bundle, export, serve-export)
use one small model built once per module; only a handful of them run in a
subprocess (each pays TensorFlow's import), the rest call ``cli.main`` in this
process, where TensorFlow is already imported.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import stat
import subprocess
import sys
import textwrap
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tensorflow as tf

import nestgraph as ng
from nestgraph import bundle, cli

tf1 = tf.compat.v1

CONSOLE_SCRIPT = Path(sys.executable).with_name("nestgraph")
TIMEOUT = 120

# A hand-written spec: every kind of field, class paths that are never imported.
SPEC_YAML = textwrap.dedent(
    """\
    nestgraph: 1
    class: pkg.models:Model
    fields:
      x: tensor inputs/x:0
      layers:
      - class: pkg.models:Dense
        fields:
          w: variable enc/layer_0/w:0
          out: tensor enc/layer_0/Relu:0
      - class: pkg.models:Dense
        fields:
          w: variable enc/layer_1/w:0
          out: tensor enc/layer_1/Relu:0
      best: ref layers.0
      lr: 0.001
      name: str tiny model
      train: op train/Adam
      heads:
        dict:
          a.b: tensor heads/ab:0
      sp: sparse sp/indices:0 sp/values:0 sp/shape:0
      session: skipped a tf.compat.v1.Session is not part of the model
    """
)

SHOW_OUTPUT = """\
<root>        object    pkg.models:Model
x             tensor    inputs/x:0
layers        list      2 items
layers.0      object    pkg.models:Dense
layers.0.w    variable  enc/layer_0/w:0
layers.0.out  tensor    enc/layer_0/Relu:0
layers.1      object    pkg.models:Dense
layers.1.w    variable  enc/layer_1/w:0
layers.1.out  tensor    enc/layer_1/Relu:0
best          ref       layers.0
lr            value     0.001
name          value     "tiny model"
train         op        train/Adam
heads         dict      1 key
heads["a.b"]  tensor    heads/ab:0
sp            sparse    sp/indices:0 sp/values:0 sp/shape:0
session       skipped   a tf.compat.v1.Session is not part of the model
"""

FLATTEN_OUTPUT = """\
x\ttensor\tinputs/x:0
layers.0.w\tvariable\tenc/layer_0/w:0
layers.0.out\ttensor\tenc/layer_0/Relu:0
layers.1.w\tvariable\tenc/layer_1/w:0
layers.1.out\ttensor\tenc/layer_1/Relu:0
train\top\ttrain/Adam
heads["a.b"]\ttensor\theads/ab:0
sp.indices\ttensor\tsp/indices:0
sp.values\ttensor\tsp/values:0
sp.dense_shape\ttensor\tsp/shape:0
"""


# --------------------------------------------------------------------------- helpers


def run(*args: str, cwd: Path, script: bool = False) -> subprocess.CompletedProcess[str]:
    """The command in a fresh process: ``python -m nestgraph`` or the installed script."""
    command = [str(CONSOLE_SCRIPT)] if script else [sys.executable, "-m", "nestgraph"]
    return subprocess.run(
        [*command, *args], cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT, check=False
    )


def assert_error(result: Any, *fragments: str) -> None:
    """Exit 2, nothing on stdout, exactly one ``nestgraph: error:`` message, no traceback."""
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stdout == ""
    assert result.stderr.startswith("nestgraph: error: "), result.stderr
    assert result.stderr.count("nestgraph: error:") == 1
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr


def line_of(text: str, fragment: str) -> int:
    """The 1-based number of the first line of ``text`` containing ``fragment``."""
    return 1 + next(i for i, line in enumerate(text.splitlines()) if fragment in line)


@dataclass
class Captured:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def main(capsys: pytest.CaptureFixture[str]) -> Iterator[Any]:
    """``cli.main`` in this process, returning what it printed; TF's log level put back after."""
    level = tf.get_logger().level

    def call(*args: str) -> Captured:
        code = cli.main(list(args))
        out, err = capsys.readouterr()
        return Captured(code, out, err)

    yield call
    tf.get_logger().setLevel(level)


@pytest.fixture
def spec_dir(tmp_path: Path) -> Path:
    (tmp_path / "model.yaml").write_text(SPEC_YAML)
    return tmp_path


# --------------------------------------------------------------------------- a tiny real model


class Dense(ng.GraphConvertible):
    def __init__(self, x: Any, units: int, scope: str) -> None:
        with tf1.variable_scope(scope):
            self.w = tf1.get_variable("w", [x.shape[-1], units])
            self.out = tf.nn.relu(tf.matmul(x, self.w))


class Model(ng.GraphConvertible):
    def __init__(self) -> None:
        self.x = tf1.placeholder(tf.float32, [None, 4], name="x")
        self.layers = [Dense(self.x, 3, "l0")]
        self.layers.append(Dense(self.layers[0].out, 2, "l1"))
        self.best = self.layers[0]
        self.lr = 0.1
        loss = tf.reduce_sum(self.layers[1].out)
        self.step = tf1.train.GradientDescentOptimizer(self.lr).minimize(loss, name="step")
        self.sp = tf.SparseTensor(
            tf1.placeholder(tf.int64, [None, 2], name="sp_indices"),
            tf1.placeholder(tf.float32, [None], name="sp_values"),
            tf1.placeholder(tf.int64, [2], name="sp_shape"),
        )


@dataclass
class Files:
    """The tiny model on disk: its spec, a .meta file, a bundle; and its outputs on ``x``."""

    dir: Path
    spec: Path
    meta: Path
    bundle: Path
    x: np.ndarray
    out0: np.ndarray
    out1: np.ndarray


@pytest.fixture(scope="module")
def model_files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Files]:
    directory = tmp_path_factory.mktemp("model")
    graph = tf.Graph()
    with graph.as_default(), tf1.Session(graph=graph) as session:
        model = Model()
        session.run(tf1.global_variables_initializer())
        ng.save_spec(ng.to_graph(model), directory / "model.yaml")
        tf1.train.export_meta_graph(str(directory / "model.meta"))
        bundle.save(model, session, directory / "model.ng")
        x = np.arange(8, dtype=np.float32).reshape(2, 4) / 8
        out0, out1 = session.run([model.layers[0].out, model.layers[1].out], feed_dict={model.x: x})
    yield Files(
        directory,
        directory / "model.yaml",
        directory / "model.meta",
        directory / "model.ng",
        x,
        out0,
        out1,
    )


@pytest.fixture
def work(tmp_path: Path, model_files: Files) -> Path:
    """A fresh directory holding copies of the model's files (tests may damage them)."""
    for name in ("model.yaml", "model.meta", "model.ng"):
        shutil.copy(model_files.dir / name, tmp_path / name)
    return tmp_path


# --------------------------------------------------------------------------- show / flatten


def test_show_prints_one_line_per_field(spec_dir: Path) -> None:
    result = run("show", "model.yaml", cwd=spec_dir)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == SHOW_OUTPUT


def test_show_subtree_keeps_full_paths_and_follows_refs(spec_dir: Path) -> None:
    result = run("show", "model.yaml", "--subtree", "best", cwd=spec_dir)
    assert result.returncode == 0
    assert result.stdout.splitlines() == [
        "layers.0      object    pkg.models:Dense",
        "layers.0.w    variable  enc/layer_0/w:0",
        "layers.0.out  tensor    enc/layer_0/Relu:0",
    ]
    result = run("show", "model.yaml", "--subtree", "layers[1].w", cwd=spec_dir)
    assert result.stdout == "layers.1.w  variable  enc/layer_1/w:0\n"


def test_flatten_is_tab_separated_one_line_per_binding(spec_dir: Path) -> None:
    result = run("flatten", "model.yaml", cwd=spec_dir)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == FLATTEN_OUTPUT


def test_installed_console_script(spec_dir: Path) -> None:
    if not CONSOLE_SCRIPT.exists():
        pytest.skip(f"no console script at {CONSOLE_SCRIPT} (package not installed)")
    result = run("flatten", "model.yaml", cwd=spec_dir, script=True)
    assert (result.returncode, result.stdout, result.stderr) == (0, FLATTEN_OUTPUT, "")
    result = run("flatten", "missing.yaml", cwd=spec_dir, script=True)
    assert_error(result, "missing.yaml: no such file")


def test_version_and_help(spec_dir: Path) -> None:
    result = run("--version", cwd=spec_dir)
    assert (result.returncode, result.stdout.strip()) == (0, f"nestgraph {ng.__version__}")
    result = run("--help", cwd=spec_dir)
    assert result.returncode == 0
    for command in ("show", "flatten", "check", "diff", "rescope", "export", "serve-export"):
        assert command in result.stdout
    assert "exit status" in result.stdout


# --------------------------------------------------------------------------- diff


def test_diff_of_equal_specs_exits_0(spec_dir: Path) -> None:
    shutil.copy(spec_dir / "model.yaml", spec_dir / "same.yaml")
    result = run("diff", "model.yaml", "same.yaml", cwd=spec_dir)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == "no differences between model.yaml and same.yaml\n"


def test_diff_lists_removed_added_rebound_and_class_changes(spec_dir: Path) -> None:
    changed = (
        SPEC_YAML.replace("w: variable enc/layer_1/w:0", "w: variable enc/layer_1/w_1:0")
        .replace(
            "  - class: pkg.models:Dense\n    fields:\n      w: variable enc/layer_1",
            "  - class: pkg.models:Wide\n    fields:\n      w: variable enc/layer_1",
        )
        .replace("  train: op train/Adam\n", "")
        .replace("lr: 0.001", "lr: 0.01")
        .replace("  x: tensor inputs/x:0\n", "  x: variable inputs/x:0\n  keep: 0.5\n")
    )
    (spec_dir / "new.yaml").write_text(changed)
    result = run("diff", "model.yaml", "new.yaml", cwd=spec_dir)
    assert result.returncode == 1
    assert result.stderr == ""
    assert result.stdout.splitlines() == [
        "removed  train       op train/Adam",
        "added    keep        value 0.5",
        "rebound  x           tensor inputs/x:0 -> variable inputs/x:0",
        "rebound  layers.1.w  variable enc/layer_1/w:0 -> variable enc/layer_1/w_1:0",
        "class    layers.1    pkg.models:Dense -> pkg.models:Wide",
        "changed  lr          0.001 -> 0.01",
        "model.yaml and new.yaml differ: 1 removed, 1 added, 2 rebound, 1 class, 1 changed",
    ]


def test_diff_reports_a_field_that_changed_shape(spec_dir: Path) -> None:
    (spec_dir / "new.yaml").write_text(
        SPEC_YAML.replace("best: ref layers.0", "best: tensor best:0")
    )
    result = run("diff", "model.yaml", "new.yaml", cwd=spec_dir)
    assert result.returncode == 1
    assert result.stdout.splitlines()[0] == "changed  best  ref layers.0 -> tensor best:0"


# --------------------------------------------------------------------------- rescope / convert


def test_rescope_in_place_keeps_the_file_mode(spec_dir: Path) -> None:
    target = spec_dir / "model.yaml"
    target.chmod(0o640)
    result = run("rescope", "model.yaml", "enc/", "tower_1/", cwd=spec_dir)
    assert result.returncode == 0
    assert result.stdout == ""
    assert result.stderr == "model.yaml: 4 names rescoped 'enc/' -> 'tower_1/'\n"
    flat = ng.load_spec(target).flatten()
    assert flat["layers.0.w"] == "tower_1/layer_0/w:0"
    assert flat["x"] == "inputs/x:0"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert [p.name for p in spec_dir.iterdir()] == ["model.yaml"]  # no temporary left behind


def test_rescope_subtree_to_an_output_file(spec_dir: Path) -> None:
    result = run(
        "rescope",
        "model.yaml",
        "enc/",
        "t1/",
        "--subtree",
        "layers.1",
        "-o",
        "t1.json",
        cwd=spec_dir,
    )
    assert result.returncode == 0, result.stderr
    assert (spec_dir / "model.yaml").read_text() == SPEC_YAML
    flat = ng.Spec.from_dict(json.loads((spec_dir / "t1.json").read_text())).flatten()
    assert flat["layers.0.w"] == "enc/layer_0/w:0"
    assert flat["layers.1.w"] == "t1/layer_1/w:0"


def test_rescope_refuses_a_prefix_that_matches_nothing(spec_dir: Path) -> None:
    result = run("rescope", "model.yaml", "nope/", "x/", cwd=spec_dir)
    assert_error(result, "model.yaml: no name starts with 'nope/'")
    assert (spec_dir / "model.yaml").read_text() == SPEC_YAML


def test_convert_yaml_to_json_and_back(spec_dir: Path) -> None:
    result = run("convert", "model.yaml", "-o", "model.json", cwd=spec_dir)
    assert (result.returncode, result.stdout) == (0, "")
    assert result.stderr == "model.json: wrote the spec as JSON\n"
    data = json.loads((spec_dir / "model.json").read_text())
    assert data == ng.Spec.from_yaml(SPEC_YAML).to_dict()
    result = run("convert", "model.json", "-o", "again.yml", cwd=spec_dir)
    assert result.returncode == 0
    assert (spec_dir / "again.yml").read_text() == SPEC_YAML
    assert run("flatten", "model.json", cwd=spec_dir).stdout == FLATTEN_OUTPUT


# --------------------------------------------------------------------------- errors


def test_missing_file(spec_dir: Path) -> None:
    for args in (
        ["show", "nope.yaml"],
        ["flatten", "nope.yaml"],
        ["diff", "model.yaml", "nope.yaml"],
        ["rescope", "nope.yaml", "a/", "b/"],
        ["convert", "nope.yaml", "-o", "x.json"],
    ):
        assert_error(run(*args, cwd=spec_dir), "nope.yaml: no such file")


def test_malformed_yaml_names_file_and_line(spec_dir: Path) -> None:
    text = SPEC_YAML.replace("  lr: 0.001", "  lr: [0.001")
    (spec_dir / "broken.yaml").write_text(text)
    result = run("show", "broken.yaml", cwd=spec_dir)
    assert_error(result, "broken.yaml, line ", "invalid YAML")
    line = int(result.stderr.split("line ")[1].split(":")[0])
    # The parser reports where it gave up: on the bracket's line or just after it.
    assert line_of(text, "lr: [") <= line <= line_of(text, "lr: [") + 1


def test_invalid_spec_lists_every_problem_with_its_line(spec_dir: Path) -> None:
    text = SPEC_YAML.replace("tensor inputs/x:0", "tensor inputs/x").replace(
        "str tiny model", "tiny model"
    )
    (spec_dir / "bad.yaml").write_text(text)
    result = run("flatten", "bad.yaml", cwd=spec_dir)
    assert_error(
        result,
        "bad.yaml: 2 problems:",
        "x (line 4): bad tensor name 'inputs/x'",
        f"name (line {line_of(text, 'name:')}): 'tiny model' does not start with a kind",
    )


def test_malformed_json(spec_dir: Path) -> None:
    (spec_dir / "bad.json").write_text('{"nestgraph": 1,\n "class": }')
    assert_error(run("show", "bad.json", cwd=spec_dir), "bad.json, line 2: invalid JSON")


def test_bad_inputs_each_give_one_line(spec_dir: Path) -> None:
    (spec_dir / "binary.meta").write_bytes(b"\x0a\x8c\x0f\x12\x00garbage")
    (spec_dir / "empty.yaml").write_text("")
    (spec_dir / "fake.ng").write_bytes(b"PK\x03\x04 not really a zip")
    cases = {
        ("show", "."): ".: is a directory",
        ("show", "binary.meta"): "binary.meta: binary data, not a spec",
        ("show", "empty.yaml"): "empty.yaml, line 1: the spec is empty",
        ("flatten", "fake.ng"): "fake.ng: not a nestgraph bundle",
        ("show", "model.yaml", "--subtree", "layers.5"): "model.yaml: layers.5: no '5' here",
        ("show", "model.yaml", "--subtree", "a..b"): "model.yaml: malformed path 'a..b'",
        ("convert", "model.yaml", "-o", "no/such/dir/x.json"): "no/such/dir/x.json: cannot write",
        ("flatten", "gs://bucket/model.yaml"): "reads local files only",
    }
    for args, message in cases.items():
        assert_error(run(*args, cwd=spec_dir), message)


def test_bad_usage_exits_2_with_usage(spec_dir: Path) -> None:
    for args in (
        [],
        ["frobnicate"],
        ["show"],
        ["diff", "model.yaml"],
        ["convert", "model.yaml"],
        ["export", "model.ng", "-o", "x.ng"],
        ["serve-export", "m.ng", "-o", "d", "--input", "x", "--output", "y=z"],
        ["check", "model.yaml", "m.meta", "--scope-map", "nonsense"],
    ):
        result = run(*args, cwd=spec_dir)
        assert result.returncode == 2, args
        assert result.stdout == ""
        assert "usage: nestgraph" in result.stderr
        assert "Traceback" not in result.stderr


def test_debug_shows_the_traceback(spec_dir: Path) -> None:
    (spec_dir / "empty.yaml").write_text("")
    for args in (["--debug", "show", "empty.yaml"], ["show", "empty.yaml", "--debug"]):
        result = run(*args, cwd=spec_dir)
        assert result.returncode == 2
        assert result.stderr.startswith("Traceback (most recent call last):")
        assert "nestgraph.errors.SpecError: empty.yaml, line 1: the spec is empty" in result.stderr
        assert result.stderr.endswith("nestgraph: error: empty.yaml, line 1: the spec is empty\n")


def test_a_closed_pipe_ends_quietly(spec_dir: Path) -> None:
    fields = "\n".join(f"  f{i}: tensor scope/op_{i}:0" for i in range(20_000))
    (spec_dir / "big.yaml").write_text(f"nestgraph: 1\nclass: a:B\nfields:\n{fields}\n")
    process = subprocess.Popen(
        [sys.executable, "-m", "nestgraph", "flatten", "big.yaml"],
        cwd=spec_dir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    assert process.stdout.readline() == b"f0\ttensor\tscope/op_0:0\n"
    process.stdout.close()
    stderr = process.stderr.read()
    assert process.wait(TIMEOUT) == 141
    assert stderr == b""


# --------------------------------------------------------------------------- no TensorFlow


def test_spec_commands_never_import_tensorflow(work: Path) -> None:
    """Spec-only commands, and flatten on a bundle, answer without importing TensorFlow."""
    (work / "other.yaml").write_text(SPEC_YAML)
    script = textwrap.dedent(
        """\
        import contextlib, io, sys
        import nestgraph.cli
        commands = [
            ["show", "model.yaml"],
            ["show", "model.yaml", "--subtree", "layers.0"],
            ["flatten", "model.yaml"],
            ["flatten", "model.ng"],
            ["show", "model.ng", "--no-types"],
            ["diff", "model.yaml", "other.yaml"],
            ["diff", "model.ng", "model.yaml"],
            ["rescope", "model.yaml", "l0/", "m0/", "-o", "r.yaml"],
            ["convert", "model.ng", "-o", "c.json"],
            ["summary", "model.yaml", "--depth", "1"],
            ["show", "missing.yaml"],
        ]
        codes = []
        for argv in commands:
            out, err = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                codes.append(nestgraph.cli.main(argv))
        assert codes == [0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 2], codes
        assert "tensorflow" not in sys.modules, "a spec-only command imported tensorflow"
        print("ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "ok\n", "")


# --------------------------------------------------------------------------- bundles and graphs


def test_a_bundle_is_recognised_by_content(work: Path) -> None:
    shutil.copy(work / "model.ng", work / "bundle-named.yaml")
    shutil.copy(work / "model.yaml", work / "spec-named.ng")
    bundle_flat = run("flatten", "bundle-named.yaml", cwd=work)
    spec_flat = run("flatten", "spec-named.ng", cwd=work)
    assert bundle_flat.returncode == spec_flat.returncode == 0
    assert bundle_flat.stdout == spec_flat.stdout
    assert "layers.1.w\tvariable\tl1/w:0\n" in bundle_flat.stdout


def test_check_against_a_meta_graph_reports_each_problem(work: Path) -> None:
    text = (work / "model.yaml").read_text()
    text = text.replace("variable l1/w:0", "variable l1/W:0").replace("tensor x:0", "tensor x:1")
    (work / "edited.yaml").write_text(text)
    x_line, w_line = line_of(text, "tensor x:1"), line_of(text, "l1/W:0")
    result = run("check", "edited.yaml", "model.meta", cwd=work)
    assert result.returncode == 1
    assert result.stderr == ""  # TensorFlow's own log lines are held back
    assert result.stdout.splitlines() == [
        f"edited.yaml:{x_line}: x: op 'x' has 1 output(s), so no 'x:1' (closest: 'x:0')",
        f"edited.yaml:{w_line}: layers.1.w: no variable 'l1/W:0' in the graph (closest: 'l1/w:0')",
        "2 of 9 bindings have problems in model.meta",
    ]


def test_show_bundle_adds_dtype_and_shape(work: Path) -> None:
    script = CONSOLE_SCRIPT.exists()
    result = run("show", "model.ng", cwd=work, script=script)
    assert (result.returncode, result.stderr) == (0, "")
    rows = {line.split()[0]: line for line in result.stdout.splitlines()}
    assert rows["x"].split(None, 2)[2].split() == ["x:0", "float32", "(None,", "4)"]
    assert rows["layers.0.w"].endswith("float32 (4, 3)")
    assert rows["layers.1.out"].endswith("float32 (None, 2)")
    assert rows["step"].endswith("[NoOp]")
    assert rows["sp"].endswith("float32 sparse, rank 2")
    assert rows["<root>"].split()[1:] == ["object", "test_cli:Model"]


def test_export_frozen_subtree(work: Path, model_files: Files) -> None:
    result = run("export", "model.ng", "--subtree", "layers.1", "-o", "l1.ng", "--freeze", cwd=work)
    assert (result.returncode, result.stdout) == (0, "")
    assert result.stderr == "l1.ng: exported layers.1 (frozen)\n"
    kinds = {b.path: b.kind for b in ng.load_spec(work / "model.yaml").bindings()}
    assert kinds["layers.1.w"] == "variable"
    flat = run("flatten", "l1.ng", cwd=work).stdout
    assert flat == "w\ttensor\tl1/w:0\nout\ttensor\tl1/Relu:0\n"  # the variable became a constant
    layer, session = bundle.load(work / "l1.ng", generic=True)
    with session:
        inputs = session.graph.get_tensor_by_name("l0/Relu:0")
        got = session.run(layer.out, feed_dict={inputs: model_files.out0})
    np.testing.assert_allclose(got, model_files.out1, rtol=1e-6)


def test_serve_export_writes_a_saved_model(work: Path, model_files: Files) -> None:
    result = run(
        "serve-export",
        "model.ng",
        "-o",
        "served",
        "--input",
        "x=x",
        "--output",
        "probs=layers.1.out",
        "--output",
        "hidden=l0/Relu:0",
        cwd=work,
    )
    assert (result.returncode, result.stdout) == (0, "")
    assert result.stderr == "served: wrote a SavedModel (signature serving_default)\n"
    served = tf.saved_model.load(str(work / "served"))
    outputs = served.signatures["serving_default"](x=tf.constant(model_files.x))
    np.testing.assert_allclose(outputs["probs"].numpy(), model_files.out1, rtol=1e-6)
    np.testing.assert_allclose(outputs["hidden"].numpy(), model_files.out0, rtol=1e-6)


def test_graph_errors_in_a_subprocess_give_one_line(work: Path) -> None:
    (work / "garbage.meta").write_bytes(b"\xff\xfe this is not a protobuf \x00\x01")
    result = run("check", "model.yaml", "garbage.meta", cwd=work)
    assert_error(result, "garbage.meta: not a MetaGraphDef")


# ------------------------------------------------ graph commands in this process (TF loaded)


def test_check_against_a_bundle(main: Any, work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(work)
    result = main("check", "model.yaml", "model.ng")
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == "ok: all 9 bindings found in model.ng\n"
    result = main("check", "model.ng", "model.meta", "--subtree", "layers.1")
    assert result.stdout == "ok: all 2 bindings found in model.meta\n"


def test_check_scope_options(main: Any, work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(work)
    spec = ng.load_spec("model.yaml").rescope("l1/", "tower_1/")
    ng.save_spec(spec, "tower.json")
    result = main("check", "tower.json", "model.ng", "--subtree", "layers")
    assert result.returncode == 1
    assert result.stdout.splitlines()[0] == (
        "tower.json: layers.1.w: no variable 'tower_1/w:0' in the graph (closest: 'l1/w:0')"
    )  # no line numbers for JSON
    result = main("check", "tower.json", "model.ng", "--scope-map", "tower_1/=l1/")
    assert (result.returncode, result.stdout) == (0, "ok: all 9 bindings found in model.ng\n")
    result = main("check", "model.yaml", "model.ng", "--import-scope", "imported")
    assert result.returncode == 1
    assert "no tensor 'imported/x:0' in the graph (spec name 'x:0')" in result.stdout


def test_check_input_errors(main: Any, work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(work)
    Path("empty.meta").write_bytes(b"")
    cases = {
        ("check", "model.yaml", "missing.meta"): "missing.meta: no such file",
        ("check", "model.yaml", "empty.meta"): "empty.meta: the MetaGraphDef holds no graph",
        ("check", "model.yaml", "model.yaml"): "model.yaml: not a MetaGraphDef",
        ("check", "model.yaml", "model.ng", "--subtree", "layers.9"): "model.yaml: layers.9:",
    }
    for args, message in cases.items():
        result = main(*args)
        assert result.returncode == 2, args
        assert result.stdout == ""
        assert result.stderr.startswith(f"nestgraph: error: {message}"), result.stderr
        assert "Traceback" not in result.stderr


def test_show_bundle_subtree_in_process(
    main: Any, work: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(work)
    result = main("show", "model.ng", "--subtree", "layers.1")
    assert result.returncode == 0
    assert result.stdout.splitlines() == [
        "layers.1      object    test_cli:Dense",
        "layers.1.w    variable  l1/w:0     float32 (3, 2)",
        "layers.1.out  tensor    l1/Relu:0  float32 (None, 2)",
    ]


def test_export_keeps_variables_without_freeze(
    main: Any, work: Path, model_files: Files, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(work)
    result = main("export", "model.ng", "--subtree", "layers.0", "-o", "l0.ng")
    assert (result.returncode, result.stderr) == (0, "l0.ng: exported layers.0\n")
    layer, session = bundle.load("l0.ng", generic=True)
    with session:
        x = session.graph.get_tensor_by_name("x:0")
        np.testing.assert_allclose(
            session.run(layer.out, feed_dict={x: model_files.x}), model_files.out0, rtol=1e-6
        )
        assert layer.w.name == "l0/w:0"


def test_bundle_command_errors(main: Any, work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(work)
    os.mkdir("full")
    Path("full/file").write_text("")
    data = bytearray(Path("model.ng").read_bytes())
    with zipfile.ZipFile("model.ng") as archive:
        info = archive.getinfo("spec.yaml")
    # Inside spec.yaml (past its 30-byte local header and name): the checksum no longer matches.
    data[info.header_offset + 30 + len(info.filename) + info.file_size // 2] ^= 0xFF
    Path("damaged.ng").write_bytes(bytes(data))
    cases = {
        ("export", "model.yaml", "--subtree", "layers.0", "-o", "x.ng"): "model.yaml: not a bundle",
        ("export", "model.ng", "--subtree", "nope", "-o", "x.ng"): "model.ng: nope: no 'nope'",
        ("export", "damaged.ng", "--subtree", "layers.0", "-o", "x.ng"): "damaged.ng: corrupt",
        ("flatten", "damaged.ng"): "damaged.ng: corrupt bundle",
        (
            "serve-export",
            "model.ng",
            "-o",
            "full",
            "--input",
            "x=x",
            "--output",
            "y=layers.0.out",
        ): "full: already exists",
        (
            "serve-export",
            "model.ng",
            "-o",
            "d",
            "--input",
            "x=x",
            "--output",
            "w=layers.0.w",
        ): "layers.0.w: signature output 'w' must name a tensor binding",
        (
            "serve-export",
            "model.yaml",
            "-o",
            "d",
            "--input",
            "x=x",
            "--output",
            "y=z",
        ): "model.yaml: not a bundle",
    }
    for args, message in cases.items():
        result = main(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert result.stdout == ""
        assert result.stderr.startswith(f"nestgraph: error: {message}"), result.stderr
        assert "Traceback" not in result.stderr
    assert not Path("x.ng").exists() and not Path("d").exists()


def test_duplicate_signature_names_are_bad_usage(
    main: Any, work: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(work)
    args = ["serve-export", "model.ng", "-o", "d", "--input", "x=x", "--input", "x=y"]
    with pytest.raises(SystemExit) as exit_info:
        main(*args, "--output", "y=z")
    assert exit_info.value.code == 2


# --------------------------------------------------------------------------- progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_only_on_a_terminal() -> None:
    terminal, pipe = _Terminal(), io.StringIO()
    with cli.progress("loading bundle", terminal), cli.progress("loading bundle", pipe):
        pass
    assert terminal.getvalue().startswith("loading bundle")
    assert " done in " in terminal.getvalue() and terminal.getvalue().endswith(" s\n")
    assert pipe.getvalue() == ""
    with pytest.raises(RuntimeError), cli.progress("writing", terminal):
        raise RuntimeError("boom")
    assert terminal.getvalue().endswith("writing... failed\n") or terminal.getvalue().endswith(
        "writing… failed\n"
    )


def test_internal_errors_are_not_mistaken_for_differences(
    main: Any, spec_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(spec_dir)

    def broken(self: Any, other: Any) -> Any:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(ng.Spec, "diff", broken)
    result = main("diff", "model.yaml", "model.yaml")
    assert result.returncode == cli.EXIT_INTERNAL
    assert result.stderr.startswith("nestgraph: internal error: ZeroDivisionError: a bug")
    assert "Traceback" not in result.stderr
    result = main("--debug", "diff", "model.yaml", "model.yaml")
    assert result.returncode == cli.EXIT_INTERNAL
    assert "Traceback (most recent call last)" in result.stderr
