"""``lplabel bench accuracy --preset``: the CPU preset's defaults and its named errors (no run)."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

pytest.importorskip("torch")
pytest.importorskip("matplotlib")

from lplabel.cli import main  # noqa: E402
from lplabel.datasets import DataRootError, data_root  # noqa: E402
from lplabel.harness import BenchConfig, BenchError, resolve_config  # noqa: E402


def _real_root():
    try:
        root = data_root(None, dataset="tiny-imagenet")
    except DataRootError:
        return None
    return root if (root / "tiny-imagenet-jpeg" / "train100.npz").is_file() else None


def test_unknown_preset_and_wrong_dataset_are_named(tmp_path):
    with pytest.raises(BenchError, match="unknown preset 'gpu-huge'.*choose one of cpu"):
        resolve_config(BenchConfig(dataset="tiny-imagenet", preset="gpu-huge", device="cpu", out=str(tmp_path / "o")))
    with pytest.raises(BenchError, match="preset 'cpu' is for --dataset tiny-imagenet, not 'digits'"):
        resolve_config(BenchConfig(dataset="digits", preset="cpu", device="cpu", out=str(tmp_path / "o")))
    r = CliRunner().invoke(main, ["bench", "accuracy", "--dataset", "tiny-imagenet", "--preset", "nope", "--out",
                                  str(tmp_path / "o")])
    assert r.exit_code == 2 and r.output.startswith("error: unknown preset") and r.output.count("\n") == 1
    assert not (tmp_path / "o").exists()


def test_data_root_without_tiny_imagenet_is_named_before_any_work(tmp_path):
    (tmp_path / "cifar10-jpeg").mkdir()
    r = CliRunner().invoke(main, ["bench", "accuracy", "--dataset", "tiny-imagenet", "--preset", "cpu",
                                  "--data-root", str(tmp_path), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "tiny-imagenet-jpeg" in r.output and "not found" in r.output, r.output
    assert r.output.count("\n") == 1 and not (tmp_path / "o").exists()


def test_cpu_preset_defaults_and_explicit_options_win(tmp_path):
    root = _real_root()
    if root is None:
        pytest.skip("the Tiny-ImageNet files are not here")
    r = resolve_config(BenchConfig(dataset="tiny-imagenet", preset="cpu", device="cpu", out=str(tmp_path / "o")))
    assert (r.ipc, r.epochs, r.seeds) == (10, 50, [0, 1])
    assert r.recipe.model == "convnet" and r.recipe.model_kwargs == {"width": 64, "depth": 3}
    assert r.num_classes == 1000
    e = resolve_config(BenchConfig(dataset="tiny-imagenet", preset="cpu", device="cpu", epochs=5, seeds=1,
                                   out=str(tmp_path / "o")))
    assert (e.ipc, e.epochs, e.seeds) == (10, 5, [0])
    assert not (tmp_path / "o").exists()
