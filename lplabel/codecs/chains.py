"""Chain policy: the one owner of which codec chain a column gets.

Every chain lplabel writes is chosen here, so a rule such as "top-k labels get zstd 15" or
"legacy int16 indices stay int16" has one home:

* **named presets** (:data:`PRESETS`, built by :func:`preset_chain`): ``plain`` (a representation,
  then bytes, shuffle, zstd: what :class:`~lplabel.store.StoreWriter` writes when given no chain,
  and ``lplabel import --topk/--values``), ``exact`` (legacy labels kept bit-exactly: ``lplabel
  import``), ``reference`` (dense fp16: the harness's reference rows), ``work`` (dense float32 at
  zstd 1: relabel work-directory parts that the merge re-encodes), and the three label layouts
  ``shuffle``, ``planes`` and ``rans`` of :func:`label_chain` (``lplabel quantize``, the relabeler,
  the harness settings);
* :func:`learn_label_chain`, a layout whose class order, rANS model or zstd dictionary is learnt
  from a sample of label blocks (arrays, or steps read from a source): what ``lplabel encode`` /
  ``quantize`` build (:func:`lplabel.recode.build_chain` samples the source and calls it) and what
  the benchmarks measure;
* the view columns' chains (:func:`default_column_codecs`, :func:`view_codecs`,
  :func:`derived_chain`) and the chain rewrites :func:`with_entry_order` / :func:`keeps_order`.

The CLI, the relabeler, the writer, the importers, the harness and the benchmarks call these; none
assembles codec lists itself (parsing a user's ``--codecs`` JSON is not policy and stays with
:func:`~lplabel.codecs.registry.parse_chain`).
"""

from __future__ import annotations

import numpy as np

from ..dtypes import storage_dtype
from ..errors import CodecConfigError, NoValuesError
from . import bitpack as _bitpack, bytes as _bytes, classmap as _classmap, delta as _delta, dense as _dense
from . import quantize as _quantize, rans as _rans, shuffle as _shuffle, sort as _sort, topk as _topk
from . import zplanes as _zplanes, zstd as _zstd
from .classmap import ORDER_METHODS, learn_class_order
from .pipeline import Pipeline

#: ``values`` choices of :func:`label_chain` (and ``lplabel quantize --values``); ``none`` keeps the
#: top-k class indices only (``topk`` type ``none``)
VALUE_FORMATS = ("fp32", "fp16", "bf16", "int8", "int4", "none")
#: ``index_coding`` choices of :func:`label_chain` (and ``--index-coding``).
INDEX_CODINGS = ("none", "value-delta", "index-delta")
#: ``layout`` choices of :func:`label_chain`: byte planes each zstd'd alone, or bytes+shuffle+zstd
LAYOUTS = ("planes", "shuffle", "rans")
_FLOAT_OF = {
    "fp32": "float32",
    "fp16": "float16",
    "bf16": "bfloat16",
    "int8": "float16",
    "int4": "float16",
    "none": "none",
}


def default_label_codecs(
    representation: str = "dense",
    *,
    type: str = "float16",
    k: int | None = None,
    index_type: str = "uint16",
    tail: str = "none",
    level: int = 3,
) -> list:
    """The chain lplabel uses when none is given: a representation, then bytes, shuffle, zstd."""
    if representation == "dense":
        rep = _dense.Dense(type)
        es = 4 if type == "float32" else 2
    elif representation == "topk":
        if k is None:
            raise ValueError("topk needs k")
        rep = _topk.TopK(k, type=type, index_type=index_type, tail=tail)
        es = 2
    else:
        raise ValueError(f"unknown representation {representation!r}")
    return [rep, _bytes.Bytes(), _shuffle.Shuffle(es), _zstd.Zstd(level)]


