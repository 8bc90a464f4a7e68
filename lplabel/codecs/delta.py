"""``delta``: difference coding of one per-entry field along each record (array->array, lossless).

Configuration: ``{"field": <name>, "order": "ascending" | "descending"}``.

The field must have shape ``[k]`` per record and a 1-, 2- or 4-byte element type. Its elements
are first mapped to *order keys*, unsigned integers of the same width ``w`` bits whose integer
order is the element order:

* unsigned integers: the value itself;
* signed integers: the two's-complement bits XOR ``2**(w-1)`` (offset binary);
* ``float16`` / ``bfloat16`` / ``float32``: the IEEE bits ``u``; if the sign bit is clear,
  ``u | 2**(w-1)``, else ``~u`` (all bits flipped). This orders all non-NaN values, with
  -0.0 just below +0.0; NaNs map to keys too, so the code stays bijective.

For each record, with keys ``key[0..k-1]`` and arithmetic modulo ``2**w``::

    ascending:   out[0] = key[0],  out[j] = key[j] - key[j-1]   (j >= 1)
    descending:  out[0] = key[0],  out[j] = key[j-1] - key[j]   (j >= 1)

stored as an unsigned ``w``-bit field of the same name. Decoding is the running sum (difference)
modulo ``2**w`` followed by the inverse key map, so any input round-trips bit-exactly; the
output is small (and compresses well) only when the field is sorted in the declared order,
e.g. after ``{"name": "sort", "configuration": {"by": "index"}}`` for ``indices`` ascending,
or ``{"by": "value"}`` for ``values`` descending.
"""

from __future__ import annotations

import numpy as np

from ..dtypes import storage_dtype, to_storage
from ..errors import CodecChainError, CodecConfigError
from ._compiled import compiled
from .abc import ArrayArrayCodec, Field, indices_only, no_values, spec_field
from .registry import register_codec

_UNSIGNED = {1: "uint8", 2: "uint16", 4: "uint32"}
_FLOATS = ("float16", "bfloat16", "float32")
_SIGNED = ("int8", "int16", "int32")


def _width(type_: str) -> int:
    return storage_dtype(type_).itemsize


def to_keys(a: np.ndarray, type_: str) -> np.ndarray:
    """Order keys (unsigned, same width) of stored elements of type ``type_``."""
    w = _width(type_)
    u = np.ascontiguousarray(a).view(np.dtype(_UNSIGNED[w]).newbyteorder("<")).astype(_UNSIGNED[w], copy=False)
    top = np.array(1 << (8 * w - 1), dtype=_UNSIGNED[w])
    if type_ in _FLOATS:
        neg = (u & top) != 0
        return np.where(neg, ~u, u | top)
    if type_ in _SIGNED:
        return u ^ top
    return u


def from_keys(keys: np.ndarray, type_: str) -> np.ndarray:
    """Inverse of :func:`to_keys`: stored elements (storage dtype) from order keys."""
    w = _width(type_)
    top = np.array(1 << (8 * w - 1), dtype=_UNSIGNED[w])
    if type_ in _FLOATS:
        pos = (keys & top) != 0
        u = np.where(pos, keys ^ top, ~keys)
    elif type_ in _SIGNED:
        u = keys ^ top
    else:
        u = keys
    return np.ascontiguousarray(u).view(storage_dtype(type_))


@register_codec
class Delta(ArrayArrayCodec):
    name = "delta"

    def __init__(self, field: str = "indices", order: str = "ascending"):
        if not isinstance(field, str) or not field:
            raise CodecConfigError(f"delta: field must be a field name, got {field!r}")
        if order not in ("ascending", "descending"):
            raise CodecConfigError(f"delta: order must be 'ascending' or 'descending', got {order!r}")
        self.field = field
        self.order = order

    def get_config(self):
        return {"field": self.field, "order": self.order}

    def resolve(self, spec):
        f = spec_field(spec, self.field)
        if f is None and self.field == "values" and indices_only(spec):
            raise no_values("'delta' of 'values'", hint="delta-code 'indices' instead (after sort by index)")
        if f is None:
            raise CodecChainError(f"'delta': no field {self.field!r} in {[g.name for g in spec]}")
        if len(f.shape) != 1:
            raise CodecChainError(f"'delta': field {self.field!r} must have one entry axis [k], has shape {f.shape}")
        if f.type == "bool" or _width(f.type) not in _UNSIGNED:
            raise CodecChainError(
                f"'delta': field {self.field!r} of type {f.type} cannot be delta-coded",
                hint="delta takes 1-, 2- or 4-byte integer or float fields",
            )
        out_type = _UNSIGNED[_width(f.type)]
        return tuple(Field(g.name, out_type, g.shape) if g.name == self.field else g for g in spec)

    def encode(self, block, spec):
        f = spec_field(spec, self.field)
        keys = to_keys(to_storage(np.asarray(block[self.field]), f.type), f.type)
        d = keys.copy()
        if keys.shape[1] > 1:
            if self.order == "ascending":
                d[:, 1:] = keys[:, 1:] - keys[:, :-1]
            else:
                d[:, 1:] = keys[:, :-1] - keys[:, 1:]
        out = dict(block)
        out[self.field] = d
        return out

    def decode(self, block, spec):
        f = spec_field(spec, self.field)
        d = np.asarray(block[self.field])
        dt = np.dtype(_UNSIGNED[_width(f.type)])
        kern = compiled("_row_kernels")  # the same sums, compiled (numpy below is the reference)
        if kern is not None and d.ndim == 2 and d.shape[1] and d.dtype.kind == "u":
            keys = np.empty(d.shape, dt)
            kern.running_sum(np.ascontiguousarray(d), self.order == "descending", keys)
        elif self.order == "ascending":
            keys = np.cumsum(d, axis=1, dtype=dt)
        else:
            keys = d.copy().astype(dt)
            if d.shape[1] > 1:
                keys[:, 1:] = -d[:, 1:].astype(dt)
                keys = np.cumsum(keys, axis=1, dtype=dt)
        out = dict(block)
        out[self.field] = from_keys(keys, f.type)
        return out

    def decoded_spec(self, in_spec, out_spec):
        f = spec_field(in_spec, self.field)
        return tuple(f if g.name == self.field else g for g in out_spec)
