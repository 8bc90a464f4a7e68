"""What a user gets by default from the loader on an imported store (issue 17).

docs/loader.md's label-path ratios (28-34x the legacy per-batch ``torch.load`` for dense fp16
logits) were measured on stores written by ``StoreWriter`` with its default dense chain (fp16 |
bytes | shuffle | zstd). A user who imports legacy files with ``lplabel encode DIR`` gets another
chain (``dense | zplanes``, 8 steps per chunk), which the loader decoded through the generic
pipeline path; the issue measured 14.8x there. This benchmark times, interleaved in one run
(labels only, 2 persistent workers, prefetch 4, best of ``--repeats`` passes after a warm-up):

* the legacy loader: one ``torch.load`` per step of the LPLD (dense fp16) / LPQLD (top-100) files;
* lplabel ``ReplayLoader`` on the store ``lplabel encode DIR`` writes from those files, as this
  tree's loader reads it (zplanes fast path; top-k: each record's pairs, the tie order not restored,
  in the one compiled pass of ``lplabel.codecs.fused``), as the loader before read it (generic
  pipeline decode, numpy loops) and, for top-k, with the tie order restored on every read (the
  loader before it read pairs only);
* for dense content, lplabel on a ``StoreWriter`` store with its default chain, 1 step per chunk
  (the configuration of docs/loader.md's figure).

Content: real EfficientNet-Lite0 ImageNet-1K logits (C = 1,000; the 2,000-row cache of
``bench_import_smallest.py``, cycled), B = 100, 400 steps, legacy files written by
:mod:`lplabel.interop.synth` in the generators' layouts.

    python benchmarks/bench_loader_import.py [--steps 400] [--repeats 3] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
import bench_import_smallest  # noqa: E402
import bench_loader as BL  # noqa: E402

import lplabel.torch.fastread as FR  # noqa: E402
from lplabel import open_store  # noqa: E402
from lplabel.commands.codec_tools import encode_source  # noqa: E402
from lplabel.interop import synth  # noqa: E402
from lplabel.interop.source import LegacySource  # noqa: E402
from lplabel.testing import describe_machine  # noqa: E402
from lplabel.torch import ReplayLoader  # noqa: E402

B, C, N_IMAGES = 100, 1000, 4000


class _NotZPlanes:
    """Stands in for the ZPlanes class while a loader is built: its LabelRows takes the generic path."""


def _before(make):
    """The loader as it was before this change: its label reader built without the zplanes fast
    path, and its workers forked with the numpy code of entryorder/delta/classmap (no compiled
    loops); persistent workers keep that state."""
    from lplabel.codecs import _compiled

    real, saved = FR.ZPlanes, dict(_compiled._FOUND)
    FR.ZPlanes = _NotZPlanes
    _compiled._FOUND.update(dict.fromkeys(_compiled.MODULES))
    try:
        lo = make()
        next(iter(lo))
    finally:
        FR.ZPlanes = real
        _compiled._FOUND.clear()
        _compiled._FOUND.update(saved)
    return lo


def _exact_order(make):
    """The loader as it read top-k before reading pairs only (issue 17): every chunk decoded with
    LPQLD's tie order restored (``decode_chunk(..., entry_order=True)``); its workers are forked
    while the store's reader does so, and persistent workers keep that state."""
    from lplabel.store.reader import LabelStore

    real = LabelStore.decode_chunk

    def exact(self, name, chunk, entry_order=True):
        return real(self, name, chunk, True)

    LabelStore.decode_chunk = exact
    try:
        lo = make()
        next(iter(lo))
    finally:
        LabelStore.decode_chunk = real
    return lo


def _load() -> str:
    try:
        return " / ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:  # pragma: no cover
        return "?"


