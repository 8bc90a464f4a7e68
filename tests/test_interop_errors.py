"""Bad legacy input: partial or mixed directories, unknown layouts, inconsistent batches, unsafe
pickles, unsupported variants. Each must raise a named lplabel error that names the file, and
leave nothing behind (no output, no temporary files)."""

from __future__ import annotations

import io
import json
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from lplabel.errors import LplabelError  # noqa: E402
from lplabel.interop import (  # noqa: E402
    LegacyFormatError,
    UnknownLayoutError,
    UnsafeLegacyFileError,  # noqa: E402
    UnsupportedLegacyFeatureError,
    detect_layout,
    import_legacy,
    load_legacy_file,
)
from lplabel.interop import synth  # noqa: E402

SMALL = dict(num_images=20, batch_size=8, epochs=2, num_classes=50)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bad")
    return {
        "lpld": synth.write_batches(tmp / "lpld", "lpld", **SMALL),
        "sre2l": synth.write_batches(tmp / "sre2l", "sre2l", **SMALL),
        "lpqld": synth.write_batches(tmp / "lpqld", "lpqld", k=5, prune_ratio=0.5, **SMALL),
        "fkd": synth.write_fkd(tmp / "fkd", num_images=3, num_crops=8, num_classes=50),
    }


def copy(base, name, tmp_path) -> Path:
    dst = tmp_path / name
    shutil.copytree(base[name], dst)
    return dst


def clean(out_dir: Path):
    """Nothing at the output name and no temporary files beside it."""
    return [p.name for p in out_dir.iterdir() if p.suffix in (".lpl", ".tmp") or ".lpl." in p.name]


def fails(src, tmp_path, exc=LegacyFormatError, match=None, names=None, **kw):
    out_dir = tmp_path / "out"
    out_dir.mkdir(exist_ok=True)
    with pytest.raises(exc, match=match) as ei:
        import_legacy(src, out_dir / "x.lpl", progress=False, **kw)
    assert clean(out_dir) == []
    if names is not None:
        assert names in str(ei.value), str(ei.value)
    return ei.value


# ------------------------------------------------------------------------ partial / mixed
def test_missing_batch_names_the_file(base, tmp_path):
    src = copy(base, "lpld", tmp_path)
    (src / "epoch_1" / "batch_1.tar").unlink()
    fails(src, tmp_path, match="batch_1.tar", names=str(src / "epoch_1"))


def test_missing_epoch(base, tmp_path):
    src = copy(base, "sre2l", tmp_path)
    shutil.rmtree(src / "epoch_0")
    fails(src, tmp_path, layout="sre2l", match="epoch_0")


def test_epochs_of_different_sizes(base, tmp_path):
    src = copy(base, "sre2l", tmp_path)
    (src / "epoch_1" / "batch_2.tar").unlink()  # the last batch of a middle epoch: no gap, a shorter epoch
    fails(src, tmp_path, match="epoch_1 has 2 batch files, epoch_0 has 3")


def test_inconsistent_batch_size(base, tmp_path):
    src = copy(base, "sre2l", tmp_path)
    other = synth.write_batches(tmp_path / "other", "sre2l", num_images=30, batch_size=10, epochs=1, num_classes=50)
    shutil.copy(other / "epoch_0" / "batch_1.tar", src / "epoch_1" / "batch_0.tar")
    fails(src, tmp_path, match="holds 10 records", names="epoch_1/batch_0.tar")


def test_batch_from_another_run_signature(base, tmp_path):
    src = copy(base, "sre2l", tmp_path)
    other = synth.write_batches(tmp_path / "other", "sre2l", mix="mixup", **SMALL)
    shutil.copy(other / "epoch_1" / "batch_1.tar", src / "epoch_1" / "batch_1.tar")
    fails(src, tmp_path, match="mix: 'mixup' here, 'cutmix'", names="epoch_1/batch_1.tar")


def test_lpld_json_does_not_match(base, tmp_path):
    src = copy(base, "lpld", tmp_path)
    p = src / "sampler_indices_epoch.json"
    d = json.loads(p.read_text())
    d["0"] = d["0"][:-3]
    p.write_text(json.dumps(d))
    fails(src, tmp_path, match="epoch 0 lists")
    d["7"] = [1, 2]
    p.write_text(json.dumps(d))
    fails(src, tmp_path, match="extra")


