"""Seeded, vectorised view generation: which images a step holds and how each is augmented.

A *view* is one augmented presentation of one image: a crop box, a horizontal flip and, when the
policy mixes, its partner view within the step plus the step's λ and cut box. A *step* is the B
views the teacher labels together; an *epoch* is the steps that cover the distilled set once.

Everything here is numpy only (no torch), so the relabeler, the loader and independent readers
can share it without pulling in a framework.

Two samplers (``AugmentPolicy.sampler``): ``lplabel-views-v2`` (:data:`SAMPLER_V2`, the default;
spec/FORMAT.md §11.3, implemented in :mod:`lplabel.views.v2`) is defined bit for bit by the spec
— Philox4x32-10 words addressed by (seed, epoch, step, purpose, index), exact bounded integers,
crop geometry in IEEE basic operations — so any language reproduces it. ``lplabel-views-v1``
(:data:`SAMPLER_V1`, stores written before format 1.2) draws from numpy's ``Generator`` as
described below; its streams are numpy's, reproducible only under a matching numpy. The
conventions below (crop boxes, flips, mixing) hold for both; the seeding and draw order described
under *Seeding* are v1's.

Conventions (fixed by the store format, spec/FORMAT.md):

* **Crop box**: float32 ``[B, 4]`` = ``(top, left, height, width)`` as fractions of the *source*
  image's H and W (the legacy SRe2L ``(i/H, j/W, h/H, w/W)``). The pixel box is recovered per
  coordinate as ``np.rint(frac * size)`` (computed in float64 from the float32 value), then
  clipped to the image with height and width at least 1: see :func:`crop_pixels`. The sampler
  picks integer pixel boxes, so this round trip is exact for images up to ~8 million pixels
  per side.
* **Flip**: bool ``[B]``; a horizontal flip of the crop, applied after the resize.
* **Mix**, one per step: kind ``"none" | "cutmix" | "mixup"`` (from the policy); λ (float64);
  box int16 ``(row0, col0, row1, col1)``, half-open, in *output* pixels; partner int16 ``[B]``,
  an index within the step (the partner of view ``i`` is ``perm[i]``).

  - CutMix: ``out[i][:, row0:row1, col0:col1] = out[perm[i]][:, row0:row1, col0:col1]`` (legacy
    ``images[:, :, bbx1:bbx2, bby1:bby2] = images[perm, :, bbx1:bbx2, bby1:bby2]``: the legacy
    ``bbx`` is the row axis). The box follows the legacy ``rand_bbox``: ``cut_rat = sqrt(1-λ)``,
    ``cut_h = int(S*cut_rat)``, ``cut_w = int(S*cut_rat)``, centre ``(cy, cx)`` uniform integers
    in ``[0,S) x [0,S)``, ``row0 = clip(cy - cut_h//2, 0, S)``, ``row1 = clip(cy + cut_h//2, 0, S)``
    and likewise for columns. λ is the Beta draw as sampled, *not* re-adjusted to the clipped
    box area (the stored label is the teacher's output on the mixed image, so λ is informative
    only).
  - MixUp: ``out[i] = λ·x[i] + (1−λ)·x[perm[i]]``; the box is ``(0, 0, 0, 0)``.
  - No mix: λ = NaN, box = ``(0, 0, 0, 0)``, partner = -1.

  λ ~ Beta(α, α); defaults α = 1.0 (CutMix) and 0.8 (MixUp), as SRe2L/LPLD/LPQLD use.

* **Seeding**: everything about step ``s`` of epoch ``e`` is a pure function of
  ``(seed, epoch, step)`` so a relabeler can compute only some steps (pruning), resume, or shard
  across ranks and get identical results. A step's views and mix come from
  ``Generator(PCG64(SeedSequence([seed, epoch, step])))``. The epoch's image order comes from
  ``Generator(PCG64(SeedSequence([seed, epoch], spawn_key=(1,))))``.

  Why the spawn key: numpy pads short entropy with zeros, so ``SeedSequence([seed, epoch])``
  is *the same stream* as ``SeedSequence([seed, epoch, 0])``; without a separate domain the
  epoch permutation and step 0's crops would be drawn from one stream. ``spawn_key`` is numpy's
  own mechanism for independent child streams. Seed, epoch and step must lie in ``[0, 2**32)``
  so each is exactly one entropy word (larger ints expand to several words and could alias other
  triples).

The draw order inside a step is part of :data:`VIEW_SAMPLER` (change it, bump the name):

1. ``u_scale = rng.random((B, 10))``, ``u_ratio = rng.random((B, 10))``: RandomResizedCrop
   attempts (torchvision's algorithm; see :func:`sample_crop_boxes`);
2. ``u_pos = rng.random((B, 2))``: top and left of the chosen box;
3. ``u_flip = rng.random(B)``: flip where ``u_flip < flip_p``;
4. if mixing: ``lam = rng.beta(α, α)``, ``perm = rng.permutation(B)``, and for CutMix
   ``cy, cx = rng.integers(0, S, size=2)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np

from . import v2 as _v2

#: The numpy-stream sampler described above (spec/FORMAT.md §11.1); stores drawn with it stay
#: readable forever, but its streams are numpy's, reproducible only under a matching numpy.
SAMPLER_V1 = "lplabel-views-v1"
#: The sampler every bit of which the spec defines (§11.3, :mod:`lplabel.views.v2`): Philox4x32-10,
#: exact bounded integers, crop geometry in IEEE basic operations. What new relabels draw.
SAMPLER_V2 = _v2.SAMPLER
#: The sampler new policies use (``AugmentPolicy(sampler=...)`` picks another). Recorded in the
#: policy JSON, so a resumed or sharded relabel refuses to mix views of different samplers.
VIEW_SAMPLER = SAMPLER_V2
VIEW_SAMPLERS = (SAMPLER_V1, SAMPLER_V2)

#: Resize kernels by policy name; the value names the exact sampling grid (see lplabel.views.replay).
RESIZE_KERNELS = {"bilinear": "bilinear-grid-v1"}

MIX_KINDS = ("none", "cutmix", "mixup")
DEFAULT_MIX_ALPHA = {"cutmix": 1.0, "mixup": 0.8}

#: Attempts before RandomResizedCrop falls back to the central crop (torchvision uses 10).
CROP_ATTEMPTS = 10

#: Spawn key separating the epoch-order stream from the per-step streams (see module doc).
ORDER_SPAWN_KEY = (1,)

_U32 = 2**32
_INT16_MAX = 2**15 - 1


# --------------------------------------------------------------------------------------------
# Policy
# --------------------------------------------------------------------------------------------


def _pair(name: str, value) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"AugmentPolicy.{name} must be a pair of numbers (lo, hi), got {value!r}")
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"AugmentPolicy.{name} must be finite, got {(lo, hi)}")
    if not (0 < lo <= hi):
        raise ValueError(f"AugmentPolicy.{name} needs 0 < lo <= hi, got {(lo, hi)}")
    return lo, hi


@dataclass(frozen=True)
class AugmentPolicy:
    """How views are sampled and rendered; stored in the label store's header.

    ``output_size`` is the side S of the square rendered view. ``crop_scale`` bounds the crop's
    area as a fraction of the source image, ``crop_ratio`` its width/height (sampled
    log-uniformly), as torchvision's RandomResizedCrop. ``flip_p`` is the horizontal flip
    probability. ``mix`` is ``"none"``, ``"cutmix"`` or ``"mixup"``; ``mix_alpha`` is the Beta(α, α)
    parameter of λ, defaulting to 1.0 for CutMix and 0.8 for MixUp, and ``None`` without mixing.
    ``resize`` names the resize kernel (only ``"bilinear"``, i.e. ``bilinear-grid-v1``).

    Bad values raise ``ValueError`` naming the field, so a malformed header fails on open.
    """

    output_size: int
    crop_scale: tuple[float, float] = (0.08, 1.0)
    crop_ratio: tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0)
    flip_p: float = 0.5
    mix: str = "none"
    mix_alpha: float | None = None
    resize: str = "bilinear"
    sampler: str = VIEW_SAMPLER

    def __post_init__(self):
        set_ = object.__setattr__  # frozen: normalise fields once, here
        size = self.output_size
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)):
            raise ValueError(f"AugmentPolicy.output_size must be an int, got {size!r}")
        if not 1 <= int(size) <= _INT16_MAX:
            # mix boxes are int16 output pixels
            raise ValueError(f"AugmentPolicy.output_size must be in [1, {_INT16_MAX}], got {size}")
        set_(self, "output_size", int(size))
        scale = _pair("crop_scale", self.crop_scale)
        if scale[1] > 1.0:
            raise ValueError(f"AugmentPolicy.crop_scale must lie in (0, 1], got {scale}")
        set_(self, "crop_scale", scale)
        set_(self, "crop_ratio", _pair("crop_ratio", self.crop_ratio))
        try:
            flip_p = float(self.flip_p)
        except (TypeError, ValueError):
            raise ValueError(f"AugmentPolicy.flip_p must be a number, got {self.flip_p!r}")
        if not 0.0 <= flip_p <= 1.0:
            raise ValueError(f"AugmentPolicy.flip_p must be in [0, 1], got {flip_p}")
        set_(self, "flip_p", flip_p)
        if self.mix not in MIX_KINDS:
            raise ValueError(f"AugmentPolicy.mix must be one of {MIX_KINDS}, got {self.mix!r}")
        if self.mix == "none":
            if self.mix_alpha is not None:
                raise ValueError("AugmentPolicy.mix_alpha must be None when mix='none'")
        else:
            alpha = DEFAULT_MIX_ALPHA[self.mix] if self.mix_alpha is None else self.mix_alpha
            try:
                alpha = float(alpha)
            except (TypeError, ValueError):
                raise ValueError(f"AugmentPolicy.mix_alpha must be a number, got {alpha!r}")
            if not (math.isfinite(alpha) and alpha > 0):
                raise ValueError(f"AugmentPolicy.mix_alpha must be a finite number > 0, got {alpha}")
            set_(self, "mix_alpha", alpha)
        if self.resize not in RESIZE_KERNELS:
            raise ValueError(f"AugmentPolicy.resize must be one of {sorted(RESIZE_KERNELS)}, got {self.resize!r}")
        if self.sampler not in VIEW_SAMPLERS:
            raise ValueError(f"AugmentPolicy.sampler must be one of {VIEW_SAMPLERS}, got {self.sampler!r}")

    @property
    def resize_kernel(self) -> str:
        """Exact name of the sampling grid used to render views (e.g. ``bilinear-grid-v1``)."""
        return RESIZE_KERNELS[self.resize]

    def to_json(self) -> dict:
        """A plain JSON-able dict for the store header (round-trips through :meth:`from_json`)."""
        return {
            "sampler": self.sampler,
            "output_size": self.output_size,
            "crop_scale": list(self.crop_scale),
            "crop_ratio": list(self.crop_ratio),
            "flip_p": self.flip_p,
            "mix": self.mix,
            "mix_alpha": self.mix_alpha,
            "resize": self.resize,
            "resize_kernel": self.resize_kernel,
        }

    @classmethod
    def from_json(cls, obj: dict) -> "AugmentPolicy":
        """Rebuild a policy from :meth:`to_json` output; unknown keys or versions raise ValueError."""
        if not isinstance(obj, dict):
            raise ValueError(f"augment policy must be a JSON object, got {type(obj).__name__}")
        known = {
            "sampler",
            "output_size",
            "crop_scale",
            "crop_ratio",
            "flip_p",
            "mix",
            "mix_alpha",
            "resize",
            "resize_kernel",
        }
        unknown = sorted(set(obj) - known)
        if unknown:
            raise ValueError(f"augment policy has unknown keys {unknown}; known: {sorted(known)}")
        if "output_size" not in obj:
            raise ValueError("augment policy is missing 'output_size'")
        # a policy object without "sampler" predates v2: its views (if any) were drawn by v1
        sampler = obj.get("sampler", SAMPLER_V1)
        if sampler not in VIEW_SAMPLERS:
            raise ValueError(
                f"augment policy was made by view sampler {sampler!r}; this lplabel has "
                f"{', '.join(VIEW_SAMPLERS)} and cannot reproduce its views"
            )
        kwargs = {k: obj[k] for k in known - {"sampler", "resize_kernel"} if k in obj}
        policy = cls(**kwargs, sampler=sampler)
        kernel = obj.get("resize_kernel", policy.resize_kernel)
        if kernel != policy.resize_kernel:
            raise ValueError(
                f"augment policy names resize kernel {kernel!r} but resize={policy.resize!r} "
                f"is {policy.resize_kernel!r} in this lplabel"
            )
        return policy


# --------------------------------------------------------------------------------------------
# Epoch order and steps
# --------------------------------------------------------------------------------------------


def _check_u32(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an int, got {value!r}")
    if not 0 <= int(value) < _U32:
        raise ValueError(f"{name} must be in [0, 2**32), got {value}")
    return int(value)


def _check_count(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def step_rng(seed: int, epoch: int, step: int) -> np.random.Generator:
    """The generator of step ``step`` of epoch ``epoch``: PCG64(SeedSequence([seed, epoch, step]))."""
    entropy = [_check_u32("seed", seed), _check_u32("epoch", epoch), _check_u32("step", step)]
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(entropy)))


def epoch_order(seed: int, epoch: int, num_images: int, sampler: str = VIEW_SAMPLER) -> np.ndarray:
    """Image ids in the order epoch ``epoch`` visits them: a permutation of ``0..num_images-1``.

    ``lplabel-views-v2``: Fisher–Yates on Philox words (spec §11.3). ``lplabel-views-v1``:
    ``Generator(PCG64(SeedSequence([seed, epoch], spawn_key=(1,)))).permutation(N)``.
    int64 ``[num_images]``.
    """
    entropy = [_check_u32("seed", seed), _check_u32("epoch", epoch)]
    n = _check_count("num_images", num_images, 0)
    if sampler == SAMPLER_V2:
        return _v2.epoch_order(entropy[0], entropy[1], n)
    if sampler != SAMPLER_V1:
        raise ValueError(f"unknown view sampler {sampler!r}")
    ss = np.random.SeedSequence(entropy, spawn_key=ORDER_SPAWN_KEY)
    return np.random.Generator(np.random.PCG64(ss)).permutation(n).astype(np.int64)


def steps_per_epoch(num_images: int, batch_size: int, drop_last: bool = False) -> int:
    """Number of steps in an epoch: ``N // B`` with ``drop_last``, else ``ceil(N / B)``."""
    n = _check_count("num_images", num_images, 0)
    b = _check_count("batch_size", batch_size, 1)
    return n // b if drop_last else -(-n // b)


