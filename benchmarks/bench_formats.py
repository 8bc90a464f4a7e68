"""lplabel against general-purpose array formats on the same real top-k content (issue 17).

Content: LPQLD's top-k labels of real teacher logits (EfficientNet-Lite0, ImageNet-1K, C = 1,000,
Tiny-ImageNet views at 224 px with RandomResizedCrop + flip + CutMix; the 2,000 records that
``bench_import_smallest.py`` caches under ``out/bench-cache/``), quantized as LPQLD does
(``torch.topk`` on fp32 logits, fp16 values, int16 indices), for k = 10, 50, 100. Every format
stores exactly those two arrays (lplabel and LPQLD also store the view fields; they cost a few
bytes a record and are counted) and is checked to give them back bit for bit.

Rows (a missing optional package gives a "not installed" row, never a crash):

* lplabel, the default lossless layout (``planes``: sorted entries, index gaps in a learnt class
  order, byte planes, zstd) and ``rans`` (context models + rANS), 8 steps per chunk -- the chain
  ``lplabel encode DIR [--layout rans]`` builds, written with ``StoreWriter`` (LPQLD's order among
  tied values kept, as the general formats keep it; decoded in the one compiled pass of
  ``lplabel.codecs.fused``); ``planes`` without that tie order; the default layout decoded codec
  by codec with each codec's compiled loops (before the fused pass); and codec by codec with the
  numpy code of entryorder/delta/classmap (an install without numba);
* HDF5 + hdf5plugin Blosc2 (zstd, bitshuffle), chunks of 800 records;
* zarr v3 (Blosc zstd + bitshuffle), chunks of 800 records;
* Parquet via pyarrow (zstd, fixed-size lists, BYTE_STREAM_SPLIT on the values), row groups of 800;
* npz (``np.savez_compressed``, one entry per step and field);
* safetensors + zstd (one zstd frame per 8-step chunk);
* LPQLD's ``torch.save`` files (one per step, as its generator writes them).

Columns: bytes per record (``du`` of the file or directory / records); encode and decode speed in
MB/s of *dense-equivalent fp16* (records x C x 2 bytes) on one core (threads pinned to 1); one-step
latency = reading one step's 100 records from a copy written with one step per chunk/row group/
file (cold per-call state, warm page cache); each also as a ratio against lplabel's default.
The memory-copy ceiling is ``np.copyto`` of the raw top-k arrays, in the same units.

    python benchmarks/bench_formats.py [--ks 10,50,100] [--repeat 3] [--out benchmarks/results/formats-DATE.md]
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "BLOSC_NTHREADS", "NUMBA_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_v] = "1"  # one core, before any of the libraries starts its pool

import argparse  # noqa: E402
import datetime as _dt  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
import bench_codecs  # noqa: E402
import bench_import_smallest  # noqa: E402

from lplabel import StoreWriter, open_store  # noqa: E402
from lplabel.codecs import get_codec  # noqa: E402
from lplabel.commands.codec_tools import encode_source  # noqa: E402
from lplabel.interop import du_bytes  # noqa: E402
from lplabel.interop.source import LegacySource  # noqa: E402
from lplabel.recode import view_codecs  # noqa: E402
from lplabel.testing import describe_machine  # noqa: E402

STEPS_PER_CHUNK = 8
NOT_INSTALLED = "not installed"


class Missing(Exception):
    """An optional package is absent: the row says so."""


def need(module: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise Missing(f"{NOT_INSTALLED} ({module}: {e})") from None


def file_bytes(path: Path) -> int:
    """Exact bytes of a file or of every file under a directory (``du`` rounds to 4 KiB blocks, which
    is several % of a small store)."""
    p = Path(path)
    return p.stat().st_size if p.is_file() else sum(f.stat().st_size for f in p.rglob("*") if f.is_file())


from timing import best  # noqa: E402


# ------------------------------------------------------------------------------ content
class Content:
    """LPQLD's top-k of every step: ``idx`` int16 [S, B, k], ``val`` fp16 [S, B, k]."""

    def __init__(self, d: dict, k: int):
        self.d, self.k = d, k
        pairs = [bench_codecs.lpqld_topk(d["logits"][s], k) for s in range(len(d["epoch"]))]
        self.idx = np.stack([p[0] for p in pairs])
        self.val = np.stack([p[1] for p in pairs])
        self.S, self.B, self.C = d["logits"].shape
        self.R = self.S * self.B
        self.dense_bytes = self.R * self.C * 2

    def check(self, idx, val, what: str) -> None:
        idx = np.asarray(idx).reshape(self.idx.shape)
        val = np.asarray(val).reshape(self.val.shape)
        if not (
            np.array_equal(idx.astype(np.int16), self.idx)
            and np.array_equal(val.astype(np.float16).view(np.uint16), self.val.view(np.uint16))
        ):
            raise AssertionError(f"{what}: decoded top-k differs from the content")

    def chunks(self, spc: int):
        for a in range(0, self.S, spc):
            yield a, self.idx[a : a + spc].reshape(-1, self.k), self.val[a : a + spc].reshape(-1, self.k)


