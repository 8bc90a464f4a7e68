"""``zstd``: Zstandard compression (bytes->bytes), one frame per chunk.

Each chunk is one complete zstd frame with its content size in the frame header, so any
zstd implementation decodes it alone. zstandard releases the GIL while (de)compressing,
so threads in a loader decode in parallel.
"""
from __future__ import annotations

import threading

import zstandard

from ..errors import CodecConfigError, CodecError
from .abc import BytesBytesCodec
from .registry import register_codec

_local = threading.local()


def _decompressor():
    d = getattr(_local, "d", None)
    if d is None:
        d = _local.d = zstandard.ZstdDecompressor()
    return d


@register_codec
class Zstd(BytesBytesCodec):
    name = "zstd"

    def __init__(self, level: int = 3):
        if not isinstance(level, int) or not -7 <= level <= 22:
            raise CodecConfigError(f"zstd: level must be an integer in -7..22, got {level!r}")
        self.level = level
        self._c = None

    def get_config(self):
        return {"level": self.level}

    def encode(self, data) -> bytes:
        if self._c is None:
            self._c = zstandard.ZstdCompressor(level=self.level, write_content_size=True, write_checksum=False)
        return self._c.compress(data)

    def decode(self, data) -> bytes:
        try:
            return _decompressor().decompress(data)
        except zstandard.ZstdError as e:
            raise CodecError(f"zstd: cannot decompress chunk ({e})") from None

    def __getstate__(self):
        return {"level": self.level, "_c": None}
