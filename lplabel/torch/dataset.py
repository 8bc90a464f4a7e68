"""A batch-level dataset: item = one stored step, replayed exactly (images + soft labels).

``StepDataset[key]`` reads one stored step of a label store and returns a
:class:`~lplabel.torch.batch.StepBatch`: the step's views rendered from the distilled images with
:mod:`lplabel.views.replay` (crop, bilinear resize, flip, then the step's CutMix/MixUp) -- the same
pixels the teacher labelled -- and the step's soft labels. ``key`` is a stored-step position
(int) or a :class:`~lplabel.torch.batch.StepKey` from :class:`~lplabel.torch.StepSampler`, which
also carries the training epoch and the label temperature, so workers hold no epoch state.

Use it with a stock ``torch.utils.data.DataLoader(dataset, batch_size=None, sampler=sampler)``:
one item is already a whole step (B views), so the DataLoader must not batch again. A
:class:`~lplabel.torch.group.StepGroupKey` (``StepSampler(steps_per_item=G)``) asks for a run of
G steps, decoded into one contiguous :class:`~lplabel.torch.group.StepGroup` (fewer, larger
items; iterate it for the steps).

Labels are read with :class:`~lplabel.torch.fastread.LabelRows`: each chunk is read, CRC-checked
and decompressed once per item however many of its steps the item needs, and the rows go straight
into the item's arrays.

Process model: the dataset holds a :class:`~lplabel.store.LabelStore` (no HDF5 handle; payload is
read with ``os.pread`` on a file descriptor each process opens for itself), numpy tables, and the
images as one uint8 :class:`~lplabel.views.replay.ImageBank` built once in the constructing process
(forked workers share its pages; spawned workers receive it through shared memory). It is safe
with any worker count, ``fork``/``spawn``/``forkserver``, and persistent workers.
"""

from __future__ import annotations

import math
import os
import threading
import warnings
from pathlib import Path

import numpy as np
import torch

from ..errors import ImageSetMismatchError, LplabelError
from ..images import FINGERPRINT_ALGORITHM, ImageSet, fingerprint_images, keys_digest
from ..reconstruct import ReconstructError, tail_kind_of
from ..selection.schedule import as_temperature
from ..store import LabelStore
from ..store import layout as L
from .batch import LABEL_FORMATS, StepBatch, StepKey, probs_into
from .fastread import LabelRows
from .group import StepGroup, StepGroupKey, dense_rows
from .pixels import parse_normalize

#: The warning for a loader that renders images without being told their pixel convention.
PIXELS_UNSET = (
    "batch.images are float32 in 0..255 (lplabel's rendering, what its teachers take); a "
    "torchvision/timm student expects normalised input (transforms.Normalize works on 0..1 pixels). "
    "Pass normalize='imagenet' (or normalize=(mean, std) with 0..1 statistics) to get normalised "
    "images from the workers, normalize='0-1' to apply your own Normalize, or normalize='0-255' to keep "
    "0..255 and silence this warning (docs/loader.md, 'Pixels')"
)


def warn_pixels_unset(stacklevel: int = 3) -> None:
    warnings.warn(PIXELS_UNSET, UserWarning, stacklevel=stacklevel)


#: Dense probabilities of dense logits are computed in row blocks of at most this many bytes of float32
#: scratch (the block stays in the core's cache between the widening, the division and the softmax).
PROBS_BLOCK_BYTES = 512 << 10

#: Config columns are decoded once per process and kept in memory when the store holds at most
#: this many records (about 23 bytes each: image id, crop box, flip, mix partner).
CONFIG_CACHE_RECORDS = 4_000_000


