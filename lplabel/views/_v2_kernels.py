"""Compiled (numba) form of the ``lplabel-views-v2`` sampler: the same arithmetic as
:mod:`lplabel.views.v2`, one scalar at a time, as spec/FORMAT.md §11.3 writes it.

Why: the numpy form is exact but runs ~150 small array operations per step (Philox rounds,
the 32-factor aspect product, rejection bookkeeping), ~1.5 ms for a step of 256 views, and the
epoch's Fisher–Yates swaps in Python. Compiled, a step costs microseconds. Used when numba is
importable (the optional ``rans`` extra brings it); the tests check both forms against the spec's
vectors and against each other. Floating point: numba compiles without fast-math, so every
``+ − × ÷ √`` is one IEEE binary64 operation (no fused multiply-add), as the spec requires.
"""

from __future__ import annotations

import numpy as np
from numba import njit

M32 = np.uint64(0xFFFFFFFF)
S32 = np.uint64(32)
S21 = np.uint64(21)
S11 = np.uint64(11)
ONE = np.uint64(1)
TWO32 = np.uint64(1 << 32)
M0 = np.uint64(0xD2511F53)
M1 = np.uint64(0xCD9E8D57)
W0 = np.uint64(0x9E3779B9)
W1 = np.uint64(0xBB67AE85)
U0 = np.uint64(0)
ORDER, CROP, TOP, LEFT, FLIP, PERM, CUT_ROW, CUT_COL = (np.uint64(v) for v in (0, 1, 2, 3, 4, 6, 7, 8))


@njit(cache=True, nogil=True)
def philox(c0, c1, c2, c3, k0, k1):
    for r in range(10):
        if r > 0:
            k0 = (k0 + W0) & M32
            k1 = (k1 + W1) & M32
        p0 = c0 * M0
        p1 = c2 * M1
        n0 = (p1 >> S32) ^ c1 ^ k0
        n1 = p1 & M32
        n2 = (p0 >> S32) ^ c3 ^ k1
        n3 = p0 & M32
        c0, c1, c2, c3 = n0, n1, n2, n3
    return c0, c1, c2, c3


@njit(cache=True, nogil=True)
def unit(r0, r1):
    return np.float64((r0 << S21) | (r1 >> S11)) * 1.1102230246251565e-16  # 2^-53


@njit(cache=True, nogil=True)
def bounded(n, index, step, purpose, seed, epoch):
    lim = TWO32 - (TWO32 % n)
    j = U0
    while True:
        r0, r1, r2, r3 = philox(index, step, purpose, j, seed, epoch)
        if r0 < lim:
            return r0 % n
        if r1 < lim:
            return r1 % n
        if r2 < lim:
            return r2 % n
        if r3 < lim:
            return r3 % n
        j += ONE


@njit(cache=True, nogil=True)
def permutation(n, step, purpose, seed, epoch):
    a = np.arange(n).astype(np.int64)
    for i in range(n - 1, 0, -1):
        j = np.int64(bounded(np.uint64(i + 1), np.uint64(i), step, purpose, seed, epoch))
        t = a[i]
        a[i] = a[j]
        a[j] = t
    return a


@njit(cache=True, nogil=True)
def crops(H, W, step, seed, epoch, lo_s, d, lo_r, hi_r, table):
    b = len(H)
    top = np.zeros(b, np.int64)
    left = np.zeros(b, np.int64)
    hh = np.zeros(b, np.int64)
    ww = np.zeros(b, np.int64)
    fb = np.zeros(b, np.bool_)
    for i in range(b):
        Hi, Wi = H[i], W[i]
        Hf, Wf = np.float64(Hi), np.float64(Wi)
        area = np.float64(Hi * Wi)
        ui = np.uint64(i)
        found = False
        for j in range(10):
            r0, r1, r2, r3 = philox(ui, step, CROP, np.uint64(j), seed, epoch)
            target = area * (lo_s + d * unit(r0, r1))
            a = lo_r
            for k in range(32):
                if (r2 >> np.uint64(31 - k)) & ONE:
                    a = a * table[k]
            wf = np.rint(np.sqrt(target * a))
            hf = np.rint(np.sqrt(target / a))
            if wf >= 1.0 and wf <= Wf and hf >= 1.0 and hf <= Hf:
                hh[i], ww[i] = np.int64(hf), np.int64(wf)
                top[i] = np.int64(bounded(np.uint64(Hi - hh[i] + 1), ui, step, TOP, seed, epoch))
                left[i] = np.int64(bounded(np.uint64(Wi - ww[i] + 1), ui, step, LEFT, seed, epoch))
                found = True
                break
        if not found:
            fb[i] = True
            r = Wf / Hf
            h, w = Hf, Wf
            if r < lo_r:
                h = min(max(np.rint(Wf / lo_r), 1.0), Hf)
            elif r > hi_r:
                w = min(max(np.rint(Hf * hi_r), 1.0), Wf)
            hh[i], ww[i] = np.int64(h), np.int64(w)
            top[i] = (Hi - hh[i]) // 2
            left[i] = (Wi - ww[i]) // 2
    return top, left, hh, ww, fb


@njit(cache=True, nogil=True)
def flips(b, step, seed, epoch, flip_p):
    out = np.zeros(b, np.bool_)
    for i in range(b):
        r0, r1, r2, r3 = philox(np.uint64(i), step, FLIP, U0, seed, epoch)
        out[i] = unit(r0, r1) < flip_p
    return out


@njit(cache=True, nogil=True)
def centre(size, step, seed, epoch):
    return (
        np.int64(bounded(np.uint64(size), U0, step, CUT_ROW, seed, epoch)),
        np.int64(bounded(np.uint64(size), U0, step, CUT_COL, seed, epoch)),
    )
