"""Student step time by label source: stored labels, a stored generator, the teacher online.

    python benchmarks/bench_label_sources.py [--dataset digits|cifar10] [--rounds 5] [--epochs 20]

Builds everything it measures with lplabel (a trained teacher, 10 random real images per class,
a relabelled dense fp16 store, a generator distilled from it at ``--budget``), then trains the
harness's student through ``ReplayLoader`` from each label source in turn, ``--epochs`` epochs per
source, interleaved over ``--rounds`` rounds (stored, generator, online, stored, ...), so each
ratio compares steps measured minutes apart on the same machine. Reports the median ms per
student step of each source, its ratio to stored labels (median of the per-round ratios), and the
label source's own forward time per step. Writes ``benchmarks/results/label-sources-<date>.md``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _train(store, images, source, recipe, epochs, seed=0):
    import torch

    from lplabel.experiment.harness.student import build_student
    from lplabel.memory_format import network_input
    from lplabel.torch import ReplayLoader, kl_div_loss

    loader = ReplayLoader(
        store, images, temperature=recipe.temperature, seed=seed, normalize="0-255", label_source=source
    )
    st_size = loader.dataset.policy.output_size
    model = build_student(recipe, loader.dataset.store.num_classes, images, st_size, seed)
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr)
    steps = 0
    t0 = time.perf_counter()
    for e in range(epochs):
        loader.set_epoch(e)
        for batch in loader:
            loss = kl_div_loss(model(network_input(batch.images)), batch.probs, batch.temperature)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            steps += 1
    secs = time.perf_counter() - t0
    src = loader.label_source.stats() if loader.label_source is not None else {}
    return 1000.0 * secs / steps, src.get("ms_per_step"), src.get("flops_per_view")


def main(argv=None) -> int:
    import torch

    from lplabel.codecs import default_label_codecs
    from lplabel.datasets import load_dataset
    from lplabel.experiment.harness.distill import random_real
    from lplabel.experiment.harness.sweep import profile_for
    from lplabel.relabel import run_relabel
    from lplabel.teachers import train_teacher
    from lplabel.testing import machine_info
    from lplabel.torch import OnlineTeacher, StoredGenerator, distill_generator

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="digits", choices=["digits", "cifar10"])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=20, help="student epochs per source and round")
    ap.add_argument("--budget", type=int, default=20000, help="generator budget in bytes")
    ap.add_argument("--results-dir", type=Path, default=REPO / "benchmarks" / "results")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    prof = profile_for(a.dataset)
    t = dict(prof.teacher)
    t.update(prof.quick.get("teacher", {}))
    limit = prof.quick.get("train_limit")
    train = load_dataset(a.dataset, "train", limit_per_class=limit)
    teacher = train_teacher(
        train,
        t["model"],
        epochs=int(prof.quick.get("teacher_epochs", t["epochs"])),
        batch_size=t["batch_size"],
        lr=t["lr"],
        seed=0,
        model_kwargs=t.get("model_kwargs") or {},
    ).eval()
    images = random_real(train, prof.ipc, seed=0)
    recipe = prof.recipe
    for k, v in prof.quick.get("recipe", {}).items():
        setattr(recipe, k, v)
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        store, gen = Path(tmp) / "full.lpl", Path(tmp) / "gen.lpl"
        rl = prof.relabel
        run_relabel(
            images,
            teacher,
            store,
            epochs=max(a.epochs, 1),
            batch_size=rl["batch_size"],
            crop_scale=tuple(rl["crop_scale"]),
            mix=rl["mix"],
            device="cpu",
            progress=False,
            label_codecs=default_label_codecs("dense", type="float16"),
            teacher_check=False,
        )
        distill_generator(store, images, gen, budget=a.budget, epochs=3 * a.epochs)
        sources = {"stored": (store, "column"), "generator": (gen, None), "online-teacher": (store, None)}
        times = {k: [] for k in sources}
        fwd = {k: [] for k in sources}
        flops = {}
        for r in range(a.rounds):
            for name, (path, src) in sources.items():
                source = (
                    OnlineTeacher(teacher)
                    if name == "online-teacher"
                    else (StoredGenerator() if name == "generator" else src)
                )
                ms, f_ms, fl = _train(path, images, source, recipe, a.epochs, seed=r)
                times[name].append(ms)
                if f_ms is not None:
                    fwd[name].append(f_ms)
                flops[name] = fl
                print(f"round {r}: {name:<15} {ms:7.2f} ms/step", flush=True)
        b = rl["batch_size"]
        for name in sources:
            ratios = [x / s for x, s in zip(times[name], times["stored"])]
            rows[name] = (
                statistics.median(times[name]),
                statistics.median(ratios),
                statistics.median(fwd[name]) if fwd[name] else None,
                None if not flops.get(name) else flops[name] * b / 1e9,
            )
    m = machine_info("cpu")
    date = _dt.datetime.now(_dt.timezone.utc)
    lines = [
        f"# Student step time by label source: {a.dataset}",
        "",
        f"- date: {date:%Y-%m-%d %H:%M} UTC; machine: {m.get('cpu') or m.get('processor')}, "
        f"{m['cpu_count']} CPU cores, no GPU (shared with other jobs); torch {m['torch']}, one thread",
        f"- command: `python benchmarks/bench_label_sources.py --dataset {a.dataset} --rounds {a.rounds} "
        f"--epochs {a.epochs} --budget {a.budget}`",
        f"- student {recipe.model} {recipe.model_kwargs}, batch {rl['batch_size']} views per step, "
        f"{a.epochs} epochs per source and round, {a.rounds} rounds interleaved",
        "",
        "| label source | student step (median ms) | vs stored (median of per-round ratios) | "
        "source forward per step (median ms) | source GFLOP per step |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, (ms, ratio, f_ms, gf) in rows.items():
        lines.append(
            f"| {name} | {ms:.2f} | x{ratio:.2f} | {'-' if f_ms is None else f'{f_ms:.2f}'} | "
            f"{'-' if gf is None or math.isnan(gf) else f'{gf:.4f}'} |"
        )
    a.results_dir.mkdir(parents=True, exist_ok=True)
    out = a.results_dir / f"label-sources-{a.dataset}-{date:%Y-%m-%d}.md"
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
