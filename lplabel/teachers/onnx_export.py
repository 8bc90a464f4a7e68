"""Export an lplabel teacher to ONNX and check the graph against PyTorch (``lplabel export-teacher``).

Apart from :mod:`lplabel.teachers.onnx` (which runs ``.onnx`` teachers and is imported by
:func:`lplabel.teachers.load_teacher`) because exporting needs :mod:`lplabel.teachers` itself:
one module each keeps the import graph free of cycles.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import TeacherError
from ..errors import first_line as _first_line
from .onnx import DEFAULT_TOLERANCE, INPUT_CONVENTION, META_KEY, OPSET, OnnxTeacher, OnnxTeacherError


# --------------------------------------------------------------------------------------- export
def export_teacher(
    spec: str,
    out,
    *,
    checkpoint=None,
    normalize=None,
    random_weights: bool = False,
    input_size: int | None = None,
    channels: int = 3,
    check_images=None,
    check_count: int = 8,
    tolerance: float = DEFAULT_TOLERANCE,
    force: bool = False,
    log=None,
) -> dict:
    """Export the lplabel teacher ``spec`` (any :func:`~lplabel.teachers.load_teacher` spec) to
    ``out`` (ONNX, dynamic batch dimension, normalisation inside, metadata :data:`META_KEY`), then
    run both on ``check_images`` (uint8 [N, H, W, C] real images, resized to the input size) and
    refuse -- deleting nothing but the temporary file -- when the logits differ by more than
    ``tolerance``. Returns the facts (``max_abs_diff``, ``top1_agreement``, ``path``, ...).

    ``input_size``: the side of the example input the graph is traced at (default: the teacher's
    native size -- 224 for EfficientNet-Lite0 -- or 32). The graph takes exactly that side: a
    teacher that resizes its input (EfficientNet-Lite) is traced without the resize when the
    sizes agree. Written to a temporary name in the same folder, renamed when checked.
    """
    from ..deps import require

    require("onnxruntime", "lplabel export-teacher")  # all three before any work
    require("onnx", "lplabel export-teacher")
    from . import load_teacher, teacher_checksum
    from .models import input_normalization

    say = log or (lambda s: None)
    out = Path(out)
    if out.exists() and not force:
        from ..errors import OutputExistsError

        raise OutputExistsError("output exists", path=out, hint="choose another name or pass --force")
    if not out.parent.is_dir():
        raise TeacherError(f"output directory does not exist: {out.parent}")
    if check_images is None or len(check_images) == 0:
        raise TeacherError(
            "export-teacher needs real images to check the export on",
            hint="pass --images (an image folder, .npz pack or built-in data set)",
        )
    model = load_teacher(
        spec, checkpoint=checkpoint, device="cpu", normalize=normalize, random_weights=random_weights
    ).eval()
    if input_size is None:
        input_size = int(getattr(model, "input_size", 0) or 32)
    source = spec if checkpoint is None else f"{spec} @ {Path(checkpoint).name}"
    record = {
        "source": source,
        "checksum": teacher_checksum(model),
        "normalization": input_normalization(model),
        "input": INPUT_CONVENTION,
        "input_size": int(input_size),
        "exporter": "torch.onnx (TorchScript-based)",
        "torch": torch.__version__,
    }
    x = _check_batch(check_images, int(input_size), channels, check_count)
    fd, tmp = tempfile.mkstemp(prefix=out.name + ".", suffix=".tmp", dir=out.parent)
    os.close(fd)
    try:
        _export(model, x[:1], tmp, record)
        with torch.inference_mode():
            ref = model(x).float()
        onnx_model = OnnxTeacher(tmp)
        with torch.inference_mode():
            got = onnx_model(x)
        if got.shape != ref.shape:
            raise OnnxTeacherError(f"the exported graph returns {tuple(got.shape)}, PyTorch {tuple(ref.shape)}")
        diff = float((got - ref).abs().max())
        agree = float((got.argmax(1) == ref.argmax(1)).double().mean())
        facts = {
            "path": str(out),
            "source": source,
            "input_size": int(input_size),
            "images": int(len(x)),
            "num_outputs": int(ref.shape[1]),
            "max_abs_diff": diff,
            "max_abs_logit": float(ref.abs().max()),
            "top1_agreement": agree,
            "tolerance": float(tolerance),
            "checksum": record["checksum"],
            "normalization": record["normalization"],
        }
        if not diff <= tolerance:
            raise OnnxTeacherError(
                f"the ONNX export of {source} differs from PyTorch by max |dlogit| {diff:.3g} > tolerance "
                f"{tolerance:g} on {len(x)} real images (top-1 agreement {100 * agree:.1f}%); nothing written",
                hint="raise --tolerance if this is rounding, or check the model for train-mode layers",
            )
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)  # mkstemp's 0600 is for the temporary name only
        os.replace(tmp, out)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    say(
        f"{out}: ONNX (opset {OPSET}) of {source}, input [batch, {channels}, {input_size}, {input_size}] "
        f"0..255 pixels, {facts['num_outputs']} outputs; ONNX vs PyTorch on {len(x)} real images: max |dlogit| "
        f"{diff:.3g} (logits up to {facts['max_abs_logit']:.3g}), top-1 agreement {100 * agree:.1f}%"
    )
    return facts


def _check_batch(images, size: int, channels: int, count: int) -> torch.Tensor:
    """The first ``count`` images as float32 NCHW 0..255 at ``size`` (bicubic, clamped)."""
    from . import images_to_tensor

    imgs = images.images if hasattr(images, "images") else images
    picked = [np.asarray(imgs[i]) for i in range(min(int(count), len(imgs)))]
    out = []
    for a in picked:
        t = images_to_tensor(a[None]).float()
        if t.shape[1] != channels:
            t = t.expand(-1, channels, -1, -1) if t.shape[1] == 1 else t[:, :channels]
        if t.shape[-2:] != (size, size):
            t = torch.nn.functional.interpolate(t, size=(size, size), mode="bicubic", align_corners=False).clamp_(
                0, 255
            )
        out.append(t)
    return torch.cat(out).contiguous()


def _export(model: nn.Module, example: torch.Tensor, path, record: dict) -> None:
    """TorchScript-based ``torch.onnx.export`` (``dynamo=False``: needs no onnxscript, traces the
    EfficientNet-Lite body and lplabel's wrappers as they run), dynamic batch, then the metadata."""
    import warnings

    import onnx

    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(
                model,
                (example,),
                path,
                input_names=["pixels"],
                output_names=["logits"],
                dynamic_axes={"pixels": {0: "batch"}, "logits": {0: "batch"}},
                opset_version=OPSET,
                dynamo=False,
            )
        except Exception as e:  # noqa: BLE001 - the exporter's failures become one line
            raise OnnxTeacherError(
                f"torch.onnx could not export {record['source']}: {_first_line(e)}",
                hint="the model must be traceable (no data-dependent control flow)",
            ) from None
    m = onnx.load(path)
    del m.metadata_props[:]
    prop = m.metadata_props.add()
    prop.key, prop.value = META_KEY, json.dumps(record, sort_keys=True)
    m.producer_name = "lplabel"
    onnx.save(m, path)
