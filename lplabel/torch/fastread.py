"""Label rows of stored steps, straight into the arrays a loader item ships.

:class:`LabelRows` copies rows ``a..b`` of one chunk of a label column into caller-given arrays
(one per stored field), decoding each chunk once: the chunk is read and CRC-checked once
(:meth:`LabelStore.read_chunk_bytes`), its bytes->bytes codecs are undone once and the result
is kept (the last two chunks per thread), so the steps of a chunk that a group of steps needs
cost one decode.

For the chains lplabel writes (``dense``/``topk`` | ``bytes`` | ``shuffle`` | ``zstd``, any zstd
dictionary) the byte shuffle is not undone on the whole chunk: each field's rows are rebuilt
from the byte planes directly into the destination (for 2-byte elements ``lo | hi << 8`` in
uint16 arithmetic, about 3x faster than the codec's plane-by-plane strided copy), and the
``bytes`` layout is never materialised. The same holds for ``dense``/``topk`` | ``zplanes`` (what
``lplabel encode`` writes for dense labels, and for top-k labels whose chain keeps the stored
order): its byte planes are decompressed once per chunk and each field's rows are rebuilt from
its own planes. Every other chain (quantize, delta, bitpack, entryorder, ...) is decoded by its
own :class:`~lplabel.codecs.Pipeline` and the rows are copied -- with ``entry_order=False``: a
record's top-k entries come in class order, not in the order an imported legacy file listed them
(``entryorder``'s decode, most of the decode time of such a chain, is skipped; the pairs are the
same, and a soft label is the set of its pairs).

Destinations have the loader's transit types: ``indices`` int32 (whatever the stored index
type), ``bool`` as bool, ``bfloat16`` as its uint16 bits, everything else as decoded.
"""

from __future__ import annotations

import threading

import numpy as np

from ..codecs.abc import ArrayArrayCodec
from ..codecs.bytes import Bytes
from ..codecs.shuffle import Shuffle
from ..codecs.zplanes import ZPlanes
from ..dtypes import storage_dtype
from ..errors import CodecError, LplabelError
from ..store import layout as L

_UINT = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


def _identity_decode(codec) -> bool:
    """True for array->array codecs whose decode returns the stored block unchanged (dense, topk)."""
    t = type(codec)
    return t.decode is ArrayArrayCodec.decode and t.decoded_spec is ArrayArrayCodec.decoded_spec


def _unshuffle_into(planes, e0: int, e1: int, dest_u: np.ndarray) -> None:
    """``dest_u`` (uint of the shuffle's element size, [e1 - e0]) = elements e0..e1 rebuilt from
    the byte ``planes`` (plane j holds byte j of every element, little-endian)."""
    es = len(planes)
    np.copyto(dest_u, planes[es - 1][e0:e1], casting="unsafe")
    for j in range(es - 2, -1, -1):
        np.left_shift(dest_u, 8, out=dest_u)
        np.bitwise_or(dest_u, planes[j][e0:e1], out=dest_u, casting="unsafe")


