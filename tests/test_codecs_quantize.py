"""int8/int4 quantization: the documented arithmetic and error bounds, through the pipeline."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from lplabel.codecs import Field, Pipeline, get_codec, label_chain
from lplabel.codecs.quantize import Quantize, dequantize_rows, quantize_rows
from lplabel.errors import CodecChainError, CodecConfigError, CodecError

FAST = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
finite = st.floats(-1000, 1000, allow_nan=False, allow_infinity=False, width=32)


def bound(x, scale, offset, bits):
    L = (1 << bits) - 1
    return scale[:, None] / 2 + 2.0**-23 * (np.abs(offset)[:, None] + L * scale[:, None]) + 1e-30


@pytest.mark.parametrize("bits", [8, 4])
@pytest.mark.parametrize("scale_type", ["float16", "float32"])
@FAST
@given(x=hnp.arrays(np.float32, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=12), elements=finite))
def test_error_bound(bits, scale_type, x):
    q, scale, offset = quantize_rows(x, bits, scale_type)
    assert q.dtype == np.uint8 and q.max() <= (1 << bits) - 1
    dt = np.float16 if scale_type == "float16" else np.float32
    assert np.array_equal(scale.astype(dt).astype(np.float64), scale)  # exactly representable
    assert np.array_equal(offset.astype(dt).astype(np.float64), offset)
    assert np.all(offset <= x.min(axis=1))
    assert np.all(offset + ((1 << bits) - 1) * scale >= x.max(axis=1) - 1e-9 * np.abs(x).max(axis=1))
    xd = dequantize_rows(q, scale, offset)
    err = np.abs(xd.astype(np.float64) - x.astype(np.float64))
    assert np.all(err <= bound(x, scale, offset, bits))


def test_exact_arithmetic_example():
    x = np.array([[-10.0, -9.5, -8.5, 54.0, 245.0]], np.float32)
    q, s, o = quantize_rows(x, 8, "float32")
    assert o[0] == -10.0 and s[0] == 1.0
    assert q.tolist() == [[0, 0, 2, 64, 255]]  # rint: half to even (0.5 -> 0, 1.5 -> 2)
    xd = dequantize_rows(q, s, o)
    assert xd.tolist() == [[-10.0, -10.0, -8.0, 54.0, 245.0]]
    # a float32 quotient rounds *up* to the scale type, so the top value is never clipped
    q2, s2, o2 = quantize_rows(np.array([[0.0, 2.55]], np.float32), 8, "float16")
    assert s2[0] >= np.float64(np.float32(2.55)) / 255 and q2.tolist() == [[0, 255]]
    q4, s4, o4 = quantize_rows(np.array([[1.0, 1.0]], np.float32), 4, "float16")
    assert q4.tolist() == [[0, 0]] and s4[0] == 0.0 and o4[0] == 1.0  # constant row: zero scale


def test_monotone_and_nonfinite():
    x = np.sort(np.random.default_rng(0).normal(0, 3, (5, 30)).astype(np.float32), axis=1)
    q, _, _ = quantize_rows(x, 4)
    assert np.all(np.diff(q.astype(int), axis=1) >= 0)
    with pytest.raises(CodecError):
        quantize_rows(np.array([[1.0, np.nan]], np.float32), 8)
    with pytest.raises(CodecError, match="scale_type"):
        quantize_rows(np.array([[-1e6, 1e6]], np.float32), 8, "float16")


@pytest.mark.parametrize("values,bits", [("int8", 8), ("int4", 4)])
@pytest.mark.parametrize("k", [None, 6, 7])
def test_pipeline_decodes_to_float32_within_bound(values, bits, k):
    rng = np.random.default_rng(2)
    z = rng.normal(2, 3, (20, 40)).astype(np.float32)
    spec = (Field("logits", "float32", (40,)),)
    p = Pipeline(label_chain(k=k, values=values, index_coding="value-delta" if k else "none"), spec)
    names = [f.name for f in p.decoded_spec]
    assert "scale" not in names and "offset" not in names
    out = p.decode(p.encode({"logits": z}), 20)
    key = "logits" if k is None else "values"
    assert out[key].dtype == np.float32
    if k is None:
        ref = z.astype(np.float16).astype(np.float64)
        err = np.abs(out[key] - ref)
    else:
        ref_i = np.argsort(-z, axis=1, kind="stable")[:, :k]
        assert all(set(a) == set(b) for a, b in zip(ref_i.tolist(), out["indices"].tolist()))
        ref = np.take_along_axis(z, out["indices"].astype(int), 1).astype(np.float16).astype(np.float64)
        err = np.abs(out[key] - ref)
    rng_ = ref.max(axis=1) - ref.min(axis=1)
    # documented bound: scale/2 (+ rounding), scale <= (1+2^-10) (hi - offset)/L, offset within an fp16 ulp
    L = (1 << bits) - 1
    assert np.all(err <= ((rng_ + 0.02 * np.abs(ref).max(axis=1)) * (1 + 2**-10) / L / 2 + 1e-3)[:, None])


def test_int4_logsumexp_refused_min_allowed():
    spec = (Field("logits", "float32", (40,)),)
    with pytest.raises(CodecChainError, match="int4"):
        Pipeline(label_chain(k=5, values="int4", tail="logsumexp"), spec)
    Pipeline(label_chain(k=5, values="int4", tail="min"), spec)
    Pipeline(label_chain(k=5, values="int8", tail="logsumexp"), spec)


def test_config_validation():
    with pytest.raises(CodecConfigError):
        Quantize(bits=2)
    with pytest.raises(CodecConfigError):
        Quantize(bits=8, scale_type="bfloat16")
    with pytest.raises(CodecConfigError):
        get_codec({"name": "quantize", "configuration": {"bits": 8, "nope": 1}})