def run(content: str, steps: int, repeats: int, work: Path, log=print) -> list:
    flat = bench_import_smallest.real_logits()["logits"].reshape(-1, C)

    def real_fn(ids, rng, _pos=[0]):  # real rows, cycled, in the order the generator asks for them
        a = _pos[0]
        _pos[0] += len(ids)
        return np.take(flat, np.arange(a, a + len(ids)) % len(flat), axis=0)

    layout = "lpld" if content == "dense" else "lpqld"
    src = work / layout
    synth.write_batches(
        src,
        layout,
        num_images=N_IMAGES,
        batch_size=B,
        epochs=-(-steps * B // N_IMAGES),
        num_classes=C,
        logits=real_fn,
        input_size=32,
        image_size=(64, 64),
        **({} if content == "dense" else {"k": 100}),
    )
    files = sorted((str(p) for p in src.rglob("batch_*.tar")), key=lambda p: int(Path(p).stem.split("_")[1]))[:steps]
    steps = len(files)
    imp = work / f"{content}-imported.lpl"
    encode_source(LegacySource(src, layout, num_classes=C, num_images=N_IMAGES), imp, force=True)
    with open_store(imp) as st:
        chain = st.pipelines["label"].describe()
        chunks = len(st.chunks["label"])
    wkw = dict(num_workers=2, persistent_workers=True, prefetch_factor=4)

    def ours(p):
        return ReplayLoader(p, None, labels="raw", reuse="order", steps_per_epoch=steps, **wkw)

    makers = {
        "legacy": lambda: torch.utils.data.DataLoader(
            BL.LegacyDataset(files, layout, False), batch_size=None, shuffle=False, **wkw
        ),
        "imported": lambda: ours(imp),
        "imported, before": lambda: _before(lambda: ours(imp)),
    }
    if content != "dense":
        makers["imported, exact order"] = lambda: _exact_order(lambda: ours(imp))
    if content == "dense":
        BL.B = B  # bench_loader's content helpers at this batch size
        _, pairs, views, _, _ = BL.build_content(steps, 1000)
        z = flat[np.arange(steps * B) % len(flat)].reshape(steps, B, C)
        sw = BL.write_store(work / "sw.lpl", pairs, views, z, "dense", 1000, 1)
        makers["storewriter"] = lambda: ours(sw)
    best, loaders = BL._time_loaders(makers, steps, repeats)
    rows = []
    names = {
        "legacy": "legacy `torch.load` per step",
        "imported": f"`lplabel encode DIR` store ({chain}; {steps / chunks:.0f} steps/chunk), loader default",
        "imported, before": "the same store, generic decode with numpy loops (no zplanes fast path, no numba)",
        "imported, exact order": "the same store, LPQLD's tie order restored on every read (the loader before "
        "it read pairs only)",
        "storewriter": "`StoreWriter` default dense chain, 1 step/chunk (docs/loader.md's configuration)",
    }
    for k, t in best.items():
        rows.append((content, names[k], steps / t, best["legacy"] / t))
        log(f"{content} {names[k]}: {steps / t:,.0f} steps/s, x{best['legacy'] / t:.1f}")
    del loaders
    return rows


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--work", type=Path, default=REPO / "out" / "bench-loader-import")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    load0 = _load()
    rows = []
    for content in ("dense", "topk"):
        shutil.rmtree(args.work, ignore_errors=True)
        args.work.mkdir(parents=True)
        rows += run(content, args.steps, args.repeats, args.work)
    shutil.rmtree(args.work, ignore_errors=True)
    ver = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    cmd = "python benchmarks/bench_loader_import.py " + " ".join(argv if argv is not None else sys.argv[1:])
    lines = [
        f"# Loader on imported stores, labels only ({_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M} UTC)",
        "",
        f"Machine: {describe_machine()}, tree {ver.stdout.strip()}; load average "
        f"{load0} at the start, {_load()} at the end.",
        f"Command: `{cmd.strip()}`",
        "",
        f"{args.steps} steps of B = {B} real EfficientNet-Lite0 logits (C = {C}); LPLD files (dense fp16) and "
        "LPQLD MR-100 files (top-100) written in the generators' layouts, imported with `lplabel encode DIR` "
        'defaults. Labels only (`labels="raw"`), 2 persistent workers, prefetch factor 4, every loader warmed '
        f"up, timed passes interleaved, best of {args.repeats}. x = steps/s ÷ the legacy loader's in the same "
        "run.",
        "",
        "| content | loader | steps/s | x legacy |",
        "|---|---|---:|---:|",
    ]
    for content, name, sps, x in rows:
        lines.append(
            f"| {'LPLD dense fp16' if content == 'dense' else 'LPQLD top-100'} | {name} | {sps:,.0f} | {x:.1f} |"
        )
    text = "\n".join(lines) + "\n"
    out = args.out or REPO / "benchmarks" / "results" / f"loader-import-{_dt.date.today():%Y-%m-%d}.md"
    out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
