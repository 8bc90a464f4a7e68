"""The view sampler ``lplabel-views-v2``: every bit defined by spec/FORMAT.md §11.3, numpy-free in meaning.

``lplabel-views-v1`` (:mod:`lplabel.views`) draws from numpy's ``Generator``, whose streams numpy
promises only per build; no other language can reproduce them from the spec. v2 is built so that a
careful C programmer reproduces it from the spec text alone:

* **Generator**: Philox4x32-10 (Salmon et al., SC'11, "Parallel random numbers: as easy as 1, 2,
  3"), a published counter-based generator: a pure function of a 64-bit key and a 128-bit
  counter, so every random word is addressed directly by what it is for, with no state to carry
  and nothing to replay. Key = ``(seed, epoch)``; counter = ``(index, step, purpose, block)``.
* **Doubles**: ``(r0·2^21 + ⌊r1 / 2^11⌋) · 2^-53``: 53 random bits, exact.
* **Bounded integers** in ``[0, n)``: the words of the draw's stream in order, the first below
  ``2^32 − (2^32 mod n)`` taken modulo n (rejection: exactly uniform).
* **Permutations**: Fisher–Yates from the last position down, position i swapping with a bounded
  draw in ``[0, i]`` addressed by i (so all draws are computed at once; only the swaps are serial).
* **Crop geometry** in IEEE binary64 basic operations only (+ − × ÷ √, round half to even): the
  aspect ratio is log-uniform through a table of repeated square roots, not ``exp``/``log``.
* **λ** (the mix ratio) is stored in every store; it may be drawn any way. Only what follows from
  the stored λ (the CutMix box) is checked bit for bit.

Everything is vectorised over the views of a step; Philox runs in uint64 numpy arithmetic.
"""
from __future__ import annotations

import math

import numpy as np

SAMPLER = "lplabel-views-v2"

#: Philox4x32 multipliers and Weyl key increments (Salmon et al. 2011, Random123).
PHILOX_M0, PHILOX_M1 = 0xD2511F53, 0xCD9E8D57
PHILOX_W0, PHILOX_W1 = 0x9E3779B9, 0xBB67AE85
PHILOX_ROUNDS = 10

#: Counter word c2: what a block is for (spec §11.3, table of purposes).
ORDER, CROP, TOP, LEFT, FLIP, LAMBDA, PERM, CUT_ROW, CUT_COL = range(9)

#: RandomResizedCrop attempts per view, all always drawn (torchvision uses 10).
CROP_ATTEMPTS = 10
#: Bits of the aspect-ratio word; the table has this many repeated square roots.
RATIO_BITS = 32

_MASK = np.uint64(0xFFFFFFFF)
_U32 = 1 << 32


def _u64(x) -> np.ndarray:
    return np.asarray(x, dtype=np.uint64)


def philox4x32(c0, c1, c2, c3, k0: int, k1: int):
    """Philox4x32-10 of counter ``(c0, c1, c2, c3)`` (arrays of 32-bit values, broadcast) under key
    ``(k0, k1)``: four uint64 arrays holding the 32-bit output words ``r0..r3``.

    Round: ``(hi0, lo0) = M0·c0``, ``(hi1, lo1) = M1·c2`` (64-bit products), then
    ``c = (hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0)``; the key gains ``(W0, W1)`` (mod 2^32)
    before every round but the first.
    """
    c0, c1, c2, c3 = np.broadcast_arrays(_u64(c0), _u64(c1), _u64(c2), _u64(c3))
    k0, k1 = int(k0) & 0xFFFFFFFF, int(k1) & 0xFFFFFFFF
    m0, m1, s32 = np.uint64(PHILOX_M0), np.uint64(PHILOX_M1), np.uint64(32)
    for r in range(PHILOX_ROUNDS):
        if r:
            k0, k1 = (k0 + PHILOX_W0) & 0xFFFFFFFF, (k1 + PHILOX_W1) & 0xFFFFFFFF
        p0 = c0 * m0
        p1 = c2 * m1
        c0, c1, c2, c3 = ((p1 >> s32) ^ c1 ^ np.uint64(k0), p1 & _MASK,
                          (p0 >> s32) ^ c3 ^ np.uint64(k1), p0 & _MASK)
    return c0, c1, c2, c3


def uniform53(r0, r1) -> np.ndarray:
    """The double ``(r0·2^21 + ⌊r1/2^11⌋)·2^-53`` in [0, 1): 53 random bits, exactly."""
    x = (_u64(r0) << np.uint64(21)) | (_u64(r1) >> np.uint64(11))
    return x.astype(np.float64) * (2.0 ** -53)


