"""Join shard stores (work-directory parts, or ``.lpl`` shards) into one label store.

The merged store holds every step of the inputs in increasing (epoch, step) order, with the
header of the inputs (images, schedule, augmentation, teacher, seed, selection) and the run's
final label codec chain, so a run split over ranks, resumed, or done in one go gives the same
store (only the ``created`` time differs). Inputs must agree on everything but their steps, and
their steps must be disjoint. Work directories also say which steps the run planned, so missing
parts are reported instead of silently producing a store with holes.

Labels are decoded from the inputs and encoded again with the final chain: parts keep either the
final representation (dense or top-k: re-encoding stored values stores them unchanged) or dense
float32 logits (chains that need the dense logits, e.g. a top-k tail summary); see
:mod:`lplabel.relabel.labels`. View columns stay derived when the inputs derive them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..codecs import get_codec
from ..errors import LplabelError
from ..images import ImageIndex
from ..store import LabelColumn, LabelStore, StoreLayout, StoreWriter, ViewColumns
from .errors import MergeError, OutputExistsError
from .labels import label_input_from_spec, label_kwargs, refeedable
from .plan import rle_decode
from .workdir import WorkDir, _canon, _diff_keys

#: Header fields every input must share (the steps and counts are what differ).
SHARED_HEADER_FIELDS = (
    "num_classes",
    "num_images",
    "images",
    "epochs",
    "steps_per_epoch",
    "batch_size",
    "drop_last",
    "augmentation",
    "teacher",
    "seed",
    "selection",
    "extensions",
    "columns",
)


def _collect(sources):
    paths, manifests = [], []
    for s in sources:
        p = Path(s)
        if p.is_dir():
            wd = WorkDir(p)
            if not wd.exists():
                raise MergeError(
                    "directory is not a relabel work directory (no manifest.json)",
                    path=p,
                    hint="give work directories (OUT.lpl.partial) or .lpl shard files",
                )
            manifests.append((p, wd.read_manifest()))
            paths += [wd.part_path(j) for j in sorted(wd.finished_parts())]
        elif p.is_file():
            paths.append(p)
        else:
            raise MergeError("no such file or directory", path=p)
    return paths, manifests


def merge(
    sources: Sequence,
    out,
    *,
    force: bool = False,
    allow_incomplete: bool = False,
    progress: bool | None = None,
    log: Callable[[str], None] | None = None,
) -> Path:
    """Merge ``sources`` (work directories and/or ``.lpl`` shards) into the store ``out``.

    ``force``: replace an existing ``out`` (only once the new store is complete).
    ``allow_incomplete``: write what is there even when work-directory manifests name steps
    that no part holds. Raises :class:`MergeError` on disagreeing, overlapping or missing input.
    """
    out = Path(out)
    if out.exists() and not force:
        raise OutputExistsError("output exists", path=out, hint="choose another name or pass --force")
    paths, manifests = _collect(sources)
    if not paths:
        raise MergeError(
            "nothing to merge: no finished parts or shards",
            path=sources[0] if sources else None,
            hint="run (or resume) the relabel first",
        )
    final = None
    if manifests:
        ref_dir, ref = manifests[0]
        for d, m in manifests[1:]:
            diff = _diff_keys(
                {k: ref.get(k) for k in ("config", "plan", "final")}, {k: m.get(k) for k in ("config", "plan", "final")}
            )
            if diff:
                raise MergeError(
                    f"work directories {ref_dir} and {d} belong to different runs (differ in {', '.join(diff[:5])})"
                )
        final = ref["final"]

    stores = []
    try:
        for p in paths:
            try:
                stores.append(LabelStore(p))
            except LplabelError as e:
                raise MergeError(f"cannot open shard: {e.message}", path=p, part=e.part, hint=e.hint) from None
        h0 = stores[0].header
        ref_classes = stores[0].image_classes
        for st in stores[1:]:
            bad = [k for k in SHARED_HEADER_FIELDS if _canon(st.header.get(k)) != _canon(h0.get(k))]
            if not np.array_equal(st.image_classes, ref_classes):
                bad.append("image classes")
            if (st.image_sizes is None) != (stores[0].image_sizes is None) or (
                st.image_sizes is not None and not np.array_equal(st.image_sizes, stores[0].image_sizes)
            ):
                bad.append("image sizes")
            if bad:
                raise MergeError(
                    f"shard does not match {stores[0].path.name} (differs in {', '.join(bad)})",
                    path=st.path,
                    hint="merge only shards of one relabel run",
                )

        spe = max(int(h0["steps_per_epoch"]), 1)
        keys = (
            np.concatenate([st.step_epoch.astype(np.int64) * spe + st.step_index for st in stores])
            if stores
            else np.zeros(0, np.int64)
        )
        src = np.concatenate([np.full(st.num_steps, i, dtype=np.int64) for i, st in enumerate(stores)])
        pos = np.concatenate([np.arange(st.num_steps, dtype=np.int64) for st in stores])
        order = np.argsort(keys, kind="stable")
        keys, src, pos = keys[order], src[order], pos[order]
        dup = np.flatnonzero(np.diff(keys) == 0)
        if len(dup):
            i = dup[0]
            e, s = divmod(int(keys[i]), spe)
            raise MergeError(
                f"(epoch {e}, step {s}) is in both {stores[src[i]].path} and {stores[src[i + 1]].path}",
                hint="shards must hold disjoint steps; merge each run's shards once",
            )
        if manifests:
            expected = rle_decode(ref["plan"]["steps"])
            missing = np.setdiff1d(expected, keys)
            extra = np.setdiff1d(keys, expected)
            if len(extra):
                e, s = divmod(int(extra[0]), spe)
                raise MergeError(
                    f"{len(extra)} steps are not in the run's plan, e.g. (epoch {e}, step {s})",
                    hint="a shard from another run was given",
                )
            if len(missing) and not allow_incomplete:
                K = int(ref["plan"]["steps_per_part"])
                miss_parts = sorted({int(np.searchsorted(expected, m)) // K for m in missing[:100000]})
                shown = ", ".join(str(j) for j in miss_parts[:8]) + (" ..." if len(miss_parts) > 8 else "")
                raise MergeError(
                    f"{len(missing)} of {len(expected)} planned steps are missing ({len(miss_parts)} parts: {shown})",
                    path=ref_dir,
                    hint="resume the run (same command) or finish the other ranks' shards, "
                    "or copy their work directories here and merge them together",
                )

        label_col = h0["columns"]["label"]
        if final is not None:
            codecs = final["label_codecs"]
            label_input = final["label_input"] if final["label_input"] == "logits" else tuple(final["label_input"])
            part_input = "logits" if final["part_mode"] == "float32" else label_input
            steps_per_chunk = int(final["steps_per_chunk"])
        else:
            codecs = label_col["codecs"]
            label_input = label_input_from_spec(label_col["input"])
            part_input = label_input
            steps_per_chunk = int(h0["chunking"]["steps_per_chunk"])
            if not refeedable([get_codec(c) for c in codecs], label_input):
                raise MergeError(
                    "these shards store labels with a codec chain that cannot be re-encoded exactly",
                    path=stores[0].path,
                    hint="merge the relabel work directories (OUT.lpl.partial) instead",
                )
        if label_input_from_spec(label_col["input"]) != part_input:
            raise MergeError("shard label columns do not hold what the run's manifest says", path=stores[0].path)

        img = h0["images"]
        fp = img.get("fingerprint")
        index = ImageIndex(
            stores[0].image_keys, ref_classes, fp["value"] if fp else None, list(img.get("class_names", []))
        )
        crop_type = h0["columns"]["crop"]["input"][0]["type"]
        records = int(sum(st.num_records for st in stores))
        from ..progress import progress_bar

        bar = progress_bar(records, "merge", progress, unit="view", unit_scale=True)
        try:
            with StoreWriter(
                out,
                num_classes=h0["num_classes"],
                images=index,
                batch_size=h0["batch_size"],
                epochs=h0["epochs"],
                steps_per_epoch=h0["steps_per_epoch"],
                drop_last=h0["drop_last"],
                labels=LabelColumn(codecs, label_input),
                views=ViewColumns(crop_type, derived=stores[0].image_sizes),
                augmentation=h0["augmentation"],
                teacher=h0["teacher"],
                seed=h0["seed"],
                selection=h0.get("selection"),
                extensions=h0.get("extensions") or None,
                layout=StoreLayout(steps_per_chunk, int(h0["chunking"].get("segment_bytes", 16 << 20))),
                overwrite=force,
            ) as w:
                prev = None
                for i in range(len(keys)):
                    st = stores[src[i]]
                    if prev is not None and prev is not st:
                        prev.close()  # one open descriptor at a time, however many shards
                    prev = st
                    rec = st.step_at(int(pos[i]))
                    w.write_step(
                        rec.epoch,
                        rec.step,
                        image=rec.image,
                        crop=rec.crop,
                        flip=rec.flip,
                        mix_partner=rec.mix_partner,
                        mix_lambda=rec.mix_lambda,
                        mix_box=rec.mix_box,
                        **label_kwargs(part_input, rec.label),
                    )
                    bar.update(len(rec.image))
        finally:
            bar.close()
    finally:
        for st in stores:
            st.close()
    if log is not None:
        log(f"merged {len(paths)} shard(s), {len(keys):,} steps, {records:,} records -> {out}")
    return out
