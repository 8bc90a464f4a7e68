"""Write spec/views-v2-vectors.json: test vectors of the view sampler ``lplabel-views-v2`` (spec §11.3.7).

    python tests/golden/make_view_vectors.py           # refuses to replace an existing file
    python tests/golden/make_view_vectors.py --check   # exit 1 when the committed file differs

The file is committed with the spec and read by tests/test_views_v2.py; an independent
implementation (any language) checks itself against it. v2 is defined by the spec, not by this
code: the vectors must never change. ``--check`` regenerates in memory and compares.
"""

from __future__ import annotations

import argparse
import json
import math
import struct
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))

from lplabel.views import v2 as V2  # noqa: E402
from lplabel.views import AugmentPolicy, crop_pixels, epoch_order, sample_step, steps_per_epoch  # noqa: E402

OUT = ROOT / "spec" / "views-v2-vectors.json"


def f64hex(x: float) -> str:
    return struct.pack(">d", float(x)).hex()


def f32hex(x) -> str:
    return struct.pack(">f", float(np.float32(x))).hex()


def philox_case(c, k):
    return {"counter": list(c), "key": list(k), "out": [int(w) for w in V2.philox4x32(*c, *k)]}


def step_case(seed, epoch, step, sizes, batch_size, policy, drop_last=False, mix_lambda=None):
    """One step's views. λ is an input (stored in a store, never regenerated, spec §11.3.5): a mixed
    step gets ``mix_lambda`` or a fixed λ from the step's numbers, never lplabel's own Beta draw."""
    sizes = np.asarray(sizes, dtype=np.int64)
    if policy.mix == "none":
        mix_lambda = math.nan
    elif mix_lambda is None:
        mix_lambda = ((seed * 7919 + epoch * 104729 + step * 1299709) % 1000003) / 1000003
    n = len(sizes)
    order = epoch_order(seed, epoch, n, V2.SAMPLER)
    ids = order[step * batch_size : (step + 1) * batch_size]
    v = sample_step(seed, epoch, step, ids, sizes, policy, mix_lambda=mix_lambda)
    hw = sizes[ids]
    top, left, h, w, fb = V2.crop_boxes(seed, epoch, step, hw[:, 0], hw[:, 1], policy.crop_scale, policy.crop_ratio)
    assert step < steps_per_epoch(n, batch_size, drop_last), "a step the epoch does not have"
    box = np.stack([top, left, h, w], axis=1)
    assert np.array_equal(crop_pixels(v.crop, hw), box), "crop fractions must give back the pixel box"
    return {
        "seed": seed,
        "epoch": epoch,
        "step": step,
        "num_images": n,
        "batch_size": batch_size,
        "drop_last": drop_last,
        "sizes": sizes.tolist(),
        "policy": policy.to_json(),
        "mix_lambda": None if math.isnan(v.mix_lambda) else f64hex(v.mix_lambda),
        "image": v.image.tolist(),
        "box": box.tolist(),
        "fallback": fb.tolist(),
        "crop_bits": [[f32hex(x) for x in row] for row in v.crop],
        "flip": v.flip.tolist(),
        "mix_partner": v.mix_partner.tolist(),
        "mix_box": v.mix_box.tolist(),
    }


