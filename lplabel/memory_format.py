"""The memory layout of every batch (and network) lplabel hands to a network: one rule, here.

Rule: on the CPU, plain NCHW — the canonical contiguous strides ``(C*H*W, H*W, W, 1)``, checked
stride by stride; channels-last (NHWC) only on CUDA, and only when asked for.

Why strides and not ``.contiguous()``: with a size-1 dimension (one-channel images, 1×1
spatial maps) a tensor can be "contiguous" and "channels-last contiguous" at once — torch skips
size-1 dimensions in both tests, so ``.contiguous()`` (also with
``memory_format=torch.contiguous_format``) returns it unchanged. A one-channel batch built with a
permute (``[N, H, W, 1] → [N, 1, H, W]``) keeps the strides ``(H*W, 1, W, 1)``, torch's
convolutions read those as channels-last, and the whole network then runs NHWC.

Why it matters: oneDNN's AVX2 kernel for the weight gradient of a 1×1 stride-2 convolution
with fewer than 8 input channels writes past its workspace for NHWC input (oneDNN issue 6035,
open; torch 2.x CPU builds on CPUs without AVX-512, or with ``ONEDNN_MAX_CPU_ISA=AVX2``): the
gradient is wrong and differs from run to run, and with one thread the process can abort
(``double free or corruption``). ``resnet_tiny``'s 4→8 shortcut is such a convolution. On NCHW
input oneDNN takes another path, which is correct. See docs/cpu.md.
"""

from __future__ import annotations

import torch
from torch import nn


def contiguous_strides(shape) -> tuple[int, ...]:
    """The canonical row-major (NCHW for 4-D) strides of ``shape``."""
    strides, step = [], 1
    for size in reversed(tuple(shape)):
        strides.append(step)
        step *= max(int(size), 1)
    return tuple(reversed(strides))


def plain_nchw(x: torch.Tensor) -> torch.Tensor:
    """``x`` with exactly the canonical contiguous strides (a copy only when the data must move).

    When ``x.is_contiguous()`` already holds, the elements sit in row-major order and only the
    strides of size-1 dimensions can differ; those are rewritten without copying.
    """
    x = x.contiguous()
    want = contiguous_strides(x.shape)
    if x.stride() != want and x.numel() > 0:
        x = x.as_strided(x.shape, want)
    return x


def use_channels_last(device, requested: bool | None) -> bool:
    """Whether a network on ``device`` runs channels-last: only on CUDA; there it is the
    caller's choice (``None``: on). On the CPU always off (see the module doc)."""
    return torch.device(device).type == "cuda" and requested is not False


def network_input(x: torch.Tensor, channels_last: bool = False) -> torch.Tensor:
    """A 4-D batch laid out for a network on ``x``'s device: channels-last when
    ``channels_last`` and ``x`` is on CUDA, plain NCHW strides otherwise. Other ranks pass."""
    if x.dim() != 4:
        return x
    if channels_last and x.device.type == "cuda":
        return x.contiguous(memory_format=torch.channels_last)
    return plain_nchw(x)


def network_module(module: nn.Module, device, channels_last: bool = False) -> nn.Module:
    """``module`` moved to ``device`` in the matching layout: channels-last weights when
    ``channels_last`` and ``device`` is CUDA; otherwise every 4-D parameter and buffer gets plain
    contiguous strides (a channels-last 1×1 kernel also sends torch's convolution down the NHWC
    path, whatever the input's layout). TorchScript modules are moved only."""
    module = module.to(device)
    if channels_last and torch.device(device).type == "cuda":
        return module.to(memory_format=torch.channels_last)
    if isinstance(module, torch.jit.ScriptModule):
        return module
    with torch.no_grad():
        for t in list(module.parameters()) + list(module.buffers()):
            if t.dim() == 4 and t.stride() != contiguous_strides(t.shape):
                t.data = plain_nchw(t.data)
    return module
