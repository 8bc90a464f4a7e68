"""``derived``: the marker of a view column whose values are not stored but regenerated.

A view column (``image``, ``crop``, ``flip``, ``mix_partner``) whose chain is
``[derived(sampler), bytes]`` stores no payload: readers regenerate its rows from the header
(seed, augmentation policy, batch size, drop_last, image count) and the dataset ``images/size``
with the named view sampler (spec/FORMAT.md §1.4; §11.3 for ``lplabel-views-v2``, §11.1 for v1).
The chain after the marker, always ``[bytes]``, is what the per-chunk CRC-32 is computed over: the
bytes the column *would* hold, so a reader whose regeneration differs (for v1: another numpy
stream) fails the checksum instead of handing out wrong views. Encoding through the chain is the identity plus ``bytes``; the codec
itself never decodes anything (the store reader regenerates, see :mod:`lplabel.store.derived`).
"""

from __future__ import annotations

from ..errors import CodecChainError, CodecConfigError
from .abc import ArrayArrayCodec
from .registry import register_codec

#: Samplers a derived column may name (see lplabel.views.VIEW_SAMPLER).
DERIVED_SAMPLERS = ("lplabel-views-v1", "lplabel-views-v2")
#: The view fields that may be derived, with the element type the sampler produces.
DERIVED_FIELDS = {"image": "int32", "crop": "float32", "flip": "bool", "mix_partner": "int16"}


@register_codec
class Derived(ArrayArrayCodec):
    name = "derived"

    def __init__(self, sampler: str = "lplabel-views-v1"):
        if sampler not in DERIVED_SAMPLERS:
            raise CodecConfigError(
                f"codec 'derived': unknown view sampler {sampler!r}",
                hint=f"this lplabel regenerates views of {', '.join(DERIVED_SAMPLERS)}; "
                "a newer lplabel wrote this store",
            )
        self.sampler = sampler

    def get_config(self) -> dict:
        return {"sampler": self.sampler}

    def resolve(self, spec):
        spec = tuple(spec)
        if (
            len(spec) != 1
            or DERIVED_FIELDS.get(spec[0].name) != spec[0].type
            or spec[0].shape != ((4,) if spec[0].name == "crop" else ())
        ):
            raise CodecChainError(
                "codec 'derived' only takes one view field: image int32, crop float32 [4], flip bool or "
                f"mix_partner int16; got {[(f.name, f.type, f.shape) for f in spec]}"
            )
        return spec

    def check_chain(self, codecs) -> None:
        if [c.name for c in codecs] != ["derived", "bytes"]:
            raise CodecChainError(
                f"a derived column's chain must be exactly [derived, bytes], got {[c.name for c in codecs]}"
            )

    def encode(self, block, spec):
        return block

    def decode(self, block, spec):
        return block
