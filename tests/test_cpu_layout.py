"""Every batch lplabel hands to a network on the CPU is plain NCHW (lplabel.memory_format).

The reason (docs/cpu.md): oneDNN's AVX2 weight-gradient kernel for 1x1 stride-2 convolutions with
fewer than 8 input channels corrupts memory on channels-last input (oneDNN issue 6035). The
end-to-end checks run in a subprocess with ``ONEDNN_MAX_CPU_ISA=AVX2``, so the buggy kernel is the
one torch picks also on an AVX-512 machine: repeated teacher and student training must give the
same weights, with 1 and 2 torch threads, for one- and three-channel images and for the shipped
models with small-channel stride-2 shortcuts (and the process must not abort).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from lplabel import datasets as D
from lplabel.teachers import models as M
from lplabel import teachers as T
from lplabel.memory_format import contiguous_strides, network_input, network_module, plain_nchw, use_channels_last

REPO = Path(__file__).resolve().parents[1]

pytest.importorskip("sklearn")


def _canonical(x: torch.Tensor) -> bool:
    return x.stride() == contiguous_strides(x.shape)


def _one_channel_permuted(n=4, s=6) -> torch.Tensor:
    return torch.arange(n * s * s, dtype=torch.float32).reshape(n, s, s, 1).permute(0, 3, 1, 2)


# ------------------------------------------------------------------------------------ the rule
def test_contiguous_is_not_enough_for_one_channel():
    x = _one_channel_permuted()
    # torch calls it contiguous in both layouts: .contiguous() keeps the channels-last strides
    assert x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)
    assert not _canonical(x.contiguous()) and not _canonical(x.contiguous(memory_format=torch.contiguous_format))
    y = plain_nchw(x)
    assert _canonical(y) and torch.equal(y, x)
    assert y.data_ptr() == x.data_ptr()  # same bytes, only the size-1 dimension's stride rewritten
    # what torch's convolution makes of it: NHWC for the permuted strides, NCHW for the plain ones
    w = torch.rand(4, 1, 3, 3)
    assert torch.nn.functional.conv2d(x, w).is_contiguous(memory_format=torch.channels_last)
    assert _canonical(torch.nn.functional.conv2d(y, w))


def test_plain_nchw_copies_real_channels_last():
    x = torch.rand(2, 3, 5, 5).contiguous(memory_format=torch.channels_last)
    y = network_input(x)
    assert _canonical(y) and torch.equal(x, y)
    assert network_input(torch.rand(3, 4)).shape == (3, 4)  # other ranks pass
    e = network_input(torch.zeros(0, 1, 4, 4).permute(0, 1, 3, 2))
    assert e.shape == (0, 1, 4, 4)


def test_channels_last_only_on_cuda():
    x = _one_channel_permuted()
    assert _canonical(network_input(x, channels_last=True))  # the CPU ignores the request
    assert not use_channels_last("cpu", True) and not use_channels_last("cpu", None)
    assert use_channels_last("cuda", None) and not use_channels_last("cuda", False)


def test_network_module_restrides_channels_last_weights():
    net = M.resnet_tiny(num_classes=3, in_channels=1, width=4).to(memory_format=torch.channels_last)
    shortcut = net.layers[1].shortcut[0].weight  # the 4 -> 8 stride-2 1x1 convolution
    assert not _canonical(shortcut)
    net = network_module(net, "cpu", channels_last=True)  # CPU: the request is ignored
    assert all(_canonical(p) for p in net.parameters() if p.dim() == 4)


# ------------------------------------------------------------------------------- the call sites
def test_teacher_batches_are_plain_nchw():
    g = torch.Generator().manual_seed(0)
    for c in (1, 3):
        x = torch.rand(5, c, 8, 8) * 255
        for pad, flip in ((0, False), (2, False), (2, True)):
            assert _canonical(T.random_crop_flip(x, pad, flip, g))
        imgs = (np.random.default_rng(0).random((5, 8, 8, c)) * 255).astype(np.uint8)
        assert _canonical(T.images_to_tensor(imgs)) and _canonical(T.images_to_tensor(imgs, dtype=torch.uint8))


class _StrideProbe(torch.nn.Module):
    """A real (tiny) network that records the strides of every batch it is given."""

    def __init__(self, in_channels=1, num_classes=10):
        super().__init__()
        self.net = M.resnet_tiny(num_classes=num_classes, in_channels=in_channels, width=4)
        self.seen: list[bool] = []

    def forward(self, x):
        self.seen.append(x.stride() == contiguous_strides(x.shape))
        return self.net(x)


def _identity_crop_store(tmp_path, images, teacher):
    """A store whose views are whole images at their own size: the renderer copies their pixels
    (gather + permute), the path that used to hand out channels-last one-channel batches."""
    from lplabel.relabel import relabel

    return relabel(
        images,
        teacher,
        tmp_path / "id.lpl",
        epochs=2,
        batch_size=20,
        size=8,
        crop_scale=(1.0, 1.0),
        crop_ratio=(1.0, 1.0),
        seed=0,
        progress=False,
    )


def test_relabeler_and_loader_hand_out_plain_nchw(tmp_path):
    from lplabel.torch import ReplayLoader

    images = D.load_dataset("digits", limit_per_class=4)
    probe = _StrideProbe()
    store = _identity_crop_store(tmp_path, images, probe)
    assert probe.seen and all(probe.seen)
    loader = ReplayLoader(store, images, temperature=1.0, seed=0)
    shapes = []
    for batch in loader:
        assert _canonical(batch.images), batch.images.stride()
        shapes.append(tuple(batch.images.shape))
    assert shapes and all(s[1] == 1 for s in shapes)


# ------------------------------------------------------------------ AVX2 kernel, end to end
_SCRIPT = r"""
import json, sys
import numpy as np, torch
torch.set_num_threads(int(sys.argv[1]))
from lplabel import datasets as D
from lplabel.images import ImageSet
from lplabel.experiment.harness.student import StudentRecipe, train_student
from lplabel.relabel import relabel
from lplabel.teachers import teacher_checksum, train_teacher

