"""ReplayLoader: the dataset, the sampler and a stock DataLoader, wired together.

Most training loops need only this::

    loader = ReplayLoader("labels.lpl", imageset, device="cuda", temperature=lpqld_step(),
                          num_workers=4, persistent_workers=True)
    for epoch in range(start_epoch, epochs):
        loader.set_epoch(epoch)
        for batch in loader:                     # StepBatch on `device`
            out = student(normalize(batch.images))
            loss = kl_div_loss(out, batch.probs, batch.temperature)
            ...
            ckpt["loader"] = loader.state_dict()  # exact mid-epoch resume point

It builds a :class:`~lplabel.torch.StepDataset`, a :class:`~lplabel.torch.StepSampler` and a plain
``torch.utils.data.DataLoader(batch_size=None)``; moves each batch to ``device`` (non-blocking from
pinned memory); optionally renders images and/or reconstructs labels on the device instead of in
the workers; counts consumed batches so :meth:`ReplayLoader.state_dict` is exact whatever the
prefetch depth; and turns a dead or stuck worker into a :class:`LoaderWorkerError`.
"""
from __future__ import annotations

import torch

from ..errors import LplabelError
from .dataset import StepDataset
from .sampler import StepSampler


class LoaderWorkerError(LplabelError):
    """A DataLoader worker died (killed, crashed in native code) or stopped answering."""


_WORKER_DEATH = ("exited unexpectedly", "is killed by signal", "DataLoader timed out")


def _is_worker_death(e: BaseException) -> bool:
    msg = str(e)
    return isinstance(e, RuntimeError) and not msg.startswith("Caught ") and any(s in msg for s in _WORKER_DEATH)


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
    num_workers, persistent_workers, pin_memory (default: CUDA device), prefetch_factor,
    multiprocessing_context, timeout, worker_init_fn: passed to the DataLoader.
    """

    def __init__(self, store, images=None, *, device=None, labels: str = "dense", labels_on: str | None = None,
                 render_on: str = "worker", temperature=1.0, mode: str = "auto", policy=None, apply_mix: bool = True,
                 transform=None, check_images: bool = True, cache_configs="auto",
                 reuse: str = "auto", seed=None, steps_per_epoch=None, wrap: bool = True, shuffle: bool = False,
                 full_steps_only: bool = False, rank=None, world_size=None, uneven: str = "pad", epoch: int = 0,
                 num_workers: int = 0, persistent_workers: bool = False, pin_memory=None, prefetch_factor=None,
                 multiprocessing_context=None, timeout: float = 0, worker_init_fn=None):
        self.device = torch.device("cpu" if device is None else device)
        cuda = self.device.type == "cuda"
        if labels_on is None:
            labels_on = "device" if cuda else "worker"
        if labels_on not in ("worker", "device") or render_on not in ("worker", "device"):
            raise ValueError("labels_on and render_on must be 'worker' or 'device'")
        self.labels = labels
        self.labels_on = labels_on
        self.render_on = render_on
        self.dataset = StepDataset(store, images, policy=policy, labels=labels if labels_on == "worker" else "raw",
                                   temperature=temperature, mode=mode, render=render_on == "worker",
                                   apply_mix=apply_mix, transform=transform, check_images=check_images,
                                   cache_configs=cache_configs)
        self.sampler = StepSampler(self.dataset.store, temperature=temperature, reuse=reuse, seed=seed,
                                   steps_per_epoch=steps_per_epoch, wrap=wrap, shuffle=shuffle,
                                   full_steps_only=full_steps_only, rank=rank, world_size=world_size,
                                   uneven=uneven, epoch=epoch)
        self._device_bank = None
        if render_on == "device" and self.dataset.bank is not None:
            self._device_bank = self.dataset.bank.to(self.device)
        self.pin_memory = cuda if pin_memory is None else bool(pin_memory)
        kw = {}
        if num_workers > 0:
            kw.update(persistent_workers=persistent_workers, multiprocessing_context=multiprocessing_context,
                      timeout=timeout, worker_init_fn=worker_init_fn)
            if prefetch_factor is not None:
                kw["prefetch_factor"] = prefetch_factor
        self.dataloader = torch.utils.data.DataLoader(self.dataset, batch_size=None, sampler=self.sampler,
                                                      num_workers=num_workers, pin_memory=self.pin_memory, **kw)
        self._consumed = 0
        self._consumed_epoch = self.sampler.epoch

    # -- epochs ----------------------------------------------------------------------------------
    @property
    def epoch(self) -> int:
        return self.sampler.epoch

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self):
        epoch = self.sampler.epoch
        self._consumed = self.sampler._start
        self._consumed_epoch = epoch
        non_blocking = self.pin_memory
        it = iter(self.dataloader)
        while True:
            try:
                batch = next(it)
            except StopIteration:
                return
            except RuntimeError as e:
                if _is_worker_death(e):
                    raise LoaderWorkerError(
                        f"a DataLoader worker died or stopped answering ({e})", path=self.sampler.path,
                        part=f"epoch {epoch}",
                        hint="look for the OOM killer (dmesg) or a crash in native code; with many workers raise "
                             "/dev/shm or lower num_workers / prefetch_factor") from e
                raise
            host = batch
            if batch.device != self.device:
                batch = batch.to(self.device, non_blocking=non_blocking)
            if self._device_bank is not None:
                self.dataset.render_batch(batch, self._device_bank, views=host)
            if self.labels_on == "device":
                batch.finalize(self.labels)
            self._consumed = batch.slot + 1
            yield batch

    # -- resume ------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Resume state: the epoch and how many of its batches the loop has received so far."""
        consumed = self._consumed if self._consumed_epoch == self.sampler.epoch else self.sampler._start
        return self.sampler.state_dict(consumed=consumed)

    def load_state_dict(self, state: dict) -> None:
        self.sampler.load_state_dict(state)
        self._consumed = self.sampler._start
        self._consumed_epoch = self.sampler.epoch
