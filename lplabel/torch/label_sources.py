"""Label sources: where a :class:`~lplabel.torch.StepBatch`'s soft labels come from.

A label store holds, per view, the teacher's logits. Two methods of the field store none: RDED
and EDC run the teacher *during* student training, and HeLlO replaces the labels by a small
learned network. All three sit on one storage axis (stored labels, a stored generator, the
teacher itself), so :class:`~lplabel.torch.ReplayLoader` takes them interchangeably
(``label_source=``) and the training loop sees the same ``StepBatch`` whichever it is:

* no ``label_source`` (default): the store's label column, decoded in the workers;
* :class:`OnlineTeacher`: the teacher runs on the replayed views in the training process, on the
  loader's device, one forward per stored step (the relabeler's batching), after the views were
  rendered and mixed exactly as for stored labels. The label column is not read at all: the
  store serves only its views (a store written with ``views="derived"`` holds them in its header).
* :class:`~lplabel.torch.StoredGenerator` (:mod:`lplabel.torch.generator`): a small network stored
  in the ``.lpl`` file (spec §12) labels the views the same way; the loader's default for a store
  whose header holds one.

Why the teacher runs in the main process, on the collated step, and not in the DataLoader
workers: the workers are CPU processes (a CUDA context per worker would cost each about 300 MB
of GPU memory and serialise on the device anyway), a step is already a batch of B views (the
relabeler's batch), and the main process owns the device. The workers keep doing what they do
for stored labels -- read the views, render and mix them (in 0..255 pixel units, the teacher's
input convention) -- and the loader converts the pixels to its ``normalize=`` convention and
applies ``transform=`` *after* the teacher has seen them. With ``render_on="device"`` the views
are rendered on the device and nothing but view configurations crosses a process boundary.

DDP: each rank's :class:`~lplabel.torch.StepSampler` shards the scheduled steps as for stored
labels, and each rank runs its own copy of the teacher (eval mode, no gradients, never wrapped
in ``DistributedDataParallel``) on its own steps: rank r's labels are exactly the labels the
store would hand rank r. Nothing is communicated.

What "the same labels" means: the relabeler stored ``teacher(view) / T_header`` in float32
before its codecs' own loss (fp16 rounding for a dense fp16 store), with the teacher's outputs
remapped by the header's ``class_map``, at the header's ``precision`` (spec §2.3). The online
teacher does exactly that (same class map, same temperature, same autocast dtype unless told
otherwise), so its logits equal a dense fp32 store's to float32 rounding of the teacher's
forward and a dense fp16 store's to fp16 rounding (tests/test_label_sources.py asserts the max
|delta| on a trained digits teacher). A teacher whose weights differ from the header's checksum
gives other labels: that is allowed (a deliberate swap) but warned about
(:class:`LabelSourceWarning`).

Errors, raised when the loader is built, before any step is read: :class:`TeacherDeviceError`
(the teacher cannot be moved to or run on the requested device), :class:`LabelSourceMismatchError`
(the teacher fails on the store's views -- wrong input size or channel count -- or gives a
number of classes the store's labels do not have).
"""

from __future__ import annotations

import io
import math
import time
import warnings

import torch
from torch import nn

from ..errors import LplabelError, LplabelWarning


class LabelSourceError(LplabelError):
    """A label source that cannot serve this store's views (base class)."""


class TeacherDeviceError(LabelSourceError):
    """The online teacher cannot be moved to, or run on, the requested device."""


class LabelSourceMismatchError(LabelSourceError):
    """The label source does not fit the store: input size / channels, or class count."""


class LabelSourceWarning(LplabelWarning):
    """The label source will not reproduce the store's labels (e.g. another teacher's weights)."""


_DEVICE_WORDS = ("device", "cuda", "mps", "hip", "xpu", "backend", "provider", "not compiled", "no kernel")


def _first_line(e: BaseException) -> str:
    s = str(e).strip().splitlines()
    return f"{type(e).__name__}: {s[0] if s else ''}"


