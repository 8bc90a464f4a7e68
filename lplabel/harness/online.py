"""Harness rows whose labels are not stored: ``online-teacher``.

The stored settings (:mod:`~lplabel.harness.settings`) derive one label store each from the
relabelled source. A *label-source* row stores no labels: it trains students from the ``full``
store's views (the same views, mixing and temperature as ``full``), and a
:class:`~lplabel.torch.label_sources.LabelSource` makes each step's labels in the training loop.
This module owns everything such a row needs, so :mod:`~lplabel.harness.sweep` only asks
:func:`is_label_source` and hands over:

* :func:`prepare` (stage 5): check the source against the ``full`` store before any student
  trains -- the largest |logit delta| and top-1 agreement over the first stored epoch (for the
  online teacher: fp16 rounding of the full store, since the teacher and views are the same);
* :func:`label_source` (stage 6): a fresh source per student;
* :func:`row` (stage 7): the table row, bytes counted honestly (below).

Byte accounting of ``online-teacher`` (what a user must ship, besides the images and the
student, to reproduce the labels): the teacher checkpoint (``torch.save`` of its state dict,
:func:`~lplabel.torch.label_sources.state_dict_bytes`) plus the full store without its label
column (header, view configurations, step tables, container). Label bytes are 0. Next to the
accuracy the row reports the teacher's compute per training step: forward FLOPs (torch's flop
counter; a multiply-add counts 2) and the measured forward time per step, and the student's
training step time against the ``full`` row's (the cost of labelling in the loop).
"""
from __future__ import annotations

import numpy as np

from .settings import Setting

#: setting families whose labels come from a label source, not from a derived store
SOURCE_FAMILIES = ("online",)


def is_label_source(s: Setting) -> bool:
    return s.family in SOURCE_FAMILIES


def label_source(bench, s: Setting):
    """A fresh label source for one student of ``s`` (None for stored settings)."""
    if not is_label_source(s):
        return None
    from ..torch.label_sources import OnlineTeacher

    return OnlineTeacher(bench.teacher)


def source_key(bench, s: Setting) -> dict:
    """What a source row's cached results depend on beyond the ``full`` store (``{}`` for stored rows)."""
    if not is_label_source(s):
        return {}
    return {"label_source": s.family, "teacher": bench.teacher_key}


def prepare(bench, settings, cache_key, read_json, write_json) -> None:
    """Stage 5 for the label-source rows: point them at the ``full`` store and check the labels
    they make against it on the first stored epoch (cached beside the stores with the sweep's
    ``cache_key`` / ``read_json`` / ``write_json``)."""
    full = bench.stores.get("full")
    for s in settings:
        if not is_label_source(s):
            continue
        if full is None:  # parse_settings always adds it; a caller that did not gets a clear error
            from .settings import BenchError

            raise BenchError(f"setting {s.name!r} labels the 'full' store's views; add 'full' to the settings")
        key = cache_key({"full": full["key"], **source_key(bench, s), "device": bench.r.device.split(":")[0]})
        meta_p = bench.out / "stores" / f"{s.name}.json"
        meta = None if bench.force else read_json(meta_p)
        if meta is None or meta.get("key") != key:
            meta = {"key": key, "fidelity": check_against_store(full["path"], bench.distilled,
                                                                label_source(bench, s), bench.r.device)}
            write_json(meta_p, meta)
        bench.stores[s.name] = {"path": full["path"], "info": full["info"], "fidelity": meta["fidelity"],
                                "key": key}
        f = meta["fidelity"]
        bench.echo(f"      {s.name:<27} labels made in the loop from full's views: max |logit delta| vs full "
                   f"{f['max_abs_logit_delta']:.3g} over {f['steps']} steps, top-1 agreement "
                   f"{100 * f['top1_agreement']:.2f} %")


