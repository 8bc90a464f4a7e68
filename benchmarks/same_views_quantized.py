"""Students on the very views an LPQLD-style row keeps, with its values quantized by lplabel.

Why: in the 1000-class sweep (``lplabel bench accuracy --preset cpu``) an lplabel row and an
LPQLD-style row at the same ``keep 1/10`` keep different steps (LPQLD's generator keeps full
batches only, lplabel's pruning every step), so a difference between their students mixes what
the labels hold with which views were kept. This script removes the second: it re-encodes the
LPQLD-style store of a finished sweep (``OUT/stores/lpqld-k<K>-keep1in10.lpl``) with lplabel's
lossy top-k chain (int8 or int4 values, no tail: LPQLD's own top-k renormalisation), so the two
stores hold the same views, the same classes and values that differ only by quantization, then
trains the sweep's students (same recipe, seeds and temperature schedule) on it and compares with
the LPQLD row's students cached in ``OUT/runs/``.

    python benchmarks/same_views_quantized.py out/tiny-cpu --source lpqld-k50-keep1in10 --bits 8 \\
        --seeds 2 --results benchmarks/results/same-views-int8-2026-12-05.md
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path, help="the --out folder of a finished `bench accuracy --preset cpu` sweep")
    ap.add_argument("--source", default="lpqld-k50-keep1in10", help="the LPQLD-style row to re-encode")
    ap.add_argument("--bits", type=int, choices=(4, 8), default=8)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--results", type=Path, default=None, help="write a Markdown report here")
    ap.add_argument(
        "--wait",
        type=float,
        default=0.0,
        help="seconds to wait for the sweep to cache an LPQLD student before training it",
    )
    args = ap.parse_args()

    import torch

    from lplabel import open_store
    from lplabel.experiment.harness import BenchConfig, resolve_config
    from lplabel.experiment.harness.sweep import Bench
    from lplabel.experiment.harness.student import train_student
    from lplabel.testing import describe_machine

    torch.set_num_threads(1)
    r = resolve_config(BenchConfig(dataset="tiny-imagenet", preset="cpu", device="cpu", out=str(args.out)))
    bench = Bench(r, lambda s: None)
    bench.load_data()
    bench.get_teacher()
    bench.get_distilled()  # cached by the sweep: the same 1,000 images

    src = args.out / "stores" / f"{args.source}.lpl"
    if not src.is_file():
        sys.exit(f"error: {src} not found -- run the sweep with --settings including {args.source} first")
    topk = open_store(src).pipelines["label"].to_json()[0]  # the LPQLD-style row's first codec: its top-k
    k = int(topk["configuration"]["k"])
    dst = args.out / "same-views" / f"{args.source}-int{args.bits}.lpl"
    dst.parent.mkdir(parents=True, exist_ok=True)
    codecs = [
        {"name": "topk", "configuration": {"k": k, "type": "float16", "index_type": "uint16", "tail": "none"}},
        {"name": "quantize", "configuration": {"bits": args.bits, "scale_type": "float16"}},
        {"name": "sort", "configuration": {"by": "index"}},
        {"name": "delta", "configuration": {"field": "indices", "order": "ascending"}},
        {"name": "zplanes", "configuration": {"level": 19}},
    ]
    lpl = [sys.executable, "-m", "lplabel", "--no-header-copy"]
    subprocess.run(
        [
            *lpl,
            "encode",
            str(src),
            "-o",
            str(dst),
            "--force",
            "--steps-per-chunk",
            "8",
            "--allow-lossy",
            "--codecs",
            json.dumps(codecs),
        ],
        check=True,
    )
    cmp = subprocess.run([*lpl, "compare", str(src), str(dst)], capture_output=True, text=True, check=True).stdout

    recipe = replace(r.recipe, epochs=r.recipe.epochs or r.epochs)

    def student(path, seed: int) -> dict:
        return train_student(
            path,
            bench.distilled,
            bench.test,
            recipe,
            seed=seed,
            device="cpu",
            temperature="dkr",
            class_index=bench.class_index,
            progress=False,
        )

    quantized = {}
    for seed in range(args.seeds):
        t0 = time.perf_counter()
        quantized[seed] = student(dst, seed)["top1"]
        print(
            f"seed {seed}: int{args.bits} {100 * quantized[seed]:.2f} % ({time.perf_counter() - t0:.0f} s)", flush=True
        )
    rows = []  # (seed, the LPQLD row's top-1, the quantized store's top-1)
    for seed in range(args.seeds):
        # the LPQLD row's student from the sweep's cache; a sweep still running may write it soon
        cached = args.out / "runs" / args.source / f"seed{seed}.json"
        deadline = time.monotonic() + args.wait
        while not cached.is_file() and time.monotonic() < deadline:
            time.sleep(15)
        ref = json.loads(cached.read_text()) if cached.is_file() else student(src, seed)
        rows.append((seed, ref["top1"], quantized[seed]))
        print(f"seed {seed}: {args.source} {100 * ref['top1']:.2f} %, int{args.bits} {100 * quantized[seed]:.2f} %")

    b_src, b_dst = src.stat().st_size, dst.stat().st_size
    lines = [
        f"# Same views, values quantized: `{args.source}` against its int{args.bits} re-encoding",
        "",
        f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; machine: {describe_machine()},"
        " one thread per process",
        f"- command: `python benchmarks/same_views_quantized.py {args.out} --source {args.source} --bits {args.bits}"
        f" --seeds {args.seeds}`",
        f"- students: the sweep's recipe ({recipe.model}, {recipe.epochs} epochs, LPQLD's DKR temperature schedule),"
        " the LPQLD row's students read from the sweep's cache",
        "",
        "| store | whole file (B) | x smaller than the LPQLD-style file | "
        + " | ".join(f"seed {s} top-1 %" for s, *_ in rows)
        + " | mean |",
        "|---|---:|---:|" + "---:|" * (len(rows) + 1),
        f"| `{args.source}` (fp16 values) | {b_src:,} | 1.00 | "
        + " | ".join(f"{100 * a:.2f}" for _, a, _ in rows)
        + f" | {100 * sum(a for _, a, _ in rows) / len(rows):.2f} |",
        f"| int{args.bits} values, no tail, same views | {b_dst:,} | {b_src / b_dst:.2f} | "
        + " | ".join(f"{100 * b:.2f}" for _, _, b in rows)
        + f" | {100 * sum(b for _, _, b in rows) / len(rows):.2f} |",
        "",
        "`lplabel compare` of the two stores:",
        "",
        "```",
        cmp.strip(),
        "```",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.results:
        args.results.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
