"""The README's quickstart runs as written, and prints the spec the README shows."""

from __future__ import annotations

import re
from pathlib import Path

from conftest import run_python

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def test_readme_names_exactly_two_commands() -> None:
    commands = _blocks("sh")[0].strip().splitlines()
    assert [c.split("#")[0].strip() for c in commands] == ["make demo", "make test"]
    makefile = (ROOT / "Makefile").read_text()
    assert "\ndemo:" in makefile and "\ntest:" in makefile
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_quickstart_runs_and_prints_the_documented_spec(tmp_path: Path) -> None:
    quickstart = _blocks("python")[0]
    documented_spec = _blocks("yaml")[0]
    proc = run_python("-c", quickstart, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == documented_spec.strip()


def test_public_api_is_documented() -> None:
    import nestgraph as ng

    for name in ng.__all__:
        if name.startswith("__"):
            continue
        assert f"ng.{name}" in README or f"`{name}`" in README, f"{name} is not in the README"


def test_leaf_handler_example_runs_and_prints_what_it_says(tmp_path: Path) -> None:
    (example,) = [block for block in _blocks("python") if "ng.register_leaf(" in block]
    expected = re.search(r"print\(spec\.flatten\(\)\)  # (.*)", example)
    assert expected is not None
    proc = run_python("-c", example, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == expected.group(1)
