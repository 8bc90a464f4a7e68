"""Alias: ``lplabel.harness`` is :mod:`lplabel.experiment.harness` (moved by issue 14, tools/regroup.py).

Kept for one release: import the new path. The old name is bound to the same module object in ``sys.modules``
(not a copy), so monkeypatching, pickles and ``importlib`` look-ups through it reach the real
module, and importing it warns about nothing.
"""

# lplabel-regroup alias
import importlib
import sys

from .experiment import harness as _moved

# its submodules too: else `import lplabel.harness.X` would load a second copy of X
for _name in ("distill", "online", "report", "settings", "student", "sweep"):
    sys.modules[f"{__name__}.{_name}"] = importlib.import_module(f"{_moved.__name__}.{_name}")
sys.modules[__name__] = _moved
