"""Codecs: one module per codec, a registry, and the chain that runs them.

Importing this package registers the built-in codecs. See :mod:`lplabel.codecs.abc` for the
interface and spec/FORMAT.md ("Codecs") for each one's byte layout.
"""
from .abc import ArrayArrayCodec, ArrayBytesCodec, Block, BytesBytesCodec, Codec, Field, spec_from_json, spec_to_json
from .registry import available_codecs, codec_class, get_codec, register_codec
from .pipeline import Pipeline
from . import bytes as _bytes, dense as _dense, shuffle as _shuffle, topk as _topk, zstd as _zstd  # noqa: F401  (register)

__all__ = [
    "ArrayArrayCodec", "ArrayBytesCodec", "BytesBytesCodec", "Codec", "Block", "Field", "Pipeline",
    "available_codecs", "codec_class", "get_codec", "register_codec", "spec_from_json", "spec_to_json",
    "default_label_codecs", "default_column_codecs",
]


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


def default_column_codecs(elementsize: int, level: int = 3) -> list:
    """Chain for a per-record config column (image id, crop box, flip, mix partner)."""
    chain = [_bytes.Bytes()]
    if elementsize > 1:
        chain.append(_shuffle.Shuffle(elementsize))
    chain.append(_zstd.Zstd(level))
    return chain
