"""Distilled sets for the benchmark: random real images, or an RDED-style patch selection.

``random``
    :func:`lplabel.datasets.select_per_class`: ``ipc`` seeded random real images of each class.
``rded``
    In the manner of RDED (Sun et al., CVPR'24): from up to ``images_per_class`` real images of
    each class, cut ``crops_per_image`` random candidate patches (RandomResizedCrop boxes with
    area in ``crop_scale`` of the image and aspect in 3/4..4/3, torchvision's sampler from
    :mod:`lplabel.views`), render each at the full image size (the relabeler's bilinear kernel),
    and score it with the teacher by the log-probability of the image's true class (the negative
    cross-entropy: RDED's "realism" score). The best ``ipc * factor**2`` patches are chosen —
    first the best patch of each source image, by score (one patch per image keeps the set
    diverse), then, when a class has too few images, further patches by score — downsampled by
    ``factor`` with area averaging and stitched ``factor x factor`` (row-major, in score order) into
    ``ipc`` images per class. ``factor=1`` keeps the best whole crops.

Both return an :class:`~lplabel.images.ImageSet` (uint8 [N, H, W, C], grouped by class) whose
``meta`` records how it was made; :func:`save_distilled` / :func:`load_distilled` keep it in
an ``.npz`` so a sweep reuses the same images.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ...images import ImageSet
from .settings import BenchError

SELECTIONS = ("random", "rded")


def random_real(train: ImageSet, ipc: int, seed: int = 0) -> ImageSet:
    """``ipc`` random real images per class (seeded); see :func:`lplabel.datasets.select_per_class`."""
    from ...datasets import select_per_class

    out = select_per_class(train, ipc, seed=seed)
    out.meta["distill"] = {"method": "random", "ipc": int(ipc), "seed": int(seed)}
    return out


def _class_list(imageset: ImageSet) -> list[int]:
    if imageset.class_names:
        return list(range(len(imageset.class_names)))
    return sorted(int(c) for c in np.unique(imageset.classes) if c >= 0)


@torch.no_grad()
def _score(teacher, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    from ...memory_format import network_input

    z = teacher(network_input(x)).float()
    return torch.log_softmax(z, dim=1).gather(1, target[:, None])[:, 0]


def rded_select(
    train: ImageSet,
    teacher: torch.nn.Module,
    ipc: int,
    *,
    factor: int = 2,
    crops_per_image: int = 5,
    crop_scale=(0.5, 1.0),
    images_per_class: int | None = 300,
    seed: int = 0,
    device="cpu",
    batch_size: int = 512,
    class_index=None,
    progress: Callable[[int], None] | None = None,
) -> ImageSet:
    """RDED-style distilled set (see the module doc).

    ``teacher`` takes float32 NCHW 0..255 images (lplabel's convention) and returns logits;
    ``class_index`` maps class ``c`` to teacher output ``class_index[c]`` (e.g. Tiny-ImageNet
    under an ImageNet-1K teacher). ``progress`` is called with the number of classes done.
    """
    from ...views.replay import ImageBank, render_views
    from ...views import sample_crop_boxes

    ipc, factor, crops_per_image = int(ipc), int(factor), int(crops_per_image)
    if ipc < 1 or factor < 1 or crops_per_image < 1:
        raise BenchError(f"rded needs ipc, factor and crops_per_image >= 1 (got {ipc}, {factor}, {crops_per_image})")
    if not isinstance(train.images, np.ndarray):
        raise BenchError("rded selection needs images of one size (an [N, H, W, C] array)")
    n, H, W, C = train.images.shape
    if H != W:
        raise BenchError(f"rded selection needs square images, got {H}x{W}")
    S = H
    P = S // factor
    if P < 1:
        raise BenchError(f"images of side {S} cannot be cut into {factor}x{factor} patches")
    need = ipc * factor * factor
    dev = torch.device(device)
    teacher = teacher.to(dev).eval()
    ci = None if class_index is None else np.asarray(class_index, dtype=np.int64)

    out_images, out_classes, out_keys, sources = [], [], [], []
    for c in _class_list(train):
        members = np.flatnonzero(train.classes == c)
        rng = np.random.default_rng([int(seed), int(c), 0x4DED])
        if images_per_class is not None and len(members) > images_per_class:
            members = np.sort(rng.choice(members, int(images_per_class), replace=False))
        if len(members) * crops_per_image < need:
            raise BenchError(
                f"class {c} has {len(members)} images x {crops_per_image} crops, fewer than the "
                f"{need} patches rded needs for ipc={ipc}",
                hint="lower --ipc, or use --selection random",
            )
        m = len(members)
        hs = np.full(m * crops_per_image, H)
        ws = np.full(m * crops_per_image, W)
        top, left, h, w, _ = sample_crop_boxes(rng, hs, ws, scale=tuple(crop_scale))
        crop = np.stack([top / H, left / W, h / H, w / W], axis=1).astype(np.float32)
        src = np.repeat(members, crops_per_image)
        bank = ImageBank(train.images[members], device=dev)
        local = np.repeat(np.arange(m), crops_per_image)
        tgt = int(c if ci is None else ci[c])
        scores = np.empty(len(src), dtype=np.float64)
        for a in range(0, len(src), batch_size):
            b = min(a + batch_size, len(src))
            x = render_views(bank, (local[a:b], crop[a:b], np.zeros(b - a, bool)), S)
            scores[a:b] = _score(teacher, x, torch.full((b - a,), tgt, dtype=torch.int64, device=dev)).cpu().numpy()
        # best patch of each image first (by score), then the remaining candidates (by score)
        order = np.lexsort((np.arange(len(src)), -scores))
        _, at = np.unique(local[order], return_index=True)
        first = np.zeros(len(src), dtype=bool)
        first[order[at]] = True
        ranked = np.concatenate([order[first[order]], order[~first[order]]])[:need]
        x = render_views(bank, (local[ranked], crop[ranked], np.zeros(need, bool)), S)
        if factor > 1:
            x = torch.nn.functional.interpolate(x, size=(P, P), mode="area")
        x = x.clamp_(0, 255).round_().to(torch.uint8).cpu()
        x = x.reshape(ipc, factor, factor, C, P, P).permute(0, 1, 4, 2, 5, 3).reshape(ipc, factor * P, factor * P, C)
        out_images.append(x.numpy())
        out_classes += [c] * ipc
        out_keys += [f"rded/{c}/{j}" for j in range(ipc)]
        sources.append(
            np.stack(
                [
                    src[ranked].astype(np.float64),
                    crop[ranked, 0],
                    crop[ranked, 1],
                    crop[ranked, 2],
                    crop[ranked, 3],
                    scores[ranked],
                ],
                axis=1,
            )
        )
        if progress is not None:
            progress(1)
    images = np.concatenate(out_images) if out_images else np.zeros((0, S, S, C), np.uint8)
    res = ImageSet(
        images=np.ascontiguousarray(images),
        classes=np.asarray(out_classes, np.int64),
        keys=out_keys,
        class_names=list(train.class_names),
    )
    meta = dict(getattr(train, "meta", {}) or {})
    meta.pop("indices", None)
    meta["distill"] = {
        "method": "rded",
        "ipc": ipc,
        "factor": factor,
        "crops_per_image": crops_per_image,
        "crop_scale": list(map(float, crop_scale)),
        "images_per_class": images_per_class,
        "seed": int(seed),
        "score": "log p_teacher(true class) of the patch at full size",
    }
    meta["patch_sources"] = np.concatenate(sources) if sources else np.zeros((0, 6))
    res.meta = meta  # type: ignore[attr-defined]
    return res


# ------------------------------------------------------------------------------------ on disk
_META_SKIP = ("indices", "patch_sources", "in1k_index", "source")


def save_distilled(imageset: ImageSet, path) -> Path:
    """Write a distilled set to ``path`` (.npz: images, classes, keys, class_names, meta JSON), atomically."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    meta = dict(getattr(imageset, "meta", {}) or {})
    arrays = {
        "images": np.asarray(imageset.images),
        "classes": imageset.classes,
        "keys": np.asarray(imageset.keys, dtype=str),
        "class_names": np.asarray(imageset.class_names, dtype=str),
    }
    for k in ("indices", "patch_sources", "in1k_index"):
        if meta.get(k) is not None:
            arrays[f"meta_{k}"] = np.asarray(meta[k])
    plain = {k: v for k, v in meta.items() if k not in _META_SKIP}
    arrays["meta_json"] = np.asarray(json.dumps(plain, default=_jsonable))
    fd, tmp = tempfile.mkstemp(prefix=p.name + ".", suffix=".tmp.npz", dir=p.parent)
    os.close(fd)
    try:
        np.savez(tmp, **arrays)
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return p


def load_distilled(path) -> ImageSet:
    """Read a set written by :func:`save_distilled`."""
    with np.load(path, allow_pickle=False) as z:
        iset = ImageSet(
            images=np.ascontiguousarray(z["images"]),
            classes=z["classes"],
            keys=[str(k) for k in z["keys"]],
            class_names=[str(c) for c in z["class_names"]],
        )
        meta = json.loads(str(z["meta_json"]))
        for k in ("indices", "patch_sources", "in1k_index"):
            if f"meta_{k}" in z.files:
                meta[k] = z[f"meta_{k}"]
    iset.meta = meta  # type: ignore[attr-defined]
    return iset


def _jsonable(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)
