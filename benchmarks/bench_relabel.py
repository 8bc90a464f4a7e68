"""Relabel throughput: lplabel's relabeler vs the teacher's pure forward vs a legacy relabel loop.

Three measurements on the same content (images, epochs, batch size, output size, CutMix, teacher):

(a) **pure forward**: the teacher alone on a pre-rendered batch already on the device, same
    batch size, precision (AMP or not) and memory format as the relabeler; views/s. The
    relabeler's throughput as a fraction of this says how much of the device time the rest of
    the pipeline (view sampling, rendering, top-k, copies, encoding, writing) costs.
(b) **lplabel relabel** (:func:`lplabel.relabel.run_relabel`): views/s of the compute loop
    (views planned, rendered, labelled and written into parts) and end to end (plus the merge
    into one store).
(c) **legacy loop**, written here after the SRe2L/LPLD relabel scripts (research/lpld-lpqld.md §2):
    images read from JPEG files by a map-style Dataset (decode per access, as ImageFolder),
    per-sample RandomResizedCrop + horizontal flip with PIL in DataLoader worker processes
    (re-forked every epoch), CutMix on the device in the main process, an fp32 teacher forward
    (no AMP, no channels_last), logits cast to fp16, and one synchronous ``torch.save`` per batch
    of the LPLD list ``[coords, flip, mix_index, lam, bbox, soft_label]`` into
    ``epoch_{e}/batch_{b}.tar``.

Defaults: on CUDA, an ImageNet-style ResNet-18 (7x7 stem, 1000 classes) at 224 px, batch 256,
bf16 autocast, 10,000 images (ImageNet IPC10 scale); on CPU the same network at 64 px, batch 64,
fp32, 512 images, so a run takes minutes. Results are appended to
``benchmarks/results/relabel-<date>.md`` with the machine, date and command.

    python benchmarks/bench_relabel.py                 # defaults for the machine
    python benchmarks/bench_relabel.py --device cuda --images 10000 --epochs 2 --amp

``--threads-study`` (CPU) measures instead how the torch thread count decides throughput on a
shared machine (issue 19 item 6): ``run_relabel`` with 1 thread, with torch's default (one per
core) and with ``threads="auto"`` (:func:`lplabel.threads.plan_threads`), each as it runs and
against the teacher's pure forward timed inside the same run (``RelabelReport.teacher_views_per_second``),
first as the machine is, then with ``--busy N`` busy-loop processes started by the script (and
killed at the end), interleaved over ``--rounds`` rounds:

    python benchmarks/bench_relabel.py --threads-study --images 256 --epochs 2 --busy 4
"""

from __future__ import annotations

import argparse
import datetime as _dt
import math
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lplabel.images import ImageSet  # noqa: E402
from lplabel.teachers.models import IMAGENET_MEAN, IMAGENET_STD, BasicBlock, Normalized  # noqa: E402


# ------------------------------------------------------------------------------------ teacher
class ResNet18ImageNet(nn.Module):
    """ResNet-18 with the ImageNet stem (7x7/2 conv + 3x3/2 max-pool): ~1.8 GFLOPs at 224 px."""

    def __init__(self, num_classes=1000, width=64):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, width, 7, 2, 3, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, 1),
        )
        blocks, cin = [], width
        for i in range(4):
            cout = width * 2**i
            for j in range(2):
                blocks.append(BasicBlock(cin, cout, 2 if (j == 0 and i > 0) else 1))
                cin = cout
        self.layers = nn.Sequential(*blocks)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        x = self.layers(self.stem(x))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


class TimedTeacher(nn.Module):
    """Accumulates the wall time of the wrapped teacher's forwards (CPU only: on CUDA timing
    each forward would need a synchronisation that removes the overlap being measured)."""

    def __init__(self, inner: nn.Module, skip_first: bool = False):
        super().__init__()
        self.inner = inner
        self.seconds = 0.0
        self.views = 0
        self.skip = bool(skip_first)  # the relabeler's first call is its 2-view probe, outside the loop

    def forward(self, x):
        t0 = time.perf_counter()
        out = self.inner(x)
        if self.skip:
            self.skip = False
        else:
            self.seconds += time.perf_counter() - t0
            self.views += int(x.shape[0])
        return out


