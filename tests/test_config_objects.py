"""The frozen config objects of run_relabel (lplabel.relabel.config) and StoreWriter
(lplabel.store.writer_options): checked alone, equivalent to the former keyword arguments, which
still work for one release."""

from __future__ import annotations

import dataclasses
import inspect

import numpy as np
import pytest

from lplabel import StoreWriter, open_store
from lplabel.codecs import default_label_codecs
from lplabel.errors import WriterError
from lplabel.relabel import (
    LabelsConfig,
    OutputConfig,
    ProcessConfig,
    Pruning,
    RelabelConfig,
    RelabelError,
    TeacherConfig,
    ViewsPolicy,
    relabel,
    run_relabel,
)
from lplabel.relabel.config import LEGACY_KWARGS
from lplabel.store.writer_options import LabelColumn, LabelInput, StoreLayout, ViewColumns, writer_options

from relabel_helpers import one_torch_thread  # noqa: F401  (autouse fixture)
from relabel_helpers import TinyTeacher, assert_same_content, digits_small

#: the keyword arguments run_relabel took before RelabelConfig (all still accepted)
FORMER_RUN_RELABEL_KWARGS = {
    "epochs",
    "batch_size",
    "size",
    "crop_scale",
    "crop_ratio",
    "flip_p",
    "mix",
    "mix_alpha",
    "seed",
    "drop_last",
    "device",
    "amp",
    "amp_dtype",
    "channels_last",
    "keep",
    "keep_seed",
    "reuse",
    "keep_unit",
    "keep_metric",
    "topk",
    "values",
    "index_type",
    "tail",
    "index_coding",
    "zstd_level",
    "label_codecs",
    "steps_per_chunk",
    "class_map",
    "teacher_description",
    "teacher_checksum",
    "force",
    "fresh",
    "work_dir",
    "steps_per_part",
    "rank",
    "world_size",
    "merge",
    "bank_device",
    "queue_size",
    "progress",
    "views",
    "threads",
    "teacher_check",
}

BASE = dict(epochs=3, batch_size=16, size=8, seed=7, progress=False, teacher_description="tiny", teacher_check=False)


@pytest.fixture(scope="module")
def digits():
    return digits_small(8)  # 80 real images, 8x8x1, 10 classes


@pytest.fixture(scope="module")
def teacher():
    return TinyTeacher(1, 10)


# -- relabel ------------------------------------------------------------------------------------
def test_every_former_keyword_has_one_field():
    assert set(LEGACY_KWARGS) == FORMER_RUN_RELABEL_KWARGS
    fields = [LEGACY_KWARGS[k] for k in FORMER_RUN_RELABEL_KWARGS]
    assert len(set(fields)) == len(fields)  # no two keywords land on one field
    cfg = RelabelConfig()
    for part, name in fields:
        assert hasattr(getattr(cfg, part), name)


def test_defaults_and_round_trip():
    cfg = RelabelConfig.from_kwargs(
        epochs=5, topk=3, teacher_description="t", label_codecs=None, views="stored", threads=2, keep=0.5
    )
    assert cfg.views == ViewsPolicy(epochs=5) and cfg.labels == LabelsConfig(topk=3)
    assert cfg.teacher.description == "t" and cfg.output.views == "stored" and cfg.process.threads == 2
    assert cfg.pruning == Pruning(keep=0.5)
    assert RelabelConfig.from_kwargs(**cfg.to_kwargs()) == cfg
    assert RelabelConfig.from_kwargs() == RelabelConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.views.epochs = 1


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: ViewsPolicy(epochs=0), "epochs must be >= 1"),
        (lambda: ViewsPolicy(batch_size=40000), "batch size in [1, 32767]"),
        (lambda: ViewsPolicy(seed=-1), "seed must be in"),
        (lambda: OutputConfig(views="both"), "views must be 'derived' or 'stored'"),
        (lambda: OutputConfig(steps_per_chunk=0), "steps_per_chunk must be >= 1"),
        (lambda: OutputConfig(steps_per_part=0), "steps_per_part must be >= 1"),
        (lambda: RelabelConfig.from_kwargs(epochs=-3), "epochs must be >= 1"),
    ],
)
def test_config_checks_alone(make, message):
    with pytest.raises(RelabelError, match=message.replace("[", r"\[").replace("]", r"\]")):
        make()


