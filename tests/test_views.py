"""View sampling: determinism per (seed, epoch, step), epoch coverage, crop-box geometry, mixing."""

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from lplabel.views import (
    DEFAULT_MIX_ALPHA,
    SAMPLER_V1,
    SAMPLER_V2,
    VIEW_SAMPLER,
    AugmentPolicy,
    StepViews,
    all_steps,
    crop_pixels,
    epoch_order,
    plan_steps,
    sample_crop_boxes,
    sample_step,
    split_order,
    step_images,
    step_rng,
    steps_per_epoch,
)

FAST = settings(max_examples=60, deadline=None)


def _sizes(n, rng=None):
    rng = rng or np.random.default_rng(123)
    return rng.integers(8, 300, size=(n, 2))


# ---------------------------------------------------------------------------- policy


def test_policy_defaults_and_alpha():
    p = AugmentPolicy(224)
    assert p.crop_scale == (0.08, 1.0) and p.crop_ratio == (0.75, 4 / 3)
    assert p.flip_p == 0.5 and p.mix == "none" and p.mix_alpha is None
    assert p.resize_kernel == "bilinear-grid-v1"
    assert AugmentPolicy(32, mix="cutmix").mix_alpha == DEFAULT_MIX_ALPHA["cutmix"] == 1.0
    assert AugmentPolicy(32, mix="mixup").mix_alpha == 0.8
    assert AugmentPolicy(32, mix="mixup", mix_alpha=0.2).mix_alpha == 0.2


@pytest.mark.parametrize("mix", ["none", "cutmix", "mixup"])
def test_policy_json_round_trip(mix):
    p = AugmentPolicy(64, crop_scale=(0.25, 1), crop_ratio=(0.5, 2), flip_p=0.3, mix=mix)
    obj = json.loads(json.dumps(p.to_json()))
    assert obj["sampler"] == VIEW_SAMPLER and obj["resize_kernel"] == "bilinear-grid-v1"
    assert AugmentPolicy.from_json(obj) == p


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"output_size": 0}, "output_size"),
        ({"output_size": 2.5}, "output_size"),
        ({"output_size": 40000}, "output_size"),
        ({"output_size": 8, "crop_scale": (0.5, 0.1)}, "crop_scale"),
        ({"output_size": 8, "crop_scale": (0.0, 1.0)}, "crop_scale"),
        ({"output_size": 8, "crop_scale": (0.5, 1.5)}, "crop_scale"),
        ({"output_size": 8, "crop_ratio": (2.0, 1.0)}, "crop_ratio"),
        ({"output_size": 8, "crop_ratio": "ab"}, "crop_ratio"),
        ({"output_size": 8, "flip_p": 1.5}, "flip_p"),
        ({"output_size": 8, "mix": "cutout"}, "mix"),
        ({"output_size": 8, "mix": "cutmix", "mix_alpha": 0.0}, "mix_alpha"),
        ({"output_size": 8, "mix": "none", "mix_alpha": 1.0}, "mix_alpha"),
        ({"output_size": 8, "resize": "bicubic"}, "resize"),
    ],
)
def test_policy_validation(kwargs, field):
    with pytest.raises(ValueError, match=field):
        AugmentPolicy(**kwargs)


def test_policy_from_json_rejects_unknown_and_foreign():
    good = AugmentPolicy(32).to_json()
    with pytest.raises(ValueError, match="unknown keys"):
        AugmentPolicy.from_json({**good, "jitter": 0.4})
    with pytest.raises(ValueError, match="sampler"):
        AugmentPolicy.from_json({**good, "sampler": "lplabel-views-v0"})
    with pytest.raises(ValueError, match="resize kernel"):
        AugmentPolicy.from_json({**good, "resize_kernel": "bilinear-grid-v9"})
    with pytest.raises(ValueError, match="output_size"):
        AugmentPolicy.from_json({k: v for k, v in good.items() if k != "output_size"})


# ---------------------------------------------------------------------------- epochs and steps


@pytest.mark.parametrize(
    "n, b, drop, expect",
    [(10, 3, False, 4), (10, 3, True, 3), (9, 3, True, 3), (0, 4, False, 0), (2, 4, True, 0), (2, 4, False, 1)],
)
def test_steps_per_epoch(n, b, drop, expect):
    assert steps_per_epoch(n, b, drop) == expect


