"""Shared helpers of the relabel tests: tiny teachers, small image sets, store comparison."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from lplabel import open_store
from lplabel.images import ImageSet


import pytest


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Tiny batches gain nothing from intra-op threads, and on a busy 2-core machine OpenMP
    workers waiting for a core make every op slow; subprocesses get OMP_NUM_THREADS=1 too, so
    in-process references and CLI runs compute with the same thread count."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


class TinyTeacher(nn.Module):
    """A small conv net on 0..255 input (any size, any channel count given at build time)."""

    def __init__(self, in_channels=1, num_classes=10, width=8, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.conv = nn.Conv2d(in_channels, width, 3, padding=1)
        self.fc = nn.Linear(width, num_classes)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
        self.eval()

    def forward(self, x):
        x = torch.relu(self.conv(x / 255.0 - 0.5))
        return self.fc(x.mean((2, 3))) * 3.0


class Counting(nn.Module):
    """Wraps a teacher and counts the views it labels (excluding the probe's tiny batch)."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.batches = []

    def forward(self, x):
        self.batches.append(int(x.shape[0]))
        return self.inner(x)


class FailAfter(nn.Module):
    """Raises RuntimeError on the n-th forward call (the probe is call 1)."""

    def __init__(self, inner, n):
        super().__init__()
        self.inner = inner
        self.n = n
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        if self.calls >= self.n:
            raise KeyboardInterrupt("simulated interruption")
        return self.inner(x)


def digits_small(per_class=8):
    from lplabel.datasets import load_dataset

    return load_dataset("digits", limit_per_class=per_class)


def mixed_size_set(n=24, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    imgs = [
        rng.integers(0, 256, size=(int(rng.integers(10, 20)), int(rng.integers(10, 20)), 3), dtype=np.uint8)
        for _ in range(n)
    ]
    return ImageSet(
        images=imgs,
        classes=np.arange(n) % classes,
        keys=[f"img{i}" for i in range(n)],
        class_names=[f"c{c}" for c in range(classes)],
    )


def store_content(path):
    """Everything a store holds except its creation time: header, tables, every decoded step."""
    s = open_store(path)
    h = dict(s.header)
    h.pop("created", None)
    steps = []
    for i in range(s.num_steps):
        r = s.step_at(i)
        steps.append(
            (
                r.epoch,
                r.step,
                r.image.tolist(),
                r.crop.tobytes(),
                r.flip.tolist(),
                r.mix_partner.tolist(),
                None if math.isnan(r.mix_lambda) else r.mix_lambda,
                r.mix_box.tolist(),
                {k: np.asarray(v).tobytes() for k, v in r.label.items()},
            )
        )
    tables = {k: np.asarray(v).tobytes() for k, v in s.tables.items()}
    keys = list(s.image_keys)
    s.close()
    return {"header": h, "steps": steps, "tables": tables, "keys": keys}


def assert_same_content(a, b):
    ca, cb = store_content(a), store_content(b)
    assert ca["header"] == cb["header"]
    assert ca["keys"] == cb["keys"]
    assert ca["tables"] == cb["tables"]
    assert len(ca["steps"]) == len(cb["steps"])
    for x, y in zip(ca["steps"], cb["steps"]):
        assert x == y, f"step {x[:2]} differs"
