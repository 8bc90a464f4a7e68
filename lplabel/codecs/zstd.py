"""``zstd``: Zstandard compression (bytes->bytes), one frame per chunk, optionally with a dictionary.

Configuration: ``{"level": -7..22}`` or ``{"level": ..., "dictionary": {"size": n, "crc32": c,
"id": i}}``.

Each chunk is one complete zstd frame with its content size in the frame header, so any
zstd implementation decodes it alone. zstandard releases the GIL while (de)compressing,
so threads in a loader decode in parallel.

Dictionary: small chunks (one step of top-k labels is a few KB) pay for their own entropy
tables; a dictionary trained on the column's chunks (``zstandard.train_dictionary``, zstd's
fastCOVER trainer) carries tables and common byte strings once per store. Its bytes live in the
store as the uint8 dataset ``columns/<column>/zstd_dict`` (at most one per column); the
configuration records its size, CRC-32 and zstd dictionary id; frames made with a zstd-format
dictionary carry its id (raw-content dictionaries have id 0 and frames carry none).
A reader loads the dataset, checks size and CRC-32 against the configuration, and passes the
bytes as the frame's dictionary (``ZSTD_decompress_usingDict`` / zstandard's ``dict_data``).
The dictionary is either a zstd-format dictionary (magic ``0xEC30A437``) or, when too few
samples exist to train one, raw content (any other bytes; zstd treats them as a prefix).
"""

from __future__ import annotations

import threading

import zstandard

from ..checksum import crc32
from ..errors import CodecConfigError, CodecError
from .abc import BytesBytesCodec
from .registry import register_codec

_local = threading.local()
DICT_MAGIC = b"\x37\xa4\x30\xec"


def _decompressor(d: "zstandard.ZstdCompressionDict | None" = None, key=None):
    cache = getattr(_local, "d", None)
    if cache is None:
        cache = _local.d = {}
    dec = cache.get(key)
    if dec is None:
        dec = cache[key] = zstandard.ZstdDecompressor(dict_data=d) if d is not None else zstandard.ZstdDecompressor()
    return dec


def bounded_decompress(dec, data, max_size: int | None, what: str) -> bytes:
    """One zstd frame decompressed into at most ``max_size`` bytes (spec §6: a frame's output is
    capped at what the chunk index says the chunk holds). A frame declaring more is refused
    before anything is allocated; one without a declared size is inflated only up to the cap."""
    try:
        if max_size is not None:
            size = zstandard.get_frame_parameters(data).content_size
            if size == zstandard.CONTENTSIZE_ERROR:
                raise CodecError(f"{what} is not a zstd frame")
            if size != zstandard.CONTENTSIZE_UNKNOWN and size > max_size:
                raise CodecError(
                    f"{what} declares {size} bytes, the layout holds at most {max_size}",
                    hint="the file is damaged or hostile",
                )
            return dec.decompress(data, max_output_size=max(max_size, 1))  # 0 would mean "no limit"
        return dec.decompress(data)
    except zstandard.ZstdError as e:
        raise CodecError(f"{what} cannot be decompressed ({e})") from None


def _make_dict(data: bytes) -> "zstandard.ZstdCompressionDict":
    kind = zstandard.DICT_TYPE_FULLDICT if data[:4] == DICT_MAGIC else zstandard.DICT_TYPE_RAWCONTENT
    return zstandard.ZstdCompressionDict(data, dict_type=kind)


def dictionary_dataset(column: str) -> str:
    """Where a store keeps the zstd dictionary of a column's chain."""
    return f"columns/{column}/zstd_dict"


def dictionary_ref(data: bytes) -> dict:
    """The configuration entry that names dictionary ``data``."""
    d = _make_dict(data)
    return {"size": len(data), "crc32": crc32(data), "id": int(d.dict_id())}


def train_dictionary(samples: list, size: int = 16384, level: int = 19) -> bytes:
    """A zstd dictionary of at most ``size`` bytes trained on ``samples`` (bytes of whole chunks,
    after the chain's earlier bytes->bytes codecs). Falls back to raw content (the concatenated
    samples, truncated) when zstd's trainer cannot train on so few samples."""
    samples = [bytes(s) for s in samples if len(s)]
    if not samples:
        raise CodecError("zstd: no samples to train a dictionary on")
    try:
        d = zstandard.train_dictionary(size, samples, level=level, notifications=0)
        return d.as_bytes()
    except zstandard.ZstdError:
        return b"".join(samples)[:size]


