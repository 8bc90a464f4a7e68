"""``bytes``: the array->bytes step. Lays the block's fields out one after another.

Byte layout of one chunk of n records: for each field of the stored spec, in spec order, the
field's n x prod(shape) elements in C order, little-endian, in the field's storage dtype
(``bool`` as one byte 0/1, ``bfloat16`` as uint16 bits). No padding, no per-field headers:
the spec (from the header) and n (from the step table) say where everything is.
"""

from __future__ import annotations

import numpy as np

from ..dtypes import storage_dtype, to_storage
from ..errors import CodecError
from .abc import ArrayBytesCodec
from .registry import register_codec


@register_codec
class Bytes(ArrayBytesCodec):
    name = "bytes"

    def encode(self, block, spec) -> bytes:
        parts = []
        for f in spec:
            a = to_storage(np.asarray(block[f.name]), f.type)
            parts.append(a.reshape(-1).tobytes())
        return b"".join(parts)

    def decode(self, data, spec, n: int) -> dict:
        buf = memoryview(data).cast("B") if not isinstance(data, np.ndarray) else data
        arr = np.frombuffer(buf, dtype=np.uint8)
        expected = sum(n * f.items_per_record * storage_dtype(f.type).itemsize for f in spec)
        if arr.size != expected:
            raise CodecError(
                f"'bytes' codec: chunk holds {arr.size} bytes, the header's layout needs {expected} for {n} records"
            )
        out, pos = {}, 0
        for f in spec:
            dt = storage_dtype(f.type)
            nbytes = n * f.items_per_record * dt.itemsize
            a = arr[pos : pos + nbytes].view(dt).reshape((n, *f.shape))
            out[f.name] = a.view(bool) if f.type == "bool" else a
            pos += nbytes
        return out
