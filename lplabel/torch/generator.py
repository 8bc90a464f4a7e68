"""A label generator stored in the ``.lpl`` file: the network, training it, serving its labels.

The format side (architecture, weights, checks, budgets) is :mod:`lplabel.generator`
(spec/FORMAT.md §12). Here:

* :class:`GeneratorNet` -- ``convnet-lite-v1`` / ``-v2`` as a torch module, exactly the forward of
  spec §12.2 (v2 first average-pools the view to ``resolution`` px);
* :class:`StoredGenerator` -- a :class:`~lplabel.torch.label_sources.LabelSource`: the loader
  labels each step's rendered, mixed views with the store's generator
  (``ReplayLoader(..., label_source="generator")``, the default for a store that has one);
* training one: :func:`lplabel.torch.distill.distill_generator`.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..generator import EXTENSION, decode, entry_bytes, resolution_of
from .label_sources import LabelSource, LabelSourceMismatchError, _Timer, flops_per_view


class GeneratorNet(nn.Module):
    """``convnet-lite-v1`` (spec §12.2): normalise, ``depth`` × (3×3 conv, ReLU, 2×2 average pool
    between convolutions), adaptive average pooling to ``grid`` × ``grid``, flatten, linear (or
    low-rank) head. ``convnet-lite-v2`` (§12.2): the same after adaptive average pooling of the
    view to ``resolution`` × ``resolution``. Input float32 [B, C, S, S] in 0..255 (S =
    ``input_size``); output float32 logits [B, classes]."""

    def __init__(self, arch: dict):
        super().__init__()
        self.arch = dict(arch)
        #: v2: the side the view is pooled to before the convolutions (None: v1, no pooling)
        self.resolution = resolution_of(arch) if "resolution" in arch else None
        c, w, d, r, n, g = (arch[k] for k in ("in_channels", "width", "depth", "rank", "num_classes", "grid"))
        self.convs = nn.ModuleList(nn.Conv2d(c if i == 0 else w, w, 3, padding=1) for i in range(d))
        if r is None:
            self.head = nn.Linear(w * g * g, n)
        else:
            self.head_a = nn.Linear(w * g * g, r, bias=False)
            self.head_b = nn.Linear(r, n)
        self.register_buffer("mean", torch.tensor(arch["mean"], dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(arch["std"], dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.resolution is not None and (x.shape[-1] != self.resolution or x.shape[-2] != self.resolution):
            x = nn.functional.adaptive_avg_pool2d(x, self.resolution)
        x = (x - self.mean) / self.std
        last = len(self.convs) - 1
        for i, conv in enumerate(self.convs):
            x = torch.relu(conv(x))
            if i < last and x.shape[-2] >= 2 and x.shape[-1] >= 2:
                x = nn.functional.avg_pool2d(x, 2)
        x = nn.functional.adaptive_avg_pool2d(x, self.arch["grid"]).flatten(1)
        if self.arch["rank"] is None:
            return self.head(x)
        return self.head_b(self.head_a(x))

    # -- the stored tensors (spec §12.2 names) ---------------------------------------------------
    def _params(self) -> dict:
        out = {}
        for i, conv in enumerate(self.convs):
            out[f"conv{i}.weight"], out[f"conv{i}.bias"] = conv.weight, conv.bias
        if self.arch["rank"] is None:
            out["head.weight"], out["head.bias"] = self.head.weight, self.head.bias
        else:
            out["head_a.weight"] = self.head_a.weight
            out["head_b.weight"], out["head_b.bias"] = self.head_b.weight, self.head_b.bias
        return out

    def tensors(self) -> dict:
        return {k: v.detach().cpu().numpy() for k, v in self._params().items()}

    @classmethod
    def from_tensors(cls, arch: dict, tensors: dict) -> "GeneratorNet":
        net = cls(arch)
        with torch.no_grad():
            for k, p in net._params().items():
                p.copy_(torch.from_numpy(np.asarray(tensors[k], dtype=np.float32)))
        return net.eval()


def store_generator(store) -> dict | None:
    """The ``label_generator`` entry of a store's header (None when it has none)."""
    return (store.header.get("extensions") or {}).get(EXTENSION)


class StoredGenerator(LabelSource):
    """Labels from a generator stored in a ``.lpl`` file (spec §12).

    ``source``: None (the loader's own store) or another store (path or LabelStore) whose
    generator should label this store's views. :meth:`bind` refuses, before any step is read, a
    generator whose input size, channels or class count differ from the store's
    (:class:`~lplabel.torch.label_sources.LabelSourceMismatchError`).
    """

    kind = "generator"

    def __init__(self, source=None):
        self.source = source
        self.net = None
        self.entry = None
        self._timer = None
        self.flops_per_view = None

    def bind(self, store, device: torch.device, image_shape: tuple) -> None:
        from ..store import LabelStore

        src = (
            store
            if self.source is None
            else (self.source if isinstance(self.source, LabelStore) else LabelStore(self.source))
        )
        where = "ReplayLoader(label_source=generator)"
        entry = store_generator(src)
        if entry is None:
            raise LabelSourceMismatchError(
                "the store holds no label generator",
                path=src.path,
                part=where,
                hint="write one with `lplabel distill-generator`, or leave label_source out to read the label column",
            )
        arch, tensors = decode(entry)
        c, s, s2 = (int(v) for v in image_shape)
        problems = []
        if arch["input_size"] != s or s != s2:
            problems.append(
                f"it was trained on {arch['input_size']}x{arch['input_size']} views, the store renders {s}x{s2}"
            )
        if arch["in_channels"] != c:
            problems.append(f"it takes {arch['in_channels']} channels, the images have {c}")
        if arch["num_classes"] != int(store.num_classes):
            problems.append(f"it makes {arch['num_classes']} classes, the store's labels have {store.num_classes}")
        if problems:
            raise LabelSourceMismatchError(
                "the label generator does not fit this store: " + "; ".join(problems),
                path=src.path,
                part=where,
                hint="use the generator distilled for this store's views "
                "(lplabel distill-generator STORE IMAGES -o OUT.lpl)",
            )
        self.entry = entry
        self.net = GeneratorNet.from_tensors(arch, tensors).to(device)
        self.checkpoint_bytes = entry_bytes(entry)
        self.flops_per_view = flops_per_view(self.net, torch.full((1, c, s, s), 127.0, device=device))
        self._divide = float(entry.get("temperature", 1.0))
        self._timer = _Timer(torch.device(device))

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        if self.net is None:
            raise RuntimeError("StoredGenerator.bind() was not called (ReplayLoader does it)")
        t0 = self._timer.start()
        with torch.no_grad():
            z = self.net(images).float()
        if self._divide != 1.0:
            z = z / self._divide
        self._timer.stop(t0, images.shape[0])
        return z

    def stats(self) -> dict:
        tm = self._timer
        secs = tm.total() if tm is not None else 0.0
        calls = tm.calls if tm is not None else 0
        return {
            "kind": self.kind,
            "checkpoint_bytes": self.checkpoint_bytes if self.net is not None else None,
            "flops_per_view": self.flops_per_view,
            "calls": calls,
            "views": tm.views if tm is not None else 0,
            "seconds": secs,
            "ms_per_step": 1000.0 * secs / calls if calls else None,
        }
