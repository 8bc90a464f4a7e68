"""How close is lplabel's lossless top-k coding to the information in LPQLD's content?

Byte-wise zstd (the ``planes`` layout) stores LPQLD's k = 100 content 2.40x smaller than LPQLD's own
files, short of the 2.5x the codecs issue asks for; the ``rans`` layout (context models + rANS) gets
past it. This script measures, on the same real teacher logits, what each part of a record costs in
the stored chains and what an ideal coder with richer models could reach:

* the fp16 values split into their high byte (sign, exponent, top 2 mantissa bits) and low byte
  (bottom 8 mantissa bits) — the low byte of a teacher logit is uniformly random, 8 bits per value;
* the class-index set, coded as gaps in a learnt class order (what lplabel stores), against the
  entropy of class membership with a per-class probability and with a Markov context on the
  previous class in that order (what an adaptive binary arithmetic coder could reach);
* the view fields (crop box, image id, flip, mix partner) against their order-0 entropy.

Entropies are empirical on the data itself (model parameters not charged), so they are optimistic
bounds. Sizes are zstd level 19 on 1,024-record chunks, as in the store.

    python benchmarks/floor_topk.py [--k 100] [--out benchmarks/results/codecs-floor-DATE.md]
"""

from __future__ import annotations

import argparse
import datetime as _dt
import math
import os
import sys
from pathlib import Path

import numpy as np
import zstandard

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_codecs  # noqa: E402  (same data, same LPQLD layout)

from lplabel.codecs.classmap import learn_class_order  # noqa: E402
from lplabel.codecs.rans import monotone  # noqa: E402  (fp16 bits in value order)
from lplabel.testing import cpu_name  # noqa: E402

CHUNK = 1024


def zsize(a: np.ndarray) -> int:
    """Bytes of ``a`` (rows = records) compressed in CHUNK-record zstd frames."""
    c = zstandard.ZstdCompressor(level=19)
    return sum(len(c.compress(np.ascontiguousarray(a[i : i + CHUNK]).tobytes())) for i in range(0, len(a), CHUNK))


def entropy(x: np.ndarray) -> float:
    """Order-0 entropy in bits per symbol."""
    _, n = np.unique(np.asarray(x).ravel(), return_counts=True)
    p = n / n.sum()
    return float(-(p * np.log2(p)).sum())


def bernoulli_bits(p) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-12, 1 - 1e-12)
    return -(p * np.log2(p) + (1 - p) * np.log2(1 - p))


def stored_now(d: dict, k: int, workdir: Path, layout: str = "planes") -> dict:
    """LPQLD's content written in the current store format with lplabel's best lossless chains, read
    back and checked equal: ``planes`` (byte planes, index gaps in the learnt co-occurrence class
    order, zstd 19) or ``rans`` (the same class order, then the context-modelled rANS codec with its
    model learnt from the labels); 8 steps per chunk. Also the label decode speed."""
    C = d["logits"].shape[2]
    # learnt from every step (class order; for rans also its model), which compiles the rans coder before timing
    chain = bench_codecs.lpqld_chain(
        d,
        k,
        class_order="cooccurrence",
        layout=layout,
        index_coding="index-delta",
        level=None if layout == "rans" else 19,
    )
    path = workdir / f"lossless-k{k}-{layout}.lpl"
    path.unlink(missing_ok=True)
    enc_s = bench_codecs.write_lpqld_content(d, k, path, chain, steps_per_chunk=8)
    bench_codecs.check_lossless(d, k, path)
    acc = bench_codecs.byte_accounting(path)
    R, f = acc["records"], acc["by_field"]
    views = sum(f[f"column.{c}"] for c in ("image", "crop", "flip", "mix_partner"))
    dec_s = bench_codecs.decode_seconds(path, repeat=9)
    out = {
        "file": acc["file_bytes"] / R,
        "labels": f["column.label"] / R,
        "views": views / R,
        "rest": (acc["file_bytes"] - f["column.label"] - views) / R,
        "decode_mb_s": R * C * 2 / dec_s / 1e6,
        "encode_mb_s": R * C * 2 / enc_s / 1e6,
    }
    path.unlink()
    return out