def split_order(order: np.ndarray, batch_size: int, drop_last: bool = False) -> list[np.ndarray]:
    """Split one epoch's order into its steps (views of ``order``; the last may be short)."""
    n = steps_per_epoch(len(order), batch_size, drop_last)
    return [order[s * batch_size : (s + 1) * batch_size] for s in range(n)]


def step_images(
    seed: int,
    epoch: int,
    step: int,
    num_images: int,
    batch_size: int,
    drop_last: bool = False,
    sampler: str = VIEW_SAMPLER,
) -> np.ndarray:
    """Image ids (int64) of step ``step`` of epoch ``epoch``: a slice of :func:`epoch_order`."""
    n_steps = steps_per_epoch(num_images, batch_size, drop_last)
    step = _check_count("step", step, 0)
    if step >= n_steps:
        raise ValueError(
            f"step {step} is out of range: epoch has {n_steps} steps "
            f"({num_images} images, batch_size {batch_size}, drop_last={drop_last})"
        )
    order = epoch_order(seed, epoch, num_images, sampler)
    return order[step * batch_size : (step + 1) * batch_size]


def all_steps(
    epochs: Iterable[int] | int, num_images: int, batch_size: int, drop_last: bool = False
) -> Iterator[tuple[int, int]]:
    """Every (epoch, step) pair of the given epochs (an int means ``range(epochs)``), in order."""
    if isinstance(epochs, (int, np.integer)):
        epochs = range(int(epochs))
    n_steps = steps_per_epoch(num_images, batch_size, drop_last)
    for e in epochs:
        for s in range(n_steps):
            yield int(e), s


