"""`lplabel info` and `lplabel verify` as a user runs them: output, exit codes, no tracebacks."""

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from lplabel.cli import main

from conftest import write_store


@pytest.fixture
def runner():
    return CliRunner()


def test_info_human_and_json(runner, small_store):
    path, ref = small_store
    r = runner.invoke(main, ["info", str(path)])
    assert r.exit_code == 0, r.output
    assert "records" in r.output and "column.label" in r.output and "vs dense fp16, stored records" in r.output
    r = runner.invoke(main, ["info", "--json", str(path)])
    facts = json.loads(r.output)
    assert facts["records"] == sum(len(x["image"]) for x in ref)
    assert facts["classes"] == 20 and facts["steps"] == len(ref)
    assert sum(facts["bytes_by_field"].values()) == facts["file_bytes"]


def test_verify_ok_and_damaged(runner, small_store):
    path, _ = small_store
    r = runner.invoke(main, ["verify", str(path)])
    assert r.exit_code == 0 and r.output.startswith("OK")
    raw = bytearray(path.read_bytes())
    from lplabel import open_store

    with open_store(path) as s:
        base, _ = s.segment_offsets["crop"][0]
        _, off, n = s.chunks["crop"][3]
    raw[base + off + 1] ^= 0xFF
    path.write_bytes(bytes(raw))
    r = runner.invoke(main, ["verify", str(path)])
    assert r.exit_code == 1
    assert "column 'crop', chunk 3" in r.output and "Traceback" not in r.output


@pytest.mark.parametrize(
    "content,expect",
    [
        (b"", "empty"),
        (b"not a store at all", "HDF5 signature"),
        (None, "no such file"),
    ],
)
def test_bad_files_give_one_line_and_exit_2(runner, tmp_path, content, expect):
    p = tmp_path / "bad.lpl"
    if content is not None:
        p.write_bytes(content)
    for cmd in ("info", "verify"):
        r = runner.invoke(main, [cmd, str(p)])
        assert "Traceback" not in r.output
        assert expect in r.output
        assert r.exit_code == (2 if cmd == "info" else 1)


def test_truncated_store_through_the_real_entry_point(tmp_path):
    p = tmp_path / "t.lpl"
    write_store(p)
    p.write_bytes(p.read_bytes()[:5000])
    proc = subprocess.run([sys.executable, "-m", "lplabel", "info", str(p)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "truncated" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_help_explains_commands(runner):
    r = runner.invoke(main, ["--help"])
    assert r.exit_code == 0 and "info" in r.output and "verify" in r.output
    r = runner.invoke(main, ["info", "--help"])
    assert "dense fp16" in r.output


def test_info_counts_zstd_dictionaries_with_their_column():
    from pathlib import Path

    from lplabel import store_info

    path = Path(__file__).parent / "golden" / "v1" / "topk3-fp16-rawdict.lpl"
    f = store_info(path)
    assert f["bytes_by_field"]["column.label.dictionary"] > 0
    assert (
        f["label_payload_bytes"] == f["bytes_by_field"]["column.label"] + f["bytes_by_field"]["column.label.dictionary"]
    )
    assert sum(f["bytes_by_field"].values()) == f["file_bytes"]