def measure(d: dict, k: int) -> dict:
    S, B, C = d["logits"].shape
    idx, val = bench_codecs.lpqld_topk(d["logits"].reshape(-1, C), k)
    idx = idx.astype(np.int64)
    R = len(idx)
    order = learn_class_order(idx, C, "cooccurrence")
    rank = np.empty(C, np.int64)
    rank[order] = np.arange(C)
    r = rank[idx]
    by_class = np.argsort(r, axis=1)
    sr = np.take_along_axis(r, by_class, 1)
    u = np.take_along_axis(val, by_class, 1).view(np.uint16)
    gaps = np.diff(np.concatenate([np.full((R, 1), -1), sr], 1), axis=1)
    out = {"k": k, "records": R, "classes": C}
    # what lplabel's default lossless chain stores, part by part
    out["stored_gaps"] = (zsize((gaps & 255).astype(np.uint8)) + zsize((gaps >> 8).astype(np.uint8))) / R
    out["stored_hi"] = zsize((u >> 8).astype(np.uint8)) / R
    out["stored_lo"] = zsize((u & 255).astype(np.uint8)) / R
    out["H_lo_bits"] = entropy(u & 255)
    out["H_hi_bits"] = entropy(u >> 8)
    # high byte relative to the record's smallest (monotone) high byte, the minimum stored per record
    m = (monotone(u) >> 8).astype(np.int64)
    mn = m.min(1, keepdims=True)
    out["hi_minus_min"] = (zsize((m - mn).astype(np.uint8)) + zsize(mn.astype(np.uint8))) / R
    # class membership: per-class probability, then with the previous class (in the order) as context
    X = np.zeros((R, C), np.uint8)
    np.put_along_axis(X, idx, 1, axis=1)
    X = X[:, order]
    out["membership_prior"] = float(bernoulli_bits(X.mean(0)).sum()) / 8
    prev = np.concatenate([np.zeros((R, 1), np.uint8), X[:, :-1]], 1)
    bits = 0.0
    for c in range(C):
        for ctx in (0, 1):
            sel = prev[:, c] == ctx
            if sel.any():
                bits += sel.sum() * float(bernoulli_bits(X[sel, c].mean()))
    out["membership_markov"] = bits / R / 8
    # view fields: order-0 entropy per record (crop columns separately; image ids as a permutation
    # per epoch; mix partners as a permutation per step)
    crop = d["crop"].astype(np.float16).reshape(-1, d["crop"].shape[-1])
    n_img = int(d["image"].max()) + 1
    out["views_floor"] = (
        sum(entropy(crop[:, j]) for j in range(crop.shape[1]))
        + math.lgamma(n_img + 1) / math.log(2) / n_img
        + 1.0
        + math.lgamma(B + 1) / math.log(2) / B
    ) / 8
    return out


