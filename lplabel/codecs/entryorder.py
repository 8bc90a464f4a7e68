"""``entryorder``: keep the input order of each record's top-k entries through a reordering chain.

Configuration: ``{}`` (none).

Why: ``sort`` (and ``rans``, which codes a class set) put the entries in a canonical order; the
(index, value) pairs survive, the order does not. For soft labels that is no loss -- but a label
set imported from LPQLD or FKD must export back to byte-identical files, and those files list the
entries by decreasing value with equal values in whatever order the generator's ``torch.topk``
left them (on float32 logits, before the cast to float16). The values determine everything but
the order among ties, so this codec stores only that: per entry, its input position counted from
the first position its value could take. An entry without ties gets 0, and ``rans`` with
``order: true`` stores only the order within each run of tied values (spec/FORMAT.md §3.18).

Input: a top-k block with ``indices`` [k] and ``values`` [k] (``float32``, ``float16`` or
``bfloat16``); other fields pass unchanged. Output: the same fields, entries in their input order,
then a new field ``entry_shift`` [k] (``uint8`` when k <= 256, else ``uint16``): for an entry at
input position f, ``(f - a) mod k`` where a, its *run start*, is the number of the record's
entries whose value is larger (compared by the order key of the stored bits, ``delta``'s key:
every bit pattern distinct, -0 below +0). Input sorted by decreasing value gives every entry a
shift in 0..m-1 within its run of m equal values (0 without ties).

Decoding: ``entry_shift`` travels with its entry through every later codec (``sort`` permutes
all [k] fields alike), so the decoder recomputes each entry's run start a from the decoded values
and puts it back at ``f = (a + shift) mod k``; shifts that do not give a permutation are a
corrupt chunk. A reader that wants the pairs and not their order (the loader: training never
needs it) skips this decode (``order_only``; ``Pipeline.decode(entry_order=False)``) and gets the
same pairs in the later codecs' order -- the rank below is most of the chain's decode time.

Speed: the run starts are a rank of each record's values. The loops are compiled with numba
(:mod:`._entryorder_kernels`, the optional ``rans`` extra) when it is installed -- about 7x the
numpy reference at k = 100 -- and fall back to the numpy code below, which is the reference:
both give identical results (tested), so a store decodes the same with or without numba.
"""

from __future__ import annotations

import numpy as np

from ..dtypes import FLOAT_TYPES, storage_dtype
from ..errors import CodecChainError, CodecError
from ._compiled import compiled
from .abc import ArrayArrayCodec, Field, spec_field
from .registry import register_codec

FIELD = "entry_shift"


def _kernels():
    """The compiled loops, or None when numba is absent or broken (then numpy does the work)."""
    return compiled("_entryorder_kernels")


def warm_up() -> None:
    """Compile (or load from numba's cache) the loops for the common case (float16 values, 16-bit
    indices) now, e.g. before forking DataLoader workers; nothing to do without numba."""
    if _kernels() is None:
        return
    spec = (Field("indices", "int16", (2,)), Field("values", "float16", (2,)))
    block = {"indices": np.array([[3, 0]], np.int16), "values": np.array([[1.0, 1.0]], np.float16)}
    codec = EntryOrder()
    codec.decode(codec.encode(block, spec), spec)


def _bits(values: np.ndarray, type_: str) -> tuple:
    """The stored values' unsigned bit patterns [n, k] (C-contiguous) and their sign bit."""
    dt = storage_dtype(type_)
    u = np.ascontiguousarray(values, dtype=dt).view(f"<u{dt.itemsize}")
    return u, 1 << (8 * dt.itemsize - 1)


def order_key(values: np.ndarray, type_: str) -> np.ndarray:
    """Unsigned keys whose integer order is the order of the stored float values (int64)."""
    size = storage_dtype(type_).itemsize
    u = np.ascontiguousarray(values, dtype=storage_dtype(type_)).view(f"<u{size}")
    bits = size * 8
    u = u.astype(np.int64)
    top = np.int64(1) << (bits - 1)
    mask = (np.int64(1) << bits) - 1
    return np.where(u & top, (~u) & mask, u | top)


def run_starts(values: np.ndarray, type_: str, compiled: bool = True) -> np.ndarray:
    """Per entry, the number of entries of its record with a larger value (int64 [n, k]).
    ``compiled=False`` runs the numpy reference even when numba is there (for tests)."""
    kern = _kernels() if compiled else None
    if kern is not None and np.ndim(values) == 2:
        u, top = _bits(values, type_)
        out = np.empty(u.shape, np.int64)
        kern.run_starts(u, top, *kern.key_buffers(u, u.shape[1]), out)
        return out
    key = order_key(values, type_)
    n, k = key.shape
    perm = np.argsort(-key, axis=1, kind="stable")  # decreasing value
    sk = np.take_along_axis(key, perm, axis=1)
    new = np.ones((n, k), bool)
    new[:, 1:] = sk[:, 1:] != sk[:, :-1]  # first entry of each run of equal values
    start_sorted = np.maximum.accumulate(np.where(new, np.arange(k), 0), axis=1)
    out = np.empty((n, k), np.int64)
    np.put_along_axis(out, perm, start_sorted, axis=1)
    return out


