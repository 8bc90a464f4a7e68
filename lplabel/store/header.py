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

#: Reader limits on the header's counts (spec §8.2). Each follows from a type in the format
#: (image ids and steps are int32, mix partners int16) or bounds the memory a single record
#: needs (a dense label of 2**24 classes is 64 MiB); a header beyond them is refused by name
#: before anything is sized from it.
MAX_CLASSES = 1 << 24
MAX_IMAGES = (1 << 31) - 1
MAX_BATCH = 32767
MAX_EPOCHS = (1 << 31) - 1
MAX_STEPS_PER_EPOCH = (1 << 31) - 1

#: the input field(s) each view column must declare: name -> (types allowed, shape)
_VIEW_INPUTS = {
    "image": ("image", ("int32",), []),
    "crop": ("crop", ("float32", "float16"), [4]),
    "flip": ("flip", ("bool",), []),
    "mix_partner": ("mix_partner", ("int16",), []),
}

#: Extensions this version understands: ``packed_tables`` (spec §1.5). A store may carry
#: others; those marked ``must_understand: true`` make this reader refuse the file.
KNOWN_EXTENSIONS: frozenset = frozenset({"packed_tables", "label_generator"})


def now_iso() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def encode_header(header: dict) -> bytes:
    return json.dumps(header, sort_keys=False, separators=(",", ":"), allow_nan=False).encode("utf-8")


def _need(h: dict, key: str, types, where: str = ""):
    if key not in h:
        raise HeaderError(f"header has no {where}{key!r}")
    v = h[key]
    if not isinstance(v, types) or (
        isinstance(v, bool) and bool not in (types if isinstance(types, tuple) else (types,))
    ):
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
    limits = {
        "num_classes": MAX_CLASSES,
        "num_images": MAX_IMAGES,
        "epochs": MAX_EPOCHS,
        "steps_per_epoch": MAX_STEPS_PER_EPOCH,
        "batch_size": MAX_BATCH,
    }
    for key in ("num_classes", "num_images", "epochs", "steps_per_epoch", "batch_size", "records", "steps"):
        v = _need(h, key, int)
        if v < 0 or (key in ("num_classes", "batch_size") and v < 1) or v > limits.get(key, 1 << 62):
            raise HeaderError(
                f"header field {key!r} = {v} is out of range" + (f" (0..{limits[key]})" if key in limits else "")
            )
    if h["steps"] > h["epochs"] * h["steps_per_epoch"]:
        raise HeaderError(
            f"header says {h['steps']} steps, more than {h['epochs']} epochs x {h['steps_per_epoch']} steps per epoch"
        )
    if not h["steps"] <= h["records"] <= h["steps"] * h["batch_size"]:
        raise HeaderError(
            f"header says {h['records']} records in {h['steps']} steps of at most {h['batch_size']} records"
        )
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
        if (
            not isinstance(col, dict)
            or not isinstance(col.get("input"), list)
            or not isinstance(col.get("codecs"), list)
        ):
            raise HeaderError(f"header 'columns.{name}' must be an object with 'input' and 'codecs' lists")
        _check_input(name, col["input"], h["num_classes"])
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
    if "label_generator" in ext:  # spec §12: checked (CRC-32 included) when the store is opened
        from ..generator import check_entry

        check_entry(ext["label_generator"], h["num_classes"])


def _check_input(column: str, fields: list, num_classes: int) -> None:
    """A column's input spec must be the one §1.3 gives it: right field names, shapes of
    non-negative integers, label widths within ``num_classes`` (a label of k > C classes, or a
    renamed field, would otherwise fail deep inside a decoder or the loader)."""
    where = f"columns.{column}.input"
    for f in fields:
        ok = (
            isinstance(f, dict)
            and isinstance(f.get("name"), str)
            and isinstance(f.get("type"), str)
            and isinstance(f.get("shape", []), list)
            and all(
                isinstance(n, int) and not isinstance(n, bool) and 0 <= n <= MAX_CLASSES for n in f.get("shape", [])
            )
        )
        if not ok:
            raise HeaderError(
                f"header '{where}' has a malformed field {f!r}",
                hint="a field is {name, type, shape} with shape a list of integers in 0..2**24",
            )
    got = [(f["name"], f["type"], list(f.get("shape", []))) for f in fields]
    if column in _VIEW_INPUTS:
        fname, types, shape = _VIEW_INPUTS[column]
        if len(got) != 1 or got[0][0] != fname or got[0][1] not in types or got[0][2] != shape:
            raise HeaderError(
                f"header '{where}' is {got}, expected one field {fname!r} of type "
                f"{' or '.join(types)} and shape {shape}"
            )
        return
    names = [g[0] for g in got]
    if names == ["logits"]:
        if got[0][2] != [num_classes]:
            raise HeaderError(
                f"header '{where}': dense logits of shape {got[0][2]}, but num_classes is {num_classes}",
                hint="the label width must equal num_classes",
            )
        return
    if names in (["indices"], ["indices", "values"], ["indices", "values", "tail"]):
        k = got[0][2]
        if len(k) != 1 or not 1 <= k[0] <= num_classes:
            raise HeaderError(
                f"header '{where}': top-k indices of shape {k}, expected [k] with 1 <= k <= num_classes ({num_classes})"
            )
        if len(got) > 1 and got[1][2] != k:
            raise HeaderError(f"header '{where}': values of shape {got[1][2]}, indices of shape {k}")
        if len(got) > 2 and got[2][2] != []:
            raise HeaderError(f"header '{where}': the tail is one number per record, got shape {got[2][2]}")
        return
    raise HeaderError(
        f"header '{where}' has fields {names}, expected ['logits'], ['indices'], "
        "['indices', 'values'] or ['indices', 'values', 'tail']"
    )


def build_header(
    *,
    num_classes,
    images: dict,
    epochs,
    steps_per_epoch,
    batch_size,
    drop_last,
    augmentation,
    teacher,
    columns,
    steps_per_chunk,
    segment_bytes,
    seed,
    selection,
    extensions,
    records=0,
    steps=0,
    version=FORMAT_VERSION,
    tool_extra=None,
) -> dict:
    from .._version import __version__

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