@register_codec
class Zstd(BytesBytesCodec):
    name = "zstd"

    def __init__(self, level: int = 3, dictionary: dict | None = None):
        if not isinstance(level, int) or isinstance(level, bool) or not -7 <= level <= 22:
            raise CodecConfigError(f"zstd: level must be an integer in -7..22, got {level!r}")
        if dictionary is not None:
            if not isinstance(dictionary, dict) or not all(
                isinstance(dictionary.get(k), int) and not isinstance(dictionary.get(k), bool)
                for k in ("size", "crc32", "id")
            ):
                raise CodecConfigError(
                    f"zstd: dictionary must be {{'size', 'crc32', 'id'}} integers, got {dictionary!r}"
                )
            dictionary = {k: int(dictionary[k]) for k in ("size", "crc32", "id")}
        self.level = level
        self.dictionary = dictionary
        self.dictionary_bytes: bytes | None = None
        self._dict = None
        self._c = None

    @classmethod
    def with_dictionary(cls, data: bytes, level: int = 3) -> "Zstd":
        """A zstd codec that compresses with dictionary ``data`` (stored by the writer)."""
        c = cls(level, dictionary_ref(bytes(data)))
        c.attach_dictionary(bytes(data))
        return c

    def attach_dictionary(self, data: bytes, where: str = "") -> None:
        """Give a codec read from a header its dictionary bytes (checked against the config)."""
        data = bytes(data)
        ref = self.dictionary
        if ref is None:
            raise CodecError(f"{where}zstd codec has no dictionary in its configuration")
        if len(data) != ref["size"] or crc32(data) != ref["crc32"]:
            raise CodecError(
                f"{where}zstd dictionary does not match the header (size {len(data)} vs {ref['size']}, "
                "or CRC-32 differs)",
                hint="the file is damaged; restore it from a good copy",
            )
        self.dictionary_bytes = data
        self._dict = _make_dict(data)
        self._c = None

    @property
    def uses_dictionary(self) -> bool:
        """True when the configuration names a dictionary (see :class:`~lplabel.codecs.abc.Codec`)."""
        return self.dictionary is not None

    def dictionary_data(self) -> bytes | None:
        """The dictionary bytes (from :meth:`with_dictionary` or :meth:`attach_dictionary`), or None."""
        return self.dictionary_bytes

    def get_config(self):
        cfg = {"level": self.level}
        if self.dictionary is not None:
            cfg["dictionary"] = dict(self.dictionary)
        return cfg

    def _need_dict(self):
        if self.dictionary is not None and self._dict is None:
            raise CodecError(
                "zstd: this codec needs its dictionary, which was not loaded",
                hint="open the store with lplabel.open_store, which loads columns/<name>/zstd_dict",
            )
        return self._dict

    def encode(self, data) -> bytes:
        if self._c is None:
            d = self._need_dict()
            kw = {"dict_data": d} if d is not None else {}
            self._c = zstandard.ZstdCompressor(level=self.level, write_content_size=True, write_checksum=False, **kw)
        return self._c.compress(data)

    #: :class:`~lplabel.codecs.pipeline.Pipeline` passes ``max_size``, the chunk's layout size
    bounded_decode = True

    def decode(self, data, max_size: int | None = None) -> bytes:
        d = self._need_dict()
        dec = _decompressor(d, None if d is None else (self.dictionary["crc32"], self.dictionary["size"]))
        return bounded_decompress(dec, data, max_size, "zstd: chunk")

    def __getstate__(self):
        return {"level": self.level, "dictionary": self.dictionary, "dictionary_bytes": self.dictionary_bytes}

    def __setstate__(self, state):
        self.__init__(state["level"], state.get("dictionary"))
        if state.get("dictionary_bytes") is not None:
            self.attach_dictionary(state["dictionary_bytes"])
