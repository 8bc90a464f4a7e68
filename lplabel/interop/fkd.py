"""FKD (szq0214/FKD, FerKD): one file per image, a pool of crops per image, top-k probabilities.

Each ``<split>/<class>/<image>.tar`` holds ``torch.save([coords, flip, labels])`` of numpy
arrays: ``coords`` float16 [P, 4] (float32 without ``--use_fp16``), ``flip`` bool [P] and
``labels`` float16 [P, 2, k] = (class indices stored as floats, top-k probabilities
``softmax(z / T)``) for ``marginal_*_k<k>`` label types; ``smoothing`` stores [P, 2] (top-1),
``hard`` stores [P] (argmax). P = ``--num_crops`` (500).

Mapping (see docs/interop.md): FKD has no epochs or batches: it stores a *pool* of P views per
image and its loader draws ``num_crops`` of them at random each time it visits the image. The
store keeps that pool as it is: **one epoch, one step per image** (step i = image i, in sorted
path order, ``batch_size`` = P, every record of step i names image i), no mixing. Labels are a
top-k column; by default the probabilities are stored as **log-probabilities** in float32
(``log p``, so that the standard reconstruction ``softmax(values / T)`` over the top-k is exactly
FKD's ``marginal_renorm`` at T = 1, and anyone reading the values as logits at the recorded
temperature gets probabilities back); ``exp`` of the stored value rounds back to the original
float16 bits exactly (checked for every record during import). ``values="prob"`` stores the
probabilities themselves (2 bytes per value instead of 4) and marks the store with
``extensions.legacy.label_kind = "probabilities"``: such values are *not* logits.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..store import StoreWriter
from .common import (
    ImportReport,
    OutputDir,
    ExportReport,
    du_bytes,
    legacy_extension,
    legacy_info,
    plan_labels,
    settle_num_classes,
    progress_bar,
    resolve_images,
    visible,
)
from .errors import LegacyExportError, LegacyFormatError
from .safe_load import load_legacy_file
from .common import BATCH_RE

VALUE_MODES = ("logprob", "prob")
LABEL_TYPES = ("marginal", "smoothing", "hard")


def list_files(root: Path) -> list:
    """FKD label files below ``root``: relative paths (posix, without ``.tar``) in sorted order."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if visible(d)]
        for f in filenames:
            if not visible(f):
                continue
            if not f.endswith(".tar") or BATCH_RE.match(f):
                if f.endswith(".tar") or f.endswith(".json"):
                    raise LegacyFormatError(
                        f"unexpected file {f!r} in an FKD label tree",
                        path=Path(dirpath),
                        hint="FKD trees hold <class>/<image>.tar files only; batch files belong "
                        "to SRe2L/LPLD/LPQLD layouts",
                    )
                continue
            rel = Path(dirpath, f).relative_to(root).as_posix()[:-4]
            out.append(rel)
    out.sort(key=lambda r: tuple(r.split("/")))
    return out


def _fail(path, msg):
    raise LegacyFormatError(
        msg,
        path=path,
        hint="every FKD label file must have the structure of the first; is it from another run, or damaged?",
    )


