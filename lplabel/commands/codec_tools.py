"""``lplabel encode | quantize | prune | compare``: re-encode, shrink, prune and judge label stores.

All four stream step by step (bounded memory), show a progress bar on stderr when it is a
terminal, write atomically (nothing under the output name until the new store is complete),
and check their arguments before writing anything: a bad request exits with status 2 and a
one-line message naming an ``LplabelError`` subclass's problem.
"""

from __future__ import annotations

import json

import click

from ..codecs import INDEX_CODINGS, LAYOUTS, VALUE_FORMATS, get_codec, parse_chain
from ..errors import CodecConfigError
from ..recode import CLASS_ORDERS, check_paths
from ..recode import (
    SAMPLE_STEPS,  # noqa: F401
    VIEW_LEVEL,  # noqa: F401
    TailMismatchError,  # noqa: F401
    build_chain as _build_chain,  # noqa: F401
    default_level,  # noqa: F401
    encode_source,  # noqa: F401
)  # (their old home: the engine is lplabel.recode)
from ..selection import METRICS, REUSE, UNITS
from ._common import KEEP, register

# -- shared pieces -----------------------------------------------------------------------------------


def _out_opts(f):
    f = click.option("--force", is_flag=True, help="Replace OUT if it exists (only once the new store is complete).")(f)
    f = click.option(
        "--steps-per-chunk",
        type=click.IntRange(1, 1 << 16),
        default=None,
        help="Steps per independently decodable chunk. Default: 8 for stores training reads in "
        "stored order (full stores, reuse 'order'), 1 for LPLD/LPQLD-pruned stores (read in "
        "random order). Larger chunks compress better and decode faster in order; 1 gives "
        "the finest random access.",
    )(f)
    f = click.option(
        "-o", "--output", "out", required=True, type=click.Path(dir_okay=False), help="The store to write (*.lpl)."
    )(f)
    return f


def _merge_level_alias(f):
    """``--level`` (lplabel 0.1.0's name on encode/quantize) still works, hidden, with a warning:
    every command now calls the zstd level ``--zstd-level``."""
    import functools

    @functools.wraps(f)
    def wrapper(*args, level=None, level_deprecated=None, **kw):
        if level_deprecated is not None:
            if level is not None and level != level_deprecated:
                raise CodecConfigError(
                    f"--level {level_deprecated} and --zstd-level {level} disagree",
                    hint="give --zstd-level only (--level is its deprecated spelling)",
                )
            click.echo("warning: --level is deprecated; use --zstd-level", err=True)
            level = level_deprecated
        return f(*args, level=level, **kw)

    return wrapper


def _chain_opts(f):
    f = click.option(
        "--dict-size",
        type=click.IntRange(256, 1 << 20),
        default=16384,
        show_default=True,
        help="Size in bytes of a trained zstd dictionary (with --dictionary).",
    )(f)
    f = click.option(
        "--dictionary/--no-dictionary",
        default=False,
        show_default=True,
        help="Train a zstd dictionary on a sample of the chunks and store it in the file "
        "(columns/label/zstd_dict); needs --layout shuffle. Helps small chunks most.",
    )(f)
    f = click.option(
        "--level",
        "level_deprecated",
        type=click.IntRange(-7, 22),
        default=None,
        hidden=True,
        help="Deprecated spelling of --zstd-level.",
    )(f)
    f = click.option(
        "--zstd-level",
        "level",
        type=click.IntRange(-7, 22),
        default=None,
        help="zstd level of the label column (default: 15 for top-k labels, where higher levels gain "
        "nothing measurable, 3 for dense ones, which barely compress). View columns use 19. "
        "The same option name as on relabel and import.",
    )(f)
    f = _merge_level_alias(f)
    f = click.option(
        "--layout",
        type=click.Choice(LAYOUTS),
        default="planes",
        show_default=True,
        help="planes: each byte plane of each field its own zstd frame (small, fast); "
        "shuffle: bytes + byte shuffle + one zstd frame (allows --dictionary); "
        "rans: top-k fp16 or index-only labels (no tail) coded with a context model learnt "
        "from the labels and an rANS coder: the smallest lossless layout (k=100: 5 % smaller "
        "than planes), decoding at 1-2 GB/s of dense-equivalent labels per core (planes: "
        "4-18 GB/s); --zstd-level and --index-coding do not apply to it; needs numba "
        "(pip install 'lplabel[rans]').",
    )(f)
    f = click.option(
        "--class-order",
        type=click.Choice(CLASS_ORDERS),
        default="auto",
        show_default=True,
        help="Renumber classes before coding (stored in the header, undone on read): "
        "cooccurrence (classes that share top-k sets become neighbours; best with "
        "index-delta), frequency (frequent classes get small numbers; best with value-delta), "
        "auto (that pairing), none.",
    )(f)
    f = click.option(
        "--index-coding",
        type=click.Choice(INDEX_CODINGS),
        default="index-delta",
        show_default=True,
        help="Top-k entry order and difference coding, lossless for the (index, value) pairs: "
        "index-delta (entries by class index, index gaps coded), value-delta (entries by "
        "decreasing value, value steps coded), none (by value, raw).",
    )(f)
    return f


