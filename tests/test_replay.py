"""Rendering stored views (bilinear-grid-v1) and replaying CutMix/MixUp, against plain references."""

import math

import numpy as np
import pytest
import torch

from lplabel.views.replay import ImageBank, apply_mix, render_step, render_views
from lplabel.views import AugmentPolicy, StepViews, crop_pixels, sample_step


def _identity(n):
    return np.arange(n), np.tile(np.array([0, 0, 1, 1], np.float32), (n, 1)), np.zeros(n, bool)


def _nchw(img):
    a = np.asarray(img)
    if a.ndim == 2:
        a = a[:, :, None]
    return torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1).float()


def reference_render(img, box, flip, size):
    """The documented kernel, one pixel at a time (slow, obvious)."""
    a = np.asarray(img, dtype=np.float64)
    if a.ndim == 2:
        a = a[:, :, None]
    H, W, C = a.shape
    top, left, h, w = box
    out = np.zeros((C, size, size))
    for y in range(size):
        for x in range(size):
            xs = size - 1 - x if flip else x
            r = min(max(top + (y + 0.5) * h / size - 0.5, 0.0), H - 1)
            c = min(max(left + (xs + 0.5) * w / size - 0.5, 0.0), W - 1)
            r0, c0 = int(math.floor(r)), int(math.floor(c))
            r1, c1 = min(r0 + 1, H - 1), min(c0 + 1, W - 1)
            fr, fc = r - r0, c - c0
            out[:, y, x] = (
                (1 - fr) * (1 - fc) * a[r0, c0]
                + (1 - fr) * fc * a[r0, c1]
                + fr * (1 - fc) * a[r1, c0]
                + fr * fc * a[r1, c1]
            )
    return torch.from_numpy(out).float()


# ---------------------------------------------------------------------------- render


@pytest.mark.parametrize("hw", [(224, 224), (32, 32), (17, 17)])
def test_identity_crop_is_exact(hw):
    imgs = np.random.default_rng(0).integers(0, 256, size=(4, *hw, 3), dtype=np.uint8)
    out = render_views(imgs, _identity(4), hw[0])
    assert out.dtype == torch.float32 and out.shape == (4, 3, *hw)
    assert torch.equal(out, torch.from_numpy(imgs).permute(0, 3, 1, 2).float())
    # same through a torch tensor, a list, and a prepared bank
    assert torch.equal(render_views(torch.from_numpy(imgs), _identity(4), hw[0]), out)
    assert torch.equal(render_views(list(imgs), _identity(4), hw[0]), out)
    assert torch.equal(render_views(ImageBank(imgs), _identity(4), hw[0]), out)


def test_flip_reverses_columns():
    imgs = np.random.default_rng(1).integers(0, 256, size=(3, 20, 20, 3), dtype=np.uint8)
    ids, crop, _ = _identity(3)
    out = render_views(imgs, (ids, crop, np.ones(3, bool)), 20)
    assert torch.equal(out, torch.from_numpy(imgs[:, :, ::-1].copy()).permute(0, 3, 1, 2).float())
    # on a resized crop, flipping equals mirroring the unflipped render
    crop = np.array([[0.1, 0.2, 0.6, 0.7]] * 3, np.float32)
    a = render_views(imgs, (ids, crop, np.zeros(3, bool)), 9)
    b = render_views(imgs, (ids, crop, np.ones(3, bool)), 9)
    assert torch.allclose(b, a.flip(-1), atol=1e-4)


def test_gradient_crop_hand_computed():
    r, c = np.mgrid[0:8, 0:8]
    img = (10 * r + c).astype(np.uint8)[None, :, :, None]  # [1, 8, 8, 1] grayscale
    crop = np.array([[2 / 8, 1 / 8, 4 / 8, 4 / 8]], np.float32)  # pixel box (2, 1, 4, 4)
    out = render_views(img, ([0], crop, [False]), 2)
    # rows 2 + (y+.5)*2 - .5 = 2.5, 4.5 ; cols 1 + (x+.5)*2 - .5 = 1.5, 3.5 ; value 10r + c
    expect = torch.tensor([[[[26.5, 28.5], [46.5, 48.5]]]])
    assert torch.allclose(out, expect, atol=1e-3)
    out = render_views(img, ([0], crop, [True]), 2)
    assert torch.allclose(out, expect.flip(-1), atol=1e-3)


