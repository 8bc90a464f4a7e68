"""Per-stage time of decoding lplabel's default lossless top-k layout (``planes``), one core.

The content and the chain are those of ``bench_formats.py`` (EfficientNet-Lite0 logits on 2,000
Tiny-ImageNet views, C = 1,000, LPQLD's top-k, imported with ``lplabel encode DIR --layout planes``,
8 steps per chunk). Each stage of :meth:`Pipeline.decode` (plus the reader's read, CRC and range
check around it) is timed alone on every label chunk, best of ``--repeat``; the stages are run in
the chain's order on the previous stage's real output, and the whole ``decode_chunk`` is timed too
(the stages' sum differs from it by Python overhead and cache effects), codec by codec (the
compiled loops of each codec), in the one fused pass of :mod:`lplabel.codecs.fused`, and as the
loader reads it (``entry_order=False``: the pairs, the tie order not restored). MB/s are dense-equivalent
fp16 (records x C x 2 bytes) per second, as in ``bench_formats.py``::

    python benchmarks/profile_planes_decode.py [--ks 10,50,100] [--repeat 15]
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "BLOSC_NTHREADS", "NUMBA_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import zlib  # noqa: E402
from pathlib import Path  # noqa: E402


HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
import bench_import_smallest  # noqa: E402

from lplabel import open_store  # noqa: E402
from lplabel.codecs import _compiled, entryorder, fused  # noqa: E402
from lplabel.commands.codec_tools import encode_source  # noqa: E402
from lplabel.interop.source import LegacySource  # noqa: E402
from lplabel.store import layout as L  # noqa: E402


from timing import best  # noqa: E402


def profile(d: dict, k: int, work: Path, repeat: int) -> tuple:
    src = work / f"src-k{k}"
    shutil.rmtree(src, ignore_errors=True)
    bench_import_smallest.write_lpqld(d, k, src)
    path = work / f"planes-k{k}.lpl"
    encode_source(LegacySource(src, "lpqld", num_classes=1000), path, layout="planes", steps_per_chunk=8, force=True)
    st = open_store(path)
    pipe = st.pipelines["label"]
    n_chunks = len(st.chunks["label"])
    cs, rs = st.tables[L.CHUNK_STEP_START], st.record_start
    ns = [int(rs[cs[i + 1]] - rs[cs[i]]) for i in range(n_chunks)]
    records = sum(ns)
    dense = records * st.num_classes * 2
    entryorder.warm_up()
    stages: dict = {}

    def add(name, fn):
        stages[name] = stages.get(name, 0.0) + best(fn, repeat)

    for i in range(n_chunks):
        n = ns[i]
        data = st.read_chunk_bytes("label", i)
        add("read (pread)", lambda: st.read_chunk_bytes("label", i, check=False))
        add("CRC-32", lambda: zlib.crc32(data))
        zp = pipe.array_bytes
        spec = pipe.stored_spec
        add("zstd (planes)", lambda: zp.planes(data, spec, n))
        planes = zp.planes(data, spec, n)
        add("join planes", lambda: zp.decode(data, spec, n))  # includes zstd: subtracted below
        block = zp.decode(data, spec, n)
        for j in range(len(pipe.array_array) - 1, -1, -1):
            c, sp = pipe.array_array[j], pipe._specs[j]
            name = c.name + ("(" + ",".join(f"{v}" for v in c.get_config().values() if len(str(v)) < 20) + ")")
            b = block
            add(name, lambda: c.decode(b, sp))
            block = c.decode(b, sp)
        out = block
        add("range check (reader)", lambda: st._check_block("label", i, out))

        def whole():
            st._cache = {}
            st.decode_chunk("label", i)

        saved = dict(_compiled._FOUND)
        _compiled._FOUND["_fused_kernels"] = None
        add("whole decode_chunk, codec by codec", whole)
        _compiled._FOUND.clear()
        _compiled._FOUND.update(saved)
        fz = fused.fused_decoder(pipe)
        if fz is not None and fz.ready():
            add("fused pass (zplanes + every array->array step)", lambda: fz.decode(data, n))
            add("whole decode_chunk, fused", whole)

            def pairs():
                st._cache = {}
                st.decode_chunk("label", i, entry_order=False)

            add("whole decode_chunk, fused, pairs only (the loader's read)", pairs)
        del planes
    stages["join planes"] -= stages["zstd (planes)"]
    if "fused pass (zplanes + every array->array step)" in stages:
        stages["fused pass (after zstd)"] = (
            stages.pop("fused pass (zplanes + every array->array step)") - stages["zstd (planes)"]
        )
        stages["whole decode_chunk, fused"] = stages.pop("whole decode_chunk, fused")
        key = "whole decode_chunk, fused, pairs only (the loader's read)"
        stages[key] = stages.pop(key)
    st.close()
    return records, dense, stages, pipe.describe()


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ks", default="10,50,100")
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--work", type=Path, default=REPO / "out" / "profile-planes")
    args = ap.parse_args(argv)
    d = bench_import_smallest.real_logits()
    d["num_images"] = int(d["image"].max()) + 1
    for k in (int(x) for x in args.ks.split(",")):
        records, dense, stages, chain = profile(d, k, args.work, args.repeat)
        whole = stages["whole decode_chunk, codec by codec"]
        print(f"\n### k = {k} ({records} records, chain `{chain[:120]}`)\n")
        print("| stage | µs/record | share of codec by codec | MB/s alone |")
        print("|---|---:|---:|---:|")
        for name, t in stages.items():
            print(f"| {name} | {t / records * 1e6:.3f} | {t / whole:.0%} | {dense / t / 1e6:,.0f} |")
    shutil.rmtree(args.work, ignore_errors=True)


if __name__ == "__main__":
    main()