def check_against_store(store, images, source, device="cpu", epoch: int = 0) -> dict:
    """The source's logits against the store's on every step of stored epoch ``epoch``:
    ``max_abs_logit_delta``, ``top1_agreement``, ``steps``, ``views``."""
    from ..torch import ReplayLoader

    kw = dict(labels="raw", normalize="0-255", device=device, epoch=epoch)
    stored = ReplayLoader(store, images, **kw)
    online = ReplayLoader(store, images, label_source=source, **kw)
    worst, agree, views, steps = 0.0, 0, 0, 0
    for a, b in zip(stored, online):
        za, zb = a.label["logits"].float(), b.label["logits"].float()
        worst = max(worst, float((za - zb).abs().max()))
        agree += int((za.argmax(1) == zb.argmax(1)).sum())
        views += len(a)
        steps += 1
    return {"max_abs_logit_delta": worst, "top1_agreement": agree / max(views, 1), "steps": steps, "views": views,
            "epoch": epoch}


def _ms_per_step(runs) -> float | None:
    v = [1000.0 * r["train_seconds"] / r["steps"] for r in runs if r.get("steps") and r.get("train_seconds")]
    return float(np.mean(v)) if v else None


def row(s: Setting, bench, runs: list, baseline: int, default_t: float) -> dict:
    """The table row of a label-source setting (see the module doc for the bytes)."""
    from .report import summarize

    full = bench.stores["full"]
    info = dict(full["info"])
    stats = [r.get("label_source") or {} for r in runs]
    teacher_bytes = next((int(x["checkpoint_bytes"]) for x in stats if x.get("checkpoint_bytes")), 0)
    views_bytes = int(info["file_bytes"]) - int(info["label_payload_bytes"])
    info.update(file_bytes=views_bytes + teacher_bytes, label_payload_bytes=0)
    out = summarize(s, info, bench.stores[s.name]["fidelity"], runs, baseline, default_t)
    flops = next((x["flops_per_view"] for x in stats if x.get("flops_per_view")), None)
    per_step = info["records"] / info["steps"] if info.get("steps") else None
    ms = [x["ms_per_step"] for x in stats if x.get("ms_per_step")]
    out.update({
        "label_source": s.family, "teacher_bytes": teacher_bytes, "views_bytes": views_bytes,
        "teacher_flops_per_view": flops,
        "teacher_gflops_per_step": None if flops is None or per_step is None else flops * per_step / 1e9,
        "teacher_ms_per_step": float(np.mean(ms)) if ms else None,
        "student_ms_per_step": _ms_per_step(runs),
        "full_student_ms_per_step": _ms_per_step(bench.runs.get("full", [])),
        "max_abs_logit_delta": bench.stores[s.name]["fidelity"].get("max_abs_logit_delta"),
    })
    return out


def markdown_lines(rows: list) -> list[str]:
    """The label-source rows' costs in words (results.md's section, kept in the results as
    ``label_sources_md``): bytes, compute, step time."""
    rows = [r for r in rows if r.get("label_source")]
    if not rows:
        return []
    out = ["## Labels made in the training loop", ""]
    for r in rows:
        if r["label_source"] == "online":
            parts = [f"`{r['setting']}`: no stored labels; ships the teacher checkpoint "
                     f"({r['teacher_bytes']:,} B) and the full store's views ({r['views_bytes']:,} B)"]
            if r.get("teacher_gflops_per_step") is not None:
                parts.append(f"teacher forward {r['teacher_gflops_per_step']:.3g} GFLOP per training step")
            if r.get("teacher_ms_per_step") is not None:
                parts.append(f"{r['teacher_ms_per_step']:.2f} ms per step measured")
            if r.get("student_ms_per_step") and r.get("full_student_ms_per_step"):
                parts.append(f"student step {r['student_ms_per_step']:.2f} ms vs {r['full_student_ms_per_step']:.2f} ms "
                             f"with stored labels (x{r['student_ms_per_step'] / r['full_student_ms_per_step']:.2f})")
            if r.get("max_abs_logit_delta") is not None:
                parts.append(f"its logits differ from the full store's by at most {r['max_abs_logit_delta']:.3g} "
                             f"(top-1 agreement {100 * r['top1_agreement']:.2f} %, first stored epoch)")
            if r.get("delta") is not None:
                parts.append(f"student top-1 {r['top1_mean']:.2f} ± {r['top1_std']:.2f} % "
                             f"({r['delta']:+.2f} vs full, {'within' if r['within_spread'] else 'outside'} its "
                             "seed spread)")
            out.append("- " + "; ".join(parts) + ".")
    return out + [""]
