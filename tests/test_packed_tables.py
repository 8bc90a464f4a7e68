"""Format 1.1 packed tables (spec/FORMAT.md §1.5) and the dense HDF5 layout of both formats."""

from __future__ import annotations

import os
import shutil

import h5py
import numpy as np
import pytest
import zstandard

from lplabel import StoreWriter, open_store, store_info, verify_store
from lplabel.checksum import crc32
from lplabel.errors import ChecksumError, CorruptStoreError, UnsupportedExtensionError
from lplabel.store import packed as P
from lplabel.views import AugmentPolicy, plan_steps

from conftest import write_store

TABLES_1_0 = (
    "images/keys",
    "images/class",
    "steps/epoch",
    "steps/step",
    "steps/record_start",
    "steps/mix_lambda",
    "steps/mix_box",
    "chunks/step_start",
)


def _content(path):
    """Everything a reader sees, minus what says which format it is."""
    with open_store(path) as s:
        h = dict(s.header)
        for k in ("version", "created", "extensions"):
            h.pop(k)
        out = [
            h,
            {k: (v.dtype.str, v.tolist()) for k, v in s.tables.items()},
            s.image_keys,
            {n: (s.chunks[n][:, 2].tolist(), s.chunk_crc[n].tolist()) for n in s.chunks},
        ]
        for st in s.iter_steps():
            out.append(
                [np.asarray(getattr(st, f)).tobytes() for f in ("image", "crop", "flip", "mix_partner", "mix_box")]
                + [st.mix_lambda]
                + [st.label[k].tobytes() for k in sorted(st.label)]
            )
    return out


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    d = tmp_path_factory.mktemp("packed")
    write_store(d / "p.lpl", steps_per_chunk=2, label="topk", k=4)
    write_store(d / "u.lpl", steps_per_chunk=2, label="topk", k=4, packed_tables=False)
    return d / "p.lpl", d / "u.lpl"


def test_default_writes_1_1_packed_and_1_0_on_request(both):
    packed, plain = both
    with h5py.File(packed, "r") as f:
        assert sorted(f) == ["columns", "header", "tables"]
        assert list(f.attrs["lplabel_version"]) == [1, 1]
        assert f.attrs.get_id("lplabel_format").dtype.kind == "S"  # fixed-length: no global heap
        assert f.attrs["lplabel_format"] == b"lplabel"
        assert "crc32" in f["tables"].attrs and f["tables"].dtype == np.uint8
        assert not any(t in f for t in TABLES_1_0)
        assert sorted(f["columns/label"]) == ["seg_000000"]
    with h5py.File(plain, "r") as f:
        assert list(f.attrs["lplabel_version"]) == [1, 0]
        assert f.attrs["lplabel_format"] == "lplabel"  # variable-length str, as before 1.1
        assert "tables" not in f and all(t in f for t in TABLES_1_0)
    with open_store(packed) as s, open_store(plain) as u:
        assert s.format_version == (1, 1) and s.packed and s.header["version"] == [1, 1]
        assert s.header["extensions"] == {"packed_tables": {"must_understand": True}}
        assert u.format_version == (1, 0) and not u.packed and u.header["extensions"] == {}
    assert verify_store(packed).ok and verify_store(plain).ok


def test_both_formats_read_back_identically(both):
    assert _content(both[0]) == _content(both[1])


def test_packed_frame_holds_the_1_0_tables_under_their_paths(both):
    packed, plain = both
    with h5py.File(packed, "r") as f:
        t = P.unpack_tables(f["tables"][()].tobytes())
    with h5py.File(plain, "r") as f:
        names = []
        f.visititems(
            lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) and "/seg_" not in n and n != "header" else None
        )
        assert sorted(t) == sorted(names)
        for n in names:
            assert t[n].dtype == f[n].dtype and t[n].tobytes() == f[n][()].tobytes(), n


def test_a_reader_without_packed_tables_refuses_by_name(both, monkeypatch):
    """What lplabel releases before 1.1 do: the extension is must_understand."""
    import lplabel.store.header as H

    monkeypatch.setattr(H, "KNOWN_EXTENSIONS", frozenset())
    with pytest.raises(UnsupportedExtensionError, match="packed_tables"):
        open_store(both[0])
    open_store(both[1]).close()  # 1.0 stores need nothing new


