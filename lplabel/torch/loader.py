"""ReplayLoader: the dataset, the sampler and a stock DataLoader, wired together.

Most training loops need only this::

    loader = ReplayLoader("labels.lpl", imageset, device="cuda", temperature=lpqld_step(),
                          normalize="imagenet", num_workers=4, persistent_workers=True)
    for epoch in range(start_epoch, epochs):
        loader.set_epoch(epoch)                  # optional: each new pass is the next epoch anyway
        for batch in loader:                     # StepBatch on `device`
            out = student(batch.images)          # ToTensor + Normalize(ImageNet) done in the workers
            loss = kl_div_loss(out, batch.probs, batch.temperature)
            ...
            ckpt["loader"] = loader.state_dict()  # exact mid-epoch resume point

It builds a :class:`~lplabel.torch.StepDataset`, a :class:`~lplabel.torch.StepSampler` and a plain
``torch.utils.data.DataLoader(batch_size=None)``; has the workers decode runs of consecutive
steps as one item (``steps_per_item``) and hand them over in shared memory (``shared_memory``),
and splits them back into one batch per step; moves each batch to ``device`` (non-blocking from
pinned memory); optionally renders images and/or reconstructs labels on the device instead of in
the workers; counts consumed batches so :meth:`ReplayLoader.state_dict` is exact whatever the
prefetch depth and grouping; and turns a dead or stuck worker into a :class:`LoaderWorkerError`.
"""

from __future__ import annotations

import multiprocessing
import warnings
from collections import deque

import torch
from torch import nn

from ..errors import LplabelError
from ..store import LabelStore
from ..threads import ThreadPlan, available_cores, plan_threads, set_worker_threads
from .batch import StepBatch, StepKey
from .dataset import StepDataset, WorkerFailure, raise_worker_failure, warn_pixels_unset
from .group import SlabPool, StepGroup, StepGroupKey
from .generator import StoredGenerator, store_generator
from .label_sources import LabelSource, LabelSourceWarning, OnlineTeacher
from .pixels import parse_normalize
from .sampler import StepSampler, resolve_temperature

#: ``steps_per_item="auto"`` groups steps until an item holds about this many bytes in-process ...
AUTO_ITEM_BYTES = 4 << 20
#: ... or this many through shared-memory slabs (a slab's hand-over costs the same whatever its
#: size, while every item costs a queue round trip in both processes: group as much as fits) ...
SLAB_ITEM_BYTES = 16 << 20
#: ... or this many when items are pickled through a pipe (spawned workers, ``shared_memory=False``).
PICKLED_ITEM_BYTES = 256 << 10
#: ... and never more than this many steps per item.
AUTO_MAX_STEPS = 16
#: Shared-memory slabs of one loader never take more than this in all.
SLAB_POOL_LIMIT = 512 << 20


class LoaderWorkerError(LplabelError):
    """A DataLoader worker died (killed, crashed in native code) or stopped answering."""


class DeviceUnavailableError(LplabelError):
    """``device=`` names an accelerator this process cannot use (raised when the loader is built,
    not at the first batch)."""


def _check_device(device) -> torch.device:
    try:
        dev = torch.device("cpu" if device is None else device)
    except (RuntimeError, TypeError, ValueError) as e:
        raise DeviceUnavailableError(
            f"device={device!r} is not a device ({e})",
            part="ReplayLoader(device=)",
            hint="use 'cpu', 'cuda', 'cuda:N' or a torch.device",
        ) from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            why = "this torch is built without CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise DeviceUnavailableError(
                f"device={device!r}, but {why} (torch {torch.__version__})",
                part="ReplayLoader(device=)",
                hint="pass device='cpu' (or leave it out), or run where a GPU is visible "
                "(check CUDA_VISIBLE_DEVICES and the torch build)",
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceUnavailableError(
                f"device={device!r}, but only {torch.cuda.device_count()} CUDA device(s) are visible",
                part="ReplayLoader(device=)",
                hint="use cuda:0 .. cuda:N-1 (DDP: cuda:<local rank>)",
            )
    elif dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise DeviceUnavailableError(
                f"device={device!r}, but MPS is not available here",
                part="ReplayLoader(device=)",
                hint="pass device='cpu'",
            )
    return dev


_WORKER_DEATH = ("exited unexpectedly", "is killed by signal", "DataLoader timed out")


