"""The relabel loop: plan views, render them on the device, run the teacher, write parts, merge.

Per step (all of it a pure function of ``(seed, epoch, step)``, see :mod:`lplabel.views`):

1. the host plans the step's views (image ids, crop boxes, flips, mix partner/λ/box);
2. the device renders them from the uint8 :class:`~lplabel.views.replay.ImageBank` (kept on the GPU
   when it fits, else streamed per step) and applies CutMix/MixUp (:func:`render_step`);
3. the teacher runs under ``torch.inference_mode()``, with autocast when ``amp`` and
   channels_last on CUDA; top-k (when the chain is plain top-k) runs on the device too;
4. the labels are copied to pinned host memory without blocking, and the writer thread (the only
   one touching store writers) waits for the copy, encodes and writes the step into the current
   part store.

Parts are finished stores in the work directory (``OUT.lpl.partial/``); at the end they are merged
into ``OUT.lpl`` (atomically) and the work directory is removed. See :mod:`lplabel.relabel.plan`
for how parts are cut and shared between ranks, and :mod:`lplabel.relabel.workdir` for resuming.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from ..codecs import Pipeline
from ..errors import LplabelError
from ..progress import progress_bar
from ..threads import ThreadPlan, load_average, plan_threads, torch_threads
from ..images import ImageSet, image_index
from ..memory_format import network_input, use_channels_last
from ..views.replay import ImageBank, render_step, render_views
from ..store import LabelColumn, LabelStore, StoreLayout, StoreWriter, ViewColumns, store_info
from ..views import AugmentPolicy, StepViews, plan_steps, steps_per_epoch as _steps_per_epoch
from ..selection.schedule import default_steps_per_chunk
from .distributed import DistContext
from .errors import DistributedError, ImageInputError, OutputExistsError, RelabelError, TeacherOutputError, WorkDirError
from .check import AccuracyCheck, ViewAccuracy, known_classes, sample_check
from .config import RelabelConfig
from .inputs import check_images
from .labels import label_spec, part_chain
from .plan import default_steps_per_part, num_parts, owned_parts, part_ids, rle_encode, split_ids
from .teacher_io import amp_settings, describe_teacher, load_class_map, prepare_teacher, resolve_device
from .workdir import MANIFEST_KIND, MANIFEST_VERSION, WorkDir, default_work_dir
from .writer_thread import WriterStats, WriterThread

#: Keep the image bank on the GPU when it needs less than this fraction of the free memory.
BANK_GPU_FRACTION = 0.3
#: Steps queued on the GPU ahead of the host (bounds the memory of rendered batches in flight).
MAX_IN_FLIGHT = 3


@dataclass
class RelabelReport:
    """What a relabel call did. ``path`` is the merged store, or the work directory when this
    process finished its share but the merge is left to another process (``merged`` False)."""

    path: Path
    merged: bool
    work_dir: Path
    rank: int = 0
    world_size: int = 1
    steps_planned: int = 0
    steps_computed: int = 0
    views_computed: int = 0
    parts_total: int = 0
    parts_resumed: int = 0
    compute_seconds: float = 0.0
    merge_seconds: float = 0.0
    device: str = "cpu"
    precision: str = "float32"
    #: views/s of the teacher alone on one full batch, measured after the loop (same threads, device)
    teacher_views_per_second: float = float("nan")
    threads: ThreadPlan | None = None
    #: the teacher's top-1 on the images' own classes: on a sample before the run, on the views after
    sample_check: AccuracyCheck | None = None
    view_check: AccuracyCheck | None = None
    info: dict | None = field(default=None, repr=False)
    #: whether the writer thread kept up (the teacher loop's waits on it; writer_thread.WriterStats)
    writer: WriterStats | None = None

    @property
    def views_per_second(self) -> float:
        return self.views_computed / self.compute_seconds if self.compute_seconds > 0 else float("nan")


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return f"{type(e).__name__}: {lines[0] if lines else ''}"


def _num_classes_of(images: ImageSet) -> int | None:
    if images.class_names:
        return len(images.class_names)
    labelled = images.classes[images.classes >= 0]
    return int(labelled.max()) + 1 if len(labelled) else None


def _views_in_steps(ids: np.ndarray, spe: int, n_images: int, batch: int) -> int:
    s = np.asarray(ids, dtype=np.int64) % spe
    return int(np.minimum(batch, n_images - s * batch).sum())


def _bank(images, device) -> ImageBank:
    """An ImageBank (read-only source arrays, e.g. decoded by Pillow, are copied by the bank)."""
    return ImageBank(images, device=device)


class _Renderer:
    """Renders a step on the device: from a resident bank, or by uploading the step's images."""

    def __init__(self, images: ImageSet, device: torch.device, policy: AugmentPolicy, bank_device=None):
        self.policy = policy
        self.device = device
        nbytes = int(np.prod(images.sizes(), axis=1).sum()) * self._channels(images)
        if bank_device is None:
            resident = True
            if device.type == "cuda":
                free, _ = torch.cuda.mem_get_info(device)
                resident = nbytes < BANK_GPU_FRACTION * free
        elif bank_device == "stream":
            resident = False
        else:
            resident = torch.device(bank_device).type == device.type
        self.resident = resident
        try:
            self.bank = _bank(images.images, device) if resident else None
        except (TypeError, ValueError) as e:
            raise ImageInputError(f"cannot use these images: {e}") from None
        self.source = images.images

    @staticmethod
    def _channels(images) -> int:
        a = images.images
        first = a[0] if len(a) else np.zeros((1, 1, 1))
        first = np.asarray(first)
        return 1 if first.ndim == 2 else int(first.shape[-1])

    def __call__(self, views: StepViews, mix: bool = True) -> torch.Tensor:
        if self.resident:
            bank, v = self.bank, views
        else:
            uniq, inv = np.unique(views.image, return_inverse=True)
            sub = self.source[uniq] if isinstance(self.source, np.ndarray) else [self.source[i] for i in uniq]
            bank = _bank(sub, self.device)
            v = StepViews(
                image=inv.reshape(-1),
                crop=views.crop,
                flip=views.flip,
                mix_partner=views.mix_partner,
                mix_lambda=views.mix_lambda,
                mix_box=views.mix_box,
            )
        if mix:
            return render_step(bank, v, self.policy)
        return render_views(bank, v, self.policy)


