"""Label sources behind the loader's StepBatch: the online teacher (issue 16).

A real digits teacher (trained by lplabel), a real relabelled store (dense fp32 and fp16), and
the same views labelled online: the logits must equal the stored ones up to float rounding.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from lplabel.codecs import default_label_codecs
from lplabel.torch import (
    DeviceUnavailableError,
    LabelSourceMismatchError,
    LabelSourceWarning,
    OnlineTeacher,
    ReplayLoader,
    TeacherDeviceError,
)

from relabel_helpers import one_torch_thread  # noqa: F401  (autouse fixture)

EPOCHS = 6


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from lplabel.datasets import load_dataset
    from lplabel.experiment.harness.distill import random_real
    from lplabel.relabel import run_relabel
    from lplabel.teachers import train_teacher

    tmp = tmp_path_factory.mktemp("online")
    train = load_dataset("digits", "train")
    with torch.random.fork_rng(devices=[]):
        teacher = train_teacher(
            train, "convnet", epochs=3, batch_size=64, lr=0.05, seed=0, model_kwargs={"width": 16, "depth": 2}
        )
    distilled = random_real(train, 4, seed=0)  # 40 images
    stores = {}
    for typ in ("float32", "float16"):
        p = tmp / f"{typ}.lpl"
        run_relabel(
            distilled,
            teacher,
            p,
            epochs=EPOCHS,
            batch_size=16,
            crop_scale=(0.25, 1.0),
            device="cpu",
            label_codecs=default_label_codecs("dense", type=typ),
            progress=False,
            teacher_check=False,
        )
        stores[typ] = p
    return {"teacher": teacher.eval(), "images": distilled, "stores": stores, "train": train, "tmp": tmp}


def _epochs(loader, epochs=EPOCHS):
    out = []
    for e in range(epochs):
        loader.set_epoch(e)
        out.extend(loader)
    return out


@pytest.mark.parametrize("typ,tol", [("float32", 0.0), ("float16", None)])
def test_online_logits_equal_stored(setup, typ, tol):
    """Every step of every epoch: the online teacher's logits equal the store's (fp32: exactly on
    this CPU -- same views, same forward; fp16: to fp16 rounding, |z| * 2^-11)."""
    p = setup["stores"][typ]
    stored = _epochs(ReplayLoader(p, setup["images"], labels="raw", normalize="0-255", temperature=2.0))
    online = _epochs(
        ReplayLoader(
            p,
            setup["images"],
            labels="raw",
            normalize="0-255",
            temperature=2.0,
            label_source=OnlineTeacher(setup["teacher"]),
        )
    )
    assert len(stored) == len(online) == EPOCHS * 3
    worst, worst_rel = 0.0, 0.0
    for a, b in zip(stored, online):
        assert (a.epoch, a.stored_epoch, a.stored_step) == (b.epoch, b.stored_epoch, b.stored_step)
        assert torch.equal(a.images, b.images)  # the same replayed, mixed views
        za, zb = a.label["logits"].float(), b.label["logits"]
        assert zb.dtype == torch.float32 and zb.shape == za.shape == (len(a), 10)
        d = (za - zb).abs()
        worst = max(worst, float(d.max()))
        worst_rel = max(worst_rel, float((d / zb.abs().clamp_min(2.0**-14)).max()))
    if tol is not None:
        assert worst <= tol
    else:  # fp16 keeps 11 significant bits: relative error <= 2^-11 (subnormals aside)
        assert 0.0 < worst and worst_rel <= 2.0**-11 + 1e-7


def test_online_probs_temperature_and_pixels(setup):
    """Dense probabilities at the step's temperature equal the fp32 store's; normalize= applies
    after the teacher (which saw 0..255)."""
    p = setup["stores"]["float32"]
    kw = dict(temperature=lambda e: 1.0 + e, normalize="0-1")
    stored = _epochs(ReplayLoader(p, setup["images"], **kw), 3)
    online = _epochs(ReplayLoader(p, setup["images"], label_source=setup["teacher"], **kw), 3)
    for a, b in zip(stored, online):
        assert a.temperature == b.temperature == 1.0 + a.epoch
        assert float((a.probs - b.probs).abs().max()) <= 1e-6
        assert b.pixels == "0-1" and torch.equal(a.images, b.images) and float(b.images.max()) <= 1.0


def test_online_with_workers_and_device_rendering(setup):
    """Workers render, the main process labels: the same batches as in-process, bit for bit;
    rendering on the device (here the CPU bank path) too."""
    p = setup["stores"]["float16"]
    base = _epochs(ReplayLoader(p, setup["images"], labels="raw", normalize="0-255", label_source=setup["teacher"]), 2)
    work = _epochs(
        ReplayLoader(
            p,
            setup["images"],
            labels="raw",
            normalize="0-255",
            num_workers=2,
            persistent_workers=True,
            label_source=OnlineTeacher(setup["teacher"]),
        ),
        2,
    )
    dev = _epochs(
        ReplayLoader(
            p,
            setup["images"],
            labels="raw",
            normalize="0-255",
            render_on="device",
            label_source=OnlineTeacher(setup["teacher"]),
        ),
        2,
    )
    for a, b, c in zip(base, work, dev):
        assert torch.equal(a.images, b.images) and torch.equal(a.label["logits"], b.label["logits"])
        assert torch.equal(a.images, c.images) and torch.equal(a.label["logits"], c.label["logits"])


def test_online_ddp_shards(setup):
    """DDP: rank r's online labels are the labels the store hands rank r."""
    p = setup["stores"]["float32"]
    for rank in (0, 1):
        kw = dict(labels="raw", normalize="0-255", rank=rank, world_size=2)
        a = list(ReplayLoader(p, setup["images"], **kw))
        b = list(ReplayLoader(p, setup["images"], label_source=OnlineTeacher(setup["teacher"]), **kw))
        assert [x.position for x in a] == [x.position for x in b] and len(a) >= 1
        assert all(torch.equal(x.label["logits"].float(), y.label["logits"]) for x, y in zip(a, b))


