"""``lplabel relabel`` and ``lplabel merge``: make a label store from images and a teacher."""

from __future__ import annotations

import click

from ._common import KEEP, register


def _echo(msg: str) -> None:
    click.echo(msg, err=True)


@click.command("relabel")
@click.argument("images")
@click.option(
    "-o", "--output", "out", required=True, type=click.Path(dir_okay=False), help="The label store to write (*.lpl)."
)
@click.option(
    "--teacher",
    "teachers",
    multiple=True,
    required=True,
    metavar="SPEC",
    help="TorchScript file, 'package.module:factory[{json}]', torchvision:NAME, timm:NAME, "
    "efficientnet-lite0, or an ONNX file (*.onnx, run by onnxruntime: pip install 'lplabel[onnx]'; "
    "lplabel export-teacher writes one). Repeat for an ensemble (logits are averaged). The teacher gets float32 "
    "NCHW RGB pixels in 0..255 (see --normalize) and must return one logit per class.",
)
@click.option(
    "--checkpoint",
    "checkpoints",
    multiple=True,
    metavar="PATH",
    help="State-dict file for a factory teacher; once per --teacher, in order ('-' for none).",
)
@click.option(
    "--normalize",
    type=click.Choice(["auto", "imagenet", "unit", "none"]),
    default="auto",
    show_default=True,
    help="What the teacher's 0..255 pixels become. imagenet: (x/255 - mean)/std with ImageNet's "
    "mean/std; unit: x/255 (0..1 pixels, for a teacher that expects them and normalises "
    "itself); none: the 0..255 pixels as they are. auto: imagenet for torchvision: teachers "
    "(timm: the model's own mean/std), the stored statistics for a checkpoint saved from an "
    "lplabel teacher, none for TorchScript files and module:factory teachers (they must "
    "normalise themselves).",
)
@click.option(
    "--random-weights",
    is_flag=True,
    help="Allow a torchvision:/timm: teacher without pretrained weights (random labels; for tests "
    "and timing only). Without it such a teacher is refused.",
)
@click.option("--split", default=None, help="Split of a built-in dataset (default train; or NAME:SPLIT).")
@click.option(
    "--data-root",
    type=click.Path(file_okay=False),
    default=None,
    help="Folder with cifar10-jpeg/ and tiny-imagenet-jpeg/, for a built-in IMAGES name "
    "[default: $LPLABEL_DATA; in a source checkout ../shared/data].",
)
@click.option("--ipc", type=click.IntRange(1), default=None, help="Keep N random real images per class.")
@click.option("--ipc-seed", type=int, default=0, show_default=True, help="Seed of the --ipc choice.")
@click.option("--epochs", type=click.IntRange(1), default=300, show_default=True)
@click.option("--batch-size", "-b", type=click.IntRange(1, 32767), default=128, show_default=True)
@click.option(
    "--size",
    type=click.IntRange(1, 32767),
    default=None,
    help="Output side S of the views (default: the images' side when all are square and equal).",
)
@click.option("--crop-scale", nargs=2, type=float, default=(0.08, 1.0), show_default=True, metavar="MIN MAX")
@click.option(
    "--crop-ratio",
    nargs=2,
    type=float,
    default=(3 / 4, 4 / 3),
    metavar="MIN MAX",
    help="Aspect ratio range of RandomResizedCrop  [default: 0.75 1.333]",
)
@click.option(
    "--flip-p",
    type=click.FloatRange(0, 1),
    default=None,
    help="Horizontal flip probability [default: 0.5; 0 for data sets marked not flippable, e.g. digits]",
)
@click.option("--mix", type=click.Choice(["cutmix", "mixup", "none"]), default="cutmix", show_default=True)
@click.option("--mix-alpha", type=float, default=None, help="Beta(a, a) of lambda [default: 1.0 cutmix, 0.8 mixup]")
@click.option("--seed", type=click.IntRange(0, 2**32 - 1), default=0, show_default=True)
@click.option("--drop-last", is_flag=True, help="Drop each epoch's short last step.")
@click.option("--device", default="auto", show_default=True, help="cpu, cuda, cuda:N or auto.")
@click.option("--amp/--no-amp", default=False, show_default=True, help="Autocast the teacher (bf16/fp16).")
@click.option("--amp-dtype", type=click.Choice(["auto", "bfloat16", "float16"]), default="auto", show_default=True)
@click.option("--channels-last/--no-channels-last", default=None, help="[default: on with CUDA]")
@click.option(
    "--keep",
    type=KEEP,
    default=None,
    help="Compute and store only this fraction of the steps, in (0, 1]: 0.025, 1/40 or 2.5% (seeded "
    "random; LPLD pruning).",
)
@click.option("--keep-seed", type=int, default=None, help="Seed of the --keep choice [default: --seed].")
@click.option(
    "--keep-unit",
    type=click.Choice(["step", "epoch"]),
    default="step",
    show_default=True,
    help="What --keep keeps or drops as a whole.",
)
@click.option(
    "--keep-metric",
    type=click.Choice(["random", "order"]),
    default="random",
    show_default=True,
    help="random: a seeded random subset (LPLD); order: the first steps in (epoch, step) order.",
)
@click.option(
    "--reuse",
    type=click.Choice(["lpld", "lpqld"]),
    default="lpld",
    show_default=True,
    help="Reuse schedule recorded for training on a pruned store.",
)
@click.option("--topk", type=click.IntRange(0), default=None, help="Store the top-k logits (default: dense).")
@click.option(
    "--values",
    default="fp16",
    show_default=True,
    help="Label value type: fp32, fp16, bf16 (int8, int4 where lplabel.codecs.label_chain exists), or "
    "none: the --topk class indices only, no values (see lplabel quantize --help).",
)
@click.option(
    "--index-type", type=click.Choice(["uint8", "int16", "uint16", "int32"]), default="uint16", show_default=True
)
@click.option(
    "--index-coding",
    type=click.Choice(["none", "value-delta", "index-delta"]),
    default=None,
    help="Top-k index coding (see lplabel quantize).",
)
@click.option(
    "--tail",
    type=click.Choice(["none", "logsumexp", "min"]),
    default="none",
    show_default=True,
    help="Top-k tail summary.",
)
@click.option("--zstd-level", type=click.IntRange(1, 22), default=3, show_default=True)
@click.option(
    "--steps-per-chunk",
    type=click.IntRange(1),
    default=None,
    help="Steps per chunk [default: 8, the steps a training loader item reads together; 1 for an "
    "LPLD/LPQLD-pruned store, read in random order].",
)
@click.option(
    "--class-map",
    default=None,
    metavar="in1k|FILE",
    help="Map teacher outputs to the image set's classes: 'in1k' (Tiny-ImageNet's in1k_index) or a "
    ".npy / text file with one teacher output index per class; the store keeps logits[:, map].",
)
@click.option("--force", is_flag=True, help="Replace OUTPUT if it exists (only once the new store is complete).")
@click.option("--fresh", is_flag=True, help="Discard an unfinished run's work directory instead of resuming it.")
@click.option(
    "--work-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Where parts are kept until the merge [default: OUTPUT.partial].",
)
@click.option(
    "--part-steps",
    type=click.IntRange(1),
    default=None,
    help="Steps per checkpointed part [default: about 32k views; a resumed run keeps its value].",
)
@click.option("--merge/--no-merge", default=True, show_default=True, help="Merge the parts into OUTPUT at the end.")
@click.option("--rank", type=click.IntRange(0), default=None, help="This shard's rank (shards started by hand).")
@click.option("--world-size", type=click.IntRange(1), default=None, help="Number of shards (with --rank).")
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Progress on stderr: a bar on a terminal, else a plain line (views/s, ETA) every "
    "LPLABEL_PROGRESS_INTERVAL seconds [default: on; 60 s].",
)
@click.option(
    "--threads",
    type=click.IntRange(1),
    default=None,
    help="torch threads of this process [default: the cores other processes leave idle (cores "
    "minus load average, at least 1), or OMP_NUM_THREADS when set].",
)
@click.option(
    "--store-views",
    is_flag=True,
    help="Store the view columns. By default they are derived: not stored, regenerated from the header "
    "(seed, policy) and the image sizes when read, which needs a numpy with the same random streams.",
)
def relabel_cmd(
    images,
    out,
    teachers,
    checkpoints,
    normalize,
    random_weights,
    split,
    ipc,
    ipc_seed,
    epochs,
    batch_size,
    size,
    crop_scale,
    crop_ratio,
    flip_p,
    mix,
    mix_alpha,
    seed,
    drop_last,
    device,
    amp,
    amp_dtype,
    channels_last,
    keep,
    keep_seed,
    keep_unit,
    keep_metric,
    reuse,
    topk,
    values,
    index_type,
    index_coding,
    tail,
    zstd_level,
    steps_per_chunk,
    class_map,
    force,
    fresh,
    work_dir,
    part_steps,
    merge,
    rank,
    world_size,
    progress,
    threads,
    store_views,
    data_root,
):
    """Label seeded augmented views of IMAGES with a teacher and write a label store.

    IMAGES is an ImageFolder tree (DIR/<class>/<image>), an .npz image pack, or a built-in data set
    (digits, cifar10, tiny-imagenet; NAME:SPLIT). Views (RandomResizedCrop, flip, CutMix/MixUp)
    are a pure function of (seed, epoch, step). The teacher must output one logit per class of
    IMAGES (or use --class-map).

    Teachers get float32 NCHW RGB pixels in 0..255, not 0..1: a teacher that normalises itself
    (lplabel's, or a TorchScript export that includes its normalisation) is used as it is; one
    that expects 0..1 input needs --normalize unit, one that expects ImageNet-normalised input
    --normalize imagenet. Before the run (on up to
    256 whole images) and after it (on the views), the teacher's top-1 on the images' own classes
    is printed, with a WARNING when it is near chance.

    A killed run resumes when started again with the same command (finished parts are kept in
    OUTPUT.partial/). Under torchrun every rank labels its share and rank 0 merges; shards
    started by hand take --rank/--world-size and are joined by `lplabel merge`.
    """
    from pathlib import Path

    from ..relabel import (
        LabelsConfig,
        OutputConfig,
        ProcessConfig,
        Pruning,
        RelabelConfig,
        TeacherConfig,
        ViewsPolicy,
        load_images,
        load_teachers,
        run_relabel,
    )

    import warnings

    from ..relabel.check import TeacherAccuracyWarning

    warnings.simplefilter("ignore", TeacherAccuracyWarning)  # printed as a WARNING line already
    iset = load_images(images, ipc=ipc, ipc_seed=ipc_seed, split=split, data_root=data_root)
    model, desc = load_teachers(
        teachers, checkpoints, normalize=None if normalize == "auto" else normalize, random_weights=random_weights
    )
    config = RelabelConfig(
        views=ViewsPolicy(
            epochs=epochs,
            batch_size=batch_size,
            size=size,
            crop_scale=crop_scale,
            crop_ratio=crop_ratio,
            flip_p=flip_p,
            mix=mix,
            mix_alpha=mix_alpha,
            seed=seed,
            drop_last=drop_last,
        ),
        pruning=Pruning(keep=keep, keep_seed=keep_seed, keep_unit=keep_unit, keep_metric=keep_metric, reuse=reuse),
        teacher=TeacherConfig(
            device=device,
            amp=amp,
            amp_dtype=amp_dtype,
            channels_last=channels_last,
            class_map=class_map,
            description=desc,
        ),
        labels=LabelsConfig(
            topk=topk or None,
            values=values,
            index_type=index_type,
            tail=tail,
            index_coding=index_coding,
            zstd_level=zstd_level,
        ),
        output=OutputConfig(
            force=force,
            fresh=fresh,
            work_dir=work_dir,
            steps_per_part=part_steps,
            merge=merge,
            views="stored" if store_views else "derived",
            steps_per_chunk=steps_per_chunk,
        ),
        process=ProcessConfig(
            rank=rank, world_size=world_size, threads="auto" if threads is None else threads, progress=progress
        ),
    )
    run_relabel(iset, model, Path(out), config, log=_echo)


@click.command("merge")
@click.argument("sources", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("-o", "--output", "out", required=True, type=click.Path(dir_okay=False))
@click.option("--force", is_flag=True, help="Replace OUTPUT if it exists.")
@click.option("--allow-incomplete", is_flag=True, help="Merge even when planned steps are missing.")
@click.option("--remove-sources", is_flag=True, help="Delete the merged work directories afterwards.")
@click.option("--progress/--no-progress", default=None)
def merge_cmd(sources, out, force, allow_incomplete, remove_sources, progress):
    """Join relabel shards into one label store.

    SOURCES are relabel work directories (OUTPUT.partial, one per machine or rank) and/or .lpl
    shard stores of one run. Steps must be disjoint; with work directories every planned step
    must be present (else the missing parts are listed). The result equals a single-process run.
    """
    from .. import api
    from ..store import store_info
    from ..store.text import merged_line

    res = api.merge(
        sources,
        out,
        force=force,
        allow_incomplete=allow_incomplete,
        remove_sources=remove_sources,
        progress=progress,
        log=_echo,
    )
    _echo(merged_line(store_info(res.path)))


register(relabel_cmd)
register(merge_cmd)
