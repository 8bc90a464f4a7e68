"""A label generator's cost at the 1000-class preset's view size: convolving 224-px views, or pooled to 32.

    python benchmarks/bench_generator_resolution.py [--rounds 5] [--budgets 60000 600000]

The ``cpu`` preset renders its views at the teacher's 224 px; its students see them at 32 px. For
each byte budget this builds the generator :func:`lplabel.generator.choose_for_budget` picks for
3 x 224 x 224 views and 1,000 classes, once convolving the views as rendered
(``convnet-lite-v1``, what lplabel trained before the pooling existed) and once average-pooling
them to 32 px first (``convnet-lite-v2``, the default now), and times on one batch of 64 views
(the preset's step; pixels 0..255) its forward (what every student step pays) and a training
step (forward, KL backward, Adam: what ``distill-generator`` pays per step), interleaved over
``--rounds`` rounds. Reports medians, the ratio of the two per round (median), and torch's FLOP
count per view. Writes ``benchmarks/results/generator-resolution-<date>.md``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

VIEW, CLASSES, BATCH = 224, 1000, 64


def _time(fn, reps: int) -> float:
    fn()  # warm-up
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    return 1000.0 * (time.perf_counter() - t0) / reps


def main(argv=None) -> int:
    import torch

    from lplabel.generator import choose_for_budget, num_params
    from lplabel.torch.generator import GeneratorNet
    from lplabel.torch.label_sources import flops_per_view
    from lplabel.torch.losses import kl_div_loss
    from lplabel.testing import machine_info

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--reps", type=int, default=2, help="timed calls per round and variant")
    ap.add_argument("--budgets", type=int, nargs="+", default=[60000, 600000])
    ap.add_argument(
        "--time-budgets",
        type=int,
        nargs="*",
        default=None,
        help="the budgets to time (default: all; the others get their FLOP counts only -- a 600 KB "
        "generator on 224-px views takes minutes per step on one core)",
    )
    ap.add_argument("--resolution", type=int, default=32)
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    x = torch.randint(0, 256, (BATCH, 3, VIEW, VIEW)).float()
    target = torch.softmax(torch.randn(BATCH, CLASSES), 1)
    rows = []
    for budget in a.budgets:
        nets = {}
        for res in (VIEW, a.resolution):
            arch = choose_for_budget(budget, in_channels=3, input_size=VIEW, num_classes=CLASSES, resolution=res)
            net = GeneratorNet(arch)
            opt = torch.optim.Adam(net.parameters(), lr=1e-3)

            def fwd(net=net):
                with torch.no_grad():
                    net(x)

            def train(net=net, opt=opt):
                loss = kl_div_loss(net(x), target, 1.0)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()

            nets[res] = (arch, fwd, train, flops_per_view(net, x[:1]))
        times = {res: {"fwd": [], "train": []} for res in nets}
        timed = a.time_budgets is None or budget in a.time_budgets
        for _ in range(a.rounds if timed else 0):
            for res, (_, fwd, train, _) in nets.items():
                times[res]["fwd"].append(_time(fwd, a.reps))
                times[res]["train"].append(_time(train, a.reps))
        for res, (arch, _, _, flops) in nets.items():
            med = {k: statistics.median(v) if v else None for k, v in times[res].items()}
            ratio = {
                k: statistics.median(p / q for p, q in zip(times[res][k], times[a.resolution][k])) if med[k] else None
                for k in med
            }
            rows.append((budget, res, arch, num_params(arch), flops, med, ratio))
            print(budget, res, arch["name"], arch["width"], arch["rank"], med, ratio, flush=True)
    m = machine_info("cpu")
    day = _dt.datetime.now(_dt.timezone.utc)
    lines = [
        "# Label generator cost at 224-px views: convolved as rendered vs pooled to 32 px",
        "",
        f"- date: {day:%Y-%m-%d %H:%M} UTC; machine: {m.get('cpu', 'CPU')}, 2 cores shared with other jobs "
        f"(run under nice -n 19), no GPU; torch {torch.__version__}, one thread",
        "- command: `nice -n 19 python benchmarks/bench_generator_resolution.py "
        + " ".join(argv if argv is not None else sys.argv[1:])
        + "`",
        f"- one step = {BATCH} views of 3 x {VIEW} x {VIEW}, {CLASSES} classes (the cpu preset's); "
        f"{a.rounds} rounds x {a.reps} calls, interleaved; ratios: median of per-round ratios to the pooled generator",
        "",
        "| budget B | generator | width, rank | parameters | GFLOP / view | forward ms / step | x | train ms / step | x |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for budget, res, arch, n, flops, med, ratio in rows:
        what = f"{arch['name']}, " + ("views as rendered (224 px)" if res == VIEW else f"pooled to {res} px")
        ms = ["not timed" if med[k] is None else f"{med[k]:.1f}" for k in ("fwd", "train")]
        xs = ["-" if ratio[k] is None else f"x{ratio[k]:.1f}" for k in ("fwd", "train")]
        lines.append(
            f"| {budget:,} | {what} | {arch['width']}, {arch['rank']} | {n:,} | "
            f"{(flops or 0) / 1e9:.4f} | {ms[0]} | {xs[0]} | {ms[1]} | {xs[1]} |"
        )
    out = Path(a.out) if a.out else REPO / "benchmarks" / "results" / f"generator-resolution-{day:%Y-%m-%d}.md"
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