class _Groups(torch.utils.data.Sampler):
    """The sampler's keys as StepGroupKeys, runs of one step included: every item is a StepGroup
    (which can travel through the shared-memory slabs)."""

    def __init__(self, sampler: StepSampler):
        self.sampler = sampler

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self):
        for k in self.sampler:
            yield StepGroupKey((k.position,), k.epoch, k.slot, k.temperature) if isinstance(k, StepKey) else k


def _stop_workers(it, dataloader) -> None:
    """Shut down the worker processes of a failed, non-persistent DataLoader iterator now.

    The exception's traceback keeps the iterator alive in a reference cycle; when the garbage
    collector later destroys it, PyTorch's shutdown waits out its 5 s status-check timeout per
    worker, at whatever moment the collection happens. Done here it takes milliseconds.
    """
    if getattr(dataloader, "persistent_workers", False):
        return  # reused (and reset) by the next epoch's iterator
    stop = getattr(it, "_shutdown_workers", None)
    if stop is not None:
        try:
            stop()
        except Exception:  # pragma: no cover - best effort
            pass


def _start_method(context) -> str:
    if context is None:  # don't fix the process-wide default (a later set_start_method must still work)
        return multiprocessing.get_start_method(allow_none=True) or multiprocessing.get_all_start_methods()[0]
    return context if isinstance(context, str) else context.get_start_method()


def _unwrap(e: BaseException):
    """The original lplabel error of PyTorch's re-raised worker exception, or None.

    Errors the dataset raises reach the loop as :class:`WorkerFailure` items; this covers those
    raised elsewhere in a worker (e.g. while a group is pickled for sending), which PyTorch
    re-creates as ``type(e)("Caught ... Original Traceback ... <module>.<Name>: <message>")``.
    """
    msg = str(e)
    if not (isinstance(e, LplabelError) and msg.startswith("Caught ") and "Original Traceback" in msg):
        return None
    cls = type(e)
    marker = f"{cls.__module__}.{cls.__qualname__}: "
    at = msg.rfind(marker)
    if at < 0:
        return None
    err = cls.__new__(cls)
    LplabelError.__init__(err, msg[at + len(marker) :].strip())
    err.worker_traceback = msg
    return err


class _WorkerInit:
    """``worker_init_fn`` of the loader's workers: :data:`~lplabel.threads.WORKER_THREADS` torch
    threads (workers decode in parallel with each other; more threads each would only fight), then
    the user's own ``worker_init_fn``, which may still choose otherwise. A class, not a closure, so
    that spawned workers can unpickle it."""

    def __init__(self, user=None):
        self.user = user

    def __call__(self, worker_id: int) -> None:
        set_worker_threads(worker_id)
        if self.user is not None:
            self.user(worker_id)


def _loader_thread_plan(threads, num_workers: int) -> ThreadPlan:
    """The main process's torch threads for ``ReplayLoader(threads=...)`` (see its doc).

    ``"auto"`` leaves a count the user already chose alone: ``OMP_NUM_THREADS`` in the environment
    (:func:`~lplabel.threads.plan_threads` keeps it), or ``torch.set_num_threads`` called before the
    loader was built, recognised as a count other than torch's default of one thread per available
    core -- torch has no record of who set it, so a user who set exactly that default gets the plan.
    """
    if threads == "auto" and torch.get_num_threads() != available_cores():
        import os

        if not os.environ.get("OMP_NUM_THREADS"):
            plan = plan_threads(None)
            return ThreadPlan(
                plan.main,
                plan.worker,
                plan.cores,
                plan.load,
                "set by the user before the loader was built (torch.set_num_threads)",
            )
    return plan_threads(threads, workers=num_workers)


def _is_worker_death(e: BaseException) -> bool:
    msg = str(e)
    return isinstance(e, RuntimeError) and not msg.startswith("Caught ") and any(s in msg for s in _WORKER_DEATH)


def as_label_source(source, store=None) -> LabelSource | None:
    """``label_source=`` as given: ``None`` (``"auto"``: the store's label generator when its
    header has one, spec §12, else the label column), ``"column"`` (the label column), ``"generator"``
    (the store's generator), a :class:`LabelSource`, or a bare teacher module (an
    :class:`OnlineTeacher`). None is returned for the label column."""
    if isinstance(source, LabelSource):
        return source
    if isinstance(source, nn.Module):
        return OnlineTeacher(source)
    if source is None or (isinstance(source, str) and source in ("auto", "column", "generator")):
        if source == "generator" or (
            source in (None, "auto") and store is not None and store_generator(store) is not None
        ):
            return StoredGenerator()
        return None
    raise TypeError(
        f"label_source must be None, 'auto', 'column', 'generator', a LabelSource (OnlineTeacher, "
        f"StoredGenerator) or a teacher nn.Module, got {source!r}"
    )


