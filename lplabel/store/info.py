"""Where a store's bytes go: by field, per record, and against dense fp16 labels.

"Ratio" is easy to misread, so lplabel uses three named quantities, the same words in ``info``,
``compare``, the commands' summaries, the accuracy harness and the README:

* **bytes per stored record**: the file's bytes / the records it holds;
* **x smaller than dense fp16 of the stored records**: (stored records x C x 2 bytes) / file
  bytes -- what the codecs gained on the records the file holds (a pruned store is compared with
  its own, fewer records);
* **x smaller than dense fp16 of the nominal records**: (nominal records x C x 2) / file bytes,
  where the nominal records are every record of every step of every epoch the header declares
  (before pruning or partial relabelling) -- what pruning *and* the codecs gained; the
  accuracy harness's ratios are this one.
"""

from __future__ import annotations

import os

import numpy as np

from . import layout as L
from .packed import directory_bytes, packed_sizes
from .reader import LabelStore


def describe_labels(pipe) -> str:
    """What a label chain stores, in words: e.g. ``dense logits (float16)``, ``top-4 logits (int8) +
    class indices, logsumexp tail``, ``top-1 class indices only (no values)``."""
    fields = {f.name: f for f in pipe.decoded_spec}
    q = next((c for c in pipe.codecs if c.name == "quantize"), None)
    if "logits" in fields:
        return f"dense logits ({f'int{q.bits}' if q else fields['logits'].type})"
    if "indices" not in fields:
        return ", ".join(fields)
    k = fields["indices"].shape[0] if fields["indices"].shape else 1
    if "values" not in fields:
        return f"top-{k} class indices only (no values)"
    out = f"top-{k} logits ({f'int{q.bits}' if q else fields['values'].type}) + class indices"
    if "tail" in fields:
        from ..reconstruct import tail_kind_of

        out += f", {tail_kind_of(pipe)} tail"
    return out


def label_lossy(header: dict, pipe) -> bool:
    """Did the label chain lose information about the labels it was given?  A chain's codecs say
    so for float32 input (``dense``/``topk`` narrowing); a legacy import whose ``legacy``
    extension says ``lossless`` stored float16 labels as float16 -- a cast that loses nothing for
    the source dtype -- so it is lossless, as the import report says (one rule for both)."""
    leg = (header.get("extensions") or {}).get("legacy")
    if isinstance(leg, dict) and leg.get("lossless") is True:
        return False
    return pipe.lossy


def nominal_records(h: dict, stored_records: int, *, complete: bool) -> int:
    """The records of every step of every epoch the header declares (see the module doc).

    ``complete``: the store holds every step of every epoch (no selection, all epochs stored);
    then the stored count is exact. Otherwise each epoch holds ``steps_per_epoch x batch_size``
    records with ``drop_last``, else one record per image (the last step short) -- how the
    relabeler lays out epochs. Never less than what is stored.
    """
    if complete:
        return int(stored_records)
    full = int(h["steps_per_epoch"]) * int(h["batch_size"])
    per_epoch = full if h.get("drop_last") else min(int(h["num_images"]), full)
    return max(int(h["epochs"]) * per_epoch, int(stored_records))


def header_copy_bytes(path) -> int:
    """Bytes of the header's ``json`` convenience copy (spec §1.2), 0 when the store has none;
    they count as header bytes in ``info``."""
    import h5py

    with h5py.File(path, "r") as f:
        d = f.get(L.HEADER)
        if d is None or L.ATTR_HEADER_JSON not in d.attrs:
            return 0
        return int(d.attrs.get_id(L.ATTR_HEADER_JSON).get_storage_size())


def human_bytes(n: float) -> str:
    """``n`` bytes in binary units (``512 B``, ``1.50 KiB``, ...), as every lplabel report prints them."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    return str(n)


def ratio_phrase(ratio, which: str = "stored") -> str:
    """'12.3x smaller than dense fp16 of the stored records' (or 'n.nx larger' when the store is
    bigger); ``which`` is ``stored`` or ``nominal`` (see :mod:`lplabel.store.info` for the words)."""
    if not ratio:
        return "no records"
    if ratio >= 1:
        return f"{ratio:.1f}x smaller than dense fp16 of the {which} records"
    # tiny stores: view configs and container dominate
    return f"{1 / ratio:.1f}x larger than dense fp16 of the {which} records"


def ratio_words(facts: dict) -> list[tuple[str, str]]:
    """The three size figures of a store, as (name, value) lines in lplabel's fixed wording."""
    if not facts["records"]:
        return [("bytes per stored record", "- (no records)")]
    out = [("bytes per stored record", f"{facts['bytes_per_record']:.2f}")]
    for which in ("stored", "nominal"):
        r = facts[f"smaller_than_dense_fp16_{which}"]
        n, dense = (
            facts[f"{which}_records" if which == "nominal" else "records"],
            facts["dense_fp16_bytes" if which == "stored" else "nominal_dense_fp16_bytes"],
        )
        val = f"{r:.1f}x smaller" if r >= 1 else f"{1 / r:.1f}x larger"
        out.append(
            (
                f"vs dense fp16, {which} records",
                f"{val}  ({n:,} records x {facts['classes']:,} classes x 2 B = {human_bytes(dense)})",
            )
        )
    return out