def build_teacher(name: str, num_classes: int) -> nn.Module:
    torch.manual_seed(0)
    if name == "resnet18":
        net = ResNet18ImageNet(num_classes)
        with torch.no_grad():  # non-trivial BN statistics so activations look like a trained net's
            for m in net.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.running_var.uniform_(0.5, 2.0)
        return Normalized(net, IMAGENET_MEAN, IMAGENET_STD).eval()
    from lplabel.teachers import load_teacher

    return load_teacher(name).eval()


# ------------------------------------------------------------------------------------- images
def synthetic_images(n: int, side: int, num_classes: int, seed: int = 0) -> ImageSet:
    """Smooth random images (low-frequency noise, like natural/distilled images compress)."""
    rng = np.random.default_rng(seed)
    small = max(4, side // 16)
    base = rng.integers(0, 256, size=(n, small, small, 3), dtype=np.uint8)
    t = torch.from_numpy(base).permute(0, 3, 1, 2).float()
    big = nn.functional.interpolate(t, size=(side, side), mode="bilinear", align_corners=False)
    big = big + torch.from_numpy(rng.normal(0, 8, size=big.shape).astype(np.float32))
    arr = big.clamp(0, 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()
    return ImageSet(
        images=arr,
        classes=np.arange(n) % num_classes,
        keys=[f"{i:06d}.jpg" for i in range(n)],
        class_names=[str(c) for c in range(num_classes)],
    )


def write_jpegs(images: ImageSet, root: Path) -> list[Path]:
    from PIL import Image

    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, a in enumerate(images.images):
        p = root / f"{i:06d}.jpg"
        Image.fromarray(a).save(p, quality=90)
        paths.append(p)
    return paths


# ------------------------------------------------------------------------------ legacy loop
class LegacyDataset(torch.utils.data.Dataset):
    """SRe2L/LPLD-style: PIL decode per access, per-sample RandomResizedCrop + flip, coords kept."""

    def __init__(self, paths, size, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)):
        self.paths, self.size, self.scale, self.ratio = paths, size, scale, ratio

    def __len__(self):
        return len(self.paths)

    def _params(self, w, h):  # torchvision's RandomResizedCrop.get_params, with python's random
        area = h * w
        log_r = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            target = area * random.uniform(*self.scale)
            ar = math.exp(random.uniform(*log_r))
            cw, ch = int(round(math.sqrt(target * ar))), int(round(math.sqrt(target / ar)))
            if 0 < cw <= w and 0 < ch <= h:
                return random.randint(0, h - ch), random.randint(0, w - cw), ch, cw
        ch, cw = h, w
        return (h - ch) // 2, (w - cw) // 2, ch, cw

    def __getitem__(self, i):
        from PIL import Image

        with Image.open(self.paths[i]) as im:
            img = im.convert("RGB")
        w, h = img.size
        top, left, ch, cw = self._params(w, h)
        img = img.resize((self.size, self.size), Image.BILINEAR, box=(left, top, left + cw, top + ch))
        flip = random.random() < 0.5
        if flip:
            img = img.transpose(Image.FLIP_LEFT_RIGHT)
        x = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1).float()
        coords = torch.tensor([top / h, left / w, ch / h, cw / w], dtype=torch.float32)
        return x, coords, flip


