"""Which of several equal logits top-k keeps is specified (smaller class index first), on the
CPU codec path and the relabeler's device path alike -- fp16/bf16 teachers produce ties often."""

import numpy as np
import torch
from hypothesis import given, settings, strategies as st

from lplabel.codecs import Field, Pipeline
from lplabel.codecs.topk import TopK, topk_of
from lplabel.relabel.core import _topk_canonical


def _reference(z, k):
    c = z.shape[1]
    return np.lexsort((np.broadcast_to(np.arange(c), z.shape), -z.astype(np.float64)), axis=1)[:, :k]


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 12), c=st.integers(2, 80), data=st.data())
def test_ties_resolved_by_class_index_everywhere(n, c, data):
    k = data.draw(st.integers(1, c - 1))
    seed = data.draw(st.integers(0, 2**32 - 1))
    z = np.random.default_rng(seed).integers(-2, 3, (n, c)).astype(np.float32)  # many ties
    ref = _reference(z, k)
    idx, vals = topk_of(z, k)
    np.testing.assert_array_equal(idx, ref)
    np.testing.assert_array_equal(vals, np.take_along_axis(z, ref, 1))
    dev = _topk_canonical(torch.from_numpy(z), k)
    np.testing.assert_array_equal(dev["indices"].numpy(), ref)
    stored = Pipeline([TopK(k, type="float32"), {"name": "bytes"}], (Field("logits", "float32", (c,)),))
    got = stored.decode(stored.encode({"logits": z}), n)
    np.testing.assert_array_equal(got["indices"], ref)


def test_requantizing_topk_input_breaks_ties_by_class_index():
    codec = TopK(2, type="float32", index_type="int32")
    spec = (Field("indices", "int64", (3,)), Field("values", "float32", (3,)))
    codec.resolve(spec)
    out = codec.encode({"indices": np.array([[9, 5, 1]]), "values": np.ones((1, 3), np.float32)}, spec)
    assert out["indices"].tolist() == [[1, 5]]
