"""Compiled per-record loops of ``delta`` and ``classmap`` decoding (numba; the numpy code in those
modules is the reference and the fallback when numba is absent).

Why: in a ``planes`` chunk of top-k labels, undoing the index gaps (a running sum along each record)
and the class order (one table lookup per entry) took ~2.2 and ~1.4 ns an entry in numpy (its
accumulate along a row of a 2-d array, and fancy indexing with its per-element index checks),
~0.3 and ~0.7 ns here: at k = 100 that is ~0.28 µs of a record's ~1.3 µs decode.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def running_sum(d, descending, out):
    """``out[:, 0] = d[:, 0]``; then ``out[:, j] = out[:, j-1] + d[:, j]`` (ascending) or ``- d[:, j]``
    (descending), modulo 2^w of ``out``'s unsigned type (the store truncates to it)."""
    n, k = d.shape
    for r in range(n):
        acc = np.int64(d[r, 0])
        out[r, 0] = acc
        if descending:
            for j in range(1, k):
                acc -= np.int64(d[r, j])
                out[r, j] = acc
        else:
            for j in range(1, k):
                acc += np.int64(d[r, j])
                out[r, j] = acc


@njit(cache=True, nogil=True)
def lookup(table, idx, out):
    """``out = table[idx]`` for unsigned ``idx``; returns True when an index is >= len(table)
    (those entries read the table's last element: the caller raises)."""
    n, k = idx.shape
    top = table.shape[0] - 1
    bad = False
    for r in range(n):
        for j in range(k):
            x = np.int64(idx[r, j])
            bad |= x > top
            out[r, j] = table[min(x, top)]
    return bad
