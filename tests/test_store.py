"""The label store: round trips, lookups, atomic writes, and named errors for bad files."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import lplabel
from lplabel import StoreWriter, open_store, store_info, verify_store
from lplabel.codecs import default_label_codecs
from lplabel.errors import (
    ChecksumError,
    CodecConfigError,
    CorruptStoreError,
    FormatVersionError,
    NotAStoreError,
    NotHDF5Error,
    OutputExistsError,
    StepNotFoundError,
    TruncatedFileError,
    UnknownCodecError,
    UnsupportedExtensionError,
    WriterError,
)
from lplabel.dtypes import bfloat16_to_float32, float32_to_bfloat16

from conftest import realistic_logits, write_store


def _check_equal(store, ref, *, dense_type="float16"):
    assert store.num_steps == len(ref)
    assert store.num_records == sum(len(r["image"]) for r in ref)
    for r in ref:
        got = store.read_step(r["epoch"], r["step"])
        np.testing.assert_array_equal(got.image, r["image"])
        np.testing.assert_array_equal(got.crop, r["crop"])
        np.testing.assert_array_equal(got.flip, r["flip"])
        np.testing.assert_array_equal(got.mix_partner, r["mix_partner"])
        np.testing.assert_array_equal(got.mix_box, r["mix_box"])
        assert (math.isnan(got.mix_lambda) and math.isnan(r["mix_lambda"])) or got.mix_lambda == r["mix_lambda"]
        if dense_type == "float16":
            np.testing.assert_array_equal(got.label["logits"], r["logits"].astype(np.float16))


def test_dense_round_trip(small_store):
    path, ref = small_store
    with open_store(path) as s:
        _check_equal(s, ref)
        assert s.header["teacher"]["description"] == "synthetic"
        assert s.epochs == 3 and s.batch_size == 8 and s.num_classes == 20


def test_multi_step_chunks_and_no_mix(tmp_path):
    path = tmp_path / "c.lpl"
    ref = write_store(path, steps_per_chunk=4, mix=False, n_images=37, batch_size=8)
    with open_store(path) as s:
        _check_equal(s, ref)
        assert len(s.chunks["label"]) == math.ceil(len(ref) / 4)
        # reading backwards still gives the right rows (chunk cache must not leak)
        for r in reversed(ref):
            np.testing.assert_array_equal(s.read_step(r["epoch"], r["step"]).image, r["image"])


def test_topk_round_trip_matches_numpy_topk(tmp_path):
    path = tmp_path / "t.lpl"
    ref = write_store(path, label="topk", k=5, tail="logsumexp")
    with open_store(path) as s:
        for r in ref:
            lab = s.read_step(r["epoch"], r["step"]).label
            z = r["logits"]
            order = np.argsort(-z, axis=1, kind="stable")[:, :5]
            np.testing.assert_array_equal(lab["indices"], order)
            np.testing.assert_array_equal(lab["values"], np.take_along_axis(z, order, 1).astype(np.float16))
            mask = np.ones_like(z, bool)
            np.put_along_axis(mask, order, False, 1)
            lse = np.log(np.where(mask, np.exp(z.astype(np.float64)), 0).sum(1))
            np.testing.assert_allclose(lab["tail"].astype(np.float64), lse, rtol=2e-3)


def test_topk_input_stored_losslessly(tmp_path):
    """Labels that are top-k already (LPQLD) go in and come out bit-exact."""
    rng = np.random.default_rng(1)
    path = tmp_path / "k.lpl"
    codecs = default_label_codecs("topk", k=4, type="float16", index_type="int16")
    with StoreWriter(
        path,
        num_classes=1000,
        images=10,
        batch_size=5,
        epochs=1,
        label_input=("topk", 4),
        label_codecs=codecs,
        crop_type="float16",
    ) as w:
        vals = rng.normal(size=(2, 5, 4)).astype(np.float16)
        idx = rng.integers(0, 1000, size=(2, 5, 4)).astype(np.int16)
        crop = rng.random((2, 5, 4)).astype(np.float16)
        for s in range(2):
            w.write_step(
                0,
                s,
                image=np.arange(5) + 5 * s,
                crop=crop[s],
                flip=np.zeros(5, bool),
                topk_indices=idx[s],
                topk_values=vals[s],
            )
    with open_store(path) as st_:
        for s in range(2):
            got = st_.read_step(0, s)
            assert got.label["indices"].dtype == np.int16 and got.label["values"].dtype == np.float16
            np.testing.assert_array_equal(got.label["indices"], idx[s])
            np.testing.assert_array_equal(got.label["values"].view(np.uint16), vals[s].view(np.uint16))
            assert got.crop.dtype == np.float16
            np.testing.assert_array_equal(got.crop.view(np.uint16), crop[s].view(np.uint16))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    n_images=st.integers(1, 30),
    num_classes=st.integers(2, 300),
    batch_size=st.integers(1, 9),
    epochs=st.integers(1, 3),
    spc=st.integers(1, 5),
    dense_type=st.sampled_from(["float32", "float16", "bfloat16"]),
    crop_type=st.sampled_from(["float32", "float16"]),
    seed=st.integers(0, 2**31),
)
def test_property_round_trip_bit_exact(
    tmp_path_factory, n_images, num_classes, batch_size, epochs, spc, dense_type, crop_type, seed
):
    path = tmp_path_factory.mktemp("prop") / "p.lpl"
    rng = np.random.default_rng(seed)
    spe = -(-n_images // batch_size)
    written = []
    with StoreWriter(
        path,
        num_classes=num_classes,
        images=n_images,
        batch_size=batch_size,
        epochs=epochs,
        label_codecs=default_label_codecs("dense", type=dense_type),
        crop_type=crop_type,
        steps_per_chunk=spc,
    ) as w:
        for e in range(epochs):
            for s in range(spe):
                if rng.random() < 0.3:
                    continue  # pruned stores hold gaps
                b = int(rng.integers(1, batch_size + 1))
                z = (rng.standard_normal((b, num_classes)) * rng.uniform(0.1, 50)).astype(np.float32)
                crop = rng.random((b, 4)).astype(crop_type)
                rec = dict(
                    image=rng.integers(0, n_images, b),
                    crop=crop,
                    flip=rng.random(b) < 0.5,
                    logits=z,
                    mix_partner=rng.integers(-1, b, b),
                    mix_lambda=float(rng.random()),
                    mix_box=rng.integers(0, 300, 4),
                )  # no output_size: any box in the int16 range >= 0
                w.write_step(e, s, **rec)
                written.append((e, s, rec))
    with open_store(path) as store:
        assert store.num_steps == len(written)
        for e, s, rec in written:
            got = store.read_step(e, s)
            np.testing.assert_array_equal(got.image, rec["image"])
            assert got.crop.dtype == np.dtype(crop_type)
            np.testing.assert_array_equal(got.crop, rec["crop"])
            np.testing.assert_array_equal(got.flip, rec["flip"])
            np.testing.assert_array_equal(got.mix_partner, rec["mix_partner"])
            np.testing.assert_array_equal(got.mix_box, rec["mix_box"])
            assert got.mix_lambda == rec["mix_lambda"]
            lab = got.label["logits"]
            if dense_type == "bfloat16":  # handed out widened to float32 (exact), not as bit patterns
                assert lab.dtype == np.float32
                np.testing.assert_array_equal(float32_to_bfloat16(lab), float32_to_bfloat16(rec["logits"]))
            else:
                np.testing.assert_array_equal(lab, rec["logits"].astype(dense_type))
    assert verify_store(path).ok


@given(st.lists(st.floats(allow_nan=False, width=32), min_size=1, max_size=50))
def test_bfloat16_round_trip_is_exact_on_representable_values(xs):
    x = np.array(xs, dtype=np.float32)
    once = bfloat16_to_float32(float32_to_bfloat16(x))
    np.testing.assert_array_equal(bfloat16_to_float32(float32_to_bfloat16(once)), once)
    finite = np.isfinite(once)
    assert np.all(np.abs(once[finite] - x[finite]) <= np.abs(x[finite]) * 2**-8 + 1e-38)


def test_lookup_errors(small_store):
    path, ref = small_store
    with open_store(path) as s:
        with pytest.raises(StepNotFoundError, match="epoch 7, step 0"):
            s.read_step(7, 0)
        with pytest.raises(IndexError):
            s.step_at(s.num_steps)
        assert list(s.steps_in_epoch(1)) == [i for i, r in enumerate(ref) if r["epoch"] == 1]


def test_store_pickles_without_handles(small_store):
    import pickle

    path, ref = small_store
    s = open_store(path)
    s.read_step(0, 0)
    s2 = pickle.loads(pickle.dumps(s))
    np.testing.assert_array_equal(s2.read_step(1, 1).image, ref[1 * 5 + 1]["image"])


def test_read_in_forked_child_after_parent_read(small_store):
    """Payload reads use a per-process descriptor: a forked child reads correctly on its own."""
    import multiprocessing as mp

    path, ref = small_store
    s = open_store(path)
    s.read_step(0, 0)
    ctx = mp.get_context("fork")
    with ctx.Pool(1) as pool:
        got = pool.apply(_child_read, (s, 2, 3))
    np.testing.assert_array_equal(got, ref[2 * 5 + 3]["image"])


def _child_read(store, e, st_):
    return store.read_step(e, st_).image


# --- writer misuse and atomicity --------------------------------------------------------------


def test_writer_refuses_bad_steps(tmp_path):
    w = StoreWriter(tmp_path / "w.lpl", num_classes=10, images=20, batch_size=4, epochs=2)
    ok = dict(image=np.arange(4), crop=np.zeros((4, 4)), flip=np.zeros(4, bool), logits=np.zeros((4, 10)))
    with pytest.raises(WriterError, match="outside the schedule"):
        w.write_step(2, 0, **ok)
    w.write_step(0, 1, **ok)
    with pytest.raises(WriterError, match="increasing"):
        w.write_step(0, 1, **ok)
    with pytest.raises(WriterError, match="teacher's output width"):
        w.write_step(0, 2, **{**ok, "logits": np.zeros((4, 11))})
    with pytest.raises(WriterError, match=r"\[0, 20\)"):
        w.write_step(0, 2, **{**ok, "image": np.array([0, 1, 2, 20])})
    with pytest.raises(WriterError, match="mix_partner"):
        w.write_step(0, 2, **{**ok, "mix_partner": np.array([0, 1, 2, 4])})
    with pytest.raises(WriterError, match="dense logits"):
        w.write_step(
            0,
            2,
            **{k: v for k, v in ok.items() if k != "logits"},
            topk_indices=np.zeros((4, 2)),
            topk_values=np.zeros((4, 2)),
        )
    w.close()
    with pytest.raises(WriterError, match="closed"):
        w.write_step(1, 0, **ok)
    assert open_store(tmp_path / "w.lpl").num_steps == 1


def test_writer_refuses_bad_codecs_before_writing(tmp_path):
    out = tmp_path / "x.lpl"
    with pytest.raises(UnknownCodecError, match="unknown codec 'lz77'"):
        StoreWriter(out, num_classes=10, images=4, batch_size=2, epochs=1, label_codecs=[{"name": "lz77"}])
    with pytest.raises(CodecConfigError, match="smaller than the number of classes"):
        StoreWriter(
            out, num_classes=10, images=4, batch_size=2, epochs=1, label_codecs=default_label_codecs("topk", k=10)
        )
    assert not out.exists() and not list(tmp_path.iterdir())


def test_existing_output_refused_and_kept(small_store):
    path, _ = small_store
    before = path.read_bytes()
    with pytest.raises(OutputExistsError):
        StoreWriter(path, num_classes=3, images=3, batch_size=1, epochs=1)
    w = StoreWriter(path, num_classes=3, images=3, batch_size=1, epochs=1, overwrite=True)
    w.write_step(0, 0, image=[0], crop=np.zeros((1, 4)), flip=[False], logits=np.zeros((1, 3)))
    assert path.read_bytes() == before  # untouched until the new store is complete
    w.abort()
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_exception_inside_with_block_leaves_nothing(tmp_path):
    out = tmp_path / "boom.lpl"
    with pytest.raises(RuntimeError):
        with StoreWriter(out, num_classes=3, images=3, batch_size=1, epochs=1) as w:
            w.write_step(0, 0, image=[0], crop=np.zeros((1, 4)), flip=[False], logits=np.zeros((1, 3)))
            raise RuntimeError("teacher crashed")
    assert list(tmp_path.iterdir()) == []


def test_killed_writer_never_leaves_a_file_under_the_final_name(tmp_path):
    """SIGKILL a real writer process mid-stream: the final name must not exist, an older file survives."""
    out = tmp_path / "killed.lpl"
    old = tmp_path / "old.lpl"
    write_store(old, epochs=1)
    out.write_bytes(old.read_bytes())
    script = textwrap.dedent(f"""
        import os, signal, numpy as np
        from lplabel import StoreWriter
        w = StoreWriter({str(out)!r}, num_classes=50, images=100, batch_size=10, epochs=5, overwrite=True)
        for s in range(10):
            w.write_step(0, s, image=np.arange(10), crop=np.zeros((10, 4)), flip=np.zeros(10, bool),
                         logits=np.random.rand(10, 50))
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True)
    assert proc.returncode == -9
    assert out.read_bytes() == old.read_bytes()
    assert open_store(out).num_steps == open_store(old).num_steps


