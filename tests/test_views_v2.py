"""The view sampler lplabel-views-v2 (spec/FORMAT.md §11.3) against its spec text and test vectors.

``Ref`` below is a second implementation written from the spec's pseudo-code, one scalar step at a
time in plain Python integers and floats (Python floats are IEEE binary64 with correctly rounded
``+ - * /`` and ``math.sqrt``; ``round`` is ties-to-even), sharing nothing with lplabel's vectorised
numpy code. Both must reproduce the committed vectors, and each other on random policies.
"""

import json
import math
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lplabel.views import v2 as V2
from lplabel.views import SAMPLER_V2, AugmentPolicy, crop_pixels, epoch_order, plan_steps, sample_step

ROOT = Path(__file__).resolve().parents[1]
VECTORS = json.loads((ROOT / "spec" / "views-v2-vectors.json").read_text())
M32 = 0xFFFFFFFF


# ---------------------------------------------------------------------- the reference, from §11.3


class Ref:
    ORDER, CROP, TOP, LEFT, FLIP, LAMBDA, PERM, CUT_ROW, CUT_COL = range(9)

    @staticmethod
    def philox(c0, c1, c2, c3, k0, k1):
        for rnd in range(10):
            if rnd > 0:
                k0, k1 = (k0 + 0x9E3779B9) & M32, (k1 + 0xBB67AE85) & M32
            p0, p1 = 0xD2511F53 * c0, 0xCD9E8D57 * c2
            c0, c1, c2, c3 = (p1 >> 32) ^ c1 ^ k0, p1 & M32, (p0 >> 32) ^ c3 ^ k1, p0 & M32
        return c0, c1, c2, c3

    def __init__(self, seed, epoch, step):
        self.seed, self.epoch, self.step = seed, epoch, step

    def blk(self, index, purpose, j, step=None):
        return self.philox(index, self.step if step is None else step, purpose, j, self.seed, self.epoch)

    @staticmethod
    def unit(r0, r1):
        return float((r0 << 21) | (r1 >> 11)) * 2.0**-53

    def bounded(self, n, index, purpose, step=None):
        lim = 2**32 - (2**32 % n)
        j = 0
        while True:
            for w in self.blk(index, purpose, j, step):
                if w < lim:
                    return w % n
            j += 1

    def perm(self, n, purpose, step=None):
        a = list(range(n))
        for i in range(n - 1, 0, -1):
            j = self.bounded(i + 1, i, purpose, step)
            a[i], a[j] = a[j], a[i]
        return a

    def order(self, n):
        return self.perm(n, self.ORDER, step=0)

    @staticmethod
    def table(lo, hi):
        t = [math.sqrt(hi / lo)]
        for _ in range(31):
            t.append(math.sqrt(t[-1]))
        return t

    def crop(self, i, H, W, scale, ratio):
        d = scale[1] - scale[0]
        T = self.table(*ratio)
        area = float(H * W)
        for j in range(10):
            r0, r1, r2, _ = self.blk(i, self.CROP, j)
            target = area * (scale[0] + d * self.unit(r0, r1))
            a = ratio[0]
            for k in range(32):
                if (r2 >> (31 - k)) & 1:
                    a = a * T[k]
            wf, hf = math.sqrt(target * a), math.sqrt(target / a)
            wf = float(round(wf)) if math.isfinite(wf) else wf
            hf = float(round(hf)) if math.isfinite(hf) else hf
            if 1 <= wf <= W and 1 <= hf <= H:
                h, w = int(hf), int(wf)
                return self.bounded(H - h + 1, i, self.TOP), self.bounded(W - w + 1, i, self.LEFT), h, w, False
        r = float(W) / float(H)
        h, w = H, W
        if r < ratio[0]:
            x = float(W) / ratio[0]
            h = int(min(max(float(round(x)) if math.isfinite(x) else x, 1.0), float(H)))
        elif r > ratio[1]:
            x = float(H) * ratio[1]
            w = int(min(max(float(round(x)) if math.isfinite(x) else x, 1.0), float(W)))
        return (H - h) // 2, (W - w) // 2, h, w, True

    def step_views(self, n_images, batch_size, sizes, pol, lam):
        order = Ref(self.seed, self.epoch, 0).order(n_images)
        ids = order[self.step * batch_size : (self.step + 1) * batch_size]
        boxes, fb, bits, flips = [], [], [], []
        for i, im in enumerate(ids):
            H, W = sizes[im]
            top, left, h, w, f = self.crop(i, H, W, pol["crop_scale"], pol["crop_ratio"])
            boxes.append([top, left, h, w])
            fb.append(f)
            bits.append([struct.pack(">f", x).hex() for x in (top / H, left / W, h / H, w / W)])  # f64 -> f32
            r0, r1, _, _ = self.blk(i, self.FLIP, 0)
            flips.append(self.unit(r0, r1) < pol["flip_p"])
        b, S = len(ids), pol["output_size"]
        partner, box = [-1] * b, [0, 0, 0, 0]
        if pol["mix"] != "none" and b:
            partner = self.perm(b, self.PERM)
            if pol["mix"] == "cutmix":
                cut = math.floor(float(S) * math.sqrt(1 - lam))
                half = cut // 2
                cy, cx = self.bounded(S, 0, self.CUT_ROW), self.bounded(S, 0, self.CUT_COL)
                clamp = lambda v: min(max(v, 0), S)  # noqa: E731
                box = [clamp(cy - half), clamp(cx - half), clamp(cy + half), clamp(cx + half)]
        return {
            "image": ids,
            "box": boxes,
            "fallback": fb,
            "crop_bits": bits,
            "flip": flips,
            "mix_partner": partner,
            "mix_box": box,
        }


