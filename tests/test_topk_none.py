"""Top-k labels of class indices only (``topk`` type ``"none"``, spec §3.5 and §4).

Round trips (store -> read -> probabilities: 1/k on the teacher's top-k classes, one-hot for
k = 1), every path that reconstructs (numpy, torch, the loader's dense and sparse outputs, the
legacy adapters, fidelity, selection scores), and every refusal: tails, value codecs,
reconstruction modes that need values, values invented by re-quantizing.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from conftest import realistic_logits, write_store
from lplabel import StoreWriter, open_store
from lplabel.cli import main
from lplabel.codecs import Field, Pipeline, get_codec, label_chain
from lplabel.codecs.bitpack import BitPack
from lplabel.codecs.delta import Delta
from lplabel.codecs.quantize import Quantize
from lplabel.codecs.sort import Sort
from lplabel.codecs.topk import TopK, topk_of
from lplabel.codecs.zplanes import ZPlanes
from lplabel.errors import CodecChainError, CodecConfigError, NoValuesError
from lplabel.reconstruct import ReconstructError, probs_numpy, probs_torch

C = 12


def _expected(z: np.ndarray, k: int) -> np.ndarray:
    """1/k on the k largest logits of each row (ties: smaller class index), 0 elsewhere."""
    idx, _ = topk_of(z, k)
    out = np.zeros(z.shape, dtype=np.float32)
    np.put_along_axis(out, idx, np.float32(1.0 / k), axis=1)
    return out


def _run(*args):
    r = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    return r.exit_code, r.output


# -- the codec ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("coding", ["none", "index-delta"])
@pytest.mark.parametrize("layout", ["planes", "shuffle"])
def test_codec_stores_indices_only(k, coding, layout):
    rng = np.random.default_rng(k)
    z = realistic_logits(rng, 40, C)
    z[0, :] = 1.0  # a row of ties: the smaller class indices win, as for any top-k
    pipe = Pipeline(
        label_chain(k=k, values="none", index_coding=coding, layout=layout, index_type="uint8"),
        (Field("logits", "float32", (C,)),),
    )
    assert [f.name for f in pipe.stored_spec] == ["indices"] and [f.name for f in pipe.decoded_spec] == ["indices"]
    block = pipe.decode(pipe.encode({"logits": z}), len(z))
    assert sorted(block) == ["indices"]
    want, _ = topk_of(z, k)
    if coding == "none":  # entries stay in decreasing-logit order
        np.testing.assert_array_equal(block["indices"], want)
    else:  # sorted by class index
        np.testing.assert_array_equal(block["indices"], np.sort(want, axis=1))
    assert block["indices"][0].tolist() == list(range(k))


def test_codec_config_and_chain_refusals():
    for tail in ("logsumexp", "min"):
        with pytest.raises(NoValuesError, match="needs stored values"):
            TopK(2, type="none", tail=tail)
        with pytest.raises(NoValuesError):  # a stored configuration is refused the same way
            get_codec({"name": "topk", "configuration": {"k": 2, "type": "none", "index_type": "uint8", "tail": tail}})
    assert TopK(2, type="none").get_config() == {"k": 2, "type": "none", "index_type": "uint16", "tail": "none"}
    with pytest.raises(CodecConfigError, match="unknown top-k value type"):
        TopK(2, type="nothing")
    logits = (Field("logits", "float32", (C,)),)
    for later in (Quantize(8), Sort("value"), Delta("values", "descending"), BitPack("values", 4)):
        with pytest.raises(NoValuesError, match="indices only"):
            Pipeline([TopK(3, type="none"), later, ZPlanes(3)], logits)
    Pipeline([TopK(3, type="none"), Sort("index"), Delta("indices"), ZPlanes(3)], logits)  # works
    with pytest.raises(NoValuesError, match="dense labels have none"):
        label_chain(values="none")
    with pytest.raises(NoValuesError, match="value-delta"):
        label_chain(k=2, values="none", index_coding="value-delta")
    # index-only input: the same k with type none only (values cannot be invented, nor an order)
    only = (Field("indices", "int64", (3,)),)
    Pipeline([TopK(3, type="none"), ZPlanes(3)], only)
    with pytest.raises(NoValuesError, match="cannot be invented"):
        Pipeline([TopK(3, type="float16"), ZPlanes(3)], only)
    with pytest.raises(NoValuesError, match="no order to choose by"):
        Pipeline([TopK(2, type="none"), ZPlanes(3)], only)
    with pytest.raises(CodecChainError):  # a dense chain cannot take indices either
        Pipeline([get_codec({"name": "dense"}), ZPlanes(3)], only)


def test_topk_input_keeps_the_top_entries():
    rng = np.random.default_rng(2)
    z = realistic_logits(rng, 30, C)
    idx6, v6 = topk_of(z, 6)
    pipe = Pipeline(
        [TopK(2, type="none", index_type="uint8"), ZPlanes(3)],
        (Field("indices", "int64", (6,)), Field("values", "float32", (6,))),
    )
    block = pipe.decode(pipe.encode({"indices": idx6, "values": v6}), 30)
    np.testing.assert_array_equal(block["indices"], topk_of(z, 2)[0])


# -- store round trip and reconstruction -------------------------------------------------------------------


@pytest.fixture(scope="module", params=[1, 3], ids=["k1", "k3"])
def none_store(request, tmp_path_factory):
    k = request.param
    path = tmp_path_factory.mktemp(f"none{k}") / "none.lpl"
    ref = write_store(
        path,
        n_images=24,
        num_classes=C,
        batch_size=6,
        epochs=2,
        steps_per_chunk=2,
        label=label_chain(k=k, values="none", index_type="uint8", layout="planes"),
    )
    return path, ref, k


def test_store_round_trip_gives_uniform_over_the_topk(none_store):
    path, ref, k = none_store
    with open_store(path) as s:
        assert [f.name for f in s.pipelines["label"].decoded_spec] == ["indices"]
        for i, rec in enumerate(ref):
            lab = s.step_at(i).label
            assert sorted(lab) == ["indices"]
            want = _expected(rec["logits"], k)
            for t in (0.5, 1.0, 7.0):  # no values: the temperature changes nothing
                for mode in ("auto", "renorm"):
                    np.testing.assert_array_equal(probs_numpy(lab, C, temperature=t, mode=mode), want)
                    got = probs_torch(lab, C, temperature=t, mode=mode)
                    np.testing.assert_array_equal(got.numpy(), want)
            for mode in ("tail", "uniform"):
                with pytest.raises(ReconstructError, match="class indices only"):
                    probs_numpy(lab, C, mode=mode)
                with pytest.raises(ReconstructError, match="class indices only"):
                    probs_torch(lab, C, mode=mode)
            if k == 1:  # the one-hot of the teacher's top class
                assert (want.argmax(1) == rec["logits"].argmax(1)).all() and (want.max(1) == 1).all()


def test_info_fidelity_and_selection(none_store):
    from lplabel.reconstruct.fidelity import compare_stores
    from lplabel.selection import step_scores
    from lplabel.store import store_info

    path, ref, k = none_store
    f = store_info(path)
    assert f["labels"] == f"top-{k} class indices only (no values)" and f["label_lossy"]
    code, out = _run("info", path)
    assert code == 0 and "class indices only" in out
    # fidelity against a dense store of the same steps
    dense = path.with_name("dense.lpl")
    write_store(dense, n_images=24, num_classes=C, batch_size=6, epochs=2, steps_per_chunk=2)
    res = compare_stores(dense, path)
    assert res["records"] == sum(len(r["image"]) for r in ref)
    if k == 1:
        assert res["top1_agreement"] == 1.0
    assert np.isfinite(res["kl_t1"]) and res["kl_t1"] > 0
    with open_store(path) as s:
        h = step_scores(s.step_at(0).label, C, "entropy")
    assert h == pytest.approx(np.log(k))


def test_loader_dense_sparse_and_adapters(none_store):
    from lplabel.torch import ReplayLoader, StepDataset
    from lplabel.torch.adapters import dense_logits, lpqld_batch

    path, ref, k = none_store
    dense = StepDataset(path, None, labels="dense", temperature=3.0)
    sparse = StepDataset(path, None, labels="sparse", temperature=3.0)
    for pos in (0, len(ref) - 1):
        want = torch.from_numpy(_expected(ref[pos]["logits"], k))
        b, sb = dense[pos], sparse[pos]
        assert torch.equal(b.probs, want) and torch.equal(b.dense(temperature=0.5), want)
        assert torch.equal(sb.sparse.dense(), want) and torch.equal(sb.sparse.fill, torch.zeros(len(want)))
        assert torch.equal(sb.sparse.values, torch.full((len(want), k), 1.0 / k))
        assert torch.equal(torch.softmax(dense_logits(b) / 2.0, 1), want)
        with pytest.raises(ValueError, match="tail"):
            dense_logits(b, fill="tail")
        vals, idx = lpqld_batch(b)[5:]
        assert torch.equal(vals, torch.zeros(len(want), k))
        assert torch.equal(torch.zeros_like(want).scatter(1, idx, torch.softmax(vals / 3.0, 1)), want)
        with pytest.raises(ReconstructError, match="class indices only"):
            b.logit_targets()
        with pytest.raises(ReconstructError):
            b.dense(mode="tail")
    for mode in ("tail", "uniform"):
        with pytest.raises(ReconstructError, match="class indices only"):
            StepDataset(path, None, labels="dense", mode=mode)
    # through the loader's groups and a worker process (pickled batches)
    for workers in (0, 1):
        for b in ReplayLoader(path, None, labels="sparse", temperature=2.0, num_workers=workers):
            assert torch.equal(b.sparse.values.sum(1), torch.ones(len(b)))
            assert (b.sparse.dense() > 0).sum(1).eq(k).all()


# -- writing index-only input, copying and re-quantizing -------------------------------------------------------


def test_writer_takes_indices_only(tmp_path):
    rng = np.random.default_rng(4)
    path = tmp_path / "idx.lpl"
    steps = []
    with StoreWriter(
        path,
        num_classes=C,
        images=8,
        batch_size=4,
        epochs=2,
        label_input=("topk", 2, "indices"),
        label_codecs=label_chain(k=2, values="none", index_coding="none"),
    ) as w:
        for e in range(2):
            for s in range(2):
                idx = topk_of(realistic_logits(rng, 4, C), 2)[0]
                steps.append(idx)
                kw = dict(image=rng.permutation(8)[:4], crop=rng.random((4, 4)), flip=rng.random(4) < 0.5)
                with pytest.raises(Exception, match="topk_indices alone"):
                    w.write_step(e, s, topk_indices=idx, topk_values=np.zeros((4, 2), np.float32), **kw)
                w.write_step(e, s, topk_indices=idx, **kw)
    with open_store(path) as st:
        assert st.header["columns"]["label"]["input"] == [{"name": "indices", "type": "int64", "shape": [2]}]
        for i, idx in enumerate(steps):
            np.testing.assert_array_equal(st.step_at(i).label["indices"], idx)
    with pytest.raises(NoValuesError):  # a value type cannot be filled from indices
        StoreWriter(
            tmp_path / "bad.lpl",
            num_classes=C,
            images=8,
            batch_size=4,
            epochs=2,
            label_input=("topk", 2, "indices"),
            label_codecs=label_chain(k=2, values="fp16"),
        )


@pytest.fixture(scope="module")
def cli_stores(tmp_path_factory):
    d = tmp_path_factory.mktemp("none_cli")
    dense = d / "dense.lpl"
    write_store(dense, n_images=30, num_classes=C, batch_size=6, epochs=3)
    k2 = d / "k2.lpl"
    code, out = _run("quantize", dense, "-o", k2, "--topk", 2, "--values", "none")
    assert code == 0, out
    return {"dir": d, "dense": dense, "k2": k2}


def _labels(path):
    with open_store(path) as s:
        return [(st.epoch, st.step, st.label["indices"].tolist()) for st in s.iter_steps()]


def test_cli_quantize_compare_prune_encode(cli_stores):
    d, dense, k2 = cli_stores["dir"], cli_stores["dense"], cli_stores["k2"]
    with open_store(dense) as s, open_store(k2) as t:
        assert t.pipelines["label"].codecs[0].to_json()["configuration"]["type"] == "none"
        for a, b in zip(s.iter_steps(), t.iter_steps()):
            want = _expected(a.label["logits"].astype(np.float32), 2)
            np.testing.assert_array_equal(probs_numpy(b.label, C), want)
    k1 = d / "k1.lpl"
    assert _run("quantize", dense, "-o", k1, "--topk", 1, "--values", "none", "--layout", "shuffle")[0] == 0
    code, out = _run("compare", dense, k1, "--json")
    assert code == 0 and json.loads(out)["top1_agreement"] == 1.0
    code, out = _run("compare", dense, k1, "--mode", "tail")
    assert code != 0 and "class indices only" in out
    # copies keep the labels exactly
    for cmd in (
        ["prune", k2, "-o", d / "p.lpl", "--keep", 0.5, "--metric", "entropy"],
        ["encode", k2, "-o", d / "e.lpl", "--layout", "shuffle", "--index-coding", "none"],
    ):
        code, out = _run(*cmd)
        assert code == 0, out
    kept = dict(((e, s), v) for e, s, v in _labels(k2))
    for e, s, v in _labels(d / "p.lpl"):
        assert kept[(e, s)] == v
    assert [(e, s, sorted(v)) for e, s, v in _labels(d / "e.lpl")] == [(e, s, sorted(v)) for e, s, v in _labels(k2)]
    code, out = _run(
        "encode",
        k2,
        "-o",
        d / "bad.lpl",
        "--codecs",
        '[{"name": "topk", "configuration": {"k": 2, "type": "float16"}}, {"name": "zplanes"}]',
        "--allow-lossy",
    )
    assert code != 0 and "cannot be invented" in out


@pytest.mark.parametrize(
    "args, msg",
    [
        (["--topk", 2, "--values", "fp16"], "values cannot be invented"),
        (["--topk", 2, "--values", "bf16", "--tail", "logsumexp"], "values cannot be invented"),
        (["--topk", 1, "--values", "none"], "no order to choose by"),
    ],
)
def test_cli_refuses_to_invent_values(cli_stores, args, msg):
    code, out = _run("quantize", cli_stores["k2"], "-o", cli_stores["dir"] / "bad.lpl", *args)
    assert code != 0 and msg in out


@pytest.mark.parametrize(
    "args, msg",
    [
        (["--values", "none"], "give --topk"),
        (["--topk", 2, "--values", "none", "--tail", "logsumexp"], "needs stored values"),
        (["--topk", 2, "--values", "none", "--tail", "min"], "needs stored values"),
        (["--topk", 2, "--values", "none", "--index-coding", "value-delta"], "value-delta"),
    ],
)
def test_cli_refuses_index_only_options(cli_stores, args, msg):
    code, out = _run("quantize", cli_stores["dense"], "-o", cli_stores["dir"] / "bad.lpl", *args)
    assert code != 0 and msg in out
    assert not (cli_stores["dir"] / "bad.lpl").exists()


def test_cli_help_names_none():
    code, out = _run("quantize", "--help")
    assert code == 0 and "none: store the top-K class indices only" in " ".join(out.split())


def test_export_refuses_index_only(cli_stores, tmp_path):
    code, out = _run("export", cli_stores["k2"], "-o", tmp_path / "legacy", "--to", "lpqld")
    assert code != 0 and "class indices only" in out


# -- the benchmark grammar -------------------------------------------------------------------------------------


def test_harness_settings_parse():
    from lplabel.experiment.harness.settings import UnknownSettingError, default_setting_names, parse_setting

    s = parse_setting("lpl-k1-none-20x", 10)
    assert (s.k, s.values, s.tail, s.keep, s.name) == (1, "none", "none", 0.05, "lpl-k1-none-keep1in20")
    assert s.describe().startswith("top-1 index only")
    assert s.label_codecs(10)[0] == TopK(1, type="none", index_type="uint8")
    s2 = parse_setting("lpl-k2-none-keep0.025-T1", 10)
    assert s2.name == "lpl-k2-none-keep1in40-T1" and s2.describe().startswith("top-2 indices only, index-delta")
    for bad in ("lpl-dense-none", "lpl-k1-none-tail", "lpl-k2-none-min-40x"):
        with pytest.raises(UnknownSettingError):
            parse_setting(bad, 10)
    assert any(n.startswith("lpl-k1-none-") for n in default_setting_names(10))
