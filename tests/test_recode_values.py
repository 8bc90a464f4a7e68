"""The default (lossless) chain keeps a source's value type, or refuses by name: never a silent narrowing."""

from types import SimpleNamespace

import pytest

from lplabel.recode import LossyChainError, values_of


@pytest.mark.parametrize(
    "vt, expected", [("float32", "fp32"), ("float16", "fp16"), ("bfloat16", "bf16"), ("none", "none")]
)
def test_known_value_types_are_kept(vt, expected):
    assert values_of(SimpleNamespace(value_type=vt, path="x.lpl")) == expected


@pytest.mark.parametrize("vt", ["float64", "int32"])
def test_other_value_types_are_refused_not_narrowed(vt):
    with pytest.raises(LossyChainError) as e:
        values_of(SimpleNamespace(value_type=vt, path="legacy_dir"))
    msg = str(e.value)
    assert vt in msg and "--allow-lossy" in msg and "legacy_dir" in msg
