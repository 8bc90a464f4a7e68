"""Tell which legacy layout a label directory has (``--from auto``).

=========  ======================================================================================
layout     what identifies it
=========  ======================================================================================
lpld       ``epoch_<e>/`` folders and ``sampler_indices_epoch.json``
sre2l      ``epoch_<e>/`` folders, no sampler JSON, batch lists of 6 items (SRe2L, CDA)
gvbsm      ``epoch_<e>/`` folders, no sampler JSON, batch lists of 7 (G-VBSM) or 8 (EDC) items
           whose 7th item is the int64 [B] tensor of dataset indices
lpqld      flat ``batch_<g>.tar`` files and ``sampler_indices_batch.json``
fkd        ``.tar`` files named after images, in class folders (``<class>/<image>.tar``)
=========  ======================================================================================

Directories that mix these (epoch folders *and* flat batch files, both JSON files, ...) or
match none of them raise :class:`UnknownLayoutError` saying what was found.
"""

from __future__ import annotations

import os
from pathlib import Path

from .common import BATCH_RE, EPOCH_RE, visible
from .errors import UnknownLayoutError

LAYOUTS = ("sre2l", "lpld", "lpqld", "fkd", "gvbsm")
LPLD_JSON = "sampler_indices_epoch.json"
LPQLD_JSON = "sampler_indices_batch.json"


def find_fkd_file(root: Path):
    """The first ``*.tar`` file below ``root`` (in sorted walk order) that is not a batch file."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if visible(d))
        for f in sorted(filenames):
            if visible(f) and f.endswith(".tar") and not BATCH_RE.match(f):
                return Path(dirpath, f)
    return None


def detect_layout(root) -> str:
    """The legacy layout of directory ``root`` (one of :data:`LAYOUTS`)."""
    import torch

    root = Path(root)
    if not root.exists():
        raise UnknownLayoutError("no such directory", path=root)
    if not root.is_dir():
        raise UnknownLayoutError("not a directory; legacy label sets are directories of .tar files", path=root)
    entries = [e for e in os.scandir(root) if visible(e.name)]
    epoch_dirs = sorted((e for e in entries if EPOCH_RE.match(e.name) and e.is_dir()), key=lambda e: e.name)
    flat = [e for e in entries if BATCH_RE.match(e.name) and e.is_file()]
    lpld_json = (root / LPLD_JSON).is_file()
    lpqld_json = (root / LPQLD_JSON).is_file()
    found = []
    if epoch_dirs:
        found.append(f"{len(epoch_dirs)} epoch_<e> folders")
    if flat:
        found.append(f"{len(flat)} flat batch_<g>.tar files")
    if lpld_json:
        found.append(LPLD_JSON)
    if lpqld_json:
        found.append(LPQLD_JSON)
    mixed = (epoch_dirs and flat) or (lpld_json and lpqld_json) or (epoch_dirs and lpqld_json) or (flat and lpld_json)
    if mixed:
        raise UnknownLayoutError(
            f"mixed legacy layouts in one directory: {', '.join(found)}",
            path=root,
            hint="an LPLD/SRe2L directory has epoch_<e>/ folders, an LPQLD one flat batch files "
            "and its own JSON; separate them",
        )
    if epoch_dirs:
        if lpld_json:
            return "lpld"
        from .safe_load import load_legacy_file

        first = Path(epoch_dirs[0].path) / "batch_0.tar"
        if not first.is_file():
            raise UnknownLayoutError("epoch folder without batch_0.tar", path=Path(epoch_dirs[0].path))
        obj = load_legacy_file(first, "batch")
        if (
            isinstance(obj, list)
            and len(obj) in (7, 8)
            and isinstance(obj[6], torch.Tensor)
            and obj[6].dim() == 1
            and not obj[6].is_floating_point()
        ):
            return "gvbsm"
        if isinstance(obj, list) and len(obj) == 6:
            return "sre2l"
        raise UnknownLayoutError(
            f"batch files hold a {type(obj).__name__}"
            + (f" of {len(obj)} items" if isinstance(obj, list) else "")
            + "; SRe2L/CDA batches hold 6 items, G-VBSM 7, EDC 8",
            path=first,
        )
    if flat:
        if lpqld_json:
            return "lpqld"
        raise UnknownLayoutError(
            f"flat batch_<g>.tar files without {LPQLD_JSON}",
            path=root,
            hint="LPQLD directories need their sampler JSON to know each batch's images",
        )
    if lpld_json or lpqld_json:
        raise UnknownLayoutError(f"a sampler JSON but no batch files ({', '.join(found)})", path=root)
    if find_fkd_file(root) is not None:
        return "fkd"
    raise UnknownLayoutError(
        "no legacy label files found (no epoch_<e>/ folders, batch_<g>.tar files or <class>/<image>.tar files)",
        path=root,
        hint=f"layouts lplabel imports: {', '.join(LAYOUTS)}",
    )