@pytest.mark.parametrize("sampler", [SAMPLER_V1, SAMPLER_V2])
def test_epoch_order_is_seeded_permutation(sampler):
    a = epoch_order(7, 3, 1000, sampler)
    assert a.dtype == np.int64
    assert np.array_equal(np.sort(a), np.arange(1000))
    assert np.array_equal(a, epoch_order(7, 3, 1000, sampler))
    assert not np.array_equal(a, epoch_order(7, 4, 1000, sampler))
    assert not np.array_equal(a, epoch_order(8, 3, 1000, sampler))
    other = SAMPLER_V2 if sampler == SAMPLER_V1 else SAMPLER_V1
    assert not np.array_equal(a, epoch_order(7, 3, 1000, other))


def test_policy_sampler_defaults_to_v2_and_old_json_means_v1():
    assert AugmentPolicy(32).sampler == SAMPLER_V2 == VIEW_SAMPLER
    old = {k: v for k, v in AugmentPolicy(32).to_json().items() if k != "sampler"}
    assert AugmentPolicy.from_json(old).sampler == SAMPLER_V1  # written before v2 existed
    v1 = AugmentPolicy(32, sampler=SAMPLER_V1)
    assert AugmentPolicy.from_json(v1.to_json()) == v1 != AugmentPolicy(32)
    with pytest.raises(ValueError, match="sampler"):
        AugmentPolicy(32, sampler="lplabel-views-v9")
    with pytest.raises(ValueError, match="cannot reproduce"):
        AugmentPolicy.from_json({**AugmentPolicy(32).to_json(), "sampler": "lplabel-views-v9"})


def test_epoch_order_stream_is_not_step_zero_stream():
    # numpy pads short entropy with zeros: SeedSequence([s, e]) == SeedSequence([s, e, 0]).
    # The order stream must be a separate domain from step 0's stream.
    naive = np.random.Generator(np.random.PCG64(np.random.SeedSequence([7, 3])))
    assert np.array_equal(naive.random(4), step_rng(7, 3, 0).random(4))  # the numpy pitfall
    assert not np.array_equal(
        epoch_order(7, 3, 50, SAMPLER_V1),
        np.random.Generator(np.random.PCG64(np.random.SeedSequence([7, 3]))).permutation(50),
    )


@pytest.mark.parametrize("sampler", [SAMPLER_V1, SAMPLER_V2])
@pytest.mark.parametrize("drop", [False, True])
def test_steps_cover_every_image_once(drop, sampler):
    n, b = 103, 10
    for epoch in range(3):
        steps = [step_images(5, epoch, s, n, b, drop, sampler) for s in range(steps_per_epoch(n, b, drop))]
        assert all(len(s) == b for s in steps[:-1])
        ids = np.concatenate(steps)
        if drop:
            assert len(ids) == 100 and len(np.unique(ids)) == 100
        else:
            assert len(steps[-1]) == 3
            assert np.array_equal(np.sort(ids), np.arange(n))
        split = split_order(epoch_order(5, epoch, n, sampler), b, drop)
        assert all(np.array_equal(x, y) for x, y in zip(split, steps))


def test_step_images_out_of_range():
    with pytest.raises(ValueError, match="out of range"):
        step_images(0, 0, 10, 100, 10, True)
    with pytest.raises(ValueError, match="seed"):
        step_images(-1, 0, 0, 100, 10)
    with pytest.raises(ValueError, match="epoch"):
        epoch_order(0, 2**32, 10)


def test_all_steps():
    assert list(all_steps(2, 5, 2)) == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
    assert list(all_steps([4], 5, 2, drop_last=True)) == [(4, 0), (4, 1)]


# ---------------------------------------------------------------------------- step views


@pytest.mark.parametrize("mix", ["none", "cutmix", "mixup"])
def test_sample_step_deterministic_and_step_dependent(mix):
    policy = AugmentPolicy(32, mix=mix)
    sizes = _sizes(64)
    ids = step_images(1, 2, 3, 64, 16)
    a = sample_step(1, 2, 3, ids, sizes, policy)
    b = sample_step(1, 2, 3, ids, sizes, policy)
    assert a.equals(b)
    c = sample_step(1, 2, 4, ids, sizes, policy)
    assert not np.array_equal(a.crop, c.crop)
    d = sample_step(1, 3, 3, ids, sizes, policy)
    assert not np.array_equal(a.crop, d.crop)
    # no global RNG state involved
    np.random.seed(0)
    assert sample_step(1, 2, 3, ids, sizes, policy).equals(a)


def test_sample_step_dtypes():
    v = sample_step(0, 0, 0, np.arange(5), _sizes(5), AugmentPolicy(16, mix="cutmix"))
    assert v.image.dtype == np.int32 and v.crop.dtype == np.float32 and v.crop.shape == (5, 4)
    assert v.flip.dtype == bool and v.mix_partner.dtype == np.int16
    assert v.mix_box.dtype == np.int16 and v.mix_box.shape == (4,)
    assert isinstance(v.mix_lambda, float) and len(v) == 5


