"""EfficientNet-Lite0 at 224 px: eager PyTorch vs onnxruntime, images/s on 1 and 2 threads, max |Δlogit|.

Real Tiny-ImageNet validation images (64 px, upscaled to 224 bicubic, clamped to 0..255, as the
relabeler feeds the teacher) go through the same teacher two ways:

* **eager**: ``load_teacher("efficientnet-lite0")`` (lplabel's wrapper, normalisation inside), fp32,
  channels_last input and weights (faster than plain NCHW on this CPU), ``torch.inference_mode``;
* **onnx**: the file written by :func:`lplabel.teachers.onnx.export_teacher` (the same wrapper,
  exported), run by :class:`lplabel.teachers.onnx.OnnxTeacher` with as many intra-op threads as torch has.

For each thread count, the two are timed in alternation (eager batch, onnx batch, ...) over
``--rounds`` rounds, so that a noisy shared machine slows both alike; the medians give images/s and
the ratio. The logits of both on all ``--images`` images give max |Δ| and top-1 agreement.
Appends a Markdown section to ``benchmarks/results/onnx_teacher.md``.

    python benchmarks/bench_onnx_teacher.py --images 256 --batch 32 --rounds 5
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=256)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "onnx_teacher.md"))
    a = ap.parse_args()

    import onnxruntime

    from lplabel.datasets import load_dataset
    from lplabel.teachers.onnx import OnnxTeacher, export_teacher
    from lplabel.teachers import load_teacher

    iset = load_dataset("tiny-imagenet", split="val")
    pick = np.random.default_rng(0).permutation(len(iset))[: a.images]
    x64 = torch.from_numpy(np.stack([np.asarray(iset.images[int(i)]) for i in pick])).permute(0, 3, 1, 2).float()
    x = torch.nn.functional.interpolate(x64, size=(224, 224), mode="bicubic", align_corners=False).clamp_(0, 255)
    x = x.contiguous()

    eager = load_teacher("efficientnet-lite0").eval().to(memory_format=torch.channels_last)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "lite0.onnx"
        t0 = time.perf_counter()
        facts = export_teacher("efficientnet-lite0", path, check_images=iset, check_count=16)
        export_s = time.perf_counter() - t0
        onnx = OnnxTeacher(path)
        onnx_mb = path.stat().st_size / 2**20

        rows = []
        logits = {}
        for th in [int(t) for t in a.threads.split(",")]:
            torch.set_num_threads(th)
            te, to = [], []
            batches = [x[i : i + a.batch] for i in range(0, len(x), a.batch)]
            with torch.inference_mode():
                eager(batches[0].contiguous(memory_format=torch.channels_last))  # warm-up
                onnx(batches[0])
                for r in range(a.rounds):
                    b = batches[r % len(batches)]
                    t = time.perf_counter()
                    eager(b.contiguous(memory_format=torch.channels_last))
                    te.append(time.perf_counter() - t)
                    t = time.perf_counter()
                    onnx(b)
                    to.append(time.perf_counter() - t)
                if th == 1:  # logits once (thread count does not change fp32 results beyond rounding)
                    logits["eager"] = torch.cat(
                        [eager(b.contiguous(memory_format=torch.channels_last)) for b in batches]
                    )
                    logits["onnx"] = torch.cat([onnx(b) for b in batches])
            e_ips, o_ips = a.batch / statistics.median(te), a.batch / statistics.median(to)
            rows.append((th, e_ips, o_ips, o_ips / e_ips, os.getloadavg()[0]))
            print(
                f"{th} thread(s): eager {e_ips:.1f} img/s, onnxruntime {o_ips:.1f} img/s, ratio {o_ips / e_ips:.2f}x",
                flush=True,
            )
        if not logits:
            with torch.inference_mode():
                logits["eager"] = eager(x.contiguous(memory_format=torch.channels_last))
                logits["onnx"] = onnx(x)
    d = (logits["eager"] - logits["onnx"]).abs()
    agree = float((logits["eager"].argmax(1) == logits["onnx"].argmax(1)).double().mean())
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"## {now}: EfficientNet-Lite0, 224 px, eager PyTorch vs onnxruntime",
        "",
        f"Machine: {os.cpu_count()}-core VM ({cpu}), no GPU, shared with other jobs; torch {torch.__version__}, "
        f"onnxruntime {onnxruntime.__version__}, Python {platform.python_version()}.",
        f"Command: `python benchmarks/bench_onnx_teacher.py --images {a.images} --batch {a.batch} "
        f"--rounds {a.rounds} --threads {a.threads}`",
        "",
        f"Images: {a.images} Tiny-ImageNet validation images (64 px JPEG, seeded random pick), upscaled to 224 "
        "(bicubic, clamped 0..255), float32 NCHW 0..255 into both teachers (normalisation inside each).",
        f"Export (`lplabel export-teacher efficientnet-lite0`): {export_s:.1f} s, {onnx_mb:.1f} MiB, its own check "
        f"on 16 images: max |Δ| {facts['max_abs_diff']:.2g}.",
        "",
        "| threads | eager PyTorch (channels_last) img/s | onnxruntime img/s | onnxruntime / eager | load avg (1 min) |",
        "|---|---|---|---|---|",
    ]
    for th, e_ips, o_ips, ratio, load in rows:
        lines.append(f"| {th} | {e_ips:.1f} | {o_ips:.1f} | **{ratio:.2f}×** | {load:.1f} |")
    lines += [
        "",
        f"Logits on all {a.images} images (1 thread): max |Δ| **{float(d.max()):.3g}** (mean {float(d.mean()):.2g}; "
        f"logits up to {float(logits['eager'].abs().max()):.3g}), top-1 agreement {100 * agree:.1f} %.",
        "",
        f"Timing: batch {a.batch}, median of {a.rounds} alternating calls per teacher after one warm-up each. The "
        "machine is shared (see the load column): absolute images/s move with the load; the ratio, measured in "
        "alternation within one run, is the figure to use.",
        "",
    ]
    out = Path(a.out)
    new = not out.exists()
    with open(out, "a", encoding="utf-8") as f:
        if new:
            f.write(
                "# ONNX teacher: onnxruntime vs eager PyTorch\n\n"
                "Written by `benchmarks/bench_onnx_teacher.py` (see its docstring); newest last.\n\n"
            )
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
