"""Hostile files, full disks and killed writers (issue 13; spec/FORMAT.md §6-§8).

The hostile files are the campaign's (benchmarks/hostile_campaign.py): real stores edited with
h5py with every CRC recomputed, so only structure validation can catch them. Each is opened and
read under an address-space cap a few hundred MB above what the process already maps: a reader
that allocated what a file declares would fail with MemoryError instead of a named error.
"""

from __future__ import annotations

import contextlib
import errno
import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lplabel.errors import LplabelError, LplabelWarning, OutputWriteError, output_write_error
from lplabel.store import writer as W
from lplabel.store.reader import LabelStore
from lplabel.store.verify import verify_store

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
import hostile_campaign as HC  # noqa: E402

HC.BOMB["bytes"] = 96 << 20  # above every cap the reader applies to these small stores
HEADROOM = 512 << 20


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    return HC.make_bases(tmp_path_factory.mktemp("bases"))


@contextlib.contextmanager
def memory_headroom(extra=HEADROOM):
    """Cap this process's address space at what it maps now + ``extra`` (restored after)."""
    with open("/proc/self/statm") as fh:
        mapped = int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (mapped + extra, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def read_everything(path) -> None:
    with LabelStore(path) as s:
        for i in range(s.num_steps):
            s.step_at(i)


@pytest.mark.parametrize("case", HC.CASES, ids=[c[1] for c in HC.CASES])
def test_hostile_file_is_refused_by_name(case, bases, tmp_path):
    cat, name, base, edit = case
    p = tmp_path / f"{name}.lpl"
    shutil.copy(bases[base], p)
    edit(p)
    with memory_headroom():
        try:
            read_everything(p)
        except LplabelError as e:
            assert "\n" not in str(e)
            return
        # what reading may hand out, verify must still flag (CutMix boxes: verify's rule)
        report = verify_store(p)
    assert report.problems, f"{name}: read without complaint and verify found nothing"


def test_campaign_bases_read_clean(bases):
    for p in bases.values():
        read_everything(p)
        assert verify_store(p).ok


# -- stale temporaries ------------------------------------------------------------------------------


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_stale_temporaries_of_the_same_output_are_removed(tmp_path):
    out = tmp_path / "x.lpl"
    dead = _dead_pid()
    stale = tmp_path / f".x.lpl.{dead}.abcd1234.tmp"
    live = tmp_path / f".x.lpl.{os.getppid()}.efgh5678.tmp"  # a running process's: kept
    other = tmp_path / f".y.lpl.{dead}.abcd1234.tmp"  # another output's: kept
    legacy = tmp_path / ".x.lpl.abcd1234.tmp"  # no pid, writer unknown: kept
    for p in (stale, live, other, legacy):
        p.write_bytes(b"partial")
    with pytest.warns(LplabelWarning, match="killed writer"):
        w = W.StoreWriter(out, num_classes=3, images=4, batch_size=2, epochs=1)
    w.abort()
    assert not stale.exists() and live.exists() and other.exists() and legacy.exists()
    assert w.stale_removed == [stale]
    assert not list(tmp_path.glob(f".x.lpl.{os.getpid()}.*.tmp"))  # and its own is gone after abort


def test_temporary_name_carries_the_pid(tmp_path):
    t = W.temp_path_for(tmp_path / "a.lpl")
    try:
        assert t.name.startswith(f".a.lpl.{os.getpid()}.") and t.name.endswith(".tmp")
    finally:
        t.unlink()


def test_cli_says_it_removed_a_stale_temporary(tmp_path, small_store):
    src, _ = small_store
    stale = tmp_path / f".q.lpl.{_dead_pid()}.abcd1234.tmp"
    stale.write_bytes(b"x")
    r = subprocess.run(
        [sys.executable, "-m", "lplabel", "quantize", str(src), "-o", str(tmp_path / "q.lpl"), "--topk", "3"],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )
    assert r.returncode == 0, r.stderr
    assert f"note: removed {stale.name}" in r.stderr and not stale.exists()


# -- full disks -------------------------------------------------------------------------------------


def test_output_write_error_names_the_cause():
    e = OSError(28, "No space left on device")
    assert isinstance(output_write_error(e, "/x/y.lpl"), OutputWriteError)
    h5 = OSError("Can't synchronously write data (file write failed: errno = 28, error message = 'No space left')")
    assert "ENOSPC" in str(output_write_error(h5))
    assert "EDQUOT" in str(output_write_error(OSError(errno.EDQUOT, "Disk quota exceeded")))
    assert "EIO" in str(output_write_error(OSError(errno.EIO, "Input/output error")))
    assert output_write_error(OSError(errno.ENOENT, "No such file")) is None
    assert output_write_error(ValueError("no space left")) is None


def test_writer_on_full_disk_simulated(tmp_path, monkeypatch):
    """ENOSPC from the space reservation (no mount needed): named error, nothing left behind."""

    def full(fd, off, n):
        raise OSError(errno.ENOSPC, "No space left on device")

    w = W.StoreWriter(tmp_path / "a.lpl", num_classes=5, images=8, batch_size=4, epochs=2, segment_bytes=64)
    monkeypatch.setattr(os, "posix_fallocate", full)
    rng = np.random.default_rng(0)
    with pytest.raises(OutputWriteError, match="disk is full"):
        for s in range(2):
            w.write_step(
                0,
                s,
                image=np.arange(4, dtype=np.int32) + 4 * s,
                crop=rng.random((4, 4)),
                flip=np.zeros(4, bool),
                logits=rng.standard_normal((4, 5)).astype(np.float32),
            )
        w.close()
    assert sorted(os.listdir(tmp_path)) == []


def _run_limited(argv, fsize, cwd):
    def pre():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    return subprocess.run(
        argv,
        capture_output=True,
        text=True,
        preexec_fn=pre,
        cwd=cwd,
        timeout=300,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )


@pytest.mark.parametrize("limit", [4096, 40_000, 200_000])
def test_writer_at_file_size_limit_fails_cleanly(tmp_path, limit):
    """RLIMIT_FSIZE (EFBIG) at several points of the write: one named error, exit without a
    crash, no "Exception ignored" from h5py, no temporary left."""
    r = _run_limited([sys.executable, "-c", HC.WRITER, str(tmp_path / "w.lpl"), "200"], limit, tmp_path)
    assert r.returncode == 1, r.stderr[-2000:]
    assert "Exception ignored" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("lplabel.errors.OutputWriteError")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("cmd", ["quantize", "encode", "export", "import"])
def test_cli_on_file_size_limit_is_one_line(tmp_path, small_store, cmd):
    src, _ = small_store
    out = tmp_path / "out"
    out.mkdir()
    if cmd == "import":
        r = subprocess.run(
            [sys.executable, "-m", "lplabel", "export", str(src), "-o", str(tmp_path / "legacy"), "--to", "lpld"],
            capture_output=True,
            text=True,
            env=dict(os.environ, PYTHONPATH=str(REPO)),
        )
        assert r.returncode == 0, r.stderr
    argv = {
        "quantize": ["quantize", str(src), "-o", str(out / "q.lpl"), "--topk", "3"],
        "encode": ["encode", str(src), "-o", str(out / "e.lpl")],
        "export": ["export", str(src), "-o", str(out / "x"), "--to", "lpld"],
        "import": ["import", str(tmp_path / "legacy"), "-o", str(out / "i.lpl")],
    }[cmd]
    r = _run_limited([sys.executable, "-m", "lplabel", *argv], 2048, tmp_path)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), r.stderr[-3000:]
    assert os.listdir(out) == []


