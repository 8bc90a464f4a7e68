"""``dense``: the full logit vector of every record, in float32, float16 or bfloat16.

Input field ``logits`` [C]; output field ``logits`` [C] of the chosen type. Narrowing is the
only loss and the header names it (``type``). Decoding returns the stored values as stored.
"""

from __future__ import annotations

from ..dtypes import FLOAT_TYPES, check_type, to_storage
from ..errors import CodecChainError
from .abc import ArrayArrayCodec, Field, spec_field
from .registry import register_codec


@register_codec
class Dense(ArrayArrayCodec):
    name = "dense"

    def __init__(self, type: str = "float16"):
        self.type = check_type(type, allowed=FLOAT_TYPES, what="dense value type")

    @property
    def lossy(self):  # narrowing from float32 input
        return self.type != "float32"

    def get_config(self):
        return {"type": self.type}

    def resolve(self, spec):
        f = spec_field(spec, "logits")
        if f is None or len(spec) != 1:
            raise CodecChainError(f"'dense' takes a block of one field 'logits', got {[g.name for g in spec]}")
        return (Field("logits", self.type, f.shape),)

    def encode(self, block, spec):
        return {"logits": to_storage(block["logits"], self.type)}
