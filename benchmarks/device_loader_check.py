"""The loader's paths on one device, timed on a real sweep's stores (issue 18's device check).

Reads a ``lplabel bench accuracy`` output folder (``distilled.npz`` + ``stores/*.lpl``) and, for
each store named, replays ``--epochs`` epochs through :class:`lplabel.torch.ReplayLoader` along
every path the device offers, touching each batch's images and probabilities (synchronised on
CUDA), with the students' downscale (``--image-size``) as the loader's transform:

* ``render worker / labels worker``: views rendered and labels reconstructed on the CPU (the only
  path on a CPU machine);
* ``render device / labels device``: views rendered on the GPU from a uint8 image bank there,
  compact stored labels shipped and reconstructed after the copy (CUDA only);
* ``render device / labels worker``: the mixed case (CUDA only).

Views/s per path, one row per (store, path), appended to ``--out`` (Markdown) with the machine.
A loader-only measurement: no student step (the sweep's own timings hold those).

    python benchmarks/device_loader_check.py OUT/gpu-ipc10 --device cuda --out OUT/loader.md
"""

from __future__ import annotations

import argparse
import datetime as _dt
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lplabel.experiment.harness.distill import load_distilled  # noqa: E402
from lplabel.experiment.harness.student import _Downscale  # noqa: E402
from lplabel.store import LabelStore  # noqa: E402
from lplabel.testing import machine_info  # noqa: E402
from lplabel.torch import ReplayLoader  # noqa: E402


def paths_for(device: torch.device) -> list[tuple[str, str]]:
    if device.type == "cuda":
        return [("worker", "worker"), ("device", "device"), ("device", "worker")]
    return [("worker", "worker")]


def time_path(
    store: Path, images, device: torch.device, render_on: str, labels_on: str, epochs: int, image_size: int | None
) -> dict:
    st = LabelStore(store)
    loader = ReplayLoader(
        st,
        images,
        device=device,
        temperature=4.0,
        seed=0,
        labels="dense",
        render_on=render_on,
        labels_on=labels_on,
        normalize="0-255",
        check_images=False,
        transform=_Downscale(image_size) if image_size else None,
    )
    views = 0
    loader.set_epoch(0)
    for b in loader:  # warm-up epoch (allocations, the device image bank)
        pass
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for e in range(epochs):
        loader.set_epoch(e)
        for b in loader:
            views += int(b.images.shape[0])
            float(b.probs[0, 0]) if device.type == "cpu" else None
        if device.type == "cuda":
            torch.cuda.synchronize()
    sec = time.perf_counter() - t0
    st.close()
    return {
        "store": store.name,
        "render_on": render_on,
        "labels_on": labels_on,
        "views": views,
        "seconds": round(sec, 3),
        "views_per_second": views / sec if sec > 0 else None,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bench_out", help="a `lplabel bench accuracy` output folder")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument(
        "--stores",
        default="full,lpqld-k100-keep1in10",
        help="comma-separated store names under BENCH_OUT/stores (missing ones are skipped)",
    )
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--image-size", type=int, default=64, help="the students' side (views downscaled); 0: none")
    ap.add_argument("--out", required=True, help="Markdown file to append to")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    base = Path(args.bench_out)
    images = load_distilled(base / "distilled.npz")
    rows = []
    for name in [n.strip() for n in args.stores.split(",") if n.strip()]:
        p = base / "stores" / f"{name}.lpl"
        if not p.is_file():
            print(f"skipped {name}: no {p}", flush=True)
            continue
        for render_on, labels_on in paths_for(device):
            r = time_path(p, images, device, render_on, labels_on, args.epochs, args.image_size or None)
            rows.append(r)
            print(
                f"{name:<28} render {render_on:<6} labels {labels_on:<6} {r['views_per_second']:>10,.0f} views/s",
                flush=True,
            )
    m = machine_info(str(device))
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"## {now}: loader paths on {m.get('gpu') or m.get('cpu') or m.get('processor')} ({device})",
        "",
        f"Command: `python benchmarks/device_loader_check.py {' '.join(sys.argv[1:] if argv is None else argv)}`",
        "",
        "| store | render on | labels on | views | views/s |",
        "|---|---|---|---:|---:|",
    ]
    lines += [
        f"| {r['store']} | {r['render_on']} | {r['labels_on']} | {r['views']:,} | {r['views_per_second']:,.0f} |"
        for r in rows
    ]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "a", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n\n")
    return 0 if rows else 1


if __name__ == "__main__":
    raise SystemExit(main())
