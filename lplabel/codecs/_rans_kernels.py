"""Compiled inner loops of the ``rans`` codec (numba). Imported only when the codec runs.

Why compiled: membership is coded position by position up to a record's last stored class (two
positions per decision: about 460 decisions per record at C = 1000), then one symbol per stored
value. Each decision depends on the one before it in its record (its context is the previous
decision, the state is shared), which numpy cannot vectorise and Python would run a thousand
times too slowly.

Why four lanes: a record's decisions form one dependency chain (a few cycles per decision). The
four records of a *group* are independent, so their decisions are interleaved, lane by lane, each
lane with its own rANS state on the one shared word stream: the CPU overlaps four chains. The
membership loop is written out for the four lanes by hand (numba keeps four scalar states in
registers; a loop over a state array is 1.7x slower, measured).

The arithmetic is exactly what ``spec/FORMAT.md`` ("rans") describes: 32-bit rANS states kept in
[2^16, 2^32), 12-bit probabilities, 16-bit renormalisation words. Encoding runs backwards over the
decisions (rANS is last-in, first-out) and writes the words in reverse, so the decoder reads them
forwards. The decoder returns an error code instead of raising (numba); the caller names it.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .rans import ESCAPE, HIGH_CONTEXTS, M, PREC  # one definition of the model's constants

LOW = 1 << 16
CTX_FIRST = HIGH_CONTEXTS - 1
LANES = 4

# decoder error codes
OK = 0
E_WORDS = -1  # ran out of words
E_CLASSES = -2  # class positions ran out before k classes, a (k+1)-th class, or the padding position
E_STATE = -3  # final states are not the initial ones, or words are left over
E_RANGE = -4  # a value's high byte came out above 255


@njit(cache=True, nogil=True, inline="always")
def _put(x, f, start, out, o):
    """Code one decision (frequency ``f``, start ``start``) into state ``x`` (int64 in [2^16, 2^32)),
    emitting at most one word into ``out[o]``; returns the new state and word count. (A float64
    reciprocal instead of the division measured no faster.)"""
    e = np.int64(x >= (f << 20))  # renormalise without a branch (taken about half the time)
    out[o] = np.uint16(x & 0xFFFF)
    o += e
    x >>= e << 4
    q = x // f
    return (q << PREC) + (x - q * f) + start, o


@njit(cache=True, nogil=True, inline="always")
def _put_pair(x, mem, q, c, pairs, out, o):
    """Code (backwards) lane ``q``'s membership decision for positions (c, c + 1): ``mem[q, p + 1]``
    is 1 when position p of the lane's record is stored (``mem[q, 0]`` = 0 stands for position -1)."""
    t = 5 * (c + np.int64(mem[q, c])) + 2 * np.int64(mem[q, c + 1]) + np.int64(mem[q, c + 2])
    st = np.int64(pairs[t])
    return _put(x, np.int64(pairs[t + 1]) - st, st, out, o)