def _rand_bbox(size, lam):
    cut = int(size * math.sqrt(1.0 - lam))
    cx, cy = np.random.randint(size), np.random.randint(size)
    x1, x2 = np.clip([cx - cut // 2, cx + cut // 2], 0, size)
    y1, y2 = np.clip([cy - cut // 2, cy + cut // 2], 0, size)
    return [int(x1), int(y1), int(x2), int(y2)]


def run_legacy(paths, teacher, device, *, epochs, batch_size, size, workers, out_dir: Path, seed=42):
    ds = LegacyDataset(paths, size)
    teacher = teacher.to(device).eval()
    views = 0
    t0 = time.perf_counter()
    for e in range(epochs):
        sampler = torch.utils.data.RandomSampler(ds, generator=torch.Generator().manual_seed(seed + e))
        loader = torch.utils.data.DataLoader(
            ds, batch_size=batch_size, sampler=sampler, num_workers=workers, pin_memory=device.type == "cuda"
        )
        (out_dir / f"epoch_{e}").mkdir(parents=True, exist_ok=True)
        for b, (x, coords, flip) in enumerate(loader):
            x = x.to(device, non_blocking=True)
            lam = float(np.random.beta(1.0, 1.0))
            index = torch.randperm(x.shape[0], device=device)
            bbox = _rand_bbox(size, lam)
            x[:, :, bbox[0] : bbox[2], bbox[1] : bbox[3]] = x[index, :, bbox[0] : bbox[2], bbox[1] : bbox[3]]
            soft = teacher(x).half()  # fp32 forward, as the legacy scripts (no no_grad: no graph anyway)
            torch.save(
                [coords, flip, index.cpu(), lam, bbox, soft.detach().cpu()], out_dir / f"epoch_{e}" / f"batch_{b}.tar"
            )
            views += x.shape[0]
    if device.type == "cuda":
        torch.cuda.synchronize()
    secs = time.perf_counter() - t0
    nbytes = sum(p.stat().st_size for p in out_dir.rglob("*.tar"))
    return views, secs, nbytes


# ------------------------------------------------------------------------------ pure forward
def pure_forward(teacher, device, *, batch_size, size, amp, amp_dtype, channels_last, seconds=10.0, warmup=3):
    from lplabel.relabel.teacher_io import amp_settings, prepare_teacher

    autocast, precision = amp_settings(device, amp, amp_dtype)
    teacher = prepare_teacher(teacher, device, channels_last)
    x = torch.rand(batch_size, 3, size, size, device=device) * 255
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    with torch.inference_mode():
        for _ in range(warmup):
            with autocast():
                teacher(x)
        sync()
        n, t0 = 0, time.perf_counter()
        while True:
            with autocast():
                teacher(x).float()
            n += 1
            if n % 4 == 0:
                sync()
                if time.perf_counter() - t0 > seconds:
                    break
        sync()
        secs = time.perf_counter() - t0
    return n * batch_size / secs, precision


# ---------------------------------------------------------------------------------------- main
def machine() -> str:
    from lplabel.testing import describe_machine

    return describe_machine()


def main(argv=None):
    cuda = torch.cuda.is_available()
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda" if cuda else "cpu")
    ap.add_argument("--teacher", default="resnet18", help="resnet18 (ImageNet stem, built here) or a teacher spec")
    ap.add_argument("--classes", type=int, default=1000)
    ap.add_argument("--images", type=int, default=10000 if cuda else 512)
    ap.add_argument("--source-size", type=int, default=None, help="side of the source images [default: --size]")
    ap.add_argument("--size", type=int, default=224 if cuda else 64)
    ap.add_argument("--batch-size", type=int, default=256 if cuda else 64)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--legacy-epochs", type=int, default=None, help="epochs of the legacy loop [default: --epochs]")
    ap.add_argument("--amp", action=argparse.BooleanOptionalAction, default=cuda)
    ap.add_argument("--amp-dtype", default="auto")
    ap.add_argument("--topk", type=int, default=None, help="store top-k instead of dense fp16 (lplabel only)")
    ap.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1), help="legacy DataLoader workers")
    ap.add_argument("--forward-seconds", type=float, default=10.0)
    ap.add_argument("--skip-legacy", action="store_true")
    ap.add_argument(
        "--rounds",
        type=int,
        default=1 if cuda else 3,
        help="repeat (a), (b), (c) this many times, interleaved; the best of each is reported "
        "(a shared or busy machine slows some rounds)",
    )
    ap.add_argument("--results", default=str(REPO / "benchmarks" / "results"))
    ap.add_argument("--note", default="")
    ap.add_argument(
        "--threads-study",
        action="store_true",
        help="measure thread counts as the machine is and under --busy busy loops (CPU)",
    )
    ap.add_argument("--busy", type=int, default=4, help="busy-loop processes of the loaded half of --threads-study")
    args = ap.parse_args(argv)
    if args.threads_study:
        return threads_study(args, argv)

    from lplabel.relabel import (
        LabelsConfig,
        OutputConfig,
        ProcessConfig,
        RelabelConfig,
        TeacherConfig,
        ViewsPolicy,
        run_relabel,
    )

    device = torch.device(args.device)
    src = args.source_size or args.size
    images = synthetic_images(args.images, src, args.classes)
    teacher = build_teacher(args.teacher, args.classes)
    channels_last = device.type == "cuda"
    print(f"machine: {machine()}", flush=True)

    paths = None
    fwds, fwd32s, lps, lp_e2es, legs = [], [], [], [], []
    shares, leg_shares = [], []  # CPU: fraction of the loop's wall time spent in the teacher
    lp_bytes = nbytes_scaled = lp_views = 0
    precision = "float32"
    tmp = Path(tempfile.mkdtemp(prefix="bench-relabel-"))
    try:
        if not args.skip_legacy:
            paths = write_jpegs(images, tmp / "jpeg")
        for r in range(args.rounds):
            # (a) pure forward, same batch / precision / layout as the relabeler
            fwd, precision = pure_forward(
                teacher,
                device,
                batch_size=args.batch_size,
                size=args.size,
                amp=args.amp,
                amp_dtype=args.amp_dtype,
                channels_last=channels_last,
                seconds=args.forward_seconds,
            )
            fwds.append(fwd)
            print(f"[round {r + 1}] (a) pure forward ({precision}): {fwd:,.0f} views/s", flush=True)
            if args.amp and not args.skip_legacy:
                f32, _ = pure_forward(
                    build_teacher(args.teacher, args.classes),
                    device,
                    batch_size=args.batch_size,
                    size=args.size,
                    amp=False,
                    amp_dtype=None,
                    channels_last=False,
                    seconds=args.forward_seconds,
                )
                fwd32s.append(f32)
                print(f"[round {r + 1}]     pure forward fp32 (legacy precision): {f32:,.0f} views/s", flush=True)
            # (b) lplabel relabel
            out = tmp / "labels.lpl"
            timed = TimedTeacher(teacher, skip_first=True) if device.type == "cpu" else None
            t0 = time.perf_counter()
            config = RelabelConfig(
                views=ViewsPolicy(epochs=args.epochs, batch_size=args.batch_size, size=args.size, mix="cutmix", seed=0),
                teacher=TeacherConfig(device=device, amp=args.amp, amp_dtype=args.amp_dtype),
                labels=LabelsConfig(topk=args.topk, values="fp16"),
                output=OutputConfig(force=True, fresh=True),
                process=ProcessConfig(progress=False),
            )
            rep = run_relabel(images, timed or teacher, out, config)
            e2e = time.perf_counter() - t0
            lp_views = rep.views_computed
            lps.append(rep.views_per_second)
            lp_e2es.append(lp_views / e2e)
            lp_bytes = out.stat().st_size
            out.unlink()
            if timed is not None:
                shares.append(timed.seconds / rep.compute_seconds)
            print(
                f"[round {r + 1}] (b) lplabel relabel: {lps[-1]:,.0f} views/s compute loop, {lp_e2es[-1]:,.0f} "
                f"views/s end to end (merge {rep.merge_seconds:.1f} s); {lp_bytes:,} bytes",
                flush=True,
            )
            # (c) legacy loop
            if not args.skip_legacy:
                le = args.legacy_epochs or args.epochs
                shutil.rmtree(tmp / "legacy", ignore_errors=True)
                lt = build_teacher(args.teacher, args.classes)
                ltimed = TimedTeacher(lt) if device.type == "cpu" else None
                views, secs, nbytes = run_legacy(
                    paths,
                    ltimed or lt,
                    device,
                    epochs=le,
                    batch_size=args.batch_size,
                    size=args.size,
                    workers=args.workers,
                    out_dir=tmp / "legacy",
                )
                legs.append(views / secs)
                if ltimed is not None:
                    leg_shares.append(ltimed.seconds / secs)
                nbytes_scaled = int(nbytes * args.epochs / le)  # same content: the lplabel run's epochs
                print(
                    f"[round {r + 1}] (c) legacy loop ({args.workers} workers, fp32): {legs[-1]:,.0f} views/s; "
                    f"{nbytes_scaled:,} bytes",
                    flush=True,
                )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    def best(xs):
        return max(xs) if xs else float("nan")

    def spread(xs):
        return f"{best(xs):,.0f}" + (f" ({min(xs):,.0f}–{max(xs):,.0f})" if len(xs) > 1 else "")

    fwd, lp_rate, lp_e2e = best(fwds), best(lps), best(lp_e2es)
    legacy = best(legs) if legs else None
    rows = [("pure teacher forward (" + precision + ")", spread(fwds), "1.00", "-")]
    if fwd32s:
        rows.append(
            ("pure teacher forward (float32, legacy precision)", spread(fwd32s), f"{best(fwd32s) / fwd:.2f}", "-")
        )
    rows.append(("lplabel relabel, compute loop", spread(lps), f"{lp_rate / fwd:.2f}", f"{lp_bytes:,}"))
    rows.append(
        ("lplabel relabel, end to end (incl. setup + merge)", spread(lp_e2es), f"{lp_e2e / fwd:.2f}", f"{lp_bytes:,}")
    )
    if legacy is not None:
        rows.append(
            (
                f"legacy loop (PIL crops in {args.workers} workers, fp32, torch.save per batch)",
                spread(legs),
                f"{legacy / fwd:.2f}",
                f"{nbytes_scaled:,}",
            )
        )

    date = _dt.date.today().isoformat()
    cmd = "python benchmarks/bench_relabel.py " + " ".join(sys.argv[1:] if argv is None else argv)
    lines = (
        [
            f"## Relabel throughput — {device.type}, {args.teacher} at {args.size} px, batch {args.batch_size}"
            + (f" ({args.note})" if args.note else ""),
            "",
            f"- date: {_dt.datetime.now().isoformat(timespec='seconds')}",
            f"- machine: {machine()}",
            f"- command: `{cmd}`",
            f"- content: {args.images} synthetic {src}x{src} RGB images, {args.epochs} epochs "
            f"({lp_views:,} views), CutMix, {args.classes} classes, labels "
            + (f"top-{args.topk} fp16" if args.topk else "dense fp16")
            + f"; relabel precision {precision}"
            + ("" if legacy is None else f"; legacy loop {args.legacy_epochs or args.epochs} epochs, fp32"),
            "",
            f"Views/s: best of {args.rounds} interleaved round(s)"
            + (" (range in brackets)" if args.rounds > 1 else "")
            + "; ratios use the best values.",
            "",
            "| pipeline | views/s | vs pure forward | bytes on disk |",
            "|---|---:|---:|---:|",
        ]
        + [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
        + [""]
    )
    summary = [f"- relabel / pure forward: **{lp_rate / fwd:.0%}** (compute loop), {lp_e2e / fwd:.0%} end to end"]
    if legacy is not None:
        summary.append(
            f"- relabel / legacy loop: **{lp_rate / legacy:.1f}x** (compute loop), {lp_e2e / legacy:.1f}x end to end"
        )
    if shares:
        summary.append(
            f"- teacher share of the loop's wall time (CPU, timed inside the same run, so less sensitive to "
            f"load from other processes): lplabel **{max(shares):.0%}** "
            f"(rounds: {', '.join(f'{x:.0%}' for x in shares)})"
            + (
                f", legacy {max(leg_shares):.0%} (rounds: {', '.join(f'{x:.0%}' for x in leg_shares)})"
                if leg_shares
                else ""
            )
        )
    lines += summary + ["", ""]
    res = Path(args.results)
    res.mkdir(parents=True, exist_ok=True)
    path = res / f"relabel-{date}.md"
    new = not path.exists()
    with open(path, "a", encoding="utf-8") as f:
        if new:
            f.write("# Relabel benchmarks (benchmarks/bench_relabel.py)\n\n")
        f.write("\n".join(lines))
    print("\n".join(lines))
    print(f"appended to {path}")


# ------------------------------------------------------------------------------ threads study
def _busy_loops(n: int) -> list:
    import subprocess

    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def threads_study(args, argv=None):
    """See the module doc (``--threads-study``)."""

    from lplabel.relabel import (
        LabelsConfig,
        OutputConfig,
        ProcessConfig,
        RelabelConfig,
        TeacherConfig,
        ViewsPolicy,
        run_relabel,
    )
    from lplabel.threads import available_cores, busy_cpus

    default_threads = torch.get_num_threads()  # torch's own choice in this process (one per core)
    settings = [
        ("1 thread", 1),
        (f"torch default ({default_threads} threads)", default_threads),
        ("auto (lplabel.threads)", "auto"),
    ]
    images = synthetic_images(args.images, args.source_size or args.size, args.classes)
    teacher = build_teacher(args.teacher, args.classes)
    mach = machine()
    print(f"machine: {mach}", flush=True)
    results = {}  # (condition, label) -> list of (views/s, pure forward views/s, threads used)
    conditions = [("as found", 0), (f"+{args.busy} busy loops", args.busy)]
    tmp = Path(tempfile.mkdtemp(prefix="bench-threads-"))
    procs = []
    busy_seen = {}
    try:
        for cond, nbusy in conditions:
            procs = _busy_loops(nbusy)
            time.sleep(2.0 if nbusy else 0.0)
            busy_seen[cond] = []
            for r in range(args.rounds):
                for label, t in settings:
                    busy_seen[cond].append(busy_cpus())
                    config = RelabelConfig(
                        views=ViewsPolicy(
                            epochs=args.epochs, batch_size=args.batch_size, size=args.size, mix="cutmix", seed=0
                        ),
                        teacher=TeacherConfig(device="cpu", check=False),
                        labels=LabelsConfig(topk=args.topk, values="fp16"),
                        output=OutputConfig(force=True, fresh=True),
                        process=ProcessConfig(progress=False, threads=t),
                    )
                    rep = run_relabel(images, teacher, tmp / "t.lpl", config)
                    results.setdefault((cond, label), []).append(
                        (rep.views_per_second, rep.teacher_views_per_second, rep.threads.main)
                    )
                    print(
                        f"[{cond}, round {r + 1}] {label}: {rep.views_per_second:,.0f} views/s, pure forward "
                        f"{rep.teacher_views_per_second:,.0f} views/s, {rep.threads.describe()}",
                        flush=True,
                    )
            for p in procs:
                p.kill()
                p.wait()
            procs = []
    finally:
        for p in procs:
            p.kill()
            p.wait()
        shutil.rmtree(tmp, ignore_errors=True)

    def med(xs):
        return float(np.median(xs))

    cmd = "python benchmarks/bench_relabel.py " + " ".join(sys.argv[1:] if argv is None else argv)
    lines = [
        f"## Torch threads on a shared CPU — {args.teacher} at {args.size} px, batch {args.batch_size}"
        + (f" ({args.note})" if args.note else ""),
        "",
        f"- date: {_dt.datetime.now(_dt.timezone.utc).isoformat(timespec='seconds')}",
        f"- machine: {mach}; {available_cores()} cores available to the process",
        f"- command: `{cmd}`",
        f"- content: {args.images} synthetic images, {args.epochs} epochs, CutMix, {args.classes} classes, "
        f"labels " + (f"top-{args.topk}" if args.topk else "dense") + " fp16; teacher check off",
        "",
        "Median of the rounds (range in brackets); the ratio columns compare with the 1-thread row of "
        "the same condition, measured interleaved with it.",
        "",
        "| condition | threads | busy tasks seen | relabel views/s | vs 1 thread | pure forward views/s | "
        "loop / pure forward |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for cond, _ in conditions:
        base = med([v for v, _, _ in results[(cond, "1 thread")]])
        seen = busy_seen[cond]
        for label, _ in settings:
            xs = results[(cond, label)]
            v = [a for a, _, _ in xs]
            f = [b for _, b, _ in xs]
            used = sorted({c for _, _, c in xs})
            lines.append(
                f"| {cond} | {label}"
                + (f" → {'/'.join(map(str, used))}" if label.startswith("auto") else "")
                + f" | {min(seen):.1f}–{max(seen):.1f} | {med(v):,.0f} ({min(v):,.0f}–{max(v):,.0f}) | "
                f"{med(v) / base:.2f} | {med(f):,.0f} | {med(v) / med(f):.0%} |"
            )
    lines += ["", ""]
    res = Path(args.results)
    res.mkdir(parents=True, exist_ok=True)
    path = res / f"relabel-threads-{_dt.date.today().isoformat()}.md"
    new = not path.exists()
    with open(path, "a", encoding="utf-8") as fh:
        if new:
            fh.write("# Relabel: torch threads on a shared CPU (benchmarks/bench_relabel.py --threads-study)\n\n")
        fh.write("\n".join(lines))
    print("\n".join(lines))
    print(f"appended to {path}")


if __name__ == "__main__":
    main()
