"""``quantize``: per-record affine integer quantization of the label values (array->array, lossy).

Configuration: ``{"bits": 8 | 4, "scale_type": "float16" | "float32"}``.

The quantized field is ``values`` (top-k blocks) or ``logits`` (dense blocks); every other
field (``indices``, ``tail``...) passes through unchanged. The output replaces that field by
unsigned integer *codes* (field type ``uint8``, same shape; with ``bits = 4`` each code is in
0..15 and a ``bitpack`` codec should follow to store two codes per byte) and appends two
per-record fields ``scale`` and ``offset`` of type ``scale_type``, in that order.

Exact arithmetic, per record r with entries x_0..x_{m-1} (the stored values widened exactly to
float32, then to float64), L = 2**bits - 1:

1. ``lo = min_j x_j``, ``hi = max_j x_j``; a non-finite value raises ``CodecError``.
2. ``offset = round_down(lo)``: the largest ``scale_type`` number <= lo (exact for float32).
3. ``scale = round_up((hi - offset) / L)``: the smallest ``scale_type`` number >= the quotient
   (computed in float64). If ``hi == offset`` the scale is 0.
4. ``code_j = clip(rint((x_j - offset) / scale), 0, L)`` in float64 with the *stored* offset and
   scale (``rint`` rounds half to even; a zero scale gives code 0).

Dequantization (what decoding returns, as float32; the scale/offset fields are dropped)::

    x'_j = float32(offset) + float32(code_j) * float32(scale)      # float32 arithmetic, no FMA

Error bound: since ``offset <= lo`` and ``offset + L*scale >= hi``, no code is clipped, so
``|x_j - x'_j| <= scale/2`` up to float32 rounding of the two float32 operations, i.e.
``|x_j - x'_j| <= scale/2 + 2**-23 * (|offset| + L*scale)``. With a float16 scale_type the
scale is at most (1 + 2**-10)·(hi − offset)/L and ``lo − offset`` is below one float16 ulp of lo.
The quantizer is monotone: codes order entries as their values do (ties can appear).

bits = 4 combined with a ``logsumexp`` tail summary is refused (``CodecChainError``): that tail
exists to restore the dropped probability mass exactly at T=1, which an error of up to
(hi − lo)/30 in every kept logit defeats. A ``min`` tail (an approximate floor) is allowed.
"""

from __future__ import annotations

import numpy as np

from ..dtypes import FLOAT_TYPES, to_float32
from ..errors import CodecChainError, CodecConfigError, CodecError
from .abc import ArrayArrayCodec, Field, indices_only, no_values, spec_field
from .registry import register_codec

SCALE_TYPES = ("float16", "float32")


def _round_down(x: np.ndarray, type_: str) -> np.ndarray:
    """Largest number of ``type_`` <= x (x float64), as float64."""
    dt = np.float16 if type_ == "float16" else np.float32
    with np.errstate(over="ignore"):  # out of range -> inf, reported by the caller
        y = x.astype(dt)
    bad = y.astype(np.float64) > x
    if bad.any():
        y[bad] = np.nextafter(y[bad], dt(-np.inf))
    return y.astype(np.float64)


def _round_up(x: np.ndarray, type_: str) -> np.ndarray:
    dt = np.float16 if type_ == "float16" else np.float32
    with np.errstate(over="ignore"):
        y = x.astype(dt)
    bad = y.astype(np.float64) < x
    if bad.any():
        y[bad] = np.nextafter(y[bad], dt(np.inf))
    return y.astype(np.float64)


def quantize_rows(x: np.ndarray, bits: int, scale_type: str = "float16"):
    """Codes (uint8 [n, m]), scale and offset (float64 [n], exactly representable in scale_type)."""
    x = np.asarray(x, dtype=np.float64)
    if x.size and not np.isfinite(x).all():
        raise CodecError("quantize: values must be finite")
    L = (1 << bits) - 1
    n = x.shape[0]
    if x.shape[1] == 0:
        return np.zeros(x.shape, np.uint8), np.zeros(n), np.zeros(n)
    lo, hi = x.min(axis=1), x.max(axis=1)
    offset = _round_down(lo, scale_type)
    if not np.isfinite(offset).all():
        raise CodecError(
            f"quantize: values out of the range of scale_type {scale_type}", hint="use scale_type 'float32'"
        )
    scale = _round_up((hi - offset) / L, scale_type)
    if not np.isfinite(scale).all():
        raise CodecError(f"quantize: value range too wide for scale_type {scale_type}", hint="use scale_type 'float32'")
    safe = np.where(scale > 0, scale, 1.0)
    q = np.rint((x - offset[:, None]) / safe[:, None])
    q = np.where(scale[:, None] > 0, q, 0.0)
    return np.clip(q, 0, L).astype(np.uint8), scale, offset


