"""The relabeler's writer thread says whether the teacher loop ever waited on it (issue 17).

A fast teacher must never wait on encoding and writing; when it does, the relabel summary says how
long. These tests make the writer slow on purpose (a progress callback that blocks, which runs in
the writer thread) and check that the waits are counted, and that a real run's summary carries the
writer line.
"""

from __future__ import annotations

import threading
from types import SimpleNamespace

import numpy as np
import torch

from lplabel import StoreWriter, open_store
from lplabel.relabel import run_relabel
from lplabel.relabel.writer_thread import WriterStats, WriterThread

from relabel_helpers import one_torch_thread  # noqa: F401  (autouse fixture)
from relabel_helpers import TinyTeacher, digits_small

C, B = 10, 4


def _views(b):
    return SimpleNamespace(
        image=np.arange(b, dtype=np.int32),
        crop=np.tile(np.float32([0, 0, 1, 1]), (b, 1)),
        flip=np.zeros(b, bool),
        mix_partner=np.full(b, -1, np.int16),
        mix_lambda=float("nan"),
        mix_box=np.zeros(4, np.int16),
    )


def test_waits_on_a_slow_writer_are_counted(tmp_path):
    release, first = threading.Event(), threading.Event()

    def on_step(n):  # runs in the writer thread: the first step holds it until released
        first.set()
        release.wait(30)

    def open_part(j):
        return StoreWriter(
            tmp_path / "p.lpl",
            num_classes=C,
            images=B,
            batch_size=B,
            epochs=1,
            steps_per_epoch=4,
            label_input="logits",
            steps_per_chunk=1,
            overwrite=True,
        )

    w = WriterThread(open_part, {0: 3}, label_input="logits", maxsize=1, on_step=on_step)
    z = {"logits": torch.randn(B, C)}
    w.submit(0, 0, 0, _views(B), z)
    assert first.wait(30)  # the writer holds step 0; the queue has one slot
    w.submit(0, 0, 1, _views(B), z)  # fills the queue
    timer = threading.Timer(0.2, release.set)
    timer.start()
    w.submit(0, 0, 2, _views(B), z)  # must wait until the writer takes step 1
    w.finish()
    timer.join()
    st = w.stats
    assert st.steps == 3 and st.waits == 1 and st.wait_seconds > 0 and st.busy_seconds > 0
    assert "waited" in st.describe(1.0) and "1 of 3 steps" in st.describe(1.0)
    assert open_store(tmp_path / "p.lpl").num_steps == 3


def test_a_writer_that_keeps_up_is_never_waited_on():
    st = WriterStats(steps=5, busy_seconds=0.5, drain_seconds=0.01)
    assert st.describe(2.0).startswith("writer: never waited on") and "25% of the loop" in st.describe(2.0)


def test_relabel_summary_reports_the_writer(tmp_path):
    lines = []
    rep = run_relabel(
        digits_small(4),
        TinyTeacher(1, 10),
        tmp_path / "r.lpl",
        epochs=1,
        batch_size=8,
        size=8,
        seed=1,
        progress=False,
        teacher_description="tiny",
        teacher_check=False,
        log=lines.append,
    )
    assert rep.writer is not None and rep.writer.steps == rep.steps_computed > 0
    text = "\n".join(lines)
    assert "writer: " in text, text