class _Teacher:
    """The teacher forward of the loop: layout, autocast, class map, output checks."""

    def __init__(self, module: nn.Module, device: torch.device, amp: bool, amp_dtype: str, channels_last: bool):
        self.channels_last = channels_last
        self.autocast, self.precision = amp_settings(device, amp, amp_dtype)
        self.module = prepare_teacher(module, device, channels_last, self.precision)
        self.class_index = None
        self.device = device

    def raw(self, x: torch.Tensor) -> torch.Tensor:
        x = network_input(x, self.channels_last)
        with self.autocast():
            z = self.module(x)
        return z

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        z = self.raw(x)
        if not isinstance(z, torch.Tensor):
            raise TeacherOutputError(f"the teacher returned {type(z).__name__}, not a tensor of logits")
        z = z.float()
        if self.class_index is not None:
            z = z.index_select(1, self.class_index)
        return z

    def probe(self, x: torch.Tensor) -> int:
        """Run a tiny batch; return the output width (raising a clear error on any failure)."""
        try:
            z = self.raw(x)
        except Exception as e:  # noqa: BLE001 - any failure of foreign code becomes one clear error
            raise TeacherOutputError(
                f"the teacher failed on a batch of shape {tuple(x.shape)} "
                f"(float32 NCHW pixels 0..255): {_first_line(e)}",
                hint="check the teacher's input channels and size (--size)",
            ) from None
        if not isinstance(z, torch.Tensor) or z.ndim != 2 or z.shape[0] != x.shape[0]:
            shape = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
            raise TeacherOutputError(
                f"the teacher must return logits [batch, classes]; got {shape} for a batch of {x.shape[0]}"
            )
        return int(z.shape[1])


def relabel(
    images: ImageSet, teacher: nn.Module | Sequence[nn.Module], out, config: RelabelConfig | None = None, **kwargs
) -> Path:
    """Label seeded augmented views of ``images`` with ``teacher`` and write the store ``out``.

    Returns the path of the store (or, for a shard process whose merge is left to another
    process, the work directory). Arguments: see :func:`run_relabel`.
    """
    return run_relabel(images, teacher, out, config, **kwargs).path


