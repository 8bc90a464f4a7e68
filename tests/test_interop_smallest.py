"""The smallest lossless store of every legacy layout, in one command, still exports byte-identical files.

Legacy top-k files (LPQLD MR-k, FKD) list entries by decreasing value; tied values come in the order
the generator's ``torch.topk``/``argsort`` left them (on float32, before the cast to float16), which
the stored values cannot tell. The fixtures here are written by :mod:`lplabel.interop.synth` with
teacher logits on a coarse grid plus float32 noise below float16's resolution, so most records hold
ties whose file order is *not* the canonical one (by class index) -- the case that broke before
(LPQLD: 1 of 9 files identical after `encode STORE`).
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from click.testing import CliRunner  # noqa: E402

from lplabel.cli import main  # noqa: E402
from lplabel.interop import export_legacy, import_legacy, synth  # noqa: E402
from lplabel.interop.compare import compare_dirs  # noqa: E402
from lplabel.store import store_info  # noqa: E402

C = 60


def tied_logits(num_classes: int):
    """Teacher-like logits on a 0.25 grid + float32 noise far below float16's step: fp16 ties galore."""
    base = synth.realistic_logits(num_classes)

    def fn(ids, rng):
        z = base(ids, rng)
        return (np.round(z * 4) / 4 + rng.uniform(0, 1e-4, z.shape)).astype(np.float32)

    return fn


SMALL = dict(num_images=21, batch_size=8, epochs=2, num_classes=C)


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tied")
    lg = tied_logits(C)
    return {
        "sre2l": synth.write_batches(tmp / "sre2l", "sre2l", logits=lg, **SMALL),
        "lpld": synth.write_batches(tmp / "lpld", "lpld", logits=lg, **SMALL),
        "gvbsm": synth.write_batches(tmp / "gvbsm", "gvbsm", logits=lg, **SMALL),
        "edc": synth.write_batches(tmp / "edc", "edc", logits=lg, **SMALL),
        "lpqld": synth.write_batches(tmp / "lpqld", "lpqld", k=12, prune_ratio=0.5, logits=lg, **SMALL),
        "lpqld_dense": synth.write_batches(tmp / "lpqld_dense", "lpqld", logits=lg, **SMALL),
        "fkd": synth.write_fkd(tmp / "fkd", num_images=4, num_crops=24, k=8, num_classes=C, logits=lg),
    }


def run(*args):
    res = CliRunner().invoke(main, [str(a) for a in args])
    return res.exit_code, res.output


def legacy_kw(name, fkd_values=None):
    kw = []
    if name in ("lpqld", "fkd"):
        kw += ["--num-classes", C]
    if fkd_values:
        kw += ["--fkd-values", fkd_values]
    return kw


LAYOUT_OF = {
    "sre2l": "sre2l",
    "lpld": "lpld",
    "gvbsm": "gvbsm",
    "edc": "gvbsm",
    "lpqld": "lpqld",
    "lpqld_dense": "lpqld",
    "fkd": "fkd",
}
#: (source, encode options, FKD value mode): every layout, every lossless coding the CLI offers
CASES = [
    (n, opts, None)
    for n in LAYOUT_OF
    for opts in ([], ["--index-coding", "value-delta"], ["--layout", "shuffle", "--dictionary", "--dict-size", 512])
]
CASES += [
    ("lpqld", ["--layout", "rans"], None),
    ("fkd", ["--layout", "rans"], "prob"),
    ("fkd", [], "prob"),
    ("lpqld", ["--index-coding", "none", "--class-order", "frequency"], None),
]


def test_fixtures_have_out_of_order_ties(dirs):
    """The test means something: tied fp16 values whose file order is not by class index."""
    import pickle  # noqa: F401  (torch.load below reads trusted fixtures)

    vals, idx = torch.load(dirs["lpqld"] / "batch_0.tar", weights_only=False)[5:7]
    v, i = vals.numpy().astype(np.float32), idx.numpy()
    assert (np.diff(v, axis=1) <= 0).all()  # files list entries by decreasing value
    tie = (np.diff(v, axis=1) == 0) & (np.diff(i, axis=1) < 0)  # a tie listed against the class order
    assert tie.sum() >= 3


@pytest.mark.parametrize(
    "name,opts,fkd_values", CASES, ids=[f"{n}{''.join(o[:2])}{'-' + f if f else ''}" for n, o, f in CASES]
)
def test_encode_dir_and_encode_store_export_byte_identical(dirs, tmp_path, name, opts, fkd_values):
    if "rans" in opts:
        pytest.importorskip("numba")
    src, layout = dirs[name], LAYOUT_OF[name]
    one = tmp_path / "one.lpl"
    code, out = run("encode", src, "-o", one, *opts, *legacy_kw(name, fkd_values))
    assert code == 0, out
    export_legacy(one, tmp_path / "back1", layout=layout, progress=False)
    assert compare_dirs(src, tmp_path / "back1") == []  # profile inferred (FKD too)
    # two commands (import, then encode the store) give the same bytes back and the same label column
    imp = tmp_path / "imp.lpl"
    import_legacy(
        src,
        imp,
        progress=False,
        num_classes=C if name in ("lpqld", "fkd") else None,
        fkd_values=fkd_values or "logprob",
    )
    two = tmp_path / "two.lpl"
    code, out = run("encode", imp, "-o", two, *opts)
    assert code == 0, out
    export_legacy(two, tmp_path / "back2", layout=layout, progress=False)
    assert compare_dirs(src, tmp_path / "back2") == []
    f1, f2 = store_info(one), store_info(two)
    assert f1["bytes_by_field"]["column.label"] == f2["bytes_by_field"]["column.label"]
    assert f1["label_codecs"] == f2["label_codecs"] and not f1["label_lossy"]
    if "rans" in opts:
        assert [c["name"] for c in f1["label_codecs"]][:2] == ["topk", "entryorder"]
        assert f1["label_codecs"][-1]["configuration"]["order"] is True


