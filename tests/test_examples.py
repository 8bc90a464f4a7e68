"""examples/sre2l_train_FKD.py (SRe2L's train_FKD.py ported to lplabel) trains on CPU against an
imported store, as docs/porting.md describes: legacy SRe2L label files written the way SRe2L's
relabel writes them, a real ImageFolder of PNGs, `lplabel import --images --input-size`, a few
steps, an exact resume."""

import importlib.util
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from lplabel.cli import main as cli
from lplabel.interop import synth

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "sre2l_train_FKD.py"

pytest.importorskip("PIL")


def _example():
    spec = importlib.util.spec_from_file_location("sre2l_train_FKD", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def legacy(tmp_path_factory):
    """An SRe2L label directory (2 epochs x 2 batches of 8, CutMix, 4 classes) and its ImageFolder."""
    from PIL import Image

    tmp = tmp_path_factory.mktemp("sre2l")
    src = synth.write_batches(
        tmp / "FKD_cutmix_fp16",
        "sre2l",
        num_images=16,
        batch_size=8,
        epochs=2,
        num_classes=4,
        input_size=16,
        image_size=(20, 20),
        mix="cutmix",
    )
    rng = np.random.default_rng(0)
    folder = tmp / "syn_data"
    for i in range(16):
        d = folder / f"class_{i // 4}"
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(d / f"img_{i:02d}.png")
    return tmp, src, folder


def _import(src, out, *extra):
    res = CliRunner().invoke(cli, ["import", str(src), "-o", str(out), "--no-progress", *extra])
    assert res.exit_code == 0, res.output
    return out


def _argv(store, folder, out, *extra):
    return [
        "--fkd-path",
        str(store),
        "--train-dir",
        str(folder),
        "--model",
        "convnet",
        "-T",
        "20",
        "--epochs",
        "2",
        "-j",
        "0",
        "--device",
        "cpu",
        "--output-dir",
        str(out),
        "--batch-size",
        "8",
        "--gradient-accumulation-steps",
        "2",
        *extra,
    ]


def test_ported_train_fkd_runs_and_resumes(legacy, capsys):
    tmp, src, folder = legacy
    store = _import(src, tmp / "labels.lpl", "--images", str(folder), "--input-size", "16")
    ex = _example()
    torch.manual_seed(0)
    state = ex.main(_argv(store, folder, tmp / "run", "--max-steps", "3"))
    out = capsys.readouterr().out
    assert "views 16x16, T=20" in out and state["steps"] == 3
    lines = [ln for ln in out.splitlines() if ln.startswith("TRAIN")]
    assert [ln.split(":")[0] for ln in lines] == ["TRAIN epoch 0", "TRAIN epoch 1"]  # 2 steps, then 1
    losses = [float(ln.split("loss = ")[1].split(",")[0]) for ln in lines]
    assert all(math.isfinite(v) and v > 0 for v in losses)
    ckpt = torch.load(tmp / "run" / "checkpoint.pth.tar", weights_only=False)
    assert (ckpt["loader"]["epoch"], ckpt["loader"]["consumed"], ckpt["steps"]) == (1, 1, 3)
    # resume: the rest of epoch 1 (one step), nothing replayed
    state = ex.main(_argv(store, folder, tmp / "run", "--resume", str(tmp / "run" / "checkpoint.pth.tar")))
    out = capsys.readouterr().out
    assert state["steps"] == 4 and [ln.split(":")[0] for ln in out.splitlines() if ln.startswith("TRAIN")] == [
        "TRAIN epoch 1"
    ]
    ckpt = torch.load(tmp / "run" / "checkpoint.pth.tar", weights_only=False)
    assert (ckpt["loader"]["epoch"], ckpt["loader"]["consumed"], ckpt["epoch"]) == (1, 2, 2)


def test_ported_train_fkd_batches_are_normalised_replays(legacy):
    """What the script trains on: the stored views, normalised like SRe2L's transforms.Normalize."""
    from lplabel.datasets import load_image_folder
    from lplabel.torch import IMAGENET_MEAN, IMAGENET_STD, ReplayLoader

    tmp, src, folder = legacy
    store = _import(src, tmp / "labels2.lpl", "--images", str(folder), "--input-size", "16")
    ex = _example()
    args = ex.get_args(_argv(store, folder, tmp / "x"))
    loader, st = ex.build_loader(args, torch.device("cpu"))
    raw = ReplayLoader(store, load_image_folder(folder), normalize="0-255", temperature=20.0)
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    for a, b in zip(loader, raw):
        assert a.pixels == "normalized" and torch.equal(a.images, (b.images / 255 - mean) / std)
        assert a.temperature == 20.0 and torch.equal(a.probs, b.probs) and a.images.shape == (8, 3, 16, 16)


def test_port_pitfalls_give_one_line_errors(legacy):
    """The two ways the old guide failed: no --images at import, no --input-size anywhere."""
    tmp, src, folder = legacy
    bare = _import(src, tmp / "bare.lpl")
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("LPLABEL_DEBUG", None)
    r = subprocess.run(
        [sys.executable, str(SCRIPT), *_argv(bare, folder, tmp / "y"), "--input-size", "16"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    err = r.stderr.strip().splitlines()
    assert (
        r.returncode == 1 and len(err) == 1 and err[0].startswith("error: ") and "imported without --images" in err[0]
    )
    assert "--images DISTILLED_DIR" in err[0]
    nosize = _import(src, tmp / "nosize.lpl", "--images", str(folder))
    ex = _example()
    with pytest.raises(SystemExit, match="no view size.*--input-size"):
        ex.main(_argv(nosize, folder, tmp / "z"))
    with pytest.raises(SystemExit, match="batch size 8"):
        ex.main(_argv(nosize, folder, tmp / "z", "--input-size", "16", "--batch-size", "1024"))
    state = ex.main(_argv(nosize, folder, tmp / "z", "--input-size", "16", "--max-steps", "1"))
    assert state["steps"] == 1


def test_loader_names_the_import_flags(legacy):
    """Straight from the loader (no example script), the two import pitfalls name their fix."""
    from lplabel.datasets import load_image_folder
    from lplabel.errors import ImageSetMismatchError
    from lplabel.torch import ReplayLoader

    tmp, src, folder = legacy
    images = load_image_folder(folder)
    bare = _import(src, tmp / "bare2.lpl")
    with pytest.raises(ImageSetMismatchError, match="imported without --images.*--images DISTILLED_DIR"):
        ReplayLoader(bare, images, temperature=20.0, normalize="imagenet")
    nosize = _import(src, tmp / "nosize2.lpl", "--images", str(folder))
    with pytest.raises(ValueError, match="imported without --input-size.*--input-size N"):
        ReplayLoader(nosize, images, temperature=20.0, normalize="imagenet")