def run_relabel(
    images: ImageSet,
    teacher: nn.Module | Sequence[nn.Module],
    out,
    config: RelabelConfig | None = None,
    *,
    log: Callable[[str], None] | None = None,
    **kwargs,
) -> RelabelReport:
    """Relabel (see the module doc) ``images`` with ``teacher`` into the store ``out``, as ``config``
    says (a :class:`~lplabel.relabel.config.RelabelConfig`; None: the defaults). ``log`` is called
    with the summary lines.

    ``teacher``: a module taking float32 NCHW RGB pixels in 0..255 -- not 0..1, not normalised:
    wrap it in :class:`lplabel.teachers.models.Normalized` if it expects that -- or a list = ensemble of
    mean logits.

    The config's parts: :class:`~lplabel.relabel.config.ViewsPolicy` (epochs, batch size, crops,
    flips, mixing, seed), :class:`~lplabel.relabel.config.Pruning` (which steps are computed),
    :class:`~lplabel.relabel.config.TeacherConfig` (device, precision, class map, header facts,
    accuracy check), :class:`~lplabel.relabel.config.LabelsConfig` (top-k, values, codec chain),
    :class:`~lplabel.relabel.config.OutputConfig` (force, resuming, parts, merge, view columns,
    chunking), :class:`~lplabel.relabel.config.ProcessConfig` (shard, threads, image bank, writer
    queue, progress). Each documents its fields.

    For one release the former keyword arguments (``epochs=``, ``topk=``, ``force=``, ... --
    every field name of the parts, with ``teacher_description``, ``teacher_checksum``,
    ``teacher_check`` and ``label_codecs`` for the renamed ones) are accepted instead of
    ``config`` (:meth:`RelabelConfig.from_kwargs <lplabel.relabel.config.RelabelConfig.from_kwargs>`).
    """
    if config is None:
        config = RelabelConfig.from_kwargs(**kwargs)
    elif kwargs:
        raise TypeError(f"run_relabel() takes a RelabelConfig or keyword options, not both (got {sorted(kwargs)})")
    elif not isinstance(config, RelabelConfig):
        raise TypeError(f"run_relabel() config must be a RelabelConfig, got {type(config).__name__}")
    t_begin = time.perf_counter()
    say = log or (lambda s: None)
    images = check_images(images)
    out = Path(out)
    if not isinstance(teacher, nn.Module):
        from ..teachers import Ensemble

        teacher = Ensemble(list(teacher))
    dev = resolve_device(config.teacher.device)
    dist = DistContext.detect(config.process.rank, config.process.world_size, dev.type)
    try:
        plan = plan_threads(config.process.threads)
    except ValueError as e:
        raise RelabelError(str(e), hint="give --threads a positive number") from None
    try:
        if dist.group and dev.type == "cuda" and dev.index is None:
            dev = torch.device("cuda", dist.local_rank)
        with torch_threads(plan.main):
            return _run(images, teacher, out, config, _Env(dist, dev, say, t_begin, plan))
    finally:
        dist.close()


def _check_output(out: Path, force: bool) -> None:
    if out.is_dir():
        raise OutputExistsError("output is a directory", path=out, hint="give a file name ending in .lpl")
    if out.exists() and not force:
        raise OutputExistsError("output exists", path=out, hint="choose another name or pass --force")
    if not out.parent.is_dir():
        raise RelabelError("output directory does not exist", path=out.parent)


def _collective(dist: DistContext, fn, *args):
    """Run ``fn`` on rank 0 (all processes without a group) and share its result or error."""
    if not dist.group:
        return fn(*args)
    res = None
    if dist.is_main:
        try:
            res = ("ok", fn(*args))
        except LplabelError as e:
            res = ("err", e)
    res = dist.broadcast(res)
    if res[0] == "err":
        raise res[1]
    return res[1]


@dataclass
class _Env:
    """Where this process runs: its shard, device, log, start time and thread plan."""

    dist: DistContext
    dev: torch.device
    say: Callable[[str], None]
    t_begin: float
    threads: ThreadPlan


