"""Hostile-file campaign (issue 13): files that lie, random damage, kills and full disks.

Every case runs in its own subprocess (memory capped at ``--as-limit`` so that a bomb cannot
take the machine down; max RSS measured with ``wait4``) and is classified:

* ``named``: refused with one of lplabel's named errors (open, read or verify);
* ``harmless``: read back exactly what the undamaged store holds (e.g. bytes appended);
* ``verify-only``: ``read_step`` handed the content out, only ``lplabel verify`` flagged it;
* ``silent``: handed out content that differs from the original, and nothing flagged it;
* ``traceback``: an exception that is not an lplabel error; ``crash``: killed by a signal;
* ``timeout``.

Hostile files are written with h5py with every CRC recomputed (anyone can), so only structure
validation can catch them. Categories: ``bomb`` (sizes that inflate), ``shape`` (header/table
counts and shapes), ``content`` (out-of-range decoded values, overlapping chunks), ``mutation``
(random byte flips, truncations, appended bytes; CRCs not recomputed), ``kill`` (writers killed
by SIGKILL mid-write, then the same output written again: ``clean`` when no temporary is left),
``diskfull`` (a 2 MiB tmpfs when this process may mount one, else RLIMIT_FSIZE, which gives EFBIG).

Usage::

    python benchmarks/hostile_campaign.py --out benchmarks/results/hostile-DATE.md [--mutations 300]
    python benchmarks/hostile_campaign.py --lplabel /path/to/other/checkout ...   # "before" numbers

The builders (``make_bases``, ``CASES``) are imported by tests/test_hostile.py.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import h5py
import numpy as np
import zstandard

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from lplabel import StoreWriter  # noqa: E402
from lplabel.store import layout as L  # noqa: E402
from lplabel.store import packed as P  # noqa: E402
from lplabel.store.reader import LabelStore  # noqa: E402

GIB = 1 << 30
#: what the zstd bombs inflate to (tests set it lower: the readers refuse any size above the cap)
BOMB = {"bytes": GIB}
TOPK = [
    {"name": "topk", "configuration": {"k": 5, "type": "float16", "index_type": "uint8", "tail": "none"}},
    {"name": "bytes", "configuration": {}},
    {"name": "shuffle", "configuration": {"elementsize": 2}},
    {"name": "zstd", "configuration": {"level": 3}},
]
ZPLANES = [
    {"name": "topk", "configuration": {"k": 5, "type": "float16", "index_type": "uint8", "tail": "none"}},
    {"name": "zplanes", "configuration": {"level": 3}},
]
INDEX_ONLY = [
    {"name": "topk", "configuration": {"k": 3, "type": "none", "index_type": "uint8", "tail": "none"}},
    {"name": "bytes", "configuration": {}},
    {"name": "zstd", "configuration": {"level": 3}},
]
DENSE = [
    {"name": "dense", "configuration": {"type": "float16"}},
    {"name": "bytes", "configuration": {}},
    {"name": "shuffle", "configuration": {"elementsize": 2}},
    {"name": "zstd", "configuration": {"level": 3}},
]

#: base stores: name -> (label chain, packed tables, mixed)
BASES = {
    "dense10": (DENSE, False, True),
    "dense11": (DENSE, True, True),
    "topk11": (TOPK, True, True),
    "zplanes11": (ZPLANES, True, False),
    "indexonly10": (INDEX_ONLY, False, True),
}


def write_base(path: Path, codecs, packed: bool, mix: bool, *, n=48, C=20, B=8, epochs=3, seed=0) -> Path:
    rng = np.random.default_rng(seed)
    spe = -(-n // B)
    with StoreWriter(
        path,
        num_classes=C,
        images=n,
        batch_size=B,
        epochs=epochs,
        label_codecs=codecs,
        augmentation={"output_size": 16, "mix": "cutmix" if mix else "none"},
        teacher={"description": "synthetic"},
        seed=seed,
        packed_tables=packed,
        overwrite=True,
    ) as w:
        for e in range(epochs):
            order = rng.permutation(n)
            for s in range(spe):
                ids = order[s * B : (s + 1) * B].astype(np.int32)
                b = len(ids)
                kw = {}
                if mix:
                    lo = rng.integers(0, 8, 2)
                    kw = dict(
                        mix_partner=rng.permutation(b).astype(np.int16),
                        mix_lambda=float(rng.random()),
                        mix_box=np.concatenate([lo, lo + rng.integers(1, 8, 2)]).astype(np.int16),
                    )
                w.write_step(
                    e,
                    s,
                    image=ids,
                    crop=rng.random((b, 4)).astype(np.float32) * 0.5,
                    flip=rng.random(b) < 0.5,
                    logits=(rng.standard_normal((b, C)) * 3).astype(np.float32),
                    **kw,
                )
    return path


def make_bases(root: Path) -> dict:
    return {k: write_base(root / f"{k}.lpl", *v) for k, v in BASES.items()}


# -- editing with CRCs recomputed -----------------------------------------------------------------


def _crc(b: bytes) -> int:
    return zlib.crc32(b) & 0xFFFFFFFF


def _replace(f: h5py.File, name: str, data: np.ndarray, crc: bool = True) -> None:
    if name in f:
        del f[name]
    d = f.create_dataset(name, data=data)
    if crc:
        d.attrs[L.ATTR_CRC] = np.uint32(_crc(np.ascontiguousarray(data).tobytes()))


def read_header(path) -> dict:
    with h5py.File(path, "r") as f:
        return json.loads(bytes(f[L.HEADER][()]).decode())


def write_header(path, h: dict) -> None:
    raw = np.frombuffer(json.dumps(h).encode(), np.uint8)
    with h5py.File(path, "r+") as f:
        _replace(f, L.HEADER, raw, crc=False)
        f.attrs[L.ATTR_HEADER_CRC] = np.uint32(_crc(raw.tobytes()))


def edit_header(path, fn) -> None:
    h = read_header(path)
    fn(h)
    write_header(path, h)


def is_packed(path) -> bool:
    with h5py.File(path, "r") as f:
        return L.PACKED_TABLES in f


def read_tables(path) -> dict:
    with h5py.File(path, "r") as f:
        if L.PACKED_TABLES in f:
            return dict(P.unpack_tables(bytes(f[L.PACKED_TABLES][()])))
        out = {}
        f.visititems(
            lambda n, o: (
                out.__setitem__(n, o[()])
                if isinstance(o, h5py.Dataset)
                and "crc32" in o.attrs
                and n not in (L.HEADER,)
                and not n.endswith("zstd_dict")
                else None
            )
        )
        return out


def write_tables(path, tables: dict) -> None:
    with h5py.File(path, "r+") as f:
        if L.PACKED_TABLES in f:
            blob = np.frombuffer(P.pack_tables(list(tables.items())), np.uint8)
            _replace(f, L.PACKED_TABLES, blob)
        else:
            for name, a in tables.items():
                _replace(f, name, np.asarray(a))


def edit_tables(path, fn) -> None:
    t = read_tables(path)
    fn(t)
    write_tables(path, t)


def chunk_bytes(path, column: str) -> list:
    s = LabelStore(path)
    try:
        return [s.read_chunk_bytes(column, c, check=False) for c in range(len(s.chunks[column]))]
    finally:
        s.close()


def set_chunks(path, column: str, chunks: list) -> None:
    """Rewrite a column's payload as one segment holding ``chunks``; chunk index and CRCs follow."""
    with h5py.File(path, "r+") as f:
        for k in [k for k in f[L.column_group(column)] if k.startswith("seg_")]:
            del f[L.column_group(column)][k]
        blob = np.frombuffer(b"".join(chunks), np.uint8)
        f.create_dataset(L.segment_name(column, 0), data=blob)
    offs = np.concatenate([[0], np.cumsum([len(c) for c in chunks])[:-1]]).astype("<i8")
    rows = np.stack([np.zeros(len(chunks), "<i8"), offs, np.asarray([len(c) for c in chunks], "<i8")], 1)

    def fn(t):
        t[L.column_chunks(column)] = rows.astype("<i8")
        t[L.column_crc(column)] = np.asarray([_crc(c) for c in chunks], "<u4")

    edit_tables(path, fn)