class LabelRows:
    """Reads stored rows of one column into destination arrays (see the module doc)."""

    def __init__(self, store, column: str = "label"):
        self.store = store
        self.column = column
        pipe = store.pipelines[column]
        self.pipeline = pipe
        cs = store.tables[L.CHUNK_STEP_START]
        rs = store.record_start
        self._chunk_records = (rs[cs[1:]] - rs[cs[:-1]]).astype(np.int64).tolist() if len(cs) > 1 else []
        self._local = threading.local()
        stored = pipe.stored_spec
        identity = all(_identity_decode(c) for c in pipe.array_array) and tuple(pipe.decoded_spec) == tuple(stored)
        # dense/topk | zplanes: each field's byte planes, decompressed once per chunk
        self.zplanes = identity and isinstance(pipe.array_bytes, ZPlanes) and not pipe.bytes_bytes
        fast = isinstance(pipe.array_bytes, Bytes) and identity
        bb = list(pipe.bytes_bytes)
        shuffle = bb[0].elementsize if fast and bb and isinstance(bb[0], Shuffle) else None
        self._rest = bb[1:] if shuffle is not None else bb
        if shuffle == 1:
            shuffle = None
        # the fused path needs every field's row to hold whole shuffle elements
        if shuffle is not None and (
            shuffle not in _UINT or any((f.items_per_record * storage_dtype(f.type).itemsize) % shuffle for f in stored)
        ):
            fast = False
        self.fast = fast
        self.shuffle = shuffle if fast else None
        # (name, stored numpy dtype, items per record, per-record shape)
        self._stored = [(f.name, storage_dtype(f.type), f.items_per_record, f.shape) for f in stored]
        self.fields = self._transit_types()

    def __getstate__(self):
        d = self.__dict__.copy()
        d.pop("_local", None)  # thread-local chunk caches stay in their process
        return d

    def __setstate__(self, d):
        self.__dict__.update(d)
        self._local = threading.local()

    # -- what the destinations hold ------------------------------------------------------------
    def _transit_types(self) -> dict:
        """name -> (numpy dtype, per-record shape, stored type name) of the destination arrays."""
        out = {}
        if self.fast or self.zplanes:
            for f in self.pipeline.stored_spec:
                dt = storage_dtype(f.type)
                if f.name == "indices":
                    dt = np.dtype(np.int32)
                elif f.type == "bool":
                    dt = np.dtype(bool)
                out[f.name] = (dt, f.shape, f.type)
            return out
        types = {f.name: f for f in self.pipeline.decoded_spec}
        probe = None
        if self._chunk_records:
            probe = self.store.decode_chunk(self.column, 0, entry_order=False)
        for name, f in types.items():
            if probe is not None and name in probe:
                dt = np.asarray(probe[name]).dtype
                shape = tuple(np.asarray(probe[name]).shape[1:])
            else:
                dt = np.dtype(bool) if f.type == "bool" else storage_dtype(f.type)
                shape = f.shape
            if name == "indices":
                dt = np.dtype(np.int32)
            out[name] = (dt, shape, f.type)
        return out

    # -- chunks ----------------------------------------------------------------------------------
    def _decoded(self, chunk: int):
        """The chunk after its bytes->bytes codecs (fast path: the still-shuffled byte planes),
        or the decoded block (other chains); the last two per thread are kept."""
        loc = self._local
        cache = getattr(loc, "cache", None)
        if cache is None:
            cache = loc.cache = {}
        hit = cache.get(chunk)
        if hit is not None:
            return hit
        if self.zplanes:
            data = self.store.read_chunk_bytes(self.column, chunk)
            try:
                hit = (
                    None,
                    self.pipeline.array_bytes.planes(data, self.pipeline.stored_spec, self._chunk_records[chunk]),
                )
            except LplabelError as e:
                raise CodecError(
                    e.message, path=self.store.path, part=self.store._part(self.column, chunk), hint=e.hint
                ) from None
        elif self.fast:
            data = self.store.read_chunk_bytes(self.column, chunk)
            try:
                for c in reversed(self._rest):
                    data = c.decode(data)
            except LplabelError as e:
                raise CodecError(
                    e.message, path=self.store.path, part=self.store._part(self.column, chunk), hint=e.hint
                ) from None
            raw = np.frombuffer(data, dtype=np.uint8)
            n = self._chunk_records[chunk]
            need = n * sum(dt.itemsize * k for _, dt, k, _ in self._stored)
            if raw.size != need:
                raise CodecError(
                    f"'bytes' codec: chunk holds {raw.size} bytes, the header's layout needs {need} for {n} records",
                    path=self.store.path,
                    part=self.store._part(self.column, chunk),
                )
            if self.shuffle is not None:
                m = raw.size // self.shuffle
                hit = (raw, [raw[j * m : (j + 1) * m] for j in range(self.shuffle)])
            else:
                hit = (raw, None)
        else:  # the pairs, not their order: training needs no tie order (spec §3.19)
            hit = self.store.decode_chunk(self.column, chunk, entry_order=False)
        if len(cache) >= 2:
            cache.pop(next(iter(cache)))
        cache[chunk] = hit
        return hit

    def read(self, chunk: int, a: int, b: int, dests: dict) -> None:
        """Copy rows ``a..b`` (chunk-relative) of every field into ``dests[name]`` ([b - a, ...])."""
        hit = self._decoded(chunk)
        if self.zplanes:
            self._read_planes(hit[1], a, b, dests)
            return
        if not self.fast:
            for name, dst in dests.items():
                src = hit[name][a:b]
                if dst.dtype == bool and src.dtype != bool:
                    src = src.view(bool)
                np.copyto(dst, src, casting="unsafe")
            return
        raw, planes = hit
        n = self._chunk_records[chunk]
        pos = 0
        es = self.shuffle
        for name, sdt, k, shape in self._stored:
            rb = k * sdt.itemsize
            dst = dests[name]
            if planes is None:
                src = raw[pos + a * rb : pos + b * rb].view(sdt).reshape((b - a, *shape))
                if dst.dtype == bool:
                    src = src.view(bool)
                np.copyto(dst, src, casting="unsafe")
            else:
                e0, e1 = (pos + a * rb) // es, (pos + b * rb) // es
                flat = dst.reshape(-1) if dst.flags.c_contiguous else None
                if flat is not None and flat.dtype.itemsize == sdt.itemsize:
                    # the same bytes (stored type, bool, or int32 indices stored as int32/uint32):
                    # rebuild the stored elements in place
                    _unshuffle_into(planes, e0, e1, flat.view(np.uint8).view(_UINT[es]))
                elif (
                    flat is not None
                    and sdt.kind == "u"
                    and sdt.itemsize == es
                    and dst.dtype.kind == "i"
                    and dst.dtype.itemsize > es
                ):
                    # unsigned stored indices widened: the arithmetic fits the wider type
                    _unshuffle_into(planes, e0, e1, flat)
                else:
                    tmp = np.empty((e1 - e0) * es, dtype=np.uint8)
                    _unshuffle_into(planes, e0, e1, tmp.view(_UINT[es]))
                    np.copyto(dst, tmp.view(sdt).reshape(dst.shape), casting="unsafe")
            pos += n * rb

    def _read_planes(self, field_planes: list, a: int, b: int, dests: dict) -> None:
        """The zplanes fast path: rows a..b of each field rebuilt from that field's own planes."""
        for (name, sdt, k, shape), planes in zip(self._stored, field_planes):
            dst = dests[name]
            e0, e1 = a * k, b * k
            es = sdt.itemsize
            flat = dst.reshape(-1) if dst.flags.c_contiguous else None
            if es == 1:
                src = planes[0][e0:e1].reshape((b - a, *shape))
                np.copyto(dst, src.view(bool) if dst.dtype == bool else src.view(sdt), casting="unsafe")
            elif flat is not None and flat.dtype.itemsize == es:
                _unshuffle_into(planes, e0, e1, flat.view(np.uint8).view(_UINT[es]))
            elif flat is not None and sdt.kind == "u" and dst.dtype.kind == "i" and dst.dtype.itemsize > es:
                _unshuffle_into(planes, e0, e1, flat)  # unsigned stored indices widened (int32)
            else:
                tmp = np.empty((e1 - e0) * es, dtype=np.uint8)
                _unshuffle_into(planes, e0, e1, tmp.view(_UINT[es]))
                np.copyto(dst, tmp.view(sdt).reshape(dst.shape), casting="unsafe")
