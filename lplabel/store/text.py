"""The words lplabel prints for its results: one function per report, lines in, lines out.

Every ``lplabel`` command calls a library function that returns a result (a facts dict or a
report object) and prints it with one of these; a Python user gets the same text without the
CLI. They only format -- no file is opened here -- so what a command prints is a pure function
of what the API returned. The size words (``human_bytes``, ``ratio_phrase``, ``ratio_words``)
are defined beside the facts they describe, in :mod:`lplabel.store.info`.
"""

from __future__ import annotations

import json

from .info import human_bytes, ratio_phrase, ratio_words

__all__ = [
    "info_lines",
    "show_lines",
    "verify_lines",
    "compare_lines",
    "times_phrase",
    "written_line",
    "merged_line",
    "import_lines",
    "export_lines",
    "human_bytes",
    "ratio_phrase",
    "ratio_words",
]


def info_lines(f: dict) -> list[str]:
    """``lplabel info``: the facts of :func:`lplabel.store.store_info` as an indented summary."""
    out = [
        f"{f['path']}  (lplabel format {f['format_version'][0]}.{f['format_version'][1]})",
        f"  records         {f['records']:,}  in {f['steps']:,} steps "
        f"({f['stored_epochs']} of {f['epochs']} epochs stored, {f['steps_per_epoch']} steps/epoch, "
        f"batch {f['batch_size']})",
        f"  images          {f['images']:,}   classes {f['classes']:,}",
        f"  labels          {f['labels']}",
        f"  label codecs    {f['label_codec_summary']}" + ("  [lossy]" if f["label_lossy"] else ""),
    ]
    if f["selection"]:
        out.append(f"  selection       {json.dumps(f['selection'])}")
    t = f["teacher"]
    out.append(f"  teacher         {t.get('description') or '-'} (logits at T={t.get('temperature', 1.0)})")
    if f.get("label_generator"):
        out.append(f"  label generator {f['label_generator']['text']}")
    out.append("  bytes by field")
    total = f["file_bytes"]
    derived = {f"column.{c}" for c in f.get("derived_columns", ())}
    for name, n in f["bytes_by_field"].items():
        pct = 100.0 * n / total if total else 0.0
        out.append(
            f"    {name:<20} {n:>14,}  {human_bytes(n):>11}  {pct:5.1f} %" + ("  (derived)" if name in derived else "")
        )
    out.append(f"    {'file':<20} {total:>14,}  {human_bytes(total):>11}")
    out.append("  size")
    out += [f"    {name:<31} {value}" for name, value in ratio_words(f)]
    return out


def show_lines(v: dict) -> list[str]:
    """``lplabel show``: one step of :func:`lplabel.store.info.peek_step` as a table."""
    mix = (
        "no mixing"
        if v["mix"] is None
        else (f"{v['mix_kind'] or 'mix'} lambda {v['mix']['lambda']:.3f}, box {tuple(v['mix']['box'])}")
    )
    out = [
        f"{v['path']}  epoch {v['epoch']}, step {v['step']}  (stored step {v['position'] + 1} of "
        f"{v['steps']:,}; {v['records']} records; {mix})",
        f"  labels: {v['labels']}"
        + (" [lossy]" if v["label_lossy"] else "")
        + f"; probabilities at T={v['temperature']:g}"
        + (f", mode {v['mode']}" if v["mode"] != "auto" else ""),
    ]
    key_w = min(max([3] + [len(str(r["key"])) for r in v["rows"]]), 24)
    out.append(
        f"  {'rec':>4} {'image':>6} {'key':<{key_w}} {'class':>5}  {'crop (t, l, h, w)':<23} {'flip':<4} "
        f"{'mix':>4}  top classes (p)"
    )
    for r in v["rows"]:
        key = str(r["key"])
        key = key if len(key) <= key_w else "…" + key[-(key_w - 1) :]
        crop = " ".join(f"{x:.2f}" for x in r["crop"])
        tops = "  ".join(f"{t['class']}:{t['p']:.3f}" for t in r["top"])
        cls = "-" if r["image_class"] < 0 else str(r["image_class"])
        out.append(
            f"  {r['record']:>4} {r['image']:>6} {key:<{key_w}} {cls:>5}  {crop:<23} "
            f"{'yes' if r['flip'] else 'no':<4} {'-' if r['mix_partner'] < 0 else r['mix_partner']:>4}  {tops}"
        )
    if v["shown"] < v["records"]:
        out.append(f"  ... {v['records'] - v['shown']} more records (--all or -n N to see them)")
    return out


