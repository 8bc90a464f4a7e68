"""``lplabel import`` and ``lplabel export``: legacy soft-label directories <-> label stores.

Layouts: SRe2L/CDA (``sre2l``), LPLD (``lpld``), LPQLD (``lpqld``), FKD (``fkd``) and
G-VBSM/EDC (``gvbsm``). See docs/interop.md for the field mapping.
"""

from __future__ import annotations

import json

import click

from ._common import register

_LAYOUT_CHOICES = ["auto", "sre2l", "lpld", "lpqld", "fkd", "gvbsm"]
_EXPORT_CHOICES = ["lpld", "sre2l", "lpqld", "gvbsm", "fkd"]
_TYPES = {
    "fp32": "float32",
    "fp16": "float16",
    "bf16": "bfloat16",
    "float32": "float32",
    "float16": "float16",
    "bfloat16": "bfloat16",
}


def friendly_codecs(
    codecs: str | None, topk: int | None, values: str | None, index_type: str | None, level: int | None
):
    """A label codec chain from ``--codecs`` JSON or the friendly flags (None: the lossless default)."""
    from ..codecs import preset_chain
    from ..errors import LplabelError

    if codecs is not None:
        if topk is not None or values is not None or index_type is not None:
            raise LplabelError("give either --codecs or the friendly flags (--topk/--values/--index-type), not both")
        from ..interop.common import parse_codecs

        chain = parse_codecs(codecs)
        if level is not None:
            raise LplabelError("--zstd-level does not apply with --codecs (set the level in the zstd codec)")
        return chain
    if topk is None and values is None and index_type is None:
        return None  # lossless default (the importer picks the legacy dtype); level via zstd_level
    vtype = _TYPES.get(values or "fp16")
    if vtype is None:
        raise LplabelError(f"unknown --values {values!r}", hint="choose fp32, fp16 or bf16")
    lv = 3 if level is None else level
    if topk is None:
        if index_type is not None:
            raise LplabelError("--index-type needs --topk")
        return preset_chain("plain", type=vtype, level=lv)
    return preset_chain("plain", k=topk, type=vtype, index_type=index_type or "uint16", level=lv)


@click.command("import")
@click.argument("source", type=click.Path(exists=True, file_okay=False))
@click.option(
    "-o", "--output", "out", required=True, type=click.Path(dir_okay=False), help="The label store to write (*.lpl)."
)
@click.option(
    "--from",
    "layout",
    type=click.Choice(_LAYOUT_CHOICES),
    default="auto",
    show_default=True,
    help="Legacy layout of SOURCE (auto: detect from names and the first file).",
)
@click.option("--force", is_flag=True, help="Replace OUT if it exists (only once the new store is complete).")
@click.option(
    "--codecs",
    default=None,
    metavar="JSON",
    help="Label codec chain as a JSON list (or a file holding one). Default: lossless.",
)
@click.option("--topk", type=click.IntRange(1), default=None, help="Store only the top-k logits (lossy).")
@click.option("--values", default=None, help="Label value type fp32, fp16 or bf16 [default: the legacy dtype].")
@click.option(
    "--index-type",
    type=click.Choice(["int16", "uint16", "int32"]),
    default=None,
    help="Top-k index type with --topk [default: uint16].",
)
@click.option("--zstd-level", type=click.IntRange(-7, 22), default=None, help="zstd level [default: 3].")
@click.option(
    "--steps-per-chunk",
    type=click.IntRange(1),
    default=None,
    help="Steps per chunk [default: 8, the steps a training loader item reads together; 1 for FKD].",
)
@click.option(
    "--images",
    default=None,
    type=click.Path(exists=True),
    help="The distilled ImageFolder (or a file of image keys) the labels index; default keys 0..N-1.",
)
@click.option("--num-images", type=click.IntRange(1), default=None, help="N, when the files cannot tell it.")
@click.option(
    "--num-classes",
    type=click.IntRange(2),
    default=None,
    help="C for top-k label sets (LPQLD, FKD), which do not record it.",
)
@click.option("--seed", type=int, default=42, show_default=True, help="SRe2L: the relabel --fkd-seed.")
@click.option(
    "--order",
    default=None,
    type=click.Path(exists=True, dir_okay=False),
    help='SRe2L: image order per epoch (JSON {"<epoch>": [ids]} or .npy [epochs, N]) instead of the replay.',
)
@click.option(
    "--replay",
    type=click.Choice(["torch>=1.11", "torch<1.11"]),
    default="torch>=1.11",
    show_default=True,
    help="SRe2L: the PyTorch generation whose RandomSampler made the labels.",
)
@click.option(
    "--steps-per-epoch",
    type=click.IntRange(1),
    default=None,
    help="LPQLD: batches per epoch [default: inferred from the sampler JSON].",
)
@click.option(
    "--fkd-values",
    type=click.Choice(["logprob", "prob"]),
    default="logprob",
    show_default=True,
    help="FKD: store log-probabilities (readable as logits) or the probabilities as they are.",
)
@click.option("--fkd-temperature", type=float, default=1.0, show_default=True, help="FKD: the generator's --temp.")
@click.option(
    "--input-size",
    type=click.IntRange(1, 32767),
    default=None,
    help="The relabel --input-size, recorded in the header's view policy.",
)
@click.option("--progress/--no-progress", default=True, show_default=True, help="Progress bar on stderr.")
@click.option("--json", "as_json", is_flag=True, help="Print the import report as JSON.")
def import_cmd(
    source,
    out,
    layout,
    force,
    codecs,
    topk,
    values,
    index_type,
    zstd_level,
    steps_per_chunk,
    images,
    num_images,
    num_classes,
    seed,
    order,
    replay,
    steps_per_epoch,
    fkd_values,
    fkd_temperature,
    input_size,
    progress,
    as_json,
):
    """Import a legacy soft-label directory (SRe2L/CDA, LPLD, LPQLD, FKD, G-VBSM/EDC) into a store.

    Streams one legacy file at a time (bounded memory). By default the labels, crops, flips,
    mix permutations, lambdas and boxes are kept bit-exactly, so `lplabel export` gives the
    original files back. Legacy files are unpickled with torch.load(weights_only=True) and only
    the numpy types those files contain allowed; any other pickle is refused.
    """
    from .. import api
    from ..store.text import import_lines

    chain = friendly_codecs(codecs, topk, values, index_type, zstd_level)
    report = api.import_legacy(
        source,
        out,
        layout=layout,
        codecs=chain,
        force=force,
        progress=progress,
        images=images,
        num_images=num_images,
        num_classes=num_classes,
        seed=seed,
        order=order,
        replay=replay,
        steps_per_epoch=steps_per_epoch,
        fkd_values=fkd_values,
        fkd_temperature=fkd_temperature,
        input_size=input_size,
        steps_per_chunk=steps_per_chunk,
        zstd_level=3 if zstd_level is None else zstd_level,
    )
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
        return
    for line in import_lines(report):
        click.echo(line)