class ReplayLoader:
    """Stored steps, replayed, on a device, per epoch (see the module doc).

    Parameters (beyond :class:`~lplabel.torch.StepDataset` and
    :class:`~lplabel.torch.StepSampler`, which receive theirs by name)
    -----------------------------------------------------------------------------------------
    device: where batches go (default CPU).
    labels: ``"dense"``, ``"sparse"`` or ``"raw"`` (see StepDataset).
    labels_on: ``"worker"`` (reconstruct in the workers, CPU) or ``"device"`` (workers ship the
        compact stored block; reconstruct after the copy -- best for top-k stores on a GPU).
        Default: ``"device"`` when ``device`` is CUDA, else ``"worker"``.
    render_on: ``"worker"`` (CPU, in the workers) or ``"device"`` (the images live on
        ``device`` as one uint8 bank and views are rendered there; workers read only labels).
    steps_per_item: consecutive scheduled steps decoded together and sent as one DataLoader item
        (:class:`~lplabel.torch.group.StepGroup`); the loop still receives one
        :class:`~lplabel.torch.StepBatch` per step, the same batches in the same order, and
        :meth:`state_dict` still counts the steps the loop received. ``"auto"``: as many as fit
        in about :data:`AUTO_ITEM_BYTES` in-process, :data:`SLAB_ITEM_BYTES` through shared memory,
        :data:`PICKLED_ITEM_BYTES` when items are pickled, at most :data:`AUTO_MAX_STEPS`.
    shared_memory: with forked workers, hand items over in shared-memory slabs instead of pickling
        them through the worker pipe (:class:`~lplabel.torch.group.SlabPool`); ``"auto"`` (default)
        and ``True``: when the workers are forked. An item falls back to pickling when no slab is
        free (e.g. the loop keeps many batches alive).
    prefetch_threads: with ``num_workers=0``, decode this many items ahead in background threads
        (zstd, CRC-32 and the file reads release the GIL). ``"auto"``: 0 -- on the shared 2-core
        benchmark machine a thread made the label path slower (benchmarks/results/loader-*.md);
        it can pay where cores are idle and the loop itself releases the GIL.
    normalize: the pixel convention of ``batch.images``, applied in the workers after mixing:
        ``"0-255"`` (lplabel's rendering), ``"0-1"``, ``"imagenet"`` or ``(mean, std)`` in 0..1 units
        (torchvision's ``ToTensor`` + ``Normalize``). Not given: 0..255 with a warning (see
        :mod:`lplabel.torch.pixels` and docs/loader.md).
    threads: torch threads of the main process while an iteration runs (the training loop's own
        work between batches included); ``thread_plan`` says what was chosen and why. ``"auto"``
        (default): the cores the workers leave, no more than other processes leave idle now
        (:func:`lplabel.threads.plan_threads`) -- on a busy 2-core machine torch's default of one
        thread per core made the ``num_workers=0`` label path 10x slower (issue 19) -- but a count the
        user already chose (``OMP_NUM_THREADS``, or ``torch.set_num_threads`` before the loader was
        built) is kept. An int: that many. ``None``: leave torch's setting alone. The previous count
        is restored when the iteration ends (exhausted, ``break``, exception).
        Worker processes always run :data:`~lplabel.threads.WORKER_THREADS` torch thread each (set
        before the user's ``worker_init_fn``, which may override it).
    label_source: where the labels come from (:mod:`lplabel.torch.label_sources`). None (default,
        ``"auto"``): the store's label generator when its header has one (spec §12), else the
        label column; ``"column"``: the label column; ``"generator"``: the store's generator
        (:class:`~lplabel.torch.StoredGenerator`). An :class:`~lplabel.torch.OnlineTeacher` (or a bare teacher
        ``nn.Module``): the teacher labels each step's rendered, mixed views in this process, on
        ``device``, one forward per step; the label column is not read, and ``normalize`` /
        ``transform`` are applied here after the teacher saw the 0..255 views. Checked (device,
        input size, class count) when the loader is built. ``labels`` must be ``"dense"`` or ``"raw"``.
    num_workers, persistent_workers, pin_memory (default: CUDA device), prefetch_factor,
    multiprocessing_context, timeout, worker_init_fn: passed to the DataLoader.
    """

    def __init__(
        self,
        store,
        images=None,
        *,
        device=None,
        labels: str = "dense",
        labels_on: str | None = None,
        render_on: str = "worker",
        temperature=None,
        mode: str = "auto",
        policy=None,
        apply_mix: bool = True,
        transform=None,
        check_images: bool = True,
        cache_configs="auto",
        reuse: str = "auto",
        seed=None,
        steps_per_epoch=None,
        wrap: bool = True,
        shuffle: bool = False,
        full_steps_only: bool = False,
        rank=None,
        world_size=None,
        uneven: str = "pad",
        epoch: int = 0,
        num_workers: int = 0,
        persistent_workers: bool = False,
        pin_memory=None,
        prefetch_factor=None,
        multiprocessing_context=None,
        timeout: float = 0,
        worker_init_fn=None,
        steps_per_item="auto",
        shared_memory="auto",
        prefetch_threads="auto",
        normalize=None,
        threads="auto",
        label_source=None,
    ):
        if normalize is None and images is not None and transform is None:
            warn_pixels_unset()
            normalize = "0-255"
        self.device = _check_device(device)
        if not (
            threads is None
            or threads == "auto"
            or (isinstance(threads, int) and not isinstance(threads, bool) and threads >= 1)
        ):
            raise ValueError(f"threads must be 'auto', None or a positive integer, got {threads!r}")
        #: the main process's torch threads during iteration, and why (:class:`lplabel.threads.ThreadPlan`)
        self.thread_plan = _loader_thread_plan(threads, num_workers)
        self._set_threads = threads is not None
        cuda = self.device.type == "cuda"
        if labels_on is None:
            labels_on = "device" if cuda else "worker"
        if labels_on not in ("worker", "device") or render_on not in ("worker", "device"):
            raise ValueError("labels_on and render_on must be 'worker' or 'device'")
        store = store if isinstance(store, LabelStore) else LabelStore(store)
        self.label_source = as_label_source(label_source, store)
        online = self.label_source is not None
        if online:
            if images is None:
                raise ValueError(
                    f"{store.path}: the labels come from a {self.label_source.kind}, which labels "
                    "rendered views: pass the images (images=None serves labels only; "
                    "label_source='column' reads the label column)"
                )
            if labels not in ("dense", "raw"):
                raise ValueError(f"label_source= makes dense logits: labels must be 'dense' or 'raw', got {labels!r}")
            labels_on = "worker"  # nothing to reconstruct after the copy: labels are made on the device
        self.labels = labels
        self.labels_on = labels_on
        self.render_on = render_on
        temperature = resolve_temperature(temperature, store)
        # an online source sees the 0..255 views: the pixels are converted after it, here
        self._after = (parse_normalize(normalize), transform) if online else None
        with warnings.catch_warnings():
            if label_source == "column":  # asked for by name: the generator store's column is what is meant
                warnings.simplefilter("ignore", LabelSourceWarning)
            self.dataset = StepDataset(
                store,
                images,
                policy=policy,
                labels="raw" if online or labels_on != "worker" else labels,
                temperature=temperature,
                mode=mode,
                render=render_on == "worker",
                apply_mix=apply_mix,
                transform=None if online else transform,
                check_images=check_images,
                cache_configs=cache_configs,
                normalize="0-255" if online else normalize,
                read_labels=not online,
            )
        if online:
            pol = self.dataset.policy
            self._after[0].check_channels(self.dataset.bank.channels, str(store.path))
            self._pixels = "custom" if transform is not None else self._after[0].kind
            self.label_source.bind(store, self.device, (self.dataset.bank.channels, pol.output_size, pol.output_size))
        if shared_memory not in ("auto", True, False):
            raise ValueError(f"shared_memory must be 'auto', True or False, got {shared_memory!r}")
        if prefetch_threads == "auto":
            prefetch_threads = 0
        self.prefetch_threads = int(prefetch_threads) if num_workers == 0 else 0
        auto = steps_per_item == "auto"
        if not auto and (isinstance(steps_per_item, bool) or not isinstance(steps_per_item, int) or steps_per_item < 1):
            raise ValueError(f"steps_per_item must be 'auto' or a positive integer, got {steps_per_item!r}")
        # forked workers can share slabs; spawned ones (and everything else) pickle their items
        slabs = num_workers > 0 and bool(shared_memory) and _start_method(multiprocessing_context) == "fork"
        if auto:
            steps_per_item = self._auto_steps("slab" if slabs else "pickled" if num_workers else "in-process")
        self.pool = None
        if slabs:
            pf = 2 if prefetch_factor is None else int(prefetch_factor)
            low = num_workers * pf + 2  # the items in flight, plus the one being consumed
            if auto:  # many workers x prefetch: smaller items, so that the pool stays within its limit
                per_step = max(self.dataset.item_nbytes(1), 1)
                steps_per_item = max(1, min(int(steps_per_item), SLAB_POOL_LIMIT // (low + 2) // per_step))
            need = self.dataset.item_nbytes(int(steps_per_item))
            count = min(low + 2, SLAB_POOL_LIMIT // max(need, 1))
            if count >= low:
                try:
                    self.pool = SlabPool(need, count)
                except (OSError, ValueError):  # no shared memory or semaphores here: pickle items
                    self.pool = None
            if self.pool is None and auto:
                steps_per_item = self._auto_steps("pickled")
        self.dataset._pool = self.pool
        self.dataset._ship_errors = num_workers > 0
        self.sampler = StepSampler(
            self.dataset.store,
            temperature=temperature,
            reuse=reuse,
            seed=seed,
            steps_per_epoch=steps_per_epoch,
            wrap=wrap,
            shuffle=shuffle,
            full_steps_only=full_steps_only,
            rank=rank,
            world_size=world_size,
            uneven=uneven,
            epoch=epoch,
            steps_per_item=steps_per_item,
        )
        self.steps_per_item = self.sampler.steps_per_item
        self._device_bank = None
        if render_on == "device" and self.dataset.bank is not None:
            self._device_bank = self.dataset.bank.to(self.device)
        self.pin_memory = cuda if pin_memory is None else bool(pin_memory)
        kw = {}
        if num_workers > 0:
            kw.update(
                persistent_workers=persistent_workers,
                multiprocessing_context=multiprocessing_context,
                timeout=timeout,
                worker_init_fn=_WorkerInit(worker_init_fn),
            )
            if prefetch_factor is not None:
                kw["prefetch_factor"] = prefetch_factor
        self.dataloader = torch.utils.data.DataLoader(
            self.dataset,
            batch_size=None,
            sampler=_Groups(self.sampler),
            num_workers=num_workers,
            pin_memory=self.pin_memory,
            **kw,
        )
        self._consumed = 0
        self._consumed_epoch = self.sampler.epoch

    def _auto_steps(self, transport: str) -> int:
        """Steps per item: about AUTO_ITEM_BYTES per item in-process, SLAB_ITEM_BYTES through slabs
        (the per-item cost dominates there: 16 steps of dense probabilities at C=1000 made the
        2-worker label path 10-50 % faster than 5); pickled items cost per byte (several
        copies through a pipe), so there about PICKLED_ITEM_BYTES."""
        per_step = max(self.dataset.item_nbytes(1), 1)
        target = {"slab": SLAB_ITEM_BYTES, "pickled": PICKLED_ITEM_BYTES}.get(transport, AUTO_ITEM_BYTES)
        return int(max(1, min(AUTO_MAX_STEPS, target // per_step)))

    # -- epochs ----------------------------------------------------------------------------------
    @property
    def epoch(self) -> int:
        return self.sampler.epoch

    def set_epoch(self, epoch: int) -> None:
        """The epoch the next iteration serves. Authoritative; without it each new iteration serves
        the epoch after the previous one (see :class:`~lplabel.torch.StepSampler`)."""
        self.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        """Steps (batches) the next iteration yields."""
        return self.sampler.steps_left()

    def _threaded(self):
        """In-process items decoded ahead by background threads, in order."""
        from concurrent.futures import ThreadPoolExecutor

        ds = self.dataset
        ds.store._file()  # open the file once, here, before threads race to
        pin = self.pin_memory and torch.cuda.is_available()

        def load(key):
            item = ds[key]
            return item.pin_memory() if pin else item

        ex = ThreadPoolExecutor(max_workers=self.prefetch_threads, thread_name_prefix="lplabel-prefetch")
        pending = deque()
        depth = 2 * self.prefetch_threads
        try:
            for key in _Groups(self.sampler):
                pending.append(ex.submit(load, key))
                if len(pending) > depth:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for f in pending:
                f.cancel()
            ex.shutdown(wait=False)

    def __iter__(self):
        epoch = self.sampler.begin_iteration(claim=True)  # the epoch advances here without set_epoch
        self._consumed = self.sampler._start
        self._consumed_epoch = epoch
        non_blocking = self.pin_memory
        if self.pool is not None:  # slabs of workers that died before handing them over
            self.pool.reclaim()
        old_threads = torch.get_num_threads()
        if self._set_threads and self.thread_plan.main != old_threads:
            torch.set_num_threads(self.thread_plan.main)
        finished = False
        it = None
        try:
            it = self._threaded() if self.prefetch_threads > 0 else iter(self.dataloader)
            while True:
                try:
                    batch = next(it)
                except StopIteration:
                    finished = True
                    return
                except BaseException as e:
                    _stop_workers(it, self.dataloader)
                    orig = _unwrap(e)
                    if orig is not None:
                        raise_worker_failure(WorkerFailure(orig, orig.worker_traceback, "in a DataLoader worker"))
                    if not (isinstance(e, RuntimeError) and _is_worker_death(e)):
                        raise
                    raise LoaderWorkerError(
                        f"a DataLoader worker died or stopped answering ({e})",
                        path=self.sampler.path,
                        part=f"epoch {epoch}",
                        hint="look for the OOM killer (dmesg) or a crash in native code; with many workers raise "
                        "/dev/shm or lower num_workers / prefetch_factor",
                    ) from e
                if isinstance(batch, WorkerFailure):
                    _stop_workers(it, self.dataloader)
                    raise_worker_failure(batch)
                yield from self._steps_of(batch, non_blocking)
                batch = None
        finally:
            if not finished and it is not None:
                self._left_early(it)
            if torch.get_num_threads() != old_threads:
                torch.set_num_threads(old_threads)

    def _left_early(self, it) -> None:
        """The loop left the epoch before its end (``break``, an exception, the generator closed).

        Items the workers decoded ahead hold slabs that will never be received. Non-persistent
        workers are shut down now and their slabs go back to the pool at once; persistent workers
        keep running, and the DataLoader receives (and so frees) their leftover items when the next
        epoch starts.
        """
        if self.pool is None:
            return
        _stop_workers(it, self.dataloader)
        self.pool.reclaim()

    def _steps_of(self, group: StepGroup, non_blocking: bool):
        """One item's steps, on the device, labels and images completed there when asked."""
        host = group
        if group.device != self.device:
            group = group.to(self.device, non_blocking=non_blocking)
        if self.labels_on == "device":
            group.finalize(self.labels)
        batches = group.batches()
        host_views = (self._device_bank is not None or self.label_source is not None) and group is not host
        views = host.batches() if host_views else batches
        for batch, view in zip(batches, views):
            if self._device_bank is not None:
                self.dataset.render_batch(batch, self._device_bank, views=view)
            if self.label_source is not None:
                self._label(batch, view)
            self._consumed = batch.slot + 1
            yield batch

    def _label(self, batch: StepBatch, view: StepBatch) -> None:
        """The label source's labels for one step (in place): logits of the mixed 0..255 views,
        probabilities at the step's temperature, then the pixels in the ``normalize=`` convention."""
        x = batch.images
        if not self.dataset.apply_mix and view.mixed:  # the loop mixes later; the teacher sees the mix now
            from ..views.replay import apply_mix

            x = apply_mix(x, view.mix_partner, view.mix_lambda, view.mix_box, self.dataset.policy.mix)
        batch.label = {"logits": self.label_source.logits(x)}
        batch.label_format, batch.recon_mode, batch.tail_kind, batch.probs = "raw", "auto", "none", None
        batch.finalize(self.labels)
        norm, transform = self._after
        imgs = norm(batch.images)
        batch.images = transform(imgs) if transform is not None else imgs
        batch.pixels = self._pixels

    # -- resume ------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Resume state: the epoch and how many of its batches the loop has received so far."""
        consumed = self._consumed if self._consumed_epoch == self.sampler.epoch else self.sampler._start
        return self.sampler.state_dict(consumed=consumed)

    def load_state_dict(self, state: dict) -> None:
        self.sampler.load_state_dict(state)
        self._consumed = self.sampler._start
        self._consumed_epoch = self.sampler.epoch
