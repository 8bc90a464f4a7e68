"""ONNX teachers: ``lplabel export-teacher`` and ``relabel --teacher model.onnx`` against PyTorch.

A real (small) teacher trained on scikit-learn's digits is exported with its normalisation, then
relabels the same views as the PyTorch teacher: the stores must agree (top-1 100 %, logits to
float32 rounding) and name the same weights and normalisation. Skipped without onnxruntime/onnx.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")
pytest.importorskip("sklearn")  # the digits data set

from lplabel import open_store  # noqa: E402
from lplabel.cli import main  # noqa: E402
from lplabel.teachers.onnx_export import export_teacher
from lplabel.teachers.onnx import META_KEY, OnnxTeacher  # noqa: E402
from lplabel.teachers import save_teacher, train_teacher  # noqa: E402

from relabel_helpers import one_torch_thread  # noqa: F401,E402  (autouse fixture)
from relabel_helpers import digits_small  # noqa: E402


def run(args):
    r = CliRunner().invoke(main, [str(a) for a in args])
    return r.exit_code, r.output


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A convnet trained on real digits, saved as spec + checkpoint and exported to ONNX."""
    d = tmp_path_factory.mktemp("onnx")
    iset = digits_small(per_class=20)
    t = train_teacher(iset, "convnet", epochs=4, batch_size=32, model_kwargs={"width": 8})
    ck = d / "teacher.pt"
    torch.save(t.state_dict(), ck)
    onnx_path = d / "teacher.onnx"
    facts = export_teacher(
        t.factory_spec, onnx_path, checkpoint=ck, channels=1, input_size=8, check_images=iset, check_count=32
    )
    return {"dir": d, "spec": t.factory_spec, "ck": ck, "onnx": onnx_path, "facts": facts, "iset": iset, "module": t}


def test_export_checks_against_pytorch_and_records_the_source(trained):
    f = trained["facts"]
    assert f["images"] == 32 and f["num_outputs"] == 10
    assert f["max_abs_diff"] <= 1e-3 and f["top1_agreement"] == 1.0
    o = OnnxTeacher(trained["onnx"])
    from lplabel.teachers.models import input_normalization
    from lplabel.teachers import teacher_checksum

    assert o.record["source"] == f"{trained['spec']} @ teacher.pt"
    assert o.checksum == teacher_checksum(trained["module"])
    norm = input_normalization(trained["module"])
    assert isinstance(norm, dict) and o.recorded_normalization == norm  # the digits statistics, in the graph
    assert o.num_outputs == 10 and o.input_shape[0] == "batch"  # dynamic batch
    x = torch.randint(0, 256, (5, 1, 8, 8)).float()
    with torch.inference_mode():
        assert (o(x) - trained["module"](x)).abs().max() < 1e-3  # 0..255 pixels in, like the PyTorch teacher
    assert [p.name for p in trained["dir"].iterdir() if p.name.endswith(".tmp")] == []


def test_relabel_with_onnx_matches_the_pytorch_teacher(tmp_path, trained):
    common = ["--ipc", "3", "--epochs", "2", "-b", "10", "--values", "fp32", "--no-progress"]
    code, text = run(
        ["relabel", "digits", "-o", tmp_path / "pt.lpl", "--teacher", trained["spec"], "--checkpoint", trained["ck"]]
        + common
    )
    assert code == 0, text
    code, text = run(["relabel", "digits", "-o", tmp_path / "ox.lpl", "--teacher", trained["onnx"]] + common)
    assert code == 0, text
    a, b = open_store(tmp_path / "pt.lpl"), open_store(tmp_path / "ox.lpl")
    ta, tb = a.header["teacher"], b.header["teacher"]
    assert ta["checksum"] == tb["checksum"] and ta["normalization"] == tb["normalization"]
    assert tb["precision"] == "float32"
    assert tb["description"].startswith("teacher.onnx (ONNX, file sha256:") and trained["spec"] in tb["description"]
    assert a.num_steps == b.num_steps > 0
    worst, agree, n = 0.0, 0, 0
    for i in range(a.num_steps):
        ra, rb = a.step_at(i), b.step_at(i)
        assert (ra.epoch, ra.step, ra.image.tolist()) == (rb.epoch, rb.step, rb.image.tolist())
        za, zb = np.asarray(ra.label["logits"]), np.asarray(rb.label["logits"])
        worst = max(worst, float(np.abs(za - zb).max()))
        agree += int((za.argmax(1) == zb.argmax(1)).sum())
        n += len(za)
    assert agree == n
    assert worst < 1e-3


def test_torchscript_teacher_exports_from_the_cli(tmp_path, trained):
    ts = save_teacher(trained["module"], tmp_path / "t.pt")
    code, text = run(
        [
            "export-teacher",
            ts,
            "-o",
            tmp_path / "t.onnx",
            "--images",
            "digits",
            "--channels",
            "1",
            "--input-size",
            "8",
            "--count",
            "8",
        ]
    )
    assert code == 0, text
    assert "max |dlogit|" in text and "top-1 agreement 100.0%" in text
    code, text = run(["export-teacher", ts, "-o", tmp_path / "t.onnx", "--images", "digits", "--channels", "1"])
    assert code == 2 and "output exists" in text