def test_upscale_bilinear_with_border_clamp_hand_computed():
    img = np.zeros((1, 2, 2, 1), np.uint8)
    img[0, 0, 0, 0] = 255
    out = render_views(img, _identity(1), 4)[0, 0]
    # coordinates (y+.5)/2 - .5 = -.25, .25, .75, 1.25 -> clamped 0, .25, .75, 1 ; weight of px 0
    wt = torch.tensor([1.0, 0.75, 0.25, 0.0])
    assert torch.allclose(out, 255 * wt[:, None] * wt[None, :], atol=1e-3)
    assert abs(out[1, 1].item() - 143.4375) < 1e-3


def test_render_matches_reference_on_random_views():
    rng = np.random.default_rng(2)
    imgs = rng.integers(0, 256, size=(5, 23, 31, 3), dtype=np.uint8)
    policy = AugmentPolicy(12, crop_scale=(0.05, 1.0), crop_ratio=(0.5, 2.0))
    v = sample_step(0, 0, 0, np.arange(5).repeat(2), np.tile([[23, 31]], (5, 1)), policy)
    out = render_views(imgs, v, policy)
    boxes = crop_pixels(v.crop, np.tile([[23, 31]], (10, 1)))
    for i in range(10):
        ref = reference_render(imgs[v.image[i]], boxes[i], v.flip[i], 12)
        assert torch.allclose(out[i], ref, atol=2e-3), i


def test_mixed_sizes_and_grayscale():
    rng = np.random.default_rng(3)
    shapes = [(12, 20), (30, 30), (12, 20), (7, 9), (30, 30)]
    for channels in (3, None):
        imgs = [rng.integers(0, 256, size=s + ((channels,) if channels else ()), dtype=np.uint8) for s in shapes]
        sizes = np.array(shapes)
        policy = AugmentPolicy(10)
        ids = np.array([4, 0, 3, 1, 2, 3, 0])
        v = sample_step(5, 1, 2, ids, sizes, policy)
        out = render_views(imgs, v, policy)
        assert out.shape == (7, channels or 1, 10, 10)
        boxes = crop_pixels(v.crop, sizes[ids])
        for i in range(7):
            ref = reference_render(imgs[ids[i]], boxes[i], v.flip[i], 10)
            assert torch.allclose(out[i], ref, atol=2e-3), (channels, i)


