"""Optional compiled loops: a kernel module of this package when numba can be used, else None.

numba is an optional dependency (the ``rans`` extra). Codecs whose numpy code is the reference
(``entryorder``, ``delta``, ``classmap``, ``sort``, and the one-pass decode of :mod:`.fused`) ask here
for their compiled loops and fall back to numpy (codec by codec) when there are none; the results are
identical either way (tests/test_entryorder_kernels.py, tests/test_sort_kernels.py).
"""

from __future__ import annotations

import importlib

#: the modules of compiled loops asked for through :func:`compiled` (hide them all, e.g.
#: ``_FOUND.update(dict.fromkeys(MODULES))``, to run what an install without numba runs)
MODULES = ("_entryorder_kernels", "_row_kernels", "_fused_kernels")

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