def store_info(path) -> dict:
    """The facts ``lplabel info --json`` prints. Keys are documented in spec/FORMAT.md ("info")."""
    store = LabelStore(path)
    h = store.header
    file_bytes = os.path.getsize(path)
    fields = {f"column.{name}": store.column_bytes(name) for name in L.COLUMNS}
    for name, n in store.dictionary_bytes.items():  # trained zstd dictionaries belong to their column
        fields[f"column.{name}.dictionary"] = n
    # the tables by the part of the accounting they belong to; derived view columns store an empty
    # chunk table (the reader fills in (0, 0, 0) rows)
    groups = {
        "step_tables": [L.STEP_EPOCH, L.STEP_STEP, L.STEP_RECORD_START, L.STEP_MIX_LAMBDA, L.STEP_MIX_BOX],
        "chunk_index": [L.CHUNK_STEP_START] + [t for n in L.COLUMNS for t in (L.column_chunks(n), L.column_crc(n))],
        "header": [L.IMAGE_KEYS, L.IMAGE_CLASS],
    }
    arrays = dict(store.tables)
    arrays[L.IMAGE_KEYS] = store._keys_raw
    for n in L.COLUMNS:
        arrays[L.column_chunks(n)] = store.chunks[n][:0] if n in store.derived else store.chunks[n]
        arrays[L.column_crc(n)] = store.chunk_crc[n]
    if store.image_sizes is not None:  # images/size: what derived view columns are regenerated from
        groups["image_sizes"] = [L.IMAGE_SIZE]
        arrays[L.IMAGE_SIZE] = store.image_sizes
    if store.packed:  # one compressed dataset: its stored bytes, split in proportion (spec §9); the
        # directory's share is left to container_overhead (a fixed cost, like HDF5's own)
        parts = {g: b"".join(np.ascontiguousarray(arrays[t]).tobytes() for t in names) for g, names in groups.items()}
        parts["directory"] = directory_bytes({t: arrays[t] for names in groups.values() for t in names})
        shares = packed_sizes(parts, store.packed_bytes)
        shares.pop("directory")
        fields.update(shares)
    else:
        fields.update({g: sum(int(np.asarray(arrays[t]).nbytes) for t in names) for g, names in groups.items()})
    from .header import encode_header

    fields["header"] += len(encode_header(h)) + header_copy_bytes(path)
    generator = (h.get("extensions") or {}).get("label_generator")
    if generator is not None:  # spec §12: the generator's entry sits in the header; count it on its own
        from ..generator import summary

        generator = summary(generator)
        fields["header"] -= generator["bytes"]
        fields["label_generator"] = generator["bytes"]
    accounted = sum(fields.values())
    fields["container_overhead"] = file_bytes - accounted
    R = store.num_records
    dense_fp16 = R * store.num_classes * 2
    complete = (
        not h.get("selection")
        and len(store.stored_epochs) == h["epochs"]
        and store.num_steps == h["epochs"] * h["steps_per_epoch"]
    )
    nominal = nominal_records(h, R, complete=complete)
    configs = (
        sum(v for k, v in fields.items() if k.startswith("column.") and k.split(".")[1] in L.CONFIG_COLUMNS)
        + fields["step_tables"]
        + fields.get("image_sizes", 0)
    )
    pipe = store.pipelines["label"]
    store.close()
    return {
        "path": str(path),
        "format_version": list(store.format_version),
        "records": R,
        "steps": store.num_steps,
        "epochs": h["epochs"],
        "stored_epochs": int(len(store.stored_epochs)),
        "steps_per_epoch": h["steps_per_epoch"],
        "batch_size": h["batch_size"],
        "images": h["num_images"],
        "classes": h["num_classes"],
        "label_codecs": pipe.to_json(),
        "label_codec_summary": pipe.describe(),
        "labels": describe_labels(pipe),
        "label_lossy": label_lossy(h, pipe),
        "derived_columns": list(store.derived),
        "selection": h.get("selection"),
        "teacher": h["teacher"],
        "augmentation": h["augmentation"],
        "file_bytes": file_bytes,
        "bytes_by_field": fields,
        "label_payload_bytes": fields["column.label"] + fields.get("column.label.dictionary", 0),
        "label_generator": generator,
        "config_bytes": configs,
        "container_overhead_bytes": fields["container_overhead"],
        "bytes_per_record": (file_bytes / R) if R else None,
        "dense_fp16_bytes": dense_fp16,
        "nominal_records": nominal,
        "nominal_dense_fp16_bytes": nominal * store.num_classes * 2,
        "smaller_than_dense_fp16_stored": (dense_fp16 / file_bytes) if file_bytes else None,
        "smaller_than_dense_fp16_nominal": (nominal * store.num_classes * 2 / file_bytes) if file_bytes else None,
        # the pre-0.x name of smaller_than_dense_fp16_stored, kept for scripts that read it
        "ratio_vs_dense_fp16": (dense_fp16 / file_bytes) if file_bytes else None,
        "created": h.get("created"),
        "tool": h.get("tool"),
    }


