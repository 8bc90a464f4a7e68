"""``shuffle``: byte shuffle (bytes->bytes), groups the k-th byte of every element together.

Float and wide-integer fields compress far better after it: exponents and high bytes of
neighbouring values repeat. Layout: the first ``len - len % elementsize`` bytes are viewed as
an [m, elementsize] matrix and written transposed; the remainder is appended unchanged.
"""

from __future__ import annotations

import numpy as np

from ..errors import CodecConfigError
from .abc import BytesBytesCodec
from .registry import register_codec


@register_codec
class Shuffle(BytesBytesCodec):
    name = "shuffle"

    def __init__(self, elementsize: int = 2):
        if not isinstance(elementsize, int) or not 1 <= elementsize <= 16:
            raise CodecConfigError(f"shuffle: elementsize must be an integer in 1..16, got {elementsize!r}")
        self.elementsize = elementsize

    def get_config(self):
        return {"elementsize": self.elementsize}

    def encode(self, data) -> bytes:
        a = np.frombuffer(data, dtype=np.uint8)
        es = self.elementsize
        m = a.size // es
        if es == 1 or m == 0:
            return bytes(a)
        out = np.empty(a.size, dtype=np.uint8)
        head = a[: m * es].reshape(m, es)
        for j in range(es):  # plane by plane: much faster than a transposed copy
            out[j * m : (j + 1) * m] = head[:, j]
        out[m * es :] = a[m * es :]
        return out.tobytes()

    def decode(self, data) -> bytes:
        a = np.frombuffer(data, dtype=np.uint8)
        es = self.elementsize
        m = a.size // es
        if es == 1 or m == 0:
            return a
        out = np.empty(a.size, dtype=np.uint8)
        head = out[: m * es].reshape(m, es)
        for j in range(es):
            head[:, j] = a[j * m : (j + 1) * m]
        out[m * es :] = a[m * es :]
        return out
