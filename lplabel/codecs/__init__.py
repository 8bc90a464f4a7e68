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
"""
from __future__ import annotations

from .abc import ArrayArrayCodec, ArrayBytesCodec, Block, BytesBytesCodec, Codec, Field, spec_from_json, spec_to_json
from .registry import available_codecs, codec_class, get_codec, parse_chain, register_codec
from .pipeline import Pipeline
from . import bytes as _bytes, dense as _dense, shuffle as _shuffle, topk as _topk, zstd as _zstd  # noqa: F401  (register)
from . import bitpack as _bitpack, delta as _delta, quantize as _quantize, sort as _sort  # noqa: F401  (register)
from . import classmap as _classmap, rans as _rans, zplanes as _zplanes  # noqa: F401  (register)
from . import derived as _derived, entryorder as _entryorder  # noqa: F401  (register)
from ..errors import CodecConfigError, NoValuesError
from ..dtypes import storage_dtype

__all__ = [
    "ArrayArrayCodec", "ArrayBytesCodec", "BytesBytesCodec", "Codec", "Block", "Field", "Pipeline",
    "available_codecs", "codec_class", "get_codec", "parse_chain", "register_codec", "spec_from_json", "spec_to_json",
    "default_label_codecs", "default_column_codecs", "label_chain", "VALUE_FORMATS", "INDEX_CODINGS", "LAYOUTS",
]

#: ``values`` choices of :func:`label_chain` (and ``lplabel quantize --values``); ``none`` keeps the
#: top-k class indices only (``topk`` type ``none``)
VALUE_FORMATS = ("fp32", "fp16", "bf16", "int8", "int4", "none")
#: ``index_coding`` choices of :func:`label_chain` (and ``--index-coding``).
INDEX_CODINGS = ("none", "value-delta", "index-delta")
#: ``layout`` choices of :func:`label_chain`: byte planes each zstd'd alone, or bytes+shuffle+zstd
LAYOUTS = ("planes", "shuffle", "rans")
_FLOAT_OF = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16", "int8": "float16", "int4": "float16",
             "none": "none"}


def default_label_codecs(representation: str = "dense", *, type: str = "float16", k: int | None = None,
                         index_type: str = "uint16", tail: str = "none", level: int = 3) -> list:
    """The chain lplabel uses when none is given: a representation, then bytes, shuffle, zstd."""
    if representation == "dense":
        rep = _dense.Dense(type)
        es = 4 if type == "float32" else 2
    elif representation == "topk":
        if k is None:
            raise ValueError("topk needs k")
        rep = _topk.TopK(k, type=type, index_type=index_type, tail=tail)
        es = 2
    else:
        raise ValueError(f"unknown representation {representation!r}")
    return [rep, _bytes.Bytes(), _shuffle.Shuffle(es), _zstd.Zstd(level)]


def label_chain(*, k: int | None = None, values: str = "fp16", tail: str = "none", index_coding: str | None = None,
                index_type: str = "uint16", level: int = 15, scale_type: str = "float16", shuffle: bool = True,
                dictionary: bytes | None = None, class_order=None, layout: str = "shuffle",
                classes: int | None = None, rans_model: str | None = None) -> list:
    """A label chain from friendly options (what ``lplabel quantize`` builds).

    ``k=None`` keeps dense logits. ``values``: one of :data:`VALUE_FORMATS` (int8/int4 add a
    ``quantize`` step over float16 top-k values; int4 adds ``bitpack``; ``none`` keeps the top-k
    class indices only -- top-k only, no tail, index coding ``index-delta`` or ``none``).
    ``index_coding`` (top-k only): ``none`` (entries by decreasing value, raw indices),
    ``value-delta`` (entries by decreasing value, values difference-coded: small steps between
    neighbouring logits), ``index-delta`` (entries by increasing class index, index gaps coded);
    default (None): ``value-delta``, or ``index-delta`` for values ``none``. All three keep the
    (index, value) pairs exactly. ``dictionary``: zstd dictionary bytes (see :mod:`.zstd`;
    layout ``shuffle`` only). ``class_order``: a class permutation (see :mod:`.classmap`) to
    renumber indices by, or None. ``layout``: ``shuffle`` (bytes, shuffle, zstd), ``planes``
    (zplanes: each byte plane its own zstd frame; smaller, no dictionary) or ``rans`` (top-k fp16
    or index-only labels without a tail: ``topk | [classmap] | sort(index) | rans``, context models
    + rANS, the smallest lossless coding; needs ``classes`` and numba; ``index_coding``,
    ``level`` and ``shuffle`` do not apply). ``rans_model``: the learnt model (see
    :func:`lplabel.codecs.rans.learn_model`); None gives a flat model (valid, not compact).
    """
    if layout == "rans":
        return _rans_chain(k=k, values=values, tail=tail, index_type=index_type, dictionary=dictionary,
                           class_order=class_order, classes=classes, model=rans_model)
    if values not in VALUE_FORMATS:
        raise CodecConfigError(f"unknown value format {values!r}", hint=f"choose one of {', '.join(VALUE_FORMATS)}")
    if index_coding is None:
        index_coding = "index-delta" if values == "none" else "value-delta"
    if index_coding not in INDEX_CODINGS:
        raise CodecConfigError(f"unknown index coding {index_coding!r}", hint=f"choose one of {', '.join(INDEX_CODINGS)}")
    if values == "none":
        if k is None:
            raise NoValuesError("values 'none' keeps the class indices of top-k labels; dense labels have none",
                                hint="give k (--topk K), or a value format")
        if index_coding == "value-delta":
            raise NoValuesError("index coding 'value-delta' codes the steps between values; values 'none' "
                                "stores none", hint="use index coding 'index-delta' or 'none'")
    chain: list = []
    ftype = _FLOAT_OF[values]
    quant = values in ("int8", "int4")
    if k is None:
        chain.append(_dense.Dense(ftype))
    else:
        chain.append(_topk.TopK(k, type=ftype, index_type=index_type, tail=tail))
    if quant:
        chain.append(_quantize.Quantize(8 if values == "int8" else 4, scale_type=scale_type))
    if layout not in LAYOUTS:
        raise CodecConfigError(f"unknown layout {layout!r}", hint=f"choose one of {', '.join(LAYOUTS)}")
    if layout == "planes" and dictionary is not None:
        raise CodecConfigError("a zstd dictionary needs layout 'shuffle' (zplanes frames take no dictionary)")
    if k is not None and class_order is not None:
        chain.append(_classmap.ClassMap.from_order(class_order))
    if k is not None and index_coding != "none":
        by = "value" if index_coding == "value-delta" else "index"
        chain.append(_sort.Sort(by))
        if index_coding == "index-delta":
            chain.append(_delta.Delta("indices", "ascending"))
        elif values != "int4":  # 4-bit codes are left as they are (their steps do not fit 4 bits)
            chain.append(_delta.Delta("values", "descending"))
    if values == "int4":
        chain.append(_bitpack.BitPack("values" if k is not None else "logits", 4))
    if layout == "planes":
        chain.append(_zplanes.ZPlanes(level))
        return chain
    chain.append(_bytes.Bytes())
    es = 4 if values == "fp32" else 2
    if values == "none":  # the indices are the only field
        es = storage_dtype(index_type).itemsize
    if shuffle and es > 1:
        chain.append(_shuffle.Shuffle(es))
    chain.append(_zstd.Zstd.with_dictionary(dictionary, level) if dictionary is not None else _zstd.Zstd(level))
    return chain


def _rans_chain(*, k, values, tail, index_type, dictionary, class_order, classes, model) -> list:
    """topk, classmap (when given), sort by index, rans: see :func:`label_chain`."""
    if k is None:
        raise CodecConfigError("layout 'rans' codes top-k labels; dense labels have no class set to model",
                               hint="give k (--topk K), or use layout 'planes'")
    if values not in ("fp16", "none"):
        raise CodecConfigError(f"layout 'rans' codes fp16 values (or none) losslessly, not {values!r}",
                               hint="use layout 'planes' for other value formats, or convert first: "
                                    "lplabel quantize SRC -o OUT --topk K --values fp16 --layout rans")
    if tail != "none":
        raise CodecConfigError("layout 'rans' stores no tail summary", hint="use --tail none, or layout 'planes'")
    if dictionary is not None:
        raise CodecConfigError("layout 'rans' takes no zstd dictionary", hint="drop --dictionary")
    if classes is None:
        raise CodecConfigError("layout 'rans' needs the number of classes")
    chain: list = [_topk.TopK(k, type=_FLOAT_OF[values], index_type=index_type, tail="none")]
    if class_order is not None:
        chain.append(_classmap.ClassMap.from_order(class_order))
    chain.append(_sort.Sort("index"))
    with_values = values != "none"
    chain.append(_rans.Rans(classes, k, with_values, model) if model is not None
                 else _rans.Rans.flat(classes, k, with_values))
    return chain


def default_column_codecs(elementsize: int, level: int = 3) -> list:
    """Chain for a per-record config column (image id, crop box, flip, mix partner)."""
    chain = [_bytes.Bytes()]
    if elementsize > 1:
        chain.append(_shuffle.Shuffle(elementsize))
    chain.append(_zstd.Zstd(level))
    return chain