def test_online_unmixed_views_get_mixed_labels(setup):
    """apply_mix=False (legacy loops mix later): the teacher still labels the mixed views."""
    p = setup["stores"]["float32"]
    stored = list(ReplayLoader(p, setup["images"], labels="raw", normalize="0-255", apply_mix=False))
    online = list(
        ReplayLoader(
            p,
            setup["images"],
            labels="raw",
            normalize="0-255",
            apply_mix=False,
            label_source=OnlineTeacher(setup["teacher"]),
        )
    )
    assert any(b.mixed for b in online)
    for a, b in zip(stored, online):
        assert torch.equal(a.images, b.images)  # unmixed, as asked
        assert torch.equal(a.label["logits"], b.label["logits"])


def test_online_stats(setup):
    src = OnlineTeacher(setup["teacher"])
    n = len(list(ReplayLoader(setup["stores"]["float32"], setup["images"], normalize="0-255", label_source=src)))
    st = src.stats()
    assert st["calls"] == n == 3 and st["views"] == 40 and st["seconds"] > 0
    assert st["checkpoint_bytes"] > sum(p.numel() * 4 for p in setup["teacher"].parameters())
    assert st["flops_per_view"] > 0


def test_online_onnx_teacher_ships_its_file_and_counts_its_graph(setup):
    """An ONNX teacher (the 1000-class preset's) has no state dict: its checkpoint is the .onnx file,
    its FLOPs are counted from the graph -- the same count torch gives for the module it came from."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from lplabel.teachers.onnx import OnnxTeacher, onnx_flops_per_view
    from lplabel.teachers.onnx_export import export_teacher

    teacher = setup["teacher"]
    ck = setup["tmp"] / "t.pt"
    torch.save(teacher.state_dict(), ck)
    path = setup["tmp"] / "t.onnx"
    export_teacher(teacher.factory_spec, path, checkpoint=ck, channels=1, input_size=8, check_images=setup["images"])
    src = OnlineTeacher(OnnxTeacher(path))
    got = _epochs(ReplayLoader(setup["stores"]["float32"], setup["images"], normalize="0-255", label_source=src), 1)
    want = _epochs(ReplayLoader(setup["stores"]["float32"], setup["images"], normalize="0-255"), 1)
    for a, b in zip(got, want):  # onnxruntime's float32 against the eager teacher's stored float32
        assert (a.label["logits"] - b.label["logits"]).abs().max() < 1e-3
    st = src.stats()
    assert path.stat().st_size <= st["checkpoint_bytes"] < path.stat().st_size + 2048
    eager = OnlineTeacher(teacher)
    ReplayLoader(setup["stores"]["float32"], setup["images"], normalize="0-255", label_source=eager)
    assert st["flops_per_view"] == pytest.approx(eager.flops_per_view, rel=1e-6)  # both: conv + linear, 2 per MAC
    assert st["calls"] == 3 and st["ms_per_step"] > 0
    assert onnx_flops_per_view(setup["tmp"] / "missing.onnx", (1, 8, 8)) is None  # informative: never raises


# ------------------------------------------------------------------------------------ bad input
def test_class_count_mismatch(setup):
    from relabel_helpers import TinyTeacher

    with pytest.raises(LabelSourceMismatchError, match="gives 7 classes, the store's labels have 10"):
        ReplayLoader(
            setup["stores"]["float32"],
            setup["images"],
            normalize="0-255",
            label_source=TinyTeacher(in_channels=1, num_classes=7),
        )


def test_input_size_mismatch(setup):
    """A ConvNet built for 16x16 inputs cannot take the store's 8x8 views."""
    from lplabel.teachers.models import Normalized, convnet

    net = Normalized(convnet(num_classes=10, in_channels=1, width=8, depth=2, image_size=32), [0.5], [0.25])
    with pytest.raises(LabelSourceMismatchError, match=r"fails on the store's views \(float32 \[B, 1, 8, 8\]"):
        ReplayLoader(setup["stores"]["float32"], setup["images"], normalize="0-255", label_source=net.eval())