def reencode(path, column: str, chunk: int, fn) -> None:
    s = LabelStore(path)
    try:
        block = {k: np.array(v) for k, v in s.decode_chunk(column, chunk).items()} if column != "label" else None
        pipe = s.pipelines[column]
        if block is None:  # label: decode to the stored stage, edit, encode from there
            raw = s.read_chunk_bytes(column, chunk)
            cs, rs = s.tables[L.CHUNK_STEP_START], s.record_start
            n = int(rs[cs[chunk + 1]] - rs[cs[chunk]])
            stage = len(pipe.array_array)
            block = {k: np.array(v) for k, v in pipe.decode(raw, n, stop=stage).items()}
            fn(block)
            data = pipe.encode(block, start=stage)
        else:
            fn(block)
            data = pipe.encode(block)
    finally:
        s.close()
    chunks = chunk_bytes(path, column)
    chunks[chunk] = data
    set_chunks(path, column, chunks)


def zstd_bomb(nbytes: int, content_size: bool = True, prefix: bytes = b"") -> bytes:
    """One zstd frame of ``prefix`` then zeros up to ``nbytes`` (compressed in pieces: the bomb
    itself never sits in memory)."""
    c = zstandard.ZstdCompressor(level=1, write_content_size=content_size)
    obj = c.compressobj(size=nbytes if content_size else -1)
    out = [obj.compress(prefix)]
    piece = bytes(16 << 20)
    left = nbytes - len(prefix)
    while left > 0:
        k = min(left, len(piece))
        out.append(obj.compress(piece[:k]))
        left -= k
    out.append(obj.flush())
    return b"".join(out)


