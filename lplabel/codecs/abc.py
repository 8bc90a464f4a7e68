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

import math
from dataclasses import dataclass
from typing import ClassVar


from ..dtypes import check_type, storage_dtype
from ..errors import CodecConfigError, CodecError, NoValuesError

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
        # math.prod, not np.prod: readers ask for every chunk, and np.prod of a tuple takes ~4 µs
        return math.prod(self.shape)

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
    attributes; ``get_config`` returns them as JSON-compatible values.

    Besides encode/decode, a codec has *hooks* that :class:`~lplabel.codecs.pipeline.Pipeline`
    and the store call on every codec of a chain. They are declared here (and on the three kind
    bases) with defaults that do nothing, so a codec overrides only the hooks it needs and the
    callers never have to probe for them: ``check_chain`` (every kind), ``check_spec`` and
    ``check_input`` (array->bytes), ``reencode_exact`` (array->array), ``bounded_decode``
    (bytes->bytes), and the stored-dictionary hooks ``uses_dictionary`` / ``dictionary_data`` /
    ``attach_dictionary`` (zstd's dictionary, kept beside the column by the store).
    """

    name: ClassVar[str]
    kind: ClassVar[str]
    #: True when encode can lose information (the header then names the loss explicitly).
    lossy: ClassVar[bool] = False

    def get_config(self) -> dict:
        return {}

    # -- hooks (defaults: nothing to check, no dictionary) ------------------------------------------
    def check_chain(self, codecs) -> None:
        """Refuse, when the chain is built, a rule that involves several codecs of ``codecs`` (the
        whole chain, codec objects), e.g. int4 quantize with a logsumexp tail. The default has no
        such rule: most codecs only constrain their own input, which ``resolve`` checks."""

    @property
    def uses_dictionary(self) -> bool:
        """Does this codec's configuration name a dictionary the store keeps beside the column
        (``columns/<name>/zstd_dict``, spec §6)? The writer stores :meth:`dictionary_data`, the
        reader loads the bytes and hands them to :meth:`attach_dictionary`. Default: no."""
        return False

    def dictionary_data(self) -> bytes | None:
        """The dictionary bytes the writer stores for this codec (None when it has none loaded)."""
        return None

    def attach_dictionary(self, data: bytes, where: str = "") -> None:
        """Give a codec read from a header the dictionary bytes its configuration names. Only codecs
        whose :attr:`uses_dictionary` is true take one; the default refuses by name."""
        raise CodecError(f"{where}codec {self.name!r} takes no dictionary")

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
    #: Does encoding what ``decode`` returns give the stored block back exactly? True for lossless
    #: codecs and for lossy ones whose decode is the identity (topk, a cast); False where decode is
    #: an approximation (quantize dequantizes). A copy of a store (prune, re-chunk) keeps the block
    #: encoded from the first such codec on (:attr:`~lplabel.codecs.pipeline.Pipeline.stored_stage`).
    reencode_exact: ClassVar[bool] = True
    #: Does ``decode`` only put each record's entries back in their input order (and drop the
    #: fields ``encode`` added)? True for ``entryorder``. A reader that needs each record's
    #: (index, value) pairs but not their order -- training: a soft label is a set of pairs --
    #: may skip such a decode (``Pipeline.decode(entry_order=False)``): the pairs are the same,
    #: in the order of the later codecs (spec/FORMAT.md §3.19).
    order_only: ClassVar[bool] = False

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

    def check_spec(self, spec: Spec) -> None:
        """Refuse, when the chain is built, a stored block spec (the last array->array codec's
        output) this layout cannot serialise. The default layout takes any block."""

    def check_input(self, spec: Spec) -> None:
        """Refuse, when the chain is built, a chain input (what the writer hands in) this codec is
        not configured for (e.g. rans's number of classes). The default takes any input."""

    def encode(self, block: Block, spec: Spec) -> bytes:
        raise NotImplementedError

    def decode(self, data, spec: Spec, n: int) -> Block:
        raise NotImplementedError


class BytesBytesCodec(Codec):
    kind = "bytes->bytes"
    #: Does ``decode`` take ``max_size`` (the most bytes the chunk's layout can hold, spec §6)? A
    #: codec that inflates (zstd) sets it so a hostile frame is refused before it is inflated; a
    #: size-preserving codec (shuffle) needs no cap and keeps the one-argument ``decode``.
    bounded_decode: ClassVar[bool] = False

    def encode(self, data: bytes) -> bytes:
        raise NotImplementedError

    def decode(self, data) -> bytes:
        raise NotImplementedError
