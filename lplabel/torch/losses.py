"""The losses relabel-style distillation trains students with, on dense or sparse soft labels.

Targets come from :class:`~lplabel.torch.batch.StepBatch`: dense probabilities ``[B, C]``
(``batch.probs`` / ``batch.dense()``), :class:`~lplabel.torch.batch.SparseLabels` (top-k stores,
``batch.sparse`` / ``batch.sparse_probs()``), or stored logits
(:class:`~lplabel.torch.batch.LogitTargets`, ``batch.logit_targets()``). Sparse targets never
build a [B, C] teacher tensor; the student's log-softmax is over all C classes either way, so
sparse and dense give the same value (tested).

=====================  ==========================================================  ==================
loss                   formula (batch mean over the B views)                       used by
=====================  ==========================================================  ==================
``kl_div_loss``        Σ_c p_c (log p_c − log q_c),  q = softmax(z_s / T_s)        SRe2L, LPLD, LPQLD,
                       × T² with ``t_squared=True``                                RDED (T=20), CDA
``soft_cross_entropy`` −Σ_c p_c log q_c                                            FKD, DD-Ranking SCE
``mse_gt_loss``        w_mse · MSE(z_s, z_t) + w_ce · CE(z_s, y)                  G-VBSM (w_ce 0.1),
                                                                                   EDC (0.025)
=====================  ==========================================================  ==================

``T_s`` (student temperature) defaults to the teacher temperature ``T``; LPQLD's calibrated
alignment sets it separately (see :mod:`lplabel.torch.calibration`).

MSE on top-k stores: the logits of the classes a top-k store dropped were never stored, so
:func:`mse_logits_loss` compares the student's logits at the k stored classes only (the mean is
over B×k entries instead of B×C) and leaves the other C−k logits to the cross-entropy term.
Filling the dropped classes with a guess (the tail's log-mean-exp or the smallest stored value)
would pull every dropped logit towards one invented constant; we prefer saying nothing about them.
Because the mean is over fewer, larger entries, a weight tuned on dense labels may need retuning.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .batch import LogitTargets, SparseLabels


def _log_q(student_logits: torch.Tensor, ts: float) -> torch.Tensor:
    return F.log_softmax(student_logits.float() / ts, dim=1)


def _temps(temperature, student_temperature):
    t = float(temperature)
    ts = t if student_temperature is None else float(student_temperature)
    if not (t > 0 and ts > 0 and math.isfinite(t) and math.isfinite(ts)):
        raise ValueError(f"temperatures must be finite and > 0, got T={t}, T_s={ts}")
    return t, ts


def _cross_terms(log_q: torch.Tensor, target) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row (Σ p log p, Σ p log q) for a dense or sparse target."""
    if isinstance(target, SparseLabels):
        idx, v, fill = target.indices, target.values.float(), target.fill.float()
        k = idx.shape[1]
        rest = target.num_classes - k
        lq_k = log_q.gather(1, idx)
        plogp = torch.special.xlogy(v, v).sum(1) + rest * torch.special.xlogy(fill, fill)
        plogq = (v * lq_k).sum(1) + fill * (log_q.sum(1) - lq_k.sum(1))
        return plogp, plogq
    p = target.float()
    if p.shape != log_q.shape:
        raise ValueError(f"target shape {tuple(p.shape)} differs from the student's {tuple(log_q.shape)}")
    return torch.special.xlogy(p, p).sum(1), (p * log_q).sum(1)


def kl_div_loss(
    student_logits: torch.Tensor,
    target,
    temperature: float = 1.0,
    *,
    t_squared: bool = False,
    student_temperature: float | None = None,
) -> torch.Tensor:
    """``KLDivLoss(batchmean)(log_softmax(z_s / T_s), p)``, optionally × T².

    ``target``: teacher probabilities at ``temperature`` (dense [B, C] or SparseLabels). With
    ``t_squared`` the loss is scaled by T² (Hinton's gradient-scale correction; SRe2L/LPLD/LPQLD
    on ImageNet do *not* use it, their Tiny-ImageNet configs do).
    """
    t, ts = _temps(temperature, student_temperature)
    plogp, plogq = _cross_terms(_log_q(student_logits, ts), target)
    loss = (plogp - plogq).mean()
    return loss * (t * t) if t_squared else loss


def soft_cross_entropy(
    student_logits: torch.Tensor,
    target,
    temperature: float = 1.0,
    *,
    t_squared: bool = False,
    student_temperature: float | None = None,
) -> torch.Tensor:
    """``−(1/B) Σ_b Σ_c p_c log softmax(z_s / T_s)_c`` (= KL + the teacher's entropy)."""
    t, ts = _temps(temperature, student_temperature)
    _, plogq = _cross_terms(_log_q(student_logits, ts), target)
    loss = -plogq.mean()
    return loss * (t * t) if t_squared else loss


def mse_logits_loss(student_logits: torch.Tensor, target) -> torch.Tensor:
    """Mean squared error between student and stored teacher logits.

    ``target``: a dense logit tensor [B, C] or :class:`LogitTargets`. Top-k targets compare the
    k stored classes only (see the module doc).
    """
    z = student_logits.float()
    if isinstance(target, LogitTargets):
        if target.indices is None:
            return F.mse_loss(z, target.values.float())
        return F.mse_loss(z.gather(1, target.indices), target.values.float())
    return F.mse_loss(z, target.float())


def mse_gt_loss(
    student_logits: torch.Tensor,
    logit_target,
    hard_target: torch.Tensor,
    *,
    mse_weight: float = 1.0,
    ce_weight: float = 0.1,
) -> torch.Tensor:
    """G-VBSM's ``mse_gt``: ``mse_weight · MSE(z_s, z_t) + ce_weight · CE(z_s, y)``.

    ``hard_target``: int64 [B] class of each view's own image (``batch.target``; mixed views keep
    their own image's class, as G-VBSM does); -1 entries are ignored. EDC uses ce_weight 0.025.
    """
    loss = mse_weight * mse_logits_loss(student_logits, logit_target)
    if ce_weight:
        loss = loss + ce_weight * F.cross_entropy(student_logits.float(), hard_target.long(), ignore_index=-1)
    return loss
