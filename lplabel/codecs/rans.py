"""``rans``: context-modelled rANS coding of top-k labels (array->bytes, lossless).

Configuration::

    {"classes": C, "k": K, "values": true | false, "model": "<base64>"[, "order": true]}

Why: after a learnt class order (:mod:`.classmap`) and ``sort`` by index, byte-wise zstd codes a
record's class set at the entropy of a per-class membership probability, and the high byte of
each fp16 logit at its order-0 entropy. Both have structure zstd cannot use: whether class c is
among a record's top k depends strongly on whether its neighbour c-1 in the learnt order is
(similar classes come together), and a logit's high byte depends on its neighbour's. Coding each
decision with a probability chosen by that context, with an arithmetic (rANS) coder, takes
LPQLD's k = 100 content from 2.40x to 2.52x smaller than LPQLD's own files, losslessly, decoding
at about 1.1 GB/s of dense-equivalent fp16 labels per core (``planes``: 3.9 GB/s; measured in
``benchmarks/results/codecs-floor-*.md``). The loops are compiled (numba, the ``rans`` extra:
``pip install 'lplabel[rans]'``). Values of mixed sign in one record cost more: the
order-preserving code puts negative and positive logits at least 128 high-byte steps apart, so the
positive ones are escaped (8 extra bits each; teacher top-k logits are rarely negative).

Input block: ``indices`` [k] (integers, class ranks, increasing and distinct within a record:
put ``sort`` by index before it) and optionally ``values`` [k] ``float16`` (absent for
``topk`` type ``none``). Nothing else (no tail, no quantization scales).

Model (``model``: base64 of one zstd frame of little-endian uint16, in this order):
``p1`` [C, 2] probability (in 1/4096) that class position c is stored given that position c-1
is (column 1) or is not (column 0; position 0 uses column 0), each 1..4095; then, with values,
``base`` [256] and ``high`` [17, 64] frequency tables (each row sums to 4096, every entry >= 1).

Coding (``spec/FORMAT.md`` has the exact arithmetic and order). Records go in groups of four,
record ``4g + q`` in *lane* q, each lane with its own rANS state on one shared word stream, the
lanes' decisions interleaved (a record's decisions form one dependency chain; four independent
chains decode about twice as fast). Per record:

1. membership, two positions per decision: for c = 0, 2, 4, ... until k classes are found, one
   4-symbol decision ``2 * b0 + b1`` (b0: c is stored, b1: c + 1 is stored) whose frequencies are
   the products of the two binary ``p1`` probabilities (:func:`pair_table`; the same Markov model,
   half the decisions);
2. with values, each value's fp16 bits u map to the order-preserving code
   ``m = u | 0x8000`` (sign clear) or ``~u & 0xFFFF`` (sign set); ``base`` = the smallest high
   byte ``m >> 8`` of the record, coded with ``base``; then for each entry in class order
   ``d = (m >> 8) - base`` coded with row ``ctx`` of ``high`` (ctx = 16 for the first entry,
   else min(previous d, 15)); d >= 63 codes symbol 63 then d - 63 uniformly (frequency 16);
3. the low bytes ``m & 255`` are not entropy coded (they are uniformly random in teacher
   logits); they follow the rANS words as raw bytes.

Chunk layout::

    uint32 LE     W, the number of rANS words
    W x uint16 LE the words, in decoding order (the first eight hold the four lanes' initial
                  states, each as its high then its low 16 bits)
    n*k bytes     the low bytes, record by record in class order (values only)
    [entry order] with ``order: true`` (n > 0): the :mod:`.entryorder` codec's ``entry_shift``
                  field -- the order of legacy files' tied entries, which a class set cannot
                  carry: mode byte 0 + the order within each run of equal values as Lehmer
                  digits (value-sorted input), or mode byte 1 + one zstd frame of the field
                  (:func:`encode_order`)

The decoder checks that every lane starts in [2^16, 2^32) and ends in the encoder's initial state
(2^16) having read exactly W words. That catches damage to the coded decisions (membership, high
bytes); it cannot see damage to escape payloads (8 raw bits each) or to the raw low bytes. The
store's per-chunk CRC-32, checked before any decoding, is what protects every byte.
"""

from __future__ import annotations

import base64
import importlib
import struct

import numpy as np
import zstandard

from ..dtypes import storage_dtype
from ..errors import CodecChainError, CodecConfigError, CodecError, CodecUnavailableError
from .abc import ArrayBytesCodec, Field, spec_field
from .registry import register_codec

