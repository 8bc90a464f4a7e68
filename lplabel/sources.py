"""What a *source of steps* hands to :mod:`lplabel.recode`: a :class:`SourceMeta` and
:class:`SourceStep` records.

Kept apart from :mod:`lplabel.recode` so that source readers (the legacy-directory reader in
:mod:`lplabel.interop.source`) can build them without importing ``recode``, which opens those
readers itself (:func:`lplabel.recode.open_source`): no import cycle. ``recode`` re-exports both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .images import ImageIndex
from .views import StepViews


@dataclass
class SourceMeta:
    """What a writer needs to know about a source of steps."""

    num_classes: int
    images: ImageIndex
    batch_size: int
    epochs: int
    steps_per_epoch: int
    drop_last: bool = False
    augmentation: dict = field(default_factory=dict)
    teacher: dict = field(default_factory=dict)
    seed: object = None
    selection: dict | None = None
    extensions: dict | None = None
    crop_type: str = "float32"
    steps_per_chunk: int = 1
    #: "logits" or ("topk", k) or ("topk", k, "tail") or ("topk", k, "indices") -- what the labels are
    label_input: object = "logits"
    #: value type of the labels as stored ("float32", "float16", "bfloat16"); "quantized" when a
    #: quantize codec made them; "none" for top-k class indices only (topk type 'none')
    value_type: str = "float16"
    #: tail summary kind of a top-k source ("none", "logsumexp", "min")
    tail: str = "none"
    #: the source's label chain (JSON list) when it has one, and the stage its labels come at
    codecs: list | None = None
    #: label_input of the source chain's *input* (what a writer copying encoded labels declares)
    chain_label_input: object = None
    stage: int = 0
    num_steps: int | None = None
    path: str | None = None
    #: int32 [N, 2] image sizes when the source's view columns are derived (spec §1.4): copies
    #: keep them derived (``write_steps(store_views=True)`` stores them instead); else None
    image_sizes: np.ndarray | None = None
    #: True when the order of each record's top-k entries is information to keep: legacy files
    #: (LPQLD, FKD) list tied values in their generator's order, and export must give the same
    #: bytes back. Re-encoding chains then carry an ``entryorder`` codec (see :func:`keeps_order`).
    keep_order: bool = False


@dataclass(init=False, eq=False)
class SourceStep(StepViews):
    """One step of a source: its ``(epoch, step)``, its views -- a :class:`~lplabel.views.StepViews`,
    so the six view fields are declared and coerced to the store's dtypes in one place -- and its
    ``label`` block (see :mod:`lplabel.recode`). Positional order as before:
    ``SourceStep(epoch, step, image, crop, flip, mix_partner, mix_lambda, mix_box, label)``; a
    ``mix_lambda`` of None means no mixing (NaN), as the writer reads it."""

    epoch: int
    step: int
    label: dict

    def __init__(self, epoch, step, image, crop, flip, mix_partner, mix_lambda, mix_box, label):
        self.epoch, self.step, self.label = int(epoch), int(step), label
        super().__init__(image, crop, flip, mix_partner, math.nan if mix_lambda is None else mix_lambda, mix_box)
