"""lplabel against general-purpose array formats on the same real top-k content (issue 17).

Content: LPQLD's top-k labels of real teacher logits (EfficientNet-Lite0, ImageNet-1K, C = 1,000,
Tiny-ImageNet views at 224 px with RandomResizedCrop + flip + CutMix; the 2,000 records that
``bench_import_smallest.py`` caches under ``out/bench-cache/``), quantized as LPQLD does
(``torch.topk`` on fp32 logits, fp16 values, int16 indices), for k = 10, 50, 100, with the view
fields that make a label set usable (image id, crop box, flip, mix partner per record; epoch, step,
mix lambda and box per step). Every format stores all of it -- lplabel as its view columns and step
tables, LPQLD inside its pickles, the general formats as arrays/columns/frames of their own beside
the labels, compressed alike -- and is checked to give the labels back bit for bit. (Until
2026-12-05 the general formats stored the labels alone while lplabel's and LPQLD's bytes included
the views, which favoured the general formats by ~8-12 B a record at k = 10.) Decode reads the
labels alone wherever the format allows it (all but LPQLD's pickles).

Rows (a missing optional package gives a "not installed" row, never a crash):

* lplabel, the default lossless layout (``planes``: sorted entries, index gaps in a learnt class
  order, byte planes, zstd) and ``rans`` (context models + rANS), 8 steps per chunk -- the chain
  ``lplabel encode DIR [--layout rans]`` builds, written with ``StoreWriter`` (LPQLD's order among
  tied values kept, ``entryorder``, as the general formats keep it). Each is read two ways: as the
  loader reads a label column (``decode_chunk(..., entry_order=False)``: each record's (index,
  value) pairs in class order -- a soft label is the set of its pairs; the first row, the one the
  ratios refer to) and as exact arrays (LPQLD's entry order restored, ``entryorder``'s rank per
  record). Then ``planes`` with no tie order stored at all; and the loader read decoded codec by
  codec with each codec's compiled loops (no fused pass) and with the numpy code of
  delta/classmap (an install without numba);
* HDF5 + hdf5plugin Blosc2 (zstd, bitshuffle), chunks of 800 records;
* zarr v3 (Blosc zstd + bitshuffle), chunks of 800 records;
* Parquet via pyarrow (zstd, fixed-size lists, BYTE_STREAM_SPLIT on the values), row groups of 800;
* npz (``np.savez_compressed``, one entry per step and field);
* safetensors + zstd (one zstd frame per 8-step chunk);
* LPQLD's ``torch.save`` files (one per step, as its generator writes them).

Columns: bytes per record (``du`` of the file or directory / records); encode and decode speed in
MB/s of *dense-equivalent fp16* (records x C x 2 bytes) on one core (threads pinned to 1); one-step
latency = reading one step's 100 records from a copy written with one step per chunk/row group/
file (cold per-call state, warm page cache); each also as a ratio against the first row. Label
bytes per record: the label column / label arrays alone, as stored.
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

    def views(self) -> tuple:
        """The view fields every format stores beside the labels (what lplabel's view columns and
        step tables and LPQLD's files hold; a label set is unusable without them): per record
        ``image`` int32, ``crop`` float16 [4], ``flip`` bool, ``mix_partner`` int16; per step
        ``epoch``, ``step`` int64, ``mix_lambda`` float64, ``mix_box`` int16 [4]. Returns
        (per-record dict [R, ...], per-step dict [S, ...])."""
        d = self.d
        rec = {
            "image": d["image"].astype(np.int32).reshape(self.R),
            "crop": d["crop"].astype(np.float16).reshape(self.R, 4),
            "flip": d["flip"].astype(bool).reshape(self.R),
            "mix_partner": d["mix_partner"].astype(np.int16).reshape(self.R),
        }
        step = {
            "epoch": d["epoch"].astype(np.int64),
            "step": d["step"].astype(np.int64),
            "mix_lambda": d["mix_lambda"].astype(np.float64),
            "mix_box": d["mix_box"].astype(np.int16),
        }
        return rec, step


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
    entry_order: bool = False,
) -> dict:
    """``entry_order``: decode as ``decode_chunk(..., entry_order=...)`` does -- False (the default)
    is how the loader reads a label column (each record's pairs, LPQLD's order among tied values not
    restored: training never needs it), True gives LPQLD's arrays back in their exact order.
    ``tie_order=False``: the chain without its ``entryorder`` codec, i.e. the same (index, value)
    pairs per record without LPQLD's order among tied values stored at all.
    ``fused=False``: decoded codec by codec (each codec's compiled loops) instead of in the one
    pass of ``lplabel.codecs.fused`` (what every install ran before it).
    ``kernels=False``: entryorder, delta and classmap run their numpy reference code, codec by codec
    (what an install without numba runs)."""
    if not (kernels and fused):
        from lplabel.codecs import _compiled

        saved = dict(_compiled._FOUND)
        _compiled._FOUND.update(dict.fromkeys(_compiled.MODULES if not kernels else ("_fused_kernels",)))
        try:
            return fmt_lplabel(c, work, repeat, layout, lpqld_dir, tie_order, entry_order=entry_order)
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
            out[i] = st.decode_chunk("label", i, entry_order=entry_order)

    dt = best(dec, repeat)
    gi = np.concatenate([o["indices"] for o in out]).astype(np.int64)
    gv = np.concatenate([np.asarray(o["values"]) for o in out])
    if entry_order and tie_order:  # LPQLD's arrays, entry for entry
        c.check(gi, gv, f"lplabel {layout} (exact order)")
    # otherwise each record's entries come in class order: compare its (index, value) pairs in
    # index order
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
        st1.decode_chunk("label", mid, entry_order=entry_order)

    lat = best(step, max(repeat, 20))
    st1.close()
    return dict(bytes=size, file=file_bytes(path), label=label, enc=enc, dec=dt, step=lat)


def fmt_hdf5_blosc2(c: Content, work: Path, repeat: int) -> dict:
    h5py = need("h5py")
    hdf5plugin = need("hdf5plugin")
    filt = hdf5plugin.Blosc2(cname="zstd", clevel=5, filters=hdf5plugin.Blosc2.BITSHUFFLE)

    rec, steps = c.views()

    def write(path, rows):
        with h5py.File(path, "w") as f:
            f.create_dataset("indices", data=c.idx.reshape(c.R, -1), chunks=(rows, c.k), **filt)
            f.create_dataset("values", data=c.val.reshape(c.R, -1), chunks=(rows, c.k), **filt)
            for name, a in rec.items():
                f.create_dataset(f"views/{name}", data=a, chunks=(rows, *a.shape[1:]), **filt)
            for name, a in steps.items():
                f.create_dataset(f"steps/{name}", data=a, chunks=a.shape, **filt)

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
    with h5py.File(path, "r") as f:
        label = f["indices"].id.get_storage_size() + f["values"].id.get_storage_size()
    return dict(bytes=du_bytes(path), file=file_bytes(path), label=label, enc=enc, dec=dt, step=lat)


def fmt_zarr(c: Content, work: Path, repeat: int) -> dict:
    zarr = need("zarr")
    if int(zarr.__version__.split(".")[0]) < 3:
        raise Missing(f"{NOT_INSTALLED} (zarr v3; found {zarr.__version__})")
    from zarr.codecs import BloscCodec

    zarr.config.set({"threading.max_workers": 1, "async.concurrency": 1})

    rec, steps = c.views()

    def write(path, rows):
        shutil.rmtree(path, ignore_errors=True)
        g = zarr.open_group(str(path), mode="w", zarr_format=3)
        arrays = [("indices", c.idx.reshape(c.R, -1), rows), ("values", c.val.reshape(c.R, -1), rows)]
        arrays += [(f"view_{n}", a, rows) for n, a in rec.items()]
        arrays += [(f"step_{n}", a, len(a)) for n, a in steps.items()]
        for name, a, r in arrays:
            arr = g.create_array(
                name,
                shape=a.shape,
                chunks=(r, *a.shape[1:]),
                dtype=a.dtype,
                compressors=BloscCodec(cname="zstd", clevel=5, shuffle="bitshuffle"),
            )
            arr[...] = a

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
    label = file_bytes(path / "indices") + file_bytes(path / "values")
    return dict(bytes=du_bytes(path), file=file_bytes(path), label=label, enc=enc, dec=dt, step=lat)


def fmt_parquet(c: Content, work: Path, repeat: int) -> dict:
    pa = need("pyarrow")
    pq = need("pyarrow.parquet")
    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)
    k = c.k

    rec, steps = c.views()

    def table():
        # one row per record: the labels, the record's view fields and its step's fields
        i = pa.FixedSizeListArray.from_arrays(pa.array(c.idx.ravel()), k)
        v = pa.FixedSizeListArray.from_arrays(pa.array(c.val.ravel()), k)
        cols = {"indices": i, "values": v}
        for name, a in list(rec.items()) + [(n, np.repeat(a, c.B, axis=0)) for n, a in steps.items()]:
            cols[name] = (
                pa.FixedSizeListArray.from_arrays(pa.array(a.ravel()), a.shape[1]) if a.ndim > 1 else pa.array(a)
            )
        return pa.table(cols)

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
        t = pq.read_table(path, columns=["indices", "values"], use_threads=False)
        res["i"] = t.column("indices").combine_chunks().flatten().to_numpy()
        res["v"] = t.column("values").combine_chunks().flatten().to_numpy()

    dt = best(dec, repeat)
    c.check(res["i"], res["v"], "parquet")
    one = work / "t-1.parquet"
    write(one, c.B)
    pf = pq.ParquetFile(one)
    g = c.S // 2

    def step():
        t = pf.read_row_group(g, columns=["indices", "values"], use_threads=False)
        return t.column("indices").combine_chunks().flatten().to_numpy(), t.column(
            "values"
        ).combine_chunks().flatten().to_numpy()

    lat = best(step, max(repeat, 20))
    md = pq.ParquetFile(path).metadata
    names = [md.schema.column(j).path for j in range(md.num_columns)]
    label = sum(
        md.row_group(g).column(j).total_compressed_size
        for g in range(md.num_row_groups)
        for j in range(md.num_columns)
        if names[j].split(".")[0] in ("indices", "values")
    )
    return dict(bytes=du_bytes(path), file=file_bytes(path), label=label, enc=enc, dec=dt, step=lat)


def fmt_npz(c: Content, work: Path, repeat: int) -> dict:
    path = work / "t.npz"
    rec, steps = c.views()
    arrays = {}
    for s in range(c.S):
        arrays[f"i{s}"], arrays[f"v{s}"] = c.idx[s], c.val[s]
        for name, a in rec.items():
            arrays[f"{name}{s}"] = a[s * c.B : (s + 1) * c.B]
    arrays.update(steps)
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
    import zipfile

    with zipfile.ZipFile(path) as z:
        label = sum(e.compress_size for e in z.infolist() if e.filename[:1] in "iv" and e.filename[1:-4].isdigit())
    return dict(bytes=du_bytes(path), file=file_bytes(path), label=label, enc=enc, dec=dt, step=lat)


def fmt_safetensors_zstd(c: Content, work: Path, repeat: int) -> dict:
    st_np = need("safetensors.numpy")
    import zstandard

    rec, steps = c.views()

    def write(path, spc):
        # per chunk: a frame of the labels, then a frame of the chunk's view and step fields
        cz = zstandard.ZstdCompressor(level=9)
        with open(path, "wb") as f:
            offs = []
            for a, i, v in c.chunks(spc):
                frame = cz.compress(st_np.save({"indices": np.ascontiguousarray(i), "values": np.ascontiguousarray(v)}))
                offs.append((f.tell(), len(frame)))
                f.write(frame)
                r0, r1 = a * c.B, a * c.B + len(i)
                views = {n: np.ascontiguousarray(x[r0:r1]) for n, x in rec.items()}
                views.update({n: np.ascontiguousarray(x[a : a + spc]) for n, x in steps.items()})
                f.write(cz.compress(st_np.save(views)))
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
    label = sum(n for _, n in holder["offs"])
    return dict(bytes=du_bytes(path), file=file_bytes(path), label=label, enc=enc, dec=dt, step=lat)


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
    (
        "lplabel default (planes), read as the loader reads it (pairs; tie order not restored)",
        lambda c, w, r, src: fmt_lplabel(c, w, r, "planes", src),
    ),
    (
        "lplabel default (planes), exact arrays (LPQLD's tie order restored)",
        lambda c, w, r, src: fmt_lplabel(c, w, r, "planes", src, entry_order=True),
    ),
    ("lplabel rans, read as the loader reads it", lambda c, w, r, src: fmt_lplabel(c, w, r, "rans", src)),
    (
        "lplabel rans, exact arrays",
        lambda c, w, r, src: fmt_lplabel(c, w, r, "rans", src, entry_order=True),
    ),
    (
        "lplabel planes without LPQLD's tie order stored",
        lambda c, w, r, src: fmt_lplabel(c, w, r, "planes", src, False),
    ),
    (
        "lplabel default (planes), loader read, codec by codec (no fused pass)",
        lambda c, w, r, src: fmt_lplabel(c, w, r, "planes", src, fused=False),
    ),
    (
        "lplabel default (planes), loader read, numpy loops (no numba)",
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
        "of `bench_import_smallest.py`. Every format stores the same content: the labels and the view "
        "fields a label set needs to be used (per record image id, crop box as fp16, flip, mix partner; "
        "per step epoch, step, mix lambda, mix box -- lplabel's view columns and step tables, the rest "
        "of LPQLD's files; in the general formats as arrays/columns/frames of their own beside the "
        "labels, compressed alike). Decode and one step read the labels only (every format can skip "
        "the view fields but LPQLD's pickles). Every row decodes the labels back bit for bit "
        "(checked; rows read as the loader reads: each record's (index, value) pairs, in class order). "
        "MB/s = dense-equivalent fp16 (records x 1,000 x 2 bytes) per second, best of "
        f"{repeat}; bytes/record = `du` / records; label bytes = the label column / label arrays "
        "alone (compressed, as stored; LPQLD's pickles mix them with the views). "
        "One step = read and decode one step's 100 records from a copy written with one step per "
        "chunk (row group, frame, file). Ratios: x = this row / the first row (for bytes, below 1 is "
        "smaller than lplabel; for speeds, above 1 is faster than lplabel).",
        "",
    ]
    for k, c, rows, copy_s in results:
        ref = rows[0][1]
        lines += [
            f"## k = {k} ({c.R:,} records, {c.dense_bytes / mb:.1f} MB dense-equivalent)",
            "",
            "| format | bytes/record (du) | x | file bytes/record | x | label bytes/record | x "
            "| encode MB/s | x | decode MB/s | x | one step µs | x |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for name, r in rows:
            if "missing" in r:
                lines.append(f"| {name} | {r['missing']} | | | | | | | | | | | |")
                continue
            bpr = r["bytes"] / c.R
            e, dd = c.dense_bytes / r["enc"] / mb, c.dense_bytes / r["dec"] / mb
            lab = f"{r['label'] / c.R:.1f} | {r['label'] / ref['label']:.2f}" if "label" in r else "– | "
            lines.append(
                f"| {name} | {bpr:.1f} | {r['bytes'] / ref['bytes']:.2f} | {r['file'] / c.R:.1f} | "
                f"{r['file'] / ref['file']:.2f} | {lab} | {e:,.0f} | {ref['enc'] / r['enc']:.2f} "
                f"| {dd:,.0f} | {ref['dec'] / r['dec']:.2f} | {r['step'] * 1e6:,.0f} | "
                f"{ref['step'] / r['step']:.2f} |"
            )
        lines += [
            f"| memory-copy ceiling (np.copyto of the raw top-k arrays) | {c.k * 4:.1f} (raw) | | | | | | | | "
            f"{c.dense_bytes / copy_s / mb:,.0f} | {ref['dec'] / copy_s:.2f} | | |",
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
