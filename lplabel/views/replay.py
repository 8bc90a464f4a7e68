"""Render stored views onto uint8 source images and replay CutMix/MixUp, batched, CPU or GPU.

The relabeler renders views with this module before running the teacher, and the loader renders
the *stored* views with the same code at training time, so the student sees exactly the pixels
the teacher labelled (up to float rounding across devices). Normalisation is the caller's job:
outputs are float32 in 0..255 pixel units.

Resize kernel ``bilinear-grid-v1`` (the policy's ``resize="bilinear"``), exactly:

* The view's pixel box ``(top, left, h, w)`` comes from its fractional crop via
  :func:`lplabel.views.crop_pixels` (``np.rint(frac * size)``, clipped).
* Output pixel ``(y, x)`` of the S×S view, with ``x' = S−1−x`` when the view is flipped and
  ``x' = x`` otherwise, samples the source at row ``r = top + (y+0.5)·h/S − 0.5`` and column
  ``c = left + (x'+0.5)·w/S − 0.5`` (pixel ``k``'s centre is at coordinate ``k``).
* ``r`` and ``c`` are clamped to ``[0, H−1]`` and ``[0, W−1]``, and the value is the bilinear
  interpolation of the four neighbouring source pixels. No antialiasing: large downscales alias
  (unlike PIL/torchvision's antialiased resize used by the legacy SRe2L pipeline).
* The grid samples the whole source image, not the cropped patch: near the crop's edges the
  interpolation may use pixels just outside the box.
* Implemented as ``torch.nn.functional.grid_sample(mode="bilinear", padding_mode="border",
  align_corners=False)`` with the grid coordinates computed in float64 and passed as float32;
  results agree across devices to float32 rounding (a few 1e-3 pixel units), not bit for bit.
  Views whose pixel box is exactly S×S (no resize) sample pixel centres only; they are copied
  instead, so a crop at the source scale (e.g. the identity) reproduces the source bit-exactly.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from . import AugmentPolicy, StepViews, crop_pixels

RESIZE_KERNEL = "bilinear-grid-v1"


class ImageBank:
    """Source images prepared once for rendering: uint8, channels-first, grouped by size.

    ``images`` is one uint8 array or tensor ``[N, H, W, C]`` (``[N, H, W]`` for grayscale) or a
    sequence of N uint8 ``H×W×C`` / ``H×W`` arrays or tensors of possibly different sizes. All
    images must share the channel count C. Each size group is kept as one uint8 tensor
    ``[n, C, H, W]`` on ``device``, so repeated renders neither re-convert nor re-upload.
    """

    def __init__(self, images, device=None):
        if device is None:  # keep tensors where they are; arrays start on the CPU
            device = images.device if isinstance(images, torch.Tensor) else "cpu"
        device = torch.device(device)
        if isinstance(images, (np.ndarray, torch.Tensor)) and images.ndim in (3, 4):
            stack = (
                torch.as_tensor(images if images.flags.writeable else np.array(images))
                if isinstance(images, np.ndarray)
                else torch.as_tensor(images)
            )
            if stack.dtype != torch.uint8:
                raise TypeError(f"images must be uint8, got {stack.dtype}")
            if stack.ndim == 3:
                stack = stack[..., None]
            n, h, w, c = stack.shape
            groups = [stack.to(device).permute(0, 3, 1, 2).contiguous()] if n else []
            group_of = np.zeros(n, dtype=np.int64)
            local = np.arange(n, dtype=np.int64)
            sizes = np.tile(np.array([[h, w]], dtype=np.int64), (n, 1))
            channels = c
        elif isinstance(images, Sequence) or isinstance(images, np.ndarray):
            arrays = [self._as_hwc(i, a) for i, a in enumerate(images)]
            channels = {a.shape[2] for a in arrays}
            if len(channels) > 1:
                raise ValueError(f"all images must have the same channel count, got {sorted(channels)}")
            channels = channels.pop() if channels else 0
            sizes = np.array([a.shape[:2] for a in arrays], dtype=np.int64).reshape(-1, 2)
            uniq, group_of = np.unique(sizes, axis=0, return_inverse=True)
            group_of = group_of.reshape(-1).astype(np.int64)
            local = np.zeros(len(arrays), dtype=np.int64)
            groups = []
            for g in range(len(uniq)):
                members = np.nonzero(group_of == g)[0]
                local[members] = np.arange(len(members))
                stack = torch.stack([arrays[i] for i in members]).to(device)
                groups.append(stack.permute(0, 3, 1, 2).contiguous())
        else:
            raise TypeError(
                "images must be a uint8 array/tensor [N,H,W,C] or a sequence of HxWxC uint8 arrays, "
                f"got {type(images).__name__}"
            )
        self.device = device
        self.channels = int(channels)
        self.sizes = sizes  # int64 [N, 2] (H, W), host side
        self._groups = groups
        self._group_of = group_of
        self._local = local

    @staticmethod
    def _as_hwc(i: int, a) -> torch.Tensor:
        if isinstance(a, np.ndarray) and not a.flags.writeable:
            a = np.array(a)  # e.g. Pillow-decoded: torch warns on read-only arrays (the bank copies anyway)
        t = torch.as_tensor(a)
        if t.dtype != torch.uint8:
            raise TypeError(f"image {i}: must be uint8, got {t.dtype}")
        if t.ndim == 2:
            t = t[..., None]
        if t.ndim != 3 or min(t.shape[:2]) < 1:
            raise ValueError(f"image {i}: must be HxW or HxWxC with H, W >= 1, got {tuple(t.shape)}")
        return t

    def __len__(self) -> int:
        return len(self.sizes)

    def to(self, device) -> "ImageBank":
        """A bank with the same images on ``device`` (self if already there)."""
        device = torch.device(device)
        if device == self.device:
            return self
        other = object.__new__(ImageBank)
        other.__dict__.update(self.__dict__)
        other.device = device
        other._groups = [g.to(device) for g in self._groups]
        return other


def _view_arrays(views):
    """(image, crop, flip) numpy arrays from StepViews, a mapping, or a 3-tuple."""
    if isinstance(views, StepViews):
        return views.image, views.crop, views.flip
    if isinstance(views, Mapping):
        return views["image"], views["crop"], views["flip"]
    if hasattr(views, "image") and hasattr(views, "crop") and hasattr(views, "flip"):
        return views.image, views.crop, views.flip
    image, crop, flip = views
    return image, crop, flip


def _to_numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def sampling_grid_axes(boxes: np.ndarray, sizes: np.ndarray, flip: np.ndarray, size: int):
    """Normalised grid_sample coordinates (float64) per view, before expansion to 2-D.

    Returns ``gx [B, S]`` and ``gy [B, S]`` in grid_sample's ``align_corners=False`` units,
    ``g = (2·p + 1)/L − 1`` for source pixel coordinate ``p`` along an axis of length ``L``,
    with ``p`` as in the module doc (flipped views mirror the output columns).
    """
    top, left, h, w = (boxes[:, k : k + 1].astype(np.float64) for k in range(4))
    H = sizes[:, 0:1].astype(np.float64)
    W = sizes[:, 1:2].astype(np.float64)
    centres = (np.arange(size, dtype=np.float64) + 0.5) / size  # (y + 0.5) / S
    rows = top + centres * h - 0.5
    cols = left + centres * w - 0.5
    cols = np.where(np.asarray(flip, dtype=bool)[:, None], cols[:, ::-1], cols)
    gy = (2.0 * rows + 1.0) / H - 1.0
    gx = (2.0 * cols + 1.0) / W - 1.0
    return gx, gy


def render_views(images, views, size, device=None) -> torch.Tensor:
    """Render views (crop → bilinear resize → flip) as float32 ``[B, C, S, S]`` in 0..255 units.

    ``images``: an :class:`ImageBank` (preferred: build once, keep on the device) or anything
    ``ImageBank`` accepts. ``views``: a :class:`~lplabel.views.StepViews`, a mapping with
    ``image``/``crop``/``flip``, or an ``(image, crop, flip)`` tuple (numpy or torch).
    ``size``: the output side S, or an :class:`~lplabel.views.AugmentPolicy`. ``device``: where
    to render; defaults to the bank's device (a raw image set is uploaded there per call).

    One ``grid_sample`` call per distinct source size among the views, so same-size sources
    render in a single call whatever their crop boxes. Mixing is not applied; see
    :func:`apply_mix` / :func:`render_step`.
    """
    if isinstance(size, AugmentPolicy):
        if size.resize_kernel != RESIZE_KERNEL:
            raise ValueError(f"policy uses resize kernel {size.resize_kernel!r}; only {RESIZE_KERNEL!r} is implemented")
        size = size.output_size
    size = int(size)
    if size < 1:
        raise ValueError(f"output size must be >= 1, got {size}")
    bank = images if isinstance(images, ImageBank) else ImageBank(images, device)
    if device is not None:
        bank = bank.to(device)
    dev = bank.device

    image, crop, flip = (_to_numpy(a) for a in _view_arrays(views))
    ids = image.astype(np.int64).reshape(-1)
    b = len(ids)
    crop = crop.astype(np.float32).reshape(b, 4)
    flip = flip.astype(bool).reshape(b)
    if b and (ids.min() < 0 or ids.max() >= len(bank)):
        raise ValueError(f"view image ids must be in [0, {len(bank)}), got [{ids.min()}, {ids.max()}]")

    out = torch.empty((b, bank.channels, size, size), dtype=torch.float32, device=dev)
    if b == 0:
        return out
    sizes = bank.sizes[ids]
    boxes = crop_pixels(crop, sizes)
    groups = bank._group_of[ids]
    for g in np.unique(groups):
        sel = np.nonzero(groups == g)[0]
        res = _render_group(bank._groups[g], bank._local[ids[sel]], boxes[sel], sizes[sel], flip[sel], size)
        if len(sel) == b:
            return res
        out.index_copy_(0, torch.from_numpy(sel).to(dev), res)
    return out


def _render_group(
    group: torch.Tensor, local: np.ndarray, boxes: np.ndarray, sizes: np.ndarray, flip: np.ndarray, size: int
) -> torch.Tensor:
    """Render views whose sources all sit in one same-size ``group`` tensor [n, C, H, W] uint8."""
    dev = group.device
    n = len(local)
    out = torch.empty((n, group.shape[1], size, size), dtype=torch.float32, device=dev)
    # Views whose box is exactly S x S need no resize: every sample point is a pixel centre, so
    # copy the pixels (bit-exact) instead of trusting float32 grid arithmetic to land on them.
    copy = (boxes[:, 2] == size) & (boxes[:, 3] == size)
    parts = [(np.nonzero(~copy)[0], False), (np.nonzero(copy)[0], True)]
    for idx, is_copy in parts:
        if len(idx) == 0:
            continue
        if is_copy:
            ar = np.arange(size)
            rows = boxes[idx, 0:1] + ar
            cols = boxes[idx, 1:2] + ar
            cols = np.where(flip[idx, None], cols[:, ::-1], cols)
            src_i = torch.from_numpy(local[idx]).to(dev)
            res = group[
                src_i[:, None, None],
                :,
                torch.from_numpy(rows).to(dev)[:, :, None],
                torch.from_numpy(np.ascontiguousarray(cols)).to(dev)[:, None, :],
            ]
            res = res.permute(0, 3, 1, 2).to(torch.float32).contiguous()  # [m,S,S,C] -> [m,C,S,S]
        else:
            gx, gy = sampling_grid_axes(boxes[idx], sizes[idx], flip[idx], size)
            gx = torch.from_numpy(gx.astype(np.float32)).to(dev)
            gy = torch.from_numpy(gy.astype(np.float32)).to(dev)
            m = len(idx)
            grid = torch.stack((gx[:, None, :].expand(m, size, size), gy[:, :, None].expand(m, size, size)), dim=-1)
            src = group.index_select(0, torch.from_numpy(local[idx]).to(dev)).to(torch.float32)
            res = F.grid_sample(src, grid, mode="bilinear", padding_mode="border", align_corners=False)
        if len(idx) == n:
            return res
        out.index_copy_(0, torch.from_numpy(idx).to(dev), res)
    return out


def apply_mix(
    batch: torch.Tensor, mix_partner, mix_lambda: float, mix_box, kind: str, inplace: bool = False
) -> torch.Tensor:
    """Replay one step's CutMix/MixUp on rendered views ``batch [B, C, S, S]`` (float).

    ``kind`` is the policy's mix kind. CutMix: ``out[i][:, r0:r1, c0:c1] = x[partner[i]][:, r0:r1,
    c0:c1]`` with ``mix_box = (r0, c0, r1, c1)`` in output pixels. MixUp:
    ``out = λ·x + (1−λ)·x[partner]``. ``"none"`` returns the batch unchanged. Partners read the
    *unmixed* batch (as the legacy ``images[perm]`` copy does), also when ``inplace``.
    """
    if kind == "none":
        return batch
    if kind not in ("cutmix", "mixup"):
        raise ValueError(f"mix kind must be 'none', 'cutmix' or 'mixup', got {kind!r}")
    partner_np = _to_numpy(mix_partner).astype(np.int64).reshape(-1)  # checked host-side: no sync
    b = batch.shape[0]
    if len(partner_np) != b:
        raise ValueError(f"mix_partner has {len(partner_np)} entries for a batch of {b}")
    if b and (partner_np.min() < 0 or partner_np.max() >= b):
        raise ValueError(f"mix partners must be in [0, {b}) for {kind}, got [{partner_np.min()}, {partner_np.max()}]")
    partner = torch.from_numpy(partner_np).to(batch.device)
    if kind == "cutmix":
        r0, c0, r1, c1 = (int(v) for v in _to_numpy(mix_box).reshape(4))
        out = batch if inplace else batch.clone()
        if r1 > r0 and c1 > c0:
            out[:, :, r0:r1, c0:c1] = batch[partner, :, r0:r1, c0:c1]
        return out
    lam = float(mix_lambda)
    mixed = lam * batch + (1.0 - lam) * batch[partner]
    if inplace:
        batch.copy_(mixed)
        return batch
    return mixed


def render_step(images, views: StepViews, policy: AugmentPolicy, device=None) -> torch.Tensor:
    """Render a step's views and apply its mix: what the teacher sees and the student trains on."""
    batch = render_views(images, views, policy, device=device)
    return apply_mix(batch, views.mix_partner, views.mix_lambda, views.mix_box, policy.mix, inplace=True)
