"""Derived view columns: regenerate a store's views from its header instead of storing them.

Stores written by lplabel's relabeler hold views that are a pure function of ``(seed, epoch,
step)``, the image sizes and the augmentation policy (the ``lplabel-views-v2`` sampler of
spec/FORMAT.md §11.3, whose every bit the spec defines; older stores: ``lplabel-views-v1``,
§11.1, numpy's streams). Such a store may declare its four view columns *derived*
(spec/FORMAT.md §1.4): their chains are ``[derived(sampler), bytes]``, they hold no payload, and
their per-chunk CRC-32 is that of the ``bytes`` encoding of the views as written. This module
holds what writer and reader share: which chain marks a derived column, and the regenerator.
"""

from __future__ import annotations

import math

import numpy as np

from ..codecs.chains import derived_chain  # noqa: F401  (chain policy's; re-exported for the writer)
from ..views import SAMPLER_V1, VIEW_SAMPLERS, AugmentPolicy, StepViews, epoch_order, sample_step
from ..views import steps_per_epoch as _steps_per_epoch

#: What the reader says when regenerated v1 views differ from the ones the store was written with
#: (v1 draws from numpy's Generator, whose streams numpy keeps only per version).
MISMATCH_V1 = (
    "views cannot be regenerated here: they were drawn by lplabel-views-v1 under numpy {wrote}, "
    "this is numpy {numpy}; re-encode the store with stored views under numpy {wrote} "
    "(`lplabel encode IN -o OUT --views stored`)"
)
#: ... and for v2, whose views do not depend on numpy: a damaged file or a broken sampler.
MISMATCH_V2 = (
    "regenerated views differ from the ones the store was written with (lplabel-views-v2 does not "
    "depend on numpy: the file is damaged, or it was not written by a correct v2 sampler)"
)


def mismatch_message(header: dict) -> str:
    """The ChecksumError text for views that do not regenerate, naming the numpy of a v1 store."""
    aug = header.get("augmentation") if isinstance(header.get("augmentation"), dict) else {}
    if aug.get("sampler") != SAMPLER_V1:
        return MISMATCH_V2
    tool = header.get("tool") if isinstance(header.get("tool"), dict) else {}
    wrote = tool.get("numpy")
    wrote = wrote if isinstance(wrote, str) else "(not recorded: the store predates lplabel recording it)"
    return MISMATCH_V1.format(wrote=wrote, numpy=np.__version__)


def derived_sampler(codecs) -> str | None:
    """The sampler a derived column's chain (codec objects or JSON) names; None if not derived."""
    if not is_derived(codecs):
        return None
    first = codecs[0]
    if isinstance(first, dict):
        return (first.get("configuration") or {}).get("sampler", SAMPLER_V1)
    return first.sampler


def is_derived(codecs) -> bool:
    """Does a column chain (codec objects or their JSON) start with the ``derived`` marker?"""
    if not codecs:
        return False
    first = codecs[0]
    name = first.get("name") if isinstance(first, dict) else getattr(first, "name", None)
    return name == "derived"


def check_image_sizes(sizes, num_images: int) -> np.ndarray:
    """``images/size`` as int32 [N, 2] (H, W >= 1); ValueError naming the problem."""
    a = np.asarray(sizes)
    if a.shape != (num_images, 2) or (a.size and not np.issubdtype(a.dtype, np.integer)):
        raise ValueError(f"image sizes must be integers of shape ({num_images}, 2), got {a.dtype} {a.shape}")
    if a.size and (a.min() < 1 or a.max() > np.iinfo(np.int32).max):
        raise ValueError("image sizes must lie in [1, 2**31)")
    return np.ascontiguousarray(a, dtype="<i4")


class ViewRegenerator:
    """The views of any step of a store, from ``(seed, augmentation, batch_size, drop_last,
    num_images)`` and the image sizes. Raises ValueError when the header cannot drive the sampler."""

    def __init__(
        self,
        *,
        seed,
        augmentation,
        num_images: int,
        batch_size: int,
        drop_last: bool,
        steps_per_epoch: int,
        image_sizes,
    ):
        if not isinstance(augmentation, dict) or augmentation.get("sampler") not in VIEW_SAMPLERS:
            raise ValueError(
                f"derived views need augmentation.sampler in {VIEW_SAMPLERS}, got "
                f"{augmentation.get('sampler') if isinstance(augmentation, dict) else augmentation!r}"
            )
        self.policy = AugmentPolicy.from_json(augmentation)
        self.sampler = self.policy.sampler
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= int(seed) < 2**32:
            raise ValueError(f"derived views need an integer seed in [0, 2**32), got {seed!r}")
        self.seed = int(seed)
        self.num_images = int(num_images)
        self.batch_size = int(batch_size)
        self.drop_last = bool(drop_last)
        spe = _steps_per_epoch(self.num_images, self.batch_size, self.drop_last)
        if int(steps_per_epoch) != spe:
            raise ValueError(
                f"derived views need steps_per_epoch = {spe} for {num_images} images in steps of "
                f"{batch_size} (drop_last={drop_last}), the store has {steps_per_epoch}"
            )
        self.sizes = check_image_sizes(image_sizes, self.num_images).astype(np.int64)
        self._order = (None, None)

    @classmethod
    def from_header(cls, header: dict, image_sizes) -> "ViewRegenerator":
        named = {derived_sampler(c.get("codecs")) for c in header["columns"].values() if is_derived(c.get("codecs"))}
        aug = header.get("augmentation")
        if named and named != {aug.get("sampler") if isinstance(aug, dict) else None}:
            raise ValueError(
                f"the derived columns name sampler {sorted(map(str, named))} but augmentation.sampler "
                f"is {aug.get('sampler') if isinstance(aug, dict) else None!r}"
            )
        return cls(
            seed=header.get("seed"),
            augmentation=header.get("augmentation"),
            num_images=header["num_images"],
            batch_size=header["batch_size"],
            drop_last=header["drop_last"],
            steps_per_epoch=header["steps_per_epoch"],
            image_sizes=image_sizes,
        )

    def __getstate__(self):
        d = self.__dict__.copy()
        d["_order"] = (None, None)  # an epoch's order is recomputed where needed (workers)
        return d

    def step(self, epoch: int, step: int, mix_lambda: float | None = None) -> StepViews:
        """The views of (epoch, step). v2: pass the stored λ (its views follow from it, see
        :func:`lplabel.views.sample_step`); v1 draws λ and the caller compares it."""
        e, order = self._order
        if e != epoch:
            order = epoch_order(self.seed, int(epoch), self.num_images, self.sampler)
            self._order = (int(epoch), order)
        B = self.batch_size
        ids = order[int(step) * B : (int(step) + 1) * B]
        return sample_step(
            self.seed,
            int(epoch),
            int(step),
            ids,
            self.sizes,
            self.policy,
            mix_lambda=mix_lambda if self.sampler != SAMPLER_V1 else None,
        )


def same_views(a: StepViews, b: StepViews) -> str | None:
    """None when equal (bytes as stored), else the first differing field's name."""
    if len(a) != len(b):
        return "number of views"
    for name in ("image", "crop", "flip", "mix_partner", "mix_box"):
        if getattr(a, name).tobytes() != getattr(b, name).tobytes():
            return name
    la, lb = a.mix_lambda, b.mix_lambda
    if not (la == lb or (math.isnan(la) and math.isnan(lb))):
        return "mix_lambda"
    return None
