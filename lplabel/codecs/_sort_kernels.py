"""Compiled per-record sort of the ``sort`` codec, ``by = "index"`` (numba; the numpy code in
:mod:`.sort` is the reference and the fallback when numba is absent).

Why: every top-k chain lplabel writes by default (``planes``, ``rans``) sorts each record's entries
by class index. numpy does that with a stable ``argsort`` of an [n, k] array (a merge or radix sort
per row) and one ``take_along_axis`` per field: about 2 ms for 800 records at k = 100, a quarter
of a ``rans`` chunk's encode. Here each record's entries get their sorted position by counting
(the entries with a smaller index), and every field is written straight to that position: the
permutation of numpy's stable argsort.

The count is k^2 comparisons, branch-free, with the loop over the counts innermost so LLVM
vectorises it (the method of the ``entryorder`` kernels); above ``PAIRWISE_MAX`` a per-record
stable ``argsort`` (k log k) takes over. int16 keys matter: int32 keys (half the lanes) measured
slower than numpy's radix argsort at k = 100.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._scratch import aligned_full

#: largest k sorted by pairwise counting (O(k^2), vectorised); larger k use a stable argsort per record
PAIRWISE_MAX = 256


def index_ranks(idx) -> np.ndarray:
    """``out[r, j]``: the position of entry j of record r once the record is sorted by increasing
    index, ties kept in entry order (what a stable ``argsort`` puts there: the inverse of its
    permutation), int64 [n, k].

    For 16-bit indices and k <= ``PAIRWISE_MAX``: the number of the record's entries with a smaller
    index, counted on int16 keys (the index minus 2^15 for unsigned ones: the same order) and int16
    counts, 32 to a 512-bit vector, the loop over the counts innermost (no horizontal sums). That
    is the position when the record's indices are distinct (class indices of one record always
    are); a record with equal indices, whose counts are then not a permutation, is sorted by a
    stable argsort instead. Wider indices (more than 65,536 classes), or larger k: a stable
    argsort per record."""
    n, k = idx.shape
    out = np.empty((n, k), np.int64)
    kp = (k + 31) // 32 * 32
    offset = 1 << 15 if idx.dtype.kind == "u" else 0
    _ranks(idx, k <= PAIRWISE_MAX and idx.dtype.itemsize <= 2, offset, aligned_zeros(kp), aligned_zeros(kp), out)
    return out


def aligned_zeros(n: int) -> np.ndarray:
    """``n`` int16 zeros on a 64-byte boundary (:mod:`._scratch`: unaligned, the loop ran 2x slower)."""
    return aligned_full(n, 0, np.int16)


@njit(cache=True, nogil=True)
def _ranks(idx, pairwise, offset, key, cnt, out):
    """:func:`index_ranks` into ``out``; ``key``, ``cnt``: int16 scratch [kp]."""
    n, k = idx.shape
    kp = key.shape[0]
    seen = np.zeros(k, np.int64)
    for r in range(n):
        if pairwise:
            for j in range(k):
                key[j] = np.int16(np.int64(idx[r, j]) - offset)
            for j in range(k, kp):
                key[j] = np.int16(32767)
            for j in range(kp):
                cnt[j] = 0
            for i in range(k):  # the inner loop runs over whole vectors (kp: a multiple of 32)
                ki = key[i]
                for j in range(kp):
                    cnt[j] += ki < key[j]
            distinct = True
            for j in range(k):
                seen[j] = 0
            for j in range(k):
                c = np.int64(cnt[j])
                out[r, j] = c
                seen[c] += 1
            for j in range(k):
                distinct &= seen[j] == 1
            if distinct:
                continue
        p = np.argsort(idx[r], kind="mergesort")
        for t in range(k):
            out[r, p[t]] = t


@njit(cache=True, nogil=True)
def scatter_rows(a, pos, out):
    """``out[r, pos[r, j]] = a[r, j]`` (``a`` any numeric dtype; ``pos`` a permutation per record)."""
    n, k = a.shape
    for r in range(n):
        for j in range(k):
            out[r, pos[r, j]] = a[r, j]
