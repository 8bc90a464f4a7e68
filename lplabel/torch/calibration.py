"""LPQLD's calibrated student-teacher alignment: pick the student temperature by grid search.

LPQLD (``train_FKD_LPQLD.py``, ``--temp_stu_dynamic``) does, at the end of every epoch, on the
*last micro-batch* of that epoch:

    t* = argmin_{t ∈ linspace(0.01, 1, 100)}  KL(p_T ‖ softmax(z_s / t))

where ``p_T`` is the teacher's (top-k renormalised) distribution at the epoch's teacher
temperature T and ``z_s`` the student's logits, and trains the whole next epoch with the
student-side log-softmax at ``z_s / t*``. The first epoch uses 1.0.

**Quirk, reproduced on purpose:** LPQLD's README and ``--help`` call the value "a calibrated
ratio of the teacher temperature", but the code uses it as an *absolute* student temperature in
[0.01, 1] and never multiplies it by T. :class:`CalibratedStudentTemperature` does the same by
default; ``relative=True`` implements the README's reading instead (``T_s = t* · T``), which is
not what LPQLD's published numbers were trained with.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .batch import SparseLabels


def default_grid(device=None) -> torch.Tensor:
    """LPQLD's grid: ``torch.linspace(0.01, 1, 100)``."""
    return torch.linspace(0.01, 1.0, 100, device=device)


@torch.no_grad()
def temperature_losses(
    student_logits: torch.Tensor, target, grid: torch.Tensor | None = None, max_elements: int = 1 << 24
) -> torch.Tensor:
    """``KL(p ‖ softmax(z_s / t))`` (batch mean) for every ``t`` in ``grid``; float32 [G].

    ``target``: dense probabilities [B, C] or :class:`SparseLabels`. Vectorised over the grid in
    chunks of at most ``max_elements`` logits.
    """
    z = student_logits.detach().float()
    grid = default_grid(z.device) if grid is None else grid.to(z.device, torch.float32)
    b, c = z.shape
    if isinstance(target, SparseLabels):
        idx, v, fill = target.indices.to(z.device), target.values.float().to(z.device), target.fill.float().to(z.device)
        rest = target.num_classes - idx.shape[1]
        plogp = torch.special.xlogy(v, v).sum(1) + rest * torch.special.xlogy(fill, fill)
    else:
        p = target.float().to(z.device)
        plogp = torch.special.xlogy(p, p).sum(1)
    step = max(1, max_elements // max(b * c, 1))
    out = []
    for s in range(0, len(grid), step):
        g = grid[s : s + step]
        log_q = F.log_softmax(z[None] / g[:, None, None], dim=2)  # [g, B, C]
        if isinstance(target, SparseLabels):
            lq_k = log_q.gather(2, idx[None].expand(len(g), -1, -1))
            plogq = (v[None] * lq_k).sum(2) + fill[None] * (log_q.sum(2) - lq_k.sum(2))
        else:
            plogq = (p[None] * log_q).sum(2)
        out.append((plogp[None] - plogq).mean(1))
    return torch.cat(out)


def calibrate_student_temperature(student_logits: torch.Tensor, target, grid: torch.Tensor | None = None):
    """``(t*, losses)``: the grid temperature minimising KL(p ‖ softmax(z_s / t)), and all losses.

    Ties go to the smallest t (``argmin``'s first minimum, as LPQLD's loop keeps the first best).
    """
    grid = default_grid(student_logits.device) if grid is None else grid.to(student_logits.device)
    losses = temperature_losses(student_logits, target, grid)
    i = int(torch.argmin(losses))
    return float(grid[i]), losses


class CalibratedStudentTemperature:
    """The student temperature of LPQLD's calibrated alignment, updated once per epoch.

    Usage::

        ts = CalibratedStudentTemperature()           # 1.0 for the first epoch
        for epoch ...:
            for batch in loader:
                out = student(x)
                loss = kl_div_loss(out, batch.probs, batch.temperature,
                                   student_temperature=ts(batch.temperature))
                ts.observe(out, batch.probs)          # keeps the last batch only
            ts.update()                               # grid search on the epoch's last batch

    ``relative=False`` (default) reproduces LPQLD's code: the found t is the absolute student
    temperature. ``relative=True`` returns ``t · T`` instead (the README's description).
    """

    def __init__(self, initial: float = 1.0, grid: torch.Tensor | None = None, relative: bool = False):
        self.value = float(initial)
        self.grid = grid
        self.relative = bool(relative)
        self._last = None
        self.history: list = []

    def __call__(self, teacher_temperature: float) -> float:
        return self.value * float(teacher_temperature) if self.relative else self.value

    def observe(self, student_logits: torch.Tensor, target) -> None:
        """Remember (detached) the latest batch; :meth:`update` calibrates on it."""
        if isinstance(target, SparseLabels):
            target = SparseLabels(
                target.indices.detach(), target.values.detach(), target.fill.detach(), target.num_classes
            )
        else:
            target = target.detach()
        self._last = (student_logits.detach(), target)

    def update(self) -> float:
        """Calibrate on the last observed batch; the result is used from now on. Returns it."""
        if self._last is None:
            return self.value
        t, _ = calibrate_student_temperature(*self._last, grid=self.grid)
        self.value = t
        self.history.append(t)
        self._last = None
        return t

    def state_dict(self) -> dict:
        return {"value": self.value, "relative": self.relative, "history": list(self.history)}

    def load_state_dict(self, state: dict) -> None:
        self.value = float(state["value"])
        self.relative = bool(state.get("relative", self.relative))
        self.history = list(state.get("history", []))
