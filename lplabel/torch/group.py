"""Several scheduled steps as one DataLoader item, and the shared-memory slabs that carry them.

Why: with worker processes every DataLoader item costs a round trip through the worker's
index queue and the result pipe (about 70 µs here before any payload), and a pickled payload
is copied four to six times on its way (pickling, the pipe, unpickling). A
:class:`StepGroupKey` asks a worker for ``G`` consecutive scheduled steps at once; the worker
decodes them into one contiguous buffer (:class:`StepGroup`, every field concatenated over the
group's records), and the main process splits that buffer into ``G`` ordinary
:class:`~lplabel.torch.batch.StepBatch` objects whose tensors are views into it. Iterating a
``StepGroup`` yields them in schedule order; :class:`~lplabel.torch.ReplayLoader` does that for
you (``steps_per_item``), so a training loop sees the same batches in the same order as with one
step per item.

Shared-memory slabs (:class:`SlabPool`, used by ``ReplayLoader`` with forked workers): a fixed
set of equal slabs in one anonymous shared mapping, created in the main process before the
workers fork, so every worker maps the same memory. A worker claims a free slab (a
process-shared lock guards the claim table), decodes the group straight into it, and sends only
the slab's number and the layout; the main process wraps the slab in tensors without copying
and marks it free again when the last tensor viewing it is garbage-collected. When no slab is
free (the loop keeps many batches alive) or the group does not fit, the group travels pickled
by value as before; spawned workers (which do not inherit the mapping) always do. Slabs whose
claiming worker died before the main process received them (non-persistent workers shut down
mid-epoch) are reclaimed at the start of the next iteration.
"""

from __future__ import annotations

import math
import mmap
import multiprocessing
import os
import uuid
import weakref
from typing import NamedTuple

import numpy as np
import torch

from ..reconstruct import probs_torch
from .batch import INLINE_BYTES, LABEL_FORMATS, SparseLabels, StepBatch, probs_into, sparse_probs

_ALIGN = 64
_POOLS: "weakref.WeakValueDictionary[str, SlabPool]" = weakref.WeakValueDictionary()


