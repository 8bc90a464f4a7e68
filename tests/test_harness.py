"""The accuracy harness without training: setting names, argument checks, RDED selection, reports."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from lplabel.cli import main
from lplabel.errors import LplabelError
from lplabel.experiment.harness import (
    BenchConfig,
    BenchError,
    UnknownSettingError,
    default_setting_names,
    evaluate_targets,
    load_distilled,
    parse_setting,
    parse_settings,
    rded_select,
    resolve_config,
    save_distilled,
)
from lplabel.experiment.harness.report import add_reference_deltas, format_table, targets_text, write_report
from lplabel.experiment.harness.settings import canonical_name
from lplabel.images import ImageSet


# ------------------------------------------------------------------------------------ settings
@pytest.mark.parametrize(
    "name, fields",
    [
        ("full", dict(family="reference", keep=1.0, k=None)),
        ("lpld-10x", dict(family="lpld", keep=0.1, reuse="lpld", k=None, values="fp16")),
        ("lpld-40x", dict(family="lpld", keep=0.025, reuse="lpld")),
        ("lpqld-k2", dict(family="lpqld", keep=0.1, reuse="lpqld", k=2, temperature="dkr", mode="renorm")),
        ("lpqld-k5-40x-T4", dict(family="lpqld", keep=0.025, k=5, temperature=4.0)),
        (
            "lpl-k2-bf16-tail-100x",
            dict(
                family="lplabel",
                keep=0.01,
                k=2,
                values="bf16",
                tail="logsumexp",
                index_coding="index-delta",
                zstd_level=19,
                temperature=None,
            ),
        ),
        ("lpl-k3-int4-min-40x-dkr", dict(k=3, values="int4", tail="min", temperature="dkr")),
        ("LPL-Dense-BF16", dict(family="lplabel", k=None, values="bf16", keep=1.0)),
        ("lpld-keep0.05", dict(keep=0.05)),
        ("lpl-k2-bf16-tail-60x", dict(metric="random")),
        ("lpl-k2-bf16-tail-60x-entropy", dict(keep=1 / 60, metric="entropy")),
        ("lpld-40x-T4-margin", dict(keep=0.025, metric="margin", temperature=4.0)),
        ("lpld-keep1in40", dict(family="lpld", keep=0.025, reuse="lpld")),
        ("lpl-k2-bf16-tail-keep1in70-entropy", dict(keep=1 / 70, metric="entropy")),
    ],
)
def test_setting_grammar(name, fields):
    s = parse_setting(name, 10)
    for k, v in fields.items():
        assert getattr(s, k) == v, (k, getattr(s, k))
    # the canonical name parses back to the same setting
    assert parse_setting(canonical_name(s), 10) == s


@pytest.mark.parametrize(
    "name, why",
    [
        ("bogus", "not in the grammar"),
        ("lpld", "say how much"),
        ("lpl-k2-int3", "value type"),
        ("lpl-k12-bf16", "k < number of classes"),
        ("lpqld-k10", "k < number of classes"),
        ("lpl-k2-int4-tail", "cannot be encoded"),
        ("lpld-0.5x", "X >= 1"),
        ("lpl-dense-fp16-tail", "needs top-k"),
        ("full-10x", "keeps every step"),
        ("lpl-k2-bf16-entropy", "pruned setting"),
        ("lpld-10x-entropy-margin", "not in the grammar"),
        ("lpld-keep1in0.5", "X >= 1"),
    ],
)
def test_bad_setting_names(name, why):
    with pytest.raises(UnknownSettingError, match=why):
        parse_setting(name, 10)


@pytest.mark.parametrize(
    "old, new",
    [
        ("lpld-40x", "lpld-keep1in40"),
        ("lpqld-k2", "lpqld-k2-keep1in10"),
        ("lpqld-k5-40x-T4", "lpqld-k5-keep1in40-T4"),
        ("lpl-k2-bf16-tail-70x", "lpl-k2-bf16-tail-keep1in70"),
        ("lpld-keep0.05", "lpld-keep1in20"),
        ("lpl-k1-none-40x-dkr", "lpl-k1-none-keep1in40-dkr"),
        ("full", "full"),
        ("lpl-dense-bf16", "lpl-dense-bf16"),
    ],
)
def test_names_say_pruning_not_size(old, new):
    """Item 12 of issue 19: '-40x' read as the size ratio; names now say keep1in40 (pruning), and
    the old spelling still parses to the same setting (reruns of old commands stay equivalent)."""
    assert parse_setting(old, 10).name == new
    assert parse_setting(old, 10) == parse_setting(new, 10)
    assert "keep1in" in parse_setting(new, 10).name or parse_setting(new, 10).keep == 1.0


def test_default_sweep_names_never_end_in_x():
    for c in (10, 1000):
        for n in default_setting_names(c):
            assert not re.search(r"\d+x(-|$)", n), n
            assert parse_setting(n, c).name == n  # the defaults are written canonically


def test_default_sweeps_parse_and_start_with_full():
    for c in (10, 200, 1000):
        s = parse_settings(default_setting_names(c), c)
        assert s[0].name == "full" and len({x.name for x in s}) == len(s)
        assert {x.family for x in s} == {"reference", "lpld", "lpqld", "lplabel"}
        assert all(x.k is None or x.k < c for x in s)
    ks = [x.k for x in parse_settings(default_setting_names(1000), 1000) if x.family == "lpqld" and x.keep == 0.1]
    assert ks == [10, 50, 100]
    assert parse_settings("lpld-10x", 10)[0].name == "full"  # the reference is always added


def test_lplabel_chains_use_one_byte_indices_for_small_c():
    chain = parse_setting("lpl-k2-bf16", 10).label_codecs(10)
    assert chain[0].to_json()["configuration"]["index_type"] == "uint8"
    chain = parse_setting("lpqld-k2", 10).label_codecs(10)
    assert chain[0].to_json()["configuration"]["index_type"] == "uint16"


# ------------------------------------------------------------------------- checks before work
def test_resolve_config_defaults():
    r = resolve_config(BenchConfig(device="cpu"))
    assert r.dataset == "digits" and r.ipc == 10 and r.seeds == [0, 1, 2] and r.epochs == 300
    assert r.settings[0].name == "full" and r.device == "cpu"
    q = resolve_config(BenchConfig(quick=True, device="auto"))
    assert q.epochs < r.epochs and len(q.seeds) == 2


@pytest.mark.parametrize(
    "kw, msg",
    [
        (dict(dataset="mnist"), "unknown dataset"),
        (dict(ipc=500), "smallest digits class"),
        (dict(ipc=0), ">= 1"),
        (dict(selection="herding"), "unknown selection"),
        (dict(settings="lpl-k2-nope"), "unknown setting"),
        (dict(seeds=0), "--seeds"),
        (dict(device="tpu"), "unknown device"),
    ],
)
def test_bad_arguments_fail_before_work(kw, msg, tmp_path):
    out = tmp_path / "o"
    with pytest.raises(LplabelError, match=msg):
        resolve_config(BenchConfig(out=str(out), **kw))
    assert not out.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_gpu():
    with pytest.raises(BenchError, match="no CUDA device"):
        resolve_config(BenchConfig(device="cuda"))
    assert resolve_config(BenchConfig(device="auto")).device == "cpu"


@pytest.mark.parametrize(
    "args, msg",
    [
        (["--dataset", "imagenet"], "unknown dataset"),
        (["--ipc", "1000"], "--ipc 1000"),
        (["--settings", "full,lpl-k99-bf16"], "k < number of classes"),
        (["--settings", "nonsense"], "unknown setting"),
    ]
    + ([] if torch.cuda.is_available() else [(["--device", "cuda"], "no CUDA device")]),
)
def test_cli_errors_are_one_line(args, msg, tmp_path):
    out = tmp_path / "o"
    r = CliRunner().invoke(main, ["bench", "accuracy", "--out", str(out)] + args)
    assert r.exit_code == 2, r.output
    assert r.output.startswith("error: ") and r.output.count("\n") == 1 and msg in r.output
    assert not out.exists()


def test_missing_data_is_refused(tmp_path):
    with pytest.raises(BenchError, match="data file not found"):
        resolve_config(BenchConfig(dataset="cifar10", data_root=str(tmp_path)))


# -------------------------------------------------------------------------------------- RDED
class _BrightTeacher(torch.nn.Module):
    """Class 0 likes bright patches, class 1 dark ones (logits from the mean pixel value)."""

    def forward(self, x):
        m = x.mean(dim=(1, 2, 3)) / 255.0
        return torch.stack([10 * m, 10 * (1 - m)], dim=1)


def _two_class_set():
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (12, 8, 8, 1), dtype=np.uint8)
    # image i has a bright top-left quadrant of intensity growing with i
    for i in range(12):
        imgs[i, :4, :4] = 20 * i + 10
    classes = np.array([0, 1] * 6)
    return ImageSet(images=imgs, classes=classes, keys=[f"k{i}" for i in range(12)], class_names=["a", "b"])


def test_rded_selects_by_teacher_score_and_stitches():
    train = _two_class_set()
    out = rded_select(train, _BrightTeacher(), 1, factor=2, crops_per_image=4, crop_scale=(0.2, 0.3), seed=3)
    assert out.images.shape == (2, 8, 8, 1) and out.images.dtype == np.uint8
    assert list(out.classes) == [0, 1] and out.keys == ["rded/0/0", "rded/1/0"]
    src = out.meta["patch_sources"]
    assert src.shape == (8, 6)
    # four distinct source images per class (one patch per image first), in score order
    for c in (0, 1):
        rows = src[4 * c : 4 * c + 4]
        assert len(set(rows[:, 0].astype(int))) == 4
        assert all(train.classes[int(i)] == c for i in rows[:, 0])
        assert np.all(np.diff(rows[:, 5]) <= 1e-9)
    # class 0 (bright) patches are brighter on average than class 1's
    assert out.images[0].mean() > out.images[1].mean()
    again = rded_select(train, _BrightTeacher(), 1, factor=2, crops_per_image=4, crop_scale=(0.2, 0.3), seed=3)
    assert np.array_equal(again.images, out.images)


def test_rded_falls_back_to_more_patches_per_image():
    train = _two_class_set()  # 6 images per class, 4 crops each; ipc 2 x 4 patches = 8 > 6 images
    out = rded_select(train, _BrightTeacher(), 2, factor=2, crops_per_image=4, seed=0)
    assert out.images.shape == (4, 8, 8, 1)
    with pytest.raises(BenchError, match="fewer than"):
        rded_select(train, _BrightTeacher(), 7, factor=2, crops_per_image=4)


def test_rded_factor_one_keeps_whole_crops():
    train = _two_class_set()
    out = rded_select(train, _BrightTeacher(), 3, factor=1, crops_per_image=2, seed=0)
    assert out.images.shape == (6, 8, 8, 1)


def test_distilled_round_trip(tmp_path):
    train = _two_class_set()
    out = rded_select(train, _BrightTeacher(), 1, factor=2, crops_per_image=4, seed=1)
    p = save_distilled(out, tmp_path / "d.npz")
    back = load_distilled(p)
    assert np.array_equal(back.images, out.images) and back.keys == out.keys
    assert back.fingerprint == out.fingerprint and back.meta["distill"]["method"] == "rded"
    assert np.allclose(back.meta["patch_sources"], out.meta["patch_sources"])


# ------------------------------------------------------------------------------------ reports
def _row(name, family, file_bytes, accs, ratio_base=1_000_000, fixed=1000):
    a = np.asarray(accs, float)
    return {
        "setting": name,
        "family": family,
        "description": name,
        "keep": 1.0,
        "k": None,
        "values": "fp16",
        "tail": "none",
        "reuse": "epochs",
        "temperature": "4",
        "records": 10,
        "steps": 1,
        "file_bytes": file_bytes,
        "payload_bytes": file_bytes - fixed,
        "label_bytes": file_bytes // 2,
        "config_bytes": 10,
        "fixed_bytes": fixed,
        "index_bytes": 0,
        "bytes_per_record": 1.0,
        "ratio": ratio_base / file_bytes,
        "payload_ratio": ratio_base / (file_bytes - fixed),
        "label_ratio": 1.0,
        "top1_agreement": None,
        "kl_t1": None,
        "top1_mean": a.mean(),
        "top1_std": a.std(ddof=1),
        "top1_min": a.min(),
        "top1_max": a.max(),
        "n_seeds": len(a),
        "top1_per_seed": list(a),
        "seconds_per_student": 1.0,
    }


def _results(rows):
    add_reference_deltas(rows)
    return {
        "rows": rows,
        "targets": evaluate_targets(rows),
        "machine": {
            "cpu": "x",
            "cpu_count": 2,
            "device": "cpu",
            "platform": "p",
            "python": "3",
            "torch": "2",
            "lplabel": "0",
        },
        "config": {
            "seed": 0,
            "resolved": {
                "dataset": "digits",
                "ipc": 10,
                "epochs": 3,
                "seeds": [0, 1, 2],
                "num_classes": 10,
                "out": "out/bench-digits",
            },
        },
        "facts": {
            "teacher": {"description": "t", "test_top1": 0.9},
            "distilled": {"selection": "random"},
            "stores": {"steps_per_chunk": 1048},
            "relabel": {"epochs": 3, "batch_size": 5, "crop_scale": [0.25, 1], "mix": "cutmix"},
            "data": {"test_images": 5},
        },
        "recipe": {"model": "convnet", "model_kwargs": {}, "lr": 1e-3, "weight_decay": 0.01},
        "baseline": {"records": 10, "dense_fp16_label_bytes": 1_000_000},
        "created": "now",
        "wall_seconds": 1.0,
        "timings_s": {"students": 1.0},
        "command": "lplabel bench accuracy",
    }


def test_targets_and_equal_bytes():
    rows = [
        _row("full", "reference", 1_100_000, [90, 91, 92]),
        _row("lpld-10x", "lpld", 100_000, [91, 91, 91]),
        _row("lpld-100x", "lpld", 8_700, [88, 88, 88]),
        _row("lpqld-k2-10x", "lpqld", 8_500, [89, 89.5, 90]),
        _row("lpl-a", "lplabel", 8_000, [90.5, 91, 91.5]),  # 125x, within spread, beats both
        _row("lpl-b", "lplabel", 1_900, [88.8, 89.3, 89.6]),  # 526x, within 2 points (not spread)
        _row("lpl-c", "lplabel", 9_500, [89.0, 89.0, 89.0]),
    ]  # loses to lpqld-k2-10x (smaller)
    res = _results(rows)
    t = res["targets"]
    assert t["file"]["x100_within_spread"]["setting"] == "lpl-a"
    assert t["file"]["x500_within_2pt"]["setting"] == "lpl-b"
    eq = {e["setting"]: e for e in t["equal_bytes"]["file"]}
    a = eq["lpl-a"]
    assert a["beats_both"] and a["lpld"]["setting"] == "lpld-100x" and a["lpqld"]["setting"] == "lpqld-k2-10x"
    assert a["lpld"]["verdict"] == "beats"  # lpld-100x: 8,700 B <= 1.1 x 8,000
    b = eq["lpl-b"]
    assert b["lpld"]["setting"] is None and b["lpqld"]["setting"] is None and not b["beats_both"]
    assert b["lpld"]["verdict"] == "none this small"
    c = eq["lpl-c"]
    assert c["lpqld"]["verdict"] == "loses" and not c["beats_both"]
    assert "lpl-a" in format_table(res) and format_table(res, markdown=True).startswith("| setting")
    # the Markdown states both bases per target, with the byte budget, the bar and the nearest misses
    text = "\n".join(targets_text(res))
    assert "| >= 100x smaller, within the seed spread of full labels (<= 10,000 B) | >= 90.00 % |" in text
    assert "**met** by `lpl-a`: 8,000 B = 125.0x, 91.00 %" in text
    pay = t["payload"]["x500_within_2pt"]
    assert pay["met"] and pay["setting"] == "lpl-b" and pay["bytes"] == 900
    miss = evaluate_targets([r for r in rows if r["setting"] != "lpl-b"])["file"]["x500_within_2pt"]
    assert not miss["met"] and miss["largest_accurate"]["setting"] == "lpl-a"
    assert miss["most_accurate_small"] is None


def test_write_report_files(tmp_path):
    rows = [
        _row("full", "reference", 1_100_000, [90, 91, 92]),
        _row("lpld-keep1in40", "lpld", 26_000, [88, 88, 89]),
        _row("lpl-k2-bf16-tail-keep1in70", "lplabel", 8_000, [90.5, 91, 91.5]),
    ]
    paths = write_report(_results(rows), tmp_path)
    names = {p.name for p in paths}
    assert {"results.json", "results.csv", "results.md"} <= names
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["rows"][2]["setting"] == "lpl-k2-bf16-tail-keep1in70"
    assert saved["recommendation"]["setting"] == "lpl-k2-bf16-tail-keep1in70"
    csv_text = (tmp_path / "results.csv").read_text().splitlines()
    assert csv_text[0].startswith("setting,family") and len(csv_text) == 4
    md = (tmp_path / "results.md").read_text()
    assert "## Targets" in md and "lplabel bench accuracy" in md
    pytest.importorskip("matplotlib")
    assert (tmp_path / "accuracy_vs_bytes.png").stat().st_size > 10_000


def _long_results():
    """A 20-row digits-like sweep with the real default names (widest names included)."""
    names = default_setting_names(10)
    rows = []
    for i, n in enumerate(names):
        fam = parse_setting(n, 10).family
        rows.append(
            _row(
                n,
                fam,
                1_100_000 if fam == "reference" else 40_000 - 1_500 * i,
                [90, 91, 92] if fam == "reference" else [89 + (i % 3), 90, 90.5 + (i % 2)],
            )
        )
        rows[-1]["temperature"] = "step 20->2" if fam == "lpqld" else "2"
        rows[-1]["description"] = parse_setting(n, 10).describe()
    return _results(rows)


def test_terminal_table_is_narrow_and_files_keep_the_wide_one(tmp_path):
    """Item 12: the table printed at the end of a sweep fits 100 columns; results.md holds the
    wide table (labels in words, payload ratio, top-1 agreement); 'x smaller' and keep1in<X>
    and the DKR temperature schedule are explained."""
    from lplabel.experiment.harness.report import NARROW_WIDTH, terminal_summary

    res = _long_results()
    text = terminal_summary(res)
    table = format_table(res, narrow=True).splitlines()
    assert len(table) == 1 + len(res["rows"])
    prose = [line for line in text.splitlines() if not line.startswith("    lplabel ")]
    assert max(map(len, prose)) <= NARROW_WIDTH, max(prose, key=len)
    wide = format_table(res)
    assert max(map(len, wide.splitlines())) > NARROW_WIDTH  # the files' table keeps every column
    assert "x smaller (payload)" in wide and "top-1 agree" in wide
    flat = " ".join(text.split())  # the prose is wrapped
    assert "than dense fp16 of the nominal records" in flat and "keep1in<X>: a random 1/X" in flat
    assert "DKR" in flat and "max(2, 20 * 0.7^(e // s))" in flat
    assert "Recommendation:" in text
    write_report(res, tmp_path)
    md = (tmp_path / "results.md").read_text()
    assert "| setting | labels | T |" in md and "Recommendation:" in md and "```bash" in md


def test_recommendation_is_the_smallest_row_within_the_spread():
    rows = [
        _row("full", "reference", 1_100_000, [90, 91, 92]),
        _row("lpld-keep1in10", "lpld", 100_000, [91, 91, 91]),
        _row("lpl-k2-bf16-tail-keep1in70", "lplabel", 8_000, [90.5, 91, 91.5]),  # within spread
        _row("lpl-k1-none-keep1in40", "lplabel", 4_000, [89.5, 89.5, 89.5]),
    ]  # within 2 points only
    from lplabel.experiment.harness.report import recommend

    rec = recommend(_results(rows))
    assert rec["setting"] == "lpl-k2-bf16-tail-keep1in70" and "seed spread" in rec["why"]
    prune, encode, compare = rec["commands"]
    assert prune.startswith("lplabel --no-header-copy prune out/bench-digits/stores/source.lpl")
    assert "--keep 1/70 --seed 0" in prune
    assert "--reuse lpqld" in prune
    assert encode.startswith("lplabel --no-header-copy encode lpl-k2-bf16-tail-keep1in70.pruned.lpl")
    assert "--allow-lossy" in encode
    assert compare.startswith("lplabel compare")
    # nothing within the spread: the smallest within 2 points
    rec = recommend(_results([rows[0], rows[3]]))
    assert rec["setting"] == "lpl-k1-none-keep1in40" and "2 points" in rec["why"]
    assert "--keep 1/40" in rec["commands"][0]
    # nothing good enough: no recommendation, and the text says to use full
    assert recommend(_results([rows[0], _row("lpld-keep1in10", "lpld", 100_000, [80, 80, 80])])) is None


def test_plot_labels_one_scheme_no_overlaps_no_guides_where_unreachable(tmp_path, monkeypatch):
    """Item 12: the plot's point labels use one scheme (family prefix dropped, keep1in<X> as
    1/X), never overlap, and the whole-file panel draws no guide line below the fixed cost."""
    pytest.importorskip("matplotlib")
    from lplabel.experiment.harness.report import plot, point_label

    assert point_label({"setting": "lpl-k2-bf16-tail-keep1in70", "family": "lplabel"}) == "k2-bf16-tail 1/70"
    assert point_label({"setting": "lpld-keep1in40", "family": "lpld"}) == "1/40"
    assert point_label({"setting": "lpqld-k2-keep1in10", "family": "lpqld"}) == "k2 1/10"
    assert point_label({"setting": "full", "family": "reference"}) == "full"
    res = _long_results()
    for r in res["rows"]:  # a crowded cluster, as on digits: many rows within a few KB and a point
        if r["family"] != "reference":
            r["file_bytes"] = 4_000 + 97 * (hash(r["setting"]) % 50)
            r["payload_bytes"] = r["file_bytes"] - r["fixed_bytes"]
    res["baseline"]["dense_fp16_label_bytes"] = 1_000_000  # 100x = 10,000 B, 500x = 2,000 B
    for r in res["rows"]:
        r["fixed_bytes"] = 3_000  # 500x (2,000 B) is below the fixed cost: unreachable as a whole file
    out = plot(res, tmp_path / "p.png")
    for panel in ("file_bytes", "payload_bytes"):
        placed, unplaced = out[panel]["placed"], out[panel]["unplaced"]
        assert len(placed) + len(unplaced) == len(res["rows"])
        boxes = [b for _, b in placed]
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                a, b = boxes[i], boxes[j]
                assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1], (placed[i][0], placed[j][0])
    assert (tmp_path / "p.png").stat().st_size > 10_000
    # the guide lines: 500x only on the payload panel (as a whole file it is below the fixed cost)
    from lplabel.experiment.harness import report as rp

    seen = {}
    orig = rp._place_labels

    def spy(fig, ax, items, **kw):  # the axes' guide texts, before the point labels go in
        seen[ax.get_xlabel()] = [t.get_text() for t in ax.texts]
        return orig(fig, ax, items, **kw)

    monkeypatch.setattr(rp, "_place_labels", spy)
    plot(res, tmp_path / "q.png")
    whole = next(v for k, v in seen.items() if "whole file" in k)
    payload = next(v for k, v in seen.items() if "payload" in k)
    assert "500x smaller" not in whole and "100x smaller" in whole
    assert "500x smaller" in payload


def test_machine_description_has_one_owner():
    """The harness and the benchmarks describe the machine through lplabel.testing (issue 14)."""
    import os

    from lplabel.experiment.harness.sweep import machine_info
    from lplabel.testing import cpu_name, describe_machine

    m = machine_info("cpu")
    assert m["cpu"] == cpu_name() and m["cpu_count"] == os.cpu_count() and m["device"] == "cpu"
    for key in ("platform", "python", "torch", "torch_threads", "lplabel", "numpy", "zstd"):
        assert key in m, key
    line = describe_machine(m)
    assert line.startswith(f"{m['cpu']}, {m['cpu_count']} logical CPUs") and f"torch {m['torch']}" in line
    assert ("no GPU" in line) == ("gpu" not in m)


def test_restricted_kl_renormalises_over_the_evaluated_classes_and_skips_empty_rows():
    """label_classes 'evaluated' (the cpu preset): the label restricted to the evaluated classes
    and renormalised is, for dense labels, the softmax over those classes' logits; a row with no
    mass there (top-k holding none of them) is left out, the batch mean still over every row."""
    import torch

    from lplabel.experiment.harness.student import restricted_kl
    from lplabel.torch import kl_div_loss

    g = torch.Generator().manual_seed(0)
    z_t = torch.randn(4, 12, generator=g)
    z_s = torch.randn(4, 12, generator=g)
    cls = torch.tensor([1, 5, 7])
    T = 2.0
    loss, n_out = restricted_kl(z_s, torch.softmax(z_t / T, 1), cls, T)
    want = kl_div_loss(z_s[:, cls], torch.softmax(z_t[:, cls] / T, 1), T)
    assert n_out == 0 and torch.allclose(loss, want, atol=1e-6)
    p = torch.softmax(z_t / T, 1)
    p[2, cls] = 0.0  # a top-k label holding none of the evaluated classes
    loss, n_out = restricted_kl(z_s, p, cls, T)
    keep = torch.tensor([0, 1, 3])
    part = kl_div_loss(z_s[keep][:, cls], p[keep][:, cls] / p[keep][:, cls].sum(1, keepdim=True), T)
    assert n_out == 1 and torch.allclose(loss, part * 3 / 4, atol=1e-6)
