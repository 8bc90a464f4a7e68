"""The pixel convention of ``batch.images``: 0..255, 0..1, or normalised with a mean and std.

lplabel renders views in 0..255 float32 pixel units because that is what the relabeler fed the
teacher (``lplabel.views.replay``, lplabel's teachers normalise internally). A student written for
torchvision/timm expects ``transforms.ToTensor()`` (0..1) followed by ``transforms.Normalize(mean,
std)`` with 0..1 statistics: applied to 0..255 pixels that ``Normalize`` gives inputs with a mean
of several hundred, silently. ``normalize=`` (``ReplayLoader``, ``StepDataset``) converts the
rendered, mixed views in the workers, with torchvision's arithmetic (``x / 255``, then
``(x - mean) / std``), and every batch records what it holds in ``batch.pixels``:

- ``"0-255"``: lplabel's rendering as it is (``normalize="0-255"``);
- ``"0-1"``: divided by 255, as ``ToTensor`` (``normalize="0-1"``);
- ``"normalized"``: ``(x / 255 - mean) / std`` (``normalize="imagenet"`` or ``(mean, std)`` in
  0..1 units, exactly the numbers a ``transforms.Normalize`` call takes);
- ``"custom"``: a ``transform=`` callable ran after that; lplabel no longer knows the range.

The adapters (:mod:`lplabel.torch.adapters`) read ``batch.pixels`` so that they never normalise
twice.
"""

from __future__ import annotations

import math

import torch

#: torchvision's ImageNet statistics (0..1 units), the ones SRe2L/CDA/LPLD/LPQLD/G-VBSM normalise with.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

PIXEL_KINDS = ("0-255", "0-1", "normalized", "custom")


class Normalize:
    """A picklable in-place conversion of 0..255 float images [B, C, H, W] (see the module doc)."""

    def __init__(self, kind: str = "0-255", mean=None, std=None, name: str | None = None):
        self.kind = kind
        self.mean = None if mean is None else tuple(float(v) for v in mean)
        self.std = None if std is None else tuple(float(v) for v in std)
        self.name = name or kind

    def __repr__(self) -> str:
        if self.kind != "normalized":
            return f"Normalize({self.kind!r})"
        return f"Normalize({self.name!r}, mean={self.mean}, std={self.std})"

    def check_channels(self, channels: int, where: str) -> None:
        if self.mean is not None and len(self.mean) not in (1, channels):
            raise ValueError(
                f"{where}: normalize={self.name!r} has {len(self.mean)} channel statistics, the images "
                f"have {channels} channels -- give one mean/std per channel (or one for all)"
            )

    def __call__(self, imgs: torch.Tensor) -> torch.Tensor:
        if self.kind == "0-255":
            return imgs
        imgs = imgs.div_(255.0)
        if self.kind == "0-1":
            return imgs
        shape = (1, len(self.mean), 1, 1)
        mean = torch.tensor(self.mean, dtype=imgs.dtype, device=imgs.device).view(shape)
        std = torch.tensor(self.std, dtype=imgs.dtype, device=imgs.device).view(shape)
        return imgs.sub_(mean).div_(std)


def parse_normalize(spec) -> Normalize:
    """``normalize=`` as given: ``"0-255"``, ``"0-1"``, ``"imagenet"``, ``(mean, std)`` or
    ``{"mean": ..., "std": ...}`` (0..1 units, as ``transforms.Normalize``), or a :class:`Normalize`."""
    if isinstance(spec, Normalize):
        return spec
    if spec is None or spec == "0-255":
        return Normalize("0-255")
    if spec == "0-1":
        return Normalize("0-1")
    if spec == "imagenet":
        return Normalize("normalized", IMAGENET_MEAN, IMAGENET_STD, "imagenet")
    if isinstance(spec, dict) and set(spec) == {"mean", "std"}:
        spec = (spec["mean"], spec["std"])
    if isinstance(spec, (tuple, list)) and len(spec) == 2 and not isinstance(spec[0], str):
        try:
            mean = [float(v) for v in (spec[0] if hasattr(spec[0], "__len__") else [spec[0]])]
            std = [float(v) for v in (spec[1] if hasattr(spec[1], "__len__") else [spec[1]])]
        except (TypeError, ValueError):
            mean = std = []
        if (
            mean
            and len(mean) == len(std)
            and all(math.isfinite(v) for v in mean)
            and all(math.isfinite(v) and v > 0 for v in std)
        ):
            if max(mean) > 1.5 or max(std) > 1.5:
                raise ValueError(
                    f"normalize=(mean, std) takes 0..1 statistics as transforms.Normalize does "
                    f"(e.g. {IMAGENET_MEAN}, {IMAGENET_STD}); got mean={mean}, std={std}, which look "
                    "like 0..255 values -- divide them by 255"
                )
            return Normalize("normalized", mean, std, "custom mean/std")
    raise ValueError(
        f"normalize must be '0-255', '0-1', 'imagenet' or (mean, std) with one positive std per mean, got {spec!r}"
    )
