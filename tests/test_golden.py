"""Committed v1 stores must read back exactly as recorded when they were written, forever."""
import json
from pathlib import Path

import numpy as np
import pytest

from lplabel import open_store, verify_store

HERE = Path(__file__).resolve().parent / "golden"
EXPECTED = json.loads((HERE / "v1" / "expected.json").read_text())


def _digest(st):
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_golden", HERE / "make_golden.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.step_digest(st)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_golden_v1_reads_back(name):
    path = HERE / "v1" / f"{name}.lpl"
    exp = EXPECTED[name]
    assert verify_store(path).ok
    with open_store(path) as s:
        assert s.format_version[0] == 1
        assert s.num_records == exp["records"]
        got = [[st.epoch, st.step, _digest(st)] for st in s.iter_steps()]
        assert got == exp["steps"]
        first = s.step_at(0).label
        for k, v in exp["first_label"].items():
            np.testing.assert_array_equal(np.asarray(first[k][0]).tolist(), v)
        assert s.header["columns"]["label"]["codecs"] == exp["label_codecs"]
        assert s.image_keys[0] == "class0/img0.png"
