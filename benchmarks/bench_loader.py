"""Loader benchmarks: the label path against the legacy per-batch ``torch.load``, and a training step.

Usage::

    python benchmarks/bench_loader.py                 # full run, writes benchmarks/results/loader-<date>.md
    python benchmarks/bench_loader.py --quick         # fewer steps/repeats (smoke test)

1. **Label path** (no images): fetch + decode + collate one step's labels and view configs,
   through a stock ``DataLoader(batch_size=None)`` (legacy) and ``ReplayLoader(store, None)``
   (lplabel, which wraps one), with 0 and 2 workers (persistent, prefetch factor 4, after a
   warm-up pass), warm page cache, one batch per step handed to the loop on both sides. Same
   content both sides:

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
   ``labels="dense"``). lplabel runs in several configurations: its defaults (steps grouped per
   DataLoader item, shared-memory hand-over from forked workers), the loader as it was before
   grouping (one step per item, pickled), the defaults without shared memory, with a prefetch
   thread (0 workers), and on stores with 8 steps per chunk or without shuffle/zstd. Each
   configuration runs ``--repeats`` timed passes over all steps, alternating with the legacy
   loader and the other configurations (all warmed up first); the best pass of each is reported
   (the machine is shared; the best pass is the least disturbed, and alternating makes load
   changes hit both sides alike).

   The label-path section ends with **floors**: what one step costs at least in one process
   (the legacy step; reading and copying the same bytes; pread, CRC-32, zstd, unshuffle and the
   softmax at T that lplabel cannot skip) and what that implies for the 20x target.

2. **Training step**: a ConvNet-3 student (width 64, 32×32 views, C=1000, B=128, SGD) on CPU,
   images in memory, CutMix views rendered with lplabel.views.replay in both cases; labels either from
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
import shutil
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lplabel import ImageSet, StoreWriter  # noqa: E402
from lplabel.codecs import preset_chain  # noqa: E402
from lplabel.images import ImageIndex  # noqa: E402
from lplabel.torch import ReplayLoader, StepDataset, kl_div_loss  # noqa: E402
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
        return np.tile(z, (reps, 1))[:n_rows], (
            f"real: EfficientNet-Lite0 ImageNet-1K logits on Tiny-ImageNet "
            f"views ({len(z)} distinct rows from {REAL_CACHE.name}, cycled)"
        )
    from lplabel.testing import realistic_logits

    rng = np.random.default_rng(seed)
    return realistic_logits(
        rng, n_rows, C
    ), "synthetic: lplabel.testing.realistic_logits (N(0,1.5) + one peak of 4..10)"


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
            rec = [
                torch.from_numpy(v.crop.copy()),
                torch.from_numpy(v.flip.copy()),
                torch.from_numpy(v.mix_partner.astype(np.int64)),
                float(v.mix_lambda),
                [np.int64(x) for x in v.mix_box],
                zt.half(),
            ]
        else:
            vals, idx = torch.topk(zt, K, dim=1)
            rec = [
                torch.from_numpy(v.crop.copy()).half(),
                torch.from_numpy(v.flip.copy()),
                torch.from_numpy(v.mix_partner.astype(np.uint8)),
                float(v.mix_lambda),
                [torch.tensor(int(x), dtype=torch.uint8) for x in v.mix_box],
                vals.half(),
                idx.short(),
            ]
        p = folder / f"batch_{i}.tar"
        torch.save(rec, p)
        files.append(str(p))
    return files


def rans_chain(logits) -> list:
    """LPQLD's top-K content in the smallest lossless layout (``--layout rans``): class order and
    rANS model learnt from the labels, as ``lplabel encode`` does."""
    from lplabel.codecs import Field, learn_label_chain

    return learn_label_chain(
        [{"logits": z} for z in logits],
        (Field("logits", "float32", (C,)),),
        num_classes=C,
        k=K,
        layout="rans",
        class_order="cooccurrence",
    )


def write_store(
    path: Path,
    pairs,
    views,
    logits,
    kind: str,
    n_images: int,
    steps_per_chunk: int = 1,
    plain: bool = False,
    rans: bool = False,
):
    if plain:  # no byte shuffle, no zstd: what the loader costs without entropy decoding
        from lplabel.codecs.bytes import Bytes
        from lplabel.codecs.dense import Dense

        codecs = [Dense("float16"), Bytes()]
    elif rans:
        codecs = rans_chain(logits)
    else:
        codecs = preset_chain("plain", k=None if kind == "dense" else K)
    idx = ImageIndex([str(i) for i in range(n_images)], np.arange(n_images) % C)
    with StoreWriter(
        path,
        num_classes=C,
        images=idx,
        batch_size=B,
        epochs=max(e for e, _ in pairs) + 1,
        drop_last=True,
        label_codecs=codecs,
        steps_per_chunk=steps_per_chunk,
        augmentation=AugmentPolicy(output_size=32, mix="cutmix").to_json(),
        overwrite=True,
    ) as w:
        for (e, s), v, z in zip(pairs, views, logits):
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


def _time_loaders(makers: dict, n_steps: int, repeats: int):
    """Best seconds per pass over ``n_steps`` steps for each loader, and the loaders.

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
    return best, loaders


