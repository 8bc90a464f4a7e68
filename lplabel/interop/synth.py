"""Write legacy label directories the way the original generators do (for tests and benchmarks).

These functions rebuild the objects exactly as the legacy relabel scripts create them (the
seeded ``RandomSampler`` + ``BatchSampler`` order, ``torch.FloatTensor`` crop coordinates
collated to float32 [B, 4], bool flips, ``torch.randperm`` CutMix permutations, ``np.random.beta``
λ as a Python float, ``np.clip`` boxes as ``numpy.int64``, ``.half()`` logits, LPQLD's storage
casts, LPLD/LPQLD's batch-counter and JSON logic, FKD's per-image numpy lists), with teacher
logits from a callable. Nothing here is needed to import or export real label sets.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Callable

import numpy as np

LogitsFn = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def realistic_logits(num_classes: int, spread: float = 1.5) -> LogitsFn:
    """A teacher for the legacy writers: ``fn(ids, rng)`` gives :func:`lplabel.testing.realistic_logits`
    for images ``ids``, each image's class ``ids * 7919 mod C`` raised by a margin of 3..9."""
    from ..testing import realistic_logits as logits_of

    def fn(ids, rng):
        ids = np.asarray(ids)
        return logits_of(rng, len(ids), num_classes, classes=ids * 7919, spread=spread, margin=(3.0, 9.0))

    return fn


def _crop_params(rng, H, W, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)):
    area = H * W
    for _ in range(10):
        target = area * rng.uniform(*scale)
        ar = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
        w = int(round(math.sqrt(target * ar)))
        h = int(round(math.sqrt(target / ar)))
        if 0 < w <= W and 0 < h <= H:
            return int(rng.integers(0, H - h + 1)), int(rng.integers(0, W - w + 1)), h, w
    return (H - min(H, W)) // 2, (W - min(H, W)) // 2, min(H, W), min(H, W)


def _views(rng, b, sizes):
    """coords float32 [B,4] (collated FloatTensors) and flip bool [B] as the legacy datasets return them."""
    import torch

    coords, flips = [], []
    for H, W in sizes:
        i, j, h, w = _crop_params(rng, H, W)
        coords.append(torch.FloatTensor((i / H, j / W, h / H, w / W)))
        flips.append(bool(rng.random() < 0.5))
    return torch.stack(coords, 0), torch.tensor(flips)


