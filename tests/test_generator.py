"""The ``label_generator`` extension (spec/FORMAT.md §12): format, golden file, training, loader, CLI."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from lplabel import StoreWriter, open_store, verify_store
from lplabel.cli import main
from lplabel.codecs import default_label_codecs
from lplabel.errors import ChecksumError, HeaderError, UnsupportedExtensionError
from lplabel.generator import (
    GeneratorBudgetError,
    choose_for_budget,
    decode,
    encode,
    entry_bytes,
    estimate_bytes,
    make_architecture,
    num_params,
    tensor_layout,
)
from lplabel.store import store_info
from lplabel.torch import (
    GeneratorNet,
    LabelSourceMismatchError,
    OnlineTeacher,
    ReplayLoader,
    StoredGenerator,
    distill_generator,
)

from relabel_helpers import one_torch_thread  # noqa: F401  (autouse fixture)

GOLDEN = Path(__file__).resolve().parent / "golden" / "generator"
EXPECTED = json.loads((GOLDEN / "expected.json").read_text())
NAME = "packed-top1-none-generator-v1"
NAME_V2 = "packed-top1-none-generator-v2"  # convnet-lite-v2: 16-px views pooled to 6 px
GOLDEN_NAMES = (NAME, NAME_V2)


def _golden_images(name=NAME):
    from lplabel import ImageSet

    # as tests/golden/make_golden_generator.py draws them
    rng = np.random.default_rng(2026 if name == NAME else 2027)
    imgs = rng.integers(0, 256, (12, 8, 8, 3), dtype=np.uint8)
    return ImageSet(imgs, np.arange(12) % 5, [f"class{i % 5}/img{i}.png" for i in range(12)])


def _inputs(name=NAME):
    side = EXPECTED[name]["architecture"]["input_size"]
    rng = np.random.default_rng(77)
    return rng.integers(0, 256, (3, 3, side, side)).astype(np.float32)


# ------------------------------------------------------------------------------------ golden
@pytest.mark.parametrize("name", GOLDEN_NAMES)
def test_golden_generator_reads_back(name):
    path = GOLDEN / f"{name}.lpl"
    exp = EXPECTED[name]
    assert verify_store(path).ok
    with open_store(path) as s:
        entry = s.header["extensions"]["label_generator"]
        assert entry["must_understand"] is True and entry["crc32"] == exp["crc32"]
        arch, tensors = decode(entry, s.num_classes)
    assert arch == exp["architecture"]
    raw = b"".join(np.asarray(tensors[n], "<f4").astype("<f2").tobytes() for n, _ in tensor_layout(arch))
    assert hashlib.sha256(raw).hexdigest() == exp["weights_sha256"] and len(raw) == exp["nbytes"]
    # the torch forward equals the spec's, computed independently in float64 when the file was written
    z = GeneratorNet.from_tensors(arch, tensors)(torch.from_numpy(_inputs(name))).detach().numpy()
    np.testing.assert_allclose(z, np.asarray(exp["logits"]), atol=2e-4)
    info = store_info(path)
    assert info["bytes_by_field"]["label_generator"] == info["label_generator"]["bytes"] == entry_bytes(entry)
    assert sum(info["bytes_by_field"].values()) == info["file_bytes"]


def test_golden_v2_pools_the_view_before_its_convolutions():
    """convnet-lite-v2 is v1 run on the view average-pooled to ``resolution`` (spec §12.2)."""
    with open_store(GOLDEN / f"{NAME_V2}.lpl") as s:
        arch, tensors = decode(s.header["extensions"]["label_generator"], s.num_classes)
        assert s.header["augmentation"]["output_size"] == arch["input_size"] == 16
    assert arch["name"] == "convnet-lite-v2" and arch["resolution"] == 6
    v1 = {k: v for k, v in arch.items() if k != "resolution"}
    v1.update(name="convnet-lite-v1", input_size=6)
    x = torch.from_numpy(_inputs(NAME_V2))
    z2 = GeneratorNet.from_tensors(arch, tensors)(x)
    z1 = GeneratorNet.from_tensors(v1, tensors)(torch.nn.functional.adaptive_avg_pool2d(x, 6))
    assert torch.equal(z1, z2)
    text = store_info(GOLDEN / f"{NAME_V2}.lpl")["label_generator"]["text"]
    assert "input 3x16x16 pooled to 6x6" in text


@pytest.mark.parametrize("name", GOLDEN_NAMES)
def test_golden_generator_labels_the_loader_by_default(name):
    path = GOLDEN / f"{name}.lpl"
    images = _golden_images(name)
    gen = list(ReplayLoader(path, images, labels="raw", normalize="0-255"))
    col = list(ReplayLoader(path, images, labels="raw", normalize="0-255", label_source="column"))
    with open_store(path) as s:
        net = GeneratorNet.from_tensors(*decode(s.header["extensions"]["label_generator"]))
    for a, b in zip(gen, col):
        assert torch.equal(a.images, b.images)
        assert torch.equal(a.label["logits"], net(a.images).detach())  # the generator's labels
        assert set(b.label) == {"indices"}  # the column: top-1 class indices only
    with pytest.raises(ValueError, match="from a generator.*pass the images"):
        ReplayLoader(path, None)


def test_a_reader_without_the_extension_refuses_it(monkeypatch):
    from lplabel.store import header

    monkeypatch.setattr(header, "KNOWN_EXTENSIONS", frozenset({"packed_tables"}))
    with pytest.raises(UnsupportedExtensionError, match="label_generator"):
        open_store(GOLDEN / f"{NAME}.lpl")


def test_a_reader_that_knows_only_v1_refuses_v2_by_name(monkeypatch):
    from lplabel import generator

    monkeypatch.setattr(generator, "_ARCH_KEYS_BY_NAME", {"convnet-lite-v1": generator._ARCH_KEYS})
    monkeypatch.setattr(generator, "ARCHITECTURES", ("convnet-lite-v1",))
    with pytest.raises(HeaderError, match="unknown generator architecture 'convnet-lite-v2'.*upgrade lplabel"):
        open_store(GOLDEN / f"{NAME_V2}.lpl")
    assert open_store(GOLDEN / f"{NAME}.lpl").header["extensions"]["label_generator"]  # v1 still reads


# ------------------------------------------------------------------------------------ format
def _arch(**kw):
    base = dict(in_channels=1, input_size=8, num_classes=10, width=8, depth=2)
    base.update(kw)
    return make_architecture(**base)


def test_round_trip_and_layout():
    arch = _arch(rank=4)
    rng = np.random.default_rng(0)
    t = {n: rng.standard_normal(s).astype(np.float32) for n, s in tensor_layout(arch)}
    entry = encode(arch, t, dtype="float32")
    a, back = decode(entry, 10)
    assert a == arch and all(np.array_equal(back[n], t[n]) for n in t)
    assert entry["nbytes"] == 4 * num_params(arch)
    half = decode(encode(arch, t), 10)[1]
    assert all(np.array_equal(half[n], t[n].astype(np.float16).astype(np.float32)) for n in t)
    assert estimate_bytes(arch) >= entry_bytes(encode(arch, t)) > 2 * num_params(arch)


def _write(tmp_path, entry, name="x.lpl"):
    from loader_helpers import make_images
    from lplabel.views import AugmentPolicy

    iset = make_images(n=8, hw=(8, 8))
    with StoreWriter(
        tmp_path / name,
        num_classes=10,
        images=iset,
        batch_size=4,
        epochs=1,
        augmentation=AugmentPolicy(output_size=8).to_json(),
        extensions={"label_generator": entry},
        overwrite=True,
    ) as w:
        w.write_step(
            0,
            0,
            image=np.arange(4),
            crop=np.tile([0, 0, 1, 1], (4, 1)),
            flip=np.zeros(4, bool),
            logits=np.zeros((4, 10), np.float32),
        )
        w.write_step(
            0,
            1,
            image=np.arange(4, 8),
            crop=np.tile([0, 0, 1, 1], (4, 1)),
            flip=np.zeros(4, bool),
            logits=np.zeros((4, 10), np.float32),
        )
    return tmp_path / name


def test_v2_only_when_it_pools():
    assert _arch()["name"] == "convnet-lite-v1" and "resolution" not in _arch()
    assert _arch(resolution=8) == _arch()  # pooling to the view's own side is v1: every reader reads it
    a = _arch(input_size=224, resolution=32, depth=2)
    assert a["name"] == "convnet-lite-v2" and a["resolution"] == 32 and a["grid"] == 4
    assert tensor_layout(a) == tensor_layout(_arch(input_size=32, depth=2))  # the same tensors as v1 at 32 px
    with pytest.raises(HeaderError, match=r"resolution must be an integer in 1..input_size \(8\), got 9"):
        _arch(resolution=9)
    bad = dict(a)
    del bad["resolution"]
    with pytest.raises(HeaderError, match=r"\(convnet-lite-v2\) must have exactly the keys"):
        encode(bad, {})
    with pytest.raises(HeaderError, match=r"\(convnet-lite-v1\) must have exactly the keys"):
        encode(dict(_arch(), resolution=4), {})


def test_bad_entries_are_refused_by_name(tmp_path):
    arch = _arch(in_channels=3)
    good = encode(arch, {n: np.zeros(s, np.float32) for n, s in tensor_layout(arch)})
    assert open_store(_write(tmp_path, good)).header["extensions"]["label_generator"]["crc32"] == good["crc32"]
    with pytest.raises(ChecksumError, match="label generator weights: CRC-32"):
        _write(tmp_path, dict(good, crc32=good["crc32"] ^ 1))
    with pytest.raises(HeaderError, match="tensors does not match"):
        _write(tmp_path, dict(good, tensors=good["tensors"][::-1]))
    with pytest.raises(HeaderError, match="makes 7 classes, the store has 10"):
        bad = _arch(num_classes=7)
        _write(tmp_path, encode(bad, {n: np.zeros(s, np.float32) for n, s in tensor_layout(bad)}))
    with pytest.raises(HeaderError, match="unknown generator architecture"):
        _write(tmp_path, dict(good, architecture=dict(arch, name="resnet-v9")))
    with pytest.raises(HeaderError, match="must_understand true"):
        _write(tmp_path, dict(good, must_understand=False))
    assert not list(tmp_path.glob(".*.tmp"))  # nothing left behind


def test_budget_choice():
    with pytest.raises(GeneratorBudgetError, match=r"smaller than the smallest generator \(1,"):
        choose_for_budget(500, in_channels=1, input_size=8, num_classes=10)
    sizes = []
    for budget in (2_000, 8_000, 30_000, 200_000):
        a = choose_for_budget(budget, in_channels=1, input_size=8, num_classes=10)
        assert estimate_bytes(a) <= budget
        sizes.append(num_params(a))
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1]
    big = choose_for_budget(300_000, in_channels=3, input_size=64, num_classes=1000)
    assert big["rank"] is not None  # 1000 classes: a low-rank head where a full one does not fit
    # 224-px views pooled to 32: v2, and the same size of network as at 32 px (the pooling has no weights)
    pooled = choose_for_budget(600_000, in_channels=3, input_size=224, num_classes=1000, resolution=32)
    at32 = choose_for_budget(600_000, in_channels=3, input_size=32, num_classes=1000)
    assert pooled["name"] == "convnet-lite-v2" and pooled["resolution"] == 32
    assert num_params(pooled) == num_params(at32) and estimate_bytes(pooled) <= 600_000


def test_budget_choice_gives_many_classes_a_head_of_rank_16():
    """From 128 classes on the chooser keeps the head rank >= 16 when any such generator fits (a
    narrower network if need be; the measured rank-4 heads at C = 1,000 starved), and falls back to
    the widest network otherwise; fewer classes keep the old rule."""
    kw = dict(in_channels=3, input_size=224, num_classes=1000, resolution=32)
    picks = {b: (a["width"], a["rank"]) for b in (60_000, 440_000, 600_000) for a in [choose_for_budget(b, **kw)]}
    assert picks == {60_000: (12, 16), 440_000: (96, 24), 600_000: (128, 16)}
    for b in (60_000, 440_000, 600_000):
        assert estimate_bytes(choose_for_budget(b, **kw)) <= b
    tiny = choose_for_budget(20_000, **kw)  # no rank-16 head fits 20 KB: the widest that does
    assert tiny["rank"] < 16 and estimate_bytes(tiny) <= 20_000
    few = choose_for_budget(440_000, in_channels=3, input_size=224, num_classes=100, resolution=32)
    assert few["rank"] is None or few["rank"] < few["width"]  # below 128 classes: ranks below the width


# ------------------------------------------------------------------------------------ training
EPOCHS = 4


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    from lplabel.datasets import load_dataset
    from lplabel.experiment.harness.distill import random_real
    from lplabel.relabel import run_relabel
    from lplabel.teachers import train_teacher

    tmp = tmp_path_factory.mktemp("gen")
    train = load_dataset("digits", "train")
    with torch.random.fork_rng(devices=[]):
        teacher = train_teacher(
            train, "convnet", epochs=3, batch_size=64, lr=0.05, seed=0, model_kwargs={"width": 16, "depth": 2}
        )
    images = random_real(train, 4, seed=0)
    store = tmp / "src.lpl"
    run_relabel(
        images,
        teacher,
        store,
        epochs=EPOCHS,
        batch_size=16,
        crop_scale=(0.25, 1.0),
        device="cpu",
        label_codecs=default_label_codecs("dense", type="float32"),
        progress=False,
        teacher_check=False,
    )
    return {"teacher": teacher.eval(), "images": images, "store": store, "tmp": tmp, "train": train}


def test_distill_writes_a_store_whose_generator_labels_the_views(digits):
    out = digits["tmp"] / "gen.lpl"
    lines = []
    rep = distill_generator(digits["store"], digits["images"], out, budget=8000, epochs=3 * EPOCHS, log=lines.append)
    assert rep["bytes"] <= 8000 and rep["targets"] == "stored labels" and rep["steps"] == 3 * EPOCHS * 3
    assert rep["top1_agreement"] > 0.3  # well above chance (0.1): it learnt the teacher's labels
    info = store_info(out)
    assert info["label_generator"]["bytes"] == rep["bytes"] == info["bytes_by_field"]["label_generator"]
    assert info["records"] == store_info(digits["store"])["records"] and verify_store(out).ok
    # the same views as the source store, labelled by the generator
    src = list(ReplayLoader(digits["store"], digits["images"], labels="raw", normalize="0-255"))
    gen = list(ReplayLoader(out, digits["images"], labels="raw", normalize="0-255"))
    col = list(ReplayLoader(out, digits["images"], labels="raw", normalize="0-255", label_source="column"))
    net = GeneratorNet.from_tensors(*decode(open_store(out).header["extensions"]["label_generator"]))
    for a, b, c in zip(src, gen, col):
        assert torch.equal(a.images, b.images)
        assert torch.equal(b.label["logits"], net(b.images).detach())
        # the label column keeps the source's top-1 class
        assert torch.equal(c.label["indices"][:, 0].long(), a.label["logits"].argmax(1))


def test_distill_pools_large_views_to_the_resolution(digits):
    """``resolution`` below the view size: a convnet-lite-v2 that labels the full-size views."""
    out = digits["tmp"] / "gen-pooled.lpl"
    lines = []
    rep = distill_generator(
        digits["store"], digits["images"], out, budget=8000, epochs=EPOCHS, resolution=4, log=lines.append
    )
    assert rep["architecture"]["name"] == "convnet-lite-v2" and rep["resolution"] == 4
    assert rep["network_seconds"] is not None and 0 < rep["network_seconds"] <= rep["seconds"]
    assert any("8-px views pooled to 4 px" in x for x in lines)
    assert verify_store(out).ok
    net = GeneratorNet.from_tensors(*decode(open_store(out).header["extensions"]["label_generator"]))
    for b in ReplayLoader(out, digits["images"], labels="raw", normalize="0-255"):
        assert b.images.shape[-1] == 8  # the loader renders the store's views; the generator pools them
        assert torch.equal(b.label["logits"], net(b.images).detach())
    # a given (width, rank) instead of the chooser's: checked against the budget before any work
    rep = distill_generator(
        digits["store"], digits["images"], digits["tmp"] / "gen-s.lpl", budget=8000, epochs=1, shape=(4, 6)
    )
    assert (rep["architecture"]["width"], rep["architecture"]["rank"]) == (4, 6) and rep["bytes"] <= 8000
    with pytest.raises(GeneratorBudgetError, match="width 64, rank None takes about"):
        distill_generator(digits["store"], digits["images"], digits["tmp"] / "no.lpl", budget=8000, shape=(64, None))
    assert not (digits["tmp"] / "no.lpl").exists()
    # the default on 8-px views: no pooling (min(8, 32)), convnet-lite-v1
    rep = distill_generator(digits["store"], digits["images"], digits["tmp"] / "gen-d.lpl", budget=4000, epochs=1)
    assert rep["architecture"]["name"] == "convnet-lite-v1" and rep["resolution"] == 8


def test_distill_from_the_teacher_online(digits):
    rep = distill_generator(
        digits["store"],
        digits["images"],
        digits["tmp"] / "gen-t.lpl",
        budget=8000,
        teacher=OnlineTeacher(digits["teacher"]),
    )
    assert rep["targets"] == "teacher (online)" and rep["top1_agreement"] > 0.2


def test_generator_errors_before_any_work(digits):
    out = digits["tmp"] / "never.lpl"
    with pytest.raises(GeneratorBudgetError):
        distill_generator(digits["store"], digits["images"], out, budget=900)
    from lplabel.generator import GeneratorError

    with pytest.raises(GeneratorError, match="resolution of 9 px does not fit the store's 8-px views"):
        distill_generator(digits["store"], digits["images"], out, budget=8000, resolution=9)
    assert not out.exists()
    # the golden generator (3 channels, 5 classes) on the digits store (1 channel, 10 classes)
    with pytest.raises(LabelSourceMismatchError, match="takes 3 channels, the images have 1; it makes 5 classes"):
        ReplayLoader(
            digits["store"], digits["images"], normalize="0-255", label_source=StoredGenerator(GOLDEN / f"{NAME}.lpl")
        )
    # a generator for 8x8 views on a store rendered at 6x6
    from lplabel.relabel import run_relabel
    from relabel_helpers import TinyTeacher

    small = digits["tmp"] / "six.lpl"
    run_relabel(
        digits["images"],
        TinyTeacher(in_channels=1, num_classes=10),
        small,
        epochs=1,
        batch_size=16,
        size=6,
        device="cpu",
        progress=False,
        teacher_check=False,
    )
    gen = digits["tmp"] / "gen8.lpl"
    distill_generator(digits["store"], digits["images"], gen, budget=4000, epochs=1)
    with pytest.raises(LabelSourceMismatchError, match="trained on 8x8 views, the store renders 6x6"):
        ReplayLoader(small, digits["images"], normalize="0-255", label_source=StoredGenerator(gen))
    with pytest.raises(LabelSourceMismatchError, match="holds no label generator"):
        ReplayLoader(digits["store"], digits["images"], normalize="0-255", label_source="generator")


def test_cli(digits, tmp_path, monkeypatch):
    from lplabel.relabel import run_relabel

    monkeypatch.chdir(tmp_path)
    train = digits["train"]
    run_relabel(
        train,
        digits["teacher"],
        tmp_path / "all.lpl",
        epochs=1,
        batch_size=128,
        device="cpu",
        progress=False,
        teacher_check=False,
    )
    r = CliRunner().invoke(main, ["distill-generator", "all.lpl", "digits:train", "-o", "g.lpl", "--budget", "300"])
    assert r.exit_code == 2 and "smaller than the smallest generator" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "g.lpl").exists()
    r = CliRunner().invoke(main, ["distill-generator", "all.lpl", "digits:train", "-o", "g.lpl", "--budget", "6000"])
    assert r.exit_code == 0, r.output
    assert "wrote g.lpl" in r.output and (tmp_path / "g.lpl").is_file()
    r = CliRunner().invoke(main, ["info", "g.lpl"])
    assert "label generator convnet-lite-v1" in r.output and "label_generator" in r.output
    args = ["distill-generator", "all.lpl", "digits:train", "-o", "p.lpl", "--budget", "6000", "--epochs", "1"]
    r = CliRunner().invoke(main, [*args, "--resolution", "4"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["info", "p.lpl"])
    assert "label generator convnet-lite-v2" in r.output and "pooled to 4x4" in r.output
    r = CliRunner().invoke(main, [*args, "--resolution", "9", "--force"])
    assert r.exit_code == 2 and "does not fit the store's 8-px views" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(main, ["distill-generator", "all.lpl", "digits:test", "-o", "h.lpl", "--budget", "6000"])
    assert r.exit_code == 2 and "the image set has" in r.output


def test_step_dataset_on_a_generator_store_says_what_the_column_is():
    from lplabel.torch import LabelSourceWarning, StepDataset

    with pytest.warns(LabelSourceWarning, match="made by its label generator"):
        StepDataset(GOLDEN / f"{NAME}.lpl", None, labels="raw")
