"""Packed tables (format 1.1, spec/FORMAT.md §1.5): every small table of a store in one zstd frame.

A v1.0 store keeps each table (step tables, chunk index, image keys and classes...) as its own
HDF5 dataset; at a few hundred bytes of object header each, some twenty of them cost more than
the tables themselves in a small store. A packed store holds them all in the one dataset
``tables``: a zstd frame of a directory and the tables' raw bytes. Table paths, types and
shapes are exactly those of the v1.0 datasets, so a reader looks a table up by the same name.
"""

from __future__ import annotations

import json
import math

import numpy as np
import zstandard

from ..errors import CorruptStoreError, LimitExceededError

#: The header extension that marks a packed store (``must_understand``: older readers refuse it).
EXTENSION = "packed_tables"
#: The dataset holding the frame.
DATASET = "tables"

#: refuse frames that claim more than this (a damaged size field must not exhaust memory)
MAX_TABLE_BYTES = 1 << 36
#: ... or more than this many times their stored size (plus 1 MiB): real tables compress 2-20x
#: (step tables to 10-15 B per step, spec §1.5), a zstd bomb up to ~30000x (spec §6)
MAX_TABLE_EXPANSION = 256

#: element type names (spec §3.2) of the types a table may have -> numpy dtype
TYPES = {"uint8": "u1", "int16": "<i2", "int32": "<i4", "int64": "<i8", "uint32": "<u4", "float64": "<f8"}
_NAMES = {np.dtype(v): k for k, v in TYPES.items()}


def extension_entry() -> dict:
    return {"must_understand": True}


def _level(nbytes: int) -> int:
    """zstd level: the strongest for ordinary stores, cheaper for tables of millions of steps."""
    return 19 if nbytes <= (4 << 20) else (9 if nbytes <= (64 << 20) else 3)


def pack_tables(tables) -> bytes:
    """``[(path, array), ...]`` -> the bytes of dataset ``tables``: one zstd frame (with its content
    size) of ``uint32 LE directory length | directory JSON | each table's raw bytes``."""
    entries, parts = [], []
    for name, a in tables:
        a = np.ascontiguousarray(a)
        t = _NAMES.get(a.dtype.newbyteorder("<") if a.dtype.byteorder == ">" else a.dtype)
        if t is None:
            raise ValueError(f"table {name!r}: type {a.dtype} cannot be packed")
        entries.append([name, t, [int(n) for n in a.shape]])
        parts.append(a.astype(TYPES[t], copy=False).tobytes())
    directory = json.dumps(entries, separators=(",", ":")).encode("utf-8")
    raw = len(directory).to_bytes(4, "little") + directory + b"".join(parts)
    return zstandard.ZstdCompressor(level=_level(len(raw)), write_content_size=True).compress(raw)


def unpack_tables(data: bytes, path=None) -> dict:
    """The tables of a packed store: ``{path: array}``. CorruptStoreError when
    the frame or its directory is malformed."""

    def bad(why):
        return CorruptStoreError(
            f"packed tables are malformed: {why}",
            path=path,
            part=DATASET,
            hint="the file is damaged or was not written by lplabel",
        )

    try:
        params = zstandard.get_frame_parameters(data)
        if params.content_size in (zstandard.CONTENTSIZE_UNKNOWN, zstandard.CONTENTSIZE_ERROR):
            raise bad("the zstd frame does not state its content size")
        limit = min(MAX_TABLE_BYTES, MAX_TABLE_EXPANSION * len(data) + (1 << 20))
        if params.content_size > limit:
            raise LimitExceededError(
                f"packed tables are malformed: the frame of {len(data)} bytes declares "
                f"{params.content_size} bytes of tables, above the reader's limit of {limit} "
                f"({MAX_TABLE_EXPANSION}x + 1 MiB, spec §6)",
                path=path,
                part=DATASET,
                hint="the file is damaged or was not written by lplabel",
            )
        # decompress() writes into a buffer of the declared size and fails if the frame holds
        # more: memory stays bounded by the (checked) declaration
        raw = bytearray(zstandard.ZstdDecompressor().decompress(data))  # tables are writable views of it
        if len(raw) != params.content_size:
            raise bad("the frame's content differs from its declared size")
        obj = zstandard.ZstdDecompressor().decompressobj()
        obj.decompress(data)  # bounded: the first frame was just decoded within its declared size
        if not obj.eof or obj.unused_data:
            raise bad("not exactly one complete zstd frame")
    except zstandard.ZstdError as e:
        raise bad(f"zstd: {e}") from None
    if len(raw) < 4:
        raise bad("shorter than its directory length")
    dlen = int.from_bytes(raw[:4], "little")
    if 4 + dlen > len(raw):
        raise bad(f"the directory length ({dlen} bytes) runs past the end of the frame")
    try:
        directory = json.loads(raw[4 : 4 + dlen].decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise bad(f"directory is not UTF-8 JSON ({type(e).__name__})") from None
    if not isinstance(directory, list):
        raise bad("directory is not a JSON array")
    out: dict = {}
    pos = 4 + dlen
    for entry in directory:
        ok = (
            isinstance(entry, list)
            and len(entry) == 3
            and isinstance(entry[0], str)
            and entry[1] in TYPES
            and isinstance(entry[2], list)
            and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in entry[2])
        )
        if not ok:
            raise bad(f"bad directory entry {entry!r}")
        name, t, shape = entry
        if name in out:
            raise bad(f"table {name!r} appears twice")
        dt = np.dtype(TYPES[t])
        nbytes = math.prod(shape) * dt.itemsize  # Python integers: a huge shape cannot wrap around
        if pos + nbytes > len(raw):
            raise bad(f"table {name!r} runs past the end of the frame")
        out[name] = np.frombuffer(raw, dt, count=nbytes // dt.itemsize, offset=pos).reshape(shape)
        pos += nbytes
    if pos != len(raw):
        raise bad(f"{len(raw) - pos} bytes after the last table")
    return out


def directory_bytes(tables: dict) -> bytes:
    """The directory :func:`pack_tables` writes for these tables (with its length prefix)."""
    entries = [[n, _NAMES[np.asarray(a).dtype], [int(x) for x in np.shape(a)]] for n, a in tables.items()]
    d = json.dumps(entries, separators=(",", ":")).encode("utf-8")
    return len(d).to_bytes(4, "little") + d


def packed_sizes(parts: dict, total: int) -> dict:
    """Split ``total`` stored bytes of the frame among named parts, in proportion to what each
    part's bytes take compressed alone (for ``lplabel info``'s byte accounting). ``parts``:
    ``{name: bytes}``; returns ``{name: share}``, the shares summing to ``total``."""
    weights = {g: (len(zstandard.ZstdCompressor(level=3).compress(raw)) if raw else 0) for g, raw in parts.items()}
    wsum = sum(weights.values())
    if wsum == 0:
        return {g: (total if i == 0 else 0) for i, g in enumerate(parts)}
    out = {g: int(total * w // wsum) for g, w in weights.items()}
    biggest = max(weights, key=weights.get)
    out[biggest] += total - sum(out.values())
    return out
