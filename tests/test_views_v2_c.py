"""The C implementation of `lplabel-views-v2` (spec/ref/views_v2.c) against the spec and lplabel.

spec/ref/views_v2.c was written from spec/FORMAT.md §11.3 alone, without reading lplabel's
sampler. If it reproduces the committed test vectors and lplabel's own draws on many random
policies, the spec text is complete enough for an independent reader. The C file is compiled
with the system compiler (skipped, with the reason, when there is none); each test drives one
process of it with many lines of commands (the C side takes well under a second; the ~10^4
random cases cost ~12 s of CPU, almost all in lplabel's own `sample_views`).
"""

from __future__ import annotations

import json
import math
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

from lplabel.views import v2 as views_v2

REPO = Path(__file__).resolve().parents[1]
C_SOURCE = REPO / "spec" / "ref" / "views_v2.c"
VECTORS = json.loads((REPO / "spec" / "views-v2-vectors.json").read_text())
MIX_CODE = {"none": 0, "cutmix": 1, "mixup": 2}
N_RANDOM_VIEWS = 10_000  # random (policy, seed, epoch, step) cases against sample_views
N_RANDOM_ORDERS = 400
N_RANDOM_STEPS = 300  # whole steps: epoch order + views, against epoch_order + sample_views


@pytest.fixture(scope="module")
def sampler(tmp_path_factory):
    """Path of the compiled C sampler (the test is skipped when no C compiler is installed)."""
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        pytest.skip("no C compiler (cc, gcc or clang) on PATH: the C sampler cannot be built")
    exe = tmp_path_factory.mktemp("views_v2_c") / "views_v2"
    # §11.3 "Arithmetic": one rounding per binary64 operation, no FMA contraction, no fast-math.
    cmd = [cc, "-std=c99", "-O2", "-Wall", "-Wextra", "-ffp-contract=off", "-o", str(exe), str(C_SOURCE), "-lm"]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, f"compiling {C_SOURCE.name} failed:\n{res.stderr}"
    return exe


