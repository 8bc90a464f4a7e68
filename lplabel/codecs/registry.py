"""Codec registry: codec name -> class, so a header's JSON chain can be turned back into codecs."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import CodecConfigError, UnknownCodecError

_REGISTRY: dict = {}


def register_codec(cls):
    """Class decorator: make ``cls`` available under ``cls.name``. Names are a wire contract:
    two classes may share one only if they read and write identical bytes."""
    name = cls.name
    if name in _REGISTRY and _REGISTRY[name] is not cls:
        raise ValueError(f"codec name {name!r} registered twice")
    _REGISTRY[name] = cls
    return cls


def available_codecs() -> list:
    return sorted(_REGISTRY)


def codec_class(name: str):
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownCodecError(
            f"unknown codec {name!r}",
            hint=f"known codecs: {', '.join(available_codecs())}; a store naming another codec "
            "was written by a newer or extended lplabel",
        ) from None


def get_codec(config):
    """Build a codec from ``{"name": ..., "configuration": {...}}`` (or a bare name string)."""
    if isinstance(config, str):
        return codec_class(config)()
    if not isinstance(config, dict) or "name" not in config:
        raise CodecConfigError(f"a codec must be given as {{'name': ..., 'configuration': {{...}}}}, got {config!r}")
    cfg = config.get("configuration", {}) or {}
    if not isinstance(cfg, dict):
        raise CodecConfigError(f"codec {config['name']!r}: configuration must be an object, got {cfg!r}")
    return codec_class(config["name"]).from_config(dict(cfg))


def parse_chain(codecs):
    """A codec chain as given by a user: a list of codecs/dicts (returned as is), JSON text, or
    the path of a JSON file holding the list. Used by every command's ``--codecs`` option."""
    if codecs is None or isinstance(codecs, list):
        return codecs
    if not isinstance(codecs, (str, os.PathLike)):
        raise CodecConfigError(f"codecs must be a list or JSON text, got {type(codecs).__name__}")
    text = str(codecs)
    if not text.lstrip().startswith("[") and Path(text).is_file():
        text = Path(text).read_text()
    try:
        chain = json.loads(text)
    except ValueError as e:
        raise CodecConfigError(
            f"--codecs is not valid JSON ({e})",
            hint='give a JSON list, e.g. [{"name": "topk", "configuration": {"k": 100}}, '
            '{"name": "bytes"}, {"name": "zstd"}]',
        ) from None
    if not isinstance(chain, list) or not chain:
        raise CodecConfigError("--codecs must be a non-empty JSON list of codecs")
    return chain
