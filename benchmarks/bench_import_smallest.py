"""One command from a legacy LPQLD directory to the smallest lossless store (issue 12, section 3).

Writes LPQLD's MR-k files for real teacher logits (EfficientNet-Lite0, ImageNet-1K, C = 1,000, on
Tiny-ImageNet views at 224 px with RandomResizedCrop + flip + CutMix; 2,000 records = 20 batches of
100) exactly as LPQLD's generator does (``torch.topk`` on the fp32 logits, ``.half()`` values,
``.short()`` indices, fp16 coords, uint8 mix index and box), then runs the CLI on them as a user
would, one process per command:

* ``lplabel import DIR`` -- the plain lossless import;
* ``lplabel encode DIR [--layout rans]`` -- one command (this tree);
* ``lplabel import DIR`` + ``lplabel encode STORE --layout rans`` -- two commands;
* the same ``encode`` commands with the code of another tree (``--before /work/main``), to show
  what changed, in the same run on the same machine.

Every store is exported back with ``lplabel export --to lpqld`` and compared with the original
files (``compare_dirs``: objects, tensor storage bytes, JSON bytes). Sizes are ``du`` bytes of
LPQLD's directory and of each store file; ratios = LPQLD / store.

    python benchmarks/bench_import_smallest.py --k 10 [--before /work/main] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
import teacher_data  # noqa: E402

from lplabel.interop import du_bytes, export_legacy  # noqa: E402
from lplabel.interop.compare import compare_dirs  # noqa: E402
from lplabel.testing import describe_machine  # noqa: E402

N_IMAGES, BATCH, EPOCHS = 500, 100, 4  # 4 x 5 batches x 100 = 2,000 records


def real_logits() -> dict:
    """EfficientNet-Lite0 logits on Tiny-ImageNet views (cached under out/bench-cache/)."""
    name = "imagenet1k-effnetlite0-lpqld2000"
    path = teacher_data.CACHE / f"{name}.npz"
    if not path.exists():
        import torch

        from lplabel.datasets import load_dataset
        from lplabel.teachers import load_teacher

        torch.set_num_threads(2)
        iset = load_dataset("tiny-imagenet", "train", limit_per_class=4)
        rng = np.random.default_rng(0)
        pick = np.sort(rng.choice(len(iset), N_IMAGES, replace=False))
        images = np.stack([np.asarray(iset.images[i]) for i in pick])
        teacher_data.generate(
            name,
            images=images,
            teacher=load_teacher("efficientnet-lite0"),
            out_size=224,
            epochs=EPOCHS,
            batch_size=BATCH,
        )
    return teacher_data.load(path)


def write_lpqld(d: dict, k: int, out: Path) -> None:
    """LPQLD MR-k files as its generator writes them (flat batch_<g>.tar + sampler_indices_batch.json)."""
    import torch

    out.mkdir(parents=True)
    index = {}
    for s in range(len(d["epoch"])):
        top = torch.topk(torch.from_numpy(np.ascontiguousarray(d["logits"][s])), k)
        obj = [
            torch.from_numpy(d["crop"][s]).half(),
            torch.from_numpy(d["flip"][s].astype(bool)),
            torch.from_numpy(d["mix_partner"][s].astype(np.uint8)),
            float(d["mix_lambda"][s]),
            [torch.tensor(int(b), dtype=torch.uint8) for b in d["mix_box"][s]],
            top.values.half(),
            top.indices.short(),
        ]
        torch.save(obj, out / f"batch_{s}.tar")
        index[str(s)] = [int(x) for x in d["image"][s]]
    with open(out / "sampler_indices_batch.json", "w") as fh:
        json.dump(index, fh)


def cli(tree: Path, *args) -> tuple:
    """Run ``lplabel ARGS`` with ``tree``'s code in a fresh process; (seconds, output)."""
    env = dict(os.environ, PYTHONPATH=str(tree))
    t0 = time.perf_counter()
    # cwd outside any tree: `python -m` puts the working directory ahead of PYTHONPATH
    res = subprocess.run(
        [sys.executable, "-m", "lplabel", *map(str, args)], env=env, capture_output=True, text=True, cwd="/"
    )
    dt = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(f"lplabel {' '.join(map(str, args))} failed:\n{res.stdout}{res.stderr}")
    return dt, res.stdout.strip()


