"""``topk``: keep the k largest logits of each record and their class indices.

Input: ``logits`` [C] (dense teacher output), or ``indices`` [k'] + ``values`` [k'] (+ optional
``tail`` scalar) holding labels that are top-k' already (e.g. imported from LPQLD, or a top-k
store being re-quantized), with k' >= k. Then the k largest values are kept (ties: smaller
class index first; with k' == k the entries keep their order) and cast to ``type``. A tail
summary of such input can only be derived from the input's own tail, which must be of the
same kind: ``logsumexp`` merges the dropped entries into it (log(exp(tail) + sum exp(v))),
``min`` keeps it (the minimum over all classes does not change); without an input tail only
``tail = "none"`` is possible.
Output fields, in order: ``indices`` [k] (``index_type``), ``values`` [k] (``type``), and
with ``tail != "none"`` a per-record ``tail`` scalar (``type``):

* ``logsumexp``: log(sum(exp(z_c))) over the dropped classes c at T=1, so reconstruction can
  give the dropped classes their probability mass back (exactly at T=1);
* ``min``: the smallest logit, so the dropped classes can be filled with a floor value.

Entries are ordered by decreasing value (ties: smaller class index first). Decoding returns
the stored fields; :mod:`lplabel.reconstruct` turns them into probabilities.

``type = "none"`` (format 1.1) stores the class indices only: the output is ``indices`` [k]
alone, the cheapest label there is (a hard label for k = 1, a set label for k > 1). The same k
classes are chosen as with values; readers give each of them probability 1/k (spec §4). It
takes no tail (a tail summary describes values that are not stored: :class:`NoValuesError`).
Its input may also be ``indices`` [k] alone (a store of this type being copied), with the same
k: without values there is no order to choose fewer entries by, and no value type can be
filled from it.
"""

from __future__ import annotations

import numpy as np

from ..dtypes import FLOAT_TYPES, check_type, to_float32, to_storage
from ..errors import CodecChainError, CodecConfigError, NoValuesError
from .abc import ArrayArrayCodec, Field, spec_field
from .registry import register_codec

TAIL_MODES = ("none", "logsumexp", "min")
#: ``type`` of a top-k store that keeps class indices only, no values (format 1.1)
INDEX_ONLY = "none"
VALUE_TYPES = FLOAT_TYPES + (INDEX_ONLY,)
INDEX_TYPES = ("uint8", "int16", "uint16", "int32")
_INDEX_LIMIT = {"uint8": 256, "int16": 32768, "uint16": 65536, "int32": 2**31}


def topk_of(logits: np.ndarray, k: int, tiebreak: np.ndarray | None = None):
    """Positions and values of the k largest entries per row (vectorised).

    Order and selection are by decreasing value, ties by increasing ``tiebreak`` (default: the
    column position, i.e. the class index of dense logits) -- also at the k-th place, so which
    of several equal logits is kept never depends on the sorting algorithm.
    """
    z = np.asarray(logits)
    n, c = z.shape
    if tiebreak is None and 4 * k < c:
        # k-th largest value per row, then: everything above it, plus the first equal ones
        kth = -np.partition(-z, k - 1, axis=1)[:, k - 1 : k]
        above = z > kth
        equal = z == kth
        need = k - above.sum(axis=1, keepdims=True)
        sel = above | (equal & (np.cumsum(equal, axis=1) <= need))
        part = np.nonzero(sel)[1].reshape(n, k)  # row-major: positions ascending within a row
        key2 = part
    else:
        key2 = np.broadcast_to(np.arange(c), (n, c)) if tiebreak is None else np.asarray(tiebreak)
        part = np.lexsort((key2, -z.astype(np.float64)), axis=1)[:, :k]
        key2 = np.take_along_axis(key2, part, axis=1)
    vals = np.take_along_axis(z, part, axis=1)
    # order the kept entries by (-value, tiebreak): lexsort's last key is primary
    order = np.lexsort((key2, -vals.astype(np.float64)), axis=1)
    return np.take_along_axis(part, order, axis=1), np.take_along_axis(vals, order, axis=1)


