"""PyTorch side of lplabel: replay stored views and soft labels into any training loop.

No patched PyTorch: a batch-level :class:`StepDataset` (one item = one stored step) with a
:class:`StepSampler` works with a stock ``DataLoader(batch_size=None)``; :class:`ReplayLoader`
wires them together with device placement and exact resume. Losses, LPQLD's student-temperature
calibration, temperature schedules and adapters for legacy scripts live here too. See
docs/loader.md and docs/porting.md.
"""

from ..deps import require as _require

_require("torch", "lplabel.torch (the loader)")  # a named ImportError, not "No module named 'torch'"

from ..selection.schedule import (
    Constant,
    Cosine,
    ReuseSchedule,
    StepDecay,
    as_temperature,
    constant,
    cosine,  # noqa: F401
    lpqld_step,
)
from .adapters import dense_logits, gvbsm_batch, legacy_batch, lpqld_batch
from .batch import LogitTargets, SparseLabels, StepBatch, StepKey, sparse_probs
from .calibration import CalibratedStudentTemperature, calibrate_student_temperature, temperature_losses
from .dataset import StepDataset, check_image_set
from .group import StepGroup, StepGroupKey
from .distill import distill_generator
from .generator import GeneratorNet, StoredGenerator
from .label_sources import (
    LabelSource,
    LabelSourceError,
    LabelSourceMismatchError,
    LabelSourceWarning,
    OnlineTeacher,
    TeacherDeviceError,
)
from .loader import DeviceUnavailableError, LoaderWorkerError, ReplayLoader
from .losses import kl_div_loss, mse_gt_loss, mse_logits_loss, soft_cross_entropy
from .pixels import IMAGENET_MEAN, IMAGENET_STD
from .sampler import ResumeStateError, StepSampler

__all__ = [
    "StepDataset",
    "StepSampler",
    "ReplayLoader",
    "StepBatch",
    "StepKey",
    "StepGroup",
    "StepGroupKey",
    "SparseLabels",
    "LogitTargets",
    "sparse_probs",
    "check_image_set",
    "ResumeStateError",
    "LoaderWorkerError",
    "DeviceUnavailableError",
    "kl_div_loss",
    "soft_cross_entropy",
    "mse_logits_loss",
    "mse_gt_loss",
    "calibrate_student_temperature",
    "temperature_losses",
    "CalibratedStudentTemperature",
    "ReuseSchedule",
    "Constant",
    "StepDecay",
    "Cosine",
    "constant",
    "cosine",
    "lpqld_step",
    "as_temperature",
    "legacy_batch",
    "lpqld_batch",
    "gvbsm_batch",
    "dense_logits",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "LabelSource",
    "OnlineTeacher",
    "LabelSourceError",
    "LabelSourceMismatchError",
    "LabelSourceWarning",
    "TeacherDeviceError",
    "StoredGenerator",
    "GeneratorNet",
    "distill_generator",
]