def dequantize_rows(codes: np.ndarray, scale: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """float32 [n, m]: offset + code * scale in float32 arithmetic (see the module doc)."""
    s = np.asarray(scale, dtype=np.float32)[:, None]
    o = np.asarray(offset, dtype=np.float32)[:, None]
    out = np.asarray(codes).astype(np.float32)
    out *= s
    out += o
    return out


@register_codec
class Quantize(ArrayArrayCodec):
    name = "quantize"
    lossy = True
    #: decode dequantizes; re-quantizing those floats need not give the same codes and scales
    reencode_exact = False

    def __init__(self, bits: int = 8, scale_type: str = "float16"):
        if bits not in (4, 8) or isinstance(bits, bool):
            raise CodecConfigError(
                f"quantize: bits must be 8 or 4, got {bits!r}",
                hint="for float16/bfloat16 values use the 'type' of topk/dense instead",
            )
        if scale_type not in SCALE_TYPES:
            raise CodecConfigError(f"quantize: scale_type must be one of {SCALE_TYPES}, got {scale_type!r}")
        self.bits = bits
        self.scale_type = scale_type

    def get_config(self):
        return {"bits": self.bits, "scale_type": self.scale_type}

    @staticmethod
    def _target(spec):
        for name in ("values", "logits"):
            f = spec_field(spec, name)
            if f is not None:
                return f
        return None

    def resolve(self, spec):
        f = self._target(spec)
        if f is None and indices_only(spec):
            raise no_values("'quantize' needs values to quantize", hint="drop 'quantize' from the chain")
        if f is None:
            raise CodecChainError(
                f"'quantize' needs a 'values' or 'logits' field, got {[g.name for g in spec]}",
                hint="put 'quantize' after 'topk' or 'dense'",
            )
        if f.type not in FLOAT_TYPES:
            raise CodecChainError(
                f"'quantize': field {f.name!r} has type {f.type}, expected a float type",
                hint="quantize once, before any 'delta' or 'bitpack' of the values",
            )
        for name in ("scale", "offset"):
            if spec_field(spec, name) is not None:
                raise CodecChainError(f"'quantize': the block already has a {name!r} field (quantized twice?)")
        out = [Field(g.name, "uint8", g.shape) if g.name == f.name else g for g in spec]
        out += [Field("scale", self.scale_type, ()), Field("offset", self.scale_type, ())]
        return tuple(out)

    def check_chain(self, codecs) -> None:
        if self.bits == 4:
            for c in codecs:
                if c.name == "topk" and c.tail == "logsumexp":
                    raise CodecChainError(
                        "int4 values with a 'logsumexp' tail are refused: the tail restores the dropped mass "
                        "exactly at T=1, which int4 errors in the kept logits defeat",
                        hint="use tail 'min' or 'none' with int4, or int8 values with a logsumexp tail",
                    )

    def encode(self, block, spec):
        f = self._target(spec)
        x = to_float32(np.asarray(block[f.name]), f.type)
        n = x.shape[0]
        q, scale, offset = quantize_rows(x.reshape(n, -1), self.bits, self.scale_type)
        out = dict(block)
        out[f.name] = q.reshape(x.shape)
        dt = np.float16 if self.scale_type == "float16" else np.float32
        out["scale"] = scale.astype(dt)
        out["offset"] = offset.astype(dt)
        return out

    def decode(self, block, spec):
        f = self._target(spec)
        codes = np.asarray(block[f.name])
        n = codes.shape[0]
        vals = dequantize_rows(codes.reshape(n, -1), block["scale"], block["offset"]).reshape(codes.shape)
        out = {k: v for k, v in block.items() if k not in ("scale", "offset")}
        out[f.name] = vals
        return out

    def decoded_spec(self, in_spec, out_spec):
        f = self._target(in_spec)
        return tuple(
            Field(g.name, "float32", g.shape) if g.name == f.name else g
            for g in out_spec
            if g.name not in ("scale", "offset")
        )
