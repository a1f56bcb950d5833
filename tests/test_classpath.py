"""Class-path policy: default deny, explicit allow, only real classes."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import nestgraph as ng
from nestgraph.classpath import class_path_of, normalize_allow, resolve_class


class Convertible(ng.GraphConvertible):
    pass


@ng.register
class Registered:
    pass


class Unregistered:
    pass


def test_graph_convertible_and_registered_resolve_without_allow() -> None:
    assert resolve_class("test_classpath:Convertible") is Convertible
    assert resolve_class("test_classpath:Registered") is Registered


def test_unregistered_class_is_refused_with_how_to_allow() -> None:
    with pytest.raises(ng.ClassNotAllowedError, match=r"neither a GraphConvertible.*allow=") as e:
        resolve_class("test_classpath:Unregistered", path="heads.cls")
    assert e.value.path == "heads.cls"
    assert e.value.class_path == "test_classpath:Unregistered"
    assert str(e.value).startswith("heads.cls: class 'test_classpath:Unregistered'")


def test_allow_pattern_admits_a_plain_class() -> None:
    assert resolve_class("test_classpath:Unregistered", normalize_allow(["test_classpath.*"]))
    assert resolve_class(
        "test_classpath:Unregistered", normalize_allow("test_classpath:Unregistered")
    )


@pytest.fixture
def untouched_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    pkg = tmp_path / "ngtest_sideeffect"
    pkg.mkdir()
    marker = tmp_path / "imported.txt"
    (pkg / "__init__.py").write_text(
        f"open({str(marker)!r}, 'w').write('yes')\n"
        "class Thing:\n    pass\n"
        "def helper():\n    return 1\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield marker
    sys.modules.pop("ngtest_sideeffect", None)


def test_module_is_never_imported_without_allow(untouched_package: Path) -> None:
    with pytest.raises(ng.ClassNotAllowedError, match="module 'ngtest_sideeffect' is not imported"):
        resolve_class("ngtest_sideeffect:Thing")
    assert not untouched_package.exists()
    assert "ngtest_sideeffect" not in sys.modules


def test_allowed_module_is_imported(untouched_package: Path) -> None:
    cls = resolve_class("ngtest_sideeffect:Thing", normalize_allow(["ngtest_sideeffect.*"]))
    assert cls.__name__ == "Thing"
    assert untouched_package.exists()


def test_functions_are_never_used_even_when_allowed(untouched_package: Path) -> None:
    with pytest.raises(ng.ClassNotAllowedError, match="is a function, not a class"):
        resolve_class("ngtest_sideeffect:helper", normalize_allow(["ngtest_sideeffect.*"]))


@pytest.mark.parametrize(
    ("path", "allow", "why"),
    [
        ("logging:os.system", ["logging.*"], "is a builtin_function_or_method, not a class"),
        ("logging:os.PathLike", ["logging.*"], "resolves to 'os:PathLike', which is defined else"),
        ("json:JSONDecodeError", ["json.*"], "resolves to 'json.decoder:JSONDecodeError'"),
        ("builtins:object", ["*"], "builtin"),
        ("os:system", ["*"], "not a class"),
        (
            "collections:OrderedDit",
            ["collections.*"],
            "was not found.*closest: .OrderedDict.*generic=True",
        ),
        ("not a path", [], "is not a class path"),
        ("no_such_module_xyz:Thing", ["no_such_module_xyz.*"], "cannot be imported"),
    ],
)
def test_tricky_paths_are_refused(path: str, allow: list[str], why: str) -> None:
    with pytest.raises(ng.ClassNotAllowedError, match=why):
        resolve_class(path, normalize_allow(allow))


def test_class_path_of() -> None:
    assert class_path_of(Convertible) == "test_classpath:Convertible"


def test_register_rejects_non_classes() -> None:
    with pytest.raises(TypeError, match="takes a class"):
        ng.register(len)  # type: ignore[type-var]


def test_allow_patterns_must_be_strings() -> None:
    with pytest.raises(TypeError, match="non-empty strings"):
        normalize_allow([""])


def test_main_module_run_with_dash_m_records_its_importable_name(tmp_path: Path) -> None:
    import subprocess

    pkg = tmp_path / "ngmain"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "run.py").write_text(
        "import nestgraph as ng\n"
        "class Kid(ng.GraphConvertible):\n    pass\n"
        "class Root(ng.GraphConvertible):\n    pass\n"
        "root = Root()\nroot.kid = Kid()\n"
        "spec = ng.to_graph(root)\n"
        "print(spec.to_dict()['fields']['kid']['class'])\n"
        "again = ng.from_graph(spec, graph=object())\n"
        "print(type(again.kid) is Kid)\n"
    )
    out = subprocess.run(
        [sys.executable, "-m", "ngmain.run"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out == ["ngmain.run:Kid", "True"]
