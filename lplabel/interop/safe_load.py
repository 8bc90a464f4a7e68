"""Load legacy ``torch.save`` label files without executing arbitrary pickles.

Every legacy file is read with ``torch.load(weights_only=True)``: PyTorch's restricted
unpickler, which builds tensors, storages and a few builtins and refuses every other global.
On top of that set we allow exactly the numpy globals the legacy generators pickle:

* ``"batch"`` profile (SRe2L, CDA, LPLD, LPQLD, G-VBSM, EDC batch files): the CutMix box of
  SRe2L/LPLD/G-VBSM is a list of four ``numpy.int64`` scalars (``np.clip`` returns them), which
  pickle as ``numpy.core.multiarray.scalar`` (``numpy._core`` under numpy 2) plus the
  ``numpy.dtype`` of int64. Nothing else numpy.
* ``"fkd"`` profile (FKD per-image files): ``numpy.ndarray`` objects (``_reconstruct`` +
  ``ndarray`` + ``dtype``) of float16, float32, bool and int64.

The ``dtype`` *classes* are listed one by one (``Int64DType`` ...): the restricted unpickler only
calls ``__setstate__`` on allowlisted types, so a pickle that asks for any other dtype (object
arrays included) is refused before anything of it is built. Both module spellings of the numpy
reconstruct functions are allowed (files written under numpy 1.x say ``numpy.core``; numpy 2
writes ``numpy._core``). A file that needs anything else raises
:class:`~lplabel.interop.errors.UnsafeLegacyFileError` naming the file and the offending global;
it is never unpickled with ``weights_only=False``.

Callers still validate the *structure* of what was loaded (list length, element types, dtypes,
shapes) against the layout; this module only guarantees that loading executed no foreign code.
"""

from __future__ import annotations

import pickle
import re
import zipfile
from pathlib import Path

import numpy as np

from .errors import LegacyFormatError, UnsafeLegacyFileError

#: numpy dtypes each profile may contain.
PROFILE_DTYPES = {
    "batch": ("int64",),
    "fkd": ("float16", "float32", "bool", "int64"),
}
PROFILES = tuple(PROFILE_DTYPES)


def _multiarray():
    try:
        from numpy._core import multiarray  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray
    return multiarray


def allowed_globals(profile: str) -> list:
    """The extra globals (beyond PyTorch's own weights-only set) allowed for ``profile``.

    Entries are objects or ``(object, "module.name")`` aliases, as
    ``torch.serialization.safe_globals`` takes them.
    """
    if profile not in PROFILE_DTYPES:
        raise ValueError(f"unknown safe-load profile {profile!r}; choose one of {PROFILES}")
    ma = _multiarray()
    names = ["scalar"] if profile == "batch" else ["_reconstruct"]
    out: list = []
    for name in names:
        fn = getattr(ma, name)
        for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
            out.append((fn, f"{mod}.{name}"))
    if profile == "fkd":
        out.append(np.ndarray)
    out.append(np.dtype)
    out.extend(type(np.dtype(n)) for n in PROFILE_DTYPES[profile])
    return out


def _context(profile: str):
    import torch.serialization as ts

    entries = allowed_globals(profile)
    if hasattr(ts, "safe_globals"):
        try:
            return ts.safe_globals(entries)
        except (TypeError, ValueError):  # pragma: no cover - torch without (obj, name) aliases
            return ts.safe_globals([e[0] if isinstance(e, tuple) else e for e in entries])
    if hasattr(ts, "add_safe_globals"):  # pragma: no cover - torch 2.4
        import contextlib

        ts.add_safe_globals([e[0] if isinstance(e, tuple) else e for e in entries])
        return contextlib.nullcontext()
    raise LegacyFormatError(  # pragma: no cover - torch < 2.4
        "this PyTorch cannot restrict what torch.load unpickles beyond tensors",
        hint="install torch >= 2.5 to import legacy label files safely",
    )


_WHY = (
    re.compile(r"unsupported GLOBAL ([\w.]+)", re.I),
    re.compile(r"Can only build [^\n]*?got (<class '[\w.]+'>)"),
    re.compile(r"WeightsUnpickler error: ([^\n]+)"),
)


def _why(msg: str) -> str:
    m = _WHY[0].search(msg)
    if m:
        return f"it needs the global {m.group(1)}"
    m = _WHY[1].search(msg)
    if m:
        return f"it builds an object of type {m.group(1)}"
    m = _WHY[2].search(msg)
    if m:
        return m.group(1).strip()[:300]
    lines = [ln.strip() for ln in msg.splitlines() if ln.strip() and "documentation" not in ln]
    return lines[-1][:300] if lines else "refused by the weights-only unpickler"


def load_legacy_file(path, profile: str = "batch"):
    """``torch.load`` one legacy file with the restricted unpickler (see the module doc).

    Raises UnsafeLegacyFileError when the file needs a global outside the allowed set, and
    LegacyFormatError when it is not a readable ``torch.save`` file at all.
    """
    import torch

    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as e:
        raise LegacyFormatError(f"cannot read the file ({e.strerror})", path=path) from None
    if size == 0:
        raise LegacyFormatError("the file is empty", path=path, hint="regenerate it or remove the partial directory")
    try:
        with _context(profile):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise UnsafeLegacyFileError(
            f"refusing to unpickle: {_why(str(e))}",
            path=path,
            hint="legacy label files hold only tensors, Python numbers, None and (FKD) numpy arrays; this file "
            "holds other types, so it is not a label file of the chosen layout (it was not executed)",
        ) from None
    except (
        RuntimeError,
        EOFError,
        OSError,
        zipfile.BadZipFile,
        ValueError,
        KeyError,
        IndexError,
        AttributeError,
        TypeError,
    ) as e:
        msg = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        raise LegacyFormatError(
            f"not a readable torch.save file ({msg})",
            path=path,
            hint="the file is truncated or damaged; regenerate or re-copy it",
        ) from None