def tail_summary(logits: np.ndarray, idx: np.ndarray, mode: str) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    if mode == "min":
        return z.min(axis=1)
    mask = np.ones(z.shape, dtype=bool)
    np.put_along_axis(mask, idx, False, axis=1)
    zm = np.where(mask, z, -np.inf)
    m = zm.max(axis=1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        return np.log(np.exp(zm - m).sum(axis=1)) + m[:, 0]


@register_codec
class TopK(ArrayArrayCodec):
    name = "topk"
    lossy = True

    def __init__(self, k: int, type: str = "float16", index_type: str = "uint16", tail: str = "none"):
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise CodecConfigError(f"topk: k must be a positive integer, got {k!r}")
        self.k = k
        self.type = INDEX_ONLY if type == INDEX_ONLY else check_type(type, allowed=VALUE_TYPES, what="top-k value type")
        self.index_type = check_type(index_type, allowed=INDEX_TYPES, what="top-k index type")
        if tail not in TAIL_MODES:
            raise CodecConfigError(f"topk: unknown tail mode {tail!r}", hint=f"choose one of {', '.join(TAIL_MODES)}")
        if self.type == INDEX_ONLY and tail != "none":
            raise NoValuesError(
                f"topk: a {tail!r} tail summary needs stored values; type 'none' keeps class indices only",
                hint=f"use tail 'none' with type 'none', or a value type ({', '.join(FLOAT_TYPES)}) with the tail",
            )
        self.tail = tail

    @property
    def index_only(self) -> bool:
        """True for ``type = "none"``: class indices only, no values."""
        return self.type == INDEX_ONLY

    def get_config(self):
        return {"k": self.k, "type": self.type, "index_type": self.index_type, "tail": self.tail}

    def resolve(self, spec):
        names = [f.name for f in spec]
        logits = spec_field(spec, "logits")
        if logits is not None and len(spec) == 1:
            c = logits.items_per_record
            if self.k >= c:
                raise CodecConfigError(
                    f"topk: k={self.k} must be smaller than the number of classes ({c})",
                    hint="use the 'dense' codec to keep every class",
                )
            if c > _INDEX_LIMIT[self.index_type]:
                raise CodecConfigError(
                    f"topk: {c} classes do not fit index type {self.index_type}",
                    hint="use index_type 'uint16' (up to 65,536 classes) or 'int32'",
                )
        elif names == ["indices"]:
            # labels that keep class indices only (a type-'none' store being copied)
            kin = spec_field(spec, "indices").items_per_record
            if not self.index_only:
                raise NoValuesError(
                    f"topk: the input keeps class indices only; a store with {self.type} values "
                    "cannot be made from it (values cannot be invented)",
                    hint="keep type 'none', or quantize the store the labels came from",
                )
            if kin != self.k:
                raise NoValuesError(
                    f"topk: the input holds {kin} class indices per record without values; "
                    f"top-{self.k} cannot be chosen from them (no order to choose by)",
                    hint=f"keep k={kin}, or quantize the store the labels came from",
                )
        elif {"indices", "values"} <= set(names) <= {"indices", "values", "tail"}:
            kin = spec_field(spec, "values").items_per_record
            if kin < self.k:
                raise CodecConfigError(
                    f"topk: input holds top-{kin} labels, cannot store them as top-{self.k}",
                    hint="re-quantising can only keep k or fewer entries of the source",
                )
            if self.tail != "none" and "tail" not in names:
                raise CodecConfigError(
                    f"topk: a {self.tail!r} tail summary needs the dense logits or a source "
                    "tail of that kind; the input is top-k without a tail",
                    hint="use tail 'none', or re-quantize from the dense store",
                )
        else:
            raise CodecChainError(f"'topk' takes 'logits' or 'indices'+'values', got {names}")
        out = [Field("indices", self.index_type, (self.k,))]
        if not self.index_only:
            out.append(Field("values", self.type, (self.k,)))
        if self.tail != "none":
            out.append(Field("tail", self.type, ()))
        return tuple(out)

    def encode(self, block, spec):
        if "logits" in block:
            z = np.asarray(block["logits"])
            idx, vals = topk_of(z, self.k)
            tail = tail_summary(z, idx, self.tail) if self.tail != "none" else None
        elif "values" not in block:  # index-only input, k' == k (checked by resolve): kept in order
            idx, vals, tail = np.asarray(block["indices"]), None, None
        else:
            idx, vals = np.asarray(block["indices"]), np.asarray(block["values"])
            tail = np.asarray(block["tail"], dtype=np.float64) if "tail" in block else None
            if vals.shape[1] > self.k:
                vf = to_float32(vals, spec_field(spec, "values").type)
                pos, _ = topk_of(vf, self.k, tiebreak=idx.astype(np.int64))
                if tail is not None and self.tail == "logsumexp":
                    keep = np.zeros(vf.shape, dtype=bool)
                    np.put_along_axis(keep, pos, True, axis=1)
                    dropped = np.where(keep, -np.inf, vf.astype(np.float64))
                    allz = np.concatenate([dropped, tail[:, None]], axis=1)
                    m = allz.max(axis=1)
                    m = np.where(np.isfinite(m), m, 0.0)
                    with np.errstate(divide="ignore"):
                        tail = np.log(np.exp(allz - m[:, None]).sum(axis=1)) + m
                idx = np.take_along_axis(idx, pos, axis=1)
                vals = np.take_along_axis(vals, pos, axis=1)
        limit = _INDEX_LIMIT[self.index_type]
        if idx.size and (idx.min() < 0 or idx.max() >= limit):
            raise CodecConfigError(f"topk: class index out of range for index type {self.index_type}")
        out = {"indices": to_storage(idx, self.index_type)}
        if not self.index_only:
            out["values"] = to_storage(vals, self.type)
        if self.tail != "none":
            out["tail"] = to_storage(np.asarray(tail).astype(np.float32), self.type)
        return out
