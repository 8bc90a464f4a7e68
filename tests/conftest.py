"""Shared fixtures: small but real label stores written through the public writer."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from lplabel import StoreWriter
from lplabel.codecs import default_label_codecs
from lplabel.testing import realistic_logits  # noqa: F401  (re-exported for tests)

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def write_store(
    path,
    *,
    n_images=40,
    num_classes=20,
    batch_size=8,
    epochs=3,
    label="dense",
    k=5,
    mix=True,
    seed=0,
    steps_per_chunk=1,
    keep_steps=None,
    **kw,
):
    """Write a store of random views with realistic logits; returns the reference content."""
    rng = np.random.default_rng(seed)
    ref = []
    if label == "dense":
        codecs = default_label_codecs("dense", type=kw.pop("dense_type", "float16"))
    elif label == "topk":
        codecs = default_label_codecs("topk", k=k, tail=kw.pop("tail", "none"))
    else:
        codecs = label
    spe = -(-n_images // batch_size)
    with StoreWriter(
        path,
        num_classes=num_classes,
        images=n_images,
        batch_size=batch_size,
        epochs=epochs,
        label_codecs=codecs,
        steps_per_chunk=steps_per_chunk,
        augmentation={"output_size": 16, "mix": "cutmix" if mix else "none"},
        teacher={"description": "synthetic", "temperature": 1.0},
        seed=seed,
        **kw,
    ) as w:
        for e in range(epochs):
            order = rng.permutation(n_images)
            for s in range(spe):
                if keep_steps is not None and (e, s) not in keep_steps:
                    continue
                ids = order[s * batch_size : (s + 1) * batch_size]
                b = len(ids)
                rec = dict(
                    epoch=e,
                    step=s,
                    image=ids.astype(np.int32),
                    crop=rng.random((b, 4)).astype(np.float32),
                    flip=rng.random(b) < 0.5,
                    logits=realistic_logits(rng, b, num_classes),
                )
                if mix:
                    rec.update(
                        mix_partner=rng.permutation(b).astype(np.int16),
                        mix_lambda=float(rng.beta(1, 1)),
                        mix_box=rng.integers(0, 16, 4).astype(np.int16),
                    )
                else:
                    rec.update(mix_partner=np.full(b, -1, np.int16), mix_lambda=math.nan, mix_box=np.zeros(4, np.int16))
                w.write_step(e, s, **{k2: v for k2, v in rec.items() if k2 not in ("epoch", "step")})
                ref.append(rec)
    return ref


@pytest.fixture
def small_store(tmp_path):
    path = tmp_path / "small.lpl"
    ref = write_store(path)
    return path, ref