@dataclass
class _Job:
    """What a run resolved from its config, images and teacher: the facts its steps share."""

    cfg: RelabelConfig
    out: Path
    policy: AugmentPolicy
    sizes: np.ndarray
    N: int
    spe: int
    num_classes: int
    codecs: list
    label_input: object
    device_topk: int | None
    pcodecs: list
    pinput: object
    pmode: str
    teacher_hdr: dict
    ids: np.ndarray
    selection: dict | None
    spc: int
    index: object
    wd: WorkDir
    K: int
    P: int

    @property
    def B(self) -> int:
        return self.cfg.views.batch_size

    @property
    def E(self) -> int:
        return self.cfg.views.epochs

    @property
    def seed(self) -> int:
        return self.cfg.views.seed

    @property
    def drop_last(self) -> bool:
        return self.cfg.views.drop_last

    def manifest(self) -> dict:
        """The work directory's manifest (what a resumed run must match, see :mod:`.workdir`)."""
        li = self.label_input
        return {
            "kind": MANIFEST_KIND,
            "version": MANIFEST_VERSION,
            "output": self.out.name,
            "config": {
                "images": self.index.header_entry(),
                "num_classes": self.num_classes,
                "batch_size": self.B,
                "epochs": self.E,
                "steps_per_epoch": self.spe,
                "drop_last": self.drop_last,
                "augmentation": self.policy.to_json(),
                "teacher": self.teacher_hdr,
                "seed": self.seed,
            },
            "plan": {
                "steps": rle_encode(self.ids),
                "num_steps": int(len(self.ids)),
                "steps_per_part": self.K,
                "num_parts": self.P,
                "selection": self.selection,
            },
            "final": {
                "label_codecs": Pipeline(self.codecs, label_spec(li, self.num_classes)).to_json(),
                "label_input": li if li == "logits" else list(li),
                "part_mode": self.pmode,
                "steps_per_chunk": self.spc,
                "views": self.cfg.output.views,
            },
        }


def _run(images, teacher, out, cfg: RelabelConfig, env: _Env) -> RelabelReport:
    """The run, step by step: views, output check, teacher probe, plan, work directory, the
    parts of this process, the view check, the merge."""
    dist, say = env.dist, env.say
    policy = cfg.views.augment_policy(images)
    N, B = len(images), cfg.views.batch_size
    spe = _steps_per_epoch(N, B, cfg.views.drop_last)
    if spe < 1:
        raise RelabelError(f"{N} images make no full step of {B} with drop_last", hint="lower --batch-size")
    _check_output(out, cfg.output.force)
    t = cfg.teacher
    runner = _Teacher(teacher, env.dev, t.amp, t.amp_dtype, use_channels_last(env.dev, t.channels_last))
    num_classes, cmap_desc = _probe_classes(images, runner, policy, cfg, env.dev)
    job = _plan_job(images, teacher, runner, out, cfg, policy, spe, num_classes, cmap_desc)

    classes, before = _check_before(images, job, runner, env)
    created = cfg.output.fresh or not job.wd.exists()  # the work directory holds only what this run writes
    _collective(dist, lambda: job.wd.prepare(job.manifest(), fresh=cfg.output.fresh))
    if job.wd.replaced and dist.is_main:
        say(
            f"{job.wd.path}: replaced an unfinished run's work directory that held no finished part "
            "(it used other settings)"
        )
    todo, resumed = _parts_to_compute(job, dist, say)
    report = RelabelReport(
        path=out,
        merged=False,
        work_dir=job.wd.path,
        rank=dist.rank,
        world_size=dist.world_size,
        steps_planned=int(len(job.ids)),
        parts_total=job.P,
        parts_resumed=resumed,
        device=str(env.dev),
        precision=runner.precision,
        threads=env.threads,
        sample_check=before,
    )
    accuracy = ViewAccuracy(classes, num_classes, env.dev, policy, images) if classes is not None else None
    _compute_share(report, job, todo, images, runner, accuracy, env, created)
    if accuracy is not None:  # only for a run that computed all its views
        report.view_check = accuracy.result()
        if report.view_check is not None:
            report.view_check.whole = before
        if report.view_check is not None and dist.is_main:
            report.view_check.report(say)
    return _merge_parts(report, job, env)