def test_writer_owns_the_extension(tmp_path):
    given = {"packed_tables": {"must_understand": True, "bogus": 1}, "mine": {"must_understand": False}}
    write_store(tmp_path / "a.lpl", extensions=given, packed_tables=False)
    write_store(tmp_path / "b.lpl", extensions=given)
    with open_store(tmp_path / "a.lpl") as a, open_store(tmp_path / "b.lpl") as b:
        assert a.header["extensions"] == {"mine": {"must_understand": False}} and not a.packed
        assert (
            b.header["extensions"] == {"mine": {"must_understand": False}, "packed_tables": {"must_understand": True}}
            and b.packed
        )


def _replace_tables(src, dst, data: bytes, *, fix_crc=True):
    shutil.copy(src, dst)
    with h5py.File(dst, "r+") as f:
        old = int(f["tables"].attrs["crc32"])
        del f["tables"]
        d = f.create_dataset("tables", data=np.frombuffer(data, np.uint8))
        d.attrs["crc32"] = np.uint32(crc32(data) if fix_crc else old)
    return dst


def test_damaged_or_malformed_packed_tables_are_named(both, tmp_path):
    packed, _ = both
    with h5py.File(packed, "r") as f:
        blob = f["tables"][()].tobytes()
        tables = P.unpack_tables(blob)
    flipped = bytearray(blob)
    flipped[len(blob) // 2] ^= 4
    bad = _replace_tables(packed, tmp_path / "crc.lpl", bytes(flipped), fix_crc=False)
    with pytest.raises(ChecksumError, match="tables"):
        open_store(bad)
    assert not verify_store(bad).ok

    def frame(raw):
        return zstandard.ZstdCompressor().compress(raw)

    cases = {
        "trailing": frame(_raw(tables) + b"\0"),
        "short": frame(b"\1\0"),
        "not json": frame(b"\3\0\0\0abc"),
        "bad entry": frame(_raw({}, directory=b'[["steps/epoch","float7",[1]]]')),
        "no size": zstandard.ZstdCompressor(write_content_size=False).compress(_raw(tables)),
        "not zstd": b"definitely not a zstd frame",
    }
    for why, data in cases.items():
        bad = _replace_tables(packed, tmp_path / "m.lpl", data)
        with pytest.raises(CorruptStoreError, match="packed tables are malformed"):
            open_store(bad)
    missing = {k: v for k, v in tables.items() if k != "steps/mix_box"}
    bad = _replace_tables(packed, tmp_path / "missing.lpl", P.pack_tables(list(missing.items())))
    with pytest.raises(CorruptStoreError, match="missing table 'steps/mix_box'"):
        open_store(bad)


def _raw(tables, directory=None):
    import json

    if directory is None:
        directory = json.dumps([[k, P._NAMES[v.dtype], list(v.shape)] for k, v in tables.items()]).encode()
    return len(directory).to_bytes(4, "little") + directory + b"".join(v.tobytes() for v in tables.values())


def test_unpack_refuses_duplicates_and_short_frames():
    a = np.arange(3, dtype="<i4")
    good = P.pack_tables([("x", a), ("y", a.astype("<f8"))])
    got = P.unpack_tables(good)
    assert got["x"].dtype == np.dtype("<i4") and got["y"].tolist() == [0.0, 1.0, 2.0]
    got["x"][0] = 9  # tables are ordinary writable arrays
    with pytest.raises(CorruptStoreError, match="twice"):
        P.unpack_tables(P.pack_tables([("x", a), ("x", a)]))
    import json

    d = json.dumps([["x", "int32", [4]]]).encode()
    with pytest.raises(CorruptStoreError, match="past the end"):
        P.unpack_tables(zstandard.ZstdCompressor().compress(len(d).to_bytes(4, "little") + d + a.tobytes()))
    with pytest.raises(ValueError, match="cannot be packed"):
        P.pack_tables([("z", np.zeros(2, np.float16))])


def test_unpack_refuses_crafted_frames_by_name():
    """Frames a damaged or hostile writer could produce (CRC-consistent, so only the frame checks
    stand between them and the reader) are refused with the named error, never a raw exception."""
    import json

    z = zstandard.ZstdCompressor(write_content_size=True)
    a = np.arange(3, dtype="<i4")
    good = P.pack_tables([("x", a)])

    def frame(directory, body=b""):
        d = json.dumps(directory).encode() if not isinstance(directory, bytes) else directory
        return z.compress(len(d).to_bytes(4, "little") + d + body)

    cases = {
        "trailing bytes": good + b"\0\0",
        "two frames": good + good,
        "truncated frame": good[:-2],
        "huge shape": frame([["x", "int32", [2**64]]]),
        "shape that wraps in int64": frame([["x", "int32", [2**40, 2**40]]]),
        "deeply nested directory": frame(b"[" * 100_000 + b"]" * 100_000),
        "directory length past the end": z.compress((10**6).to_bytes(4, "little") + b"[]"),
    }
    for why, blob in cases.items():
        with pytest.raises(CorruptStoreError, match="packed tables are malformed") as info:
            P.unpack_tables(blob)
        assert info.value is not None, why


def _derived_store(path, packed, n=100, epochs=300, keep=10):
    """A small derived-views store shaped like the digits benchmark's smallest (10 steps of 50)."""
    from lplabel.images import ImageIndex

    policy = AugmentPolicy(output_size=8, mix="cutmix")
    sizes = np.full((n, 2), 8, np.int32)
    index = ImageIndex([f"digits/{i}" for i in range(n)], np.arange(n) % 10, "0" * 64, [str(c) for c in range(10)])
    pairs = [(e, s) for e in range(0, epochs, epochs // keep) for s in range(1)]
    rng = np.random.default_rng(0)
    with StoreWriter(
        path,
        num_classes=10,
        images=index,
        batch_size=50,
        epochs=epochs,
        augmentation=policy.to_json(),
        seed=0,
        derived_views=sizes,
        steps_per_chunk=keep,
        packed_tables=packed,
    ) as w:
        for e, s, v in plan_steps(0, pairs, sizes, 50, policy):
            w.write_step(
                e,
                s,
                image=v.image,
                crop=v.crop,
                flip=v.flip,
                mix_partner=v.mix_partner,
                mix_lambda=v.mix_lambda,
                mix_box=v.mix_box,
                logits=(rng.standard_normal((len(v), 10)) * 3).astype(np.float32),
            )
    return path


def test_fixed_cost_of_a_small_store(tmp_path):
    """The HDF5 container of a small packed store is under 1 KB; 1.0 stores shed HDF5's block
    reservations and oversized object headers too (the global heap of their string stays)."""
    p = _derived_store(tmp_path / "p.lpl", True)
    u = _derived_store(tmp_path / "u.lpl", False)
    ip, iu = store_info(p), store_info(u)
    assert ip["container_overhead_bytes"] < 1300, ip["bytes_by_field"]  # HDF5 ~900 B + the tables directory
    assert iu["container_overhead_bytes"] < 4096 + 4800, iu["bytes_by_field"]
    assert ip["file_bytes"] < iu["file_bytes"] - 8000
    # ten steps of step tables cost well under a byte per record
    assert ip["bytes_by_field"]["step_tables"] < 0.5 * ip["records"]
    for i in (ip, iu):
        assert sum(i["bytes_by_field"].values()) == i["file_bytes"]


@pytest.mark.parametrize("packed", [True, False], ids=["1.1", "1.0"])
def test_info_accounts_for_every_byte_in_both_formats(tmp_path, packed):
    path = tmp_path / "i.lpl"
    write_store(path, packed_tables=packed)
    info = store_info(path)
    assert sum(info["bytes_by_field"].values()) == info["file_bytes"] == os.path.getsize(path)
    assert info["format_version"] == ([1, 1] if packed else [1, 0])
    assert all(v >= 0 for v in info["bytes_by_field"].values())


def test_packed_sizes_split_exactly():
    parts = {"one": np.arange(1000, dtype="<i8").tobytes(), "two": bytes(40), "three": b""}
    got = P.packed_sizes(parts, 777)
    assert sum(got.values()) == 777 and got["three"] == 0 and got["one"] > got["two"] > 0
    assert P.packed_sizes({"a": b"", "b": b""}, 5) == {"a": 5, "b": 0}


def test_packed_tables_in_a_file_claiming_format_1_0_is_refused(both, tmp_path):
    """The extension and the version attribute must agree; a 1.0 file cannot hold packed tables."""
    p = tmp_path / "mislabelled.lpl"
    shutil.copy(both[0], p)
    with h5py.File(p, "r+") as f:
        f.attrs.modify("lplabel_version", np.array([1, 0], dtype=f.attrs["lplabel_version"].dtype))
    with pytest.raises(CorruptStoreError, match="format 1.0"):
        open_store(p)
