"""Optional compiled loops: a kernel module of this package when numba can be used, else None.

numba is an optional dependency (the ``rans`` extra). Codecs whose numpy code is the reference
(``entryorder``, ``delta``, ``classmap``, ``sort``) ask here for their compiled loops and fall back
to numpy when there are none; the results are identical either way (tests/test_entryorder_kernels.py,
tests/test_sort_kernels.py).
"""

from __future__ import annotations

import importlib

_FOUND: dict = {}


def compiled(module: str):
    """``lplabel.codecs.<module>`` (e.g. ``"_row_kernels"``) imported, or None when it cannot be
    (numba missing or broken); looked up once per process."""
    if module not in _FOUND:
        try:
            _FOUND[module] = importlib.import_module(f"{__package__}.{module}")
        except Exception:  # ImportError, or numba's own errors: numpy does the work
            _FOUND[module] = None
    return _FOUND[module]
