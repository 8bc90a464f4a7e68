"""The harness row ``online-teacher`` (issue 16): grammar, bytes, compute, report."""

from __future__ import annotations

import csv
import dataclasses
import json

import pytest
import torch

from lplabel.experiment.harness import BenchConfig, UnknownSettingError, parse_setting, parse_settings, run_bench
from lplabel.experiment.harness.settings import canonical_name

pytest.importorskip("sklearn")


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_online_teacher_grammar():
    s = parse_setting("online-teacher", 10)
    assert (s.family, s.keep, s.store_name, s.temperature) == ("online", 1.0, "full", None)
    assert parse_setting(canonical_name(s), 10) == s
    assert parse_setting("online-teacher-T4", 10).temperature == 4.0
    assert [x.name for x in parse_settings("online-teacher", 10)] == ["full", "online-teacher"]
    with pytest.raises(UnknownSettingError, match="no pruning"):
        parse_setting("online-teacher-keep1in10", 10)
    with pytest.raises(UnknownSettingError, match="not in the grammar"):
        parse_setting("online", 10)


def test_online_teacher_row(tmp_path):
    lines = []
    cfg = BenchConfig(
        out=str(tmp_path / "b"),
        epochs=4,
        seeds=2,
        teacher_epochs=2,
        device="cpu",
        progress=False,
        settings="full,online-teacher,lpld-keep1in10",
    )
    res = run_bench(cfg, echo=lines.append)
    rows = {r["setting"]: r for r in res["rows"]}
    full, on = rows["full"], rows["online-teacher"]
    # the same views, the same labels up to the full store's fp16 rounding
    assert on["records"] == full["records"] and on["steps"] == full["steps"]
    assert 0 < on["max_abs_logit_delta"] <= 2.0**-11 * 32 and on["top1_agreement"] == 1.0
    # bytes: the teacher checkpoint plus the full store without its label column; no label bytes
    ckpt = (tmp_path / "b" / "teacher" / "teacher.pt").stat().st_size
    assert abs(on["teacher_bytes"] - ckpt) < 4096
    assert on["file_bytes"] == on["teacher_bytes"] + on["views_bytes"]
    assert on["views_bytes"] == full["file_bytes"] - full["label_bytes"]
    assert on["label_bytes"] == 0 and on["label_ratio"] is None
    # compute per step next to the accuracy
    assert on["teacher_gflops_per_step"] > 0 and on["teacher_ms_per_step"] > 0
    assert on["student_ms_per_step"] > 0 and on["full_student_ms_per_step"] > 0
    assert on["n_seeds"] == 2 and on["top1_mean"] > 20.0
    # the recommendation names a store to rebuild, never the loop's teacher
    assert (res.get("recommendation") or {}).get("setting") != "online-teacher"
    assert on["student_step_ratio"] == pytest.approx(on["student_ms_per_step"] / on["full_student_ms_per_step"])
    assert on["source_ms_measured_in"] == "students" and on["not_trained"] is None
    md = (tmp_path / "b" / "results.md").read_text()
    assert "## Labels made in the training loop" in md and f"{on['teacher_bytes']:,} B" in md
    # the CSV carries the row's costs
    csv_rows = {r["setting"]: r for r in _csv(tmp_path / "b" / "results.csv")}
    c = csv_rows["online-teacher"]
    assert c["label_source"] == "online" and int(c["teacher_bytes"]) == on["teacher_bytes"]
    assert float(c["source_gflops_per_step"]) > 0 and float(c["student_step_ratio"]) > 0
    assert csv_rows["full"]["label_source"] == "" and csv_rows["full"]["teacher_bytes"] == ""
    # the row's own record: full's store record is left alone (it was overwritten once)
    assert (tmp_path / "b" / "stores" / "online-teacher.json").is_file()
    assert "info" in json.loads((tmp_path / "b" / "stores" / "full.json").read_text())
    # a rerun reuses the cached stores, check and students
    lines2 = []
    again = run_bench(cfg, echo=lines2.append)
    assert {r["setting"]: r["top1_per_seed"] for r in again["rows"]} == {n: r["top1_per_seed"] for n, r in rows.items()}
    assert sum("(cached)" in s for s in lines2 if "online-teacher" in s) >= 2
    assert any("full" in s and "(cached)" in s and "records" in s for s in lines2)
    # without its students: the bytes and the teacher's compute, measured in the check, and why
    lines3 = []
    res3 = run_bench(dataclasses.replace(cfg, online_students=False), echo=lines3.append)
    nt = {r["setting"]: r for r in res3["rows"]}["online-teacher"]
    assert (
        nt["n_seeds"] == 0 and nt["top1_mean"] is None and "the teacher runs in every student step" in nt["not_trained"]
    )
    assert nt["teacher_bytes"] == on["teacher_bytes"] and nt["file_bytes"] == on["file_bytes"]
    assert nt["source_ms_measured_in"] == "check" and nt["source_ms_per_step"] > 0 and nt["source_gflops_per_step"] > 0
    assert any("online-teacher" in s and "not trained:" in s for s in lines3)
    assert "students not trained: the teacher runs" in (tmp_path / "b" / "results.md").read_text()
    assert {r["setting"]: r for r in _csv(tmp_path / "b" / "results.csv")}["online-teacher"]["not_trained"]
    from lplabel.experiment.harness.report import plot

    assert plot(res3, tmp_path / "p.png")["not_trained"] == ["online-teacher"]  # its bytes drawn, no point


