"""Write the golden stores of the ``label_generator`` extension (spec/FORMAT.md §12).

    python tests/golden/make_golden_generator.py            # write the cases that are missing
    python tests/golden/make_golden_generator.py --overwrite

``packed-top1-none-generator-v1``: a small packed store (12 images of 8x8x3, 5 classes, batch 4,
2 epochs, stored views) whose label column holds top-1 class indices only and whose header
carries a ``convnet-lite-v1`` generator with seeded weights (width 4, depth 2, rank-3 head,
float16). ``packed-top1-none-generator-v2``: the same layout with 16-px views and a
``convnet-lite-v2`` generator that pools them to 6 px (uneven, overlapping cells) before a
width-4, depth-2 network with a full head. ``expected.json`` records, per case, the weights'
CRC-32 and sha256, the generator's logits on fixed inputs (computed in float64 from the spec's
text) and its architecture; tests/test_generator.py reads them with the current code forever.
Each file is written once and committed; never regenerate one (add a new case instead): the
script writes only the cases whose file is missing and keeps the other entries of
``expected.json`` as they are.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent / "generator"
sys.path.insert(0, str(HERE.parents[2]))

from lplabel import ImageSet, StoreWriter  # noqa: E402
from lplabel.codecs import label_chain  # noqa: E402
from lplabel.generator import decode, encode, make_architecture, tensor_layout  # noqa: E402
from lplabel.views import AugmentPolicy, plan_steps, steps_per_epoch  # noqa: E402

NAME = "packed-top1-none-generator-v1"
NAME_V2 = "packed-top1-none-generator-v2"
N, C, B, E, S = 12, 5, 4, 2, 8
S_V2, R_V2 = 16, 6  # v2: 16-px views pooled to 6 px


def inputs(side: int = S):
    """The fixed inputs the expected logits are taken on: 3 views, float32 0..255."""
    rng = np.random.default_rng(77)
    return rng.integers(0, 256, (3, 3, side, side)).astype(np.float32)


def adaptive_pool(h, g):
    """spec §12.2 step 3's cells (PyTorch's adaptive_avg_pool2d), in float64."""
    n, c, hh, ww = h.shape
    pooled = np.zeros((n, c, g, g))
    for i in range(g):
        for j in range(g):
            r0, r1 = (i * hh) // g, -(-((i + 1) * hh) // g)
            c0, c1 = (j * ww) // g, -(-((j + 1) * ww) // g)
            pooled[:, :, i, j] = h[:, :, r0:r1, c0:c1].mean((2, 3))
    return pooled


def reference_logits(arch, tensors, x):
    """spec §12.2 in numpy float64 (an independent implementation of the forward)."""
    if arch["name"] == "convnet-lite-v2" and x.shape[-1] != arch["resolution"]:
        x = adaptive_pool(x.astype(np.float64), arch["resolution"])  # step 0 of convnet-lite-v2
    mean = np.asarray(arch["mean"])[None, :, None, None]
    std = np.asarray(arch["std"])[None, :, None, None]
    h = (x.astype(np.float64) - mean) / std
    for i in range(arch["depth"]):
        w, b = tensors[f"conv{i}.weight"].astype(np.float64), tensors[f"conv{i}.bias"].astype(np.float64)
        p = np.pad(h, ((0, 0), (0, 0), (1, 1), (1, 1)))
        n, _, hh, ww = h.shape
        out = np.zeros((n, w.shape[0], hh, ww))
        for dy in range(3):
            for dx in range(3):
                out += np.einsum("nchw,oc->nohw", p[:, :, dy : dy + hh, dx : dx + ww], w[:, :, dy, dx])
        h = np.maximum(out + b[None, :, None, None], 0.0)
        if i < arch["depth"] - 1 and h.shape[2] >= 2 and h.shape[3] >= 2:
            h2, w2 = h.shape[2] // 2, h.shape[3] // 2
            h = h[:, :, : 2 * h2, : 2 * w2].reshape(n, -1, h2, 2, w2, 2).mean((3, 5))
    n = h.shape[0]
    f = adaptive_pool(h, arch["grid"]).reshape(n, -1)
    if arch["rank"] is None:
        return f @ tensors["head.weight"].astype(np.float64).T + tensors["head.bias"]
    return (f @ tensors["head_a.weight"].astype(np.float64).T) @ tensors["head_b.weight"].astype(
        np.float64
    ).T + tensors["head_b.bias"]


def write_case(name: str) -> dict:
    """Write the golden store ``name``; return its ``expected.json`` entry."""
    out = HERE / f"{name}.lpl"
    v2 = name == NAME_V2
    side = S_V2 if v2 else S
    rng = np.random.default_rng(2026 if not v2 else 2027)
    imgs = rng.integers(0, 256, (N, 8, 8, 3), dtype=np.uint8)
    iset = ImageSet(imgs, np.arange(N) % C, [f"class{i % C}/img{i}.png" for i in range(N)])
    arch = make_architecture(
        in_channels=3,
        input_size=side,
        num_classes=C,
        width=4,
        depth=2,
        rank=None if v2 else 3,
        mean=[120.0, 125.0, 130.0],
        std=[60.0, 62.0, 64.0],
        resolution=R_V2 if v2 else None,
    )
    tensors = {n: (rng.standard_normal(s) * 0.5).astype(np.float32) for n, s in tensor_layout(arch)}
    entry = encode(arch, tensors, trained={"targets": "none (seeded weights: a golden file)"})
    policy = AugmentPolicy(output_size=side, mix="cutmix")
    spe = steps_per_epoch(N, B, False)
    codecs = label_chain(k=1, values="none", tail="none", index_coding="none", index_type="uint8", level=19)
    with StoreWriter(
        out,
        num_classes=C,
        images=iset,
        batch_size=B,
        epochs=E,
        augmentation=policy.to_json(),
        seed=9,
        label_codecs=codecs,
        steps_per_chunk=2,
        overwrite=True,
        header_copy=False,
        extensions={"label_generator": entry},
    ) as w:
        lr = np.random.default_rng(5)
        for e, s, v in plan_steps(9, [(e, s) for e in range(E) for s in range(spe)], iset.sizes(), B, policy, False):
            z = (lr.standard_normal((len(v), C)) * 3).astype(np.float32)
            w.write_step(
                e,
                s,
                image=v.image,
                crop=v.crop,
                flip=v.flip,
                mix_partner=v.mix_partner,
                mix_lambda=v.mix_lambda,
                mix_box=v.mix_box,
                logits=z,
            )
    a, t = decode(entry, C)
    raw = b"".join(np.asarray(t[n], "<f4").astype("<f2").tobytes() for n, _ in tensor_layout(a))
    return {
        "crc32": entry["crc32"],
        "weights_sha256": hashlib.sha256(raw).hexdigest(),
        "nbytes": entry["nbytes"],
        "architecture": arch,
        "logits": reference_logits(a, t, inputs(side)).round(6).tolist(),
    }


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    exp_p = HERE / "expected.json"
    expected = json.loads(exp_p.read_text()) if exp_p.is_file() else {}
    for name in (NAME, NAME_V2):
        out = HERE / f"{name}.lpl"
        if out.exists() and name in expected and "--overwrite" not in argv:
            print(f"{out} exists (--overwrite to replace it)")
            continue
        expected[name] = write_case(name)
        print(f"wrote {out}")
    exp_p.write_text(json.dumps(expected, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