def test_channel_mismatch(setup):
    from relabel_helpers import TinyTeacher

    with pytest.raises(LabelSourceMismatchError, match="fails on the store's views"):
        ReplayLoader(
            setup["stores"]["float32"],
            setup["images"],
            normalize="0-255",
            label_source=TinyTeacher(in_channels=3, num_classes=10),
        )


def test_teacher_that_cannot_run_on_the_device(setup):
    """A teacher with no data behind its weights (built on the meta device) cannot be moved to
    the CPU; a GPU-only teacher fails on a CPU device: both named before any step is read."""
    from relabel_helpers import TinyTeacher

    with torch.device("meta"):
        ghost = TinyTeacher(in_channels=1, num_classes=10)
    with pytest.raises(TeacherDeviceError, match="cannot be moved to cpu"):
        ReplayLoader(setup["stores"]["float32"], setup["images"], normalize="0-255", label_source=ghost)
    if not torch.cuda.is_available():

        class GpuOnly(nn.Module):
            def __init__(self, inner):
                super().__init__()
                self.inner = inner

            def forward(self, x):
                return self.inner(x.to("cuda"))

        with pytest.raises(TeacherDeviceError, match="fails on cpu"):
            ReplayLoader(
                setup["stores"]["float32"], setup["images"], normalize="0-255", label_source=GpuOnly(setup["teacher"])
            )
        with pytest.raises(DeviceUnavailableError):
            ReplayLoader(
                setup["stores"]["float32"],
                setup["images"],
                normalize="0-255",
                device="cuda",
                label_source=setup["teacher"],
            )


def test_other_weights_warn_and_bad_arguments(setup):
    from relabel_helpers import TinyTeacher

    with pytest.warns(LabelSourceWarning, match="not the ones the store was labelled with"):
        ReplayLoader(
            setup["stores"]["float32"],
            setup["images"],
            normalize="0-255",
            label_source=TinyTeacher(in_channels=1, num_classes=10),
        )
    with warnings.catch_warnings():
        warnings.simplefilter("error", LabelSourceWarning)
        ReplayLoader(
            setup["stores"]["float32"],
            setup["images"],
            normalize="0-255",
            label_source=OnlineTeacher(TinyTeacher(in_channels=1, num_classes=10), check_checksum=False),
        )
    with pytest.raises(ValueError, match="labels must be 'dense' or 'raw'"):
        ReplayLoader(
            setup["stores"]["float32"],
            setup["images"],
            labels="sparse",
            normalize="0-255",
            label_source=setup["teacher"],
        )
    with pytest.raises(ValueError, match="pass the images"):
        ReplayLoader(setup["stores"]["float32"], None, label_source=setup["teacher"])
    with pytest.raises(TypeError, match="label_source must be"):
        ReplayLoader(setup["stores"]["float32"], setup["images"], normalize="0-255", label_source="teacher.pt")


def test_students_trained_online_equal_students_trained_from_the_fp32_store(setup):
    """At training scale (every step of every epoch, a real student): the labels are the fp32
    store's bit for bit on this CPU, so the trained students are identical weights."""
    from lplabel.experiment.harness.student import StudentRecipe, train_student
    from lplabel.datasets import load_dataset

    test = load_dataset("digits", "test", limit_per_class=20)
    recipe = StudentRecipe(
        model="convnet", model_kwargs={"width": 16, "depth": 2}, lr=3e-3, temperature=2.0, epochs=EPOCHS, amp=False
    )
    p = setup["stores"]["float32"]
    stored = train_student(p, setup["images"], test, recipe, seed=3, progress=False)
    src = OnlineTeacher(setup["teacher"])
    online = train_student(p, setup["images"], test, recipe, seed=3, progress=False, label_source=src)
    assert online["steps"] == stored["steps"] == EPOCHS * 3
    assert online["student_checksum"] == stored["student_checksum"] and online["top1"] == stored["top1"]
    assert online["label_source"]["calls"] == EPOCHS * 3 and "label_source" not in stored