def declared_huge(path, name: str, nbytes: int, dtype="u1") -> None:
    """Replace dataset ``name`` by one declared ``nbytes`` long and never written."""
    with h5py.File(path, "r+") as f:
        crc = f[name].attrs.get(L.ATTR_CRC) if name in f else None
        if name in f:
            del f[name]
        d = f.create_dataset(name, shape=(nbytes // np.dtype(dtype).itemsize,), dtype=dtype)
        if crc is not None:
            d.attrs[L.ATTR_CRC] = crc


# -- the cases -------------------------------------------------------------------------------------


def _label_field(h, fn):
    fn(h["columns"]["label"]["input"])


def _bomb_tables(p):
    with h5py.File(p, "r") as f:
        raw = zstandard.ZstdDecompressor().decompress(bytes(f[L.PACKED_TABLES][()]))
    with h5py.File(p, "r+") as f:
        _replace(f, L.PACKED_TABLES, np.frombuffer(zstd_bomb(BOMB["bytes"] + len(raw), prefix=raw), np.uint8))


def _bomb_chunk(p, content_size=True):
    chunks = chunk_bytes(p, "label")
    chunks[0] = zstd_bomb(BOMB["bytes"], content_size)
    set_chunks(p, "label", chunks)


def _bomb_plane(p):
    import struct

    chunks = chunk_bytes(p, "label")
    frame = zstd_bomb(BOMB["bytes"])
    spec_planes = 1 + 2  # uint8 indices + float16 values
    chunks[0] = struct.pack(f"<{spec_planes}I", len(frame), 0, 0) + frame
    set_chunks(p, "label", chunks)


def _huge_frame_decl(p):
    """A frame header that declares 100 GB (and holds little)."""
    chunks = chunk_bytes(p, "label")
    c = zstandard.ZstdCompressor(level=1, write_content_size=True)
    obj = c.compressobj(size=100 * 10**9)
    frame = obj.compress(b"\0" * 1000) + obj.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)
    chunks[0] = frame
    set_chunks(p, "label", chunks)


def _record_steps(p, count):
    def fn(t):
        rs = t[L.STEP_RECORD_START].astype(np.int64)
        rs[1:] += count - (rs[1] - rs[0])
        t[L.STEP_RECORD_START] = rs

    edit_tables(p, fn)
    edit_header(p, lambda h: h.update(records=int(read_tables(p)[L.STEP_RECORD_START][-1])))


def _overlap(p):
    def fn(t):
        ch = t[L.column_chunks("image")].copy()
        ch[1] = ch[0]
        crc = t[L.column_crc("image")].copy()
        crc[1] = crc[0]
        t[L.column_chunks("image")], t[L.column_crc("image")] = ch, crc

    edit_tables(p, fn)


def _float_header(p):
    with h5py.File(p, "r+") as f:
        raw = f[L.HEADER][()]
        del f[L.HEADER]
        f.create_dataset(L.HEADER, data=raw.astype(np.float64))


def _set_table(name, fn):
    def edit(p):
        def t_fn(t):
            a = np.array(t[name])
            fn(a)
            t[name] = a

        edit_tables(p, t_fn)

    return edit


def _mutate_header(fn):
    return lambda p: edit_header(p, fn)


def _gzip_tables(p):
    """Tables stored through an HDF5 filter (a gzip bomb in the container itself)."""
    with h5py.File(p, "r+") as f:
        crc = f[L.PACKED_TABLES].attrs[L.ATTR_CRC]
        del f[L.PACKED_TABLES]
        d = f.create_dataset(L.PACKED_TABLES, shape=(GIB,), dtype="u1", chunks=(1 << 20,), compression="gzip")
        d.attrs[L.ATTR_CRC] = crc


#: (category, name, base, edit(path)); the edit recomputes every CRC it touches
CASES = [
    ("bomb", "packed-tables-frame-1GiB", "dense11", _bomb_tables),
    ("bomb", "header-declared-5GiB-unwritten", "dense11", lambda p: declared_huge(p, L.HEADER, 5 * GIB)),
    ("bomb", "tables-declared-5GiB-unwritten", "dense11", lambda p: declared_huge(p, L.PACKED_TABLES, 5 * GIB)),
    ("bomb", "v10-table-declared-5GiB-unwritten", "dense10", lambda p: declared_huge(p, L.STEP_EPOCH, 5 * GIB, "<i4")),
    ("bomb", "tables-gzip-filtered-1GiB", "dense11", _gzip_tables),
    ("bomb", "label-chunk-zstd-1GiB", "dense11", _bomb_chunk),
    ("bomb", "label-chunk-zstd-1GiB-no-size", "topk11", lambda p: _bomb_chunk(p, False)),
    ("bomb", "label-chunk-declares-100GB", "dense10", _huge_frame_decl),
    ("bomb", "zplanes-plane-1GiB", "zplanes11", _bomb_plane),
    ("shape", "header-1TiB-declared", "dense10", lambda p: declared_huge(p, L.HEADER, 1 << 40)),
    (
        "shape",
        "label-shape-1e12",
        "dense11",
        _mutate_header(lambda h: _label_field(h, lambda f: f[0].update(shape=[10**12]))),
    ),
    (
        "shape",
        "label-shape-2x40",
        "dense11",
        _mutate_header(lambda h: _label_field(h, lambda f: f[0].update(shape=[2] * 40))),
    ),
    (
        "shape",
        "label-shape-neg20",
        "dense11",
        _mutate_header(lambda h: _label_field(h, lambda f: f[0].update(shape=[-20]))),
    ),
    ("shape", "num-classes-1e12", "topk11", _mutate_header(lambda h: h.update(num_classes=10**12))),
    ("shape", "steps-per-epoch-2pow70", "dense11", _mutate_header(lambda h: h.update(steps_per_epoch=2**70))),
    ("shape", "one-step-2pow40-records", "dense10", lambda p: _record_steps(p, 2**40)),
    (
        "shape",
        "crop-field-renamed",
        "dense11",
        _mutate_header(lambda h: h["columns"]["crop"]["input"][0].update(name="box")),
    ),
    ("shape", "k-above-C", "topk11", _mutate_header(lambda h: h.update(num_classes=3))),
    (
        "shape",
        "label-indices-k-above-C",
        "topk11",
        _mutate_header(
            lambda h: _label_field(
                h,
                lambda f: f.__setitem__(
                    slice(None),
                    [
                        {"name": "indices", "type": "int64", "shape": [50]},
                        {"name": "values", "type": "float32", "shape": [50]},
                    ],
                ),
            )
        ),
    ),
    ("shape", "dense-width-not-C", "dense11", _mutate_header(lambda h: h.update(num_classes=30))),
    ("shape", "batch-size-1e9", "dense11", _mutate_header(lambda h: h.update(batch_size=10**9))),
    ("shape", "float64-header", "dense11", _float_header),
    ("shape", "records-negative", "dense11", _mutate_header(lambda h: h.update(records=-5))),
    (
        "content",
        "class-index-ge-C",
        "topk11",
        lambda p: reencode(p, "label", 0, lambda b: b["indices"].__setitem__((0, 0), 25)),
    ),
    (
        "content",
        "index-only-class-ge-C",
        "indexonly10",
        lambda p: reencode(p, "label", 1, lambda b: b["indices"].__setitem__((1, 1), 200)),
    ),
    (
        "content",
        "image-id-1e6",
        "dense11",
        lambda p: reencode(p, "image", 0, lambda b: b["image"].__setitem__(0, 10**6)),
    ),
    (
        "content",
        "mix-partner-30000",
        "dense10",
        lambda p: reencode(p, "mix_partner", 2, lambda b: b["mix_partner"].__setitem__(0, 30000)),
    ),
    (
        "content",
        "crop-nan",
        "dense11",
        lambda p: reencode(p, "crop", 0, lambda b: b["crop"].__setitem__((0, 0), np.nan)),
    ),
    (
        "content",
        "crop-1e30",
        "dense11",
        lambda p: reencode(p, "crop", 1, lambda b: b["crop"].__setitem__((0, 2), 1e30)),
    ),
    (
        "content",
        "flip-byte-7",
        "dense10",
        lambda p: reencode(p, "flip", 0, lambda b: b["flip"].view(np.uint8).__setitem__(0, 7)),
    ),
    ("content", "overlapping-chunks", "dense11", _overlap),
    ("content", "lambda-1e300", "dense11", _set_table(L.STEP_MIX_LAMBDA, lambda a: a.__setitem__(0, 1e300))),
    (
        "content",
        "cutmix-box-garbage",
        "dense10",
        _set_table(L.STEP_MIX_BOX, lambda a: a.__setitem__(0, [-5, 30000, 7, -9])),
    ),
    ("content", "step-ge-steps-per-epoch", "dense11", _set_table(L.STEP_STEP, lambda a: a.__setitem__(-1, 50))),
    ("content", "image-class-ge-C", "dense10", _set_table(L.IMAGE_CLASS, lambda a: a.__setitem__(0, 99))),
    (
        "content",
        "chunk-row-beyond-segment",
        "dense10",
        _set_table(L.column_chunks("label"), lambda a: a.__setitem__((0, 2), 10**12)),
    ),
    (
        "content",
        "segment-index-1e9",
        "dense11",
        _set_table(L.column_chunks("crop"), lambda a: a.__setitem__((0, 0), 10**9)),
    ),
]


# -- probing one file in a subprocess ---------------------------------------------------------------

PROBE = r"""
import json, sys, hashlib, traceback
import numpy as np
out = {}
try:
    from lplabel.errors import LplabelError
    from lplabel.store.reader import LabelStore
    from lplabel.store.verify import verify_store
    h = hashlib.sha256()
    try:
        s = LabelStore(sys.argv[1])
        for i in range(s.num_steps):
            r = s.step_at(i)
            for a in (r.image, r.crop, r.flip, r.mix_partner, r.mix_box, *(r.label[k] for k in sorted(r.label))):
                h.update(np.ascontiguousarray(a).tobytes())
            h.update(repr(r.mix_lambda).encode())
        s.close()
        out["read"] = "ok"
        out["digest"] = h.hexdigest()
    except LplabelError as e:
        out["read"] = "named"
        out["error"] = f"{type(e).__name__}: {e}"[:300]
    if out["read"] == "ok":
        rep = verify_store(sys.argv[1])
        out["verify"] = "problems" if rep.problems else "ok"
        if rep.problems:
            out["error"] = rep.problems[0][:300]
except BaseException as e:
    out["read"] = "traceback"
    out["error"] = f"{type(e).__name__}: {str(e)[:200]}"
print("PROBE" + json.dumps(out))
"""


def probe(path, env, as_limit, timeout=120) -> dict:
    r, w = os.pipe()
    re_, we = os.pipe()
    t0 = time.time()
    pid = os.fork()
    if pid == 0:
        try:
            resource.setrlimit(resource.RLIMIT_AS, (as_limit, as_limit))
            os.chdir("/")  # never import lplabel from the current directory: PYTHONPATH says which
            os.dup2(w, 1)
            os.dup2(we, 2)
            os.close(r)
            os.close(re_)
            os.execve(sys.executable, [sys.executable, "-c", PROBE, str(path)], env)
        finally:
            os._exit(127)
    os.close(w)
    os.close(we)
    out, err = _drain(pid, r, re_, timeout)
    _, status, ru = os.wait4(pid, 0)
    res = {"rss_mb": ru.ru_maxrss / 1024, "seconds": round(time.time() - t0, 2)}
    if os.WIFSIGNALED(status):
        res["outcome"] = "timeout" if os.WTERMSIG(status) == signal.SIGKILL and time.time() - t0 >= timeout else "crash"
        res["error"] = f"signal {os.WTERMSIG(status)}"
        return res
    line = [x for x in out.splitlines() if x.startswith("PROBE")]
    if not line:
        res["outcome"] = "traceback"
        res["error"] = (err.strip().splitlines() or ["no output"])[-1][:300]
        return res
    info = json.loads(line[-1][5:])
    res.update(info)
    res["outcome"] = info["read"]
    if "Exception ignored" in err or "Traceback" in err:
        res["outcome"] = "traceback"
    return res


def _drain(pid, r, re_, timeout):
    import selectors

    sel = selectors.DefaultSelector()
    bufs = {r: [], re_: []}
    sel.register(r, selectors.EVENT_READ)
    sel.register(re_, selectors.EVENT_READ)
    deadline = time.time() + timeout
    open_ = 2
    while open_:
        left = deadline - time.time()
        if left <= 0:
            os.kill(pid, signal.SIGKILL)
            break
        for key, _ in sel.select(min(left, 1.0)):
            data = os.read(key.fd, 65536)
            if not data:
                sel.unregister(key.fd)
                open_ -= 1
            else:
                bufs[key.fd].append(data)
    os.close(r)
    os.close(re_)
    return b"".join(bufs[r]).decode(errors="replace"), b"".join(bufs[re_]).decode(errors="replace")


def classify(res: dict, ref_digest: str | None, category: str = "mutation") -> str:
    """A hostile (crafted) file read without complaint is ``silent`` even when its content reads
    back unchanged (the header lies about it); only a random mutation can be ``harmless``."""
    o = res.get("read", res["outcome"]) if res["outcome"] in ("ok", "named") else res["outcome"]
    if o != "ok":
        return o
    if res.get("verify") == "problems":
        return "verify-only"
    if category == "mutation" and ref_digest is not None and res.get("digest") == ref_digest:
        return "harmless"
    return "silent"


# -- random mutations -------------------------------------------------------------------------------


def mutate(src: Path, dst: Path, rng: random.Random) -> str:
    data = bytearray(src.read_bytes())
    kind = rng.choice(["flip", "flip", "flip", "bytes", "truncate", "append", "zero-run"])
    if kind == "flip":
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(len(data))
            data[i] ^= 1 << rng.randrange(8)
    elif kind == "bytes":
        i = rng.randrange(len(data))
        for j in range(i, min(len(data), i + rng.randint(1, 16))):
            data[j] = rng.randrange(256)
    elif kind == "truncate":
        data = data[: rng.randrange(len(data))]
    elif kind == "append":
        data += bytes(rng.randrange(256) for _ in range(rng.randint(1, 4096)))
    else:
        i = rng.randrange(len(data))
        data[i : i + rng.randint(8, 512)] = bytes(len(data[i : i + 512]))[: len(data[i : i + rng.randint(8, 512)])]
    dst.write_bytes(bytes(data))
    return kind


# -- kills and full disks ---------------------------------------------------------------------------

WRITER = r"""
import sys, numpy as np
from lplabel import StoreWriter
rng = np.random.default_rng(0)
steps = int(sys.argv[2])
with StoreWriter(sys.argv[1], num_classes=100, images=1000, batch_size=50, epochs=max(1, steps // 20),
                 augmentation={"output_size": 16, "mix": "none"}, teacher={"description": "x"}, seed=0,
                 overwrite=True, segment_bytes=1 << 16) as w:
    print("started", flush=True)
    for i in range(steps):
        e, s = divmod(i, 20)
        w.write_step(e, s, image=np.arange(s * 50, s * 50 + 50, dtype=np.int32),
                     crop=rng.random((50, 4)).astype(np.float32), flip=np.zeros(50, bool),
                     logits=rng.standard_normal((50, 100)).astype(np.float32))
print("done")
"""


def leftovers(d: Path) -> list:
    return sorted(p.name for p in d.iterdir() if p.name.endswith(".tmp"))


def kill_cases(root: Path, env, n: int, rng: random.Random) -> list:
    out = []
    d = root / "kills"
    d.mkdir()
    target = d / "killed.lpl"
    for i in range(n):
        p = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(target), "400"],
            env=env,
            cwd="/",
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        p.stdout.readline()  # "started": the temporary exists; kill somewhere in the writing
        time.sleep(rng.uniform(0.0, 1.5))
        p.kill()
        p.wait()
        p.stdout.close()
        before = leftovers(d)
        r = subprocess.run(
            [sys.executable, "-c", WRITER, str(target), "20"], env=env, capture_output=True, text=True, cwd="/"
        )
        after = leftovers(d)
        ok = r.returncode == 0 and "Traceback" not in r.stderr
        out.append(
            {
                "category": "kill",
                "name": f"kill-{i}",
                "left_by_kill": len(before),
                "left_after_rerun": len(after),
                "outcome": ("clean" if ok else "traceback") if not after else "leftover",
                "error": r.stderr.strip().splitlines()[-1][:200] if r.stderr.strip() else "",
            }
        )
        for x in after:
            (d / x).unlink()
    return out