def _probe_classes(images, runner: "_Teacher", policy: AugmentPolicy, cfg: RelabelConfig, dev) -> tuple:
    """Probe the teacher on two views of step 0 (output shape, width), then settle the number of
    classes with the class map and the images' classes: (num_classes, class map description)."""
    v = cfg.views
    first = next(plan_steps(v.seed, [(0, 0)], images.sizes(), v.batch_size, policy, v.drop_last))[2]
    m = min(2, len(first))
    probe_views = StepViews(
        image=first.image[:m],
        crop=first.crop[:m],
        flip=first.flip[:m],
        mix_partner=np.full(m, -1),
        mix_lambda=math.nan,
        mix_box=np.zeros(4),
    )
    try:
        probe_bank = ImageBank([np.array(images.images[int(i)]) for i in probe_views.image], device=dev)
    except (TypeError, ValueError) as e:
        raise ImageInputError(f"cannot use these images: {e}") from None
    probe_views.image = np.arange(m, dtype=np.int32)
    with torch.inference_mode():
        width = runner.probe(render_views(probe_bank, probe_views, policy))
    del probe_bank
    n_img_classes = _num_classes_of(images)
    cmap, cmap_desc = load_class_map(cfg.teacher.class_map, images, width)
    if cmap is not None:
        if n_img_classes is not None and len(cmap) != n_img_classes:
            raise TeacherOutputError(f"the class map has {len(cmap)} entries, the image set {n_img_classes} classes")
        num_classes = len(cmap)
        runner.class_index = torch.as_tensor(cmap, dtype=torch.int64, device=dev)
    elif n_img_classes is None:
        num_classes = width
    else:
        num_classes = n_img_classes
        if width != num_classes:
            raise TeacherOutputError(
                f"the teacher outputs {width} classes but the image set has {num_classes}",
                hint="use a teacher trained on these classes, or map its outputs with --class-map "
                "(in1k for Tiny-ImageNet under an ImageNet-1K teacher, or a file of output indices)",
            )
    if len(images.classes) and images.classes.max() >= num_classes:
        raise ImageInputError(
            f"image classes go up to {int(images.classes.max())} but labels have {num_classes} classes"
        )
    return num_classes, cmap_desc


def _plan_job(
    images,
    teacher,
    runner: "_Teacher",
    out: Path,
    cfg: RelabelConfig,
    policy: AugmentPolicy,
    spe: int,
    num_classes: int,
    cmap_desc,
) -> _Job:
    """Labels, header facts and the plan: the label chain and what the parts store, the steps
    computed, the chunking, the work directory and its parts."""
    codecs, label_input, device_topk = cfg.labels.chain(num_classes)
    pcodecs, pinput, pmode = part_chain(codecs, label_input)
    teacher_hdr = describe_teacher(teacher, cfg.teacher.description, cfg.teacher.checksum, runner.precision, cmap_desc)
    v = cfg.views
    ids, selection = cfg.pruning.plan(v.epochs, spe, v.seed)
    # default: what training reads together from this store (8 in order, 1 for LPLD/LPQLD draws)
    spc = cfg.output.steps_per_chunk
    if spc is None:
        spc = default_steps_per_chunk(selection)
    wd = WorkDir(cfg.output.work_dir if cfg.output.work_dir is not None else default_work_dir(out))
    K = _steps_per_part(cfg, wd)
    return _Job(
        cfg=cfg,
        out=out,
        policy=policy,
        sizes=images.sizes(),
        N=len(images),
        spe=spe,
        num_classes=num_classes,
        codecs=codecs,
        label_input=label_input,
        device_topk=device_topk,
        pcodecs=pcodecs,
        pinput=pinput,
        pmode=pmode,
        teacher_hdr=teacher_hdr,
        ids=ids,
        selection=selection,
        spc=spc,
        index=image_index(images),
        wd=wd,
        K=K,
        P=num_parts(len(ids), K),
    )


def _steps_per_part(cfg: RelabelConfig, wd: WorkDir) -> int:
    """The checkpoint interval: as given; else what the unfinished run in ``wd`` used (a resumed
    run keeps it); else about 32k views."""
    if cfg.output.steps_per_part is not None:
        return cfg.output.steps_per_part
    if wd.exists() and not cfg.output.fresh:
        try:
            K = int(wd.read_manifest()["plan"]["steps_per_part"])
        except (WorkDirError, KeyError, TypeError, ValueError):
            K = 0
        if K >= 1:
            return K
    return default_steps_per_part(cfg.views.batch_size)