def test_encode_dir_honours_layout(dirs, tmp_path):
    """`--layout` (and the other options) change what `encode DIR` writes: no option is ignored."""
    pytest.importorskip("numba")
    src = dirs["lpqld"]
    sizes = {}
    for lay in ("planes", "rans"):
        code, out = run("encode", src, "-o", tmp_path / f"{lay}.lpl", "--layout", lay, "--num-classes", C)
        assert code == 0, out
        info = store_info(tmp_path / f"{lay}.lpl")
        sizes[lay] = info["bytes_by_field"]["column.label"]
        assert info["label_codecs"][-1]["name"] == ("rans" if lay == "rans" else "zplanes")
    assert sizes["rans"] != sizes["planes"]  # (sizes on real teacher labels: benchmarks/results/interop-*.md)


def test_encode_dir_refusals(dirs, tmp_path):
    out = tmp_path / "x.lpl"
    # FKD log-probabilities are float32: rans refuses by name and names an option encode has
    code, msg = run("encode", dirs["fkd"], "-o", out, "--layout", "rans", "--num-classes", C)
    assert code == 2 and "--fkd-values prob" in msg and "Traceback" not in msg and not out.exists()
    # legacy options on a store source are refused by name
    imp = tmp_path / "imp.lpl"
    import_legacy(dirs["sre2l"], imp, progress=False)
    code, msg = run("encode", imp, "-o", out, "--seed", 3)
    assert code == 2 and "--seed" in msg and "legacy" in msg and not out.exists()
    # an explicit chain that reorders entries without entryorder would break byte-exact export
    chain = (
        '[{"name": "topk", "configuration": {"k": 12, "type": "float16", "index_type": "int16"}}, '
        '{"name": "sort", "configuration": {"by": "index"}}, {"name": "zplanes", "configuration": {"level": 3}}]'
    )
    code, msg = run("encode", dirs["lpqld"], "-o", out, "--codecs", chain, "--num-classes", C)
    assert code == 2 and "entryorder" in msg and not out.exists()
    ok = chain.replace('{"name": "sort"', '{"name": "entryorder", "configuration": {}}, {"name": "sort"')
    code, msg = run("encode", dirs["lpqld"], "-o", out, "--codecs", ok, "--num-classes", C)
    assert code == 0, msg
    export_legacy(out, tmp_path / "back", layout="lpqld", progress=False)
    assert compare_dirs(dirs["lpqld"], tmp_path / "back") == []
    # a lossy chain (with --allow-lossy) no longer claims a lossless import
    lossy = tmp_path / "lossy.lpl"
    code, msg = run(
        "encode",
        dirs["lpqld"],
        "-o",
        lossy,
        "--num-classes",
        C,
        "--allow-lossy",
        "--codecs",
        chain.replace('"k": 12', '"k": 4'),
    )
    assert code == 0, msg
    info = store_info(lossy)
    assert info["label_lossy"]
    from lplabel import open_store

    with open_store(lossy) as st:
        assert st.header["extensions"]["legacy"]["lossless"] is False


def test_info_agrees_with_import_report(dirs, tmp_path):
    """An fp16 import chain is lossless for fp16 source labels: info and the report say the same."""
    out = tmp_path / "i.lpl"
    code, msg = run("import", dirs["lpld"], "-o", out)
    assert code == 0 and "lossless" in msg
    code, msg = run("info", out)
    assert code == 0 and "[lossy]" not in msg, msg
    code, msg = run("import", dirs["lpld"], "-o", tmp_path / "k.lpl", "--topk", 5)
    assert code == 0 and "lossy codecs" in msg
    code, msg = run("info", tmp_path / "k.lpl")
    assert "[lossy]" in msg