def label_chain(
    *,
    k: int | None = None,
    values: str = "fp16",
    tail: str = "none",
    index_coding: str | None = None,
    index_type: str = "uint16",
    level: int = 15,
    scale_type: str = "float16",
    shuffle: bool = True,
    dictionary: bytes | None = None,
    class_order=None,
    layout: str = "shuffle",
    classes: int | None = None,
    rans_model: str | None = None,
) -> list:
    """A label chain from friendly options (what ``lplabel quantize`` builds).

    ``k=None`` keeps dense logits. ``values``: one of :data:`VALUE_FORMATS` (int8/int4 add a
    ``quantize`` step over float16 top-k values; int4 adds ``bitpack``; ``none`` keeps the top-k
    class indices only -- top-k only, no tail, index coding ``index-delta`` or ``none``).
    ``index_coding`` (top-k only): ``none`` (entries by decreasing value, raw indices),
    ``value-delta`` (entries by decreasing value, values difference-coded: small steps between
    neighbouring logits), ``index-delta`` (entries by increasing class index, index gaps coded);
    default (None): ``value-delta``, or ``index-delta`` for values ``none``. All three keep the
    (index, value) pairs exactly. ``dictionary``: zstd dictionary bytes (see :mod:`.zstd`;
    layout ``shuffle`` only). ``class_order``: a class permutation (see :mod:`.classmap`) to
    renumber indices by, or None. ``layout``: ``shuffle`` (bytes, shuffle, zstd), ``planes``
    (zplanes: each byte plane its own zstd frame; smaller, no dictionary) or ``rans`` (top-k fp16
    or index-only labels without a tail: ``topk | [classmap] | sort(index) | rans``, context models
    + rANS, the smallest lossless coding; needs ``classes`` and numba; ``index_coding``,
    ``level`` and ``shuffle`` do not apply). ``rans_model``: the learnt model (see
    :func:`lplabel.codecs.rans.learn_model`); None gives a flat model (valid, not compact).
    """
    if layout == "rans":
        return _rans_chain(
            k=k,
            values=values,
            tail=tail,
            index_type=index_type,
            dictionary=dictionary,
            class_order=class_order,
            classes=classes,
            model=rans_model,
        )
    if values not in VALUE_FORMATS:
        raise CodecConfigError(f"unknown value format {values!r}", hint=f"choose one of {', '.join(VALUE_FORMATS)}")
    if index_coding is None:
        index_coding = "index-delta" if values == "none" else "value-delta"
    if index_coding not in INDEX_CODINGS:
        raise CodecConfigError(
            f"unknown index coding {index_coding!r}", hint=f"choose one of {', '.join(INDEX_CODINGS)}"
        )
    if values == "none":
        if k is None:
            raise NoValuesError(
                "values 'none' keeps the class indices of top-k labels; dense labels have none",
                hint="give k (--topk K), or a value format",
            )
        if index_coding == "value-delta":
            raise NoValuesError(
                "index coding 'value-delta' codes the steps between values; values 'none' stores none",
                hint="use index coding 'index-delta' or 'none'",
            )
    chain: list = []
    ftype = _FLOAT_OF[values]
    quant = values in ("int8", "int4")
    if k is None:
        chain.append(_dense.Dense(ftype))
    else:
        chain.append(_topk.TopK(k, type=ftype, index_type=index_type, tail=tail))
    if quant:
        chain.append(_quantize.Quantize(8 if values == "int8" else 4, scale_type=scale_type))
    if layout not in LAYOUTS:
        raise CodecConfigError(f"unknown layout {layout!r}", hint=f"choose one of {', '.join(LAYOUTS)}")
    if layout == "planes" and dictionary is not None:
        raise CodecConfigError("a zstd dictionary needs layout 'shuffle' (zplanes frames take no dictionary)")
    if k is not None and class_order is not None:
        chain.append(_classmap.ClassMap.from_order(class_order))
    if k is not None and index_coding != "none":
        by = "value" if index_coding == "value-delta" else "index"
        chain.append(_sort.Sort(by))
        if index_coding == "index-delta":
            chain.append(_delta.Delta("indices", "ascending"))
        elif values != "int4":  # 4-bit codes are left as they are (their steps do not fit 4 bits)
            chain.append(_delta.Delta("values", "descending"))
    if values == "int4":
        chain.append(_bitpack.BitPack("values" if k is not None else "logits", 4))
    if layout == "planes":
        chain.append(_zplanes.ZPlanes(level))
        return chain
    chain.append(_bytes.Bytes())
    es = 4 if values == "fp32" else 2
    if values == "none":  # the indices are the only field
        es = storage_dtype(index_type).itemsize
    if shuffle and es > 1:
        chain.append(_shuffle.Shuffle(es))
    chain.append(_zstd.Zstd.with_dictionary(dictionary, level) if dictionary is not None else _zstd.Zstd(level))
    return chain


