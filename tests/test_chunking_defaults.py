"""Steps per chunk that the writing commands pick when ``--steps-per-chunk`` is not given (issue 17).

Training reads full stores in stored order, several consecutive steps per loader item
(``steps_per_item``), so the commands write 8 steps per chunk there; LPLD/LPQLD-pruned stores
are read in random order and keep 1; ``--steps-per-chunk`` always wins."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import write_store
from lplabel import open_store
from lplabel.cli import main
from lplabel.selection.schedule import TRAINING_STEPS_PER_CHUNK, default_steps_per_chunk


def run(*args):
    r = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return r


def chunking(path):
    st = open_store(path)
    try:
        spc = st.header["chunking"]["steps_per_chunk"]
        n_chunks = len(st.chunks["label"])
        return spc, n_chunks, st.num_steps
    finally:
        st.close()


def test_default_follows_how_training_reads_the_store():
    assert TRAINING_STEPS_PER_CHUNK == 8
    assert default_steps_per_chunk(None) == TRAINING_STEPS_PER_CHUNK  # full store: read in order
    assert default_steps_per_chunk({"reuse": "order"}) == TRAINING_STEPS_PER_CHUNK
    assert default_steps_per_chunk({"reuse": "lpqld"}) == 1  # random draws
    assert default_steps_per_chunk({"reuse": "lpld"}) == 1
    assert default_steps_per_chunk({"keep": 0.5}) == 1  # pruned, reuse unnamed: lpld


@pytest.fixture(scope="module")
def src(tmp_path_factory):
    """A full store written with the old default, 1 step per chunk (24 steps)."""
    path = tmp_path_factory.mktemp("chunks") / "one.lpl"
    write_store(path, n_images=48, num_classes=40, batch_size=8, epochs=4, steps_per_chunk=1)
    assert chunking(path) == (1, 24, 24)
    return path


@pytest.mark.parametrize("cmd", [["encode"], ["encode", "--layout", "rans"], ["quantize", "--topk", "6"]])
def test_rewriting_a_full_store_chunks_for_training(src, tmp_path, cmd):
    out = tmp_path / "out.lpl"
    extra = ["--values", "fp16"] if cmd[0] == "quantize" else []
    if cmd[-1] == "rans":
        pytest.importorskip("numba")
        src2 = tmp_path / "k6.lpl"  # rans codes top-k: quantize first (explicitly 1 step per chunk)
        run("quantize", src, "-o", src2, "--topk", 6, "--values", "fp16", "--steps-per-chunk", 1)
        assert chunking(src2)[0] == 1
        run(cmd[0], src2, "-o", out, *cmd[1:])
    else:
        run(cmd[0], src, "-o", out, *cmd[1:], *extra)
    assert chunking(out) == (8, 3, 24)
    explicit = tmp_path / "explicit.lpl"
    run(cmd[0], src2 if cmd[-1] == "rans" else src, "-o", explicit, *cmd[1:], *extra, "--steps-per-chunk", 3)
    assert chunking(explicit) == (3, 8, 24)


def test_pruned_store_keeps_one_step_per_chunk(src, tmp_path):
    out = tmp_path / "pruned.lpl"
    run("prune", src, "-o", out, "--keep", "0.5", "--seed", "1", "--reuse", "lpqld")
    spc, n_chunks, n_steps = chunking(out)
    assert (spc, n_chunks) == (1, n_steps)
    explicit = tmp_path / "explicit.lpl"
    run("prune", src, "-o", explicit, "--keep", "0.5", "--seed", "1", "--reuse", "lpqld", "--steps-per-chunk", 4)
    assert chunking(explicit)[0] == 4


def test_import_writes_training_chunks(tmp_path):
    pytest.importorskip("torch")
    from lplabel.interop import synth

    d = synth.write_batches(
        Path(tmp_path) / "lpqld", "lpqld", num_images=37, batch_size=8, epochs=4, k=10, num_classes=100
    )
    out = tmp_path / "imp.lpl"
    run("import", d, "-o", out, "--num-classes", 100)
    spc, n_chunks, n_steps = chunking(out)
    assert n_steps > 8 and spc == 8 and n_chunks == -(-n_steps // 8)
    one = tmp_path / "imp1.lpl"
    run("import", d, "-o", one, "--num-classes", 100, "--steps-per-chunk", 1)
    assert chunking(one) == (1, n_steps, n_steps)


@pytest.mark.parametrize("cmd", ["import", "relabel", "encode", "quantize", "prune"])
def test_help_and_docs_state_the_default(cmd):
    """What ``--help`` and docs/loader.md tell a user is the number the commands use."""
    import re

    text = " ".join(CliRunner().invoke(main, [cmd, "--help"], terminal_width=200).output.split())
    opt = text[text.index("--steps-per-chunk") :]
    assert re.match(rf"--steps-per-chunk [^-]*?[Dd]efault:? {TRAINING_STEPS_PER_CHUNK}\b", opt), opt[:300]
    docs = " ".join((Path(__file__).resolve().parents[1] / "docs" / "loader.md").read_text().split())
    assert f"{TRAINING_STEPS_PER_CHUNK} steps per chunk for stores read in stored order" in docs
    assert "`--steps-per-chunk N` overrides it" in docs