def test_bank_errors_and_empty():
    with pytest.raises(TypeError, match="uint8"):
        ImageBank(np.zeros((2, 4, 4, 3), np.float32))
    with pytest.raises(ValueError, match="channel"):
        ImageBank([np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4), np.uint8)])
    bank = ImageBank(np.zeros((2, 4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="image ids"):
        render_views(bank, ([2], [[0, 0, 1, 1]], [False]), 4)
    empty = render_views(bank, (np.zeros(0, int), np.zeros((0, 4)), np.zeros(0, bool)), 4)
    assert empty.shape == (0, 3, 4, 4)


# ---------------------------------------------------------------------------- mix


def _reference_mix(x, partner, lam, box, kind):
    out = x.clone()
    for i in range(x.shape[0]):
        j = int(partner[i])
        if kind == "cutmix":
            r0, c0, r1, c1 = (int(b) for b in box)
            for r in range(r0, r1):
                for c in range(c0, c1):
                    out[i, :, r, c] = x[j, :, r, c]
        elif kind == "mixup":
            out[i] = lam * x[i] + (1 - lam) * x[j]
    return out


@pytest.mark.parametrize("kind", ["none", "cutmix", "mixup"])
def test_mix_matches_reference(kind):
    policy = AugmentPolicy(16, mix=kind)
    rng = np.random.default_rng(4)
    imgs = rng.integers(0, 256, size=(6, 20, 20, 3), dtype=np.uint8)
    for step in range(5):
        v = sample_step(8, 0, step, np.arange(6), np.full((6, 2), 20), policy)
        x = render_views(imgs, v, policy)
        ref = _reference_mix(x, v.mix_partner, v.mix_lambda, v.mix_box, kind)
        got = apply_mix(x, v.mix_partner, v.mix_lambda, v.mix_box, kind)
        assert torch.allclose(got, ref, atol=1e-4)
        assert torch.allclose(render_step(imgs, v, policy), ref, atol=1e-4)
        inplace = apply_mix(x.clone(), v.mix_partner, v.mix_lambda, v.mix_box, kind, inplace=True)
        assert torch.allclose(inplace, ref, atol=1e-4)


def test_cutmix_explicit_box():
    x = torch.arange(3, dtype=torch.float32).view(3, 1, 1, 1).expand(3, 2, 5, 5).clone()
    got = apply_mix(x, np.array([2, 0, 1], np.int16), 0.5, np.array([1, 2, 3, 5], np.int16), "cutmix")
    assert torch.equal(got[0, :, 1:3, 2:5], torch.full((2, 2, 3), 2.0))
    assert got[0, 0, 0, 0] == 0 and got[0, 0, 1, 1] == 0 and got[0, 0, 3, 2] == 0
    assert torch.equal(got[1, :, 1:3, 2:5], torch.zeros(2, 2, 3))
    assert torch.equal(x[0], torch.zeros(2, 5, 5))  # not in place by default


def test_mix_rejects_bad_partners():
    x = torch.zeros(3, 1, 4, 4)
    with pytest.raises(ValueError, match="partners"):
        apply_mix(x, np.array([-1, -1, -1]), float("nan"), np.zeros(4), "cutmix")
    with pytest.raises(ValueError, match="kind"):
        apply_mix(x, np.array([0, 1, 2]), 0.5, np.zeros(4), "cutout")


# ---------------------------------------------------------------------------- device


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    rng = np.random.default_rng(5)
    imgs = [rng.integers(0, 256, size=s, dtype=np.uint8) for s in [(40, 50, 3), (64, 64, 3)] * 4]
    sizes = np.array([a.shape[:2] for a in imgs])
    policy = AugmentPolicy(32, mix="cutmix")
    v = sample_step(0, 0, 0, np.arange(8), sizes, policy)
    cpu = render_step(imgs, v, policy)
    bank = ImageBank(imgs, device="cuda")
    gpu = render_step(bank, v, policy)
    assert gpu.device.type == "cuda"
    assert torch.allclose(gpu.cpu(), cpu, atol=1e-2)
    ident = render_views(bank, ([1], [[0, 0, 1, 1]], [False]), 64)
    assert torch.equal(ident.cpu()[0], _nchw(imgs[1]))


def test_independent_replay_reproduces_stored_logits_from_the_file(tmp_path):
    """Spec §2.3/§2.4/§11: the header alone says how to rebuild the teacher's input. A store relabelled
    with a normalised teacher records mean/std in pixel units; replaying its v2 views (from the
    file: derived, regenerated) through the *raw* network with that normalisation gives the stored
    logits to float32 rounding — and without it, visibly different logits (the issue's 9.7)."""
    from relabel_helpers import TinyTeacher, digits_small

    from lplabel import open_store
    from lplabel.teachers.models import Normalized
    from lplabel.relabel import relabel

    digits = digits_small(6)
    net = TinyTeacher(1, 10, seed=3)
    teacher = Normalized(net, [0.35], [0.25])
    out = relabel(
        digits,
        teacher,
        tmp_path / "n.lpl",
        epochs=2,
        batch_size=16,
        size=8,
        seed=11,
        progress=False,
        mix="cutmix",
        values="fp32",
        views="derived",
    )
    with open_store(out) as s:
        norm = s.header["teacher"]["normalization"]
        assert norm == {"mean": [pytest.approx(0.35 * 255)], "std": [pytest.approx(0.25 * 255)]}
        assert s.header["augmentation"]["sampler"] == "lplabel-views-v2" and s.derived
        policy = AugmentPolicy.from_json(s.header["augmentation"])
        mean = torch.tensor(norm["mean"], dtype=torch.float32).reshape(1, -1, 1, 1)
        std = torch.tensor(norm["std"], dtype=torch.float32).reshape(1, -1, 1, 1)
        worst = raw_worst = 0.0
        for rec in s.iter_steps():
            v = StepViews(
                image=rec.image,
                crop=rec.crop,
                flip=rec.flip,
                mix_partner=rec.mix_partner,
                mix_lambda=rec.mix_lambda,
                mix_box=rec.mix_box,
            )
            x = render_step(digits.images, v, policy)
            with torch.no_grad():
                z = net((x - mean) / std).numpy()
                raw = net(x).numpy()
            stored = np.asarray(rec.label["logits"], dtype=np.float32)
            worst = max(worst, float(np.abs(z - stored).max()))
            raw_worst = max(raw_worst, float(np.abs(raw - stored).max()))
    assert worst < 1e-4 and raw_worst > 0.1, (worst, raw_worst)