def state_dict_bytes(module: nn.Module) -> int:
    """The bytes of ``torch.save(module.state_dict())``: what shipping the checkpoint costs."""
    buf = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in module.state_dict().items()}, buf)
    return buf.tell()


def checkpoint_bytes(module: nn.Module) -> int:
    """What shipping the teacher costs: :func:`state_dict_bytes`, plus the file of every ONNX
    teacher inside it (an :class:`~lplabel.teachers.onnx.OnnxTeacher` holds its weights in its
    ``.onnx`` file, not in a state dict: the file is the checkpoint)."""
    from ..teachers.onnx import OnnxTeacher

    files = {m.path.resolve() for m in module.modules() if isinstance(m, OnnxTeacher)}
    return state_dict_bytes(module) + sum(p.stat().st_size for p in files)


def flops_per_view(module: nn.Module, x: torch.Tensor) -> float | None:
    """Forward FLOPs per view (torch's flop counter, multiply-add = 2), or None when it cannot
    count (TorchScript, ONNX; :class:`OnlineTeacher` counts a lone ONNX teacher's graph with
    :func:`lplabel.teachers.onnx.onnx_flops_per_view`)."""
    try:
        from torch.utils.flop_counter import FlopCounterMode

        with FlopCounterMode(display=False) as fc, torch.no_grad():
            module(x)
        total = fc.get_total_flops()
    except Exception:  # noqa: BLE001 - counting is informative only
        return None
    return float(total) / max(int(x.shape[0]), 1) if total else None