def _lam(case):
    h = case["mix_lambda"]
    return None if h is None else struct.unpack(">d", bytes.fromhex(h))[0]


# ---------------------------------------------------------------------- vectors


def test_philox_known_answers_reference_and_lplabel():
    for c in VECTORS["philox"]:
        assert list(Ref.philox(*c["counter"], *c["key"])) == c["out"]
        assert [int(w) for w in V2.philox4x32(*c["counter"], *c["key"])] == c["out"]
    assert VECTORS["philox"][0]["out"] == [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]  # Random123 KAT


def test_bounded_vectors():
    for c in VECTORS["bounded"]:
        ref = Ref(c["seed"], c["epoch"], c["step"]).bounded(c["n"], c["index"], c["purpose"])
        assert (
            ref == c["value"] == int(V2.bounded(c["n"], c["index"], c["step"], c["purpose"], (c["seed"], c["epoch"])))
        )


def test_ratio_table_and_orders():
    for c in VECTORS["ratio_table"]:
        got = [struct.pack(">d", t).hex() for t in Ref.table(*c["ratio"])]
        assert got == c["T"] == [struct.pack(">d", t).hex() for t in V2.ratio_table(*c["ratio"])]
    for c in VECTORS["orders"]:
        assert Ref(c["seed"], c["epoch"], 0).order(c["n"]) == c["order"]
        assert epoch_order(c["seed"], c["epoch"], c["n"], SAMPLER_V2).tolist() == c["order"]


@pytest.mark.parametrize("i", range(len(VECTORS["steps"])))
def test_step_vectors(i):
    c = VECTORS["steps"][i]
    ref = Ref(c["seed"], c["epoch"], c["step"]).step_views(
        c["num_images"], c["batch_size"], c["sizes"], c["policy"], _lam(c)
    )
    for k, v in ref.items():
        assert v == c[k], k
    policy = AugmentPolicy.from_json(c["policy"])
    sizes = np.asarray(c["sizes"])
    ids = epoch_order(c["seed"], c["epoch"], c["num_images"], SAMPLER_V2)
    ids = ids[c["step"] * c["batch_size"] : (c["step"] + 1) * c["batch_size"]]
    lam = _lam(c)
    v = sample_step(c["seed"], c["epoch"], c["step"], ids, sizes, policy, mix_lambda=math.nan if lam is None else lam)
    assert v.image.tolist() == c["image"] and v.flip.tolist() == c["flip"]
    assert [[struct.pack(">f", x).hex() for x in row.tolist()] for row in v.crop] == c["crop_bits"]
    assert crop_pixels(v.crop, sizes[ids]).tolist() == c["box"]
    assert v.mix_partner.tolist() == c["mix_partner"] and v.mix_box.tolist() == c["mix_box"]


