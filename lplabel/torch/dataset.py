"""A batch-level dataset: item = one stored step, replayed exactly (images + soft labels).

``StepDataset[key]`` reads one stored step of a label store and returns a
:class:`~lplabel.torch.batch.StepBatch`: the step's views rendered from the distilled images with
:mod:`lplabel.replay` (crop, bilinear resize, flip, then the step's CutMix/MixUp) -- the same
pixels the teacher labelled -- and the step's soft labels. ``key`` is a stored-step position
(int) or a :class:`~lplabel.torch.batch.StepKey` from :class:`~lplabel.torch.StepSampler`, which
also carries the training epoch and the label temperature, so workers hold no epoch state.

Use it with a stock ``torch.utils.data.DataLoader(dataset, batch_size=None, sampler=sampler)``:
one item is already a whole step (B views), so the DataLoader must not batch again.

Process model: the dataset holds a :class:`~lplabel.store.LabelStore` (no HDF5 handle; payload is
read with ``os.pread`` on a file descriptor each process opens for itself), numpy tables, and the
images as one uint8 :class:`~lplabel.replay.ImageBank` built once in the constructing process
(forked workers share its pages; spawned workers receive it through shared memory). It is safe
with any worker count, ``fork``/``spawn``/``forkserver``, and persistent workers.
"""
from __future__ import annotations

import math
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from ..errors import ImageSetMismatchError
from ..images import FINGERPRINT_ALGORITHM, ImageSet, fingerprint_images, keys_digest
from ..reconstruct import tail_kind_of
from ..schedule import as_temperature
from ..store import LabelStore
from ..store import layout as L
from .batch import LABEL_FORMATS, StepBatch, StepKey