def test_generator_grammar():
    s = parse_setting("generator-8k", 10)
    assert (s.family, s.budget, s.name, s.store_name) == ("generator", 8000, "generator-8000", "generator-8000")
    assert parse_setting(canonical_name(s), 10) == s and parse_setting("generator-1.5m", 10).budget == 1_500_000
    assert "budget" not in parse_setting("full", 10).store_json()  # other settings' cache keys unchanged
    with pytest.raises(UnknownSettingError, match="no pruning"):
        parse_setting("generator-8k-keep1in10", 10)
    with pytest.raises(UnknownSettingError, match="not in the grammar"):
        parse_setting("generator-lots", 10)


def test_generator_grammar_shape_and_passes():
    """``-w<W>r<R>`` names the network, ``-passes<P>`` the training length; both are in the store's
    name and cache key, and a plain ``generator-<budget>`` keeps its key (no shape, no passes)."""
    s = parse_setting("generator-440k-w96r24-passes10-T4", 1000)
    assert (s.budget, s.shape, s.shape_tuple, s.passes) == (440_000, "w96r24", (96, 24), 10)
    assert s.store_name == "generator-440000-w96r24-passes10" and parse_setting(canonical_name(s), 1000) == s
    assert parse_setting("generator-60k-w8rfull", 1000).shape_tuple == (8, None)
    plain = parse_setting("generator-8k", 10).store_json()
    assert "passes" not in plain and "shape" not in plain
    for bad, why in (
        ("generator-8k-passes0", "1 to 1000"),
        ("generator-8k-w0r4", "width and a head rank"),
        ("generator-8k-passes3-w8r4", "not in the grammar"),
        ("generator-8k-w8", "not in the grammar"),
    ):
        with pytest.raises(UnknownSettingError, match=why):
            parse_setting(bad, 10)


def _digits(out, settings: str, epochs: int, seeds: int) -> BenchConfig:
    """A small digits sweep on the CPU (a 2-epoch teacher, no progress bars)."""
    return BenchConfig(
        out=str(out), epochs=epochs, seeds=seeds, teacher_epochs=2, device="cpu", progress=False, settings=settings
    )


def test_generator_row(tmp_path):
    from lplabel import open_store

    cfg = _digits(tmp_path / "b", "full,generator-8k", epochs=4, seeds=2)
    res = run_bench(cfg, echo=lambda s: None)
    rows = {r["setting"]: r for r in res["rows"]}
    full, g = rows["full"], rows["generator-8000"]
    path = tmp_path / "b" / "stores" / "generator-8000.lpl"
    with open_store(path) as st:  # the row trained from a real store with the generator in its header
        assert "label_generator" in st.header["extensions"] and st.num_records == full["records"]
    assert g["file_bytes"] == path.stat().st_size  # the whole file counts
    assert 0 < g["generator_bytes"] <= 8000 and g["generator_parameters"] > 0
    assert 0.0 <= g["top1_agreement"] <= 1.0 and g["teacher_gflops_per_step"] > 0
    assert g["n_seeds"] == 2 and g["top1_mean"] is not None
    assert any(line.startswith("- `generator-8000`: a convnet-lite-v1") for line in res["label_sources_md"])
    assert g["generator_resolution"] == 8 and g["generator_train_seconds"] > 0  # 8-px digits: nothing pooled
    c = {r["setting"]: r for r in _csv(tmp_path / "b" / "results.csv")}["generator-8000"]
    assert int(c["generator_bytes"]) == g["generator_bytes"] and int(c["generator_parameters"]) > 0
    assert float(c["source_flops_per_view"]) > 0 and float(c["source_ms_per_step"]) > 0 and c["budget"] == "8000"
    # on the accuracy-vs-bytes plot with the stored rows
    from lplabel.experiment.harness.report import plot

    placed = plot(res, tmp_path / "p.png")["file_bytes"]
    assert "generator-8000" in [t for t, _ in placed["placed"]] + placed["unplaced"]


def test_generator_row_with_a_named_shape_and_passes(tmp_path):
    """``generator-8k-w4r2-passes2``: the row's generator is that network, trained twice the store's
    epochs; a shape above the budget is the budget's named error, before any work."""
    from lplabel.generator import GeneratorBudgetError

    cfg = _digits(tmp_path / "b", "full,generator-8k-w4r2-passes2", epochs=2, seeds=1)
    res = run_bench(cfg, echo=lambda s: None)
    g = {r["setting"]: r for r in res["rows"]}["generator-8000-w4r2-passes2"]
    meta = json.loads((tmp_path / "b" / "stores" / "generator-8000-w4r2-passes2.json").read_text())
    arch = meta["generator"]["architecture"]
    assert (arch["width"], arch["rank"]) == (4, 2) and g["n_seeds"] == 1
    assert meta["key"] and meta["generator"]["steps"] > 0
    big = dataclasses.replace(cfg, out=str(tmp_path / "c"), settings="full,generator-8k-w512r64")
    said = []
    with pytest.raises(GeneratorBudgetError, match="'generator-8000-w512r64'.*above the budget"):
        run_bench(big, echo=said.append)
    assert not any("[2/7]" in line for line in said)  # refused once the data is loaded, before the teacher
