"""Lazy objects (nestgraph._objects): pending fields, previews, the generic Node, field readers.

No TensorFlow here: the module knows nothing of specs or graphs.
"""

from __future__ import annotations

import copy
import pickle
import threading
import time
from typing import Any

import pytest

from nestgraph._objects import (
    PENDING_ATTR,
    LazyFields,
    Node,
    Pending,
    Unbuilt,
    materialize,
    object_fields,
    pending_of,
    slot_names,
)


class Lazy(LazyFields):
    pass


def _lazy(fields: dict[str, Any], calls: list[str] | None = None, delay: float = 0.0) -> Lazy:
    obj = Lazy.__new__(Lazy)

    def fill(target: Any) -> None:
        if calls is not None:
            calls.append("fill")
        time.sleep(delay)
        target.__dict__.update(fields)

    obj.__dict__[PENDING_ATTR] = Pending(fill, lambda: list(fields.items()), fields)
    return obj


def test_first_attribute_access_fills_once() -> None:
    calls: list[str] = []
    obj = _lazy({"a": 1, "b": 2}, calls)
    assert pending_of(obj) is not None
    assert obj.a == 1 and obj.b == 2
    assert calls == ["fill"]
    assert pending_of(obj) is None and PENDING_ATTR not in obj.__dict__


def test_missing_attribute_after_fill_is_an_attribute_error() -> None:
    obj = _lazy({"a": 1})
    with pytest.raises(AttributeError, match="'Lazy' object has no attribute 'nope'"):
        _ = obj.nope


def test_concurrent_first_access_fills_exactly_once() -> None:
    calls: list[str] = []
    obj = _lazy({"a": 1}, calls, delay=0.05)
    seen: list[Any] = []
    threads = [threading.Thread(target=lambda: seen.append(obj.a)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == [1] * 8
    assert calls == ["fill"]


def test_reading_fields_never_fills() -> None:
    calls: list[str] = []
    obj = _lazy({"b": 2, "a": 1}, calls)
    obj.__dict__["a"] = 1  # one field already set, as for a class attribute shadow
    assert object_fields(obj) == [("b", 2), ("a", 1)]  # definition order kept
    assert calls == [] and pending_of(obj) is not None


def test_materialize_copy_and_pickle_fill_first() -> None:
    obj = _lazy({"a": [1]})
    assert materialize(obj) is obj and obj.__dict__["a"] == [1]
    other = _lazy({"a": 3})
    assert copy.copy(other).a == 3
    assert pickle.loads(pickle.dumps(_lazy({"a": 4}))).a == 4
    assert materialize(5) == 5  # anything without pending fields is returned as it is


def test_unbuilt_views_compare_by_identity() -> None:
    first = Unbuilt(("b", 1), "list", None, lambda: [(0, 1)])
    again = Unbuilt(("b", 1), "list", None, lambda: [(0, 1)])
    assert first.identity == again.identity
    assert list(first.items()) == [(0, 1)]


def test_node_remembers_its_class_and_shows_its_fields() -> None:
    node = Node("pkg.mod:Head", units=3, name="h")
    assert node.nestgraph_class == "pkg.mod:Head"
    assert object_fields(node) == [("units", 3), ("name", "h")]
    assert repr(node) == "Node('pkg.mod:Head', units=int, name=str)"
    empty = Node.standing_for("pkg:Other")
    assert empty.nestgraph_class == "pkg:Other" and object_fields(empty) == []


class Recorder:
    """Every way of running user code while reading attributes is recorded."""

    __slots__ = ("__dict__", "unset", "x")
    calls: list[str] = []  # noqa: RUF012 - shared on purpose

    def __init__(self) -> None:
        self.x = 1
        self.__dict__["y"] = 2

    @property
    def computed(self) -> int:
        Recorder.calls.append("property")
        return 3

    def __getattr__(self, name: str) -> Any:
        Recorder.calls.append(f"getattr {name}")
        raise AttributeError(name)


def test_field_readers_run_no_user_code() -> None:
    Recorder.calls.clear()
    fields = object_fields(Recorder())
    assert fields == [("y", 2), ("x", 1)]
    assert Recorder.calls == []


def test_slot_names_base_first_without_dict_and_weakref() -> None:
    class Base:
        __slots__ = ("__weakref__", "a")

    class Child(Base):
        __slots__ = "b"

    assert slot_names(Child) == ("a", "b")