def test_stray_and_mixed(base, tmp_path):
    src = copy(base, "lpld", tmp_path)
    (src / "epoch_0" / "notes.txt").write_text("x")
    fails(src, tmp_path, match="unexpected entry 'notes.txt'")
    os.unlink(src / "epoch_0" / "notes.txt")
    shutil.copy(base["lpqld"] / "batch_0.tar", src / "batch_0.tar")
    with pytest.raises(UnknownLayoutError, match="mixed legacy layouts"):
        detect_layout(src)
    fails(src, tmp_path, layout="lpld", match="flat batch file")
    os.unlink(src / "batch_0.tar")
    shutil.copy(base["lpqld"] / "sampler_indices_batch.json", src)
    fails(src, tmp_path, exc=UnknownLayoutError, match="mixed")


def test_unknown_layouts(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UnknownLayoutError, match="no legacy label files"):
        detect_layout(tmp_path / "empty")
    (tmp_path / "flat").mkdir()
    torch.save([torch.zeros(2, 4)], tmp_path / "flat" / "batch_0.tar")
    with pytest.raises(UnknownLayoutError, match="without sampler_indices_batch.json"):
        detect_layout(tmp_path / "flat")
    (tmp_path / "odd" / "epoch_0").mkdir(parents=True)
    torch.save({"a": torch.zeros(3)}, tmp_path / "odd" / "epoch_0" / "batch_0.tar")
    with pytest.raises(UnknownLayoutError, match="hold a dict"):
        detect_layout(tmp_path / "odd")
    with pytest.raises(UnknownLayoutError, match="unknown legacy layout"):
        import_legacy(tmp_path / "odd", tmp_path / "x.lpl", layout="ffcv")
    with pytest.raises(UnknownLayoutError, match="not a directory"):
        detect_layout(tmp_path / "flat" / "batch_0.tar")


def test_wrong_layout_forced(base, tmp_path):
    fails(base["lpqld"], tmp_path, layout="sre2l", match="no epoch_<e> directories")
    fails(base["sre2l"], tmp_path, layout="lpld", match="no sampler_indices_epoch.json")
    fails(base["lpld"], tmp_path, layout="gvbsm", match="holds a list of 6 items")


def test_truncated_file(base, tmp_path):
    src = copy(base, "lpqld", tmp_path)
    p = src / "batch_2.tar"
    p.write_bytes(p.read_bytes()[:500])
    fails(src, tmp_path, match="not a readable torch.save file", names="batch_2.tar", num_classes=100)
    p.write_bytes(b"")
    fails(src, tmp_path, match="empty", names="batch_2.tar", num_classes=100)


def test_lpqld_json_missing_batch(base, tmp_path):
    src = copy(base, "lpqld", tmp_path)
    (src / "batch_3.tar").unlink()
    fails(src, tmp_path, match="batch_3.tar")
    src = copy(base, "lpqld", tmp_path / "b")
    p = src / "sampler_indices_batch.json"
    d = json.loads(p.read_text())
    del d["1"]
    p.write_text(json.dumps(d))
    fails(src, tmp_path, match="missing")


def test_fkd_mixed_crops(base, tmp_path):
    src = copy(base, "fkd", tmp_path)
    victim = sorted(src.rglob("*.tar"))[1]
    other = synth.write_fkd(tmp_path / "o", num_images=1, num_crops=5, num_classes=50)
    shutil.copy(next(other.rglob("*.tar")), victim)
    fails(src, tmp_path, match="num_crops: 5 here, 8", names=victim.name, num_classes=50)


def test_interrupt_leaves_nothing(base, tmp_path, monkeypatch):
    import lplabel.interop.batches as B

    real = B.load_batch
    calls = {"n": 0}

    def flaky(path, family):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real(path, family)

    monkeypatch.setattr(B, "load_batch", flaky)
    (tmp_path / "out").mkdir()
    with pytest.raises(KeyboardInterrupt):
        import_legacy(base["sre2l"], tmp_path / "out" / "x.lpl", progress=False)
    assert clean(tmp_path / "out") == []


def test_force_keeps_old_output_on_failure(base, tmp_path):
    out = tmp_path / "x.lpl"
    import_legacy(base["sre2l"], out, progress=False)
    before = out.read_bytes()
    src = copy(base, "sre2l", tmp_path)
    (src / "epoch_1" / "batch_1.tar").write_bytes(b"garbage")
    with pytest.raises(LegacyFormatError):
        import_legacy(src, out, progress=False, force=True)
    assert out.read_bytes() == before


# ------------------------------------------------------------------------- unsafe pickles
class Boom:
    def __reduce__(self):
        return (os.system, ("touch " + str(MARKER),))


