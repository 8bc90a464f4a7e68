"""SRe2L/CDA's student training (``SRe2L/validate/train_FKD.py``), ported to lplabel.

Written for lplabel (no code copied); it keeps the original's command line, loop shape and loss
so that a user of the original recognises every line:

* the same argument names: ``--fkd-path`` (now the label store), ``--train-dir`` (the distilled
  ImageFolder), ``--batch-size``, ``--gradient-accumulation-steps``, ``--start-epoch``,
  ``--epochs``, ``-j/--workers``, ``--output-dir``, ``--cos``, ``--sgd``, ``-lr``, ``--momentum``,
  ``--weight-decay``, ``--adamw-lr``, ``--adamw-weight-decay``, ``--model``, ``-T/--temperature``,
  ``--mix-type``, ``--val-dir``;
* the loop: per epoch, per stored step, the step's views split into ``--gradient-accumulation-
  steps`` micro-batches, ``KLDivLoss(batchmean)(log_softmax(student / T), softmax(teacher / T))``
  without T², AdamW (or SGD) with a linear or cosine per-epoch schedule, a checkpoint per epoch.

What changes (docs/porting.md):

* no patched PyTorch, no ``RandomSampler(generator=42)`` replay, no ``mix_aug`` call: the
  ``ReplayLoader`` serves each stored step's views already cropped, flipped and CutMix/MixUp-ed
  exactly as the relabeler did, with their soft labels at ``-T``;
* the views have the size the labels were made at (the store's policy: the relabel
  ``--input-size``), not a hard-coded 224; ``--input-size`` here only names it for a legacy import
  that did not record one;
* pixels arrive normalised with ImageNet statistics from the workers (``normalize="imagenet"``,
  the original's ``transforms.Normalize``);
* ``--batch-size`` must equal the stored batch size (one step = one batch; use
  ``--gradient-accumulation-steps`` to fit memory), as in the original;
* exact mid-epoch resume: ``--resume CKPT`` restores model, optimiser, schedule and loader.

Labels from the original relabel step are imported first::

    lplabel import ../relabel/FKD_cutmix_fp16 -o labels.lpl --images ./syn_data --input-size 224
    python examples/sre2l_train_FKD.py --fkd-path labels.lpl --train-dir ./syn_data -T 20 \\
        --batch-size 1024 --gradient-accumulation-steps 4 -j 8 --epochs 300 --cos \\
        --model resnet18 --val-dir /path/to/imagenet/val --output-dir ./save/rn18

``--model``: a torchvision model name (``resnet18``, ...) when torchvision is installed, or one of
lplabel's small models (``convnet``, ``resnet18_small``, ``resnet_tiny``).
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def get_args(argv=None):
    p = argparse.ArgumentParser("FKD training on distilled images with an lplabel store (ported from SRe2L)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="views per step; must equal the store's batch size [default: the store's]")
    p.add_argument("--gradient-accumulation-steps", type=int, default=1,
                   help="split each stored step into this many micro-batches (less GPU memory)")
    p.add_argument("--start-epoch", type=int, default=0, help="first epoch (ignored with --resume)")
    p.add_argument("--epochs", type=int, default=300, help="total epochs")
    p.add_argument("-j", "--workers", type=int, default=4, help="DataLoader worker processes")
    p.add_argument("--train-dir", required=True, help="the distilled ImageFolder the labels were made for")
    p.add_argument("--val-dir", default=None, help="a validation ImageFolder (optional)")
    p.add_argument("--output-dir", default="./save/1024", help="where checkpoints go")
    p.add_argument("--cos", action="store_true", help="cosine learning-rate schedule (default: linear decay)")
    p.add_argument("--sgd", action="store_true", help="SGD instead of AdamW")
    p.add_argument("-lr", "--learning-rate", type=float, default=1.024, help="SGD learning rate")
    p.add_argument("--momentum", type=float, default=0.875, help="SGD momentum")
    p.add_argument("--weight-decay", type=float, default=3e-5, help="SGD weight decay")
    p.add_argument("--adamw-lr", type=float, default=0.001, help="AdamW learning rate")
    p.add_argument("--adamw-weight-decay", type=float, default=0.01, help="AdamW weight decay")
    p.add_argument("--model", default="resnet18", help="student: a torchvision name or an lplabel model")
    p.add_argument("-T", "--temperature", type=float, default=3.0,
                   help="KL temperature (SRe2L's README uses 20 for CutMix; the original's default is 3)")
    p.add_argument("--fkd-path", required=True, help="the label store (.lpl): `lplabel import` or `lplabel relabel`")
    p.add_argument("--mix-type", default=None, choices=["mixup", "cutmix", None],
                   help="kept for the original's command lines: the store says how its steps were mixed, and "
                        "a different value here is refused")
    # lplabel's additions
    p.add_argument("--input-size", type=int, default=None,
                   help="view size, only for a store imported without --input-size (no view policy recorded)")
    p.add_argument("--device", default=None, help="cuda / cpu [default: cuda when available]")
    p.add_argument("--resume", default=None, help="a checkpoint of this script: continue exactly where it stopped")
    p.add_argument("--max-steps", type=int, default=None, help="stop after this many optimiser steps (smoke tests)")
    return p.parse_args(argv)


def build_student(name: str, num_classes: int, size: int) -> nn.Module:
    from lplabel.teachers.models import MODEL_FACTORIES, build_model

    key = name.lower().replace("-", "_")
    if key in MODEL_FACTORIES:
        kw = {"image_size": size} if key == "convnet" else {}
        return build_model(key, num_classes=num_classes, **kw)
    try:
        import torchvision
    except Exception as e:  # pragma: no cover - depends on the installation
        sys.exit(f"error: --model {name}: torchvision cannot be imported ({e}) -- install it, or use one of "
                 f"lplabel's models: {', '.join(MODEL_FACTORIES)}")
    return torchvision.models.__dict__[name](weights=None, num_classes=num_classes)


def build_loader(args, device):
    """The original's ImageFolder_FKD_MIX + seeded RandomSampler + patched DataLoader, in one call."""
    from lplabel.datasets import load_image_folder
    from lplabel.store import LabelStore
    from lplabel.torch import ReplayLoader
    from lplabel.views import AugmentPolicy

    store = LabelStore(args.fkd_path)
    aug = store.header.get("augmentation") or {}
    stored_size, stored_mix = aug.get("output_size"), aug.get("mix")
    policy = None
    if stored_size is None:  # a legacy import without --input-size: the views' size must be named
        if args.input_size is None:
            sys.exit(f"error: {args.fkd_path}: the store names no view size (imported without --input-size) -- "
                     "pass --input-size N (the relabel's --input-size), or re-import with it")
        policy = AugmentPolicy(output_size=args.input_size, mix=stored_mix or "none")
    elif args.input_size not in (None, stored_size):
        sys.exit(f"error: --input-size {args.input_size}: the labels were made for {stored_size}x{stored_size} "
                 "views -- drop --input-size (the loader renders the stored size)")
    if args.mix_type is not None and stored_mix not in (None, args.mix_type):
        sys.exit(f"error: --mix-type {args.mix_type}: the store's steps were mixed with {stored_mix} -- drop "
                 "--mix-type (the loader replays the stored mix)")
    if args.batch_size is not None and args.batch_size != store.batch_size:
        sys.exit(f"error: --batch-size {args.batch_size}: the labels were made with batch size {store.batch_size} "
                 f"-- pass --batch-size {store.batch_size} and --gradient-accumulation-steps to fit memory")
    args.batch_size = store.batch_size
    images = load_image_folder(args.train_dir)
    loader = ReplayLoader(store, images, device=device, policy=policy, temperature=args.temperature,
                          normalize="imagenet", num_workers=args.workers, persistent_workers=args.workers > 0)
    return loader, store


