"""``lplabel distill-generator``: train a small label generator and store it in a ``.lpl`` file."""

from __future__ import annotations

import click

from ._common import register


@click.command("distill-generator")
@click.argument("store", type=click.Path(dir_okay=False))
@click.argument("images")
@click.option(
    "-o",
    "--output",
    "out",
    required=True,
    type=click.Path(dir_okay=False),
    help="The store to write: STORE's views, the generator, top-1 class indices as its label column.",
)
@click.option(
    "--budget",
    type=click.IntRange(1),
    required=True,
    metavar="BYTES",
    help="Most bytes the generator may take in the file (its whole header entry); the largest "
    "generator that fits is trained.",
)
@click.option(
    "--teacher",
    default=None,
    metavar="SPEC",
    help="Imitate this teacher, run on STORE's views (any relabel --teacher spec), instead of STORE's stored labels.",
)
@click.option("--checkpoint", default=None, metavar="PATH", help="State-dict file for a module:factory --teacher.")
@click.option(
    "--epochs",
    type=click.IntRange(1),
    default=None,
    help="Training epochs through STORE's schedule [default: 3 passes over STORE's epochs; 10 from "
    "128 classes on, where 3 underfit].",
)
@click.option("--depth", type=click.IntRange(1, 8), default=2, show_default=True, help="3x3 convolutions.")
@click.option(
    "--resolution",
    type=click.IntRange(1),
    default=None,
    metavar="PX",
    help="The side each view is average-pooled to inside the generator, before its convolutions "
    "(convnet-lite-v2; the view size: no pooling, convnet-lite-v1) [default: min(view size, 32): "
    "the side small students train at; compute grows with its square].",
)
@click.option(
    "--lr",
    type=click.FloatRange(0, min_open=True),
    default=None,
    help="Adam's learning rate [default: min(0.01, 0.1 / width)].",
)
@click.option(
    "--shape",
    default=None,
    metavar="WxR",
    help="Train this network instead of the one chosen for --budget: width W and head rank R "
    "('full': a full head), e.g. 96x24; it must fit --budget. For measuring a budget's frontier "
    "(the default: the widest network that fits, with a head of rank >= 16 from 128 classes on "
    "when one fits).",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N.")
@click.option(
    "--data-root",
    type=click.Path(file_okay=False),
    default=None,
    help="Folder with the built-in data sets [default: $LPLABEL_DATA; in a checkout ../shared/data].",
)
@click.option("--force", is_flag=True, help="Replace OUTPUT if it exists.")
def distill_generator_cmd(
    store,
    images,
    out,
    budget,
    teacher,
    checkpoint,
    epochs,
    depth,
    resolution,
    lr,
    shape,
    seed,
    device,
    data_root,
    force,
):
    """Train a label generator to imitate STORE's labels on its views and store it (HeLlO's idea).

    IMAGES are the distilled images STORE was labelled from (ImageFolder, .npz pack or built-in
    NAME:SPLIT; checked against STORE's fingerprint). The generator is a compact network
    (spec/FORMAT.md §12, convnet-lite-v1, or -v2 when it pools the views to --resolution px
    first) of at most --budget bytes, trained with KL at T=1 on
    every view of STORE; OUTPUT holds STORE's views, the generator (must_understand) and, as its
    label column, the targets' top-1 class indices. The loader labels OUTPUT's views with the
    generator (label_source='generator', its default for such a store). `lplabel info OUTPUT`
    shows the generator's bytes; `lplabel verify` checks its weights.
    """
    from ..deps import require

    if shape is not None:  # nonsense is a usage error before anything is loaded
        w, _, r = shape.lower().partition("x")
        if not (w.isdigit() and (r.isdigit() or r == "full") and int(w) >= 1 and (r == "full" or int(r) >= 1)):
            raise click.BadParameter(f"{shape!r} is not WxR (e.g. 96x24 or 8xfull)", param_hint="--shape")
        shape = (int(w), None if r == "full" else int(r))
    require("torch", "lplabel distill-generator")  # before any work
    from ..relabel import load_images
    from ..torch.distill import distill_generator

    iset = load_images(images, data_root=data_root)
    rep = distill_generator(
        store,
        iset,
        out,
        budget=budget,
        teacher=teacher,
        checkpoint=checkpoint,
        epochs=epochs,
        depth=depth,
        resolution=resolution,
        lr=lr,
        shape=shape,
        seed=seed,
        device=device,
        force=force,
        log=lambda s: click.echo(s),
    )
    click.echo(
        f"wrote {rep['path']}: generator {rep['bytes']:,} B ({rep['parameters']:,} parameters), top-1 "
        f"agreement {100 * rep['top1_agreement']:.2f} % with its targets on the last pass"
    )


register(distill_generator_cmd)