def _aligned(n: int) -> int:
    return -(-n // _ALIGN) * _ALIGN


class StepGroupKey(NamedTuple):
    """A run of consecutive scheduled steps served as one item.

    ``positions``: the stored steps, in schedule order; ``epoch`` and ``temperature`` are shared;
    step ``i`` of the group has slot ``slot + i``.
    """

    positions: tuple
    epoch: int = -1
    slot: int = -1
    temperature: float = float("nan")


# ---------------------------------------------------------------------------------------- slabs
def _free_slab(state, k, live, creator):
    if os.getpid() == creator:  # never from a forked copy of the main process's objects
        state[k] = 0
        live.discard(k)


class SlabPool:
    """``count`` shared-memory slabs of ``slab_bytes`` each (see the module doc)."""

    def __init__(self, slab_bytes: int, count: int):
        if count < 1 or slab_bytes < 1:
            raise ValueError("a slab pool needs at least one slab of at least one byte")
        self.slab_bytes = -(-int(slab_bytes) // mmap.PAGESIZE) * mmap.PAGESIZE
        self.count = int(count)
        self.id = uuid.uuid4().hex
        self._mem = mmap.mmap(-1, self.slab_bytes * self.count)  # MAP_SHARED | MAP_ANONYMOUS
        self._state_mem = mmap.mmap(-1, 8 * self.count)
        self._state = np.frombuffer(self._state_mem, dtype=np.int64)  # 0 free, else the claiming pid
        self._lock = multiprocessing.get_context("fork").Lock()
        self._creator = os.getpid()
        self._live: set = set()
        self.received = {"slab": 0, "pickled": 0}  # main process: how groups arrived
        _POOLS[self.id] = self

    def __getstate__(self):  # the mapping cannot follow a spawned worker
        raise TypeError("a SlabPool cannot be pickled (it only reaches forked workers)")

    @property
    def nbytes(self) -> int:
        return self.slab_bytes * self.count

    def in_forked_child(self) -> bool:
        return os.getpid() != self._creator

    def claim(self, nbytes: int):
        """A free slab for ``nbytes`` (worker side), or None."""
        if nbytes > self.slab_bytes:
            return None
        pid = os.getpid()
        # a timeout, so that a worker killed while holding the lock cannot stall the others
        if not self._lock.acquire(timeout=1.0):
            return None
        try:
            free = np.flatnonzero(self._state == 0)
            if not len(free):
                return None
            k = int(free[0])
            self._state[k] = pid
        finally:
            self._lock.release()
        return k

    def release(self, k: int) -> None:
        """Give back a slab that was claimed but never sent (worker side)."""
        self._state[k] = 0

    def array(self, k: int, nbytes: int | None = None) -> np.ndarray:
        n = self.slab_bytes if nbytes is None else nbytes
        return np.frombuffer(self._mem, dtype=np.uint8, count=n, offset=k * self.slab_bytes)

    def receive(self, k: int, nbytes: int) -> np.ndarray:
        """The main process's view of slab ``k``; the slab is freed when the view is collected."""
        a = self.array(k, nbytes)
        self._live.add(k)
        f = weakref.finalize(a, _free_slab, self._state, k, self._live, self._creator)
        f.atexit = False
        self.received["slab"] += 1
        return a

    def in_use(self) -> int:
        return int(np.count_nonzero(self._state))

    def reclaim(self) -> int:
        """Free slabs claimed by processes that no longer exist and not held here (main side)."""
        n = 0
        # a snapshot: workers claim and free slabs while this runs, and numpy's nonzero on the live
        # shared array raises when the count changes under it (seen: "number of non-zero array
        # elements changed during function execution", the training loop's next epoch crashed)
        for k in np.flatnonzero(self._state.copy()).tolist():
            if k in self._live:
                continue
            pid = int(self._state[k])
            if pid == 0:  # freed since the snapshot
                continue
            try:
                os.kill(pid, 0)
                continue
            except ProcessLookupError:
                pass
            except OSError:
                continue
            self._state[k] = 0
            n += 1
        return n


# ---------------------------------------------------------------------------------------- packing
_TORCH_DTYPES = {
    str(d).replace("torch.", ""): d
    for d in (
        torch.float64,
        torch.float32,
        torch.float16,
        torch.bfloat16,
        torch.int64,
        torch.int32,
        torch.int16,
        torch.int8,
        torch.uint8,
        torch.bool,
    )
}


def _dtype_name(t: torch.Tensor) -> str:
    return str(t.dtype).replace("torch.", "")


def _view(base: torch.Tensor, dtype: str, shape, off: int, n: int) -> torch.Tensor:
    dt = _TORCH_DTYPES[dtype]
    if n == 0:
        return torch.empty(shape, dtype=dt)
    return base[off : off + n].view(dt).view(shape)


def _copy_into(base: torch.Tensor, off: int, t: torch.Tensor) -> None:
    n = t.numel() * t.element_size()
    if n:
        base[off : off + n].view(t.dtype).view(t.shape).copy_(t)


def dense_rows(
    block: dict, sizes, out: torch.Tensor, num_classes: int, temperature: float, mode: str, tail_kind: str
) -> torch.Tensor:
    """Dense probabilities of a group's label rows into ``out`` [sum(sizes), C], step by step
    (:func:`~lplabel.torch.batch.probs_into`: the values of ``probs_torch``, small temporaries)."""
    scratch = None
    if "logits" in block:
        scratch = torch.from_numpy(np.empty((max(sizes), num_classes), dtype=np.float32))
    o = 0
    for n in sizes:
        part = {k: v[o : o + n] for k, v in block.items()}
        probs_into(
            part, out[o : o + n], num_classes, temperature, mode, tail_kind, None if scratch is None else scratch[:n]
        )
        o += n
    return out


def _named(group: "StepGroup"):
    yield from group.tensors.items()
    for name, ts in group.per_step.items():
        for i, t in enumerate(ts):
            yield f"{name}#{i}", t


def _assemble(named, meta) -> "StepGroup":
    tensors, per = {}, {}
    for name, t in named:
        base, sep, i = name.rpartition("#")
        if sep:
            per.setdefault(base, {})[int(i)] = t
        else:
            tensors[name] = t
    return StepGroup(meta, tensors, {k: [v[i] for i in range(len(v))] for k, v in per.items()})


def _passthrough(x):
    return x


def _rebuild_group(meta, pool_id, slab, slab_bytes, layout, buf, big):
    """Unpickle a StepGroup: tensors become views into the slab or the one received buffer."""
    named = []
    views = []
    if slab is not None:
        pool = _POOLS.get(pool_id)
        if pool is None:
            raise RuntimeError(
                "a StepGroup sent through shared-memory slabs can only be received by the process "
                "that created the slab pool"
            )
        views.append((torch.from_numpy(pool.receive(slab, slab_bytes)), layout[0]))
    elif pool_id is not None:
        pool = _POOLS.get(pool_id)
        if pool is not None:
            pool.received["pickled"] += 1
    if buf is not None:
        views.append((torch.from_numpy(buf), layout[1]))
    for base, entries in views:
        for name, dtype, shape, off, n in entries:
            named.append((name, _view(base, dtype, shape, off, n)))
    named.extend(big.items())
    return _assemble(named, meta)


class StepGroup:
    """Consecutive scheduled steps decoded as one item (see the module doc).

    ``meta``: per-step lists (``positions``, ``sizes`` = views per step, ``stored_epoch``,
    ``stored_step``, ``mix_lambda``) and what the steps share (``epoch``, ``slot`` of the first
    step, ``temperature``, ``mix_kind``, ``num_classes``, ``label_format``, ``recon_mode``,
    ``tail_kind``). ``tensors``: StepBatch fields concatenated over the group's records
    (``image_ids``, ``crop``, ``flip``, ``mix_partner``, ``target``, ``label/<field>``, ``probs``
    when computed, ``sparse/{indices,values,fill}`` when computed off the CPU), ``mix_box``
    [G, 4]. ``per_step``: fields made step by step, one tensor per step (``images``;
    ``sparse/...`` computed on the CPU).

    Iterate it (or call :meth:`batches`) for the :class:`StepBatch` objects, in order.
    """

    __slots__ = ("meta", "tensors", "per_step", "_pool", "_slab", "_placed")

    def __init__(self, meta: dict, tensors: dict, per_step: dict | None = None):
        self.meta = meta
        self.tensors = tensors
        self.per_step = {} if per_step is None else per_step
        self._pool = None  # worker side: the pool the group was decoded into
        self._slab = None  # ... the claimed slab
        self._placed = None  # ... ({name: offset} of the tensors already in it, bytes used)

    def __len__(self) -> int:
        return len(self.meta["positions"])

    def __iter__(self):
        return iter(self.batches())

    @property
    def num_views(self) -> int:
        return int(sum(self.meta["sizes"]))

    @property
    def device(self) -> torch.device:
        return self.tensors["image_ids"].device

    # -- pickling --------------------------------------------------------------------------------
    def __reduce__(self):
        pool = self._pool
        try:
            return self._reduce()
        except BaseException:
            if pool is not None and self._slab is not None:  # never sent: give the slab back
                pool.release(self._slab)
                self._slab = None
            if pool is None or not pool.in_forked_child() or torch.utils.data.get_worker_info() is None:
                raise
            # In a DataLoader worker this runs in the result queue's feeder thread, which would only
            # print the error and drop the item (the main process would wait for it forever): send
            # the error instead, as the worker does for an exception in the dataset.
            from torch._utils import ExceptionWrapper

            info = torch.utils.data.get_worker_info()
            return _passthrough, (
                ExceptionWrapper(where=f"in DataLoader worker process {info.id} while sending a StepGroup"),
            )

    def _reduce(self):
        pool, slab, placed = self._pool, self._slab, self._placed
        items = list(_named(self))
        if pool is not None and slab is None:  # decoded elsewhere: try to claim a slab now
            need = 0
            for _, t in items:
                need = _aligned(need) + t.numel() * t.element_size()
            slab = self._slab = pool.claim(need)
            placed = ({}, 0)
        worker = pool is not None and pool.in_forked_child()
        slab_layout, packed, big = [], [], {}
        if slab is not None:
            placed, pos = placed
            base = torch.from_numpy(pool.array(slab))
        total = 0
        for name, t in items:
            n = t.numel() * t.element_size()
            spec = (name, _dtype_name(t), tuple(t.shape))
            if slab is not None:
                if name in placed:
                    slab_layout.append((*spec, placed[name], n))
                    continue
                off = _aligned(pos)
                if off + n <= pool.slab_bytes and t.device.type == "cpu" and not t.requires_grad:
                    _copy_into(base, off, t.contiguous())
                    slab_layout.append((*spec, off, n))
                    pos = off + n
                    continue
            if t.device.type == "cpu" and not t.requires_grad and n <= INLINE_BYTES:
                off = _aligned(total)
                packed.append((spec, off, n, t))
                total = off + n
            else:
                if worker and t.device.type == "cpu":
                    # move it to shared memory here, where a failure (e.g. /dev/shm full) still
                    # gives the slab back, rather than later in the pickler
                    t.share_memory_()
                big[name] = t
        buf = None
        if packed:
            buf = np.empty(total, dtype=np.uint8)
            tb = torch.from_numpy(buf)
            for _, off, n, t in packed:
                _copy_into(tb, off, t.contiguous())
        layout = (slab_layout, [(*spec, off, n) for spec, off, n, _ in packed])
        self._slab = None  # sent: the receiving process frees the slab
        return _rebuild_group, (
            self.meta,
            None if pool is None else pool.id,
            slab,
            pos if slab is not None else 0,
            layout,
            buf,
            big,
        )

    # -- moving --------------------------------------------------------------------------------
    def to(self, device, non_blocking: bool = False) -> "StepGroup":
        device = torch.device(device)
        return _assemble(((k, t.to(device, non_blocking=non_blocking)) for k, t in _named(self)), dict(self.meta))

    def pin_memory(self) -> "StepGroup":
        """A copy in one page-locked buffer (``DataLoader(pin_memory=True)`` calls this)."""
        items = list(_named(self))
        offs, total = [], 0
        for _, t in items:
            off = _aligned(total)
            offs.append(off)
            total = off + t.numel() * t.element_size()
        buf = torch.empty(max(total, 1), dtype=torch.uint8, pin_memory=True)
        named = []
        for (name, t), off in zip(items, offs):
            _copy_into(buf, off, t.contiguous())
            named.append((name, _view(buf, _dtype_name(t), tuple(t.shape), off, t.numel() * t.element_size())))
        return _assemble(named, dict(self.meta))

    # -- labels ----------------------------------------------------------------------------------
    def label_block(self) -> dict:
        return {k[6:]: v for k, v in self.tensors.items() if k.startswith("label/")}

    def finalize(self, label_format: str | None = None) -> "StepGroup":
        """Compute ``probs`` / ``sparse`` for the group's views (in place; returns self). On the CPU
        step by step (small temporaries), elsewhere for all the group's views at once."""
        m = self.meta
        fmt = m["label_format"] if label_format is None else label_format
        if fmt not in LABEL_FORMATS:
            raise ValueError(f"label format must be one of {LABEL_FORMATS}, got {fmt!r}")
        m["label_format"] = fmt
        t = m["temperature"]
        if (
            fmt == "raw"
            or (fmt == "dense" and ("probs" in self.tensors or "probs" in self.per_step))
            or (fmt == "sparse" and ("sparse/values" in self.tensors or "sparse/values" in self.per_step))
        ):
            return self
        if not (t > 0 and math.isfinite(t)):
            raise ValueError(
                f"no valid temperature for this batch (got {t!r}); give the sampler a temperature "
                "schedule or pass temperature="
            )
        c, mode, tk = m["num_classes"], m["recon_mode"], m["tail_kind"]
        block = self.label_block()
        sizes = m["sizes"]
        if self.device.type == "cpu" and fmt == "dense":
            out = torch.from_numpy(np.empty((self.num_views, c), dtype=np.float32))
            self.tensors["probs"] = dense_rows(block, sizes, out, c, t, mode, tk)
        elif self.device.type == "cpu" and fmt == "sparse" and len(sizes) > 1:
            parts = [dict(zip(block, vs)) for vs in zip(*(v.split(sizes) for v in block.values()))]
            sps = [sparse_probs(b, c, t, mode, tk) for b in parts]
            for j, k in enumerate(("sparse/indices", "sparse/values", "sparse/fill")):
                self.per_step[k] = [sp[j] for sp in sps]
        elif fmt == "dense":
            self.tensors["probs"] = probs_torch(block, c, temperature=t, mode=mode, tail_kind=tk)
        else:
            sp = sparse_probs(block, c, t, mode, tk)
            self.tensors.update({"sparse/indices": sp.indices, "sparse/values": sp.values, "sparse/fill": sp.fill})
        return self

    # -- unbatching ------------------------------------------------------------------------------
    def batches(self) -> list:
        """The group's steps as :class:`StepBatch` objects (tensors are views into the group's)."""
        m = self.meta
        sizes = m["sizes"]
        g = len(sizes)
        tens = self.tensors
        if g == 1:
            per = {k: (v if k != "mix_box" else v[0],) for k, v in tens.items()}
        else:
            b0 = sizes[0]
            split = b0 if all(s == b0 for s in sizes) else sizes
            per = {k: (v.unbind(0) if k == "mix_box" else v.split(split)) for k, v in tens.items()}
        per.update(self.per_step)
        labels = [k for k in tens if k.startswith("label/")]
        names = [k[6:] for k in labels]
        probs = per.get("probs")
        sp = (per["sparse/indices"], per["sparse/values"], per["sparse/fill"]) if "sparse/values" in per else None
        images = per.get("images")
        pos, se, ss, lam = m["positions"], m["stored_epoch"], m["stored_step"], m["mix_lambda"]
        epoch, slot0, temp, c = m["epoch"], m["slot"], m["temperature"], m["num_classes"]
        kind, fmt, mode, tk = m["mix_kind"], m["label_format"], m["recon_mode"], m["tail_kind"]
        ids, crop, flip, partner, target, box = (
            per[k] for k in ("image_ids", "crop", "flip", "mix_partner", "target", "mix_box")
        )
        lab = [per[k] for k in labels]
        out = []
        for i in range(g):
            out.append(
                StepBatch(
                    position=pos[i],
                    epoch=epoch,
                    slot=slot0 + i,
                    stored_epoch=se[i],
                    stored_step=ss[i],
                    temperature=temp,
                    image_ids=ids[i],
                    crop=crop[i],
                    flip=flip[i],
                    mix_partner=partner[i],
                    mix_lambda=lam[i],
                    mix_box=box[i],
                    mix_kind=kind,
                    target=target[i],
                    label={n: v[i] for n, v in zip(names, lab)},
                    num_classes=c,
                    label_format=fmt,
                    recon_mode=mode,
                    tail_kind=tk,
                    images=None if images is None else images[i],
                    probs=None if probs is None else probs[i],
                    sparse=None if sp is None else SparseLabels(sp[0][i], sp[1][i], sp[2][i], c),
                    pixels=m.get("pixels", "0-255"),
                )
            )
        return out
