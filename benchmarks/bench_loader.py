"""Loader benchmarks: the label path against the legacy per-batch ``torch.load``, and a training step.

Usage::

    python benchmarks/bench_loader.py                 # full run, writes benchmarks/results/loader-<date>.md
    python benchmarks/bench_loader.py --quick         # fewer steps/repeats (smoke test)

1. **Label path** (no images): fetch + decode + collate one step's labels and view configs,
   through a stock ``DataLoader(batch_size=None)`` with 0 and 2 workers (persistent, after a
   warm-up pass), warm page cache. Same content both sides:

   * *LPLD content*: dense fp16 logits [128, 1000] per step. Legacy: one ``torch.save`` list per
     step in LPLD's format ``[coords f32 [B,4], flip bool [B], mix_index int64 [B], lam float,
     bbox list of 4 numpy ints, soft_label fp16 [B,C]]`` read with ``torch.load(weights_only=False)``
     (LPLD files need it: numpy ints in the bbox). lplabel: the same logits in a store with the
     default dense chain (fp16 | bytes | shuffle | zstd-3).
   * *LPQLD content*: top-100 fp16 logits + int16 indices per view (MR-100). Legacy: LPQLD's file
     ``[coords f16, flip, mix_index uint8, lam, bbox 4 uint8 tensors, values f16, indices i16]``.
     lplabel: a top-k store (topk k=100 fp16/uint16 | bytes | shuffle | zstd-3).

   Two outputs: ``stored`` (what is on disk, as tensors: the legacy list / ``labels="raw"``) and
   ``dense@T`` (probabilities [B, C] float32 at T=4 computed in the worker: legacy
   ``softmax(soft_label/T)`` resp. LPQLD's ``zeros.scatter(softmax(values/T))``; lplabel
   ``labels="dense"``). Each configuration runs ``--repeats`` timed passes over all steps,
   alternating with the legacy loader and the other stores of its group (all warmed up first);
   the best pass of each is reported (the machine is shared; the best pass is the least
   disturbed, and alternating makes load changes hit both sides alike).

2. **Training step**: a ConvNet-3 student (width 64, 32×32 views, C=1000, B=128, SGD) on CPU,
   images in memory, CutMix views rendered with lplabel.replay in both cases; labels either from
   lplabel's loader (store → dense probabilities at T) or precomputed in memory (a list of dense
   probability tensors). The two loops are interleaved step by step (paired differences), so
   the load of a shared machine affects both alike.

Teacher logits: real EfficientNet-Lite0 ImageNet-1K logits from ``out/bench-cache/
imagenet1k-effnetlite0.npz`` (benchmarks/teacher_data.py) when that cache exists, cycled over
the benchmark's steps; otherwise synthetic ``lplabel.testing.realistic_logits``. The report says
which.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lplabel import ImageSet, StoreWriter  # noqa: E402
from lplabel.codecs import default_label_codecs  # noqa: E402
from lplabel.images import ImageIndex  # noqa: E402
from lplabel.torch import ReplayLoader, StepDataset, StepSampler, kl_div_loss  # noqa: E402
from lplabel.views import AugmentPolicy, plan_steps  # noqa: E402

WORK = REPO / "out" / "bench-loader"
REAL_CACHE = REPO / "out" / "bench-cache" / "imagenet1k-effnetlite0.npz"
B, C, K, T = 128, 1000, 100, 4.0


# ---------------------------------------------------------------------------------------- content
def teacher_logits(n_rows: int, seed: int = 0):
    """(logits float32 [n_rows, C], description)."""
    if REAL_CACHE.exists():
        z = np.load(REAL_CACHE)["logits"].astype(np.float32).reshape(-1, C)
        reps = -(-n_rows // len(z))
        return np.tile(z, (reps, 1))[:n_rows], (f"real: EfficientNet-Lite0 ImageNet-1K logits on Tiny-ImageNet "
                                                f"views ({len(z)} distinct rows from {REAL_CACHE.name}, cycled)")
    from lplabel.testing import realistic_logits

    rng = np.random.default_rng(seed)
    return realistic_logits(rng, n_rows, C), "synthetic: lplabel.testing.realistic_logits (N(0,1.5) + one peak of 4..10)"


def build_content(steps: int, n_images: int, seed: int = 0):
    policy = AugmentPolicy(output_size=32, mix="cutmix")
    sizes = np.tile(np.array([[64, 64]]), (n_images, 1))
    spe = n_images // B
    pairs = [(e, s) for e in range(-(-steps // spe)) for s in range(spe)][:steps]
    views = [v for _, _, v in plan_steps(seed, pairs, sizes, B, policy, drop_last=True)]
    logits, how = teacher_logits(steps * B, seed)
    return policy, pairs, views, logits.reshape(steps, B, C), how


def write_legacy(folder: Path, pairs, views, logits, kind: str):
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for i, ((e, s), v, z) in enumerate(zip(pairs, views, logits)):
        zt = torch.from_numpy(z)
        if kind == "lpld":
            rec = [torch.from_numpy(v.crop.copy()), torch.from_numpy(v.flip.copy()),
                   torch.from_numpy(v.mix_partner.astype(np.int64)), float(v.mix_lambda),
                   [np.int64(x) for x in v.mix_box], zt.half()]
        else:
            vals, idx = torch.topk(zt, K, dim=1)
            rec = [torch.from_numpy(v.crop.copy()).half(), torch.from_numpy(v.flip.copy()),
                   torch.from_numpy(v.mix_partner.astype(np.uint8)), float(v.mix_lambda),
                   [torch.tensor(int(x), dtype=torch.uint8) for x in v.mix_box], vals.half(), idx.short()]
        p = folder / f"batch_{i}.tar"
        torch.save(rec, p)
        files.append(str(p))
    return files


def write_store(path: Path, pairs, views, logits, kind: str, n_images: int, steps_per_chunk: int = 1,
                plain: bool = False):
    if plain:  # no byte shuffle, no zstd: what the loader costs without entropy decoding
        from lplabel.codecs.bytes import Bytes
        from lplabel.codecs.dense import Dense

        codecs = [Dense("float16"), Bytes()]
    else:
        codecs = default_label_codecs("dense") if kind == "dense" else default_label_codecs("topk", k=K)
    idx = ImageIndex([str(i) for i in range(n_images)], np.arange(n_images) % C)
    with StoreWriter(path, num_classes=C, images=idx, batch_size=B, epochs=max(e for e, _ in pairs) + 1,
                     drop_last=True, label_codecs=codecs, steps_per_chunk=steps_per_chunk,
                     augmentation=AugmentPolicy(output_size=32, mix="cutmix").to_json(), overwrite=True) as w:
        for (e, s), v, z in zip(pairs, views, logits):
            w.write_step(e, s, image=v.image, crop=v.crop, flip=v.flip, mix_partner=v.mix_partner,
                         mix_lambda=v.mix_lambda, mix_box=v.mix_box, logits=z)
    return path


# ---------------------------------------------------------------------------------------- legacy
class LegacyDataset(torch.utils.data.Dataset):
    """The legacy label path: one ``torch.load`` per step (what the patched fetcher does)."""

    def __init__(self, files, kind: str, dense: bool):
        self.files, self.kind, self.dense = files, kind, dense

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        rec = torch.load(self.files[i], weights_only=False)
        if self.dense:
            if self.kind == "lpld":
                rec[5] = torch.softmax(rec[5].float() / T, dim=1)
            else:
                p = torch.softmax(rec[5].float() / T, dim=1)
                rec = rec[:5] + [torch.zeros(len(p), C).scatter_(1, rec[6].long(), p)]
        return rec


def _time_loaders(makers: dict, n_steps: int, repeats: int) -> dict:
    """Best seconds per pass over ``n_steps`` items for each loader.

    All loaders are built and warmed up first (workers started, page cache filled); then the
    timed passes alternate between them, so a change in machine load hits all of them alike.
    """
    loaders = {k: make() for k, make in makers.items()}
    for lo in loaders.values():
        for _ in lo:
            pass
    best = {k: float("inf") for k in loaders}
    for _ in range(repeats):
        for k, lo in loaders.items():
            t = time.perf_counter()
            n = 0
            for _ in lo:
                n += 1
            best[k] = min(best[k], time.perf_counter() - t)
            assert n == n_steps, (k, n, n_steps)
    del loaders
    return best


def label_path(args, content, log):
    policy, pairs, views, logits, how = content
    n = len(pairs)
    rows = []
    for kind, legacy_kind in (("dense", "lpld"), ("topk", "lpqld")):
        files = write_legacy(WORK / f"legacy-{legacy_kind}", pairs, views, logits, legacy_kind)
        legacy_bytes = sum(os.path.getsize(f) for f in files)
        stores = {str(spc): write_store(WORK / f"{kind}-spc{spc}.lpl", pairs, views, logits, kind, args.images, spc)
                  for spc in (1, 8)}
        if kind == "dense":
            stores["1, plain"] = write_store(WORK / "dense-plain.lpl", pairs, views, logits, kind, args.images, 1,
                                             plain=True)
        for fmt in ("stored", "dense@T"):
            for workers in args.workers:
                wkw = dict(num_workers=workers)
                if workers:
                    wkw.update(persistent_workers=True, prefetch_factor=4)

                def legacy():
                    ds = LegacyDataset(files, legacy_kind, fmt != "stored")
                    return torch.utils.data.DataLoader(ds, batch_size=None, shuffle=False, **wkw)

                def ours(path):
                    ds = StepDataset(path, None, labels="raw" if fmt == "stored" else "dense", temperature=T)
                    sampler = StepSampler(ds.store, reuse="order", steps_per_epoch=n, temperature=T)
                    return torch.utils.data.DataLoader(ds, batch_size=None, sampler=sampler, **wkw)

                makers = {"legacy": legacy, **{spc: (lambda p=path: ours(p)) for spc, path in stores.items()}}
                best = _time_loaders(makers, n, args.repeats)
                t_leg = best["legacy"]
                for spc, path in stores.items():
                    t_our = best[spc]
                    row = dict(content="LPLD dense fp16" if kind == "dense" else f"LPQLD top-{K}", output=fmt,
                               workers=workers, spc=spc, legacy_sps=n / t_leg, ours_sps=n / t_our,
                               ratio=t_leg / t_our, legacy_bytes=legacy_bytes / n, store_bytes=path.stat().st_size / n)
                    rows.append(row)
                    log(f"  {row['content']:16s} {fmt:8s} workers={workers} spc={spc}: legacy {row['legacy_sps']:8.0f}"
                        f" steps/s, lplabel {row['ours_sps']:8.0f} steps/s, x{row['ratio']:.2f}")
        shutil.rmtree(WORK / f"legacy-{legacy_kind}", ignore_errors=True)
    return rows


def decode_breakdown(args, log):
    """Where one step's time goes in-process (µs): pread+crc, codec chain stages, reconstruct."""
    from lplabel.store import LabelStore
    from lplabel.store import layout as L

    out = []
    for kind in ("dense", "topk"):
        st = LabelStore(WORK / f"{kind}-spc1.lpl")
        pipe = st.pipelines["label"]
        n = min(st.num_steps, 64)
        raw = [st.read_chunk_bytes("label", c) for c in range(n)]
        t0 = time.perf_counter()
        for c in range(n):
            st.read_chunk_bytes("label", c)
        t_read = (time.perf_counter() - t0) / n
        stages = {}
        cs = st.tables[L.CHUNK_STEP_START]
        for c in range(n):
            data = raw[c]
            for codec in reversed(pipe.bytes_bytes):
                t0 = time.perf_counter()
                data = codec.decode(data)
                stages[codec.name] = stages.get(codec.name, 0.0) + time.perf_counter() - t0
            t0 = time.perf_counter()
            nrec = int(st.record_start[cs[c + 1]] - st.record_start[cs[c]])
            block = pipe.array_bytes.decode(data, pipe.stored_spec, nrec)
            for i in range(len(pipe.array_array) - 1, -1, -1):
                block = pipe.array_array[i].decode(block, pipe._specs[i])
            stages["array"] = stages.get("array", 0.0) + time.perf_counter() - t0
        ds = StepDataset(st, None, labels="raw")
        t0 = time.perf_counter()
        for i in range(n):
            b = ds[i]
        t_item = (time.perf_counter() - t0) / n
        t0 = time.perf_counter()
        for i in range(n):
            b.dense(temperature=T)
        t_dense = (time.perf_counter() - t0) / n
        row = {"store": kind, "pread+crc": t_read * 1e6, **{k: v / n * 1e6 for k, v in stages.items()},
               "item (raw)": t_item * 1e6, "dense@T": t_dense * 1e6}
        out.append(row)
        log("  " + ", ".join(f"{k} {v:.0f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()))
    return out


# ---------------------------------------------------------------------------------------- training
class InMemoryLabels(torch.utils.data.Dataset):
    """Baseline: the same rendered+mixed views, labels precomputed in memory (dense probs at T)."""

    def __init__(self, bank, policy, views, probs):
        self.bank, self.policy, self.views, self.probs = bank, policy, views, probs

    def __len__(self):
        return len(self.views)

    def __getitem__(self, i):
        from lplabel.replay import render_step

        return render_step(self.bank, self.views[i], self.policy), self.probs[i]


def training(args, content, log):
    """Paired, interleaved timing: each round runs one lplabel step and one in-memory step, in
    alternating order, on the same model, so load changes on a shared machine hit both alike."""
    from lplabel.models import convnet
    from lplabel.replay import ImageBank

    policy, pairs, views, logits, how = content
    n = min(len(pairs), args.train_steps)
    rng = np.random.default_rng(1)
    imgs = rng.integers(0, 256, (args.images, 64, 64, 3), dtype=np.uint8)
    iset = ImageSet(imgs, np.arange(args.images) % C, [str(i) for i in range(args.images)])
    path = WORK / "train.lpl"
    with StoreWriter(path, num_classes=C, images=iset, batch_size=B, epochs=max(e for e, _ in pairs[:n]) + 1,
                     drop_last=True, augmentation=policy.to_json(), overwrite=True) as w:
        for (e, s), v, z in zip(pairs[:n], views[:n], logits[:n]):
            w.write_step(e, s, image=v.image, crop=v.crop, flip=v.flip, mix_partner=v.mix_partner,
                         mix_lambda=v.mix_lambda, mix_box=v.mix_box, logits=z)
    probs = [torch.softmax(torch.from_numpy(z).half().float() / T, 1) for z in logits[:n]]
    bank = ImageBank(imgs)
    results = {}
    for workers in args.train_workers:
        wkw = dict(num_workers=workers)
        if workers:
            wkw.update(persistent_workers=True)
        ours = ReplayLoader(path, iset, temperature=T, reuse="order", steps_per_epoch=n, **wkw)
        base = torch.utils.data.DataLoader(InMemoryLabels(bank, policy, views[:n], probs), batch_size=None, **wkw)
        torch.manual_seed(0)
        model = convnet(num_classes=C, width=args.width, depth=3, image_size=32)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

        def train_step(images, p):
            out = model((images - 127.5) / 64.0)
            loss = kl_div_loss(out, p, T)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        t_ours, t_base = [], []
        for rnd in range(args.rounds + 1):  # round 0 warms up (workers, allocator, page cache)
            it_o, it_b = iter(ours), iter(base)
            for i in range(n):
                for which in ((0, 1) if (i + rnd) % 2 == 0 else (1, 0)):
                    t = time.perf_counter()
                    if which == 0:
                        x = next(it_o)
                        train_step(x.images, x.probs)
                    else:
                        images, p = next(it_b)
                        train_step(images, p)
                    if rnd:
                        (t_ours if which == 0 else t_base).append(time.perf_counter() - t)
            for it in (it_o, it_b):
                for _ in it:
                    pass
        to, tb = np.array(t_ours), np.array(t_base)
        d = to - tb
        res = dict(ours=to.mean(), base=tb.mean(), ours_med=float(np.median(to)), base_med=float(np.median(tb)),
                   diff=d.mean(), diff_se=d.std(ddof=1) / np.sqrt(len(d)), n=len(d))
        results[workers] = res
        log(f"  workers={workers}: lplabel {res['ours']*1e3:.1f} ms/step, in-memory {res['base']*1e3:.1f} ms/step, "
            f"paired difference {res['diff']*1e3:+.2f} ± {res['diff_se']*1e3:.2f} ms "
            f"({100*res['diff']/res['base']:+.2f} %), n={res['n']}")
    return results


# ---------------------------------------------------------------------------------------- report
def machine(load_start: str = "?") -> str:
    cpu = platform.processor() or ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = f", load average (1/5/15 min) at the start {load_start}"
    return (f"{cpu}, {os.cpu_count()} cores{load}; Linux {platform.release()}; Python {platform.python_version()}, "
            f"torch {torch.__version__}, numpy {np.__version__}; no GPU")


def _load() -> str:
    try:
        return "{:.1f} / {:.1f} / {:.1f}".format(*os.getloadavg())
    except OSError:
        return "?"


NOTES = """
### Reading these numbers

- The machine is shared with other jobs (see the load averages above: a load of 4 on 2 cores
  means each process gets about half a core). Every configuration is the best of the timed
  passes, but rows measured minutes apart still see different load; compare ratios, not rows.
- With workers, a step must cross from a worker to the main process. PyTorch sends every CPU
  tensor through its own shared-memory segment and passes a file descriptor for it over a
  socket (about a millisecond each here); the legacy record holds 4 to 6 tensors. lplabel's
  StepBatch packs its tensors up to 1 MiB into one buffer pickled by value, so a step is one
  message. This, not decoding, is where most of the worker-mode gain comes from.
- `dense@T` with workers moves float32 probabilities [128, 1000] (512 KB) per step between
  processes; on a GPU, `ReplayLoader(labels_on="device")` ships the stored block instead and
  reconstructs after the copy.
- spc=8 (eight steps per stored chunk) helps a single process reading in order, but with W
  workers each worker reads every W-th step and so decodes every chunk: use spc=1 (the
  writer's default) with workers, and for the LPLD/LPQLD schedules, which read in random order.
- In-process, the dense store's time is mostly the codec chain (zstd on nearly incompressible
  fp16 logits, byte shuffle); the `plain` chain (no shuffle, no zstd, still checksummed) shows
  the loader's own cost.
"""


def report(args, how, rows, breakdown, train, started, load_start) -> str:
    cmd = "python benchmarks/bench_loader.py " + " ".join(sys.argv[1:])
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    except OSError:
        rev = "?"
    lines = [f"# Loader benchmark, {started:%Y-%m-%d}", "",
             f"- machine: {machine(load_start)}",
             f"- date: {started:%Y-%m-%d %H:%M} UTC; commit {rev} (+ working tree)",
             f"- command: `{cmd}`",
             f"- content: {len(rows) and args.steps} steps of B={B} views, C={C}; teacher logits {how}",
             f"- load average (1/5/15 min) at the end: {_load()}",
             "- page cache warm; torch intra-op threads: 1 (workers always use 1; set in the main process too)",
             "", "## 1. Label path (no images): steps/s through DataLoader(batch_size=None)", "",
             "spc = steps per stored chunk; \"plain\" = label chain `dense fp16 | bytes` (no shuffle, no zstd; "
             "checksummed). ratio = lplabel steps/s ÷ legacy steps/s (higher is better).", "",
             "| content | output | workers | spc | legacy steps/s | lplabel steps/s | ratio | legacy B/step on disk | store B/step |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['content']} | {r['output']} | {r['workers']} | {r['spc']} | {r['legacy_sps']:.0f} | "
                     f"{r['ours_sps']:.0f} | {r['ratio']:.2f} | {r['legacy_bytes']:.0f} | {r['store_bytes']:.0f} |")
    lines += NOTES.split("\n")
    lines += ["", "### In-process breakdown of one step (µs, spc=1)", ""]
    keys = sorted({k for b in breakdown for k in b if k != "store"}, key=lambda k: list(breakdown[0]).index(k)
                  if k in breakdown[0] else 99)
    lines.append("| store | " + " | ".join(keys) + " |")
    lines.append("|---" * (len(keys) + 1) + "|")
    for b in breakdown:
        lines.append(f"| {b['store']} | " + " | ".join(f"{b.get(k, float('nan')):.0f}" for k in keys) + " |")
    lines += ["", "## 2. Student training step (CPU), lplabel loader vs labels precomputed in memory", "",
              f"ConvNet-3 (width {args.width}, instance norm) on 32x32 CutMix views rendered from in-memory uint8 "
              f"64x64 images, B={B}, C={C}, KL at T={T}, SGD, 1 torch thread; {args.train_steps} steps x "
              f"{args.rounds} rounds, the two loops interleaved step by step (paired). Time per step = fetch + "
              "forward + backward + update, measured in the training loop.", "",
              "| workers | lplabel ms/step (mean / median) | in-memory ms/step (mean / median) | paired difference | relative |",
              "|---|---|---|---|---|"]
    for w, r in train.items():
        lines.append(f"| {w} | {r['ours']*1e3:.1f} / {r['ours_med']*1e3:.1f} | {r['base']*1e3:.1f} / "
                     f"{r['base_med']*1e3:.1f} | {r['diff']*1e3:+.2f} ± {r['diff_se']*1e3:.2f} ms (n={r['n']}) | "
                     f"{100*r['diff']/r['base']:+.2f} % |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=96)
    ap.add_argument("--images", type=int, default=1536)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    ap.add_argument("--train-steps", type=int, default=24)
    ap.add_argument("--train-workers", type=int, nargs="+", default=[0, 2])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--width", type=int, default=64, help="student ConvNet width")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--skip-train", action="store_true")
    ap.add_argument("--out", default=None, help="report path (default benchmarks/results/loader-<date>.md)")
    args = ap.parse_args(argv)
    if args.quick:
        args.steps, args.repeats, args.train_steps, args.rounds = 24, 2, 6, 1
    torch.set_num_threads(1)
    started = _dt.datetime.now(_dt.timezone.utc)
    load_start = _load()
    WORK.mkdir(parents=True, exist_ok=True)
    content = build_content(args.steps, args.images)
    print(f"teacher logits: {content[4]}")
    print("label path:")
    rows = label_path(args, content, print)
    print("breakdown (µs per step, in-process):")
    breakdown = decode_breakdown(args, print)
    train = {}
    if not args.skip_train:
        print("training step:")
        train = training(args, content, print)
    text = report(args, content[4], rows, breakdown, train, started, load_start)
    out = Path(args.out) if args.out else REPO / "benchmarks" / "results" / f"loader-{started:%Y-%m-%d}.md"
    if not args.quick or args.out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        print(f"wrote {out}")
    else:
        print(text)


if __name__ == "__main__":
    main()
