"""The bundle container on its own: packing, and reading all of it or all but the weights."""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
import zipfile
import zlib
from pathlib import Path

import pytest

import nestgraph as ng
from nestgraph.bundle._container import BundleContents, pack, unpack, unpack_file
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


def _flip_in_place(data: bytes, old: bytes, new: bytes) -> bytes:
    """The bundle with bytes of a member overwritten in the file (its zip CRC-32 now wrong)."""
    at = data.index(old)
    return data[:at] + new + data[at + len(new) :]


def test_without_checkpoint_skips_the_weights_but_not_the_checks() -> None:
    # Version 2: a data shard has no SHA-256; reading it whole checks the zip's CRC-32.
    damaged_weights = _flip_in_place(_packed(), b"weights", b"evil")
    with pytest.raises(
        ng.BundleError,
        match="b.ng: corrupt bundle: member checkpoint/model.data-00000-of-00001 is damaged",
    ):
        unpack(io.BytesIO(damaged_weights), "b.ng")
    light = unpack(io.BytesIO(damaged_weights), "b.ng", checkpoint=False)
    assert light.spec == CONTENTS.spec and light.checkpoint == {}

    damaged_spec = _damage(_packed(), "spec.yaml", b"evil")
    with pytest.raises(ng.BundleError, match="checksum mismatch for member spec.yaml"):
        unpack(io.BytesIO(damaged_spec), "b.ng", checkpoint=False)

    no_index = _damage(_packed(), "checkpoint/model.index", None)
    with pytest.raises(ng.BundleError, match="missing member.*checkpoint/model.index"):
        unpack(io.BytesIO(no_index), "b.ng", checkpoint=False)


# --------------------------------------------------------------------------- hostile input
# Raw zip records, so a test can lay members out in ways zipfile never writes.
_LOCAL = struct.Struct("<4sHHHHHIIIHH")
_CENTRAL = struct.Struct("<4sHHHHHHIIIHHHHHII")
_END = struct.Struct("<4sHHHHIIH")


def _local(name: str, data: bytes, flags: int = 0) -> bytes:
    raw = name.encode()
    header = _LOCAL.pack(
        b"PK\x03\x04", 20, flags, 0, 0, 0x21, zlib.crc32(data), len(data), len(data), len(raw), 0
    )
    return header + raw + data


def _raw_zip(members: list[tuple[str, bytes, int]], body: bytes, flags: int = 0) -> bytes:
    """``body`` followed by a central directory of ``(name, data, local header offset)``."""
    directory = b""
    for name, data, offset in members:
        raw = name.encode()
        directory += (
            _CENTRAL.pack(
                b"PK\x01\x02",
                20,
                20,
                flags,
                0,
                0,
                0x21,
                zlib.crc32(data),
                len(data),
                len(data),
                len(raw),
                0,
                0,
                0,
                0,
                0,
                offset,
            )
            + raw
        )
    end = _END.pack(b"PK\x05\x06", 0, 0, len(members), len(members), len(directory), len(body), 0)
    return body + directory + end