def _check_before(images, job: _Job, runner: "_Teacher", env: _Env) -> tuple:
    """Does the teacher recognise the images? (before any work directory exists):
    (the images' classes or None, the sample check or None)."""
    check = job.cfg.teacher.check
    classes = known_classes(images) if check else None
    before = None
    if classes is not None:
        before = sample_check(images, classes, runner, job.policy, env.dev, job.num_classes)
        if env.dist.is_main:
            before.report(env.say)
    elif check and env.dist.is_main:
        env.say("teacher check: the images carry no classes, so the teacher's accuracy on them cannot be checked")
    return classes, before


def _parts_to_compute(job: _Job, dist: DistContext, say) -> tuple:
    """(parts this process computes, number of its parts resumed): a finished part that holds
    exactly its planned steps is kept; any other is redone."""
    wd = job.wd
    mine = owned_parts(job.P, dist.rank, dist.world_size)
    finished = wd.finished_parts()
    todo, resumed = [], 0
    for j in mine:
        if j in finished and _part_ok(wd.part_path(j), part_ids(job.ids, job.K, j), job.spe):
            resumed += 1
        else:
            wd.part_path(j).unlink(missing_ok=True)
            todo.append(j)
    wd.clean_temps(mine)
    if resumed:
        say(f"resuming: {resumed} of {len(mine)} parts already done in {wd.path}")
    return todo, resumed


def _compute_share(
    report: RelabelReport, job: _Job, todo, images, runner: "_Teacher", accuracy, env: _Env, created: bool
) -> None:
    """Compute this process's parts; on failure drop a work directory that holds nothing to
    resume, and (in a process group) raise every rank's failure on every rank."""
    dist = env.dist
    err = None
    try:
        if todo:
            renderer = _Renderer(images, env.dev, job.policy, job.cfg.process.bank_device)
            _compute(report, job, todo, renderer, runner, dist, accuracy)
    except LplabelError as e:
        err = e
    except BaseException as e:
        if not dist.group or not isinstance(e, Exception):
            _drop_if_empty(job.wd, created, dist)
            raise
        err = DistributedError(f"rank {dist.rank} failed: {_first_line(e)}")
    if dist.group:
        errs = [e for e in dist.gather(err) if e is not None]
        if errs:
            if err is not None:
                raise err
            raise DistributedError(f"another rank failed: {errs[0]}") from None
    elif err is not None:
        _drop_if_empty(job.wd, created, dist)
        raise err


def _merge_parts(report: RelabelReport, job: _Job, env: _Env) -> RelabelReport:
    """Merge the work directory into the output (when asked, and when every part is there), then
    print the summary."""
    dist, say, out, wd, o = env.dist, env.say, job.out, job.wd, job.cfg.output
    progress = job.cfg.process.progress
    if not o.merge:
        report.path = wd.path
        say(f"parts written to {wd.path}; merge them with: lplabel merge {wd.path} -o {out}")
        return report
    t_merge = time.perf_counter()
    if dist.group:
        _collective(dist, lambda: _merge_workdir(wd, out, o.force, progress, say))
        report.merged = True
    else:
        with wd.lock():
            if not wd.exists():  # another shard process merged already
                report.merged = out.exists()
            elif wd.finished_parts() >= set(range(job.P)):
                _merge_workdir(wd, out, o.force, progress, say)
                report.merged = True
            else:
                missing = job.P - len(wd.finished_parts() & set(range(job.P)))
                say(
                    f"rank {dist.rank}/{dist.world_size}: done; {missing} part(s) of other shards are missing. "
                    f"The last shard to finish merges; or run: lplabel merge {wd.path} -o {out}"
                )
    report.merge_seconds = time.perf_counter() - t_merge
    if not report.merged:
        report.path = wd.path
        return report
    if dist.is_main and out.exists():
        report.info = store_info(out)
        _summary(report, say, time.perf_counter() - env.t_begin)
    return report


def _drop_if_empty(wd: WorkDir, created: bool, dist: DistContext) -> None:
    """After a failure: remove the work directory this run created when it holds no finished
    part (nothing to resume; it would only block the corrected run). Only a single process may:
    shards share work directories with other processes."""
    if created and dist.world_size == 1 and not wd.finished_parts():
        wd.remove()


def _part_ok(path: Path, expected_ids: np.ndarray, spe: int) -> bool:
    """A finished part holds exactly its planned steps (else it is redone)."""
    try:
        st = LabelStore(path)
    except LplabelError:
        return False
    try:
        got = st.step_epoch.astype(np.int64) * spe + st.step_index
        return bool(np.array_equal(got, expected_ids))
    finally:
        st.close()


