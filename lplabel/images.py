"""The distilled set: images, their keys and classes, and the fingerprint a store pins them by.

A label store's records name images by integer id (0..N-1). The store's header keeps the image
keys (e.g. relative paths) and a content fingerprint, so a loader can refuse to replay labels
onto a different image set instead of silently training on wrong targets.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

#: Name of the fingerprint algorithm written into headers; see spec/FORMAT.md, "Image fingerprint".
FINGERPRINT_ALGORITHM = "sha256-uint8-hwc-v1"


def fingerprint_images(images: Sequence[np.ndarray] | np.ndarray) -> str:
    """Content fingerprint of an ordered image set (hex sha256).

    For each image in order: its shape as three little-endian uint32 (H, W, C; grayscale HxW
    counts as C=1), then its raw uint8 pixels in H, W, C order. Order matters: the store
    addresses images by position.
    """
    h = hashlib.sha256()
    h.update(b"lplabel-images-v1")
    for img in images:
        a = np.asarray(img)
        if a.dtype != np.uint8:
            raise TypeError(f"images must be uint8 arrays, got {a.dtype}")
        if a.ndim == 2:
            a = a[:, :, None]
        if a.ndim != 3:
            raise ValueError(f"images must be HxW or HxWxC, got shape {a.shape}")
        h.update(np.asarray(a.shape, dtype="<u4").tobytes())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def keys_digest(keys: Sequence[str]) -> str:
    """sha256 over the image keys, each UTF-8 encoded and NUL-terminated."""
    h = hashlib.sha256()
    for k in keys:
        h.update(k.encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()


@dataclass
class ImageSet:
    """An ordered distilled set held in memory as uint8 HxWxC arrays.

    ``images`` is either one uint8 array [N, H, W, C] (all the same size) or a list of N uint8
    arrays of possibly different sizes. ``classes`` holds the hard class of each image (-1 when
    unknown); ``keys`` names each image (relative path, or ``"{index}"``).
    """

    images: np.ndarray | list
    classes: np.ndarray
    keys: list[str]
    class_names: list[str] = field(default_factory=list)
    _fingerprint: str | None = field(default=None, repr=False)

    def __post_init__(self):
        self.classes = np.asarray(self.classes, dtype=np.int64)
        n = len(self.images)
        if len(self.classes) != n or len(self.keys) != n:
            raise ValueError(
                f"ImageSet: {n} images, {len(self.classes)} classes, {len(self.keys)} keys; "
                "all three must have one entry per image"
            )

    def __len__(self) -> int:
        return len(self.images)

    def __repr__(self) -> str:
        """One short line (the dataclass repr printed every pixel): count, shape, classes, keys."""
        n = len(self)
        if isinstance(self.images, np.ndarray):
            shape = "x".join(str(d) for d in self.images.shape[1:]) + f" {self.images.dtype}"
        elif n:
            hw = self.sizes()
            first = np.asarray(self.images[0])
            c = first.shape[2] if first.ndim == 3 else 1
            lo, hi = hw.min(axis=0), hw.max(axis=0)
            shape = (
                f"{lo[0]}x{lo[1]}x{c}" if (lo == hi).all() else f"{lo[0]}x{lo[1]}..{hi[0]}x{hi[1]}x{c}"
            ) + f" {first.dtype}"
        else:
            shape = "no pixels"
        known = self.classes[self.classes >= 0]
        classes = f"{len(np.unique(known))} classes" if len(known) else "classes unknown"
        if self.class_names:
            classes += f" ({len(self.class_names)} names)"
        keys = f", keys {self.keys[0]!r}..{self.keys[-1]!r}" if n else ""
        fp = f", fingerprint {self._fingerprint[:12]}" if self._fingerprint else ""
        return f"ImageSet({n} images, {shape}, {classes}{keys}{fp})"

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            self._fingerprint = fingerprint_images(self.images)
        return self._fingerprint

    def sizes(self) -> np.ndarray:
        """(H, W) of every image, int64 [N, 2]."""
        if isinstance(self.images, np.ndarray):
            n, h, w = self.images.shape[:3]
            return np.tile(np.array([[h, w]], dtype=np.int64), (n, 1))
        return np.array([np.asarray(a).shape[:2] for a in self.images], dtype=np.int64).reshape(-1, 2)

    def header_entry(self) -> dict:
        """The ``images`` object of a store header (without the key list, stored separately)."""
        return {
            "count": len(self),
            "fingerprint": {"algorithm": FINGERPRINT_ALGORITHM, "value": self.fingerprint},
            "keys_sha256": keys_digest(self.keys),
            "class_names": list(self.class_names),
        }


@dataclass
class ImageIndex:
    """What a store records about its image set, without the pixels: keys, classes, fingerprint.

    Writers take an :class:`ImageSet` or an ImageIndex (e.g. when importing legacy labels whose
    images are not at hand; then ``fingerprint`` may be None and loaders can only check keys).
    """

    keys: list[str]
    classes: np.ndarray
    fingerprint: str | None = None
    class_names: list[str] = field(default_factory=list)

    def __post_init__(self):
        self.keys = [str(k) for k in self.keys]
        self.classes = np.asarray(self.classes, dtype=np.int64).reshape(-1)
        if len(self.classes) != len(self.keys):
            raise ValueError(f"ImageIndex: {len(self.keys)} keys but {len(self.classes)} classes")

    def __len__(self) -> int:
        return len(self.keys)

    def header_entry(self) -> dict:
        fp = None if self.fingerprint is None else {"algorithm": FINGERPRINT_ALGORITHM, "value": self.fingerprint}
        return {
            "count": len(self),
            "fingerprint": fp,
            "keys_sha256": keys_digest(self.keys),
            "class_names": list(self.class_names),
        }


def image_index(images) -> ImageIndex:
    """An :class:`ImageIndex` for an ImageSet, an ImageIndex, or a plain image count."""
    if isinstance(images, ImageIndex):
        return images
    if isinstance(images, ImageSet):
        return ImageIndex(list(images.keys), images.classes, images.fingerprint, list(images.class_names))
    if isinstance(images, (int, np.integer)):
        n = int(images)
        return ImageIndex([str(i) for i in range(n)], np.full(n, -1), None)
    raise TypeError(f"images must be an ImageSet, an ImageIndex or an int, got {type(images).__name__}")
