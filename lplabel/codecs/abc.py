"""The codec interface: every way of shrinking a column is a codec with a name and a JSON config.

A *block* is what flows through a codec chain: a dict of named numpy arrays that all have one
row per record (e.g. ``{"logits": float32 [n, C]}`` or ``{"indices": [n, k], "values": [n, k]}``).
A *block spec* describes a block without its row count: an ordered tuple of :class:`Field`.

Three kinds of codec, chained in this order (as in zarr v3):

* ``ArrayArrayCodec`` (zero or more): block -> block, e.g. top-k, value quantization.
* ``ArrayBytesCodec`` (exactly one): block -> bytes, the byte layout of the fields.
* ``BytesBytesCodec`` (zero or more): bytes -> bytes, e.g. byte shuffle, zstd.

Decoding runs the chain backwards and returns what was stored: a lossy array-array codec
(top-k, a cast to fp16) decodes as the identity, so readers see the stored representation
and choose how to reconstruct (see :mod:`lplabel.reconstruct`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..dtypes import check_type, storage_dtype
from ..errors import CodecConfigError, NoValuesError

Block = dict  # name -> np.ndarray, all with the same first dimension


@dataclass(frozen=True)
class Field:
    """One named array of a block: element type (see :mod:`lplabel.dtypes`) and per-record shape."""

    name: str
    type: str
    shape: tuple = ()

    def __post_init__(self):
        check_type(self.type, what=f"element type of field {self.name!r}")
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))

    @property
    def items_per_record(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1

    @property
    def bits_per_item(self) -> int:
        return storage_dtype(self.type).itemsize * 8

    def to_json(self) -> dict:
        return {"name": self.name, "type": self.type, "shape": list(self.shape)}

    @classmethod
    def from_json(cls, d: dict) -> "Field":
        return cls(d["name"], d["type"], tuple(d.get("shape", ())))


Spec = tuple  # tuple[Field, ...]


def spec_to_json(spec: Spec) -> list:
    return [f.to_json() for f in spec]


def spec_from_json(items: list) -> Spec:
    return tuple(Field.from_json(d) for d in items)


def spec_field(spec: Spec, name: str) -> Field | None:
    for f in spec:
        if f.name == name:
            return f
    return None


def indices_only(spec: Spec) -> bool:
    """Is this a block of class indices without values (``topk`` type ``none``)?"""
    return spec_field(spec, "values") is None and spec_field(spec, "indices") is not None


def no_values(what: str, hint: str) -> NoValuesError:
    """The error of a codec that needs the values an indices-only block does not have."""
    return NoValuesError(f"{what}; this block keeps class indices only (topk type 'none')", hint=hint)


class Codec:
    """Base of all codecs. Subclasses set ``name`` and ``kind`` and keep their parameters as
    attributes; ``get_config`` returns them as JSON-compatible values."""

    name: ClassVar[str]
    kind: ClassVar[str]
    #: True when encode can lose information (the header then names the loss explicitly).
    lossy: ClassVar[bool] = False

    def get_config(self) -> dict:
        return {}

    @classmethod
    def from_config(cls, config: dict) -> "Codec":
        try:
            return cls(**config)
        except TypeError as e:
            raise CodecConfigError(
                f"codec {cls.name!r}: bad configuration {config!r} ({e})",
                hint="see spec/FORMAT.md for the codec's parameters",
            ) from None

    def to_json(self) -> dict:
        return {"name": self.name, "configuration": self.get_config()}

    def __eq__(self, other):
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __hash__(self):
        return hash((self.name, repr(sorted(self.get_config().items()))))

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class ArrayArrayCodec(Codec):
    kind = "array->array"

    def resolve(self, spec: Spec) -> Spec:
        """Spec of this codec's output given its input spec; raises CodecChainError if unfit."""
        raise NotImplementedError

    def encode(self, block: Block, spec: Spec) -> Block:
        raise NotImplementedError

    def decode(self, block: Block, spec: Spec) -> Block:
        """Inverse where one exists; the identity for lossy representation changes.
        ``spec`` is this codec's input spec."""
        return block

    def decoded_spec(self, in_spec: Spec, out_spec: Spec) -> Spec:
        """Spec of what ``decode`` returns (``out_spec`` for identity decodes)."""
        return out_spec


class ArrayBytesCodec(Codec):
    kind = "array->bytes"

    def encode(self, block: Block, spec: Spec) -> bytes:
        raise NotImplementedError

    def decode(self, data, spec: Spec, n: int) -> Block:
        raise NotImplementedError


class BytesBytesCodec(Codec):
    kind = "bytes->bytes"

    def encode(self, data: bytes) -> bytes:
        raise NotImplementedError

    def decode(self, data) -> bytes:
        raise NotImplementedError
