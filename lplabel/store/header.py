"""The JSON header of a label store: how it is built, parsed and checked.

The header is the store's self-description (spec/FORMAT.md, "Header"). It is parsed from
untrusted bytes, so it is size-capped and every field is type-checked before use: a bad
header becomes a :class:`HeaderError` that names the field, never a KeyError later on.
"""
from __future__ import annotations

import json
import math
from datetime import datetime, timezone

from ..errors import HeaderError, UnsupportedExtensionError
from .layout import COLUMNS, FORMAT_NAME, FORMAT_VERSION

MAX_HEADER_BYTES = 64 * 1024 * 1024

#: Extensions this version understands: ``packed_tables`` (spec §1.5). A store may carry
#: others; those marked ``must_understand: true`` make this reader refuse the file.
KNOWN_EXTENSIONS: frozenset = frozenset({"packed_tables"})


def now_iso() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def encode_header(header: dict) -> bytes:
    return json.dumps(header, sort_keys=False, separators=(",", ":"), allow_nan=False).encode("utf-8")


def _need(h: dict, key: str, types, where: str = ""):
    if key not in h:
        raise HeaderError(f"header has no {where}{key!r}")
    v = h[key]
    if not isinstance(v, types) or (isinstance(v, bool) and bool not in (types if isinstance(types, tuple) else (types,))):
        raise HeaderError(f"header field {where}{key!r} has type {type(v).__name__}, expected {types}")
    return v


def parse_header(raw: bytes, path=None) -> dict:
    """Parse and validate header bytes; raises HeaderError naming the problem."""
    if len(raw) > MAX_HEADER_BYTES:
        raise HeaderError(f"header is {len(raw)} bytes, above the {MAX_HEADER_BYTES} limit", path=path)
    try:
        h = json.loads(bytes(raw).decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise HeaderError(f"header is not valid UTF-8 JSON ({e})", path=path, part="header") from None
    if not isinstance(h, dict):
        raise HeaderError("header is not a JSON object", path=path, part="header")
    try:
        validate_header(h)
    except HeaderError as e:
        raise HeaderError(e.message, path=path, part="header", hint=e.hint) from None
    return h


def validate_header(h: dict) -> None:
    if h.get("format") != FORMAT_NAME:
        raise HeaderError(f"header 'format' is {h.get('format')!r}, expected {FORMAT_NAME!r}")
    for key in ("num_classes", "num_images", "epochs", "steps_per_epoch", "batch_size", "records", "steps"):
        v = _need(h, key, int)
        if v < 0 or (key in ("num_classes", "batch_size") and v < 1):
            raise HeaderError(f"header field {key!r} = {v} is out of range")
    _need(h, "drop_last", bool)
    _need(h, "images", dict)
    _need(h, "augmentation", dict)
    teacher = _need(h, "teacher", dict)
    t = teacher.get("temperature", 1.0)
    if not isinstance(t, (int, float)) or isinstance(t, bool) or not (t > 0 and math.isfinite(t)):
        raise HeaderError(f"teacher.temperature must be a positive number, got {t!r}")
    columns = _need(h, "columns", dict)
    for name in COLUMNS:
        col = columns.get(name)
        if not isinstance(col, dict) or not isinstance(col.get("input"), list) or not isinstance(col.get("codecs"), list):
            raise HeaderError(f"header 'columns.{name}' must be an object with 'input' and 'codecs' lists")
    chunking = _need(h, "chunking", dict)
    spc = chunking.get("steps_per_chunk")
    if not isinstance(spc, int) or spc < 1:
        raise HeaderError(f"chunking.steps_per_chunk must be a positive integer, got {spc!r}")
    sel = h.get("selection")
    if sel is not None and not isinstance(sel, dict):
        raise HeaderError("header 'selection' must be an object or null")
    ext = h.get("extensions", {})
    if not isinstance(ext, dict):
        raise HeaderError("header 'extensions' must be an object")
    for name, body in ext.items():
        if not isinstance(body, dict):
            raise HeaderError(f"extension {name!r} must be an object")
        if body.get("must_understand", True) and name not in KNOWN_EXTENSIONS:
            raise UnsupportedExtensionError(
                f"the store needs extension {name!r}, which this lplabel does not understand",
                hint="upgrade lplabel to a version that supports it",
            )


def build_header(*, num_classes, images: dict, epochs, steps_per_epoch, batch_size, drop_last,
                 augmentation, teacher, columns, steps_per_chunk, segment_bytes, seed, selection,
                 extensions, records=0, steps=0, version=FORMAT_VERSION, tool_extra=None) -> dict:
    from .. import __version__

    return {
        "format": FORMAT_NAME,
        "version": [int(v) for v in version],
        "num_classes": int(num_classes),
        "num_images": int(images["count"]),
        "images": images,
        "epochs": int(epochs),
        "steps_per_epoch": int(steps_per_epoch),
        "batch_size": int(batch_size),
        "drop_last": bool(drop_last),
        "records": int(records),
        "steps": int(steps),
        "augmentation": augmentation,
        "teacher": teacher,
        "columns": columns,
        "chunking": {"steps_per_chunk": int(steps_per_chunk), "segment_bytes": int(segment_bytes)},
        "selection": selection,
        "tool": {"name": "lplabel", "version": __version__, **(tool_extra or {})},
        "seed": seed,
        "created": now_iso(),
        "extensions": extensions or {},
    }
