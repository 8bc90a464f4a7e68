"""Turn a stored label block back into a probability distribution, at a temperature chosen now.

Stores keep logits (pre-softmax), never probabilities, so the temperature is a read-time
choice: LPQLD's dynamic schedule T(e) reads the same stored step at a different T each time.

Modes for top-k blocks (dense blocks always give softmax(z / T)):

* ``renorm`` (LPQLD "MR"): softmax over the k stored logits only; dropped classes get 0.
* ``tail``: dropped classes get back the mass the stored ``tail`` summary implies. With a
  ``logsumexp`` tail, each dropped class gets the fill logit ``tail - log(C - k)``, so at T=1
  the dropped mass is exact (FKD's "marginal smoothing": top-k exact, the rest uniform); at
  other T it is the uniform-tail approximation. With a ``min`` tail the fill logit is the min.
* ``uniform``: the same as ``tail`` (the dropped classes share one fill logit, i.e. the
  dropped mass is spread uniformly over them).
* ``auto``: ``tail`` when the block has a tail, else ``renorm``.

Index-only blocks (``topk`` with ``type: "none"``: ``indices`` and no ``values``) hold a set of k
classes and nothing about their logits: ``renorm`` and ``auto`` give each stored class 1/k (k = 1:
the one-hot of the teacher's top class) at every temperature; ``tail`` and ``uniform`` need values
and a tail summary and are refused (:class:`ReconstructError`), as for any store without a tail.

Quantized stores decode to float32 values (see :mod:`lplabel.codecs.quantize`); they go
through the same modes. A mode a block cannot serve raises :class:`ReconstructError` (a
``ValueError`` and an ``LplabelError``).

Works on numpy arrays, and on torch tensors (any device) via :func:`probs_torch`.
"""

from __future__ import annotations

import numpy as np

from ..dtypes import bfloat16_to_float32
from ..errors import LplabelError

MODES = ("auto", "renorm", "tail", "uniform")


class ReconstructError(LplabelError, ValueError):
    """A reconstruction mode that does not exist or that the store's labels cannot serve."""


def _f32(a: np.ndarray) -> np.ndarray:
    return bfloat16_to_float32(a) if a.dtype == np.uint16 else np.asarray(a, dtype=np.float32)


def index_only(block) -> bool:
    """True for a top-k block of class indices only (``topk`` type ``none``; also a decoded spec's
    field names, or a dict of field types)."""
    return "indices" in block and "values" not in block


def _resolve_mode(block: dict, mode: str) -> str:
    if mode not in MODES:
        raise ReconstructError(f"unknown reconstruction mode {mode!r}", hint=f"choose one of {', '.join(MODES)}")
    if "logits" not in block and index_only(block):
        if mode in ("auto", "renorm"):
            return "renorm"
        raise ReconstructError(
            f"reconstruction mode {mode!r} needs stored values and a tail summary; this store "
            "keeps class indices only (topk type 'none'): its k classes share the mass equally",
            hint="use mode 'renorm' or 'auto'",
        )
    if mode == "auto":
        return "tail" if "tail" in block else "renorm"
    if mode in ("tail", "uniform") and "tail" not in block:
        raise ReconstructError(
            f"reconstruction mode {mode!r} needs a stored tail summary; this store has none",
            hint="re-quantize with --tail logsumexp, or use mode 'renorm'",
        )
    return "tail" if mode == "uniform" else mode


def _fill_logit(tail: np.ndarray, c: int, k: int, tail_kind: str):
    if tail_kind == "min":
        return tail
    return tail - np.log(max(c - k, 1))


def probs_numpy(
    block: dict, num_classes: int, *, temperature: float = 1.0, mode: str = "auto", tail_kind: str = "logsumexp"
) -> np.ndarray:
    """Dense probabilities float32 [n, C] from a decoded label block."""
    t = float(temperature)
    if "logits" in block:
        z = _f32(block["logits"]) / t
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)
    mode = _resolve_mode(block, mode)
    idx = np.asarray(block["indices"]).astype(np.int64)
    if "values" not in block:  # class indices only: 1/k each, whatever the temperature
        out = np.zeros((idx.shape[0], num_classes), dtype=np.float32)
        np.put_along_axis(out, idx, np.float32(1.0 / max(idx.shape[1], 1)), axis=1)
        return out
    v = _f32(block["values"]).astype(np.float64) / t
    n, k = v.shape
    out = np.zeros((n, num_classes), dtype=np.float64)
    if mode == "renorm":
        v = v - v.max(axis=1, keepdims=True)
        e = np.exp(v)
        np.put_along_axis(out, idx, e / e.sum(axis=1, keepdims=True), axis=1)
        return out.astype(np.float32)
    fill = _fill_logit(_f32(block["tail"]).astype(np.float64), num_classes, k, tail_kind) / t
    m = np.maximum(v.max(axis=1), fill)
    e = np.exp(v - m[:, None])
    ef = np.exp(fill - m)
    z = e.sum(axis=1) + (num_classes - k) * ef
    out[:] = (ef / z)[:, None]
    np.put_along_axis(out, idx, e / z[:, None], axis=1)
    return out.astype(np.float32)


def probs_torch(
    block: dict,
    num_classes: int,
    *,
    temperature: float = 1.0,
    mode: str = "auto",
    tail_kind: str = "logsumexp",
    device=None,
):
    """Like :func:`probs_numpy`, on torch tensors (numpy inputs are moved to ``device``)."""
    import torch

    def t_(a, dtype=torch.float32):
        if isinstance(a, np.ndarray):
            if a.dtype == np.uint16 and dtype.is_floating_point:  # bfloat16 bits of values/tail
                a = bfloat16_to_float32(a)
            a = torch.from_numpy(np.ascontiguousarray(a))
        return a.to(device=device if device is not None else a.device, dtype=dtype, non_blocking=True)

    t = float(temperature)
    if "logits" in block:
        return torch.softmax(t_(block["logits"]) / t, dim=1)
    mode = _resolve_mode(block, mode)
    idx = t_(block["indices"], torch.int64)
    if "values" not in block:  # class indices only: 1/k each, whatever the temperature
        out = torch.zeros((idx.shape[0], num_classes), device=idx.device, dtype=torch.float32)
        return out.scatter_(1, idx, 1.0 / max(idx.shape[1], 1))
    v = t_(block["values"]) / t
    n, k = v.shape
    if mode == "renorm":
        p = torch.softmax(v, dim=1)
        return torch.zeros((n, num_classes), device=v.device, dtype=torch.float32).scatter_(1, idx, p)
    tail = t_(block["tail"])
    fill = (tail if tail_kind == "min" else tail - float(np.log(max(num_classes - k, 1)))) / t
    m = torch.maximum(v.max(dim=1).values, fill)
    e = torch.exp(v - m[:, None])
    ef = torch.exp(fill - m)
    z = e.sum(dim=1) + (num_classes - k) * ef
    out = (ef / z)[:, None].expand(n, num_classes).clone()
    return out.scatter_(1, idx, e / z[:, None])


def tail_kind_of(pipeline) -> str:
    """The tail summary kind a store's label chain records (``logsumexp``, ``min`` or ``none``)."""
    for c in pipeline.codecs:
        if c.name == "topk":
            return c.tail
    return "none"
