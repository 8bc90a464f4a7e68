"""Stream steps from a source into a new label store with another codec chain.

The commands ``encode``, ``quantize`` and ``prune`` are one loop: read steps from a *source*
(an lplabel store here; a legacy LPLD/LPQLD directory reader can supply the same two things),
optionally skip some, and write them through :class:`~lplabel.store.StoreWriter` with a label
chain. Memory stays bounded by one step (plus the writer's chunk buffer).

A source is a :class:`SourceMeta` (what the header needs) and an iterator of
:class:`SourceStep`. ``SourceStep.label`` is a decoded label block, float32 where values are
floats: ``{"logits"}`` or ``{"indices", "values"[, "tail"]}``; or, when ``SourceMeta.stage`` > 0,
a block already encoded up to that stage of ``SourceMeta.codecs`` (used to copy quantized
labels bit-exactly, without re-quantizing).

The Python API of the three commands is :func:`encode`, :func:`quantize` and :func:`prune`
(paths in, a :class:`RecodeResult` out); :func:`build_chain` is the friendly-options chain they
learn, :func:`encode_source` the re-encoding of an already opened source. The click commands in
:mod:`lplabel.commands.codec_tools` only parse arguments, call them and print.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from .codecs import Pipeline
from .codecs.chains import (
    CLASS_ORDERS,  # noqa: F401
    default_level,  # noqa: F401
    keeps_order,
    learn_label_chain,  # noqa: F401  (re-exported)
    resolve_class_order,  # noqa: F401
    view_codecs,
    with_entry_order,  # noqa: F401
)
from .dtypes import holds_exactly, to_float32
from .errors import CodecConfigError, LplabelError, NoValuesError, OutputExistsError
from .images import ImageIndex
from .progress import progress_bar  # noqa: F401  (the one owner of progress output; re-exported)
from .selection.schedule import default_steps_per_chunk
from .sources import SourceMeta, SourceStep  # noqa: F401  (defined apart so source readers need not import recode)


class RecodeError(LplabelError):
    """A re-encoding request that cannot be carried out as asked."""


class SameFileError(RecodeError):
    """The output path names the input."""


class LossyChainError(RecodeError):
    """A chain that would lose information, where a lossless one was asked for."""


# -- an lplabel store as a source ---------------------------------------------------------------


def store_meta(store) -> SourceMeta:
    """:class:`SourceMeta` of an open :class:`~lplabel.store.LabelStore`."""
    from .reconstruct import tail_kind_of

    h = store.header
    img = h["images"]
    fp = img.get("fingerprint") or None
    images = ImageIndex(
        list(store.image_keys),
        np.asarray(store.image_classes),
        fp["value"] if fp else None,
        list(img.get("class_names") or []),
    )
    pipe = store.pipelines["label"]
    spec = pipe.input_spec
    names = [f.name for f in spec]
    tail = tail_kind_of(pipe)
    stored = {f.name: f.type for f in pipe.decoded_spec}
    quantized = any(c.name == "quantize" for c in pipe.codecs)
    if "logits" in names:
        chain_input = "logits"
    else:
        chain_input = _topk_input(dict((f.name, f.shape) for f in spec))
    if "logits" in stored:
        label_input = "logits"
    else:
        label_input = _topk_input(dict((f.name, f.shape) for f in pipe.decoded_spec))
    # "none": a top-k store of class indices only (topk type 'none')
    value_type = "quantized" if quantized else stored.get("values", stored.get("logits", "none"))
    crop_type = h["columns"]["crop"]["input"][0]["type"]
    names_in_chain = {c.name for c in pipe.codecs}
    # entries come in an order of the source's own making when the chain took top-k input and
    # never put them in a canonical order (an import from LPQLD/FKD), or when it kept that order
    keep_order = "values" in stored and (
        "entryorder" in names_in_chain or (chain_input != "logits" and not names_in_chain & {"sort", "rans"})
    )
    return SourceMeta(
        num_classes=store.num_classes,
        images=images,
        batch_size=store.batch_size,
        epochs=store.epochs,
        steps_per_epoch=store.steps_per_epoch,
        drop_last=bool(h.get("drop_last", False)),
        augmentation=h.get("augmentation") or {},
        teacher=h.get("teacher") or {},
        seed=h.get("seed"),
        selection=h.get("selection"),
        extensions=h.get("extensions") or None,
        crop_type=crop_type,
        steps_per_chunk=int(h["chunking"]["steps_per_chunk"]),
        label_input=label_input,
        value_type=value_type,
        tail=tail if "tail" in stored else "none",
        codecs=pipe.to_json(),
        chain_label_input=chain_input,
        stage=0,
        num_steps=store.num_steps,
        path=str(store.path),
        image_sizes=getattr(store, "image_sizes", None),
        keep_order=keep_order,
    )


VIEW_MODES = ("keep", "stored", "v2")


def views_for_copy(meta: SourceMeta, views: str = "keep", images=None) -> SourceMeta:
    """The ``meta`` a copy writes with, for ``lplabel encode --views``: what becomes of its view columns.

    ``"keep"``: derived stays derived (same sampler), stored stays stored. ``"stored"``: the views
    are written out (readable by any reader, any numpy). ``"v2"``: derived by ``lplabel-views-v2``
    (spec §11.3) — possible only for views that v2 drew: a v2-derived source is kept as it is; a
    stored-views source needs ``augmentation.sampler = "lplabel-views-v2"`` and its images
    (``images``, an ImageSet; their sizes are what a derived store records, and their keys and
    fingerprint must be the store's), and every step is checked on writing. Views of
    ``lplabel-views-v1`` or of another tool are other views (the labels belong to them): refused.
    Raises :class:`~lplabel.errors.WriterError` naming what to do.
    """
    import dataclasses

    from .errors import WriterError
    from .views import SAMPLER_V2

    if views not in VIEW_MODES:
        raise WriterError(f"views must be one of {', '.join(VIEW_MODES)}, got {views!r}")
    if views == "keep":
        return meta
    if views == "stored":
        return dataclasses.replace(meta, image_sizes=None)
    sampler = meta.augmentation.get("sampler") if isinstance(meta.augmentation, dict) else None
    if sampler != SAMPLER_V2:
        raise WriterError(
            f"the store's views were drawn by {sampler or 'an unknown sampler'}, not {SAMPLER_V2}: "
            "they cannot be derived by v2 (v2 draws other views, and the labels belong to these)",
            path=meta.path,
            hint="keep them as they are, or store them: --views stored",
        )
    if meta.crop_type != "float32":
        raise WriterError(
            f"the store's crops are {meta.crop_type}; derived views need float32 crops",
            path=meta.path,
            hint="use --views stored",
        )
    if meta.image_sizes is not None:  # derived by v2 already
        return meta
    if images is None:
        raise WriterError(
            "deriving stored views needs the images' sizes",
            path=meta.path,
            hint="pass the image set the store was relabelled from: --images PATH",
        )
    from .images import image_index

    have, want = image_index(images).header_entry(), meta.images.header_entry()
    for k in ("count", "keys_sha256") + (("fingerprint",) if want.get("fingerprint") else ()):
        if have.get(k) != want.get(k):
            raise WriterError(
                f"the given images are not the store's (their {k} differs)",
                path=meta.path,
                hint="pass the exact image set the store was relabelled from",
            )
    return dataclasses.replace(meta, image_sizes=np.asarray(images.sizes(), dtype=np.int32))


def _topk_input(shapes: dict):
    """The writer's label_input for top-k fields {name: shape}: ('topk', k), with 'tail' or
    'indices' (class indices only) as a third element."""
    k = shapes["indices"][0]
    if "values" not in shapes:
        return ("topk", k, "indices")
    return ("topk", k, "tail") if "tail" in shapes else ("topk", k)


def _float_label(block: dict, spec) -> dict:
    types = {f.name: f.type for f in spec}
    out = {}
    for k, v in block.items():
        t = types.get(k)
        if k == "indices":
            out[k] = np.asarray(v).astype(np.int64)
        elif t in ("float16", "bfloat16", "float32"):
            out[k] = to_float32(np.asarray(v), t)
        else:
            out[k] = np.asarray(v)
    return out


def store_steps(store, positions=None, stage: int = 0) -> Iterator[SourceStep]:
    """The stored steps (all, or those at ``positions``) as :class:`SourceStep`, labels decoded
    to float32 (``stage == 0``) or kept encoded up to ``stage`` of the store's chain."""
    from .store import layout as L

    pipe = store.pipelines["label"]
    dspec = pipe.decoded_spec
    cs = store.tables[L.CHUNK_STEP_START]
    rs = store.record_start
    cache = (None, None)
    for i in range(store.num_steps) if positions is None else positions:
        i = int(i)
        st = store.step_at(i, columns=("image", "crop", "flip", "mix_partner") + (("label",) if stage == 0 else ()))
        if stage == 0:
            label = _float_label(st.label, dspec)
        else:
            chunk = int(np.searchsorted(cs, i, side="right")) - 1
            if cache[0] != chunk:
                n = int(rs[cs[chunk + 1]] - rs[cs[chunk]])
                cache = (chunk, pipe.decode(store.read_chunk_bytes("label", chunk), n, stop=stage))
            base = rs[cs[chunk]]
            a, b = int(rs[i] - base), int(rs[i + 1] - base)
            label = {k: v[a:b] for k, v in cache[1].items()}
        yield SourceStep(
            st.epoch, st.step, st.image, st.crop, st.flip, st.mix_partner, st.mix_lambda, st.mix_box, label
        )


# -- checks ------------------------------------------------------------------------------------


def chain_loses(codecs, meta: SourceMeta) -> str | None:
    """Why ``codecs`` would lose information on labels from ``meta`` (None when lossless)."""
    if meta.value_type == "quantized":
        return None if codecs_prefix_equal(codecs, meta) else "re-quantizes quantized labels"
    first = codecs[0]
    for c in codecs:
        if c.name == "quantize":
            return "quantizes the values to integers"
    if first.name == "topk" and first.type == "none" and meta.value_type != "none":
        return "drops the values (keeps top-k class indices only)"
    if meta.label_input == "logits":
        if first.name == "topk":
            return f"keeps only the top {first.k} of {meta.num_classes} logits"
        if first.name == "dense" and not holds_exactly(src=meta.value_type, dst=first.type):
            return f"narrows {meta.value_type} logits to {first.type}"
        return None
    k = meta.label_input[1]
    if first.name != "topk":
        return None
    if first.k < k:
        return f"keeps {first.k} of the {k} stored entries"
    if not holds_exactly(src=meta.value_type, dst=first.type):
        return f"narrows {meta.value_type} values to {first.type}"
    if meta.tail != "none" and first.tail == "none":
        return f"drops the {meta.tail} tail summary"
    if meta.keep_order and not keeps_order(codecs):
        return (
            "reorders each record's entries, whose order among tied values is information here (legacy "
            "files list them in their generator's order; export would not give the same bytes back): put "
            '{"name": "entryorder"} right after topk'
        )
    return None


def codecs_prefix_equal(codecs, meta: SourceMeta) -> bool:
    """Does the chain start with the source chain's codecs up to and including its last quantize?"""
    from .codecs import get_codec

    src = [get_codec(c) for c in (meta.codecs or [])]
    last = max((i for i, c in enumerate(src) if c.name == "quantize"), default=-1)
    return len(codecs) > last and all(codecs[i] == src[i] for i in range(last + 1))


def check_paths(src, out, force: bool) -> Path:
    """Refuse an output that is the input, a directory, or exists without ``force``."""
    src_p, out_p = Path(src), Path(out)
    try:
        same = out_p.exists() and src_p.exists() and out_p.resolve() == src_p.resolve()
    except OSError:
        same = False
    if same or (not out_p.exists() and out_p.absolute() == src_p.absolute()):
        raise SameFileError(
            "the output is the input",
            path=out_p,
            hint="write to a new file, then replace the input yourself if you want to",
        )
    if out_p.is_dir():
        raise OutputExistsError("output is a directory", path=out_p, hint="give a file name ending in .lpl")
    if out_p.exists() and not force:
        raise OutputExistsError("output exists", path=out_p, hint="choose another name or pass --force")
    if not out_p.parent.exists():
        raise RecodeError("output directory does not exist", path=out_p.parent)
    return out_p


# -- writing -------------------------------------------------------------------------------------


def write_steps(
    meta: SourceMeta,
    steps: Iterable[SourceStep],
    out,
    label_codecs,
    *,
    selection="keep",
    steps_per_chunk: int | None = None,
    force: bool = False,
    stage: int = 0,
    zstd_level: int = 3,
    total: int | None = None,
    desc: str = "writing",
    on_step: Callable | None = None,
    store_views: bool = False,
    header_copy: bool | None = None,
) -> Path:
    """Write ``steps`` to a new store at ``out`` with ``label_codecs``; returns the path.

    ``selection``: ``"keep"`` copies ``meta.selection``; a dict (or None) replaces it.
    ``stage > 0``: step labels come encoded up to that stage (see :class:`SourceMeta`).
    The write is atomic: on any error nothing is left under ``out``. Derived view columns stay
    derived (``meta.image_sizes``) unless ``store_views`` or ``meta.crop_type`` is not float32
    (narrowed crops no longer equal the sampler's: they are stored). ``header_copy``: see
    :class:`lplabel.store.StoreWriter`.
    """
    from .store import StoreWriter

    sel = meta.selection if selection == "keep" else selection
    label_input = meta.chain_label_input if stage else meta.label_input
    writer = StoreWriter(
        out,
        num_classes=meta.num_classes,
        images=meta.images,
        batch_size=meta.batch_size,
        epochs=meta.epochs,
        steps_per_epoch=meta.steps_per_epoch,
        drop_last=meta.drop_last,
        label_codecs=label_codecs,
        label_input=label_input,
        crop_type=meta.crop_type,
        augmentation=meta.augmentation,
        teacher=meta.teacher,
        seed=meta.seed,
        selection=sel,
        extensions=meta.extensions,
        steps_per_chunk=steps_per_chunk or meta.steps_per_chunk,
        zstd_level=zstd_level,
        overwrite=force,
        label_stage=stage,
        view_codecs=view_codecs(zstd_level),
        derived_views=None if store_views or meta.crop_type != "float32" else meta.image_sizes,
        header_copy=header_copy,
    )
    bar = progress_bar(total, desc)
    try:
        for st in steps:
            kw = dict(
                image=st.image,
                crop=st.crop,
                flip=st.flip,
                mix_partner=st.mix_partner,
                mix_lambda=st.mix_lambda if st.mix_lambda is not None else math.nan,
                mix_box=st.mix_box,
            )
            lab = st.label
            if stage:
                kw["label_block"] = lab
            elif "logits" in lab:
                kw["logits"] = lab["logits"]
            else:
                kw["topk_indices"] = lab["indices"]
                if "values" in lab:  # absent in a store of class indices only
                    kw["topk_values"] = lab["values"]
                if "tail" in lab and tuple(meta.label_input)[2:] == ("tail",):
                    kw["topk_tail"] = lab["tail"]
            writer.write_step(st.epoch, st.step, **kw)
            bar.update(1)
            if on_step is not None:
                on_step(st)
        return writer.close()
    except BaseException:
        writer.abort()
        raise
    finally:
        bar.close()


# -- sources -------------------------------------------------------------------------------------


class StoreSource:
    """An lplabel store as a source of steps."""

    def __init__(self, path):
        from .store import LabelStore

        self.store = LabelStore(path)
        self.meta = store_meta(self.store)

    @property
    def label_pipeline(self):
        return self.store.pipelines["label"]

    def steps(self, positions=None, stage: int = 0) -> Iterator[SourceStep]:
        return store_steps(self.store, positions, stage)

    def close(self) -> None:
        self.store.close()


def _legacy_can_open(path) -> bool:
    from .interop.source import can_open

    return can_open(path)


def _open_legacy(path):
    from .interop.source import LegacySource

    return LegacySource(path)


#: Openers tried in order by :func:`open_source`: ``(name, can_open(path) -> bool, open(path) -> source)``.
#: The legacy label-directory reader (:mod:`lplabel.interop.source`, imported when first asked) is
#: built in, so what :func:`open_source` accepts does not depend on which modules were imported
#: before; :func:`register_source` adds others in front of it.
SOURCE_OPENERS: list = [("legacy", _legacy_can_open, _open_legacy)]


def register_source(name: str, can_open: Callable, opener: Callable) -> None:
    """Let ``lplabel encode`` read another kind of input (e.g. a legacy label directory).

    ``opener(path)`` returns an object with ``meta`` (:class:`SourceMeta`), ``steps(positions=None,
    stage=0)`` yielding :class:`SourceStep` in increasing (epoch, step) order, and ``close()``.
    """
    SOURCE_OPENERS.insert(0, (name, can_open, opener))


def open_source(path, kind: str | None = None):
    """Open ``path`` as a source of steps (an lplabel store unless a registered opener claims it)."""
    for name, can_open, opener in SOURCE_OPENERS:
        if (kind is not None and name == kind) or (kind is None and can_open(path)):
            return opener(path)
    if kind not in (None, "lplabel"):
        raise RecodeError(
            f"unknown source kind {kind!r}",
            path=path,
            hint=f"known: lplabel, {', '.join(n for n, _, _ in SOURCE_OPENERS) or '(none registered)'}",
        )
    return StoreSource(path)


def input_spec(meta: SourceMeta):
    """The label block spec a writer declares for ``meta.label_input``."""
    from .codecs import Field

    li = meta.label_input
    if li == "logits":
        return (Field("logits", "float32", (meta.num_classes,)),)
    if tuple(li)[2:] == ("indices",):  # class indices only
        return (Field("indices", "int64", (li[1],)),)
    spec = (Field("indices", "int64", (li[1],)), Field("values", "float32", (li[1],)))
    return spec + ((Field("tail", "float32", ()),) if tuple(li)[2:] == ("tail",) else ())


def sample_positions(num_steps: int, count: int) -> np.ndarray:
    """Up to ``count`` step positions spread evenly over ``num_steps``."""
    if num_steps <= count:
        return np.arange(num_steps)
    return np.unique(np.linspace(0, num_steps - 1, count).round().astype(np.int64))


class _SampledLabels:
    """The label blocks of ``source``'s steps at ``positions``, re-read on each ``iter`` (so
    learning a chain from them keeps memory bounded by one step)."""

    def __init__(self, source, positions):
        self.source, self.positions = source, positions

    def __iter__(self):
        return (st.label for st in self.source.steps(self.positions))


# -- the engine of `lplabel encode | quantize | prune`: a Python API ------------------------------

SAMPLE_STEPS = 256
#: zstd level of the view columns (image, crop, flip, mix partner): small, so a high level is cheap
VIEW_LEVEL = 19


class TailMismatchError(RecodeError):
    """A tail summary that cannot be derived from the source's labels."""


def build_chain(
    source,
    *,
    k,
    values,
    tail,
    index_coding,
    class_order,
    layout,
    level,
    dictionary,
    dict_size,
    scale_type="float16",
    steps_per_chunk=1,
    keep_order=False,
) -> list:
    """A label chain for ``source`` from friendly options, learning a class order / dictionary.

    ``keep_order``: the entries' input order is information (``SourceMeta.keep_order``): the
    chain gets an ``entryorder`` codec (:func:`lplabel.recode.with_entry_order`), which stores
    only the order among tied values (nothing for records without ties)."""
    meta: SourceMeta = source.meta
    # validated before sampling anything; learnt from the sampled steps (chain policy: lplabel.codecs.chains)
    return learn_label_chain(
        _SampledLabels(source, sample_positions(meta.num_steps or 0, SAMPLE_STEPS)),
        input_spec(meta),
        num_classes=meta.num_classes,
        k=k,
        values=values,
        tail=tail,
        index_coding=index_coding,
        class_order=class_order,
        layout=layout,
        level=level,
        dictionary=dictionary,
        dict_size=dict_size,
        scale_type=scale_type,
        steps_per_chunk=steps_per_chunk,
        keep_order=keep_order,
    )


def values_of(meta: SourceMeta) -> str:
    """The ``values`` option (fp32/fp16/bf16/none) that keeps a source's value type.

    A value type no lossless default chain can keep (e.g. float64 legacy labels) is refused by
    name rather than narrowed to fp16 without a word: narrowing is a lossy step the user names.
    """
    vals = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16", "none": "none"}.get(meta.value_type)
    if vals is None:
        raise LossyChainError(
            f"the source's label values are {meta.value_type}; the default chains keep float32, "
            "float16 or bfloat16 values exactly, and narrowing them loses information",
            path=meta.path or None,
            hint="name the narrowing: pass --codecs with a dense/topk chain of the type you want "
            "and --allow-lossy, or use `lplabel quantize --values fp32`",
        )
    return vals


def encode_source(
    source,
    out,
    *,
    codecs=None,
    index_coding="index-delta",
    class_order="auto",
    layout="planes",
    level=None,
    dictionary=False,
    dict_size=16384,
    steps_per_chunk=None,
    allow_lossy=False,
    force=False,
    store_views=False,
    views="keep",
    images=None,
) -> Path:
    """Re-encode every step of ``source`` (see :func:`lplabel.recode.open_source`) into ``out``.

    Without ``codecs`` the chain keeps the source's representation exactly (lossless) and codes
    it as compactly as the options say; with ``codecs`` (a list of codecs) the chain is checked
    not to lose information unless ``allow_lossy``. ``views`` (``keep``, ``stored``, ``v2``; see
    :func:`lplabel.recode.views_for_copy`, which needs ``images`` to derive stored views) says what
    becomes of the view columns; ``store_views`` is ``views="stored"``.
    """
    meta: SourceMeta = views_for_copy(source.meta, "stored" if store_views else views, images)
    spc = steps_per_chunk or default_steps_per_chunk(meta.selection)
    stage = 0
    if meta.value_type == "quantized" and codecs is None and layout == "rans":
        raise CodecConfigError(
            "layout 'rans' codes fp16 (or index-only) top-k labels; this store's values are quantized integers",
            hint="use --layout planes, or re-quantize from a store with "
            "fp16 values: lplabel quantize --values fp16 --layout rans",
        )
    if meta.value_type == "quantized":
        # quantized labels are copied encoded (no re-quantization): keep the chain's prefix
        pipe = source.label_pipeline
        stage = pipe.stored_stage
        prefix = pipe.codecs[:stage]
        if codecs is None:
            tail_codecs = [c for c in pipe.codecs[stage:]]
            codecs = prefix + tail_codecs
        elif [c.to_json() for c in codecs[:stage]] != [c.to_json() for c in prefix]:
            raise LossyChainError(
                "the new chain does not start with the source's quantization "
                f"({' | '.join(c.name for c in prefix)}); re-encoding would re-quantize",
                hint="use `lplabel quantize` to change the quantization",
            )
    elif codecs is None:
        k = None if meta.label_input == "logits" else meta.label_input[1]
        codecs = build_chain(
            source,
            k=k,
            values=values_of(meta),
            tail=meta.tail,
            index_coding=index_coding,
            class_order=class_order,
            layout=layout,
            level=level,
            dictionary=dictionary,
            dict_size=dict_size,
            steps_per_chunk=spc,
            keep_order=meta.keep_order,
        )
    else:
        Pipeline(codecs, input_spec(meta))
        why = chain_loses(codecs, meta)
        if why and not allow_lossy:
            raise LossyChainError(
                f"the chain {why}; encode is lossless by default",
                hint="pass --allow-lossy, or use `lplabel quantize` / `lplabel prune`",
            )
        if why:
            meta = mark_lossy(meta, why)
    return write_steps(
        meta,
        source.steps(stage=stage),
        out,
        codecs,
        steps_per_chunk=spc,
        force=force,
        stage=stage,
        zstd_level=VIEW_LEVEL,
        total=meta.num_steps,
        desc="encode",
    )


def mark_lossy(meta: SourceMeta, why: str) -> SourceMeta:
    """``meta`` whose ``legacy`` header extension (if any) no longer claims a lossless import:
    export cannot give the original files back once a chain lost something."""
    import dataclasses

    ext = dict(meta.extensions or {})
    if isinstance(ext.get("legacy"), dict):
        ext["legacy"] = dict(ext["legacy"], lossless=False, lossy_because=why)
    return dataclasses.replace(meta, extensions=ext or None)


@dataclass(frozen=True)
class RecodeResult:
    """What :func:`encode`, :func:`quantize` and :func:`prune` wrote: the new store's ``path``, and
    ``notes`` about the source worth showing the user (a legacy directory's import notes)."""

    path: Path
    notes: tuple = ()


#: ``lplabel import``'s options for a legacy directory read by :func:`encode` (None: the importer's default).
LEGACY_OPTIONS = (
    "images",
    "num_images",
    "num_classes",
    "seed",
    "order",
    "replay",
    "steps_per_epoch",
    "fkd_values",
    "fkd_temperature",
    "input_size",
)


def encode(
    src,
    out,
    *,
    codecs=None,
    index_coding="index-delta",
    class_order="auto",
    layout="planes",
    level=None,
    dictionary=False,
    dict_size=16384,
    steps_per_chunk=None,
    allow_lossy=False,
    force=False,
    views="keep",
    source_layout="auto",
    **legacy,
) -> RecodeResult:
    """``lplabel encode``: re-encode the store (or legacy label directory) ``src`` into ``out``.

    ``codecs``: None (a lossless chain from the friendly options, learnt from a sample of the
    labels), a list of codecs, or the chain as JSON text. ``source_layout``: ``auto`` (a file is a
    store, a directory a legacy label set whose layout is detected), ``lplabel``, or a legacy
    layout (``sre2l``, ``lpld``, ``lpqld``, ``fkd``, ``gvbsm``). ``legacy``: the options of
    :func:`lplabel.interop.import_legacy` named in :data:`LEGACY_OPTIONS`; with a store ``src``
    only ``images`` applies (the image set, for ``views="v2"``). See :func:`encode_source`.
    """
    unknown = sorted(set(legacy) - set(LEGACY_OPTIONS))
    if unknown:
        raise TypeError(f"encode() got unexpected keyword arguments {unknown}")
    check_paths(src, out, force)
    if isinstance(codecs, str):
        from .codecs import get_codec, parse_chain

        codecs = [get_codec(c) for c in parse_chain(codecs)]
    claimed = any(name != "legacy" and can_open(src) for name, can_open, _ in SOURCE_OPENERS)
    given = {k: v for k, v in legacy.items() if v is not None}
    notes = []
    if source_layout not in ("auto", "lplabel") or (source_layout == "auto" and not claimed and Path(src).is_dir()):
        # A legacy directory, read as a source of steps: same plan, checks and header as `import`
        from .interop.source import LegacySource

        source = LegacySource(src, source_layout, **given)
        notes = source.notes
        images = None
        if layout == "rans" and codecs is None and source.meta.value_type == "float32" and source.layout == "fkd":
            raise CodecConfigError(
                "layout 'rans' codes float16 values; FKD labels imported as log-probabilities are float32",
                path=src,
                hint="add --fkd-values prob (the files' own float16 probabilities), or use --layout planes",
            )
    else:
        images_src = given.pop("images", None)
        if given:
            flags = ", ".join("--" + k.replace("_", "-") for k in given)
            raise RecodeError(
                f"{flags} only apply to a legacy label directory; SRC is a label store",
                path=src,
                hint="drop them (the store's header already says all of it)",
            )
        images = None
        if images_src is not None:
            if views != "v2":
                raise RecodeError(
                    "--images with a label store SRC is only for --views v2 (the image sizes the v2 sampler needs)",
                    path=src,
                    hint="drop --images, or add --views v2",
                )
            from .relabel.inputs import load_images

            images = load_images(images_src)
        source = open_source(src, None if source_layout == "auto" else "lplabel")
    try:
        path = encode_source(
            source,
            out,
            codecs=codecs,
            index_coding=index_coding,
            class_order=class_order,
            layout=layout,
            level=level,
            dictionary=dictionary,
            dict_size=dict_size,
            steps_per_chunk=steps_per_chunk,
            allow_lossy=allow_lossy,
            force=force,
            views=views,
            images=images,
        )
    finally:
        source.close()
    return RecodeResult(path, tuple(notes))


def quantize(
    src,
    out,
    *,
    topk=None,
    values="fp16",
    tail="none",
    scale_type="float16",
    index_coding="index-delta",
    class_order="auto",
    layout="planes",
    level=None,
    dictionary=False,
    dict_size=16384,
    steps_per_chunk=None,
    force=False,
) -> RecodeResult:
    """``lplabel quantize``: a smaller, lossy copy of the store ``src`` -- top-``topk`` sparsification
    (None: dense) and value format ``values`` (fp32/fp16/bf16, int8/int4, or none: class indices
    only), with an optional ``tail`` summary. The loss is named in ``out``'s header."""
    k = topk
    check_paths(src, out, force)
    source = open_source(src)
    try:
        meta = source.meta
        if k is not None:
            if k < 1:
                raise CodecConfigError(f"--topk must be a positive integer, got {k}")
            if k >= meta.num_classes:
                raise CodecConfigError(
                    f"--topk {k} must be smaller than the number of classes ({meta.num_classes})",
                    path=src,
                    hint="omit --topk to keep every class",
                )
            if meta.label_input != "logits" and k > meta.label_input[1]:
                raise CodecConfigError(
                    f"the store holds top-{meta.label_input[1]} labels; cannot re-quantize them to top-{k}",
                    path=src,
                    hint=f"choose --topk {meta.label_input[1]} or less, or quantize the dense source",
                )
            if meta.value_type == "none" and values != "none":
                raise NoValuesError(
                    f"the store keeps class indices only (no values); --values {values} cannot be "
                    "filled from it (values cannot be invented)",
                    path=src,
                    hint="use --values none, or quantize the store the labels came from",
                )
            if tail != "none" and meta.label_input != "logits" and meta.tail != tail:
                raise TailMismatchError(
                    f"a {tail!r} tail needs the dense logits or a source tail of that kind; the source has "
                    f"{'none' if meta.tail == 'none' else repr(meta.tail)}",
                    path=src,
                    hint="use --tail none" + (f" or --tail {meta.tail}" if meta.tail != "none" else ""),
                )
        else:
            if values == "none":
                raise NoValuesError(
                    "--values none keeps the class indices of top-k labels; give --topk K",
                    hint="e.g. --topk 1 for hard labels",
                )
            if tail != "none":
                raise CodecConfigError("--tail needs --topk (dense labels drop no classes)")
            if meta.label_input != "logits":
                raise CodecConfigError(
                    "the store holds top-k labels; give --topk", path=src, hint=f"e.g. --topk {meta.label_input[1]}"
                )
        spc = steps_per_chunk or default_steps_per_chunk(meta.selection)
        chain = build_chain(
            source,
            k=k,
            values=values,
            tail=tail,
            index_coding=index_coding,
            class_order=class_order,
            layout=layout,
            level=level,
            dictionary=dictionary,
            dict_size=dict_size,
            scale_type=scale_type,
            steps_per_chunk=spc,
        )
        why = chain_loses(chain, meta)
        if why:  # a store imported from legacy files no longer exports them back
            meta = mark_lossy(meta, why)
        path = write_steps(
            meta,
            source.steps(),
            out,
            chain,
            steps_per_chunk=spc,
            force=force,
            zstd_level=VIEW_LEVEL,
            total=meta.num_steps,
            desc="quantize",
        )
    finally:
        source.close()
    return RecodeResult(path)


def prune(
    src, out, *, keep, unit="step", metric="random", seed=0, reuse="lpld", steps_per_chunk=None, force=False
) -> RecodeResult:
    """``lplabel prune``: keep the fraction ``keep`` of the steps (``unit="epoch"``: of the epochs) of
    the store ``src``, chosen by ``metric`` (see :mod:`lplabel.selection`), copied bit-exactly; the
    header records the selection so loaders follow the ``reuse`` schedule."""
    from .selection import LABEL_METRICS, check_selection_args, select_steps, step_scores

    check_selection_args(keep, unit, metric, reuse, seed)
    check_paths(src, out, force)
    source = open_source(src)
    try:
        meta = source.meta
        st = source.store
        steps = list(zip(st.step_epoch.tolist(), st.step_index.tolist()))
        scores = None
        if metric in LABEL_METRICS:
            from .reconstruct import tail_kind_of

            tk = tail_kind_of(source.label_pipeline)
            bar = progress_bar(meta.num_steps, f"scoring ({metric})")
            scores = []
            for s in source.steps():
                scores.append(step_scores(s.label, meta.num_classes, metric, tail_kind=tk))
                bar.update(1)
            bar.close()
        kept, selection = select_steps(
            steps, keep=float(keep), unit=unit, metric=metric, seed=seed, reuse=reuse, scores=scores
        )
        keyset = set(kept)
        positions = [i for i, key in enumerate(steps) if key in keyset]
        pipe = source.label_pipeline
        stage = pipe.stored_stage
        path = write_steps(
            meta,
            source.steps(positions, stage=stage),
            out,
            list(pipe.codecs),
            selection=selection,
            steps_per_chunk=steps_per_chunk or default_steps_per_chunk(selection),
            force=force,
            stage=stage,
            zstd_level=VIEW_LEVEL,
            total=len(positions),
            desc="prune",
        )
    finally:
        source.close()
    return RecodeResult(path)