def test_wrong_arguments_are_type_errors(digits, teacher, tmp_path):
    with pytest.raises(TypeError, match="unexpected keyword argument 'epoch'"):
        run_relabel(digits, teacher, tmp_path / "a.lpl", epoch=3)
    with pytest.raises(TypeError, match="not both"):
        run_relabel(digits, teacher, tmp_path / "a.lpl", RelabelConfig(), epochs=3)
    with pytest.raises(TypeError, match="must be a RelabelConfig"):
        run_relabel(digits, teacher, tmp_path / "a.lpl", {"epochs": 3})
    with pytest.raises(TypeError, match="views must be a ViewsPolicy"):
        RelabelConfig(views="derived")
    assert not (tmp_path / "a.lpl").exists() and not list(tmp_path.iterdir())


def test_config_run_equals_keyword_run(digits, teacher, tmp_path):
    """The same run given as a RelabelConfig and as the former keyword arguments: same store, same summary."""
    kw = dict(BASE, topk=3, values="fp32", keep=0.5, keep_seed=2, steps_per_part=2)
    cfg = RelabelConfig(
        views=ViewsPolicy(epochs=3, batch_size=16, size=8, seed=7),
        pruning=Pruning(keep=0.5, keep_seed=2),
        teacher=TeacherConfig(description="tiny", check=False),
        labels=LabelsConfig(topk=3, values="fp32"),
        output=OutputConfig(steps_per_part=2),
        process=ProcessConfig(progress=False),
    )
    assert RelabelConfig.from_kwargs(**kw) == cfg
    logs = {}
    for name, args in (("kw", ((), kw)), ("cfg", ((cfg,), {}))):
        lines = logs[name] = []
        rep = run_relabel(digits, teacher, tmp_path / f"{name}.lpl", *args[0], log=lines.append, **args[1])
        assert rep.merged and rep.views_computed > 0
    assert_same_content(tmp_path / "kw.lpl", tmp_path / "cfg.lpl")
    strip = [
        [line.replace(f"{name}.lpl", "OUT").split(" in ")[0] for line in lines if not line.startswith("  ")]
        for name, lines in logs.items()
    ]
    assert strip[0] == strip[1] and strip[0][0].startswith("relabelled")
    assert relabel(digits, teacher, tmp_path / "r.lpl", cfg) == tmp_path / "r.lpl"
    assert "config" in inspect.signature(relabel).parameters


# -- store writer -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "legacy, typed",
    [
        ("logits", LabelInput()),
        (("topk", 5), LabelInput.topk(5)),
        (["topk", np.int64(5), "tail"], LabelInput.topk(5, tail=True)),
        (("topk", 5, "indices"), LabelInput.topk(5, indices_only=True)),
    ],
)
def test_label_input_parses_the_former_forms(legacy, typed):
    li = LabelInput.parse(legacy)
    assert li == typed and LabelInput.parse(li) is li
    assert LabelInput.parse(li.legacy()) == li
    names = [f.name for f in li.fields(10)]
    assert names == (
        ["logits"]
        if legacy == "logits"
        else ["indices"] + (["values"] if not li.indices_only else []) + (["tail"] if li.tail else [])
    )


@pytest.mark.parametrize("bad", ["dense", ("topk",), ("topk", 0), ("topk", 3, "mean"), ("topk", "k"), 5])
def test_label_input_refuses_other_forms(bad):
    with pytest.raises(WriterError, match=r"label_input must be 'logits', \('topk', k\)"):
        LabelInput.parse(bad)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: LabelInput("topk", 3, tail=True, indices_only=True), "label_input must be"),
        (lambda: LabelInput("logits", 3), "label_input must be"),
        (lambda: LabelColumn(stage=-1), "label_stage must be an integer >= 0"),
        (lambda: ViewColumns(crop_type="float64"), "crop_type must be float32 or float16"),
        (lambda: ViewColumns(crop_type="float16", derived=np.full((4, 2), 8)), "derived views need crop_type float32"),
        (lambda: StoreLayout(steps_per_chunk=0), "steps_per_chunk must be >= 1"),
    ],
)
def test_writer_options_check_alone(make, message):
    with pytest.raises(WriterError, match=message):
        make()


