"""The bundle container on its own: packing, and reading all of it or all but the weights."""

from __future__ import annotations

import io
import zipfile

import pytest

import nestgraph as ng
from nestgraph.bundle._container import BundleContents, pack, unpack
from nestgraph.bundle._zipstream import pack_streamed, unpack_parts

CONTENTS = BundleContents(
    graph=b"graph bytes",
    spec=b"nestgraph: 1\nclass: p:M\nfields: {}\n",
    checkpoint={"model.index": b"index", "model.data-00000-of-00001": b"weights" * 1000},
    checkpoint_prefix="model",
)


def _packed(contents: BundleContents = CONTENTS) -> bytes:
    out = io.BytesIO()
    pack(contents, out, {"nestgraph": "test", "tensorflow": "none"})
    return out.getvalue()


def _damage(data: bytes, member: str, replace: bytes | None) -> bytes:
    """A copy of the bundle with one member's bytes replaced (or the member dropped)."""
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as target:
        for info in source.infolist():
            blob = source.read(info)
            if info.filename == member:
                if replace is None:
                    continue
                blob = replace[: len(blob)].ljust(len(blob), b"x")
            target.writestr(info, blob)
    return out.getvalue()


def test_round_trip() -> None:
    again = unpack(io.BytesIO(_packed()), "b.ng")
    assert again.graph == CONTENTS.graph and again.spec == CONTENTS.spec
    assert dict(again.checkpoint) == dict(CONTENTS.checkpoint)
    assert again.checkpoint_prefix == "model"


def test_without_checkpoint_skips_the_weights_but_not_the_checks() -> None:
    damaged_weights = _damage(_packed(), "checkpoint/model.data-00000-of-00001", b"evil")
    with pytest.raises(ng.BundleError, match="b.ng: corrupt bundle: checksum mismatch"):
        unpack(io.BytesIO(damaged_weights), "b.ng")
    light = unpack(io.BytesIO(damaged_weights), "b.ng", checkpoint=False)
    assert light.spec == CONTENTS.spec and light.checkpoint == {}

    damaged_spec = _damage(_packed(), "spec.yaml", b"evil")
    with pytest.raises(ng.BundleError, match="checksum mismatch for member spec.yaml"):
        unpack(io.BytesIO(damaged_spec), "b.ng", checkpoint=False)

    no_index = _damage(_packed(), "checkpoint/model.index", None)
    with pytest.raises(ng.BundleError, match="missing member.*checkpoint/model.index"):
        unpack(io.BytesIO(no_index), "b.ng", checkpoint=False)


def _streamed(contents: BundleContents = CONTENTS) -> bytes:
    out = io.BytesIO()
    files = {name: io.BytesIO(data) for name, data in contents.checkpoint.items()}
    pack_streamed(
        contents.graph,
        contents.spec,
        files,
        contents.checkpoint_prefix,
        out,
        {"nestgraph": "test", "tensorflow": "none"},
    )
    return out.getvalue()


def test_streamed_bundles_hold_what_packed_ones_do() -> None:
    streamed = _streamed()
    again = unpack(io.BytesIO(streamed), "b.ng")
    assert again.graph == CONTENTS.graph and again.spec == CONTENTS.spec
    assert dict(again.checkpoint) == dict(CONTENTS.checkpoint)
    assert again.manifest == unpack(io.BytesIO(_packed()), "b.ng").manifest


def test_unpack_parts_locates_every_shard_without_reading_it() -> None:
    streamed = _streamed()
    parts = unpack_parts(io.BytesIO(streamed), "b.ng")
    assert parts.index == b"index"
    (name, stored), *_ = parts.shards.items()
    assert name == "model.data-00000-of-00001"
    assert streamed[stored.offset : stored.offset + stored.size] == b"weights" * 1000
    # The weights are not hashed: damage there is found when they are read (by TensorFlow).
    damaged = _damage(streamed, "checkpoint/model.data-00000-of-00001", b"evil")
    assert unpack_parts(io.BytesIO(damaged), "b.ng").shards.keys() == parts.shards.keys()
    with pytest.raises(ng.BundleError, match="checksum mismatch for member checkpoint/model.index"):
        unpack_parts(io.BytesIO(_damage(streamed, "checkpoint/model.index", b"evil")), "b.ng")


def test_a_bundle_without_a_checkpoint_has_no_parts() -> None:
    streamed = _streamed(BundleContents(graph=b"g", spec=b"s"))
    parts = unpack_parts(io.BytesIO(streamed), "b.ng")
    assert parts.index is None and parts.shards == {}
    assert parts.contents.graph == b"g" and parts.contents.checkpoint_prefix is None
