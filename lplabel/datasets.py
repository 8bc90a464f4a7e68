"""Real image sets, offline: bundled digits, CIFAR-10 and Tiny-ImageNet packs, ImageFolder trees.

Every loader returns an :class:`lplabel.images.ImageSet` of uint8 H×W×C images. Loaders in this
module also attach a ``meta`` dict to the result (``imageset.meta``) with at least ``dataset`` and
``split``; Tiny-ImageNet adds ``in1k_index`` (also exposed as ``imageset.in1k_index``), the index
of each of its 200 classes among the 1,000 ImageNet-1K classes, so a 1000-class teacher's logits
can be related to the 200 classes (``logits[:, in1k_index]``).

Data root
---------
``digits`` ships with scikit-learn (the ``bench`` extra); ``cifar10`` and ``tiny-imagenet`` are
packed files that lplabel does not download. ``load_dataset`` looks for them under the first of:

1. the ``root=`` argument (on the command line: ``--data-root DIR``, accepted wherever a
   built-in data set can be named: ``lplabel relabel NAME``, ``lplabel bench accuracy``);
2. the ``LPLABEL_DATA`` environment variable (``export LPLABEL_DATA=/path/to/data``);
3. only when lplabel runs from a source checkout (the ``lplabel`` package folder beside the
   project's ``pyproject.toml``, not an installed copy in ``site-packages``): the checkout's
   ``../shared/data``.

An installed package with neither 1 nor 2 has no data root: naming such a data set stops with
:class:`DataRootError`, which says where lplabel looked and how to point it at the files. The
folder holds ``cifar10-jpeg/{train,test}.npz`` and ``tiny-imagenet-jpeg/{train100,val}.npz``.

Datasets (names are case-insensitive; ``-`` and ``_`` are ignored)
------------------------------------------------------------------
``digits``
    scikit-learn's bundled ``load_digits()``: 1,797 8×8 grayscale images, 10 classes; pixel
    values 0..16 are mapped to uint8 by ``v * 255 // 16`` (16 → 255); shape [N, 8, 8, 1]; keys
    ``"digits/{i}"`` with ``i`` the index in ``load_digits()``.
    Split (fixed, no RNG, independent of library versions): within each class, images are taken in
    ``load_digits()`` order and every third one (rank ``r`` with ``r % 3 == 2``) goes to ``test``,
    the rest to ``train``. This is a stratified 1/3 test split: 1,201 train, 596 test images.
``cifar10``
    ``cifar10-jpeg/{train,test}.npz``: 50,000 / 10,000 32×32 RGB images (JPEG q≈75 copy of
    CIFAR-10). Keys ``"cifar10/{split}/{i}"`` with ``i`` the index in the file. ``val`` is an
    alias of ``test`` (as it is for digits).
``tiny-imagenet``
    ``tiny-imagenet-jpeg/train100.npz`` (split ``train``: 100 per class) and ``val.npz``
    (split ``val``, alias ``test``: 50 per class); 64×64; 200 classes named by WordNet id.
    Grayscale JPEGs in these files are converted to RGB. Keys ``"tiny-imagenet/{split}/{i}"``.

``limit_per_class=k`` keeps the first ``k`` images of each class in file order (decoding only
those), so tests and small runs stay fast.

Colour handling (packs and ImageFolder trees)
---------------------------------------------
Each image is decoded by Pillow to either 1 channel (grayscale modes: ``1``, ``L``, ``LA``,
``I;16`` — scaled by ``>> 8``, ``I``, ``F``) or 3 channels (everything else; alpha is dropped,
palettes expanded). If any image of a set has 3 channels, the grayscale ones are replicated to
RGB; a set made only of grayscale images stays [H, W, 1]. Images that all share one size are
stacked into one [N, H, W, C] array, otherwise ``images`` is a list.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from .deps import require
from .images import ImageSet

# --------------------------------------------------------------------------------------- errors
from .errors import DatasetError  # noqa: E402  (defined with the other lplabel errors)


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """A data file or folder does not exist."""


class UnknownDatasetError(DatasetError, ValueError):
    """A dataset name or split that this module does not know."""


class NotEnoughImagesError(DatasetError, ValueError):
    """More images per class were asked for than a class holds."""


class DataRootError(DatasetNotFoundError):
    """A packed data set was named, and no data folder is set (an installed package without
    ``--data-root`` / ``root=`` or ``LPLABEL_DATA``)."""


# --------------------------------------------------------------------------------------- names
CIFAR10_CLASSES = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
]

#: canonical dataset name -> {split: file relative to the data root, or None for bundled data}
DATASETS = {
    "digits": {"train": None, "test": None},
    "cifar10": {"train": "cifar10-jpeg/train.npz", "test": "cifar10-jpeg/test.npz"},
    "tiny-imagenet": {
        "train": "tiny-imagenet-jpeg/train100.npz",
        "val": "tiny-imagenet-jpeg/val.npz",
    },
}
#: other split names accepted for each dataset (same images, same keys)
_SPLIT_ALIASES = {"digits": {"val": "test"}, "cifar10": {"val": "test"}, "tiny-imagenet": {"test": "val"}}

IMAGE_EXTENSIONS = (
    ".png",
    ".jpg",
    ".jpeg",
    ".bmp",
    ".gif",
    ".webp",
    ".tif",
    ".tiff",
    ".ppm",
    ".pgm",
    ".pbm",
)


def _canonical(name: str) -> str:
    return str(name).lower().replace("-", "").replace("_", "").replace(" ", "")


_BY_CANONICAL = {_canonical(k): k for k in DATASETS}


def known_datasets() -> list[str]:
    """Names accepted by :func:`load_dataset`."""
    return list(DATASETS)


def source_checkout() -> Path | None:
    """The source checkout lplabel runs from (the folder holding ``pyproject.toml`` beside the
    ``lplabel`` package), or None for an installed package."""
    pkg = Path(__file__).resolve().parent
    repo = pkg.parent
    if repo.name in ("site-packages", "dist-packages") or not (repo / "pyproject.toml").is_file():
        return None
    return repo


def default_data_root() -> Path | None:
    """Where packed data sets are looked for when no root is given: ``$LPLABEL_DATA`` if set,
    else the source checkout's ``../shared/data``; None for an installed package (see the
    module doc, "Data root")."""
    env = os.environ.get("LPLABEL_DATA")
    if env:
        return Path(env)
    repo = source_checkout()
    return None if repo is None else repo.parent / "shared" / "data"


def data_root(root=None, *, dataset: str = "a packed data set") -> Path:
    """``root`` if given, else :func:`default_data_root`; :class:`DataRootError` when neither
    names a folder."""
    if root is not None:
        return Path(root)
    base = default_data_root()
    if base is None:
        raise DataRootError(
            f"{dataset} is read from packed files, and no data folder is set: lplabel looks in "
            "--data-root DIR (root= in Python), then $LPLABEL_DATA, then ../shared/data beside a source "
            "checkout, and this is an installed package",
            hint="export LPLABEL_DATA=/path/to/data or pass --data-root /path/to/data (the folder holding "
            "cifar10-jpeg/ and tiny-imagenet-jpeg/)",
        )
    return base


def _attach_meta(iset: ImageSet, **meta) -> ImageSet:
    old = dict(getattr(iset, "meta", {}) or {})
    old.update(meta)
    iset.meta = old  # type: ignore[attr-defined]
    if "in1k_index" in old:
        iset.in1k_index = old["in1k_index"]  # type: ignore[attr-defined]
    return iset


# ------------------------------------------------------------------------------------ decoding
_GRAY_MODES = {"1", "L", "LA", "I", "F", "La"}


def _pil_to_array(im) -> np.ndarray:
    """A decoded Pillow image as uint8 [H, W, 1] or [H, W, 3] (see the module docstring)."""
    mode = im.mode
    if mode.startswith("I;16"):
        a = np.asarray(im).astype(np.uint16)
        return (a >> 8).astype(np.uint8)[:, :, None]
    if mode in _GRAY_MODES:
        if mode != "L":
            im = im.convert("L")
        return np.asarray(im, dtype=np.uint8)[:, :, None]
    if mode != "RGB":
        im = im.convert("RGB")
    return np.asarray(im, dtype=np.uint8)


def _decode_bytes(buf, what: str) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(buf)) as im:
            im.load()
            return _pil_to_array(im)
    except Exception as e:  # Pillow raises several types
        raise DatasetError(f"cannot decode {what}: {type(e).__name__}: {e}") from e


def _assemble(arrays: list[np.ndarray]):
    """Make channel counts agree (gray -> RGB if any RGB) and stack when sizes agree."""
    if not arrays:
        return np.zeros((0, 0, 0, 3), dtype=np.uint8)
    channels = {a.shape[2] for a in arrays}
    if 3 in channels and 1 in channels:
        arrays = [np.repeat(a, 3, axis=2) if a.shape[2] == 1 else a for a in arrays]
    shapes = {a.shape for a in arrays}
    if len(shapes) == 1:
        return np.stack(arrays, axis=0)
    return arrays


def _first_k_per_class(labels: np.ndarray, k: int | None) -> np.ndarray:
    """Indices (ascending, file order) of the first ``k`` items of each class."""
    n = len(labels)
    if k is None:
        return np.arange(n)
    k = int(k)
    if k < 0:
        raise ValueError(f"limit_per_class must be >= 0, got {k}")
    labels = np.asarray(labels, dtype=np.int64)
    order = np.argsort(labels, kind="stable")
    sorted_labels = labels[order]
    starts = np.searchsorted(sorted_labels, sorted_labels, side="left")
    rank = np.arange(n) - starts
    keep = order[rank < k]
    return np.sort(keep)


# ---------------------------------------------------------------------------------- npz packs
def _check_file(path: Path, hint: str = "") -> Path:
    if not path.is_file():
        msg = f"data file not found: {path}"
        if hint:
            msg += f" ({hint})"
        raise DatasetNotFoundError(msg)
    return path


def _read_npz(path: Path):
    try:
        return np.load(path, allow_pickle=False)
    except Exception as e:
        raise DatasetError(f"cannot read {path} as a NumPy .npz file: {e}") from e


def _pack_arrays(path: Path, limit_per_class: int | None):
    """(images, labels, keep-indices, npz) from a pack file; see :func:`load_npz_pack`."""
    z = _read_npz(path)
    files = set(z.files)
    if "labels" not in files:
        raise DatasetError(f"{path}: no 'labels' array (found {sorted(files)})")
    labels_all = np.asarray(z["labels"]).astype(np.int64)
    n = len(labels_all)
    keep = _first_k_per_class(labels_all, limit_per_class)
    if {"data", "offsets"} <= files:
        data = z["data"]
        offsets = np.asarray(z["offsets"], dtype=np.int64)
        if data.dtype != np.uint8 or data.ndim != 1:
            raise DatasetError(f"{path}: 'data' must be 1-D uint8 bytes, got {data.dtype} {data.shape}")
        if offsets.shape != (n + 1,):
            raise DatasetError(f"{path}: 'offsets' must have N+1 = {n + 1} entries for {n} labels, got {offsets.shape}")
        if offsets[0] != 0 or offsets[-1] != len(data) or np.any(np.diff(offsets) < 0):
            raise DatasetError(f"{path}: 'offsets' must rise from 0 to len(data) = {len(data)}")
        arrays = [_decode_bytes(data[offsets[i] : offsets[i + 1]], f"image {i} of {path}") for i in keep]
        images = _assemble(arrays)
    elif "images" in files:
        images = np.asarray(z["images"])
        if images.dtype != np.uint8:
            raise DatasetError(f"{path}: 'images' must be uint8, got {images.dtype}")
        if images.ndim == 3:
            images = images[:, :, :, None]
        if images.ndim != 4 or len(images) != n:
            raise DatasetError(f"{path}: 'images' must be [N, H, W, C] with N = {n} (len(labels)), got {images.shape}")
        images = np.ascontiguousarray(images[keep]) if limit_per_class is not None else images
    else:
        raise DatasetError(
            f"{path}: expected arrays 'data' + 'offsets' (+ 'labels'), or 'images' (+ 'labels'); found {sorted(files)}"
        )
    return images, labels_all[keep], keep, z


def load_npz_pack(path, limit_per_class: int | None = None, key_prefix: str = "") -> ImageSet:
    """Load an image pack (``.npz``).

    Two layouts are accepted:

    * ``data`` (uint8, concatenated encoded image files), ``offsets`` (int64, N+1; image ``i`` is
      ``data[offsets[i]:offsets[i+1]]``), ``labels`` (N integers);
    * ``images`` (uint8 [N, H, W, C] or [N, H, W]) and ``labels``.

    Optional arrays: ``classes`` or ``class_names`` (one string per class), ``keys`` (one string
    per image; default ``f"{key_prefix}{i}"``), and any others, which are kept in ``meta``
    (e.g. ``in1k_index``). ``limit_per_class`` keeps the first k images of each class.
    """
    path = _check_file(Path(path))
    images, labels, keep, z = _pack_arrays(path, limit_per_class)
    files = set(z.files)
    if "keys" in files:
        all_keys = [str(k) for k in z["keys"]]
        if len(all_keys) != len(z["labels"]):
            raise DatasetError(f"{path}: 'keys' has {len(all_keys)} entries for {len(z['labels'])} labels")
        keys = [all_keys[i] for i in keep]
    else:
        keys = [f"{key_prefix}{i}" for i in keep]
    class_names: list[str] = []
    for name in ("class_names", "classes"):
        if name in files:
            class_names = [str(c) for c in z[name]]
            break
    if class_names and len(labels) and int(labels.max()) >= len(class_names):
        raise DatasetError(f"{path}: label {int(labels.max())} but only {len(class_names)} class names")
    meta = {"source": str(path), "indices": keep}
    for name in files - {"data", "offsets", "labels", "images", "keys", "classes", "class_names"}:
        meta[name] = z[name]
    iset = ImageSet(images=images, classes=labels, keys=keys, class_names=class_names)
    return _attach_meta(iset, **meta)


# ---------------------------------------------------------------------------------- datasets
def _resolve(name: str, split: str) -> tuple[str, str]:
    canon = _BY_CANONICAL.get(_canonical(name))
    if canon is None:
        raise UnknownDatasetError(
            f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)} "
            "(for your own images use load_image_folder(path) or load_npz_pack(path))"
        )
    s = str(split).lower()
    s = _SPLIT_ALIASES[canon].get(s, s)
    if s not in DATASETS[canon]:
        aliases = ", ".join(f"{a} = {b}" for a, b in _SPLIT_ALIASES[canon].items())
        raise UnknownDatasetError(
            f"dataset {canon!r} has no split {split!r}; splits: {', '.join(DATASETS[canon])} (aliases: {aliases})"
        )
    return canon, s


def digits_split_indices(split: str) -> np.ndarray:
    """Indices into ``sklearn.datasets.load_digits()`` of the fixed ``train``/``test`` split."""
    require("sklearn", "the built-in data set 'digits'")
    from sklearn.datasets import load_digits

    y = np.asarray(load_digits().target, dtype=np.int64)
    return _digits_split(y, split)


def _digits_split(y: np.ndarray, split: str) -> np.ndarray:
    order = np.argsort(y, kind="stable")
    sy = y[order]
    rank = np.arange(len(y)) - np.searchsorted(sy, sy, side="left")
    is_test = np.zeros(len(y), dtype=bool)
    is_test[order] = rank % 3 == 2
    return np.flatnonzero(is_test if split == "test" else ~is_test)


def _load_digits(split: str, limit_per_class: int | None) -> ImageSet:
    require("sklearn", "the built-in data set 'digits'")
    from sklearn.datasets import load_digits

    d = load_digits()
    y = np.asarray(d.target, dtype=np.int64)
    idx = _digits_split(y, split)
    idx = idx[_first_k_per_class(y[idx], limit_per_class)]
    x = (np.asarray(d.images[idx], dtype=np.int64) * 255 // 16).astype(np.uint8)[:, :, :, None]
    iset = ImageSet(
        images=np.ascontiguousarray(x),
        classes=y[idx],
        keys=[f"digits/{i}" for i in idx],
        class_names=[str(c) for c in range(10)],
    )
    return _attach_meta(iset, dataset="digits", split=split, indices=idx, hflip=False)


def load_dataset(name: str, split: str = "train", root=None, limit_per_class: int | None = None) -> ImageSet:
    """Load a known real data set (see the module docstring) as an :class:`ImageSet`.

    ``root`` overrides the data root (default: ``$LPLABEL_DATA``, or a source checkout's
    ``../shared/data``; see the module doc).
    The result carries ``meta`` (``dataset``, ``split``, ``source``, ``indices`` into the file,
    ``hflip`` — whether horizontal flips are label-preserving; Tiny-ImageNet: ``in1k_index``).
    """
    canon, split = _resolve(name, split)
    if canon == "digits":
        return _load_digits(split, limit_per_class)
    base = data_root(root, dataset=f"the data set {canon!r}")
    rel = DATASETS[canon][split]
    path = _check_file(
        base / rel,
        hint=f"dataset {canon!r} split {split!r}; set LPLABEL_DATA or pass --data-root (root= in Python) "
        f"to the folder that holds {rel.split('/')[0]}/",
    )
    iset = load_npz_pack(path, limit_per_class=limit_per_class, key_prefix=f"{canon}/{split}/")
    if canon == "cifar10":
        iset.class_names = list(CIFAR10_CLASSES)
    if canon == "tiny-imagenet":
        if "in1k_index" not in iset.meta:  # type: ignore[attr-defined]
            raise DatasetError(f"{path}: no 'in1k_index' array")
        iset.meta["in1k_index"] = np.asarray(iset.meta["in1k_index"], dtype=np.int64)  # type: ignore[attr-defined]
    return _attach_meta(iset, dataset=canon, split=split, hflip=True)


# ------------------------------------------------------------------------------- image folders
def _image_files(folder: Path) -> list[Path]:
    out = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for f in sorted(filenames):
            if not f.startswith(".") and f.lower().endswith(IMAGE_EXTENSIONS):
                out.append(Path(dirpath) / f)
    return sorted(out, key=lambda p: p.relative_to(folder).as_posix())


def load_image_folder(path) -> ImageSet:
    """Load an ImageFolder tree: ``path/<class>/**/<image>``.

    Classes are the sub-folders of ``path`` (hidden ones skipped) in sorted order; within each,
    image files (extensions in :data:`IMAGE_EXTENSIONS`, case-insensitive, searched recursively)
    are taken in sorted order of their relative path. Keys are paths relative to ``path`` with
    ``/`` separators. Files directly in ``path`` are ignored. Colour handling: see the module
    docstring (grayscale becomes RGB when any image is RGB).

    Raises :class:`DatasetError` naming the folder when ``path`` is missing, has no class
    folders, or a class folder holds no images, and naming the file when an image cannot be read.
    """
    root = Path(path)
    if not root.is_dir():
        raise DatasetNotFoundError(f"image folder not found: {root}")
    class_dirs = sorted((p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")), key=lambda p: p.name)
    if not class_dirs:
        raise DatasetError(f"{root}: no class sub-folders; expected an ImageFolder tree path/<class>/<image>")
    arrays, classes, keys = [], [], []
    for c, d in enumerate(class_dirs):
        files = _image_files(d)
        if not files:
            raise DatasetError(
                f"class folder {d} holds no images (extensions: {', '.join(IMAGE_EXTENSIONS)}); remove it or add images"
            )
        for f in files:
            try:
                buf = f.read_bytes()
            except OSError as e:
                raise DatasetError(f"cannot read image file {f}: {e}") from e
            arrays.append(_decode_bytes(buf, f"image file {f}"))
            classes.append(c)
            keys.append(f.relative_to(root).as_posix())
    iset = ImageSet(
        images=_assemble(arrays),
        classes=np.asarray(classes, dtype=np.int64),
        keys=keys,
        class_names=[d.name for d in class_dirs],
    )
    return _attach_meta(iset, dataset="image-folder", source=str(root))


# ------------------------------------------------------------------------------ sub-selection
def subset(imageset: ImageSet, indices: Sequence[int] | np.ndarray) -> ImageSet:
    """The images at ``indices`` (in that order), keeping keys, class names and ``meta``."""
    idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    if isinstance(imageset.images, np.ndarray):
        images = np.ascontiguousarray(imageset.images[idx])
    else:
        images = [imageset.images[i] for i in idx]
    out = ImageSet(
        images=images,
        classes=imageset.classes[idx],
        keys=[imageset.keys[i] for i in idx],
        class_names=list(imageset.class_names),
    )
    meta = dict(getattr(imageset, "meta", {}) or {})
    if "indices" in meta and meta["indices"] is not None and len(meta["indices"]) == len(imageset):
        meta["indices"] = np.asarray(meta["indices"])[idx]
    return _attach_meta(out, **meta)


def select_per_class(imageset: ImageSet, ipc: int, seed: int = 0) -> ImageSet:
    """``ipc`` random real images of every class, seeded.

    Classes are ``range(len(class_names))`` when class names are set, else the distinct
    non-negative classes present; images with class -1 are never chosen. For class ``c`` the
    images are drawn by ``numpy.random.default_rng([seed, c]).permutation`` of that class's
    images (in set order) and the first ``ipc`` kept, so a class's choice does not depend on the
    other classes and a smaller IPC is a subset of a larger one with the same seed. The result is
    grouped by class (ascending), each group in original set order.

    Raises :class:`NotEnoughImagesError` (a ``ValueError``) naming the class and its size when a
    class holds fewer than ``ipc`` images.
    """
    ipc = int(ipc)
    if ipc < 1:
        raise ValueError(f"ipc must be >= 1, got {ipc}")
    y = imageset.classes
    if imageset.class_names:
        wanted: Iterable[int] = range(len(imageset.class_names))
    else:
        wanted = sorted(int(c) for c in np.unique(y) if c >= 0)
    chosen = []
    for c in wanted:
        members = np.flatnonzero(y == c)
        if len(members) < ipc:
            label = imageset.class_names[c] if imageset.class_names else str(c)
            raise NotEnoughImagesError(
                f"class {c} ({label!r}) has {len(members)} images, fewer than ipc={ipc}; "
                "lower ipc or use a larger split"
            )
        perm = np.random.default_rng([int(seed), int(c)]).permutation(len(members))
        chosen.append(np.sort(members[perm[:ipc]]))
    idx = np.concatenate(chosen) if chosen else np.zeros(0, dtype=np.int64)
    out = subset(imageset, idx)
    out.meta["select_per_class"] = {"ipc": ipc, "seed": int(seed)}  # type: ignore[attr-defined]
    return out
