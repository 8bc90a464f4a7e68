"""Streaming import and export of the per-batch layouts (SRe2L, LPLD, LPQLD, G-VBSM/EDC).

Each layout module turns a directory into a :class:`BatchPlan` (which file is which
``(epoch, step)``, where each record's image id comes from, the schedule); :func:`run_import`
then reads one batch file at a time, validates it against the first file's signature and the
schedule, and writes it to a :class:`~lplabel.store.StoreWriter` (atomic: any error or
interrupt leaves no output). :func:`iter_export_steps` walks a store for the exporters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..store import StoreWriter
from ..selection.schedule import default_steps_per_chunk
from .common import (
    ImportReport,
    du_bytes,
    legacy_extension,
    plan_labels,
    progress_bar,
    resolve_images,
    settle_num_classes,
)
from .errors import LegacyFormatError
from .records import Batch, check_same_signature, parse_batch
from .safe_load import load_legacy_file


@dataclass
class BatchPlan:
    """What a layout module found in a directory, before any label is copied."""

    layout: str
    family: str  # record family for parse_batch: sre2l | lpqld | gvbsm
    root: Path
    files: list  # [(epoch, step, path)] in increasing (epoch, step) order
    steps_per_epoch: int
    epochs: int
    batch_size: int
    last_batch_size: int  # size of step steps_per_epoch-1 (== batch_size with drop_last)
    num_images: int | None  # N when the layout fixes it (else from the ids / --num-images)
    max_image: int  # largest image id the plan's ids use (-1 when read from the files)
    ids: Callable | None  # (epoch, step, batch) -> int array of the step's image ids
    drop_last: bool
    num_images_exact: bool = True  # False: N was inferred (largest index + 1), an image folder may hold more
    seed: object = None
    facts: dict = field(default_factory=dict)  # extra facts for the legacy extension
    epoch_end: Callable | None = None  # (epoch, consumed) -> None; checks an epoch's total
    notes: list = field(default_factory=list)
    first: Batch | None = None


def load_batch(path, family: str) -> Batch:
    return parse_batch(load_legacy_file(path, "batch"), path, family)


def _augmentation(layout: str, sig: dict, input_size) -> dict:
    aug = {
        "source": f"legacy:{layout}",
        "crop": "RandomResizedCrop coordinates as stored (source-image fractions)",
        "mix": sig["mix"],
    }
    if input_size is not None:
        from ..views import AugmentPolicy

        aug["output_size"] = int(input_size)
        aug["policy"] = AugmentPolicy(output_size=int(input_size), mix=sig["mix"]).to_json()
    return aug


@dataclass
class Prepared:
    """A plan plus what the header needs: classes, images, signature, label kind."""

    plan: BatchPlan
    first: Batch
    sig: dict
    num_classes: int
    index: object  # ImageIndex
    kind: str  # "dense" | "topk"
    facts: dict
    teacher: dict
    augmentation: dict

    @property
    def num_images(self) -> int:
        return len(self.index)

    def extension(self, **more) -> dict:
        facts = dict(self.facts)
        facts.update(more)
        return {"legacy": legacy_extension(self.plan.layout, **facts)}


def prepare(
    plan: BatchPlan, *, images=None, num_images=None, num_classes=None, input_size=None, teacher: dict | None = None
) -> Prepared:
    """Settle C, the image index and the header facts of ``plan`` (reads only the first file)."""
    first = plan.first or load_batch(plan.files[0][2], plan.family)
    sig = first.sig
    B = plan.batch_size
    if first.size != B:
        raise LegacyFormatError(
            f"the first batch holds {first.size} records, the plan expects {B}", path=plan.files[0][2]
        )
    used_max = int(first.image.max()) if plan.family == "gvbsm" else plan.max_image
    if num_images is not None:
        n_img = num_images
    elif plan.num_images_exact or images is None:
        n_img = plan.num_images
    else:
        n_img = None
    index = resolve_images(images, n_img, used_max, plan.root)
    if first.logits is not None:
        C = first.num_classes
        if num_classes is not None and int(num_classes) != C:
            raise LegacyFormatError(
                f"the soft labels have {C} classes, not num_classes={num_classes}", path=plan.files[0][2]
            )
    else:
        C, note = settle_num_classes(num_classes, int(first.indices.max()), index, images is not None, plan.files[0][2])
        if note:
            plan.facts["num_classes_inferred"] = "images"
            plan.notes.append(note)
    if not plan.num_images_exact and plan.last_batch_size == B:
        plan.drop_last = plan.steps_per_epoch * B < len(index)
    facts = dict(plan.facts)
    facts.update({"signature": sig, "files": len(plan.files), "batch_size": B, "last_batch_size": plan.last_batch_size})
    teacher_hdr = {
        "description": f"imported from {plan.layout} label files ({plan.root.name}); teacher not recorded in them",
        "checksum": None,
        "temperature": 1.0,
    }
    teacher_hdr.update(teacher or {})
    return Prepared(
        plan=plan,
        first=first,
        sig=sig,
        num_classes=C,
        index=index,
        kind="dense" if first.logits is not None else "topk",
        facts=facts,
        teacher=teacher_hdr,
        augmentation=_augmentation(plan.layout, sig, input_size),
    )


@dataclass
class Step:
    """One validated legacy batch, ready to write."""

    epoch: int
    step: int
    path: Path
    image: np.ndarray  # int32 [b]
    batch: Batch

    @property
    def mix_partner(self) -> np.ndarray:
        b = self.batch
        return np.full(b.size, -1, np.int16) if b.mix_index is None else b.mix_index.astype(np.int16)

    @property
    def mix_lambda(self) -> float:
        return math.nan if self.batch.mix_lam is None else float(self.batch.mix_lam)

    @property
    def mix_box(self) -> np.ndarray:
        return np.zeros(4, np.int16) if self.batch.mix_box is None else self.batch.mix_box.astype(np.int16)


def iter_steps(prep: Prepared, positions=None):
    """Load, validate and yield the plan's batches (all, in order; or those at ``positions``).

    Every batch is checked against the first one's signature, the schedule's batch sizes, the
    class count and its image ids; a full pass also checks that no image repeats within an
    epoch and each epoch's total (LPLD's JSON).
    """
    plan, sig, C, N = prep.plan, prep.sig, prep.num_classes, prep.num_images
    B = plan.batch_size
    full = positions is None
    seen = np.zeros(N, dtype=bool) if full else None
    cur_epoch, consumed = -1, 0
    for i in range(len(plan.files)) if full else positions:
        i = int(i)
        epoch, step, path = plan.files[i]
        batch = prep.first if i == 0 else load_batch(path, plan.family)
        if i:
            check_same_signature(batch.sig, sig, path)
        if full and epoch != cur_epoch:
            if cur_epoch >= 0 and plan.epoch_end is not None:
                plan.epoch_end(cur_epoch, consumed)
            cur_epoch, consumed = epoch, 0
            seen[:] = False
        expect = B if step < plan.steps_per_epoch - 1 else plan.last_batch_size
        if batch.size != expect:
            raise LegacyFormatError(
                f"holds {batch.size} records; batch {step} of an epoch of {plan.steps_per_epoch} batches must hold "
                f"{expect}",
                path=path,
                hint="inconsistent batch sizes: the directory mixes runs with different batch sizes or is damaged",
            )
        if batch.logits is not None and batch.logits.shape[1] != C:
            raise LegacyFormatError(
                f"soft labels have {batch.logits.shape[1]} classes, the first batch has {C}", path=path
            )
        if batch.indices is not None and batch.indices.max() >= C:
            raise LegacyFormatError(
                f"top-k index {int(batch.indices.max())} >= {C} classes", path=path, hint="pass --num-classes"
            )
        ids = batch.image if plan.ids is None else plan.ids(epoch, step, batch)
        ids = np.asarray(ids, dtype=np.int64)
        if ids.shape != (batch.size,):
            raise LegacyFormatError(
                f"{len(ids)} image indices for {batch.size} records",
                path=path,
                hint="the sampler indices do not match the batch files",
            )
        if ids.min() < 0 or ids.max() >= N:
            raise LegacyFormatError(
                f"image index {int(ids.max() if ids.max() >= N else ids.min())} outside 0..{N - 1}",
                path=path,
                hint="pass --num-images or the image folder",
            )
        repeated = len(np.unique(ids)) != len(ids) or (full and seen[ids].any())
        if repeated:
            dup = int(ids[seen[ids]][0]) if full and seen[ids].any() else int(np.argmax(np.bincount(ids)))
            raise LegacyFormatError(
                f"image {dup} appears twice in epoch {epoch}",
                path=path,
                hint="an epoch must visit each image at most once; the order does not match "
                "these files (wrong seed, order file or mixed directories?)",
            )
        if full:
            seen[ids] = True
            consumed += batch.size
        yield Step(epoch, step, path, ids.astype(np.int32), batch)
    if full and plan.epoch_end is not None and cur_epoch >= 0:
        plan.epoch_end(cur_epoch, consumed)


def run_import(
    plan: BatchPlan,
    out_path,
    *,
    codecs=None,
    force=False,
    progress=True,
    images=None,
    num_images=None,
    num_classes=None,
    input_size=None,
    steps_per_chunk=None,
    zstd_level=3,
    teacher: dict | None = None,
) -> ImportReport:
    prep = prepare(
        plan, images=images, num_images=num_images, num_classes=num_classes, input_size=input_size, teacher=teacher
    )
    sig, C, B = prep.sig, prep.num_classes, plan.batch_size
    label = plan_labels(
        prep.kind, value_dtype=sig["label_dtype"], k=sig.get("k"), num_classes=C, codecs=codecs, level=zstd_level
    )
    writer = StoreWriter(
        out_path,
        num_classes=C,
        images=prep.index,
        batch_size=B,
        epochs=plan.epochs,
        steps_per_epoch=plan.steps_per_epoch,
        drop_last=plan.drop_last,
        label_codecs=label.codecs,
        label_input=label.label_input,
        crop_type=sig["coords_dtype"],
        augmentation=prep.augmentation,
        teacher=prep.teacher,
        seed=plan.seed,
        extensions=prep.extension(lossless=label.lossless),
        steps_per_chunk=steps_per_chunk or default_steps_per_chunk(None),  # a full store
        zstd_level=zstd_level,
        overwrite=force,
    )
    bar = progress_bar(len(plan.files), f"import {plan.layout}", progress, unit="file")
    records = 0
    try:
        for st in iter_steps(prep):
            b = st.batch
            kw = {"logits": b.logits} if b.logits is not None else {"topk_indices": b.indices, "topk_values": b.values}
            writer.write_step(
                st.epoch,
                st.step,
                image=st.image,
                crop=b.coords,
                flip=b.flip,
                mix_partner=st.mix_partner,
                mix_lambda=st.mix_lambda,
                mix_box=st.mix_box,
                **kw,
            )
            records += b.size
            bar.update(1)
        writer.close()
    except BaseException:
        writer.abort()
        raise
    finally:
        bar.close()
    return ImportReport(
        layout=plan.layout,
        source=str(plan.root),
        output=str(out_path),
        files=len(plan.files),
        steps=len(plan.files),
        records=records,
        epochs=plan.epochs,
        steps_per_epoch=plan.steps_per_epoch,
        batch_size=B,
        num_classes=C,
        num_images=prep.num_images,
        lossless=label.lossless,
        source_bytes=du_bytes(plan.root),
        output_bytes=du_bytes(out_path),
        notes=list(plan.notes),
    )


# ----------------------------------------------------------------------------------- export
def store_steps(store, progress: bool, desc: str):
    """Yield every stored step (decoded) with a progress bar."""
    bar = progress_bar(store.num_steps, desc, progress, unit="step")
    try:
        for i in range(store.num_steps):
            yield store.step_at(i)
            bar.update(1)
    finally:
        bar.close()


def label_arrays(st, sig: dict, *, k: int | None = None) -> dict:
    """The legacy label arrays of a stored step for signature ``sig`` (dense or top-k)."""
    from .errors import LegacyExportError

    lab = st.label
    if "logits" in sig["fields"]:
        if "logits" not in lab:
            raise LegacyExportError(
                "the store keeps top-k labels, this layout needs the full logits",
                hint="export --to lpqld (top-k), or export a dense store",
            )
        return {"logits": lab["logits"]}
    kk = sig["k"]
    if "logits" in lab:
        import torch

        z = torch.from_numpy(np.asarray(lab["logits"], dtype=np.float32))
        top = torch.topk(z, kk, dim=1)
        return {"values": top.values.numpy(), "indices": top.indices.numpy()}
    vals, idx = np.asarray(lab["values"]), np.asarray(lab["indices"])
    if vals.shape[1] < kk:
        raise LegacyExportError(f"the store keeps top-{vals.shape[1]} labels, cannot write top-{kk}")
    if vals.shape[1] > kk:
        order = np.argsort(-vals.astype(np.float64), axis=1, kind="stable")[:, :kk]
        vals, idx = np.take_along_axis(vals, order, 1), np.take_along_axis(idx, order, 1)
    return {"values": vals, "indices": idx}
