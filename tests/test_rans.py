"""The ``rans`` codec: context-modelled rANS coding of top-k labels (lossless).

Round trips (fp16 values incl. negative, huge and escaped high bytes; index-only labels; a store
written and re-encoded through the CLI), and refusals: corrupted or truncated chunks, bad models
and configurations, unfit chains, unsorted input, numba missing.
"""

from __future__ import annotations

import base64
import sys

import numpy as np
import pytest
import zstandard
from click.testing import CliRunner

from conftest import realistic_logits, write_store
from lplabel import open_store
from lplabel.cli import main
from lplabel.codecs import Field, Pipeline, get_codec, label_chain
from lplabel.codecs.rans import Rans, learn_model, monotone, unmonotone
from lplabel.codecs.topk import topk_of
from lplabel.errors import CodecChainError, CodecConfigError, CodecError, CodecUnavailableError

pytest.importorskip("numba")

C = 300


def _block(rng, n, k, scale=1.0):
    """Class indices in increasing order with their fp16 logits, as 'sort' by index leaves them."""
    z = realistic_logits(rng, n, C) * scale
    idx, val = topk_of(z, k)
    order = np.argsort(idx, axis=1)
    idx = np.take_along_axis(idx, order, 1).astype(np.uint16)
    val = np.take_along_axis(val, order, 1).astype(np.float16)
    return idx, val


def _spec(k, values=True):
    spec = [Field("indices", "uint16", (k,))]
    if values:
        spec.append(Field("values", "float16", (k,)))
    return tuple(spec)


def _roundtrip(codec, idx, val):
    spec = _spec(codec.k, codec.values)
    assert codec.classes == C
    block = {"indices": idx} if val is None else {"indices": idx, "values": val}
    data = codec.encode(block, spec)
    out = codec.decode(data, spec, len(idx))
    assert np.array_equal(out["indices"], idx)
    if val is not None:
        assert np.array_equal(out["values"].view(np.uint16), val.view(np.uint16))
    return data


@pytest.mark.parametrize("k", [1, 7, 40])
def test_roundtrip_values_exact(k):
    rng = np.random.default_rng(k)
    idx, val = _block(rng, 400, k)
    codec = Rans.learn(idx[:200], val[:200], C)  # model from one half, coded on both
    data = _roundtrip(codec, idx, val)
    # the model is worth having: smaller than the raw 4 bytes per entry
    assert len(data) < 0.75 * idx.size * 4


def test_roundtrip_escapes_negatives_and_special_values():
    rng = np.random.default_rng(1)
    idx, val = _block(rng, 300, 12, scale=400.0)  # spreads high bytes far past the escape symbol
    val[0, 0] = np.float16(-0.0)
    val[1, :3] = np.array([np.inf, -np.inf, np.nan], np.float16)
    val[2, :] = np.float16(-65504.0)
    val[3, 5] = np.float16(6e-8)  # subnormal
    codec = Rans.learn(idx[100:], val[100:], C)  # the special rows are not in the model
    _roundtrip(codec, idx, val)
    m = monotone(val.view(np.uint16))
    assert ((m >> 8).astype(int) - (m >> 8).min(1, keepdims=True) >= 63).any()  # escapes were coded
    assert np.array_equal(unmonotone(m), val.view(np.uint16))


def test_roundtrip_indices_only_and_flat_model():
    rng = np.random.default_rng(2)
    idx, _ = _block(rng, 250, 9)
    _roundtrip(Rans.learn(idx, None, C), idx, None)
    _roundtrip(Rans.flat(C, 9, values=False), idx, None)
    _, val = _block(rng, 250, 9)
    _roundtrip(Rans.flat(C, 9, values=True), idx, val)


@pytest.mark.parametrize("classes", [301, 302])
@pytest.mark.parametrize("n", [1, 2, 3, 5, 9])
def test_partial_lane_groups_and_odd_class_counts(n, classes):
    """Groups of fewer than four records, and the padding position of an odd class count."""
    rng = np.random.default_rng(n + classes)
    z = realistic_logits(rng, n, classes)
    z[:, classes - 1] += 50  # the last class (paired with the padding position when C is odd) in every record
    for k in (1, 2, 7):
        idx, val = topk_of(z, k)
        order = np.argsort(idx, axis=1)
        idx = np.take_along_axis(idx, order, 1).astype(np.uint16)
        val = np.take_along_axis(val, order, 1).astype(np.float16)
        for values in (True, False):
            codec = Rans.learn(idx, val if values else None, classes)
            spec = _spec(k, values)
            block = {"indices": idx, **({"values": val} if values else {})}
            out = codec.decode(codec.encode(block, spec), spec, n)
            assert np.array_equal(out["indices"], idx)
            if values:
                assert np.array_equal(out["values"].view(np.uint16), val.view(np.uint16))


