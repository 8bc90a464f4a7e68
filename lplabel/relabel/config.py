"""What a relabel run is told: small frozen config objects, one per concern.

:func:`lplabel.relabel.run_relabel` takes one :class:`RelabelConfig`, made of

- :class:`ViewsPolicy` -- the schedule and the augmentation of the views (what is labelled);
- :class:`Pruning` -- which steps of that schedule are computed and stored;
- :class:`TeacherConfig` -- how the teacher runs (device, precision, class map, header facts, check);
- :class:`LabelsConfig` -- how its labels are stored (top-k, value format, codec chain);
- :class:`OutputConfig` -- the store and the work directory (force, resume, parts, merge, view columns);
- :class:`ProcessConfig` -- how this process runs (its shard, threads, image bank, writer queue, progress).

Each object checks what it can check alone in ``__post_init__`` and raises the relabeler's named
error (:class:`~lplabel.relabel.errors.RelabelError`), so a bad option fails before any image is
read or any teacher is run. Rules that need the images, the teacher or the plan stay with their
owners: the output side (:meth:`ViewsPolicy.augment_policy`), the top-k width and value formats
(:func:`~lplabel.relabel.labels.build_label_chain`), the selection
(:func:`~lplabel.relabel.plan.make_plan`), the thread count (:func:`lplabel.threads.plan_threads`).

The keyword arguments ``run_relabel`` took before these objects existed (``epochs=``, ``topk=``,
``force=`` ...) are still accepted for one release: :meth:`RelabelConfig.from_kwargs` maps each
to its field (``LEGACY_KWARGS``), silently (no warning: they are what most callers and tests use).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from ..views import AugmentPolicy
from .errors import RelabelError


@dataclass(frozen=True)
class ViewsPolicy:
    """The views a run labels: ``epochs`` x steps of ``batch_size`` views (B <= 32767: mix partners
    are int16), each a RandomResizedCrop (``crop_scale``, ``crop_ratio``) to ``size`` x ``size``
    (None: the images' side when they are all square and of one size), flipped with probability
    ``flip_p`` (None: 0.5, or 0 when ``images.meta["hflip"]`` is false), mixed by ``mix``
    (``cutmix``/``mixup``/``none``, with ``mix_alpha``); all a pure function of ``seed``
    (``[0, 2**32)``). ``drop_last`` drops the last short step of an epoch."""

    epochs: int = 300
    batch_size: int = 128
    size: int | None = None
    crop_scale: tuple = (0.08, 1.0)
    crop_ratio: tuple = (3.0 / 4.0, 4.0 / 3.0)
    flip_p: float | None = None
    mix: str = "cutmix"
    mix_alpha: float | None = None
    seed: int = 0
    drop_last: bool = False

    def __post_init__(self):
        E, B = int(self.epochs), int(self.batch_size)
        if E < 1 or not 1 <= B <= 32767:
            raise RelabelError(f"epochs must be >= 1 and batch size in [1, 32767]; got {E} and {B}")
        seed = int(self.seed)
        if not 0 <= seed < 2**32:
            raise RelabelError(f"seed must be in [0, 2**32), got {seed}")
        _set(
            self,
            epochs=E,
            batch_size=B,
            seed=seed,
            drop_last=bool(self.drop_last),
            crop_scale=tuple(self.crop_scale),
            crop_ratio=tuple(self.crop_ratio),
        )

    def augment_policy(self, images) -> AugmentPolicy:
        """The :class:`~lplabel.views.AugmentPolicy` for ``images``: resolves ``size`` and ``flip_p``."""
        size = self.size
        if size is None:
            uniq = np.unique(images.sizes(), axis=0)
            if len(uniq) != 1 or uniq[0, 0] != uniq[0, 1]:
                raise RelabelError("images are not all square and of one size: give the output side (--size)")
            size = int(uniq[0, 0])
        flip_p = self.flip_p
        if flip_p is None:
            flip_p = 0.5 if (getattr(images, "meta", {}) or {}).get("hflip", True) else 0.0
        try:
            return AugmentPolicy(
                output_size=int(size),
                crop_scale=self.crop_scale,
                crop_ratio=self.crop_ratio,
                flip_p=flip_p,
                mix=self.mix,
                mix_alpha=self.mix_alpha,
            )
        except ValueError as e:
            raise RelabelError(f"invalid augmentation: {e}") from None


@dataclass(frozen=True)
class Pruning:
    """Which steps are computed and stored (:func:`lplabel.selection.select_steps`): ``keep``
    (None: all; else the fraction of steps, or of epochs with ``keep_unit="epoch"``),
    ``keep_metric`` (``random`` or ``order``), ``keep_seed`` (None: the views' seed), and
    ``reuse`` (recorded for training: ``lpld`` or ``lpqld``). Checked by
    :func:`~lplabel.relabel.plan.make_plan`, which knows the schedule."""

    keep: float | None = None
    keep_seed: int | None = None
    keep_unit: str = "step"
    keep_metric: str = "random"
    reuse: str = "lpld"

    def plan(self, epochs: int, steps_per_epoch: int, seed: int):
        """(sorted global step ids, header ``selection`` or None): see :func:`~lplabel.relabel.plan.make_plan`."""
        from .plan import make_plan

        keep_seed = seed if self.keep_seed is None else int(self.keep_seed)
        return make_plan(epochs, steps_per_epoch, self.keep, keep_seed, self.reuse, self.keep_unit, self.keep_metric)


@dataclass(frozen=True)
class TeacherConfig:
    """How the teacher runs: ``device`` (``cpu``/``cuda``/``auto``), ``amp`` + ``amp_dtype``
    (autocast), ``channels_last`` (CUDA only, default on; the CPU always runs plain NCHW,
    docs/cpu.md); ``class_map`` (None: the teacher's width must equal the number of classes;
    ``"in1k"``, a file, or a list of ints: store ``logits[:, class_map]``); ``description`` /
    ``checksum`` for the header (default: class name / weight hash); ``check``: print its top-1 on
    the images' own classes before and after the run and warn near chance
    (:mod:`lplabel.relabel.check`)."""

    device: object = "auto"
    amp: bool = False
    amp_dtype: str = "auto"
    channels_last: bool | None = None
    class_map: object = None
    description: str | None = None
    checksum: str | None = None
    check: bool = True


@dataclass(frozen=True)
class LabelsConfig:
    """How the labels are stored: ``topk`` (None = dense), ``values`` (fp32/fp16/bf16/int8/int4),
    ``index_type``, ``tail``, ``index_coding``, ``zstd_level`` (see
    :func:`lplabel.relabel.labels.build_label_chain`, which checks them against the number of
    classes), or a full chain ``codecs`` (codec objects or JSON dicts; fed dense logits)."""

    topk: int | None = None
    values: str = "fp16"
    index_type: str = "uint16"
    tail: str = "none"
    index_coding: str | None = None
    zstd_level: int = 3
    codecs: tuple | None = None

    def __post_init__(self):
        if self.codecs is not None:
            _set(self, codecs=tuple(self.codecs))

    def chain(self, num_classes: int):
        """(codec list, label_input, device_topk) of the run: :func:`~lplabel.relabel.labels.build_label_chain`."""
        from .labels import build_label_chain

        return build_label_chain(
            num_classes,
            topk=self.topk,
            values=self.values,
            index_type=self.index_type,
            tail=self.tail,
            index_coding=self.index_coding,
            zstd_level=self.zstd_level,
            label_codecs=None if self.codecs is None else list(self.codecs),
        )


@dataclass(frozen=True)
class OutputConfig:
    """The store and the work directory: ``force`` (replace the output), ``fresh`` (discard an
    unfinished run's work directory), ``work_dir`` (default ``OUT.partial``), ``steps_per_part``
    (checkpoint interval; None: about 32k views, or what a resumed run used), ``merge`` (merge the
    parts at the end), ``views`` (``"derived"``: the store holds no view payload, readers
    regenerate the views, spec/FORMAT.md §1.4; ``"stored"``: the view columns are stored),
    ``steps_per_chunk`` (None: :func:`lplabel.selection.schedule.default_steps_per_chunk`)."""

    force: bool = False
    fresh: bool = False
    work_dir: object = None
    steps_per_part: int | None = None
    merge: bool = True
    views: str = "derived"
    steps_per_chunk: int | None = None

    def __post_init__(self):
        if self.views not in ("derived", "stored"):
            raise RelabelError(f"views must be 'derived' or 'stored', got {self.views!r}")
        if self.steps_per_chunk is not None:
            if int(self.steps_per_chunk) < 1:
                raise RelabelError("steps_per_chunk must be >= 1")
            _set(self, steps_per_chunk=int(self.steps_per_chunk))
        if self.steps_per_part is not None:
            if int(self.steps_per_part) < 1:
                raise RelabelError("steps_per_part must be >= 1")
            _set(self, steps_per_part=int(self.steps_per_part))


@dataclass(frozen=True)
class ProcessConfig:
    """How this process runs: ``rank``/``world_size`` for hand-started shards (default: torchrun's
    environment); ``threads`` (:func:`lplabel.threads.plan_threads`: an int, ``"auto"``, or None
    to keep the process's setting); ``bank_device`` (None: the images on the device when they fit,
    else ``"stream"``: each step's images are uploaded; ``"cpu"`` with a CUDA device also
    streams); ``queue_size`` (steps in flight to the writer thread); ``progress`` (None or True: a
    bar on a terminal, a line a minute otherwise; False: nothing)."""

    rank: int | None = None
    world_size: int | None = None
    threads: object = None
    bank_device: object = None
    queue_size: int = 8
    progress: bool | None = None


#: each keyword argument of the former ``run_relabel`` signature -> (part of RelabelConfig, field)
LEGACY_KWARGS = {
    **{
        n: ("views", n)
        for n in (
            "epochs",
            "batch_size",
            "size",
            "crop_scale",
            "crop_ratio",
            "flip_p",
            "mix",
            "mix_alpha",
            "seed",
            "drop_last",
        )
    },
    **{n: ("pruning", n) for n in ("keep", "keep_seed", "keep_unit", "keep_metric", "reuse")},
    **{n: ("teacher", n) for n in ("device", "amp", "amp_dtype", "channels_last", "class_map")},
    "teacher_description": ("teacher", "description"),
    "teacher_checksum": ("teacher", "checksum"),
    "teacher_check": ("teacher", "check"),
    **{n: ("labels", n) for n in ("topk", "values", "index_type", "tail", "index_coding", "zstd_level")},
    "label_codecs": ("labels", "codecs"),
    **{n: ("output", n) for n in ("force", "fresh", "work_dir", "steps_per_part", "merge", "views", "steps_per_chunk")},
    **{n: ("process", n) for n in ("rank", "world_size", "threads", "bank_device", "queue_size", "progress")},
}


@dataclass(frozen=True)
class RelabelConfig:
    """Everything :func:`~lplabel.relabel.run_relabel` is told, one frozen part per concern
    (see the module doc). ``RelabelConfig()`` is the default run; change a part with
    ``RelabelConfig(views=ViewsPolicy(epochs=10), labels=LabelsConfig(topk=5))`` or
    :func:`dataclasses.replace`."""

    views: ViewsPolicy = field(default_factory=ViewsPolicy)
    pruning: Pruning = field(default_factory=Pruning)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    labels: LabelsConfig = field(default_factory=LabelsConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    process: ProcessConfig = field(default_factory=ProcessConfig)

    def __post_init__(self):
        for f in dataclasses.fields(self):
            part = getattr(self, f.name)
            if not isinstance(part, f.default_factory):
                raise TypeError(
                    f"RelabelConfig.{f.name} must be a {f.default_factory.__name__}, got {type(part).__name__}"
                )

    @classmethod
    def from_kwargs(cls, **kwargs) -> "RelabelConfig":
        """The config of the former keyword arguments (``epochs=``, ``topk=``, ``force=`` ...;
        see ``LEGACY_KWARGS``); an unknown name is a TypeError, as for any function."""
        parts: dict = {}
        for name, value in kwargs.items():
            if name not in LEGACY_KWARGS:
                raise TypeError(f"run_relabel() got an unexpected keyword argument {name!r}")
            part, fname = LEGACY_KWARGS[name]
            parts.setdefault(part, {})[fname] = value
        types = {f.name: f.default_factory for f in dataclasses.fields(cls)}
        return cls(**{part: types[part](**values) for part, values in parts.items()})

    def to_kwargs(self) -> dict:
        """The former keyword arguments of this config (the inverse of :meth:`from_kwargs`)."""
        return {name: getattr(getattr(self, part), fname) for name, (part, fname) in LEGACY_KWARGS.items()}


def _set(obj, **values) -> None:
    """Normalise fields of a frozen dataclass in its ``__post_init__``."""
    for k, v in values.items():
        object.__setattr__(obj, k, v)