def test_vectors_cover_what_they_claim():
    steps = VECTORS["steps"]
    assert {s["policy"]["mix"] for s in steps} == {"none", "cutmix", "mixup"}
    assert any(any(s["fallback"]) for s in steps) and any(not all(s["fallback"]) for s in steps)
    assert any(s["drop_last"] for s in steps)
    assert any(len(s["image"]) < s["batch_size"] for s in steps)  # a short last step
    assert {s["policy"]["flip_p"] for s in steps} >= {0.0, 0.5, 1.0}


def test_vectors_file_is_what_the_generator_writes():
    r = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "golden" / "make_view_vectors.py"), "--check"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": ""},
    )
    assert r.returncode == 0, r.stdout + r.stderr


# ---------------------------------------------------------------------- random policies


def _random_case(rng):
    n = int(rng.integers(1, 40))
    kind = rng.integers(0, 3)
    if kind == 0:
        sizes = rng.integers(1, 6, size=(n, 2))
    elif kind == 1:
        sizes = rng.integers(1, 3000, size=(n, 2))
    else:
        sizes = np.column_stack([rng.integers(1, 20, n), rng.integers(500, 5000, n)])[:, rng.permutation(2)]
    lo = float(rng.choice([0.01, 0.08, 0.25, rng.uniform(0.001, 1.0)]))
    r_lo = float(rng.choice([0.75, 0.1, 1.0, rng.uniform(0.05, 2.0)]))
    r_hi = float(rng.choice([r_lo, 4 / 3 if r_lo < 4 / 3 else r_lo * 2, r_lo * rng.uniform(1, 50)]))
    policy = AugmentPolicy(
        int(rng.integers(1, 300)),
        crop_scale=(lo, float(rng.uniform(lo, 1.0))),
        crop_ratio=(r_lo, r_hi),
        flip_p=float(rng.choice([0.0, 0.5, 1.0, rng.uniform()])),
        mix=str(rng.choice(["none", "cutmix", "mixup"])),
    )
    seed, epoch, step = (int(x) for x in rng.integers(0, 2**32, 3, dtype=np.uint64))
    B = int(rng.integers(1, 12))
    step = step % max(1, -(-n // B))
    return seed, epoch, step, sizes, B, policy


def test_reference_and_lplabel_agree_on_random_policies():
    rng = np.random.default_rng(7)
    for _ in range(300):
        seed, epoch, step, sizes, B, policy = _random_case(rng)
        lam = None if policy.mix == "none" else float(rng.choice([0.0, 1.0, rng.uniform()]))
        ref = Ref(seed, epoch, step).step_views(len(sizes), B, sizes.tolist(), policy.to_json(), lam)
        ids = epoch_order(seed, epoch, len(sizes), SAMPLER_V2)[step * B : (step + 1) * B]
        v = sample_step(seed, epoch, step, ids, sizes, policy, mix_lambda=math.nan if lam is None else lam)
        assert v.image.tolist() == ref["image"]
        assert crop_pixels(v.crop, sizes[ids]).tolist() == ref["box"]
        assert [[struct.pack(">f", x).hex() for x in row.tolist()] for row in v.crop] == ref["crop_bits"]
        assert v.flip.tolist() == ref["flip"]
        assert v.mix_partner.tolist() == ref["mix_partner"] and v.mix_box.tolist() == ref["mix_box"]


# ---------------------------------------------------------------------- properties


def test_bounded_is_uniform_and_in_range():
    for n in (1, 3, 7, 224, 1000):
        x = V2.bounded(n, np.arange(20000), 0, V2.TOP, (1, 2))
        assert x.min() >= 0 and x.max() < n
        if n > 1:
            counts = np.bincount(x, minlength=n)
            exp = 20000 / n
            chi2 = float(((counts - exp) ** 2 / exp).sum())
            assert chi2 < n - 1 + 6 * math.sqrt(2 * (n - 1)) + 10  # far inside the chi-square tail


def test_permutations_are_permutations_and_cover_positions():
    for n in (0, 1, 2, 5, 1000):
        p = V2.permutation(n, 3, V2.PERM, (9, 9))
        assert sorted(p.tolist()) == list(range(n))
    first = np.array([V2.permutation(4, s, V2.PERM, (0, 0))[0] for s in range(4000)])
    assert np.all(np.abs(np.bincount(first, minlength=4) - 1000) < 150)


def test_aspect_is_log_uniform_within_range():
    t = V2.ratio_table(0.75, 4 / 3)
    bits = np.random.default_rng(0).integers(0, 2**32, 50000, dtype=np.uint64)
    a = V2.aspect_ratios(bits, 0.75, t)
    assert a.min() >= 0.75 and a.max() <= 4 / 3
    la = np.log(a)
    assert abs(np.median(la)) < 0.01  # symmetric in log space
    assert V2.aspect_ratios(np.array([0], dtype=np.uint64), 0.75, t)[0] == 0.75


def test_steps_are_independent_of_each_other():
    sizes = np.random.default_rng(1).integers(10, 300, (30, 2))
    pol = AugmentPolicy(32, mix="cutmix")
    pairs = [(e, s) for e in range(2) for s in range(4)]
    whole = {(e, s): v for e, s, v in plan_steps(3, pairs, sizes, 8, pol)}
    for e, s, v in plan_steps(3, pairs[::-1][:3], sizes, 8, pol):
        assert v.equals(whole[(e, s)])


def test_lambda_is_taken_as_given_and_checked():
    sizes = np.full((8, 2), 40)
    pol = AugmentPolicy(32, mix="cutmix")
    drawn = sample_step(1, 0, 0, np.arange(8), sizes, pol)
    assert 0.0 <= drawn.mix_lambda <= 1.0
    given = sample_step(1, 0, 0, np.arange(8), sizes, pol, mix_lambda=drawn.mix_lambda)
    assert given.equals(drawn)
    other = sample_step(1, 0, 0, np.arange(8), sizes, pol, mix_lambda=0.0)  # λ = 0: the whole image is cut
    assert other.mix_box.tolist()[2] - other.mix_box.tolist()[0] >= 16
    assert np.array_equal(other.mix_partner, drawn.mix_partner)
    for bad in (math.nan, -0.1, 1.5):
        with pytest.raises(ValueError, match="mix_lambda"):
            sample_step(1, 0, 0, np.arange(8), sizes, pol, mix_lambda=bad)
    with pytest.raises(ValueError, match="mix_lambda NaN"):
        sample_step(1, 0, 0, np.arange(8), sizes, AugmentPolicy(32), mix_lambda=0.5)


def test_compiled_and_numpy_forms_agree(monkeypatch):
    """lplabel runs v2 compiled (numba) when it can and as numpy otherwise: both are the spec's."""
    k = V2.kernels()
    if k is None:
        pytest.skip("numba not available: only the numpy form runs here")
    rng = np.random.default_rng(11)
    cases = [_random_case(rng) for _ in range(1500)]

    def run():
        out = []
        for seed, epoch, step, sizes, B, policy in cases:
            out.append(
                V2.sample_views(
                    seed,
                    epoch,
                    step,
                    sizes[:B, 0],
                    sizes[:B, 1],
                    policy.crop_scale,
                    policy.crop_ratio,
                    policy.flip_p,
                    policy.mix != "none",
                    policy.output_size if policy.mix == "cutmix" else 0,
                )
            )
        out.append(V2.epoch_order(5, 6, 5000))
        return out

    compiled = run()
    monkeypatch.setattr(V2, "_KERNELS", False)
    assert V2.kernels() is None
    plain = run()
    for a, b in zip(compiled, plain):
        if isinstance(a, np.ndarray):
            assert np.array_equal(a, b)
            continue
        for x, y in zip(a, b):
            if x is None or isinstance(x, tuple):
                assert x == y
            else:
                assert np.array_equal(np.asarray(x), np.asarray(y))
