"""The compiled ``sort`` by index (numba) gives exactly what the numpy reference gives.

Every default top-k chain sorts by index before its entries are coded, so the compiled loop must
put each entry where numpy's stable ``argsort`` puts it -- ties (equal indices) in entry order,
every index type, k above the pairwise-count limit -- or the stored bytes would change.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("numba")

import lplabel.codecs._compiled as _compiled  # noqa: E402
from lplabel.codecs import Field  # noqa: E402
from lplabel.codecs._sort_kernels import PAIRWISE_MAX  # noqa: E402
from lplabel.codecs.sort import Sort  # noqa: E402


def _both(block, spec):
    """(compiled, numpy) outputs of ``sort`` by index on the same block."""
    codec = Sort("index")
    assert _compiled.compiled("_sort_kernels") is not None
    fast = codec.encode(block, spec)
    saved = dict(_compiled._FOUND)
    _compiled._FOUND["_sort_kernels"] = None  # the path of an install without numba
    try:
        ref = codec.encode(block, spec)
    finally:
        _compiled._FOUND.clear()
        _compiled._FOUND.update(saved)
    return fast, ref


@pytest.mark.parametrize("itype", ["uint8", "int16", "uint16", "int32", "uint32", "int64"])
@pytest.mark.parametrize("k", [1, 3, 33, 100, PAIRWISE_MAX + 7])
def test_compiled_sort_by_index_is_the_reference(itype, k):
    rng = np.random.default_rng(k)
    n = 57
    hi = min(np.iinfo(itype).max, 5 * k + 3)
    idx = rng.integers(0, hi, (n, k)).astype(itype)
    idx[0] = idx[0, 0]  # one record of k equal indices: stability decides every position
    idx[1] = np.arange(k)[::-1] % (hi + 1)
    vals = rng.standard_normal((n, k)).astype(np.float16)
    vals[2, 0] = np.float16(np.nan)
    shift = rng.integers(0, 255, (n, k)).astype(np.uint8)
    spec = (
        Field("indices", itype, (k,)),
        Field("values", "float16", (k,)),
        Field("entry_shift", "uint8", (k,)),
        Field("tail", "float16", ()),
    )
    block = {"indices": idx, "values": vals, "entry_shift": shift, "tail": vals[:, 0].copy()}
    fast, ref = _both(block, spec)
    assert list(fast) == list(ref)
    for name in ref:
        assert fast[name].dtype == ref[name].dtype
        assert np.ascontiguousarray(fast[name]).tobytes() == np.ascontiguousarray(ref[name]).tobytes(), name
    assert (np.diff(fast["indices"].astype(np.int64), axis=1) >= 0).all()


def test_compiled_sort_of_an_empty_block_and_of_index_only_labels():
    spec = (Field("indices", "uint16", (4,)),)
    for n in (0, 5):
        block = {"indices": np.random.default_rng(n).permutation(20)[: 4 * n].reshape(n, 4).astype(np.uint16)}
        fast, ref = _both(block, spec)
        assert np.array_equal(fast["indices"], ref["indices"]) and fast["indices"].shape == (n, 4)


def test_scratch_starts_on_a_vector_boundary():
    """The compare loop's scratch starts on a 64-byte boundary whatever numpy hands out (unaligned
    int16 scratch ran the loop 2x slower), and is zeroed."""
    from lplabel.codecs._sort_kernels import aligned_zeros

    for n in (32, 64, 128, 256):
        for _ in range(8):
            a = aligned_zeros(n)
            assert a.ctypes.data % 64 == 0 and a.shape == (n,) and a.dtype == np.int16 and not a.any()