@click.command("export")
@click.argument("store", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", "out", required=True, type=click.Path(), help="The directory to write.")
@click.option("--to", "layout", type=click.Choice(_EXPORT_CHOICES), required=True, help="Legacy layout to write.")
@click.option("--force", is_flag=True, help="Replace OUT if it exists (only once the new directory is complete).")
@click.option(
    "-k",
    "--k",
    "k",
    type=click.IntRange(1),
    default=None,
    help="LPQLD: write MR-k top-k records [default: the store's k; dense stores: dense records].",
)
@click.option(
    "--seed",
    type=int,
    default=None,
    help="SRe2L: the --fkd-seed of the training script, whose replayed order the store must have "
    "[default: the seed an SRe2L import recorded, else 42].",
)
@click.option(
    "--replay",
    type=click.Choice(["torch>=1.11", "torch<1.11"]),
    default=None,
    help="SRe2L: replay mode [default: as imported, else torch>=1.11].",
)
@click.option("--allow-gaps", is_flag=True, help="Write epoch layouts even when the store lacks steps of an epoch.")
@click.option(
    "--plain-ints",
    is_flag=True,
    help="Write CutMix boxes as Python ints, not numpy.int64: torch>=2.6's default torch.load "
    "(weights_only=True) then reads LPLD/SRe2L/G-VBSM files (not bit-exact).",
)
@click.option("--progress/--no-progress", default=True, show_default=True, help="Progress bar on stderr.")
@click.option("--json", "as_json", is_flag=True, help="Print the export report as JSON.")
def export_cmd(store, out, layout, force, k, seed, replay, allow_gaps, plain_ints, progress, as_json):
    """Write a label store as a legacy directory the original training scripts read unchanged.

    Same file names, Python/tensor types and dtypes and JSON files as the legacy generators
    write; a store imported from that layout comes back bit-exactly.
    """
    from .. import api
    from ..store.text import export_lines

    report = api.export_legacy(
        store,
        out,
        layout=layout,
        force=force,
        progress=progress,
        k=k,
        seed=seed,
        replay=replay,
        allow_gaps=allow_gaps,
        plain_ints=plain_ints,
    )
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
        return
    for line in export_lines(report):
        click.echo(line)


register(import_cmd)
register(export_cmd)