PREC = 12
M = 1 << PREC
ESCAPE = 63
HIGH_CONTEXTS = 17
HIGH_SYMBOLS = 64
#: the field of the ``entryorder`` codec that ``order: true`` carries (see :mod:`.entryorder`)
ORDER_FIELD = "entry_shift"
INDEX_TYPES = ("uint8", "uint16", "uint32", "uint64", "int16", "int32", "int64")


def _kernels():
    """The compiled loops, or a named error that says how to get them."""
    try:
        return importlib.import_module(f"{__package__}._rans_kernels")
    except Exception as e:  # numba missing or broken (ImportError, or numba's own errors)
        raise CodecUnavailableError(
            f"codec 'rans' needs numba, which cannot be used here ({type(e).__name__}: {e})",
            hint="pip install 'lplabel[rans]' (or: pip install numba)",
        ) from None


def warm_up() -> None:
    """Compile (or load from numba's cache) the coder now, e.g. before timing it or before forking
    DataLoader workers, instead of on the first chunk."""
    codec = Rans.flat(4, 2)
    spec = (Field("indices", "uint16", (2,)), Field("values", "float16", (2,)))
    block = {"indices": np.array([[0, 3]], np.uint16), "values": np.array([[1.0, -2.0]], np.float16)}
    codec.decode(codec.encode(block, spec), spec, 1)


def monotone(u16: np.ndarray) -> np.ndarray:
    """fp16 bit patterns -> unsigned codes in the order of the values they encode."""
    u = np.asarray(u16, dtype=np.uint16)
    return np.where(u & 0x8000, ~u, u | 0x8000).astype(np.uint16)


def unmonotone(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.uint16)
    return np.where(m & 0x8000, m & 0x7FFF, ~m).astype(np.uint16)


# -- the entry order of `order: true` (the entryorder codec's field) -------------------------------------


def _tie_runs(values16: np.ndarray):
    """Per record (row) of fp16 values (or their uint16 bits), the run start of every tied entry
    (-1 for the others) and every entry's run length, int64 [n, k] each (see
    :func:`~lplabel.codecs._rans_kernels.tie_runs`; the same starts and lengths as
    :func:`~lplabel.codecs.entryorder.run_starts` / ``run_lengths`` give tied entries: tested)."""
    m = monotone(np.ascontiguousarray(values16).view(np.uint16))
    start = np.empty(m.shape, np.int64)
    length = np.empty(m.shape, np.int64)
    if m.size:
        _kernels().tie_runs(m, start, length)
    return start, length


