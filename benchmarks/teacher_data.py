"""Real teacher logits for the codec benchmarks, generated once and cached under out/bench-cache/.

* ``imagenet1k``: EfficientNet-Lite0 (ImageNet-1K, C=1000) on Tiny-ImageNet training images
  (64 px) rendered as RandomResizedCrop(0.08-1) + flip views at 224 px, CutMix within each step,
  exactly as a relabeler would (lplabel.views / lplabel.views.replay when present, else a fallback
  crop loop in this file).
* ``cifar10``: a small ConvNet (width 32) trained for 10 epochs on 3,000 CIFAR-10 JPEG training
  images (C=10); 1,280 of them viewed at 32 px.

Each cache file holds per step: epoch, step, image ids, crop (float32 fractions), flip, mix
partner, lambda, box, and the float32 teacher logits.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / "out" / "bench-cache"
DATA = REPO.parent / "shared" / "data"


def _views_api():
    try:
        from lplabel.views.replay import ImageBank, render_step
        from lplabel.views import AugmentPolicy, plan_steps

        return AugmentPolicy, plan_steps, ImageBank, render_step
    except Exception:  # pragma: no cover - depends on the tree
        return None


def _fallback_steps(seed, epochs, n, b, sizes, out_size, mix):
    """A simple seeded RandomResizedCrop + flip + CutMix sampler (used only without lplabel.views)."""
    rng = np.random.default_rng(seed)
    for e in range(epochs):
        order = rng.permutation(n)
        for s in range(n // b):
            ids = order[s * b : (s + 1) * b]
            H, W = sizes[ids, 0], sizes[ids, 1]
            area = rng.uniform(0.08, 1.0, b) * H * W
            ar = np.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3), b))
            w = np.clip(np.rint(np.sqrt(area * ar)), 1, W).astype(int)
            h = np.clip(np.rint(np.sqrt(area / ar)), 1, H).astype(int)
            top = (rng.random(b) * (H - h + 1)).astype(int)
            left = (rng.random(b) * (W - w + 1)).astype(int)
            crop = np.stack([top / H, left / W, h / H, w / W], 1).astype(np.float32)
            flip = rng.random(b) < 0.5
            lam = float(rng.beta(1, 1))
            perm = rng.permutation(b).astype(np.int16)
            cut = int(out_size * math.sqrt(1 - lam))
            cy, cx = rng.integers(0, out_size, 2)
            box = np.array(
                [
                    np.clip(cy - cut // 2, 0, out_size),
                    np.clip(cx - cut // 2, 0, out_size),
                    np.clip(cy + cut // 2, 0, out_size),
                    np.clip(cx + cut // 2, 0, out_size),
                ],
                np.int16,
            )
            yield (
                e,
                s,
                dict(
                    image=ids.astype(np.int32),
                    crop=crop,
                    flip=flip,
                    mix_partner=perm,
                    mix_lambda=lam,
                    mix_box=box if mix == "cutmix" else np.zeros(4, np.int16),
                ),
            )


def _fallback_render(images, v, out_size):
    import torch
    import torch.nn.functional as F

    outs = []
    for i, img_id in enumerate(v["image"]):
        img = torch.from_numpy(images[img_id]).permute(2, 0, 1).float()[None]
        H, W = img.shape[-2:]
        t, l, h, w = (int(round(float(c) * s)) for c, s in zip(v["crop"][i], (H, W, H, W)))
        x = F.interpolate(
            img[..., t : t + max(h, 1), l : l + max(w, 1)],
            size=(out_size, out_size),
            mode="bilinear",
            align_corners=False,
        )
        if v["flip"][i]:
            x = x.flip(-1)
        outs.append(x)
    x = torch.cat(outs)
    r0, c0, r1, c1 = (int(a) for a in v["mix_box"])
    x[:, :, r0:r1, c0:c1] = x[v["mix_partner"].astype(np.int64)][:, :, r0:r1, c0:c1]
    return x


def generate(
    name: str,
    *,
    images: np.ndarray,
    teacher,
    out_size: int,
    epochs: int,
    batch_size: int,
    seed: int = 0,
    mix: str = "cutmix",
    log=print,
    first_epoch: int = 0,
) -> Path:
    import torch

    path = CACHE / f"{name}.npz"
    if path.exists():
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    n = len(images)
    sizes = np.tile(np.array([[images.shape[1], images.shape[2]]]), (n, 1))
    api = _views_api()
    rows = {k: [] for k in ("epoch", "step", "image", "crop", "flip", "mix_partner", "mix_lambda", "mix_box", "logits")}
    t0 = time.perf_counter()
    if api is not None:
        AugmentPolicy, plan_steps, ImageBank, render_step = api
        policy = AugmentPolicy(output_size=out_size, mix=mix)
        bank = ImageBank(images)
        spe = n // batch_size
        steps = [(e, s) for e in range(first_epoch, epochs) for s in range(spe)]
        it = (
            (e, s, v, (lambda v=v: render_step(bank, v, policy)))
            for e, s, v in plan_steps(seed, steps, sizes, batch_size, policy, drop_last=True)
        )
        it = (
            (
                e,
                s,
                dict(
                    image=v.image,
                    crop=v.crop,
                    flip=v.flip,
                    mix_partner=v.mix_partner,
                    mix_lambda=v.mix_lambda,
                    mix_box=v.mix_box,
                ),
                r,
            )
            for e, s, v, r in it
        )
        how = "lplabel.views + lplabel.views.replay"
    else:
        it = (
            (e, s, v, (lambda v=v: _fallback_render(images, v, out_size)))
            for e, s, v in _fallback_steps(seed, epochs, n, batch_size, sizes, out_size, mix)
        )
        how = "fallback crop loop"
    done = 0
    with torch.inference_mode():
        for e, s, v, render in it:
            x = render().contiguous(memory_format=torch.channels_last)
            z = teacher(x).float().numpy()
            for k in ("image", "crop", "flip", "mix_partner", "mix_box"):
                rows[k].append(np.asarray(v[k]))
            rows["mix_lambda"].append(v["mix_lambda"])
            rows["epoch"].append(e)
            rows["step"].append(s)
            rows["logits"].append(z)
            done += len(z)
            log(f"  {name}: epoch {e} step {s}: {done} views, {done / (time.perf_counter() - t0):.1f} views/s")
    np.savez(path, how=how, **{k: np.asarray(v) for k, v in rows.items()})
    return path


def imagenet1k(epochs: int = 8, n_images: int = 768, batch_size: int = 128, log=print, first_epoch: int = 0) -> Path:
    name = "imagenet1k-effnetlite0" + (f"-from{first_epoch}" if first_epoch else "")
    path = CACHE / f"{name}.npz"
    if path.exists():
        return path
    import torch
    from lplabel.datasets import load_dataset
    from lplabel.teachers import load_teacher

    torch.set_num_threads(2)
    iset = load_dataset("tiny-imagenet", "train", limit_per_class=4)
    rng = np.random.default_rng(0)
    pick = np.sort(rng.choice(len(iset), n_images, replace=False))
    images = np.stack([np.asarray(iset.images[i]) for i in pick])
    teacher = load_teacher("efficientnet-lite0")
    return generate(
        name,
        images=images,
        teacher=teacher,
        out_size=224,
        epochs=epochs,
        batch_size=batch_size,
        log=log,
        first_epoch=first_epoch,
    )


def cifar10(epochs: int = 20, n_images: int = 1280, batch_size: int = 128, log=print) -> Path:
    path = CACHE / "cifar10-convnet.npz"
    if path.exists():
        return path
    import torch
    from lplabel.datasets import load_dataset
    from lplabel.teachers import train_teacher

    torch.set_num_threads(2)
    train = load_dataset("cifar10", "train", limit_per_class=300)
    teacher = train_teacher(
        train,
        model="convnet",
        epochs=10,
        batch_size=128,
        lr=0.05,
        seed=0,
        model_kwargs={"width": 32},
        log=lambda m: log("  teacher " + m),
    )
    rng = np.random.default_rng(1)
    pick = np.sort(rng.choice(len(train), n_images, replace=False))
    images = np.stack([np.asarray(train.images[i]) for i in pick])
    return generate(
        "cifar10-convnet", images=images, teacher=teacher, out_size=32, epochs=epochs, batch_size=batch_size, log=log
    )


def load(path: Path) -> dict:
    z = np.load(path)
    return {k: z[k] for k in z.files}


def load_imagenet1k(parts: int = 2) -> dict:
    """All cached ImageNet-1K parts, concatenated in (epoch, step) order (8 epochs per part)."""
    files = [imagenet1k()] + [imagenet1k(epochs=8 * (p + 1), first_epoch=8 * p) for p in range(1, parts)]
    data = [load(f) for f in files]
    out = {k: np.concatenate([d[k] for d in data]) for k in data[0] if k != "how"}
    out["how"] = data[0]["how"]
    return out


if __name__ == "__main__":
    which = sys.argv[1:] or ["imagenet1k", "imagenet1k-part2", "cifar10"]
    for w in which:
        if w == "imagenet1k-part2":
            print(imagenet1k(epochs=16, first_epoch=8))
        else:
            print(globals()[w]())
