"""Adapters that give existing training scripts the shapes they already consume.

The SRe2L-family loaders return, per batch, ``(images, target, mix_index, mix_lam, mix_bbox,
soft_label)`` (after their patched ``_MapDatasetFetcher``); LPQLD returns top-k ``values`` and
``indices`` instead of a dense ``soft_label``; G-VBSM uses ``(images, target, soft_label)`` with
an MSE loss. These functions build those tuples from a :class:`~lplabel.torch.batch.StepBatch`
so a port changes the loader lines and keeps the loss code (see docs/porting.md).

Mixing: lplabel's dataset already applies the stored CutMix/MixUp to ``batch.images``. A legacy
loop that still calls its own ``mix_aug(images, args, mix_index, mix_lam, mix_bbox)`` must either
drop that call, or build the loader with ``apply_mix=False`` so it receives unmixed views (the
legacy ``mix_aug`` then reproduces the same pixels: the stored box follows the legacy
``(bbx1, bby1, bbx2, bby2)`` = (row0, col0, row1, col1) convention).

Pixels: the legacy loops receive images normalised by their dataset's ``transforms.Normalize``
with ImageNet statistics. Build the loader with ``normalize="imagenet"`` (or ``(mean, std)``) and
the adapters pass ``batch.images`` through. ``normalize="auto"`` (default) also makes a batch of
0..255 pixels (a loader built without ``normalize=``) right: it is normalised here with ImageNet
statistics, with a warning, because feeding 0..255 pixels to a loop written for normalised input
gives silently wrong training (before this option the adapters returned 0..255 pixels). Pass
``normalize=None`` to get ``batch.images`` unchanged, or ``"imagenet"``/``(mean, std)`` to choose
the statistics for a 0..255 or 0..1 batch.
"""

from __future__ import annotations

import math
import warnings

import torch

from .batch import StepBatch
from .pixels import parse_normalize

ADAPTER_NORMALISED = (
    "{fn}: batch.images were float32 in 0..255 (the loader was built without normalize=); the legacy "
    "loop expects them normalised, so they were normalised here with ImageNet mean/std as the "
    "legacy scripts' transforms.Normalize does (before, the adapters returned 0..255). Build the "
    "loader with normalize='imagenet' (or (mean, std)) to normalise in the workers, or pass "
    "normalize=None here to keep 0..255"
)


def adapted_images(batch: StepBatch, normalize="auto", fn: str = "the adapter"):
    """``batch.images`` in the convention the legacy loops expect (see the module doc).

    ``"auto"``: 0..255 batches are normalised with ImageNet statistics (with a warning); every other
    batch is returned as it is. ``None``: as it is. ``"imagenet"``/``(mean, std)``: normalised from
    0..255 or 0..1; a batch that is already normalised (``pixels`` ``"normalized"``/``"custom"``)
    is refused rather than normalised twice.
    """
    x = batch.images
    if x is None or normalize is None:
        return x
    kind = batch.pixels
    if normalize == "auto":
        if kind != "0-255":
            return x
        warnings.warn(ADAPTER_NORMALISED.format(fn=fn), UserWarning, stacklevel=3)
        normalize = "imagenet"
    norm = parse_normalize(normalize)
    if kind in ("normalized", "custom"):
        raise ValueError(
            f"{fn}: batch.images are already {'normalised' if kind == 'normalized' else 'transformed'} "
            f"by the loader (batch.pixels={kind!r}); normalising them again would give wrong inputs -- "
            "drop normalize= here (or build the loader with normalize='0-255')"
        )
    if norm.kind == "0-255":
        return x
    if kind == "0-1":
        x = x * 255.0
    else:
        x = x.clone()
    return norm(x)


def _mix_parts(batch: StepBatch):
    if math.isnan(batch.mix_lambda):
        return None, None, None
    box = [int(v) for v in batch.mix_box.tolist()]
    cutmix = batch.mix_kind == "cutmix" or (batch.mix_kind == "unknown" and any(box))
    bbox = box if cutmix else None
    return batch.mix_partner, float(batch.mix_lambda), bbox


def _stored_values(lab: dict, idx: torch.Tensor) -> torch.Tensor:
    """The stored top-k values as float32, or zeros for a store of class indices only."""
    if "values" not in lab:
        return torch.zeros(idx.shape, dtype=torch.float32, device=idx.device)
    return lab["values"].to(torch.float32)