def encode_order(values16: np.ndarray, shift: np.ndarray) -> bytes:
    """The chunk's last part for ``order: true``: only what the values do not determine.

    Mode 0 (one byte 0, then bits): when every entry's shift is its rank within its run of equal
    values (input sorted by decreasing value, as legacy top-k files are), only the order within
    each run of m >= 2 tied entries is stored: for each record, each such run in decreasing value,
    its entries in class order j = 0 .. m-2, the Lehmer digit ``#{i > j: shift_i < shift_j}`` in
    ceil(log2(m - j)) bits, least significant bit first, packed LSB-first into bytes (the last
    byte zero-padded). Mode 1 (one byte 1, then one zstd frame): the whole field, for any other
    input order.
    """
    kern = _kernels()
    start, length = _tie_runs(values16)
    s = np.ascontiguousarray(shift)
    n, k = s.shape
    if not kern.shifts_rank_runs(start, length, s):
        return b"\x01" + zstandard.ZstdCompressor(level=19, write_content_size=True).compress(shift.tobytes())
    out = np.zeros(2 * n * k + 1, np.uint8)  # at most 16 bits a digit
    pos = kern.encode_order_digits(start, length, s, out)
    return b"\x00" + out[: (pos + 7) // 8].tobytes()


def decode_order(data: bytes, values16: np.ndarray, dtype, n: int, k: int) -> np.ndarray:
    """Inverse of :func:`encode_order` given the decoded values (bounded; named errors)."""
    if not data:
        raise CodecError("rans: corrupt chunk: the entry order part is missing")
    if data[0] == 1:
        need = n * k * dtype.itemsize
        try:
            raw = zstandard.ZstdDecompressor().decompress(data[1:], max_output_size=max(need, 1))
        except zstandard.ZstdError as e:
            raise CodecError(f"rans: corrupt chunk: the entry order frame does not decompress ({e})") from None
        if len(raw) != need:
            raise CodecError(f"rans: corrupt chunk: the entry order frame holds {len(raw)} bytes, {need} expected")
        return np.frombuffer(raw, dtype=dtype).reshape(n, k)
    if data[0] != 0:
        raise CodecError(f"rans: corrupt chunk: unknown entry order mode {data[0]}")
    start, length = _tie_runs(np.asarray(values16))
    out = np.zeros((n, k), np.int64)
    pos = _kernels().decode_order_digits(np.frombuffer(data, np.uint8, offset=1), start, length, out)
    if pos < 0:
        raise CodecError("rans: corrupt chunk: an entry order digit is out of range")
    if (pos + 7) // 8 != len(data) - 1:
        raise CodecError(
            f"rans: corrupt chunk: the entry order part holds {len(data) - 1} bytes, {(pos + 7) // 8} expected"
        )
    return out.astype(dtype, copy=False)


def _freq_table(counts: np.ndarray) -> np.ndarray:
    """Counts (smoothed) -> frequencies summing to 4096, every symbol >= 1."""
    c = np.asarray(counts, dtype=np.float64) + 0.5
    f = np.maximum(1, np.floor(c / c.sum() * (M - len(c)))).astype(np.int64)
    f[np.argmax(f)] += M - f.sum()
    if f.min() < 1:  # only possible for alphabets close to 4096 symbols
        raise CodecConfigError("rans: cannot build a frequency table")
    return f


def pair_table(p1: np.ndarray) -> np.ndarray:
    """Cumulative frequencies of the 4-symbol membership decisions, flat: entry ``5 * (c + prev) + s``
    for even position c, previous decision ``prev`` (0/1) and ``s`` = 0..4 (0 and 4096 at the ends).

    Symbol ``2 * b0 + b1`` says whether positions c (b0) and c + 1 (b1) are stored. Its frequency is
    the product of the two binary probabilities of ``p1`` (P(b0 | prev), then P(b1 | b0)), in integer
    arithmetic: ``max(1, (f(b0) * f(b1)) >> 12)``, then the first largest of the four takes what
    is missing to 4096. An odd class count gets a padding position C with ``p1 = [1, 1]``."""
    C = len(p1)
    p = np.ones((C + (C & 1), 2), np.int64)
    p[:C] = p1
    A = p[0::2, :]  # [U, prev]: position c stored
    P0, P1 = p[1::2, 0:1], p[1::2, 1:2]  # position c + 1 stored after c not stored / stored
    raw = np.stack([(M - A) * (M - P0), (M - A) * P0, A * (M - P1), A * P1], axis=-1)  # [U, 2, 4]
    f = np.maximum(1, raw >> PREC)
    top = np.argmax(f, axis=-1)
    np.put_along_axis(f, top[..., None], np.take_along_axis(f, top[..., None], -1) + (M - f.sum(-1))[..., None], -1)
    cum = np.concatenate([np.zeros(f.shape[:-1] + (1,), np.int64), np.cumsum(f, -1)], -1)  # [U, 2, 5]
    return np.ascontiguousarray(cum.reshape(-1), dtype=np.uint16)  # 0..4096: small enough to stay in L1


def learn_model(indices: np.ndarray, values: np.ndarray | None, classes: int) -> str:
    """The ``model`` configuration from sample records: ``indices`` [n, k] class ranks (any order
    within a record), ``values`` [n, k] float16 aligned with them (or None)."""
    idx = np.asarray(indices, dtype=np.int64)
    if idx.ndim != 2 or idx.size == 0:
        raise CodecConfigError("rans: learning a model needs sample records [n, k]")
    order = np.argsort(idx, axis=1, kind="stable")
    idx = np.take_along_axis(idx, order, 1)
    n, k = idx.shape
    # counts per position, O(n k): a position is coded when it is at or before the record's last
    # class; column 1 = the previous position is stored, column 0 = it is not (or c = 0)
    last = idx[:, -1]
    coded = np.cumsum(np.bincount(last, minlength=classes)[::-1])[::-1]  # records coding c
    stored = np.bincount(idx.ravel(), minlength=classes)
    nxt = idx[:, :-1] + 1  # after a stored class
    after = np.bincount(nxt[nxt <= last[:, None]], minlength=classes)[:classes]
    both = np.bincount(idx[:, 1:][np.diff(idx, axis=1) == 1], minlength=classes)
    p1 = np.empty((classes, 2), dtype=np.int64)
    for col, (ones, total) in enumerate(((stored - both, coded - after), (both, after))):
        p1[:, col] = np.clip(np.rint((ones + 0.4) / (total + 0.8) * M), 1, M - 1)
    parts = [p1.astype("<u2").tobytes()]
    if values is not None:
        u = np.take_along_axis(np.asarray(values, dtype=np.float16).view(np.uint16), order, 1)
        hi = (monotone(u) >> 8).astype(np.int64)
        base = hi.min(1)
        d = hi - base[:, None]
        parts.append(_freq_table(np.bincount(base, minlength=256)).astype("<u2").tobytes())
        ctx = np.empty_like(d)
        ctx[:, 0] = HIGH_CONTEXTS - 1
        ctx[:, 1:] = np.minimum(d[:, :-1], 15)
        sym = np.minimum(d, ESCAPE)
        counts = np.zeros((HIGH_CONTEXTS, HIGH_SYMBOLS))
        np.add.at(counts, (ctx.ravel(), sym.ravel()), 1)
        parts.append(np.stack([_freq_table(row) for row in counts]).astype("<u2").tobytes())
    return _pack_model(parts)


def _pack_model(parts: list) -> str:
    """The ``model`` configuration string: base64 of one zstd frame of the tables' bytes."""
    return base64.b64encode(zstandard.ZstdCompressor(level=19).compress(b"".join(parts))).decode("ascii")


@register_codec
class Rans(ArrayBytesCodec):
    name = "rans"

    def __init__(self, classes: int, k: int, values: bool = True, model: str = "", order: bool = False):
        for nm, v, lo, hi in (("classes", classes, 2, 65536), ("k", k, 1, 65535)):
            if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
                raise CodecConfigError(f"rans: {nm} must be an integer in {lo}..{hi}, got {v!r}")
        if k >= classes:
            raise CodecConfigError(f"rans: k = {k} must be smaller than the number of classes ({classes})")
        if not isinstance(values, bool):
            raise CodecConfigError(f"rans: values must be true or false, got {values!r}")
        if not isinstance(order, bool):
            raise CodecConfigError(f"rans: order must be true or false, got {order!r}")
        self.classes, self.k, self.values, self.model, self.order = classes, k, values, model, order
        self._parse_model()

    # -- model -------------------------------------------------------------------------------------
    def _parse_model(self):
        C = self.classes
        need = 2 * C * 2 + ((256 + HIGH_CONTEXTS * HIGH_SYMBOLS) * 2 if self.values else 0)
        try:
            blob = base64.b64decode(self.model.encode("ascii"), validate=True)
            size = zstandard.get_frame_parameters(blob).content_size
            if size not in (need, zstandard.CONTENTSIZE_UNKNOWN):
                raise CodecConfigError(
                    f"rans: 'model' holds {size} bytes, {need} expected for {C} classes"
                    f"{' with values' if self.values else ''}"
                )
            # bounded: a crafted frame cannot inflate past the model's size (ZstdError if it would)
            raw = zstandard.ZstdDecompressor().decompress(blob, max_output_size=need)
            dobj = zstandard.ZstdDecompressor().decompressobj()  # now safe: is anything after the frame?
            dobj.decompress(blob)
            trailing, done = dobj.unused_data, dobj.eof
        except (ValueError, UnicodeEncodeError, zstandard.ZstdError, AttributeError) as e:
            raise CodecConfigError(
                f"rans: 'model' is not base64 of one zstd frame of the model's size ({e})",
                hint="learn one with lplabel.codecs.rans.learn_model",
            ) from None
        if trailing or not done:
            raise CodecConfigError("rans: 'model' must be exactly one complete zstd frame")
        if len(raw) != need:
            raise CodecConfigError(
                f"rans: 'model' holds {len(raw)} bytes, {need} expected for {C} classes"
                f"{' with values' if self.values else ''}"
            )
        a = np.frombuffer(raw, dtype="<u2").astype(np.int64)
        p1 = a[: 2 * C].reshape(C, 2)
        if p1.min() < 1 or p1.max() > M - 1:
            raise CodecConfigError("rans: membership probabilities must lie in 1..4095")
        self._pairs = pair_table(p1)
        if self.values:
            self._bfreq = np.ascontiguousarray(a[2 * C : 2 * C + 256])
            self._hfreq = np.ascontiguousarray(a[2 * C + 256 :].reshape(HIGH_CONTEXTS, HIGH_SYMBOLS))
            for name, t in (("base", self._bfreq[None]), ("high", self._hfreq)):
                if t.min() < 1 or not (t.sum(1) == M).all():
                    raise CodecConfigError(f"rans: the {name} table's rows must sum to 4096 with every entry >= 1")
            self._bcum = np.concatenate([[0], np.cumsum(self._bfreq)[:-1]])
            self._bsym = np.repeat(np.arange(256), self._bfreq).astype(np.uint8)  # uint8: lookups stay in cache
            self._hcum = np.concatenate([np.zeros((HIGH_CONTEXTS, 1), np.int64), np.cumsum(self._hfreq, 1)[:, :-1]], 1)
            self._hsym = np.stack([np.repeat(np.arange(HIGH_SYMBOLS), row) for row in self._hfreq]).astype(np.uint8)
        else:  # placeholders of the right dimensionality for the compiled signature
            self._bfreq = self._bcum = np.ones(1, np.int64)
            self._hfreq = self._hcum = np.ones((1, 1), np.int64)
            self._bsym, self._hsym = np.ones(1, np.uint8), np.ones((1, 1), np.uint8)

    @classmethod
    def flat(cls, classes: int, k: int, values: bool = True) -> "Rans":
        """A codec with an uninformed model (every decision 50/50 or uniform): correct, not compact;
        what a chain is built with before its model is learnt."""
        parts = [np.full((classes, 2), M // 2, "<u2").tobytes()]
        if values:
            parts.append(_freq_table(np.zeros(256)).astype("<u2").tobytes())
            parts.append(np.stack([_freq_table(np.zeros(HIGH_SYMBOLS))] * HIGH_CONTEXTS).astype("<u2").tobytes())
        return cls(classes, k, values, _pack_model(parts))

    @classmethod
    def learn(cls, indices, values, classes: int) -> "Rans":
        """A codec whose model is learnt from sample records (see :func:`learn_model`)."""
        idx = np.asarray(indices)
        return cls(classes, int(idx.shape[1]), values is not None, learn_model(idx, values, classes))

    def get_config(self):
        cfg = {"classes": self.classes, "k": self.k, "values": self.values, "model": self.model}
        if self.order:  # written only when set: files without it keep their exact header
            cfg["order"] = True
        return cfg

    def check_spec(self, spec) -> None:
        """Refuse, when the chain is built, a block this codec cannot code."""
        names = [f.name for f in spec]
        idx, val = spec_field(spec, "indices"), spec_field(spec, "values")
        want = (["indices", "values"] if self.values else ["indices"]) + ([ORDER_FIELD] if self.order else [])
        if names != want or idx is None:
            raise CodecChainError(
                f"'rans' (values {str(self.values).lower()}) codes a block with fields {want}, got {names}",
                hint="use it after topk (no tail, no quantize), classmap and sort by index",
            )
        ok_type = idx.type in INDEX_TYPES and np.iinfo(storage_dtype(idx.type)).max >= self.classes - 1
        if idx.shape != (self.k,) or not ok_type:
            raise CodecChainError(
                f"'rans': 'indices' must be integers of shape [{self.k}] that hold class "
                f"{self.classes - 1}, got {idx.type} {idx.shape}"
            )
        if val is not None and (val.type != "float16" or val.shape != (self.k,)):
            raise CodecChainError(
                f"'rans': 'values' must be float16 [{self.k}], got {val.type} {val.shape}",
                hint="rans codes fp16 logits losslessly; other value types: use zplanes",
            )

    def check_input(self, spec) -> None:
        """Dense input (``logits`` [C]) must have this codec's number of classes."""
        f = spec_field(spec, "logits")
        if f is not None and f.shape != (self.classes,):
            raise CodecChainError(f"'rans' is configured for {self.classes} classes, the labels have {f.shape}")

    def check_chain(self, codecs) -> None:
        """A class map before it must renumber the same number of classes."""
        for c in codecs:
            if c.name == "classmap" and c.classes != self.classes:
                raise CodecChainError(f"'rans' is configured for {self.classes} classes, 'classmap' for {c.classes}")

    # -- coding ------------------------------------------------------------------------------------
    def encode(self, block, spec) -> bytes:
        data = self._encode(block)
        if self.order and np.shape(block["indices"])[0]:
            data += encode_order(
                np.asarray(block["values"], dtype=np.float16),
                np.ascontiguousarray(block[ORDER_FIELD], dtype=storage_dtype(spec_field(spec, ORDER_FIELD).type)),
            )
        return data

    def _encode(self, block) -> bytes:
        kern = _kernels()
        idx = np.ascontiguousarray(np.asarray(block["indices"]), dtype=np.int64)
        if idx.ndim != 2 or idx.shape[1] != self.k:
            raise CodecError(f"rans: 'indices' must be [n, {self.k}], got {list(idx.shape)}")
        if self.values and np.shape(block["values"]) != idx.shape:
            raise CodecError(
                f"rans: 'values' must be {list(idx.shape)} like 'indices', got {list(np.shape(block['values']))}"
            )
        n, k = idx.shape
        if n == 0:
            return struct.pack("<I", 0)
        bad = kern.check_indices(idx, self.classes)
        if bad == 1:
            raise CodecError(f"rans: class index out of 0..{self.classes - 1}")
        if bad == 2:
            raise CodecError(
                "rans: each record's indices must be increasing and distinct", hint="put 'sort' by index before 'rans'"
            )
        if self.values:
            m = monotone(np.asarray(block["values"], dtype=np.float16).view(np.uint16))
            lo = (m & 0xFF).astype(np.uint8).tobytes()
        else:  # a placeholder of the compiled signature; index-only chunks never read it
            m, lo = np.zeros((1, 1), np.uint16), b""
        words = kern.encode(idx, m, self.values, self._pairs, self._hfreq, self._hcum, self._bfreq, self._bcum)
        return struct.pack("<I", len(words)) + words.astype("<u2").tobytes() + lo

    def decode(self, data, spec, n: int) -> dict:
        kern = _kernels()
        buf = data if isinstance(data, (bytes, bytearray, memoryview)) else bytes(data)
        buf = memoryview(buf).cast("B")
        k = self.k
        if n < 0:
            raise CodecError(f"rans: a chunk cannot hold {n} records")
        if len(buf) < 4:
            raise CodecError(f"rans: chunk of {len(buf)} bytes is shorter than its word count")
        (W,) = struct.unpack_from("<I", buf, 0)
        lo_n = n * k if self.values else 0
        if n == 0:
            if len(buf) != 4 or W != 0:
                raise CodecError("rans: an empty chunk must hold only a zero word count")
            return self._empty(spec)
        order_bytes = None
        if self.order:
            order_bytes, buf = buf[4 + 2 * W + lo_n :], buf[: 4 + 2 * W + lo_n]
        if 4 + 2 * W + lo_n != len(buf):
            raise CodecError(
                f"rans: chunk of {len(buf)} bytes, its layout needs {4 + 2 * W + lo_n} "
                f"({W} words{f' + {lo_n} low bytes' if lo_n else ''})"
            )
        words = np.frombuffer(buf, dtype="<u2", count=W, offset=4).astype(np.uint16, copy=False)
        if self.values:
            lo = np.frombuffer(buf, dtype=np.uint8, count=lo_n, offset=4 + 2 * W).reshape(n, k)
        else:
            lo = np.zeros((1, 1), np.uint8)
        idx = np.empty((n, k + 1), storage_dtype(spec_field(spec, "indices").type))  # + a scratch column
        vals = np.empty((n, k) if self.values else (1, 1), np.uint16)
        rc = kern.decode(
            words,
            lo,
            n,
            k,
            self.classes,
            self.values,
            self._pairs,
            self._hfreq,
            self._hcum,
            self._hsym,
            self._bfreq,
            self._bcum,
            self._bsym,
            idx,
            vals,
        )
        if rc != 0:
            what = {
                -1: "ran out of words",
                -2: f"did not find exactly {k} classes among the {self.classes}",
                -3: "did not end in the initial states with every word read",
                -4: "decoded a value high byte above 255",
            }.get(rc, f"error {rc}")
            raise CodecError(f"rans: corrupt chunk: the decoder {what}")
        out = {"indices": np.ascontiguousarray(idx[:, :k])}
        if self.values:
            out["values"] = vals.view(np.float16)
        if order_bytes is not None:
            out[ORDER_FIELD] = self._order_field(order_bytes, spec, n, out["values"])
        return out

    def _order_field(self, tail, spec, n: int, values) -> np.ndarray:
        """The ``entry_shift`` field from the chunk's last bytes (see :func:`encode_order`)."""
        return decode_order(bytes(tail), values, storage_dtype(spec_field(spec, ORDER_FIELD).type), n, self.k)

    def _empty(self, spec):
        out = {"indices": np.zeros((0, self.k), storage_dtype(spec_field(spec, "indices").type))}
        if self.values:
            out["values"] = np.zeros((0, self.k), np.float16)
        if self.order:
            out[ORDER_FIELD] = np.zeros((0, self.k), storage_dtype(spec_field(spec, ORDER_FIELD).type))
        return out
