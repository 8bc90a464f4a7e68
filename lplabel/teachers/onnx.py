"""ONNX teachers: export any lplabel teacher to ONNX, and run an ``.onnx`` teacher with onnxruntime.

Why: on a CPU, EfficientNet-Lite0 runs several times faster under onnxruntime than in eager
PyTorch (``benchmarks/results/``), and the relabeler spends nearly all its time in the teacher.

Input convention
----------------
An ONNX teacher follows the same convention as every lplabel teacher: it takes **float32 NCHW
RGB pixels in 0..255** and returns ``[batch, classes]`` logits. :func:`export_teacher` exports the
lplabel teacher module *with* its normalisation (a :class:`~lplabel.teachers.models.Normalized` wrapper,
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
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import TeacherError
from ..errors import first_line as _first_line

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
    from ..deps import require

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
            raise OnnxTeacherError(
                f"ONNX teacher file not found: {p}",
                hint="pass an existing .onnx file (lplabel export-teacher writes one)",
            )
        self.path = p
        self.file_sha256 = file_sha256(p)
        try:
            sess = self._session("cpu", 1)
        except Exception as e:  # noqa: BLE001 - any failure of onnxruntime's parser becomes one line
            raise OnnxTeacherError(
                f"cannot read ONNX teacher {p}: {_first_line(e)}", hint="re-export it with lplabel export-teacher"
            ) from None
        ins, outs = sess.get_inputs(), sess.get_outputs()
        if len(ins) != 1 or len(ins[0].shape) != 4:
            raise OnnxTeacherError(
                f"ONNX teacher {p} must take one 4-D input [batch, channels, height, width]; "
                f"it takes {[(i.name, i.shape) for i in ins]}",
                hint="export a single-input image classifier",
            )
        if len(outs) < 1 or len(outs[0].shape) != 2:
            raise OnnxTeacherError(
                f"ONNX teacher {p} must return logits [batch, classes] as its first output; "
                f"it returns {[(o.name, o.shape) for o in outs]}"
            )
        if ins[0].type != "tensor(float)":
            raise OnnxTeacherError(
                f"ONNX teacher {p} takes {ins[0].type}, not float32 pixels", hint="export it with a float32 input"
            )
        self.input_name, self.output_name = ins[0].name, outs[0].name
        self.input_shape = list(ins[0].shape)
        w = outs[0].shape[1]
        #: the output width when the graph declares it (else None: the relabeler probes it)
        self.num_outputs = w if isinstance(w, int) else None
        meta = sess.get_modelmeta().custom_metadata_map or {}
        try:
            self.record = json.loads(meta[META_KEY]) if META_KEY in meta else None
        except ValueError:
            raise OnnxTeacherError(
                f"ONNX teacher {p}: its {META_KEY} metadata is not JSON",
                hint="re-export it with lplabel export-teacher",
            ) from None
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
                hint="pip install onnxruntime-gpu, or relabel with --device cpu",
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dev = self._where.device
        kind = "cpu" if dev.type != "cuda" else f"cuda:{dev.index or 0}"
        threads = torch.get_num_threads()
        key = (kind, threads if kind == "cpu" else 0)
        sess = self._sessions.get(key)
        if sess is None:
            sess = self._sessions[key] = self._session(kind, threads)
        want = self.input_shape
        if (
            x.ndim != 4
            or (isinstance(want[1], int) and x.shape[1] != want[1])
            or any(isinstance(w, int) and w != s for w, s in zip(want[2:], x.shape[2:]))
        ):
            raise ValueError(
                f"the ONNX teacher {self.path.name} takes input {want}, got {list(x.shape)}: relabel "
                "at its size (--size) or re-export it with lplabel export-teacher --input-size"
            )
        a = x.detach().to("cpu", torch.float32).contiguous().numpy()
        z = sess.run([self.output_name], {self.input_name: a})[0]
        return torch.from_numpy(np.ascontiguousarray(z, dtype=np.float32)).to(x.device)


def onnx_flops_per_view(path, input_shape) -> float | None:
    """Forward FLOPs per view of an ONNX graph (a multiply-add counts 2, as torch's flop counter):
    every ``Conv``, ``Gemm`` and ``MatMul`` with its weight in the file. The output shapes come
    from one run of a copy of the graph on a single view of ``input_shape`` ``[C, H, W]`` (the
    exported graphs' padding is computed at run time, so static shape inference cannot see
    them). Informative only: None when ``onnx`` is not installed or the graph cannot be read
    this way."""
    try:
        import onnx
        import onnxruntime as ort

        m = onnx.load(os.fspath(path))
        weights = {i.name: list(i.dims) for i in m.graph.initializer}
        ops = [n for n in m.graph.node if n.op_type in ("Conv", "Gemm", "MatMul") and n.input[1] in weights]
        if not ops:
            return None
        have = {o.name for o in m.graph.output}
        for n in ops:
            if n.output[0] not in have:
                m.graph.output.append(onnx.helper.make_empty_tensor_value_info(n.output[0]))
        so = ort.SessionOptions()
        so.log_severity_level = 3
        so.intra_op_num_threads = 1
        sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
        x = np.full((1, *[int(v) for v in input_shape]), 127.0, np.float32)
        outs = sess.run([n.output[0] for n in ops], {sess.get_inputs()[0].name: x})
    except Exception:  # noqa: BLE001 - counting is informative only
        return None
    total = 0
    for n, out in zip(ops, outs):
        w = weights[n.input[1]]
        if n.op_type == "Conv":  # each output element: C_in / groups x kernel multiply-adds
            k = int(np.prod(w[1:]))
        elif n.op_type == "Gemm":
            trans_b = any(a.name == "transB" and a.i for a in n.attribute)
            k = w[1] if trans_b else w[0]
        else:
            k = w[-2]
        total += 2 * int(np.asarray(out).size) * int(k)
    return float(total)


def load_onnx_teacher(path, norm=None) -> nn.Module:
    """An :class:`OnnxTeacher`; ``norm`` (``load_teacher``'s ``normalize`` parsed: None/False for
    none, or (mean, std)) wraps it in :class:`~lplabel.teachers.models.Normalized` (refused for a file exported by lplabel, whose graph
    already normalises: that would normalise twice)."""
    t = OnnxTeacher(path)
    if norm:
        if t.record is not None:
            raise OnnxTeacherError(
                f"ONNX teacher {t.path.name} was exported by lplabel with its normalisation inside "
                f"({json.dumps(t.recorded_normalization)}); --normalize would apply a second one",
                hint="drop --normalize (or use --normalize auto)",
            )
        from .models import Normalized

        wrapped = Normalized(t, norm[0], norm[1]).eval()
        wrapped.checksum = t.checksum  # the weights are the file's; the wrapper's statistics go in normalization
        wrapped.describe = t.describe
        return wrapped
    return t.eval()