def _mount_tmpfs(where: Path, size="2m") -> bool:
    where.mkdir(parents=True, exist_ok=True)
    try:
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True)
        return r.returncode == 0
    except OSError:
        return False


def diskfull_cases(root: Path, env, src: Path) -> list:
    """The writer, `lplabel import`, `quantize`, `encode` and `export` on a full disk (2 MiB tmpfs filled to a
    few KB, or RLIMIT_FSIZE = 4 KiB); each must end in one named line, exit 2, nothing left."""
    mnt = root / "full"
    mounted = _mount_tmpfs(mnt)
    if not mounted:
        mnt.mkdir(exist_ok=True)
    legacy = root / "legacy-lpld"
    subprocess.run(
        [sys.executable, "-m", "lplabel", "export", str(src), "-o", str(legacy), "--to", "lpld"],
        env=env,
        cwd="/",
        check=True,
        capture_output=True,
    )
    cmds = {
        "writer": [sys.executable, "-c", WRITER, str(mnt / "w.lpl"), "200"],
        "import": [sys.executable, "-m", "lplabel", "import", str(legacy), "-o", str(mnt / "i.lpl")],
        "quantize": [sys.executable, "-m", "lplabel", "quantize", str(src), "-o", str(mnt / "q.lpl"), "--topk", "5"],
        "encode": [sys.executable, "-m", "lplabel", "encode", str(src), "-o", str(mnt / "e.lpl")],
        "export": [sys.executable, "-m", "lplabel", "export", str(src), "-o", str(mnt / "x"), "--to", "lpld"],
    }
    out = []
    try:
        for free in [8 << 10, 64 << 10] if mounted else [None]:
            for name, argv in cmds.items():
                if mounted:
                    for p in mnt.iterdir():
                        shutil.rmtree(p) if p.is_dir() else p.unlink()
                    st = os.statvfs(mnt)
                    (mnt / "filler").write_bytes(bytes(max(0, st.f_bavail * st.f_frsize - free)))
                    pre = None
                else:
                    lim = 4096

                    def pre(lim=lim):
                        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
                        resource.setrlimit(resource.RLIMIT_FSIZE, (lim, lim))

                r = subprocess.run(argv, env=env, capture_output=True, text=True, preexec_fn=pre, timeout=300, cwd="/")
                err = r.stderr.strip().splitlines()
                left = [p.name for p in mnt.iterdir() if p.name not in ("filler",)]
                if r.returncode < 0:
                    outcome = "crash"
                elif "Exception ignored" in r.stderr or ("Traceback" in r.stderr and name != "writer"):
                    outcome = "traceback"
                elif left:
                    outcome = "leftover"
                elif r.returncode == 2 and len(err) == 1 and err[0].startswith("error: "):
                    outcome = "named"  # the CLI: one line
                elif name == "writer" and r.returncode == 1 and err and err[-1].startswith("lplabel.errors."):
                    outcome = "named"  # the library: a named exception to its caller
                else:
                    outcome = f"rc={r.returncode}"
                out.append(
                    {
                        "category": "diskfull",
                        "name": f"{name}-{'tmpfs-' + str(free >> 10) + 'KiB-free' if mounted else 'fsize-4KiB'}",
                        "outcome": outcome,
                        "rc": r.returncode,
                        "stderr_lines": len(err),
                        "error": (err[-1] if err else "")[:200],
                        "left": left,
                    }
                )
    finally:
        if mounted:
            subprocess.run(["umount", str(mnt)], capture_output=True)
    return out


