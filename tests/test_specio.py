"""save_spec / load_spec: YAML or JSON by extension, atomic, errors name the file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import tensorflow as tf

import nestgraph as ng
from nestgraph import _atomic

SPEC = ng.Spec.from_yaml(
    "nestgraph: 1\nclass: p.m:Model\nfields:\n  x: tensor x:0\n  n: 3\n  s: str hi\n"
)


@pytest.mark.parametrize("name", ["model.yaml", "model.json", "model.yml"])
def test_round_trip(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    ng.save_spec(SPEC, path)
    assert ng.load_spec(path) == SPEC
    assert ng.load_spec(str(path)) == SPEC
    assert (
        path.read_text()
        .lstrip("{\n ")
        .startswith('"nestgraph": 1' if name.endswith("json") else "nestgraph: 1")
    )


def test_in_memory_filesystem() -> None:
    tf.io.gfile.makedirs("ram://specio")
    ng.save_spec(SPEC, "ram://specio/model.yaml")
    assert ng.load_spec("ram://specio/model.yaml") == SPEC


def test_missing_file() -> None:
    with pytest.raises(ng.SpecError, match="nowhere.yaml: no such file"):
        ng.load_spec("nowhere.yaml")


def test_bad_json_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    path.write_text('{\n  "nestgraph": 1,\n  "class": oops\n}\n')
    with pytest.raises(ng.SpecError, match=r"m\.json, line 3: invalid JSON"):
        ng.load_spec(path)


def test_oversized_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "big.yaml"
    path.write_text("nestgraph: 1\n" + "#" * 100)
    monkeypatch.setattr("nestgraph.specio.MAX_BYTES", 50)
    with pytest.raises(ng.SpecError, match="big.yaml: cannot read: larger than the 50 byte limit"):
        ng.load_spec(path)


def test_save_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "model.yaml"
    ng.save_spec(SPEC, path)
    before = path.read_bytes()

    def crash(fd: int) -> None:
        raise OSError("disk on fire")

    monkeypatch.setattr(os, "fsync", crash)
    other = SPEC.rescope("x", "y")
    with pytest.raises(OSError, match="disk on fire"):
        ng.save_spec(other, path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["model.yaml"]


def test_save_needs_a_spec(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="takes an ng.Spec"):
        ng.save_spec({"nestgraph": 1}, tmp_path / "x.yaml")  # type: ignore[arg-type]


def test_read_limited_local_and_remote(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"12345")
    assert _atomic.read_limited(path, 5) == b"12345"
    with pytest.raises(ValueError, match="4 byte limit"):
        _atomic.read_limited(path, 4)


def test_saved_spec_gets_the_usual_file_mode(tmp_path: Path) -> None:
    umask = os.umask(0o022)
    try:
        ng.save_spec(SPEC, tmp_path / "m.yaml")
    finally:
        os.umask(umask)
    assert (tmp_path / "m.yaml").stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (
            '{"nestgraph": 1, "class": "p.m:M", "fields": {"x": "str a", "x": "str b"}}',
            r"m\.json: duplicate key 'x' in a JSON object",
        ),
        ('{"nestgraph": 1, "root": ' + "[" * 300 + "]" * 300 + "}", "nested deeper than 208"),
        ('{"nestgraph": 1, "root": ' + "9" * 5000 + "}", "integer of more than 4300"),
        ('{"nestgraph": 1, "root": "str \\ud800"}', "lone surrogate"),
    ],
)
def test_hostile_json_files_are_spec_errors(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "m.json"
    path.write_text(text)
    with pytest.raises(ng.SpecError, match=match):
        ng.load_spec(path)


def test_json_nan_and_infinity_round_trip_as_in_yaml(tmp_path: Path) -> None:
    spec = ng.Spec.from_yaml("nestgraph: 1\nroot: [.inf, -.inf, .nan]\n")
    ng.save_spec(spec, tmp_path / "m.json")
    ng.save_spec(spec, tmp_path / "m.yaml")
    values = [ng.load_spec(tmp_path / n).to_dict()["root"] for n in ("m.json", "m.yaml")]
    for inf, neg_inf, nan in values:
        assert (inf, neg_inf) == (float("inf"), float("-inf")) and nan != nan


def test_missing_remote_file() -> None:
    tf.io.gfile.makedirs("ram://specio")
    with pytest.raises(ng.SpecError, match="ram://specio/absent.yaml: "):
        ng.load_spec("ram://specio/absent.yaml")