def report(d: dict, rows: list, lp: dict) -> str:
    S, B, C = d["logits"].shape
    now = _dt.datetime.now(_dt.timezone.utc)
    lines = [
        f"# Lossless top-k: what the content holds ({now:%Y-%m-%d})",
        "",
        f"- machine: {cpu_name()}, {os.cpu_count()} cores (timings on one); command: "
        f"`python benchmarks/floor_topk.py` (the `rans` rows need numba: `pip install -e '.[rans]'`)",
        f"- data: real EfficientNet-Lite0 ImageNet-1K logits on Tiny-ImageNet views, "
        f"{S} steps of {B}, C = {C} (the codec benchmark's data, `out/bench-cache/`)",
        "- sizes: zstd level 19, 1,024-record chunks; entropies empirical on the data (no model cost: optimistic)",
        "",
        "## Stored now",
        "",
        "LPQLD's content written in the current store format with lplabel's two lossless top-k layouts and "
        "read back equal, 8 steps per chunk: `planes` (byte planes, index gaps in the learnt co-occurrence "
        "class order, zstd 19; `lplabel encode --layout planes`) and `rans` (the same class order, then the "
        "`rans` codec: class membership coded with the previous class in that order as context, value high "
        "bytes with their neighbour's as context, rANS; `lplabel encode --layout rans`). The model is learnt "
        "from the labels and stored in the header (charged). Both are lossless (every (class, value) pair and "
        "view field read back and compared: top-1 agreement 100 %, KL 0). Encode = top-k + coding + writing "
        "every column (model learning not timed); decode = read + CRC + decode every label chunk; MB/s of "
        "dense-equivalent fp16 labels (records x C x 2 B), one core.",
        "",
        "| k | layout | LPQLD B/record (du) | lplabel B/record | labels | views | tables + header + "
        "container | ratio | vs dense fp16 | top-1 agreement, KL@T=20 | encode MB/s | decode MB/s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for o in rows:
        for lay in ("planes", "rans"):
            n = o[f"now_{lay}"]
            lines.append(
                f"| {o['k']} | {lay} | {lp[o['k']]:.1f} | {n['file']:.1f} | {n['labels']:.1f} | "
                f"{n['views']:.1f} | {n['rest']:.2f} | **{lp[o['k']] / n['file']:.2f}x** | "
                f"{C * 2 / n['file']:.1f}x | 100 %, 0 (lossless) | "
                f"{n['encode_mb_s']:,.0f} | {n['decode_mb_s']:,.0f} |"
            )
    lines += [
        "",
        "## Parts against their floors",
        "",
        "| k | LPQLD B/record (du) | 2.5x budget | stored: class gaps | stored: value high byte | "
        "stored: value low byte | labels stored | high byte − record min | membership, per-class p | "
        "membership, + previous-class context | view fields, entropy |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for o in rows:
        k = o["k"]
        lines.append(
            f"| {k} | {lp[k]:.1f} | {lp[k] / 2.5:.1f} | {o['stored_gaps']:.1f} | {o['stored_hi']:.1f} | "
            f"{o['stored_lo']:.1f} ({o['H_lo_bits']:.3f} bits/value) | "
            f"{o['stored_gaps'] + o['stored_hi'] + o['stored_lo']:.1f} | {o['hi_minus_min']:.1f} | "
            f"{o['membership_prior']:.1f} | {o['membership_markov']:.1f} | {o['views_floor']:.1f} |"
        )
    lines += ["", "All sizes in bytes per record.", "", "## Reading it", ""]
    for o in rows:
        k = o["k"]
        best = o["membership_markov"] + o["hi_minus_min"] + o["stored_lo"] + o["views_floor"]
        lines.append(
            f"- k = {k}: the low mantissa bytes alone are {o['stored_lo']:.1f} B "
            f"({o['stored_lo'] / (lp[k] / 2.5):.0%} of the 2.5x budget) and cannot shrink "
            f"({o['H_lo_bits']:.3f} of 8 bits). Class gaps in the learnt order cost "
            f"{o['stored_gaps']:.1f} B, the same as membership coded with a per-class probability "
            f"({o['membership_prior']:.1f} B): zstd is already at that model's entropy. Going "
            f"lower takes context modelling (previous-class context: {o['membership_markov']:.1f} B) "
            f"with an arithmetic coder, which is what the `rans` layout does: its labels take "
            f"{o['now_rans']['labels']:.1f} B/record (planes: {o['now_planes']['labels']:.1f} B), "
            f"{lp[k] / o['now_rans']['file']:.2f}x LPQLD in all, decoding at "
            f"{o['now_rans']['decode_mb_s']:,.0f} MB/s (planes: {o['now_planes']['decode_mb_s']:,.0f} MB/s). "
            f"Sum of the best bounds here, views at their entropy: "
            f"{best:.1f} B/record = {lp[k] / best:.2f}x LPQLD."
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--k", type=int, nargs="+", default=[10, 50, 100])
    ap.add_argument("--out", type=Path, default=Path(f"benchmarks/results/codecs-floor-{_dt.date.today():%Y-%m-%d}.md"))
    args = ap.parse_args(argv)
    d = bench_codecs.dataset("imagenet1k")
    lp, rows = {}, []
    tmp = Path("out/floor-tmp")
    for k in args.k:
        lp[k] = bench_codecs.lpqld_layout_bytes(d, k, tmp)["du_bytes_per_record"]
        rows.append(measure(d, k))
        tmp.mkdir(parents=True, exist_ok=True)
        rows[-1]["now_planes"] = stored_now(d, k, tmp, "planes")
        rows[-1]["now_rans"] = stored_now(d, k, tmp, "rans")
        print(rows[-1], flush=True)
    text = report(d, rows, lp)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
