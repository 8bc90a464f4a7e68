"""Write the golden label stores of format v1 (run once per released format version).

    python tests/golden/make_golden.py

The files and ``expected.json`` are committed; tests/test_golden.py reads them with the current
code forever, so a change that breaks reading old stores fails the suite. Never regenerate the
files of a released version: add a new folder for a new version instead.
"""
from __future__ import annotations

import hashlib
import json
import math
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from lplabel import StoreWriter, open_store  # noqa: E402
from lplabel.codecs import default_label_codecs  # noqa: E402
from lplabel.images import ImageIndex  # noqa: E402

CASES = {
    "dense-fp16-cutmix": dict(codecs=default_label_codecs("dense", type="float16"), mix=True, spc=1),
    "dense-bf16-nomix-chunk3": dict(codecs=default_label_codecs("dense", type="bfloat16"), mix=False, spc=3),
    "dense-fp32": dict(codecs=default_label_codecs("dense", type="float32"), mix=True, spc=2),
    "topk4-fp16-lse": dict(codecs=default_label_codecs("topk", k=4, tail="logsumexp"), mix=True, spc=1),
    "topk3-bf16-min-crop16": dict(codecs=default_label_codecs("topk", k=3, type="bfloat16", tail="min"), mix=False,
                                  spc=2, crop_type="float16"),
}


def step_digest(st) -> str:
    h = hashlib.sha256()
    for a in (st.image, st.crop, st.flip, st.mix_partner, st.mix_box):
        h.update(np.ascontiguousarray(a).tobytes())
    h.update(np.float64(st.mix_lambda).tobytes())
    for k in sorted(st.label):
        h.update(k.encode())
        h.update(np.ascontiguousarray(st.label[k]).tobytes())
    return h.hexdigest()


def write_case(name, spec, out: Path):
    rng = np.random.default_rng(abs(hash(name)) % 2**32 if False else sum(map(ord, name)))
    n, c, b, epochs = 10, 12, 4, 2
    images = ImageIndex([f"class{i % 3}/img{i}.png" for i in range(n)], np.arange(n) % 3, "0" * 64,
                        ["class0", "class1", "class2"])
    with StoreWriter(out, num_classes=c, images=images, batch_size=b, epochs=epochs, label_codecs=spec["codecs"],
                     steps_per_chunk=spec["spc"], crop_type=spec.get("crop_type", "float32"),
                     augmentation={"output_size": 8, "mix": "cutmix" if spec["mix"] else "none"},
                     teacher={"description": "golden synthetic teacher", "checksum": None, "temperature": 1.0},
                     seed=7, overwrite=True) as w:
        for e in range(epochs):
            order = rng.permutation(n)
            for s in range(3):
                if (e, s) == (1, 1):
                    continue  # a pruned step
                ids = order[s * b:(s + 1) * b]
                k = len(ids)
                z = (rng.standard_normal((k, c)) * 3).astype(np.float32)
                kw = dict(mix_partner=rng.permutation(k), mix_lambda=float(rng.beta(1, 1)),
                          mix_box=rng.integers(0, 8, 4)) if spec["mix"] else dict(mix_lambda=math.nan)
                w.write_step(e, s, image=ids, crop=rng.random((k, 4)), flip=rng.random(k) < 0.5, logits=z, **kw)


def main():
    out_dir = HERE / "v1"
    out_dir.mkdir(exist_ok=True)
    expected = {}
    for name, spec in CASES.items():
        path = out_dir / f"{name}.lpl"
        write_case(name, spec, path)
        with open_store(path) as s:
            expected[name] = {
                "records": s.num_records,
                "steps": [[st.epoch, st.step, step_digest(st)] for st in s.iter_steps()],
                "first_label": {k: np.asarray(v[0]).tolist() for k, v in s.step_at(0).label.items()},
                "label_codecs": s.header["columns"]["label"]["codecs"],
            }
    (out_dir / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")


if __name__ == "__main__":
    main()