def test_writer_options_map_the_former_keywords():
    labels, views, layout = writer_options(
        label_input=("topk", 4),
        label_stage=1,
        crop_type="float16",
        steps_per_chunk=3,
        packed_tables=False,
        zstd_level=5,
    )
    assert labels == LabelColumn(input=LabelInput.topk(4), stage=1)
    assert views.crop_type == "float16" and views.derived is None
    assert layout == StoreLayout(steps_per_chunk=3, packed_tables=False, zstd_level=5)
    with pytest.raises(TypeError, match="both layout= and steps_per_chunk="):
        writer_options(layout=StoreLayout(), steps_per_chunk=2)
    with pytest.raises(TypeError, match="unexpected keyword argument 'labels_input'"):
        writer_options(labels_input="logits")


@pytest.fixture(scope="module")
def source(tmp_path_factory, digits, teacher):
    """A relabelled top-k store (real images, a teacher's labels) whose steps are re-written below."""
    out = tmp_path_factory.mktemp("src") / "src.lpl"
    return relabel(digits, teacher, out, **BASE, topk=4, values="fp32")


def _rewrite(src, dst, **options):
    s = open_store(src)
    h = s.header
    try:
        with StoreWriter(
            dst,
            num_classes=s.num_classes,
            images=digits_small(8),
            batch_size=s.batch_size,
            epochs=s.epochs,
            steps_per_epoch=s.steps_per_epoch,
            augmentation=h["augmentation"],
            teacher=h["teacher"],
            seed=h["seed"],
            **options,
        ) as w:
            for i in range(s.num_steps):
                r = s.step_at(i)
                w.write_step(
                    r.epoch,
                    r.step,
                    image=r.image,
                    crop=r.crop,
                    flip=r.flip,
                    mix_partner=r.mix_partner,
                    mix_lambda=r.mix_lambda,
                    mix_box=r.mix_box,
                    topk_indices=r.label["indices"],
                    topk_values=r.label["values"],
                )
    finally:
        s.close()
    return dst


@pytest.mark.parametrize("derived", [False, True])
def test_writer_objects_equal_former_keywords(source, tmp_path, derived):
    chain = default_label_codecs("topk", k=4, type="float32", level=5)
    sizes = digits_small(8).sizes() if derived else None
    old = _rewrite(
        source,
        tmp_path / "old.lpl",
        label_codecs=chain,
        label_input=("topk", 4),
        steps_per_chunk=2,
        zstd_level=5,
        derived_views=sizes,
        header_copy=False,
    )
    new = _rewrite(
        source,
        tmp_path / "new.lpl",
        labels=LabelColumn(chain, LabelInput.topk(4)),
        views=ViewColumns(derived=sizes),
        layout=StoreLayout(steps_per_chunk=2, zstd_level=5, header_copy=False),
    )
    assert_same_content(old, new)
    assert old.stat().st_size == new.stat().st_size
    with open_store(new) as s:
        assert s.header["chunking"]["steps_per_chunk"] == 2


def test_writer_errors_name_the_file(tmp_path):
    with pytest.raises(WriterError, match="label_input must be") as e:
        StoreWriter(tmp_path / "x.lpl", num_classes=10, images=8, batch_size=4, epochs=1, label_input=("topk", 0))
    assert str(tmp_path / "x.lpl") in str(e.value)
    with pytest.raises(TypeError, match="both labels= and label_codecs="):
        StoreWriter(
            tmp_path / "x.lpl",
            num_classes=10,
            images=8,
            batch_size=4,
            epochs=1,
            labels=LabelColumn(),
            label_codecs=default_label_codecs("dense"),
        )
    assert not list(tmp_path.iterdir())  # nothing left behind