class _Timer:
    """Wall time of each labelling call: CUDA events on a GPU (no synchronisation per step;
    read once when asked), ``perf_counter`` elsewhere."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.pending: list = []
        self.seconds = 0.0
        self.calls = 0
        self.views = 0

    def start(self):
        if self.cuda:
            ev = torch.cuda.Event(enable_timing=True)
            ev.record()
            return ev
        return time.perf_counter()

    def stop(self, t0, views: int) -> None:
        self.calls += 1
        self.views += int(views)
        if self.cuda:
            ev = torch.cuda.Event(enable_timing=True)
            ev.record()
            self.pending.append((t0, ev))
        else:
            self.seconds += time.perf_counter() - t0

    def total(self) -> float:
        if self.pending:
            torch.cuda.synchronize()
            self.seconds += sum(a.elapsed_time(b) for a, b in self.pending) / 1000.0
            self.pending.clear()
        return self.seconds


class LabelSource:
    """What :class:`~lplabel.torch.ReplayLoader` needs from a label source.

    :meth:`bind` is called once, when the loader is built, with the store, the device and the
    rendered views' shape; it checks everything and raises a :class:`LabelSourceError` before any
    step is read. :meth:`logits` maps a step's rendered, mixed views (float32 [B, C, S, S],
    0..255, on the device) to float32 logits [B, classes] on the device.
    """

    kind = "label-source"

    def bind(self, store, device: torch.device, image_shape: tuple) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def logits(self, images: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def stats(self) -> dict:  # pragma: no cover - interface
        return {"kind": self.kind}


def _store_precision(store) -> str:
    t = store.header.get("teacher") or {}
    p = t.get("precision") if isinstance(t, dict) else None
    return p if p in ("float32", "bfloat16-autocast", "float16-autocast") else "float32"


class OnlineTeacher(LabelSource):
    """Label the replayed views with ``teacher`` inside the training loop (see the module doc).

    ``teacher``: a module taking float32 NCHW pixels in 0..255 (lplabel's convention, e.g. a
    :func:`~lplabel.teachers.train_teacher` or :func:`~lplabel.teachers.load_teacher` result) or
    a teacher spec string for :func:`~lplabel.teachers.load_teacher` (with ``checkpoint=``).
    The module is moved to the loader's device and put in eval mode (as the relabeler does).
    ``precision``: ``"store"`` (default: the header's ``teacher.precision``, float32 when absent),
    ``"float32"``, ``"bfloat16-autocast"`` or ``"float16-autocast"``. ``class_map``: ``"store"``
    (the header's, spec §2.3), None (the teacher's outputs as they are) or a list of output indices.
    ``channels_last``: CUDA only (None: on, as the relabeler). ``check_checksum``: warn
    (:class:`LabelSourceWarning`) when the teacher's weights are not the header's.
    """

    kind = "online-teacher"

    def __init__(
        self,
        teacher,
        *,
        checkpoint=None,
        precision: str = "store",
        class_map="store",
        channels_last: bool | None = None,
        check_checksum: bool = True,
    ):
        if isinstance(teacher, str):
            from ..teachers import load_teacher

            teacher = load_teacher(teacher, checkpoint=checkpoint, device="cpu")
        if not isinstance(teacher, nn.Module):
            raise TypeError(
                f"OnlineTeacher needs a torch.nn.Module or a teacher spec string, got {type(teacher).__name__}"
            )
        if precision not in ("store", "float32", "bfloat16-autocast", "float16-autocast"):
            raise ValueError(
                f"precision must be 'store', 'float32', 'bfloat16-autocast' or 'float16-autocast', got {precision!r}"
            )
        self.teacher = teacher
        self.precision = precision
        self.class_map = class_map
        self.channels_last = channels_last
        self.check_checksum = bool(check_checksum)
        self.module = None
        self.device = None
        self._class_index = None
        self._divide = 1.0
        self._autocast = None
        self._timer = None
        self.checkpoint_bytes = None
        self.flops_per_view = None
        self.output_classes = None

    # -- binding ---------------------------------------------------------------------------------
    def bind(self, store, device: torch.device, image_shape: tuple) -> None:
        """Move the teacher to ``device``, probe it on views of ``image_shape`` ([C, S, S]) and
        check its output against the store (see the module doc for the errors)."""
        from ..memory_format import use_channels_last
        from ..relabel.teacher_io import amp_settings, prepare_teacher
        from ..relabel.errors import RelabelError

        device = torch.device(device)
        path = getattr(store, "path", None)
        precision = _store_precision(store) if self.precision == "store" else self.precision
        cl = use_channels_last(device, self.channels_last)
        where = "ReplayLoader(label_source=OnlineTeacher)"
        try:
            self._autocast, _ = amp_settings(
                device, precision != "float32", precision.split("-")[0] if precision != "float32" else "auto"
            )
            self.module = prepare_teacher(self.teacher, device, cl, precision)
        except RelabelError as e:
            raise TeacherDeviceError(
                f"the teacher cannot run on {device}: {e.message}",
                path=path,
                part=where,
                hint=e.hint or "pass a device the teacher supports",
            ) from None
        except (RuntimeError, TypeError, ValueError, AssertionError, NotImplementedError) as e:
            raise TeacherDeviceError(
                f"the teacher cannot be moved to {device}: {_first_line(e)}",
                path=path,
                part=where,
                hint="pass device='cpu', or a teacher built for this device",
            ) from None
        self.device = device
        self._channels_last = cl
        self.checkpoint_bytes = checkpoint_bytes(self.module)
        checksum = None
        if self.check_checksum:
            from ..teachers import teacher_checksum

            checksum = teacher_checksum(self.module)  # over CPU copies of the weights, as the header's
        c, s, s2 = (int(v) for v in image_shape)
        x = torch.full((2, c, s, s2), 127.0, device=device)
        try:
            z = self._forward(x)
        except Exception as e:  # noqa: BLE001 - foreign code: every failure becomes one named error
            msg = _first_line(e)
            if any(w in msg.lower() for w in _DEVICE_WORDS):
                raise TeacherDeviceError(
                    f"the teacher fails on {device}: {msg}",
                    path=path,
                    part=where,
                    hint="pass a device the teacher supports (device='cpu')",
                ) from None
            raise LabelSourceMismatchError(
                f"the teacher fails on the store's views (float32 [B, {c}, {s}, {s2}], 0..255): {msg}",
                path=path,
                part=where,
                hint="use the teacher the store was labelled with (its input size and channels must "
                "fit the store's augmentation output_size)",
            ) from None
        if not isinstance(z, torch.Tensor) or z.ndim != 2 or z.shape[0] != 2:
            shape = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
            raise LabelSourceMismatchError(
                f"the teacher must return logits [batch, classes]; got {shape} for a batch of 2", path=path, part=where
            )
        width = int(z.shape[1])
        self.output_classes = width
        ncls = int(store.num_classes)
        cmap = self._resolve_class_map(store)
        if cmap is not None:
            if len(cmap) != ncls or min(cmap) < 0 or max(cmap) >= width:
                raise LabelSourceMismatchError(
                    f"the class map has {len(cmap)} entries in [{min(cmap)}, {max(cmap)}]; the store has {ncls} "
                    f"classes and the teacher {width} outputs",
                    path=path,
                    part=where,
                    hint="pass class_map= with one teacher output per store class",
                )
            self._class_index = torch.as_tensor(cmap, dtype=torch.int64, device=device)
        elif width != ncls:
            raise LabelSourceMismatchError(
                f"the teacher gives {width} classes, the store's labels have {ncls}",
                path=path,
                part=where,
                hint="use the store's teacher, or pass class_map= (a list of teacher outputs, one per store class)",
            )
        t_hdr = (store.header.get("teacher") or {}).get("temperature", 1.0)
        self._divide = float(t_hdr) if isinstance(t_hdr, (int, float)) and t_hdr > 0 and math.isfinite(t_hdr) else 1.0
        if checksum is not None:
            want = (store.header.get("teacher") or {}).get("checksum")
            if isinstance(want, str) and want and want != checksum:
                warnings.warn(
                    f"{path}: the online teacher's weights ({checksum[:23]}) are not the ones the store was "
                    f"labelled with ({want[:23]}): its labels are another teacher's, not the store's "
                    "(check_checksum=False silences this)",
                    LabelSourceWarning,
                    stacklevel=4,
                )
        self.precision_used = precision
        self.flops_per_view = None if cl else flops_per_view(self.module, x[:1])
        if self.flops_per_view is None:  # an ONNX teacher: torch cannot see inside onnxruntime
            from ..teachers.onnx import OnnxTeacher, onnx_flops_per_view

            onnx = [m for m in self.module.modules() if isinstance(m, OnnxTeacher)]
            if len(onnx) == 1:
                self.flops_per_view = onnx_flops_per_view(onnx[0].path, (c, s, s2))
        self._timer = _Timer(device)

    def _resolve_class_map(self, store):
        cm = self.class_map
        if cm is None:
            return None
        if isinstance(cm, str) and cm == "store":
            hdr = (store.header.get("teacher") or {}).get("class_map")
            idx = hdr.get("indices") if isinstance(hdr, dict) else None
            return None if idx is None else [int(i) for i in idx]
        return [int(i) for i in cm]

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        from ..memory_format import network_input

        with torch.no_grad(), self._autocast():
            return self.module(network_input(x, self._channels_last))

    # -- labelling -------------------------------------------------------------------------------
    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """float32 [B, C] logits of one step's rendered, mixed views (0..255, on the device)."""
        if self.module is None:
            raise RuntimeError("OnlineTeacher.bind() was not called (ReplayLoader does it)")
        t0 = self._timer.start()
        z = self._forward(images).float()
        if self._class_index is not None:
            z = z.index_select(1, self._class_index)
        if self._divide != 1.0:
            z = z / self._divide
        self._timer.stop(t0, images.shape[0])
        return z

    def stats(self) -> dict:
        """What the source cost so far: ``calls`` (steps), ``views``, ``seconds`` of teacher
        forward, ``ms_per_step``, and the static ``checkpoint_bytes`` / ``flops_per_view``."""
        tm = self._timer
        secs = tm.total() if tm is not None else 0.0
        calls = tm.calls if tm is not None else 0
        return {
            "kind": self.kind,
            "checkpoint_bytes": self.checkpoint_bytes,
            "flops_per_view": self.flops_per_view,
            "precision": getattr(self, "precision_used", None),
            "calls": calls,
            "views": tm.views if tm is not None else 0,
            "seconds": secs,
            "ms_per_step": 1000.0 * secs / calls if calls else None,
        }