def build_val(args, size, device):
    if args.val_dir is None:
        return None
    from lplabel.datasets import load_image_folder
    from lplabel.torch import IMAGENET_MEAN, IMAGENET_STD

    val = load_image_folder(args.val_dir)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    xs = []
    for a in val.images:  # resize the short side, centre-crop (the original: Resize(256) + CenterCrop(224))
        x = torch.from_numpy(a).permute(2, 0, 1)[None].float() / 255
        h, w = x.shape[-2:]
        s = round(size * 256 / 224) / min(h, w)
        x = F.interpolate(x, size=(max(size, round(h * s)), max(size, round(w * s))), mode="bilinear",
                          antialias=True, align_corners=False)
        h, w = x.shape[-2:]
        top, left = (h - size) // 2, (w - size) // 2
        xs.append((x[..., top:top + size, left:left + size] - mean) / std)
    return torch.cat(xs), torch.as_tensor(val.classes)


def accuracy(output, target, topk=(1,)):
    k = min(max(topk), output.shape[1])
    pred = output.topk(k, 1).indices
    hit = pred.eq(target[:, None])
    return [hit[:, :min(t, k)].any(1).float().mean().item() * 100 for t in topk]


def train(model, loader, optimizer, args, epoch, device, state):
    """One epoch: every stored step of it, split into micro-batches, KL at -T (no T^2, as SRe2L)."""
    kl = nn.KLDivLoss(reduction="batchmean")
    model.train()
    t0, loss_sum, top1_sum, seen = time.time(), 0.0, 0.0, 0
    for batch in loader:  # a StepBatch: views already mixed and normalised, labels at -T
        images, soft = batch.images, batch.probs
        optimizer.zero_grad()
        parts = max(1, min(args.gradient_accumulation_steps, len(images)))
        for x, p, y in zip(images.chunk(parts), soft.chunk(parts), batch.target.chunk(parts)):
            out = model(x)
            loss = kl(F.log_softmax(out / batch.temperature, dim=1), p) / parts
            loss.backward()
            loss_sum += loss.item() * parts * len(x)
            top1_sum += accuracy(out.detach(), y)[0] * len(x)
            seen += len(x)
        optimizer.step()
        state["steps"] += 1
        state["loader"] = loader.state_dict()  # exact resume point after this step
        if args.max_steps is not None and state["steps"] >= args.max_steps:
            state["complete"] = False
            break
    else:
        state["complete"] = True
    lr = optimizer.param_groups[0]["lr"]
    print(f"TRAIN epoch {epoch}: lr = {lr:.6f}, loss = {loss_sum / max(seen, 1):.6f}, "
          f"top-1 (own class) = {top1_sum / max(seen, 1):.2f}, steps = {state['steps']}, "
          f"time = {time.time() - t0:.1f}s", flush=True)
    return loss_sum / max(seen, 1)


