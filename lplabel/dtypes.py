"""Names of on-disk element types and the conversions numpy lacks (bfloat16).

Every array in a store is little-endian. bfloat16 has no numpy dtype: it is stored as the
upper 16 bits of the IEEE float32 (``uint16`` on disk) and widened back by a shift, which is
exact.
"""

from __future__ import annotations

import numpy as np

from .errors import CodecConfigError

#: Element types a codec field may declare, and the numpy dtype that holds them on disk.
_STORAGE = {
    "float64": "<f8",
    "float32": "<f4",
    "float16": "<f2",
    "bfloat16": "<u2",
    "int64": "<i8",
    "int32": "<i4",
    "int16": "<i2",
    "int8": "i1",
    "uint64": "<u8",
    "uint32": "<u4",
    "uint16": "<u2",
    "uint8": "u1",
    "bool": "u1",
}

FLOAT_TYPES = ("float32", "float16", "bfloat16")


def check_type(name: str, *, allowed=None, what: str = "dtype") -> str:
    if name not in _STORAGE or (allowed is not None and name not in allowed):
        choices = ", ".join(allowed if allowed is not None else _STORAGE)
        raise CodecConfigError(f"unknown {what} {name!r}", hint=f"choose one of: {choices}")
    return name


def storage_dtype(name: str) -> np.dtype:
    """The numpy dtype that holds elements of type ``name`` on disk (little-endian)."""
    return np.dtype(_STORAGE[check_type(name)])


def float32_to_bfloat16(x: np.ndarray) -> np.ndarray:
    """Round float32 to bfloat16 bits (round to nearest, ties to even; NaN stays NaN)."""
    f = np.ascontiguousarray(x, dtype=np.float32)
    u = f.view(np.uint32)
    rounding = ((u >> 16) & 1) + np.uint32(0x7FFF)
    out = ((u + rounding) >> 16).astype(np.uint16)
    nan = np.isnan(f)
    if nan.any():
        out[nan] = ((u[nan] >> 16) | 0x40).astype(np.uint16)
    return out


def bfloat16_to_float32(bits: np.ndarray) -> np.ndarray:
    """Widen bfloat16 bits (uint16) to float32, exactly."""
    b = np.ascontiguousarray(bits, dtype=np.uint16)
    return (b.astype(np.uint32) << 16).view(np.float32)


def to_storage(x: np.ndarray, name: str) -> np.ndarray:
    """Convert ``x`` to the on-disk representation of type ``name``."""
    if name == "bfloat16":
        if x.dtype == np.uint16:  # already bfloat16 bits
            return np.ascontiguousarray(x)
        return float32_to_bfloat16(np.asarray(x, dtype=np.float32))
    if name == "bool":
        return np.ascontiguousarray(x, dtype=bool).view(np.uint8)
    return np.ascontiguousarray(x, dtype=storage_dtype(name))


def to_float32(x: np.ndarray, name: str) -> np.ndarray:
    """Widen stored values of type ``name`` to float32 (bfloat16 given as its uint16 bits, or
    already widened: values handed out by the reader are float32, see :func:`usable_block`)."""
    if name == "bfloat16" and np.asarray(x).dtype == np.uint16:
        return bfloat16_to_float32(x)
    return np.asarray(x, dtype=np.float32)


def usable_block(block: dict, spec) -> dict:
    """A decoded block as the API hands it out: ``bfloat16`` fields (uint16 bits on disk and in
    the codecs) widened exactly to float32 -- numpy has no bfloat16, and bit patterns in a float
    API are silently wrong numbers. Other fields are returned as stored."""
    types = {f.name: f.type for f in spec}
    if "bfloat16" not in types.values():
        return block
    return {
        k: bfloat16_to_float32(v) if types.get(k) == "bfloat16" and np.asarray(v).dtype == np.uint16 else v
        for k, v in block.items()
    }


def exactly_representable(x: np.ndarray, name: str) -> bool:
    """True when casting ``x`` to type ``name`` loses nothing (used to keep lossless paths honest)."""
    x = np.asarray(x)
    if name == "bfloat16":
        if x.dtype == np.uint16:
            return True
        f = np.asarray(x, dtype=np.float32)
        return bool(np.array_equal(bfloat16_to_float32(float32_to_bfloat16(f)), f, equal_nan=True)) and bool(
            np.array_equal(f, x, equal_nan=True)
        )
    stored = to_storage(x, name)
    if name == "bool":
        return bool(np.array_equal(stored.astype(bool), x))
    return bool(np.array_equal(stored, x, equal_nan=np.issubdtype(stored.dtype, np.floating)))


#: (exponent bits, significand bits) of the float types a label can come in or be stored as.
_FLOAT_BITS = {"float16": (5, 10), "bfloat16": (8, 7), "float32": (8, 23), "float64": (11, 52)}


def holds_exactly(*, src: str, dst: str) -> bool:
    """Can float type ``dst`` represent every value of type ``src`` exactly (a cast src -> dst ->
    src gives the same bits back)? The one rule for "is this narrowing?" (re-encoding and legacy
    import both ask it).

    Equal names always hold. Otherwise ``dst`` needs at least ``src``'s exponent bits (range) and
    significand bits (precision): float16 and bfloat16 fit float32 and float64, float32 fits
    float64; float64 does not fit float32, and float16 and bfloat16 do not fit each other (range
    vs precision). Names that are not float types (``none``, ``quantized``) hold only themselves.
    """
    if src == dst:
        return True
    if src not in _FLOAT_BITS or dst not in _FLOAT_BITS:
        return False
    (se, sm), (de, dm) = _FLOAT_BITS[src], _FLOAT_BITS[dst]
    return de >= se and dm >= sm
