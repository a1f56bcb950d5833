"""Class-path policy: default deny, explicit allow, only real classes."""

from __future__ import annotations

import copy
import importlib.util
import pickle
import re
import sys
import types
from pathlib import Path
from typing import Any, ClassVar

import pytest

import nestgraph as ng
from nestgraph.classpath import UNSAFE_ALLOW_ALL, class_path_of, normalize_allow, resolve_class


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
        ("logging:os.system", ["logging.*"], "'logging.os' is a module, and a class path names"),
        ("logging:os.PathLike", ["logging.*"], "'logging.os' is a module"),
        ("json:JSONDecodeError", ["json.*"], "resolves to 'json.decoder:JSONDecodeError'"),
        ("collections:abc", ["collections.*"], "'collections.abc' is a module"),
        ("builtins:object", UNSAFE_ALLOW_ALL, "builtin"),
        ("os:system", UNSAFE_ALLOW_ALL, "is a builtin_function_or_method, not a class"),
        ("typing:Mapping", UNSAFE_ALLOW_ALL, "is a _SpecialGenericAlias, not a class"),
        ("enum:Enum.name", ["enum.*"], "is a .*, not a class"),
        ("enum:Enum.name.x", ["enum.*"], "is not a class path: 'enum.Enum.name' is a"),
        (
            "collections:OrderedDit",
            ["collections.*"],
            "was not found.*closest: .OrderedDict.*generic=True",
        ),
        ("not a path", [], "is not a class path"),
        ("no_such_module_xyz:Thing", ["no_such_module_xyz.*"], "cannot be imported"),
    ],
)
def test_tricky_paths_are_refused(path: str, allow: Any, why: str) -> None:
    with pytest.raises(ng.ClassNotAllowedError, match=why):
        resolve_class(path, normalize_allow(allow))


def test_class_path_of() -> None:
    assert class_path_of(Convertible) == "test_classpath:Convertible"


def test_register_rejects_non_classes() -> None:
    with pytest.raises(TypeError, match="takes a class"):
        ng.register(len)  # type: ignore[type-var]


@pytest.mark.parametrize(
    ("pattern", "why"),
    [
        ("*", "a '\\*' alone would allow every module"),
        ("**", "a '\\*' alone would allow every module"),
        ("*.*", "a '\\*' alone would allow every module"),
        ("mypkg*", "only a trailing '.\\*' is a wildcard"),
        ("mypkg.*.models", "only a trailing"),
        ("mypkg.mod?", "only a trailing"),
        ("mypkg.[ab]", "only a trailing"),
        ("mypkg:*", "only a trailing"),
        ("mypkg", "it names no class; for the whole package write 'mypkg.\\*'"),
        ("", "it is empty"),
        ("mypkg.", "an allow pattern is one class"),
        (".mypkg.*", "an allow pattern is one class"),
        ("my pkg.*", "an allow pattern is one class"),
        ("a:b:C", "an allow pattern is one class"),
        ("mypkg.models:", "an allow pattern is one class"),
    ],
)
def test_allow_patterns_other_than_the_two_forms_are_refused(pattern: str, why: str) -> None:
    refused = re.escape(f"allow pattern {pattern!r} is refused: ")
    with pytest.raises(ng.ClassNotAllowedError, match=f"{refused}.*{why}"):
        normalize_allow([pattern])
    with pytest.raises(ng.ClassNotAllowedError, match="ng.UNSAFE_ALLOW_ALL"):
        normalize_allow(pattern)


@pytest.mark.parametrize(
    ("allow", "why"),
    [
        (3, "allow must be None, a pattern or a list of patterns, not int"),
        (b"mypkg.*", "not bytes"),
        ({"mypkg.*": True}, "not dict"),
        (["mypkg.*", 3], "allow pattern 3 is a int, not a string"),
        ([None], "allow pattern None is a NoneType"),
    ],
)
def test_allow_must_be_patterns(allow: Any, why: str) -> None:
    with pytest.raises(ng.ClassNotAllowedError, match=why):
        normalize_allow(allow)


def test_module_prefix_covers_the_module_and_below_only() -> None:
    policy = normalize_allow(["mypkg.*"])
    assert policy.covers("mypkg", "A") and policy.covers("mypkg.sub.deep", "B.C")
    assert not policy.covers("mypkgx", "A") and not policy.covers("other", "mypkg")


def test_exact_patterns_cover_one_class() -> None:
    colon, dotted = normalize_allow("mypkg.models:Enc"), normalize_allow(["mypkg.models.Enc"])
    for policy in (colon, dotted):
        assert policy.covers("mypkg.models", "Enc")
        assert not policy.covers("mypkg.models", "Dec")
        assert not policy.covers("mypkg.models", "Enc.Inner")
    assert not colon.covers("mypkg", "models.Enc")  # the colon says where the module ends
    assert not normalize_allow(None) and not normalize_allow([])


