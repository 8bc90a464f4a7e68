"""Loader threads (issue 19 item 6): steps/s of ``ReplayLoader`` with torch's default threads against
the automatic plan (``threads="auto"``, lplabel.threads), 0 and 2 workers, quiet and under load.

Usage::

    python benchmarks/bench_loader_threads.py            # writes benchmarks/results/loader-threads-<date>.md
    python benchmarks/bench_loader_threads.py --quick

The label path of bench_loader.py (dense fp16 logits [128, 1000] per step, ``labels="dense"`` at
T=4, no images), over all steps of a store. "default" = ``threads=None`` with
``torch.set_num_threads(cores)`` (torch's default, what a user gets without lplabel's plan);
"plan" = ``threads="auto"``. The two alternate pass by pass (best of ``--repeats`` each), so load
changes hit both alike; the ratio plan/default is the result. "Under load" starts ``--busy``
busy-loop processes (``while :; do :; done``) for the section and stops them after.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_loader as bl  # noqa: E402
from lplabel.threads import available_cores  # noqa: E402
from lplabel.torch import ReplayLoader  # noqa: E402


def _pass(make) -> float:
    lo = make()
    n = 0
    t0 = time.perf_counter()
    for _ in lo:
        n += 1
    return n / (time.perf_counter() - t0)


def measure(path, n, workers, repeats):
    wkw = dict(num_workers=workers)
    if workers:
        wkw.update(persistent_workers=True, prefetch_factor=4)
    cores = available_cores()

    def make(threads):
        def build():
            torch.set_num_threads(cores)  # torch's default, before each pass
            return ReplayLoader(
                path, None, labels="dense", temperature=bl.T, reuse="order", steps_per_epoch=n, threads=threads, **wkw
            )

        return build

    best = {"default": 0.0, "plan": 0.0}
    plan = None
    for name, threads in (("default", None), ("plan", "auto")):
        _pass(make(threads))  # warm-up
    for _ in range(repeats):
        for name, threads in (("default", None), ("plan", "auto")):
            best[name] = max(best[name], _pass(make(threads)))
    plan = make("auto")().thread_plan
    return best, plan


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=48)
    ap.add_argument("--images", type=int, default=1536)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--busy", type=int, default=4)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    if args.quick:
        args.steps, args.repeats = 16, 1
    started = _dt.datetime.now(_dt.timezone.utc)
    load_start = bl._load()
    bl.WORK.mkdir(parents=True, exist_ok=True)
    policy, pairs, views, logits, how = bl.build_content(args.steps, args.images)
    path = bl.write_store(bl.WORK / "threads-dense.lpl", pairs, views, logits, "dense", args.images)
    rows = []
    for cond in ("quiet-ish", f"under load ({args.busy} busy loops)"):
        procs = []
        if cond != "quiet-ish":
            procs = [subprocess.Popen(["sh", "-c", "while :; do :; done"]) for _ in range(args.busy)]
            time.sleep(1.0)
        try:
            for workers in (0, 2):
                load = bl._load()
                best, plan = measure(path, len(pairs), workers, args.repeats)
                rows.append((cond, workers, load, best["default"], best["plan"], plan.describe()))
                print(rows[-1], flush=True)
        finally:
            for p in procs:
                p.terminate()
                p.wait()
    lines = [
        f"# Loader threads: torch's default against lplabel's plan ({started:%Y-%m-%d %H:%M} UTC)",
        "",
        f"Machine: {bl.machine(load_start)}.",
        "",
        f"Command: `PYTHONPATH=$PWD python benchmarks/bench_loader_threads.py {' '.join(argv or sys.argv[1:])}`",
        "",
        f"Content: {len(pairs)} steps of dense logits [{bl.B}, {bl.C}] ({how}); `labels='dense'` at "
        f"T={bl.T}, no images, best of {args.repeats} alternating passes each.",
        "",
        "| condition | workers | load (1/5/15) | default steps/s | plan steps/s | plan / default | plan |",
        "|---|---|---|---|---|---|---|",
    ]
    for cond, w, load, d, p, desc in rows:
        lines.append(f"| {cond} | {w} | {load} | {d:.0f} | {p:.0f} | {p / d:.2f}x | {desc} |")
    lines += [
        "",
        "The machine is shared with other jobs: read the ratios (measured in the same run, passes "
        "alternating), not the absolute numbers.",
    ]
    out = Path(args.out) if args.out else bl.REPO / "benchmarks" / "results" / f"loader-threads-{started:%Y-%m-%d}.md"
    out.write_text("\n".join(lines) + "\n")
    print(out)


if __name__ == "__main__":
    main()
