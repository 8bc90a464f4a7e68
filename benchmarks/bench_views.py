"""View samplers lplabel-views-v1 and -v2: bytes per record of derived stores, and sampler cost.

    PYTHONPATH=. python benchmarks/bench_views.py [--out benchmarks/results/views-v2-DATE.md] [--quick]
    PYTHONPATH=. python benchmarks/bench_views.py --tiny-seeds 3 [--tiny-ipc 5 --tiny-epochs 2 --tiny-px 64]
    PYTHONPATH=. python benchmarks/bench_views.py --view-stats 4000

For each data set, the same images, teacher, policy, seed and label chain are relabelled twice —
once with each sampler — into stores with derived view columns (spec §1.4), exactly as the
relabeler does (views from lplabel.views, rendered by lplabel.views.replay, teacher logits, a top-k
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

``--tiny-seeds S`` is the larger Tiny-ImageNet study: S seeds per sampler, each relabelled once
into a dense fp32 store and quantized by ``lplabel quantize`` to top-10 and top-100 (planes and
rans), reporting each sampler's mean and spread of bytes/record over seeds and the view statistics
of every run; ``--view-stats STEPS`` compares the samplers' crop, aspect, λ and CutMix statistics
over many steps without a teacher (quantiles and a two-sample KS test).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lplabel import StoreWriter, store_info  # noqa: E402
from lplabel.codecs import preset_chain  # noqa: E402
from lplabel.views import SAMPLER_V1, SAMPLER_V2, AugmentPolicy, epoch_order, plan_steps, sample_step  # noqa: E402
from lplabel.testing import describe_machine  # noqa: E402


def relabel_pair(name, iset, teacher, classes, size, batch, epochs, k, out_dir, log):
    import torch

    from lplabel.views.replay import render_step

    rows = []
    sizes = iset.sizes()
    n_steps = len(iset) // batch
    pairs = [(e, s) for e in range(epochs) for s in range(n_steps)]
    for sampler, seed in ((SAMPLER_V1, 0), (SAMPLER_V2, 0), (SAMPLER_V1, 1)):  # v1 seed 1: label noise scale
        policy = AugmentPolicy(size, mix="cutmix", sampler=sampler)
        path = out_dir / f"{name}-{sampler}-seed{seed}.lpl"
        t0 = time.perf_counter()
        with (
            StoreWriter(
                path,
                num_classes=classes,
                images=iset,
                batch_size=batch,
                epochs=epochs,
                drop_last=True,
                augmentation=policy.to_json(),
                seed=seed,
                overwrite=True,
                steps_per_chunk=16,
                teacher={"description": name, "checksum": None, "temperature": 1.0},
                label_codecs=preset_chain("planes", k=k, values="fp16", level=19),
                derived_views=sizes,
            ) as w,
            torch.inference_mode(),
        ):
            for e, s, v in plan_steps(seed, pairs, sizes, batch, policy, drop_last=True):
                z = teacher(render_step(iset.images, v, policy)).float().numpy()
                w.write_step(
                    e,
                    s,
                    image=v.image,
                    crop=v.crop,
                    flip=v.flip,
                    mix_partner=v.mix_partner,
                    mix_lambda=v.mix_lambda,
                    mix_box=v.mix_box,
                    logits=z,
                )
        info = store_info(path)
        log(
            f"  {name} {sampler} seed {seed}: {info['records']} records, {info['bytes_per_record']:.3f} B/record "
            f"({time.perf_counter() - t0:.0f} s)"
        )
        bb = info["bytes_by_field"]
        rows.append(
            {
                "store": name,
                "sampler": sampler,
                "seed": seed,
                "records": info["records"],
                "file": info["file_bytes"],
                "bpr": info["bytes_per_record"],
                "label": info["label_payload_bytes"],
                "views": sum(bb.get(f"column.{c}", 0) for c in ("image", "crop", "flip", "mix_partner")),
                "tables": bb.get("step_tables", 0) + bb.get("image_sizes", 0) + bb.get("chunk_index", 0),
                "header": bb.get("header", 0),
                "overhead": info["container_overhead_bytes"],
            }
        )
    return rows


def view_stats(views_list, sizes) -> dict:
    """Statistics of what a sampler decided over a run's views (the label payload follows from them).

    Crop area as a fraction of the image, log aspect (width/height of the crop in pixels), the
    share of views whose crop is the whole image (RandomResizedCrop's fallback on square images,
    or a draw of scale 1), flip rate, and λ and the CutMix box's share of the view per step.
    """
    crop = np.concatenate([v.crop for v in views_list]).astype(np.float64)
    img = np.concatenate([v.image for v in views_list])
    hw = np.asarray(sizes, dtype=np.float64)[img]
    area = crop[:, 2] * crop[:, 3]
    aspect = np.log((crop[:, 3] * hw[:, 1]) / (crop[:, 2] * hw[:, 0]))
    lam = np.array([v.mix_lambda for v in views_list])
    box = np.array([v.mix_box for v in views_list], dtype=np.float64)
    size = max(1.0, float(box[:, 2:].max()))  # the view side S bounds every box; an estimate is enough here
    pasted = (box[:, 2] - box[:, 0]) * (box[:, 3] - box[:, 1]) / size**2
    return {
        "views": len(crop),
        "area": area,
        "aspect": aspect,
        "whole": float(np.mean(area >= 0.999999)),
        "flip": float(np.mean(np.concatenate([v.flip for v in views_list]))),
        "lambda": lam,
        "pasted": pasted,
    }


def relabel_seeds(name, iset, teacher, classes, size, batch, epochs, seeds, ks, out_dir, log):
    """Relabel ``iset`` once per (sampler, seed) into a dense fp32 store, then quantize each to top-k.

    The top-k stores are written by ``lplabel quantize --topk K`` (the CLI, as a user would), in
    the default lossless layout (planes) and ``--layout rans``; bytes/record come from
    ``lplabel info``'s accounting (:func:`store_info`). Returns the rows and each run's view stats.
    """
    import subprocess

    import torch

    from lplabel.views.replay import render_step

    rows, stats = [], {}
    sizes = iset.sizes()
    n_steps = len(iset) // batch
    pairs = [(e, s) for e in range(epochs) for s in range(n_steps)]
    env = {**__import__("os").environ, "PYTHONPATH": str(REPO)}
    for seed in seeds:
        for sampler in (SAMPLER_V1, SAMPLER_V2):  # interleaved: load changes hit both samplers alike
            policy = AugmentPolicy(size, mix="cutmix", sampler=sampler)
            src = out_dir / f"{name}-{sampler}-seed{seed}-dense.lpl"
            t0 = time.perf_counter()
            views = []
            with (
                StoreWriter(
                    src,
                    num_classes=classes,
                    images=iset,
                    batch_size=batch,
                    epochs=epochs,
                    drop_last=True,
                    augmentation=policy.to_json(),
                    seed=seed,
                    overwrite=True,
                    steps_per_chunk=16,
                    teacher={"description": name, "checksum": None, "temperature": 1.0},
                    label_codecs=preset_chain("planes", values="fp32", level=3),
                    derived_views=sizes,
                ) as w,
                torch.inference_mode(),
            ):
                for e, s, v in plan_steps(seed, pairs, sizes, batch, policy, drop_last=True):
                    views.append(v)
                    x = render_step(iset.images, v, policy).contiguous(memory_format=torch.channels_last)
                    z = teacher(x).float().numpy()
                    w.write_step(
                        e,
                        s,
                        image=v.image,
                        crop=v.crop,
                        flip=v.flip,
                        mix_partner=v.mix_partner,
                        mix_lambda=v.mix_lambda,
                        mix_box=v.mix_box,
                        logits=z,
                    )
            stats[(sampler, seed)] = view_stats(views, sizes)
            log(
                f"  {name} {sampler} seed {seed}: relabelled {len(views) * batch} views "
                f"({time.perf_counter() - t0:.0f} s)"
            )
            for k in ks:
                for layout in ("planes", "rans"):
                    out = out_dir / f"{name}-{sampler}-seed{seed}-top{k}-{layout}.lpl"
                    subprocess.run(
                        [
                            sys.executable,
                            "-m",
                            "lplabel",
                            "quantize",
                            str(src),
                            "-o",
                            str(out),
                            "--topk",
                            str(k),
                            "--force",
                        ]
                        + (["--layout", "rans"] if layout == "rans" else []),
                        check=True,
                        env=env,
                        stdout=subprocess.DEVNULL,
                    )
                    info = store_info(out)
                    rows.append(
                        {
                            "store": f"top{k} {layout}",
                            "sampler": sampler,
                            "seed": seed,
                            "records": info["records"],
                            "file": info["file_bytes"],
                            "bpr": info["bytes_per_record"],
                            "label": info["label_payload_bytes"],
                        }
                    )
                    out.unlink()
                    log(f"    top{k} {layout}: {info['bytes_per_record']:.3f} B/record")
            src.unlink()
    return rows, stats


def seeds_report(rows, stats, seeds) -> list:
    """Per store kind: each sampler's mean ± spread of bytes/record over seeds, and the verdict."""
    lines = ["| store | sampler | B/record per seed | mean | sd (n-1) | range |", "|---|---|---|---|---|---|"]
    verdicts = []
    for store in dict.fromkeys(r["store"] for r in rows):
        means = {}
        for sampler in (SAMPLER_V1, SAMPLER_V2):
            b = np.array([r["bpr"] for r in rows if r["store"] == store and r["sampler"] == sampler])
            means[sampler] = b
            lines.append(
                f"| {store} | {sampler} | {' / '.join(f'{x:.3f}' for x in b)} | {b.mean():.3f} | "
                f"{b.std(ddof=1) if len(b) > 1 else 0:.3f} | {b.max() - b.min():.3f} |"
            )
        b1, b2 = means[SAMPLER_V1], means[SAMPLER_V2]
        # paired by seed is meaningless (different samplers, unrelated views), so compare as two samples
        diff = b2.mean() - b1.mean()
        se = np.sqrt(b1.var(ddof=1) / len(b1) + b2.var(ddof=1) / len(b2)) if len(b1) > 1 else float("nan")
        inside = b2.min() <= b1.max() and b1.min() <= b2.max()
        verdicts.append(
            f"* {store}: v2/v1 {b2.mean() / b1.mean():.4f} (difference {diff:+.3f} B/record, "
            f"{diff / se if se else float('nan'):+.1f} standard errors); v1 seed range "
            f"{b1.min():.3f}-{b1.max():.3f}, v2 {b2.min():.3f}-{b2.max():.3f}: "
            f"{'ranges overlap' if inside else 'ranges DO NOT overlap'}"
        )
    if not stats:
        return lines + [""] + verdicts
    lines += (
        [""]
        + verdicts
        + [
            "",
            "View statistics of the same runs (what each sampler decided):",
            "",
            "| sampler | seed | views | mean crop area | sd area | mean log aspect | sd log aspect "
            "| whole-image crops | flips | steps | mean λ | sd λ | mean pasted share |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
    )
    for (sampler, seed), st in sorted(stats.items()):
        lines.append(
            f"| {sampler} | {seed} | {st['views']:,} | {st['area'].mean():.4f} | {st['area'].std():.4f} | "
            f"{st['aspect'].mean():+.4f} | {st['aspect'].std():.4f} | {st['whole']:.4f} | "
            f"{st['flip']:.4f} | {len(st['lambda'])} | {st['lambda'].mean():.4f} | "
            f"{st['lambda'].std():.4f} | {st['pasted'].mean():.4f} |"
        )
    return lines


def sampler_stats(n_steps: int, side: int = 64, batch: int = 50) -> list:
    """Both samplers' view statistics over many steps of square ``side``-px images (no teacher).

    Same policy as the seeds study; quantiles and the two-sample Kolmogorov-Smirnov distance D
    (with its p-value) per quantity, so a difference in what the samplers decide would show.
    """
    from scipy.stats import ks_2samp

    sizes = np.full((n_steps * batch, 2), side)
    st = {}
    for sampler in (SAMPLER_V1, SAMPLER_V2):
        pol = AugmentPolicy(side, mix="cutmix", sampler=sampler)
        views = [sample_step(7, 0, s, np.arange(s * batch, (s + 1) * batch), sizes, pol) for s in range(n_steps)]
        st[sampler] = view_stats(views, sizes)
        st[sampler]["cut_side"] = np.array([v.mix_box[2] - v.mix_box[0] for v in views], dtype=np.float64)
    lines = [
        f"| quantity ({n_steps:,} steps, {n_steps * batch:,} views of {side}×{side} images) | sampler | mean | "
        "5 % | 25 % | 50 % | 75 % | 95 % | KS D (p) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for q in ("area", "aspect", "lambda", "pasted"):
        a1, a2 = st[SAMPLER_V1][q], st[SAMPLER_V2][q]
        ks = ks_2samp(a1, a2)
        for sampler, a in ((SAMPLER_V1, a1), (SAMPLER_V2, a2)):
            qs = " | ".join(f"{x:.4f}" for x in np.quantile(a, (0.05, 0.25, 0.5, 0.75, 0.95)))
            tail = f"{ks.statistic:.4f} ({ks.pvalue:.2g})" if sampler == SAMPLER_V2 else ""
            lines.append(f"| {q} | {sampler} | {a.mean():.4f} | {qs} | {tail} |")
    for sampler in (SAMPLER_V1, SAMPLER_V2):
        lines.append(
            f"| whole-image crops / flips | {sampler} | {st[sampler]['whole']:.5f} / "
            f"{st[sampler]['flip']:.4f} | | | | | | |"
        )
    return lines


def sampler_times(repeats: int = 7):
    """Min-of-repeats seconds of v1, v2 compiled (numba, when available) and v2 numpy, interleaved."""
    from lplabel.views import v2 as views_v2

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
                    sample_step(1, rep, s, order[s * b : (s + 1) * b], sizes, pol)
                out.setdefault((form, f"step B={b}"), []).append((time.perf_counter() - t) / 10)
            out.setdefault((form, "epoch order N=50,000"), []).append(t_order)
    views_v2._KERNELS = compiled if compiled is not None else False
    return {k: min(v) for k, v in out.items()}


def times_table(times) -> list:
    lines = [
        "| what | v1 (numpy Generator) | v2 compiled (numba) | v2 numpy | v2 compiled / v1 | v2 numpy / v1 |",
        "|---|---|---|---|---|---|",
    ]
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
    ap.add_argument(
        "--tiny-seeds",
        type=int,
        default=0,
        metavar="S",
        help="only the Tiny-ImageNet seeds study: S seeds per sampler, top-10 and top-100, "
        "planes and rans (see --tiny-ipc, --tiny-epochs, --tiny-px)",
    )
    ap.add_argument("--tiny-seed0", type=int, default=0, help="first seed of the seeds study")
    ap.add_argument(
        "--tiny-merge",
        nargs="+",
        type=Path,
        default=None,
        metavar="JSON",
        help="only print the seeds report over the JSON files of earlier --tiny-seeds runs",
    )
    ap.add_argument("--tiny-ipc", type=int, default=5, help="images per class of the seeds study")
    ap.add_argument("--tiny-epochs", type=int, default=3, help="epochs of batch 50 of the seeds study")
    ap.add_argument(
        "--tiny-px",
        type=int,
        default=128,
        help="view side the seeds study renders and runs EfficientNet-Lite0 at (native: 224)",
    )
    ap.add_argument(
        "--view-stats",
        type=int,
        default=0,
        metavar="STEPS",
        help="only compare the samplers' view statistics over STEPS steps of 64-px images",
    )
    a = ap.parse_args(argv)
    import torch

    from lplabel.datasets import load_dataset
    from lplabel.teachers import load_teacher, train_teacher

    torch.set_num_threads(2)
    if a.times_only:
        print("\n".join(times_table(sampler_times(15))))
        return
    if a.tiny_merge:
        print("\n".join(tiny_merge(a.tiny_merge)))
        return
    if a.view_stats:
        print("\n".join(sampler_stats(a.view_stats)))
        return
    if a.tiny_seeds:
        return tiny_seeds_main(a, torch)
    a.work.mkdir(parents=True, exist_ok=True)
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    rows = []
    digits = load_dataset("digits", limit_per_class=10)
    log("digits: training the teacher")
    teacher = train_teacher(load_dataset("digits"), epochs=5 if a.quick else 15, seed=0).eval()
    rows += relabel_pair("digits-ipc10-top4", digits, teacher, 10, 8, 50, 20 if a.quick else 100, 4, a.work, log)
    tiny = load_dataset("tiny-imagenet", "train", limit_per_class=1)
    eff = load_teacher("efficientnet-lite0").eval()
    rows += relabel_pair(
        "tiny-imagenet-ipc1-effnetlite0-top10", tiny, eff, 1000, 224, 50, 1 if a.quick else 2, 10, a.work, log
    )
    times = sampler_times(3 if a.quick else 7)

    date = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"# View samplers v1 vs v2 ({date})",
        "",
        f"Machine: {describe_machine()}. Command: `PYTHONPATH=. python benchmarks/bench_views.py"
        f"{' --quick' if a.quick else ''}`.",
        "",
        "Derived stores (spec §1.4) of the same images, teacher, policy (RandomResizedCrop 0.08-1, flip, "
        "CutMix), seed and top-k label chain (`label_chain(k, fp16, layout=planes, level=19)`), one per sampler. "
        "Bytes as `lplabel info` counts them; `views` = the four view columns (derived: 0), `tables` = step "
        "tables + image sizes + chunk index.",
        "",
        "| store | sampler | seed | records | file B | B/record | label B | views B | tables B | header B | HDF5 B |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['store']} | {r['sampler']} | {r['seed']} | {r['records']:,} | {r['file']:,} | {r['bpr']:.3f} | "
            f"{r['label']:,} | {r['views']:,} | {r['tables']:,} | {r['header']:,} | {r['overhead']:,} |"
        )
    lines += [
        "",
        "v2 against v1 (ratio of bytes per record; < 1: v2 smaller). Other views give other logits, so "
        "the label payloads differ by chance; v1 with another seed shows how much:",
        "",
    ]
    for i in range(0, len(rows), 3):
        v1, v2, v1b = rows[i], rows[i + 1], rows[i + 2]
        lines.append(
            f"* {v1['store']}: v2/v1 {v2['bpr'] / v1['bpr']:.4f}; v1 seed 1 / v1 seed 0 "
            f"{v1b['bpr'] / v1['bpr']:.4f}; non-label bytes (everything the sampler decides) "
            f"{v1['file'] - v1['label']:,} (v1) -> {v2['file'] - v2['label']:,} (v2)"
        )
    lines += [
        "",
        "Sampler time (one process, min of interleaved repeats; the ratios are the numbers to read). "
        "lplabel runs v2 compiled when numba is importable (the `rans` extra), else the numpy form:",
        "",
    ]
    lines += times_table(times)
    text = "\n".join(lines) + "\n"
    print(text)
    if a.out:
        a.out.write_text(text)


def tiny_seeds_main(a, torch):
    """The Tiny-ImageNet seeds study (``--tiny-seeds S``): is v2's store larger beyond seed noise?"""
    from lplabel.datasets import load_dataset
    from lplabel.teachers import load_teacher

    a.work.mkdir(parents=True, exist_ok=True)
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    tiny = load_dataset("tiny-imagenet", "train", limit_per_class=a.tiny_ipc)
    eff = load_teacher("efficientnet-lite0").eval()
    eff.input_size = a.tiny_px  # the views are rendered at this side, so the teacher sees them unresized
    eff = eff.to(memory_format=torch.channels_last)
    seeds = list(range(a.tiny_seed0, a.tiny_seed0 + a.tiny_seeds))
    t0 = time.perf_counter()
    rows, stats = relabel_seeds(
        f"tiny-imagenet-ipc{a.tiny_ipc}", tiny, eff, 1000, a.tiny_px, 50, a.tiny_epochs, seeds, (10, 100), a.work, log
    )
    took = time.perf_counter() - t0
    date = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    argv = " ".join(sys.argv[1:])
    lines = [
        f"# View samplers v1 vs v2 on Tiny-ImageNet, {len(seeds)} seeds each ({date})",
        "",
        f"Machine: {describe_machine()}. Command: `PYTHONPATH=. python "
        f"benchmarks/bench_views.py {argv}` ({took / 60:.0f} min).",
        "",
        f"Tiny-ImageNet training images, {a.tiny_ipc} per class ({len(tiny):,} images, 64 px), {a.tiny_epochs} "
        f"epochs of batch 50 = {len(tiny) // 50 * 50 * a.tiny_epochs:,} records per store; policy "
        f"RandomResizedCrop 0.08-1 / 3:4-4:3, flip, CutMix, rendered at {a.tiny_px} px; teacher "
        f"EfficientNet-Lite0 (ImageNet-1K weights, C = 1000) run at {a.tiny_px}×{a.tiny_px}"
        f"{'' if a.tiny_px == 224 else ' instead of its native 224 (affordable on this shared CPU; for any side whose stride-2 inputs stay even, 64 and 128 included, its same-padding equals that at 224)'}. "
        "Per (sampler, seed): one dense fp32 store with derived view columns, then "
        "`lplabel quantize SRC -o OUT --topk K` (default: fp16, planes, index-delta, class order auto) and the "
        "same with `--layout rans`; B/record as `lplabel info` counts it (whole file / records).",
        "",
    ]
    lines += seeds_report(rows, stats, seeds)
    text = "\n".join(lines) + "\n"
    print(text)
    if a.out:
        a.out.write_text(text)
        dump = {
            "rows": rows,
            "stats": [
                {
                    "sampler": k[0],
                    "seed": k[1],
                    **{n: (v.tolist() if isinstance(v, np.ndarray) else v) for n, v in st.items()},
                }
                for k, st in stats.items()
            ],
        }
        a.out.with_suffix(".json").write_text(json.dumps(dump))


def tiny_merge(paths) -> list:
    """The seeds report over several ``--tiny-seeds`` runs (their ``--out`` JSON files) together."""
    rows, stats = [], {}
    for p in paths:
        d = json.loads(Path(p).read_text())
        rows += d["rows"]
        for st in d.get("stats", []):
            stats[(st["sampler"], st["seed"])] = {
                n: (np.asarray(v) if isinstance(v, list) else v) for n, v in st.items()
            }
    rows.sort(key=lambda r: (r["seed"], r["sampler"]))
    return seeds_report(rows, stats, sorted({r["seed"] for r in rows}))


if __name__ == "__main__":
    main()
