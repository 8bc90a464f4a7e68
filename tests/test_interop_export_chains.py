"""Export -> import keeps the decoded labels, for every codec chain lplabel writes (issue 19, item 1).

A bf16 store used to export raw bfloat16 bit patterns as label values (top-1 agreement 0 %). Here a
dense store is re-coded by `lplabel quantize` / `encode` with each value format (fp32, fp16, bf16,
int8, int4), tail summary, index coding and layout, exported to the legacy layout that holds it (LPLD
for dense labels, LPQLD for top-k) and imported again: every record's labels must equal the store's
decoded labels cast to the legacy dtype (float16), and every cast or drop must be named in the
export's notes.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

torch = pytest.importorskip("torch")

from click.testing import CliRunner  # noqa: E402

from lplabel import open_store  # noqa: E402
from lplabel.cli import main  # noqa: E402
from lplabel.interop import export_legacy, import_legacy, synth  # noqa: E402

C = 50


def run(*args):
    res = CliRunner().invoke(main, [str(a) for a in args])
    return res.exit_code, res.output


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("chains")
    src = synth.write_batches(tmp / "lpld", "lpld", num_images=30, batch_size=8, epochs=1, num_classes=C)
    import_legacy(src, tmp / "d.lpl", progress=False)
    return tmp / "d.lpl"


def _labels(path):
    """Decoded labels per (epoch, step): what the API hands out (floats, never bit patterns)."""
    with open_store(path) as s:
        return {(r.epoch, r.step): r.label for r in s.iter_steps(columns=("label",))}


def _as_pairs(lab):
    """Top-k entries as (indices, float16 values) sorted by class index (the set of pairs)."""
    idx = np.asarray(lab["indices"]).astype(np.int64)
    val = np.asarray(lab["values"], dtype=np.float32).astype(np.float16)
    o = np.argsort(idx, axis=1, kind="stable")
    return np.take_along_axis(idx, o, 1), np.take_along_axis(val, o, 1)


chains = st.one_of(
    st.tuples(
        st.just("dense"),
        st.sampled_from(["fp32", "fp16", "bf16", "int8", "int4"]),
        st.just("none"),
        st.just("value-delta"),
        st.sampled_from(["planes", "shuffle"]),
    ),
    st.tuples(
        st.just("topk"),
        st.sampled_from(["fp32", "fp16", "bf16", "int8"]),
        st.sampled_from(["none", "logsumexp", "min"]),
        st.sampled_from(["none", "value-delta", "index-delta"]),
        st.sampled_from(["planes", "shuffle"]),
    ),
    st.tuples(st.just("topk"), st.just("fp16"), st.just("none"), st.just("index-delta"), st.just("rans")),
)


@settings(max_examples=18, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(chain=chains, k=st.sampled_from([1, 5, 12]))
def test_export_import_keeps_decoded_labels(base, tmp_path_factory, chain, k):
    rep, values, tail, coding, layout = chain
    if layout == "rans":
        pytest.importorskip("numba")
    tmp = tmp_path_factory.mktemp("c")
    q = tmp / "q.lpl"
    args = ["quantize", base, "-o", q, "--values", values, "--layout", layout]
    if rep == "topk":
        args += ["--topk", k, "--tail", tail, "--index-coding", coding]
    code, out = run(*args)
    assert code == 0, out
    layout_out = "lpld" if rep == "dense" else "lpqld"
    report = export_legacy(q, tmp / "back", layout=layout_out, progress=False)
    notes = " | ".join(report.notes)
    if values != "fp16":
        assert "-> float16" in notes, notes  # the cast is named, with how many values it changed
    if tail != "none":
        assert "tail summary" in notes, notes
    back = tmp / "back.lpl"
    import_legacy(tmp / "back", back, progress=False, num_classes=C if rep == "topk" else None)
    want, got = _labels(q), _labels(back)
    assert sorted(want) == sorted(got)
    for key, lab in want.items():
        if rep == "dense":
            np.testing.assert_array_equal(
                np.asarray(got[key]["logits"]), np.asarray(lab["logits"], dtype=np.float32).astype(np.float16)
            )
        else:
            wi, wv = _as_pairs(lab)
            gi, gv = _as_pairs(got[key])
            np.testing.assert_array_equal(gi, wi)
            np.testing.assert_array_equal(gv, wv)


def test_bf16_values_are_floats_and_export_is_right(base, tmp_path):
    """The issue's reproduction: quantize --values bf16, export --to lpld, import, compare."""
    b = tmp_path / "b.lpl"
    assert run("quantize", base, "-o", b, "--values", "bf16")[0] == 0
    with open_store(b) as s:
        lab = s.read_step(0, 0).label["logits"]
    assert lab.dtype == np.float32 and np.abs(lab).max() < 100  # values, not uint16 bit patterns
    code, out = run("export", b, "-o", tmp_path / "back", "--to", "lpld", "--json")
    assert code == 0
    assert any("bfloat16 -> float16" in n for n in json.loads(out)["notes"])
    assert run("import", tmp_path / "back", "-o", tmp_path / "i.lpl")[0] == 0
    code, out = run("compare", b, tmp_path / "i.lpl", "--json")
    res = json.loads(out)
    assert code == 0 and res["top1_agreement"] == 1.0 and res["kl_t1"] < 1e-5


def test_index_only_export_refused_by_name(base, tmp_path):
    q = tmp_path / "none.lpl"
    assert run("quantize", base, "-o", q, "--topk", 3, "--values", "none")[0] == 0
    code, out = run("export", q, "-o", tmp_path / "x", "--to", "lpqld")
    assert code == 2 and "class indices only" in out and not (tmp_path / "x").exists()
