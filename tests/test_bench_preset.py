"""``lplabel bench accuracy --preset cpu``: its defaults, its named errors before any work, and its whole
path end to end at a toy size (real data, the real Lite0 teacher exported to ONNX)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

pytest.importorskip("torch")
pytest.importorskip("matplotlib")

from lplabel.cli import main  # noqa: E402
from lplabel.datasets import DataRootError, data_root  # noqa: E402
from lplabel.experiment.harness import BenchConfig, BenchError, resolve_config  # noqa: E402


def _real_root():
    try:
        root = data_root(None, dataset="tiny-imagenet")
    except DataRootError:
        return None
    return root if (root / "tiny-imagenet-jpeg" / "train100.npz").is_file() else None


def _toy_cpu_preset(out, **kw) -> BenchConfig:
    """``--preset cpu`` on the real data and the real ONNX Lite0, shrunk to seconds by ``kw``;
    skips where the Tiny-ImageNet files or onnxruntime/onnx are missing."""
    if _real_root() is None:
        pytest.skip("the Tiny-ImageNet files are not here")
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    return BenchConfig(dataset="tiny-imagenet", preset="cpu", device="cpu", out=str(out), progress=False, **kw)


def test_unknown_preset_and_wrong_dataset_are_named(tmp_path):
    with pytest.raises(BenchError, match="unknown preset 'gpu-huge'.*choose one of cpu"):
        resolve_config(BenchConfig(dataset="tiny-imagenet", preset="gpu-huge", device="cpu", out=str(tmp_path / "o")))
    with pytest.raises(BenchError, match="preset 'cpu' is for --dataset tiny-imagenet, not 'digits'"):
        resolve_config(BenchConfig(dataset="digits", preset="cpu", device="cpu", out=str(tmp_path / "o")))
    r = CliRunner().invoke(
        main, ["bench", "accuracy", "--dataset", "tiny-imagenet", "--preset", "nope", "--out", str(tmp_path / "o")]
    )
    assert r.exit_code == 2 and r.output.startswith("error: unknown preset") and r.output.count("\n") == 1
    assert not (tmp_path / "o").exists()


def test_data_root_without_tiny_imagenet_is_named_before_any_work(tmp_path):
    (tmp_path / "cifar10-jpeg").mkdir()
    r = CliRunner().invoke(
        main,
        [
            "bench",
            "accuracy",
            "--dataset",
            "tiny-imagenet",
            "--preset",
            "cpu",
            "--data-root",
            str(tmp_path),
            "--out",
            str(tmp_path / "o"),
        ],
    )
    assert r.exit_code == 2 and "tiny-imagenet-jpeg" in r.output and "not found" in r.output, r.output
    assert r.output.count("\n") == 1 and not (tmp_path / "o").exists()


def test_cpu_preset_defaults_and_explicit_options_win(tmp_path):
    root = _real_root()
    if root is None:
        pytest.skip("the Tiny-ImageNet files are not here")
    r = resolve_config(BenchConfig(dataset="tiny-imagenet", preset="cpu", device="cpu", out=str(tmp_path / "o")))
    assert (r.ipc, r.epochs, r.seeds) == (10, 30, [0, 1])
    assert r.classes == list(range(0, 200, 2)) and r.relabel["size"] == 224 and r.recipe.image_size == 32
    assert r.teacher["kind"] == "onnx" and not r.relabel["amp"]
    assert r.recipe.model == "convnet" and r.recipe.model_kwargs == {"width": 64, "depth": 3}
    assert r.num_classes == 1000
    # students cycle the 30 stored epochs for 100 (the pilot's lever), views cropped 0.5-1
    assert r.recipe.epochs == 100 and r.relabel["crop_scale"] == [0.5, 1.0]
    e = resolve_config(
        BenchConfig(dataset="tiny-imagenet", preset="cpu", device="cpu", epochs=5, seeds=1, out=str(tmp_path / "o"))
    )
    assert (e.ipc, e.epochs, e.seeds) == (10, 5, [0])
    assert e.recipe.epochs is None  # an explicit --epochs shortens the students too
    s = resolve_config(
        BenchConfig(
            dataset="tiny-imagenet", preset="cpu", device="cpu", epochs=5, student_epochs=12, out=str(tmp_path / "o")
        )
    )
    assert (s.epochs, s.recipe.epochs) == (5, 12)
    assert not (tmp_path / "o").exists()


# ------------------------------------------------------------------- the ONNX teacher's errors
def _cli(args):
    r = CliRunner().invoke(main, ["bench", "accuracy", *[str(a) for a in args]])
    return r.exit_code, r.output


def test_onnxruntime_missing_is_named_before_any_work(tmp_path, monkeypatch):
    if _real_root() is None:
        pytest.skip("the Tiny-ImageNet files are not here")
    import lplabel.deps as deps

    real = deps.available
    monkeypatch.setattr(deps, "available", lambda m: False if m == "onnxruntime" else real(m))
    code, text = _cli(["--dataset", "tiny-imagenet", "--preset", "cpu", "--device", "cpu", "--out", tmp_path / "o"])
    assert code == 2 and text.startswith("error: ") and "onnxruntime" in text and "lplabel[onnx]" in text, text
    assert text.count("\n") == 1 and not (tmp_path / "o").exists()


def test_onnx_teacher_of_the_wrong_width_is_named_before_any_work(tmp_path):
    if _real_root() is None:
        pytest.skip("the Tiny-ImageNet files are not here")
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    import torch

    from lplabel.teachers.onnx_export import export_teacher
    from lplabel.teachers import train_teacher

    from relabel_helpers import digits_small

    iset = digits_small(per_class=5)
    t = train_teacher(iset, "convnet", epochs=1, batch_size=32, model_kwargs={"width": 8})
    ck = tmp_path / "t.pt"
    torch.save(t.state_dict(), ck)
    onnx_path = tmp_path / "ten.onnx"
    export_teacher(t.factory_spec, onnx_path, checkpoint=ck, channels=1, input_size=8, check_images=iset)
    code, text = _cli(
        [
            "--dataset",
            "tiny-imagenet",
            "--preset",
            "cpu",
            "--device",
            "cpu",
            "--teacher",
            onnx_path,
            "--out",
            tmp_path / "o",
        ]
    )
    assert code == 2 and "returns 10 logits" in text and "1000 classes" in text, text
    assert text.count("\n") == 1 and not (tmp_path / "o").exists()
    # --teacher is the preset's option: without it, a named error too
    code, text = _cli(
        ["--dataset", "tiny-imagenet", "--device", "cpu", "--teacher", onnx_path, "--out", tmp_path / "o"]
    )
    assert code == 2 and "--preset cpu" in text and not (tmp_path / "o").exists()
    code, text = _cli(
        [
            "--dataset",
            "tiny-imagenet",
            "--preset",
            "cpu",
            "--device",
            "cpu",
            "--teacher",
            tmp_path / "missing.onnx",
            "--out",
            tmp_path / "o",
        ]
    )
    assert code == 2 and "not found" in text and not (tmp_path / "o").exists()


def test_fixed_class_subset_is_even_and_stable():
    from lplabel.experiment.harness.sweep import fixed_class_subset

    assert fixed_class_subset(100, 200) == list(range(0, 200, 2))
    assert fixed_class_subset(4, 200) == [0, 50, 100, 150]
    with pytest.raises(BenchError, match="does not fit the 200 classes"):
        fixed_class_subset(300, 200)


# --------------------------------------------------------- the preset path end to end, toy size
def test_cpu_preset_runs_end_to_end_at_toy_size(tmp_path):
    """The preset's whole path on the real data and the real Lite0 teacher, at a toy size: the
    ONNX export into OUT (cached on a rerun), 224-px relabel, 32-px students, the LPQLD files and
    their lossless rANS re-coding with its label check, and the C = 1,000 targets."""
    pytest.importorskip("numba")
    from lplabel.experiment.harness import run_bench
    from lplabel.store import open_store

    out = tmp_path / "o"
    cfg = _toy_cpu_preset(
        out,
        ipc=2,
        epochs=2,
        seeds=2,
        classes=3,
        test_limit=4,
        settings="full,lpqld-k10-keep1in2-rans,lpl-k10-int8-tail-keep1in2,lpld-keep1in2",
    )
    said = []
    res = run_bench(cfg, echo=said.append)
    names = [r["setting"] for r in res["rows"]]
    assert names == [
        "full",
        "lpqld-k10-keep1in2",
        "lpqld-k10-keep1in2-rans",
        "lpl-k10-int8-tail-keep1in2",
        "lpld-keep1in2",
    ]  # the rans row's twin is added before it
    onnx = res["facts"]["onnx_teacher"]
    assert onnx["exported"] and onnx["num_outputs"] == 1000 and onnx["max_abs_diff"] <= 1e-3
    assert res["facts"]["data"]["class_subset"]["indices"] == [0, 67, 133]
    assert res["facts"]["data"]["test_images"] == 12 and res["facts"]["distilled"]["images"] == 6
    src = open_store(out / "stores" / "source.lpl")
    assert src.num_classes == 1000 and src.header["augmentation"]["output_size"] == 224
    src.close()
    by = {r["setting"]: r for r in res["rows"]}
    rans, twin = by["lpqld-k10-keep1in2-rans"], by["lpqld-k10-keep1in2"]
    assert rans["lossless_of"] == "lpqld-k10-keep1in2" and rans["labels_identical"]["identical"]
    assert rans["labels_identical"]["records"] == twin["records"]
    assert rans["top1_per_seed"] == twin["top1_per_seed"]  # the twin's students, not retrained
    assert twin["lpqld_du_bytes"] >= twin["lpqld_files_bytes"] > 0
    assert any((out / "legacy" / "lpqld-k10-keep1in2").glob("batch_*.tar"))
    runs = [json.loads(p.read_text()) for p in (out / "runs").glob("*/seed*.json")]
    assert runs and all(r["image_size"] == 32 for r in runs) and len(runs) == 2 * 4  # not the -rans row
    t = res["targets"]["c1000"]
    assert set(t) == {"lossless", "half_of_best_lpqld", "x100_within_2pt", "chance_top1"}
    assert t["chance_top1"] == pytest.approx(100 / 3)  # 3 evaluated classes
    assert t["lossless"]["rows"][0]["lpqld_du_bytes"] == twin["lpqld_du_bytes"]
    md = (out / "results.md").read_text()
    assert "Targets at C = 1,000" in md and (out / "accuracy_vs_bytes.png").stat().st_size > 0
    # a rerun reuses every stage: the export, the relabel, the stores and the students
    said.clear()
    again = run_bench(cfg, echo=said.append)
    text = "\n".join(said)
    assert "(cached export)" in text and text.count("(cached)") >= 3
    assert [r["top1_per_seed"] for r in again["rows"]] == [r["top1_per_seed"] for r in res["rows"]]


def test_cpu_preset_label_source_rows_at_toy_size(tmp_path):
    """The 1000-class rows of issue 16 on the real data and the real ONNX Lite0: a generator that
    pools the 224-px views to the students' 32 px (convnet-lite-v2), and an online-teacher row
    whose checkpoint is the .onnx file, its FLOPs counted from the graph, not trained (the
    preset's default) with the reason in the row."""
    from lplabel.experiment.harness import run_bench
    from lplabel.store import open_store

    out = tmp_path / "o"
    cfg = _toy_cpu_preset(
        out,
        ipc=1,
        epochs=2,
        seeds=1,
        classes=2,
        test_limit=2,
        settings="full,generator-60k,online-teacher",
    )
    said = []
    res = run_bench(cfg, echo=said.append)
    by = {r["setting"]: r for r in res["rows"]}
    g, on = by["generator-60000"], by["online-teacher"]
    with open_store(out / "stores" / "generator-60000.lpl") as st:
        arch = st.header["extensions"]["label_generator"]["architecture"]
        assert st.header["augmentation"]["output_size"] == 224
    assert arch["name"] == "convnet-lite-v2" and arch["input_size"] == 224 and arch["resolution"] == 32
    assert g["generator_resolution"] == 32 and g["generator_bytes"] <= 60_000 and g["n_seeds"] == 1
    onnx = out / "teacher" / "efficientnet-lite0-224.onnx"
    assert onnx.stat().st_size <= on["teacher_bytes"] < onnx.stat().st_size + 4096
    assert on["file_bytes"] == on["teacher_bytes"] + on["views_bytes"] and on["label_bytes"] == 0
    assert 0.6e9 < on["source_flops_per_view"] < 1.0e9  # EfficientNet-Lite0 at 224 px: ~0.4 G multiply-adds
    assert on["source_ms_per_step"] > 0 and on["source_ms_measured_in"] == "check"
    assert on["n_seeds"] == 0 and "the teacher runs in every student step" in on["not_trained"]
    assert on["max_abs_logit_delta"] < 0.01 and on["top1_agreement"] == 1.0  # the store's labels, to fp16
    assert not (out / "runs" / "online-teacher").exists()
    assert any("online-teacher" in s and "not trained" in s for s in said)


# ------------------------------------------------------------ the GPU preset and its device check
def test_gpu_preset_defaults(tmp_path):
    if _real_root() is None:
        pytest.skip("the Tiny-ImageNet files are not here")
    r = resolve_config(BenchConfig(dataset="tiny-imagenet", preset="gpu", device="cpu", out=str(tmp_path / "o")))
    assert (r.ipc, r.epochs, r.seeds, r.classes) == (10, 300, [0, 1], None)
    assert r.teacher == {"kind": "pretrained", "spec": "efficientnet-lite0", "input_size": 224}
    assert r.relabel["size"] == 224 and r.relabel["amp"] and r.recipe.image_size == 64
    assert r.recipe.model == "resnet18_small" and not r.recipe.amp  # bf16 autocast only on CUDA
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_device_check_script_runs_at_toy_size_on_the_cpu(tmp_path):
    """benchmarks/device_check.sh end to end (DEVICE_CHECK_TOY=1): the GPU preset's sweep, the
    relabeler against the pure forward, the loader paths -- every step, a toy size, the CPU."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    if _real_root() is None:
        pytest.skip("the Tiny-ImageNet files are not here")
    pytest.importorskip("efficientnet_lite_pytorch")
    pytest.importorskip("numba")
    repo = Path(__file__).resolve().parents[1]
    env = {
        **os.environ,
        "DEVICE_CHECK_TOY": "1",
        "PYTHON": sys.executable,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(repo) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }
    out = tmp_path / "dc"
    r = subprocess.run(
        ["bash", str(repo / "benchmarks" / "device_check.sh"), str(out)],
        env=env,
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=900,
    )
    logs = "\n".join(p.read_text()[-2000:] for p in out.glob("*.log")) if out.exists() else ""
    assert r.returncode == 0, r.stdout + r.stderr + logs
    res = json.loads((out / "gpu-ipc1" / "results.json").read_text())
    assert res["config"]["resolved"]["num_classes"] == 1000 and res["recipe"]["image_size"] == 64
    assert {x["setting"] for x in res["rows"]} >= {"full", "lpqld-k10-keep1in2-rans"}
    assert "views/s" in (out / "loader.md").read_text()
    assert "pure forward" in next(out.glob("relabel-*.md")).read_text()
    assert "gpu: none" in (out / "machine.txt").read_text() or "GPU" in (out / "machine.txt").read_text()


def test_report_only_reports_the_students_in_out_and_names_the_missing(tmp_path):
    """--report-only (an interrupted run): no student is trained; rows hold the seeds that exist."""
    from dataclasses import replace

    from lplabel.experiment.harness import run_bench

    cfg = _toy_cpu_preset(
        tmp_path / "o",
        ipc=1,
        epochs=1,
        seeds=1,
        classes=2,
        test_limit=2,
        settings="full,lpld-keep1in2",
    )
    first = run_bench(cfg, echo=lambda s: None)
    said = []
    res = run_bench(replace(cfg, seeds=2, report_only=True), echo=said.append)
    assert res["students_missing"] == ["full seed 1", "lpld-keep1in2 seed 1"]
    assert [r["n_seeds"] for r in res["rows"]] == [1, 1]
    assert [r["top1_per_seed"] for r in res["rows"]] == [r["top1_per_seed"] for r in first["rows"]]
    assert not (tmp_path / "o" / "runs" / "full" / "seed1.json").exists()
    md = (tmp_path / "o" / "results.md").read_text()
    assert "(1 seed)" in md and "Not trained (the report was written with --report-only): full seed 1" in md


def test_student_epochs_resolve_and_bad_values_are_named(tmp_path):
    pytest.importorskip("sklearn")
    base = dict(dataset="digits", device="cpu", out=str(tmp_path / "o"))
    assert resolve_config(BenchConfig(**base)).recipe.epochs is None  # the relabel epochs
    r = resolve_config(BenchConfig(**base, epochs=4, student_epochs=9))
    assert (r.epochs, r.recipe.epochs) == (4, 9)
    with pytest.raises(BenchError, match="--student-epochs must be >= 1"):
        resolve_config(BenchConfig(**base, student_epochs=0))
    r = CliRunner().invoke(
        main, ["bench", "accuracy", "--dataset", "digits", "--student-epochs", "0", "--out", str(tmp_path / "o")]
    )
    assert r.exit_code == 2 and "--student-epochs" in r.output and not (tmp_path / "o").exists()