def _merge_workdir(wd: WorkDir, out: Path, force: bool, progress, say) -> None:
    from .merge import merge

    merge([wd.path], out, force=force, progress=progress)
    wd.remove()


def _compute(
    report: RelabelReport, job: _Job, todo, renderer: _Renderer, runner: "_Teacher", dist: DistContext, accuracy=None
) -> None:
    """Compute and write the parts ``todo``: render, run the teacher, hand the labels to the writer thread."""
    spe, N, B, seed, policy, drop_last = job.spe, job.N, job.B, job.seed, job.policy, job.drop_last
    num_classes, device_topk, pinput = job.num_classes, job.device_topk, job.pinput
    part_steps = {j: part_ids(job.ids, job.K, j) for j in todo}
    total_views = sum(_views_in_steps(v, spe, N, B) for v in part_steps.values())
    bar = progress_bar(
        total_views, "relabel", job.cfg.process.progress is not False and dist.is_main, unit="view", unit_scale=True
    )
    E = job.E
    derived = job.sizes if job.cfg.output.views == "derived" else None

    def open_part(j):
        return StoreWriter(
            job.wd.part_path(j),
            num_classes=num_classes,
            images=job.index,
            batch_size=B,
            epochs=E,
            steps_per_epoch=spe,
            drop_last=drop_last,
            labels=LabelColumn(job.pcodecs, pinput),
            views=ViewColumns(derived=derived),
            augmentation=policy.to_json(),
            teacher=job.teacher_hdr,
            seed=seed,
            selection=job.selection,
            layout=StoreLayout(steps_per_chunk=1),
            overwrite=True,
        )

    writer = WriterThread(
        open_part,
        {j: len(v) for j, v in part_steps.items()},
        label_input=pinput,
        maxsize=job.cfg.process.queue_size,
        on_step=bar.update,
    )
    cuda = runner.device.type == "cuda"
    if cuda:
        # Render on a side stream: replay's small host->device copies synchronise *their* stream,
        # so on the teacher's stream they would wait for the previous forward; on their own
        # stream they run while it computes. At most MAX_IN_FLIGHT steps are queued on the device.
        compute_stream = torch.cuda.current_stream(runner.device)
        render_stream = torch.cuda.Stream(runner.device)
    in_flight: deque = deque()
    t0 = time.perf_counter()
    steps = views = 0
    full = None  # a full batch, to time the teacher's pure forward on after the loop
    try:
        with torch.inference_mode():
            for j in todo:
                pairs = split_ids(part_steps[j], spe)
                for epoch, step, sv in plan_steps(seed, pairs, job.sizes, B, policy, drop_last):
                    if cuda:
                        while len(in_flight) >= MAX_IN_FLIGHT:
                            in_flight.popleft().synchronize()
                        with torch.cuda.stream(render_stream):
                            x = renderer(sv)
                        compute_stream.wait_stream(render_stream)
                        x.record_stream(compute_stream)  # x is freed for reuse only after the forward
                    else:
                        x = renderer(sv)
                    z = runner(x)
                    if z.shape != (len(sv), num_classes):
                        raise TeacherOutputError(
                            f"the teacher returned logits of shape {tuple(z.shape)}, expected {(len(sv), num_classes)}",
                            part=f"epoch {epoch}, step {step}",
                        )
                    if accuracy is not None:
                        accuracy.add(z, sv)
                    if full is None or len(sv) > len(full):
                        full = x
                    if device_topk:
                        labels = _topk_canonical(z, device_topk)
                    else:
                        labels = {"logits": z}
                    event = None
                    if cuda:
                        labels = {k: v.to("cpu", non_blocking=True) for k, v in labels.items()}
                        event = torch.cuda.Event()
                        event.record(compute_stream)
                        in_flight.append(event)
                    writer.submit(j, epoch, step, sv, labels, event)
                    steps += 1
                    views += len(sv)
        writer.finish()
    except BaseException:
        try:
            writer.drain()  # keep what was computed: queued steps may finish a part
        except BaseException:  # a second interrupt: stop now
            writer.abort()
        raise
    finally:
        bar.close()
    report.compute_seconds = time.perf_counter() - t0
    report.writer = writer.stats
    report.steps_computed = steps
    report.views_computed = views
    if full is not None:
        report.teacher_views_per_second = _pure_forward(runner, full)


