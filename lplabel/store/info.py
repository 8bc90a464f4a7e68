"""Where a store's bytes go: by field, per record, and against dense fp16 labels."""
from __future__ import annotations

import os

from . import layout as L
from .reader import LabelStore


def store_info(path) -> dict:
    """The facts ``lplabel info --json`` prints. Keys are documented in spec/FORMAT.md ("info")."""
    store = LabelStore(path)
    h = store.header
    file_bytes = os.path.getsize(path)
    fields = {f"column.{name}": store.column_bytes(name) for name in L.COLUMNS}
    for name, n in store.dictionary_bytes.items():  # trained zstd dictionaries belong to their column
        fields[f"column.{name}.dictionary"] = n
    tables = sum(int(a.nbytes) for a in store.tables.values())
    # derived view columns store an empty chunk table (the reader fills in (0, 0, 0) rows)
    index = sum(int((0 if n in store.derived else store.chunks[n].nbytes) + store.chunk_crc[n].nbytes)
                for n in L.COLUMNS)
    fields["step_tables"] = tables - int(store.tables[L.IMAGE_CLASS].nbytes) - int(store.tables[L.CHUNK_STEP_START].nbytes)
    fields["chunk_index"] = index + int(store.tables[L.CHUNK_STEP_START].nbytes)
    fields["header"] = len(store._keys_raw) + int(store.tables[L.IMAGE_CLASS].nbytes)
    from .header import encode_header
    fields["header"] += len(encode_header(h))
    if store.image_sizes is not None:  # images/size: what derived view columns are regenerated from
        fields["image_sizes"] = int(store.image_sizes.nbytes)
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
        "label_lossy": pipe.lossy,
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