#: lplabel loader configurations of the label-path table: (name, store, ReplayLoader options).
#: "1 step/item, pickled" hands steps over as the loader did before grouping: one step per
#: DataLoader item, pickled through the worker pipe (with today's decoding).
def _configs(kind: str, workers: int):
    out = [
        (
            "1 step/item" + (", pickled (hand-over as before grouping)" if workers else ""),
            "1",
            dict(steps_per_item=1, shared_memory=False),
        ),
        ("default", "1", {}),
        ("default", "8", {}),
    ]
    if kind == "dense":
        out.append(("default", "1, plain", {}))
    else:
        out.append(("default", "8, rans", {}))
    if workers == 0:
        out.append(("default + 1 prefetch thread", "1", dict(prefetch_threads=1)))
    else:
        out.append(("default, pickled (no shared memory)", "1", dict(shared_memory=False)))
    return out


def label_path(args, content, log):
    policy, pairs, views, logits, how = content
    n = len(pairs)
    rows = []
    for kind, legacy_kind in (("dense", "lpld"), ("topk", "lpqld")):
        files = write_legacy(WORK / f"legacy-{legacy_kind}", pairs, views, logits, legacy_kind)
        legacy_bytes = sum(os.path.getsize(f) for f in files)
        stores = {
            str(spc): write_store(WORK / f"{kind}-spc{spc}.lpl", pairs, views, logits, kind, args.images, spc)
            for spc in (1, 8)
        }
        if kind == "dense":
            stores["1, plain"] = write_store(
                WORK / "dense-plain.lpl", pairs, views, logits, kind, args.images, 1, plain=True
            )
        else:
            stores["8, rans"] = write_store(
                WORK / "topk-rans.lpl", pairs, views, logits, kind, args.images, 8, rans=True
            )
        for fmt in ("stored", "dense@T"):
            for workers in args.workers:
                wkw = dict(num_workers=workers)
                if workers:
                    wkw.update(persistent_workers=True, prefetch_factor=4)

                def legacy():
                    ds = LegacyDataset(files, legacy_kind, fmt != "stored")
                    return torch.utils.data.DataLoader(ds, batch_size=None, shuffle=False, **wkw)

                def ours(path, kw):
                    return ReplayLoader(
                        path,
                        None,
                        labels="raw" if fmt == "stored" else "dense",
                        temperature=T,
                        reuse="order",
                        steps_per_epoch=n,
                        **wkw,
                        **kw,
                    )

                configs = _configs(kind, workers)
                makers = {"legacy": legacy}
                for i, (_, spc, kw) in enumerate(configs):
                    makers[i] = lambda p=stores[spc], k=kw: ours(p, k)
                best, loaders = _time_loaders(makers, n, args.repeats)
                t_leg = best["legacy"]
                for i, (name, spc, kw) in enumerate(configs):
                    lo = loaders[i]
                    t_our = best[i]
                    if lo.pool is not None:
                        got = lo.pool.received
                        transport = (
                            "shared memory"
                            if got["slab"] and not got["pickled"]
                            else f"shared memory ({got['pickled']} of {got['slab'] + got['pickled']} items pickled)"
                        )
                    else:
                        transport = "pickled" if workers else "in-process"
                    row = dict(
                        content="LPLD dense fp16" if kind == "dense" else f"LPQLD top-{K}",
                        output=fmt,
                        workers=workers,
                        spc=spc,
                        config=name,
                        steps_per_item=lo.steps_per_item,
                        transport=transport,
                        legacy_sps=n / t_leg,
                        ours_sps=n / t_our,
                        ratio=t_leg / t_our,
                        legacy_bytes=legacy_bytes / n,
                        store_bytes=stores[spc].stat().st_size / n,
                    )
                    rows.append(row)
                    log(
                        f"  {row['content']:16s} {fmt:8s} workers={workers} spc={spc:8s} {name:56s} "
                        f"G={lo.steps_per_item:2d}: legacy {row['legacy_sps']:7.0f} steps/s, lplabel "
                        f"{row['ours_sps']:7.0f} steps/s, x{row['ratio']:.2f} ({transport})"
                    )
                del loaders
        shutil.rmtree(WORK / f"legacy-{legacy_kind}", ignore_errors=True)
    return rows


