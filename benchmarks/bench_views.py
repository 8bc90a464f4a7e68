"""View samplers lplabel-views-v1 and -v2: bytes per record of derived stores, and sampler cost.

    PYTHONPATH=. python benchmarks/bench_views.py [--out benchmarks/results/views-v2-DATE.md] [--quick]

For each data set, the same images, teacher, policy, seed and label chain are relabelled twice —
once with each sampler — into stores with derived view columns (spec §1.4), exactly as the
relabeler does (views from lplabel.views, rendered by lplabel.replay, teacher logits, a top-k
label chain), and ``lplabel info``'s byte accounting is reported:

* digits (scikit-learn, 10 images per class, 8 px, a ConvNet teacher trained here), C = 10,
  top-4 fp16 labels, CutMix, 100 epochs of batch 50;
* Tiny-ImageNet (1 training image per class, 64 px, viewed at 224 px), EfficientNet-Lite0
  (ImageNet-1K, C = 1000), top-10 fp16 labels, CutMix, 2 epochs of batch 50.

v1 is also run with another seed: the label payload's change from other views alone.

Label payloads differ a little between the two stores (other views give other logits); the view
columns cost nothing in both, so what the sampler itself changes is the step tables and the
header. Then the sampler's own time per step and per epoch order, v1 and v2 in one run (min of
repeats, interleaved), so the ratio is meaningful on a noisy machine.
"""
from __future__ import annotations

import argparse
import datetime as dt
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lplabel import StoreWriter, store_info  # noqa: E402
from lplabel.codecs import label_chain  # noqa: E402
from lplabel.views import SAMPLER_V1, SAMPLER_V2, AugmentPolicy, epoch_order, plan_steps, sample_step  # noqa: E402


def relabel_pair(name, iset, teacher, classes, size, batch, epochs, k, out_dir, log):
    import torch

    from lplabel.replay import render_step

    rows = []
    sizes = iset.sizes()
    n_steps = len(iset) // batch
    pairs = [(e, s) for e in range(epochs) for s in range(n_steps)]
    for sampler, seed in ((SAMPLER_V1, 0), (SAMPLER_V2, 0), (SAMPLER_V1, 1)):  # v1 seed 1: label noise scale
        policy = AugmentPolicy(size, mix="cutmix", sampler=sampler)
        path = out_dir / f"{name}-{sampler}-seed{seed}.lpl"
        t0 = time.perf_counter()
        with StoreWriter(path, num_classes=classes, images=iset, batch_size=batch, epochs=epochs, drop_last=True,
                         augmentation=policy.to_json(), seed=seed, overwrite=True, steps_per_chunk=16,
                         teacher={"description": name, "checksum": None, "temperature": 1.0},
                         label_codecs=label_chain(k=k, values="fp16", layout="planes", level=19),
                         derived_views=sizes) as w, torch.inference_mode():
            for e, s, v in plan_steps(seed, pairs, sizes, batch, policy, drop_last=True):
                z = teacher(render_step(iset.images, v, policy)).float().numpy()
                w.write_step(e, s, image=v.image, crop=v.crop, flip=v.flip, mix_partner=v.mix_partner,
                             mix_lambda=v.mix_lambda, mix_box=v.mix_box, logits=z)
        info = store_info(path)
        log(f"  {name} {sampler} seed {seed}: {info['records']} records, {info['bytes_per_record']:.3f} B/record "
            f"({time.perf_counter() - t0:.0f} s)")
        bb = info["bytes_by_field"]
        rows.append({"store": name, "sampler": sampler, "seed": seed, "records": info["records"], "file": info["file_bytes"],
                     "bpr": info["bytes_per_record"], "label": info["label_payload_bytes"],
                     "views": sum(bb.get(f"column.{c}", 0) for c in ("image", "crop", "flip", "mix_partner")),
                     "tables": bb.get("step_tables", 0) + bb.get("image_sizes", 0) + bb.get("chunk_index", 0),
                     "header": bb.get("header", 0), "overhead": info["container_overhead_bytes"]})
    return rows


def sampler_times(repeats: int = 7):
    """Min-of-repeats seconds of v1, v2 compiled (numba, when available) and v2 numpy, interleaved."""
    from lplabel import views_v2

    compiled = views_v2.kernels()
    sizes = np.random.default_rng(0).integers(32, 500, (50_000, 2))
    out = {}
    for rep in range(repeats):
        for sampler, form in ((SAMPLER_V1, "v1"), (SAMPLER_V2, "v2 numba"), (SAMPLER_V2, "v2 numpy")):
            if form == "v2 numba" and compiled is None:
                continue
            views_v2._KERNELS = False if form == "v2 numpy" else compiled
            pol = AugmentPolicy(224, mix="cutmix", sampler=sampler)
            t = time.perf_counter()
            order = epoch_order(1, rep, len(sizes), sampler)
            t_order = time.perf_counter() - t
            for b in (50, 256):
                t = time.perf_counter()
                for s in range(10):
                    sample_step(1, rep, s, order[s * b:(s + 1) * b], sizes, pol)
                out.setdefault((form, f"step B={b}"), []).append((time.perf_counter() - t) / 10)
            out.setdefault((form, "epoch order N=50,000"), []).append(t_order)
    views_v2._KERNELS = compiled if compiled is not None else False
    return {k: min(v) for k, v in out.items()}


