"""Compare legacy label objects and directories exactly (types, dtypes, shapes, bits).

Used by the round-trip tests and the benchmark to show that legacy -> lplabel -> legacy gives
back what the files held: the same file names, the same JSON bytes and, for every batch file,
the same object tree (Python types, tensor/array dtypes and shapes, values bit for bit) and the
same tensor storage bytes inside the zip container.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from .safe_load import load_legacy_file
from .synth import tree_files


def object_diffs(a, b, where: str = "") -> list:
    """Differences between two loaded legacy objects (empty when identical)."""
    import torch

    out = []
    if type(a) is not type(b):
        return [f"{where or 'root'}: type {type(a).__name__} != {type(b).__name__}"]
    if isinstance(a, (list, tuple)):
        if len(a) != len(b):
            return [f"{where}: length {len(a)} != {len(b)}"]
        for i, (x, y) in enumerate(zip(a, b)):
            out += object_diffs(x, y, f"{where}[{i}]")
        return out
    if isinstance(a, dict):
        if list(a) != list(b):
            return [f"{where}: keys differ"]
        for key in a:
            out += object_diffs(a[key], b[key], f"{where}[{key!r}]")
        return out
    if isinstance(a, torch.Tensor):
        if a.dtype != b.dtype or tuple(a.shape) != tuple(b.shape):
            return [f"{where}: tensor {a.dtype}{tuple(a.shape)} != {b.dtype}{tuple(b.shape)}"]
        if a.requires_grad != b.requires_grad or a.device != b.device:
            return [f"{where}: tensor flags differ"]
        if a.contiguous().view(torch.uint8).numpy().tobytes() != b.contiguous().view(torch.uint8).numpy().tobytes():
            return [f"{where}: tensor values differ"]
        return []
    if isinstance(a, np.ndarray):
        if a.dtype != b.dtype or a.shape != b.shape:
            return [f"{where}: array {a.dtype}{a.shape} != {b.dtype}{b.shape}"]
        if np.ascontiguousarray(a).tobytes() != np.ascontiguousarray(b).tobytes():
            return [f"{where}: array values differ"]
        return []
    if isinstance(a, np.generic):
        if a.dtype != b.dtype or a.tobytes() != b.tobytes():
            return [f"{where}: numpy scalar {a!r} != {b!r}"]
        return []
    if isinstance(a, float):
        if np.float64(a).tobytes() != np.float64(b).tobytes():
            return [f"{where}: float {a!r} != {b!r}"]
        return []
    if a != b:
        return [f"{where}: {a!r} != {b!r}"]
    return []


def storage_diffs(a: Path, b: Path) -> list:
    """Differences between the zip members of two torch.save files: the pickle and every tensor
    storage record must be byte-identical (``.data/serialization_id`` and the archive's top-level
    folder name are ignored)."""

    def members(p):
        with zipfile.ZipFile(p) as z:
            out = {}
            for n in z.namelist():
                inner = n.split("/", 1)[1] if "/" in n else n
                if inner == ".data/serialization_id":
                    continue
                out[inner] = z.read(n)
            return out

    ma, mb = members(a), members(b)
    if sorted(ma) != sorted(mb):
        return [f"{b.name}: zip members {sorted(ma)} != {sorted(mb)}"]
    return [f"{b.name}: zip member {k} differs" for k in sorted(ma) if ma[k] != mb[k]]


def compare_dirs(a, b, *, profile: str | None = None, storages: bool = True, limit: int = 20) -> list:
    """Differences between two legacy label directories (empty list: identical).

    ``profile`` is the safe-load allowlist (``"batch"`` for the per-batch layouts, ``"fkd"`` for
    FKD's numpy lists); None infers it from ``a``'s layout (:func:`~lplabel.interop.detect_layout`)."""
    a, b = Path(a), Path(b)
    if profile is None:
        from .detect import detect_layout

        profile = "fkd" if detect_layout(a) == "fkd" else "batch"
    fa, fb = tree_files(a), tree_files(b)
    if fa != fb:
        only_a, only_b = sorted(set(fa) - set(fb))[:5], sorted(set(fb) - set(fa))[:5]
        return [f"file lists differ: only in {a}: {only_a}; only in {b}: {only_b}"]
    diffs = []
    for rel in fa:
        pa, pb = a / rel, b / rel
        if rel.endswith(".json"):
            if pa.read_bytes() != pb.read_bytes():
                diffs.append(f"{rel}: JSON bytes differ")
            continue
        d = object_diffs(load_legacy_file(pa, profile), load_legacy_file(pb, profile))
        diffs += [f"{rel}: {x}" for x in d]
        if storages and not d:
            diffs += storage_diffs(pa, pb)
        if len(diffs) >= limit:
            break
    return diffs