def _rans_chain(*, k, values, tail, index_type, dictionary, class_order, classes, model) -> list:
    """topk, classmap (when given), sort by index, rans: see :func:`label_chain`."""
    if k is None:
        raise CodecConfigError(
            "layout 'rans' codes top-k labels; dense labels have no class set to model",
            hint="give k (--topk K), or use layout 'planes'",
        )
    if values not in ("fp16", "none"):
        raise CodecConfigError(
            f"layout 'rans' codes fp16 values (or none) losslessly, not {values!r}",
            hint="use layout 'planes' for other value formats, or convert first: "
            "lplabel quantize SRC -o OUT --topk K --values fp16 --layout rans",
        )
    if tail != "none":
        raise CodecConfigError("layout 'rans' stores no tail summary", hint="use --tail none, or layout 'planes'")
    if dictionary is not None:
        raise CodecConfigError("layout 'rans' takes no zstd dictionary", hint="drop --dictionary")
    if classes is None:
        raise CodecConfigError("layout 'rans' needs the number of classes")
    chain: list = [_topk.TopK(k, type=_FLOAT_OF[values], index_type=index_type, tail="none")]
    if class_order is not None:
        chain.append(_classmap.ClassMap.from_order(class_order))
    chain.append(_sort.Sort("index"))
    with_values = values != "none"
    chain.append(
        _rans.Rans(classes, k, with_values, model) if model is not None else _rans.Rans.flat(classes, k, with_values)
    )
    return chain


def default_column_codecs(elementsize: int, level: int = 3) -> list:
    """Chain for a per-record config column (image id, crop box, flip, mix partner)."""
    chain = [_bytes.Bytes()]
    if elementsize > 1:
        chain.append(_shuffle.Shuffle(elementsize))
    chain.append(_zstd.Zstd(level))
    return chain


# -- index types ---------------------------------------------------------------------------------


def index_type_for(num_classes: int) -> str:
    """The index type of lplabel's own top-k chains: uint16 while the classes fit, else int32."""
    return "uint16" if num_classes <= 65536 else "int32"


def legacy_index_type(num_classes: int) -> str:
    """The index type that keeps legacy top-k indices exactly: int16 (as LPQLD/SRe2L files store
    them) while the classes fit, else int32."""
    return "int16" if num_classes <= 32768 else "int32"


def default_level(k) -> int:
    """The label column's zstd level when none is given: 15 for top-k labels (higher levels gain
    nothing measurable), 3 for dense ones (which barely compress)."""
    return 3 if k is None else 15


# -- named presets -------------------------------------------------------------------------------


def plain_chain(
    k: int | None = None, *, type: str = "float16", index_type: str = "uint16", tail: str = "none", level: int = 3
) -> list:
    """Preset ``plain``: dense (``k`` None) or top-k labels of ``type``, then bytes, shuffle, zstd."""
    if k is None:
        return default_label_codecs("dense", type=type, level=level)
    return default_label_codecs("topk", k=k, type=type, index_type=index_type, tail=tail, level=level)


def exact_chain(value_type: str, *, k: int | None = None, num_classes: int, level: int = 3) -> list:
    """Preset ``exact``: legacy labels stored bit-exactly -- their own value type and, for top-k
    labels, indices in :func:`legacy_index_type` -- then bytes, shuffle, zstd."""
    return plain_chain(
        None if k is None else int(k), type=value_type, index_type=legacy_index_type(num_classes), level=level
    )


def reference_chain(level: int = 3) -> list:
    """Preset ``reference``: dense fp16 logits, bytes, shuffle, zstd (the harness's reference rows)."""
    return plain_chain(None, type="float16", level=level)


def work_chain() -> list:
    """Preset ``work``: dense float32 logits at zstd 1 -- relabel work-directory parts whose final
    chain needs the dense logits; the merge re-encodes them, so speed beats size."""
    return plain_chain(None, type="float32", level=1)