def _summary(path) -> str:
    from ..store import store_info
    from ..store.text import written_line

    return written_line(store_info(path))


def _parse_codecs(text: str) -> list:
    return [get_codec(c) for c in parse_chain(text)]


# -- encode --------------------------------------------------------------------------------------------


def _legacy_opts(f):
    """`lplabel import`'s options for a legacy SRC of `encode` (None: the importer's default)."""
    from ..interop.fkd import VALUE_MODES

    opts = [
        click.option(
            "--images",
            default=None,
            help="legacy: the distilled ImageFolder (or a file of image keys) the labels index. With a "
            "label store SRC and --views v2: the image set SRC was relabelled from (a folder, an .npz "
            "pack or a dataset name, as for `lplabel relabel`), for the image sizes.",
        ),
        click.option(
            "--num-images", type=click.IntRange(1), default=None, help="legacy: N, when the files cannot tell it."
        ),
        click.option(
            "--num-classes",
            type=click.IntRange(2),
            default=None,
            help="legacy: C for top-k label sets (LPQLD, FKD), which do not record it.",
        ),
        click.option("--seed", type=int, default=None, help="legacy SRe2L: the relabel --fkd-seed [42]."),
        click.option(
            "--order",
            default=None,
            type=click.Path(exists=True, dir_okay=False),
            help="legacy SRe2L: image order per epoch (JSON or .npy) instead of the replay.",
        ),
        click.option(
            "--replay",
            type=click.Choice(["torch>=1.11", "torch<1.11"]),
            default=None,
            help="legacy SRe2L: the PyTorch generation whose RandomSampler made the labels [torch>=1.11].",
        ),
        click.option(
            "--steps-per-epoch",
            type=click.IntRange(1),
            default=None,
            help="legacy LPQLD: batches per epoch [inferred from the sampler JSON].",
        ),
        click.option(
            "--fkd-values",
            type=click.Choice(VALUE_MODES),
            default=None,
            help="legacy FKD: store log-probabilities (float32, readable as logits) or the probabilities "
            "as they are (the files' dtype; needed for --layout rans) [logprob].",
        ),
        click.option("--fkd-temperature", type=float, default=None, help="legacy FKD: the generator's --temp [1.0]."),
        click.option(
            "--input-size",
            type=click.IntRange(1, 32767),
            default=None,
            help="legacy: the relabel --input-size, recorded in the header's view policy.",
        ),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


@click.command()
@click.argument("src", type=click.Path(exists=False))
@_out_opts
@_chain_opts
@click.option(
    "--codecs",
    "codecs_json",
    default=None,
    help='The label chain as JSON, e.g. \'[{"name": "dense", "configuration": {"type": '
    '"float16"}}, {"name": "zplanes", "configuration": {"level": 19}}]\'. Overrides the '
    "friendly options.",
)
@click.option("--allow-lossy", is_flag=True, help="Accept a --codecs chain that loses information.")
@click.option(
    "--from",
    "source_layout",
    default="auto",
    show_default=True,
    type=click.Choice(["auto", "lplabel", "sre2l", "lpld", "lpqld", "fkd", "gvbsm"]),
    help="What SRC is: an lplabel store, or a legacy label directory of SRe2L/CDA, LPLD, LPQLD, FKD or "
    "G-VBSM/EDC (auto: a file is a store, a directory's layout is detected). A legacy directory is "
    "imported and coded in one pass; the options below marked 'legacy' are `lplabel import`'s.",
)
@click.option(
    "--views",
    "views",
    type=click.Choice(["keep", "stored", "v2"]),
    default="keep",
    show_default=True,
    help="The view columns of OUT. keep: as in SRC. stored: written out (readable by every reader, "
    "e.g. format 1.1 readers, and for lplabel-views-v1 stores under any numpy). v2: derived by "
    "lplabel-views-v2 (no view bytes; needs views that v2 drew, and --images for a stored-views SRC).",
)
@click.option("--store-views", is_flag=True, help="The same as --views stored.")
@_legacy_opts
def encode(
    src,
    out,
    force,
    steps_per_chunk,
    index_coding,
    class_order,
    layout,
    level,
    dictionary,
    dict_size,
    codecs_json,
    allow_lossy,
    source_layout,
    views,
    store_views,
    **legacy,
):
    """Re-encode the label store SRC into OUT with another codec chain, losslessly by default.

    The records, views and selection are copied unchanged; only the label coding changes. By
    default the labels keep their representation (dense logits or top-k, same value type, same
    tail) and are coded compactly and fast to decode: classes renumbered by a learnt order, top-k
    entries sorted and difference-coded, byte planes zstd-compressed separately. --layout rans
    codes fp16 or index-only top-k labels smaller still (context models learnt from the labels +
    rANS; decoding is slower, 1-2 GB/s per core, and needs numba). Quantized
    stores are copied without re-quantizing. SRC may also be a legacy label directory (see --from):
    it is imported and coded in one pass with every option above, and the order of tied top-k
    entries is kept (entryorder), so `lplabel export` still gives the original files back.
    """
    from .. import api

    check_paths(src, out, force)
    if store_views and views not in ("keep", "stored"):
        raise click.UsageError("--store-views contradicts --views " + views)
    codecs = _parse_codecs(codecs_json) if codecs_json else None
    res = api.encode(
        src,
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
        views="stored" if store_views else views,
        source_layout=source_layout,
        **legacy,
    )
    click.echo(_summary(res.path))
    for note in res.notes:
        click.echo(f"  note: {note}")


# -- quantize -----------------------------------------------------------------------------------------


@click.command()
@click.argument("src", type=click.Path(exists=False))
@_out_opts
@click.option(
    "--topk",
    "k",
    type=int,
    default=None,
    help="Keep the K largest logits of each record and their class indices (LPQLD's MR-K). "
    "K must be below the number of classes and at most the K a top-k source holds. "
    "Omit to keep every class (dense).",
)
@click.option(
    "--values",
    type=click.Choice(VALUE_FORMATS),
    default="fp16",
    show_default=True,
    help="Value format: fp32/fp16/bf16 floats, or int8/int4 codes with a per-record scale and offset "
    "(decoded back to float32; error <= scale/2, see spec/FORMAT.md), or none: store the top-K "
    "class indices only, no values (needs --topk; the cheapest label: K=1 is a hard label, the "
    "teacher's top class; with K>1 the K classes share the probability equally; no --tail, "
    "no value-delta).",
)
@click.option(
    "--tail",
    type=click.Choice(["none", "logsumexp", "min"]),
    default="none",
    show_default=True,
    help="Per-record summary of the dropped classes: logsumexp (their total mass at T=1, restored "
    "exactly on load) or min (the smallest logit, a floor). int4 refuses logsumexp.",
)
@click.option(
    "--scale-type",
    type=click.Choice(["float16", "float32"]),
    default="float16",
    show_default=True,
    help="Type of the int8/int4 per-record scale and offset.",
)
@_chain_opts
def quantize(
    src,
    out,
    force,
    steps_per_chunk,
    k,
    values,
    tail,
    scale_type,
    index_coding,
    class_order,
    layout,
    level,
    dictionary,
    dict_size,
):
    """Write a smaller, lossy copy of the store SRC: top-k sparsification and value quantization.

    Every stored step is kept; each record's label becomes its top-K logits (and class indices)
    in the chosen value format, optionally with a tail summary -- or, with --values none, its
    top-K class indices alone. The loss is named in OUT's
    header. Judge it with `lplabel compare SRC OUT`.
    """
    from .. import api

    res = api.quantize(
        src,
        out,
        topk=k,
        values=values,
        tail=tail,
        scale_type=scale_type,
        index_coding=index_coding,
        class_order=class_order,
        layout=layout,
        level=level,
        dictionary=dictionary,
        dict_size=dict_size,
        steps_per_chunk=steps_per_chunk,
        force=force,
    )
    click.echo(_summary(res.path))


# -- prune ----------------------------------------------------------------------------------------------


@click.command()
@click.argument("src", type=click.Path(exists=False))
@_out_opts
@click.option(
    "--keep",
    required=True,
    type=KEEP,
    help="Fraction of the stored steps (or epochs, with --by epoch) to keep, in (0, 1]: 0.025, 1/40 "
    "and 2.5% are the same (1 step in 40); e.g. 1/10 = LPLD's 10x pruning.",
)
@click.option(
    "--by",
    "unit",
    type=click.Choice(UNITS),
    default="step",
    show_default=True,
    help="Keep or drop single steps, or whole epochs.",
)
@click.option(
    "--metric",
    type=click.Choice(METRICS),
    default="random",
    show_default=True,
    help="random (LPLD; seeded), order (the first ones, LPLD's pool), entropy (highest mean label "
    "entropy) or margin (lowest mean top-1/top-2 margin).",
)
@click.option(
    "--seed",
    type=click.IntRange(0, 2**63 - 1),
    default=0,
    show_default=True,
    help="Seed of the random selection and of the loader's reuse draws.",
)
@click.option(
    "--reuse",
    type=click.Choice(REUSE),
    default="lpld",
    show_default=True,
    help="How training reuses the kept steps: lpld (each epoch draws its steps with replacement) or "
    "lpqld (a fresh draw without replacement each epoch). Recorded in the header.",
)
def prune(src, out, force, steps_per_chunk, keep, unit, metric, seed, reuse):
    """Keep a fraction of the steps of the store SRC (record selection, as LPLD) and write OUT.

    The kept steps are copied bit-exactly with the same codec chain; OUT's header records the
    selection (unit, metric, keep, seed, source_steps, reuse) so loaders follow the reuse schedule.
    """
    from .. import api

    res = api.prune(
        src,
        out,
        keep=keep,
        unit=unit,
        metric=metric,
        seed=seed,
        reuse=reuse,
        steps_per_chunk=steps_per_chunk,
        force=force,
    )
    click.echo(_summary(res.path))


# -- compare -------------------------------------------------------------------------------------------


@click.command()
@click.argument("reference", type=click.Path(exists=False))
@click.argument("candidate", type=click.Path(exists=False))
@click.option(
    "--mode",
    type=click.Choice(["auto", "renorm", "tail", "uniform"]),
    default="auto",
    show_default=True,
    help="How the candidate's top-k labels become probabilities: renorm (LPQLD MR: softmax over the "
    "k kept logits), tail/uniform (dropped classes share the stored tail's mass), auto (tail when "
    "stored, else renorm). Class indices only (--values none): 1/k each (renorm/auto).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as one JSON object.")
def compare(reference, candidate, mode, as_json):
    """Fidelity of the lossy store CANDIDATE against REFERENCE (the store it was made from).

    Over the (epoch, step) both hold: top-1 agreement, top-5 overlap (skipped, and said so, when
    a store keeps fewer than 5 classes per record), KL(candidate || reference) and total
    variation of softmax(z/T) at T=1 and T=20; then bytes per stored record and how many times
    smaller each file is than dense fp16 of its stored and of its nominal records (see
    `lplabel info --help`). No training needed.
    """
    from .. import api
    from ..store.text import compare_lines

    res = api.compare(reference, candidate, mode=mode)
    if as_json:
        click.echo(json.dumps(res, indent=2))
        return
    for line in compare_lines(res):
        click.echo(line)


for _cmd in (encode, quantize, prune, compare):
    register(_cmd)
