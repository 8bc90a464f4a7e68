"""Small real label stores for the loader tests (written with StoreWriter, views from lplabel.views)."""

from __future__ import annotations

import numpy as np

from lplabel import ImageSet, StoreWriter
from lplabel.codecs import default_label_codecs
from lplabel.views import AugmentPolicy, plan_steps, steps_per_epoch


def make_images(n=24, hw=(20, 20), seed=0, num_classes=10):
    rng = np.random.default_rng(seed)
    imgs = rng.integers(0, 256, (n, *hw, 3), dtype=np.uint8)
    return ImageSet(imgs, np.arange(n) % num_classes, [f"img{i}" for i in range(n)])


def make_store(
    path,
    iset=None,
    *,
    num_classes=10,
    batch_size=8,
    epochs=3,
    output_size=16,
    mix="cutmix",
    topk=None,
    tail="none",
    keep=None,
    reuse="lpld",
    sel_seed=7,
    seed=5,
    steps_per_chunk=1,
    drop_last=False,
):
    """Write a store; returns (path, iset, policy, {(epoch, step): logits}).

    ``keep``: a fraction of steps to keep (a pruned store with a ``selection`` header).
    """
    iset = make_images(num_classes=num_classes) if iset is None else iset
    policy = AugmentPolicy(output_size=output_size, mix=mix)
    n = len(iset)
    spe = steps_per_epoch(n, batch_size, drop_last)
    pairs = [(e, s) for e in range(epochs) for s in range(spe)]
    selection = None
    if keep is not None:
        rng = np.random.default_rng(sel_seed)
        n_keep = max(1, int(round(keep * len(pairs))))
        kept = np.sort(rng.choice(len(pairs), n_keep, replace=False))
        pairs = [pairs[i] for i in kept]
        selection = {
            "unit": "step",
            "metric": "random",
            "keep": keep,
            "seed": sel_seed,
            "source_steps": epochs * spe,
            "reuse": reuse,
        }
    codecs = None if topk is None else default_label_codecs("topk", k=topk, tail=tail)
    rng = np.random.default_rng(seed + 1)
    logits = {}
    with StoreWriter(
        path,
        num_classes=num_classes,
        images=iset,
        batch_size=batch_size,
        epochs=epochs,
        drop_last=drop_last,
        augmentation=policy.to_json(),
        seed=seed,
        selection=selection,
        label_codecs=codecs,
        steps_per_chunk=steps_per_chunk,
        overwrite=True,
    ) as w:
        for e, s, v in plan_steps(seed, pairs, iset.sizes(), batch_size, policy, drop_last):
            z = (rng.standard_normal((len(v), num_classes)) * 3).astype(np.float32)
            logits[(e, s)] = z
            w.write_step(
                e,
                s,
                image=v.image,
                crop=v.crop,
                flip=v.flip,
                mix_partner=v.mix_partner,
                mix_lambda=v.mix_lambda,
                mix_box=v.mix_box,
                logits=z,
            )
    return path, iset, policy, logits


def batches_equal(a, b) -> bool:
    import torch

    if (a.position, a.epoch, a.slot, a.temperature) != (b.position, b.epoch, b.slot, b.temperature):
        return False
    for name in ("image_ids", "crop", "flip", "mix_partner", "target", "mix_box"):
        if not torch.equal(getattr(a, name), getattr(b, name)):
            return False
    if (a.images is None) != (b.images is None) or (a.images is not None and not torch.equal(a.images, b.images)):
        return False
    if (a.probs is None) != (b.probs is None) or (a.probs is not None and not torch.equal(a.probs, b.probs)):
        return False
    return a.label.keys() == b.label.keys() and all(torch.equal(a.label[k], b.label[k]) for k in a.label)
