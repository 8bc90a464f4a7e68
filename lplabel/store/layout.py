"""Names and constants of the v1 on-disk layout (spec/FORMAT.md is the normative text)."""

from __future__ import annotations

FORMAT_NAME = "lplabel"
FORMAT_VERSION = (1, 0)
#: The version of stores with packed tables (spec §1.5); stores without them stay 1.0.
FORMAT_VERSION_PACKED = (1, 1)
#: Format 1.2 (spec §8): a packed store whose view columns are derived by ``lplabel-views-v2``.
FORMAT_VERSION_V2_VIEWS = (1, 2)
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"

ATTR_FORMAT = "lplabel_format"
ATTR_VERSION = "lplabel_version"
ATTR_HEADER_CRC = "header_crc32"
#: attribute of dataset ``header``: a convenience copy of the header JSON as an HDF5 string, for
#: h5dump/h5ls (spec §1.2); lplabel never reads it
ATTR_HEADER_JSON = "json"
#: the copy is left out when the header is larger (HDF5 keeps attributes below 64 KiB compact)
HEADER_JSON_MAX = 65000
ATTR_CRC = "crc32"

HEADER = "header"
#: packed stores (spec §1.5): every table below in one zstd frame
PACKED_TABLES = "tables"
IMAGE_KEYS = "images/keys"
IMAGE_CLASS = "images/class"
#: int32 [N, 2] (H, W) of each image; only in stores with derived view columns (spec §1.4).
IMAGE_SIZE = "images/size"
STEP_EPOCH = "steps/epoch"
STEP_STEP = "steps/step"
STEP_RECORD_START = "steps/record_start"
STEP_MIX_LAMBDA = "steps/mix_lambda"
STEP_MIX_BOX = "steps/mix_box"
CHUNK_STEP_START = "chunks/step_start"

#: The per-record columns every v1 store has, in this order; ``label`` holds the soft labels.
COLUMNS = ("image", "crop", "flip", "mix_partner", "label")
CONFIG_COLUMNS = ("image", "crop", "flip", "mix_partner")

#: The small arrays read (and checksum-checked) whenever a store is opened.
TABLES = (IMAGE_CLASS, STEP_EPOCH, STEP_STEP, STEP_RECORD_START, STEP_MIX_LAMBDA, STEP_MIX_BOX, CHUNK_STEP_START)


def column_group(name: str) -> str:
    return f"columns/{name}"


def column_chunks(name: str) -> str:
    return f"columns/{name}/chunks"


def column_crc(name: str) -> str:
    return f"columns/{name}/crc32"


def segment_name(name: str, i: int) -> str:
    return f"columns/{name}/seg_{i:06d}"
