"""The checksum every stored byte is covered by: CRC-32 (ISO-HDLC, the one in zlib and PNG).

Chosen because every language's standard library has it (Python: ``zlib.crc32``) and it runs
at several GB/s, so readers check each chunk on every read at negligible cost.
"""

from __future__ import annotations

import zlib

import numpy as np


def crc32(data) -> int:
    return zlib.crc32(data) & 0xFFFFFFFF


def crc32_array(a: np.ndarray) -> int:
    """CRC-32 of an array's raw bytes in C order (arrays in a store are little-endian)."""
    return crc32(np.ascontiguousarray(a).tobytes())