def verify_lines(report) -> list[str]:
    """``lplabel verify``: the verdict of a :class:`~lplabel.store.verify.VerifyReport` (status
    ``ok``: one line for stdout; ``unchecked`` and ``damaged``: the lines for stderr)."""
    if report.status == "unchecked":
        return [
            f"UNCHECKED  column {col!r}: checksums match, chunks not decoded: {why}"
            for col, why in report.undecoded.items()
        ]
    if report.status == "ok":
        return [
            f"OK  {report.path}: {report.chunks_checked:,} chunks, {human_bytes(report.bytes_checked)} of "
            "payload checked"
        ]
    return [f"DAMAGED  {p}" for p in report.problems] + [f"{len(report.problems)} problem(s) found in {report.path}"]


def times_phrase(ratio) -> str:
    """``12.3x smaller`` / ``1.5x larger`` (``-`` without records): a size ratio in a table cell."""
    if not ratio:
        return "-"
    return f"{ratio:.1f}x smaller" if ratio >= 1 else f"{1 / ratio:.1f}x larger"


def compare_lines(res: dict) -> list[str]:
    """``lplabel compare``: the metrics of :func:`lplabel.reconstruct.fidelity.compare_stores`."""
    c, r = res["candidate"], res["reference"]
    out = [
        f"{res['records']:,} records in {res['steps']:,} common steps (candidate mode {res['mode']})",
        f"  top-1 agreement      {100 * res['top1_agreement']:.2f} %",
    ]
    if res["top5_overlap"] is None:
        out.append(f"  top-5 overlap        skipped: {res.get('top5_overlap_skipped', 'not computed')}")
    else:
        out.append(f"  top-5 overlap        {100 * res['top5_overlap']:.2f} %")
    for t in ("1", "20"):
        out.append(f"  KL(cand||ref) T={t:<3}  {res[f'kl_t{t}']:.5f} nats   TV {res[f'tv_t{t}']:.5f}")
    out.append(f"  {'bytes per stored record':<31} {c['bytes_per_record']:.2f} (reference {r['bytes_per_record']:.2f})")
    for which in ("stored", "nominal"):
        key = f"smaller_than_dense_fp16_{which}"
        out.append(
            f"  {'vs dense fp16, ' + which + ' records':<31} {times_phrase(c[key])} (reference {times_phrase(r[key])})"
        )
    return out


def written_line(f: dict) -> str:
    """``lplabel encode | quantize | prune``: what was written, from the new store's
    :func:`~lplabel.store.store_info` facts."""
    path = f["path"]
    if not f["records"]:
        return f"wrote {path}: no records"
    out = (
        f"wrote {path}: {f['records']:,} records in {f['steps']:,} steps, {human_bytes(f['file_bytes'])}, "
        f"{f['bytes_per_record']:.2f} bytes per stored record, "
        f"{ratio_phrase(f['smaller_than_dense_fp16_stored'], 'stored')}"
    )
    if f["nominal_records"] != f["records"]:  # pruned (or partial): what pruning and codecs gained together
        out += f", {ratio_phrase(f['smaller_than_dense_fp16_nominal'], 'nominal')} ({f['nominal_records']:,})"
    return out


def merged_line(f: dict) -> str:
    """``lplabel merge``: the merged store, from its :func:`~lplabel.store.store_info` facts."""
    return f"{f['path']}: {f['records']:,} records, {human_bytes(f['file_bytes'])}, {ratio_phrase(f['ratio_vs_dense_fp16'])}"


def import_lines(r) -> list[str]:
    """``lplabel import``: an :class:`~lplabel.interop.ImportReport` in words."""
    ratio = r.source_bytes / r.output_bytes if r.output_bytes else float("nan")
    out = [
        f"{r.output}: {r.layout} label set, {r.files:,} files -> {r.steps:,} steps, {r.records:,} records "
        f"({r.epochs} epochs x {r.steps_per_epoch} steps, batch {r.batch_size}, {r.num_images:,} images, "
        f"{r.num_classes:,} classes)",
        f"  on disk  {human_bytes(r.source_bytes)} -> {human_bytes(r.output_bytes)} ({ratio:.2f}x)   "
        + ("lossless (export gives the files back bit-exactly)" if r.lossless else "lossy codecs"),
    ]
    return out + [f"  note: {note}" for note in r.notes]


def export_lines(r) -> list[str]:
    """``lplabel export``: an :class:`~lplabel.interop.ExportReport` in words."""
    return [f"{r.output}: {r.layout} directory, {r.files:,} files, {r.records:,} records"] + [
        f"  note: {note}" for note in r.notes
    ]
