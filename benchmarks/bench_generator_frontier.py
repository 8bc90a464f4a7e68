"""Which generator fits a byte budget best at C = 1,000: wide convolutions or a higher-rank head.

    python benchmarks/bench_generator_frontier.py OUT --budget 60000 --shapes 32x4 16x14 8x18 [--passes 3]

OUT is a ``lplabel bench accuracy`` output folder (its ``stores/full.lpl`` and ``distilled.npz``;
e.g. ``--dataset tiny-imagenet --preset cpu``). For each ``WIDTHxRANK`` (``WIDTHxfull``: a full
head) this trains a generator of at most ``--budget`` bytes on the full store's labels with
:func:`lplabel.torch.distill.distill_generator` (``--passes`` passes over the stored epochs, the
harness's 3 by default; views pooled to ``--resolution`` px) and checks it as the harness does
(:func:`lplabel.experiment.harness.online.check_against_store`: top-1 agreement with the full
store's labels on the first stored epoch), plus the KL at T = 1 of its last training pass.
``choose_for_budget``'s own pick is always one of the rows. Writes
``benchmarks/results/generator-frontier-<date>.md``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _shape(text: str):
    w, r = text.lower().split("x")
    return int(w), None if r == "full" else int(r)


def main(argv=None) -> int:
    import torch

    from lplabel.experiment.harness.distill import load_distilled
    from lplabel.experiment.harness.online import check_against_store
    from lplabel.generator import choose_for_budget
    from lplabel.store import LabelStore
    from lplabel.testing import machine_info
    from lplabel.torch.distill import distill_generator
    from lplabel.torch.generator import StoredGenerator

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", help="a lplabel bench accuracy --out folder")
    ap.add_argument("--budget", type=int, default=60000)
    ap.add_argument("--shapes", nargs="*", default=[], help="WIDTHxRANK or WIDTHxfull")
    ap.add_argument("--passes", type=int, default=3)
    ap.add_argument("--resolution", type=int, default=32)
    ap.add_argument("--results", default=None, help="the Markdown file to write")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    base = Path(a.out)
    full = base / "stores" / "full.lpl"
    images = load_distilled(base / "distilled.npz")
    st = LabelStore(full)
    size = int(st.header["augmentation"]["output_size"])
    pick = choose_for_budget(
        a.budget, in_channels=3, input_size=size, num_classes=st.num_classes, resolution=a.resolution
    )
    shapes = [(pick["width"], pick["rank"])] + [s for s in map(_shape, a.shapes) if s != (pick["width"], pick["rank"])]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for w, r in shapes:
            out = Path(tmp) / f"g{w}x{r}.lpl"
            rep = distill_generator(
                full,
                images,
                out,
                budget=a.budget,
                epochs=a.passes * st.epochs,
                resolution=a.resolution,
                shape=(w, r),
                force=True,
            )
            fid = check_against_store(full, images, StoredGenerator(), other=out)
            rows.append((w, r, rep, fid, (w, r) == (pick["width"], pick["rank"])))
            print(w, r, rep["parameters"], rep["bytes"], rep["top1_agreement"], rep["kl_t1"], fid["top1_agreement"])
    m = machine_info("cpu")
    day = _dt.datetime.now(_dt.timezone.utc)
    lines = [
        f"# Generator frontier at a {a.budget:,} B budget, C = {st.num_classes:,}",
        "",
        f"- date: {day:%Y-%m-%d %H:%M} UTC; machine: {m.get('cpu', 'CPU')}, 2 cores shared with other jobs "
        f"(nice -n 19), no GPU; torch {torch.__version__}, one thread",
        "- command: `nice -n 19 python benchmarks/bench_generator_frontier.py "
        + " ".join(argv if argv is not None else sys.argv[1:])
        + "`",
        f"- store: `{full}` ({st.num_records:,} views of {size} px, {st.epochs} stored epochs); generators "
        f"see the views pooled to {a.resolution} px and train {a.passes} passes ({a.passes * st.epochs} epochs)",
        "",
        "| width | head rank | parameters | bytes | fit top-1 (last pass) | KL T=1 (last pass) | "
        "top-1 agreement, stored epoch 0 | train s |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for w, r, rep, fid, chosen in rows:
        lines.append(
            f"| {w}{' (chooser)' if chosen else ''} | {r if r is not None else 'full'} | {rep['parameters']:,} | "
            f"{rep['bytes']:,} | {100 * rep['top1_agreement']:.2f} % | {rep['kl_t1']:.4f} | "
            f"{100 * fid['top1_agreement']:.2f} % | {rep['seconds']:.0f} |"
        )
    path = (
        Path(a.results)
        if a.results
        else REPO / "benchmarks" / "results" / f"generator-frontier-{a.budget}-{day:%Y-%m-%d}.md"
    )
    path.write_text("\n".join(lines) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