def parse_file(obj, path):
    """(coords, flip, indices int64 [P, k], values [P, k] or None, signature) of one FKD file."""
    if not isinstance(obj, list) or len(obj) != 3:
        _fail(
            path,
            f"holds a {type(obj).__name__}{f' of {len(obj)} items' if isinstance(obj, list) else ''}; an FKD "
            "label file holds [coords, flip, labels]",
        )
    coords, flip, labels = obj
    for name, a in (("coords", coords), ("flip", flip), ("labels", labels)):
        if type(a) is not np.ndarray:
            _fail(path, f"{name} is a {type(a).__name__}, expected a numpy array")
    if coords.dtype.name not in ("float16", "float32") or coords.ndim != 2 or coords.shape[1] != 4:
        _fail(path, f"coords is {coords.dtype} {coords.shape}, expected float16/float32 [P, 4]")
    P = coords.shape[0]
    if flip.dtype != np.bool_ or flip.shape != (P,):
        _fail(path, f"flip is {flip.dtype} {flip.shape}, expected bool [{P}]")
    if labels.dtype.name not in ("float16", "float32", "int64"):
        _fail(path, f"labels have dtype {labels.dtype}, expected float16, float32 or int64")
    if labels.ndim == 3 and labels.shape[:2] == (P, 2):
        kind, idx, val = "marginal", labels[:, 0, :], labels[:, 1, :]
    elif labels.ndim == 2 and labels.shape == (P, 2):
        kind, idx, val = "smoothing", labels[:, :1], labels[:, 1:]
    elif labels.ndim == 1 and labels.shape == (P,):
        kind, idx, val = "hard", labels[:, None], None
    else:
        _fail(path, f"labels have shape {labels.shape}; expected [{P}, 2, k], [{P}, 2] or [{P}]")
    if not np.isfinite(coords).all():
        _fail(path, "coords hold non-finite values")
    idx64 = idx.astype(np.int64)
    if not np.array_equal(idx64, idx) or idx64.min() < 0:
        _fail(path, "class indices are not non-negative integers")
    if val is not None and (not np.isfinite(val).all() or val.min() < 0):
        _fail(path, "probabilities are negative or not finite")
    sig = {
        "coords_dtype": coords.dtype.name,
        "label_type": kind,
        "label_dtype": labels.dtype.name,
        "k": int(idx.shape[1]),
        "num_crops": int(P),
    }
    return coords, flip, idx64, val, sig


def _to_logprob(val: np.ndarray, path) -> np.ndarray:
    with np.errstate(divide="ignore"):
        lv = np.log(val.astype(np.float64)).astype(np.float32)
    back = np.exp(lv.astype(np.float64)).astype(val.dtype)
    if not np.array_equal(back.view(np.uint8), np.ascontiguousarray(val).view(np.uint8)):
        raise LegacyFormatError(
            "a probability does not survive log/exp in float32 exactly",
            path=path,
            hint="import with values='prob' (--fkd-values prob) to store the probabilities as they are",
        )
    return lv


@dataclass
class FkdPrepared:
    root: Path
    rels: list  # label files (relative, without .tar), in step order
    image_of: list  # image id of each file
    index: object  # ImageIndex
    num_classes: int
    sig: dict
    values: str
    first: tuple  # (relative path, parsed first file)
    ext: dict
    teacher: dict
    augmentation: dict
    notes: list


