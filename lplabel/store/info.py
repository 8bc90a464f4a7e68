"""Where a store's bytes go: by field, per record, and against dense fp16 labels."""
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
    fields["header"] += len(encode_header(h))
    accounted = sum(fields.values())
    fields["container_overhead"] = file_bytes - accounted
    R = store.num_records
    dense_fp16 = R * store.num_classes * 2
    configs = sum(v for k, v in fields.items() if k.startswith("column.") and k.split(".")[1] in L.CONFIG_COLUMNS) \
        + fields["step_tables"] + fields.get("image_sizes", 0)
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
        "config_bytes": configs,
        "container_overhead_bytes": fields["container_overhead"],
        "bytes_per_record": (file_bytes / R) if R else None,
        "dense_fp16_bytes": dense_fp16,
        "ratio_vs_dense_fp16": (dense_fp16 / file_bytes) if file_bytes else None,
        "created": h.get("created"),
        "tool": h.get("tool"),
    }
