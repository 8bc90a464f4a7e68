"""The IMAGES argument of ``lplabel relabel``: a folder tree, an ``.npz`` pack, or a dataset name."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..images import ImageSet
from .errors import ImageInputError


def load_images(
    source: str, *, ipc: int | None = None, ipc_seed: int = 0, split: str | None = None, data_root=None
) -> ImageSet:
    """Resolve ``source``:

    * an existing directory: an ImageFolder tree ``DIR/<class>/<image>``
      (:func:`lplabel.datasets.load_image_folder`);
    * an existing ``.npz`` file: an image pack (:func:`lplabel.datasets.load_npz_pack`);
    * a built-in dataset name, optionally ``NAME:SPLIT`` (``digits``, ``cifar10``,
      ``tiny-imagenet``; split default ``train``), its files under ``data_root`` (default:
      ``$LPLABEL_DATA``, or a source checkout's ``../shared/data``; :func:`lplabel.datasets.data_root`).

    ``ipc``: keep ``ipc`` random real images per class (:func:`lplabel.datasets.select_per_class`
    with ``ipc_seed``).
    """
    from .. import datasets as ds

    p = Path(source)
    if p.is_dir():
        images = ds.load_image_folder(p)
    elif p.is_file():
        if p.suffix.lower() != ".npz":
            raise ImageInputError(
                f"unsupported image source file {p}",
                hint="give an ImageFolder directory, an .npz pack, or a dataset name "
                f"({', '.join(ds.known_datasets())})",
            )
        images = ds.load_npz_pack(p)
    else:
        name, _, sp = str(source).partition(":")
        canon = {k.replace("-", "").replace("_", ""): k for k in ds.known_datasets()}
        if name.lower().replace("-", "").replace("_", "") not in canon:
            raise ImageInputError(
                f"no such file or folder, and not a dataset name: {source!r}",
                hint=f"datasets: {', '.join(ds.known_datasets())} (optionally NAME:SPLIT)",
            )
        images = ds.load_dataset(name, split=split or sp or "train", root=data_root)
    if ipc is not None:
        images = ds.select_per_class(images, int(ipc), seed=int(ipc_seed))
    return images


def check_images(images) -> ImageSet:
    """Check an ImageSet for relabelling: non-empty, uint8, one channel count; returns it."""
    if not isinstance(images, ImageSet):
        raise ImageInputError(
            f"images must be an lplabel.images.ImageSet, got {type(images).__name__}",
            hint="build one with lplabel.datasets.load_image_folder / load_dataset or ImageSet(...)",
        )
    n = len(images)
    if n == 0:
        raise ImageInputError("the image set is empty")
    arrs = images.images
    if isinstance(arrs, np.ndarray):
        if arrs.dtype != np.uint8 or arrs.ndim not in (3, 4):
            raise ImageInputError(f"images must be uint8 [N, H, W, C], got {arrs.dtype} {arrs.shape}")
        return images
    channels = set()
    for i, a in enumerate(arrs):
        a = np.asarray(a)
        key = images.keys[i] if i < len(images.keys) else str(i)
        if a.dtype != np.uint8 or a.ndim not in (2, 3) or min(a.shape[:2]) < 1:
            raise ImageInputError(f"image {key!r} must be a uint8 HxW or HxWxC array, got {a.dtype} {a.shape}")
        channels.add(1 if a.ndim == 2 else a.shape[2])
    if len(channels) > 1:
        raise ImageInputError(
            f"images have different channel counts {sorted(channels)}",
            hint="convert them to one mode (e.g. all RGB) first",
        )
    return images