class WorkerFailure:
    """An lplabel error raised in a DataLoader worker, sent to the main process as the item.

    PyTorch re-raises a worker's exception as ``type(e)(text)``, where the text is its 25-30 line
    wrapper ("Caught ChecksumError in DataLoader worker process 0. Original Traceback ...") and
    the error's ``path``/``part``/``hint`` are lost. Sent as data instead (lplabel errors pickle
    with their attributes), :class:`~lplabel.torch.ReplayLoader` re-raises the original error,
    one line, with the worker's traceback kept in ``error.worker_traceback`` (and chained as its
    cause under ``LPLABEL_DEBUG=1``). Only a dataset owned by a ReplayLoader sends these.
    """

    __slots__ = ("error", "traceback", "where")

    def __init__(self, error: BaseException, traceback: str, where: str):
        self.error = error
        self.traceback = traceback
        self.where = where


class WorkerTraceback(Exception):
    """The traceback of an error in a DataLoader worker (chained under ``LPLABEL_DEBUG=1``)."""


def raise_worker_failure(failure: WorkerFailure):
    """Raise the worker's original error (see :class:`WorkerFailure`)."""
    err = failure.error
    try:
        err.worker_traceback = f"{failure.where}:\n{failure.traceback}"
    except AttributeError:  # pragma: no cover - exceptions with __slots__
        pass
    if os.environ.get("LPLABEL_DEBUG"):
        raise err from WorkerTraceback(f"{failure.where}:\n{failure.traceback}")
    raise err.with_traceback(None) from None


def _open(store) -> LabelStore:
    return store if isinstance(store, LabelStore) else LabelStore(store)


def _short(h):
    return "none" if h is None else str(h)[:16]


def check_image_set(store: LabelStore, images, keys=None) -> None:
    """Refuse an image set that is not the one the store's labels were made for.

    ``images``: the pixel arrays (an [N, H, W, C] uint8 array or a list of H×W×C arrays) or an
    :class:`~lplabel.images.ImageSet`; ``keys``: the image keys when known. Compares the image
    count, then the content fingerprint (when the store has one), else the key digest. Raises
    :class:`~lplabel.errors.ImageSetMismatchError` naming both sides.
    """
    hdr = store.header["images"]
    if isinstance(images, ImageSet):
        keys = images.keys if keys is None else keys
        fp_given = None  # computed lazily (hashing all pixels costs a pass over the set)
        iset = images
    else:
        iset = None
    n = len(images.images) if iset is not None else len(images)
    want_n = int(hdr.get("count", store.num_images))
    key_given = keys_digest(keys) if keys is not None else None
    key_store = hdr.get("keys_sha256")
    fp = hdr.get("fingerprint")
    fp_store = fp.get("value") if isinstance(fp, dict) else None
    what = (
        "pass the image set the labels were made for (same images, same order), or relabel these images; "
        "check_images=False skips this check at your own risk"
    )
    legacy = (store.header.get("extensions") or {}).get("legacy")
    if (
        legacy
        and key_store is not None
        and fp_store is None
        and key_store == keys_digest([str(i) for i in range(want_n)])
    ):
        # imported without --images: the store knows its images only as "0".."N-1"
        what = (
            "the store was imported without --images, so its image keys are just 0..N-1: re-import it with "
            "`lplabel import LEGACY_DIR -o OUT.lpl --images DISTILLED_DIR` (the ImageFolder the labels were "
            "made for); check_images=False skips this check at your own risk"
        )
    if n != want_n:
        raise ImageSetMismatchError(
            f"the image set has {n} images, the store's labels are for {want_n} "
            f"(store key digest {_short(key_store)}, given {_short(key_given)})",
            path=store.path,
            part="images",
            hint=what,
        )
    if fp_store is not None:
        if isinstance(fp, dict) and fp.get("algorithm") not in (None, FINGERPRINT_ALGORITHM):
            warnings.warn(
                f"{store.path}: image fingerprint algorithm {fp.get('algorithm')!r} is unknown to this "
                "lplabel; only the image count and keys are checked",
                stacklevel=3,
            )
        else:
            fp_given = iset.fingerprint if iset is not None else fingerprint_images(images)
            if fp_given != fp_store:
                raise ImageSetMismatchError(
                    f"image fingerprint {fp_given[:16]} differs from the store's {fp_store[:16]} "
                    f"(key digests: given {_short(key_given)}, store {_short(key_store)}; algorithm "
                    f"{FINGERPRINT_ALGORITHM}). Different pixels, a different order, or a re-encoded copy",
                    path=store.path,
                    part="images",
                    hint=what,
                )
            return
    if key_given is not None and key_store is not None and key_given != key_store:
        raise ImageSetMismatchError(
            f"image key digest {key_given[:16]} differs from the store's {key_store[:16]} "
            "(the store has no content fingerprint, so keys are compared)",
            path=store.path,
            part="images",
            hint=what,
        )