def run_c(exe, lines: list[str]) -> list[str]:
    """Feed the command lines to one C process; one answer line per command, none an error."""
    res = subprocess.run([str(exe)], input="\n".join(lines) + "\n", capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    out = res.stdout.splitlines()
    assert len(out) == len(lines)
    for line, answer in zip(lines, out):
        assert not answer.startswith("error"), f"{line[:200]!r} -> {answer}"
    return out


def bits_f64(h: str) -> float:
    return struct.unpack(">d", bytes.fromhex(h))[0]


def real(x: float) -> str:
    """A binary64 for the C side, exactly (C99 strtod reads hex floats)."""
    return "nan" if math.isnan(x) else float(x).hex()


VIEW_FIELDS = 11  # top left h w fallback flip partner crop0..crop3 (binary32 bits as u32)


def parse_views(tokens: list[str] | np.ndarray, b: int) -> tuple[np.ndarray, np.ndarray]:
    """The `views`/`step` answer after b (and the image ids): ([b, 11] views, the 6-entry tail
    row0 col0 row1 col1 cy cx)."""
    a = np.asarray(tokens, dtype=np.int64)
    assert a.shape == (VIEW_FIELDS * b + 6,)
    return a[: VIEW_FIELDS * b].reshape(b, VIEW_FIELDS), a[VIEW_FIELDS * b :]


def crop_bits(top, left, h, w, hs, ws) -> np.ndarray:
    """§11.3.3's stored crop as binary32 bits, computed by numpy from integer boxes ([b, 4])."""
    hs, ws = np.asarray(hs, np.float64), np.asarray(ws, np.float64)
    q = np.stack([top / hs, left / ws, h / hs, w / ws], axis=1)  # float64 quotients
    return q.astype(np.float32).view(np.uint32).astype(np.int64)


# --------------------------------------------------------------------- (a) the spec's vectors


def test_philox_vectors(sampler):
    cases = VECTORS["philox"]
    out = run_c(sampler, ["philox " + " ".join(map(str, c["counter"] + c["key"])) for c in cases])
    assert [list(map(int, o.split())) for o in out] == [c["out"] for c in cases]
    assert len(cases) >= 3


def test_bounded_vectors(sampler):
    cases = VECTORS["bounded"]
    out = run_c(
        sampler, [f"bounded {c['n']} {c['index']} {c['step']} {c['purpose']} {c['seed']} {c['epoch']}" for c in cases]
    )
    assert [int(o) for o in out] == [c["value"] for c in cases]


def test_ratio_table_vectors(sampler):
    cases = VECTORS["ratio_table"]
    # the JSON's decimal numbers go to C as text: the C side reads them with strtod (§11.3 Inputs)
    out = run_c(sampler, [f"ratio {json.dumps(c['ratio'][0])} {json.dumps(c['ratio'][1])}" for c in cases])
    assert [o.split() for o in out] == [c["T"] for c in cases]


def test_order_vectors(sampler):
    cases = VECTORS["orders"]
    out = run_c(sampler, [f"order {c['seed']} {c['epoch']} {c['n']}" for c in cases])
    assert [list(map(int, o.split())) for o in out] == [c["order"] for c in cases]


def step_line(c) -> str:
    p = c["policy"]
    lam = "nan" if c["mix_lambda"] is None else real(bits_f64(c["mix_lambda"]))
    sizes = " ".join(f"{h} {w}" for h, w in c["sizes"])
    return (
        f"step {c['seed']} {c['epoch']} {c['step']} {c['num_images']} {c['batch_size']} "
        f"{int(c['drop_last'])} {p['output_size']} {json.dumps(p['crop_scale'][0])} "
        f"{json.dumps(p['crop_scale'][1])} {json.dumps(p['crop_ratio'][0])} "
        f"{json.dumps(p['crop_ratio'][1])} {json.dumps(p['flip_p'])} {MIX_CODE[p['mix']]} {lam} {sizes}"
    )


def test_step_vectors(sampler):
    cases = VECTORS["steps"]
    out = run_c(sampler, [step_line(c) for c in cases])
    for c, o in zip(cases, out):
        tok = o.split()
        b = int(tok[0])
        assert [int(t) for t in tok[1 : 1 + b]] == c["image"]
        views, tail = parse_views(tok[1 + b :], b)
        assert views[:, 0:4].tolist() == c["box"]
        assert views[:, 4].astype(bool).tolist() == c["fallback"]
        assert views[:, 5].astype(bool).tolist() == c["flip"]
        assert views[:, 6].tolist() == c["mix_partner"]
        assert [[f"{x:08x}" for x in row] for row in views[:, 7:11].tolist()] == c["crop_bits"]
        assert tail[:4].tolist() == c["mix_box"]
    kinds = {c["policy"]["mix"] for c in cases}
    assert kinds == {"none", "cutmix", "mixup"} and any(any(c["fallback"]) for c in cases)


# ------------------------------------------------------- (b) lplabel's sampler on random cases


def random_u32(rng) -> int:
    r = rng.random()
    if r < 0.3:
        return int(rng.integers(0, 8))
    if r < 0.4:
        return int(rng.choice([2**31 - 1, 2**31, 2**32 - 2, 2**32 - 1]))
    return int(rng.integers(0, 2**32))


def random_sizes(rng, b: int) -> tuple[list[int], list[int]]:
    kind = rng.integers(0, 5)
    if kind == 0:  # tiny images: fallbacks and 1-pixel crops
        hw = rng.integers(1, 9, size=(b, 2))
    elif kind == 1:  # typical photos
        hw = rng.integers(16, 600, size=(b, 2))
    elif kind == 2:  # extreme aspect ratios
        long = rng.integers(200, 5000, size=b)
        short = rng.integers(1, 12, size=b)
        tall = rng.random(b) < 0.5
        hw = np.stack([np.where(tall, long, short), np.where(tall, short, long)], axis=1)
    elif kind == 3:  # huge sides (products up to ~2^62, bounded draws with n near 2^31)
        hw = rng.integers(1, 2**31, size=(b, 2))
    else:  # a mixture
        hw = np.concatenate([rng.integers(1, 3000, size=(b, 1)), rng.integers(1, 3000, size=(b, 1))], axis=1)
    return [int(x) for x in hw[:, 0]], [int(x) for x in hw[:, 1]]


def random_policy(rng) -> dict:
    r = rng.random()
    if r < 0.25:
        scale, ratio = (0.08, 1.0), (3 / 4, 4 / 3)
    else:
        a, c = sorted(float(x) for x in rng.random(2))
        lo = max(a, 1e-6) if rng.random() < 0.9 else float(rng.choice([1e-300, 1e-9, 1.0]))
        hi = max(c, lo) if rng.random() < 0.85 else lo
        hi = 1.0 if rng.random() < 0.3 else hi
        scale = (min(lo, hi), hi)
        rlo = float(np.exp(rng.uniform(-4, 2)))
        rhi = rlo * float(np.exp(rng.uniform(0, 6))) if rng.random() < 0.85 else rlo
        if rng.random() < 0.05:
            rlo, rhi = 1e-3, 1e3
        ratio = (rlo, rhi)
    flip_p = float(rng.choice([0.0, 1.0, 0.5, float(rng.random())]))
    mix = str(rng.choice(["none", "cutmix", "mixup"]))
    size = int(rng.choice([1, 2, 7, 32, 224, int(rng.integers(1, 32768))]))
    lam = float(rng.choice([0.0, 1.0, float(rng.random()), float(rng.random()) ** 8]))
    return dict(scale=scale, ratio=ratio, flip_p=flip_p, mix=mix, size=size, lam=lam)


def policy_tokens(p) -> str:
    lam = p["lam"] if p["mix"] == "cutmix" else math.nan
    return (
        f"{p['size']} {real(p['scale'][0])} {real(p['scale'][1])} {real(p['ratio'][0])} "
        f"{real(p['ratio'][1])} {real(p['flip_p'])} {MIX_CODE[p['mix']]} {real(lam)}"
    )


def lplabel_views(seed, epoch, step, hs, ws, p) -> tuple[np.ndarray, np.ndarray]:
    """lplabel's draws (black box) in the C side's layout: ([b, 11] views, 6-entry tail)."""
    top, left, h, w, fallback, flip, partner, centre = views_v2.sample_views(
        seed,
        epoch,
        step,
        np.asarray(hs, np.int64),
        np.asarray(ws, np.int64),
        p["scale"],
        p["ratio"],
        p["flip_p"],
        p["mix"] != "none",
        p["size"] if p["mix"] == "cutmix" else 0,
    )
    b = len(hs)
    partner = np.full(b, -1, np.int64) if partner is None else np.asarray(partner, np.int64)
    views = np.concatenate(
        [
            np.stack([top, left, h, w, fallback, flip, partner], axis=1).astype(np.int64),
            crop_bits(top, left, h, w, hs, ws),
        ],
        axis=1,
    )
    if p["mix"] == "cutmix":
        tail = [int(x) for x in views_v2.cutmix_box(p["lam"], p["size"], centre)] + [int(centre[0]), int(centre[1])]
    else:
        tail = [0, 0, 0, 0, -1, -1]
    return views, np.asarray(tail, np.int64)


def test_views_agree_with_lplabel_on_random_policies(sampler):
    rng = np.random.default_rng(20261205)
    cases, lines = [], []
    for _ in range(N_RANDOM_VIEWS):
        p = random_policy(rng)
        b = 1 if rng.random() < 0.15 else int(rng.integers(1, 33))
        hs, ws = random_sizes(rng, b)
        seed, epoch, step = random_u32(rng), random_u32(rng), random_u32(rng)
        cases.append((seed, epoch, step, hs, ws, p))
        sizes = " ".join(f"{h} {w}" for h, w in zip(hs, ws))
        lines.append(f"views {seed} {epoch} {step} {policy_tokens(p)} {b} {sizes}")
    out = run_c(sampler, lines)
    agreed, views_total, fallbacks, flips, mixes = 0, 0, 0, 0, set()
    for (seed, epoch, step, hs, ws, p), o, line in zip(cases, out, lines):
        tok = o.split()
        b = int(tok[0])
        assert b == len(hs)
        got_views, got_tail = parse_views(tok[1:], b)
        want_views, want_tail = lplabel_views(seed, epoch, step, hs, ws, p)
        assert np.array_equal(got_views, want_views) and np.array_equal(got_tail, want_tail), (
            f"C and lplabel differ on: {line[:300]}"
        )
        agreed += 1
        views_total += b
        fallbacks += int(want_views[:, 4].sum())
        flips += int(want_views[:, 5].sum())
        mixes.add(p["mix"])
    assert agreed == N_RANDOM_VIEWS
    # the random cases reach both crop branches, both flip outcomes and every mix kind
    assert 0 < fallbacks < views_total and 0 < flips < views_total and len(mixes) == 3


def test_epoch_orders_agree_with_lplabel(sampler):
    rng = np.random.default_rng(7)
    cases = [
        (random_u32(rng), random_u32(rng), int(rng.choice([0, 1, 2, 3, int(rng.integers(4, 3000))])))
        for _ in range(N_RANDOM_ORDERS)
    ]
    out = run_c(sampler, [f"order {s} {e} {n}" for s, e, n in cases])
    for (s, e, n), o in zip(cases, out):
        assert [int(t) for t in o.split()] == [int(x) for x in views_v2.epoch_order(s, e, n)]


def test_whole_steps_agree_with_lplabel(sampler):
    """The `step` command (epoch order, the step's slice, then its views) against lplabel."""
    rng = np.random.default_rng(11)
    lines, cases = [], []
    for _ in range(N_RANDOM_STEPS):
        n = int(rng.integers(1, 200))
        batch = int(rng.integers(1, n + 3))
        drop_last = bool(rng.random() < 0.3) and batch <= n
        spe = n // batch if drop_last else -(-n // batch)
        step = int(rng.integers(0, spe))
        seed, epoch = random_u32(rng), random_u32(rng)
        hs, ws = random_sizes(rng, n)
        p = random_policy(rng)
        cases.append((seed, epoch, step, n, batch, hs, ws, p))
        sizes = " ".join(f"{h} {w}" for h, w in zip(hs, ws))
        lines.append(f"step {seed} {epoch} {step} {n} {batch} {int(drop_last)} {policy_tokens(p)} {sizes}")
    out = run_c(sampler, lines)
    for (seed, epoch, step, n, batch, hs, ws, p), o in zip(cases, out):
        ids = [int(x) for x in views_v2.epoch_order(seed, epoch, n)[step * batch : (step + 1) * batch]]
        tok = o.split()
        b = int(tok[0])
        assert [int(t) for t in tok[1 : 1 + b]] == ids
        got_views, got_tail = parse_views(tok[1 + b :], b)
        want_views, want_tail = lplabel_views(seed, epoch, step, [hs[i] for i in ids], [ws[i] for i in ids], p)
        assert np.array_equal(got_views, want_views) and np.array_equal(got_tail, want_tail)


def test_c_refuses_bad_input(sampler):
    """Bad commands get an error line, not a crash or a silent answer."""
    res = subprocess.run(
        [str(sampler)],
        input="frobnicate 1\nbounded 0 0 0 0 0 0\n"
        "views 0 0 0 8 0.5 0.25 0.75 1.3 0.5 0 nan 1 4 4\n"
        "views 0 0 0 8 0.08 1 0.75 1.3 0.5 1 nan 1 4 4\n"
        "step 0 0 5 10 4 0 8 0.08 1 0.75 1.3 0.5 0 nan" + " 4 4" * 10 + "\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    out = res.stdout.splitlines()
    assert res.returncode == 0 and len(out) == 5 and all(o.startswith("error") for o in out), out