def dense_logits(batch: StepBatch, fill: str = "auto") -> torch.Tensor:
    """Teacher logits as a dense float32 [B, C] tensor, for code that applies ``softmax(z / T)``.

    Dense stores: the stored logits. Top-k stores: the k stored logits at their classes, and
    every dropped class set to ``fill``: ``"-inf"`` (softmax then gives LPQLD's renormalised
    top-k, "MR"), ``"tail"`` (the fill logit implied by the stored tail summary: ``tail −
    log(C−k)`` for a logsumexp tail, the min for a min tail; softmax then gives the ``tail``
    reconstruction), or ``"auto"`` (tail when stored, else -inf). Note that ``-inf`` entries
    break MSE-on-logits losses; use :func:`lplabel.torch.losses.mse_logits_loss` with
    ``batch.logit_targets()`` for those.

    Stores of class indices only (topk type ``none``): logit 0 at the k stored classes (they
    share the mass equally under any ``softmax(z / T)``), ``-inf`` elsewhere; ``fill="tail"`` is
    refused. These zeros are not teacher logits: do not regress on them.
    """
    lab = batch.label
    if "logits" in lab:
        return lab["logits"].to(torch.float32)
    idx = lab["indices"].to(torch.int64)
    v = _stored_values(lab, idx)
    b, k = v.shape
    if fill == "auto":
        fill = "tail" if "tail" in lab else "-inf"
    if fill == "-inf":
        base = v.new_full((b, batch.num_classes), float("-inf"))
    elif fill == "tail":
        if "tail" not in lab:
            raise ValueError("fill='tail' needs a stored tail summary; this store has none")
        t = lab["tail"].to(torch.float32)
        if batch.tail_kind != "min":
            t = t - math.log(max(batch.num_classes - k, 1))
        base = t[:, None].expand(b, batch.num_classes).clone()
    else:
        raise ValueError(f"fill must be 'auto', '-inf' or 'tail', got {fill!r}")
    return base.scatter_(1, idx, v)


def legacy_batch(batch: StepBatch, fill: str = "auto", normalize="auto"):
    """``(images, target, mix_index, mix_lam, mix_bbox, soft_label)`` as SRe2L/CDA/LPLD loops expect.

    ``images``: normalised as the legacy loops expect (``normalize``: see :func:`adapted_images`).
    ``mix_index`` int64 [B], ``mix_lam`` float and ``mix_bbox`` a list of 4 ints are ``None``
    when the step is not mixed (``mix_bbox`` is also None for MixUp, as in SRe2L). ``soft_label``
    is :func:`dense_logits` (float32, pre-softmax; the legacy loss applies ``softmax(· / T)``).
    """
    mix_index, lam, bbox = _mix_parts(batch)
    images = adapted_images(batch, normalize, "legacy_batch")
    return images, batch.target, mix_index, lam, bbox, dense_logits(batch, fill)


def lpqld_batch(batch: StepBatch, normalize="auto"):
    """``(images, target, mix_index, mix_lam, mix_bbox, values, indices)`` as LPQLD's loop uses.

    ``images``: normalised as the legacy loops expect (``normalize``: see :func:`adapted_images`).
    ``values``: float32 [B, k] stored top-k logits; ``indices``: int64 [B, k]. LPQLD then builds
    ``p_t = zeros.scatter(1, indices, softmax(values / T))``; ``batch.dense()`` gives the same.
    A store of class indices only (topk type ``none``) gives zero ``values``: LPQLD's
    ``softmax(values / T)`` then shares the mass equally over the k classes, as the store means.
    """
    if "indices" not in batch.label:
        raise ValueError("lpqld_batch needs a top-k store; this one keeps dense logits (use legacy_batch)")
    mix_index, lam, bbox = _mix_parts(batch)
    images = adapted_images(batch, normalize, "lpqld_batch")
    return (
        images,
        batch.target,
        mix_index,
        lam,
        bbox,
        _stored_values(batch.label, batch.label["indices"]),
        batch.label["indices"].to(torch.int64),
    )


def gvbsm_batch(batch: StepBatch, normalize="auto"):
    """``(images, target, soft_label)`` for G-VBSM/EDC's ``mse_gt`` loss (dense stores).

    ``images``: normalised as the legacy loops expect (``normalize``: see :func:`adapted_images`).
    For top-k stores use ``mse_gt_loss(out, batch.logit_targets(), batch.target)`` instead: the
    dropped logits do not exist (see :mod:`lplabel.torch.losses`).
    """
    if "logits" not in batch.label:
        raise ValueError(
            "gvbsm_batch needs dense logits; for a top-k store use "
            "mse_gt_loss(out, batch.logit_targets(), batch.target)"
        )
    return adapted_images(batch, normalize, "gvbsm_batch"), batch.target, batch.label["logits"].to(torch.float32)
