"""Compiled one-pass decode of the default lossless top-k layout (numba; see :mod:`.fused`).

The chain ``topk | entryorder | [classmap] | sort(index) | delta(indices) | zplanes`` decoded codec
by codec rebuilds each field from its byte planes, then runs a running sum, a table lookup, a rank
and a scatter, each over the whole chunk and each into a new [n, k] array (~0.6 µs a record at
k = 100 beyond the rank itself, in the profile of benchmarks/profile_planes_decode.py). Here one
pass per record reads the five byte planes straight from zstd's output and writes every entry
once, to its final place in the output arrays; the per-record work stays in L1.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from . import _entryorder_kernels as _eo
from ._entryorder_kernels import pairwise_ranks, signed_key

OK = 0
E_RANK = 1  # a stored class rank lies outside the class map (classmap's error)
E_PERM = 2  # the stored shifts do not give a permutation of a record's entries (entryorder's error)


def key_buffers(k: int) -> tuple:
    """The rank's scratch arrays for float16 values (:func:`._entryorder_kernels.key_buffers`)."""
    return _eo.key_buffers(np.zeros(0, np.uint16), k)


@njit(cache=True, nogil=True)
def decode_topk_planes(ilo, ihi, vlo, vhi, shift, k, signed, table, classes, key, cnt, out_idx, out_val):
    """Decode n = ``len(ilo) // k`` records into ``out_idx`` and ``out_val`` (both [n * k] uint16:
    the stored bits of the index type and of the float16 values, record after record); returns a
    bit set of ``E_RANK`` / ``E_PERM`` (0: the chunk is sound; on an error the outputs are garbage).

    ``ilo``/``ihi``: the low/high byte planes of the index gaps (``delta`` ascending, in
    ``sort``'s class order); ``vlo``/``vhi``: the value planes; ``shift``: ``entryorder``'s
    ``entry_shift`` plane (empty: the chain has no ``entryorder``; entries stay in class order).
    ``signed``: the index type is int16 (delta's keys are offset binary), else uint16. ``table``
    [65536]: for each stored index's bits x, ``order[x]`` as uint16 bits when x is a class rank
    (x < ``classes``), anything above (the class map's order, or x itself without a class map);
    ``classes``: C, or 65536 without a class map (no rank is out of range then). ``key``, ``cnt``:
    :func:`key_buffers` (k <= 256, ``_entryorder_kernels.PAIRWISE_MAX``; unused without
    ``entryorder``).

    Per record, exactly as the codecs do it one after the other: the running sum of the gaps modulo
    2^16 gives the order keys of the stored indices (``delta``); the key with its top bit flipped
    (int16) or as is (uint16) is the stored index, a class rank that must lie in 0..C-1 (as bits:
    x < C, a negative int16 having its top bit set) and maps to ``order[rank]`` (``classmap``); with ``entryorder``, the entry then goes to position
    ``(run start + shift) mod k`` where the run start is the number of the record's values with a
    larger order key, and the positions must be a permutation of 0..k-1.
    """
    n = ilo.shape[0] // k
    flip = 0x8000 if signed else 0
    tie_order = shift.shape[0] > 0
    pos = np.arange(k)  # where each entry goes in its record (in class order without entryorder)
    hit = np.zeros(k, np.uint8)  # positions written, for the permutation check
    val = np.empty(k, np.uint16)
    gap = np.empty(k, np.int64)
    bad = 0
    # Every index below is made unsigned (np.uint64) where numba cannot see that it is >= 0:
    # a signed index costs a negative-index fix-up on each access, about half of these loops'
    # instructions (a per-record slice avoids it too, but its reference counting cost ~30 ns).
    for r in range(n):
        b = r * k
        for j in range(k):  # vectorised: the values' bits, the index gaps
            u = np.uint64(b + j)
            val[j] = np.int64(vlo[u]) | (np.int64(vhi[u]) << 8)
            gap[j] = np.int64(ilo[u]) | (np.int64(ihi[u]) << 8)
        if tie_order:
            for j in range(k):  # vectorised: the values' order keys
                key[j] = signed_key(np.int64(val[j]), 0x8000)
            pairwise_ranks(key, cnt, k)
            wrap = False
            for j in range(k):  # vectorised: position = run start + shift
                f = np.int64(cnt[j]) + np.int64(shift[np.uint64(b + j)])
                wrap |= f >= k
                pos[j] = f
            if wrap:  # only a corrupt shift (>= k - run start) wraps: as the reference, modulo k
                for j in range(k):
                    pos[j] %= k
            for j in range(k):  # k positions written once each: a permutation
                hit[np.uint64(pos[j])] = 1
            m = 0
            for j in range(k):  # vectorised
                m += hit[j]
                hit[j] = 0
            if m != k:
                bad |= E_PERM
        acc = np.int64(0)
        top = np.int64(0)
        for j in range(k):  # serial: the running sum, the class map, the scatter; no branch
            acc += gap[j]
            x = (acc & 0xFFFF) ^ flip  # the stored index's bits
            top = max(top, x)
            f = np.uint64(b + pos[j])
            out_idx[f] = table[np.uint64(x)]
            out_val[f] = val[j]
        if top >= classes:
            bad |= E_RANK
    return bad


@njit(cache=True, nogil=True)
def decode_topk_planes_unordered(ilo, ihi, vlo, vhi, k, signed, table, classes, out_idx, out_val):
    """:func:`decode_topk_planes` without ``entryorder`` (a chain without it, or a reader that
    skips it): entries stay where ``sort`` put them (class order), so nothing is ranked or
    scattered and two flat loops do it -- the values' bytes joined over the whole chunk (SIMD), then
    per record the running sum of the index gaps and the class-map lookup. The same outputs and
    ``E_RANK`` as :func:`decode_topk_planes` with an empty ``shift``; ~2x faster than it at k = 10,
    where its per-record set-up was most of the time."""
    m = ilo.shape[0]
    for u in range(m):  # vectorised: the values' bits
        out_val[np.uint64(u)] = np.uint16(vlo[np.uint64(u)]) | (np.uint16(vhi[np.uint64(u)]) << np.uint16(8))
    flip = 0x8000 if signed else 0
    top = np.int64(0)
    for r in range(m // k):  # serial within a record: the running sum, the class map
        b = r * k
        acc = np.int64(0)
        for j in range(k):
            u = np.uint64(b + j)
            acc += np.int64(ilo[u]) | (np.int64(ihi[u]) << 8)
            x = (acc & 0xFFFF) ^ flip  # the stored index's bits
            top = max(top, x)
            out_idx[u] = table[np.uint64(x)]
    return E_RANK if top >= classes else OK
