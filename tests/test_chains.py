"""Chain policy has one owner (issue 14): named presets and learnt chains in lplabel.codecs.chains."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import write_store
from lplabel.codecs import PRESETS, Field, Pipeline, default_label_codecs, label_chain, learn_label_chain, preset_chain
from lplabel.codecs.chains import exact_chain, index_type_for, legacy_index_type
from lplabel.errors import CodecConfigError


def _json(chain):
    return [c.to_json() for c in chain]


def test_presets_are_the_chains_their_users_wrote_before():
    """Each preset gives exactly the chain its callers assembled themselves before it existed
    (so stores written through them keep their bytes)."""
    assert set(PRESETS) == {"plain", "exact", "reference", "work", "shuffle", "planes", "rans"}
    assert _json(preset_chain("plain")) == _json(default_label_codecs("dense"))
    assert _json(preset_chain("plain", k=7, type="none", level=5)) == _json(
        default_label_codecs("topk", k=7, type="none", level=5)
    )
    assert _json(preset_chain("reference", level=19)) == _json(default_label_codecs("dense", type="float16", level=19))
    assert _json(preset_chain("work")) == _json(default_label_codecs("dense", type="float32", level=1))
    assert _json(preset_chain("exact", value_type="float32", num_classes=1000)) == _json(
        default_label_codecs("dense", type="float32")
    )
    assert _json(exact_chain("float16", k=10, num_classes=1000)) == _json(
        default_label_codecs("topk", k=10, type="float16", index_type="int16")
    )
    assert _json(exact_chain("float16", k=10, num_classes=40000))[0]["configuration"]["index_type"] == "int32"
    assert (legacy_index_type(32768), legacy_index_type(32769)) == ("int16", "int32")
    assert (index_type_for(65536), index_type_for(65537)) == ("uint16", "int32")
    for layout in ("shuffle", "planes"):
        assert _json(preset_chain(layout, k=10, values="int8", level=19)) == _json(
            label_chain(k=10, values="int8", level=19, layout=layout)
        )
    with pytest.raises(CodecConfigError, match="unknown chain preset 'fast'"):
        preset_chain("fast")


def test_learnt_chain_from_arrays_is_the_chain_encode_learns_from_a_store(tmp_path):
    """learn_label_chain on arrays (what the benchmarks pass) gives the chain that lplabel encode's
    build_chain learns from the same labels read back from a real store."""
    from lplabel.recode import build_chain, open_source

    path = tmp_path / "dense.lpl"
    write_store(path, label="dense", dense_type="float32", num_classes=20, epochs=2)
    source = open_source(path)
    try:
        blocks = [st.label for st in source.steps()]
        spec = (Field("logits", "float32", (20,)),)
        for layout, dictionary in (("planes", False), ("shuffle", True)):
            opts = dict(
                k=4,
                values="fp16",
                tail="none",
                index_coding="index-delta",
                class_order="auto",
                layout=layout,
                level=None,
                dictionary=dictionary,
                dict_size=1024,
            )
            learnt = learn_label_chain(blocks, spec, num_classes=20, **opts)
            assert _json(learnt) == _json(build_chain(source, **opts))
            names = [c.name for c in learnt]
            assert "classmap" in names and ("zstd" not in names or learnt[-1].uses_dictionary == dictionary)
            pipe = Pipeline(learnt, spec)
            z = blocks[0]["logits"]
            out = pipe.decode(pipe.encode({"logits": z}), len(z))
            top = np.sort(np.argsort(-z, axis=1, kind="stable")[:, :4], axis=1)
            assert np.array_equal(np.sort(out["indices"], axis=1), top)
    finally:
        source.close()
    with pytest.raises(CodecConfigError, match="--dictionary needs --layout shuffle"):
        learn_label_chain(iter(()), spec, num_classes=20, k=4, layout="planes", dictionary=True)
