"""Errors the relabeler raises; all are :class:`lplabel.errors.LplabelError` (one CLI line, exit 2)."""

from __future__ import annotations

from ..errors import LplabelError, OutputExistsError  # noqa: F401  (re-exported)


class RelabelError(LplabelError):
    """A relabel run cannot start or continue; the message says why and what to do."""


class ImageInputError(RelabelError):
    """The images given cannot be relabelled (empty set, mixed channel counts, unknown source)."""


class TeacherOutputError(RelabelError):
    """The teacher's output does not fit the image set (width, shape, NaN/Inf logits)."""


class WorkDirError(RelabelError):
    """The work directory of a resumable run belongs to a different run or is damaged."""


class RelabelWriteError(RelabelError):
    """Writing labels failed (disk full, I/O error); finished parts are kept for resuming."""


class MergeError(RelabelError):
    """Shards cannot be merged: they disagree, overlap, or steps are missing."""


class DistributedError(RelabelError):
    """A distributed (torchrun) run failed on some rank."""
