"""Round trips of every label codec (hypothesis), chain rules, and whole chains through a store."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from lplabel.codecs import Field, Pipeline, get_codec, label_chain
from lplabel.codecs.bitpack import BitPack
from lplabel.codecs.classmap import ClassMap, learn_class_order
from lplabel.codecs.delta import Delta, from_keys, to_keys
from lplabel.codecs.shuffle import Shuffle
from lplabel.codecs.sort import Sort
from lplabel.codecs.topk import TopK
from lplabel.codecs.zplanes import ZPlanes
from lplabel.codecs.zstd import Zstd, train_dictionary
from lplabel.dtypes import storage_dtype
from lplabel.errors import CodecChainError, CodecConfigError, CodecError, UnknownCodecError

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _bits(a):
    a = np.ascontiguousarray(a)
    return a.view(np.dtype(f"u{a.dtype.itemsize}"))


def topk_block(draw_rows, k, c, seed):
    rng = np.random.default_rng(seed)
    idx = (
        np.stack([rng.choice(c, k, replace=False) for _ in range(draw_rows)]).astype(np.uint16)
        if draw_rows
        else np.zeros((0, k), np.uint16)
    )
    vals = rng.normal(3, 3, (draw_rows, k)).astype(np.float16)
    return idx, vals


# -- delta -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "type_", ["float16", "bfloat16", "float32", "int16", "uint16", "int8", "uint8", "int32", "uint32"]
)
@FAST
@given(data=st.data())
def test_delta_roundtrip_any_order(type_, data):
    dt = storage_dtype(type_)
    arr = data.draw(hnp.arrays(dt, hnp.array_shapes(min_dims=2, max_dims=2, max_side=9)))
    spec = (Field("x", type_, (arr.shape[1],)),)
    for order in ("ascending", "descending"):
        c = Delta("x", order)
        out_spec = c.resolve(spec)
        enc = c.encode({"x": arr}, spec)
        assert enc["x"].dtype == storage_dtype(out_spec[0].type)
        dec = c.decode(enc, spec)
        assert np.array_equal(_bits(dec["x"]), _bits(arr))


def test_delta_keys_are_monotone_for_floats():
    x = np.array([-np.inf, -3.5, -1e-3, -0.0, 0.0, 1e-4, 2.0, 65504, np.inf], dtype=np.float16)
    k = to_keys(x.view(np.uint16), "float16").astype(np.int64)
    assert np.all(np.diff(k) > 0)
    assert np.array_equal(
        from_keys(to_keys(x.view(np.uint16), "float16"), "float16").view(np.uint16), x.view(np.uint16)
    )


def test_delta_sorted_values_are_small():
    v = -np.sort(-np.random.default_rng(0).normal(5, 2, (4, 20)).astype(np.float16), axis=1)
    c = Delta("values", "descending")
    spec = (Field("values", "float16", (20,)),)
    enc = c.encode({"values": v}, spec)
    assert enc["values"][:, 1:].max() < 8192 < enc["values"][:, 0].min()  # small steps; first key is large


# -- sort ---------------------------------------------------------------------------------------------
@FAST
@given(n=st.integers(0, 6), k=st.integers(1, 8), seed=st.integers(0, 2**32 - 1), by=st.sampled_from(["index", "value"]))
def test_sort_keeps_pairs(n, k, seed, by):
    idx, vals = topk_block(n, k, 40, seed)
    tail = np.arange(n, dtype=np.float16)
    spec = (Field("indices", "uint16", (k,)), Field("values", "float16", (k,)), Field("tail", "float16", ()))
    c = Sort(by)
    assert c.resolve(spec) == spec
    out = c.decode(c.encode({"indices": idx, "values": vals, "tail": tail}, spec), spec)
    assert np.array_equal(out["tail"], tail)
    for r in range(n):
        assert sorted(zip(idx[r].tolist(), vals[r].tolist())) == sorted(
            zip(out["indices"][r].tolist(), out["values"][r].tolist())
        )
        if by == "index":
            assert np.all(np.diff(out["indices"][r].astype(int)) > 0)
        else:
            assert np.all(np.diff(out["values"][r].astype(np.float64)) <= 0)


# -- bitpack -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("bits", [1, 2, 4])
@FAST
@given(data=st.data())
def test_bitpack_roundtrip(bits, data):
    n = data.draw(st.integers(0, 5))
    m = data.draw(st.integers(1, 13))
    codes = data.draw(hnp.arrays(np.uint8, (n, m), elements=st.integers(0, (1 << bits) - 1)))
    spec = (Field("values", "uint8", (m,)),)
    c = BitPack("values", bits)
    out_spec = c.resolve(spec)
    assert out_spec[0].shape == (-(-m * bits // 8),)
    enc = c.encode({"values": codes}, spec)
    assert enc["values"].shape == (n, out_spec[0].shape[0])
    assert np.array_equal(c.decode(enc, spec)["values"], codes)


def test_bitpack_low_nibble_first_and_range_check():
    c = BitPack("values", 4)
    spec = (Field("values", "uint8", (3,)),)
    enc = c.encode({"values": np.array([[1, 2, 3]], np.uint8)}, spec)
    assert enc["values"].tolist() == [[0x21, 0x03]]
    with pytest.raises(CodecError, match="does not fit 4 bits"):
        c.encode({"values": np.array([[16, 0, 0]], np.uint8)}, spec)
    with pytest.raises(CodecChainError):
        c.resolve((Field("values", "float16", (3,)),))


# -- classmap -----------------------------------------------------------------------------------------
@FAST
@given(c=st.integers(2, 300), seed=st.integers(0, 2**32 - 1))
def test_classmap_roundtrip(c, seed):
    rng = np.random.default_rng(seed)
    order = rng.permutation(c)
    cm = ClassMap.from_order(order)
    cm2 = get_codec(cm.to_json())
    assert cm2 == cm and np.array_equal(cm2.order, order)
    idx = rng.integers(0, c, (5, 3)).astype(np.uint16)
    spec = (Field("indices", "uint16", (3,)), Field("values", "float16", (3,)))
    enc = cm.encode({"indices": idx, "values": np.zeros((5, 3), np.float16)}, spec)
    assert np.array_equal(order[enc["indices"].astype(int)], idx)
    assert np.array_equal(cm.decode(enc, spec)["indices"], idx)


def test_classmap_rejects_non_permutation_and_learns_orders():
    with pytest.raises(CodecConfigError):
        ClassMap(3, "AAABAAEA")  # base64 of uint16 [0, 1, 1]: not a permutation
    idx = np.array([[0, 5], [5, 0], [5, 3]])
    freq = learn_class_order(idx, 6, "frequency")
    assert freq[0] == 5 and sorted(freq.tolist()) == list(range(6))
    co = learn_class_order(idx, 6, "cooccurrence")
    assert co[0] == 5 and co[1] == 0 and sorted(co.tolist()) == list(range(6))


# -- zplanes / shuffle / zstd ---------------------------------------------------------------------------
@FAST
@given(n=st.integers(0, 7), seed=st.integers(0, 2**32 - 1))
def test_zplanes_roundtrip_mixed_fields(n, seed):
    rng = np.random.default_rng(seed)
    spec = (
        Field("indices", "uint16", (4,)),
        Field("values", "bfloat16", (4,)),
        Field("flag", "bool", ()),
        Field("scale", "float32", ()),
        Field("codes", "uint8", (3,)),
    )
    block = {
        "indices": rng.integers(0, 999, (n, 4)).astype(np.uint16),
        "values": rng.integers(0, 65535, (n, 4)).astype(np.uint16),
        "flag": rng.random(n) < 0.5,
        "scale": rng.normal(size=n).astype(np.float32),
        "codes": rng.integers(0, 255, (n, 3)).astype(np.uint8),
    }
    z = ZPlanes(3)
    data = z.encode(block, spec)
    out = z.decode(data, spec, n)
    for f in spec:
        assert np.array_equal(np.asarray(out[f.name]), np.asarray(block[f.name])), f.name
    with pytest.raises(CodecError):
        z.decode(data[:-1] if len(data) > 4 * 13 else data + b"x", spec, n)


def test_zplanes_frames_are_standard_zstd():
    import struct

    import zstandard

    spec = (Field("v", "uint16", (2,)),)
    data = ZPlanes(5).encode({"v": np.array([[0x0102, 0x0304]], np.uint16)}, spec)
    s0, s1 = struct.unpack_from("<2I", data)
    d = zstandard.ZstdDecompressor()
    assert d.decompress(data[8 : 8 + s0]) == bytes([0x02, 0x04])  # low bytes first
    assert d.decompress(data[8 + s0 : 8 + s0 + s1]) == bytes([0x01, 0x03])


@FAST
@given(data=st.binary(max_size=300), es=st.integers(1, 9))
def test_shuffle_roundtrip(data, es):
    s = Shuffle(es)
    assert bytes(s.decode(s.encode(data))) == data


def test_zstd_dictionary_roundtrip_and_config():
    rng = np.random.default_rng(0)
    samples = [rng.integers(0, 20, 2000).astype(np.uint8).tobytes() for _ in range(64)]
    d = train_dictionary(samples, size=2048)
    z = Zstd.with_dictionary(d, 5)
    cfg = z.to_json()
    assert cfg["configuration"]["dictionary"]["size"] == len(d)
    blob = z.encode(samples[0])
    z2 = get_codec(cfg)
    with pytest.raises(CodecError, match="dictionary"):
        z2.decode(blob)
    with pytest.raises(CodecError, match="does not match"):
        z2.attach_dictionary(d[:-1] + b"\0")
    z2.attach_dictionary(d)
    assert z2.decode(blob) == samples[0]
    import pickle

    assert pickle.loads(pickle.dumps(z)).decode(blob) == samples[0]
    # too few samples to train: raw-content dictionary still works
    raw = train_dictionary([b"abc"], size=1024)
    zr = Zstd.with_dictionary(raw, 3)
    assert zr.decode(zr.encode(b"abcabc")) == b"abcabc"


# -- chain rules --------------------------------------------------------------------------------------------
LOGITS = (Field("logits", "float32", (30,)),)


@pytest.mark.parametrize(
    "chain, err",
    [
        ([{"name": "zstd"}, {"name": "bytes"}], CodecChainError),
        ([{"name": "bytes"}, {"name": "topk", "configuration": {"k": 3}}], CodecChainError),
        ([{"name": "bytes"}, {"name": "zplanes"}], CodecChainError),
        ([{"name": "topk", "configuration": {"k": 3}}], CodecChainError),
        ([{"name": "nosuchcodec"}, {"name": "bytes"}], UnknownCodecError),
        ([{"name": "topk", "configuration": {"k": 30}}, {"name": "bytes"}], CodecConfigError),
        ([{"name": "sort"}, {"name": "bytes"}], CodecChainError),
        ([{"name": "delta", "configuration": {"field": "nope"}}, {"name": "bytes"}], CodecChainError),
        (
            [
                {"name": "topk", "configuration": {"k": 3}},
                {"name": "delta", "configuration": {"field": "values"}},
                {"name": "quantize"},
                {"name": "bytes"},
            ],
            CodecChainError,
        ),
        (
            [
                {"name": "topk", "configuration": {"k": 3}},
                {"name": "quantize"},
                {"name": "quantize"},
                {"name": "bytes"},
            ],
            CodecChainError,
        ),
        (
            [
                {"name": "topk", "configuration": {"k": 3, "tail": "logsumexp"}},
                {"name": "quantize", "configuration": {"bits": 4}},
                {"name": "bytes"},
            ],
            CodecChainError,
        ),
        (
            [
                {"name": "topk", "configuration": {"k": 4}},
                {"name": "quantize", "configuration": {"bits": 4}},
                {"name": "bitpack", "configuration": {"field": "values", "bits": 4}},
                {"name": "sort"},
                {"name": "bytes"},
            ],
            CodecChainError,
        ),
        ([{"name": "quantize", "configuration": {"bits": 3}}, {"name": "bytes"}], CodecConfigError),
    ],
)
def test_chain_errors(chain, err):
    with pytest.raises(err):
        Pipeline(chain, LOGITS)


def test_topk_requantize_merges_logsumexp_tail():
    rng = np.random.default_rng(1)
    z = rng.normal(0, 2, (6, 30)).astype(np.float32)
    big = Pipeline([TopK(10, type="float32", tail="logsumexp"), get_codec("bytes")], LOGITS)
    b10 = big.decode(big.encode({"logits": z}), 6)
    spec10 = (Field("indices", "int64", (10,)), Field("values", "float32", (10,)), Field("tail", "float32", ()))
    small = Pipeline([TopK(4, type="float32", tail="logsumexp"), get_codec("bytes")], spec10)
    b4 = small.decode(
        small.encode({"indices": b10["indices"].astype(np.int64), "values": b10["values"], "tail": b10["tail"]}), 6
    )
    direct = Pipeline([TopK(4, type="float32", tail="logsumexp"), get_codec("bytes")], LOGITS)
    d4 = direct.decode(direct.encode({"logits": z}), 6)
    assert np.array_equal(b4["indices"], d4["indices"])
    np.testing.assert_allclose(b4["tail"], d4["tail"], rtol=1e-5)
    with pytest.raises(CodecConfigError, match="top-10"):
        Pipeline([TopK(11), get_codec("bytes")], spec10)


# -- whole friendly chains: lossless for the (index, value) pairs --------------------------------------------
@pytest.mark.parametrize("layout", ["planes", "shuffle"])
@pytest.mark.parametrize("coding", ["none", "value-delta", "index-delta"])
@pytest.mark.parametrize("values", ["fp16", "bf16", "fp32"])
def test_friendly_chains_lossless_on_pairs(layout, coding, values):
    rng = np.random.default_rng(3)
    z = (rng.normal(0, 2, (40, 50)) + 5 * (rng.random((40, 50)) < 0.05)).astype(np.float32)
    k = 7
    order = learn_class_order(np.argsort(-z, axis=1)[:, :k], 50, "cooccurrence")
    chain = label_chain(k=k, values=values, index_coding=coding, layout=layout, class_order=order, level=3)
    p = Pipeline(chain, (Field("logits", "float32", (50,)),))
    out = p.decode(p.encode({"logits": z}), 40)
    ref = Pipeline(
        label_chain(k=k, values=values, index_coding="none", layout="shuffle", level=1),
        (Field("logits", "float32", (50,)),),
    )
    want = ref.decode(ref.encode({"logits": z}), 40)
    for r in range(40):
        a = sorted(zip(want["indices"][r].tolist(), _bits(want["values"][r]).tolist()))
        b = sorted(zip(out["indices"][r].tolist(), _bits(out["values"][r]).tolist()))
        assert a == b


@pytest.mark.parametrize("itype", ["uint8", "uint16", "int16", "int32"])
def test_classmap_decode_refuses_ranks_outside_the_classes(itype):
    """Stored ranks >= C (and negative ones, for signed types) are corrupt: a named error, never a
    wrapped or wrong class."""
    from lplabel.codecs.classmap import ClassMap
    from lplabel.errors import CodecError

    cm = ClassMap.from_order(np.arange(10)[::-1])
    spec = (Field("indices", itype, (2,)),)
    good = cm.decode({"indices": np.array([[0, 9]], itype)}, spec)["indices"]
    assert good.dtype == np.dtype(itype) and good.tolist() == [[9, 0]]
    bad = [[[1, 10]]] + ([[[1, -1]]] if itype.startswith("int") else [])
    for b in bad:
        with pytest.raises(CodecError, match="outside"):
            cm.decode({"indices": np.array(b[0], itype)}, spec)


def test_holds_exactly_is_one_rule_and_matches_real_casts():
    """One rule for "does this type hold that one" (issue 14: recode and interop disagreed on
    bf16->f32, f64->f32 and f32->f64), checked against real casts of real bit patterns."""
    from lplabel.dtypes import bfloat16_to_float32, float32_to_bfloat16, holds_exactly

    # bf16 -> f32: every finite bf16 bit pattern survives float32 and back
    bits = np.arange(1 << 16, dtype=np.uint16)
    f = bfloat16_to_float32(bits)
    fin = np.isfinite(f)
    assert np.array_equal(float32_to_bfloat16(f)[fin], bits[fin])
    assert holds_exactly(src="bfloat16", dst="float32")
    # f64 -> f32 loses (1 + 2**-30 is a float64, not a float32)
    x = np.array([1 + 2.0**-30], np.float64)
    assert x.astype(np.float32).astype(np.float64)[0] != x[0]
    assert not holds_exactly(src="float64", dst="float32")
    # f32 -> f64 keeps every float32
    y = np.random.default_rng(0).standard_normal(10_000).astype(np.float32) * np.float32(1e30)
    assert np.array_equal(y.astype(np.float64).astype(np.float32), y)
    assert holds_exactly(src="float32", dst="float64")
    # range vs precision: float16 and bfloat16 do not fit each other
    assert not holds_exactly(src="float16", dst="bfloat16") and not holds_exactly(src="bfloat16", dst="float16")
    with np.errstate(over="ignore"):
        assert np.float32(70000.0).astype(np.float16) == np.inf  # in bfloat16's range, not float16's
    assert holds_exactly(src="none", dst="none") and not holds_exactly(src="quantized", dst="float32")


def test_narrowing_is_named_the_same_by_encode_and_import():
    """chain_loses (encode/quantize) and plan_labels (legacy import) apply that one rule."""
    from lplabel.codecs import default_label_codecs
    from lplabel.images import ImageIndex
    from lplabel.interop.common import plan_labels
    from lplabel.recode import SourceMeta, chain_loses

    def meta(vt):
        return SourceMeta(
            num_classes=10,
            images=ImageIndex([f"{i}" for i in range(4)], np.zeros(4, np.int64)),
            batch_size=2,
            epochs=1,
            steps_per_epoch=2,
            label_input="logits",
            value_type=vt,
        )

    for src, dst, exact in [
        ("bfloat16", "float32", True),
        ("float64", "float32", False),
        ("float32", "float16", False),
        ("float16", "float32", True),
    ]:
        chain = default_label_codecs("dense", type=dst)
        assert (chain_loses(chain, meta(src)) is None) == exact, (src, dst)
        plan = plan_labels("dense", value_dtype=src, num_classes=10, codecs=[c.to_json() for c in chain])
        assert plan.lossless == exact, (src, dst)


def test_codec_hooks_are_declared_with_defaults():
    """Every registered codec answers the pipeline's and the store's hooks directly (declared on
    the base classes); only the codecs that need one override its default."""
    from lplabel.codecs import available_codecs, codec_class
    from lplabel.codecs.abc import ArrayArrayCodec, ArrayBytesCodec, BytesBytesCodec, Codec

    for name in available_codecs():
        cls = codec_class(name)
        assert callable(cls.check_chain)
        if issubclass(cls, ArrayArrayCodec):
            assert cls.reencode_exact is (name != "quantize")
        if issubclass(cls, ArrayBytesCodec):
            assert callable(cls.check_spec) and callable(cls.check_input)
        if issubclass(cls, BytesBytesCodec):
            assert cls.bounded_decode is (name == "zstd")
        overrides = {
            h
            for h in ("check_chain", "uses_dictionary", "dictionary_data", "attach_dictionary")
            if getattr(cls, h) is not getattr(Codec, h)
        }
        want = {
            "rans": {"check_chain"},
            "quantize": {"check_chain"},
            "derived": {"check_chain"},
            "zstd": {"uses_dictionary", "dictionary_data", "attach_dictionary"},
        }.get(name, set())
        assert overrides == want, name
    plain = Zstd(3)
    assert not plain.uses_dictionary and plain.dictionary_data() is None
    d = train_dictionary([bytes(range(64)) * 4] * 8, size=512)
    z = Zstd.with_dictionary(d, 3)
    assert z.uses_dictionary and z.dictionary_data() == d
    with pytest.raises(CodecError, match="'shuffle' takes no dictionary"):
        Shuffle(2).attach_dictionary(d)
    # a chain of codecs that keep every default validates and round-trips
    spec = (Field("logits", "float32", (8,)),)
    pipe = Pipeline([{"name": "dense", "configuration": {"type": "float32"}}, {"name": "bytes"}, Shuffle(4)], spec)
    x = np.arange(16, dtype=np.float32).reshape(2, 8)
    assert pipe.stored_stage == 0
    assert np.array_equal(pipe.decode(pipe.encode({"logits": x}), 2)["logits"], x)