def peek_step(
    path,
    epoch: int | None = None,
    step: int | None = None,
    *,
    top: int = 3,
    temperature: float = 1.0,
    mode: str = "auto",
    records: int | None = None,
) -> dict:
    """One stored step, readable: its views and each record's most probable classes.

    ``epoch``/``step`` pick the step (both None: the first stored step; only ``epoch``: that
    epoch's first stored step; a step that is not stored raises StepNotFoundError naming what is).
    Labels become probabilities at ``temperature`` as the loader would make them (see
    :func:`lplabel.reconstruct.probs_numpy`; ``mode`` for top-k labels). ``records``: at most this
    many records (None: all). What ``lplabel show`` prints.
    """
    from ..errors import StepNotFoundError
    from ..reconstruct import probs_numpy, tail_kind_of

    with LabelStore(path) as store:
        if store.num_steps == 0:
            raise StepNotFoundError("the store holds no steps", path=path)
        if epoch is None and step is not None:
            raise StepNotFoundError("--step needs --epoch", path=path, hint="give both, e.g. --epoch 0 --step 3")
        if epoch is None:
            pos = 0
        elif step is None:
            in_epoch = store.steps_in_epoch(int(epoch))
            if not len(in_epoch):
                raise StepNotFoundError(
                    f"epoch {epoch} has no stored step",
                    path=path,
                    hint=f"stored epochs: {_ranges(store.stored_epochs)}",
                )
            pos = int(in_epoch[0])
        else:
            pos = store.find(int(epoch), int(step))
        rec = store.step_at(pos)
        pipe = store.pipelines["label"]
        C = store.num_classes
        p = probs_numpy(rec.label, C, temperature=temperature, mode=mode, tail_kind=tail_kind_of(pipe))
        n = len(rec.image) if records is None else min(int(records), len(rec.image))
        kt = min(int(top), C)
        order = np.argsort(-p[:n], axis=1, kind="stable")[:, :kt]
        keys = store.image_keys
        classes = store.image_classes
        rows = []
        for j in range(n):
            img = int(rec.image[j])
            partner = int(rec.mix_partner[j]) if rec.mix_partner is not None else -1
            rows.append(
                {
                    "record": j,
                    "image": img,
                    "key": keys[img],
                    "image_class": int(classes[img]),
                    "crop": [round(float(x), 4) for x in np.asarray(rec.crop[j], dtype=np.float64)],
                    "flip": bool(rec.flip[j]),
                    "mix_partner": partner,
                    "top": [{"class": int(c), "p": float(p[j, c])} for c in order[j]],
                }
            )
        lam = float(rec.mix_lambda)
        return {
            "path": str(path),
            "epoch": rec.epoch,
            "step": rec.step,
            "position": pos,
            "steps": store.num_steps,
            "records": len(rec.image),
            "shown": n,
            "classes": C,
            "labels": describe_labels(pipe),
            "label_lossy": pipe.lossy,
            "temperature": float(temperature),
            "mode": mode,
            "mix": None if np.isnan(lam) else {"lambda": lam, "box": [int(x) for x in rec.mix_box]},
            "mix_kind": (store.header.get("augmentation") or {}).get("mix"),
            "rows": rows,
        }


def _ranges(values) -> str:
    v = [int(x) for x in values]
    if not v:
        return "none"
    out, start, prev = [], v[0], v[0]
    for x in v[1:] + [None]:
        if x is not None and x == prev + 1:
            prev = x
            continue
        out.append(f"{start}" if start == prev else f"{start}..{prev}")
        if x is not None:
            start = prev = x
    return ", ".join(out)
