"""Teachers for the relabeler: loading specs (ensembles), describing them, running them fast."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from .errors import RelabelError, TeacherOutputError

AMP_DTYPES = {"bfloat16": torch.bfloat16, "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}


def load_teachers(
    specs: Sequence[str], checkpoints: Sequence[str | None] = (), normalize=None, random_weights: bool = False
):
    """Load one teacher per spec (``lplabel.teachers.load_teacher``); several make an Ensemble.

    ``random_weights``: allow ``torchvision:``/``timm:`` teachers without pretrained weights.
    A spec ending in ``.onnx`` is run by onnxruntime (:mod:`lplabel.teachers.onnx`); its
    description names the file, its sha256 and what it was exported from.

    ``checkpoints``: empty, or one entry per spec (``None``/``"-"``/``"none"`` for no checkpoint),
    or a single checkpoint when there is a single spec. Returns ``(module, description)``.
    """
    from ..teachers import Ensemble, load_teacher

    specs = list(specs)
    if not specs:
        raise RelabelError("no teacher given", hint="pass --teacher SPEC (a TorchScript file or module:factory)")
    cks = [None if c in (None, "", "-", "none") else c for c in checkpoints]
    if not cks:
        cks = [None] * len(specs)
    if len(cks) != len(specs):
        raise RelabelError(
            f"{len(specs)} teachers but {len(cks)} checkpoints",
            hint="give --checkpoint once per --teacher, in the same order ('-' for none)",
        )
    from ..teachers.onnx import is_onnx_path, require_onnxruntime

    for spec in specs:  # the missing optional package is named before any teacher is loaded
        if is_onnx_path(spec):
            require_onnxruntime(f"the ONNX teacher {spec}")
    members, parts = [], []
    for spec, ck in zip(specs, cks):
        members.append(
            load_teacher(spec, checkpoint=ck, device="cpu", normalize=normalize, random_weights=random_weights)
        )
        if is_onnx_path(spec):
            parts.append(members[-1].describe())
        else:
            parts.append(spec if ck is None else f"{spec} @ {Path(ck).name}")
    if len(members) == 1:
        return members[0], parts[0]
    return Ensemble(members).eval(), f"ensemble (mean logits) of {len(members)}: " + " + ".join(parts)


def describe_teacher(
    teacher: nn.Module,
    description: str | None = None,
    checksum: str | None = None,
    precision: str = "float32",
    class_map: dict | None = None,
) -> dict:
    """The header ``teacher`` object: description, checksum, temperature 1.0 (raw logits), extras."""
    from ..teachers import teacher_checksum

    if description is None:
        description = type(teacher).__name__
    if checksum is None:
        checksum = teacher_checksum(teacher)
    from ..teachers.models import input_normalization

    out = {
        "description": str(description),
        "checksum": checksum,
        "temperature": 1.0,
        "precision": precision,
        "normalization": input_normalization(teacher),
    }  # spec §2.3: replay needs it
    if class_map is not None:
        out["class_map"] = class_map
    return out


def resolve_device(device) -> torch.device:
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RelabelError("CUDA device requested but torch sees no GPU", hint="use --device cpu or auto")
    return dev


def amp_settings(device: torch.device, amp: bool, amp_dtype: str = "auto"):
    """(autocast context factory, precision name) for the teacher forward."""
    if not amp:
        return contextlib.nullcontext, "float32"
    if amp_dtype in (None, "auto"):
        if device.type == "cuda":
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        else:
            dtype = torch.bfloat16
    else:
        if amp_dtype not in AMP_DTYPES:
            raise RelabelError(f"unknown AMP dtype {amp_dtype!r}; use bfloat16 or float16")
        dtype = AMP_DTYPES[amp_dtype]
    name = "bfloat16" if dtype == torch.bfloat16 else "float16"
    return (lambda: torch.autocast(device_type=device.type, dtype=dtype)), f"{name}-autocast"


def prepare_teacher(
    teacher: nn.Module, device: torch.device, channels_last: bool, precision: str = "float32"
) -> nn.Module:
    """The teacher on ``device`` in the loop's layout. ONNX teachers (also inside an ensemble or a
    ``Normalized`` wrapper) are checked here, before any work: onnxruntime must have the device's
    execution provider, and autocast (``precision`` other than float32) is refused -- it does not
    reach onnxruntime, so the header would name a precision the teacher did not run at."""
    from ..memory_format import network_module
    from ..teachers.onnx import OnnxTeacher

    onnx = [m for m in teacher.modules() if isinstance(m, OnnxTeacher)]
    for m in onnx:
        m.check_device(device)
    if onnx and precision != "float32":
        raise RelabelError(
            f"--amp ({precision}) does not apply to an ONNX teacher: onnxruntime runs the graph in "
            "the precision it was exported at",
            hint="drop --amp (or export a float16 graph yourself)",
        )
    return network_module(teacher, device, channels_last).eval()


def load_class_map(spec, images, teacher_width: int | None = None):
    """Resolve a class map: None, ``"in1k"`` (the image set's ``in1k_index``), a file, or ints.

    Returns ``(int64 array or None, header description or None)``. Entry ``c`` is the teacher
    output that holds class ``c`` of the image set; the store keeps ``logits[:, class_map]``.
    """
    if spec is None:
        return None, None
    desc: dict
    if isinstance(spec, str):
        if spec.lower() in ("in1k", "in1k_index", "auto"):
            meta = getattr(images, "meta", {}) or {}
            idx = meta.get("in1k_index", getattr(images, "in1k_index", None))
            if idx is None:
                raise RelabelError(
                    "class map 'in1k' needs an image set with an in1k_index (Tiny-ImageNet)",
                    hint="pass a file of teacher output indices instead (.npy or one int per line)",
                )
            arr, desc = np.asarray(idx, dtype=np.int64), {"kind": "index", "source": "in1k_index"}
        else:
            p = Path(spec)
            if not p.is_file():
                raise RelabelError(
                    f"class map file not found: {p}",
                    hint="a .npy array or a text file with one teacher output index per class",
                )
            try:
                arr = np.load(p) if p.suffix == ".npy" else np.loadtxt(p, dtype=np.int64, ndmin=1)
            except (OSError, ValueError) as e:
                raise RelabelError(f"cannot read class map {p}: {e}") from None
            arr, desc = np.asarray(arr, dtype=np.int64).reshape(-1), {"kind": "index", "source": os.fspath(p.name)}
    else:
        arr, desc = np.asarray(spec, dtype=np.int64).reshape(-1), {"kind": "index", "source": "given"}
    if teacher_width is not None and len(arr) and (arr.min() < 0 or arr.max() >= teacher_width):
        raise TeacherOutputError(
            f"class map indices must lie in [0, {teacher_width}) (the teacher's outputs), "
            f"got [{arr.min()}, {arr.max()}]"
        )
    desc["indices"] = arr.tolist()
    return arr, desc
