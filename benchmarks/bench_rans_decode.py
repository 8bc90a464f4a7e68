"""Where the ``rans`` layout's decode time goes, and the tie-order decoder before/after (issue 17).

On LPQLD content (the real EfficientNet-Lite0 top-k of ``bench_import_smallest.py``, imported
losslessly: the chain keeps LPQLD's order among tied values, ``order: true``), a chunk's decode
is the rANS kernel, then the tie-order part (``rans.decode_order``: the Lehmer digits of each run
of tied values), then the ``entryorder`` / ``classmap`` / ``topk`` codecs. The tie-order digits
were decoded by a Python loop over records and runs; they are now a numba kernel
(``_rans_kernels.decode_order_digits``). This script times a whole store's label decode with the
Python loop (*before*, kept here as the reference and checked to give the same output) and with
the kernel (*after*), in one run, and the parts of *after*.

    python benchmarks/bench_rans_decode.py [--ks 10,50,100] [--repeat 5] [--out FILE.md]
"""

from __future__ import annotations

import os

os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import argparse  # noqa: E402
import datetime as _dt  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
import bench_import_smallest  # noqa: E402

from lplabel import open_store  # noqa: E402
from lplabel.codecs import rans  # noqa: E402
from lplabel.commands.codec_tools import encode_source  # noqa: E402
from lplabel.errors import CodecError  # noqa: E402
from lplabel.interop.source import LegacySource  # noqa: E402
from lplabel.testing import describe_machine  # noqa: E402


def decode_order_python(data: bytes, values16, dtype, n: int, k: int) -> np.ndarray:
    """The tie-order decoder as it was before the kernel (mode 0 only; reference and *before*)."""
    if data[0] != 0:
        return AFTER(data, values16, dtype, n, k)
    start, length = rans._tie_runs(np.asarray(values16))
    out = np.zeros((n, k), dtype)
    acc, pos = int.from_bytes(data[1:], "little"), 0
    for r in np.flatnonzero((length > 1).any(axis=1)):
        st, ln = start[r], length[r]
        for a in np.unique(st[ln > 1]):
            cols = np.flatnonzero(st == a)
            m = len(cols)
            free = list(range(m))
            for j in range(m):
                nb = (m - j - 1).bit_length()
                d = (acc >> pos) & ((1 << nb) - 1)
                pos += nb
                if d >= len(free):
                    raise CodecError("rans: corrupt chunk: an entry order digit is out of range")
                out[r, cols[j]] = free.pop(d)
    return out


AFTER = rans.decode_order
PARTS = {"decode_order": 0.0, "_tie_runs": 0.0}


def timed(name, fn):
    def wrap(*a, **kw):
        t0 = time.perf_counter()
        try:
            return fn(*a, **kw)
        finally:
            PARTS[name] += time.perf_counter() - t0

    return wrap


def decode_all(st) -> tuple:
    n = len(st.chunks["label"])
    st._cache = {}
    t0 = time.perf_counter()
    out = [st.decode_chunk("label", i) for i in range(n)]
    return time.perf_counter() - t0, out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ks", default="10,50,100")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--work", type=Path, default=REPO / "out" / "bench-rans-decode")
    args = ap.parse_args(argv)
    rans.warm_up()
    d = bench_import_smallest.real_logits()
    S, B, C = d["logits"].shape
    dense = S * B * C * 2
    rows = []
    for k in (int(x) for x in args.ks.split(",")):
        w = args.work / f"k{k}"
        shutil.rmtree(w, ignore_errors=True)
        bench_import_smallest.write_lpqld(d, k, w / "src")
        path = w / "rans.lpl"
        encode_source(
            LegacySource(w / "src", "lpqld", num_classes=C), path, layout="rans", steps_per_chunk=8, force=True
        )
        st = open_store(path)
        best = {}
        outs = {}
        for _ in range(args.repeat):
            for name, fn in (("before", decode_order_python), ("after", AFTER)):
                rans.decode_order = fn
                t, outs[name] = decode_all(st)
                best[name] = min(best.get(name, t), t)
        rans.decode_order = AFTER
        for a, b in zip(outs["before"], outs["after"]):
            for f in a:
                assert np.array_equal(np.asarray(a[f]), np.asarray(b[f])), f"k={k}: {f} differs before/after"
        # the parts of *after* (best of repeat for each part separately is not additive: one pass)
        rans.decode_order = timed("decode_order", AFTER)
        tie = rans._tie_runs
        rans._tie_runs = timed("_tie_runs", tie)
        for p in PARTS:
            PARTS[p] = 0.0
        t_all, _ = decode_all(st)
        parts = dict(PARTS)
        rans.decode_order, rans._tie_runs = AFTER, tie
        st.close()
        rows.append((k, best["before"], best["after"], t_all, parts))
        print(rows[-1], flush=True)
        shutil.rmtree(w, ignore_errors=True)
    ver = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    cmd = "python benchmarks/bench_rans_decode.py " + " ".join(argv if argv is not None else sys.argv[1:])
    lines = [
        f"# `rans` decode: where the time goes, tie-order digits before/after "
        f"({_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M} UTC)",
        "",
        f"Machine: {describe_machine()}, tree {ver.stdout.strip()} (+ working tree).",
        f"Command: `{cmd.strip()}`",
        "",
        f"Content: LPQLD MR-k files of {S * B:,} real records (EfficientNet-Lite0, C = 1,000), "
        "`encode_source(..., layout='rans', steps_per_chunk=8)` as `lplabel encode DIR --layout rans` "
        "builds it (LPQLD's tie order kept). Decode = every label chunk through `LabelStore.decode_chunk` "
        f"(read, CRC, whole chain), one thread, best of {args.repeat}, before and after alternated in one "
        "run; GB/s of dense-equivalent fp16 (records x 1,000 x 2 bytes). Outputs before and after are "
        "checked equal.",
        "",
        "| k | before s | before GB/s | after s | after GB/s | speed-up | after: tie-order part (of which run "
        "starts) | after: the rest (rANS kernel, entryorder, classmap, topk, I/O) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for k, b, a, t_all, parts in rows:
        lines.append(
            f"| {k} | {b:.4f} | {dense / b / 1e9:.2f} | {a:.4f} | {dense / a / 1e9:.2f} | {b / a:.2f}x | "
            f"{parts['decode_order'] / t_all:.0%} ({parts['_tie_runs'] / t_all:.0%}) | "
            f"{1 - parts['decode_order'] / t_all:.0%} |"
        )
    text = "\n".join(lines) + "\n"
    out = args.out or REPO / "benchmarks" / "results" / f"rans-decode-{_dt.date.today():%Y-%m-%d}.md"
    out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
