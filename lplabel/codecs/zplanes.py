"""``zplanes``: byte planes, each its own zstd frame (array->bytes; replaces bytes + shuffle + zstd).

Configuration: ``{"level": -7..22}``.

Why: zstd entropy-codes a block's literals with one Huffman table. After ``bytes`` +
``shuffle`` a chunk holds byte planes with very different statistics side by side (the
near-uniform low bytes of logits, the few-valued high bytes, small index gaps), and one shared
table costs up to a bit per byte more than separate tables. Compressing each plane alone
reaches the planes' order-0 entropy (measured: −6 to −9 % on top-k labels).

Layout of one chunk of n records, with P planes::

    P x uint32 little-endian   compressed size of each plane's frame
    P zstd frames              frame p decompresses to plane p (content size in its header)

Planes, in order: for each field of the stored spec in spec order, for each byte b of its
storage element (``0 .. itemsize-1``, b = 0 the least significant, little-endian), the b-th
byte of each of the field's ``n * prod(shape)`` elements in C order (``bool`` as one byte,
``bfloat16`` as uint16 bits). P = sum of the fields' element sizes, so the reader knows it from
the spec. Each frame is a complete zstd frame (any zstd decodes it); no dictionary.
"""

from __future__ import annotations

import struct

import numpy as np
import zstandard

from ..dtypes import storage_dtype, to_storage
from ..errors import CodecConfigError, CodecError
from .abc import ArrayBytesCodec
from .registry import register_codec
from .zstd import _decompressor, bounded_decompress


_UINT = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


def join_planes(planes: list) -> np.ndarray:
    """The elements whose byte b is ``planes[b]`` (little-endian), as unsigned integers of
    ``len(planes)`` bytes: the highest plane widened, then shifted and or-ed with each lower one
    (whole-array integer arithmetic; ~3x faster than writing each plane into a strided view)."""
    u = planes[-1].astype(_UINT[len(planes)])
    for plane in planes[-2::-1]:
        u <<= 8
        u |= plane
    return u


@register_codec
class ZPlanes(ArrayBytesCodec):
    name = "zplanes"

    def __init__(self, level: int = 19):
        if not isinstance(level, int) or isinstance(level, bool) or not -7 <= level <= 22:
            raise CodecConfigError(f"zplanes: level must be an integer in -7..22, got {level!r}")
        self.level = level
        self._c = None
        self._layouts: dict = {}  # spec -> its planes' layout (see planes)

    def get_config(self):
        return {"level": self.level}

    def __getstate__(self):
        return {"level": self.level, "_c": None, "_layouts": {}}

    def encode(self, block, spec) -> bytes:
        if self._c is None:
            self._c = zstandard.ZstdCompressor(level=self.level, write_content_size=True, write_checksum=False)
        frames = []
        for f in spec:
            a = to_storage(np.asarray(block[f.name]), f.type)
            es = a.dtype.itemsize
            u = np.ascontiguousarray(a).reshape(-1).view(np.uint8).reshape(-1, es)
            for b in range(es):
                frames.append(self._c.compress(np.ascontiguousarray(u[:, b]).tobytes()))
        head = struct.pack(f"<{len(frames)}I", *(len(x) for x in frames))
        return head + b"".join(frames)

    def decode(self, data, spec, n: int) -> dict:
        out = {}
        for f, planes in zip(spec, self.planes(data, spec, n)):
            dt = storage_dtype(f.type)
            a = join_planes(planes).view(dt).reshape((n, *f.shape))
            out[f.name] = a.view(bool) if f.type == "bool" else a
        return out

    def planes(self, data, spec, n: int, fields: int | None = None) -> list:
        """The decompressed byte planes of a chunk, checked: per field of ``spec``, a list of its
        ``itemsize`` planes (uint8 arrays of ``n * items_per_record`` bytes, byte 0 first). A
        reader that rebuilds rows straight into its own arrays (the loader's fast path) starts
        here instead of from :meth:`decode`'s interleaved copy. ``fields``: decompress only the
        first ``fields`` fields' planes (a reader that drops the rest; the plane table is checked
        whole either way)."""
        buf = bytes(data) if not isinstance(data, bytes) else data
        lay = self._layouts.get(spec)
        if lay is None:  # per field: its element size, items per record (asked for every chunk: kept)
            lay = self._layouts[spec] = tuple((storage_dtype(f.type).itemsize, f.items_per_record) for f in spec)
        P = sum(es for es, _ in lay)
        if len(buf) < 4 * P:
            raise CodecError(f"zplanes: chunk of {len(buf)} bytes is shorter than its plane table ({4 * P} bytes)")
        sizes = struct.unpack_from(f"<{P}I", buf, 0)
        if 4 * P + sum(sizes) != len(buf):
            raise CodecError(f"zplanes: plane sizes add up to {4 * P + sum(sizes)} bytes, the chunk holds {len(buf)}")
        dec = _decompressor()
        out, pos, p = [], 4 * P, 0
        for es, items in lay[:fields]:
            m = n * items
            field = []
            for _ in range(es):
                plane = bounded_decompress(dec, buf[pos : pos + sizes[p]], m, f"zplanes: plane {p}")
                if len(plane) != m:
                    raise CodecError(
                        f"zplanes: plane {p} holds {len(plane)} bytes, the layout needs {m} for {n} records"
                    )
                field.append(np.frombuffer(plane, dtype=np.uint8))
                pos += sizes[p]
                p += 1
            out.append(field)
        return out