def _layout(name):
    def build(**options) -> list:
        return label_chain(layout=name, **options)

    build.__doc__ = f"Preset ``{name}``: :func:`label_chain` with layout ``{name}``."
    return build


#: name -> builder of every named chain preset (see the module doc); :func:`preset_chain` builds one.
PRESETS = {
    "plain": plain_chain,
    "exact": exact_chain,
    "reference": reference_chain,
    "work": work_chain,
    **{name: _layout(name) for name in LAYOUTS},
}


def preset_chain(name: str, **options) -> list:
    """The chain of preset ``name`` (a key of :data:`PRESETS`) with its builder's ``options``."""
    build = PRESETS.get(name)
    if build is None:
        raise CodecConfigError(f"unknown chain preset {name!r}", hint=f"choose one of {', '.join(PRESETS)}")
    return build(**options)


# -- view columns --------------------------------------------------------------------------------


def view_codecs(level: int) -> dict:
    """View-column chains the re-encoding commands use: crop boxes as byte planes (measured ~12 %
    smaller than bytes + shuffle + zstd); the other columns keep the writer's default."""
    return {"crop": [_zplanes.ZPlanes(level)]}


def derived_chain(sampler: str) -> list:
    """The chain of a derived view column: the marker, then what its CRC-32 covers."""
    from .derived import Derived

    return [Derived(sampler), _bytes.Bytes()]


# -- entry order ---------------------------------------------------------------------------------


def keeps_order(codecs) -> bool:
    """Does the chain give every record's entries back in their input order?  True without a
    reordering codec (``sort``, ``rans``), or with ``entryorder`` before the first one."""
    names = [c.name for c in codecs]
    first = min((i for i, n in enumerate(names) if n in ("sort", "rans")), default=None)
    return first is None or "entryorder" in names[:first]


def with_entry_order(codecs) -> list:
    """``codecs`` with an ``entryorder`` codec after its ``topk`` (and ``rans`` told to carry its
    field), so the entries' input order survives the chain's reordering; unchanged when it
    already keeps the order (see :func:`keeps_order`)."""
    from .entryorder import EntryOrder

    if keeps_order(codecs):
        return list(codecs)
    out = []
    for c in codecs:
        if c.name == "rans" and not c.order:
            c = _rans.Rans(c.classes, c.k, c.values, c.model, order=True)
        out.append(c)
        if c.name == "topk":
            out.append(EntryOrder())
    return out


# -- learnt chains -------------------------------------------------------------------------------

#: ``class_order`` choices of :func:`learn_label_chain` (and ``--class-order``)
CLASS_ORDERS = ("auto", "none") + ORDER_METHODS


def resolve_class_order(class_order: str, index_coding: str) -> str:
    """``auto`` becomes the class order that suits ``index_coding`` (co-occurrence for index-delta,
    frequency for value-delta, none otherwise); other names stay."""
    if class_order == "auto":
        return (
            "cooccurrence"
            if index_coding == "index-delta"
            else ("frequency" if index_coding == "value-delta" else "none")
        )
    return class_order


def topk_indices(blocks, k: int) -> np.ndarray:
    """Top-k class indices [n, k] of label blocks (what a class order is learnt from): the k
    largest logits of a dense block, the k largest entries of a wider top-k block."""
    out = []
    for lab in blocks:
        if "logits" in lab:
            idx, _ = _topk.topk_of(lab["logits"], k)
        else:
            idx = lab["indices"]
            if idx.shape[1] > k:
                pos, _ = _topk.topk_of(lab["values"], k, tiebreak=np.asarray(idx, dtype=np.int64))
                idx = np.take_along_axis(idx, pos, axis=1)
        out.append(np.asarray(idx, dtype=np.int64))
    return np.concatenate(out) if out else np.zeros((0, k), np.int64)


def learn_rans_model(blocks, chain: list, spec) -> str | None:
    """The ``rans`` model (see :mod:`lplabel.codecs.rans`) learnt from label blocks coded by
    ``chain`` up to its final ``rans`` codec (so the sample looks exactly like what it will code);
    None (a flat model) when there is nothing to learn from."""
    pre = Pipeline(chain, spec)
    coded = [pre.encode_arrays(b) for b in blocks]
    coded = [b for b in coded if len(b["indices"])]
    if not coded:
        return None
    values = np.concatenate([b["values"] for b in coded]) if "values" in coded[0] else None
    return _rans.learn_model(np.concatenate([b["indices"] for b in coded]), values, chain[-1].classes)