def _pure_forward(runner: "_Teacher", x: torch.Tensor, budget: float = 0.5, max_calls: int = 5) -> float:
    """Views/s of the teacher alone on the rendered batch ``x`` (same device, threads, precision):
    the ceiling the loop is compared with in the summary. The median of up to ``max_calls`` timed
    calls within about ``budget`` seconds (at least one: a slow teacher costs one more batch; the
    loop has warmed it up already)."""
    sync = (lambda: torch.cuda.synchronize(runner.device)) if runner.device.type == "cuda" else (lambda: None)
    times = []
    with torch.inference_mode():
        sync()
        end = time.perf_counter() + budget
        while len(times) < max_calls:
            t = time.perf_counter()
            runner(x)
            sync()
            times.append(time.perf_counter() - t)
            if time.perf_counter() > end:
                break
    return len(x) / float(np.median(times)) if times and np.median(times) > 0 else float("nan")


def _topk_canonical(z: torch.Tensor, k: int) -> dict:
    """Top-k of each row on the device, as the topk codec selects and orders them: by decreasing
    value, ties by smaller class index -- also among equal logits at the k-th place, which
    ``torch.topk`` picks arbitrarily (common with fp16/bf16 teacher outputs). No host sync."""
    n, c = z.shape
    kth = torch.topk(z, k, dim=1).values[:, k - 1 : k]
    above, equal = z > kth, z == kth
    need = k - above.sum(dim=1, keepdim=True)
    sel = above | (equal & (equal.cumsum(dim=1) <= need))
    col = torch.arange(c, device=z.device).expand(n, c)
    idx = torch.where(sel, col, col + c).topk(k, dim=1, largest=False, sorted=True).indices  # ascending class
    vals = z.gather(1, idx)
    vals, perm = vals.sort(dim=1, descending=True, stable=True)
    return {"indices": idx.gather(1, perm), "values": vals}


def _summary(report: RelabelReport, say, total_seconds: float) -> None:
    from ..store.info import human_bytes, ratio_phrase

    info = report.info
    if report.views_computed:
        for line in _speed_lines(report):
            say(line)
    if report.parts_resumed:
        say(f"  ({report.parts_resumed} of {report.parts_total} parts were resumed from an earlier run)")
    ratio = info.get("ratio_vs_dense_fp16")
    bpr = info.get("bytes_per_record")
    say(
        f"wrote {info['path']}: {info['records']:,} records in {info['steps']:,} steps, "
        f"{human_bytes(info['file_bytes'])}"
        + (f", {bpr:.1f} B/record" if bpr else "")
        + (f", {ratio_phrase(ratio)} ({human_bytes(info['dense_fp16_bytes'])})" if ratio else "")
        + f"; total {total_seconds:.1f} s (merge {report.merge_seconds:.1f} s)"
    )


def _speed_lines(report: RelabelReport) -> list[str]:
    """The summary's speed: views/s against the teacher's pure forward, the threads and why, and
    a plain reason when the loop or the teacher is slow (busy machine, pipeline overhead)."""
    v, pure = report.views_per_second, report.teacher_views_per_second
    line = (
        f"relabelled {report.views_computed:,} views in {report.steps_computed:,} steps on {report.device} "
        f"({report.precision}) in {report.compute_seconds:.1f} s: {v:,.0f} views/s"
    )
    if pure == pure and pure > 0:
        line += f", {100 * v / pure:.0f}% of the teacher's pure forward ({pure:,.0f} views/s)"
    plan = report.threads
    cpu = report.device.startswith("cpu")
    if plan is not None and cpu:
        line += f"; {plan.describe()}"
    out = [line]
    if report.writer is not None:
        out.append("  " + report.writer.describe(report.compute_seconds))
    if pure == pure and pure > 0 and v < 0.5 * pure:
        out.append(
            f"  slow loop: {100 * v / pure:.0f}% of the teacher's own speed; the rest went to rendering views, "
            "top-k and writing" + (" (on CPU they share the cores with the teacher)" if cpu else "")
        )
    load = load_average()
    if cpu and plan is not None and load is not None and load > plan.cores + 1:
        hint = " --threads 1 may be faster" if plan.main > 1 else ""
        out.append(
            f"  busy machine: load average {load:.1f} on {plan.cores} cores; other processes compete for them.{hint}"
        )
    return out