def build() -> dict:
    rng = np.random.default_rng(20261205)  # only picks the inputs; the outputs are the sampler's
    philox = [
        philox_case((0, 0, 0, 0), (0, 0)),
        philox_case((0xFFFFFFFF,) * 4, (0xFFFFFFFF, 0xFFFFFFFF)),
        philox_case((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0)),
        philox_case((3, 17, V2.CROP, 9), (12345, 2)),
        philox_case((0, 0, V2.ORDER, 0), (7, 0)),
    ]
    bounded = []
    for n, index, step, purpose, seed, epoch in [
        (1, 0, 0, V2.TOP, 0, 0),
        (2, 5, 1, V2.PERM, 3, 4),
        (10, 9, 0, V2.ORDER, 7, 0),
        (224, 0, 17, V2.CUT_ROW, 99, 3),
        (2**31 + 1, 1, 2, V2.LEFT, 5, 6),
        (2**31 + 1, 2, 2, V2.LEFT, 5, 6),
        (3 * 2**30, 7, 8, V2.TOP, 1, 1),
        (2**32 - 1, 0, 0, V2.TOP, 0, 0),
        (2**32, 4, 4, V2.TOP, 4, 4),
    ]:
        bounded.append(
            {
                "n": n,
                "index": index,
                "step": step,
                "purpose": purpose,
                "seed": seed,
                "epoch": epoch,
                "value": int(V2.bounded(n, index, step, purpose, (seed, epoch))),
            }
        )
    # make sure some of them needed more than the first word (the rule for refused words is exercised)
    refused = [
        b
        for b in bounded
        if int(V2.philox4x32(b["index"], b["step"], b["purpose"], 0, b["seed"], b["epoch"])[0])
        >= 2**32 - 2**32 % b["n"]
    ]
    assert refused, "no bounded vector exercises rejection"
    for b in range(40):  # also one that needs a second block
        case = dict(n=2**31 + 1, index=b, step=11, purpose=V2.TOP, seed=13, epoch=0)
        words = V2.philox4x32(b, 11, V2.TOP, 0, 13, 0)
        if all(int(w) >= 2**31 + 1 for w in words):
            case["value"] = int(V2.bounded(case["n"], b, 11, V2.TOP, (13, 0)))
            bounded.append(case)
            break
    tables = [
        {"ratio": list(r), "T": [f64hex(t) for t in V2.ratio_table(*r)]}
        for r in [(3 / 4, 4 / 3), (0.5, 2.0), (1.0, 1.0), (0.1, 30.0)]
    ]
    orders = [
        {"seed": s, "epoch": e, "n": n, "order": epoch_order(s, e, n, V2.SAMPLER).tolist()}
        for s, e, n in [(0, 0, 1), (0, 0, 2), (7, 0, 10), (7, 1, 10), (2**32 - 1, 2**32 - 1, 37), (42, 3, 100)]
    ]

    steps = []
    sizes20 = rng.integers(1, 400, size=(20, 2))
    for mix in ("none", "cutmix", "mixup"):
        for step in (0, 2):
            steps.append(step_case(11, 1, step, sizes20, 8, AugmentPolicy(32, mix=mix)))
    odd = np.array([[1, 1], [1, 1000], [3000, 7], [224, 224], [2, 3], [500, 375], [7, 7]])
    steps.append(step_case(5, 0, 0, odd, 7, AugmentPolicy(224, mix="cutmix")))
    steps.append(step_case(5, 0, 0, odd, 7, AugmentPolicy(16, crop_scale=(0.9, 1.0), crop_ratio=(0.1, 30.0))))
    steps.append(
        step_case(5, 2, 1, odd, 3, AugmentPolicy(8, crop_scale=(0.01, 0.02), crop_ratio=(1.0, 1.0), flip_p=1.0))
    )
    steps.append(step_case(5, 2, 2, odd, 3, AugmentPolicy(8, flip_p=0.0, mix="mixup", mix_alpha=0.2)))
    steps.append(step_case(5, 2, 1, odd, 3, AugmentPolicy(8, crop_ratio=(3.0, 4.0)), drop_last=True))
    # CutMix boxes from given λ (the stored one; any λ in [0, 1] is valid): the edges
    for lam in (0.0, 1.0, 0.5, 0.25, 1e-300, float(np.nextafter(1.0, 0.0))):
        steps.append(
            step_case(2**32 - 1, 2**32 - 1, 0, sizes20[:5], 5, AugmentPolicy(64, mix="cutmix"), mix_lambda=lam)
        )
    steps.append(
        step_case(
            123456789,
            7,
            4,
            rng.integers(1, 5000, size=(300, 2)),
            64,
            AugmentPolicy(
                224, crop_scale=(0.25, 1.0), crop_ratio=(0.75, 4 / 3), flip_p=0.5, mix="cutmix", mix_alpha=1.0
            ),
        )
    )
    return {
        "sampler": V2.SAMPLER,
        "spec": "spec/FORMAT.md §11.3",
        "philox": philox,
        "bounded": bounded,
        "ratio_table": tables,
        "orders": orders,
        "steps": steps,
    }


def dump(obj) -> str:
    return json.dumps(obj, separators=(",", ":"), sort_keys=False) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare with the committed file instead of writing")
    ap.add_argument("--overwrite", action="store_true", help="replace an existing file (never for released vectors)")
    a = ap.parse_args(argv)
    text = dump(build())
    if a.check:
        same = OUT.exists() and json.loads(OUT.read_text()) == json.loads(text)
        print("vectors match" if same else "vectors DIFFER from the committed file")
        return 0 if same else 1
    if OUT.exists() and not a.overwrite:
        print(f"{OUT} exists; the vectors of a released sampler never change (--overwrite to force)")
        return 1
    OUT.write_text(text)
    print(f"wrote {OUT} ({len(text)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