def train_chain_dictionary(blocks, chain: list, spec, steps_per_chunk: int, size: int) -> bytes:
    """A zstd dictionary trained on label blocks (``steps_per_chunk`` to a sample, as the writer
    chunks them) encoded by ``chain`` up to its final zstd."""
    pre = Pipeline(chain[:-1], spec)
    samples, pending = [], []
    for b in blocks:
        pending.append(b)
        if len(pending) >= steps_per_chunk:
            samples.append(pre.encode({k: np.concatenate([p[k] for p in pending]) for k in pending[0]}))
            pending = []
    if pending:
        samples.append(pre.encode({k: np.concatenate([p[k] for p in pending]) for k in pending[0]}))
    return _zstd.train_dictionary(samples, size=size, level=chain[-1].level)


def learn_label_chain(
    blocks,
    spec,
    *,
    num_classes: int,
    k: int | None,
    values: str = "fp16",
    tail: str = "none",
    index_coding: str = "index-delta",
    class_order: str = "auto",
    layout: str = "planes",
    level: int | None = None,
    dictionary: bool = False,
    dict_size: int = 16384,
    scale_type: str = "float16",
    steps_per_chunk: int = 1,
    keep_order: bool = False,
    index_type: str | None = None,
) -> list:
    """A :func:`label_chain` whose class order, rANS model and zstd dictionary are learnt from
    ``blocks``: label blocks of input spec ``spec`` (one per step), any re-iterable (a list of
    arrays, or an object that re-reads a source's sampled steps on each ``iter``: it is walked once
    per thing learnt, so memory stays bounded by one step).

    ``class_order``: one of :data:`CLASS_ORDERS` (``auto``: :func:`resolve_class_order`; layout
    ``rans`` codes class membership in class order, so ``auto`` means co-occurrence there).
    ``level`` None: :func:`default_level`. ``dictionary``: train a ``dict_size`` zstd dictionary
    (layout ``shuffle`` only) on ``steps_per_chunk`` blocks to a sample. ``index_type`` None:
    :func:`index_type_for`. ``keep_order``: the entries' input order is information
    (``SourceMeta.keep_order``): the chain gets an ``entryorder`` codec (:func:`with_entry_order`).
    The options are checked, and the chain validated against ``spec``, before ``blocks`` is read.
    """
    level = default_level(k) if level is None else level
    if dictionary and layout != "shuffle":
        raise CodecConfigError("--dictionary needs --layout shuffle (zplanes frames take no dictionary)")
    # rans codes class membership in class order whatever --index-coding says: co-occurrence suits it
    method = (
        resolve_class_order(class_order, "index-delta" if layout == "rans" else index_coding)
        if k is not None
        else "none"
    )
    opts = dict(
        k=k,
        values=values,
        tail=tail,
        index_coding=index_coding,
        level=level,
        layout=layout,
        scale_type=scale_type,
        index_type=index_type_for(num_classes) if index_type is None else index_type,
        classes=num_classes,
    )

    def build(**kw):  # every chain built here keeps the input order when asked to
        chain = label_chain(**opts, **kw)
        return with_entry_order(chain) if keep_order and k is not None else chain

    chain = build()  # validate cheaply before sampling anything
    Pipeline(chain, spec)
    if layout == "rans":
        _rans.warm_up()  # numba present and the coder compiled, or a named error before any work
    order = learn_class_order(topk_indices(blocks, k), num_classes, method) if method != "none" else None
    chain = build(class_order=order)
    if layout == "rans":  # the model is learnt from the sample, like the class order (None: no sample)
        chain = build(class_order=order, rans_model=learn_rans_model(blocks, chain, spec))
    if dictionary:
        data = train_chain_dictionary(blocks, chain, spec, steps_per_chunk, dict_size)
        chain = build(class_order=order, dictionary=data)
    Pipeline(chain, spec)
    return chain
