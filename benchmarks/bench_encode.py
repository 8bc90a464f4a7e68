"""Encode speed of lplabel's top-k layouts, stage by stage, against another revision (issue 17).

Content: the real top-k labels of ``bench_formats.py`` (LPQLD's top-k of EfficientNet-Lite0
ImageNet-1K logits, C = 1,000, 2,000 Tiny-ImageNet views, 20 steps of 100; fp16 values, int16
indices), k = 10, 50, 100. The chain is the one ``lplabel encode DIR [--layout L]`` builds for LPQLD
files (class order and rANS model learnt from the data, LPQLD's tie order kept: ``topk |
entryorder | classmap | sort | rans`` or ``... | sort | delta | zplanes``).

Measured, one core (threads pinned to 1), best of ``--repeat``, MB/s of dense-equivalent fp16
(records x 1,000 x 2 bytes):

* every codec of the label chain on 8-step chunks (800 records, what the writer encodes), and
  the chain in all (what a relabeler's writer thread pays per record);
* ``StoreWriter`` writing the whole store as ``bench_formats.py`` does (view columns at zstd 19,
  8 steps per chunk) for the 2,000 records and for 20,000 (the content ten times, as ten times
  the epochs): the difference gives the writer's per-record rate and the fixed cost of a file
  (creating it, fsync, trimming its reserved space, the atomic rename), which a 2,000-record
  store is dominated by.

``--baseline REV`` measures the same on another revision (REV's files exported under ``out/``,
its lplabel run in a subprocess by this script and its helpers), alternating the two trees ``--rounds`` times
so that both see the same machine load, and reports after / before ratios. Both trees must give
the same stored bytes (checked: the label column's chunks are compared).

    python benchmarks/bench_encode.py [--ks 10,50,100] [--layouts rans,planes] [--repeat 5]
        [--baseline REV] [--rounds 3] [--out benchmarks/results/encode-DATE.md]
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "BLOSC_NTHREADS", "NUMBA_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import datetime as _dt  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
STEPS_PER_CHUNK = 8
TIMES = 10  # the larger store holds the content this many times


from timing import best  # noqa: E402


def measure(ks, layouts, repeat: int, work: Path) -> dict:
    """Seconds per stage and per store, and a digest of the stored label chunks, for the lplabel
    on ``sys.path`` (imported here, so that a baseline tree put first on the path is the one run)."""
    import lplabel  # noqa: F401  (first: the benchmark helpers below put this repository on the path)
    from lplabel import StoreWriter, open_store
    from lplabel.codecs import Field, Pipeline, get_codec
    from lplabel.codecs.rans import warm_up
    from lplabel.commands.codec_tools import encode_source
    from lplabel.interop.source import LegacySource
    from lplabel.recode import view_codecs

    sys.path.insert(1, str(HERE))
    import bench_codecs
    import bench_import_smallest

    warm_up()
    d = bench_import_smallest.real_logits()
    d["num_images"] = int(d["image"].max()) + 1
    S, B, C = d["logits"].shape
    out = {"lplabel": str(Path(lplabel.__file__).resolve().parent), "runs": {}}
    for k in ks:
        pairs = [bench_codecs.lpqld_topk(d["logits"][s], k) for s in range(S)]
        idx = np.stack([p[0] for p in pairs])
        val = np.stack([p[1] for p in pairs])
        src = work / f"src-k{k}"
        shutil.rmtree(src, ignore_errors=True)
        bench_import_smallest.write_lpqld(d, k, src)
        for layout in layouts:
            probe = work / "probe.lpl"
            encode_source(
                LegacySource(src, "lpqld", num_classes=C), probe, layout=layout, steps_per_chunk=8, force=True
            )
            st = open_store(probe)
            codecs = st.header["columns"]["label"]["codecs"]
            st.close()
            chain = [get_codec(x) for x in codecs]
            # stages, on the first 8-step chunk as the writer hands it in (int64 indices, float32 values)
            spec = (Field("indices", "int64", (k,)), Field("values", "float32", (k,)))
            pipe = Pipeline(chain, spec)
            blk = {
                "indices": idx[:STEPS_PER_CHUNK].reshape(-1, k).astype(np.int64),
                "values": val[:STEPS_PER_CHUNK].reshape(-1, k).astype(np.float32),
            }
            stages = []
            for codec, sp in zip(pipe.array_array, pipe._specs):
                nxt = codec.encode(blk, sp)
                stages.append((codec.name, best(lambda: codec.encode(blk, sp), repeat)))
                blk = nxt
            ab, last = pipe.array_bytes, pipe._specs[-1]
            stages.append((ab.name, best(lambda: ab.encode(blk, last), repeat)))
            # whole stores, as bench_formats writes them
            meta = bench_codecs.meta_of(d)
            crop16 = d["crop"].astype(np.float16)
            partner = d["mix_partner"].astype(np.uint8).astype(np.int16)
            box = d["mix_box"].astype(np.uint8)
            idx64, val32 = idx.astype(np.int64), val.astype(np.float32)

            def write(path, times):
                m = dict(meta, epochs=meta["epochs"] * times)
                with StoreWriter(
                    path,
                    **m,
                    label_codecs=chain,
                    label_input=("topk", k),
                    crop_type="float16",
                    steps_per_chunk=STEPS_PER_CHUNK,
                    zstd_level=19,
                    view_codecs=view_codecs(19),
                    overwrite=True,
                ) as w:
                    for t in range(times):
                        for s in range(S):
                            w.write_step(
                                int(d["epoch"][s]) + t * meta["epochs"],
                                int(d["step"][s]),
                                image=d["image"][s],
                                crop=crop16[s],
                                flip=d["flip"][s],
                                mix_partner=partner[s],
                                mix_lambda=float(d["mix_lambda"][s]),
                                mix_box=box[s],
                                topk_indices=idx64[s],
                                topk_values=val32[s],
                            )

            path = work / f"{layout}-k{k}.lpl"
            t1 = best(lambda: write(path, 1), repeat)
            st = open_store(path)
            digest = hashlib.sha256(b"".join(st.read_chunk_bytes("label", i) for i in range(len(st.chunks["label"]))))
            label_bytes = int(st.chunks["label"][:, 2].sum())
            st.close()
            tn = best(lambda: write(path, TIMES), max(1, repeat // 2))
            path.unlink()
            out["runs"][f"{layout} k={k}"] = {
                "records": S * B,
                "stages": stages,
                "chunk_records": STEPS_PER_CHUNK * B,
                "store": t1,
                "store_x": tn,
                "label_bytes": label_bytes,
                "digest": digest.hexdigest(),
            }
        shutil.rmtree(src, ignore_errors=True)
    return out


def run_tree(tree: Path | None, args, work: Path) -> dict:
    """``measure`` in a subprocess whose lplabel is ``tree``'s (None: this repository's)."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--measure", "--ks", args.ks, "--layouts", args.layouts]
    cmd += ["--repeat", str(args.repeat), "--work", str(work)]
    if tree is not None:
        cmd += ["--tree", str(tree)]
    env = dict(os.environ, PYTHONPATH=str(tree or REPO))
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise SystemExit(f"measuring {tree or REPO} failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def merge_best(results: list) -> dict:
    """The fastest time of every measurement over rounds."""
    out = json.loads(json.dumps(results[0]))
    for res in results[1:]:
        for key, run in res["runs"].items():
            o = out["runs"][key]
            o["stages"] = [[n, min(a, b)] for (n, a), (_, b) in zip(o["stages"], run["stages"])]
            o["store"] = min(o["store"], run["store"])
            o["store_x"] = min(o["store_x"], run["store_x"])
    return out


def render(new: dict, old: dict | None, cmd: str, rev: str | None, repeat: int, rounds: int) -> str:
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    from lplabel.testing import describe_machine

    mb = 1e6
    lines = [
        f"# lplabel encode speed, stage by stage ({_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M} UTC)",
        "",
        f"Machine: {describe_machine()} (threads pinned to 1), tree {head.stdout.strip()}"
        + (f", baseline {rev}" if rev else "")
        + ".",
        f"Command: `{cmd}`",
        "",
        "Content: LPQLD's top-k of real EfficientNet-Lite0 ImageNet-1K logits (C = 1,000), 2,000 views, the "
        "cache of `bench_import_smallest.py`; the chain `lplabel encode DIR [--layout L]` builds (tie order "
        "kept). MB/s = dense-equivalent fp16 (records x 1,000 x 2 bytes) per second on one core, best of "
        f"{repeat} per round"
        + (f", best of {rounds} rounds alternating the two trees" if old else "")
        + ". Stages: one 8-step chunk (800 records). Store: `StoreWriter` writing every column (views at "
        f"zstd 19) of 2,000 records, and of {TIMES * 2000:,} (the content {TIMES} times); per record = the "
        f"difference of the two, fixed = what a file costs whatever its size.",
        "",
    ]
    for key, run in new["runs"].items():
        dense = lambda n: n * 1000 * 2  # noqa: E731
        base = old["runs"][key] if old else None
        lines += [f"## {key}", ""]
        if base is not None:
            same = base["digest"] == run["digest"]
            lines += [
                f"Stored label bytes identical to the baseline: {'yes' if same else 'NO'} ({run['label_bytes']:,} bytes).",
                "",
            ]
            lines += ["| stage | MB/s | before MB/s | x |", "|---|---:|---:|---:|"]
        else:
            lines += ["| stage | MB/s |", "|---|---:|"]
        cr = dense(run["chunk_records"])
        rows = [(n, t, base["stages"][i][1] if base else None) for i, (n, t) in enumerate(run["stages"])]
        total = sum(t for _, t, _ in rows)
        btotal = sum(b for _, _, b in rows) if base else None
        rows.append(("**label chain in all**", total, btotal))
        rec = run["records"]
        per = (run["store_x"] - run["store"]) / ((TIMES - 1) * rec)
        rows_store = [
            (f"store of {rec:,} records (file MB/s)", run["store"] / dense(rec), None),
            (f"store of {TIMES * rec:,} records", run["store_x"] / dense(TIMES * rec), None),
            ("store, per record (the difference)", per / dense(1), None),
        ]
        if base:
            bper = (base["store_x"] - base["store"]) / ((TIMES - 1) * rec)
            rows_store = [
                (rows_store[0][0], rows_store[0][1], base["store"] / dense(rec)),
                (rows_store[1][0], rows_store[1][1], base["store_x"] / dense(TIMES * rec)),
                (rows_store[2][0], rows_store[2][1], bper / dense(1)),
            ]
        for name, t, b in rows:
            cells = [name, f"{cr / t / mb:,.0f}"]
            if base:
                cells += [f"{cr / b / mb:,.0f}", f"{b / t:.2f}"]
            lines.append("| " + " | ".join(cells) + " |")
        for name, spb, bspb in rows_store:  # seconds per dense byte
            cells = [name, f"{1 / spb / mb:,.0f}"]
            if base:
                cells += [f"{1 / bspb / mb:,.0f}", f"{bspb / spb:.2f}"]
            lines.append("| " + " | ".join(cells) + " |")
        fixed = run["store"] - per * rec
        text = f"Fixed cost of a file: {fixed * 1e3:.0f} ms"
        if base:
            text += f" (before: {(base['store'] - bper * rec) * 1e3:.0f} ms)"
        lines += ["", text + ".", ""]
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ks", default="10,50,100")
    ap.add_argument("--layouts", default="rans,planes")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--baseline", default=None, help="a git revision to compare with")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--work", type=Path, default=REPO / "out" / "bench-encode")
    ap.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--tree", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    ks = [int(x) for x in args.ks.split(",")]
    layouts = args.layouts.split(",")
    if args.measure:  # the subprocess: this tree's (or --tree's) lplabel, one JSON line out
        if args.tree is not None:
            sys.path.insert(0, str(args.tree))
        args.work.mkdir(parents=True, exist_ok=True)
        print(json.dumps(measure(ks, layouts, args.repeat, args.work)))
        return
    base_tree = None
    if args.baseline:
        base_tree = REPO / "out" / f"baseline-{args.baseline}"
        if not (base_tree / "lplabel").exists():  # an exported copy: no git state is touched
            base_tree.mkdir(parents=True, exist_ok=True)
            tar = subprocess.run(["git", "-C", str(REPO), "archive", args.baseline], capture_output=True, check=True)
            subprocess.run(["tar", "-x", "-C", str(base_tree)], input=tar.stdout, check=True)
    news, olds = [], []
    for r in range(args.rounds if base_tree else 1):
        news.append(run_tree(None, args, args.work / "new"))
        print(f"round {r}: new {json.dumps(news[-1]['runs'])[:200]}...", file=sys.stderr)
        if base_tree:
            olds.append(run_tree(base_tree, args, args.work / "old"))
    new = merge_best(news)
    old = merge_best(olds) if olds else None
    shutil.rmtree(args.work, ignore_errors=True)
    cmd = "python benchmarks/bench_encode.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = render(new, old, cmd.strip(), args.baseline, args.repeat, args.rounds)
    out = args.out or REPO / "benchmarks" / "results" / f"encode-{_dt.date.today():%Y-%m-%d}.md"
    out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
