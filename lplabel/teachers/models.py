"""Small student/teacher networks in plain ``torch.nn``.

Input convention (every teacher and student in lplabel)
-------------------------------------------------------
Models that lplabel hands out or expects take **float32 NCHW pixel values in 0..255** (uint8
range, not normalised). Networks built by the factories here are *bare* (they expect whatever
their trainer feeds them); :class:`Normalized` wraps a bare network with per-channel
``mean``/``std`` buffers (in 0..1 units) and computes ``net((x / 255 - mean) / std)``, so the
wrapped module follows the convention. :func:`lplabel.teachers.train_teacher` returns such a
wrapper.

Factories are plain functions taking keyword arguments, so they can be named in a teacher spec,
e.g. ``lplabel.models:convnet{"num_classes": 10, "in_channels": 1, "width": 64}``.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Normalized(nn.Module):
    """``net((x / 255 - mean) / std)``: takes 0..255 float NCHW input.

    ``mean`` and ``std`` are per-channel, in 0..1 units, stored as buffers (so they travel in the
    state dict and in TorchScript). State-dict keys: ``normalize_mean``, ``normalize_std``,
    ``net.*``.
    """

    def __init__(self, net: nn.Module, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        mean_t = torch.as_tensor(mean, dtype=torch.float32).reshape(1, -1, 1, 1)
        std_t = torch.as_tensor(std, dtype=torch.float32).reshape(1, -1, 1, 1)
        if mean_t.shape != std_t.shape:
            raise ValueError(f"mean has {mean_t.numel()} channels, std {std_t.numel()}")
        if bool((std_t <= 0).any()):
            raise ValueError("std must be positive")
        self.register_buffer("normalize_mean", mean_t)
        self.register_buffer("normalize_std", std_t)
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x * (1.0 / 255.0) - self.normalize_mean) / self.normalize_std
        return self.net(x)


def is_normalized_state_dict(state: dict) -> bool:
    """Whether a state dict was taken from a :class:`Normalized` wrapper."""
    return "normalize_mean" in state and "normalize_std" in state and any(k.startswith("net.") for k in state)


def input_normalization(module: nn.Module):
    """The header's ``teacher.normalization`` (spec §2.3) of a teacher taking 0..255 views.

    ``{"mean": [...], "std": [...]}`` in pixel units (0..255) for a :class:`Normalized` teacher
    (also a TorchScript or state dict saved from one: its ``normalize_mean``/``normalize_std``);
    ``{"members": [...]}`` for an ensemble whose members differ (one entry per member); ``"none"``
    for any other module: it takes the 0..255 views as they are, whatever it does inside.
    """
    recorded = getattr(module, "recorded_normalization", None)  # an ONNX teacher: what its file records
    if recorded is not None:
        return recorded
    members = getattr(module, "members", None)
    if isinstance(members, nn.ModuleList) and len(members):
        each = [input_normalization(m) for m in members]
        return each[0] if all(e == each[0] for e in each) else {"members": each}
    state = module.state_dict()
    if "normalize_mean" in state and "normalize_std" in state:
        pix = lambda t: [float(v) * 255.0 for v in t.detach().double().reshape(-1).tolist()]  # noqa: E731
        return {"mean": pix(state["normalize_mean"]), "std": pix(state["normalize_std"])}
    return "none"


# ----------------------------------------------------------------------------------- ConvNet
def _norm(kind: str, channels: int) -> nn.Module:
    kind = kind.lower()
    if kind in ("instance", "instancenorm"):
        # as in the dataset-distillation ConvNet: GroupNorm with one group per channel
        return nn.GroupNorm(channels, channels, affine=True)
    if kind in ("group", "groupnorm"):
        return nn.GroupNorm(min(32, channels) if channels % min(32, channels) == 0 else 1, channels)
    if kind in ("batch", "batchnorm"):
        return nn.BatchNorm2d(channels)
    if kind in ("none", ""):
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}; use 'instance', 'group', 'batch' or 'none'")


class ConvNet(nn.Module):
    """The dataset-distillation ConvNet: ``depth`` × [conv3×3(width) → norm → ReLU → avgpool 2].

    The spatial size halves at each block while it is at least 2. The head is a linear layer on
    the flattened features when ``image_size`` is given (as in the papers: ConvNet-3 on 32×32
    flattens 128×4×4), otherwise on globally average-pooled features (any input size).
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 3,
        width: int = 128,
        depth: int = 3,
        norm: str = "instance",
        image_size: int | None = None,
    ):
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        layers: list[nn.Module] = []
        c, size = in_channels, image_size
        for _ in range(depth):
            layers += [
                nn.Conv2d(c, width, 3, padding=1, bias=norm.lower() in ("none", "")),
                _norm(norm, width),
                nn.ReLU(inplace=True),
            ]
            if size is None or size >= 2:
                layers.append(nn.AvgPool2d(2, 2))
                if size is not None:
                    size //= 2
            c = width
        self.features = nn.Sequential(*layers)
        if image_size is None:
            self.pool: nn.Module = nn.AdaptiveAvgPool2d(1)
            feat = width
        else:
            self.pool = nn.Identity()
            feat = width * size * size
        self.classifier = nn.Linear(feat, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


def convnet(
    num_classes: int = 10,
    in_channels: int = 3,
    width: int = 128,
    depth: int = 3,
    norm: str = "instance",
    image_size: int | None = None,
) -> ConvNet:
    """Factory for :class:`ConvNet` (bare: expects normalised input)."""
    return ConvNet(num_classes, in_channels, width, depth, norm, image_size)


# ----------------------------------------------------------------------------------- ResNet
class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        if stride != 1 or cin != cout:
            self.shortcut: nn.Module = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ResNetSmall(nn.Module):
    """ResNet with a 3×3 stride-1 stem and no max-pool (the CIFAR / Tiny-ImageNet variant).

    ``blocks`` gives the basic blocks per stage; stage widths are ``width × (1, 2, 4, 8)``;
    stages 2..4 downsample by 2; global average pooling, then a linear head.
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 3,
        width: int = 64,
        blocks: Sequence[int] = (2, 2, 2, 2),
    ):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, 1, 1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
        )
        stages: list[nn.Module] = []
        cin = width
        for i, n in enumerate(blocks):
            cout = width * (2**i)
            for j in range(n):
                stages.append(BasicBlock(cin, cout, 2 if (j == 0 and i > 0) else 1))
                cin = cout
        self.layers = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.layers(self.stem(x)))
        return self.fc(torch.flatten(x, 1))


def resnet18_small(num_classes: int = 10, in_channels: int = 3, width: int = 64) -> ResNetSmall:
    """ResNet-18 layout (2-2-2-2 basic blocks) with a 3×3 stem and no max-pool."""
    return ResNetSmall(num_classes, in_channels, width, (2, 2, 2, 2))


def resnet_tiny(num_classes: int = 10, in_channels: int = 3, width: int = 16) -> ResNetSmall:
    """A 1-1-1-1 block ResNet, narrow: a fast CPU teacher/student for tests and small runs."""
    return ResNetSmall(num_classes, in_channels, width, (1, 1, 1, 1))


#: short names accepted by :func:`lplabel.teachers.train_teacher` and :func:`build_model`
MODEL_FACTORIES = {
    "convnet": convnet,
    "resnet18_small": resnet18_small,
    "resnet_tiny": resnet_tiny,
}


def build_model(name: str, **kwargs) -> nn.Module:
    """A bare model from :data:`MODEL_FACTORIES` by short name (case-insensitive, ``-`` = ``_``)."""
    key = name.lower().replace("-", "_")
    if key not in MODEL_FACTORIES:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(MODEL_FACTORIES)}")
    return MODEL_FACTORIES[key](**kwargs)