def prepare_fkd(
    root, *, images=None, num_images=None, num_classes=None, values: str = "logprob", temperature: float = 1.0
) -> FkdPrepared:
    """List an FKD tree, read its first file and settle the header facts."""
    from ..images import ImageIndex

    root = Path(root)
    if values not in VALUE_MODES:
        raise LegacyFormatError(f"unknown FKD value mode {values!r}; choose one of {VALUE_MODES}")
    rels = list_files(root)
    if not rels:
        raise LegacyFormatError("no FKD label files (<class>/<image>.tar)", path=root)
    first_path = root / (rels[0] + ".tar")
    first = (rels[0], parse_file(load_legacy_file(first_path, "fkd"), first_path))
    sig = first[1][4]
    if images is None:
        classes = sorted({r.split("/")[-2] if "/" in r else "" for r in rels})
        cls_of = {c: i for i, c in enumerate(classes)}
        index = ImageIndex(
            rels,
            np.asarray([cls_of[r.split("/")[-2] if "/" in r else ""] for r in rels]),
            None,
            classes if classes != [""] else [],
        )
        if num_images is not None and num_images != len(rels):
            raise LegacyFormatError(f"{len(rels)} label files, but num_images={num_images}", path=root)
        image_of = list(range(len(rels)))
        key_mode = {"mode": "label-path"}
    else:
        index = resolve_images(images, num_images, -1, root)
        by_stem = {}
        for i, key in enumerate(index.keys):
            parts = key.rsplit(".", 1)[0].split("/")
            by_stem["/".join(parts[-2:])] = i
        image_of, prefixes = [], set()
        for r in rels:
            parts = r.split("/")
            tail = "/".join(parts[-2:])
            if tail not in by_stem:
                raise LegacyFormatError(
                    f"label file {r}.tar has no image <class>/<name>.* in the given images", path=root
                )
            image_of.append(by_stem[tail])
            prefixes.add("/".join(parts[:-2]))
        if len(prefixes) != 1:
            raise LegacyFormatError(f"label files lie under several prefixes {sorted(prefixes)[:3]}", path=root)
        order = np.argsort(image_of, kind="stable")
        rels = [rels[j] for j in order]
        image_of = [image_of[j] for j in order]
        key_mode = {"mode": "image", "prefix": prefixes.pop()}
    notes = []
    C, note = settle_num_classes(num_classes, int(first[1][2].max()), index, images is not None, first_path)
    if note:
        notes.append(note)
    kind = "log_probabilities" if values == "logprob" else "probabilities"
    ext = {
        "must_understand": False,
        "signature": sig,
        "values": values,
        "label_kind": kind,
        "temperature": float(temperature),
        "files": len(rels),
        "keys": key_mode,
        "num_classes_inferred": "images" if num_classes is None else False,
    }
    desc = f"imported from FKD label files ({root.name}); values are " + (
        "log-probabilities log softmax(z/T): read them as logits at T"
        if values == "logprob"
        else "PROBABILITIES softmax(z/T), not logits (extensions.legacy.label_kind)"
    )
    return FkdPrepared(
        root=root,
        rels=rels,
        image_of=image_of,
        index=index,
        num_classes=C,
        sig=sig,
        values=values,
        first=first,
        ext=ext,
        teacher={"description": desc, "checksum": None, "temperature": float(temperature)},
        augmentation={
            "source": "legacy:fkd",
            "crop": "RandomResizedCrop coordinates as stored (source-image fractions)",
            "mix": "none",
            "views_per_image": sig["num_crops"],
        },
        notes=notes,
    )


def value_dtype(prep: FkdPrepared) -> str:
    if prep.values == "logprob":
        return "float32"
    return "float16" if prep.sig["label_dtype"] == "int64" else prep.sig["label_dtype"]


def iter_fkd(prep: FkdPrepared, positions=None):
    """Yield ``(step, path, coords, flip, indices int64 [P,k], values [P,k])`` per label file."""
    sig, C = prep.sig, prep.num_classes
    for n in range(len(prep.rels)) if positions is None else positions:
        n = int(n)
        rel, img = prep.rels[n], prep.image_of[n]
        path = prep.root / (rel + ".tar")
        if rel == prep.first[0]:
            coords, flip, idx, val, s = prep.first[1]
        else:
            coords, flip, idx, val, s = parse_file(load_legacy_file(path, "fkd"), path)
        if s != sig:
            diffs = "; ".join(
                f"{key}: {s.get(key)!r} here, {sig.get(key)!r} in the first file"
                for key in sorted(sig)
                if s.get(key) != sig.get(key)
            )
            raise LegacyFormatError(
                f"file differs from the first label file: {diffs}",
                path=path,
                hint="mixed directories (several runs or settings) cannot be imported",
            )
        if idx.max() >= C:
            raise LegacyFormatError(
                f"class index {int(idx.max())} >= {C} classes", path=path, hint="pass num_classes / --num-classes"
            )
        if val is None:
            vals = np.full(idx.shape, 0.0 if prep.values == "logprob" else 1.0, dtype=np.float32)
        else:
            vals = _to_logprob(val, path) if prep.values == "logprob" else val
        yield img, path, coords, flip, idx, vals