#: Config columns are decoded once per process and kept in memory when the store holds at most
#: this many records (about 23 bytes each: image id, crop box, flip, mix partner).
CONFIG_CACHE_RECORDS = 4_000_000


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
    what = ("pass the image set the labels were made for (same images, same order), or relabel these images; "
            "check_images=False skips this check at your own risk")
    if n != want_n:
        raise ImageSetMismatchError(
            f"the image set has {n} images, the store's labels are for {want_n} "
            f"(store key digest {_short(key_store)}, given {_short(key_given)})",
            path=store.path, part="images", hint=what)
    if fp_store is not None:
        if isinstance(fp, dict) and fp.get("algorithm") not in (None, FINGERPRINT_ALGORITHM):
            warnings.warn(f"{store.path}: image fingerprint algorithm {fp.get('algorithm')!r} is unknown to this "
                          "lplabel; only the image count and keys are checked", stacklevel=3)
        else:
            fp_given = iset.fingerprint if iset is not None else fingerprint_images(images)
            if fp_given != fp_store:
                raise ImageSetMismatchError(
                    f"image fingerprint {fp_given[:16]} differs from the store's {fp_store[:16]} "
                    f"(key digests: given {_short(key_given)}, store {_short(key_store)}; algorithm "
                    f"{FINGERPRINT_ALGORITHM}). Different pixels, a different order, or a re-encoded copy",
                    path=store.path, part="images", hint=what)
            return
    if key_given is not None and key_store is not None and key_given != key_store:
        raise ImageSetMismatchError(
            f"image key digest {key_given[:16]} differs from the store's {key_store[:16]} "
            "(the store has no content fingerprint, so keys are compared)",
            path=store.path, part="images", hint=what)


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
    from ..replay import ImageBank

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
        list of uint8 H×W×C arrays, or a prepared :class:`~lplabel.replay.ImageBank` -- or
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
    transform: optional callable ``images -> images`` applied after mixing (e.g. normalisation);
        must be picklable when workers are spawned.
    check_images: refuse an image set whose fingerprint/keys differ from the store's.
    cache_configs: keep the decoded config columns in memory (``"auto"``: when the store holds at
        most :data:`CONFIG_CACHE_RECORDS` records). Decoded in the constructing process so forked
        workers share them.
    """

    def __init__(self, store, images=None, *, policy=None, labels: str = "dense", temperature=1.0,
                 mode: str = "auto", render: bool = True, apply_mix: bool = True, transform=None,
                 check_images: bool = True, cache_configs="auto"):
        self.store = _open(store)
        st = self.store
        if labels not in LABEL_FORMATS:
            raise ValueError(f"labels must be one of {LABEL_FORMATS}, got {labels!r}")
        self.label_format = labels
        self.temperature = as_temperature(temperature)
        if mode not in ("auto", "renorm", "tail", "uniform"):
            raise ValueError(f"unknown reconstruction mode {mode!r}")
        self.mode = mode
        self.apply_mix = bool(apply_mix)
        self.transform = transform
        pipe = st.pipelines["label"]
        self.tail_kind = tail_kind_of(pipe)
        self._field_types = {f.name: f.type for f in pipe.decoded_spec}
        self.is_topk = "indices" in self._field_types
        if labels == "sparse" and not self.is_topk:
            raise ValueError(f"{st.path}: labels='sparse' needs a top-k store; this store keeps dense logits "
                             "(use labels='dense' or 'raw')")
        if mode in ("tail", "uniform") and self.is_topk and "tail" not in self._field_types:
            raise ValueError(f"{st.path}: reconstruction mode {mode!r} needs a stored tail summary; this store has "
                             "none (use mode='renorm')")

        if policy is None:
            policy = _policy_from_header(st.header.get("augmentation"))
        self.policy = policy
        self.mix_kind = policy.mix if policy is not None else "unknown"

        self.bank = None
        if images is not None:
            iset, source = _as_image_source(images)
            from ..replay import ImageBank

            if check_images:
                if isinstance(source, ImageBank):
                    raise ValueError("an ImageBank carries no fingerprint; pass the ImageSet/arrays, or "
                                     "check_images=False")
                check_image_set(st, iset if iset is not None else source)
            if policy is None:
                raise ValueError(f"{st.path}: the store's header names no augmentation policy, so views cannot be "
                                 "rendered; pass policy=AugmentPolicy(...) (the relabeler's), or images=None")
            self.bank = source if isinstance(source, ImageBank) else ImageBank(source, "cpu")
            if len(self.bank) != st.num_images:
                raise ImageSetMismatchError(f"{len(self.bank)} images given, the store's labels are for "
                                            f"{st.num_images}", path=st.path, part="images")
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
        if policy is not None and policy.mix == "none" and st.num_steps and \
                not np.all(np.isnan(st.tables[L.STEP_MIX_LAMBDA])):
            raise ValueError(f"{st.path}: the store has mixed steps but the policy says mix='none'")

        self._configs = None
        if cache_configs == "auto":
            cache_configs = st.num_records <= CONFIG_CACHE_RECORDS
        if cache_configs:
            self._configs = self._decode_configs()

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
        return tuple(st.decode_chunk(name, c)[name][a - r0:b - r0] for name in L.CONFIG_COLUMNS)

    def _label_block(self, pos: int) -> dict:
        a, b = self._rs[pos], self._rs[pos + 1]
        c = self._chunk_of[pos]
        r0 = self._chunk_rec0[c]
        block = self.store.decode_chunk("label", c)
        out = {}
        for k, v in block.items():
            v = v[a - r0:b - r0]
            if k == "indices":  # int32: half the bytes of int64 in transit; widened where gathered
                t = torch.from_numpy(v.astype(np.int32))
            elif self._field_types.get(k) == "bfloat16":
                t = torch.from_numpy(np.array(v, dtype=np.uint16)).view(torch.bfloat16)
            else:
                t = torch.from_numpy(np.array(v))  # a copy: never alias the chunk cache
            out[k] = t
        return out

    def __len__(self) -> int:
        return self.store.num_steps

    def _key(self, key) -> StepKey:
        if isinstance(key, StepKey):
            return key
        if isinstance(key, tuple):
            return StepKey(*key)
        if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
            return StepKey(int(key))
        raise TypeError(f"StepDataset keys are stored-step positions or StepKey, got {type(key).__name__}")

    def __getitem__(self, key) -> StepBatch:
        key = self._key(key)
        pos = int(key.position)
        if not 0 <= pos < self.store.num_steps:
            raise IndexError(f"stored step position {pos} outside 0..{self.store.num_steps - 1}")
        t = key.temperature
        if t is None or not (t == t):  # None or NaN: use the dataset's schedule
            t = float(self.temperature(max(int(key.epoch), 0)))
        ids, crop, flip, partner = self._views(pos)
        ids64 = ids.astype(np.int64)
        lam = self._lam[pos]
        box = self._box[pos]
        batch = StepBatch(
            position=pos, epoch=int(key.epoch), slot=int(key.slot), stored_epoch=self._epoch[pos],
            stored_step=self._step[pos], temperature=float(t),
            image_ids=torch.from_numpy(ids64),
            crop=torch.from_numpy(crop.astype(np.float32)),
            flip=torch.from_numpy(np.array(flip, dtype=bool)),
            mix_partner=torch.from_numpy(partner.astype(np.int64)),
            mix_lambda=lam, mix_box=torch.from_numpy(box.copy()), mix_kind=self.mix_kind,
            target=torch.from_numpy(self._classes[ids64]),
            label=self._label_block(pos), num_classes=self.store.num_classes,
            label_format=self.label_format, recon_mode=self.mode, tail_kind=self.tail_kind,
        )
        if self.render:
            self.render_batch(batch)
        return batch.finalize()

    # -- rendering ------------------------------------------------------------------------------
    def render_batch(self, batch: StepBatch, bank=None, views: StepBatch | None = None) -> StepBatch:
        """Render (and mix) ``batch``'s views into ``batch.images`` on ``bank``'s device (in place).

        ``bank`` defaults to this dataset's CPU bank; pass ``dataset.bank.to("cuda")`` (kept by
        the caller) to render on the GPU. ``views``: a CPU copy of the batch to read the view
        configs from (saves device-to-host syncs when ``batch`` already lives on the GPU).
        """
        from ..replay import apply_mix, render_views

        bank = self.bank if bank is None else bank
        if bank is None:
            raise ValueError("this dataset has no images (labels-only)")
        v = batch if views is None else views
        imgs = render_views(bank, (v.image_ids, v.crop, v.flip), self.policy)
        if self.apply_mix and not math.isnan(v.mix_lambda):
            imgs = apply_mix(imgs, v.mix_partner, v.mix_lambda, v.mix_box, self.policy.mix, inplace=True)
        if self.transform is not None:
            imgs = self.transform(imgs)
        batch.images = imgs
        return batch