def exports_back(store: Path, src: Path, work: Path) -> str:
    back = work / (store.stem + "-back")
    shutil.rmtree(back, ignore_errors=True)
    export_legacy(store, back, layout="lpqld", progress=False)
    diffs = compare_dirs(src, back, limit=10**6)
    files = len([p for p in src.iterdir() if p.suffix == ".tar"])
    bad = len({d.split(":")[0] for d in diffs})
    shutil.rmtree(back)
    return "byte-identical" if not diffs else f"**{files - bad} of {files} files identical**"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--k", type=int, required=True)
    ap.add_argument("--before", type=Path, default=None, help="another source tree to run the same commands with")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--work", type=Path, default=REPO / "out" / "bench-import-smallest")
    args = ap.parse_args(argv)
    k = args.k
    d = real_logits()
    R = int(np.prod(d["logits"].shape[:2]))
    work = args.work / f"k{k}"
    shutil.rmtree(work, ignore_errors=True)
    src = work / f"lpqld-mr{k}"
    write_lpqld(d, k, src)
    legacy = du_bytes(src)
    C = ["--num-classes", "1000"]
    rows = []

    def row(label, tree, cmds, store, check=True):
        secs = 0.0
        for c in cmds:
            secs += cli(tree, *c)[0]
        size = du_bytes(store)
        rows.append(
            (
                label,
                " && ".join("lplabel " + " ".join(map(str, c)).replace(str(work) + "/", "") for c in cmds),
                size,
                legacy / size,
                store.stat().st_size,
                exports_back(store, src, work) if check else "-",
                secs,
            )
        )
        print(rows[-1], flush=True)

    here = REPO
    imp = work / "import.lpl"
    row("import (this tree)", here, [["import", src, "-o", imp, *C]], imp)
    row("encode DIR (this tree)", here, [["encode", src, "-o", work / "enc.lpl", *C]], work / "enc.lpl")
    row(
        "encode DIR --layout rans (this tree)",
        here,
        [["encode", src, "-o", work / "enc-rans.lpl", "--layout", "rans", *C]],
        work / "enc-rans.lpl",
    )
    row(
        "import + encode STORE --layout rans (this tree)",
        here,
        [
            ["import", src, "-o", work / "import2.lpl", *C],
            ["encode", work / "import2.lpl", "-o", work / "two-rans.lpl", "--layout", "rans"],
        ],
        work / "two-rans.lpl",
    )
    if args.before is not None:
        b = args.before
        bimp = work / "before-import.lpl"
        row("encode DIR (before)", b, [["encode", src, "-o", work / "before-enc.lpl"]], work / "before-enc.lpl")
        row(
            "encode DIR --layout rans (before)",
            b,
            [["encode", src, "-o", work / "before-enc-rans.lpl", "--layout", "rans"]],
            work / "before-enc-rans.lpl",
        )
        row(
            "import + encode STORE --layout rans (before)",
            b,
            [["import", src, "-o", bimp], ["encode", bimp, "-o", work / "before-two-rans.lpl", "--layout", "rans"]],
            work / "before-two-rans.lpl",
        )
    ver = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    lines = [
        f"# One command from an LPQLD directory to the smallest lossless store, k = {k} "
        f"({_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M} UTC)",
        "",
        f"Machine: {describe_machine()}. Tree: {ver.stdout.strip()}"
        + (f"; before = {args.before} (main)" if args.before else "")
        + ".",
        f"Command: `python benchmarks/bench_import_smallest.py --k {k}"
        + (f" --before {args.before}" if args.before else "")
        + "`",
        "",
        f"Content: LPQLD MR-{k} files of {R:,} records (20 batches of 100), C = 1,000, real teacher logits "
        "(EfficientNet-Lite0 on Tiny-ImageNet views at 224 px, RandomResizedCrop + flip + CutMix), written as "
        "LPQLD's generator writes them (torch.topk on fp32 logits, .half() values, .short() indices). "
        f"LPQLD directory: {legacy:,} bytes (`du`). Each command runs in its own process; *export* = "
        "`lplabel export --to lpqld` compared with the original files (objects, storage bytes, JSON bytes).",
        "",
        "| what | command(s) | store du bytes | vs LPQLD (du/du) | store file bytes | vs LPQLD (du/bytes) "
        "| export | seconds |",
        "|---|---|---:|---:|---:|---:|---|---:|",
    ]
    for label, cmd, size, ratio, nbytes, ok, secs in rows:
        lines.append(
            f"| {label} | `{cmd}` | {size:,} | {ratio:.2f}x | {nbytes:,} | {legacy / nbytes:.2f}x | {ok} | {secs:.1f} |"
        )
    lines += [
        "",
        "`du` counts whole 4 KiB blocks, so the store's du size moves in 4 KiB steps (about 5 % of a "
        "k = 10 store here); the file-bytes column is exact.",
        "",
        "Seconds are wall-clock of the commands on a busy shared machine (interpreter start included); "
        "compare them only within this table.",
    ]
    text = "\n".join(lines) + "\n"
    out = args.out or REPO / "benchmarks" / "results" / f"import-smallest-k{k}-{_dt.date.today():%Y-%m-%d}.md"
    out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