@torch.no_grad()
def validate(model, val, epoch, device, bs=256):
    model.eval()
    x, y = val
    hits = [0.0, 0.0]
    for i in range(0, len(x), bs):
        out = model(x[i:i + bs].to(device))
        a1, a5 = accuracy(out, y[i:i + bs].to(device), (1, 5))
        n = len(x[i:i + bs])
        hits[0] += a1 * n
        hits[1] += a5 * n
    top1, top5 = hits[0] / len(x), hits[1] / len(x)
    print(f"TEST epoch {epoch}: top-1 = {top1:.2f}, top-5 = {top5:.2f}", flush=True)
    return top1


def main(argv=None):
    args = get_args(argv)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    os.makedirs(args.output_dir, exist_ok=True)
    loader, store = build_loader(args, device)
    size = loader.dataset.policy.output_size
    print(f"{args.fkd_path}: {store.num_steps} stored steps of {store.batch_size} views, {store.num_classes} "
          f"classes, views {size}x{size}, T={args.temperature:g}", flush=True)
    model = build_student(args.model, store.num_classes, size).to(device)
    if args.sgd:
        optimizer = torch.optim.SGD(model.parameters(), lr=args.learning_rate, momentum=args.momentum,
                                    weight_decay=args.weight_decay)
    else:
        optimizer = torch.optim.AdamW(model.parameters(), lr=args.adamw_lr, weight_decay=args.adamw_weight_decay)
    if args.cos:
        factor = lambda e: 0.5 * (1.0 + math.cos(math.pi * e / args.epochs)) if e <= args.epochs else 0.0  # noqa: E731
    else:
        factor = lambda e: (1.0 - e / args.epochs) if e <= args.epochs else 0.0  # noqa: E731
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    state = {"steps": 0, "loader": loader.state_dict()}
    start = args.start_epoch
    if args.resume:
        ckpt = torch.load(args.resume, map_location=device, weights_only=False)
        model.load_state_dict(ckpt["state_dict"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        loader.load_state_dict(ckpt["loader"])  # continues mid-epoch, or starts the next one
        state["steps"] = ckpt["steps"]
        start = loader.epoch if ckpt["loader"]["consumed"] < ckpt["loader"]["epoch_steps"] else loader.epoch + 1
    val = build_val(args, size, device)
    best = 0.0
    for epoch in range(start, args.epochs):
        if not (args.resume and epoch == start):
            loader.set_epoch(epoch)  # a resumed first epoch continues where the checkpoint stopped
        train(model, loader, optimizer, args, epoch, device, state)
        if state["complete"]:  # the schedule is per epoch (the original's LambdaLR on epochs)
            scheduler.step()
        top1 = validate(model, val, epoch, device) if val is not None and (epoch % 10 == 0 or
                                                                            epoch == args.epochs - 1) else 0.0
        best = max(best, top1)
        torch.save({"epoch": epoch + 1, "state_dict": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(), "loader": state["loader"], "steps": state["steps"],
                    "best_acc1": best}, os.path.join(args.output_dir, "checkpoint.pth.tar"))
        if args.max_steps is not None and state["steps"] >= args.max_steps:
            break
    return state


if __name__ == "__main__":
    from lplabel.errors import LplabelError

    try:
        main()
    except LplabelError as e:  # lplabel's errors are one line saying what to do: no traceback
        sys.exit(f"error: {e}")
