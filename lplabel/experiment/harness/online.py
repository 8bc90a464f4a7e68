"""Harness rows whose labels are not stored: ``online-teacher`` and ``generator-<budget>``.

The stored settings (:mod:`~lplabel.experiment.harness.settings`) derive one label store each from the
relabelled source. A *label-source* row stores no labels: it trains students from the ``full``
store's views (the same views, mixing and temperature as ``full``), and a
:class:`~lplabel.torch.label_sources.LabelSource` makes each step's labels in the training loop.
This module owns everything such a row needs, so :mod:`~lplabel.experiment.harness.sweep` only asks
:func:`is_label_source` and hands over:

* :func:`prepare` (stage 5): check the source against the ``full`` store before any student
  trains -- the largest |logit delta| and top-1 agreement over the first stored epoch (for the
  online teacher: fp16 rounding of the full store, since the teacher and views are the same);
* :func:`label_source` (stage 6): a fresh source per student;
* :func:`row` (stage 7): the table row, bytes counted honestly (below).

``generator-<budget>``: :func:`prepare` distills a label generator of at most ``budget`` bytes
from the ``full`` store's labels on its views (:func:`lplabel.torch.distill.distill_generator`,
:func:`generator_passes` passes over the stored epochs) into its own store (the same views, the
generator in the header, the top-1 class indices as label column; spec §12); students train on
the generator's labels of those views. Its bytes are that whole file (the generator's own bytes,
its parameters and FLOPs are reported beside them). The generator sees the views at the
students' side (:func:`generator_resolution`): views rendered larger (the 1000-class presets
relabel at 224 px for 32- or 64-px students) are average-pooled to it inside the generator
(``convnet-lite-v2``), so that training it and running it in every student step cost what a
network of the students' input costs, not 49x that.

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
SOURCE_FAMILIES = ("online", "generator")


def generator_passes(s: Setting, num_classes: int) -> int:
    """Passes over the stored epochs a ``generator-<budget>[-passes<P>]`` row trains its generator
    for: P, else :func:`lplabel.generator.default_passes` (3; 10 from 128 classes on)."""
    from ...generator import default_passes

    return int(s.passes or default_passes(num_classes))


def is_label_source(s: Setting) -> bool:
    return s.family in SOURCE_FAMILIES


def label_source(bench, s: Setting):
    """A fresh label source for one student of ``s`` (None for stored settings)."""
    if not is_label_source(s):
        return None
    if s.family == "generator":
        from ...torch.generator import StoredGenerator

        return StoredGenerator()
    from ...torch.label_sources import OnlineTeacher

    return OnlineTeacher(bench.teacher)


def generator_resolution(bench) -> tuple[int, int]:
    """``(view side, generator resolution)`` of a sweep's generators: the students' side (the
    recipe's ``image_size``) when set, else :func:`~lplabel.torch.distill.default_resolution` of
    the ``full`` store's view side."""
    from ...store import LabelStore

    st = LabelStore(bench.stores["full"]["path"])
    try:
        view = int(st.header["augmentation"]["output_size"])
    finally:
        st.close()
    return view, _resolution(bench, view)


def _resolution(bench, view: int) -> int:
    """The side a sweep's generators pool ``view``-px views to (see :func:`generator_resolution`)."""
    from ...torch.distill import default_resolution

    want = bench.r.recipe.image_size
    return min(view, int(want)) if want else default_resolution(view)


def source_key(bench, s: Setting) -> dict:
    """What a source row's cached results depend on beyond the ``full`` store (``{}`` for stored rows)."""
    if not is_label_source(s):
        return {}
    if s.family == "generator":
        key = {
            "label_source": s.family,
            "budget": s.budget,
            "passes": generator_passes(s, bench.r.num_classes),
            "format": 2,
        }
        if s.shape:  # a network named in the setting
            key["shape"] = s.shape
        else:
            from ...generator import MANY_CLASSES

            if int(bench.r.num_classes) >= MANY_CLASSES:  # the chooser's many-class rule (head rank >= 16)
                key["chooser"] = 2
        view, res = generator_resolution(bench)
        if res != view:  # a pooling generator (convnet-lite-v2); unpooled rows keep their keys
            key["resolution"] = res
        return key
    return {"label_source": s.family, "teacher": bench.teacher_key}


def check_shapes(bench) -> None:
    """Before any work (called once the data is loaded): a ``generator-<budget>-w<W>r<R>`` row whose
    network does not fit its budget is :class:`~lplabel.generator.GeneratorBudgetError` now, not
    after the teacher and the relabelling. The views' side is the relabel size (else the images'),
    their channels the images', the resolution :func:`generator_resolution`'s rule."""
    from ...generator import GeneratorBudgetError, shape_for_budget

    rows = [s for s in bench.r.settings if s.family == "generator" and s.shape]
    if not rows:
        return
    first = np.asarray(bench.train.images[0])
    channels = 1 if first.ndim == 2 else int(first.shape[-1])
    view = int(bench.r.relabel.get("size") or first.shape[0])
    arch = dict(
        in_channels=channels, input_size=view, num_classes=bench.r.num_classes, resolution=_resolution(bench, view)
    )
    for s in rows:
        try:
            shape_for_budget(s.budget, *s.shape_tuple, **arch)
        except GeneratorBudgetError as e:
            raise GeneratorBudgetError(
                f"setting {s.name!r}: {e.message}", hint="give a larger budget or a smaller -w<W>r<R>"
            ) from None


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
        key = cache_key(
            {
                "full": full["key"],
                **source_key(bench, s),
                "device": bench.r.device.split(":")[0],
                "seed": bench.r.config.seed,
            }
        )
        # the row's own record (an online row has no store of its own: never full's record)
        meta_p = bench.out / "stores" / f"{s.name}.json"
        path = full["path"] if s.family == "online" else bench.out / "stores" / f"{s.store_name}.lpl"
        meta = None if bench.force else read_json(meta_p)
        if meta is None or meta.get("key") != key or not path.is_file() or "source" not in meta:
            meta = {"key": key}
            if s.family == "generator":
                meta["generator"] = _distill(bench, s, full["path"], path)
            src = label_source(bench, s)
            meta["fidelity"] = check_against_store(
                full["path"],
                bench.distilled,
                src,
                bench.r.device,
                other=None if s.family == "online" else path,
            )
            # its costs measured on that epoch: the row's accounting even when no student trains
            meta["source"] = src.stats()
            write_json(meta_p, meta)
        info = full["info"]
        if s.family == "generator":
            from ...store import store_info

            info = store_info(path)
        bench.stores[s.name] = {
            "path": path,
            "info": info,
            "fidelity": meta["fidelity"],
            "key": key,
            "generator": meta.get("generator"),
            "source": meta.get("source"),
        }
        f = meta["fidelity"]
        what = (
            "labels made in the loop from full's views"
            if s.family == "online"
            else f"{info['file_bytes']:,} B, generator {meta['generator']['bytes']:,} B"
        )
        bench.echo(
            f"      {s.name:<27} {what}: max |logit delta| vs full {f['max_abs_logit_delta']:.3g} over "
            f"{f['steps']} steps, top-1 agreement {100 * f['top1_agreement']:.2f} %"
        )


def not_trained_reason(bench, s: Setting) -> str | None:
    """Why the students of ``s`` are not trained (None: they are). Only an ``online-teacher``
    row of a run with ``online_students`` off (the ``cpu`` preset's default): its row still
    reports the teacher's bytes and its compute, measured in stage 5's check, with the teacher
    time the students would have cost estimated from it."""
    if s.family != "online" or bench.r.online_students:
        return None
    info = bench.stores["full"]["info"]
    ms = (bench.stores[s.name].get("source") or {}).get("ms_per_step")
    epochs = int(bench.r.recipe.epochs or bench.r.epochs)
    steps = int(round(epochs * int(info["steps"]) / max(int(info["epochs"]), 1)))
    est = (
        f"its forward took {ms:.0f} ms per step on the first stored epoch, so about "
        f"{ms * steps / 60000:.0f} min of teacher forward per student ({steps:,} steps) on "
        f"{bench.r.device}; "
        if ms
        else ""
    )
    return f"the teacher runs in every student step: {est}the row reports its bytes and compute only (--online-students trains them)"


def _distill(bench, s: Setting, full_path, out) -> dict:
    from ...torch.distill import distill_generator

    src_epochs = int(bench.stores["full"]["info"]["epochs"])
    rep = distill_generator(
        full_path,
        bench.distilled,
        out,
        budget=int(s.budget),
        resolution=generator_resolution(bench)[1],
        epochs=generator_passes(s, bench.r.num_classes) * src_epochs,
        shape=s.shape_tuple,
        seed=int(bench.r.config.seed),
        device=bench.r.device,
        force=True,
        log=lambda m: bench.echo("      " + m),
    )
    keys = ("bytes", "parameters", "architecture", "top1_agreement", "kl_t1", "seconds", "network_seconds", "steps")
    return {k: rep.get(k) for k in keys}


def check_against_store(store, images, source, device="cpu", epoch: int = 0, other=None) -> dict:
    """The source's logits against the store's on every step of stored epoch ``epoch``:
    ``max_abs_logit_delta``, ``top1_agreement``, ``steps``, ``views``. ``other``: the store the
    source serves (another file with the same views, e.g. a generator's), default ``store``."""
    from ...torch import ReplayLoader

    kw = dict(labels="raw", normalize="0-255", device=device, epoch=epoch)
    stored = ReplayLoader(store, images, label_source="column", **kw)
    online = ReplayLoader(store if other is None else other, images, label_source=source, **kw)
    worst, agree, views, steps = 0.0, 0, 0, 0
    for a, b in zip(stored, online):
        za, zb = a.label["logits"].float(), b.label["logits"].float()
        worst = max(worst, float((za - zb).abs().max()))
        agree += int((za.argmax(1) == zb.argmax(1)).sum())
        views += len(a)
        steps += 1
    return {
        "max_abs_logit_delta": worst,
        "top1_agreement": agree / max(views, 1),
        "steps": steps,
        "views": views,
        "epoch": epoch,
    }


def _ms_per_step(runs) -> float | None:
    v = [1000.0 * r["train_seconds"] / r["steps"] for r in runs if r.get("steps") and r.get("train_seconds")]
    return float(np.mean(v)) if v else None


def _costs(bench, s: Setting, runs: list, info: dict) -> dict:
    """The source's compute next to the accuracy: FLOPs per view and per step, the source's
    forward time per step (in the students' training when they trained, else in stage 5's check
    on the first stored epoch: ``source_ms_measured_in`` says which), and the student's step time
    against the ``full`` row's (``student_step_ratio``)."""
    stats = [r.get("label_source") or {} for r in runs]
    check = bench.stores[s.name].get("source") or {}
    flops = next((x["flops_per_view"] for x in [*stats, check] if x.get("flops_per_view")), None)
    per_step = info["records"] / info["steps"] if info.get("steps") else None
    ms = [x["ms_per_step"] for x in stats if x.get("ms_per_step")]
    where = "students" if ms else "check" if check.get("ms_per_step") else None
    ms_step = float(np.mean(ms)) if ms else check.get("ms_per_step")
    gflops = None if flops is None or per_step is None else flops * per_step / 1e9
    student, full = _ms_per_step(runs), _ms_per_step(bench.runs.get("full", []))
    return {
        "label_source": s.family,
        "source_flops_per_view": flops,
        "source_gflops_per_step": gflops,
        "source_ms_per_step": ms_step,
        "source_ms_measured_in": where,
        "student_ms_per_step": student,
        "full_student_ms_per_step": full,
        "student_step_ratio": student / full if student and full else None,
        "max_abs_logit_delta": bench.stores[s.name]["fidelity"].get("max_abs_logit_delta"),
        # the names these columns had first (kept: results files and tests read them)
        "teacher_flops_per_view": flops,
        "teacher_gflops_per_step": gflops,
        "teacher_ms_per_step": ms_step,
    }


def row(s: Setting, bench, runs: list, baseline: int, default_t: float) -> dict:
    """The table row of a label-source setting (see the module doc for the bytes)."""
    from .report import summarize

    if s.family == "generator":
        return _generator_row(s, bench, runs, baseline, default_t)
    full = bench.stores["full"]
    info = dict(full["info"])
    stats = [r.get("label_source") or {} for r in runs]
    check = bench.stores[s.name].get("source") or {}
    teacher_bytes = next((int(x["checkpoint_bytes"]) for x in [*stats, check] if x.get("checkpoint_bytes")), 0)
    views_bytes = int(info["file_bytes"]) - int(info["label_payload_bytes"])
    info.update(file_bytes=views_bytes + teacher_bytes, label_payload_bytes=0)
    out = summarize(s, info, bench.stores[s.name]["fidelity"], runs, baseline, default_t)
    out.update({"teacher_bytes": teacher_bytes, "views_bytes": views_bytes, **_costs(bench, s, runs, info)})
    out["not_trained"] = (getattr(bench, "not_trained", None) or {}).get(s.name)
    return out


def _generator_row(s: Setting, bench, runs: list, baseline: int, default_t: float) -> dict:
    from .report import summarize

    st = bench.stores[s.name]
    info = st["info"]  # the generator's store: every byte of the file counts
    out = summarize(s, info, st["fidelity"], runs, baseline, default_t)
    g = info.get("label_generator") or {}
    made = st.get("generator") or {}
    arch = g.get("architecture") or {}
    out.update(
        {
            "budget": s.budget,
            "generator_bytes": g.get("bytes"),
            "generator_parameters": g.get("parameters"),
            "generator_architecture": arch,
            "generator_resolution": arch.get("resolution", arch.get("input_size")),
            "generator_fit_top1": made.get("top1_agreement"),
            "generator_train_seconds": made.get("seconds"),
            **_costs(bench, s, runs, info),
        }
    )
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
            parts = [
                f"`{r['setting']}`: no stored labels; ships the teacher checkpoint "
                f"({r['teacher_bytes']:,} B) and the full store's views ({r['views_bytes']:,} B)"
            ]
            if r.get("source_gflops_per_step") is not None:
                parts.append(f"teacher forward {r['source_gflops_per_step']:.3g} GFLOP per training step")
            if r.get("source_ms_per_step") is not None:
                where = " (in the first stored epoch's check)" if r.get("source_ms_measured_in") == "check" else ""
                parts.append(f"{r['source_ms_per_step']:.2f} ms per step measured{where}")
            if r.get("student_ms_per_step") and r.get("full_student_ms_per_step"):
                parts.append(
                    f"student step {r['student_ms_per_step']:.2f} ms vs {r['full_student_ms_per_step']:.2f} ms "
                    f"with stored labels (x{r['student_ms_per_step'] / r['full_student_ms_per_step']:.2f})"
                )
            if r.get("max_abs_logit_delta") is not None:
                parts.append(
                    f"its logits differ from the full store's by at most {r['max_abs_logit_delta']:.3g} "
                    f"(top-1 agreement {100 * r['top1_agreement']:.2f} %, first stored epoch)"
                )
            if r.get("delta") is not None:
                parts.append(
                    f"student top-1 {r['top1_mean']:.2f} ± {r['top1_std']:.2f} % "
                    f"({r['delta']:+.2f} vs full, {'within' if r['within_spread'] else 'outside'} its "
                    "seed spread)"
                )
            if r.get("not_trained"):
                parts.append(f"students not trained: {r['not_trained']}")
            out.append("- " + "; ".join(parts) + ".")
        elif r["label_source"] == "generator":
            a = r.get("generator_architecture") or {}
            parts = [
                f"`{r['setting']}`: a {a.get('name', 'generator')} (width {a.get('width')}, depth "
                f"{a.get('depth')}"
                + (f", rank-{a['rank']} head" if a.get("rank") else "")
                + (f", views pooled to {a['resolution']} px" if a.get("resolution") else "")
                + ", "
                f"{r['generator_parameters']:,} parameters, float16) of {r['generator_bytes']:,} B in a "
                f"{r['file_bytes']:,} B file (views, generator, top-1 index column; "
                f"{100 * r['generator_bytes'] / (r['ratio'] * r['file_bytes']):.2f} % of the dense fp16 "
                "labels of the full store)"
            ]
            if r.get("generator_fit_top1") is not None:
                parts.append(
                    f"top-1 agreement with the full labels {100 * r['top1_agreement']:.2f} % "
                    f"(first stored epoch; {100 * r['generator_fit_top1']:.2f} % on its last training pass)"
                )
            if r.get("generator_train_seconds") is not None:
                parts.append(f"trained in {r['generator_train_seconds']:.0f} s")
            if r.get("source_gflops_per_step") is not None:
                parts.append(f"{r['source_gflops_per_step']:.3g} GFLOP per training step")
            if r.get("source_ms_per_step") is not None:
                parts.append(f"{r['source_ms_per_step']:.2f} ms per step measured")
            if r.get("student_ms_per_step") and r.get("full_student_ms_per_step"):
                parts.append(
                    f"student step {r['student_ms_per_step']:.2f} ms vs {r['full_student_ms_per_step']:.2f} ms "
                    f"with stored labels (x{r['student_step_ratio']:.2f})"
                )
            if r.get("delta") is not None:
                parts.append(f"student top-1 {r['top1_mean']:.2f} ± {r['top1_std']:.2f} % ({r['delta']:+.2f} vs full)")
            out.append("- " + "; ".join(parts) + ".")
    return out + [""]
