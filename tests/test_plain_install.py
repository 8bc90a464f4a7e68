"""A plain install (no extras, maybe no torch): named one-line errors instead of tracebacks, and a
data root that never points into site-packages. The real plain install is exercised by
``.ci/plain_smoke.py`` in CI; these tests pin the rules in-process and in subprocesses where a
package is made unimportable (``sys.modules[name] = None``, as Python sees a missing package)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from lplabel import datasets as D
from lplabel import deps
from lplabel import open_store
from lplabel.cli import main

REPO = Path(__file__).resolve().parents[1]
CIFAR = D.default_data_root() / "cifar10-jpeg" / "test.npz"


def _cli_without(tmp_path, missing: list[str], args: list[str]) -> subprocess.CompletedProcess:
    """``lplabel ARGS`` in a subprocess where the packages ``missing`` cannot be imported."""
    code = (
        f"import sys\nfor m in {missing!r}: sys.modules[m] = None\n"
        "from lplabel.cli import main\nmain(prog_name='lplabel')"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("LPLABEL_")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + [p for p in [os.environ.get("PYTHONPATH")] if p])
    return subprocess.run(
        [sys.executable, "-c", code] + args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )


def _one_named_line(p: subprocess.CompletedProcess, *needles: str) -> str:
    assert p.returncode == 2, p.stderr[-2000:]
    assert "Traceback" not in p.stderr, p.stderr[-2000:]
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), p.stderr
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


# ------------------------------------------------------------------------------- the rule
def test_require_names_the_extra(monkeypatch):
    monkeypatch.setattr(deps, "available", lambda m: m != "sklearn")
    with pytest.raises(deps.MissingDependencyError) as e:
        D.load_dataset("digits")
    msg = str(e.value)
    assert "scikit-learn" in msg and "pip install 'lplabel[bench]'" in msg and "digits" in msg
    assert isinstance(e.value, ImportError)
    assert "lplabel[rans]" in deps.install_hint("numba") and "torch==2.13.0" in deps.install_hint("torch")
    assert deps.from_import_error(ModuleNotFoundError("x", name="numba.core")) is not None
    assert deps.from_import_error(ModuleNotFoundError("x", name="lplabel.nothing")) is None  # a bug stays a bug
    assert deps.from_import_error(ImportError("cannot import name 'x'")) is None


def test_demo_and_bench_stop_before_work_without_the_bench_extra(tmp_path, monkeypatch):
    monkeypatch.setattr(deps, "available", lambda m: m not in ("sklearn", "matplotlib"))
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(main, ["demo", "-o", str(tmp_path / "d" / "demo.lpl")])
    assert r.exit_code == 2 and r.output.count("\n") == 1 and "lplabel[bench]" in r.output, r.output
    r = CliRunner().invoke(main, ["bench", "accuracy", "--quick", "--out", str(tmp_path / "b")])
    assert r.exit_code == 2 and r.output.count("\n") == 1 and "lplabel[bench]" in r.output, r.output
    assert not (tmp_path / "d").exists() and not (tmp_path / "b").exists()


@pytest.mark.slow
def test_torchless_commands_name_torch(tmp_path):
    from lplabel import StoreWriter
    from lplabel.testing import realistic_logits

    rng = np.random.default_rng(0)
    with StoreWriter(tmp_path / "s.lpl", num_classes=5, images=8, batch_size=4, epochs=1) as w:
        for s in range(2):
            w.write_step(
                0,
                s,
                image=np.arange(4) + 4 * s,
                crop=np.tile(np.float32([0, 0, 1, 1]), (4, 1)),
                flip=np.zeros(4, bool),
                logits=realistic_logits(rng, 4, 5),
            )
    for args in (
        ["relabel", "digits", "-o", "x.lpl", "--teacher", "lplabel.models:convnet"],
        ["export", "s.lpl", "-o", "legacy", "--to", "lpld"],
        ["merge", "s.lpl", "-o", "m.lpl"],
        ["demo", "-o", "demo/d.lpl"],
        ["bench", "accuracy", "--quick", "--out", "bench"],
    ):
        line = _one_named_line(_cli_without(tmp_path, ["torch"], args), "needs torch", "pip install torch")
        assert f"lplabel {args[0]}" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.lpl"]  # nothing written
    # the store tools themselves need no torch
    p = _cli_without(tmp_path, ["torch"], ["info", "s.lpl"])
    assert p.returncode == 0 and "records" in p.stdout, p.stderr
    p = _cli_without(tmp_path, ["torch"], ["quantize", "s.lpl", "-o", "q.lpl", "--topk", "2"])
    assert p.returncode == 0, p.stderr
    # rans without numba: named before any work
    _one_named_line(
        _cli_without(tmp_path, ["numba"], ["encode", "q.lpl", "-o", "r.lpl", "--layout", "rans"]), "lplabel[rans]"
    )
    assert not (tmp_path / "r.lpl").exists()


def test_loader_import_without_torch_says_what_to_install(tmp_path):
    code = "import sys\nsys.modules['torch'] = None\nimport lplabel.torch"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 1 and "MissingDependencyError" in p.stderr and "pip install torch" in p.stderr


# ---------------------------------------------------------------------------------- data root
def test_data_root_of_a_checkout_and_of_an_installed_package(tmp_path, monkeypatch):
    monkeypatch.delenv("LPLABEL_DATA", raising=False)
    assert D.source_checkout() == REPO
    assert D.default_data_root() == REPO.parent / "shared" / "data"
    # the same module as an installed copy: no checkout, no default data root, a named error
    monkeypatch.setattr(D, "__file__", str(tmp_path / "lib" / "site-packages" / "lplabel" / "datasets.py"))
    assert D.source_checkout() is None and D.default_data_root() is None
    with pytest.raises(D.DataRootError) as e:
        D.load_dataset("cifar10", "test")
    msg = str(e.value)
    assert "LPLABEL_DATA" in msg and "--data-root" in msg and "installed package" in msg
    assert isinstance(e.value, D.DatasetNotFoundError)
    monkeypatch.setenv("LPLABEL_DATA", str(tmp_path))
    assert D.default_data_root() == tmp_path
    with pytest.raises(D.DatasetNotFoundError, match="--data-root"):
        D.load_dataset("cifar10", "test")


def _small_cifar_pack(root: Path, per_class: int = 2) -> Path:
    """The first ``per_class`` test images of each CIFAR-10 class, as a pack under ``root``."""
    z = np.load(CIFAR)
    labels, off, data = z["labels"], z["offsets"], z["data"]
    pick = np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in range(10)])
    blobs = [data[off[i] : off[i + 1]] for i in pick]
    offsets = np.concatenate([[0], np.cumsum([len(b) for b in blobs])]).astype(np.int64)
    (root / "cifar10-jpeg").mkdir(parents=True)
    for split in ("train", "test"):
        np.savez(
            root / "cifar10-jpeg" / f"{split}.npz", data=np.concatenate(blobs), offsets=offsets, labels=labels[pick]
        )
    return root


@pytest.mark.skipif(not CIFAR.is_file(), reason=f"CIFAR-10 pack not found at {CIFAR}")
def test_relabel_data_root_option(tmp_path, monkeypatch):
    monkeypatch.delenv("LPLABEL_DATA", raising=False)
    monkeypatch.setattr(D, "__file__", str(tmp_path / "site-packages" / "lplabel" / "datasets.py"))
    root = _small_cifar_pack(tmp_path / "data")
    teacher = 'lplabel.models:convnet{"num_classes": 10, "width": 8}'
    common = ["--epochs", "1", "-b", "10", "--no-progress", "--teacher", teacher]
    r = CliRunner().invoke(main, ["relabel", "cifar10", "-o", str(tmp_path / "a.lpl")] + common)
    assert r.exit_code == 2 and "LPLABEL_DATA" in r.output and r.output.count("\n") == 1, r.output
    r = CliRunner().invoke(
        main, ["relabel", "cifar10", "--data-root", str(root), "-o", str(tmp_path / "a.lpl")] + common
    )
    assert r.exit_code == 0, r.output
    s = open_store(tmp_path / "a.lpl")
    assert s.num_records == 20 and s.image_keys[0] == "cifar10/train/0"
    monkeypatch.setenv("LPLABEL_DATA", str(root))
    r = CliRunner().invoke(main, ["relabel", "cifar10:test", "-o", str(tmp_path / "b.lpl")] + common)
    assert r.exit_code == 0, r.output
