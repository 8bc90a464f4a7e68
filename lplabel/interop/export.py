"""Write a label store back as a legacy directory that the original training scripts read unchanged.

* ``lpld``: ``epoch_<e>/batch_<s>.tar`` + ``sampler_indices_epoch.json`` (``{"<e>": ids}``).
* ``sre2l``: ``epoch_<e>/batch_<s>.tar``; the store's image order must be the one the SRe2L
  training script replays from its seeded ``RandomSampler`` (checked; else use ``lpld``).
* ``gvbsm``: as ``sre2l`` with the dataset indices as 7th item (and EDC's constant 8th item when
  the store came from EDC); G-VBSM reads the order from the files, so any order works.
* ``lpqld``: flat ``batch_<g>.tar`` for the stored steps numbered 0, 1, ... +
  ``sampler_indices_batch.json`` (``{"<g>": ids}``); top-k (``k``) or dense records.
* ``fkd``: see :mod:`lplabel.interop.fkd`.

Objects get exactly the legacy Python and tensor types: a store imported from a legacy layout
carries them in ``extensions.legacy.signature`` and is written back with them (a bit-exact round
trip); other stores get each layout's defaults (LPLD: float32 coords, int64 mix index, four
``numpy.int64`` for the box, fp16 logits; LPQLD: fp16 coords, uint8 mix index, four 0-d uint8
tensors, fp16 top-k values and int16 indices). Output is written under a temporary name and
renamed into place when complete.
"""

from __future__ import annotations

import math

import numpy as np

from .batches import label_arrays, store_steps
from .common import ExportReport, OutputDir, legacy_info
from .errors import LegacyExportError
from .jsonlists import JsonIntListsWriter
from .records import FIELDS, build_batch

EPOCH_LAYOUTS = ("lpld", "sre2l", "gvbsm")
EXPORT_LAYOUTS = ("lpld", "sre2l", "lpqld", "gvbsm", "fkd")
_FAMILY = {"lpld": "sre2l", "sre2l": "sre2l", "gvbsm": "gvbsm", "lpqld": "lpqld"}


def _store_mix(store) -> str:
    aug = store.header.get("augmentation") or {}
    mix = aug.get("mix")
    if mix in ("none", "cutmix", "mixup"):
        return mix
    lam = store.tables["steps/mix_lambda"]
    if not len(lam) or np.isnan(lam).all():
        return "none"
    boxes = store.tables["steps/mix_box"]
    return "cutmix" if np.any(boxes != 0) else "mixup"


def _dense_dtype(store) -> str | None:
    for f in store.pipelines["label"].decoded_spec:
        if f.name == "logits":
            return "float32" if f.type in ("float32", "bfloat16") else "float16"
    return None


def _topk_k(store) -> int | None:
    for f in store.pipelines["label"].decoded_spec:
        if f.name == "values":
            return int(f.shape[0]) if f.shape else 1
    return None


def target_signature(store, layout: str, k: int | None = None) -> dict:
    """The record signature used to write ``store`` in ``layout``."""
    leg = legacy_info(store)
    src = leg.get("layout") if leg else None
    sig = leg.get("signature") if leg else None
    if sig and src in _FAMILY and _FAMILY[src] == _FAMILY[layout] and (k is None or sig.get("k") == k):
        return dict(sig)
    mix = sig["mix"] if sig and sig.get("mix") else _store_mix(store)
    dense = _dense_dtype(store)
    if layout in EPOCH_LAYOUTS:
        if dense is None:
            raise LegacyExportError(
                f"the store keeps top-{_topk_k(store)} labels; {layout} needs the full logits",
                path=store.path,
                hint="export --to lpqld, which stores top-k logits",
            )
        out = {
            "fields": list(FIELDS[("gvbsm", 7)] if layout == "gvbsm" else FIELDS[("sre2l", 6)]),
            "coords_dtype": "float32",
            "mix": mix,
            "label_dtype": dense,
        }
        if layout == "gvbsm":
            out["image_dtype"] = "int64"
        if mix != "none":
            out["mix_index_dtype"] = "int64"
        if mix == "cutmix":
            out.update(bbox_type="numpy.int64", bbox_container="list")
        return out
    # lpqld
    kk = k if k is not None else _topk_k(store)
    out = {"coords_dtype": "float16", "mix": mix}
    if kk is None:
        out.update(fields=list(FIELDS[("lpqld", 6)]), label_dtype="float16")
    else:
        out.update(fields=list(FIELDS[("lpqld", 7)]), label_dtype="float16", index_dtype="int16", k=int(kk))
    if mix != "none":
        out["mix_index_dtype"] = "uint8"
    if mix == "cutmix":
        out.update(bbox_type="tensor.uint8", bbox_container="list")
    return out


