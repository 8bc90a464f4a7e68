"""Does the relabeler's writer thread keep up with a fast teacher? (issue 17, simulated on the CPU)

A ResNet-18 teacher on an H100/H200 labels of order 10^4 views/s. This feeds the relabeler's own
:class:`lplabel.relabel.writer_thread.WriterThread` (with the part chain and part ``StoreWriter``
that :func:`lplabel.relabel.run_relabel` uses for the run's label options) with precomputed real
logits (EfficientNet-Lite0, C = 1,000, the cache of ``bench_import_smallest.py``, top-k taken as the
relabeler takes it, ``_topk_canonical``) as fast as the main thread can submit them, and reports
how many views per second the writer sustains -- the ceiling the writer puts on relabelling --
against the 20,000 views/s target. The main thread does nothing else (no teacher, no rendering),
so this is the writer's best case on this machine's core(s); it competes only with the submitter.

Each case runs twice: as fast as the main thread can submit (the writer's ceiling), and paced at
``--rate`` views/s (a teacher at that speed: step i is submitted at i x B / rate seconds). The paced
run reports what the relabel summary reports (:class:`~lplabel.relabel.writer_thread.WriterStats`):
how often and how long the teacher loop waited for room in the writer's queue -- zero means the
writer never held the teacher back -- and how busy the writer thread was.

    python benchmarks/bench_relabel_writer.py [--steps 200] [--rate 20000] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import datetime as _dt
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
import bench_import_smallest  # noqa: E402

from lplabel import StoreWriter  # noqa: E402
from lplabel.relabel.core import _topk_canonical  # noqa: E402
from lplabel.relabel.labels import build_label_chain, part_chain  # noqa: E402
from lplabel.relabel.writer_thread import WriterThread  # noqa: E402
from lplabel.testing import describe_machine  # noqa: E402

TARGET = 20_000


def run_case(d: dict, topk, steps: int, work: Path, rate: float | None = None) -> dict:
    import torch

    S, B, C = d["logits"].shape
    codecs, label_input, device_topk = build_label_chain(C, topk=topk)
    pcodecs, pinput, pmode = part_chain(codecs, label_input)
    n_img = int(d["image"].max()) + 1
    labels = []
    for s in range(S):
        z = torch.from_numpy(np.ascontiguousarray(d["logits"][s]))
        labels.append(_topk_canonical(z, device_topk) if device_topk else {"logits": z})
    views = [
        SimpleNamespace(
            image=d["image"][s].astype(np.int32),
            crop=d["crop"][s].astype(np.float32),
            flip=d["flip"][s].astype(bool),
            mix_partner=d["mix_partner"][s].astype(np.int16),
            mix_lambda=float(d["mix_lambda"][s]),
            mix_box=d["mix_box"][s].astype(np.int16),
        )
        for s in range(S)
    ]
    spe = 50  # steps per epoch of the simulated run (n_img is small: views repeat images, as epochs do)
    epochs = -(-steps // spe)
    part = work / "part.lpl"

    def open_part(j):
        return StoreWriter(
            part,
            num_classes=C,
            images=n_img,
            batch_size=B,
            epochs=epochs,
            steps_per_epoch=spe,
            drop_last=True,
            label_codecs=pcodecs,
            label_input=pinput,
            augmentation={"output_size": 224, "mix": "cutmix"},
            teacher={"description": "bench", "temperature": 1.0},
            seed=0,
            steps_per_chunk=1,
            overwrite=True,
        )

    w = WriterThread(open_part, {0: steps}, label_input=pinput, maxsize=8)
    blocked = 0.0
    t0 = time.perf_counter()
    for i in range(steps):
        s = i % S
        if rate:  # a teacher at `rate` views/s hands over step i at i * B / rate
            pause = t0 + i * B / rate - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
        tb = time.perf_counter()
        w.submit(0, i // spe, i % spe, views[s], labels[s])
        blocked += time.perf_counter() - tb
    loop = time.perf_counter() - t0
    w.finish()
    dt = time.perf_counter() - t0
    size = part.stat().st_size if part.exists() else 0
    for p in work.iterdir():
        p.unlink()
    chain = "+".join(c.name for c in pcodecs)
    return dict(
        topk=topk,
        mode=pmode,
        chain=chain,
        views=steps * B,
        seconds=dt,
        blocked=blocked,
        bytes=size,
        dense_mb=steps * B * C * 2 / 1e6,
        rate=rate,
        stats=w.stats,
        loop=loop,
    )


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--rate", type=float, default=TARGET, help="views/s of the simulated teacher (paced runs)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    d = bench_import_smallest.real_logits()
    rows, paced = [], []
    work = Path(tempfile.mkdtemp(prefix="lplabel-bench-writer-"))
    try:
        for topk in (100, 10, None):
            rows.append(run_case(d, topk, args.steps, work))
            print(rows[-1], flush=True)
            paced.append(run_case(d, topk, args.steps, work, rate=args.rate))
            print(paced[-1], flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ver = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    cmd = "python benchmarks/bench_relabel_writer.py " + " ".join(argv if argv is not None else sys.argv[1:])
    lines = [
        f"# Relabeler writer thread against a 20,000 views/s teacher, simulated "
        f"({_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M} UTC)",
        "",
        f"Machine: {describe_machine()}, tree {ver.stdout.strip()}.",
        f"Command: `{cmd.strip()}`",
        "",
        f"{args.steps} steps of 100 real EfficientNet-Lite0 views (C = 1,000) submitted to `WriterThread` as fast "
        "as the main thread can (no teacher, no rendering); the writer encodes with the part chain "
        "`run_relabel` uses for those label options (`relabel --topk K`, default fp16 values) and writes one "
        "part store, 1 step per chunk as parts are written. Views/s = views / (first submit .. `finish()`).",
        "",
        "| labels | part mode | part chain | views/s | vs 20,000 | dense-eq. fp16 MB/s | main thread blocked "
        "in submit | part bytes/view |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        vps = r["views"] / r["seconds"]
        lines.append(
            f"| {'top-' + str(r['topk']) if r['topk'] else 'dense logits'} | {r['mode']} | {r['chain']} | "
            f"{vps:,.0f} | {vps / TARGET:.2f}x | {r['dense_mb'] / r['seconds']:,.0f} | "
            f"{r['blocked'] / r['seconds']:.0%} | {r['bytes'] / r['views']:.0f} |"
        )
    lines += [
        "",
        f"Paced at {args.rate:,.0f} views/s (a teacher at that speed; what the relabel summary's writer line "
        "reports): the teacher loop's waits on the writer's queue (8 steps), the writer thread's busy time "
        "over the loop, and the time `finish()` took to write what was queued when the loop ended.",
        "",
        "| labels | views/s reached | steps that waited | waited s | writer busy | drain after the loop s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in paced:
        st = r["stats"]
        lines.append(
            f"| {'top-' + str(r['topk']) if r['topk'] else 'dense logits'} | {r['views'] / r['seconds']:,.0f} | "
            f"{st.waits} of {st.steps} | {st.wait_seconds:.3f} | {st.busy_seconds / r['loop']:.0%} | "
            f"{st.drain_seconds:.3f} |"
        )
    text = "\n".join(lines) + "\n"
    out = args.out or REPO / "benchmarks" / "results" / f"relabel-writer-{_dt.date.today():%Y-%m-%d}.md"
    out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
