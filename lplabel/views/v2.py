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

Everything is vectorised over the views of a step; Philox runs in uint64 numpy arithmetic. When
numba can be used, :mod:`lplabel.views._v2_kernels` runs the same arithmetic compiled, one scalar
at a time (≈ v1's speed; the numpy form is ~7x slower per step and ~35x per epoch order, measured
in benchmarks/results/views-v2-2026-12-05.md); :func:`kernels` checks it against this form once.
"""

from __future__ import annotations

import functools
import math
import os
import random

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

#: The compiled form (:mod:`lplabel.views._v2_kernels`, numba) when it can be used; ``False`` when
#: not, ``None`` until first asked. ``LPLABEL_VIEWS_NUMPY=1`` keeps the numpy form (tests compare).
_KERNELS = None


def kernels():
    """The numba kernels, or None (numba missing or broken, or LPLABEL_VIEWS_NUMPY=1)."""
    global _KERNELS
    if _KERNELS is None:
        _KERNELS = False
        if os.environ.get("LPLABEL_VIEWS_NUMPY", "") in ("", "0"):
            try:
                from . import _v2_kernels as k

                _KERNELS = k if _self_check(k) else False
            except Exception:  # numba missing or unusable: the numpy form is exact too
                _KERNELS = False
    return _KERNELS or None


def _self_check(k) -> bool:
    """Compile the kernels (or load them from numba's cache) and check them once: Philox's first
    known answer, and a small step of odd sizes against the numpy form."""
    u = np.uint64
    if [int(w) for w in k.philox(u(0), u(0), u(0), u(0), u(0), u(0))] != [
        0x6627E8D5,
        0xE169C58D,
        0xBC57AC4C,
        0x9B00DBD8,
    ]:
        return False
    H = np.array([1, 1, 3000, 64, 500, 7], dtype=np.int64)
    W = np.array([1, 1000, 7, 64, 375, 9], dtype=np.int64)
    args = (0x9E3779B9, 7, 3, H, W, (0.08, 1.0), (0.75, 4 / 3), 0.5, True, 32)
    global _KERNELS
    _KERNELS = k
    compiled = sample_views(*args)
    _KERNELS = False
    plain = sample_views(*args)
    return all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(compiled, plain))


def _u64(x) -> np.ndarray:
    return np.asarray(x, dtype=np.uint64)


#: Per-round key words ((k0 + r·W0) mod 2^32, (k1 + r·W1) mod 2^32) as a [2, 1] column, by key.
@functools.lru_cache(maxsize=256)
def _round_keys(k0: int, k1: int) -> tuple:
    return tuple(
        np.array([[(k0 + r * PHILOX_W0) & 0xFFFFFFFF], [(k1 + r * PHILOX_W1) & 0xFFFFFFFF]], dtype=np.uint64)
        for r in range(PHILOX_ROUNDS)
    )


_MULT = np.array([[PHILOX_M0], [PHILOX_M1]], dtype=np.uint64)


def philox4x32(c0, c1, c2, c3, k0: int, k1: int):
    """Philox4x32-10 of counter ``(c0, c1, c2, c3)`` (arrays or ints of 32-bit values, broadcast)
    under key ``(k0, k1)``: four uint64 arrays holding the 32-bit output words ``r0..r3``.

    Round: ``(hi0, lo0) = M0·c0``, ``(hi1, lo1) = M1·c2`` (64-bit products), then
    ``c = (hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0)``; the key gains ``(W0, W1)`` (mod 2^32)
    before every round but the first. Vectorised as two [2, n] planes, ``(c0, c2)`` and
    ``(c1, c3)``, so a round is five numpy operations.
    """
    shape = np.broadcast_shapes(np.shape(c0), np.shape(c1), np.shape(c2), np.shape(c3))
    n = math.prod(shape)
    a = np.empty((2, n), dtype=np.uint64)  # (c0, c2)
    b = np.empty((2, n), dtype=np.uint64)  # (c1, c3)
    for plane, src, row in ((a, c0, 0), (b, c1, 0), (a, c2, 1), (b, c3, 1)):
        plane[row] = np.broadcast_to(np.asarray(src, dtype=np.uint64), shape).reshape(-1)
    s32 = np.uint64(32)
    for key in _round_keys(int(k0) & 0xFFFFFFFF, int(k1) & 0xFFFFFFFF):
        p = a * _MULT  # (M0·c0, M1·c2)
        a = (p >> s32)[::-1] ^ b ^ key  # (hi1 ^ c1 ^ k0, hi0 ^ c3 ^ k1)
        b = (p & _MASK)[::-1]  # (lo1, lo0)
    return a[0].reshape(shape), b[0].reshape(shape), a[1].reshape(shape), b[1].reshape(shape)


def uniform53(r0, r1) -> np.ndarray:
    """The double ``(r0·2^21 + ⌊r1/2^11⌋)·2^-53`` in [0, 1): 53 random bits, exactly."""
    x = (_u64(r0) << np.uint64(21)) | (_u64(r1) >> np.uint64(11))
    return x.astype(np.float64) * (2.0**-53)


def bounded(n, index, step: int, purpose, key, first_block=None) -> np.ndarray:
    """Uniform integers in ``[0, n)`` (n in 1..2^32, broadcast with ``index`` and ``purpose``), by
    rejection.

    The stream of draw ``index`` is the words r0, r1, r2, r3 of block 0 of counter
    ``(index, step, purpose, ·)``, then of block 1, ...; the first word w with
    ``w < 2^32 − (2^32 mod n)`` gives ``w mod n``. int64 array.

    ``first_block``: the four words of block 0 when the caller drew them already (flattened like
    ``n``); only the draws that refuse all four then need more Philox blocks.
    """
    shape = np.broadcast_shapes(np.shape(n), np.shape(index), np.shape(purpose))
    n_arr, idx, pur = (a.ravel() for a in np.broadcast_arrays(_u64(n), _u64(index), _u64(purpose)))
    if n_arr.size and (n_arr.min() < 1 or n_arr.max() > _U32):
        raise ValueError("bounded(): n must lie in [1, 2**32]")
    lim = np.uint64(_U32) - (np.uint64(_U32) % n_arr)
    out = np.zeros(n_arr.shape, dtype=np.uint64)
    todo = np.arange(n_arr.size)
    block = 0
    while todo.size:
        if block == 0 and first_block is not None:
            words = tuple(np.asarray(w, dtype=np.uint64).ravel() for w in first_block)
        else:
            words = philox4x32(idx[todo], step, pur[todo], block, *key)
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
    return out.astype(np.int64).reshape(shape)


def permutation(n: int, step: int, purpose: int, key, first_block=None) -> np.ndarray:
    """Fisher–Yates: ``a = [0..n-1]``; for i = n−1 down to 1, swap ``a[i]`` and ``a[j_i]`` with
    ``j_i = bounded(i + 1, index=i)``. int64 [n]. ``first_block``: block 0 of indices 1..n−1."""
    n = int(n)
    if n <= 1:
        return np.arange(n, dtype=np.int64)
    k = kernels()
    if k is not None:
        return k.permutation(
            n,
            np.uint64(step),
            np.uint64(purpose),
            np.uint64(int(key[0]) & 0xFFFFFFFF),
            np.uint64(int(key[1]) & 0xFFFFFFFF),
        )
    i = np.arange(1, n, dtype=np.uint64)
    j = bounded(i + np.uint64(1), i, step, purpose, key, first_block).tolist()  # j[i-1] = j_i
    a = list(range(n))
    for pos in range(n - 1, 0, -1):
        q = j[pos - 1]
        a[pos], a[q] = a[q], a[pos]
    return np.asarray(a, dtype=np.int64)


def epoch_order(seed: int, epoch: int, num_images: int) -> np.ndarray:
    """Image ids in epoch order: the permutation of key (seed, epoch), step word 0, purpose ORDER."""
    return permutation(num_images, 0, ORDER, (seed, epoch))


@functools.lru_cache(maxsize=64)
def ratio_table(ratio_lo: float, ratio_hi: float) -> tuple[float, ...]:
    """``T[0] = √(hi/lo)``, ``T[k] = √T[k−1]`` (k < 32): T[k] = (hi/lo)^(2^-(k+1)), each rounded."""
    t = [math.sqrt(float(ratio_hi) / float(ratio_lo))]
    for _ in range(RATIO_BITS - 1):
        t.append(math.sqrt(t[-1]))
    return tuple(t)


def aspect_ratios(bits, ratio_lo: float, table) -> np.ndarray:
    """``ratio_lo · Π T[k]`` over the set bits ``31 − k`` of each 32-bit word, multiplied for k =
    0, 1, ..., 31 in order (each product rounded): ≈ lo·(hi/lo)^(bits/2^32), log-uniform.

    A clear bit multiplies by 1.0 here, which is exact, so every product is the spec's."""
    bits = _u64(bits)
    shape = bits.shape
    # row k of the bit matrix is bit 31 - k of every word: big-endian bytes, unpacked MSB first
    on = np.unpackbits(bits.reshape(-1).astype(">u4").view(np.uint8).reshape(-1, 4), axis=1).T
    factors = np.where(on.astype(bool), np.asarray(table, dtype=np.float64)[:, None], 1.0)  # [32, n]
    a = np.full(on.shape[1], float(ratio_lo), dtype=np.float64)
    for row in factors:
        a *= row
    return a.reshape(shape)


def _attempts(todo, js, step, key, area, H, W, lo_s, d, lo_r, table, words=None):
    """Crop attempts ``js`` of the views ``todo``: per view, the first accepted (h, w), if any."""
    if words is None:
        words = philox4x32(todo.astype(np.uint64)[:, None], step, CROP, js[None, :], *key)
    r0, r1, r2 = (np.asarray(w).reshape(len(todo), -1) for w in words[:3])
    target = area[todo][:, None] * (lo_s + d * uniform53(r0, r1))  # three roundings: ×, +, ×
    aspect = aspect_ratios(r2, lo_r, table)
    wf = np.rint(np.sqrt(target * aspect))
    hf = np.rint(np.sqrt(target / aspect))
    ok = (wf >= 1) & (wf <= W[todo][:, None]) & (hf >= 1) & (hf <= H[todo][:, None])
    any_ok = ok.any(axis=1)
    rows = np.flatnonzero(any_ok)
    first = np.argmax(ok, axis=1)[rows]
    return any_ok, hf[rows, first], wf[rows, first]


def sample_views(
    seed: int, epoch: int, step: int, heights, widths, scale, ratio, flip_p: float, mix: bool, cut_size: int = 0
):
    """Everything §11.3 draws for one step of b views (vectorised; λ is not drawn here).

    Returns ``(top, left, h, w, fallback, flip, partner, cut_centre)``: int64 [b] boxes, bool [b]
    fallback and flip, int64 [b] partners (None unless ``mix``), and ``(cy, cx)`` (None unless
    ``cut_size``). The block 0 of every draw the step needs — crop attempt 0, flip, top, left,
    partners and the CutMix centre — comes from one Philox call; only the views whose first
    attempt fails and the (rare) bounded draws that refuse four words take more.
    """
    H = np.asarray(heights, dtype=np.int64).reshape(-1)
    W = np.asarray(widths, dtype=np.int64).reshape(-1)
    b = len(H)
    key = (seed, epoch)
    k = kernels()
    if k is not None:
        u = lambda v: np.uint64(int(v) & 0xFFFFFFFF)  # noqa: E731
        st, sd, ep = u(step), u(seed), u(epoch)
        lo_s = float(scale[0])
        top, left, h, w, fb = k.crops(
            H,
            W,
            st,
            sd,
            ep,
            lo_s,
            float(scale[1]) - lo_s,
            float(ratio[0]),
            float(ratio[1]),
            np.asarray(ratio_table(float(ratio[0]), float(ratio[1]))),
        )
        flip = k.flips(b, st, sd, ep, float(flip_p))
        partner = k.permutation(b, st, np.uint64(PERM), sd, ep) if mix else None
        centre = tuple(int(v) for v in k.centre(int(cut_size), st, sd, ep)) if cut_size else None
        return top, left, h, w, fb, flip, partner, centre
    views = np.arange(b, dtype=np.uint64)
    cut = 2 if cut_size else 0
    m = b - 1 if mix and b > 1 else 0  # Fisher–Yates positions 1..b-1
    index = np.concatenate([views, views, views, views, views[1 : 1 + m], np.zeros(cut, np.uint64)])
    purpose = np.repeat(
        np.array([CROP, FLIP, TOP, LEFT, PERM, CUT_ROW, CUT_COL], dtype=np.uint64), [b, b, b, b, m, cut // 2, cut // 2]
    )
    words = philox4x32(index, step, purpose, 0, *key)
    part = lambda lo, hi: tuple(w[lo:hi] for w in words)  # noqa: E731  (block 0 of one purpose)

    lo_s, hi_s = float(scale[0]), float(scale[1])
    d = hi_s - lo_s
    lo_r, table = float(ratio[0]), ratio_table(float(ratio[0]), float(ratio[1]))
    area = (H * W).astype(np.float64)  # integer product, rounded once
    h = np.zeros(b, dtype=np.float64)
    w = np.zeros(b, dtype=np.float64)
    found = np.zeros(b, dtype=bool)
    todo = np.arange(b)
    # Attempt j is a pure function of (view, j), so it need not be drawn for views already
    # placed: attempt 0 for every view (from the shared call), then 1..9 for the views left.
    for js, wd in ((np.array([0]), part(0, b)), (np.arange(1, CROP_ATTEMPTS), None)):
        if not todo.size:
            break
        ok, hh, ww = _attempts(todo, js, step, key, area, H, W, lo_s, d, lo_r, table, wd)
        hit = todo[ok]
        h[hit], w[hit], found[hit] = hh, ww, True
        todo = todo[~ok]
    # fallback: the whole image, its aspect clamped to the ratio range, centred
    Hf, Wf = H.astype(np.float64), W.astype(np.float64)
    in_ratio = Wf / Hf
    narrow, wide = in_ratio < lo_r, in_ratio > float(ratio[1])
    with np.errstate(over="ignore"):
        fb_h = np.where(narrow, np.minimum(np.maximum(np.rint(Wf / lo_r), 1.0), Hf), Hf)
        fb_w = np.where(wide, np.minimum(np.maximum(np.rint(Hf * float(ratio[1])), 1.0), Wf), Wf)
    h = np.where(found, h, fb_h).astype(np.int64)
    w = np.where(found, w, fb_w).astype(np.int64)
    pos = bounded(
        np.concatenate([H - h + 1, W - w + 1]),
        np.concatenate([views, views]),
        step,
        purpose[2 * b : 4 * b],
        key,
        part(2 * b, 4 * b),
    )
    top = np.where(found, pos[:b], (H - h) // 2)
    left = np.where(found, pos[b:], (W - w) // 2)

    r0, r1, _, _ = part(b, 2 * b)
    flip = uniform53(r0, r1) < float(flip_p)
    partner = permutation(b, step, PERM, key, part(4 * b, 4 * b + m)) if mix else None
    centre = None
    if cut_size:
        cy, cx = bounded(int(cut_size), 0, step, purpose[4 * b + m :], key, part(4 * b + m, 4 * b + m + 2))
        centre = (int(cy), int(cx))
    return top, left, h, w, ~found, flip, partner, centre


def crop_boxes(seed: int, epoch: int, step: int, heights, widths, scale, ratio):
    """Pixel boxes ``top, left, h, w`` (int64 [b]) and the fallback flags of a step's views."""
    return sample_views(seed, epoch, step, heights, widths, scale, ratio, 0.0, False)[:5]


def draw_lambda(seed: int, epoch: int, step: int, alpha: float) -> float:
    """λ ~ Beta(α, α) as lplabel draws it (*informative*: λ is stored, never regenerated).

    Python's ``random.Random(x).betavariate(α, α)`` with x the 128-bit value of block (0, step,
    LAMBDA, 0). It goes through libm (``log``, ``exp``), so another platform may draw a different
    λ — which changes nothing for stores already written, since readers take λ from the store.
    """
    r = [int(w) for w in philox4x32(0, step, LAMBDA, 0, seed, epoch)]
    x = r[0] << 96 | r[1] << 64 | r[2] << 32 | r[3]
    return float(random.Random(x).betavariate(alpha, alpha))


def check_lambda(lam: float) -> float:
    """A mixed step's λ must be a number in [0, 1] (the CutMix box needs √(1 − λ))."""
    lam = float(lam)
    if not 0.0 <= lam <= 1.0:  # also refuses NaN
        raise ValueError(f"a mixed step needs mix_lambda in [0, 1], got {lam!r}")
    return lam


def cutmix_box(lam: float, size: int, centre) -> np.ndarray:
    """``(row0, col0, row1, col1)`` int16 from the stored λ: ``cut = ⌊S·√(1−λ)⌋`` around the
    drawn centre ``(cy, cx)``, clamped to [0, S]."""
    cut = int(math.floor(size * math.sqrt(1.0 - check_lambda(lam))))
    cy, cx = centre
    half = cut // 2
    clip = lambda v: min(max(v, 0), size)  # noqa: E731
    return np.array([clip(cy - half), clip(cx - half), clip(cy + half), clip(cx + half)], dtype=np.int16)