def _check_step(st, sig: dict, store, B: int) -> None:
    where = f"epoch {st.epoch}, step {st.step}"
    mixed = not math.isnan(st.mix_lambda)
    if sig["mix"] == "none" and (mixed or np.any(st.mix_partner >= 0)):
        raise LegacyExportError("a mixed step in a store exported without mixing", path=store.path, part=where)
    if sig["mix"] != "none" and (not mixed or np.any(st.mix_partner < 0)):
        raise LegacyExportError(
            f"an unmixed step, but the legacy layout stores {sig['mix']} for every batch", path=store.path, part=where
        )
    if sig.get("mix_index_dtype") == "uint8" and len(st.mix_partner) > 256:
        raise LegacyExportError(
            "LPQLD stores the mix permutation as uint8; steps of more than 256 records do not fit",
            path=store.path,
            part=where,
        )
    if sig.get("bbox_type") == "tensor.uint8" and (np.any(st.mix_box < 0) or np.any(st.mix_box > 255)):
        raise LegacyExportError(
            "LPQLD stores the CutMix box as uint8; this box does not fit", path=store.path, part=where
        )


def _check_schedule(store, layout: str, allow_gaps: bool) -> None:
    """Epoch layouts: every epoch's stored steps are 0..n-1, epochs 0..E-1 (only the last may be short)."""
    if allow_gaps or not store.num_steps:
        return
    ep, stp = store.step_epoch, store.step_index
    epochs = np.unique(ep)
    if not np.array_equal(epochs, np.arange(len(epochs))):
        raise LegacyExportError(
            f"the store holds epochs {epochs[:8].tolist()}..., not 0..{len(epochs) - 1}",
            path=store.path,
            hint="the legacy training scripts read epochs from 0 on; pass "
            "allow_gaps/--allow-gaps to write the stored steps anyway",
        )
    spe = store.steps_per_epoch
    for e in epochs:
        s = stp[ep == e]
        full = len(s) == spe or (layout == "lpld" and e == epochs[-1])
        if not np.array_equal(s, np.arange(len(s))) or not full:
            raise LegacyExportError(
                f"epoch {int(e)} holds steps {s[:8].tolist()}... of 0..{spe - 1}",
                path=store.path,
                hint=f"{layout} directories hold whole epochs (LPLD: a prefix of batches); "
                "export --to lpqld for a pruned pool, or pass --allow-gaps",
            )


