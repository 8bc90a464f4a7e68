"""Issue 19 items 8 and 13 as a user meets them: the three size figures, `show`, `verify --json`,
`info` on several files, `--zstd-level`, `--keep 1/40 | 10% | 0.025`."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from lplabel.cli import main
from lplabel.selection import KeepFractionError, parse_keep
from lplabel.store import open_store, store_info

from conftest import write_store


def run(*args):
    r = CliRunner().invoke(main, [str(a) for a in args])
    return r.exit_code, r.stdout, r.stderr


@pytest.fixture
def big_store(tmp_path):
    """40 images, batch 8, 10 epochs: 50 steps, 400 records, dense fp16."""
    path = tmp_path / "full.lpl"
    write_store(path, epochs=10)
    return path


# -- item 8: three named size figures ------------------------------------------------------------------
def test_info_names_stored_and_nominal_ratios_on_a_pruned_store(big_store, tmp_path):
    full = store_info(big_store)
    assert full["nominal_records"] == full["records"] == 400
    assert full["smaller_than_dense_fp16_nominal"] == full["smaller_than_dense_fp16_stored"]
    pruned = tmp_path / "p.lpl"
    code, out, err = run("prune", big_store, "-o", pruned, "--keep", "0.1")
    assert code == 0, err
    f = store_info(pruned)
    assert f["records"] == 40 and f["nominal_records"] == 400  # 5 of 50 steps kept
    assert f["smaller_than_dense_fp16_stored"] == pytest.approx(40 * 20 * 2 / f["file_bytes"])
    assert f["smaller_than_dense_fp16_nominal"] == pytest.approx(400 * 20 * 2 / f["file_bytes"])
    assert f["ratio_vs_dense_fp16"] == f["smaller_than_dense_fp16_stored"]  # the old key, same meaning
    assert f["bytes_per_record"] == pytest.approx(f["file_bytes"] / 40)
    # the words: the same in info, in prune's summary and in compare
    assert "than dense fp16 of the stored records" in out and "than dense fp16 of the nominal records (400)" in out
    code, out, _ = run("info", pruned)
    assert code == 0
    assert "bytes per stored record" in out
    assert "vs dense fp16, stored records" in out and "(40 records x 20 classes x 2 B" in out
    assert "vs dense fp16, nominal records" in out and "(400 records x 20 classes x 2 B" in out
    assert "ratio" not in out.lower()
    code, out, _ = run("compare", big_store, pruned)
    assert code == 0 and "vs dense fp16, stored records" in out and "vs dense fp16, nominal records" in out
    res = json.loads(run("compare", big_store, pruned, "--json")[1])
    assert res["candidate"]["smaller_than_dense_fp16_nominal"] == pytest.approx(f["smaller_than_dense_fp16_nominal"])


def test_nominal_records_of_a_partial_store(tmp_path):
    """Steps missing without a selection (a partial relabel): nominal counts every declared step."""
    path = tmp_path / "part.lpl"
    write_store(path, epochs=3, keep_steps={(0, 0), (1, 2), (2, 4)})
    f = store_info(path)
    assert f["records"] == 24 and f["nominal_records"] == 120  # 3 epochs x 40 images


# -- item 13: show ---------------------------------------------------------------------------------
def test_show_one_step(tmp_path):
    path = tmp_path / "k.lpl"
    ref = write_store(path, label="topk", k=5, epochs=2)
    code, out, err = run("show", path, "--epoch", 1, "--step", 2, "-n", 3)
    assert code == 0, err
    lines = out.splitlines()
    assert "epoch 1, step 2" in lines[0] and "8 records" in lines[0] and "cutmix lambda" in lines[0]
    assert "top-5 logits (float16) + class indices" in lines[1]
    assert len(lines) == 3 + 3 + 1 and "5 more records" in lines[-1]
    rec = next(r for r in ref if r["epoch"] == 1 and r["step"] == 2)
    v = json.loads(run("show", path, "--epoch", 1, "--step", 2, "--all", "--top", 2, "--json")[1])
    assert [r["image"] for r in v["rows"]] == rec["image"].tolist()
    # the top classes are the teacher's: the largest logits, in order, probabilities summing to <= 1
    for r, z in zip(v["rows"], rec["logits"]):
        assert [t["class"] for t in r["top"]] == np.argsort(-z.astype(np.float16), kind="stable")[:2].tolist()
        assert 0 < sum(t["p"] for t in r["top"]) <= 1 + 1e-6
    assert v["mix"]["lambda"] == pytest.approx(rec["mix_lambda"])
    # defaults: the first stored step; --epoch alone: that epoch's first step
    assert json.loads(run("show", path, "--json")[1])["epoch"] == 0
    assert json.loads(run("show", path, "--epoch", 1, "--json")[1])["step"] == 0


@pytest.mark.parametrize(
    "args, match",
    [
        (["--epoch", 7], "epoch 7 has no stored step"),
        (["--epoch", 0, "--step", 99], "is not in this store"),
        (["--step", 1], "--step needs --epoch"),
    ],
)
def test_show_refuses_missing_steps_in_one_line(tmp_path, args, match):
    path = tmp_path / "s.lpl"
    write_store(path, epochs=2)
    code, out, err = run("show", path, *args)
    assert code == 2 and match in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


# -- item 13: verify --json ------------------------------------------------------------------------
def test_verify_json(tmp_path):
    path = tmp_path / "v.lpl"
    write_store(path)
    code, out, _ = run("verify", "--json", path)
    rep = json.loads(out)
    assert code == 0 and rep["ok"] and rep["status"] == "ok" and rep["exit_status"] == 0
    assert rep["problems"] == [] and rep["chunks_checked"] > 0
    raw = bytearray(path.read_bytes())
    with open_store(path) as s:
        base, _ = s.segment_offsets["crop"][0]
        _, off, n = s.chunks["crop"][3]
    raw[base + off + 1] ^= 0xFF
    path.write_bytes(bytes(raw))
    code, out, _ = run("verify", "--json", path)
    rep = json.loads(out)
    assert code == 1 and not rep["ok"] and rep["status"] == "damaged" and rep["exit_status"] == 1
    assert any("crop" in p for p in rep["problems"])


# -- item 13: info on several files ---------------------------------------------------------------
def test_info_several_files(tmp_path):
    a, b = tmp_path / "a.lpl", tmp_path / "b.lpl"
    write_store(a)
    write_store(b, label="topk", k=3)
    code, out, _ = run("info", a, b)
    assert code == 0 and out.count("(lplabel format") == 2 and str(a) in out and str(b) in out
    facts = json.loads(run("info", "--json", a, b)[1])
    assert isinstance(facts, list) and [f["path"] for f in facts] == [str(a), str(b)]
    assert isinstance(json.loads(run("info", "--json", a)[1]), dict)  # one file: one object, as before
    code, out, err = run("info", a, tmp_path / "missing.lpl")
    assert code == 2 and out == "" and "missing.lpl" in err  # every file opens before any output


# -- item 13: one name for the zstd level ------------------------------------------------------------
def test_zstd_level_one_name_and_hidden_alias(tmp_path):
    src = tmp_path / "s.lpl"
    write_store(src)
    for cmd in ("encode", "quantize"):
        code, out, _ = run(cmd, "--help")
        assert "--zstd-level" in out and "--level" not in out.replace("--zstd-level", "")
    a, b = tmp_path / "a.lpl", tmp_path / "b.lpl"
    assert run("quantize", src, "-o", a, "--topk", 3, "--zstd-level", 5)[0] == 0
    code, _, err = run("quantize", src, "-o", b, "--topk", 3, "--level", 5)
    assert code == 0 and "--level is deprecated; use --zstd-level" in err
    levels = [
        [c["configuration"].get("level") for c in store_info(p)["label_codecs"] if c["name"] in ("zstd", "zplanes")]
        for p in (a, b)
    ]
    assert levels[0] == levels[1] == [5]
    code, _, err = run("quantize", src, "-o", tmp_path / "c.lpl", "--topk", 3, "--level", 4, "--zstd-level", 5)
    assert code == 2 and "disagree" in err and not (tmp_path / "c.lpl").exists()


# -- item 13: --keep 1/40, 10%, 0.025 ----------------------------------------------------------------
@pytest.mark.parametrize(
    "text, value",
    [("0.025", 0.025), ("1/40", 1 / 40), ("2.5%", 0.025), (" 10 % ", 0.1), ("1", 1.0), ("3/4", 0.75), (0.5, 0.5)],
)
def test_parse_keep(text, value):
    assert parse_keep(text) == pytest.approx(value)


@pytest.mark.parametrize(
    "text, match",
    [
        ("abc", "not a number"),
        ("1/0", "divides by zero"),
        ("0", "not a fraction"),
        ("40", "write 1/40"),
        ("150%", "not a fraction"),
        ("nan", "not a finite"),
        ("-1/2", "not a fraction"),
        ("1/x", "not a number"),
        ("", "not a number"),
    ],
)
def test_parse_keep_refuses_by_name(text, match):
    with pytest.raises(KeepFractionError, match=match):
        parse_keep(text)


def test_prune_keep_forms_agree(big_store, tmp_path):
    outs = []
    for i, k in enumerate(("0.1", "1/10", "10%")):
        p = tmp_path / f"p{i}.lpl"
        code, _, err = run("prune", big_store, "-o", p, "--keep", k)
        assert code == 0, err
        with open_store(p) as s:
            outs.append((s.step_epoch.tolist(), s.step_index.tolist(), s.header["selection"]["keep"]))
    assert outs[0] == outs[1] == outs[2]
    code, _, err = run("prune", big_store, "-o", tmp_path / "x.lpl", "--keep", "40")
    assert code == 2 and err.startswith("error: ") and "1/40" in err and not (tmp_path / "x.lpl").exists()