# --------------------------------------------------------------------------------------------
# Views of one step
# --------------------------------------------------------------------------------------------


@dataclass
class StepViews:
    """The views of one step, in the dtypes the store keeps them in.

    ``image`` int32 [B] image ids; ``crop`` float32 [B, 4] fractional (top, left, height, width);
    ``flip`` bool [B]; ``mix_partner`` int16 [B] (index within the step, -1 without mixing);
    ``mix_lambda`` float (NaN without mixing); ``mix_box`` int16 [4] (row0, col0, row1, col1),
    half-open in output pixels, zeros unless CutMix. Arrays are coerced on construction.
    """

    image: np.ndarray
    crop: np.ndarray
    flip: np.ndarray
    mix_partner: np.ndarray
    mix_lambda: float
    mix_box: np.ndarray

    def __post_init__(self):
        self.image = np.asarray(self.image, dtype=np.int32).reshape(-1)
        b = len(self.image)
        self.crop = np.asarray(self.crop, dtype=np.float32).reshape(b, 4)
        self.flip = np.asarray(self.flip, dtype=bool).reshape(b)
        self.mix_partner = np.asarray(self.mix_partner, dtype=np.int16).reshape(b)
        self.mix_lambda = float(self.mix_lambda)
        self.mix_box = np.asarray(self.mix_box, dtype=np.int16).reshape(4)

    def __len__(self) -> int:
        return len(self.image)

    def equals(self, other: "StepViews") -> bool:
        """Exact equality of every field (NaN λ equals NaN λ)."""
        lam_eq = self.mix_lambda == other.mix_lambda or (math.isnan(self.mix_lambda) and math.isnan(other.mix_lambda))
        return (
            lam_eq
            and np.array_equal(self.image, other.image)
            and np.array_equal(self.crop, other.crop)
            and np.array_equal(self.flip, other.flip)
            and np.array_equal(self.mix_partner, other.mix_partner)
            and np.array_equal(self.mix_box, other.mix_box)
        )