def _rand_bbox(size, lam, np_rng):
    W, H = size[2], size[3]
    cut_rat = np.sqrt(1.0 - lam)
    cut_w, cut_h = int(W * cut_rat), int(H * cut_rat)
    cx, cy = np_rng.randint(W), np_rng.randint(H)
    return (
        np.clip(cx - cut_w // 2, 0, W),
        np.clip(cy - cut_h // 2, 0, H),
        np.clip(cx + cut_w // 2, 0, W),
        np.clip(cy + cut_h // 2, 0, H),
    )


def _mix(b, mix, input_size, np_rng):
    import torch

    if mix == "none":
        return None, None, None
    rand_index = torch.randperm(b)
    if mix == "cutmix":
        lam = np_rng.beta(1.0, 1.0)
        return rand_index, lam, list(_rand_bbox((b, 3, input_size, input_size), lam, np_rng))
    lam = np_rng.beta(0.8, 0.8)
    return rand_index, lam, None


def _record(layout, coords, flip, mix_index, lam, bbox, z32, index, *, k=None, use_fp16=True, cutout=False):
    import torch

    out = torch.from_numpy(np.ascontiguousarray(z32, dtype=np.float32))
    second = flip
    if cutout:
        second = torch.rand(len(flip), 7)
    if layout == "lpqld":
        coords = coords.half()
        if mix_index is not None:
            mix_index = mix_index.to(torch.uint8)
        if bbox is not None:
            bbox = [torch.tensor(v, dtype=torch.uint8) for v in bbox]
        if k is not None:
            top = torch.topk(out, k, dim=1)
            values, indices = top.values, top.indices.short()
            if use_fp16:
                values = values.half()
            return [coords, second, mix_index, lam, bbox, values.cpu(), indices.cpu()]
    if use_fp16:
        out = out.half()
    rec = [coords, second, mix_index, lam, bbox, out]
    if layout in ("gvbsm", "edc"):
        rec.append(index)
    if layout == "edc":
        rec.append(torch.stack([torch.zeros(2, 2).int() for _ in range(len(flip))]))
    return rec


def write_batches(
    root,
    layout: str,
    *,
    num_images: int,
    batch_size: int,
    epochs: int,
    num_classes: int = 1000,
    mix: str = "cutmix",
    prune_ratio: float = 0.0,
    k: int | None = None,
    fkd_seed: int = 42,
    seed: int = 0,
    logits: LogitsFn | None = None,
    input_size: int = 224,
    image_size=(224, 224),
    use_fp16: bool = True,
    cutout: bool = False,
) -> Path:
    """Write an ``sre2l``, ``gvbsm``, ``edc``, ``lpld`` or ``lpqld`` label directory; returns ``root``.

    ``lpld``/``lpqld`` follow their generators' schedule: ``drop_last = prune_ratio > 0``,
    ``total_steps = int(epochs * batches * (1 - prune_ratio))`` and ``total_steps // batches + 1``
    epoch passes with the ``==`` break (LPQLD also decrements ``total_steps`` after each pass).
    """
    import torch

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    np_rng = np.random.RandomState(seed)
    torch.manual_seed(seed)
    logits = logits or realistic_logits(num_classes)
    gen = torch.Generator()
    gen.manual_seed(fkd_seed)
    sampler = torch.utils.data.RandomSampler(range(num_images), generator=gen)
    drop_last = prune_ratio > 0 if layout in ("lpld", "lpqld") else False
    batches = torch.utils.data.BatchSampler(sampler, batch_size, drop_last)
    nb = len(batches)
    if layout in ("lpld", "lpqld"):
        total_steps = int(epochs * nb * (1 - prune_ratio))
        passes = total_steps // nb + 1
    else:
        total_steps, passes = None, epochs
    sampler_json: dict = {}
    counter = 0
    for epoch in range(passes):
        folder = root if layout == "lpqld" else root / f"epoch_{epoch}"
        folder.mkdir(exist_ok=True)
        for batch_idx, idx in enumerate(batches):
            index = torch.tensor(idx)
            coords, flip = _views(rng, len(idx), [image_size] * len(idx))
            mix_index, lam, bbox = _mix(len(idx), mix, input_size, np_rng)
            z = logits(np.asarray(idx), rng)
            rec = _record(layout, coords, flip, mix_index, lam, bbox, z, index, k=k, use_fp16=use_fp16, cutout=cutout)
            name = f"batch_{counter}.tar" if layout == "lpqld" else f"batch_{batch_idx}.tar"
            torch.save(rec, folder / name)
            if layout == "lpld":
                sampler_json.setdefault(str(epoch), [])
                sampler_json[str(epoch)] += index.tolist()
            elif layout == "lpqld":
                sampler_json[str(counter)] = index.tolist()
            counter += 1
            if total_steps is not None and counter == total_steps:
                break
        if layout == "lpqld":
            total_steps -= 1
    if layout == "lpld":
        with open(root / "sampler_indices_epoch.json", "w") as f:
            json.dump(sampler_json, f)
    elif layout == "lpqld":
        with open(root / "sampler_indices_batch.json", "w") as f:
            json.dump(sampler_json, f)
    return root


def write_fkd(
    root,
    *,
    num_images: int,
    num_classes: int = 1000,
    num_crops: int = 500,
    k: int = 5,
    label_type: str = "marginal",
    use_fp16: bool = True,
    temperature: float = 1.0,
    num_dirs: int = 4,
    seed: int = 0,
    logits: LogitsFn | None = None,
    image_size=(375, 500),
    split: str = "train",
) -> Path:
    """Write an FKD tree ``root/<split>/<class>/<image>.tar`` of ``[coords, flip, labels]`` numpy lists."""
    import torch

    root = Path(root)
    rng = np.random.default_rng(seed)
    logits = logits or realistic_logits(num_classes)
    for n in range(num_images):
        cls = f"n{n % num_dirs:08d}"
        folder = root / split / cls
        folder.mkdir(parents=True, exist_ok=True)
        coords, flip = _views(rng, num_crops, [image_size] * num_crops)
        z = torch.from_numpy(logits(np.full(num_crops, n), rng))
        p = torch.softmax(z / temperature, dim=1)
        rows = []
        for row in p:
            order = torch.argsort(row, descending=True)
            if label_type == "hard":
                rows.append(torch.argmax(row))
            elif label_type == "smoothing":
                top = order[0]
                rows.append(torch.stack([top.to(row.dtype), row[top]]))
            else:
                rows.append(torch.stack([order[:k].to(row.dtype), row[order[:k]]], dim=0))
        labels = torch.stack(rows, 0).numpy()
        if use_fp16:
            state = [np.float16(coords.numpy()), flip.numpy(), np.float16(labels)]
        else:
            state = [coords.numpy(), flip.numpy(), labels]
        torch.save(state, folder / f"{cls}_{n:05d}.tar")
    return root


def tree_files(root) -> list:
    """Relative paths of all files below ``root``, sorted."""
    root = Path(root)
    return sorted(Path(d, f).relative_to(root).as_posix() for d, _, fs in os.walk(root) for f in fs)