out = sys.argv[2]
gray = D.load_dataset("digits", limit_per_class=4)
test = D.load_dataset("digits", "test", limit_per_class=2)
rgb = ImageSet(images=np.repeat(gray.images, 3, axis=-1), classes=gray.classes, keys=gray.keys,
               class_names=gray.class_names)
rgb_test = ImageSet(images=np.repeat(test.images, 3, axis=-1), classes=test.classes, keys=test.keys,
                    class_names=test.class_names)
# every shipped model; width 4: the first downsampling block has a 4 -> 8 stride-2 1x1 shortcut
models = {"convnet": {"width": 8, "depth": 2}, "resnet_tiny": {"width": 4}, "resnet18_small": {"width": 4}}
res = {}
for name, images, tst in (("1ch", gray, test), ("3ch", rgb, rgb_test)):
    for m, kw in models.items():
        a = train_teacher(images, m, epochs=2, batch_size=16, model_kwargs=kw)
        b = train_teacher(images, m, epochs=2, batch_size=16, model_kwargs=kw)
        store = relabel(images, a, f"{out}/{name}-{m}.lpl", epochs=2, batch_size=20, size=8, crop_scale=(1.0, 1.0),
                        crop_ratio=(1.0, 1.0), seed=0, progress=False)
        recipe = StudentRecipe(model=m, model_kwargs=kw, epochs=2, num_workers=0)
        s1 = train_student(store, images, tst, recipe, seed=0, progress=False)
        s2 = train_student(store, images, tst, recipe, seed=0, progress=False)
        res[f"{name}/{m}"] = {"teacher": [teacher_checksum(a), teacher_checksum(b)],
                              "student": [s1["student_checksum"], s2["student_checksum"]]}
print(json.dumps(res))
"""


@pytest.mark.slow
@pytest.mark.parametrize("threads", [1, 2])
def test_training_repeats_exactly_on_the_avx2_kernel(tmp_path, threads):
    env = dict(
        os.environ,
        ONEDNN_MAX_CPU_ISA="AVX2",
        OMP_NUM_THREADS=str(threads),
        PYTHONPATH=os.pathsep.join([str(REPO)] + [p for p in [os.environ.get("PYTHONPATH")] if p]),
    )
    p = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(threads), str(tmp_path)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
    )
    # with one thread the unfixed kernel corrupts the heap: the process aborts (signal, no JSON)
    assert p.returncode == 0, f"exit {p.returncode}\n{p.stderr[-3000:]}"
    res = json.loads(p.stdout.strip().splitlines()[-1])
    assert len(res) == 6
    differ = {k: [part for part in ("teacher", "student") if len(set(v[part])) != 1] for k, v in res.items()}
    assert not any(differ.values()), f"repeated training gave different weights: {differ}"
