"""What the loader hands to a training loop: one stored step, as tensors.

A :class:`StepBatch` carries a step's views (image ids, crop boxes, flips, mix partner/λ/box),
the hard classes of its images, the rendered and mixed images (unless labels-only), and its
soft labels: always the *stored* block (``label``: dense ``logits``, or top-k ``indices`` +
``values`` [+ ``tail``]) and, when asked for, probabilities at the step's temperature, either
dense (``probs`` [B, C]) or sparse (``sparse``: :class:`SparseLabels`).

It works with a stock ``DataLoader(batch_size=None)``: ``default_convert`` passes it through,
``pin_memory=True`` calls :meth:`StepBatch.pin_memory`, and it pickles. :meth:`StepBatch.to`
moves everything to a device.

Pickling (how a batch travels from a DataLoader worker to the main process): PyTorch sends each
CPU tensor through its own shared-memory segment and passes a file descriptor for it over a
socket, which costs about a millisecond per tensor on a busy machine -- more than decoding the
step. A StepBatch therefore packs all its CPU tensors of at most :data:`INLINE_BYTES` each into
one byte buffer that is pickled by value (one copy through the pipe), and only larger tensors
(rendered images, dense labels of very wide C) take the shared-memory route. On arrival the
tensors are views into that one buffer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from typing import NamedTuple

import numpy as np
import torch

from ..reconstruct import ReconstructError, _resolve_mode, probs_torch

LABEL_FORMATS = ("dense", "sparse", "raw")

#: CPU tensors up to this size travel by value inside one packed buffer when a StepBatch is
#: pickled; larger ones go through torch's shared memory (see the module doc).
INLINE_BYTES = 1 << 20
_ALIGN = 16


class StepKey(NamedTuple):
    """What a :class:`~lplabel.torch.StepSampler` yields: a stored step and how to serve it.

    ``position``: the stored step (0..num_steps-1); ``epoch``: the training epoch; ``slot``:
    this rank's index of the step within the epoch (0-based, what resume counts);
    ``temperature``: the label temperature of that epoch.
    """

    position: int
    epoch: int = -1
    slot: int = -1
    temperature: float = float("nan")


class SparseLabels(NamedTuple):
    """Probabilities of a top-k store, without materialising [B, C].

    ``indices`` int64 [B, k] and ``values`` float32 [B, k]: the probabilities of the stored
    classes. ``fill`` float32 [B]: the probability of *each* class that is not stored (0 in
    ``renorm`` mode; the uniform tail share in ``tail`` mode). ``num_classes``: C. Each row sums
    to one: ``values.sum(1) + (C - k) * fill == 1``.
    """

    indices: torch.Tensor
    values: torch.Tensor
    fill: torch.Tensor
    num_classes: int

    def to(self, device, non_blocking: bool = False) -> "SparseLabels":
        return SparseLabels(
            self.indices.to(device, non_blocking=non_blocking),
            self.values.to(device, non_blocking=non_blocking),
            self.fill.to(device, non_blocking=non_blocking),
            self.num_classes,
        )

    def dense(self) -> torch.Tensor:
        """The same distribution as a dense float32 [B, C] tensor."""
        b = self.values.shape[0]
        out = self.fill[:, None].expand(b, self.num_classes).clone()
        return out.scatter_(1, self.indices, self.values)


def sparse_probs(
    block: dict, num_classes: int, temperature: float, mode: str = "auto", tail_kind: str = "logsumexp"
) -> SparseLabels:
    """:class:`SparseLabels` at ``temperature`` from a top-k label block of tensors.

    Modes as :mod:`lplabel.reconstruct`: ``renorm`` (softmax over the k stored logits, LPQLD
    "MR"), ``tail`` (dropped classes share the stored tail mass uniformly), ``auto`` (tail when
    the block has one). A block of class indices only (topk type ``none``) gives 1/k to each
    stored class (``renorm``/``auto``).
    """
    if "indices" not in block:
        raise ValueError(
            "sparse labels need a top-k store; this store keeps dense logits "
            "(use labels='dense', or re-quantize the store with top-k)"
        )
    mode = _resolve_mode(block, mode)
    t = float(temperature)
    idx = block["indices"].to(torch.int64)
    if "values" not in block:  # class indices only
        n, k = idx.shape
        return SparseLabels(
            idx,
            torch.full((n, k), 1.0 / max(k, 1), device=idx.device, dtype=torch.float32),
            torch.zeros(n, device=idx.device, dtype=torch.float32),
            num_classes,
        )
    v = block["values"].to(torch.float32) / t
    n, k = v.shape
    if mode == "renorm":
        return SparseLabels(idx, torch.softmax(v, dim=1), v.new_zeros(n), num_classes)
    tail = block["tail"].to(torch.float32)
    fill = (tail if tail_kind == "min" else tail - math.log(max(num_classes - k, 1))) / t
    m = torch.maximum(v.max(dim=1).values, fill)
    e = torch.exp(v - m[:, None])
    ef = torch.exp(fill - m)
    z = e.sum(dim=1) + (num_classes - k) * ef
    return SparseLabels(idx, e / z[:, None], ef / z, num_classes)


def probs_into(
    block: dict,
    out: torch.Tensor,
    num_classes: int,
    temperature: float,
    mode: str = "auto",
    tail_kind: str = "logsumexp",
    scratch: torch.Tensor | None = None,
) -> torch.Tensor:
    """:func:`lplabel.reconstruct.probs_torch` written into ``out`` (float32 [n, C]), the same values
    bit for bit, without [n, C] temporaries (large fresh allocations cost page faults on every
    call). ``scratch``: a float32 tensor of ``out``'s shape for dense logits (else allocated)."""
    t = float(temperature)
    if "logits" in block:
        if scratch is None:
            scratch = torch.empty_like(out)
        scratch.copy_(block["logits"])  # the exact widening .to(float32) does
        scratch.div_(t)
        return torch.softmax(scratch, 1, out=out)
    mode = _resolve_mode(block, mode)
    idx = block["indices"].to(torch.int64)
    if "values" not in block:  # class indices only: 1/k each
        return out.zero_().scatter_(1, idx, 1.0 / max(idx.shape[1], 1))
    v = block["values"].to(torch.float32) / t
    n, k = v.shape
    if mode == "renorm":
        p = torch.softmax(v, dim=1)
        return out.zero_().scatter_(1, idx, p)
    tail = block["tail"].to(torch.float32)
    fill = (tail if tail_kind == "min" else tail - float(np.log(max(num_classes - k, 1)))) / t
    m = torch.maximum(v.max(dim=1).values, fill)
    e = torch.exp(v - m[:, None])
    ef = torch.exp(fill - m)
    z = e.sum(dim=1) + (num_classes - k) * ef
    out.copy_((ef / z)[:, None].expand(n, num_classes))
    return out.scatter_(1, idx, e / z[:, None])


