"""``nestgraph.cli._inputs``: every bad input is an ``InputError``, a ``NestgraphError``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import nestgraph as ng
from nestgraph.cli import InputError, _inputs


def test_input_error_is_a_nestgraph_error_naming_its_file() -> None:
    error = InputError("no such file", file="model.yaml")
    assert isinstance(error, ng.NestgraphError)
    assert (error.file, error.message) == ("model.yaml", "model.yaml: no such file")


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="nope.yaml: no such file") as caught:
        _inputs.read_input(str(tmp_path / "nope.yaml"))
    assert caught.value.file == str(tmp_path / "nope.yaml")
    with pytest.raises(InputError, match="is a directory, not a file"):
        _inputs.read_input(str(tmp_path))
    with pytest.raises(InputError, match="reads local files only"):
        _inputs.read_input("gs://bucket/model.yaml")
    (tmp_path / "blob.bin").write_bytes(b"\x00\x01binary")
    with pytest.raises(InputError, match=r"blob\.bin: binary data, not a spec"):
        _inputs.read_input(str(tmp_path / "blob.bin"))
    with pytest.raises(InputError, match="writes local files only"):
        _inputs.write_spec(ng.Spec.from_dict({"nestgraph": 1, "root": None}), "gs://b/x.yaml")


def test_read_json(tmp_path: Path) -> None:
    good = tmp_path / "old.json"
    good.write_text('{"x": "x:0"}')
    assert _inputs.read_json(str(good)) == {"x": "x:0"}
    bad = tmp_path / "bad.json"
    bad.write_text('{\n  "x": }')
    with pytest.raises(InputError, match=r"bad\.json: line 2, column 8: invalid JSON"):
        _inputs.read_json(str(bad))
    latin = tmp_path / "latin.json"
    latin.write_bytes(b'{"x": "\xe9"}')
    with pytest.raises(InputError, match="not UTF-8 text"):
        _inputs.read_json(str(latin))


def test_spec_errors_without_a_source_get_the_file_name() -> None:
    with pytest.raises(InputError, match=r"m\.yaml: nope: no 'nope' here"), _inputs.about("m.yaml"):
        ng.Spec.from_dict({"nestgraph": 1, "root": {"dict": {}}}).resolve("nope")


def test_non_regular_files_are_refused_before_they_are_opened(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="pipe: is a FIFO"):
        _inputs.open_local(str(fifo))  # would block forever if it were opened
    if os.path.exists("/dev/zero"):
        with pytest.raises(InputError, match="/dev/zero: is a character device"):
            _inputs.read_json("/dev/zero")