def decode_breakdown(args, log):
    """Where one step's time goes in-process (µs): pread+crc, zstd, unshuffle, loader item."""
    from lplabel.store import LabelStore
    from lplabel.torch.fastread import LabelRows

    out = []
    for kind in ("dense", "topk"):
        st = LabelStore(WORK / f"{kind}-spc1.lpl")
        pipe = st.pipelines["label"]
        n = min(st.num_steps, 64)
        best = {}

        def timed(key, fn):
            t0 = time.perf_counter()
            for c in range(n):
                fn(c)
            best[key] = min(best.get(key, float("inf")), (time.perf_counter() - t0) / n * 1e6)

        raw = [st.read_chunk_bytes("label", c) for c in range(n)]
        zstd = pipe.bytes_bytes[-1]
        rows = LabelRows(st)
        nrec = int(st.record_start[1])
        dests = {k: np.empty((nrec, *shape), dtype=dt) for k, (dt, shape, _) in rows.fields.items()}
        ds_raw = StepDataset(st, None, labels="raw")
        ds_dense = StepDataset(st, None, labels="dense", temperature=T)
        for _ in range(5):
            timed("pread+crc", lambda c: st.read_chunk_bytes("label", c))
            timed("zstd", lambda c: zstd.decode(raw[c]))
            timed("decode into batch (all)", lambda c: (rows._local.__dict__.clear(), rows.read(c, 0, nrec, dests)))
            timed("item, 1 step (raw)", lambda c: ds_raw[c])
            timed("dense@T item, 1 step", lambda c: ds_dense[c])
        lo = ReplayLoader(st, None, labels="raw", reuse="order", steps_per_epoch=st.num_steps)
        for _ in lo:
            pass
        t = float("inf")
        for _ in range(5):
            t0 = time.perf_counter()
            for _ in lo:
                pass
            t = min(t, (time.perf_counter() - t0) / st.num_steps * 1e6)
        best["per step, loader default (raw)"] = t
        row = {"store": kind, **best, "steps/item": lo.steps_per_item}
        out.append(row)
        log("  " + ", ".join(f"{k} {v:.0f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()))
    return out


def floors(args, content, log):
    """Lower bounds of one step's cost in one process (µs, warm page cache, LPLD dense content):
    the legacy step, what merely producing the same bytes costs, and the work lplabel cannot skip
    (read, CRC-32, zstd for the default chain, the softmax for dense@T)."""
    from lplabel.store import LabelStore
    from lplabel.torch.batch import probs_into
    from lplabel.torch.fastread import LabelRows

    policy, pairs, views, logits, how = content
    n = min(len(pairs), 64)
    files = write_legacy(WORK / "floor-legacy", pairs[:n], views[:n], logits[:n], "lpld")
    blobs = [bytearray(Path(f).read_bytes()) for f in files]
    st = LabelStore(WORK / "dense-spc1.lpl")
    plain = LabelStore(WORK / "dense-plain.lpl")
    zstd = st.pipelines["label"].bytes_bytes[-1]
    raw = [st.read_chunk_bytes("label", c) for c in range(n)]
    rows = LabelRows(st)
    nrec = int(st.record_start[1])
    dests = {k: np.empty((nrec, *shape), dtype=dt) for k, (dt, shape, _) in rows.fields.items()}
    z16 = [torch.from_numpy(z.astype(np.float16)) for z in logits[:n]]
    p32 = [torch.softmax(z.float() / T, dim=1) for z in z16]
    out16, out32, scratch = torch.empty(B, C, dtype=torch.float16), torch.empty(B, C), torch.empty(B, C)
    fd = st._file()
    locs = []
    for c in range(n):
        seg, off, ln = (int(v) for v in st.chunks["label"][c])
        locs.append((st.segment_offsets["label"][seg][0] + off, ln))

    def read_file(i):
        with open(files[i], "rb") as f:
            return f.read()

    def legacy_dense(i):
        rec = torch.load(files[i], weights_only=False)
        return torch.softmax(rec[5].float() / T, dim=1)

    tests = [
        ("legacy: torch.load of the step's file", lambda i: torch.load(files[i], weights_only=False)),
        ("legacy dense@T: torch.load + softmax(soft_label / T)", legacy_dense),
        ("read the legacy file's bytes (open + read)", read_file),
        (
            "np.frombuffer + torch.from_numpy of those bytes (in memory)",
            lambda i: torch.from_numpy(np.frombuffer(blobs[i], dtype=np.uint8)),
        ),
        ("copy the step's fp16 logits [128, 1000] (256 KB)", lambda i: out16.copy_(z16[i])),
        ("copy the step's fp32 probabilities [128, 1000] (512 KB)", lambda i: out32.copy_(p32[i])),
        ("pread of the stored chunk (default chain, 220 KB)", lambda i: os.pread(fd, locs[i][1], locs[i][0])),
        ("CRC-32 of the stored chunk", lambda i: zlib.crc32(raw[i])),
        ("zstd decode of the chunk", lambda i: zstd.decode(raw[i])),
        ("byte unshuffle into the batch (fused, uint16)", None),
        ("read + CRC-32 of the plain chunk (no zstd, 256 KB)", lambda i: plain.read_chunk_bytes("label", i)),
        (
            "lplabel decode: pread + CRC-32 + zstd + unshuffle",
            lambda i: (rows._local.__dict__.clear(), rows.read(i, 0, nrec, dests)),
        ),
        (
            "softmax at T: widen fp16, divide by T, softmax (into the output)",
            lambda i: probs_into({"logits": z16[i]}, out32, C, T, scratch=scratch),
        ),
    ]
    best = {}
    for _ in range(7):
        for key, fn in tests:
            if fn is None:
                continue
            t0 = time.perf_counter()
            for i in range(n):
                fn(i)
            best[key] = min(best.get(key, float("inf")), (time.perf_counter() - t0) / n * 1e6)
    parts = (
        "pread of the stored chunk (default chain, 220 KB)",
        "CRC-32 of the stored chunk",
        "zstd decode of the chunk",
    )
    best["byte unshuffle into the batch (fused, uint16)"] = max(
        0.0, best["lplabel decode: pread + CRC-32 + zstd + unshuffle"] - sum(best[k] for k in parts)
    )
    out = [(key, best[key]) for key, _ in tests]
    for key, v in out:
        log(f"  {key:64s} {v:7.1f} us")
    shutil.rmtree(WORK / "floor-legacy", ignore_errors=True)
    return {"steps": n, **dict(out)}


# ---------------------------------------------------------------------------------------- training
class InMemoryLabels(torch.utils.data.Dataset):
    """Baseline: the same rendered+mixed views, labels precomputed in memory (dense probs at T)."""

    def __init__(self, bank, policy, views, probs):
        self.bank, self.policy, self.views, self.probs = bank, policy, views, probs

    def __len__(self):
        return len(self.views)

    def __getitem__(self, i):
        from lplabel.views.replay import render_step

        return render_step(self.bank, self.views[i], self.policy), self.probs[i]


def training(args, content, log):
    """Paired, interleaved timing: each round runs one lplabel step and one in-memory step, in
    alternating order, on the same model, so load changes on a shared machine hit both alike."""
    from lplabel.teachers.models import convnet
    from lplabel.views.replay import ImageBank

    policy, pairs, views, logits, how = content
    n = min(len(pairs), args.train_steps)
    rng = np.random.default_rng(1)
    imgs = rng.integers(0, 256, (args.images, 64, 64, 3), dtype=np.uint8)
    iset = ImageSet(imgs, np.arange(args.images) % C, [str(i) for i in range(args.images)])
    path = WORK / "train.lpl"
    with StoreWriter(
        path,
        num_classes=C,
        images=iset,
        batch_size=B,
        epochs=max(e for e, _ in pairs[:n]) + 1,
        drop_last=True,
        augmentation=policy.to_json(),
        overwrite=True,
    ) as w:
        for (e, s), v, z in zip(pairs[:n], views[:n], logits[:n]):
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
    probs = [torch.softmax(torch.from_numpy(z).half().float() / T, 1) for z in logits[:n]]
    bank = ImageBank(imgs)
    results = {}
    for workers in args.train_workers:
        wkw = dict(num_workers=workers)
        if workers:
            wkw.update(persistent_workers=True)
        ours = ReplayLoader(path, iset, temperature=T, reuse="order", steps_per_epoch=n, normalize="0-255", **wkw)
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
                for which in (0, 1) if (i + rnd) % 2 == 0 else (1, 0):
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
        res = dict(
            ours=to.mean(),
            base=tb.mean(),
            ours_med=float(np.median(to)),
            base_med=float(np.median(tb)),
            diff=d.mean(),
            diff_se=d.std(ddof=1) / np.sqrt(len(d)),
            n=len(d),
            steps_per_item=ours.steps_per_item,
            transport="in-process" if not workers else "shared memory" if ours.pool is not None else "pickled",
        )
        results[workers] = res
        log(
            f"  workers={workers}: lplabel {res['ours'] * 1e3:.1f} ms/step, in-memory {res['base'] * 1e3:.1f} ms/step, "
            f"paired difference {res['diff'] * 1e3:+.2f} ± {res['diff_se'] * 1e3:.2f} ms "
            f"({100 * res['diff'] / res['base']:+.2f} %), n={res['n']}"
        )
    return results


# ---------------------------------------------------------------------------------------- report
def machine(load_start: str = "?") -> str:
    from lplabel.testing import describe_machine, machine_info

    m = machine_info()
    m.pop("load_average", None)  # the load at the start is what this report states
    return f"{describe_machine(m)}; load average (1/5/15 min) at the start {load_start}"


def _load() -> str:
    try:
        return "{:.1f} / {:.1f} / {:.1f}".format(*os.getloadavg())
    except OSError:
        return "?"


NOTES = """
### Reading these numbers

- `8, rans` is LPQLD's content in the smallest lossless layout (`lplabel encode --layout rans`:
  context models + rANS; compare "store B/step"). Its decoder walks every class position up to a
  record's last stored class, so it is several times slower than zstd byte planes: near the legacy
  loader with 0 workers, and CPU-bound with workers. At one core it still serves thousands of
  steps of 128 views per second, far more than a GPU trains on; pick `planes` when label decoding
  must cost least.
- The machine is shared with other jobs (see the load averages above: a load of 4 on 2 cores
  means each process gets about half a core). Every configuration is the best of the timed
  passes, and the legacy loader and all lplabel configurations of a row group alternate pass by
  pass, but groups measured minutes apart still see different load: compare ratios, not rows.
  The legacy loader with workers is the noisiest number (its time is mostly waiting on
  inter-process hand-overs): ratios at 2 workers differed by up to ~20 % between three full
  runs of this benchmark, more in shorter runs.
- With workers, a step must cross from a worker to the main process. The legacy record holds 4
  to 6 tensors and PyTorch sends each through its own shared-memory segment plus a file
  descriptor passed over a socket (about a millisecond each here). lplabel's default loader
  (i) decodes `steps/item` consecutive scheduled steps per DataLoader item into one buffer
  (`ReplayLoader(steps_per_item="auto")`: at most 16 steps, up to 16 MiB per item through
  shared-memory slabs, about 4 MiB in-process), which pays the DataLoader's per-item cost (a
  queue round trip, and a few hundred µs of CPU across both processes on this machine) once per
  group, and (ii) writes that buffer straight into a shared-memory slab that the main process
  maps without copying (`shared_memory="auto"`, forked workers); only the slab's number crosses
  the pipe. Pickled instead (spawned workers, `shared_memory=False`), the buffer is copied four
  to six times on its way and large items get slower per byte, so the loader then groups only
  about 256 KiB.
- The main process splits each group back into one `StepBatch` per step (views, no copies); the
  loop sees the same batches, in the same order, as with one step per item, and
  `ReplayLoader.state_dict()` still counts the steps the loop received.
- In-process (0 workers) the time per step is the decoding itself: pread + CRC-32 + zstd, and
  the byte unshuffle, now done field by field straight into the batch's arrays in uint16
  arithmetic. For dense fp16 logits that is about 220 KB of nearly incompressible bytes per step:
  CRC-32 (~6 GB/s) and zstd (~3-5 GB/s) alone cost about half of what `torch.load` of the same
  256 KB costs, so no loader that checks and decompresses the bytes can be 20x faster than
  `torch.load` in one process. Top-100 labels are 5x smaller, but zstd still takes ~40 µs of
  the legacy ~300 µs. The prefetch thread (0 workers) did not help here: with two busy cores the
  thread competes with the loop for the CPU and the GIL.
- `dense@T` adds a softmax over [128, 1000] (~80 µs per step with the fp16 widening and the
  division by T, in the worker), computed right after each run of rows is decoded (still in
  cache) and written straight into the slab, and 512 KB of float32 per step in the slab; on a
  GPU, `ReplayLoader(labels_on="device")` ships the stored block instead and reconstructs after
  the copy. With 2 workers on 2 cores the label path is CPU-bound: see the floors below.
- spc=8 (eight steps per stored chunk) lets a group of consecutive steps decode each chunk once,
  with workers too (the groups are aligned to multiples of `steps/item`). It helps schedules
  that read stored steps in order (full stores, as here); the LPLD/LPQLD schedules read pruned
  steps in random order, where every step would decode a whole chunk: keep spc=1 (the writer's
  default) for those.
"""


def floor_section(f: dict, rows: list) -> list:
    """The floors table and what it implies for the 20x target."""
    f = dict(f)
    n = f.pop("steps", 64)
    g = f.get
    leg, leg_d = g("legacy: torch.load of the step's file"), g("legacy dense@T: torch.load + softmax(soft_label / T)")
    same_bytes = g("read the legacy file's bytes (open + read)") + g("copy the step's fp16 logits [128, 1000] (256 KB)")
    dec = g("lplabel decode: pread + CRC-32 + zstd + unshuffle")
    plain = g("read + CRC-32 of the plain chunk (no zstd, 256 KB)")
    smx = g("softmax at T: widen fp16, divide by T, softmax (into the output)")
    lines = [
        "",
        "### Floors: what one step costs at least (µs, in-process, warm page cache, LPLD dense content)",
        "",
        f"Best of 7 passes over {n} steps, one thread. The legacy rows are the 0-worker legacy step; the "
        "others are pieces of work that any loader producing the same tensors (or lplabel with its checks) must "
        "do. lplabel's workers write the probabilities straight into the shared-memory slab (no copy of the "
        "512 KB afterwards, none on hand-over); the copy rows show what a copy would cost.",
        "",
        "| work per step | µs | share of the legacy step |",
        "|---|---|---|",
    ]
    for key, v in f.items():
        base = leg_d if "dense@T" in key or key.startswith("softmax") or "fp32" in key else leg
        lines.append(f"| {key} | {v:.1f} | {100 * v / base:.0f} % |")
    lines += [
        "",
        "Shares: of the legacy dense@T step for the softmax, fp32 and dense@T rows, else of the legacy stored step.",
        "",
        f"- **0 workers, stored**: 20x the legacy step means {leg / 20:.1f} µs per step. Merely reading the "
        f"legacy file's bytes and copying the output tensor (the same bytes, nothing decoded) costs "
        f"{same_bytes:.1f} µs ({100 * same_bytes / leg:.0f} % of the legacy step). lplabel must also check "
        f"the CRC-32 of every chunk: read + CRC-32 alone is {plain:.1f} µs for the uncompressed plain chain "
        f"(a ceiling of {leg / plain:.1f}x), and the default chain's pread + CRC-32 + zstd + unshuffle is "
        f"{dec:.1f} µs (ceiling {leg / dec:.1f}x). 20x in one process is not physically possible on warm "
        "page cache: the legacy step is only ~" + f"{leg / max(same_bytes, 1e-9):.0f}x slower than touching "
        "its own bytes once.",
        f"- **0 workers, dense@T**: 20x means {leg_d / 20:.1f} µs per step, but the softmax the legacy step "
        f"also does costs {smx:.1f} µs by itself (ceiling {leg_d / (dec + smx):.1f}x with the default chain, "
        f"{leg_d / (plain + smx):.1f}x plain).",
    ]
    for r in rows:
        if (
            r["config"] == "default"
            and r["workers"] == 2
            and r["output"] == "dense@T"
            and r["spc"] == "1"
            and r["content"].startswith("LPLD")
        ):
            work = dec + smx
            ceil = 2e6 / work
            lines.append(
                f"- **2 workers, dense@T (LPLD dense fp16, default chain)**: the workers' CPU work per step is at "
                f"least decode + softmax = {work:.0f} µs, so two cores deliver at most {ceil:.0f} steps/s even if "
                f"the main process and the rest of the machine took no CPU: {ceil / r['legacy_sps']:.0f}x the legacy "
                f"{r['legacy_sps']:.0f} steps/s measured above (measured: {r['ratio']:.1f}x). The main process needs "
                "~25-50 µs of CPU per step besides (DataLoader queues, the slab's layout, one StepBatch per step; "
                "measured separately at 16 steps per item), and any other load on the two cores comes straight off "
                "the workers' share, while the legacy loader, which mostly waits on its hand-overs, loses less: "
                "that, not the hand-over (zero-copy slabs), separates the measured ratio from the ceiling."
            )
    return lines


def report(args, how, rows, breakdown, train, started, load_start, floor=None) -> str:
    cmd = "python benchmarks/bench_loader.py " + " ".join(sys.argv[1:])
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        rev = "?"
    lines = [
        f"# Loader benchmark, {started:%Y-%m-%d}",
        "",
        f"- machine: {machine(load_start)}",
        f"- date: {started:%Y-%m-%d %H:%M} UTC; commit {rev} (+ working tree)",
        f"- command: `{cmd}`",
        f"- content: {len(rows) and args.steps} steps of B={B} views, C={C}; teacher logits {how}",
        f"- load average (1/5/15 min) at the end: {_load()}",
        "- page cache warm; torch intra-op threads: 1 (workers always use 1; set in the main process too)",
        "",
        "## 1. Label path (no images): steps/s, legacy DataLoader vs lplabel ReplayLoader",
        "",
        "Legacy: `DataLoader(batch_size=None)` over the per-batch files, one `torch.load` per step. lplabel: "
        "`ReplayLoader(store, None, labels=...)` (labels only), same worker count and prefetch factor, one "
        'StepBatch per step either way. spc = steps per stored chunk; "plain" = label chain '
        "`dense fp16 | bytes` (no shuffle, no zstd; checksummed). steps/item = consecutive steps decoded "
        "together and sent as one DataLoader item; transport = how items reach the main process. "
        "ratio = lplabel steps/s ÷ legacy steps/s (higher is better), both measured in the same "
        "interleaved passes.",
        "",
        "| content | output | workers | spc | lplabel loader | steps/item | transport | legacy steps/s | "
        "lplabel steps/s | ratio | legacy B/step on disk | store B/step |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['content']} | {r['output']} | {r['workers']} | {r['spc']} | {r['config']} | "
            f"{r['steps_per_item']} | {r['transport']} | {r['legacy_sps']:.0f} | {r['ours_sps']:.0f} | "
            f"**{r['ratio']:.1f}** | {r['legacy_bytes']:.0f} | {r['store_bytes']:.0f} |"
        )
    lines += ["", "### Against the 20x target (default loader)", ""]
    for r in rows:
        if r["config"] != "default":
            continue
        verdict = "reaches 20x" if r["ratio"] >= 20 else "below 20x"
        lines.append(
            f"- {r['content']}, {r['output']}, {r['workers']} workers, spc {r['spc']}: {r['ratio']:.1f}x ({verdict})"
        )
    lines += NOTES.split("\n")
    lines += [
        "",
        "### In-process cost of one step (µs, spc=1, best of 5 passes over 64 steps)",
        "",
        "pread+crc: read the chunk and check its CRC-32; zstd: decompress it; decode into batch: both plus "
        "the fused unshuffle into the batch's arrays (what a loader item pays for its labels); item: a whole "
        "StepBatch from `StepDataset[i]`; per step, loader default: through `ReplayLoader` with its default "
        "grouping.",
        "",
    ]
    keys = sorted(
        {k for b in breakdown for k in b if k != "store"},
        key=lambda k: list(breakdown[0]).index(k) if k in breakdown[0] else 99,
    )
    lines.append("| store | " + " | ".join(keys) + " |")
    lines.append("|---" * (len(keys) + 1) + "|")
    for b in breakdown:
        lines.append(f"| {b['store']} | " + " | ".join(f"{b.get(k, float('nan')):.0f}" for k in keys) + " |")
    if floor:
        lines += floor_section(floor, rows)
    lines += [
        "",
        "## 2. Student training step (CPU), lplabel loader vs labels precomputed in memory",
        "",
        f"ConvNet-3 (width {args.width}, instance norm) on 32x32 CutMix views rendered from in-memory uint8 "
        f"64x64 images, B={B}, C={C}, KL at T={T}, SGD, 1 torch thread; {args.train_steps} steps x "
        f"{args.rounds} rounds, the two loops interleaved step by step (paired). Time per step = fetch + "
        "forward + backward + update, measured in the training loop.",
        "",
        "| workers | lplabel loader (defaults) | lplabel ms/step (mean / median) "
        "| in-memory ms/step (mean / median) | paired difference | relative |",
        "|---|---|---|---|---|---|",
    ]
    for w, r in train.items():
        lines.append(
            f"| {w} | {r['steps_per_item']} step/item, {r['transport']} | {r['ours'] * 1e3:.1f} / "
            f"{r['ours_med'] * 1e3:.1f} | {r['base'] * 1e3:.1f} / "
            f"{r['base_med'] * 1e3:.1f} | {r['diff'] * 1e3:+.2f} ± {r['diff_se'] * 1e3:.2f} ms (n={r['n']}) | "
            f"{100 * r['diff'] / r['base']:+.2f} % |"
        )
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
    ap.add_argument("--skip-label", action="store_true", help="only the training-step section")
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
    rows, breakdown, floor = [], [], {}
    if not args.skip_label:
        print("label path:")
        rows = label_path(args, content, print)
        print("breakdown (µs per step, in-process):")
        breakdown = decode_breakdown(args, print)
        print("floors (µs per step, in-process):")
        floor = floors(args, content, print)
    train = {}
    if not args.skip_train:
        print("training step:")
        train = training(args, content, print)
    text = report(args, content[4], rows, breakdown, train, started, load_start, floor)
    out = Path(args.out) if args.out else REPO / "benchmarks" / "results" / f"loader-{started:%Y-%m-%d}.md"
    if not args.quick or args.out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        print(f"wrote {out}")
    else:
        print(text)


if __name__ == "__main__":
    main()
