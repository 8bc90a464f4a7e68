"""Alias: ``lplabel.models`` is :mod:`lplabel.teachers.models` (moved by issue 14, tools/regroup.py).

Kept for good: teacher specs ``lplabel.models:NAME`` are written into store
headers. The old name is bound to the same module object in ``sys.modules``
(not a copy), so monkeypatching, pickles and ``importlib`` look-ups through it reach the real
module, and importing it warns about nothing.
"""

# lplabel-regroup alias
import sys

from .teachers import models as _moved

sys.modules[__name__] = _moved
