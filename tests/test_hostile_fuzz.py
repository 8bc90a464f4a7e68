"""Fuzzing the reader with structured edits (issue 13): header fields, table entries and chunk
index rows set to hostile values with every CRC recomputed, so that only structure validation
stands between the edit and the reader. Whatever the edit, opening, reading every step and
verifying must either succeed with in-range content or raise a named lplabel error -- never
another exception, never unbounded memory (an address-space cap turns that into a failure).

A coverage-guided atheris target runs too where atheris is installed (skipped otherwise).
"""

from __future__ import annotations

import atexit
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from lplabel.errors import LplabelError  # noqa: E402
from lplabel.store import layout as L  # noqa: E402
from lplabel.store.reader import LabelStore  # noqa: E402
from lplabel.store.verify import verify_store  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
import hostile_campaign as HC  # noqa: E402
from test_hostile import memory_headroom  # noqa: E402

_DIR = Path(tempfile.mkdtemp(prefix="lplabel-fuzz-"))
atexit.register(shutil.rmtree, _DIR, True)  # the base stores are built once, at import
BASES = {k: HC.write_base(_DIR / f"{k}.lpl", *v) for k, v in HC.BASES.items() if k in ("dense10", "topk11")}

HOSTILE_INTS = st.one_of(
    st.integers(-3, 70),
    st.sampled_from([2**15, 2**16, 2**31 - 1, 2**31, 2**32, 2**40, 2**62, 2**63 - 1, 2**64, 2**70, -(2**63)]),
    st.integers(-(2**80), 2**80),
)
HOSTILE_FLOATS = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([1e300, -0.0, 1.5, -1.0]))
HEADER_INTS = ["num_classes", "num_images", "epochs", "steps_per_epoch", "batch_size", "records", "steps"]
TABLES = [
    L.STEP_EPOCH,
    L.STEP_STEP,
    L.STEP_RECORD_START,
    L.STEP_MIX_LAMBDA,
    L.STEP_MIX_BOX,
    L.CHUNK_STEP_START,
    L.IMAGE_CLASS,
] + [L.column_chunks(c) for c in L.COLUMNS]


@st.composite
def edits(draw):
    kind = draw(st.sampled_from(["header-int", "label-shape", "table", "table", "chunk-row"]))
    if kind == "header-int":
        return kind, draw(st.sampled_from(HEADER_INTS)), draw(HOSTILE_INTS)
    if kind == "label-shape":
        return kind, None, draw(st.lists(HOSTILE_INTS, min_size=0, max_size=5))
    if kind == "table":
        return (
            kind,
            draw(st.sampled_from(TABLES)),
            (draw(st.integers(0, 1000)), draw(HOSTILE_INTS), draw(HOSTILE_FLOATS)),
        )
    return (
        kind,
        L.column_chunks(draw(st.sampled_from(L.COLUMNS))),
        (draw(st.integers(0, 100)), draw(st.integers(0, 2)), draw(HOSTILE_INTS)),
    )


def apply(path, edit) -> None:
    kind, what, val = edit
    if kind == "header-int":
        HC.edit_header(path, lambda h: h.__setitem__(what, val))
    elif kind == "label-shape":
        HC.edit_header(path, lambda h: h["columns"]["label"]["input"][0].__setitem__("shape", val))
    else:

        def fn(t):
            a = np.array(t[what])
            if not a.size:
                return
            flat = a.reshape(-1)
            i = (val[0] if kind == "table" else val[0] * 3 + val[1]) % flat.size
            v = val[2] if kind == "table" and a.dtype.kind == "f" else (val[1] if kind == "table" else val[2])
            info = np.finfo(a.dtype) if a.dtype.kind == "f" else np.iinfo(a.dtype)
            if a.dtype.kind != "f":
                v = int(min(max(v, info.min), info.max))
            flat[i] = v
            t[what] = a

        HC.edit_tables(path, fn)


def check(path) -> None:
    """Named error, or content within what the header declares."""
    with memory_headroom():
        try:
            with LabelStore(path) as s:
                C, N = s.num_classes, s.num_images
                for i in range(s.num_steps):
                    r = s.step_at(i)
                    assert r.image.min() >= 0 and r.image.max() < N
                    assert np.isfinite(r.crop.astype(np.float32)).all()
                    assert r.mix_partner.min() >= -1 and r.mix_partner.max() < len(r)
                    assert math.isnan(r.mix_lambda) or 0 <= r.mix_lambda <= 1
                    if "indices" in r.label:
                        assert r.label["indices"].min() >= 0 and r.label["indices"].max() < C
            verify_store(path)
        except LplabelError as e:
            assert "\n" not in str(e)


@settings(
    max_examples=int(os.environ.get("LPLABEL_FUZZ_EXAMPLES", "120")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(base=st.sampled_from(sorted(BASES)), edit_list=st.lists(edits(), min_size=1, max_size=3))
def test_structured_edits_never_escape(base, edit_list, tmp_path_factory):
    p = tmp_path_factory.mktemp("fz") / "f.lpl"
    shutil.copy(BASES[base], p)
    for e in edit_list:
        try:
            apply(p, e)
        except (json.JSONDecodeError, OverflowError, ValueError):
            return  # the edit itself cannot be written (not a reader question)
    check(p)


ATHERIS_TARGET = r"""
import sys, os, tempfile, atheris
with atheris.instrument_imports():
    from lplabel.errors import LplabelError
    from lplabel.store.reader import LabelStore
BASE = open(sys.argv[1], "rb").read()
TMP = tempfile.mktemp(suffix=".lpl")

def one(data):
    fdp = atheris.FuzzedDataProvider(data)
    buf = bytearray(BASE)
    for _ in range(fdp.ConsumeIntInRange(1, 8)):
        buf[fdp.ConsumeIntInRange(0, len(buf) - 1)] = fdp.ConsumeInt(1) & 0xFF
    with open(TMP, "wb") as fh:
        fh.write(buf)
    try:
        with LabelStore(TMP) as s:
            for i in range(s.num_steps):
                s.step_at(i)
    except LplabelError:
        pass

atheris.Setup([sys.argv[0], "-runs=3000", "-max_total_time=20"], one)
atheris.Fuzz()
"""


def test_atheris_target(tmp_path):
    pytest.importorskip("atheris")
    r = subprocess.run(
        [sys.executable, "-c", ATHERIS_TARGET, str(BASES["topk11"])],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        timeout=120,
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr[-3000:]
