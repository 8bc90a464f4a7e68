"""Issue 19 item 14: the header as an HDF5 string too (the `json` attribute of dataset `header`,
spec §1.2): h5dump/h5ls show it, lplabel never trusts it, stores without it stay valid."""

from __future__ import annotations

import json
import shutil
import subprocess

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from lplabel import open_store
from lplabel.cli import main
from lplabel.store import layout as L
from lplabel.store import store_info, verify_store

from conftest import REPO, write_store


def _copy(path):
    with h5py.File(path, "r") as f:
        d = f[L.HEADER]
        raw = np.asarray(d[()], dtype=np.uint8).tobytes()
        return raw, (d.attrs[L.ATTR_HEADER_JSON] if L.ATTR_HEADER_JSON in d.attrs else None)


def test_default_store_carries_an_exact_string_copy(tmp_path, monkeypatch):
    monkeypatch.delenv("LPLABEL_HEADER_COPY", raising=False)
    path = tmp_path / "a.lpl"
    write_store(path)
    raw, copy = _copy(path)
    assert isinstance(copy, bytes) and copy == raw  # fixed-length ASCII string, the header's exact bytes
    with h5py.File(path, "r") as f:
        t = f[L.HEADER].attrs.get_id(L.ATTR_HEADER_JSON).get_type()
        assert isinstance(t, h5py.h5t.TypeStringID) and t.get_size() == len(raw)
        assert t.get_cset() == h5py.h5t.CSET_ASCII and not t.is_variable_str()
    with open_store(path) as s:
        assert json.loads(copy) == s.header
    f = store_info(path)
    assert sum(f["bytes_by_field"].values()) == f["file_bytes"]
    assert f["bytes_by_field"]["header"] >= 2 * len(raw)  # the copy counts as header bytes


@pytest.mark.parametrize("how", ["api", "env", "cli"])
def test_the_copy_can_be_left_out(tmp_path, monkeypatch, how):
    src = tmp_path / "src.lpl"
    write_store(src)
    out = tmp_path / "out.lpl"
    if how == "api":
        write_store(out, header_copy=False)
    elif how == "env":
        monkeypatch.setenv("LPLABEL_HEADER_COPY", "0")
        write_store(out)
    else:
        r = CliRunner().invoke(main, ["--no-header-copy", "encode", str(src), "-o", str(out)])
        assert r.exit_code == 0, r.output
        import os

        assert "LPLABEL_HEADER_COPY" not in os.environ  # the CLI flag does not leak past the command
    raw, copy = _copy(out)
    assert copy is None
    with open_store(out) as s:
        assert s.header == json.loads(raw)
    assert verify_store(out).ok


def test_the_copy_costs_the_header_once_more(tmp_path, monkeypatch):
    monkeypatch.delenv("LPLABEL_HEADER_COPY", raising=False)
    a, b = tmp_path / "a.lpl", tmp_path / "b.lpl"
    write_store(a)
    write_store(b, header_copy=False)
    raw, _ = _copy(b)
    extra = a.stat().st_size - b.stat().st_size
    assert len(raw) <= extra <= len(raw) + 100, (extra, len(raw))


def test_readers_never_trust_the_copy(tmp_path):
    path = tmp_path / "a.lpl"
    write_store(path)
    with open_store(path) as s:
        header = s.header
    with h5py.File(path, "r+") as f:  # a tool edits the copy: a different, even broken JSON
        f[L.HEADER].attrs.modify(L.ATTR_HEADER_JSON, np.bytes_(b'{"format": "not lplabel", "num_classes": 3'))
    with open_store(path) as s:
        assert s.header == header
        assert s.read_step(0, 0).label is not None
    assert verify_store(path).ok


def test_large_headers_get_no_copy(tmp_path, monkeypatch):
    monkeypatch.setattr(L, "HEADER_JSON_MAX", 100)
    path = tmp_path / "a.lpl"
    write_store(path)
    assert _copy(path)[1] is None and open_store(path).num_steps > 0


def test_golden_files_have_no_copy_and_still_read():
    for p in sorted((REPO / "tests" / "golden" / "v1").glob("*.lpl")):
        assert _copy(p)[1] is None, p
        assert verify_store(p).ok, p


@pytest.mark.skipif(shutil.which("h5dump") is None, reason="hdf5-tools not installed")
def test_h5dump_and_h5ls_show_the_header(tmp_path):
    path = tmp_path / "a.lpl"
    write_store(path, header_copy=True)
    out = subprocess.run(["h5dump", "-A", str(path)], capture_output=True, text=True, check=True).stdout
    assert 'ATTRIBUTE "json"' in out and '"format":"lplabel"' in out and '"num_classes":20' in out
    out = subprocess.run(["h5ls", "-v", "-d", f"{path}/header"], capture_output=True, text=True, check=True).stdout
    assert "Attribute: json" in out and "ASCII string" in out and '\\"format\\":\\"lplabel\\"' in out
