"""The compiled ``entryorder`` loops (numba) give exactly what the numpy reference gives.

The tie order of legacy top-k files is what makes an imported store export byte-identical files,
so the compiled decode must put every entry back where the reference puts it: same run starts,
same shifts, same permuted fields, same error on a corrupt chunk; and a store must decode the same
with numba and without it (the fallback, forced here by hiding the kernels).
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("numba")

import lplabel.codecs._compiled as _compiled  # noqa: E402
import lplabel.codecs.entryorder as eo  # noqa: E402
from lplabel import open_store  # noqa: E402
from lplabel.codecs import Field, Pipeline  # noqa: E402
from lplabel.codecs.classmap import ClassMap, encode_order, learn_class_order  # noqa: E402
from lplabel.codecs.bytes import Bytes  # noqa: E402
from lplabel.codecs.delta import Delta  # noqa: E402
from lplabel.codecs.fused import fused_decoder  # noqa: E402
from lplabel.codecs.sort import Sort  # noqa: E402
from lplabel.codecs.topk import TopK  # noqa: E402
from lplabel.codecs.zplanes import ZPlanes  # noqa: E402
from lplabel.codecs.zstd import Zstd  # noqa: E402
from lplabel.errors import CodecError  # noqa: E402
from lplabel.interop import synth  # noqa: E402
from tests.test_golden import EXPECTED, HERE  # noqa: E402


def no_numba(monkeypatch):
    """The path of an install without numba: every codec finds no compiled loops."""
    monkeypatch.setattr(_compiled, "_FOUND", dict.fromkeys(_compiled.MODULES))


def lpqld_topk(n: int, c: int, k: int, seed: int, grid: float | None):
    """Top-k as LPQLD stores it: ``torch.topk`` order on float32 teacher-like logits, fp16 values
    (ties from the cast; ``grid`` puts the logits on a coarse grid for ties galore), int16 indices."""
    rng = np.random.default_rng(seed)
    z = synth.realistic_logits(c)(np.arange(n), rng)
    if grid:
        z = (np.round(z / grid) * grid + rng.uniform(0, 1e-4, z.shape)).astype(np.float32)
    idx = np.argsort(-z, axis=1, kind="stable")[:, :k]
    return idx.astype(np.int16), np.take_along_axis(z, idx, 1).astype(np.float16)


def planes_chain(idx, c: int, k: int) -> list:
    """The chain ``lplabel encode DIR`` builds for LPQLD files (layout planes, tie order kept)."""
    order = encode_order(learn_class_order(idx, c))
    return [
        TopK(k, type="float16", index_type="int16"),
        eo.EntryOrder(),
        ClassMap(c, order),
        Sort("index"),
        Delta("indices", "ascending"),
        ZPlanes(3),
    ]


def bits(a) -> bytes:
    return np.ascontiguousarray(a).tobytes()


@pytest.mark.parametrize(
    "k,grid", [(1, None), (10, None), (10, 0.25), (100, None), (100, 0.25), (256, 0.5), (300, 0.5)]
)
def test_run_starts_and_shifts_match_the_reference(k, grid, monkeypatch):
    idx, val = lpqld_topk(64, 1000, k, seed=k, grid=grid)
    for t, v in (("float16", val), ("float32", val.astype(np.float32)), ("bfloat16", val.view(np.uint16))):
        assert np.array_equal(eo.run_starts(v, t), eo.run_starts(v, t, compiled=False))
    spec = (Field("indices", "int16", (k,)), Field("values", "float16", (k,)))
    got = eo.EntryOrder().encode({"indices": idx, "values": val}, spec)["entry_shift"]
    no_numba(monkeypatch)  # the reference
    ref = eo.EntryOrder().encode({"indices": idx, "values": val}, spec)["entry_shift"]
    assert got.dtype == ref.dtype and np.array_equal(got, ref)
    if grid:  # the case that matters: ties whose file order is not the class order
        assert (got > 0).any()


@pytest.mark.parametrize("k,grid", [(1, None), (10, 0.25), (100, None), (100, 0.25), (300, 0.5)])
def test_chain_decodes_identically_with_and_without_numba(k, grid, monkeypatch):
    c, n = 1000, 96
    idx, val = lpqld_topk(n, c, k, seed=7 + k, grid=grid)
    spec = (Field("indices", "int64", (k,)), Field("values", "float32", (k,)))
    p = Pipeline(planes_chain(idx, c, k), spec)
    block = {"indices": idx.astype(np.int64), "values": val.astype(np.float32)}
    data = p.encode(block)
    fast = p.decode(data, n)
    no_numba(monkeypatch)
    assert p.encode(block) == data  # the same bytes are written either way
    ref = p.decode(data, n)
    for f in ("indices", "values"):
        assert fast[f].dtype == ref[f].dtype and bits(fast[f]) == bits(ref[f])
    assert np.array_equal(fast["indices"], idx) and bits(fast["values"]) == bits(val)  # LPQLD's order exactly


def test_any_input_order_and_all_field_types():
    """Not only value-sorted input: a random input order of every value type comes back, and the
    other [k] fields (here a quantize-like scale per entry) travel with their entries."""
    rng = np.random.default_rng(5)
    n, k = 40, 37
    for t in ("float16", "bfloat16", "float32"):
        v = rng.integers(-3, 4, (n, k)).astype(np.float32)
        v[0, :2] = [0.0, -0.0]
        raw = {"float16": v.astype(np.float16), "float32": v, "bfloat16": (v.view(np.uint32) >> 16).astype(np.uint16)}[
            t
        ]
        idx = np.stack([rng.permutation(500)[:k] for _ in range(n)]).astype(np.int32)
        extra = rng.integers(0, 255, (n, k)).astype(np.uint8)
        spec = (Field("indices", "int32", (k,)), Field("values", t, (k,)), Field("extra", "uint8", (k,)))
        enc = eo.EntryOrder().encode({"indices": idx, "values": raw, "extra": extra}, spec)
        perm = np.argsort(rng.random((n, k)), 1)  # what a later sort does to every [k] field
        moved = {f: np.take_along_axis(np.asarray(a), perm, 1) for f, a in enc.items()}
        got = eo.EntryOrder().decode(moved, spec)
        assert np.array_equal(got["indices"], idx) and bits(got["values"]) == bits(raw)
        assert np.array_equal(got["extra"], extra) and "entry_shift" not in got


@pytest.mark.parametrize("compiled", [True, False])
def test_corrupt_shifts_are_a_named_error_on_both_paths(compiled, monkeypatch):
    if not compiled:
        no_numba(monkeypatch)
    spec = (Field("indices", "int16", (3,)), Field("values", "float16", (3,)))
    block = eo.EntryOrder().encode(
        {"indices": np.array([[2, 1, 0]], np.int16), "values": np.ones((1, 3), np.float16)}, spec
    )
    block["entry_shift"] = np.array([[1, 1, 0]], np.uint8)
    with pytest.raises(CodecError, match="permutation"):
        eo.EntryOrder().decode(block, spec)


@pytest.mark.parametrize("name", sorted(n for n in EXPECTED if "entryorder" in n))
def test_golden_tie_order_files_decode_identically_without_numba(name, monkeypatch):
    """The golden store with LPQLD-style ties reads the same blocks with both implementations
    (test_golden checks the compiled path against the recorded digests)."""
    path = HERE / "v1" / f"{name}.lpl"

    def blocks():
        with open_store(path) as s:
            return [s.decode_chunk("label", i) for i in range(len(s.chunks["label"]))]

    fast = blocks()
    no_numba(monkeypatch)
    ref = blocks()
    assert len(fast) == len(ref)
    for a, b in zip(fast, ref):
        assert sorted(a) == sorted(b)
        for f in a:
            assert np.asarray(a[f]).dtype == np.asarray(b[f]).dtype and bits(a[f]) == bits(b[f])


@pytest.mark.parametrize("order", ["ascending", "descending"])
@pytest.mark.parametrize("type_", ["uint8", "int16", "uint16", "float16", "uint32", "float32"])
def test_delta_running_sums_match_numpy_with_wraparound(order, type_, monkeypatch):
    """The compiled running sum wraps modulo 2^w exactly as numpy's (random input: every gap)."""
    rng = np.random.default_rng(11)
    dt = np.dtype({"float16": "uint16", "float32": "uint32"}.get(type_, type_))
    raw = rng.integers(np.iinfo(dt).min, np.iinfo(dt).max, (33, 17), endpoint=True, dtype=dt)
    vals = raw.view(np.float16 if type_ == "float16" else np.float32) if type_.startswith("float") else raw
    spec = (Field("indices", "int32", (17,)), Field("x", type_, (17,)))
    codec = Delta("x", order)
    enc = codec.encode({"indices": np.zeros((33, 17), np.int32), "x": vals}, spec)
    fast = codec.decode(enc, spec)["x"]
    no_numba(monkeypatch)
    ref = codec.decode(enc, spec)["x"]
    assert fast.dtype == ref.dtype and bits(fast) == bits(ref) == bits(vals)


