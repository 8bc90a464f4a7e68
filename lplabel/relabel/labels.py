"""The label codec chain of a relabel run, and what its parts store before the merge.

The relabeler hands the store writer either dense float32 logits (``label_input="logits"``) or,
for a plain top-k chain, the top-k indices and values computed on the device
(``label_input=("topk", k)``), so only ``B x k`` numbers cross to the host.

Parts in the work directory are re-read and re-fed to the final writer by the merge. That is
exact when the chain is *re-feedable*: its representation codec is ``dense`` (any type) or
``topk`` without a tail fed with top-k input, and every other codec is lossless (decoding gives
the stored values, and encoding stored values again stores them unchanged). Then parts use the
final chain. Any other chain (a tail summary, custom lossy transforms) needs the dense logits at
encode time, so its parts keep float32 dense logits and the final chain runs in the merge.
"""

from __future__ import annotations

from ..codecs import Field, Pipeline, preset_chain
from ..codecs.abc import ArrayArrayCodec
from ..codecs.dense import Dense
from ..codecs.topk import TopK
from ..errors import LplabelError
from .errors import RelabelError


def label_spec(label_input, num_classes: int):
    if label_input == "logits":
        return (Field("logits", "float32", (num_classes,)),)
    return (Field("indices", "int64", (label_input[1],)), Field("values", "float32", (label_input[1],)))


_VALUE_ALIASES = {
    "float32": "fp32",
    "float16": "fp16",
    "bfloat16": "bf16",
    "fp32": "fp32",
    "fp16": "fp16",
    "bf16": "bf16",
    "int8": "int8",
    "int4": "int4",
    "none": "none",
}


def build_label_chain(
    num_classes: int,
    *,
    topk: int | None = None,
    values: str = "fp16",
    index_type: str = "uint16",
    tail: str = "none",
    index_coding: str | None = None,
    zstd_level: int = 3,
    label_codecs=None,
):
    """(codec list, label_input, device_topk) for a run; validated against ``num_classes``.

    ``label_codecs`` (a full chain, codec objects or JSON dicts) overrides the other options and
    is fed dense float32 logits. Otherwise ``topk`` None/0 keeps dense logits and ``topk=k`` the
    k largest; ``values`` is ``fp32``/``fp16``/``bf16`` (also ``float16`` ...), ``int8`` or ``int4``;
    ``index_coding`` (top-k) as in :func:`lplabel.codecs.label_chain` (default ``value-delta``). Top-k is computed on the
    device when the chain is re-feedable (no tail, no quantization); otherwise the chain is fed
    dense logits.
    """
    device_topk = None
    try:
        if label_codecs is not None:
            chain, label_input = list(label_codecs), "logits"
        else:
            v = _VALUE_ALIASES.get(str(values).lower())
            if v is None:
                raise RelabelError(f"unknown value format {values!r}", hint="use fp32, fp16, bf16, int8 or int4")
            k = int(topk) if topk else None
            if k is not None and not 1 <= k < num_classes:
                raise RelabelError(
                    f"top-k needs 1 <= k < number of classes ({num_classes}), got k={k}",
                    hint="drop --topk to store dense labels",
                )
            kw = {} if index_coding is None else {"index_coding": index_coding}
            chain = preset_chain("shuffle", k=k, values=v, tail=tail, index_type=index_type, level=zstd_level, **kw)
            label_input = ("topk", k) if k is not None and tail == "none" else "logits"
            pipe = Pipeline(chain, label_spec(label_input, num_classes))
            if label_input != "logits" and refeedable(pipe.codecs, label_input):
                device_topk = k
            else:  # e.g. int8 top-k: the parts keep dense float32 logits, the merge encodes them
                label_input = "logits"
        pipe = Pipeline(chain, label_spec(label_input, num_classes))
    except LplabelError:
        raise
    except (ValueError, TypeError) as e:
        raise RelabelError(f"invalid label codec options: {e}") from None
    return pipe.codecs, label_input, device_topk


def refeedable(codecs, label_input) -> bool:
    """Whether decoded labels fed back through ``codecs`` are stored unchanged (see module doc)."""
    rep = [c for c in codecs if isinstance(c, ArrayArrayCodec)]
    if not rep:
        return False
    first, rest = rep[0], [c for c in codecs if c is not rep[0]]
    if isinstance(first, Dense):
        ok = label_input == "logits"
    elif isinstance(first, TopK):
        # a type-'none' top-k decodes to indices alone, which cannot be fed back as top-k input
        ok = first.tail == "none" and first.type != "none" and label_input != "logits"
    else:
        ok = False
    return ok and not any(c.lossy for c in rest)


def part_chain(codecs, label_input):
    """(codecs, label_input, mode) the work-directory parts use for a final chain."""
    if refeedable(codecs, label_input):
        return list(codecs), label_input, "final"
    return preset_chain("work"), "logits", "float32"


def label_input_from_spec(spec_json) -> object:
    """'logits' or ('topk', k) from a header's ``columns.label.input``."""
    names = [f.get("name") for f in spec_json]
    if names == ["logits"]:
        return "logits"
    if sorted(names) == ["indices", "values"]:
        k = [f for f in spec_json if f.get("name") == "values"][0]["shape"][0]
        return ("topk", int(k))
    raise RelabelError(f"unsupported label input fields {names}")


def label_kwargs(label_input, block: dict) -> dict:
    """write_step keyword arguments for a decoded (or computed) label block."""
    if label_input == "logits":
        return {"logits": block["logits"]}
    return {"topk_indices": block["indices"], "topk_values": block["values"]}
