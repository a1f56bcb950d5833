"""The ``summary`` and ``upgrade`` commands, in this process and as ``python -m nestgraph``."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tensorflow as tf

import nestgraph as ng
from nestgraph import cli

tf1 = tf.compat.v1
TIMEOUT = 120


class Seed(ng.GraphConvertible):
    def __init__(self) -> None:
        self.x = tf1.placeholder(tf.float32, [None], name="x")
        self.expanded = tf.expand_dims(self.x, 1)
        self.w = tf1.get_variable("w", [1, 3])
        self.y = tf.matmul(self.expanded, self.w)
        self.train_step = tf1.train.AdamOptimizer(0.1).minimize(tf.reduce_sum(self.y))


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    directory = tmp_path_factory.mktemp("commands")
    graph = tf.Graph()
    with graph.as_default(), tf1.Session(graph=graph) as session:
        model = Seed()
        session.run(tf1.global_variables_initializer())
        ng.save(model, session, directory / "model.ng")
        ng.save_spec(ng.to_graph(model), directory / "model.yaml")
        tf1.train.export_meta_graph(str(directory / "model.meta"))
        flat = {"x": model.x.name, "expanded": model.expanded.name, "w": model.w.name}
        flat["train_step"] = model.train_step.name
        (directory / "old.json").write_text(json.dumps(flat))
    yield directory


@pytest.fixture
def main(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, files: Path) -> Any:
    monkeypatch.chdir(files)
    level = tf.get_logger().level

    def call(*args: str) -> tuple[int, str, str]:
        code = cli.main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    yield call
    tf.get_logger().setLevel(level)


def test_summary_of_a_bundle_prints_the_table(main: Any, files: Path) -> None:
    code, out, err = main("summary", "model.ng")
    assert (code, err) == (0, "")
    assert out == str(ng.summary(files / "model.ng")) + "\n"
    assert out.splitlines()[0].split() == ["path", "class", "bindings", "params", "bytes"]
    code, out, _ = main("summary", "model.ng", "--depth", "0", "--subtree", "")
    assert code == 0 and out == str(ng.summary(files / "model.ng", depth=0)) + "\n"


def test_summary_of_a_spec_with_or_without_a_graph(main: Any, files: Path) -> None:
    code, out, _ = main("summary", "model.yaml")
    assert code == 0 and "params: unknown without a graph" in out
    code, out, _ = main("summary", "model.yaml", "--graph", "model.meta")
    assert code == 0
    assert (
        out
        == str(
            ng.summary(
                ng.load_spec(files / "model.yaml"), ng.bundle.read_meta_graph(files / "model.meta")
            )
        )
        + "\n"
    )


def test_summary_errors(main: Any) -> None:
    code, out, err = main("summary", "model.ng", "--subtree", "nope")
    assert (code, out) == (2, "")
    assert err.startswith("nestgraph: error: model.ng: nope: no 'nope' here (object ")
    assert err.count("\n") == 1
    code, _, err = main("summary", "model.yaml", "--graph", "missing.meta")
    assert code == 2 and err == "nestgraph: error: missing.meta: no such file\n"
    with pytest.raises(SystemExit) as exit_info:
        main("summary", "model.ng", "--depth", "-1")
    assert exit_info.value.code == 2


def test_upgrade_writes_a_versioned_spec(main: Any, files: Path, tmp_path: Path) -> None:
    out_file = tmp_path / "new.yaml"
    code, out, err = main("upgrade", "old.json", "model.meta", "-o", str(out_file))
    assert (code, out) == (0, "")
    assert err == f"{out_file}: wrote a version 1 spec (1 op, 2 tensors, 1 variable)\n"
    spec = ng.load_spec(out_file)
    flat = json.loads((files / "old.json").read_text())
    assert spec.flatten() == flat
    assert {r.path: r.kind for r in spec.bindings()}["w"] == "variable"
    # From a bundle, and with a class for the root.
    code, _, _ = main("upgrade", "old.json", "model.ng", "-o", str(out_file), "--class", "pkg:Seed")
    assert code == 0 and ng.load_spec(out_file).to_dict()["class"] == "pkg:Seed"


def test_upgrade_reports_every_missing_name(main: Any, files: Path, tmp_path: Path) -> None:
    (tmp_path / "typos.json").write_text(json.dumps({"x": "X:0", "step": "Adamm", "w": "w:0"}))
    code, out, err = main("upgrade", str(tmp_path / "typos.json"), "model.meta", "-o", "n.yaml")
    assert (code, out) == (2, "")
    first, x_line, step_line = err.splitlines()
    assert first == "nestgraph: error: 2 problems:"
    assert x_line.startswith("  x: no tensor 'X:0' in the graph (closest: 'x:0'")
    assert step_line.startswith("  step: no op 'Adamm' in the graph (closest: 'Adam'")
    assert not (files / "n.yaml").exists()  # nothing written


def test_upgrade_input_errors(main: Any, tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text('{"x": "x:0",\n}')
    code, _, err = main("upgrade", str(tmp_path / "bad.json"), "model.meta", "-o", "n.yaml")
    assert code == 2
    assert err.startswith(
        f"nestgraph: error: {tmp_path / 'bad.json'}: line 2, column 1: invalid JSON"
    )
    (tmp_path / "list.json").write_text('["x:0"]')
    code, _, err = main("upgrade", str(tmp_path / "list.json"), "model.meta", "-o", "n.yaml")
    assert code == 2 and "expected a flat {field: graph name} JSON object, not a JSON list" in err
    code, _, err = main("upgrade", "old.json", "model.yaml", "-o", "n.yaml")
    assert code == 2 and "model.yaml: not a MetaGraphDef" in err


def test_upgrade_and_summary_are_listed_in_help(files: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "nestgraph", "--help"],
        cwd=files,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert result.returncode == 0
    assert "summary" in result.stdout and "upgrade" in result.stdout


def test_tensorflow_chatter_stays_off_stderr_unless_debug(files: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "nestgraph", *args, "summary", "model.ng", "--depth", "0"],
            cwd=files,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )

    quiet = run()
    assert (quiet.returncode, quiet.stderr) == (0, "")
    assert quiet.stdout.startswith("path ")
    loud = run("--debug")
    assert loud.returncode == 0 and loud.stdout == quiet.stdout
    if not any(c in loud.stderr for c in ("cuInit", "oneDNN", "absl::InitializeLog")):
        pytest.skip("this TensorFlow build prints no start-up chatter here; nothing to hide")
