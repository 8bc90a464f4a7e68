"""lplabel: store, compress and serve the soft labels of relabel-style dataset distillation.

Core objects: :class:`StoreWriter` writes a label store step by step, :func:`open_store` reads
one, :mod:`lplabel.codecs` holds the codecs that shrink it. See spec/FORMAT.md for the format.
The Python API of every ``lplabel`` command is :mod:`lplabel.api` (docs/api.md).
"""

from ._version import __version__  # noqa: E402  (one owner; pyproject repeats it)

from .errors import LplabelError  # noqa: E402
from .images import ImageIndex, ImageSet  # noqa: E402
from .store import LabelStore, StepRecords, StoreWriter, open_store, store_info, verify_store  # noqa: E402

__all__ = [
    "LabelStore",
    "LplabelError",
    "ImageIndex",
    "ImageSet",
    "StepRecords",
    "StoreWriter",
    "open_store",
    "store_info",
    "verify_store",
    "__version__",
]