def test_unsafe_allow_all_is_one_loud_named_value() -> None:
    assert "UNSAFE_ALLOW_ALL" in repr(UNSAFE_ALLOW_ALL)
    assert type(UNSAFE_ALLOW_ALL)() is UNSAFE_ALLOW_ALL
    assert pickle.loads(pickle.dumps(UNSAFE_ALLOW_ALL)) is UNSAFE_ALLOW_ALL
    assert copy.deepcopy(UNSAFE_ALLOW_ALL) is UNSAFE_ALLOW_ALL
    for allow in (UNSAFE_ALLOW_ALL, [UNSAFE_ALLOW_ALL], ["x.*", UNSAFE_ALLOW_ALL]):
        assert normalize_allow(allow).covers("anything.at.all", "Cls")
    # A string spelling of the sentinel's name is not the sentinel.
    with pytest.raises(ng.ClassNotAllowedError, match="is refused"):
        normalize_allow(["UNSAFE_ALLOW_ALL"])


def test_unsafe_allow_all_imports_and_admits_plain_classes(untouched_package: Path) -> None:
    assert resolve_class("ngtest_sideeffect:Thing", UNSAFE_ALLOW_ALL).__name__ == "Thing"
    assert untouched_package.exists()
    assert resolve_class("test_classpath:Unregistered", UNSAFE_ALLOW_ALL) is Unregistered


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


# ------------------------------------------------------------- resolving runs no code


@pytest.fixture
def fake_module(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """A module in sys.modules whose __getattr__ (PEP 562) records every call."""
    module = types.ModuleType("ngtest_hooked")
    module.calls = []  # type: ignore[attr-defined]

    def __getattr__(name: str) -> Any:
        module.calls.append(name)  # type: ignore[attr-defined]
        return Convertible  # would let any name through, if it were asked

    module.__getattr__ = __getattr__  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "ngtest_hooked", module)
    return module


def test_module_getattr_never_runs(fake_module: types.ModuleType) -> None:
    with pytest.raises(ng.ClassNotAllowedError, match="was not found"):
        resolve_class("ngtest_hooked:Anything", UNSAFE_ALLOW_ALL)
    with pytest.raises(ng.ClassNotAllowedError, match="was not found"):
        resolve_class("ngtest_hooked:sub.Thing")
    assert fake_module.calls == []  # type: ignore[attr-defined]


class _Meta(type):
    calls: ClassVar[list[str]] = []

    def __getattribute__(cls, name: str) -> Any:
        _Meta.calls.append(name)
        return super().__getattribute__(name)

    def __getattr__(cls, name: str) -> Any:
        _Meta.calls.append("getattr:" + name)
        return Convertible

    def __eq__(cls, other: object) -> bool:
        _Meta.calls.append("eq")
        return super().__eq__(other)

    __hash__ = type.__hash__


class Hooked(ng.GraphConvertible, metaclass=_Meta):
    class Inner(ng.GraphConvertible):
        pass

    @property
    def prop(self) -> Any:  # a descriptor: resolving must not call its __get__
        _Meta.calls.append("property")
        return Convertible


def test_metaclass_hooks_and_descriptors_never_run() -> None:
    inner = Hooked.Inner
    _Meta.calls.clear()
    assert resolve_class("test_classpath:Hooked") is Hooked
    assert resolve_class("test_classpath:Hooked.Inner") is inner
    with pytest.raises(ng.ClassNotAllowedError, match="was not found"):
        resolve_class("test_classpath:Hooked.Missing", UNSAFE_ALLOW_ALL)
    with pytest.raises(ng.ClassNotAllowedError, match="is a property, not a class"):
        resolve_class("test_classpath:Hooked.prop", UNSAFE_ALLOW_ALL)
    assert _Meta.calls == []


class _Proxy:
    """An object that pretends to be anything it is asked to be."""

    calls: ClassVar[list[str]] = []

    def __getattribute__(self, name: str) -> Any:
        _Proxy.calls.append(name)
        return Convertible if name == "__class__" else object.__getattribute__(self, name)


proxy = _Proxy()


def test_objects_that_fake_their_class_are_not_asked() -> None:
    _Proxy.calls.clear()
    with pytest.raises(ng.ClassNotAllowedError, match="is a _Proxy, not a class"):
        resolve_class("test_classpath:proxy", UNSAFE_ALLOW_ALL)
    with pytest.raises(ng.ClassNotAllowedError, match="'test_classpath.proxy' is a _Proxy"):
        resolve_class("test_classpath:proxy.Thing", UNSAFE_ALLOW_ALL)
    assert _Proxy.calls == []


