"""``lplabel export-teacher``: write any lplabel teacher as an ONNX file for onnxruntime."""

from __future__ import annotations

import click

from ._common import register


@click.command("export-teacher")
@click.argument("spec")
@click.option(
    "-o", "--output", "out", required=True, type=click.Path(dir_okay=False), help="The ONNX file to write (*.onnx)."
)
@click.option("--checkpoint", default=None, metavar="PATH", help="State-dict file for a module:factory SPEC.")
@click.option(
    "--normalize",
    type=click.Choice(["auto", "imagenet", "unit", "none"]),
    default="auto",
    show_default=True,
    help="As for relabel; the normalisation is exported inside the graph.",
)
@click.option("--random-weights", is_flag=True, help="Allow a torchvision:/timm: teacher without weights.")
@click.option(
    "--input-size",
    type=click.IntRange(1, 4096),
    default=None,
    help="Side of the input the graph is traced at and takes [default: the teacher's native size "
    "(224 for efficientnet-lite0), else 32].",
)
@click.option(
    "--channels", type=click.IntRange(1, 4), default=3, show_default=True, help="Input channels of the teacher."
)
@click.option(
    "--images",
    default="tiny-imagenet:val",
    show_default=True,
    help="Real images the export is checked on (ImageFolder, .npz pack or built-in NAME:SPLIT).",
)
@click.option(
    "--data-root",
    type=click.Path(file_okay=False),
    default=None,
    help="Folder with the built-in data sets [default: $LPLABEL_DATA; in a checkout ../shared/data].",
)
@click.option(
    "--count",
    type=click.IntRange(1, 4096),
    default=16,
    show_default=True,
    help="How many of the images to compare ONNX and PyTorch logits on.",
)
@click.option(
    "--tolerance",
    type=click.FloatRange(0),
    default=1e-3,
    show_default=True,
    help="Largest accepted max |logit difference| between ONNX and PyTorch; above it nothing is written.",
)
@click.option("--force", is_flag=True, help="Replace OUTPUT if it exists.")
def export_teacher_cmd(
    spec, out, checkpoint, normalize, random_weights, input_size, channels, images, data_root, count, tolerance, force
):
    """Export the teacher SPEC to ONNX and check it against PyTorch on real images.

    SPEC is any relabel --teacher spec (efficientnet-lite0, 'module:factory{json}' with
    --checkpoint, a TorchScript file). The graph takes float32 NCHW RGB pixels in 0..255 with a
    dynamic batch dimension, its normalisation inside (recorded in the file's metadata with the
    source's weight checksum), so `lplabel relabel --teacher OUTPUT` writes the same header facts.
    Prints max |dlogit| and top-1 agreement between ONNX and PyTorch; refuses above --tolerance.
    Needs the onnx extra: pip install 'lplabel[onnx]'.
    """
    from ..deps import require

    require("onnxruntime", "lplabel export-teacher")  # before any work (images, teacher)
    require("onnx", "lplabel export-teacher")
    from ..teachers.onnx_export import export_teacher
    from ..relabel import load_images

    iset = load_images(images, data_root=data_root)
    export_teacher(
        spec,
        out,
        checkpoint=checkpoint,
        normalize=None if normalize == "auto" else normalize,
        random_weights=random_weights,
        input_size=input_size,
        channels=channels,
        check_images=iset,
        check_count=count,
        tolerance=tolerance,
        force=force,
        log=lambda s: click.echo(s),
    )


register(export_teacher_cmd)