def run_lengths(start: np.ndarray, compiled: bool = True) -> np.ndarray:
    """Per entry, how many entries of its record share its value (from :func:`run_starts`)."""
    kern = _kernels() if compiled else None
    n, k = start.shape
    if kern is not None and n and start.min() >= 0 and start.max() < k:
        out = np.empty((n, k), np.int64)
        kern.run_lengths(np.ascontiguousarray(start, dtype=np.int64), out)
        return out
    flat = (np.arange(n)[:, None] * k + start).ravel()
    return np.bincount(flat, minlength=n * k)[flat].reshape(n, k)


@register_codec
class EntryOrder(ArrayArrayCodec):
    name = "entryorder"
    order_only = True  # its decode only restores the entries' input order (a loader may skip it)

    def resolve(self, spec):
        idx, val = spec_field(spec, "indices"), spec_field(spec, "values")
        if idx is None or val is None:
            raise CodecChainError(
                f"'entryorder' takes a top-k block with 'indices' and 'values', got {[f.name for f in spec]}",
                hint="put it right after 'topk'",
            )
        if len(idx.shape) != 1 or val.shape != idx.shape or val.type not in FLOAT_TYPES:
            raise CodecChainError(
                f"'entryorder': 'indices' {idx.shape} and float 'values' {val.type} {val.shape} must both be [k]",
                hint="put it right after 'topk' (before quantize, delta)",
            )
        if idx.type in FLOAT_TYPES or idx.type == "bool":
            raise CodecChainError(f"'entryorder': 'indices' must be integers, got {idx.type}")
        if spec_field(spec, FIELD) is not None:
            raise CodecChainError("'entryorder' appears twice in the chain")
        k = idx.shape[0]
        if k > 65536:
            raise CodecChainError(f"'entryorder' handles k <= 65536, got {k}")
        return tuple(spec) + (Field(FIELD, "uint8" if k <= 256 else "uint16", (k,)),)

    def decoded_spec(self, in_spec, out_spec):
        return tuple(f for f in out_spec if f.name != FIELD)

    def encode(self, block, spec):
        idx = np.asarray(block["indices"])
        n, k = idx.shape
        out = dict(block)
        kern = _kernels()
        vtype = spec_field(spec, "values").type
        if kern is not None:
            u, top = _bits(np.asarray(block["values"]), vtype)
            out[FIELD] = np.empty((n, k), np.uint8 if k <= 256 else np.uint16)
            kern.shifts(u, top, *kern.key_buffers(u, k), out[FIELD])
            return out
        start = run_starts(np.asarray(block["values"]), vtype)
        out[FIELD] = ((np.arange(k)[None, :] - start) % k).astype(np.uint8 if k <= 256 else np.uint16)
        return out

    def decode(self, block, spec):
        kern = _kernels()
        if kern is not None:
            return self._decode_compiled(kern, block, spec)
        return self._decode_numpy(block, spec)

    def _decode_compiled(self, kern, block, spec):
        idx = np.asarray(block["indices"])
        n, k = idx.shape
        u, top = _bits(np.asarray(block["values"]), spec_field(spec, "values").type)
        target = np.empty((n, k), np.int64)
        if kern.targets(u, top, *kern.key_buffers(u, k), np.ascontiguousarray(block[FIELD]), target) != kern.OK:
            raise CodecError("entryorder: corrupt chunk: the stored shifts do not give a permutation of the entries")
        out = {}
        for f in spec:
            a = np.asarray(block[f.name])
            if f.shape != (k,):
                out[f.name] = a
                continue
            a = np.ascontiguousarray(a)
            res = np.empty_like(a)
            if a.dtype.kind in "biuf" and a.dtype.itemsize in (1, 2, 4, 8):  # bit copies (numba has no float16)
                uint = np.dtype(f"<u{a.dtype.itemsize}")
                kern.scatter_rows(a.view(uint), target, res.view(uint))
            else:
                np.put_along_axis(res, target, a, axis=1)
            out[f.name] = res
        return out

    def _decode_numpy(self, block, spec):
        """The reference decode (also the path without numba)."""
        idx = np.asarray(block["indices"])
        n, k = idx.shape
        start = run_starts(np.asarray(block["values"]), spec_field(spec, "values").type, compiled=False)
        target = (start + np.asarray(block[FIELD]).astype(np.int64)) % k  # input position of each entry
        check = np.zeros((n, k), np.int64)
        np.put_along_axis(check, target, 1, axis=1)
        if n and not check.all():
            raise CodecError("entryorder: corrupt chunk: the stored shifts do not give a permutation of the entries")
        src = np.empty_like(target)  # src[f] = row position of entry f
        np.put_along_axis(src, target, np.broadcast_to(np.arange(k), (n, k)), axis=1)
        out = {}
        for f in spec:
            a = np.asarray(block[f.name])
            out[f.name] = np.take_along_axis(a, src, axis=1) if f.shape == (k,) else a
        return out
