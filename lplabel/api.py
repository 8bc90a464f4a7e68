"""The Python API of the ``lplabel`` commands: one function per verb, paths in, results out.

Every command of the CLI parses its arguments, calls the function of the same name here and
prints its result with :mod:`lplabel.store.text`; nothing a command does is out of reach of a
Python user, and nothing here imports click. Reference with examples: docs/api.md.

=========================  =====================================================================
function                   returns
=========================  =====================================================================
:func:`encode`             :class:`RecodeResult` (lossless re-encoding; a legacy directory too)
:func:`quantize`           :class:`RecodeResult` (top-k / value quantization, the loss named)
:func:`prune`              :class:`RecodeResult` (a fraction of the steps, the selection recorded)
:func:`import_legacy`      :class:`ImportReport` (legacy directory -> store)
:func:`export_legacy`      :class:`ExportReport` (store -> legacy directory)
:func:`merge`              :class:`MergeResult` (relabel shards -> one store)
:func:`compare`            dict: fidelity metrics and size facts (``lplabel compare --json``)
:func:`info`               dict: counts, codecs, bytes by field (``lplabel info --json``)
:func:`show`               dict: one step's views and top classes (``lplabel show --json``)
:func:`verify`             :class:`VerifyReport` (``status``, ``exit_status``, ``problems``)
=========================  =====================================================================

The dicts are the ``--json`` documents, whose keys spec/FORMAT.md documents; the classes are
small dataclasses. Errors are :class:`lplabel.errors.LplabelError` subclasses that name the file
and the fix. Importing this module does not import torch: :func:`merge` loads the relabeler
(which needs torch) when called. ``lplabel relabel``'s API is :func:`lplabel.relabel.run_relabel`.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from .reconstruct.fidelity import compare_stores
from .interop import ExportReport, ImportReport, export_legacy, import_legacy
from .recode import RecodeResult, encode, prune, quantize
from .store import VerifyReport
from .store import store_info as info
from .store import verify_store as verify
from .store.info import peek_step as show

__all__ = [
    "encode",
    "quantize",
    "prune",
    "import_legacy",
    "export_legacy",
    "merge",
    "compare",
    "info",
    "show",
    "verify",
    "RecodeResult",
    "ImportReport",
    "ExportReport",
    "MergeResult",
    "VerifyReport",
]


@dataclass(frozen=True)
class MergeResult:
    """What :func:`merge` wrote: the merged store's ``path``, and the work directories it deleted
    afterwards (``remove_sources``)."""

    path: Path
    removed: tuple = ()


def merge(
    sources: Sequence,
    out,
    *,
    force: bool = False,
    allow_incomplete: bool = False,
    remove_sources: bool = False,
    progress: bool | None = None,
    log: Callable[[str], None] | None = None,
) -> MergeResult:
    """``lplabel merge``: join relabel shards (work directories and/or ``.lpl`` shard stores of one
    run) into the store ``out``; see :func:`lplabel.relabel.merge` for the rules. With
    ``remove_sources`` the merged work directories are deleted once the store is complete
    (``.lpl`` shards are kept)."""
    from .relabel import merge as merge_shards
    from .relabel.workdir import WorkDir

    path = merge_shards(
        list(sources), Path(out), force=force, allow_incomplete=allow_incomplete, progress=progress, log=log
    )
    removed = []
    if remove_sources:
        for s in sources:
            if Path(s).is_dir() and WorkDir(s).exists():
                shutil.rmtree(s, ignore_errors=True)
                removed.append(Path(s))
    return MergeResult(path, tuple(removed))


def compare(reference, candidate, *, mode: str = "auto", progress: bool | None = None) -> dict:
    """``lplabel compare``: fidelity of the lossy store ``candidate`` against ``reference`` (paths
    or open stores) over the steps both hold -- top-1 agreement, top-5 overlap, KL and TV at T=1
    and T=20, both stores' size facts; see :mod:`lplabel.reconstruct.fidelity`. ``progress``: False for
    none; None or True for a bar on a terminal (plain lines otherwise)."""
    from .progress import progress_bar

    bar = progress_bar(None, "compare", progress)
    try:
        return compare_stores(reference, candidate, mode=mode, progress=bar.update)
    finally:
        bar.close()
