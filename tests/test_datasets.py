"""Real-data loaders: digits, CIFAR-10 / Tiny-ImageNet packs, ImageFolder trees, npz packs."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lplabel import datasets as D
from lplabel.images import ImageSet

DATA = D.default_data_root()
needs_cifar = pytest.mark.skipif(
    not (DATA / "cifar10-jpeg" / "test.npz").is_file(),
    reason=f"CIFAR-10 pack not found under {DATA} (set LPLABEL_DATA)",
)
needs_tiny = pytest.mark.skipif(
    not (DATA / "tiny-imagenet-jpeg" / "val.npz").is_file(),
    reason=f"Tiny-ImageNet pack not found under {DATA} (set LPLABEL_DATA)",
)


# ------------------------------------------------------------------------------------ digits
def test_digits_split_is_fixed_stratified_and_disjoint():
    from sklearn.datasets import load_digits

    y = load_digits().target
    tr = D.load_dataset("digits", "train")
    te = D.load_dataset("Digits", "test")
    assert isinstance(tr, ImageSet)
    assert (len(tr), len(te)) == (1201, 596)
    assert tr.images.shape == (1201, 8, 8, 1) and tr.images.dtype == np.uint8
    assert tr.images.max() == 255 and tr.images.min() == 0
    itr, ite = tr.meta["indices"], te.meta["indices"]
    assert not set(itr) & set(ite) and len(set(itr) | set(ite)) == 1797
    np.testing.assert_array_equal(tr.classes, y[itr])
    assert tr.keys[:2] == [f"digits/{itr[0]}", f"digits/{itr[1]}"]
    for c in range(10):  # stratified: each class's test share is 1/3 rounded down
        n = int((y == c).sum())
        assert int((te.classes == c).sum()) == n // 3
    # value mapping v * 255 // 16
    raw = load_digits().images[itr[0]].astype(int)
    np.testing.assert_array_equal(tr.images[0, :, :, 0], raw * 255 // 16)
    np.testing.assert_array_equal(D.digits_split_indices("test"), ite)
    assert te.meta["hflip"] is False
    assert D.load_dataset("digits", "val").keys == te.keys


def test_digits_limit_per_class():
    s = D.load_dataset("digits", limit_per_class=3)
    assert len(s) == 30
    np.testing.assert_array_equal(np.bincount(s.classes), [3] * 10)


def test_unknown_names_are_clear():
    with pytest.raises(D.UnknownDatasetError) as e:
        D.load_dataset("imagenet-21k")
    msg = str(e.value)
    assert "imagenet-21k" in msg and "digits" in msg and "cifar10" in msg and "tiny-imagenet" in msg
    with pytest.raises(D.UnknownDatasetError, match="splits"):
        D.load_dataset("cifar10", "holdout")
    assert isinstance(e.value, D.DatasetError) and isinstance(e.value, ValueError)


def test_error_base_class():
    from lplabel.errors import LplabelError

    assert issubclass(D.DatasetError, LplabelError)


def test_missing_data_root(tmp_path, monkeypatch):
    monkeypatch.setenv("LPLABEL_DATA", str(tmp_path))
    assert D.default_data_root() == tmp_path
    with pytest.raises(D.DatasetNotFoundError) as e:
        D.load_dataset("cifar10", "test")
    assert str(tmp_path / "cifar10-jpeg" / "test.npz") in str(e.value)
    assert "LPLABEL_DATA" in str(e.value)
    with pytest.raises(FileNotFoundError):
        D.load_dataset("tiny-imagenet", "val", root=tmp_path / "elsewhere")


# ------------------------------------------------------------------------------------- packs
@needs_cifar
def test_cifar10_first_k_per_class():
    s = D.load_dataset("CIFAR10", "test", limit_per_class=3)
    assert s.images.shape == (30, 32, 32, 3) and s.images.dtype == np.uint8
    np.testing.assert_array_equal(np.bincount(s.classes), [3] * 10)
    assert s.class_names[0] == "airplane" and s.class_names[-1] == "truck"
    z = np.load(DATA / "cifar10-jpeg" / "test.npz")
    idx = s.meta["indices"]
    labels = z["labels"]
    for c in range(10):  # the first three of each class, in file order
        np.testing.assert_array_equal(idx[s.classes == c], np.flatnonzero(labels == c)[:3])
    i = int(idx[0])
    ref = np.asarray(Image.open(io.BytesIO(z["data"][z["offsets"][i] : z["offsets"][i + 1]].tobytes())))
    np.testing.assert_array_equal(s.images[0], ref)
    assert s.keys[0] == f"cifar10/test/{i}"
    assert 60 < s.images.mean() < 200


@needs_tiny
def test_tiny_imagenet_in1k_index():
    s = D.load_dataset("Tiny-ImageNet", "val", limit_per_class=1)
    assert s.images.shape == (200, 64, 64, 3)
    assert len(s.class_names) == 200 and s.class_names[0].startswith("n")
    idx = s.in1k_index
    assert idx is s.meta["in1k_index"]
    assert idx.shape == (200,) and len(set(idx.tolist())) == 200
    assert idx.min() >= 0 and idx.max() < 1000
    assert np.all(np.diff(idx) > 0)  # sorted wnids map to increasing IN-1K indices
    assert D.load_dataset("tiny_imagenet", "test", limit_per_class=1).keys == s.keys
    tr = D.load_dataset("tiny-imagenet", "train", limit_per_class=1)
    assert tr.keys[0].startswith("tiny-imagenet/train/")


def _write_pack(path, arrays, labels, **extra):
    offs = np.zeros(len(arrays) + 1, dtype=np.int64)
    blobs = []
    for i, a in enumerate(arrays):
        b = io.BytesIO()
        Image.fromarray(a.squeeze()).save(b, format="PNG")
        blobs.append(b.getvalue())
        offs[i + 1] = offs[i] + len(blobs[-1])
    data = np.frombuffer(b"".join(blobs), dtype=np.uint8)
    np.savez(path, data=data, offsets=offs, labels=np.asarray(labels, dtype=np.uint8), **extra)


def test_npz_pack_encoded_and_plain(tmp_path):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (6, 5, 7, 3), dtype=np.uint8)
    _write_pack(tmp_path / "p.npz", list(imgs), [0, 1, 0, 1, 2, 2], classes=np.array(["a", "b", "c"]))
    s = D.load_npz_pack(tmp_path / "p.npz")
    np.testing.assert_array_equal(s.images, imgs)  # PNG is lossless
    assert s.class_names == ["a", "b", "c"] and s.keys == [str(i) for i in range(6)]
    np.savez(tmp_path / "q.npz", images=imgs[:, :, :, 0], labels=np.arange(6) % 2)
    q = D.load_npz_pack(tmp_path / "q.npz", limit_per_class=2)
    assert q.images.shape == (4, 5, 7, 1)
    np.testing.assert_array_equal(q.images[:, :, :, 0], imgs[:4, :, :, 0])

    np.savez(tmp_path / "bad.npz", images=imgs)
    with pytest.raises(D.DatasetError, match="bad.npz.*labels"):
        D.load_npz_pack(tmp_path / "bad.npz")
    np.savez(
        tmp_path / "bad2.npz",
        data=np.zeros(10, np.uint8),
        offsets=np.array([0, 5, 10]),
        labels=np.array([0, 1], np.uint8),
    )
    with pytest.raises(D.DatasetError, match=r"cannot decode image 0 of .*bad2\.npz"):
        D.load_npz_pack(tmp_path / "bad2.npz")
    with pytest.raises(D.DatasetNotFoundError, match="nothere.npz"):
        D.load_npz_pack(tmp_path / "nothere.npz")


# ------------------------------------------------------------------------------ image folders
def _png(path: Path, arr):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def test_image_folder_tree(tmp_path):
    rng = np.random.default_rng(1)
    root = tmp_path / "tree"
    rgb = [rng.integers(0, 256, (6, 6, 3), dtype=np.uint8) for _ in range(3)]
    gray = rng.integers(0, 256, (6, 6), dtype=np.uint8)
    _png(root / "zebra" / "b.png", rgb[0])
    _png(root / "zebra" / "a.PNG", rgb[1])
    _png(root / "ant" / "sub" / "x.png", rgb[2])
    _png(root / "ant" / "g.png", gray)
    (root / "ant" / "notes.txt").write_text("not an image")
    _png(root / "stray.png", gray)  # files directly under the root are not images of a class
    s = D.load_image_folder(root)
    assert s.class_names == ["ant", "zebra"]
    assert s.keys == ["ant/g.png", "ant/sub/x.png", "zebra/a.PNG", "zebra/b.png"]
    np.testing.assert_array_equal(s.classes, [0, 0, 1, 1])
    assert s.images.shape == (4, 6, 6, 3)  # gray converted to RGB since others are RGB
    np.testing.assert_array_equal(s.images[0], np.repeat(gray[:, :, None], 3, axis=2))
    np.testing.assert_array_equal(s.images[2], rgb[1])

    # mixed sizes -> a list
    _png(root / "zebra" / "c.png", rng.integers(0, 256, (4, 9, 3), dtype=np.uint8))
    s2 = D.load_image_folder(root)
    assert isinstance(s2.images, list) and s2.images[-1].shape == (4, 9, 3)
    np.testing.assert_array_equal(s2.sizes()[-1], [4, 9])

    # all grayscale stays one channel
    g = tmp_path / "gray"
    _png(g / "0" / "a.png", gray)
    assert D.load_image_folder(g).images.shape == (1, 6, 6, 1)


def test_image_folder_errors(tmp_path):
    with pytest.raises(D.DatasetNotFoundError, match="missing"):
        D.load_image_folder(tmp_path / "missing")
    (tmp_path / "flat").mkdir()
    _png(tmp_path / "flat" / "a.png", np.zeros((2, 2), np.uint8))
    with pytest.raises(D.DatasetError, match="no class sub-folders"):
        D.load_image_folder(tmp_path / "flat")
    root = tmp_path / "t"
    _png(root / "cat" / "a.png", np.zeros((2, 2, 3), np.uint8))
    (root / "dog").mkdir()
    with pytest.raises(D.DatasetError) as e:
        D.load_image_folder(root)
    assert str(root / "dog") in str(e.value)
    (root / "dog" / "broken.jpg").write_bytes(b"\xff\xd8 definitely not a jpeg")
    with pytest.raises(D.DatasetError) as e:
        D.load_image_folder(root)
    assert str(root / "dog" / "broken.jpg") in str(e.value)


# -------------------------------------------------------------------------- select_per_class
def test_select_per_class():
    tr = D.load_dataset("digits")
    a = D.select_per_class(tr, 5, seed=3)
    b = D.select_per_class(tr, 5, seed=3)
    c = D.select_per_class(tr, 5, seed=4)
    big = D.select_per_class(tr, 10, seed=3)
    assert len(a) == 50 and a.keys == b.keys and a.keys != c.keys
    np.testing.assert_array_equal(a.classes, np.repeat(np.arange(10), 5))
    assert set(a.keys) <= set(big.keys)  # a smaller IPC is a subset of a larger one
    pos = {k: i for i, k in enumerate(tr.keys)}
    for k, img in zip(a.keys, a.images):  # real images, unchanged
        np.testing.assert_array_equal(img, tr.images[pos[k]])
    assert a.meta["select_per_class"] == {"ipc": 5, "seed": 3}
    with pytest.raises(D.NotEnoughImagesError) as e:
        D.select_per_class(D.load_dataset("digits", limit_per_class=4), 5, seed=0)
    assert isinstance(e.value, ValueError)
    assert "class 0" in str(e.value) and "has 4 images" in str(e.value) and "ipc=5" in str(e.value)