def _manifest(parts: dict[str, bytes]) -> bytes:
    return json.dumps(
        {
            "format": "nestgraph-bundle",
            "version": 1,
            "checkpoint_prefix": None,
            "parts": {
                name: {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
                for name, data in parts.items()
            },
        }
    ).encode()


def test_members_that_overlap_are_refused_before_any_is_read() -> None:
    # spec.yaml's header and bytes sit inside graph.pb's bytes: each checksum is right,
    # and a reader that trusts the directory reads the same bytes twice.
    spec = CONTENTS.spec
    inner = _local("spec.yaml", spec)
    graph = inner + b"padding"
    manifest = _manifest({"graph.pb": graph, "spec.yaml": spec})
    body = _local("manifest.json", manifest)
    graph_at = len(body)
    body += _local("graph.pb", graph)
    spec_at = graph_at + _LOCAL.size + len("graph.pb")
    blob = _raw_zip(
        [
            ("manifest.json", manifest, 0),
            ("graph.pb", graph, graph_at),
            ("spec.yaml", spec, spec_at),
        ],
        body,
    )
    assert zipfile.ZipFile(io.BytesIO(blob)).read("spec.yaml") == spec  # a "valid" zip
    with pytest.raises(
        ng.BundleError, match="b.ng: corrupt bundle: members graph.pb and spec.yaml overlap"
    ):
        unpack(io.BytesIO(blob), "b.ng")


def test_a_member_past_the_end_or_without_a_header_is_refused() -> None:
    manifest = _manifest({"graph.pb": b"g", "spec.yaml": b"s"})
    body = _local("manifest.json", manifest) + _local("graph.pb", b"g") + _local("spec.yaml", b"s")
    far = _raw_zip([("manifest.json", manifest, 0), ("graph.pb", b"g", 10**6)], body)
    with pytest.raises(ng.BundleError, match="member graph.pb starts outside the archive"):
        unpack(io.BytesIO(far), "b.ng")
    graph_at = len(_local("manifest.json", manifest))
    misplaced = _raw_zip([("manifest.json", manifest, 0), ("graph.pb", b"g", graph_at + 3)], body)
    with pytest.raises(ng.BundleError, match="member graph.pb has no local header"):
        unpack(io.BytesIO(misplaced), "b.ng")


def test_an_encrypted_member_is_a_bundle_error() -> None:
    manifest = _manifest({"graph.pb": b"g", "spec.yaml": b"s"})
    members = [("manifest.json", manifest), ("graph.pb", b"g"), ("spec.yaml", b"s")]
    body, entries = b"", []
    for name, data in members:
        entries.append((name, data, len(body)))
        body += _local(name, data, flags=1)
    with pytest.raises(ng.BundleError, match="b.ng: corrupt bundle: .*encrypted"):
        unpack(io.BytesIO(_raw_zip(entries, body, flags=1)), "b.ng")


def test_a_deeply_nested_manifest_is_refused_without_recursion() -> None:
    for deep in (b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 50_000 + b"1" + b"}" * 50_000):
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as archive:
            archive.writestr("manifest.json", deep)
        with pytest.raises(ng.BundleError, match="manifest.json nests [0-9]+ levels deep"):
            unpack(io.BytesIO(out.getvalue()), "b.ng")
    # Brackets inside strings do not count.
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("manifest.json", json.dumps({"format": "[[[[[[[[[[[[[[[[[[["}))
    with pytest.raises(ng.BundleError, match="manifest format is '\\[+', expected"):
        unpack(io.BytesIO(out.getvalue()), "b.ng")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_pipes_devices_and_directories_are_refused_without_reading(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.ng"
    os.mkfifo(fifo)
    # Opening a FIFO with no writer would block forever: the check must come first.
    with pytest.raises(ng.BundleError, match="pipe.ng: is a FIFO \\(named pipe\\), not a regular"):
        unpack_file(str(fifo))
    with pytest.raises(ng.BundleError, match="pipe.ng: is a FIFO"):
        ng.load(fifo)
    with pytest.raises(ng.BundleError, match=": is a directory, not a regular file"):
        unpack_file(str(tmp_path))
    with pytest.raises(ng.BundleError, match="no such bundle"):
        unpack_file(str(tmp_path / "absent.ng"))
    if os.path.exists("/dev/zero"):
        with pytest.raises(ng.BundleError, match="/dev/zero: is a character device"):
            unpack_file("/dev/zero")
        with pytest.raises(ng.BundleError, match="/dev/zero: is a character device"):
            ng.load("/dev/zero")
        with (
            open("/dev/zero", "rb") as endless,
            pytest.raises(ng.BundleError, match="zero: is a character device"),
        ):
            unpack(endless, "zero")
        with pytest.raises(ng.SpecError, match="is a character device"):
            ng.load_spec("/dev/zero")


def test_a_regular_file_unpacks(tmp_path: Path) -> None:
    path = tmp_path / "b.ng"
    path.write_bytes(_packed())
    assert unpack_file(str(path)).spec == CONTENTS.spec


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_swapped_in_after_the_check_does_not_block_the_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nestgraph.bundle import _container

    fifo = tmp_path / "swapped.ng"
    os.mkfifo(fifo)
    monkeypatch.setattr(_container, "check_regular", lambda path: None)  # lost the race
    with pytest.raises(ng.BundleError, match="swapped.ng: is a FIFO"):
        unpack_file(str(fifo))


def _streamed(contents: BundleContents = CONTENTS) -> bytes:
    out = io.BytesIO()
    files = {name: io.BytesIO(data) for name, data in contents.checkpoint.items()}
    pack_streamed(
        [("graph.pb", contents.graph), ("spec.yaml", contents.spec)],
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


# --------------------------------------------------------------------------- format versions
# Version 2: a data shard's entry may be {"size", "verified_by": "checkpoint-index"}.

SHARD = "checkpoint/model.data-00000-of-00001"


def _with_parts(version: int, edit: dict[str, object]) -> bytes:
    """``_packed()`` with its manifest's version and some ``parts`` entries replaced."""
    members = [
        (info.filename, zipfile.ZipFile(io.BytesIO(_packed())).read(info))
        for info in zipfile.ZipFile(io.BytesIO(_packed())).infolist()
    ]
    manifest = json.loads(dict(members)["manifest.json"])
    manifest["version"] = version
    manifest["parts"] = {
        n: {"sha256": hashlib.sha256(d).hexdigest(), "size": len(d)}
        for n, d in members
        if n != "manifest.json"
    }
    manifest["parts"].update(edit)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("manifest.json", json.dumps(manifest))
        for name, data in members[1:]:
            archive.writestr(name, data)
    return out.getvalue()


def test_the_packers_write_version_2_without_hashing_data_shards() -> None:
    for data in (_packed(), _streamed()):
        manifest = unpack(io.BytesIO(data), "b.ng").manifest
        assert manifest["version"] == 2
        assert manifest["parts"][SHARD] == {"size": 7000, "verified_by": "checkpoint-index"}
        assert set(manifest["parts"]["checkpoint/model.index"]) == {"sha256", "size"}


@pytest.mark.parametrize("version", [1, 2])
def test_bundles_that_hash_every_member_are_read_and_checked(version: int) -> None:
    again = unpack(io.BytesIO(_with_parts(version, {})), "b.ng")
    assert dict(again.checkpoint) == dict(CONTENTS.checkpoint)
    wrong = {SHARD: {"sha256": "0" * 64, "size": 7000}}
    with pytest.raises(ng.BundleError, match=f"checksum mismatch for member {SHARD}"):
        unpack(io.BytesIO(_with_parts(version, wrong)), "b.ng")


BAD_ENTRIES = [
    (
        "version 1",
        1,
        {SHARD: {"size": 7000, "verified_by": "checkpoint-index"}},
        f"has verified_by for '{SHARD}', which format version 1 lacks; it needs a sha256",
    ),
    (
        "not a shard",
        2,
        {"spec.yaml": {"size": 36, "verified_by": "checkpoint-index"}},
        "says 'spec.yaml' is verified_by 'checkpoint-index', but only checkpoint data shards",
    ),
    (
        "unknown check",
        2,
        {SHARD: {"size": 7000, "verified_by": "nothing"}},
        f"has an unknown check for '{SHARD}'",
    ),
    (
        "extra key",
        2,
        {SHARD: {"size": 7000, "verified_by": "checkpoint-index", "crc": 1}},
        f"has an unknown check for '{SHARD}'",
    ),
    (
        "no size",
        2,
        {SHARD: {"verified_by": "checkpoint-index"}},
        f"has no sha256/size for '{SHARD}'",
    ),
    ("negative size", 2, {SHARD: {"size": -1, "sha256": "0" * 64}}, "has no sha256/size"),
]


@pytest.mark.parametrize(
    ("version", "edit", "message"), [c[1:] for c in BAD_ENTRIES], ids=[c[0] for c in BAD_ENTRIES]
)
def test_manifest_entries_are_validated_strictly(
    version: int, edit: dict[str, object], message: str
) -> None:
    data = _with_parts(version, edit)
    for checkpoint in (True, False):
        with pytest.raises(
            ng.BundleError, match="b.ng: corrupt bundle: manifest.json .*" + message
        ):
            unpack(io.BytesIO(data), "b.ng", checkpoint=checkpoint)