def bounded(n, index, step: int, purpose: int, key) -> np.ndarray:
    """Uniform integers in ``[0, n)`` (n in 1..2^32, broadcast with ``index``), by rejection.

    The stream of draw ``index`` is the words r0, r1, r2, r3 of block 0 of counter
    ``(index, step, purpose, ·)``, then of block 1, ...; the first word w with
    ``w < 2^32 − (2^32 mod n)`` gives ``w mod n``. int64 array.
    """
    n_arr, idx = np.broadcast_arrays(_u64(n), _u64(index))
    n_arr, idx = n_arr.ravel(), idx.ravel()
    if n_arr.size and (n_arr.min() < 1 or n_arr.max() > _U32):
        raise ValueError("bounded(): n must lie in [1, 2**32]")
    lim = np.uint64(_U32) - (np.uint64(_U32) % n_arr)
    out = np.zeros(n_arr.shape, dtype=np.uint64)
    todo = np.arange(n_arr.size)
    block = 0
    while todo.size:
        words = philox4x32(idx[todo], step, purpose, block, *key)
        got = np.zeros(todo.size, dtype=bool)
        val = np.zeros(todo.size, dtype=np.uint64)
        for w in words:  # r0, r1, r2, r3 in order: the first accepted word wins
            take = ~got & (w < lim[todo])
            val[take] = w[take] % n_arr[todo][take]
            got |= take
        out[todo[got]] = val[got]
        todo = todo[~got]
        block += 1
        if block >= _U32:  # unreachable in practice (probability < 2^-(2^33))
            raise ValueError("bounded(): counter exhausted")
    return out.astype(np.int64).reshape(np.broadcast_shapes(np.shape(n), np.shape(index)))


def permutation(n: int, step: int, purpose: int, key) -> np.ndarray:
    """Fisher–Yates: ``a = [0..n-1]``; for i = n−1 down to 1, swap ``a[i]`` and ``a[j_i]`` with
    ``j_i = bounded(i + 1, index=i)``. int64 [n]."""
    n = int(n)
    if n <= 1:
        return np.arange(n, dtype=np.int64)
    i = np.arange(1, n, dtype=np.uint64)
    j = bounded(i + np.uint64(1), i, step, purpose, key).tolist()  # j[i-1] = j_i
    a = list(range(n))
    for pos in range(n - 1, 0, -1):
        q = j[pos - 1]
        a[pos], a[q] = a[q], a[pos]
    return np.asarray(a, dtype=np.int64)


def epoch_order(seed: int, epoch: int, num_images: int) -> np.ndarray:
    """Image ids in epoch order: the permutation of key (seed, epoch), step word 0, purpose ORDER."""
    return permutation(num_images, 0, ORDER, (seed, epoch))


def ratio_table(ratio_lo: float, ratio_hi: float) -> list[float]:
    """``T[0] = √(hi/lo)``, ``T[k] = √T[k−1]`` (k < 32): T[k] = (hi/lo)^(2^-(k+1)), each rounded."""
    t = [math.sqrt(float(ratio_hi) / float(ratio_lo))]
    for _ in range(RATIO_BITS - 1):
        t.append(math.sqrt(t[-1]))
    return t


def aspect_ratios(bits, ratio_lo: float, table) -> np.ndarray:
    """``ratio_lo · Π T[k]`` over the set bits ``31 − k`` of each 32-bit word, multiplied for k =
    0, 1, ..., 31 in order (each product rounded): ≈ lo·(hi/lo)^(bits/2^32), log-uniform."""
    bits = _u64(bits)
    a = np.full(bits.shape, float(ratio_lo), dtype=np.float64)
    for k, tk in enumerate(table):
        on = ((bits >> np.uint64(RATIO_BITS - 1 - k)) & np.uint64(1)).astype(bool)
        np.multiply(a, tk, out=a, where=on)
    return a


