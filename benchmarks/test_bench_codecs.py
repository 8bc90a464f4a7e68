"""pytest-benchmark timings of the label codecs (encode and decode of one chunk).

Run with ``pytest benchmarks/test_bench_codecs.py --benchmark-enable`` (or ``make bench``); the
repository's pytest options disable benchmarks and only collect ``tests/`` by default. Uses the
cached real teacher logits of bench_codecs.py when present (out/bench-cache/), else synthetic
logits shaped like a trained teacher's.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lplabel.codecs import Field, Pipeline, learn_label_chain  # noqa: E402

RECORDS = 1024  # 8 steps of 128


@pytest.fixture(scope="module")
def logits():
    cache = Path(__file__).resolve().parents[1] / "out" / "bench-cache" / "imagenet1k-effnetlite0.npz"
    if cache.exists():
        z = np.load(cache)["logits"].reshape(-1, 1000)[:RECORDS]
        return np.ascontiguousarray(z, dtype=np.float32)
    rng = np.random.default_rng(0)
    z = rng.normal(0, 1.5, (RECORDS, 1000)).astype(np.float32)
    z[np.arange(RECORDS), rng.integers(0, 1000, RECORDS)] += 8
    return z


CASES = {
    "dense-fp16": dict(k=None, values="fp16", index_coding="none"),
    "dense-int8": dict(k=None, values="int8", index_coding="none"),
    "top10-fp16": dict(k=10, values="fp16", index_coding="index-delta"),
    "top100-fp16": dict(k=100, values="fp16", index_coding="index-delta"),
    "top100-fp16-valuedelta": dict(k=100, values="fp16", index_coding="value-delta"),
    "top100-int8": dict(k=100, values="int8", index_coding="index-delta"),
    "top100-int4": dict(k=100, values="int4", index_coding="index-delta"),
}


def _pipeline(logits, case, layout="planes"):
    spec = (Field("logits", "float32", (1000,)),)  # class order learnt from the first 256 records
    chain = learn_label_chain(
        [{"logits": logits[:256]}],
        spec,
        num_classes=1000,
        **CASES[case],
        class_order="cooccurrence",
        layout=layout,
        level=19,
    )
    return Pipeline(chain, spec)


@pytest.mark.parametrize("case", list(CASES))
def test_decode(benchmark, logits, case):
    p = _pipeline(logits, case)
    data = p.encode({"logits": logits})
    benchmark.extra_info["bytes_per_record"] = len(data) / RECORDS
    benchmark.extra_info["dense_fp16_mb"] = RECORDS * 2000 / 1e6
    out = benchmark(p.decode, data, RECORDS)
    assert len(next(iter(out.values()))) == RECORDS


@pytest.mark.parametrize("case", ["dense-fp16", "top10-fp16", "top100-fp16", "top100-int8"])
def test_encode(benchmark, logits, case):
    p = _pipeline(logits, case)
    data = benchmark(p.encode, {"logits": logits})
    benchmark.extra_info["bytes_per_record"] = len(data) / RECORDS


@pytest.mark.parametrize("layout", ["planes", "shuffle"])
def test_decode_layout(benchmark, logits, layout):
    p = _pipeline(logits, "top100-fp16", layout)
    data = p.encode({"logits": logits})
    benchmark.extra_info["bytes_per_record"] = len(data) / RECORDS
    benchmark(p.decode, data, RECORDS)