@njit(cache=True, nogil=True)
def encode(idx, m, has_values, pairs, hfreq, hcum, bfreq, bcum):
    """rANS words (uint16, decoding order) of a chunk. ``idx`` [n, k] sorted ascending, distinct
    (:func:`check_indices`); ``m`` [n, k] the values' order-preserving codes (uint16, ignored
    without values): a record's base is the smallest high byte ``m >> 8``, its deltas the high
    bytes minus the base.

    rANS codes last-in first-out, so the decisions are generated here directly in reverse decoding
    order -- groups from the last, and within a group the deltas (entries and lanes backwards, an
    escape payload before its symbol), the bases, then the membership pairs from each lane's last
    pair down to position 0 -- and coded as they come, the four lanes' states in registers (no
    list of decisions: that list, 3 x 8 bytes a decision, cost as much as the coding itself). A
    lane's membership context comes from a 0/1 map of its record's stored positions (no
    branches); a group's delta frequencies are looked up in a first pass over each record (in the
    coding loop, the lookup through the previous delta's context made the values ~4x slower,
    measured). Bit-identical to collecting the decisions first (tests/test_rans.py)."""
    n, k = idx.shape
    cap = 2 * LANES + 2
    for r in range(n):
        cap += idx[r, k - 1] // 2 + 1 + (2 * k + 1 if has_values else 0)
    out = np.empty(cap, np.uint16)
    npos = len(pairs) // 5 + 2  # positions 0..2U-1 (U pairs), + position -1 and one past the end
    mem = np.zeros((LANES, npos), np.uint8)
    base = np.empty(LANES, np.int64)
    dv = np.empty((LANES, k), np.int64)
    fv = np.empty((LANES, k), np.int64)
    sv = np.empty((LANES, k), np.int64)
    o = 0
    x0 = x1 = x2 = x3 = np.int64(LOW)
    g = ((n - 1) // LANES) * LANES
    while g >= 0:
        gm = min(LANES, n - g)
        if has_values:
            for q in range(gm):  # each entry's delta and (frequency, start) in its context
                r = g + q
                b = np.int64(255)
                for i in range(k):
                    b = min(b, np.int64(m[r, i]) >> 8)
                base[q] = b
                prev = CTX_FIRST
                for i in range(k):
                    v = (np.int64(m[r, i]) >> 8) - b
                    dv[q, i] = v
                    sy = min(v, ESCAPE)
                    fv[q, i] = hfreq[prev, sy]
                    sv[q, i] = hcum[prev, sy]
                    prev = min(v, 15)
            for i in range(k - 1, -1, -1):
                if gm > 3:
                    v = dv[3, i]
                    if v >= ESCAPE:
                        x3, o = _put(x3, np.int64(16), (v - ESCAPE) * 16, out, o)
                    x3, o = _put(x3, np.int64(fv[3, i]), np.int64(sv[3, i]), out, o)
                if gm > 2:
                    v = dv[2, i]
                    if v >= ESCAPE:
                        x2, o = _put(x2, np.int64(16), (v - ESCAPE) * 16, out, o)
                    x2, o = _put(x2, np.int64(fv[2, i]), np.int64(sv[2, i]), out, o)
                if gm > 1:
                    v = dv[1, i]
                    if v >= ESCAPE:
                        x1, o = _put(x1, np.int64(16), (v - ESCAPE) * 16, out, o)
                    x1, o = _put(x1, np.int64(fv[1, i]), np.int64(sv[1, i]), out, o)
                v = dv[0, i]
                if v >= ESCAPE:
                    x0, o = _put(x0, np.int64(16), (v - ESCAPE) * 16, out, o)
                x0, o = _put(x0, np.int64(fv[0, i]), np.int64(sv[0, i]), out, o)
            if gm > 3:
                b = base[3]
                x3, o = _put(x3, np.int64(bfreq[b]), np.int64(bcum[b]), out, o)
            if gm > 2:
                b = base[2]
                x2, o = _put(x2, np.int64(bfreq[b]), np.int64(bcum[b]), out, o)
            if gm > 1:
                b = base[1]
                x1, o = _put(x1, np.int64(bfreq[b]), np.int64(bcum[b]), out, o)
            b = base[0]
            x0, o = _put(x0, np.int64(bfreq[b]), np.int64(bcum[b]), out, o)
        # membership: lane q takes a pair decision at every even c <= its record's last class
        l0 = l1 = l2 = l3 = np.int64(-1)
        for q in range(gm):
            for j in range(k):
                mem[q, idx[g + q, j] + 1] = 1
        l0 = np.int64(idx[g, k - 1])
        if gm > 1:
            l1 = np.int64(idx[g + 1, k - 1])
        if gm > 2:
            l2 = np.int64(idx[g + 2, k - 1])
        if gm > 3:
            l3 = np.int64(idx[g + 3, k - 1])
        top = max(max(l0, l1), max(l2, l3))
        c = top - (top & 1)
        while c >= 0:
            if c <= l3:
                x3, o = _put_pair(x3, mem, 3, c, pairs, out, o)
            if c <= l2:
                x2, o = _put_pair(x2, mem, 2, c, pairs, out, o)
            if c <= l1:
                x1, o = _put_pair(x1, mem, 1, c, pairs, out, o)
            if c <= l0:
                x0, o = _put_pair(x0, mem, 0, c, pairs, out, o)
            c -= 2
        for q in range(gm):
            for j in range(k):
                mem[q, idx[g + q, j] + 1] = 0
        g -= LANES
    for x in (x3, x2, x1, x0):
        out[o] = np.uint16(x & 0xFFFF)
        out[o + 1] = np.uint16(x >> 16)
        o += 2
    return out[:o][::-1].copy()


@njit(cache=True, nogil=True)
def check_indices(idx, classes):
    """0 when every record's indices are increasing and in 0..classes-1, 1 when one is out of
    range, 2 when a record's are not increasing (equal or decreasing neighbours). Branch-free
    (the flags are or-ed over each record), so the compiler vectorises it."""
    n, k = idx.shape
    out_of_range = False
    unordered = False
    for r in range(n):
        for j in range(k):
            out_of_range |= (idx[r, j] < 0) | (idx[r, j] >= classes)
        for j in range(1, k):
            unordered |= idx[r, j] <= idx[r, j - 1]
    return 1 if out_of_range else (2 if unordered else 0)


@njit(cache=True, nogil=True)
def decode(words, lo, n, k, classes, has_values, pairs, hfreq, hcum, hsym, bfreq, bcum, bsym, idx, vals):
    """Inverse of :func:`encode`: class ranks into ``idx`` [n, k + 1] (the last column is scratch for
    branch-free writes) and, with values, fp16 bit patterns
    into ``vals`` [n, k] (rebuilt from the coded high bytes and the raw low bytes ``lo`` [n, k]).
    Returns an error code (0 = fine)."""
    nw = words.shape[0]
    if nw < 2 * LANES:
        return E_WORDS
    x0 = (np.uint64(words[0]) << np.uint64(16)) | np.uint64(words[1])
    x1 = (np.uint64(words[2]) << np.uint64(16)) | np.uint64(words[3])
    x2 = (np.uint64(words[4]) << np.uint64(16)) | np.uint64(words[5])
    x3 = (np.uint64(words[6]) << np.uint64(16)) | np.uint64(words[7])
    for x in (x0, x1, x2, x3):  # an encoder never leaves a state below 2^16
        if x < np.uint64(LOW):
            return E_STATE
    w = 2 * LANES
    mask = np.uint64(M - 1)
    low = np.uint64(LOW)
    sh = np.uint64(PREC)
    s16 = np.uint64(16)
    for g in range(0, n, LANES):
        m = min(LANES, n - g)
        # lanes past the chunk's last record start (and stay) complete
        j0 = 0
        j1 = 0 if m > 1 else k
        j2 = 0 if m > 2 else k
        j3 = 0 if m > 3 else k
        # membership, two positions per decision (a 4-symbol alphabet: stored or not at c, c + 1),
        # written out per lane; qN is 5 x the lane's previous decision (its offset in ``pairs``)
        q0 = q1 = q2 = q3 = 0
        c = 0
        while (j0 < k) | (j1 < k) | (j2 < k) | (j3 < k):
            if c >= classes:
                return E_CLASSES
            c5 = 5 * c
            if j0 < k:
                t0 = c5 + q0
                s = x0 & mask
                sym = (
                    np.int64(s >= np.uint64(pairs[t0 + 1]))
                    + np.int64(s >= np.uint64(pairs[t0 + 2]))
                    + np.int64(s >= np.uint64(pairs[t0 + 3]))
                )
                st = np.uint64(pairs[t0 + sym])
                x0 = (np.uint64(pairs[t0 + sym + 1]) - st) * (x0 >> sh) + s - st
                idx[g, j0] = c
                j0 += sym >> 1
                idx[g, j0] = c + 1
                j0 += sym & 1
                q0 = 5 * (sym & 1)
                if x0 < low:
                    if w >= nw:
                        return E_WORDS
                    x0 = (x0 << s16) | np.uint64(words[w])
                    w += 1
            if j1 < k:
                t0 = c5 + q1
                s = x1 & mask
                sym = (
                    np.int64(s >= np.uint64(pairs[t0 + 1]))
                    + np.int64(s >= np.uint64(pairs[t0 + 2]))
                    + np.int64(s >= np.uint64(pairs[t0 + 3]))
                )
                st = np.uint64(pairs[t0 + sym])
                x1 = (np.uint64(pairs[t0 + sym + 1]) - st) * (x1 >> sh) + s - st
                idx[g + 1, j1] = c
                j1 += sym >> 1
                idx[g + 1, j1] = c + 1
                j1 += sym & 1
                q1 = 5 * (sym & 1)
                if x1 < low:
                    if w >= nw:
                        return E_WORDS
                    x1 = (x1 << s16) | np.uint64(words[w])
                    w += 1
            if j2 < k:
                t0 = c5 + q2
                s = x2 & mask
                sym = (
                    np.int64(s >= np.uint64(pairs[t0 + 1]))
                    + np.int64(s >= np.uint64(pairs[t0 + 2]))
                    + np.int64(s >= np.uint64(pairs[t0 + 3]))
                )
                st = np.uint64(pairs[t0 + sym])
                x2 = (np.uint64(pairs[t0 + sym + 1]) - st) * (x2 >> sh) + s - st
                idx[g + 2, j2] = c
                j2 += sym >> 1
                idx[g + 2, j2] = c + 1
                j2 += sym & 1
                q2 = 5 * (sym & 1)
                if x2 < low:
                    if w >= nw:
                        return E_WORDS
                    x2 = (x2 << s16) | np.uint64(words[w])
                    w += 1
            if j3 < k:
                t0 = c5 + q3
                s = x3 & mask
                sym = (
                    np.int64(s >= np.uint64(pairs[t0 + 1]))
                    + np.int64(s >= np.uint64(pairs[t0 + 2]))
                    + np.int64(s >= np.uint64(pairs[t0 + 3]))
                )
                st = np.uint64(pairs[t0 + sym])
                x3 = (np.uint64(pairs[t0 + sym + 1]) - st) * (x3 >> sh) + s - st
                idx[g + 3, j3] = c
                j3 += sym >> 1
                idx[g + 3, j3] = c + 1
                j3 += sym & 1
                q3 = 5 * (sym & 1)
                if x3 < low:
                    if w >= nw:
                        return E_WORDS
                    x3 = (x3 << s16) | np.uint64(words[w])
                    w += 1
            c += 2
        # more than k classes, or the padding position of an odd class count: corrupt
        if j0 > k or j1 > k or j2 > k or j3 > k:
            return E_CLASSES
        for q in range(m):
            if idx[g + q, k - 1] >= classes:
                return E_CLASSES
        if not has_values:
            continue
        # values: k + 1 decisions per record, each a table lookup; lanes written out as above
        b0 = b1 = b2 = b3 = 0
        if m > 0:
            slot = x0 & mask
            b0 = np.int64(bsym[slot])
            x0 = np.uint64(bfreq[b0]) * (x0 >> sh) + slot - np.uint64(bcum[b0])
            if x0 < low:
                if w >= nw:
                    return E_WORDS
                x0 = (x0 << s16) | np.uint64(words[w])
                w += 1
        if m > 1:
            slot = x1 & mask
            b1 = np.int64(bsym[slot])
            x1 = np.uint64(bfreq[b1]) * (x1 >> sh) + slot - np.uint64(bcum[b1])
            if x1 < low:
                if w >= nw:
                    return E_WORDS
                x1 = (x1 << s16) | np.uint64(words[w])
                w += 1
        if m > 2:
            slot = x2 & mask
            b2 = np.int64(bsym[slot])
            x2 = np.uint64(bfreq[b2]) * (x2 >> sh) + slot - np.uint64(bcum[b2])
            if x2 < low:
                if w >= nw:
                    return E_WORDS
                x2 = (x2 << s16) | np.uint64(words[w])
                w += 1
        if m > 3:
            slot = x3 & mask
            b3 = np.int64(bsym[slot])
            x3 = np.uint64(bfreq[b3]) * (x3 >> sh) + slot - np.uint64(bcum[b3])
            if x3 < low:
                if w >= nw:
                    return E_WORDS
                x3 = (x3 << s16) | np.uint64(words[w])
                w += 1
        c0 = c1 = c2 = c3 = CTX_FIRST
        for i in range(k):
            if m > 0:
                slot = x0 & mask
                sym = np.int64(hsym[c0, slot])
                x0 = np.uint64(hfreq[c0, sym]) * (x0 >> sh) + slot - np.uint64(hcum[c0, sym])
                if x0 < low:
                    if w >= nw:
                        return E_WORDS
                    x0 = (x0 << s16) | np.uint64(words[w])
                    w += 1
                if sym == ESCAPE:
                    slot = x0 & mask
                    e = np.int64(slot >> np.uint64(4))
                    x0 = s16 * (x0 >> sh) + slot - np.uint64(e * 16)
                    if x0 < low:
                        if w >= nw:
                            return E_WORDS
                        x0 = (x0 << s16) | np.uint64(words[w])
                        w += 1
                    sym = ESCAPE + e
                hb = b0 + sym
                if hb > 255:
                    return E_RANGE
                mm = (hb << 8) | np.int64(lo[g + 0, i])
                vals[g + 0, i] = (mm & 0x7FFF) if mm & 0x8000 else (~mm & 0xFFFF)
                c0 = sym if sym < 15 else 15
            if m > 1:
                slot = x1 & mask
                sym = np.int64(hsym[c1, slot])
                x1 = np.uint64(hfreq[c1, sym]) * (x1 >> sh) + slot - np.uint64(hcum[c1, sym])
                if x1 < low:
                    if w >= nw:
                        return E_WORDS
                    x1 = (x1 << s16) | np.uint64(words[w])
                    w += 1
                if sym == ESCAPE:
                    slot = x1 & mask
                    e = np.int64(slot >> np.uint64(4))
                    x1 = s16 * (x1 >> sh) + slot - np.uint64(e * 16)
                    if x1 < low:
                        if w >= nw:
                            return E_WORDS
                        x1 = (x1 << s16) | np.uint64(words[w])
                        w += 1
                    sym = ESCAPE + e
                hb = b1 + sym
                if hb > 255:
                    return E_RANGE
                mm = (hb << 8) | np.int64(lo[g + 1, i])
                vals[g + 1, i] = (mm & 0x7FFF) if mm & 0x8000 else (~mm & 0xFFFF)
                c1 = sym if sym < 15 else 15
            if m > 2:
                slot = x2 & mask
                sym = np.int64(hsym[c2, slot])
                x2 = np.uint64(hfreq[c2, sym]) * (x2 >> sh) + slot - np.uint64(hcum[c2, sym])
                if x2 < low:
                    if w >= nw:
                        return E_WORDS
                    x2 = (x2 << s16) | np.uint64(words[w])
                    w += 1
                if sym == ESCAPE:
                    slot = x2 & mask
                    e = np.int64(slot >> np.uint64(4))
                    x2 = s16 * (x2 >> sh) + slot - np.uint64(e * 16)
                    if x2 < low:
                        if w >= nw:
                            return E_WORDS
                        x2 = (x2 << s16) | np.uint64(words[w])
                        w += 1
                    sym = ESCAPE + e
                hb = b2 + sym
                if hb > 255:
                    return E_RANGE
                mm = (hb << 8) | np.int64(lo[g + 2, i])
                vals[g + 2, i] = (mm & 0x7FFF) if mm & 0x8000 else (~mm & 0xFFFF)
                c2 = sym if sym < 15 else 15
            if m > 3:
                slot = x3 & mask
                sym = np.int64(hsym[c3, slot])
                x3 = np.uint64(hfreq[c3, sym]) * (x3 >> sh) + slot - np.uint64(hcum[c3, sym])
                if x3 < low:
                    if w >= nw:
                        return E_WORDS
                    x3 = (x3 << s16) | np.uint64(words[w])
                    w += 1
                if sym == ESCAPE:
                    slot = x3 & mask
                    e = np.int64(slot >> np.uint64(4))
                    x3 = s16 * (x3 >> sh) + slot - np.uint64(e * 16)
                    if x3 < low:
                        if w >= nw:
                            return E_WORDS
                        x3 = (x3 << s16) | np.uint64(words[w])
                        w += 1
                    sym = ESCAPE + e
                hb = b3 + sym
                if hb > 255:
                    return E_RANGE
                mm = (hb << 8) | np.int64(lo[g + 3, i])
                vals[g + 3, i] = (mm & 0x7FFF) if mm & 0x8000 else (~mm & 0xFFFF)
                c3 = sym if sym < 15 else 15
    if x0 != low or x1 != low or x2 != low or x3 != low or w != nw:
        return E_STATE
    return OK


E_DIGIT = -5  # an entry order digit is out of range


@njit(cache=True, nogil=True)
def _bucket_tied(start, length, r, cnt, cols):
    """Bucket record ``r``'s tied columns (run length > 1) by run start into ``cols`` (runs by
    increasing start = decreasing value, each bucket in increasing column order: a stable counting
    sort); afterwards ``cnt[a]`` is the end of bucket ``a``. False (nothing written) when the record
    has no ties. One owner, so the digit encoder and decoder cannot walk the runs differently."""
    k = start.shape[1]
    tied = False
    for c in range(k):
        if length[r, c] > 1:
            tied = True
            break
    if not tied:
        return False
    for a in range(k + 1):
        cnt[a] = 0
    for c in range(k):
        if length[r, c] > 1:
            cnt[start[r, c] + 1] += 1
    for a in range(k):
        cnt[a + 1] += cnt[a]
    for c in range(k):
        if length[r, c] > 1:
            a = start[r, c]
            cols[cnt[a]] = c
            cnt[a] += 1
    return True


@njit(cache=True, nogil=True)
def decode_order_digits(bits, start, length, out):
    """The ``order: true`` part, mode 0 (see ``rans.encode_order``): Lehmer digits of every run of
    tied entries, LSB-first, into ``out`` [n, k] (zeros in, each entry's rank within its run out).

    Why compiled: in Python this loop (per record, per run, a big integer shifted per digit) took
    ~50x the rANS decode itself at k = 100 on LPQLD content, where most records hold ties.
    Returns the number of bits read (>= 0; bits past the end read as 0, as in the reference) or
    E_DIGIT."""
    n, k = start.shape
    nbytes = bits.shape[0]
    cnt = np.zeros(k + 1, np.int64)
    cols = np.empty(k, np.int64)
    free = np.empty(k, np.int64)
    pos = 0
    for r in range(n):
        if not _bucket_tied(start, length, r, cnt, cols):
            continue
        # cnt[a] is now the end of bucket a; bucket a begins where bucket a-1 ended
        b0 = 0
        for a in range(k):
            b1 = cnt[a]
            m = b1 - b0
            if m > 0:
                for i in range(m):
                    free[i] = i
                left = m
                for j in range(m):
                    nb = 0
                    x = m - j - 1
                    while x > 0:
                        nb += 1
                        x >>= 1
                    d = 0
                    for b in range(nb):
                        byte = pos >> 3
                        if byte < nbytes:
                            d |= ((bits[byte] >> (pos & 7)) & 1) << b
                        pos += 1
                    if d >= left:
                        return E_DIGIT
                    out[r, cols[b0 + j]] = free[d]
                    for i in range(d, left - 1):
                        free[i] = free[i + 1]
                    left -= 1
            b0 = b1
    return pos


@njit(cache=True, nogil=True)
def encode_order_digits(start, length, shift, out):
    """Inverse of :func:`decode_order_digits`: the Lehmer digit of every entry but the last of each
    run of tied entries (runs by increasing start, entries in column order; ``#{i > j: shift_i <
    shift_j}`` in ceil(log2(m - j)) bits, LSB first) packed LSB-first into ``out`` (zeros in, at
    least ``n * k * 2`` bytes). Returns the number of bits written.

    Why compiled: the Python loop (a big integer shifted per digit, ``np.unique`` per record) took
    about half of a ``rans`` chunk's encode at k = 100 on LPQLD content."""
    n, k = start.shape
    cnt = np.zeros(k + 1, np.int64)
    cols = np.empty(k, np.int64)
    pos = 0
    for r in range(n):
        if not _bucket_tied(start, length, r, cnt, cols):
            continue
        b0 = 0
        for a in range(k):
            b1 = cnt[a]
            m = b1 - b0
            for j in range(m - 1):
                sj = shift[r, cols[b0 + j]]
                d = 0
                for i in range(j + 1, m):
                    if shift[r, cols[b0 + i]] < sj:
                        d += 1
                nb = 0
                x = m - j - 1
                while x > 0:
                    nb += 1
                    x >>= 1
                for b in range(nb):
                    if (d >> b) & 1:
                        out[pos >> 3] |= np.uint8(1 << (pos & 7))
                    pos += 1
            b0 = b1
    return pos


@njit(cache=True, nogil=True)
def tie_runs(m, start, length):
    """The runs of tied values of every record, from the values' order-preserving codes ``m``
    (uint16 [n, k], :func:`~lplabel.codecs.rans.monotone`): ``length[r, j]`` = how many entries of
    record r share entry j's value; for a tied entry (length >= 2) ``start[r, j]`` = how many
    entries have a larger value (its run start, as ``entryorder.run_starts`` counts it: codes are
    distinct per bit pattern, in value order); -1 for an entry without ties (no part of the entry
    order needs it).

    Why not ``entryorder.run_starts`` (a rank of every entry, k^2 vectorised compares) and
    ``run_lengths``: only tied entries need a start -- a few per record -- and most records of
    small k hold none. One pass counts each value's entries in a table indexed by its code (entries
    of another record are told apart by a stamp, so the table is never cleared); a tied value's
    start is then counted once, in one pass over its record."""
    n, k = m.shape
    stamp = np.zeros(65536, np.int32)
    cnt = np.empty(65536, np.int64)
    first = np.empty(65536, np.int64)
    for r in range(n):
        tag = r + 1
        for j in range(k):
            u = np.int64(m[r, j])
            if stamp[u] != tag:
                stamp[u] = tag
                cnt[u] = 1
                first[u] = -1
            else:
                cnt[u] += 1
        for j in range(k):
            u = np.int64(m[r, j])
            c = cnt[u]
            length[r, j] = c
            if c < 2:
                start[r, j] = -1
            elif first[u] >= 0:
                start[r, j] = first[u]
            else:
                a = 0
                for i in range(k):
                    a += np.int64(m[r, i]) > u
                first[u] = a
                start[r, j] = a


@njit(cache=True, nogil=True)
def shifts_rank_runs(start, length, shift):
    """Can mode 0 of the entry order code ``shift`` [n, k]: is every entry's shift below its run
    length (0 without ties), and are the shifts of each run of tied entries a permutation of
    0..m-1 (the input was sorted by decreasing value)? ``start``, ``length``: :func:`tie_runs`.
    One pass; numpy needed a sort of [n, k] for the permutation test."""
    n, k = start.shape
    seen = np.zeros(k, np.int64)
    for r in range(n):
        for j in range(k):
            seen[j] = 0
        for j in range(k):
            s = np.int64(shift[r, j])
            if s >= length[r, j]:
                return False
            if length[r, j] > 1:
                seen[start[r, j] + s] += 1  # < k: start + length <= k for a run
        for j in range(k):
            if seen[j] > 1:
                return False
    return True
