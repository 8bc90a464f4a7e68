"""lplabel encode / quantize / prune / compare: results and every refused input."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import write_store
from lplabel import StoreWriter, open_store
from lplabel.cli import main
from lplabel.codecs import default_label_codecs


def run(*args):
    r = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    return r.exit_code, r.stdout, r.stderr


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    dense = d / "dense.lpl"
    write_store(dense, n_images=48, num_classes=40, batch_size=12, epochs=4)
    k6 = d / "k6.lpl"
    assert run("quantize", dense, "-o", k6, "--topk", 6, "--tail", "logsumexp")[0] == 0
    k6i8 = d / "k6i8.lpl"
    assert run("quantize", dense, "-o", k6i8, "--topk", 6, "--values", "int8", "--index-coding", "value-delta")[0] == 0
    return {"dir": d, "dense": dense, "k6": k6, "k6i8": k6i8}


def labels(path):
    st = open_store(path)
    out = [(s.epoch, s.step, {k: np.asarray(v).copy() for k, v in s.label.items()}, s) for s in st.iter_steps()]
    st.close()
    return out


def pairs(block, r):
    v = np.asarray(block["values"])
    v = v.view(np.uint16) if v.dtype == np.float16 else v
    return sorted(zip(block["indices"][r].tolist(), v[r].tolist()))


# -- results ------------------------------------------------------------------------------------------
def test_encode_is_lossless_and_smaller(stores):
    out = stores["dir"] / "dense-enc.lpl"
    code, stdout, stderr = run("encode", stores["dense"], "-o", out)
    assert code == 0 and "wrote" in stdout and stderr == ""  # no progress bar without a terminal
    a, b = labels(stores["dense"]), labels(out)
    assert len(a) == len(b)
    for (e1, s1, l1, r1), (e2, s2, l2, r2) in zip(a, b):
        assert (e1, s1) == (e2, s2)
        assert np.array_equal(l1["logits"].view(np.uint16), l2["logits"].view(np.uint16))
        for f in ("image", "crop", "flip", "mix_partner", "mix_box"):
            assert np.array_equal(getattr(r1, f), getattr(r2, f))
        assert r1.mix_lambda == r2.mix_lambda or (math.isnan(r1.mix_lambda) and math.isnan(r2.mix_lambda))
    assert open_store(out).header["selection"] == open_store(stores["dense"]).header["selection"]


@pytest.mark.parametrize(
    "opts",
    [
        [],
        ["--index-coding", "value-delta"],
        ["--layout", "shuffle", "--dictionary"],
        ["--index-coding", "none", "--class-order", "none"],
    ],
)
def test_encode_topk_keeps_pairs(stores, opts):
    out = stores["dir"] / f"k6-enc-{len(opts)}-{'-'.join(opts)}.lpl"
    assert run("encode", stores["k6"], "-o", out, *opts)[0] == 0
    for (_, _, l1, _), (_, _, l2, _) in zip(labels(stores["k6"]), labels(out)):
        assert np.array_equal(l1["tail"].view(np.uint16), l2["tail"].view(np.uint16))
        for r in range(len(l1["indices"])):
            assert pairs(l1, r) == pairs(l2, r)
    if "--dictionary" in opts:
        import h5py

        with h5py.File(out, "r") as f:
            assert "columns/label/zstd_dict" in f
    assert run("verify", "-q", out)[0] == 0


def test_quantized_store_copies_exactly(stores):
    enc = stores["dir"] / "k6i8-enc.lpl"
    assert run("encode", stores["k6i8"], "-o", enc, "--steps-per-chunk", 3)[0] == 0
    pr = stores["dir"] / "k6i8-pruned.lpl"
    code, out, _ = run("prune", stores["k6i8"], "-o", pr, "--keep", "0.5", "--seed", "7", "--reuse", "lpqld")
    assert code == 0
    src = {(e, s): l for e, s, l, _ in labels(stores["k6i8"])}
    for path in (enc, pr):
        got = labels(path)
        for e, s, l, _ in got:
            for key in l:
                assert np.array_equal(l[key], src[(e, s)][key]), (path, key)
    kept = labels(pr)
    assert len(kept) == round(0.5 * len(src))
    sel = open_store(pr).header["selection"]
    assert sel == {
        "unit": "step",
        "metric": "random",
        "keep": 0.5,
        "seed": 7,
        "source_steps": len(src),
        "reuse": "lpqld",
    }
    # same seed, same selection
    pr2 = stores["dir"] / "k6i8-pruned2.lpl"
    run("prune", stores["k6i8"], "-o", pr2, "--keep", "0.5", "--seed", "7", "--reuse", "lpqld")
    assert [(e, s) for e, s, _, _ in labels(pr2)] == [(e, s) for e, s, _, _ in kept]


def test_prune_by_epoch_and_entropy(stores):
    out = stores["dir"] / "p-epoch.lpl"
    assert run("prune", stores["dense"], "-o", out, "--keep", "0.5", "--by", "epoch", "--metric", "entropy")[0] == 0
    st = open_store(out)
    assert len(st.stored_epochs) == 2 and st.num_steps == 2 * st.steps_per_epoch
    assert st.header["selection"]["metric"] == "entropy"


def test_requantize_smaller_k_and_int4_min(stores):
    out = stores["dir"] / "k3.lpl"
    assert run("quantize", stores["k6"], "-o", out, "--topk", 3, "--tail", "logsumexp")[0] == 0
    direct = stores["dir"] / "k3-direct.lpl"
    assert run("quantize", stores["dense"], "-o", direct, "--topk", 3, "--tail", "logsumexp")[0] == 0
    for (_, _, a, _), (_, _, b, _), (_, _, src, _) in zip(labels(out), labels(direct), labels(stores["k6"])):
        for r in range(len(a["indices"])):
            # the same values; classes may differ only where fp16 values tie (fp32 order is gone)
            assert sorted(v for _, v in pairs(a, r)) == sorted(v for _, v in pairs(b, r))
            assert set(pairs(a, r)) <= set(pairs(src, r))
        np.testing.assert_allclose(a["tail"].astype(np.float32), b["tail"].astype(np.float32), rtol=2e-3)
    i4 = stores["dir"] / "k6i4.lpl"
    assert run("quantize", stores["dense"], "-o", i4, "--topk", 6, "--values", "int4", "--tail", "min")[0] == 0
    code, out_json, _ = run("compare", stores["dense"], i4, "--json")
    res = json.loads(out_json)
    assert code == 0 and res["top1_agreement"] > 0.9 and res["candidate"]["bytes_per_record"] > 0


def test_compare_known_case(tmp_path):
    p = np.array([0.5, 0.3, 0.15, 0.05])
    z = np.tile(np.log(p).astype(np.float32), (4, 1))
    paths = {}
    for name, codecs, kw in [
        ("ref", default_label_codecs("dense", type="float32"), {}),
        ("k2", default_label_codecs("topk", k=2, type="float32"), {}),
    ]:
        path = tmp_path / f"{name}.lpl"
        with StoreWriter(path, num_classes=4, images=4, batch_size=4, epochs=1, label_codecs=codecs) as w:
            w.write_step(
                0,
                0,
                image=np.arange(4, dtype=np.int32),
                crop=np.zeros((4, 4), np.float32),
                flip=np.zeros(4, bool),
                logits=z,
            )
        paths[name] = path
    code, out, _ = run("compare", paths["ref"], paths["k2"], "--json")
    res = json.loads(out)
    assert code == 0 and res["records"] == 4 and res["steps"] == 1
    assert res["top1_agreement"] == 1.0
    # top-2 of C = 4: the rest of a top-4 would be tied zeros ordered by index -- meaningless, so
    # the overlap is skipped and the output says why (issue 19 item 13)
    assert res["top5_overlap"] is None and "top-2" in res["top5_overlap_skipped"]
    assert res["kl_t1"] == pytest.approx(-np.log(0.8), abs=1e-6)  # KL(renormed top-2 || p) = -log(mass kept)
    assert res["tv_t1"] == pytest.approx(0.2, abs=1e-6)
    pt = p ** (1 / 20) / (p ** (1 / 20)).sum()
    assert res["kl_t20"] == pytest.approx(-np.log(pt[:2].sum()), abs=1e-6)
    assert res["candidate"]["ratio_vs_dense_fp16"] > 0
    code, out, _ = run("compare", paths["ref"], paths["k2"])
    assert code == 0 and "top-5 overlap        skipped: a store keeps only the top-2 classes" in out
    code, out, _ = run("compare", paths["ref"], paths["ref"])
    assert code == 0 and "100.00 %" in out
    assert "top-5 overlap        100.00 %" in out  # dense vs dense: computed (top-C with C = 4)


def test_compare_top5_overlap_kept_for_k_at_least_5(tmp_path):
    rng = np.random.default_rng(3)
    z = rng.normal(size=(8, 12)).astype(np.float32)
    paths = {}
    for name, codecs in [
        ("ref", default_label_codecs("dense", type="float32")),
        ("k5", default_label_codecs("topk", k=5, type="float32")),
        ("k4", default_label_codecs("topk", k=4, type="float32")),
    ]:
        paths[name] = tmp_path / f"{name}.lpl"
        with StoreWriter(paths[name], num_classes=12, images=8, batch_size=8, epochs=1, label_codecs=codecs) as w:
            w.write_step(
                0,
                0,
                image=np.arange(8, dtype=np.int32),
                crop=np.zeros((8, 4), np.float32),
                flip=np.zeros(8, bool),
                logits=z,
            )
    res = json.loads(run("compare", paths["ref"], paths["k5"], "--json")[1])
    assert res["top5_overlap"] == 1.0 and "top5_overlap_skipped" not in res
    res = json.loads(run("compare", paths["ref"], paths["k4"], "--json")[1])
    assert res["top5_overlap"] is None and "needs k >= 5" in res["top5_overlap_skipped"]


# -- refused inputs: exit 2, one line, nothing written ------------------------------------------------------
def refused(args, out, match):
    code, stdout, stderr = run(*args)
    assert code == 2, (code, stdout, stderr)
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert "Traceback" not in stderr
    assert match in lines[0], lines[0]
    if out is not None:
        assert not out.exists()
        assert not list(out.parent.glob(f".{out.name}.*"))  # no temporary left behind


@pytest.mark.parametrize(
    "case",
    [
        "unknown-codec",
        "bad-json",
        "lossy",
        "k>=C",
        "keep0",
        "keep>1",
        "keep-nan",
        "int4-lse",
        "larger-k",
        "tail-mismatch",
        "tail-dense",
        "same",
        "dict-planes",
        "bad-by",
        "bad-mode",
    ],
)
def test_refused(stores, case, tmp_path):
    out = tmp_path / "out.lpl"
    d, k6, k6i8 = stores["dense"], stores["k6"], stores["k6i8"]
    cases = {
        "unknown-codec": (["encode", d, "-o", out, "--codecs", '[{"name": "brotli"}]'], "unknown codec 'brotli'"),
        "bad-json": (["encode", d, "-o", out, "--codecs", "[{"], "not valid JSON"),
        "lossy": (
            ["encode", d, "-o", out, "--codecs", '[{"name": "topk", "configuration": {"k": 3}}, {"name": "bytes"}]'],
            "lossless",
        ),
        "k>=C": (["quantize", d, "-o", out, "--topk", 40], "smaller than the number of classes"),
        "keep0": (["prune", d, "-o", out, "--keep", 0], "(0, 1]"),
        "keep>1": (["prune", d, "-o", out, "--keep", 1.5], "(0, 1]"),
        "keep-nan": (["prune", d, "-o", out, "--keep", "nan"], "(0, 1]"),
        "int4-lse": (["quantize", d, "-o", out, "--topk", 5, "--values", "int4", "--tail", "logsumexp"], "int4"),
        "larger-k": (["quantize", k6, "-o", out, "--topk", 8], "top-6"),
        "tail-mismatch": (["quantize", k6i8, "-o", out, "--topk", 4, "--tail", "logsumexp"], "tail"),
        "tail-dense": (["quantize", d, "-o", out, "--tail", "min"], "--topk"),
        "same": (["quantize", d, "-o", d, "--topk", 5], "the output is the input"),
        "dict-planes": (["encode", d, "-o", out, "--dictionary"], "layout shuffle"),
        "bad-by": (
            [
                "prune",
                d,
                "-o",
                out,
                "--keep",
                0.5,
                "--metric",
                "margin",
                "--by",
                "epoch",
                "--reuse",
                "lpld",
                "--seed",
                1,
                "--steps-per-chunk",
                2,
            ],
            None,
        ),
        "bad-mode": (["compare", d, k6i8, "--mode", "tail"], "tail summary"),
    }
    args, match = cases[case]
    if match is None:  # a valid request, for contrast
        assert run(*args)[0] == 0
        return
    refused(args, out if case not in ("same", "bad-mode") else None, match)


def test_refuses_existing_output_without_force(stores, tmp_path):
    out = tmp_path / "exists.lpl"
    out.write_bytes(b"keep me")
    refused(["quantize", stores["dense"], "-o", out, "--topk", 5], None, "output exists")
    assert out.read_bytes() == b"keep me"
    assert run("quantize", stores["dense"], "-o", out, "--topk", 5, "--force")[0] == 0
    assert open_store(out).num_records > 0


def test_help_texts():
    for cmd in ("encode", "quantize", "prune", "compare"):
        code, out, _ = run(cmd, "--help")
        assert code == 0 and "--" in out
    assert "--keep" in run("prune", "--help")[1] and "--reuse" in run("prune", "--help")[1]


def test_encode_reads_registered_sources(tmp_path):
    """A legacy reader plugs in through recode.register_source: meta + an iterator of steps."""
    from lplabel import recode
    from lplabel.images import ImageIndex

    rng = np.random.default_rng(0)
    meta = recode.SourceMeta(
        num_classes=30,
        images=ImageIndex([f"img{i}" for i in range(8)], np.zeros(8)),
        batch_size=4,
        epochs=2,
        steps_per_epoch=2,
        label_input=("topk", 5),
        value_type="float16",
        crop_type="float16",
        num_steps=4,
    )
    steps = []
    for e in range(2):
        for s in range(2):
            idx = np.stack([rng.choice(30, 5, replace=False) for _ in range(4)])
            val = rng.normal(4, 2, (4, 5)).astype(np.float16).astype(np.float32)
            steps.append(
                recode.SourceStep(
                    e,
                    s,
                    rng.permutation(8)[:4].astype(np.int32),
                    rng.random((4, 4)).astype(np.float16),
                    rng.random(4) < 0.5,
                    np.arange(4, dtype=np.int16)[::-1].copy(),
                    0.3,
                    np.array([1, 2, 3, 4]),
                    {"indices": idx, "values": val},
                )
            )

    class FakeSource:
        def __init__(self, path):
            self.meta = meta

        def steps(self, positions=None, stage=0):
            return iter(steps if positions is None else [steps[int(i)] for i in positions])

        def close(self):
            pass

    legacy = tmp_path / "legacy_dir"
    legacy.mkdir()
    recode.register_source("fake", lambda p: str(p).endswith("legacy_dir"), FakeSource)
    try:
        out = tmp_path / "from-legacy.lpl"
        code, stdout, stderr = run("encode", legacy, "-o", out)
        assert code == 0, stderr
    finally:
        recode.SOURCE_OPENERS[:] = [o for o in recode.SOURCE_OPENERS if o[0] != "fake"]
    st = open_store(out)
    assert st.num_steps == 4 and st.image_keys[3] == "img3"
    for ref, got in zip(steps, st.iter_steps()):
        assert np.array_equal(ref.crop, got.crop) and np.array_equal(ref.image, got.image)
        for r in range(4):
            a = sorted(zip(ref.label["indices"][r].tolist(), ref.label["values"][r].astype(np.float16).tolist()))
            b = sorted(zip(got.label["indices"][r].tolist(), got.label["values"][r].tolist()))
            assert a == b


def test_damaged_dictionary_is_reported(stores, tmp_path):
    import h5py

    from lplabel.errors import CorruptStoreError

    out = tmp_path / "dict.lpl"
    assert run("encode", stores["k6"], "-o", out, "--layout", "shuffle", "--dictionary", "--dict-size", 1024)[0] == 0
    with h5py.File(out, "r+") as f:
        d = f["columns/label/zstd_dict"]
        raw = d[()]
        raw[-1] ^= 0xFF
        d[...] = raw
    with pytest.raises(CorruptStoreError):
        open_store(out)
    code, _, stderr = run("info", out)
    assert code == 2 and "zstd_dict" in stderr


def test_python_api_matches_the_commands(stores):
    """`lplabel.recode.encode/quantize/prune` are the commands' engine (issue 14): called directly
    they write the same labels and selection as the CLI, and return the path they wrote."""
    from lplabel import recode

    d = stores["dir"]
    q = recode.quantize(stores["dense"], d / "api-k6.lpl", topk=6, tail="logsumexp")
    assert q.path == d / "api-k6.lpl" and q.notes == ()
    for (e1, s1, a, _), (e2, s2, b, _) in zip(labels(q.path), labels(stores["k6"]), strict=True):
        assert (e1, s1) == (e2, s2) and a.keys() == b.keys()
        for key in a:
            assert np.array_equal(a[key], b[key]), key
    e = recode.encode(q.path, d / "api-k6-enc.lpl", layout="shuffle", codecs=None)
    assert [(x, y) for x, y, _, _ in labels(e.path)] == [(x, y) for x, y, _, _ in labels(q.path)]
    p = recode.prune(stores["k6i8"], d / "api-pruned.lpl", keep=0.5, seed=7, reuse="lpqld")
    cli_out = d / "api-pruned-cli.lpl"
    assert run("prune", stores["k6i8"], "-o", cli_out, "--keep", "0.5", "--seed", "7", "--reuse", "lpqld")[0] == 0
    assert [(x, y) for x, y, _, _ in labels(p.path)] == [(x, y) for x, y, _, _ in labels(cli_out)]
    assert open_store(p.path).header["selection"] == open_store(cli_out).header["selection"]
    with pytest.raises(recode.TailMismatchError):
        recode.quantize(stores["k6i8"], d / "api-bad.lpl", topk=3, tail="min")
    assert not (d / "api-bad.lpl").exists()