class ExportLosses:
    """Every lossy step of one export, for its report's notes (lplabel never narrows silently).

    Static steps (top-k of dense logits, fewer entries, a dropped tail summary) are known from the
    store's chain and the target signature; casts (labels or crops to float16) are counted value by
    value as the steps are written, so a note says how many values the cast changed (0: exact).
    """

    def __init__(self, store, sig: dict):
        pipe = store.pipelines["label"]
        dec = {f.name: f for f in pipe.decoded_spec}
        self.sig = sig
        self.notes: list = []
        quant = [c for c in pipe.codecs if c.name == "quantize"]
        field = dec.get("logits") or dec.get("values")
        self.src_type = field.type if field is not None else None
        if quant:
            self.src_type = f"float32 (dequantized {quant[0].bits}-bit codes)"
        self.dst_type = sig.get("label_dtype")
        topk_out = "logits" not in sig["fields"]
        if topk_out and "logits" in dec:
            self.notes.append(
                f"keeps the top {sig['k']} of {store.num_classes} logits of each record (torch.topk "
                "on the float32-widened logits); the other classes are dropped"
            )
        elif topk_out and "values" in dec and dec["values"].shape[0] > sig["k"]:
            self.notes.append(
                f"keeps {sig['k']} of the {dec['values'].shape[0]} stored entries of each record (the largest values)"
            )
        if topk_out and "tail" in dec:
            from ..reconstruct import tail_kind_of

            self.notes.append(
                f"drops the store's {tail_kind_of(pipe)} tail summary: LPQLD records have no place "
                "for it (what it said about the dropped classes is lost)"
            )
        crop_t = store.header["columns"]["crop"]["input"][0]["type"]
        self.crop_cast = crop_t if crop_t != sig["coords_dtype"] else None
        self.total = self.changed = self.overflow = self.crop_total = self.crop_changed = 0

    def add(self, st, arrays: dict) -> None:
        if self.dst_type == "float16" and self.src_type != "float16":
            for name in ("logits", "values"):
                if name in arrays:
                    a = np.asarray(arrays[name], dtype=np.float32)
                    h = a.astype(np.float16).astype(np.float32)
                    same = (h == a) | (np.isnan(h) & np.isnan(a))
                    self.total += a.size
                    self.changed += int(a.size - np.count_nonzero(same))
                    self.overflow += int(np.count_nonzero(np.isinf(h) & ~np.isinf(a)))
        if self.crop_cast is not None and self.sig["coords_dtype"] == "float16":
            c = np.asarray(st.crop, dtype=np.float32)
            self.crop_total += c.size
            self.crop_changed += int(c.size - np.count_nonzero(c.astype(np.float16).astype(np.float32) == c))

    def check_indices(self, arrays: dict, store, where: str) -> None:
        dt = self.sig.get("index_dtype")
        if dt and "indices" in arrays and arrays["indices"].size:
            top = int(np.max(arrays["indices"]))
            if top > np.iinfo(np.dtype(dt)).max:
                raise LegacyExportError(
                    f"class index {top} does not fit the legacy {dt} indices",
                    path=store.path,
                    part=where,
                    hint="LPQLD stores class indices as int16 (C <= 32768)",
                )

    def result(self) -> list:
        out = list(self.notes)
        if self.total:
            what = (
                f"{self.changed:,} of {self.total:,} values rounded"
                if self.changed
                else f"exact: all {self.total:,} values are float16 numbers"
            )
            if self.overflow:
                what += f", {self.overflow:,} beyond float16's range became inf"
            out.append(f"label values {self.src_type} -> float16 (the legacy dtype): {what}")
        if self.crop_total:
            out.append(
                f"crop boxes {self.crop_cast} -> float16 (LPQLD's coords): "
                + (f"{self.crop_changed:,} of {self.crop_total:,} numbers rounded" if self.crop_changed else "exact")
            )
        return out