def test_entryorder_codec_any_order_and_corruption():
    """Any input order (not only value-sorted) comes back; a bad shift is a named error."""
    from lplabel.codecs import Field, Pipeline
    from lplabel.codecs.entryorder import EntryOrder
    from lplabel.codecs.sort import Sort
    from lplabel.codecs.topk import TopK
    from lplabel.codecs.zplanes import ZPlanes
    from lplabel.errors import CodecError

    rng = np.random.default_rng(1)
    for k in (1, 7, 300):
        n, c = 9, k + 20
        idx = np.stack([rng.permutation(c)[:k] for _ in range(n)])
        vals = rng.integers(-2, 3, (n, k)).astype(np.float32)
        vals[0, :2] = [0.0, -0.0][:k]  # distinct bits, equal numbers
        spec = (Field("indices", "int64", (k,)), Field("values", "float32", (k,)))
        for t in ("float16", "bfloat16", "float32"):
            p = Pipeline([TopK(k, type=t, index_type="int16"), EntryOrder(), Sort("index"), ZPlanes(3)], spec)
            got = p.decode(p.encode({"indices": idx, "values": vals}), n)
            assert np.array_equal(got["indices"], idx)
            assert [f.name for f in p.decoded_spec] == ["indices", "values"]
    eo = EntryOrder()
    spec = (Field("indices", "int16", (3,)), Field("values", "float16", (3,)))
    out = eo.resolve(spec)
    block = eo.encode({"indices": np.array([[2, 1, 0]], np.int16), "values": np.ones((1, 3), np.float16)}, spec)
    block["entry_shift"] = np.array([[1, 1, 0]], np.uint8)
    with pytest.raises(CodecError, match="permutation"):
        eo.decode(block, spec)
    assert out[-1].name == "entry_shift" and out[-1].type == "uint8"


def test_rans_header_unchanged_without_order():
    """Files written before entryorder keep their exact codec JSON (no 'order' key)."""
    from lplabel.codecs.rans import Rans

    assert "order" not in Rans.flat(10, 3).get_config()
    assert Rans.flat(10, 3).__class__(10, 3, True, Rans.flat(10, 3).model, order=True).get_config()["order"] is True


def test_encode_float32_fkd_with_fkd_values(tmp_path):
    """`encode DIR --from fkd` of float32 FKD files: the error names an option encode has, which works."""
    src = synth.write_fkd(tmp_path / "fkd32", num_images=3, num_crops=10, k=4, use_fp16=False, num_classes=C)
    out = tmp_path / "x.lpl"
    code, msg = run("encode", src, "--from", "fkd", "-o", out, "--num-classes", C)
    if code != 0:  # float32 probabilities need not survive log/exp in float32
        assert code == 2 and "--fkd-values prob" in msg and not out.exists(), msg
    code, msg = run("encode", src, "--from", "fkd", "-o", out, "--num-classes", C, "--fkd-values", "prob", "--force")
    assert code == 0, msg
    export_legacy(out, tmp_path / "back", layout="fkd", progress=False)
    assert compare_dirs(src, tmp_path / "back") == []


def test_encode_dir_refuses_options_of_other_layouts(dirs, tmp_path):
    out = tmp_path / "x.lpl"
    for name, flags, word in (
        ("lpqld", ["--seed", 1], "--seed"),
        ("sre2l", ["--fkd-values", "prob"], "--fkd-values"),
        ("fkd", ["--input-size", 224], "--input-size"),
        ("lpld", ["--steps-per-epoch", 3], "--steps-per-epoch"),
    ):
        code, msg = run("encode", dirs[name], "-o", out, *flags, *legacy_kw(name))
        assert code == 2 and word in msg and "does not apply" in msg, msg
        assert not out.exists()


def test_rans_order_stores_only_the_tie_order():
    """rans with order: true stores the order within runs of tied values (mode 0) for value-sorted
    input, the whole field (mode 1) otherwise; both come back exactly; damage is a named error."""
    pytest.importorskip("numba")
    from lplabel.codecs import Field, Pipeline
    from lplabel.codecs.entryorder import EntryOrder
    from lplabel.codecs.rans import Rans
    from lplabel.codecs.sort import Sort
    from lplabel.codecs.topk import TopK
    from lplabel.errors import CodecError

    rng = np.random.default_rng(3)
    n, k, c = 40, 12, 50
    idx = np.stack([rng.permutation(c)[:k] for _ in range(n)])
    vals = rng.integers(0, 5, (n, k)).astype(np.float32)  # many ties
    spec = (Field("indices", "int64", (k,)), Field("values", "float32", (k,)))
    chain = [
        TopK(k, type="float16", index_type="int16"),
        EntryOrder(),
        Sort("index"),
        Rans(c, k, True, Rans.flat(c, k).model, order=True),
    ]
    p = Pipeline(chain, spec)
    srt = np.lexsort((rng.random((n, k)), -vals), axis=1)  # by value, ties in random order
    sidx, svals = np.take_along_axis(idx, srt, 1), np.take_along_axis(vals, srt, 1)
    for i, v, mode in ((sidx, svals, 0), (idx, vals, 1)):
        data = p.encode({"indices": i, "values": v})
        got = p.decode(data, n)
        assert np.array_equal(got["indices"], i) and np.array_equal(got["values"], v.astype(np.float16))
        words = int.from_bytes(data[:4], "little")
        assert data[4 + 2 * words + n * k] == mode
    data = bytearray(p.encode({"indices": sidx, "values": svals}))
    data += b"\x00"
    with pytest.raises(CodecError, match="entry order"):
        p.decode(bytes(data), n)
