"""Compiled loops of the ``entryorder`` codec (numba). Imported only when the codec runs.

Why compiled: decoding puts every entry back at ``(run start + shift) mod k``, and a run start is
the number of the record's entries with a larger value -- a rank, i.e. a sort of each record's k
values. numpy does that with an ``argsort`` per record plus four gathers/scatters over [n, k]
int64 arrays; it took ~90 % of a ``planes`` chunk's decode at k = 100 (4.3 µs a record). Here one
pass per record computes the ranks in registers and writes the permuted fields directly.

How the rank is computed: for k <= ``PAIRWISE_MAX`` by counting, for each entry, the entries with
a larger key: k^2 comparisons, but branch-free, on 16-bit keys, with the loop over the counts
innermost so that LLVM vectorises it without a horizontal sum, and four entries compared per pass
over the counts (a quarter of the load/add/store round trips through ``cnt``, whose store-to-load
latency bounded the one-entry loop: ~0.22 against ~0.42 µs a record at k = 100 on the project's
AVX-512 VM; measured before against a per-record argsort 3.0, a two-pass radix sort 0.6, buckets +
insertion 0.7, the same count with the sum innermost 0.74 µs). The keys come from the bits without
a branch (a data-dependent branch on the sign mispredicted on mixed-sign logits: the one-entry
loop with a branchy key took ~1.0 µs). Above it, by a stable sort of the keys (k log k). Both
give exactly the numpy reference's
``run_starts`` (entries with equal keys share their run start; keys are the ``delta`` order keys
of the stored bits, so every bit pattern is distinct and -0 sorts below +0).

The entry-order module keeps the numpy implementation as the reference and the fallback when numba
is absent (it is the optional ``rans`` extra); the tests check both give identical results.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from ._scratch import aligned_full

#: largest k ranked by pairwise counting (O(k^2), vectorised); larger k sort (O(k log k))
PAIRWISE_MAX = 256

OK = 0
E_PERM = -1  # the stored shifts do not give a permutation of the record's entries


def key_buffers(bits, k: int) -> tuple:
    """Scratch arrays for the kernels: signed keys of the stored width (int16 for 16-bit values,
    int32 for float32), padded to a multiple of 32 entries so the compare loop has no remainder,
    and the counts in the same type (k <= PAIRWISE_MAX fits). The padding keys are the type's
    minimum: larger than no key, so a padding entry never adds to a count (and its own count is
    never read). Both start on a 64-byte boundary (:mod:`._scratch`: unaligned, the count ran 2x
    slower)."""
    dt = np.int16 if bits.dtype.itemsize == 2 else np.int32
    kp = (k + 31) // 32 * 32
    return aligned_full(kp, np.iinfo(dt).min, dt), aligned_full(kp, 0, dt)


@njit(cache=True, nogil=True, inline="always")
def signed_key(x, top):
    """The order key of stored bits ``x`` (0 <= x < 2 * top), minus ``top``: the bits read as a
    signed integer, with all but the sign bit flipped when the sign is set. Branch-free (shift and
    xor), so a loop over a record's entries vectorises."""
    xs = x - ((x & top) << 1)  # the bits as a signed integer of the stored width
    return xs ^ ((xs >> 63) & (top - 1))


@njit(cache=True, nogil=True, inline="always")
def pairwise_ranks(key, cnt, k):
    """``cnt[j]`` = the number of the k keys larger than ``key[j]`` (``key``, ``cnt``:
    :func:`key_buffers`, keys in ``key[:k]``, padding untouched). Four keys per pass over the
    counts (k rounded up to 4 stays within the padding, which never counts)."""
    kp = key.shape[0]
    for j in range(kp):
        cnt[j] = 0
    for i in range(0, (k + 3) // 4 * 4, 4):  # the inner loop runs over whole vectors (kp: a multiple of 32)
        a, b, c, d = key[i], key[i + 1], key[i + 2], key[i + 3]
        for j in range(kp):
            kj = key[j]
            cnt[j] += (a > kj) + (b > kj) + (c > kj) + (d > kj)


@njit(cache=True, nogil=True, inline="always")
def _row_ranks(bits, r, top, key, cnt, start):
    """Run start of each entry of record r (the number of its entries with a larger key) into
    ``start`` [k]. Keys are the order keys minus ``top`` (signed, same width as the values)."""
    k = bits.shape[1]
    for j in range(k):
        key[j] = signed_key(np.int64(bits[r, j]), top)
    if k <= PAIRWISE_MAX:
        pairwise_ranks(key, cnt, k)
        for j in range(k):
            start[j] = cnt[j]
        return
    p = np.argsort(-key[:k].astype(np.int64), kind="mergesort")  # decreasing key, stable
    a = 0
    for t in range(k):
        if t > 0 and key[p[t]] != key[p[t - 1]]:
            a = t
        start[p[t]] = a


@njit(cache=True, nogil=True)
def run_starts(bits, top, key, cnt, out):
    """Per entry, the number of entries of its record with a larger value, into ``out`` [n, k]
    (``bits``: the stored values' unsigned bit patterns [n, k]; ``top``: their sign bit;
    ``key``, ``cnt``: :func:`key_buffers`)."""
    n, k = bits.shape
    start = np.empty(k, np.int64)
    for r in range(n):
        _row_ranks(bits, r, top, key, cnt, start)
        for j in range(k):
            out[r, j] = start[j]


@njit(cache=True, nogil=True)
def shifts(bits, top, key, cnt, out):
    """The encoder's ``entry_shift`` field: ``(j - run start) mod k`` for the entry at input
    position j, into ``out`` [n, k] (uint8 or uint16)."""
    n, k = bits.shape
    start = np.empty(k, np.int64)
    for r in range(n):
        _row_ranks(bits, r, top, key, cnt, start)
        for j in range(k):
            f = j - start[j]
            out[r, j] = f + k if f < 0 else f  # (j - start) mod k without a division


@njit(cache=True, nogil=True)
def targets(bits, top, key, cnt, shift, out):
    """The decoder's input position of every entry, ``(run start + shift) mod k``, into ``out``
    [n, k]; returns ``E_PERM`` when a record's positions are not a permutation of 0..k-1."""
    n, k = bits.shape
    start = np.empty(k, np.int64)
    seen = np.empty(k, np.int64)
    for r in range(n):
        _row_ranks(bits, r, top, key, cnt, start)
        for j in range(k):
            seen[j] = 0
        for j in range(k):
            f = start[j] + np.int64(shift[r, j])
            if f >= k:  # no division in the common case (a valid shift is < k - start)
                f %= k
            out[r, j] = f
            seen[f] += 1
        for j in range(k):
            if seen[j] != 1:
                return E_PERM
    return OK


@njit(cache=True, nogil=True)
def scatter_rows(a, target, out):
    """``out[r, target[r, j]] = a[r, j]``: put each record's entries at their input positions
    (``a`` any numeric dtype; a permutation ``target`` as :func:`targets` checked it)."""
    n, k = a.shape
    for r in range(n):
        for j in range(k):
            out[r, target[r, j]] = a[r, j]


@njit(cache=True, nogil=True)
def run_lengths(start, out):
    """Per entry, how many entries of its record share its value, from :func:`run_starts`'s
    output (entries of one run share their start): ``out[r, j] = #{i: start[r, i] == start[r, j]}``."""
    n, k = start.shape
    cnt = np.zeros(k, np.int64)
    for r in range(n):
        for j in range(k):
            cnt[j] = 0
        for j in range(k):
            cnt[start[r, j]] += 1
        for j in range(k):
            out[r, j] = cnt[start[r, j]]