def export_legacy_store(
    store,
    out_dir,
    layout: str,
    *,
    force=False,
    progress=True,
    k=None,
    seed=None,
    replay=None,
    allow_gaps=False,
    plain_ints=False,
) -> ExportReport:
    import torch

    if not any(f.name in ("logits", "values") for f in store.pipelines["label"].decoded_spec):
        raise LegacyExportError(
            "the store keeps top-k class indices only (topk type 'none'); every legacy layout "
            "stores logits or probabilities, which cannot be invented",
            path=store.path,
            hint="export the store these labels were quantized from",
        )
    if layout == "fkd":
        from .fkd import export_fkd

        return export_fkd(store, out_dir, force=force, progress=progress)
    if layout not in EXPORT_LAYOUTS:
        raise LegacyExportError(f"unknown legacy layout {layout!r}", hint=f"choose one of {', '.join(EXPORT_LAYOUTS)}")
    sig = target_signature(store, layout, k)
    notes = []
    losses = ExportLosses(store, sig)
    if plain_ints and sig.get("bbox_type") == "numpy.int64":
        sig["bbox_type"] = "int"
        notes.append(
            "CutMix boxes written as Python ints instead of numpy.int64, so torch.load's default "
            "weights_only=True (torch >= 2.6) reads the files"
        )
    if layout in EPOCH_LAYOUTS:
        _check_schedule(store, layout, allow_gaps)
    B = store.batch_size
    order = None
    if layout == "sre2l":
        from .sre2l import sampler_order

        leg = legacy_info(store) or {}
        rep = (leg.get("order") or {}) if leg.get("layout") == "sre2l" else {}
        if rep.get("source") == "replay":  # the seed and mode the store was imported with, unless overridden
            seed = rep.get("seed", 42) if seed is None else seed
            replay = rep.get("mode", "torch>=1.11") if replay is None else replay
        seed = 42 if seed is None else seed
        replay = "torch>=1.11" if replay is None else replay
        E = int(store.step_epoch.max()) + 1 if store.num_steps else 0
        order = sampler_order(store.num_images, E, seed, replay)
        notes.append(f"image order checked against RandomSampler(seed={seed}) replay ({replay})")
    files = 0
    with OutputDir(out_dir, force) as od:
        jw = None
        if layout == "lpld":
            jw = JsonIntListsWriter(od.tmp / "sampler_indices_epoch.json")
        elif layout == "lpqld":
            jw = JsonIntListsWriter(od.tmp / "sampler_indices_batch.json")
        try:
            cur, perm = -1, None
            for st in store_steps(store, progress, f"export {layout}"):
                _check_step(st, sig, store, B)
                if layout in EPOCH_LAYOUTS:
                    folder = od.tmp / f"epoch_{st.epoch}"
                    if st.epoch != cur:
                        folder.mkdir()
                        if jw is not None:
                            jw.begin(str(st.epoch))
                        if order is not None:
                            while cur < st.epoch:
                                perm = next(order)
                                cur += 1
                        cur = st.epoch
                    path = folder / f"batch_{st.step}.tar"
                    if order is not None:
                        want = perm[st.step * B : st.step * B + len(st.image)]
                        if not np.array_equal(want, st.image):
                            raise LegacyExportError(
                                "the store's image order is not the one SRe2L's training script replays from "
                                f"RandomSampler(seed={seed})",
                                path=store.path,
                                part=f"epoch {st.epoch}, step {st.step}",
                                hint="export --to lpld (which stores the order in its JSON) or --to gvbsm",
                            )
                else:
                    path = od.tmp / f"batch_{files}.tar"
                    jw.begin(str(files))
                if jw is not None:
                    jw.extend(st.image)
                arrays = label_arrays(st, sig)
                losses.check_indices(arrays, store, f"epoch {st.epoch}, step {st.step}")
                losses.add(st, arrays)
                obj = build_batch(
                    sig,
                    crop=st.crop,
                    flip=st.flip,
                    mix_partner=st.mix_partner,
                    mix_lambda=st.mix_lambda,
                    mix_box=st.mix_box,
                    image=st.image,
                    **arrays,
                )
                torch.save(obj, path)
                files += 1
            if jw is not None:
                jw.close()
        except BaseException:
            if jw is not None:
                jw.abort()
            raise
        od.commit()
    return ExportReport(
        layout=layout,
        store=str(store.path),
        output=str(out_dir),
        files=files,
        steps=store.num_steps,
        records=store.num_records,
        notes=notes + losses.result(),
    )
