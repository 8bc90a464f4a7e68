"""One-pass decode of the default lossless top-k layout, when numba is there.

The layout ``lplabel encode`` / ``quantize`` / the relabeler write for fp16 top-k labels is the
chain ``topk | [entryorder] | [classmap] | sort(index) | delta(indices, ascending) | zplanes``
(spec/FORMAT.md; 16-bit indices, float16 values, no tail; ``entryorder`` where LPQLD's order among
tied values is kept, i.e. imports of legacy files).
:meth:`Pipeline.decode <lplabel.codecs.pipeline.Pipeline.decode>` asks :func:`fused_decoder` once
per chain; for that chain it gets a decoder that takes zstd's byte planes and runs every
array->array step in one compiled pass per record (:mod:`._fused_kernels`), writing each entry
once into its final place. Decoding codec by codec did the same work in six passes over the chunk,
with an [n, k] array made by each (profile and figures: benchmarks/results/formats-2026-12-05c.md).

Nothing about the format changes: the codecs' own decode (numpy, or their compiled loops) is the
reference and what runs for every other chain, for a partial decode (``stop > 0``) and without
numba; the fused decode returns the same fields, dtypes and bits, and raises the same errors
(tests/test_entryorder_kernels.py checks all three paths against each other).
"""

from __future__ import annotations

import numpy as np

from ..errors import CodecError
from ._compiled import compiled
from .abc import Field

_INDEX_TYPES = ("uint16", "int16")
_NO_SHIFT = np.zeros(0, np.uint8)


def _kernels():
    """The compiled pass, or None without numba (then the chain decodes codec by codec)."""
    return compiled("_fused_kernels")


class FusedTopKPlanes:
    """Decoder of one chain (see the module doc); built by :func:`fused_decoder`."""

    def __init__(self, pipeline, k: int, index_type: str, classmap, tie_order: bool):
        self.pipeline = pipeline
        self.k = k
        self.tie_order = tie_order
        self.index_type = index_type
        self.index_dtype = np.dtype(index_type)
        self.signed = index_type == "int16"
        self.classmap = classmap
        # stored index bits -> decoded index bits, for every 16-bit pattern (the kernel looks up
        # without a branch and checks the largest pattern against ``classes`` once per record)
        self.table = np.arange(65536, dtype=np.uint16)
        self.classes = 65536
        if classmap is not None:
            self.classes = classmap.classes
            self.table[: classmap.classes] = classmap.order.astype(np.dtype(index_type)).view(np.uint16)
        self.zplanes = pipeline.array_bytes
        self.stored_spec = pipeline.stored_spec

    @staticmethod
    def ready() -> bool:
        """Is the compiled pass there (numba installed and working)? Asked on every chunk, so
        that hiding the kernels (tests, the benchmark's rows) takes effect at once."""
        return _kernels() is not None

    def decode(self, data, n: int, entry_order: bool = True) -> dict:
        """The chunk's ``indices`` and ``values`` [n, k], exactly as decoding codec by codec gives
        them (entries in their input order; with ``entry_order=False`` in class order, the
        ``entryorder`` step skipped and its plane not even decompressed), or the same
        :class:`CodecError`. Only when :meth:`ready`."""
        kern = _kernels()
        keep = self.tie_order and entry_order
        planes = self.zplanes.planes(data, self.stored_spec, n, fields=None if keep else 2)
        (ilo, ihi), (vlo, vhi) = planes[:2]
        shift = planes[2][0] if keep else _NO_SHIFT
        k = self.k
        idx = np.empty((n, k), self.index_dtype)
        val = np.empty((n, k), np.float16)
        if keep:
            key, cnt = kern.key_buffers(k)
            bad = kern.decode_topk_planes(
                ilo, ihi, vlo, vhi, shift, k, self.signed, self.table, self.classes, key, cnt,
                idx.reshape(-1).view(np.uint16), val.reshape(-1).view(np.uint16),
            )  # fmt: skip
        else:
            bad = kern.decode_topk_planes_unordered(
                ilo, ihi, vlo, vhi, k, self.signed, self.table, self.classes,
                idx.reshape(-1).view(np.uint16), val.reshape(-1).view(np.uint16),
            )  # fmt: skip
        if bad & kern.E_RANK:  # classmap decodes before entryorder: its error comes first
            raise CodecError(f"classmap: a stored rank lies outside 0..{self.classmap.classes - 1}")
        if bad & kern.E_PERM:
            raise CodecError("entryorder: corrupt chunk: the stored shifts do not give a permutation of the entries")
        return {"indices": idx, "values": val}


def fused_decoder(pipeline) -> FusedTopKPlanes | None:
    """A one-pass decoder for ``pipeline`` when it is the default lossless top-k chain (see the
    module doc), else None (decode codec by codec). It runs only where :meth:`~FusedTopKPlanes.ready`."""
    names = [c.name for c in pipeline.array_array]
    if names[:1] != ["topk"] or pipeline.bytes_bytes or pipeline.array_bytes.name != "zplanes":
        return None
    tie_order = names[1:2] == ["entryorder"]
    rest = pipeline.array_array[1 + tie_order :]
    classmap = None
    if rest and rest[0].name == "classmap":
        classmap, rest = rest[0], rest[1:]
    if [c.name for c in rest] != ["sort", "delta"] or rest[0].by != "index":
        return None
    if (rest[1].field, rest[1].order) != ("indices", "ascending"):
        return None
    topk = pipeline.array_array[0]
    k = topk.k
    if topk.tail != "none" or topk.type != "float16" or topk.index_type not in _INDEX_TYPES:
        return None
    if classmap is not None and topk.index_type == "int16" and classmap.classes > 32768:
        return None  # (cannot be written: int16 indices hold classes below 32768)
    if tie_order and k > 256:  # the rank counts pairs up to 256 (entryorder's kernels sort above)
        return None
    stored = (Field("indices", "uint16", (k,)), Field("values", "float16", (k,)))
    if tie_order:
        stored += (Field("entry_shift", "uint8", (k,)),)
    decoded = (Field("indices", topk.index_type, (k,)), Field("values", "float16", (k,)))
    if tuple(pipeline.stored_spec) != stored or tuple(pipeline.decoded_spec) != decoded:
        return None
    return FusedTopKPlanes(pipeline, k, topk.index_type, classmap, tie_order)
