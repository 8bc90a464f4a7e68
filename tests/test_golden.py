"""Committed v1 stores must read back exactly as recorded when they were written, forever."""

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from lplabel import open_store, verify_store

HERE = Path(__file__).resolve().parent / "golden"
EXPECTED = json.loads((HERE / "v1" / "expected.json").read_text())
COLUMNS = ("image", "crop", "flip", "mix_partner", "label")


def _golden_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_golden", HERE / "make_golden.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_every_golden_file_has_an_entry():
    assert sorted(p.stem for p in (HERE / "v1").glob("*.lpl")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_golden_v1_reads_back(name):
    path = HERE / "v1" / f"{name}.lpl"
    exp = EXPECTED[name]
    assert verify_store(path).ok
    with open_store(path) as s:
        assert list(s.format_version) == exp.get("format_version", [1, 0])
        assert s.packed == (s.format_version >= (1, 1))  # 1.1 golden files are the packed ones
        assert s.num_records == exp["records"]
        mod = _golden_module()
        types = mod.label_types(s)
        got = [[st.epoch, st.step, mod.step_digest(st, types)] for st in s.iter_steps()]
        assert got == exp["steps"]
        api = s.step_at(0).label
        # the API hands out usable numbers: bfloat16 widened to float32 (the digests pin the stored bits)
        assert all(api[k].dtype == np.float32 for k, t in types.items() if t == "bfloat16")
        first = mod.stored_label(api, types)
        assert sorted(first) == sorted(exp["first_label"])
        for k, v in exp["first_label"].items():
            np.testing.assert_array_equal(np.asarray(first[k][0]).tolist(), v)
        assert s.header["columns"]["label"]["codecs"] == exp["label_codecs"]
        for col, codecs in exp.get("column_codecs", {}).items():
            assert s.header["columns"][col]["codecs"] == codecs
        assert s.image_keys[0] == "class0/img0.png"
        header = s.header
    # a column whose zstd codec names a dictionary keeps it in columns/<c>/zstd_dict (spec §3.14)
    with h5py.File(path, "r") as f:
        for col in COLUMNS:
            refs = [
                c["configuration"]["dictionary"]
                for c in header["columns"][col]["codecs"]
                if c["name"] == "zstd" and "dictionary" in c.get("configuration", {})
            ]
            assert (f"columns/{col}/zstd_dict" in f) == bool(refs)
            for ref in refs:
                assert f[f"columns/{col}/zstd_dict"].shape == (ref["size"],)


def test_golden_v1_covers_every_registered_codec():
    from lplabel.codecs import available_codecs

    used = {c["name"] for exp in EXPECTED.values() for c in exp["label_codecs"]}
    used |= {c["name"] for exp in EXPECTED.values() for chain in exp.get("column_codecs", {}).values() for c in chain}
    assert set(available_codecs()) <= used


@pytest.mark.parametrize(
    "name", sorted(n for n, e in EXPECTED.items() if {c["name"] for c in e["label_codecs"]} & {"sort", "rans"})
)
def test_golden_label_chunks_reencode_to_their_bytes(name):
    """The writer's encoders (``sort``, ``rans``: compiled loops that were rewritten for speed) still
    write exactly the committed bytes: every label chunk, decoded to the stage it is stored from and
    encoded again, is byte for byte what the file holds."""
    from lplabel.store import layout as L

    with open_store(HERE / "v1" / f"{name}.lpl") as s:
        pipe, cs, rs = s.pipelines["label"], s.tables[L.CHUNK_STEP_START], s.record_start
        for i in range(len(s.chunks["label"])):
            data = s.read_chunk_bytes("label", i)
            n = int(rs[cs[i + 1]] - rs[cs[i]])
            assert pipe.encode(pipe.decode(data, n, stop=pipe.stored_stage), start=pipe.stored_stage) == data