def test_last_class_and_full_set():
    k = C - 1
    idx = np.tile(np.arange(1, C, dtype=np.uint16), (3, 1))  # every class but 0, so position C-1 is coded
    val = np.linspace(-3, 3, 3 * k).astype(np.float16).reshape(3, k)
    _roundtrip(Rans.learn(idx, val, C), idx, val)


def test_empty_chunk():
    codec = Rans.flat(C, 4)
    spec = _spec(4)
    data = codec.encode({"indices": np.zeros((0, 4), np.uint16), "values": np.zeros((0, 4), np.float16)}, spec)
    out = codec.decode(data, spec, 0)
    assert out["indices"].shape == (0, 4) and out["values"].shape == (0, 4)
    with pytest.raises(CodecError, match="empty chunk"):
        codec.decode(data + b"\0\0", spec, 0)


def test_damaged_words_are_refused():
    """Flipped bits in the coded decisions are refused (the final-state check); the raw low bytes and
    escape payloads are covered by the store's chunk CRC-32 only, see spec §3.18."""
    rng = np.random.default_rng(3)
    idx, val = _block(rng, 64, 10)
    codec = Rans.learn(idx, val, C)
    spec = _spec(10)
    data = codec.encode({"indices": idx, "values": val}, spec)
    W = int.from_bytes(data[:4], "little")
    refused = 0
    for bit in range(32, 32 + 16 * W, 37):  # bits of the rANS words
        bad = bytearray(data)
        bad[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(CodecError, match="rans"):
            codec.decode(bytes(bad), spec, 64)
        refused += 1
    assert refused > 20
    for cut in (0, 3, 4, 10, len(data) - 1):
        with pytest.raises(CodecError, match="rans"):
            codec.decode(data[:cut], spec, 64)
    with pytest.raises(CodecError, match="rans"):
        codec.decode(data, spec, 65)  # wrong record count: the layout does not add up


def test_bad_configurations():
    good = Rans.flat(C, 5)
    with pytest.raises(CodecConfigError, match="k = 300"):
        Rans(C, C, True, good.model)
    with pytest.raises(CodecConfigError, match="classes"):
        Rans(1, 1, True, good.model)
    with pytest.raises(CodecConfigError, match="base64"):
        Rans(C, 5, True, "not base64!")
    with pytest.raises(CodecConfigError, match="holds"):
        Rans(C + 1, 5, True, good.model)  # a model for another number of classes
    with pytest.raises(CodecConfigError, match="holds"):
        Rans(C, 5, False, good.model)  # value tables where none belong
    p1 = np.zeros((C, 2), "<u2")  # probability 0 would make a stored class uncodable
    raw = base64.b64encode(zstandard.ZstdCompressor().compress(p1.tobytes())).decode()
    with pytest.raises(CodecConfigError, match="1..4095"):
        Rans(C, 5, False, raw)
    with pytest.raises(CodecConfigError, match="values must be"):
        Rans(C, 5, "yes", good.model)
    # through the registry, as a reader meets it in a header
    assert get_codec({"name": "rans", "configuration": good.get_config()}) == good


def test_unsorted_or_out_of_range_input_is_refused():
    codec = Rans.flat(C, 3)
    spec = _spec(3)
    v = np.zeros((1, 3), np.float16)
    with pytest.raises(CodecError, match="increasing"):
        codec.encode({"indices": np.array([[5, 2, 9]], np.uint16), "values": v}, spec)
    with pytest.raises(CodecError, match="out of"):
        codec.encode({"indices": np.array([[1, 2, C]], np.uint16), "values": v}, spec)


def test_unfit_chains_are_refused_before_writing():
    spec = (Field("logits", "float32", (C,)),)
    with pytest.raises(CodecConfigError, match="fp16"):
        label_chain(k=5, values="int8", layout="rans", classes=C)
    with pytest.raises(CodecConfigError, match="tail"):
        label_chain(k=5, tail="logsumexp", layout="rans", classes=C)
    with pytest.raises(CodecConfigError, match="dense"):
        label_chain(k=None, layout="rans", classes=C)
    with pytest.raises(CodecConfigError, match="number of classes"):
        label_chain(k=5, layout="rans")
    chain = label_chain(k=5, layout="rans", classes=C)
    Pipeline(chain, spec)  # topk, sort, rans: fine
    with pytest.raises(CodecChainError, match="rans"):
        Pipeline(label_chain(k=5, layout="planes")[:1] + [Rans.flat(C, 6)], spec)  # k mismatch
    bf16 = label_chain(k=5, values="bf16", layout="planes")[:1]
    with pytest.raises(CodecChainError, match="float16"):
        Pipeline(bf16 + [Rans.flat(C, 5)], spec)


def test_missing_numba_is_a_named_error(monkeypatch):
    codec = Rans.flat(C, 3)
    monkeypatch.setitem(sys.modules, "lplabel.codecs._rans_kernels", None)
    with pytest.raises(CodecError, match="numba") as e:
        codec.encode({"indices": np.array([[1, 2, 3]], np.uint16), "values": np.zeros((1, 3), np.float16)}, _spec(3))
    assert "lplabel[rans]" in e.value.hint


def test_cli_encode_and_quantize_with_rans_layout(tmp_path):
    src = tmp_path / "src.lpl"
    write_store(src, label="topk", k=6, num_classes=40, epochs=4, steps_per_chunk=2)
    run = CliRunner()
    r = run.invoke(main, ["encode", str(src), "-o", str(tmp_path / "r.lpl"), "--layout", "rans"])
    assert r.exit_code == 0, r.output
    a, b = open_store(src), open_store(tmp_path / "r.lpl")
    assert [c["name"] for c in b.header["columns"]["label"]["codecs"]][-1] == "rans"
    for x, y in zip(a.iter_steps(), b.iter_steps()):  # lossless: the same (class, value) pairs
        ia, ib = np.asarray(x.label["indices"], np.int64), np.asarray(y.label["indices"], np.int64)
        oa, ob = np.argsort(ia, 1), np.argsort(ib, 1)
        assert np.array_equal(np.take_along_axis(ia, oa, 1), np.take_along_axis(ib, ob, 1))
        assert np.array_equal(
            np.take_along_axis(np.asarray(x.label["values"], np.float16), oa, 1),
            np.take_along_axis(np.asarray(y.label["values"], np.float16), ob, 1),
        )
    r = run.invoke(main, ["verify", str(tmp_path / "r.lpl")])
    assert r.exit_code == 0, r.output
    r = run.invoke(
        main,
        ["quantize", str(src), "-o", str(tmp_path / "q.lpl"), "--topk", "3", "--values", "none", "--layout", "rans"],
    )
    assert r.exit_code == 0, r.output
    q = open_store(tmp_path / "q.lpl")
    step = next(q.iter_steps())
    assert "values" not in step.label and step.label["indices"].shape[1] == 3
    r = run.invoke(
        main,
        ["quantize", str(src), "-o", str(tmp_path / "bad.lpl"), "--topk", "3", "--values", "int8", "--layout", "rans"],
    )
    assert r.exit_code != 0 and "rans" in r.output and not (tmp_path / "bad.lpl").exists()


def test_learn_model_needs_records():
    with pytest.raises(CodecConfigError, match="sample records"):
        learn_model(np.zeros((0, 3), np.int64), None, C)


def _same_batch(x, y):
    """Equal views and labels; the entries of a record may come in another order (rans stores keep
    them by class rank, the source by value), so probabilities may differ in the last bit only."""
    import torch

    assert (x.position, x.epoch, x.slot, x.temperature) == (y.position, y.epoch, y.slot, y.temperature)
    for name in ("image_ids", "crop", "flip", "mix_partner", "target", "mix_box"):
        assert torch.equal(getattr(x, name), getattr(y, name)), name
    ox, oy = torch.argsort(x.label["indices"], 1), torch.argsort(y.label["indices"], 1)
    for name in x.label:
        assert torch.equal(torch.gather(x.label[name], 1, ox), torch.gather(y.label[name], 1, oy)), name
    if x.probs is not None:
        torch.testing.assert_close(x.probs, y.probs, rtol=1e-6, atol=1e-7)


def test_loader_reads_rans_stores_in_workers(tmp_path):
    """The loader (0 and 2 DataLoader workers) serves a rans store exactly as the store it was
    re-encoded from: the compiled decoder also runs in forked workers."""
    from loader_helpers import make_store
    from lplabel.selection.schedule import lpqld_step
    from lplabel.torch import ReplayLoader

    src, iset, *_ = make_store(tmp_path / "src.lpl", epochs=3, topk=4, steps_per_chunk=2)
    r = CliRunner().invoke(main, ["encode", str(src), "-o", str(tmp_path / "r.lpl"), "--layout", "rans"])
    assert r.exit_code == 0, r.output
    for workers in (0, 2):
        for labels in ("dense", "sparse"):
            kw = dict(temperature=lpqld_step(), labels=labels, num_workers=workers)
            a, b = ReplayLoader(src, iset, **kw), ReplayLoader(tmp_path / "r.lpl", iset, **kw)
            for e in (0, 1):
                a.set_epoch(e)
                b.set_epoch(e)
                got_a, got_b = list(a), list(b)
                assert len(got_a) == len(got_b) > 0
                for x, y in zip(got_a, got_b):
                    _same_batch(x, y)


# -- crafted streams: arithmetically valid rANS whose decisions break a rule ---------------------------


def _words(decisions):
    """rANS words (decoding order, four lanes) of (frequency, start, lane) decisions: the encoder of
    spec §3.18 written out independently of the compiled one."""
    xs = [1 << 16] * 4
    out = []
    for f, start, q in reversed(decisions):
        x = xs[q]
        while x >= f << 20:
            out.append(x & 0xFFFF)
            x >>= 16
        xs[q] = ((x // f) << 12) + x % f + start
    for q in (3, 2, 1, 0):
        out += [xs[q] & 0xFFFF, xs[q] >> 16]
    return np.array(out[::-1], "<u2")


def _chunk(words, low=b""):
    return len(words).to_bytes(4, "little") + words.tobytes() + low


def _pair(codec, c, prev, sym):
    t = 5 * (c + prev) + sym
    return int(codec._pairs[t + 1]) - int(codec._pairs[t]), int(codec._pairs[t]), 0


def test_crafted_streams_break_each_rule():
    codec = Rans.flat(5, 2, values=False)  # odd C: position 5 pads the last pair
    spec = _spec(2, False)
    ok = [_pair(codec, 0, 0, 0b10), _pair(codec, 2, 0, 0b01)]  # classes 0 and 3
    assert codec.decode(_chunk(_words(ok)), spec, 1)["indices"].tolist() == [[0, 3]]
    third = [_pair(codec, 0, 0, 0b10), _pair(codec, 2, 0, 0b11)]  # a third class from a pair
    padding = [_pair(codec, 0, 0, 0b00), _pair(codec, 2, 0, 0b00), _pair(codec, 4, 0, 0b11)]  # position 5 stored
    for dec in (third, padding):
        with pytest.raises(CodecError, match="exactly 2 classes"):
            codec.decode(_chunk(_words(dec)), spec, 1)
    with pytest.raises(CodecError, match="exactly 2 classes"):  # positions run out before k classes
        codec.decode(_chunk(_words([_pair(codec, c, 0, 0) for c in (0, 2, 4)])), spec, 1)
    low_state = _words(ok)
    low_state[0:2] = [0, 5]  # state 0 below 2^16
    with pytest.raises(CodecError, match="initial states"):
        codec.decode(_chunk(low_state), spec, 1)
    # a high byte above 255: base 250, then d = 63 + 10 through an escape
    vc = Rans.flat(5, 1, values=True)
    b, hf, hc = vc._bfreq, vc._hfreq, vc._hcum
    dec = [
        _pair(vc, 0, 0, 0b10),
        (int(b[250]), int(sum(b[:250])), 0),
        (int(hf[16, 63]), int(hc[16, 63]), 0),
        (16, 160, 0),
    ]
    with pytest.raises(CodecError, match="above 255"):
        vc.decode(_chunk(_words(dec), b"\0"), _spec(1), 1)


@pytest.mark.parametrize("itype,classes", [("uint8", 256), ("int16", 301), ("int32", 1001), ("uint16", 65536)])
def test_index_types_and_the_largest_class_count(itype, classes):
    rng = np.random.default_rng(classes)
    k = 6
    idx = np.sort(np.stack([rng.choice(classes, k, replace=False) for _ in range(7)]), 1)
    idx[0, -2:] = [classes - 2, classes - 1]  # the last pair of positions
    codec = Rans.learn(idx, None, classes)
    spec = (Field("indices", itype, (k,)),)
    Pipeline([codec], spec)  # the chain accepts this index type
    out = codec.decode(codec.encode({"indices": idx.astype(itype)}, spec), spec, len(idx))
    assert out["indices"].dtype == np.dtype(itype) and np.array_equal(out["indices"], idx)


def test_chain_rules_index_types_and_class_counts():
    from lplabel.codecs.classmap import ClassMap

    with pytest.raises(CodecChainError, match="hold class"):  # uint8 cannot hold class 299
        Pipeline([Rans.flat(C, 3, values=False)], (Field("indices", "uint8", (3,)),))
    with pytest.raises(CodecChainError, match="hold class"):  # not an integer type
        Pipeline([Rans.flat(C, 3, values=False)], (Field("indices", "bfloat16", (3,)),))
    logits = (Field("logits", "float32", (C,)),)
    with pytest.raises(CodecChainError, match="classes"):  # configured for fewer classes than the labels
        Pipeline(label_chain(k=3, layout="rans", classes=C - 1), logits)
    chain = label_chain(k=3, layout="rans", classes=C)
    with pytest.raises(CodecChainError, match="classmap"):
        Pipeline(chain[:1] + [ClassMap.from_order(np.arange(C - 2))] + chain[1:], logits)


def test_model_frames_are_bounded_and_exact():
    good = Rans.flat(C, 5)
    raw = zstandard.ZstdDecompressor().decompress(base64.b64decode(good.model))
    big = base64.b64encode(zstandard.ZstdCompressor().compress(b"\0" * (1 << 24))).decode()
    with pytest.raises(CodecConfigError, match="holds"):  # a bomb: refused by its stated size
        Rans(C, 5, True, big)
    nosize = zstandard.ZstdCompressor(write_content_size=False).compress(raw + b"\0" * (1 << 20))
    with pytest.raises(CodecConfigError, match="model's size"):  # no size stated: bounded inflation
        Rans(C, 5, True, base64.b64encode(nosize).decode())
    exact = zstandard.ZstdCompressor(write_content_size=False).compress(raw)
    assert Rans(C, 5, True, base64.b64encode(exact).decode()).get_config()["k"] == 5
    trailing = base64.b64encode(base64.b64decode(good.model) + b"x").decode()
    with pytest.raises(CodecConfigError, match="one complete zstd frame"):
        Rans(C, 5, True, trailing)


def test_encode_refuses_blocks_of_the_wrong_shape():
    codec = Rans.flat(30, 3)
    spec = (Field("indices", "uint16", (3,)), Field("values", "float16", (3,)))
    with pytest.raises(CodecError, match="'values' must be"):
        codec.encode(
            {"indices": np.tile(np.array([1, 5, 9], np.uint16), (50, 1)), "values": np.ones((1, 3), np.float16)}, spec
        )
    with pytest.raises(CodecError, match=r"\[n, 3\]"):
        codec.encode({"indices": np.array([[1, 5]], np.uint16), "values": np.ones((1, 2), np.float16)}, spec)
    with pytest.raises(CodecError, match="records"):
        codec.decode(b"\0\0\0\0", spec, -1)


def test_verify_without_numba_checks_checksums_and_says_so(tmp_path, monkeypatch):
    src = tmp_path / "src.lpl"
    write_store(src, label="topk", k=4, num_classes=30, epochs=2)
    r = CliRunner().invoke(main, ["encode", str(src), "-o", str(tmp_path / "r.lpl"), "--layout", "rans"])
    assert r.exit_code == 0, r.output
    monkeypatch.setitem(sys.modules, "lplabel.codecs._rans_kernels", None)
    r = CliRunner().invoke(main, ["verify", str(tmp_path / "r.lpl")])
    assert r.exit_code == 3 and "UNCHECKED" in r.output and "numba" in r.output and "DAMAGED" not in r.output
    with pytest.raises(CodecUnavailableError):
        open_store(tmp_path / "r.lpl").step_at(0)
    r = CliRunner().invoke(main, ["encode", str(src), "-o", str(tmp_path / "r2.lpl"), "--layout", "rans"])
    assert r.exit_code != 0 and "numba" in r.output and not (tmp_path / "r2.lpl").exists()


def test_rans_layout_learns_a_cooccurrence_order_whatever_the_index_coding(tmp_path):
    src = tmp_path / "src.lpl"
    write_store(src, label="topk", k=4, num_classes=30, epochs=2)
    chains = []
    for coding in ("index-delta", "value-delta"):
        out = tmp_path / f"{coding}.lpl"
        r = CliRunner().invoke(main, ["encode", str(src), "-o", str(out), "--layout", "rans", "--index-coding", coding])
        assert r.exit_code == 0, r.output
        chains.append(open_store(out).header["columns"]["label"]["codecs"])
    assert [c["name"] for c in chains[0]] == ["topk", "classmap", "sort", "rans"]
    assert chains[0] == chains[1]  # the same (co-occurrence) class order and model


def test_encode_rans_refuses_quantized_sources(tmp_path):
    src = tmp_path / "src.lpl"
    write_store(src, label="topk", k=4, num_classes=30, epochs=2)
    run = CliRunner()
    assert (
        run.invoke(
            main, ["quantize", str(src), "-o", str(tmp_path / "q8.lpl"), "--topk", "3", "--values", "int8"]
        ).exit_code
        == 0
    )
    r = run.invoke(main, ["encode", str(tmp_path / "q8.lpl"), "-o", str(tmp_path / "r.lpl"), "--layout", "rans"])
    assert r.exit_code != 0 and "quantized" in r.output and not (tmp_path / "r.lpl").exists()


def test_tie_order_digits_round_trip_and_refuse_bad_digits():
    """The compiled tie-order decoder inverts ``encode_order`` on tie-heavy records (every run
    length up to a whole record) and names a digit out of range instead of mis-ordering."""
    from lplabel.codecs.rans import decode_order, encode_order
    from lplabel.errors import CodecError

    rng = np.random.default_rng(11)
    n, k = 64, 9
    vals = rng.integers(0, 3, (n, k)).astype(np.float16)
    vals[0] = 1.0  # one run of the whole record
    vals[1] = np.arange(k)  # no ties at all
    u16 = vals.view(np.uint16)
    # shift = rank within its run of equal values, in a random order among the tied entries
    from lplabel.codecs.entryorder import run_lengths, run_starts

    start = run_starts(u16, "float16")
    length = run_lengths(start)
    shift = np.zeros((n, k), np.int64)
    for r in range(n):
        for a in np.unique(start[r]):
            cols = np.flatnonzero(start[r] == a)
            shift[r, cols] = rng.permutation(len(cols))
    data = encode_order(u16, shift.astype(np.uint8))
    assert data[0] == 0 and (length > 1).any()
    got = decode_order(data, u16, np.dtype(np.uint8), n, k)
    assert got.dtype == np.uint8 and np.array_equal(got, shift)
    three = np.array([[2.0, 2.0, 2.0]], np.float16).view(np.uint16)  # first digit: 2 bits, 0..2 valid
    with pytest.raises(CodecError, match="digit is out of range"):
        decode_order(b"\x00\x03", three, np.dtype(np.uint8), 1, 3)
    with pytest.raises(CodecError, match="entry order part holds"):
        decode_order(b"\x00\x01\x00", three, np.dtype(np.uint8), 1, 3)


def _reference_words(codec, idx, val):
    """The rANS words of a chunk, step by step as spec/FORMAT.md §3.18 writes them: every decision
    (frequency, start, lane) collected in decoding order, then coded backwards (plain Python)."""
    n, k = idx.shape
    pairs = codec._pairs.astype(int)
    if val is not None:
        m = monotone(val.view(np.uint16)).astype(int) >> 8
        base = m.min(1)
        d = m - base[:, None]
    dec = []
    for g in range(0, n, 4):
        lanes = range(g, min(g + 4, n))
        stored = {r: set(idx[r].tolist()) for r in lanes}
        c = 0
        while any(c <= idx[r, -1] for r in lanes):
            for q, r in enumerate(lanes):
                if c <= idx[r, -1]:
                    t = 5 * (c + int(c - 1 in stored[r])) + 2 * int(c in stored[r]) + int(c + 1 in stored[r])
                    dec.append((pairs[t + 1] - pairs[t], pairs[t], q))
            c += 2
        if val is None:
            continue
        for q, r in enumerate(lanes):
            dec.append((int(codec._bfreq[base[r]]), int(codec._bcum[base[r]]), q))
        for i in range(k):
            for q, r in enumerate(lanes):
                ctx = 16 if i == 0 else min(d[r, i - 1], 15)
                s = min(d[r, i], 63)
                dec.append((int(codec._hfreq[ctx, s]), int(codec._hcum[ctx, s]), q))
                if s == 63:
                    dec.append((16, 16 * (d[r, i] - 63), q))
    x, out = [1 << 16] * 4, []
    for f, start, q in reversed(dec):
        if x[q] >= f << 20:
            out.append(x[q] & 0xFFFF)
            x[q] >>= 16
        x[q] = ((x[q] // f) << 12) + x[q] % f + start
    for q in (3, 2, 1, 0):
        out += [x[q] & 0xFFFF, x[q] >> 16]
    return np.array(out[::-1], np.uint16)


@pytest.mark.parametrize("n, classes, k, scale", [(1, 301, 5, 1.0), (7, 302, 12, 400.0), (30, 300, 40, 1.0)])
def test_encoder_writes_the_words_of_the_spec(n, classes, k, scale):
    """The compiled encoder (decisions generated backwards and coded as they come) writes exactly
    the words of the spec's collect-then-code description: partial lane groups, odd class counts,
    escapes, index-only labels."""
    rng = np.random.default_rng(n)
    z = realistic_logits(rng, n, classes) * scale
    z[:, classes - 1] += 50  # the last position (paired with the padding one when C is odd)
    idx, val = topk_of(z, k)
    order = np.argsort(idx, axis=1)
    idx = np.take_along_axis(idx, order, 1).astype(np.uint16)
    val = np.take_along_axis(val, order, 1).astype(np.float16)
    for values in (True, False):
        v = val if values else None
        codec = Rans.learn(idx[: max(1, n // 2)], v if v is None else v[: max(1, n // 2)], classes)
        data = codec._encode({"indices": idx, **({"values": v} if values else {})})
        words = np.frombuffer(data, "<u2", count=int.from_bytes(data[:4], "little"), offset=4)
        assert np.array_equal(words, _reference_words(codec, idx.astype(int), v))


def test_entry_order_mode_0_only_when_the_shifts_rank_each_run():
    """Mode 0 stores ranks within runs of tied values; shifts that are no such ranks (one beyond its
    run, or two entries of a run sharing one) take mode 1, and both come back exactly."""
    from lplabel.codecs.rans import decode_order, encode_order

    vals = np.array([[2.0, 1.0, 1.0, 0.5]] * 4, np.float16).view(np.uint16)  # a run of two at 1..2
    shifts = np.array([[0, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 0], [0, 2, 0, 0]], np.uint8)
    for rows, mode in (([0, 1], 0), ([0, 2], 1), ([1, 3], 1)):
        data = encode_order(vals[rows], shifts[rows])
        assert data[0] == mode
        assert np.array_equal(decode_order(data, vals[rows], np.dtype(np.uint8), 2, 4), shifts[rows])


@pytest.mark.parametrize("k, grid", [(1, None), (10, 0.25), (100, 0.25), (100, None), (300, 0.5)])
def test_tie_runs_are_entryorders_run_starts_and_lengths(k, grid):
    """The entry order part counts a tied entry's run start and every run length itself (a table of
    the values' codes instead of a rank of every entry); they are exactly ``entryorder``'s, with
    signed zeros, NaNs, infinities and subnormals among the values."""
    from lplabel.codecs.entryorder import run_lengths, run_starts
    from lplabel.codecs.rans import _tie_runs

    rng = np.random.default_rng(k)
    z = rng.standard_normal((200, k)) * 3
    if grid:
        z = np.round(z / grid) * grid
    v = z.astype(np.float16)
    v[0, : min(k, 4)] = np.array([0.0, -0.0, 0.0, -0.0], np.float16)[: min(k, 4)]
    v[1, : min(k, 5)] = np.array([np.nan, np.inf, -np.inf, np.nan, 6e-8], np.float16)[: min(k, 5)]
    start, length = _tie_runs(v)
    ref_start = run_starts(v, "float16", compiled=False)
    ref_length = run_lengths(ref_start, compiled=False)
    assert np.array_equal(length, ref_length) and (length > 1).any() == (k > 1)
    tied = length > 1
    assert np.array_equal(start[tied], ref_start[tied]) and (start[~tied] == -1).all()