@pytest.mark.parametrize("compiled", [True, False])
def test_classmap_lookup_and_out_of_range_rank(compiled, monkeypatch):
    if not compiled:
        no_numba(monkeypatch)
    rng = np.random.default_rng(2)
    order = rng.permutation(300)
    cm = ClassMap.from_order(order)
    spec = (Field("indices", "uint16", (5,)),)
    ranks = rng.integers(0, 300, (7, 5)).astype(np.uint16)
    assert np.array_equal(cm.decode({"indices": ranks}, spec)["indices"], order[ranks])
    ranks[3, 2] = 300
    with pytest.raises(CodecError, match="outside 0..299"):
        cm.decode({"indices": ranks}, spec)


def _lehmer_reference(start, length, shift) -> bytes:
    """The Python loop ``rans.encode_order`` (mode 0) ran before it was compiled."""
    acc, pos = 0, 0
    for r in np.flatnonzero((length > 1).any(axis=1)):
        st, ln, sh = start[r], length[r], shift[r]
        for a in np.unique(st[ln > 1]):
            pi = sh[st == a].tolist()
            m = len(pi)
            for j in range(m - 1):
                acc |= sum(1 for x in pi[j + 1 :] if x < pi[j]) << pos
                pos += (m - j - 1).bit_length()
    return b"\x00" + acc.to_bytes((pos + 7) // 8, "little")


@pytest.mark.parametrize("k,grid", [(10, 0.25), (100, 0.25), (100, None), (300, 0.5)])
def test_rans_tie_order_digits_match_the_python_reference(k, grid):
    """``rans`` (order: true) writes the same entry-order bytes as before it was compiled, and reads
    them back."""
    from lplabel.codecs.rans import decode_order, encode_order

    idx, val = lpqld_topk(80, 1000, k, seed=3 * k, grid=grid)
    spec = (Field("indices", "int16", (k,)), Field("values", "float16", (k,)))
    shift = eo.EntryOrder().encode({"indices": idx, "values": val}, spec)["entry_shift"]
    perm = np.argsort(idx, axis=1, kind="stable")  # what sort by index does
    v, s = np.take_along_axis(val, perm, 1), np.take_along_axis(shift, perm, 1)
    start = eo.run_starts(v, "float16", compiled=False)
    data = encode_order(v, s)
    assert data == _lehmer_reference(start, eo.run_lengths(start), s.astype(np.int64))
    assert np.array_equal(decode_order(data, v, s.dtype, *s.shape), s)


@pytest.mark.parametrize("k,grid", [(1, None), (10, 0.25), (100, 0.25), (300, 0.5)])
def test_run_lengths_match_the_reference(k, grid):
    _, val = lpqld_topk(50, 1000, k, seed=k + 1, grid=grid)
    start = eo.run_starts(val, "float16")
    assert np.array_equal(eo.run_lengths(start), eo.run_lengths(start, compiled=False))


@pytest.mark.parametrize("name", sorted(n for n in EXPECTED if n.endswith("rans")))
def test_rans_encoder_rewrites_golden_chunks_byte_for_byte(name):
    """The rANS encoder (tie-order digits compiled) writes exactly the bytes of the committed golden
    stores."""
    with open_store(HERE / "v1" / f"{name}.lpl") as s:
        p = s.pipelines["label"]
        stage = len(p.array_array)  # the block as the array->bytes codec received it
        assert p.array_bytes.name == "rans" and not p.bytes_bytes
        for i in range(len(s.chunks["label"])):
            data = bytes(s.read_chunk_bytes("label", i))
            n = len(s.decode_chunk("label", i)["indices"])
            assert p.encode(p.decode(data, n, stop=stage), start=stage) == data


# -- the one-pass decode of the default lossless top-k layout (lplabel.codecs.fused) ----------------


def codec_by_codec(monkeypatch, compiled: bool):
    """Hide the fused pass (and, ``compiled=False``, every compiled loop: the numpy reference)."""
    monkeypatch.setattr(_compiled, "_FOUND", dict(_compiled._FOUND))
    _compiled._FOUND.update(dict.fromkeys(_compiled.MODULES if not compiled else ("_fused_kernels",)))


def decode_three_ways(p, data, n, monkeypatch, entry_order=True):
    """The chunk decoded by the fused pass, codec by codec compiled, and by the numpy reference
    (``entry_order``: as :meth:`Pipeline.decode`'s): each a block or the CodecError's message."""
    got = []
    for hide in (None, True, False):
        with monkeypatch.context() as m:
            if hide is not None:
                codec_by_codec(m, compiled=hide)
            try:
                got.append(p.decode(data, n, entry_order=entry_order))
            except CodecError as e:
                got.append(e.message)
    return got


def same_blocks(a, b) -> bool:
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    return list(a) == list(b) and all(a[f].dtype == b[f].dtype and bits(a[f]) == bits(b[f]) for f in a)


def chain_variant(idx, c, k, index_type, with_map, tie_order=True):
    chain = planes_chain(idx, c, k)
    chain[0] = TopK(k, type="float16", index_type=index_type)
    drop = ("classmap",) * (not with_map) + ("entryorder",) * (not tie_order)
    return [x for x in chain if x.name not in drop]


@pytest.mark.parametrize("k,grid", [(1, None), (3, 0.5), (10, 0.25), (37, None), (100, 0.25), (256, 0.5), (300, 0.5)])
@pytest.mark.parametrize("index_type", ["uint16", "int16"])
@pytest.mark.parametrize("with_map", [True, False])
@pytest.mark.parametrize("tie_order", [True, False])
def test_fused_decode_matches_codec_by_codec_and_numpy(k, grid, index_type, with_map, tie_order, monkeypatch):
    """The fused pass gives what decoding codec by codec gives (compiled loops, and numpy), bit
    for bit: with and without the class map and the tie order (``entryorder``: imports of LPQLD
    files; without it, what the relabeler and ``quantize`` write), signed and unsigned indices."""
    c, n = 1000, 70
    idx, val = lpqld_topk(n, c, k, seed=k + 3, grid=grid)
    val[0, : min(k, 4)] = np.array([0.0, -0.0, -1.5, np.inf], np.float16)[: min(k, 4)]  # signs, zeros, inf
    p = Pipeline(
        chain_variant(idx, c, k, index_type, with_map, tie_order),
        (Field("indices", "int64", (k,)), Field("values", "float32", (k,))),
    )
    assert (fused_decoder(p) is not None) == (k <= 256 or not tie_order)  # the rank counts up to 256
    data = p.encode({"indices": idx.astype(np.int64), "values": val.astype(np.float32)})
    fused, compiled, ref = decode_three_ways(p, data, n, monkeypatch)
    assert same_blocks(fused, ref) and same_blocks(compiled, ref)
    if tie_order:  # LPQLD's order exactly
        assert np.array_equal(fused["indices"], idx) and bits(fused["values"]) == bits(val)
    else:  # the same (index, value) pairs, in class order
        a, b = np.argsort(idx, 1, kind="stable"), np.argsort(fused["indices"], 1, kind="stable")
        assert np.array_equal(np.take_along_axis(idx, a, 1), np.take_along_axis(fused["indices"], b, 1))
        assert bits(np.take_along_axis(val, a, 1)) == bits(np.take_along_axis(fused["values"], b, 1))


def corrupt_chunk(p, idx, val, edit):
    """A chunk written from the stored block after ``edit(block)`` (what a damaged or hostile
    writer could store; the CRC would match)."""
    block = p.encode_arrays({"indices": idx.astype(np.int64), "values": val.astype(np.float32)})
    edit(block)
    return p.array_bytes.encode(block, p.stored_spec)


@pytest.mark.parametrize("index_type", ["uint16", "int16"])
def test_fused_decode_corrupt_chunks_fail_as_codec_by_codec(index_type, monkeypatch):
    """Shifts that repeat a position, a class rank outside the map (both: the class map's error
    first, as codec by codec), and shifts >= k that still give a permutation modulo k (accepted,
    as the reference accepts them): the three paths agree on each."""
    c, n, k = 300, 12, 10
    idx, val = lpqld_topk(n, c, k, seed=1, grid=None)
    p = Pipeline(
        chain_variant(idx, c, k, index_type, True), (Field("indices", "int64", (k,)), Field("values", "float32", (k,)))
    )

    def dup(b):
        b["entry_shift"][5, :2] = [1, 1]

    def rank(b):
        b["indices"][4, 3] += 700  # a gap past the last class rank

    def both(b):
        dup(b)
        rank(b)

    def wrap(b):  # no ties in record 2: adding k to every shift keeps each position (mod k)
        b["entry_shift"][2] += k

    assert (np.diff(np.sort(val[2].astype(np.float32))) != 0).all()
    for edit, want in ((dup, "permutation"), (rank, "outside 0..299"), (both, "outside 0..299"), (wrap, None)):
        got = decode_three_ways(p, corrupt_chunk(p, idx, val, edit), n, monkeypatch)
        assert same_blocks(got[0], got[2]) and same_blocks(got[1], got[2]), edit.__name__
        if want is None:
            assert np.array_equal(got[0]["indices"], idx)
        else:
            assert want in got[0]


def test_fused_decoder_takes_only_its_chain():
    """The default lossless layouts get the fused pass; anything else decodes codec by codec."""
    from lplabel.codecs.chains import label_chain

    idx, _ = lpqld_topk(8, 1000, 10, seed=0, grid=None)
    spec = (Field("indices", "int64", (10,)), Field("values", "float32", (10,)))
    assert fused_decoder(Pipeline(planes_chain(idx, 1000, 10), spec)) is not None
    order = learn_class_order(idx, 1000)  # without the tie order too (quantize --index-coding index-delta)
    assert fused_decoder(
        Pipeline(label_chain(k=10, layout="planes", index_coding="index-delta", class_order=order), spec)
    )
    spec300 = (Field("indices", "int64", (300,)), Field("values", "float32", (300,)))
    assert fused_decoder(Pipeline(label_chain(k=300, layout="planes", index_coding="index-delta"), spec300))
    others = [
        label_chain(k=10, layout="planes"),  # value-delta (the relabeler's default): codec by codec
        label_chain(k=10, layout="planes", values="int8", index_coding="index-delta"),
        [TopK(10, tail="logsumexp"), eo.EntryOrder(), Sort("index"), Delta("indices", "ascending"), ZPlanes(3)],
        [TopK(10, type="bfloat16"), eo.EntryOrder(), Sort("index"), Delta("indices", "ascending"), ZPlanes(3)],
        [TopK(10), eo.EntryOrder(), Sort("value"), Delta("values", "descending"), ZPlanes(3)],
        planes_chain(idx, 1000, 10)[:-1] + [Bytes(), Zstd(3)],
    ]
    for chain in others:
        s = (*spec, Field("tail", "float32")) if chain[0].tail != "none" else spec
        assert fused_decoder(Pipeline(chain, s)) is None, Pipeline(chain, s).describe()


# -- reading the pairs without their order (the loader: Pipeline.decode(entry_order=False)) --------


def same_pairs(idx, val, got) -> bool:
    """Each record holds the same (index, value bits) pairs, whatever their order."""
    a, b = np.argsort(idx, 1, kind="stable"), np.argsort(got["indices"], 1, kind="stable")
    return np.array_equal(np.take_along_axis(idx, a, 1), np.take_along_axis(got["indices"], b, 1)) and bits(
        np.take_along_axis(val, a, 1)
    ) == bits(np.take_along_axis(got["values"], b, 1))


@pytest.mark.parametrize("k,grid", [(1, None), (10, 0.25), (37, None), (100, 0.25), (300, 0.5)])
@pytest.mark.parametrize("index_type", ["uint16", "int16"])
@pytest.mark.parametrize("with_map", [True, False])
def test_reading_pairs_skips_the_tie_order_and_keeps_every_pair(k, grid, index_type, with_map, monkeypatch):
    """``entry_order=False`` on a chain with ``entryorder``: the same pairs per record, in class
    order, no ``entry_shift`` field; the fused pass, codec by codec and numpy agree bit for bit, and
    give exactly what the same content stored without any tie order decodes to."""
    c, n = 1000, 70
    idx, val = lpqld_topk(n, c, k, seed=k + 11, grid=grid)
    spec = (Field("indices", "int64", (k,)), Field("values", "float32", (k,)))
    block = {"indices": idx.astype(np.int64), "values": val.astype(np.float32)}
    p = Pipeline(chain_variant(idx, c, k, index_type, with_map), spec)
    data = p.encode(block)
    fused, compiled, ref = decode_three_ways(p, data, n, monkeypatch, entry_order=False)
    assert list(ref) == ["indices", "values"]
    assert same_blocks(fused, ref) and same_blocks(compiled, ref)
    assert same_pairs(idx, val, ref)
    plain = Pipeline(chain_variant(idx, c, k, index_type, with_map, tie_order=False), spec)
    assert same_blocks(plain.decode(plain.encode(block), n), ref)
    assert same_blocks(plain.decode(plain.encode(block), n, entry_order=False), ref)  # no entryorder: no change
    exact = p.decode(data, n)  # the default still restores LPQLD's order
    assert np.array_equal(exact["indices"], idx) and bits(exact["values"]) == bits(val)


def test_reading_pairs_still_refuses_out_of_range_classes(monkeypatch):
    """Skipping the tie order skips only its permutation check: a stored class rank outside the
    class map is the same named error on every path; repeated shifts (which only reorder entries)
    go unnoticed there, and are still refused by the exact read."""
    c, n, k = 300, 12, 10
    idx, val = lpqld_topk(n, c, k, seed=1, grid=None)
    spec = (Field("indices", "int64", (k,)), Field("values", "float32", (k,)))
    p = Pipeline(chain_variant(idx, c, k, "int16", True), spec)

    def rank(b):
        b["indices"][4, 3] += 700

    def dup(b):
        b["entry_shift"][5, :2] = [1, 1]

    got = decode_three_ways(p, corrupt_chunk(p, idx, val, rank), n, monkeypatch, entry_order=False)
    assert all(isinstance(g, str) and "outside 0..299" in g for g in got)
    data = corrupt_chunk(p, idx, val, dup)
    got = decode_three_ways(p, data, n, monkeypatch, entry_order=False)
    assert all(same_pairs(idx, val, g) for g in got)
    with pytest.raises(CodecError, match="permutation"):
        p.decode(data, n)


def test_store_and_loader_read_pairs_of_an_imported_lpqld_store(tmp_path):
    """A store imported from LPQLD files (`lplabel encode DIR`: tie order kept): ``decode_chunk``
    gives LPQLD's order by default and the pairs in class order with ``entry_order=False``; the
    loader's rows (:class:`LabelRows`) are those pairs."""
    from lplabel.commands.codec_tools import encode_source
    from lplabel.interop.source import LegacySource
    from lplabel.store import layout as L
    from lplabel.torch.fastread import LabelRows

    src = synth.write_batches(
        tmp_path / "lpqld", "lpqld", num_images=40, batch_size=10, epochs=2, num_classes=100, k=10, seed=3
    )
    path = tmp_path / "s.lpl"
    encode_source(LegacySource(src, "lpqld", num_classes=100), path, layout="planes", steps_per_chunk=3, force=True)
    st = open_store(path)
    assert [c["name"] for c in st.header["columns"]["label"]["codecs"]][:2] == ["topk", "entryorder"]
    rows = LabelRows(st, "label")
    cs, rs = st.tables[L.CHUNK_STEP_START], st.record_start
    for chunk in range(len(st.chunks["label"])):
        exact = st.decode_chunk("label", chunk)
        pairs = st.decode_chunk("label", chunk, entry_order=False)
        assert same_pairs(exact["indices"], exact["values"], pairs)
        m = int(rs[cs[chunk + 1]] - rs[cs[chunk]])
        dests = {name: np.empty((m, *shape), dt) for name, (dt, shape, _) in rows.fields.items()}
        rows.read(chunk, 0, m, dests)
        assert np.array_equal(dests["indices"], pairs["indices"]) and bits(dests["values"]) == bits(pairs["values"])
    st.close()