@pytest.mark.parametrize("drop", [False, True])
def test_planning_subsets_matches_whole_epochs(drop):
    policy = AugmentPolicy(24, mix="cutmix")
    n, b, seed = 45, 8, 11
    sizes = _sizes(n)
    pairs = list(all_steps(3, n, b, drop))
    whole = {(e, s): v for e, s, v in plan_steps(seed, pairs, sizes, b, policy, drop)}
    # pruned / resumed / sharded subsets in any order give the same views
    subset = pairs[::-3] + pairs[1:2]
    for e, s, v in plan_steps(seed, subset, sizes, b, policy, drop):
        assert v.equals(whole[(e, s)])
    for (e, s), v in whole.items():
        assert np.array_equal(v.image, step_images(seed, e, s, n, b, drop))
        assert v.equals(sample_step(seed, e, s, step_images(seed, e, s, n, b, drop), sizes, policy))
    with pytest.raises(ValueError, match="out of range"):
        list(plan_steps(seed, [(0, 99)], sizes, b, policy, drop))


def test_mix_none():
    v = sample_step(0, 0, 0, np.arange(6), _sizes(6), AugmentPolicy(16))
    assert np.all(v.mix_partner == -1) and math.isnan(v.mix_lambda)
    assert np.array_equal(v.mix_box, [0, 0, 0, 0])


def test_mixup_fields():
    for step in range(20):
        v = sample_step(3, 0, step, np.arange(8), _sizes(8), AugmentPolicy(16, mix="mixup"))
        assert np.array_equal(np.sort(v.mix_partner), np.arange(8))
        assert 0.0 <= v.mix_lambda <= 1.0
        assert np.array_equal(v.mix_box, [0, 0, 0, 0])


