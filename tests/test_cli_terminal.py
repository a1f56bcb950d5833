"""``nestgraph.cli.terminal``: native stderr held back (and replayed on a crash), tables."""

from __future__ import annotations

import io
import os

import pytest
from conftest import run_python

import nestgraph as ng
from nestgraph.cli import terminal

CHATTER = ("cuInit", "oneDNN", "absl::InitializeLog")


def test_native_writes_are_held_back(capfd: pytest.CaptureFixture[str]) -> None:
    with terminal.native_stderr_held():
        os.write(2, b"I0000 port.cc:153] oneDNN custom operations are on\n")
    assert capfd.readouterr().err == ""


def test_held_text_is_replayed_on_an_unexpected_failure(capfd: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(RuntimeError, match="boom"), terminal.native_stderr_held():
        os.write(2, b"F0000 something native went wrong\n")
        raise RuntimeError("boom")
    assert "F0000 something native went wrong" in capfd.readouterr().err


def test_held_text_is_dropped_for_a_reported_error(capfd: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ng.SpecError), terminal.native_stderr_held():
        os.write(2, b"noise\n")
        raise ng.SpecError("reported in one line by the caller")
    assert capfd.readouterr().err == ""


def test_debug_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for value, expected in (("1", True), ("yes", True), ("0", False), ("", False), ("no", False)):
        monkeypatch.setenv(terminal.DEBUG_ENVIRONMENT, value)
        assert terminal.debug_requested() is expected
    monkeypatch.delenv(terminal.DEBUG_ENVIRONMENT)
    assert terminal.debug_requested() is False


def test_quiet_tensorflow_in_a_fresh_process() -> None:
    script = (
        "from nestgraph.cli.terminal import quiet_tensorflow\n"
        "tf = quiet_tensorflow()\n"
        "with tf.Graph().as_default():\n"
        "    print(tf.compat.v1.Session().run(tf.constant(41) + 1))\n"
        "import sys; print('real error', file=sys.stderr)\n"
    )
    result = run_python("-c", script, unset=(terminal.DEBUG_ENVIRONMENT,), timeout=120)
    assert (result.returncode, result.stdout) == (0, "42\n")
    assert result.stderr == "real error\n"


def test_print_table_aligns_numbers_right() -> None:
    out = io.StringIO()
    terminal.print_table([("a", "1,000", "x"), ("bb", "7", "y")], out, right=frozenset({1}))
    assert out.getvalue().splitlines() == ["a   1,000  x", "bb      7  y"]
