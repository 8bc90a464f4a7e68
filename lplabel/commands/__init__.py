"""CLI commands beyond info/verify/demo, one module per command family.

Each module defines click commands and registers them with :func:`._common.register`;
``lplabel.cli`` adds them to its group. Importing this package imports them all.
"""

from . import bench, codec_tools, generator, interop, onnx, relabel  # noqa: F401  (register their commands)
from ._common import COMMANDS  # noqa: F401
