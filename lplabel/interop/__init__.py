"""Import and export the soft-label directories of SRe2L/CDA, LPLD, LPQLD, FKD and G-VBSM/EDC.

:func:`import_legacy` streams a legacy directory (one batch file at a time, bounded memory)
into a label store, bit-exactly by default; :func:`export_legacy` writes a store back as a
directory the original training scripts read unchanged. Legacy files are unpickled with
``torch.load(weights_only=True)`` and a minimal allowlist (:mod:`.safe_load`). The mapping of
every legacy field is in docs/interop.md and in the module docs of :mod:`.records`,
:mod:`.sre2l`, :mod:`.lpld`, :mod:`.lpqld` and :mod:`.fkd`.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import OutputExistsError
from .common import ExportReport, ImportReport, du_bytes
from .detect import LAYOUTS, detect_layout
from .errors import (
    LegacyExportError,
    LegacyFormatError,
    UnknownLayoutError,
    UnsafeLegacyFileError,
    UnsupportedLegacyFeatureError,
)
from .export import EXPORT_LAYOUTS
from .safe_load import load_legacy_file
from .sre2l import REPLAY_MODES, sampler_order

__all__ = [
    "import_legacy",
    "export_legacy",
    "detect_layout",
    "load_legacy_file",
    "sampler_order",
    "LAYOUTS",
    "EXPORT_LAYOUTS",
    "REPLAY_MODES",
    "ImportReport",
    "ExportReport",
    "LegacyFormatError",
    "UnknownLayoutError",
    "UnsafeLegacyFileError",
    "UnsupportedLegacyFeatureError",
    "LegacyExportError",
    "du_bytes",
]


def import_legacy(
    src_dir,
    out_path,
    *,
    layout: str = "auto",
    codecs=None,
    force: bool = False,
    progress: bool = True,
    images=None,
    num_images: int | None = None,
    num_classes: int | None = None,
    seed: int = 42,
    order=None,
    replay: str = "torch>=1.11",
    steps_per_epoch: int | None = None,
    fkd_values: str = "logprob",
    fkd_temperature: float = 1.0,
    input_size: int | None = None,
    steps_per_chunk: int | None = None,
    zstd_level: int = 3,
) -> ImportReport:
    """Import a legacy soft-label directory into a new label store ``out_path``.

    Parameters
    ----------
    src_dir: the legacy directory (SRe2L ``--fkd-path``, LPLD/LPQLD ``fkd_path``, FKD ``--save_path``).
    layout: ``"auto"`` (detect, see :mod:`.detect`) or one of :data:`LAYOUTS`.
    codecs: label codec chain (list of codecs or ``{"name", "configuration"}`` dicts, or JSON
        text). Default: the lossless chain for the legacy dtype (dense fp16, or top-k fp16 values
        with int16 indices for LPQLD), then byte shuffle and zstd.
    force: replace an existing ``out_path`` (only once the new store is complete).
    progress: show a tqdm bar on stderr.
    images: the distilled image set the labels index: an ImageFolder directory (keys and
        classes are listed, pixels not read), an :class:`~lplabel.images.ImageSet` /
        ``ImageIndex``, or a text/JSON file of keys. Default: keys ``"0" .. "N-1"``.
    num_images: N when the files cannot tell it (LPLD/LPQLD with ``drop_last``).
    num_classes: C for top-k labels (LPQLD, FKD), which do not record it.
    seed, order, replay: SRe2L only: the sampler seed (``--fkd-seed``, 42), an explicit order
        file (LPLD-style JSON ``{"<epoch>": [ids]}`` or ``.npy`` [epochs, N]) used instead of the
        replay, and the replay mode (:data:`REPLAY_MODES`, see :mod:`.sre2l`).
    steps_per_epoch: LPQLD only: batches per epoch (default: inferred from the sampler JSON).
    fkd_values, fkd_temperature: FKD only: ``"logprob"`` (default) or ``"prob"``, and the
        ``--temp`` the probabilities were taken at (recorded as the teacher temperature).
    input_size: the relabel ``--input-size`` (for the header's view policy; files do not say).
    steps_per_chunk, zstd_level: writer settings (steps per chunk: default
        :func:`lplabel.selection.schedule.default_steps_per_chunk` of a full store, 8; FKD: 1).

    Returns an :class:`ImportReport`. Raises a :class:`LegacyFormatError` subclass naming the
    file for bad input; nothing is left at ``out_path`` then.
    """
    src = Path(src_dir)
    out = Path(out_path)
    if out.exists() and not force:
        raise OutputExistsError("output exists", path=out, hint="choose another name or pass --force")
    if layout == "auto":
        layout = detect_layout(src)
    elif layout not in LAYOUTS:
        raise UnknownLayoutError(
            f"unknown legacy layout {layout!r}", hint=f"choose auto or one of {', '.join(LAYOUTS)}"
        )
    elif not src.is_dir():
        raise UnknownLayoutError("not a directory", path=src)
    common = dict(
        codecs=codecs,
        force=force,
        progress=progress,
        images=images,
        num_images=num_images,
        num_classes=num_classes,
        steps_per_chunk=steps_per_chunk,
        zstd_level=zstd_level,
    )
    if layout == "fkd":
        from .fkd import import_fkd

        return import_fkd(src, out, values=fkd_values, temperature=fkd_temperature, **common)
    from .batches import run_import
    from .source import make_plan

    plan = make_plan(
        src, layout, seed=seed, order=order, replay=replay, num_images=num_images, steps_per_epoch=steps_per_epoch
    )
    return run_import(plan, out, input_size=input_size, **common)


def export_legacy(
    store,
    out_dir,
    *,
    layout: str,
    force: bool = False,
    progress: bool = True,
    k: int | None = None,
    seed: int | None = None,
    replay: str | None = None,
    allow_gaps: bool = False,
    plain_ints: bool = False,
) -> ExportReport:
    """Write label store ``store`` (path or open LabelStore) as legacy directory ``out_dir``.

    ``layout`` is one of :data:`EXPORT_LAYOUTS`; ``k`` picks LPQLD's MR-k for dense stores;
    ``seed``/``replay`` are the SRe2L sampler replay the store's order must match (default: what
    an SRe2L import recorded, else 42 and ``"torch>=1.11"``);
    ``allow_gaps`` writes epoch layouts even when epochs are incomplete; ``plain_ints`` writes
    the CutMix box as Python ints instead of ``numpy.int64`` (not bit-exact, but loadable with
    ``torch.load``'s default ``weights_only=True`` of torch >= 2.6). See :mod:`.export`.
    """
    from ..store import LabelStore
    from .export import export_legacy_store

    st = store if isinstance(store, LabelStore) else LabelStore(store)
    try:
        return export_legacy_store(
            st,
            Path(out_dir),
            layout,
            force=force,
            progress=progress,
            k=k,
            seed=seed,
            replay=replay,
            allow_gaps=allow_gaps,
            plain_ints=plain_ints,
        )
    finally:
        if st is not store:
            st.close()
