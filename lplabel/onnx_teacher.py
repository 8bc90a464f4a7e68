"""ONNX teachers: export any lplabel teacher to ONNX, and run an ``.onnx`` teacher with onnxruntime.

Why: on a CPU, EfficientNet-Lite0 runs several times faster under onnxruntime than in eager
PyTorch (``benchmarks/results/``), and the relabeler spends nearly all its time in the teacher.

Input convention
----------------
An ONNX teacher follows the same convention as every lplabel teacher: it takes **float32 NCHW
RGB pixels in 0..255** and returns ``[batch, classes]`` logits. :func:`export_teacher` exports the
lplabel teacher module *with* its normalisation (a :class:`~lplabel.models.Normalized` wrapper,
EfficientNet-Lite's ``(x - 127) / 128``), so the ``.onnx`` file takes 0..255 pixels as they are,
and records in the file's metadata (key :data:`META_KEY`, a JSON object):

* ``source``: the teacher spec it was exported from (plus the checkpoint's file name);
* ``checksum``: the source teacher's weight checksum (:func:`lplabel.teachers.teacher_checksum`,
  the header's ``teacher.checksum``), so stores relabelled with the ONNX file name the same weights;
* ``normalization``: the source's header ``teacher.normalization`` (spec §2.3) -- what happens to
  the 0..255 views inside the graph;
* ``input``: ``"float32 NCHW RGB 0..255"``, ``input_size`` (the side the graph was exported at).

A foreign ``.onnx`` file (no such metadata) is taken to follow the convention too, like a
TorchScript file; ``--normalize`` wraps it for 0..1 or ImageNet-normalised input. Its header
checksum is then the sha256 of the file's bytes (``"sha256-file:<hex>"``), since there is no
state dict to hash. The header description always names the file and its sha256.

onnxruntime is an optional dependency (extra ``onnx``: ``pip install 'lplabel[onnx]'``).
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .errors import TeacherError

#: metadata key (ONNX ``metadata_props``) holding lplabel's record of an exported teacher
META_KEY = "lplabel.teacher"
#: the input convention written into exported files
INPUT_CONVENTION = "float32 NCHW RGB 0..255"
#: ONNX opset of exported files (onnxruntime >= 1.14 runs it)
OPSET = 17
#: default largest accepted max |logit difference| between ONNX and PyTorch after export
DEFAULT_TOLERANCE = 1e-3


class OnnxTeacherError(TeacherError):
    """An ONNX teacher file that cannot be used (unreadable, wrong shapes, no such provider)."""


def require_onnxruntime(what: str) -> None:
    """Named error (extra ``onnx``) unless onnxruntime is installed; call before any work."""
    from .deps import require

    require("onnxruntime", what)


def is_onnx_path(spec) -> bool:
    """Whether a teacher spec names an ONNX file (by its ``.onnx`` suffix)."""
    return isinstance(spec, (str, os.PathLike)) and os.fspath(spec).strip().lower().endswith(".onnx")


def file_sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class OnnxTeacher(nn.Module):
    """An ``.onnx`` teacher run by onnxruntime behind a torch module's interface.

    ``forward`` takes the float32 NCHW 0..255 batch (any device, any strides), runs the graph on
    the CPU execution provider -- or CUDA's when the module was moved to a CUDA device -- with as
    many intra-op threads as torch has at that moment (so the relabeler's thread plan,
    :mod:`lplabel.threads`, decides for both), and returns float32 logits on the input's device.
    The module has no parameters: :attr:`checksum` and :attr:`recorded_normalization` stand in
    for what a state dict would say (see the module docstring).
    """

    def __init__(self, path):
        super().__init__()
        require_onnxruntime(f"the ONNX teacher {os.fspath(path)}")
        p = Path(path)
        if not p.is_file():
            raise OnnxTeacherError(f"ONNX teacher file not found: {p}",
                                   hint="pass an existing .onnx file (lplabel export-teacher writes one)")
        self.path = p
        self.file_sha256 = file_sha256(p)
        try:
            sess = self._session("cpu", 1)
        except Exception as e:  # noqa: BLE001 - any failure of onnxruntime's parser becomes one line
            raise OnnxTeacherError(f"cannot read ONNX teacher {p}: {_first_line(e)}",
                                   hint="re-export it with lplabel export-teacher") from None
        ins, outs = sess.get_inputs(), sess.get_outputs()
        if len(ins) != 1 or len(ins[0].shape) != 4:
            raise OnnxTeacherError(f"ONNX teacher {p} must take one 4-D input [batch, channels, height, width]; "
                                   f"it takes {[(i.name, i.shape) for i in ins]}",
                                   hint="export a single-input image classifier")
        if len(outs) < 1 or len(outs[0].shape) != 2:
            raise OnnxTeacherError(f"ONNX teacher {p} must return logits [batch, classes] as its first output; "
                                   f"it returns {[(o.name, o.shape) for o in outs]}")
        if ins[0].type != "tensor(float)":
            raise OnnxTeacherError(f"ONNX teacher {p} takes {ins[0].type}, not float32 pixels",
                                   hint="export it with a float32 input")
        self.input_name, self.output_name = ins[0].name, outs[0].name
        self.input_shape = list(ins[0].shape)
        w = outs[0].shape[1]
        #: the output width when the graph declares it (else None: the relabeler probes it)
        self.num_outputs = w if isinstance(w, int) else None
        meta = sess.get_modelmeta().custom_metadata_map or {}
        try:
            self.record = json.loads(meta[META_KEY]) if META_KEY in meta else None
        except ValueError:
            raise OnnxTeacherError(f"ONNX teacher {p}: its {META_KEY} metadata is not JSON",
                                   hint="re-export it with lplabel export-teacher") from None
        self._sessions = {("cpu", 1): sess}
        self.register_buffer("_where", torch.zeros(0), persistent=False)  # follows .to(device)

    # ----------------------------------------------------------------- header facts
    @property
    def checksum(self) -> str:
        rec = self.record or {}
        if isinstance(rec.get("checksum"), str):
            return rec["checksum"]
        return "sha256-file:" + self.file_sha256

    @property
    def recorded_normalization(self):
        """The header's ``teacher.normalization``: the exporter's record, else ``"none"``."""
        rec = self.record or {}
        return rec.get("normalization", "none")

    def describe(self) -> str:
        rec = self.record or {}
        src = f", exported by lplabel from {rec['source']}" if rec.get("source") else ", not exported by lplabel"
        return f"{self.path.name} (ONNX, file sha256:{self.file_sha256[:16]}{src})"

    # ----------------------------------------------------------------- running
    def _session(self, kind: str, threads: int):
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = int(threads)
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.log_severity_level = 3
        if kind.startswith("cuda"):
            idx = int(kind.split(":")[1]) if ":" in kind else 0
            providers = [("CUDAExecutionProvider", {"device_id": idx}), "CPUExecutionProvider"]
        else:
            providers = ["CPUExecutionProvider"]
        return ort.InferenceSession(os.fspath(self.path), sess_options=so, providers=providers)

    def check_device(self, device) -> None:
        """Named error, before any work, when ``device`` is CUDA but onnxruntime has no CUDA provider."""
        import onnxruntime as ort

        if torch.device(device).type == "cuda" and "CUDAExecutionProvider" not in ort.get_available_providers():
            raise OnnxTeacherError(
                f"the ONNX teacher {self.path.name} cannot run on {device}: this onnxruntime has no "
                f"CUDA execution provider (it has {', '.join(ort.get_available_providers())})",
                hint="pip install onnxruntime-gpu, or relabel with --device cpu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dev = self._where.device
        kind = "cpu" if dev.type != "cuda" else f"cuda:{dev.index or 0}"
        threads = torch.get_num_threads()
        key = (kind, threads if kind == "cpu" else 0)
        sess = self._sessions.get(key)
        if sess is None:
            sess = self._sessions[key] = self._session(kind, threads)
        want = self.input_shape
        if (x.ndim != 4 or (isinstance(want[1], int) and x.shape[1] != want[1])
                or any(isinstance(w, int) and w != s for w, s in zip(want[2:], x.shape[2:]))):
            raise ValueError(f"the ONNX teacher {self.path.name} takes input {want}, got {list(x.shape)}: relabel "
                             "at its size (--size) or re-export it with lplabel export-teacher --input-size")
        a = x.detach().to("cpu", torch.float32).contiguous().numpy()
        z = sess.run([self.output_name], {self.input_name: a})[0]
        return torch.from_numpy(np.ascontiguousarray(z, dtype=np.float32)).to(x.device)


def load_onnx_teacher(path, normalize=None) -> nn.Module:
    """An :class:`OnnxTeacher`; ``normalize`` as in :func:`lplabel.teachers.load_teacher` wraps it
    in :class:`~lplabel.models.Normalized` (refused for a file exported by lplabel, whose graph
    already normalises: that would normalise twice)."""
    from .teachers import _normalize_arg

    t = OnnxTeacher(path)
    norm = _normalize_arg(normalize)
    if norm:
        if t.record is not None:
            raise OnnxTeacherError(
                f"ONNX teacher {t.path.name} was exported by lplabel with its normalisation inside "
                f"({json.dumps(t.recorded_normalization)}); --normalize would apply a second one",
                hint="drop --normalize (or use --normalize auto)")
        from .models import Normalized

        wrapped = Normalized(t, norm[0], norm[1]).eval()
        wrapped.checksum = t.checksum  # the weights are the file's; the wrapper's statistics go in normalization
        wrapped.describe = t.describe
        return wrapped
    return t.eval()


def _first_line(e: BaseException) -> str:
    from .teachers import _first_line as fl

    return fl(e)


# --------------------------------------------------------------------------------------- export
def export_teacher(spec: str, out, *, checkpoint=None, normalize=None, random_weights: bool = False,
                   input_size: int | None = None, channels: int = 3, check_images=None, check_count: int = 8,
                   tolerance: float = DEFAULT_TOLERANCE, force: bool = False, log=None) -> dict:
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
    from .deps import require

    require("onnxruntime", "lplabel export-teacher")  # all three before any work
    require("onnx", "lplabel export-teacher")
    from .teachers import load_teacher, teacher_checksum
    from .models import input_normalization

    say = log or (lambda s: None)
    out = Path(out)
    if out.exists() and not force:
        from .errors import OutputExistsError

        raise OutputExistsError("output exists", path=out, hint="choose another name or pass --force")
    if not out.parent.is_dir():
        raise TeacherError(f"output directory does not exist: {out.parent}")
    if check_images is None or len(check_images) == 0:
        raise TeacherError("export-teacher needs real images to check the export on",
                           hint="pass --images (an image folder, .npz pack or built-in data set)")
    model = load_teacher(spec, checkpoint=checkpoint, device="cpu", normalize=normalize,
                         random_weights=random_weights).eval()
    if input_size is None:
        input_size = int(getattr(model, "input_size", 0) or 32)
    source = spec if checkpoint is None else f"{spec} @ {Path(checkpoint).name}"
    record = {"source": source, "checksum": teacher_checksum(model), "normalization": input_normalization(model),
              "input": INPUT_CONVENTION, "input_size": int(input_size), "exporter": "torch.onnx (TorchScript-based)",
              "torch": torch.__version__}
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
        facts = {"path": str(out), "source": source, "input_size": int(input_size), "images": int(len(x)),
                 "num_outputs": int(ref.shape[1]), "max_abs_diff": diff, "max_abs_logit": float(ref.abs().max()),
                 "top1_agreement": agree, "tolerance": float(tolerance), "checksum": record["checksum"],
                 "normalization": record["normalization"]}
        if not diff <= tolerance:
            raise OnnxTeacherError(
                f"the ONNX export of {source} differs from PyTorch by max |dlogit| {diff:.3g} > tolerance "
                f"{tolerance:g} on {len(x)} real images (top-1 agreement {100 * agree:.1f}%); nothing written",
                hint="raise --tolerance if this is rounding, or check the model for train-mode layers")
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)  # mkstemp's 0600 is for the temporary name only
        os.replace(tmp, out)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    say(f"{out}: ONNX (opset {OPSET}) of {source}, input [batch, {channels}, {input_size}, {input_size}] "
        f"0..255 pixels, {facts['num_outputs']} outputs; ONNX vs PyTorch on {len(x)} real images: max |dlogit| "
        f"{diff:.3g} (logits up to {facts['max_abs_logit']:.3g}), top-1 agreement {100 * agree:.1f}%")
    return facts


def _check_batch(images, size: int, channels: int, count: int) -> torch.Tensor:
    """The first ``count`` images as float32 NCHW 0..255 at ``size`` (bicubic, clamped)."""
    from .teachers import images_to_tensor

    imgs = images.images if hasattr(images, "images") else images
    picked = [np.asarray(imgs[i]) for i in range(min(int(count), len(imgs)))]
    out = []
    for a in picked:
        t = images_to_tensor(a[None]).float()
        if t.shape[1] != channels:
            t = t.expand(-1, channels, -1, -1) if t.shape[1] == 1 else t[:, :channels]
        if t.shape[-2:] != (size, size):
            t = torch.nn.functional.interpolate(t, size=(size, size), mode="bicubic",
                                                align_corners=False).clamp_(0, 255)
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
            torch.onnx.export(model, (example,), path, input_names=["pixels"], output_names=["logits"],
                              dynamic_axes={"pixels": {0: "batch"}, "logits": {0: "batch"}},
                              opset_version=OPSET, dynamo=False)
        except Exception as e:  # noqa: BLE001 - the exporter's failures become one line
            raise OnnxTeacherError(f"torch.onnx could not export {record['source']}: {_first_line(e)}",
                                   hint="the model must be traceable (no data-dependent control flow)") from None
    m = onnx.load(path)
    del m.metadata_props[:]
    prop = m.metadata_props.add()
    prop.key, prop.value = META_KEY, json.dumps(record, sort_keys=True)
    m.producer_name = "lplabel"
    onnx.save(m, path)