MARKER = Path("/nonexistent")


def test_arbitrary_pickle_is_refused_and_not_run(base, tmp_path):
    global MARKER
    MARKER = tmp_path / "pwned"
    src = copy(base, "sre2l", tmp_path)
    rec = torch.load(src / "epoch_0" / "batch_1.tar", weights_only=False)
    rec[3] = Boom()
    torch.save(rec, src / "epoch_0" / "batch_1.tar")
    err = fails(src, tmp_path, exc=UnsafeLegacyFileError, names="epoch_0/batch_1.tar")
    assert "posix.system" in str(err) and not MARKER.exists()


@pytest.mark.parametrize("bad", ["fraction", "float64", "object_array"])
def test_types_outside_the_allowlist(tmp_path, bad):
    import fractions

    obj = {
        "fraction": [fractions.Fraction(1, 3)],
        "float64": [np.float64(0.5)],
        "object_array": [np.array([1, "x"], dtype=object)],
    }[bad]
    torch.save(obj, tmp_path / "f.tar")
    with pytest.raises(UnsafeLegacyFileError) as ei:
        load_legacy_file(tmp_path / "f.tar", "fkd" if bad == "object_array" else "batch")
    assert "f.tar" in str(ei.value) and isinstance(ei.value, LplabelError)


def _as_numpy1(path: Path) -> None:
    """Rewrite a torch.save file as numpy 1.x writes it (``numpy.core`` instead of ``numpy._core``)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(path) as zin, zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename.endswith("data.pkl"):
                data = data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
            zout.writestr(info, data)
    path.write_bytes(buf.getvalue())


def test_numpy1_pickles_load(base, tmp_path):
    src = copy(base, "lpld", tmp_path)
    f = src / "epoch_0" / "batch_0.tar"
    _as_numpy1(f)
    assert b"numpy.core.multiarray" in zipfile.ZipFile(f).read("batch_0/data.pkl")
    rec = load_legacy_file(f, "batch")
    assert [type(b) for b in rec[4]] == [np.int64] * 4
    fk = sorted(base["fkd"].rglob("*.tar"))[0]
    shutil.copy(fk, tmp_path / "f.tar")
    _as_numpy1(tmp_path / "f.tar")
    assert load_legacy_file(tmp_path / "f.tar", "fkd")[2].dtype == np.float16
    with pytest.raises(UnsafeLegacyFileError):  # FKD numpy arrays are not allowed in batch files
        load_legacy_file(tmp_path / "f.tar", "batch")


# -------------------------------------------------------------------------- unsupported
def test_in21k_cutout_is_refused(tmp_path):
    src = synth.write_batches(tmp_path / "21k", "lpld", mix="none", cutout=True, **SMALL)
    fails(src, tmp_path, exc=UnsupportedLegacyFeatureError, match="21K", names="batch_0.tar")


def test_lpqld_randaug_is_refused(base, tmp_path):
    src = copy(base, "lpqld", tmp_path)
    rec = torch.load(src / "batch_0.tar", weights_only=True)
    rec.insert(2, [torch.zeros(3)])
    torch.save(rec, src / "batch_0.tar")
    fails(src, tmp_path, exc=UnsupportedLegacyFeatureError, match="RandAugment")


def test_edc_varying_patches_refused(tmp_path):
    src = synth.write_batches(tmp_path / "edc", "edc", **SMALL)
    rec = torch.load(src / "epoch_0" / "batch_1.tar", weights_only=False)
    rec[7][0] = torch.tensor([[1, 0], [0, 1]], dtype=torch.int32)
    torch.save(rec, src / "epoch_0" / "batch_1.tar")
    fails(src, tmp_path, exc=UnsupportedLegacyFeatureError, match="patch-shuffle", names="batch_1.tar")


def test_bad_values_in_fields(base, tmp_path):
    src = copy(base, "sre2l", tmp_path)
    f = src / "epoch_1" / "batch_0.tar"
    rec = torch.load(f, weights_only=False)
    rec[2] = rec[2] + 100  # mix partners outside the batch
    torch.save(rec, f)
    fails(src, tmp_path, match="mix_index", names="epoch_1/batch_0.tar")
    rec = torch.load(base["sre2l"] / "epoch_1" / "batch_0.tar", weights_only=False)
    rec[0] = rec[0].double()
    torch.save(rec, f)
    fails(src, tmp_path, match="coords_status' has dtype float64")
