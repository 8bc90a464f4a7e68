"""``lplabel bench accuracy``: label storage against student accuracy, end to end, on real data."""

from __future__ import annotations

import shlex
import sys

import click

from ._common import register


def _echo(msg: str) -> None:
    click.echo(msg, err=True)


@click.group("bench")
def bench():
    """Benchmarks that run lplabel end to end on real data."""


@bench.command("accuracy")
@click.option(
    "--dataset",
    default="digits",
    show_default=True,
    help="digits (bundled, CPU minutes), cifar10 or tiny-imagenet (the ImageNet-1K EfficientNet-Lite0 "
    "teacher, 1000-class labels).",
)
@click.option("--ipc", type=int, default=None, help="Distilled images per class [default: 10].")
@click.option(
    "--selection",
    default="random",
    show_default=True,
    help="random (real images) or rded (teacher-scored patches stitched 2x2).",
)
@click.option("--seeds", type=int, default=None, help="Students per setting [default: 3; --quick: 2].")
@click.option(
    "--epochs",
    type=int,
    default=None,
    help="Relabel (stored) epochs; students train as many unless --student-epochs is given [default: 300 "
    "(tiny-imagenet 100; --preset cpu 30, its students 100); --quick: fewer].",
)
@click.option(
    "--student-epochs",
    type=click.IntRange(1),
    default=None,
    help="Student training epochs; more than the stored epochs cycles them (epoch e reads stored epoch "
    "e mod E) [default: --epochs if given, else the preset's (--preset cpu: 100), else the relabel epochs].",
)
@click.option("--device", default="auto", show_default=True, help="cpu, cuda or auto (cuda when available).")
@click.option(
    "--out",
    "out",
    type=click.Path(file_okay=False),
    default=None,
    help="Output folder (cache, stores, results) [default: out/bench-DATASET-ipcN-SELECTION].",
)
@click.option(
    "--settings",
    default=None,
    metavar="NAMES",
    help="Comma-separated setting names [default: the dataset's sweep]. Grammar: full | lpld-keep1in<X> | "
    "lpqld-k<K>[-keep1in<X>] | lpl-k<K>-<fp16|bf16|fp32|int8|int4|none>[-tail|-min][-keep1in<X>] | "
    "lpl-dense-<values>[-keep1in<X>], optional -T<t> or -dkr (LPQLD's step temperature schedule "
    "20->2). keep1in<X> keeps a random 1/X of the steps (pruning, not the size ratio; the old "
    "spelling <X>x is still read). 'full' is always included.",
)
@click.option("--quick", is_flag=True, help="A short smoke run (fewer epochs and seeds).")
@click.option(
    "--preset",
    default=None,
    metavar="NAME",
    help="Named defaults below your options: cpu (tiny-imagenet, the 1000-class experiment in about 70 "
    "minutes on 2 cores: a fixed 100 of the 200 classes at IPC 10, the ONNX EfficientNet-Lite0 teacher at "
    "224 px with crops of 0.5-1, 30 stored epochs, 2 seeds of ConvNet-3 students at 32 px trained 100 "
    "epochs, 2 at a time) or gpu (one H100/H200: 200 classes, "
    "300 epochs, bf16 Lite0, ResNet-18-style students at 64 px); lplabel/experiment/harness/sweep.py PRESETS.",
)
@click.option(
    "--teacher",
    "teacher",
    type=click.Path(dir_okay=False),
    default=None,
    help="--preset cpu: an ONNX teacher file (1000 outputs, 224 px) [default: EfficientNet-Lite0 exported "
    "once into OUT/teacher/].",
)
@click.option(
    "--classes",
    type=click.IntRange(1),
    default=None,
    help="A fixed subset of this many classes, evenly spread over the sorted class order [default: the "
    "preset's, else all].",
)
@click.option(
    "--test-limit", type=click.IntRange(1), default=None, help="Test images per class [default: all; --quick: fewer]."
)
@click.option(
    "--temperature", type=float, default=None, help="Student/label temperature T [default: 2 for digits, 4 otherwise]."
)
@click.option("--lr", type=float, default=None, help="Student AdamW learning rate [default: per dataset].")
@click.option("--teacher-epochs", type=int, default=None, help="Epochs of the trained teacher.")
@click.option("--workers", type=click.IntRange(0), default=0, show_default=True, help="DataLoader workers.")
@click.option(
    "--seed",
    type=click.IntRange(0, 2**31 - 1),
    default=0,
    show_default=True,
    help="Seed of the teacher, the distilled set, the views and the pruning.",
)
@click.option(
    "--data-root",
    type=click.Path(file_okay=False),
    default=None,
    help="Folder with cifar10-jpeg/ and tiny-imagenet-jpeg/ [default: $LPLABEL_DATA; in a source "
    "checkout ../shared/data].",
)
@click.option(
    "--threads",
    type=click.IntRange(1),
    default=None,
    help="torch intra-op threads [default: 1 on the CPU, torch's default on a GPU].",
)
@click.option(
    "--jobs",
    type=click.IntRange(1),
    default=None,
    help="Students trained at once, each in its own worker process with --threads torch threads; the "
    "same students as one at a time [default: 1; --preset cpu: 2 (at most the CPU's cores)]. CPU only.",
)
@click.option("--force", is_flag=True, help="Recompute everything (ignore the cache in --out).")
@click.option(
    "--report-only",
    is_flag=True,
    help="Train no student: write the report from the students already in --out (an interrupted run; "
    "rows say how many seeds they have).",
)
@click.option(
    "--online-students/--no-online-students",
    default=None,
    help="Train the online-teacher row's students; without them the row reports its bytes and the "
    "teacher's compute per step only [default: yes; --preset cpu: no, the 224-px teacher in every "
    "student step costs about 20 minutes per student on a CPU core].",
)
@click.option("--progress/--no-progress", default=None, help="Progress bars [default: when stderr is a terminal].")
def accuracy(
    dataset,
    ipc,
    selection,
    seeds,
    epochs,
    student_epochs,
    device,
    out,
    settings,
    quick,
    preset,
    temperature,
    lr,
    teacher_epochs,
    workers,
    seed,
    data_root,
    threads,
    jobs,
    force,
    progress,
    teacher,
    classes,
    test_limit,
    report_only,
    online_students,
):
    """Measure storage against student accuracy on real data.

    Trains a teacher (or loads EfficientNet-Lite0 for tiny-imagenet), builds a distilled set,
    relabels it into a dense fp16 store, derives one store per setting (LPLD-style pruning,
    LPQLD-style top-k fp16, lplabel's codecs), trains SEEDS students from each through the
    loader and writes results.{csv,json,md} and accuracy_vs_bytes.png to --out. Reruns reuse
    every finished stage.
    """
    from ..experiment.harness import BenchConfig, resolve_config, run_bench

    cfg = BenchConfig(
        dataset=dataset,
        ipc=ipc,
        selection=selection,
        seeds=seeds,
        epochs=epochs,
        student_epochs=student_epochs,
        device=device,
        out=out,
        settings=settings,
        quick=quick,
        temperature=temperature,
        lr=lr,
        teacher_epochs=teacher_epochs,
        num_workers=workers,
        seed=seed,
        force=force,
        data_root=data_root,
        progress=progress,
        threads=threads,
        jobs=jobs,
        preset=preset,
        teacher=teacher,
        classes=classes,
        test_limit=test_limit,
        report_only=report_only,
        online_students=online_students,
    )
    resolved = resolve_config(cfg)  # every check before any work
    command = "lplabel " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv else None
    return run_bench(resolved, echo=_echo, command=command)


register(bench)
