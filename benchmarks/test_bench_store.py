"""Write and read throughput of label stores (issue 2), in MB/s of dense-equivalent fp16 labels.

Run:  .venv/bin/python -m pytest benchmarks/test_bench_store.py --benchmark-enable \
          --benchmark-json out/bench-store.json && .venv/bin/python benchmarks/report_store.py out/bench-store.json

Content: C=1000 classes, B=128, 40 steps (5,120 records = 10.24 MB as dense fp16) of synthetic
teacher-like logits (one dominant class over a N(0, 1.5) floor; see tests/conftest.py).
"""

import numpy as np
import pytest

from lplabel import StoreWriter, open_store
from lplabel.codecs import preset_chain
from lplabel.testing import realistic_logits

C, B, STEPS = 1000, 128, 40
DENSE_MB = STEPS * B * C * 2 / 1e6


@pytest.fixture(scope="module")
def content():
    rng = np.random.default_rng(0)
    return [
        dict(
            image=rng.integers(0, 10000, B),
            crop=rng.random((B, 4)).astype(np.float32),
            flip=rng.random(B) < 0.5,
            logits=realistic_logits(rng, B, C),
            mix_partner=rng.permutation(B),
            mix_lambda=float(rng.beta(1, 1)),
            mix_box=rng.integers(0, 224, 4),
        )
        for _ in range(STEPS)
    ]


CHAINS = {
    "dense-fp16": lambda: preset_chain("plain", type="float16"),
    "topk100-fp16": lambda: preset_chain("plain", k=100),
    "topk10-fp16": lambda: preset_chain("plain", k=10),
}


def _write(path, content, chain):
    with StoreWriter(
        path,
        num_classes=C,
        images=10000,
        batch_size=B,
        epochs=1,
        steps_per_epoch=STEPS,
        label_codecs=chain(),
        overwrite=True,
    ) as w:
        for s, rec in enumerate(content):
            w.write_step(0, s, **rec)


@pytest.mark.parametrize("chain", sorted(CHAINS))
def test_write_throughput(benchmark, tmp_path, content, chain):
    path = tmp_path / "w.lpl"
    benchmark.pedantic(_write, args=(path, content, CHAINS[chain]), rounds=3, iterations=1)
    benchmark.extra_info.update(dense_fp16_mb=DENSE_MB, file_bytes=path.stat().st_size, kind="write", chain=chain)


@pytest.mark.parametrize("chain", sorted(CHAINS))
def test_read_throughput(benchmark, tmp_path, content, chain):
    path = tmp_path / "r.lpl"
    _write(path, content, CHAINS[chain])

    def read_all():
        with open_store(path) as s:
            for i in range(s.num_steps):
                s.step_at(i)

    benchmark.pedantic(read_all, rounds=5, iterations=1)
    benchmark.extra_info.update(dense_fp16_mb=DENSE_MB, file_bytes=path.stat().st_size, kind="read", chain=chain)
