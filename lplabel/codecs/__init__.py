"""Codecs: one module per codec, a registry, and the chain that runs them.

Importing this package registers the built-in codecs. See :mod:`lplabel.codecs.abc` for the
interface and spec/FORMAT.md ("Codecs") for each one's byte layout.

Built-in codecs, in chain order:

* array->array: ``dense`` (dense logits, fp32/fp16/bf16), ``topk`` (k largest + indices,
  optional tail summary), ``quantize`` (int8/int4 per-record affine), ``classmap`` (class
  renumbering by a stored order), ``sort`` (canonical entry order), ``delta`` (difference
  coding of a sorted field), ``bitpack`` (sub-byte codes);
* array->bytes: ``bytes`` (plain layout), ``zplanes`` (byte planes, one zstd frame each);
* bytes->bytes: ``shuffle``, ``zstd`` (optionally with a stored dictionary);
* the marker ``derived`` (view columns regenerated at read time, not stored).

Which chain a column gets (presets, learnt chains, defaults) is :mod:`lplabel.codecs.chains`'s
to say; its builders are re-exported here.
"""

from __future__ import annotations

from .abc import ArrayArrayCodec, ArrayBytesCodec, Block, BytesBytesCodec, Codec, Field, spec_from_json, spec_to_json
from .registry import available_codecs, codec_class, get_codec, parse_chain, register_codec
from .pipeline import Pipeline
from . import bytes as _bytes, dense as _dense, shuffle as _shuffle, topk as _topk, zstd as _zstd  # noqa: F401  (register)
from . import bitpack as _bitpack, delta as _delta, quantize as _quantize, sort as _sort  # noqa: F401  (register)
from . import classmap as _classmap, rans as _rans, zplanes as _zplanes  # noqa: F401  (register)
from . import derived as _derived, entryorder as _entryorder  # noqa: F401  (register)
from .chains import (
    INDEX_CODINGS,
    LAYOUTS,
    PRESETS,
    VALUE_FORMATS,
    default_column_codecs,  # noqa: F401
    default_label_codecs,
    label_chain,
    learn_label_chain,
    preset_chain,
)

__all__ = [
    "ArrayArrayCodec",
    "ArrayBytesCodec",
    "BytesBytesCodec",
    "Codec",
    "Block",
    "Field",
    "Pipeline",
    "available_codecs",
    "codec_class",
    "get_codec",
    "parse_chain",
    "register_codec",
    "spec_from_json",
    "spec_to_json",
    "default_label_codecs",
    "default_column_codecs",
    "label_chain",
    "VALUE_FORMATS",
    "INDEX_CODINGS",
    "LAYOUTS",
    "PRESETS",
    "preset_chain",
    "learn_label_chain",
]