def times_table(times) -> list:
    lines = ["| what | v1 (numpy Generator) | v2 compiled (numba) | v2 numpy | v2 compiled / v1 | v2 numpy / v1 |",
             "|---|---|---|---|---|---|"]
    for what in ("step B=50", "step B=256", "epoch order N=50,000"):
        t1, tn = times[("v1", what)], times[("v2 numpy", what)]
        tc = times.get(("v2 numba", what))
        c = f"{tc * 1e3:.3f} ms" if tc else "n/a"
        r = f"{tc / t1:.2f}x" if tc else "n/a"
        lines.append(f"| {what} | {t1 * 1e3:.3f} ms | {c} | {tn * 1e3:.3f} ms | {r} | {tn / t1:.1f}x |")
    return lines


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--work", type=Path, default=REPO / "out" / "bench-views")
    ap.add_argument("--quick", action="store_true", help="fewer epochs (a smoke run)")
    ap.add_argument("--times-only", action="store_true", help="only the sampler timings")
    a = ap.parse_args(argv)
    import torch

    from lplabel.datasets import load_dataset
    from lplabel.teachers import load_teacher, train_teacher

    torch.set_num_threads(2)
    if a.times_only:
        print("\n".join(times_table(sampler_times(15))))
        return
    a.work.mkdir(parents=True, exist_ok=True)
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    rows = []
    digits = load_dataset("digits", limit_per_class=10)
    log("digits: training the teacher")
    teacher = train_teacher(load_dataset("digits"), epochs=5 if a.quick else 15, seed=0).eval()
    rows += relabel_pair("digits-ipc10-top4", digits, teacher, 10, 8, 50, 20 if a.quick else 100, 4, a.work, log)
    tiny = load_dataset("tiny-imagenet", "train", limit_per_class=1)
    eff = load_teacher("efficientnet-lite0").eval()
    rows += relabel_pair("tiny-imagenet-ipc1-effnetlite0-top10", tiny, eff, 1000, 224, 50, 1 if a.quick else 2, 10,
                         a.work, log)
    times = sampler_times(3 if a.quick else 7)

    date = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"# View samplers v1 vs v2 ({date})", "",
             f"Machine: {platform.machine()} 2-core AMD EPYC VM, no GPU, torch {torch.__version__}, numpy "
             f"{np.__version__}. Command: `PYTHONPATH=. python benchmarks/bench_views.py"
             f"{' --quick' if a.quick else ''}`.", "",
             "Derived stores (spec §1.4) of the same images, teacher, policy (RandomResizedCrop 0.08-1, flip, "
             "CutMix), seed and top-k label chain (`label_chain(k, fp16, layout=planes, level=19)`), one per sampler. "
             "Bytes as `lplabel info` counts them; `views` = the four view columns (derived: 0), `tables` = step "
             "tables + image sizes + chunk index.", "",
             "| store | sampler | seed | records | file B | B/record | label B | views B | tables B | header B | HDF5 B |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['store']} | {r['sampler']} | {r['seed']} | {r['records']:,} | {r['file']:,} | {r['bpr']:.3f} | "
                     f"{r['label']:,} | {r['views']:,} | {r['tables']:,} | {r['header']:,} | {r['overhead']:,} |")
    lines += ["", "v2 against v1 (ratio of bytes per record; < 1: v2 smaller). Other views give other logits, so "
              "the label payloads differ by chance; v1 with another seed shows how much:", ""]
    for i in range(0, len(rows), 3):
        v1, v2, v1b = rows[i], rows[i + 1], rows[i + 2]
        lines.append(f"* {v1['store']}: v2/v1 {v2['bpr'] / v1['bpr']:.4f}; v1 seed 1 / v1 seed 0 "
                     f"{v1b['bpr'] / v1['bpr']:.4f}; non-label bytes (everything the sampler decides) "
                     f"{v1['file'] - v1['label']:,} (v1) -> {v2['file'] - v2['label']:,} (v2)")
    lines += ["", "Sampler time (one process, min of interleaved repeats; the ratios are the numbers to read). "
              "lplabel runs v2 compiled when numba is importable (the `rans` extra), else the numpy form:", ""]
    lines += times_table(times)
    text = "\n".join(lines) + "\n"
    print(text)
    if a.out:
        a.out.write_text(text)


if __name__ == "__main__":
    main()
