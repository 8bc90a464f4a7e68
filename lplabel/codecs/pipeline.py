"""A validated codec chain for one column: what the writer runs on each chunk and the reader undoes."""

from __future__ import annotations

import numpy as np

from ..dtypes import storage_dtype
from ..errors import CodecChainError, CodecError
from .abc import ArrayArrayCodec, ArrayBytesCodec, BytesBytesCodec, Spec, spec_to_json
from .fused import fused_decoder
from .registry import get_codec


class Pipeline:
    """An ordered chain: array->array codecs, exactly one array->bytes codec, bytes->bytes codecs.

    ``input_spec`` is the block the writer hands in; each array->array codec's ``resolve``
    derives the next spec, and the chain is rejected at construction (before anything is
    written) if any codec cannot take what the previous one produces.
    """

    def __init__(self, codecs, input_spec: Spec):
        self.codecs = [c if not isinstance(c, (dict, str)) else get_codec(c) for c in codecs]
        self.input_spec = tuple(input_spec)
        self.array_array: list = []
        self.array_bytes = None
        self.bytes_bytes: list = []
        for c in self.codecs:
            if isinstance(c, ArrayArrayCodec):
                if self.array_bytes is not None:
                    raise CodecChainError(
                        f"invalid codec order: array->array codec {c.name!r} after the array->bytes codec "
                        f"{self.array_bytes.name!r}",
                        hint="order is: array->array codecs, one array->bytes codec, bytes->bytes codecs",
                    )
                self.array_array.append(c)
            elif isinstance(c, ArrayBytesCodec):
                if self.array_bytes is not None:
                    raise CodecChainError(
                        f"two array->bytes codecs ({self.array_bytes.name!r} and {c.name!r}); only one is allowed"
                    )
                self.array_bytes = c
            elif isinstance(c, BytesBytesCodec):
                if self.array_bytes is None:
                    raise CodecChainError(
                        f"bytes->bytes codec {c.name!r} before any array->bytes codec",
                        hint="put an array->bytes codec such as 'bytes' first",
                    )
                self.bytes_bytes.append(c)
            else:
                raise CodecChainError(f"{c!r} is not a codec")
        if self.array_bytes is None:
            raise CodecChainError("the codec chain has no array->bytes codec", hint="add {'name': 'bytes'}")
        specs = [self.input_spec]
        for c in self.array_array:
            specs.append(tuple(c.resolve(specs[-1])))
        self._specs = specs  # specs[i] is the input of array_array[i]; specs[-1] is what gets serialised
        self.array_bytes.check_spec(specs[-1])  # array->bytes codecs for one kind of block
        self.array_bytes.check_input(self.input_spec)
        for c in self.codecs:  # rules that involve several codecs of the chain (e.g. int4 + logsumexp tail)
            c.check_chain(self.codecs)

    @property
    def stored_spec(self) -> Spec:
        """The fields as serialised by the array->bytes codec."""
        return self._specs[-1]

    @property
    def decoded_spec(self) -> Spec:
        """The fields :meth:`decode` returns."""
        spec = self._specs[-1]
        for i in range(len(self.array_array) - 1, -1, -1):
            spec = self.array_array[i].decoded_spec(self._specs[i], spec)
        return spec

    @property
    def lossy(self) -> bool:
        return any(c.lossy for c in self.codecs)

    def to_json(self) -> list:
        return [c.to_json() for c in self.codecs]

    def describe(self) -> str:
        def short(v):
            t = str(v)
            return t if len(t) <= 40 else f"<{len(t)} chars>"  # e.g. a classmap's order

        return " | ".join(
            c.name
            + ("(" + ", ".join(f"{k}={short(v)}" for k, v in c.get_config().items()) + ")" if c.get_config() else "")
            for c in self.codecs
        )

    def header_entry(self) -> dict:
        return {"input": spec_to_json(self.input_spec), "codecs": self.to_json()}

    @property
    def stored_stage(self) -> int:
        """First array->array stage from which decode + encode reproduces the stored bytes exactly.

        Stage i is the block between ``array_array[i-1]`` and ``array_array[i]`` (0 = the input).
        Codecs whose decode is not a re-encodable inverse (``reencode_exact = False``: quantize,
        whose decode dequantizes) must stay encoded when a store is copied (pruned, re-chunked):
        decode with ``stop=stored_stage`` and encode with ``start=stored_stage``.
        """
        stage = 0
        for i, c in enumerate(self.array_array):
            if not c.reencode_exact:
                stage = i + 1
        return stage

    def stage_spec(self, stage: int) -> Spec:
        """The block spec at array->array stage ``stage`` (0 = input, len(array_array) = stored)."""
        return self._specs[stage]

    def encode_arrays(self, block: dict) -> dict:
        """The block as the array->bytes codec receives it (every array->array codec applied)."""
        for c, spec in zip(self.array_array, self._specs):
            block = c.encode(block, spec)
        return block

    def encode(self, block: dict, start: int = 0) -> bytes:
        """Encode a block given at array->array stage ``start`` (0: the chain's input)."""
        for c, spec in zip(self.array_array[start:], self._specs[start:]):
            block = c.encode(block, spec)
        data = self.array_bytes.encode(block, self._specs[-1])
        for c in self.bytes_bytes:
            data = c.encode(data)
        return data

    def max_record_bytes(self) -> int:
        """The most bytes one record takes at any stage of the chain (input, every array->array
        stage, decoded): what a reader may need per record, checked before a chunk is decoded."""
        got = self.__dict__.get("_max_record_bytes")  # computed once: the reader asks for every chunk
        if got is None:
            specs = list(self._specs) + [self.decoded_spec]
            got = self._max_record_bytes = max(
                sum(f.items_per_record * storage_dtype(f.type).itemsize for f in spec) for spec in specs
            )
        return got

    def max_serialized_bytes(self, n: int) -> int:
        """The most bytes the array->bytes codec's output can take for ``n`` records: the
        ``bytes`` layout exactly, other layouts (zplanes, rans: headers, incompressible planes)
        at most twice that plus 64 KiB. Every bytes->bytes frame's output is capped at this
        (spec §6): a zstd frame that would inflate past it is refused before it is inflated."""
        per = self.__dict__.get("_stored_record_bytes")  # computed once (asked for every chunk decoded)
        if per is None:
            per = self._stored_record_bytes = sum(
                f.items_per_record * storage_dtype(f.type).itemsize for f in self._specs[-1]
            )
        layout = n * per
        return layout if self.array_bytes.name == "bytes" else 2 * layout + (64 << 10)

    def decode(self, data, n: int, stop: int = 0, entry_order: bool = True) -> dict:
        """Decode a chunk of ``n`` records; ``stop > 0`` leaves the first ``stop`` array->array
        codecs un-decoded (the block is then at stage ``stop``, see :attr:`stored_stage`).

        ``entry_order=False``: the caller needs each record's (index, value) pairs, not their order
        (a loader feeding training). Codecs whose decode only restores the entries' input order
        (``order_only``: ``entryorder``) are skipped and the fields they added dropped; every pair is
        the same, entries in the order the later codecs leave them (class order). Other chains
        decode exactly as with ``True``.

        The default lossless top-k chain decodes in one compiled pass when it can (:mod:`.fused`:
        the same result as codec by codec, faster)."""
        if stop == 0:
            fused = self.__dict__.get("_fused", False)
            if fused is False:  # recognised once per chain
                fused = self._fused = fused_decoder(self)
            if fused is not None and fused.ready():
                return fused.decode(data, n, entry_order=entry_order)
        cap = self.max_serialized_bytes(n)
        for c in reversed(self.bytes_bytes):
            data = c.decode(data, max_size=cap) if c.bounded_decode else c.decode(data)
        block = self.array_bytes.decode(data, self._specs[-1], n)
        for i in range(len(self.array_array) - 1, stop - 1, -1):
            codec = self.array_array[i]
            if codec.order_only and not entry_order:
                keep = [f.name for f in self._specs[i]]  # the fields before it: drop what it added
                block = {name: block[name] for name in keep}
                continue
            block = codec.decode(block, self._specs[i])
        return block

    def check_block(self, block: dict, n: int, where: str = "", spec: Spec | None = None) -> None:
        """Validate a block handed to the writer against the input spec (names, row count, shape)."""
        spec = self.input_spec if spec is None else spec
        for f in spec:
            if f.name not in block:
                raise CodecError(f"{where}missing field {f.name!r}; expected {[g.name for g in spec]}")
            a = np.asarray(block[f.name])
            if a.shape != (n, *f.shape):
                raise CodecError(f"{where}field {f.name!r} has shape {a.shape}, expected {(n, *f.shape)}")