def import_fkd(
    root,
    out_path,
    *,
    codecs=None,
    force=False,
    progress=True,
    images=None,
    num_images=None,
    num_classes=None,
    values: str = "logprob",
    temperature: float = 1.0,
    steps_per_chunk: int | None = None,
    zstd_level: int = 3,
    **_,
) -> ImportReport:
    prep = prepare_fkd(
        root, images=images, num_images=num_images, num_classes=num_classes, values=values, temperature=temperature
    )
    P, k, N = prep.sig["num_crops"], prep.sig["k"], len(prep.index)
    label = plan_labels(
        "topk", value_dtype=value_dtype(prep), k=k, num_classes=prep.num_classes, codecs=codecs, level=zstd_level
    )
    ext = {
        "legacy": legacy_extension(
            "fkd", **{key: v for key, v in prep.ext.items() if key != "must_understand"}, lossless=label.lossless
        )
    }
    writer = StoreWriter(
        out_path,
        num_classes=prep.num_classes,
        images=prep.index,
        batch_size=P,
        epochs=1,
        steps_per_epoch=N,
        label_codecs=label.codecs,
        label_input=label.label_input,
        crop_type=prep.sig["coords_dtype"],
        augmentation=prep.augmentation,
        teacher=prep.teacher,
        extensions=ext,
        zstd_level=zstd_level,
        overwrite=force,
        # a step is one image's crops, which FKD-style training reads in shuffled order
        steps_per_chunk=steps_per_chunk or 1,
    )
    bar = progress_bar(len(prep.rels), "import fkd", progress, unit="file")
    try:
        for img, _, coords, flip, idx, vals in iter_fkd(prep):
            writer.write_step(
                0,
                img,
                image=np.full(P, img, dtype=np.int32),
                crop=coords,
                flip=flip,
                topk_indices=idx,
                topk_values=vals,
                mix_lambda=math.nan,
            )
            bar.update(1)
        writer.close()
    except BaseException:
        writer.abort()
        raise
    finally:
        bar.close()
    return ImportReport(
        layout="fkd",
        source=str(prep.root),
        output=str(out_path),
        files=len(prep.rels),
        steps=len(prep.rels),
        records=len(prep.rels) * P,
        epochs=1,
        steps_per_epoch=N,
        batch_size=P,
        num_classes=prep.num_classes,
        num_images=N,
        lossless=label.lossless,
        source_bytes=du_bytes(prep.root),
        output_bytes=du_bytes(out_path),
        notes=prep.notes,
    )


def export_fkd(store, out_dir, *, force=False, progress=True, **_) -> ExportReport:
    import torch

    leg = legacy_info(store)
    if not leg or leg.get("layout") != "fkd":
        raise LegacyExportError(
            "export --to fkd needs a store imported from FKD (one step of views per image)", path=store.path
        )
    sig, mode, keys = leg["signature"], leg.get("values", "logprob"), leg.get("keys", {"mode": "label-path"})
    ldt = np.dtype(sig["label_dtype"])
    names = store.image_keys
    files = 0
    from .batches import store_steps

    with OutputDir(out_dir, force) as od:
        for st in store_steps(store, progress, "export fkd"):
            img = int(st.image[0])
            if not (st.image == img).all():
                raise LegacyExportError(
                    f"step {st.step} holds several images; FKD files hold one image each", path=store.path
                )
            if keys.get("mode") == "image":
                parts = names[img].rsplit(".", 1)[0].split("/")
                rel = "/".join(p for p in (keys.get("prefix", ""), *parts[-2:]) if p)
            else:
                rel = names[img]
            idx = np.asarray(st.label["indices"]).astype(np.int64)
            vals = np.asarray(st.label["values"])
            if mode == "logprob":
                vals = np.exp(vals.astype(np.float64))
            if sig["label_type"] == "hard":
                labels = idx[:, 0].astype(ldt)
            elif sig["label_type"] == "smoothing":
                labels = np.stack([idx[:, 0].astype(ldt), vals[:, 0].astype(ldt)], axis=1)
            else:
                labels = np.stack([idx.astype(ldt), vals.astype(ldt)], axis=1)
            obj = [np.array(st.crop, dtype=sig["coords_dtype"]), np.array(st.flip, dtype=np.bool_), labels]
            path = od.tmp / (rel + ".tar")
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.save(obj, path)
            files += 1
        od.commit()
    return ExportReport(
        layout="fkd",
        store=str(store.path),
        output=str(out_dir),
        files=files,
        steps=store.num_steps,
        records=store.num_records,
    )