def crop_boxes(seed: int, epoch: int, step: int, heights, widths, scale, ratio):
    """Pixel boxes ``top, left, h, w`` (int64 [b]) of a step's views (spec §11.3, *Crop*)."""
    H = np.asarray(heights, dtype=np.int64).reshape(-1)
    W = np.asarray(widths, dtype=np.int64).reshape(-1)
    b = len(H)
    key = (seed, epoch)
    views = np.arange(b, dtype=np.uint64)[:, None]
    attempts = np.arange(CROP_ATTEMPTS, dtype=np.uint64)[None, :]
    r0, r1, r2, _ = philox4x32(views, step, CROP, attempts, *key)
    u = uniform53(r0, r1)                                     # [b, 10]
    lo_s, hi_s = float(scale[0]), float(scale[1])
    area = (H * W).astype(np.float64)[:, None]                # integer product, rounded once
    target = area * (lo_s + (hi_s - lo_s) * u)                # three roundings: ×, +, ×
    aspect = aspect_ratios(r2, float(ratio[0]), ratio_table(ratio[0], ratio[1]))
    wf = np.rint(np.sqrt(target * aspect))
    hf = np.rint(np.sqrt(target / aspect))
    ok = (wf >= 1) & (wf <= W[:, None]) & (hf >= 1) & (hf <= H[:, None])
    first = np.argmax(ok, axis=1)
    rows = np.arange(b)
    found = ok.any(axis=1)
    h = np.where(found, hf[rows, first], 0.0)
    w = np.where(found, wf[rows, first], 0.0)
    # fallback: the whole image, its aspect clamped to the ratio range, centred
    Hf, Wf = H.astype(np.float64), W.astype(np.float64)
    in_ratio = Wf / np.maximum(Hf, 1.0)
    fb_h, fb_w = Hf.copy(), Wf.copy()
    narrow, wide = in_ratio < float(ratio[0]), in_ratio > float(ratio[1])
    with np.errstate(over="ignore"):
        fb_h = np.where(narrow, np.minimum(np.maximum(np.rint(Wf / float(ratio[0])), 1.0), Hf), fb_h)
        fb_w = np.where(wide, np.minimum(np.maximum(np.rint(Hf * float(ratio[1])), 1.0), Wf), fb_w)
    h = np.where(found, h, fb_h).astype(np.int64)
    w = np.where(found, w, fb_w).astype(np.int64)
    top = np.where(found, bounded(H - h + 1, np.arange(b), step, TOP, key) if b else 0, (H - h) // 2)
    left = np.where(found, bounded(W - w + 1, np.arange(b), step, LEFT, key) if b else 0, (W - w) // 2)
    return top.astype(np.int64), left.astype(np.int64), h, w, ~found


def flips(seed: int, epoch: int, step: int, b: int, flip_p: float) -> np.ndarray:
    """``uniform53(r0, r1) < flip_p`` of block (i, step, FLIP, 0) for each view i: bool [b]."""
    r0, r1, _, _ = philox4x32(np.arange(b, dtype=np.uint64), step, FLIP, 0, seed, epoch)
    return uniform53(r0, r1) < float(flip_p)


def draw_lambda(seed: int, epoch: int, step: int, alpha: float) -> float:
    """λ ~ Beta(α, α) as lplabel draws it (*informative*: λ is stored, never regenerated).

    numpy's ``Generator(PCG64(x)).beta(α, α)`` with x the 128-bit value of block (0, step, LAMBDA,
    0); a different numpy may draw a different λ, which changes nothing for stores already written.
    """
    r = [int(w) for w in philox4x32(0, step, LAMBDA, 0, seed, epoch)]
    x = r[0] << 96 | r[1] << 64 | r[2] << 32 | r[3]
    return float(np.random.Generator(np.random.PCG64(x)).beta(alpha, alpha))


def check_lambda(lam: float) -> float:
    """A mixed step's λ must be a number in [0, 1] (the CutMix box needs √(1 − λ))."""
    lam = float(lam)
    if not 0.0 <= lam <= 1.0:  # also refuses NaN
        raise ValueError(f"a mixed step needs mix_lambda in [0, 1], got {lam!r}")
    return lam


def cutmix_box(seed: int, epoch: int, step: int, lam: float, size: int) -> np.ndarray:
    """``(row0, col0, row1, col1)`` int16 from the stored λ: ``cut = ⌊S·√(1−λ)⌋``, centre drawn."""
    cut = int(math.floor(size * math.sqrt(1.0 - check_lambda(lam))))
    cy = int(bounded(size, 0, step, CUT_ROW, (seed, epoch)))
    cx = int(bounded(size, 0, step, CUT_COL, (seed, epoch)))
    half = cut // 2
    clip = lambda v: min(max(v, 0), size)  # noqa: E731
    return np.array([clip(cy - half), clip(cx - half), clip(cy + half), clip(cx + half)], dtype=np.int16)