def test_bad_onnx_teachers_are_named_errors_before_any_work(tmp_path, trained):
    common = ["--ipc", "2", "--epochs", "1", "-b", "10", "--no-progress"]
    out = tmp_path / "a.lpl"
    # output width is not the number of classes: a 10-class teacher on a 3-class folder
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in ("a", "b", "c"):
        (tmp_path / "imgs" / c).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(tmp_path / "imgs" / c / f"{i}.png")
    code, text = run(["relabel", tmp_path / "imgs", "-o", out, "--teacher", trained["onnx"]] + common)
    assert code == 2 and "outputs 10 classes" in text and text.count("\n") == 1, text
    # a class map's source width: indices beyond the ONNX file's outputs
    np.save(tmp_path / "map.npy", np.array([0, 5, 12]))
    code, text = run(
        ["relabel", tmp_path / "imgs", "-o", out, "--teacher", trained["onnx"], "--class-map", tmp_path / "map.npy"]
        + common
    )
    assert code == 2 and "[0, 10)" in text, text
    # unreadable and missing files
    (tmp_path / "junk.onnx").write_bytes(b"this is not a protobuf")
    code, text = run(["relabel", "digits", "-o", out, "--teacher", tmp_path / "junk.onnx"] + common)
    assert code == 2 and "cannot read ONNX teacher" in text and "junk.onnx" in text and text.count("\n") == 1
    code, text = run(["relabel", "digits", "-o", out, "--teacher", tmp_path / "none.onnx"] + common)
    assert code == 2 and "not found" in text and "none.onnx" in text
    # autocast would not reach onnxruntime; a second normalisation would be wrong
    code, text = run(["relabel", "digits", "-o", out, "--teacher", trained["onnx"], "--amp"] + common)
    assert code == 2 and "--amp" in text and "ONNX" in text, text
    code, text = run(["relabel", "digits", "-o", out, "--teacher", trained["onnx"], "--normalize", "unit"] + common)
    assert code == 2 and "normalisation inside" in text, text
    # a checkpoint for an ONNX file
    code, text = run(
        ["relabel", "digits", "-o", out, "--teacher", trained["onnx"], "--checkpoint", trained["ck"]] + common
    )
    assert code == 2 and "drop --checkpoint" in text
    assert not out.exists() and not Path(str(out) + ".partial").exists()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch's note on the TorchScript-based exporter
def test_foreign_onnx_file_is_hashed_and_can_be_normalised(tmp_path):
    """An .onnx file lplabel did not write: checksum of the file bytes, --normalize applies."""
    import onnx

    from relabel_helpers import TinyTeacher

    net = TinyTeacher(1, 10)
    p = tmp_path / "foreign.onnx"
    torch.onnx.export(
        net,
        (torch.zeros(1, 1, 8, 8),),
        p,
        input_names=["x"],
        output_names=["y"],
        dynamic_axes={"x": {0: "b"}, "y": {0: "b"}},
        opset_version=17,
        dynamo=False,
    )
    assert META_KEY not in {q.key for q in onnx.load(p).metadata_props}
    from lplabel.teachers.onnx import file_sha256
    from lplabel.teachers import load_teacher, teacher_checksum

    t = load_teacher(p)
    assert teacher_checksum(t) == "sha256-file:" + file_sha256(p)
    w = load_teacher(p, normalize="unit")
    x = torch.randint(0, 256, (3, 1, 8, 8)).float()
    with torch.inference_mode():
        assert (w(x) - net(x / 255.0)).abs().max() < 1e-4
    assert teacher_checksum(w) == teacher_checksum(t)


def test_missing_onnxruntime_is_named(tmp_path, trained, monkeypatch):
    import lplabel.deps as deps

    real = deps.available
    monkeypatch.setattr(deps, "available", lambda m: False if m == "onnxruntime" else real(m))
    code, text = run(["relabel", "digits", "--ipc", "2", "-o", tmp_path / "a.lpl", "--teacher", trained["onnx"]])
    assert code == 2 and "lplabel[onnx]" in text and text.count("\n") == 1, text
    code, text = run(["export-teacher", "efficientnet-lite0", "-o", tmp_path / "x.onnx"])
    assert code == 2 and "lplabel[onnx]" in text
    assert not (tmp_path / "a.lpl").exists() and not (tmp_path / "x.onnx").exists()


def test_header_json_is_plain(trained):
    rec = json.loads(json.dumps(OnnxTeacher(trained["onnx"]).record))
    assert rec["input"] == "float32 NCHW RGB 0..255" and rec["input_size"] == 8
