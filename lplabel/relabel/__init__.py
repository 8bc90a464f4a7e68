"""The relabeler: generate seeded views, run the teacher, write the label store.

``relabel(images, teacher, out, config)`` is the Python entry point (``lplabel relabel`` on the
command line; ``config`` a :class:`~lplabel.relabel.config.RelabelConfig`); ``merge(sources, out)`` joins shards (``lplabel merge``). See
:mod:`lplabel.relabel.core` for the loop, :mod:`~lplabel.relabel.plan` for pruning, parts and
ranks, :mod:`~lplabel.relabel.workdir` for resuming and :mod:`~lplabel.relabel.merge`.
"""

from .config import LabelsConfig, OutputConfig, ProcessConfig, Pruning, RelabelConfig, TeacherConfig, ViewsPolicy
from .core import RelabelReport, relabel, run_relabel
from .errors import (
    DistributedError,
    ImageInputError,
    MergeError,
    RelabelError,
    RelabelWriteError,
    TeacherOutputError,
    WorkDirError,
)
from .inputs import load_images
from .merge import merge
from .teacher_io import load_teachers

__all__ = [
    "relabel",
    "run_relabel",
    "RelabelReport",
    "merge",
    "load_images",
    "load_teachers",
    "RelabelError",
    "ImageInputError",
    "TeacherOutputError",
    "WorkDirError",
    "RelabelWriteError",
    "MergeError",
    "DistributedError",
    "RelabelConfig",
    "ViewsPolicy",
    "Pruning",
    "TeacherConfig",
    "LabelsConfig",
    "OutputConfig",
    "ProcessConfig",
]
