"""Alias: ``lplabel.demo`` is :mod:`lplabel.experiment.demo` (moved by issue 14, tools/regroup.py).

Kept for one release: import the new path. The old name is bound to the same module object in ``sys.modules``
(not a copy), so monkeypatching, pickles and ``importlib`` look-ups through it reach the real
module, and importing it warns about nothing.
"""

# lplabel-regroup alias
import sys

from .experiment import demo as _moved

sys.modules[__name__] = _moved