def test_a_non_module_in_sys_modules_is_not_read(monkeypatch: pytest.MonkeyPatch) -> None:
    _Proxy.calls.clear()
    monkeypatch.setitem(sys.modules, "ngtest_fake", _Proxy())
    with pytest.raises(ng.ClassNotAllowedError, match=r"sys.modules\['ngtest_fake'\] is a _Proxy"):
        resolve_class("ngtest_fake:Thing", UNSAFE_ALLOW_ALL)
    assert _Proxy.calls == []


@pytest.fixture
def lazy_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A package whose submodule, if ever imported, leaves a marker file."""
    pkg = tmp_path / "ngtest_lazypkg"
    pkg.mkdir()
    marker = tmp_path / "sub_imported.txt"
    (pkg / "__init__.py").write_text(
        "import importlib\n"
        "def __getattr__(name):\n"
        "    return importlib.import_module('.' + name, __name__)\n"
    )
    (pkg / "sub.py").write_text(
        f"open({str(marker)!r}, 'w').write('yes')\n"
        "import nestgraph as ng\n"
        "class Thing(ng.GraphConvertible):\n    pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    import ngtest_lazypkg  # noqa: F401  (the parent is imported, the submodule is not)

    yield marker
    for name in ("ngtest_lazypkg", "ngtest_lazypkg.sub"):
        sys.modules.pop(name, None)


def test_lazy_submodules_are_not_imported(lazy_package: Path) -> None:
    with pytest.raises(ng.ClassNotAllowedError, match="module 'ngtest_lazypkg.sub' is not imp"):
        resolve_class("ngtest_lazypkg.sub:Thing")
    with pytest.raises(ng.ClassNotAllowedError, match="was not found"):
        resolve_class("ngtest_lazypkg:sub.Thing", ["ngtest_lazypkg.*"])
    assert not lazy_package.exists()
    assert "ngtest_lazypkg.sub" not in sys.modules


def test_importlib_lazy_loader_module_is_not_loaded(tmp_path: Path) -> None:
    marker = tmp_path / "loaded.txt"
    source = tmp_path / "ngtest_lazyloaded.py"
    source.write_text(f"open({str(marker)!r}, 'w').write('yes')\nclass Thing:\n    pass\n")
    spec = importlib.util.spec_from_file_location("ngtest_lazyloaded", source)
    assert spec is not None and spec.loader is not None
    spec.loader = importlib.util.LazyLoader(spec.loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules["ngtest_lazyloaded"] = module
    try:
        spec.loader.exec_module(module)
        with pytest.raises(ng.ClassNotAllowedError, match="was not found"):
            resolve_class("ngtest_lazyloaded:Thing", UNSAFE_ALLOW_ALL)
        assert not marker.exists()
    finally:
        sys.modules.pop("ngtest_lazyloaded", None)


def test_no_import_when_imports_are_off(untouched_package: Path) -> None:
    with pytest.raises(ng.ClassNotAllowedError, match="generic=True never imports"):
        resolve_class("ngtest_sideeffect:Thing", UNSAFE_ALLOW_ALL, import_modules=False)
    assert not untouched_package.exists()
    assert "ngtest_sideeffect" not in sys.modules


def test_failing_import_is_a_class_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "ngtest_broken.py").write_text("raise RuntimeError('boom')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ng.ClassNotAllowedError, match=r"cannot be imported \(RuntimeError: boom\)"):
        resolve_class("ngtest_broken:Thing", ["ngtest_broken.*"])
    monkeypatch.setitem(sys.modules, "ngtest_blocked", None)
    with pytest.raises(ng.ClassNotAllowedError, match="cannot be imported"):
        resolve_class("ngtest_blocked:Thing", ["ngtest_blocked.*"])


@pytest.mark.parametrize("bad", [None, 3, b"m:C", "m:C.", "m: C", "m:C\n", "é:C", ":C", "m:"])
def test_malformed_class_paths_are_class_errors(bad: Any) -> None:
    with pytest.raises(ng.ClassNotAllowedError, match="is not a class path of the form"):
        resolve_class(bad, UNSAFE_ALLOW_ALL)


def test_generic_from_graph_imports_nothing_even_when_allowed(untouched_package: Path) -> None:
    spec = ng.Spec.from_yaml("nestgraph: 1\nclass: ngtest_sideeffect:Thing\nfields: {}\n")
    model = ng.from_graph(spec, graph=object(), allow=["ngtest_sideeffect.*"], generic=True)
    assert isinstance(model, ng.Node) and not untouched_package.exists()


def test_a_bad_allow_pattern_stops_from_graph() -> None:
    spec = ng.Spec.from_yaml("nestgraph: 1\nclass: test_classpath:Convertible\nfields: {}\n")
    with pytest.raises(ng.ClassNotAllowedError, match="allow pattern '\\*' is refused"):
        ng.from_graph(spec, graph=object(), allow=["*"])