def _policy_from_header(aug):
    from ..views import AugmentPolicy

    if not isinstance(aug, dict) or not aug:
        return None
    for cand in (aug, aug.get("policy")):
        if isinstance(cand, dict):
            try:
                return AugmentPolicy.from_json(cand)
            except (ValueError, TypeError):
                continue
    return None


def _as_image_source(images):
    """(ImageSet or None, pixel source for ImageBank) from what the user gave."""
    from ..views.replay import ImageBank

    if isinstance(images, (str, os.PathLike)):
        from ..datasets import load_image_folder

        images = load_image_folder(Path(images))
    if isinstance(images, ImageSet):
        return images, images.images
    if isinstance(images, ImageBank):
        return None, images
    return None, images


class StepDataset(torch.utils.data.Dataset):
    """Stored steps as batches (see the module doc).

    Parameters
    ----------
    store: a ``.lpl`` path or an open :class:`~lplabel.store.LabelStore`.
    images: the distilled set -- an :class:`~lplabel.images.ImageSet`, an ImageFolder path
        (loaded with :func:`lplabel.datasets.load_image_folder`), a uint8 array [N, H, W, C], a
        list of uint8 H×W×C arrays, or a prepared :class:`~lplabel.views.replay.ImageBank` -- or
        ``None`` for labels-only batches (views and labels, no pixels).
    policy: the :class:`~lplabel.views.AugmentPolicy` (output size, resize kernel, mix kind);
        default: the one in the store's header. Needed only to render images.
    labels: ``"dense"`` (``batch.probs`` [B, C] computed here), ``"sparse"`` (``batch.sparse``,
        top-k stores) or ``"raw"`` (only the stored block; convert later, e.g. on the GPU, with
        ``batch.dense()`` / ``batch.sparse_probs()``).
    temperature: label temperature when the key does not carry one (a number or a schedule
        ``epoch -> T``); the sampler's temperature normally wins.
    mode: reconstruction mode for top-k stores (``auto``/``renorm``/``tail``, see
        :mod:`lplabel.reconstruct`).
    render: render images here (True) or leave ``images`` None so the consumer renders them on its
        device (:meth:`render_batch`).
    apply_mix: replay the step's CutMix/MixUp on the rendered views (default). ``False`` returns
        unmixed views, for legacy loops that call their own ``mix_aug`` afterwards.
    normalize: the pixel convention of ``images`` (see :mod:`lplabel.torch.pixels`): ``"0-255"``
        (lplabel's rendering), ``"0-1"`` (``/255``, as ``ToTensor``), ``"imagenet"`` or ``(mean, std)``
        in 0..1 units (``ToTensor`` + ``transforms.Normalize(mean, std)``), applied after mixing,
        in the worker. ``None`` (not chosen): 0..255, with a warning when images are rendered and
        no ``transform`` is given. ``batch.pixels`` says which.
    transform: optional callable ``images -> images`` applied after mixing and ``normalize``;
        must be picklable when workers are spawned (``batch.pixels`` is then ``"custom"``).
    check_images: refuse an image set whose fingerprint/keys differ from the store's.
    cache_configs: keep the decoded config columns in memory (``"auto"``: when the store holds at
        most :data:`CONFIG_CACHE_RECORDS` records). Decoded in the constructing process so forked
        workers share them.
    read_labels: read the label column (default). ``False`` (``labels="raw"`` only): the views
        alone, ``batch.label`` empty -- for a label source that makes the labels itself
        (:mod:`lplabel.torch.label_sources`); no label chunk is read or decompressed.
    """

    def __init__(
        self,
        store,
        images=None,
        *,
        policy=None,
        labels: str = "dense",
        temperature=1.0,
        mode: str = "auto",
        render: bool = True,
        apply_mix: bool = True,
        transform=None,
        check_images: bool = True,
        cache_configs="auto",
        normalize=None,
        read_labels: bool = True,
    ):
        if normalize is None and images is not None and transform is None:
            warn_pixels_unset()
        self.normalize = parse_normalize(normalize)
        self.pixels = "custom" if transform is not None else self.normalize.kind
        self.store = _open(store)
        st = self.store
        if labels not in LABEL_FORMATS:
            raise ValueError(f"labels must be one of {LABEL_FORMATS}, got {labels!r}")
        self.label_format = labels
        if not read_labels and labels != "raw":
            raise ValueError(f"read_labels=False serves views without labels: labels must be 'raw', got {labels!r}")
        self.read_labels = bool(read_labels)
        self.temperature = as_temperature(temperature)
        if mode not in ("auto", "renorm", "tail", "uniform"):
            raise ValueError(f"unknown reconstruction mode {mode!r}")
        self.mode = mode
        self.apply_mix = bool(apply_mix)
        self.transform = transform
        pipe = st.pipelines["label"]
        if pipe.array_bytes.name == "rans":  # compile the coder here, once, so forked workers inherit it
            from ..codecs.rans import warm_up

            warm_up()
        if any(c.name == "entryorder" for c in pipe.array_array):  # the same for the tie-order loops
            from ..codecs.entryorder import warm_up as warm_up_entryorder

            warm_up_entryorder()
        self.tail_kind = tail_kind_of(pipe)
        self._field_types = {f.name: f.type for f in pipe.decoded_spec}
        self.is_topk = "indices" in self._field_types
        if labels == "sparse" and not self.is_topk:
            raise ValueError(
                f"{st.path}: labels='sparse' needs a top-k store; this store keeps dense logits "
                "(use labels='dense' or 'raw')"
            )
        if mode in ("tail", "uniform") and self.is_topk and "values" not in self._field_types:
            raise ReconstructError(
                f"reconstruction mode {mode!r} needs stored values and a tail summary; this "
                "store keeps class indices only (topk type 'none')",
                path=st.path,
                hint="use mode 'renorm' or 'auto' (the k stored classes share the mass equally)",
            )
        if mode in ("tail", "uniform") and self.is_topk and "tail" not in self._field_types:
            raise ValueError(
                f"{st.path}: reconstruction mode {mode!r} needs a stored tail summary; this store has "
                "none (use mode='renorm')"
            )

        if policy is None:
            policy = _policy_from_header(st.header.get("augmentation"))
        self.policy = policy
        self.mix_kind = policy.mix if policy is not None else "unknown"

        self.bank = None
        if images is not None:
            iset, source = _as_image_source(images)
            from ..views.replay import ImageBank

            if check_images:
                if isinstance(source, ImageBank):
                    raise ValueError(
                        "an ImageBank carries no fingerprint; pass the ImageSet/arrays, or check_images=False"
                    )
                check_image_set(st, iset if iset is not None else source)
            if policy is None:
                legacy = (st.header.get("extensions") or {}).get("legacy")
                how = (
                    (
                        "it was imported without --input-size: re-import with `lplabel import ... --input-size N` (the "
                        "relabel's --input-size), or pass policy=AugmentPolicy(output_size=N, mix=...)"
                    )
                    if legacy
                    else "pass policy=AugmentPolicy(...) (the relabeler's)"
                )
                raise ValueError(
                    f"{st.path}: the store's header names no augmentation policy, so views cannot be "
                    f"rendered; {how}, or images=None"
                )
            self.bank = source if isinstance(source, ImageBank) else ImageBank(source, "cpu")
            self.normalize.check_channels(self.bank.channels, str(st.path))
            if len(self.bank) != st.num_images:
                raise ImageSetMismatchError(
                    f"{len(self.bank)} images given, the store's labels are for {st.num_images}",
                    path=st.path,
                    part="images",
                )
        self.render = bool(render) and self.bank is not None

        # step tables as plain lists: indexing them costs ~30 ns instead of numpy's ~100 ns
        rs = st.record_start.astype(np.int64)
        cs = st.tables[L.CHUNK_STEP_START].astype(np.int64)
        chunk_of = np.searchsorted(cs, np.arange(st.num_steps), side="right") - 1
        self._rs = rs.tolist()
        self._chunk_of = chunk_of.tolist()
        self._chunk_rec0 = rs[cs[:-1]].tolist() if len(cs) > 1 else []
        self._epoch = st.step_epoch.tolist()
        self._step = st.step_index.tolist()
        self._lam = st.tables[L.STEP_MIX_LAMBDA].astype(np.float64).tolist()
        self._box = st.tables[L.STEP_MIX_BOX].astype(np.int64)
        self._classes = st.image_classes.astype(np.int64)
        if (
            policy is not None
            and policy.mix == "none"
            and st.num_steps
            and not np.all(np.isnan(st.tables[L.STEP_MIX_LAMBDA]))
        ):
            raise ValueError(f"{st.path}: the store has mixed steps but the policy says mix='none'")

        self._configs = None
        if cache_configs == "auto":
            cache_configs = st.num_records <= CONFIG_CACHE_RECORDS
        if cache_configs:
            self._configs = self._decode_configs()
        self._labels = LabelRows(st, "label")
        self._label_fields = self._labels.fields if self.read_labels else {}
        if self.read_labels and "label_generator" in (st.header.get("extensions") or {}):
            from .label_sources import LabelSourceWarning

            warnings.warn(
                f"{st.path}: this store's labels are made by its label generator (spec §12); its label "
                "column holds only top-1 class indices, which StepDataset reads here -- use "
                "ReplayLoader (it labels the views with the generator) or label_source='column' to "
                "mean the column",
                LabelSourceWarning,
                stacklevel=2,
            )
        self._max_views = int(np.diff(rs).max()) if st.num_steps else 0
        self._layouts: dict = {}
        self._pool = None  # a SlabPool set by ReplayLoader (forked workers decode into its slabs)
        self._ship_errors = False  # set by ReplayLoader: workers send lplabel errors as WorkerFailure items
        self._tls = threading.local()  # per-thread scratch of the dense probabilities

    def __getstate__(self):
        d = self.__dict__.copy()
        d["_pool"] = None  # shared slabs only reach forked workers; spawned ones pickle by value
        d["_layouts"] = {}
        d.pop("_tls", None)
        return d

    def __setstate__(self, d):
        self.__dict__.update(d)
        self._tls = threading.local()

    # -- reading ---------------------------------------------------------------------------------
    def _decode_configs(self) -> dict:
        st = self.store
        n_chunks = len(self._chunk_rec0)
        out = {}
        for name in L.CONFIG_COLUMNS:
            parts = [st.decode_chunk(name, c)[name] for c in range(n_chunks)]
            out[name] = np.concatenate(parts) if parts else np.zeros(0)
        return out

    def _views(self, pos: int):
        a, b = self._rs[pos], self._rs[pos + 1]
        cfg = self._configs
        if cfg is not None:
            return cfg["image"][a:b], cfg["crop"][a:b], cfg["flip"][a:b], cfg["mix_partner"][a:b]
        c = self._chunk_of[pos]
        r0 = self._chunk_rec0[c]
        st = self.store
        return tuple(st.decode_chunk(name, c)[name][a - r0 : b - r0] for name in L.CONFIG_COLUMNS)

    def __len__(self) -> int:
        return self.store.num_steps

    def _key(self, key):
        if isinstance(key, (StepKey, StepGroupKey)):
            return key
        if isinstance(key, tuple):
            return StepKey(*key)
        if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
            return StepKey(int(key))
        raise TypeError(
            f"StepDataset keys are stored-step positions, StepKey or StepGroupKey, got {type(key).__name__}"
        )

    def __getitem__(self, key):
        """One stored step as a :class:`StepBatch` (key: position or :class:`StepKey`), or a run of
        steps as one :class:`~lplabel.torch.group.StepGroup` (key: :class:`StepGroupKey`)."""
        key = self._key(key)
        if self._ship_errors:
            info = torch.utils.data.get_worker_info()
            if info is not None:
                try:
                    return self._get(key)
                except LplabelError as e:
                    import traceback

                    return WorkerFailure(e, traceback.format_exc(), f"in DataLoader worker process {info.id}")
        return self._get(key)

    def _get(self, key):
        if isinstance(key, StepGroupKey):
            return self.group(key)
        return self.group(StepGroupKey((key.position,), key.epoch, key.slot, key.temperature), shared=False).batches()[
            0
        ]

    # -- groups of steps -------------------------------------------------------------------------
    def _layout(self, g: int, r: int):
        """[(name, numpy dtype, shape, torch dtype or None, offset, nbytes)], total bytes."""
        hit = self._layouts.get((g, r))
        if hit is not None:
            return hit
        fields = [
            ("image_ids", np.dtype(np.int64), (r,), None),
            ("crop", np.dtype(np.float32), (r, 4), None),
            ("flip", np.dtype(bool), (r,), None),
            ("mix_partner", np.dtype(np.int64), (r,), None),
            ("target", np.dtype(np.int64), (r,), None),
            ("mix_box", np.dtype(np.int64), (g, 4), None),
        ]
        for name, (dt, shape, typ) in self._label_fields.items():
            fields.append((f"label/{name}", dt, (r, *shape), torch.bfloat16 if typ == "bfloat16" else None))
        if self.label_format == "dense":  # computed straight into the item's buffer
            fields.append(("probs", np.dtype(np.float32), (r, self.store.num_classes), None))
        out, off = [], 0
        for name, dt, shape, tdt in fields:
            off = -(-off // 64) * 64
            n = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
            out.append((name, dt, shape, tdt, off, n))
            off += n
        hit = (out, off)
        if len(self._layouts) < 64:
            self._layouts[(g, r)] = hit
        return hit

    def item_nbytes(self, steps: int = 1) -> int:
        """Upper bound of the bytes one item of ``steps`` steps ships (labels, configs, and the
        probabilities/images computed here): sizes shared-memory slabs."""
        g, r = steps, steps * self._max_views
        _, n = self._layout(g, r)
        if self.label_format == "sparse":
            k = self._labels.fields["indices"][1][0] if "indices" in self._labels.fields else 0
            n += r * k * 12 + r * 4 + 3 * 64 * g
        if self.render:
            s = self.policy.output_size
            n += g * (self._max_views * self.bank.channels * s * s * 4 + 64)
        return n

    def _resolve_temperature(self, t, epoch) -> float:
        if t is None or not (t == t):  # None or NaN: use the dataset's schedule
            t = float(self.temperature(max(int(epoch), 0)))
        return float(t)

    def group(self, key: StepGroupKey, shared: bool = True) -> StepGroup:
        """Decode the steps of ``key`` into one :class:`~lplabel.torch.group.StepGroup` (in a forked
        worker of a :class:`~lplabel.torch.ReplayLoader`, into a shared-memory slab unless
        ``shared=False``)."""
        positions = [int(p) for p in key.positions]
        n_steps = self.store.num_steps
        for pos in positions:
            if not 0 <= pos < n_steps:
                raise IndexError(f"stored step position {pos} outside 0..{n_steps - 1}")
        if not positions:
            raise ValueError("a StepGroupKey needs at least one position")
        epoch = int(key.epoch)
        t = self._resolve_temperature(key.temperature, epoch)
        if self.label_format != "raw" and not (t > 0 and math.isfinite(t)):
            raise ValueError(
                f"no valid temperature for this batch (got {t!r}); give the sampler a temperature "
                "schedule or pass temperature="
            )
        rs = self._rs
        sizes = [rs[p + 1] - rs[p] for p in positions]
        g, r = len(positions), sum(sizes)
        layout, total = self._layout(g, r)
        pool = self._pool if shared else None
        if pool is not None and not (pool.in_forked_child() and torch.utils.data.get_worker_info() is not None):
            pool = None
        slab = pool.claim(total) if pool is not None else None
        base = pool.array(slab) if slab is not None else np.empty(total, dtype=np.uint8)
        try:
            return self._build(positions, sizes, epoch, int(key.slot), t, layout, total, base, pool, slab)
        except BaseException:
            if slab is not None:  # never handed over: give the slab back
                pool.release(slab)
            raise

    def _build(self, positions, sizes, epoch, slot, t, layout, total, base, pool, slab) -> StepGroup:
        arrs = {name: base[off : off + n].view(dt).reshape(shape) for name, dt, shape, _, off, n in layout}
        tensors = {}
        for name, _, _, tdt, _, _ in layout:
            tt = torch.from_numpy(arrs[name])
            tensors[name] = tt if tdt is None else tt.view(tdt)
        fused = "probs" in tensors and "label/logits" in tensors
        self._fill(positions, sizes, arrs, self._dense_probs(tensors, t) if fused else None)
        if "probs" in tensors and not fused:
            block = {k[6:]: v for k, v in tensors.items() if k.startswith("label/")}
            dense_rows(block, sizes, tensors["probs"], self.store.num_classes, t, self.mode, self.tail_kind)
        meta = {
            "positions": positions,
            "sizes": sizes,
            "epoch": epoch,
            "slot": slot,
            "temperature": t,
            "stored_epoch": [self._epoch[p] for p in positions],
            "stored_step": [self._step[p] for p in positions],
            "mix_lambda": [self._lam[p] for p in positions],
            "mix_kind": self.mix_kind,
            "num_classes": self.store.num_classes,
            "label_format": self.label_format,
            "recon_mode": self.mode,
            "tail_kind": self.tail_kind,
            "pixels": self.pixels,
        }
        group = StepGroup(meta, tensors)
        if self.render:
            images, o = [], 0
            ids, crop, flip, partner, box = (
                tensors[k] for k in ("image_ids", "crop", "flip", "mix_partner", "mix_box")
            )
            for i, n in enumerate(sizes):
                images.append(
                    self._render(
                        self.bank,
                        ids[o : o + n],
                        crop[o : o + n],
                        flip[o : o + n],
                        partner[o : o + n],
                        meta["mix_lambda"][i],
                        box[i],
                    )
                )
                o += n
            group.per_step["images"] = images
        group.finalize()
        if pool is not None:  # a worker's item: pickling places the rest in the slab (or claims one)
            group._pool = pool
            if slab is not None:
                group._slab = slab
                group._placed = ({name: off for name, _, _, _, off, _ in layout}, total)
        return group

    def _dense_probs(self, tensors: dict, t: float):
        """``rows(o, n)``: probabilities at ``t`` of the dense logits rows o..o+n, written into the
        item's ``probs`` right after those rows were decoded (still in cache), in row blocks through
        a per-thread scratch: the values of :func:`~lplabel.torch.batch.probs_into` (row by row the
        same operations, so bit for bit those of ``lplabel.reconstruct.probs_torch``)."""
        logits, probs = tensors["label/logits"], tensors["probs"]
        c = self.store.num_classes
        rows = max(1, PROBS_BLOCK_BYTES // (4 * max(c, 1)))
        tls = self._tls
        scratch = getattr(tls, "scratch", None)
        if scratch is None or scratch.shape[0] < rows or scratch.shape[1] != c:
            scratch = tls.scratch = torch.empty((rows, c), dtype=torch.float32)
        mode, tk = self.mode, self.tail_kind

        def fill(o: int, n: int) -> None:
            for a in range(o, o + n, rows):
                b = min(a + rows, o + n)
                probs_into({"logits": logits[a:b]}, probs[a:b], c, t, mode, tk, scratch[: b - a])

        return fill

    def _fill(self, positions, sizes, a, label_rows=None) -> None:
        """Write the views, classes, mix boxes and label rows of ``positions`` into ``a``;
        ``label_rows(o, n)`` is called after rows o..o+n of the labels were written."""
        rs = self._rs
        cfg = self._configs
        g = len(positions)
        cols = (("image_ids", "image"), ("crop", "crop"), ("flip", "flip"), ("mix_partner", "mix_partner"))
        if cfg is not None and all(positions[i + 1] == positions[i] + 1 for i in range(g - 1)):
            r0, r1 = rs[positions[0]], rs[positions[-1] + 1]
            for dst, src in cols:
                np.copyto(a[dst], cfg[src][r0:r1], casting="unsafe")
        else:
            o = 0
            for pos, n in zip(positions, sizes):
                views = self._views(pos)
                for (dst, _), v in zip(cols, views):
                    np.copyto(a[dst][o : o + n], v, casting="unsafe")
                o += n
        np.take(self._classes, a["image_ids"], out=a["target"])
        np.take(self._box, positions, axis=0, out=a["mix_box"])
        dests = [(name, a[f"label/{name}"]) for name in self._label_fields]
        if not dests:  # views only (read_labels=False)
            return
        chunk_of, rec0 = self._chunk_of, self._chunk_rec0
        run = None  # [chunk, first row, end row, output offset]: consecutive rows of one chunk
        o = 0
        for pos, n in zip(positions, sizes):
            c = chunk_of[pos]
            lo = rs[pos] - rec0[c]
            if run is not None and run[0] == c and run[2] == lo:
                run[2] += n
            else:
                if run is not None:
                    self._read_rows(run, dests, label_rows)
                run = [c, lo, lo + n, o]
            o += n
        self._read_rows(run, dests, label_rows)

    def _read_rows(self, run, dests, label_rows=None) -> None:
        c, lo, hi, o = run
        self._labels.read(c, lo, hi, {name: d[o : o + hi - lo] for name, d in dests})
        if label_rows is not None:
            label_rows(o, hi - lo)

    # -- rendering ------------------------------------------------------------------------------
    def render_batch(self, batch: StepBatch, bank=None, views: StepBatch | None = None) -> StepBatch:
        """Render (and mix) ``batch``'s views into ``batch.images`` on ``bank``'s device (in place).

        ``bank`` defaults to this dataset's CPU bank; pass ``dataset.bank.to("cuda")`` (kept by
        the caller) to render on the GPU. ``views``: a CPU copy of the batch to read the view
        configs from (saves device-to-host syncs when ``batch`` already lives on the GPU).
        """
        bank = self.bank if bank is None else bank
        if bank is None:
            raise ValueError("this dataset has no images (labels-only)")
        v = batch if views is None else views
        batch.images = self._render(bank, v.image_ids, v.crop, v.flip, v.mix_partner, v.mix_lambda, v.mix_box)
        return batch

    def _render(self, bank, ids, crop, flip, partner, lam, box):
        from ..memory_format import network_input
        from ..views.replay import apply_mix, render_views

        imgs = network_input(render_views(bank, (ids, crop, flip), self.policy))
        if self.apply_mix and not math.isnan(lam):
            imgs = apply_mix(imgs, partner, lam, box, self.policy.mix, inplace=True)
        imgs = self.normalize(imgs)
        if self.transform is not None:
            imgs = self.transform(imgs)
        return imgs
