"""``classmap``: renumber class indices by a stored class order (array->array, lossless).

Configuration: ``{"classes": C, "order": "<base64>"}``; ``order`` is the base64 (RFC 4648,
with padding) of C little-endian integers, ``uint16`` when C <= 65536 else ``uint32``: a
permutation of 0..C-1 listing the classes by rank (``order[r]`` = class at rank r).

Encoding replaces every class index c of the ``indices`` field by its rank r (``order[r] ==
c``); decoding maps r back to ``order[r]``. Values and other fields are untouched, the field
type stays the same. It changes nothing by itself; it makes the following codecs' job easier:

* ``frequency`` order (classes by decreasing frequency in the labels): frequent classes get
  small numbers, so the high byte of an index is mostly zero and byte-wise entropy coding of
  indices in value order gets close to the entropy of the class distribution;
* ``cooccurrence`` order: a greedy chain through the class co-occurrence graph (start at the
  most frequent class; repeatedly append the unused class with the largest normalised
  co-occurrence ``n(a,b) / sqrt(n(a) n(b))`` with the last one), so classes that appear in the
  same top-k sets sit next to each other and index gaps after ``sort`` by index shrink.

Orders are learnt from (a sample of) the labels being encoded by :func:`learn_class_order`; the
result is stored in the configuration, so decoding needs nothing else.
"""

from __future__ import annotations

import base64

import numpy as np

from ..errors import CodecChainError, CodecConfigError, CodecError
from ._compiled import compiled
from .abc import ArrayArrayCodec, spec_field
from .registry import register_codec

ORDER_METHODS = ("frequency", "cooccurrence")
#: above this many classes the co-occurrence matrix (C x C) is too large; frequency is used
MAX_COOCCURRENCE_CLASSES = 4096


def encode_order(order: np.ndarray) -> str:
    order = np.asarray(order, dtype=np.int64)
    dt = "<u2" if len(order) <= 65536 else "<u4"
    return base64.b64encode(order.astype(dt).tobytes()).decode("ascii")


def decode_order(text: str, classes: int) -> np.ndarray:
    dt = np.dtype("<u2" if classes <= 65536 else "<u4")
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError):
        raise CodecConfigError("classmap: 'order' is not valid base64") from None
    if len(raw) != classes * dt.itemsize:
        raise CodecConfigError(f"classmap: 'order' holds {len(raw) // dt.itemsize} classes, expected {classes}")
    order = np.frombuffer(raw, dtype=dt).astype(np.int64)
    if not np.array_equal(np.sort(order), np.arange(classes)):
        raise CodecConfigError("classmap: 'order' is not a permutation of the classes")
    return order


def learn_class_order(indices: np.ndarray, num_classes: int, method: str = "cooccurrence") -> np.ndarray:
    """A class order (permutation of 0..C-1) from sample top-k ``indices`` [n, k] (see the module doc).
    Ties are broken by smaller class index, so the result is deterministic."""
    idx = np.asarray(indices, dtype=np.int64).reshape(len(indices), -1)
    C = int(num_classes)
    counts = np.bincount(idx.ravel(), minlength=C).astype(np.float64)
    if method not in ORDER_METHODS:
        raise CodecConfigError(
            f"unknown class order method {method!r}", hint=f"choose one of {', '.join(ORDER_METHODS)}"
        )
    if method == "frequency" or C > MAX_COOCCURRENCE_CLASSES or len(idx) == 0:
        return np.lexsort((np.arange(C), -counts))
    co = np.zeros((C, C), dtype=np.float64)
    for a in range(0, len(idx), 2048):  # blocks keep the one-hot matrix small
        X = np.zeros((min(2048, len(idx) - a), C), dtype=np.float32)
        np.put_along_axis(X, idx[a : a + 2048], 1.0, axis=1)
        co += X.T @ X
    deg = np.sqrt(np.diag(co)) + 1e-12
    co /= deg[:, None]
    co /= deg[None, :]
    np.fill_diagonal(co, -1.0)
    used = np.zeros(C, dtype=bool)
    cur = int(np.lexsort((np.arange(C), -counts))[0])
    chain = [cur]
    used[cur] = True
    for _ in range(C - 1):
        row = np.where(used, -np.inf, co[cur])
        cur = int(np.argmax(row))  # first maximum: smallest class index among ties
        chain.append(cur)
        used[cur] = True
    return np.asarray(chain, dtype=np.int64)


@register_codec
class ClassMap(ArrayArrayCodec):
    name = "classmap"

    def __init__(self, classes: int, order: str):
        if not isinstance(classes, int) or isinstance(classes, bool) or classes < 1:
            raise CodecConfigError(f"classmap: classes must be a positive integer, got {classes!r}")
        if not isinstance(order, str):
            raise CodecConfigError("classmap: 'order' must be a base64 string")
        self.classes = classes
        self.order_text = order
        self.order = decode_order(order, classes)
        self.rank = np.empty(classes, dtype=np.int64)
        self.rank[self.order] = np.arange(classes)
        self._order_as: dict = {}  # the order in each unsigned stored index type, made on first decode

    @classmethod
    def from_order(cls, order) -> "ClassMap":
        order = np.asarray(order, dtype=np.int64)
        return cls(len(order), encode_order(order))

    def get_config(self):
        return {"classes": self.classes, "order": self.order_text}

    def resolve(self, spec):
        f = spec_field(spec, "indices")
        if f is None:
            raise CodecChainError(
                f"'classmap' needs an 'indices' field, got {[g.name for g in spec]}", hint="put 'classmap' after 'topk'"
            )
        if f.type in ("float16", "bfloat16", "float32", "float64", "bool"):
            raise CodecChainError(
                f"'classmap': 'indices' must be integers, got {f.type}", hint="put 'classmap' before 'delta'"
            )
        return tuple(spec)

    def encode(self, block, spec):
        idx = np.asarray(block["indices"])
        if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= self.classes):
            raise CodecError(f"classmap: a class index lies outside 0..{self.classes - 1}")
        out = dict(block)
        out["indices"] = self.rank[idx.astype(np.int64)].astype(idx.dtype)
        return out

    def decode(self, block, spec):
        idx = np.asarray(block["indices"])
        out = dict(block)
        if idx.dtype.kind == "u":
            # one gather in the stored type: numpy refuses a rank >= C itself (IndexError), so no
            # separate range pass and no int64 copies (this runs on every decoded chunk)
            table = self._order_as.get(idx.dtype)
            if table is None:
                table = self._order_as[idx.dtype] = self.order.astype(idx.dtype)
            kern = compiled("_row_kernels")  # the same lookup, compiled (numpy below is the reference)
            if kern is not None and idx.ndim == 2:
                got = np.empty(idx.shape, idx.dtype)
                if kern.lookup(table, np.ascontiguousarray(idx), got):
                    raise CodecError(f"classmap: a stored rank lies outside 0..{self.classes - 1}")
                out["indices"] = got
                return out
            try:
                out["indices"] = table[idx]
            except IndexError:
                raise CodecError(f"classmap: a stored rank lies outside 0..{self.classes - 1}") from None
            return out
        if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= self.classes):
            raise CodecError(f"classmap: a stored rank lies outside 0..{self.classes - 1}")
        out["indices"] = self.order[idx.astype(np.int64)].astype(idx.dtype)
        return out