# -- main -------------------------------------------------------------------------------------------


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lplabel", default=str(REPO), help="checkout whose lplabel the probes run")
    ap.add_argument("--mutations", type=int, default=300)
    ap.add_argument("--kills", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--as-limit", type=int, default=4 * GIB, help="address-space cap of every probe (bytes)")
    ap.add_argument("--out", help="write the Markdown report here")
    ap.add_argument("--json", help="write every case's result here")
    ap.add_argument("--skip", default="", help="comma-separated categories to skip")
    a = ap.parse_args(argv)
    skip = set(filter(None, a.skip.split(",")))
    env = dict(os.environ, PYTHONPATH=a.lplabel, OMP_NUM_THREADS="1")
    rng = random.Random(a.seed)
    results = []
    root = Path(tempfile.mkdtemp(prefix="lplabel-hostile-"))
    try:
        (root / "bases").mkdir()
        bases = make_bases(root / "bases")
        refs = {k: probe(p, env, a.as_limit) for k, p in bases.items()}
        for k, r in refs.items():
            assert r["outcome"] == "ok" and r.get("verify") == "ok", (k, r)
        for cat, name, base, edit in CASES:
            if cat in skip:
                continue
            p = root / f"{name}.lpl"
            shutil.copy(bases[base], p)
            edit(p)
            res = probe(p, env, a.as_limit)
            res.update(category=cat, name=name, base=base, file_kb=round(p.stat().st_size / 1024, 1))
            res["outcome"] = classify(res, refs[base].get("digest"), cat)
            results.append(res)
            print(
                f"{cat:9s} {name:36s} {res['outcome']:12s} {res['rss_mb']:8.1f} MB  {res.get('error', '')[:110]}",
                flush=True,
            )
            p.unlink()
        if "mutation" not in skip:
            names = list(bases)
            for i in range(a.mutations):
                base = names[i % len(names)]
                p = root / f"mut-{i}.lpl"
                kind = mutate(bases[base], p, rng)
                res = probe(p, env, a.as_limit)
                res.update(category="mutation", name=f"{kind}", base=base, file_kb=round(p.stat().st_size / 1024, 1))
                res["outcome"] = classify(res, refs[base].get("digest"))
                results.append(res)
                if res["outcome"] not in ("named", "harmless"):
                    print(f"mutation  {i} {kind} {base}: {res['outcome']} {res.get('error', '')[:150]}", flush=True)
                p.unlink()
            print(f"mutations: {a.mutations} done", flush=True)
        if "kill" not in skip:
            for r in kill_cases(root, env, a.kills, rng):
                results.append(r)
                print(
                    f"kill      {r['name']:36s} {r['outcome']:12s} left by kill {r['left_by_kill']}, "
                    f"after rerun {r['left_after_rerun']}",
                    flush=True,
                )
        if "diskfull" not in skip:
            for r in diskfull_cases(root, env, bases["dense11"]):
                results.append(r)
                print(f"diskfull  {r['name']:36s} {r['outcome']:12s} {r['error'][:120]}", flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=1))
    summary = summarise(results)
    print(summary)
    if a.out:
        Path(a.out).write_text(summary)


def summarise(results: list) -> str:
    cats = {}
    for r in results:
        c = cats.setdefault(r["category"], {})
        c[r["outcome"]] = c.get(r["outcome"], 0) + 1
    outcomes = sorted({r["outcome"] for r in results})
    lines = [
        "| category | cases | " + " | ".join(outcomes) + " | max RSS (MB) |",
        "|---|---:|" + "---:|" * len(outcomes) + "---:|",
    ]
    for c, counts in cats.items():
        rss = max((r.get("rss_mb") or 0) for r in results if r["category"] == c)
        lines.append(
            f"| {c} | {sum(counts.values())} | "
            + " | ".join(str(counts.get(o, 0)) for o in outcomes)
            + f" | {rss:.0f} |"
        )
    bad = [r for r in results if r["outcome"] not in ("named", "harmless", "clean")]
    lines.append("")
    lines.append(f"total {len(results)} cases; not named/harmless/clean: {len(bad)}")
    for r in bad:
        lines.append(
            f"- {r['category']} {r['name']}: {r['outcome']} ({r.get('error', '')[:160]}) "
            f"RSS {r.get('rss_mb', 0) or 0:.0f} MB"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
