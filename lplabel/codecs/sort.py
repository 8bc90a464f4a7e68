"""``sort``: put each record's top-k entries in a canonical order (array->array).

Configuration: ``{"by": "index" | "value"}``.

Input: a top-k block with ``indices`` [k] and ``values`` [k] (any other per-record fields, such
as ``tail``, ``scale`` or ``offset``, pass through unchanged). Every ``[k]``-shaped field is
permuted with the same per-record permutation:

* ``by = "index"``: increasing class index (indices are distinct within a record);
* ``by = "value"``: decreasing value, ties broken by increasing class index. Values compare as
  numbers (float16 / bfloat16 / float32 widened exactly to float64; quantized integer codes
  as integers, which orders them as their dequantized values since scales are positive).

The (index, value) pairs of a record are kept exactly; only their order changes, so the codec
is lossless for soft labels (which are a set of (class, logit) pairs: the order of the entries
carries no information once the values are stored). Decoding returns the entries in the
canonical order. Use it before ``delta``: ``by=index`` makes index gaps small, ``by=value``
makes value steps small.

A block of class indices only (``topk`` with ``type: "none"``) can be sorted ``by=index``;
``by=value`` refuses it (:class:`~lplabel.errors.NoValuesError`): there is nothing to order by.

Speed: ``by=index`` (every default top-k chain) runs compiled loops (:mod:`._sort_kernels`, numba,
the optional ``rans`` extra) when they are there -- about 5x numpy's ``argsort`` and gathers at
k = 100 -- and the numpy code below otherwise; both give the same permutation (tested).
"""

from __future__ import annotations

import numpy as np

from ..dtypes import FLOAT_TYPES, to_float32
from ..errors import CodecChainError, CodecConfigError
from ._compiled import compiled
from .abc import ArrayArrayCodec, indices_only, no_values, spec_field
from .registry import register_codec


def canonical_order(indices: np.ndarray, values: np.ndarray | None, by: str) -> np.ndarray:
    """Per-record permutation [n, k] that sorts entries canonically (vectorised)."""
    if by == "index":  # integers of any width sort alike; a narrow stable argsort is a radix sort
        return np.argsort(np.asarray(indices), axis=1, kind="stable")
    idx = np.asarray(indices).astype(np.int64)
    v = np.asarray(values, dtype=np.float64)
    # lexsort: last key is primary -> (-value, index)
    return np.lexsort((idx, -v), axis=1)


@register_codec
class Sort(ArrayArrayCodec):
    name = "sort"

    def __init__(self, by: str = "index"):
        if by not in ("index", "value"):
            raise CodecConfigError(f"sort: 'by' must be 'index' or 'value', got {by!r}")
        self.by = by

    def get_config(self):
        return {"by": self.by}

    def resolve(self, spec):
        idx, val = spec_field(spec, "indices"), spec_field(spec, "values")
        if indices_only(spec) and self.by == "index":
            val = idx  # class indices only (topk type 'none'): nothing else to keep in step
        elif indices_only(spec):
            raise no_values("'sort' by value needs stored values", hint="use sort by 'index'")
        if idx is None or val is None:
            raise CodecChainError(
                f"'sort' takes a top-k block with 'indices' and 'values', got {[f.name for f in spec]}",
                hint="put 'sort' after 'topk'",
            )
        if len(idx.shape) != 1 or val.shape != idx.shape:
            raise CodecChainError(
                f"'sort': 'indices' {idx.shape} and 'values' {val.shape} must both be [k]",
                hint="put 'sort' before codecs that change the shape of 'values' (bitpack)",
            )
        if idx.type in FLOAT_TYPES or idx.type == "bool":
            raise CodecChainError(
                f"'sort': 'indices' must be integers, got {idx.type}", hint="put 'sort' before 'delta'"
            )
        return tuple(spec)

    def encode(self, block, spec):
        idx = np.asarray(block["indices"])
        kern = compiled("_sort_kernels") if self.by == "index" else None
        if kern is not None and idx.ndim == 2 and idx.dtype.kind in "iu" and idx.dtype != np.uint64:
            return self._encode_compiled(kern, block, spec, idx)
        vf = spec_field(spec, "values")
        vals = to_float32(np.asarray(block["values"]), vf.type) if self.by == "value" else None
        perm = canonical_order(idx, vals, self.by)
        k = idx.shape[1]
        out = dict(block)
        for f in spec:
            if f.shape == (k,):
                out[f.name] = np.take_along_axis(np.asarray(block[f.name]), perm, axis=1)
        return out

    def _encode_compiled(self, kern, block, spec, idx):
        """``by=index`` with the compiled loops: each entry's sorted position, then every [k] field
        written there (the permutation of :func:`canonical_order`, applied as a scatter)."""
        n, k = idx.shape
        pos = kern.index_ranks(idx)
        out = dict(block)
        for f in spec:
            if f.shape != (k,):
                continue
            a = np.ascontiguousarray(block[f.name])
            res = np.empty_like(a)
            if a.dtype.kind in "biuf" and a.dtype.itemsize in (1, 2, 4, 8):  # bit copies (numba has no float16)
                uint = np.dtype(f"<u{a.dtype.itemsize}")
                kern.scatter_rows(a.view(uint), pos, res.view(uint))
            else:
                np.put_along_axis(res, pos, a, axis=1)
            out[f.name] = res
        return out
