"""Losses and LPQLD's student-temperature calibration against hand computations."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lplabel.torch import (
    CalibratedStudentTemperature,
    LogitTargets,
    SparseLabels,
    calibrate_student_temperature,
    kl_div_loss,
    mse_gt_loss,
    mse_logits_loss,
    soft_cross_entropy,
    sparse_probs,
    temperature_losses,
)


def _softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


@pytest.fixture
def data():
    g = torch.Generator().manual_seed(0)
    zs = torch.randn(5, 7, generator=g, dtype=torch.float64).float() * 2
    zt = torch.randn(5, 7, generator=g, dtype=torch.float64).float() * 3
    return zs, zt


def _hand_kl(zs, p, ts):
    q = _softmax(zs.double().numpy() / ts)
    p = p.double().numpy()
    terms = np.where(p > 0, p * (np.log(np.where(p > 0, p, 1)) - np.log(q)), 0.0)
    return terms.sum() / p.shape[0]


@pytest.mark.parametrize("t", [1.0, 4.0, 20.0])
def test_kl_dense_matches_hand_and_torch(data, t):
    zs, zt = data
    p = torch.softmax(zt / t, 1)
    got = kl_div_loss(zs, p, t)
    assert got.item() == pytest.approx(_hand_kl(zs, p, t), rel=1e-5)
    ref = torch.nn.KLDivLoss(reduction="batchmean")(F.log_softmax(zs / t, 1), p)
    assert got.item() == pytest.approx(ref.item(), rel=1e-5)
    assert kl_div_loss(zs, p, t, t_squared=True).item() == pytest.approx(got.item() * t * t, rel=1e-6)
    ts = 0.37  # a separate student temperature (LPQLD calibration)
    assert kl_div_loss(zs, p, t, student_temperature=ts).item() == pytest.approx(_hand_kl(zs, p, ts), rel=1e-5)


def _topk_block(zt, k, tail=True):
    v, idx = torch.topk(zt, k, dim=1)
    block = {"indices": idx, "values": v}
    if tail:
        mask = torch.ones_like(zt, dtype=torch.bool).scatter_(1, idx, False)
        block["tail"] = torch.logsumexp(zt.masked_fill(~mask, float("-inf")), 1)
    return block


@pytest.mark.parametrize("mode", ["renorm", "tail"])
def test_sparse_equals_dense(data, mode):
    zs, zt = data
    sp = sparse_probs(_topk_block(zt, 3), 7, 2.5, mode)
    dense = sp.dense()
    torch.testing.assert_close(dense.sum(1), torch.ones(5))
    for fn in (kl_div_loss, soft_cross_entropy):
        assert fn(zs, sp, 2.5).item() == pytest.approx(fn(zs, dense, 2.5).item(), rel=1e-5, abs=1e-6)
    if mode == "renorm":  # LPQLD MR: softmax over the stored logits, zero elsewhere
        v, idx = torch.topk(zt, 3, dim=1)
        want = torch.zeros(5, 7).scatter_(1, idx, torch.softmax(v / 2.5, 1))
        torch.testing.assert_close(dense, want)
        assert kl_div_loss(zs, sp, 2.5).item() == pytest.approx(_hand_kl(zs, want, 2.5), rel=1e-5)
    else:  # at T=1 the tail restores the dropped mass exactly
        p1 = sparse_probs(_topk_block(zt, 3), 7, 1.0, "tail")
        torch.testing.assert_close(p1.values, torch.softmax(zt, 1).gather(1, p1.indices), rtol=1e-5, atol=1e-6)


def test_soft_cross_entropy_is_kl_plus_entropy(data):
    zs, zt = data
    p = torch.softmax(zt / 3, 1)
    h = -(p * p.log()).sum(1).mean()
    assert soft_cross_entropy(zs, p, 3.0).item() == pytest.approx((kl_div_loss(zs, p, 3.0) + h).item(), rel=1e-5)
    hand = -(p.double() * F.log_softmax(zs.double() / 3, 1)).sum(1).mean()
    assert soft_cross_entropy(zs, p, 3.0).item() == pytest.approx(hand.item(), rel=1e-5)


def test_mse_dense_topk_and_gt(data):
    zs, zt = data
    assert mse_logits_loss(zs, zt).item() == pytest.approx(((zs - zt) ** 2).mean().item(), rel=1e-6)
    assert mse_logits_loss(zs, LogitTargets(zt)).item() == pytest.approx(((zs - zt) ** 2).mean().item(), rel=1e-6)
    v, idx = torch.topk(zt, 3, dim=1)
    hand = np.mean([(zs[b, idx[b, j]] - v[b, j]).item() ** 2 for b in range(5) for j in range(3)])
    assert mse_logits_loss(zs, LogitTargets(v, idx)).item() == pytest.approx(hand, rel=1e-5)
    y = torch.tensor([0, 3, 6, -1, 2])
    ce = F.cross_entropy(zs, y, ignore_index=-1)
    got = mse_gt_loss(zs, zt, y, ce_weight=0.1)
    assert got.item() == pytest.approx((((zs - zt) ** 2).mean() + 0.1 * ce).item(), rel=1e-6)
    assert mse_gt_loss(zs, zt, y, mse_weight=2.0, ce_weight=0.0).item() == pytest.approx(
        2 * ((zs - zt) ** 2).mean().item(), rel=1e-6
    )


def test_losses_backprop(data):
    zs, zt = data
    zs = zs.clone().requires_grad_(True)
    sp = sparse_probs(_topk_block(zt, 3), 7, 2.0, "renorm")
    (
        kl_div_loss(zs, sp, 2.0)
        + mse_gt_loss(zs, LogitTargets(sp.values, sp.indices), torch.zeros(5, dtype=torch.long))
    ).backward()
    assert torch.isfinite(zs.grad).all() and zs.grad.abs().sum() > 0


# ------------------------------------------------------------------------------- calibration
def test_calibration_matches_brute_force(data):
    zs, zt = data
    p = torch.softmax(zt / 20.0, 1)
    t, losses = calibrate_student_temperature(zs, p)
    grid = torch.linspace(0.01, 1, 100)
    brute = [torch.nn.KLDivLoss(reduction="batchmean")(F.log_softmax(zs / g, 1), p).item() for g in grid]
    np.testing.assert_allclose(losses.numpy(), brute, rtol=1e-4, atol=1e-6)
    assert t == pytest.approx(grid[int(np.argmin(brute))].item())


def test_calibration_recovers_known_temperature():
    g = torch.Generator().manual_seed(1)
    zs = torch.randn(16, 50, generator=g)
    grid = torch.linspace(0.01, 1, 100)
    p = torch.softmax(zs / grid[49], 1)  # teacher = student at t = 0.5
    t, losses = calibrate_student_temperature(zs, p)
    assert t == pytest.approx(0.5) and losses.min().item() == pytest.approx(0.0, abs=1e-5)
    # sparse targets give the same curve as their dense form
    sp = SparseLabels(*torch.topk(p, 10, 1)[::-1], torch.zeros(16), 50)
    sp = SparseLabels(sp.indices, sp.values / sp.values.sum(1, keepdim=True), sp.fill, 50)
    np.testing.assert_allclose(
        temperature_losses(zs, sp).numpy(), temperature_losses(zs, sp.dense()).numpy(), rtol=1e-4, atol=1e-5
    )
    # chunked evaluation agrees
    np.testing.assert_allclose(temperature_losses(zs, p, max_elements=1000).numpy(), losses.numpy(), rtol=1e-6)


def test_calibrated_student_temperature_is_absolute_by_default():
    g = torch.Generator().manual_seed(2)
    zs = torch.randn(8, 20, generator=g)
    p = torch.softmax(zs / 0.25, 1)
    ts = CalibratedStudentTemperature()
    assert ts(20.0) == 1.0  # first epoch
    ts.observe(zs, p)
    assert ts.update() == pytest.approx(0.25, abs=0.006)
    assert ts(20.0) == ts.value and ts(2.0) == ts.value  # LPQLD quirk: independent of T
    rel = CalibratedStudentTemperature(relative=True)
    rel.observe(zs, p)
    rel.update()
    assert rel(20.0) == pytest.approx(20.0 * rel.value)
    state = ts.state_dict()
    ts2 = CalibratedStudentTemperature()
    ts2.load_state_dict(state)
    assert ts2.value == ts.value and ts2.history == ts.history
    assert not math.isnan(ts2.value)