def test_cli_on_a_full_tmpfs(tmp_path, small_store):
    """The real thing where this process may mount a 2 MiB tmpfs (root); skipped elsewhere."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if (
        os.geteuid() != 0
        or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], capture_output=True).returncode
        != 0
    ):
        pytest.skip("cannot mount a tmpfs here")
    try:
        st = os.statvfs(mnt)
        (mnt / "filler").write_bytes(bytes(st.f_bavail * st.f_frsize - (16 << 10)))
        src, _ = small_store
        r = subprocess.run(
            [sys.executable, "-m", "lplabel", "encode", str(src), "-o", str(mnt / "e.lpl")],
            capture_output=True,
            text=True,
            env=dict(os.environ, PYTHONPATH=str(REPO)),
            cwd=tmp_path,
        )
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 2 and lines == [lines[0]] and "disk is full" in lines[0], r.stderr[-3000:]
        assert sorted(os.listdir(mnt)) == ["filler"]
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)


def test_finished_store_has_no_reserved_tail(tmp_path, small_store):
    """The space reserved ahead of HDF5 is cut off: the file ends where its superblock says."""
    src, _ = small_store
    raw = Path(src).read_bytes()
    assert raw[8] in (2, 3)
    assert len(raw) == int.from_bytes(raw[28:36], "little")