# --- bad files ------------------------------------------------------------------------------


def test_not_hdf5(tmp_path):
    p = tmp_path / "a.lpl"
    p.write_bytes(b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\n")
    with pytest.raises(NotHDF5Error, match="Git LFS pointer"):
        open_store(p)
    p.write_bytes(b"PK\x03\x04" + b"\0" * 100)
    with pytest.raises(NotHDF5Error, match="torch.save"):
        open_store(p)
    with pytest.raises(NotAStoreError, match="directory"):
        open_store(tmp_path)


def test_hdf5_but_not_a_store(tmp_path):
    p = tmp_path / "other.h5"
    with h5py.File(p, "w") as f:
        f["x"] = np.arange(3)
    with pytest.raises(NotAStoreError, match="not an lplabel label store"):
        open_store(p)


def test_newer_major_version_refused(small_store):
    path, _ = small_store
    with h5py.File(path, "r+") as f:
        f.attrs["lplabel_version"] = np.array([2, 0], dtype="<i4")
    with pytest.raises(FormatVersionError, match="upgrade lplabel"):
        open_store(path)


def test_newer_minor_version_and_optional_extension_are_read(tmp_path):
    path = tmp_path / "m.lpl"
    write_store(path, extensions={"future_thing": {"must_understand": False, "x": 1}})
    with h5py.File(path, "r+") as f:
        f.attrs["lplabel_version"] = np.array([1, 7], dtype="<i4")
        f.create_dataset("something_new_in_1_7", data=np.arange(5))
    with open_store(path) as s:
        assert s.format_version == (1, 7)
        assert s.read_step(0, 0).image is not None


def test_required_unknown_extension_refused(tmp_path):
    path = tmp_path / "e.lpl"
    with pytest.raises(UnsupportedExtensionError):
        write_store(path, extensions={"quantum_labels": {"must_understand": True}})
    # A file written by a newer tool with such an extension: patch the header and its checksum.
    write_store(path)
    _patch_header(path, lambda h: h.setdefault("extensions", {}).update({"quantum_labels": {"must_understand": True}}))
    with pytest.raises(UnsupportedExtensionError, match="quantum_labels"):
        open_store(path)


def _patch_header(path, fn):
    import json

    from lplabel.checksum import crc32

    with h5py.File(path, "r+") as f:
        h = json.loads(f["header"][()].tobytes())
        fn(h)
        raw = np.frombuffer(json.dumps(h).encode(), np.uint8)
        del f["header"]
        f["header"] = raw
        f.attrs["header_crc32"] = np.uint32(crc32(raw.tobytes()))


def test_unknown_codec_in_file_is_named(tmp_path):
    path = tmp_path / "u.lpl"
    write_store(path)
    _patch_header(path, lambda h: h["columns"]["label"]["codecs"].insert(0, {"name": "vq-vae", "configuration": {}}))
    with pytest.raises(UnknownCodecError, match="vq-vae"):
        open_store(path)


def test_truncated_file(small_store):
    path, _ = small_store
    data = path.read_bytes()
    for cut in (len(data) // 3, len(data) - 100):
        p = path.with_name(f"cut{cut}.lpl")
        p.write_bytes(data[:cut])
        with pytest.raises(TruncatedFileError, match="truncated"):
            open_store(p)
        report = verify_store(p)
        assert not report.ok and "truncated" in report.problems[0]


def test_corrupted_chunk_named_on_read(small_store):
    path, ref = small_store
    with open_store(path) as s:
        seg_off, _ = s.segment_offsets["label"][0]
        _, off, n = s.chunks["label"][7]
    raw = bytearray(path.read_bytes())
    raw[seg_off + off + n // 2] ^= 0x10
    path.write_bytes(bytes(raw))
    with open_store(path) as s:
        r = ref[7]
        with pytest.raises(ChecksumError, match=rf"column 'label', chunk 7 \(epoch {r['epoch']} step {r['step']}"):
            s.read_step(r["epoch"], r["step"])
        s.read_step(ref[6]["epoch"], ref[6]["step"])  # neighbours still readable
    report = verify_store(path)
    assert not report.ok and "chunk 7" in " ".join(report.problems)


def _decoded_content(path):
    with open_store(path) as s:
        out = [s.header, {k: v.tolist() for k, v in s.tables.items()}, s.image_keys]
        for st_ in s.iter_steps():
            out.append(
                (
                    st_.image.tolist(),
                    st_.crop.tolist(),
                    st_.flip.tolist(),
                    st_.mix_partner.tolist(),
                    {k: v.tobytes() for k, v in st_.label.items()},
                )
            )
        return out


@pytest.mark.parametrize("packed", [True, False], ids=["1.1-packed", "1.0"])
def test_every_bit_flip_is_caught_or_harmless(tmp_path, packed):
    """Flip one bit at many positions across the whole file: verify must catch it, or everything
    decoded must equal the original (a flip in unused bytes)."""
    path = tmp_path / "f.lpl"
    write_store(path, n_images=12, num_classes=10, batch_size=4, epochs=2, label="topk", k=3, packed_tables=packed)
    original = path.read_bytes()
    truth = _decoded_content(path)
    rng = np.random.default_rng(0)
    positions = np.unique(np.concatenate([rng.integers(0, len(original), 400), np.arange(0, len(original), 97)]))
    caught = harmless = 0
    for pos in positions:
        bad = bytearray(original)
        bad[pos] ^= 1 << int(rng.integers(0, 8))
        p = tmp_path / "flip.lpl"
        p.write_bytes(bytes(bad))
        report = verify_store(p)
        if not report.ok:
            caught += 1
            continue
        assert _decoded_content(p) == truth, f"flip at byte {pos} passed verify but changed decoded content"
        harmless += 1
    assert caught > 0 and caught + harmless == len(positions)


def test_info_accounts_for_every_byte(small_store):
    path, ref = small_store
    info = store_info(path)
    assert info["records"] == sum(len(r["image"]) for r in ref)
    assert sum(info["bytes_by_field"].values()) == info["file_bytes"] == os.path.getsize(path)
    assert info["dense_fp16_bytes"] == info["records"] * 20 * 2
    assert info["ratio_vs_dense_fp16"] == pytest.approx(info["dense_fp16_bytes"] / info["file_bytes"])


def test_public_api_exports():
    assert lplabel.__version__
    for name in ("StoreWriter", "open_store", "verify_store", "store_info", "LplabelError"):
        assert hasattr(lplabel, name)


def test_errors_pickle_with_their_message():
    import pickle

    e = ChecksumError("checksum mismatch", path="/x.lpl", part="chunk 3", hint="restore it")
    e2 = pickle.loads(pickle.dumps(e))
    assert type(e2) is ChecksumError and str(e2) == str(e) and e2.part == "chunk 3"
    assert isinstance(e2, CorruptStoreError)


def test_realistic_logits_helper_is_peaked():
    z = realistic_logits(np.random.default_rng(0), 100, 50)
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    assert np.median(p.max(1)) > 0.5