@pytest.mark.parametrize("size", [7, 32, 224])
def test_cutmix_box_follows_legacy_rand_bbox(size):
    policy = AugmentPolicy(size, mix="cutmix", sampler=SAMPLER_V1)  # v1: numpy's documented draw order
    for step in range(30):
        v = sample_step(9, 1, step, np.arange(8), _sizes(8), policy)
        assert np.array_equal(np.sort(v.mix_partner), np.arange(8))
        lam = v.mix_lambda
        assert 0.0 <= lam <= 1.0
        r0, c0, r1, c1 = (int(x) for x in v.mix_box)
        assert 0 <= r0 <= r1 <= size and 0 <= c0 <= c1 <= size
        cut = int(size * math.sqrt(1 - lam))
        # half-extent is cut // 2 around an integer centre in [0, size); clipping only shrinks
        assert r1 - r0 <= 2 * (cut // 2) and c1 - c0 <= 2 * (cut // 2)
        # recompute exactly from the documented draw order
        rng = step_rng(9, 1, step)
        rng.random((8, 10)), rng.random((8, 10)), rng.random((8, 2)), rng.random(8)
        assert rng.beta(1.0, 1.0) == lam
        assert np.array_equal(rng.permutation(8), v.mix_partner)
        cy, cx = rng.integers(0, size, size=2)
        expect = [
            np.clip(cy - cut // 2, 0, size),
            np.clip(cx - cut // 2, 0, size),
            np.clip(cy + cut // 2, 0, size),
            np.clip(cx + cut // 2, 0, size),
        ]
        assert list(v.mix_box) == expect


def test_flip_probability():
    sizes = _sizes(4000)
    ids = np.arange(4000)
    assert not sample_step(0, 0, 0, ids, sizes, AugmentPolicy(8, flip_p=0.0)).flip.any()
    assert sample_step(0, 0, 0, ids, sizes, AugmentPolicy(8, flip_p=1.0)).flip.all()
    rate = sample_step(0, 0, 0, ids, sizes, AugmentPolicy(8)).flip.mean()
    assert 0.46 < rate < 0.54


def test_sample_step_rejects_bad_ids():
    with pytest.raises(ValueError, match="image ids"):
        sample_step(0, 0, 0, [0, 5], _sizes(5), AugmentPolicy(8))


def test_step_views_coerces():
    v = StepViews(
        image=[1, 2],
        crop=np.zeros((2, 4)),
        flip=[0, 1],
        mix_partner=[-1, -1],
        mix_lambda=float("nan"),
        mix_box=[0, 0, 0, 0],
    )
    assert v.image.dtype == np.int32 and v.flip.tolist() == [False, True]
    assert v.equals(v)


# ---------------------------------------------------------------------------- crop geometry


@FAST
@given(
    seed=st.integers(0, 2**32 - 1),
    hw=st.lists(st.tuples(st.integers(1, 400), st.integers(1, 400)), min_size=1, max_size=32),
    lo=st.floats(0.01, 1.0),
    span=st.floats(0.0, 1.0),
    rlo=st.floats(0.2, 2.0),
    rspan=st.floats(1.0, 4.0),
)
def test_crop_boxes_properties(seed, hw, lo, span, rlo, rspan):
    scale = (lo, lo + (1.0 - lo) * span)
    ratio = (rlo, rlo * rspan)
    sizes = np.array(hw, dtype=np.int64)
    H, W = sizes[:, 0], sizes[:, 1]
    top, left, h, w, fb = sample_crop_boxes(np.random.default_rng(seed), H, W, scale, ratio)
    assert np.all(h >= 1) and np.all(w >= 1) and np.all(top >= 0) and np.all(left >= 0)
    assert np.all(top + h <= H) and np.all(left + w <= W)
    ok = ~fb
    # h, w are rint of continuous sqrt values whose product / ratio lie in range
    area = (H * W).astype(np.float64)
    eps = 1e-9
    assert np.all(((w + 0.5) * (h + 0.5))[ok] >= scale[0] * area[ok] * (1 - eps))
    assert np.all(((w - 0.5) * (h - 0.5))[ok] <= scale[1] * area[ok] * (1 + eps))
    assert np.all(((w + 0.5) / np.maximum(h - 0.5, 1e-12))[ok] >= ratio[0] * (1 - eps))
    assert np.all(((w - 0.5) / (h + 0.5))[ok] <= ratio[1] * (1 + eps))
    # fallback: central crop
    assert np.all(top[fb] == (H - h)[fb] // 2) and np.all(left[fb] == (W - w)[fb] // 2)
    # the stored fractions round-trip to the same pixel boxes
    frac = np.stack([top / H, left / W, h / H, w / W], axis=1).astype(np.float32)
    assert np.array_equal(crop_pixels(frac, sizes), np.stack([top, left, h, w], axis=1))


@FAST
@given(seed=st.integers(0, 2**32 - 1), epoch=st.integers(0, 1000), step=st.integers(0, 1000), n=st.integers(1, 40))
def test_sample_step_crops_in_unit_square(seed, epoch, step, n):
    sizes = np.random.default_rng(n).integers(1, 500, size=(n, 2))
    v = sample_step(seed, epoch, step, np.arange(n), sizes, AugmentPolicy(16))
    c = v.crop.astype(np.float64)
    assert np.all(c >= 0) and np.all(c <= 1)
    assert np.all(c[:, 2] > 0) and np.all(c[:, 3] > 0)
    assert np.all(c[:, 0] + c[:, 2] <= 1 + 1e-6) and np.all(c[:, 1] + c[:, 3] <= 1 + 1e-6)


def test_crop_area_distribution_and_fallback():
    # square images, default policy: attempts almost always succeed; area fractions in range
    n = 2000
    sizes = np.full((n, 2), 256)
    top, left, h, w, fb = sample_crop_boxes(np.random.default_rng(0), sizes[:, 0], sizes[:, 1])
    assert fb.mean() < 0.01
    frac = h * w / 256**2
    assert frac[~fb].min() > 0.07 and frac.max() <= 1.0
    # a 10x1000 strip with large scale can never fit the ratio range: fallback, central, clamped
    top, left, h, w, fb = sample_crop_boxes(np.random.default_rng(0), [10] * 5, [1000] * 5, scale=(0.9, 1.0))
    assert fb.all()
    assert np.all(h == 10) and np.all(w == 13) and np.all(left == (1000 - 13) // 2)
    assert np.all(top == 0)
    # tall image: width kept, height = rint(W / ratio_min)
    top, left, h, w, fb = sample_crop_boxes(np.random.default_rng(0), [1000], [10], scale=(0.9, 1.0))
    assert fb.all() and w[0] == 10 and h[0] == 13 and top[0] == (1000 - 13) // 2


def test_crop_pixels_clips():
    sizes = np.array([[10, 20], [10, 20]])
    crop = np.array([[0.99, 0.0, 0.5, 2.0], [-0.1, 0.5, 0.0, 0.0]], dtype=np.float32)
    assert crop_pixels(crop, sizes).tolist() == [[9, 0, 1, 20], [0, 10, 1, 1]]