class LogitTargets(NamedTuple):
    """Teacher logits for logit-matching losses (MSE).

    Dense stores: ``values`` float32 [B, C], ``indices`` None. Top-k stores: ``values``
    float32 [B, k] are the stored logits of classes ``indices`` int64 [B, k]; the other classes'
    logits were not stored, so :func:`lplabel.torch.losses.mse_logits_loss` compares only these.
    """

    values: torch.Tensor
    indices: torch.Tensor | None = None


def _rebuild_batch(state, specs, buf):
    """Unpickle a StepBatch: packed tensors become views into the one received buffer."""
    base = torch.frombuffer(buf, dtype=torch.uint8) if len(buf) else None
    for path, dtype, shape, off, n in specs:
        dt = getattr(torch, dtype)
        t = base[off : off + n].view(dt).reshape(shape) if n else torch.empty(shape, dtype=dt)
        _assign(state, path, t)
    return StepBatch(**state)


def _assign(state, path, t):
    if len(path) == 1:
        state[path[0]] = t
        return
    parent = state[path[0]]
    if isinstance(parent, SparseLabels):
        state[path[0]] = parent._replace(**{path[1]: t})
        return
    d = parent
    for k in path[1:-1]:
        d = d[k]
    d[path[-1]] = t


def _pack(x, path, packed, specs):
    """``x`` with its small CPU tensors taken out (None in their place) and appended to ``packed``,
    their (path, dtype, shape, offset, nbytes) to ``specs``. A plain recursive function: a nested
    closure calling itself would be a reference cycle holding the batch's tensors (and the
    shared-memory slab they view) until the cyclic garbage collector runs."""
    if isinstance(x, torch.Tensor):
        if x.device.type == "cpu" and not x.requires_grad and x.numel() * x.element_size() <= INLINE_BYTES:
            x = x.contiguous()
            total = specs[-1][3] + specs[-1][4] if specs else 0
            off = -(-total // _ALIGN) * _ALIGN
            specs.append((path, str(x.dtype).replace("torch.", ""), tuple(x.shape), off, x.numel() * x.element_size()))
            packed.append(x)
            return None
        return x
    if isinstance(x, dict):
        return {k: _pack(v, path + (k,), packed, specs) for k, v in x.items()}
    if isinstance(x, SparseLabels):
        return SparseLabels(
            *(_pack(getattr(x, k), path + (k,), packed, specs) for k in ("indices", "values", "fill")), x.num_classes
        )
    return x


def _move(x, device, non_blocking):
    if isinstance(x, torch.Tensor):
        return x.to(device, non_blocking=non_blocking)
    if isinstance(x, dict):
        return {k: _move(v, device, non_blocking) for k, v in x.items()}
    if isinstance(x, SparseLabels):
        return x.to(device, non_blocking)
    return x


def _pin(x):
    if isinstance(x, torch.Tensor):
        return x.pin_memory()
    if isinstance(x, dict):
        return {k: _pin(v) for k, v in x.items()}
    if isinstance(x, SparseLabels):
        return SparseLabels(x.indices.pin_memory(), x.values.pin_memory(), x.fill.pin_memory(), x.num_classes)
    return x


@dataclass
class StepBatch:
    """One stored step, ready for the student (see the module doc).

    Views: ``image_ids`` int64 [B], ``crop`` float32 [B, 4] (top, left, height, width as
    fractions of the source image), ``flip`` bool [B], ``mix_partner`` int64 [B] (-1 = none),
    ``mix_lambda`` float (NaN = none), ``mix_box`` int64 [4] (row0, col0, row1, col1, output
    pixels), ``mix_kind`` (``none``/``cutmix``/``mixup``, or ``unknown`` when labels-only and the
    store names no policy). ``target``: int64 [B], the hard class of each view's own image
    (-1 = unknown); a mixed view's partner class is ``target[mix_partner]``.

    ``images``: float32 [B, C, S, S], rendered and mixed exactly as the relabeler did, then converted
    to the loader's ``normalize=`` convention; None in labels-only mode. ``pixels`` says what they
    hold: ``"0-255"`` (lplabel's rendering, the default), ``"0-1"``, ``"normalized"`` (``(x/255 -
    mean) / std``) or ``"custom"`` (after a ``transform=``); see :mod:`lplabel.torch.pixels`.

    ``label``: the stored label block as tensors (``logits`` in the stored dtype; or
    ``indices`` int32, ``values`` in the stored dtype and optional ``tail``). ``probs`` /
    ``sparse``: probabilities at ``temperature``, filled according to ``label_format``.
    """

    position: int
    epoch: int
    slot: int
    stored_epoch: int
    stored_step: int
    temperature: float
    image_ids: torch.Tensor
    crop: torch.Tensor
    flip: torch.Tensor
    mix_partner: torch.Tensor
    mix_lambda: float
    mix_box: torch.Tensor
    mix_kind: str
    target: torch.Tensor
    label: dict
    num_classes: int
    label_format: str = "raw"
    recon_mode: str = "auto"
    tail_kind: str = "none"
    images: torch.Tensor | None = None
    probs: torch.Tensor | None = None
    sparse: SparseLabels | None = None
    extra: dict = field(default_factory=dict)
    pixels: str = "0-255"

    def __len__(self) -> int:
        return int(self.image_ids.shape[0])

    def __reduce__(self):
        state = {f.name: getattr(self, f.name) for f in fields(self)}
        packed, specs = [], []
        for name in list(state):
            state[name] = _pack(state[name], (name,), packed, specs)
        total = specs[-1][3] + specs[-1][4] if specs else 0
        buf = bytearray(total)
        if total:
            dst = torch.frombuffer(buf, dtype=torch.uint8)
            for x, (_, _, _, off, n) in zip(packed, specs):
                if n:
                    dst[off : off + n].copy_(x.reshape(-1).view(torch.uint8))
        return _rebuild_batch, (state, specs, buf)

    @property
    def device(self) -> torch.device:
        return self.image_ids.device

    @property
    def mixed(self) -> bool:
        return not math.isnan(self.mix_lambda)

    @property
    def is_topk(self) -> bool:
        return "indices" in self.label

    # -- moving --------------------------------------------------------------------------------
    def to(self, device, non_blocking: bool = False) -> "StepBatch":
        """A copy with every tensor on ``device`` (``non_blocking`` for pinned sources)."""
        device = torch.device(device)
        kw = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, (torch.Tensor, dict, SparseLabels)):
                kw[f.name] = _move(v, device, non_blocking)
        return replace(self, **kw)

    def pin_memory(self) -> "StepBatch":
        """A copy in page-locked memory (``DataLoader(pin_memory=True)`` calls this)."""
        kw = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, (torch.Tensor, dict, SparseLabels)):
                kw[f.name] = _pin(v)
        return replace(self, **kw)

    # -- labels ----------------------------------------------------------------------------------
    def _temp(self, temperature):
        t = self.temperature if temperature is None else float(temperature)
        if not (t > 0 and math.isfinite(t)):
            raise ValueError(
                f"no valid temperature for this batch (got {t!r}); give the sampler a temperature "
                "schedule or pass temperature="
            )
        return t

    def dense(self, temperature: float | None = None, mode: str | None = None) -> torch.Tensor:
        """Dense probabilities float32 [B, C] on the batch's device, at ``temperature``.

        Defaults to the batch's own temperature and reconstruction mode; reuses ``probs`` when
        it was already computed at that temperature.
        """
        t = self._temp(temperature)
        mode = self.recon_mode if mode is None else mode
        if self.probs is not None and t == self.temperature and mode == self.recon_mode:
            return self.probs
        if self.sparse is not None and t == self.temperature and mode == self.recon_mode:
            return self.sparse.dense()
        return probs_torch(self.label, self.num_classes, temperature=t, mode=mode, tail_kind=self.tail_kind)

    def sparse_probs(self, temperature: float | None = None, mode: str | None = None) -> SparseLabels:
        """:class:`SparseLabels` at ``temperature`` (top-k stores only)."""
        t = self._temp(temperature)
        mode = self.recon_mode if mode is None else mode
        if self.sparse is not None and t == self.temperature and mode == self.recon_mode:
            return self.sparse
        return sparse_probs(self.label, self.num_classes, t, mode, self.tail_kind)

    @property
    def soft_labels(self):
        """The labels in the loader's ``label_format``: dense tensor, SparseLabels, or (raw) dense."""
        if self.label_format == "sparse":
            return self.sparse_probs()
        return self.dense()

    def logit_targets(self) -> LogitTargets:
        """Stored teacher logits for MSE-style losses (see :class:`LogitTargets`)."""
        if "logits" in self.label:
            return LogitTargets(self.label["logits"].to(torch.float32))
        if "values" not in self.label:
            raise ReconstructError(
                "logit targets need stored logits; this store keeps class indices only (topk type 'none')",
                hint="train with kl_div_loss / soft_cross_entropy on batch.dense() or batch.sparse_probs()",
            )
        return LogitTargets(self.label["values"].to(torch.float32), self.label["indices"].to(torch.int64))

    def finalize(self, label_format: str | None = None) -> "StepBatch":
        """Compute ``probs`` / ``sparse`` for ``label_format`` (in place; returns self)."""
        fmt = self.label_format if label_format is None else label_format
        if fmt not in LABEL_FORMATS:
            raise ValueError(f"label format must be one of {LABEL_FORMATS}, got {fmt!r}")
        self.label_format = fmt
        if fmt == "dense" and self.probs is None:
            self.probs = self.dense()
        elif fmt == "sparse" and self.sparse is None:
            self.sparse = self.sparse_probs()
        return self
