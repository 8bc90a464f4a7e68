"""``bitpack``: pack small unsigned codes several to a byte (array->array, lossless).

Configuration: ``{"field": <name>, "bits": 1 | 2 | 4}``.

The field must be ``uint8`` with shape ``[m]`` per record and every element below
``2**bits`` (e.g. the codes of ``quantize`` with ``bits = 4``); encoding raises ``CodecError``
otherwise. Each record's m codes become ``ceil(m * bits / 8)`` bytes (field type ``uint8``,
same name): code j goes to byte ``j // (8/bits)`` at bit position ``bits * (j % (8/bits))``,
i.e. **low bits first** (for 4 bits: the low nibble holds the even entry, the high nibble the
odd one). Unused high bits of a record's last byte are zero. Records are packed separately, so
every record starts on a byte boundary. Decoding returns the codes as ``uint8`` [m].
"""

from __future__ import annotations

import numpy as np

from ..errors import CodecChainError, CodecConfigError, CodecError
from .abc import ArrayArrayCodec, Field, indices_only, no_values, spec_field
from .registry import register_codec


def pack_rows(codes: np.ndarray, bits: int) -> np.ndarray:
    codes = np.asarray(codes, dtype=np.uint8)
    n, m = codes.shape
    per = 8 // bits
    nb = -(-m // per)
    pad = np.zeros((n, nb * per), dtype=np.uint8)
    pad[:, :m] = codes
    pad = pad.reshape(n, nb, per)
    out = np.zeros((n, nb), dtype=np.uint8)
    for j in range(per):
        out |= pad[:, :, j] << np.uint8(bits * j)
    return out


def unpack_rows(packed: np.ndarray, bits: int, m: int) -> np.ndarray:
    packed = np.asarray(packed, dtype=np.uint8)
    n, nb = packed.shape
    per = 8 // bits
    mask = np.uint8((1 << bits) - 1)
    out = np.empty((n, nb, per), dtype=np.uint8)
    for j in range(per):
        out[:, :, j] = (packed >> np.uint8(bits * j)) & mask
    return out.reshape(n, nb * per)[:, :m]


@register_codec
class BitPack(ArrayArrayCodec):
    name = "bitpack"

    def __init__(self, field: str = "values", bits: int = 4):
        if bits not in (1, 2, 4) or isinstance(bits, bool):
            raise CodecConfigError(f"bitpack: bits must be 1, 2 or 4, got {bits!r}")
        if not isinstance(field, str) or not field:
            raise CodecConfigError(f"bitpack: field must be a field name, got {field!r}")
        self.field = field
        self.bits = bits

    def get_config(self):
        return {"field": self.field, "bits": self.bits}

    def resolve(self, spec):
        f = spec_field(spec, self.field)
        if f is None and self.field == "values" and indices_only(spec):
            raise no_values("'bitpack' of 'values'", hint="drop 'bitpack' from the chain")
        if f is None:
            raise CodecChainError(f"'bitpack': no field {self.field!r} in {[g.name for g in spec]}")
        if f.type != "uint8" or len(f.shape) != 1:
            raise CodecChainError(
                f"'bitpack': field {self.field!r} must be uint8 [m], got {f.type} {f.shape}",
                hint="put 'bitpack' directly after 'quantize' (bits=4)",
            )
        nb = -(-f.shape[0] * self.bits // 8)
        return tuple(Field(g.name, "uint8", (nb,)) if g.name == self.field else g for g in spec)

    def encode(self, block, spec):
        codes = np.asarray(block[self.field])
        if codes.size and int(codes.max()) >= (1 << self.bits):
            raise CodecError(
                f"bitpack: field {self.field!r} holds a value >= {1 << self.bits}, which does not fit {self.bits} bits",
                hint="bitpack only takes codes made for that width, e.g. quantize(bits=4)",
            )
        out = dict(block)
        out[self.field] = pack_rows(codes, self.bits)
        return out

    def decode(self, block, spec):
        f = spec_field(spec, self.field)
        out = dict(block)
        out[self.field] = unpack_rows(block[self.field], self.bits, f.shape[0])
        return out

    def decoded_spec(self, in_spec, out_spec):
        f = spec_field(in_spec, self.field)
        return tuple(f if g.name == self.field else g for g in out_spec)