def sample_crop_boxes(rng: np.random.Generator, heights, widths, scale=(0.08, 1.0), ratio=(3.0 / 4.0, 4.0 / 3.0)):
    """torchvision's RandomResizedCrop box sampling, vectorised over views.

    For each view: up to 10 attempts of ``target = H·W·U(scale)``,
    ``aspect = exp(U(log ratio))``, ``w = rint(sqrt(target·aspect))``, ``h = rint(sqrt(target/aspect))``;
    the first attempt with ``0 < w <= W`` and ``0 < h <= H`` wins, placed at
    ``top = floor(u·(H−h+1))``, ``left = floor(u'·(W−w+1))``. If none fits, the central crop
    of the largest box with aspect clamped to ``ratio`` (torchvision's fallback). All attempts
    are drawn for every view so the stream layout never depends on acceptance.

    Returns int64 ``top, left, h, w`` and bool ``fallback``, each ``[B]``.
    """
    H = np.asarray(heights, dtype=np.int64).reshape(-1)
    W = np.asarray(widths, dtype=np.int64).reshape(-1)
    b = len(H)
    u_scale = rng.random((b, CROP_ATTEMPTS))
    u_ratio = rng.random((b, CROP_ATTEMPTS))
    u_pos = rng.random((b, 2))

    area = (H * W).astype(np.float64)[:, None]
    target = area * (scale[0] + (scale[1] - scale[0]) * u_scale)
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = np.exp(log_lo + (log_hi - log_lo) * u_ratio)
    w = np.rint(np.sqrt(target * aspect)).astype(np.int64)
    h = np.rint(np.sqrt(target / aspect)).astype(np.int64)
    ok = (w > 0) & (w <= W[:, None]) & (h > 0) & (h <= H[:, None])
    first = np.argmax(ok, axis=1)  # index of the first accepted attempt (0 if none)
    rows = np.arange(b)
    h_sel, w_sel = h[rows, first], w[rows, first]
    fallback = ~ok.any(axis=1)

    if fallback.any():
        in_ratio = W / H
        fb_w = W.copy()
        fb_h = H.copy()
        narrow = in_ratio < ratio[0]
        wide = in_ratio > ratio[1]
        fb_h = np.where(narrow, np.rint(W / ratio[0]).astype(np.int64), fb_h)
        fb_w = np.where(wide, np.rint(H * ratio[1]).astype(np.int64), fb_w)
        # rint can reach 0 for extreme shapes (e.g. 1x1000 with ratio 4/3); keep boxes non-empty.
        fb_h = np.clip(fb_h, 1, H)
        fb_w = np.clip(fb_w, 1, W)
        h_sel = np.where(fallback, fb_h, h_sel)
        w_sel = np.where(fallback, fb_w, w_sel)

    top = np.minimum(np.floor(u_pos[:, 0] * (H - h_sel + 1)).astype(np.int64), H - h_sel)
    left = np.minimum(np.floor(u_pos[:, 1] * (W - w_sel + 1)).astype(np.int64), W - w_sel)
    if fallback.any():
        top = np.where(fallback, (H - h_sel) // 2, top)
        left = np.where(fallback, (W - w_sel) // 2, left)
    return top, left, h_sel, w_sel, fallback


def crop_pixels(crop: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Pixel boxes int64 [B, 4] (top, left, h, w) from fractional crops and source (H, W) [B, 2].

    ``np.rint(frac * size)`` per coordinate in float64, then clipped: top in [0, H−1], left in
    [0, W−1], h in [1, H−top], w in [1, W−left]. This is the one place fractions become pixels,
    for the relabeler and the loader alike.
    """
    crop = np.asarray(crop, dtype=np.float32).reshape(-1, 4).astype(np.float64)
    sizes = np.asarray(sizes, dtype=np.int64).reshape(-1, 2)
    H, W = sizes[:, 0], sizes[:, 1]
    px = np.rint(crop * np.stack([H, W, H, W], axis=1)).astype(np.int64)
    top = np.clip(px[:, 0], 0, H - 1)
    left = np.clip(px[:, 1], 0, W - 1)
    h = np.clip(px[:, 2], 1, H - top)
    w = np.clip(px[:, 3], 1, W - left)
    return np.stack([top, left, h, w], axis=1)


def _cutmix_box(rng: np.random.Generator, lam: float, size: int) -> np.ndarray:
    cut_rat = math.sqrt(1.0 - lam)
    cut = int(size * cut_rat)  # square output: cut_h == cut_w
    cy, cx = rng.integers(0, size, size=2)
    r0, r1 = np.clip([cy - cut // 2, cy + cut // 2], 0, size)
    c0, c1 = np.clip([cx - cut // 2, cx + cut // 2], 0, size)
    return np.array([r0, c0, r1, c1], dtype=np.int16)


def sample_step(
    seed: int, epoch: int, step: int, image_ids, image_sizes, policy: AugmentPolicy, mix_lambda: float | None = None
) -> StepViews:
    """Sample the views of one step with ``policy.sampler`` (conventions: the module doc).

    ``image_ids`` are the step's images (normally :func:`step_images`); ``image_sizes`` is int
    ``[N, 2]`` (H, W) for *all* images, indexed by id. Pure in ``(seed, epoch, step)``, the ids
    and sizes: no global RNG state is read or changed.

    ``mix_lambda``: ``lplabel-views-v2`` only. λ is stored in every store and never regenerated
    bit for bit (a Beta draw needs libm); a reader passes the stored λ (NaN for an unmixed step)
    and gets the views that follow from it — the CutMix box is computed from it. ``None`` draws
    λ (the relabeler). A λ that cannot belong to the policy (NaN for a mixed step, a number for
    an unmixed one, outside [0, 1]) raises ValueError. v1 ignores it (its λ is a numpy draw,
    compared by the reader).
    """
    ids = np.asarray(image_ids).reshape(-1)
    if ids.size and not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"image_ids must be integers, got {ids.dtype}")
    ids = ids.astype(np.int64)
    sizes = np.asarray(image_sizes, dtype=np.int64).reshape(-1, 2)
    b = len(ids)
    if b > _INT16_MAX:
        raise ValueError(f"a step holds at most {_INT16_MAX} views (int16 partners), got {b}")
    if b and (ids.min() < 0 or ids.max() >= len(sizes)):
        raise ValueError(f"image ids must be in [0, {len(sizes)}), got [{ids.min()}, {ids.max()}]")
    if len(sizes) >= 2**31:
        raise ValueError("at most 2**31 - 1 images (image ids are int32)")
    hw = sizes[ids]
    if b and hw.min() < 1:
        raise ValueError("image sizes must be at least 1x1")

    if policy.sampler == SAMPLER_V2:
        return _sample_step_v2(
            _check_u32("seed", seed), _check_u32("epoch", epoch), _check_u32("step", step), ids, hw, policy, mix_lambda
        )
    rng = step_rng(seed, epoch, step)
    top, left, h, w, _ = sample_crop_boxes(rng, hw[:, 0], hw[:, 1], policy.crop_scale, policy.crop_ratio)
    H, W = hw[:, 0].astype(np.float64), hw[:, 1].astype(np.float64)
    crop = np.stack([top / H, left / W, h / H, w / W], axis=1).astype(np.float32)
    flip = rng.random(b) < policy.flip_p

    if policy.mix == "none" or b == 0:
        partner = np.full(b, -1, dtype=np.int16)
        lam = math.nan
        box = np.zeros(4, dtype=np.int16)
    else:
        lam = float(rng.beta(policy.mix_alpha, policy.mix_alpha))
        partner = rng.permutation(b).astype(np.int16)
        if policy.mix == "cutmix":
            box = _cutmix_box(rng, lam, policy.output_size)
        else:
            box = np.zeros(4, dtype=np.int16)
    return StepViews(image=ids, crop=crop, flip=flip, mix_partner=partner, mix_lambda=lam, mix_box=box)


def _crop_fractions(top, left, h, w, hw) -> np.ndarray:
    """Stored crops: ``float32(top/H, left/W, h/H, w/W)``, each quotient rounded in float64 first."""
    H, W = hw[:, 0].astype(np.float64), hw[:, 1].astype(np.float64)
    return np.stack([top / H, left / W, h / H, w / W], axis=1).astype(np.float32)


def _sample_step_v2(seed, epoch, step, ids, hw, policy, mix_lambda) -> StepViews:
    b = len(ids)
    mixed = policy.mix != "none" and b > 0
    if not mixed and mix_lambda is not None and not math.isnan(float(mix_lambda)):
        raise ValueError(f"an unmixed step has mix_lambda NaN, got {float(mix_lambda)!r}")
    lam = math.nan
    if mixed:  # λ is stored, not regenerated: check the given one before drawing anything
        lam = _v2.check_lambda(
            _v2.draw_lambda(seed, epoch, step, policy.mix_alpha) if mix_lambda is None else mix_lambda
        )
    cutmix = policy.mix == "cutmix" and b > 0
    top, left, h, w, _, flip, partner, centre = _v2.sample_views(
        seed,
        epoch,
        step,
        hw[:, 0],
        hw[:, 1],
        policy.crop_scale,
        policy.crop_ratio,
        policy.flip_p,
        mixed,
        policy.output_size if cutmix else 0,
    )
    crop = _crop_fractions(top, left, h, w, hw)
    if not mixed:
        return StepViews(
            image=ids,
            crop=crop,
            flip=flip,
            mix_partner=np.full(b, -1, dtype=np.int16),
            mix_lambda=math.nan,
            mix_box=np.zeros(4, dtype=np.int16),
        )
    box = _v2.cutmix_box(lam, policy.output_size, centre) if cutmix else np.zeros(4, dtype=np.int16)
    return StepViews(image=ids, crop=crop, flip=flip, mix_partner=partner.astype(np.int16), mix_lambda=lam, mix_box=box)


def plan_steps(
    seed: int,
    steps: Iterable[tuple[int, int]],
    image_sizes,
    batch_size: int,
    policy: AugmentPolicy,
    drop_last: bool = False,
) -> Iterator[tuple[int, int, StepViews]]:
    """Yield ``(epoch, step, views)`` for each requested (epoch, step) pair, in the given order.

    Each step depends only on ``(seed, epoch, step)``, so any subset (a pruned selection, a
    resumed tail, one rank's shard) gives the same views as planning everything. The epoch
    order is computed once per run of consecutive pairs from the same epoch.
    """
    sizes = np.asarray(image_sizes, dtype=np.int64).reshape(-1, 2)
    n = len(sizes)
    n_steps = steps_per_epoch(n, batch_size, drop_last)
    cached_epoch, order = None, None
    for epoch, step in steps:
        if not 0 <= step < n_steps:
            raise ValueError(
                f"step {step} is out of range: epoch has {n_steps} steps "
                f"({n} images, batch_size {batch_size}, drop_last={drop_last})"
            )
        if epoch != cached_epoch:
            order, cached_epoch = epoch_order(seed, epoch, n, policy.sampler), epoch
        ids = order[step * batch_size : (step + 1) * batch_size]
        yield int(epoch), int(step), sample_step(seed, epoch, step, ids, sizes, policy)
