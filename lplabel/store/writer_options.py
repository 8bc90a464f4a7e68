"""What a :class:`~lplabel.store.writer.StoreWriter` is told beyond the store's schedule: small
frozen objects, each checked alone in ``__post_init__`` (raising :class:`~lplabel.errors.WriterError`).

- :class:`LabelInput` -- what ``write_step`` takes as labels (dense logits, or top-k with a tail
  or with indices only); the typed form of the former ``label_input`` string tuples.
- :class:`LabelColumn` -- the label column: its codec chain, its input, the stage of the chain
  at which labels arrive already encoded.
- :class:`ViewColumns` -- the view columns: crop type, codec chains, or derived (not stored).
- :class:`StoreLayout` -- how the file is cut and packed: steps per chunk, segment size, zstd
  level, packed tables, the header's convenience copy.

The writer's former keyword arguments (``label_input=("topk", k)``, ``label_codecs=``,
``crop_type=``, ``steps_per_chunk=`` ...) are still accepted for one release, silently:
:func:`writer_options` maps them onto these objects (``LEGACY_KWARGS``).
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field

from ..codecs import Field
from ..errors import WriterError

_LABEL_INPUT_FORMS = "'logits', ('topk', k), ('topk', k, 'tail') or ('topk', k, 'indices')"


@dataclass(frozen=True)
class LabelInput:
    """What ``write_step`` takes as labels.

    ``kind="logits"``: dense ``logits`` [B, C]. ``kind="topk"`` with ``k``: ``topk_indices`` and
    ``topk_values`` [B, k]; with ``tail=True`` also ``topk_tail`` [B] (a tail summary of the kind
    the label chain's ``topk`` names); with ``indices_only=True`` class indices alone (the
    chain's ``topk`` must have type ``none``, e.g. when copying such a store). Build with
    :meth:`logits`, :meth:`topk`, or :meth:`parse` (which also takes the legacy string forms
    ``"logits"``, ``("topk", k)``, ``("topk", k, "tail")``, ``("topk", k, "indices")``).
    """

    kind: str = "logits"
    k: int | None = None
    tail: bool = False
    indices_only: bool = False

    def __post_init__(self):
        if self.kind == "logits":
            ok = self.k is None and not self.tail and not self.indices_only
        else:
            ok = self.kind == "topk" and not (self.tail and self.indices_only) and _positive_int(self.k)
        if not ok:
            raise WriterError(f"label_input must be {_LABEL_INPUT_FORMS}, got {self!r}")
        if self.k is not None:
            object.__setattr__(self, "k", int(self.k))

    @classmethod
    def logits(cls) -> "LabelInput":
        return cls()

    @classmethod
    def topk(cls, k: int, *, tail: bool = False, indices_only: bool = False) -> "LabelInput":
        return cls("topk", k, tail, indices_only)

    @classmethod
    def parse(cls, value) -> "LabelInput":
        """A LabelInput from itself or a legacy form (a WriterError names the accepted forms)."""
        if isinstance(value, LabelInput):
            return value
        if isinstance(value, str) and value == "logits":
            return cls()
        if (
            isinstance(value, (tuple, list))
            and len(value) in (2, 3)
            and value[0] == "topk"
            and (len(value) == 2 or value[2] in ("tail", "indices"))
            and _positive_int(value[1])
        ):
            extra = value[2] if len(value) == 3 else None
            return cls("topk", int(value[1]), tail=extra == "tail", indices_only=extra == "indices")
        raise WriterError(f"label_input must be {_LABEL_INPUT_FORMS}, got {value!r}")

    @property
    def is_topk(self) -> bool:
        return self.kind == "topk"

    def fields(self, num_classes: int) -> tuple:
        """The label block's fields (the label chain's input spec)."""
        if self.kind == "logits":
            return (Field("logits", "float32", (int(num_classes),)),)
        spec = (Field("indices", "int64", (self.k,)),)
        if not self.indices_only:
            spec += (Field("values", "float32", (self.k,)),)
        if self.tail:
            spec += (Field("tail", "float32", ()),)
        return spec

    def legacy(self):
        """The former string form (``"logits"``, ``("topk", k)``, ``("topk", k, "tail")`` ...)."""
        if self.kind == "logits":
            return "logits"
        return ("topk", self.k) + (("tail",) if self.tail else ()) + (("indices",) if self.indices_only else ())


@dataclass(frozen=True)
class LabelColumn:
    """The label column: ``codecs`` (its chain; None: dense fp16, or fp16 top-k -- type ``none``
    for indices only -- with bytes/shuffle/zstd at the layout's level), ``input`` (a
    :class:`LabelInput` or a legacy form), ``stage``: 0, or a stage of the chain (see
    ``Pipeline.stored_stage``) at which ``write_step`` receives ``label_block`` already encoded by
    the chain's first ``stage`` array->array codecs (used to copy quantized labels without
    re-quantizing; its upper bound is checked against the chain by the writer)."""

    codecs: object = None
    input: LabelInput = field(default_factory=LabelInput)
    stage: int = 0

    def __post_init__(self):
        object.__setattr__(self, "input", LabelInput.parse(self.input))
        try:
            stage = operator.index(self.stage)
        except TypeError:
            stage = -1
        if stage < 0:
            raise WriterError(f"label_stage must be an integer >= 0, got {self.stage!r}")
        object.__setattr__(self, "stage", stage)


@dataclass(frozen=True, eq=False)
class ViewColumns:
    """The view columns ``image``, ``crop``, ``flip``, ``mix_partner``: ``crop_type`` (float32 or
    float16 crop boxes); ``codecs``: optional ``{column: chain}`` replacing the default chain
    (bytes, shuffle, zstd); ``derived``: None (the views are stored), or the images' sizes, int
    ``[N, 2]`` (H, W): the columns are then *derived* (spec/FORMAT.md §1.4): no payload,
    regenerated by readers from the header and ``images/size``. Derived columns need float32
    crops and a header naming a view sampler and an integer seed (checked by the writer);
    ``codecs`` is then ignored."""

    crop_type: str = "float32"
    codecs: dict | None = None
    derived: object = None

    def __post_init__(self):
        if self.crop_type not in ("float32", "float16"):
            raise WriterError(f"crop_type must be float32 or float16, got {self.crop_type!r}")
        if self.derived is not None and self.crop_type != "float32":
            raise WriterError("derived views need crop_type float32 (what the view sampler draws)")


@dataclass(frozen=True)
class StoreLayout:
    """How the file is cut and packed. ``steps_per_chunk``: steps per independently decodable
    chunk (1 = finest random access); ``segment_bytes``: encoded bytes per segment dataset;
    ``zstd_level`` of the default chains; ``packed_tables``: True writes format 1.1 (the step
    tables, chunk index and image tables in one zstd-compressed dataset, spec/FORMAT.md §1.5),
    False format 1.0 (every table its own dataset, readable by releases before 1.1);
    ``header_copy``: also write the header JSON as the ``json`` attribute of the ``header``
    dataset (spec §1.2; None: :func:`~lplabel.store.writer.header_copy_default`)."""

    steps_per_chunk: int = 1
    segment_bytes: int = 16 << 20
    zstd_level: int = 3
    packed_tables: bool = True
    header_copy: bool | None = None

    def __post_init__(self):
        if self.steps_per_chunk < 1:
            raise WriterError("steps_per_chunk must be >= 1")
        object.__setattr__(self, "steps_per_chunk", int(self.steps_per_chunk))
        object.__setattr__(self, "segment_bytes", int(self.segment_bytes))
        object.__setattr__(self, "packed_tables", bool(self.packed_tables))


#: each former keyword argument of StoreWriter -> (option object, field)
LEGACY_KWARGS = {
    "label_codecs": ("labels", "codecs"),
    "label_input": ("labels", "input"),
    "label_stage": ("labels", "stage"),
    "crop_type": ("views", "crop_type"),
    "view_codecs": ("views", "codecs"),
    "derived_views": ("views", "derived"),
    **{n: ("layout", n) for n in ("steps_per_chunk", "segment_bytes", "zstd_level", "packed_tables", "header_copy")},
}
_TYPES = {"labels": LabelColumn, "views": ViewColumns, "layout": StoreLayout}


def writer_options(labels=None, views=None, layout=None, **legacy) -> tuple:
    """(LabelColumn, ViewColumns, StoreLayout) from the given objects and the former keyword
    arguments (``LEGACY_KWARGS``); a former keyword for an object also given is a TypeError."""
    given = {"labels": labels, "views": views, "layout": layout}
    values: dict = {}
    for name, value in legacy.items():
        if name not in LEGACY_KWARGS:
            raise TypeError(f"StoreWriter() got an unexpected keyword argument {name!r}")
        part, fname = LEGACY_KWARGS[name]
        if given[part] is not None:
            raise TypeError(f"StoreWriter() got both {part}= and {name}=; give {name} in the {part} object")
        values.setdefault(part, {})[fname] = value
    out = []
    for part, cls in _TYPES.items():
        obj = given[part] if given[part] is not None else cls(**values.get(part, {}))
        if not isinstance(obj, cls):
            raise TypeError(f"StoreWriter() {part}= must be a {cls.__name__}, got {type(obj).__name__}")
        out.append(obj)
    return tuple(out)


def _positive_int(k) -> bool:
    try:
        return int(k) == k and int(k) >= 1 and not isinstance(k, bool)
    except (TypeError, ValueError):
        return False


__all__ = ["LabelInput", "LabelColumn", "ViewColumns", "StoreLayout", "writer_options", "LEGACY_KWARGS"]