# ------------------------------------------------------------------------------ formats
# Each returns dict(bytes=, enc=, dec=, step=) in seconds; ``work`` is an empty directory.


def fmt_lplabel(
    c: Content,
    work: Path,
    repeat: int,
    layout: str,
    lpqld_dir: Path,
    tie_order: bool = True,
    kernels: bool = True,
    fused: bool = True,
) -> dict:
    """``tie_order=False``: the chain without its ``entryorder`` codec, i.e. the same (index, value)
    pairs per record without LPQLD's order among tied values (what training needs).
    ``fused=False``: decoded codec by codec (each codec's compiled loops) instead of in the one
    pass of ``lplabel.codecs.fused`` (what every install ran before it).
    ``kernels=False``: entryorder, delta and classmap run their numpy reference code, codec by codec
    (what an install without numba runs)."""
    if not (kernels and fused):
        from lplabel.codecs import _compiled

        saved = dict(_compiled._FOUND)
        _compiled._FOUND.update(dict.fromkeys(_compiled.MODULES if not kernels else ("_fused_kernels",)))
        try:
            return fmt_lplabel(c, work, repeat, layout, lpqld_dir, tie_order)
        finally:
            _compiled._FOUND.clear()
            _compiled._FOUND.update(saved)
    d = c.d
    # the chain `lplabel encode DIR --layout L` builds (class order / model learnt from the data)
    probe = work / "probe.lpl"
    src = LegacySource(lpqld_dir, "lpqld", num_classes=c.C)
    encode_source(src, probe, layout=layout, steps_per_chunk=STEPS_PER_CHUNK, force=True)
    st = open_store(probe)
    chain = [get_codec(x) for x in st.header["columns"]["label"]["codecs"] if tie_order or x["name"] != "entryorder"]
    st.close()
    meta = bench_codecs.meta_of(d)
    idx64 = c.idx.astype(np.int64)
    val32 = c.val.astype(np.float32)
    crop16 = d["crop"].astype(np.float16)
    partner = d["mix_partner"].astype(np.uint8).astype(np.int16)
    box = d["mix_box"].astype(np.uint8)

    def write(path, spc):
        with StoreWriter(
            path,
            **meta,
            label_codecs=chain,
            label_input=("topk", c.k),
            crop_type="float16",
            steps_per_chunk=spc,
            zstd_level=19,
            view_codecs=view_codecs(19),
            overwrite=True,
        ) as w:
            for s in range(c.S):
                w.write_step(
                    int(d["epoch"][s]),
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

    path = work / f"{layout}.lpl"
    enc = best(lambda: write(path, STEPS_PER_CHUNK), repeat)
    st = open_store(path)
    n = len(st.chunks["label"])
    out = [None] * n

    def dec():
        st._cache = {}
        for i in range(n):
            out[i] = st.decode_chunk("label", i)

    dt = best(dec, repeat)
    gi = np.concatenate([o["indices"] for o in out]).astype(np.int64)
    gv = np.concatenate([np.asarray(o["values"]) for o in out])
    # lplabel hands entries back sorted (LPQLD's tie order is kept by the chain, not asked for
    # here): compare (index, value) pairs per record in index order
    ri = c.idx.reshape(c.R, -1).astype(np.int64)
    a = np.argsort(ri, axis=1, kind="stable")
    b = np.argsort(gi, axis=1, kind="stable")
    ref_v = np.take_along_axis(c.val.reshape(c.R, -1), a, 1)
    got_v = np.take_along_axis(gv, b, 1).astype(np.float16)
    if not (
        np.array_equal(np.take_along_axis(ri, a, 1), np.take_along_axis(gi, b, 1))
        and np.array_equal(ref_v.view(np.uint16), got_v.view(np.uint16))
    ):
        raise AssertionError(f"lplabel {layout}: decoded top-k differs from the content")
    size = du_bytes(path)
    label = int(st.chunks["label"][:, 2].sum())  # (segment, offset, length) rows
    st.close()
    one = work / f"{layout}-1.lpl"
    write(one, 1)
    st1 = open_store(one)
    mid = c.S // 2

    def step():
        st1._cache = {}
        st1.decode_chunk("label", mid)

    lat = best(step, max(repeat, 20))
    st1.close()
    return dict(bytes=size, file=file_bytes(path), label=label, enc=enc, dec=dt, step=lat)


def fmt_hdf5_blosc2(c: Content, work: Path, repeat: int) -> dict:
    h5py = need("h5py")
    hdf5plugin = need("hdf5plugin")
    filt = hdf5plugin.Blosc2(cname="zstd", clevel=5, filters=hdf5plugin.Blosc2.BITSHUFFLE)

    def write(path, rows):
        with h5py.File(path, "w") as f:
            f.create_dataset("indices", data=c.idx.reshape(c.R, -1), chunks=(rows, c.k), **filt)
            f.create_dataset("values", data=c.val.reshape(c.R, -1), chunks=(rows, c.k), **filt)

    path = work / "b2.h5"
    enc = best(lambda: write(path, STEPS_PER_CHUNK * c.B), repeat)
    res = {}

    def dec():
        with h5py.File(path, "r") as f:
            res["i"], res["v"] = f["indices"][...], f["values"][...]

    dt = best(dec, repeat)
    c.check(res["i"], res["v"], "hdf5")
    one = work / "b2-1.h5"
    write(one, c.B)
    f1 = h5py.File(one, "r")
    a = (c.S // 2) * c.B
    lat = best(lambda: (f1["indices"][a : a + c.B], f1["values"][a : a + c.B]), max(repeat, 20))
    f1.close()
    return dict(bytes=du_bytes(path), file=file_bytes(path), enc=enc, dec=dt, step=lat)


def fmt_zarr(c: Content, work: Path, repeat: int) -> dict:
    zarr = need("zarr")
    if int(zarr.__version__.split(".")[0]) < 3:
        raise Missing(f"{NOT_INSTALLED} (zarr v3; found {zarr.__version__})")
    from zarr.codecs import BloscCodec

    zarr.config.set({"threading.max_workers": 1, "async.concurrency": 1})

    def write(path, rows):
        shutil.rmtree(path, ignore_errors=True)
        g = zarr.open_group(str(path), mode="w", zarr_format=3)
        for name, a in (("indices", c.idx), ("values", c.val)):
            arr = g.create_array(
                name,
                shape=(c.R, c.k),
                chunks=(rows, c.k),
                dtype=a.dtype,
                compressors=BloscCodec(cname="zstd", clevel=5, shuffle="bitshuffle"),
            )
            arr[...] = a.reshape(c.R, -1)

    path = work / "z.zarr"
    enc = best(lambda: write(path, STEPS_PER_CHUNK * c.B), repeat)
    res = {}

    def dec():
        g = zarr.open_group(str(path), mode="r")
        res["i"], res["v"] = g["indices"][...], g["values"][...]

    dt = best(dec, repeat)
    c.check(res["i"], res["v"], "zarr")
    one = work / "z-1.zarr"
    write(one, c.B)
    g1 = zarr.open_group(str(one), mode="r")
    i1, v1 = g1["indices"], g1["values"]
    a = (c.S // 2) * c.B
    lat = best(lambda: (i1[a : a + c.B], v1[a : a + c.B]), max(repeat, 20))
    return dict(bytes=du_bytes(path), file=file_bytes(path), enc=enc, dec=dt, step=lat)


def fmt_parquet(c: Content, work: Path, repeat: int) -> dict:
    pa = need("pyarrow")
    pq = need("pyarrow.parquet")
    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)
    k = c.k

    def table():
        i = pa.FixedSizeListArray.from_arrays(pa.array(c.idx.ravel()), k)
        v = pa.FixedSizeListArray.from_arrays(pa.array(c.val.ravel()), k)
        return pa.table({"indices": i, "values": v})

    def write(path, rows):
        pq.write_table(
            table(),
            path,
            row_group_size=rows,
            compression="zstd",
            use_dictionary=["indices"],
            use_byte_stream_split=["values"],
        )

    path = work / "t.parquet"
    enc = best(lambda: write(path, STEPS_PER_CHUNK * c.B), repeat)
    res = {}

    def dec():
        t = pq.read_table(path, use_threads=False)
        res["i"] = t.column("indices").combine_chunks().flatten().to_numpy()
        res["v"] = t.column("values").combine_chunks().flatten().to_numpy()

    dt = best(dec, repeat)
    c.check(res["i"], res["v"], "parquet")
    one = work / "t-1.parquet"
    write(one, c.B)
    pf = pq.ParquetFile(one)
    g = c.S // 2

    def step():
        t = pf.read_row_group(g, use_threads=False)
        return t.column("indices").combine_chunks().flatten().to_numpy(), t.column(
            "values"
        ).combine_chunks().flatten().to_numpy()

    lat = best(step, max(repeat, 20))
    return dict(bytes=du_bytes(path), file=file_bytes(path), enc=enc, dec=dt, step=lat)


def fmt_npz(c: Content, work: Path, repeat: int) -> dict:
    path = work / "t.npz"
    arrays = {}
    for s in range(c.S):
        arrays[f"i{s}"], arrays[f"v{s}"] = c.idx[s], c.val[s]
    enc = best(lambda: np.savez_compressed(path, **arrays), repeat)
    res = {}

    def dec():
        with np.load(path) as z:
            res["i"] = np.stack([z[f"i{s}"] for s in range(c.S)])
            res["v"] = np.stack([z[f"v{s}"] for s in range(c.S)])

    dt = best(dec, repeat)
    c.check(res["i"], res["v"], "npz")
    g = c.S // 2

    def step():
        with np.load(path) as z:
            return z[f"i{g}"], z[f"v{g}"]

    lat = best(step, max(repeat, 20))
    return dict(bytes=du_bytes(path), file=file_bytes(path), enc=enc, dec=dt, step=lat)


def fmt_safetensors_zstd(c: Content, work: Path, repeat: int) -> dict:
    st_np = need("safetensors.numpy")
    import zstandard

    def write(path, spc):
        cz = zstandard.ZstdCompressor(level=9)
        with open(path, "wb") as f:
            offs = []
            for _, i, v in c.chunks(spc):
                frame = cz.compress(st_np.save({"indices": np.ascontiguousarray(i), "values": np.ascontiguousarray(v)}))
                offs.append((f.tell(), len(frame)))
                f.write(frame)
        return offs

    path = work / "t.safetensors.zst"
    holder = {}
    enc = best(lambda: holder.__setitem__("offs", write(path, STEPS_PER_CHUNK)), repeat)
    res = {}

    def dec():
        dz = zstandard.ZstdDecompressor()
        iv, vv = [], []
        with open(path, "rb") as f:
            for off, n in holder["offs"]:
                f.seek(off)
                t = st_np.load(dz.decompress(f.read(n)))
                iv.append(t["indices"])
                vv.append(t["values"])
        res["i"], res["v"] = np.concatenate(iv), np.concatenate(vv)

    dt = best(dec, repeat)
    c.check(res["i"], res["v"], "safetensors")
    one = work / "t1.safetensors.zst"
    offs1 = write(one, 1)
    off, n = offs1[c.S // 2]

    def step():
        with open(one, "rb") as f:
            f.seek(off)
            return st_np.load(zstandard.ZstdDecompressor().decompress(f.read(n)))

    lat = best(step, max(repeat, 20))
    return dict(bytes=du_bytes(path), file=file_bytes(path), enc=enc, dec=dt, step=lat)


def fmt_lpqld(c: Content, work: Path, repeat: int) -> dict:
    import torch

    d = c.d
    out = work / "lpqld"
    enc = best(lambda: (shutil.rmtree(out, ignore_errors=True), bench_import_smallest.write_lpqld(d, c.k, out)), repeat)
    files = [out / f"batch_{s}.tar" for s in range(c.S)]
    res = {}

    def dec():
        objs = [torch.load(f, weights_only=True) for f in files]
        res["v"] = np.stack([o[5].numpy() for o in objs])
        res["i"] = np.stack([o[6].numpy() for o in objs])

    dt = best(dec, repeat)
    c.check(res["i"], res["v"], "lpqld")
    mid = files[c.S // 2]
    lat = best(lambda: torch.load(mid, weights_only=True), max(repeat, 20))
    return dict(bytes=du_bytes(out), file=file_bytes(out), enc=enc, dec=dt, step=lat)


def copy_ceiling(c: Content, repeat: int) -> float:
    """Seconds to copy the raw top-k arrays once (np.copyto), best of ``repeat`` x 5."""
    di, dv = np.empty_like(c.idx), np.empty_like(c.val)
    return best(lambda: (np.copyto(di, c.idx), np.copyto(dv, c.val)), repeat * 5)


FORMATS = [
    ("lplabel default (planes)", lambda c, w, r, src: fmt_lplabel(c, w, r, "planes", src)),
    ("lplabel rans", lambda c, w, r, src: fmt_lplabel(c, w, r, "rans", src)),
    ("lplabel planes without LPQLD's tie order", lambda c, w, r, src: fmt_lplabel(c, w, r, "planes", src, False)),
    (
        "lplabel default (planes), codec by codec (before the fused pass)",
        lambda c, w, r, src: fmt_lplabel(c, w, r, "planes", src, fused=False),
    ),
    (
        "lplabel default (planes), numpy loops (no numba)",
        lambda c, w, r, src: fmt_lplabel(c, w, r, "planes", src, kernels=False),
    ),
    ("HDF5 + Blosc2 zstd bitshuffle", lambda c, w, r, src: fmt_hdf5_blosc2(c, w, r)),
    ("zarr v3 (Blosc zstd bitshuffle)", lambda c, w, r, src: fmt_zarr(c, w, r)),
    ("Parquet (zstd, BYTE_STREAM_SPLIT)", lambda c, w, r, src: fmt_parquet(c, w, r)),
    ("npz (savez_compressed)", lambda c, w, r, src: fmt_npz(c, w, r)),
    ("safetensors + zstd 9", lambda c, w, r, src: fmt_safetensors_zstd(c, w, r)),
    ("LPQLD torch.save files", lambda c, w, r, src: fmt_lpqld(c, w, r)),
]


def run_k(d: dict, k: int, work: Path, repeat: int, log=print) -> tuple:
    import torch

    torch.set_num_threads(1)
    c = Content(d, k)
    src = work / f"src-k{k}"
    shutil.rmtree(src, ignore_errors=True)
    bench_import_smallest.write_lpqld(d, k, src)
    rows = []
    for name, fn in FORMATS:
        w = work / f"k{k}-{len(rows)}"
        shutil.rmtree(w, ignore_errors=True)
        w.mkdir(parents=True)
        try:
            r = fn(c, w, repeat, src)
        except Missing as e:
            r = {"missing": str(e)}
        rows.append((name, r))
        log(f"k={k} {name}: {r}")
        shutil.rmtree(w, ignore_errors=True)
    shutil.rmtree(src, ignore_errors=True)
    return c, rows, copy_ceiling(c, repeat)


def render(results: list, cmd: str, repeat: int) -> str:
    ver = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    mb = 1e6
    lines = [
        f"# lplabel against general-purpose formats, top-k of real logits "
        f"({_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M} UTC)",
        "",
        f"Machine: {describe_machine()} (every library pinned to one thread), tree {ver.stdout.strip()}.",
        f"Command: `{cmd}`",
        "",
        "Content: LPQLD's top-k (fp16 values, int16 indices, `torch.topk` on fp32 logits) of EfficientNet-Lite0 "
        "ImageNet-1K logits (C = 1,000) on 2,000 Tiny-ImageNet views at 224 px (20 steps of 100), the cache "
        "of `bench_import_smallest.py`. Every row decodes the content back bit for bit (checked). "
        "MB/s = dense-equivalent fp16 (records x 1,000 x 2 bytes) per second, best of "
        f"{repeat}; bytes/record = `du` / records (lplabel and LPQLD include the view fields). "
        "One step = read and decode one step's 100 records from a copy written with one step per "
        "chunk (row group, frame, file). Ratios: x = this row / lplabel default (for bytes, below 1 is "
        "smaller than lplabel; for speeds, above 1 is faster than lplabel).",
        "",
    ]
    for k, c, rows, copy_s in results:
        ref = rows[0][1]
        lines += [
            f"## k = {k} ({c.R:,} records, {c.dense_bytes / mb:.1f} MB dense-equivalent)",
            "",
            "| format | bytes/record (du) | x | file bytes/record | x | encode MB/s | x | decode MB/s | x | one step µs | x |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for name, r in rows:
            if "missing" in r:
                lines.append(f"| {name} | {r['missing']} | | | | | | | | | |")
                continue
            bpr = r["bytes"] / c.R
            e, dd = c.dense_bytes / r["enc"] / mb, c.dense_bytes / r["dec"] / mb
            lines.append(
                f"| {name} | {bpr:.1f} | {r['bytes'] / ref['bytes']:.2f} | {r['file'] / c.R:.1f} | "
                f"{r['file'] / ref['file']:.2f} | {e:,.0f} | {ref['enc'] / r['enc']:.2f} "
                f"| {dd:,.0f} | {ref['dec'] / r['dec']:.2f} | {r['step'] * 1e6:,.0f} | "
                f"{ref['step'] / r['step']:.2f} |"
            )
        lines += [
            f"| memory-copy ceiling (np.copyto of the raw top-k arrays) | {c.k * 4:.1f} (raw) | | | | | | "
            f"{c.dense_bytes / copy_s / mb:,.0f} | {ref['dec'] / copy_s:.2f} | | |",
            "",
        ]
        own = [f"{name}: {r['label'] / c.R:.1f}" for name, r in rows if "label" in r]
        lines += [
            "Label column alone (lplabel, bytes/record; the rest of the file is the view columns, header "
            "and tables): " + "; ".join(own) + ".",
            "",
        ]
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ks", default="10,50,100")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--work", type=Path, default=REPO / "out" / "bench-formats")
    args = ap.parse_args(argv)
    from lplabel.codecs.rans import warm_up

    warm_up()
    d = bench_import_smallest.real_logits()
    d["num_images"] = int(d["image"].max()) + 1
    results = []
    for k in (int(x) for x in args.ks.split(",")):
        c, rows, copy_s = run_k(d, k, args.work, args.repeat)
        results.append((k, c, rows, copy_s))
    shutil.rmtree(args.work, ignore_errors=True)
    cmd = "python benchmarks/bench_formats.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = render(results, cmd.strip(), args.repeat)
    out = args.out or REPO / "benchmarks" / "results" / f"formats-{_dt.date.today():%Y-%m-%d}.md"
    out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
