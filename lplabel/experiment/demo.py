"""`lplabel demo`: a short end-to-end run on real data (scikit-learn's digits).

Trains a small teacher, relabels seeded augmented views of 10 images per class with it (crops,
flips, CutMix), writes a dense fp16 store and a top-k store, then prints `info` and `verify`
for both. It shows the whole storage path on a 2-core CPU in about a minute; the accuracy
harness (`lplabel bench accuracy`) is the full experiment.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path


def run_demo(output, *, epochs: int = 20, force: bool = False, echo=print) -> dict:
    from ..store.info import ratio_phrase
    from ..datasets import load_dataset, select_per_class
    from ..relabel import LabelsConfig, OutputConfig, ProcessConfig, RelabelConfig, TeacherConfig, ViewsPolicy, relabel
    from ..store import store_info, verify_store
    from ..teachers import evaluate, train_teacher

    t0 = time.perf_counter()
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    echo("[1/4] digits: training a teacher (convnet) on the train split ...")
    train, test = load_dataset("digits", "train"), load_dataset("digits", "test")
    teacher = train_teacher(train, "convnet", epochs=20, model_kwargs={"width": 64}, seed=0)
    echo(f"      teacher test accuracy {evaluate(teacher, test):.3f}")
    distilled = select_per_class(train, 10, seed=0)
    echo(f"[2/4] relabelling {len(distilled)} distilled images x {epochs} epochs (crops, flips, CutMix) ...")
    dense = out
    topk = out.with_name(out.stem + "-top2-int8" + out.suffix)
    config = RelabelConfig(
        views=ViewsPolicy(epochs=epochs, batch_size=25, seed=0, mix="cutmix", crop_scale=(0.5, 1.0)),
        teacher=TeacherConfig(device="cpu"),
        output=OutputConfig(force=force),
        process=ProcessConfig(progress=False),
    )
    relabel(distilled, teacher, dense, config)
    relabel(
        distilled,
        teacher,
        topk,
        dataclasses.replace(config, labels=LabelsConfig(topk=2, values="int8", tail="logsumexp")),
    )
    results = {}
    for i, path in enumerate((dense, topk), start=3):
        echo(f"[{i}/4] {path}")
        facts = store_info(path)
        report = verify_store(path)
        results[str(path)] = {"info": facts, "verify_ok": report.ok}
        echo(
            f"      {facts['records']:,} records, {facts['file_bytes']:,} bytes "
            f"({facts['bytes_per_record']:.1f} bytes per stored record), "
            f"{ratio_phrase(facts['smaller_than_dense_fp16_stored'], 'stored')}"
        )
        echo(f"      labels: {facts['label_codec_summary']}")
        echo(f"      verify: {'OK' if report.ok else 'DAMAGED: ' + '; '.join(report.problems)}")
    echo(f"done in {time.perf_counter() - t0:.0f} s; inspect with `lplabel info {dense}`")
    return results
