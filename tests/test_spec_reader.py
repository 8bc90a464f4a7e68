"""The minimal reader printed in spec/FORMAT.md §10 must decode stores exactly like lplabel does.

This keeps the specification honest: the code is taken from the document itself.
"""
import re
from pathlib import Path

import numpy as np
import pytest

from lplabel import open_store

from conftest import write_store

SPEC = Path(__file__).resolve().parents[1] / "spec" / "FORMAT.md"
GOLDEN = Path(__file__).resolve().parent / "golden" / "v1"


def _spec_reader():
    text = SPEC.read_text()
    section = text[text.index("## 10."):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    ns = {}
    exec(compile(code, str(SPEC), "exec"), ns)
    return ns["read_store"]


def _compare(path):
    read_store = _spec_reader()
    f, header, decode = read_store(path)
    try:
        with open_store(path) as s:
            assert header == s.header
            for k in range(len(s.chunks["label"])):
                for col in ("image", "crop", "flip", "mix_partner", "label"):
                    mine = s.decode_chunk(col, k)
                    theirs = decode(col, k)
                    assert sorted(mine) == sorted(theirs)
                    for name in mine:
                        a, b = np.asarray(mine[name]), np.asarray(theirs[name])
                        assert a.shape == b.shape
                        assert a.tobytes() == b.tobytes(), (col, k, name)
    finally:
        f.close()


@pytest.mark.parametrize("path", sorted(GOLDEN.glob("*.lpl")), ids=lambda p: p.stem)
def test_spec_reader_matches_on_golden_files(path):
    _compare(path)


def test_spec_reader_matches_on_a_multi_segment_store(tmp_path):
    path = tmp_path / "seg.lpl"
    write_store(path, n_images=64, num_classes=50, batch_size=8, epochs=4, steps_per_chunk=3, segment_bytes=2000,
                label="topk", k=7, tail="logsumexp")
    with open_store(path) as s:
        assert len(s.segment_offsets["label"]) > 2
    _compare(path)
