"""Optional dependencies: which package each optional part of lplabel needs, and the named error
a command stops with (before doing any work) when it is missing.

A plain ``pip install lplabel`` brings what the store tools need to read a user's inputs and
files: numpy, h5py, zstandard, click, tqdm and Pillow (JPEG/PNG image folders). Everything
else is optional, grouped in pyproject's extras:

======================  ===============  ===================================================
module                  extra            needed by
======================  ===============  ===================================================
``torch``               ``torch``        relabel, merge, export/import of ``torch.save``
                                         files, the loader (``lplabel.torch``), bench, demo
``sklearn``             ``bench``        the bundled ``digits`` data set (bench, demo)
``matplotlib``          ``bench``        ``bench accuracy``'s plot
``numba``               ``rans``         the ``rans`` label layout (``--layout rans``)
``onnxruntime``         ``onnx``         ``.onnx`` teachers (relabel), ``export-teacher``
``onnx``                ``onnx``         ``export-teacher`` (writes the file's metadata)
======================  ===============  ===================================================

torch is best installed on its own, first and pinned (``pip install torch==2.13.0``): the
``torch`` extra asks pip for any torch, and on Linux pip's default is a CUDA build of several GB.
"""

from __future__ import annotations

import importlib.util

from .errors import LplabelError

#: import name -> (distribution to install, lplabel extra that brings it)
OPTIONAL = {
    "torch": ("torch", "torch"),
    "sklearn": ("scikit-learn", "bench"),
    "matplotlib": ("matplotlib", "bench"),
    "numba": ("numba", "rans"),
    "onnxruntime": ("onnxruntime", "onnx"),
    "onnx": ("onnx", "onnx"),
}


class MissingDependencyError(LplabelError, ImportError):
    """An optional package that this command or data set needs is not installed."""


def install_hint(module: str) -> str:
    """What to run to get ``module``."""
    dist, extra = OPTIONAL[module]
    if module == "torch":
        return f"install torch first, e.g. pip install torch==2.13.0 (or: pip install 'lplabel[{extra}]')"
    return f"pip install 'lplabel[{extra}]' (or: pip install {dist})"


def missing(module: str, what: str) -> MissingDependencyError:
    """The error for ``what`` needing the absent optional ``module``."""
    dist, _ = OPTIONAL[module]
    return MissingDependencyError(f"{what} needs {dist}, which is not installed here", hint=install_hint(module))


def available(module: str) -> bool:
    """Whether ``module`` can be found (without importing it: torch takes seconds to import)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def require(module: str, what: str) -> None:
    """Raise :class:`MissingDependencyError` naming ``what`` and the extra unless ``module`` is
    installed. Call it where a command starts, before any work."""
    if not available(module):
        raise missing(module, what)


def from_import_error(e: ImportError, what: str = "this command") -> MissingDependencyError | None:
    """The named error for an ``ImportError`` of a known optional package (its top-level name),
    or None for anything else (a real bug, which must keep its traceback)."""
    name = (getattr(e, "name", None) or "").split(".")[0]
    if isinstance(e, ModuleNotFoundError) and name in OPTIONAL:
        return missing(name, what)
    return None
