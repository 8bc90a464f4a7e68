"""The compiled kernels' scratch arrays start on a 64-byte boundary (their vector loops ran 2x
slower off a 32-byte one), whatever numpy's allocator returns, and hold what they promise."""

from __future__ import annotations

import numpy as np
import pytest

from lplabel.codecs._scratch import ALIGN, aligned_full


@pytest.mark.parametrize("dtype", [np.int16, np.int32, np.int64])
def test_aligned_full_is_aligned_and_filled(dtype):
    keep = []  # allocate many, so some fall off the boundary if alignment were left to chance
    for n in (1, 31, 32, 33, 256, 1000):
        for _ in range(8):
            a = aligned_full(n, 7, dtype)
            keep.append(np.zeros(3, np.int8))
            assert a.ctypes.data % ALIGN == 0 and a.shape == (n,) and a.dtype == dtype
            assert (a == 7).all()


def test_kernel_scratch_is_aligned():
    pytest.importorskip("numba")
    from lplabel.codecs._entryorder_kernels import key_buffers
    from lplabel.codecs._sort_kernels import aligned_zeros

    for k in (1, 10, 50, 100, 256):
        for bits in (np.zeros(0, np.uint16), np.zeros(0, np.uint32)):
            key, cnt = key_buffers(bits, k)
            dt = np.int16 if bits.dtype.itemsize == 2 else np.int32
            assert key.dtype == cnt.dtype == dt and key.shape == cnt.shape == ((k + 31) // 32 * 32,)
            assert key.ctypes.data % ALIGN == 0 and cnt.ctypes.data % ALIGN == 0
            assert (key == np.iinfo(dt).min).all() and (cnt == 0).all()
        z = aligned_zeros((k + 31) // 32 * 32)
        assert z.dtype == np.int16 and z.ctypes.data % ALIGN == 0 and not z.any()
