"""``lplabel relabel`` / ``lplabel merge`` end to end: inputs, errors, a killed run, torchrun."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from lplabel import open_store
from lplabel.cli import main
from lplabel.teachers import save_teacher

from relabel_helpers import one_torch_thread  # noqa: F401  (autouse fixture)
from relabel_helpers import TinyTeacher, assert_same_content

REPO = Path(__file__).resolve().parents[1]


def _png_tree(root: Path, sizes=((12, 14), (16, 10), (9, 9))):
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in ("cat", "dog", "eel"):
        (root / c).mkdir(parents=True)
        for i, (h, w) in enumerate(sizes):
            Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(root / c / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def ts_teacher(tmp_path_factory):
    d = tmp_path_factory.mktemp("teachers")
    return save_teacher(TinyTeacher(3, 3), d / "rgb3.pt"), save_teacher(TinyTeacher(1, 10), d / "digits.pt")


def run(args):
    r = CliRunner().invoke(main, [str(a) for a in args])
    return r.exit_code, r.output  # click >= 8.2: stdout and stderr together


def test_image_folder_of_mixed_sizes(tmp_path, ts_teacher):
    tree = _png_tree(tmp_path / "imgs")
    out = tmp_path / "f.lpl"
    code, text = run(
        [
            "relabel",
            tree,
            "--teacher",
            ts_teacher[0],
            "-o",
            out,
            "--epochs",
            "2",
            "-b",
            "4",
            "--size",
            "8",
            "--mix",
            "mixup",
            "--topk",
            "2",
            "--no-progress",
        ]
    )
    assert code == 0, text
    assert "views/s" in text and "dense fp16" in text
    s = open_store(out)
    assert s.num_records == 18 and s.num_classes == 3
    assert s.image_keys[0] == "cat/0.png"
    assert s.header["teacher"]["description"] == str(ts_teacher[0])
    code, text = run(["relabel", tree, "--teacher", ts_teacher[0], "-o", out, "--epochs", "1", "--size", "8"])
    assert code == 2 and text.count("\n") == 1 and "output exists" in text


def test_npz_pack_dataset_name_ipc_and_ensemble(tmp_path, ts_teacher):
    rng = np.random.default_rng(1)
    pack = tmp_path / "pack.npz"
    np.savez(pack, images=rng.integers(0, 256, (12, 10, 10, 3), dtype=np.uint8), labels=np.arange(12) % 3)
    code, text = run(
        [
            "relabel",
            pack,
            "--teacher",
            ts_teacher[0],
            "--teacher",
            ts_teacher[0],
            "-o",
            tmp_path / "p.lpl",
            "--epochs",
            "1",
            "-b",
            "6",
            "--no-progress",
        ]
    )
    assert code == 0, text
    assert open_store(tmp_path / "p.lpl").header["teacher"]["description"].startswith("ensemble (mean logits) of 2")
    code, text = run(
        [
            "relabel",
            "digits",
            "--ipc",
            "3",
            "--teacher",
            ts_teacher[1],
            "-o",
            tmp_path / "d.lpl",
            "--epochs",
            "2",
            "-b",
            "8",
            "--keep",
            "0.5",
            "--no-progress",
        ]
    )
    assert code == 0, text
    s = open_store(tmp_path / "d.lpl")
    assert s.num_images == 30 and s.num_steps == 4 and s.header["selection"]["keep"] == 0.5
    assert s.header["augmentation"]["flip_p"] == 0.0  # digits are not flippable


def test_factory_spec_with_checkpoint(tmp_path):
    from lplabel.teachers.models import convnet

    net = convnet(num_classes=10, in_channels=1, width=8, depth=1)
    ck = tmp_path / "ck.pt"
    torch.save(net.state_dict(), ck)
    spec = 'lplabel.models:convnet{"num_classes": 10, "in_channels": 1, "width": 8, "depth": 1}'
    code, text = run(
        [
            "relabel",
            "digits",
            "--ipc",
            "2",
            "--teacher",
            spec,
            "--checkpoint",
            ck,
            "-o",
            tmp_path / "c.lpl",
            "--epochs",
            "1",
            "-b",
            "10",
            "--no-progress",
        ]
    )
    assert code == 0, text
    assert open_store(tmp_path / "c.lpl").header["teacher"]["description"].endswith("@ ck.pt")


def test_bad_inputs_are_one_line_errors(tmp_path, ts_teacher):
    tree = _png_tree(tmp_path / "imgs")
    (tmp_path / "imgs" / "empty").mkdir()
    code, text = run(["relabel", tree, "--teacher", ts_teacher[0], "-o", tmp_path / "a.lpl", "--size", "8"])
    assert code == 2 and "empty" in text and "holds no images" in text and text.count("\n") == 1
    (tmp_path / "imgs" / "empty").rmdir()
    (tmp_path / "imgs" / "dog" / "broken.png").write_bytes(b"not a png")
    code, text = run(["relabel", tree, "--teacher", ts_teacher[0], "-o", tmp_path / "a.lpl", "--size", "8"])
    assert code == 2 and "broken.png" in text and text.count("\n") == 1
    (tmp_path / "imgs" / "dog" / "broken.png").unlink()
    code, text = run(["relabel", tree, "--teacher", ts_teacher[1], "-o", tmp_path / "a.lpl", "--size", "8"])
    assert code == 2 and "teacher failed" in text
    code, text = run(["relabel", "digits", "--ipc", "2", "--teacher", ts_teacher[0], "-o", tmp_path / "a.lpl"])
    assert code == 2 and "teacher" in text
    code, text = run(["relabel", "nosuch", "--teacher", ts_teacher[0], "-o", tmp_path / "a.lpl"])
    assert code == 2 and "not a dataset name" in text
    code, text = run(["relabel", tree, "--teacher", tmp_path / "missing.pt", "-o", tmp_path / "a.lpl"])
    assert code == 2 and "missing.pt" in text
    assert not (tmp_path / "a.lpl").exists()


def test_cli_shards_and_merge(tmp_path, ts_teacher):
    args = [
        "relabel",
        "digits",
        "--ipc",
        "3",
        "--teacher",
        ts_teacher[1],
        "-o",
        tmp_path / "m.lpl",
        "--epochs",
        "2",
        "-b",
        "8",
        "--part-steps",
        "1",
        "--world-size",
        "2",
        "--no-merge",
        "--no-progress",
    ]
    for r in (0, 1):
        code, text = run(args + ["--rank", r, "--work-dir", tmp_path / f"w{r}"])
        assert code == 0, text
    code, text = run(["merge", tmp_path / "w0", "-o", tmp_path / "m.lpl"])
    assert code == 2 and "missing" in text
    code, text = run(["merge", tmp_path / "w0", tmp_path / "w1", "-o", tmp_path / "m.lpl", "--remove-sources"])
    assert code == 0, text
    assert not (tmp_path / "w0").exists()
    code, text = run(
        [
            "relabel",
            "digits",
            "--ipc",
            "3",
            "--teacher",
            ts_teacher[1],
            "-o",
            tmp_path / "one.lpl",
            "--epochs",
            "2",
            "-b",
            "8",
            "--no-progress",
        ]
    )
    assert code == 0, text
    assert_same_content(tmp_path / "m.lpl", tmp_path / "one.lpl")


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("LPLABEL_DEBUG", None)
    env["OMP_NUM_THREADS"] = "1"  # as the in-process references (see relabel_helpers.one_torch_thread)
    return env


def test_killed_process_resumes_to_the_same_store(tmp_path, ts_teacher):
    out = tmp_path / "k.lpl"
    cmd = [
        sys.executable,
        "-m",
        "lplabel",
        "relabel",
        "digits",
        "--ipc",
        "20",
        "--teacher",
        str(ts_teacher[1]),
        "-o",
        str(out),
        "--epochs",
        "40",
        "-b",
        "8",
        "--part-steps",
        "10",
        "--topk",
        "4",
        "--no-progress",
    ]
    work = tmp_path / "k.lpl.partial"
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None:
        if len(list(work.glob("part-*.lpl"))) >= 3:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.005)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert not out.exists()
    done = len(list(work.glob("part-*.lpl")))
    assert 3 <= done < 100
    r = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert f"resuming: {done} of 100 parts already done" in r.stderr
    assert not work.exists()

    from lplabel.relabel import relabel, load_images, load_teachers

    teacher, desc = load_teachers([str(ts_teacher[1])])
    ref = relabel(
        load_images("digits", ipc=20),
        teacher,
        tmp_path / "ref.lpl",
        epochs=40,
        batch_size=8,
        topk=4,
        teacher_description=desc,
        progress=False,
    )
    assert_same_content(out, ref)


@pytest.mark.slow
def test_torchrun_gloo_two_ranks(tmp_path, ts_teacher):
    out = tmp_path / "d.lpl"
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(port),
        "-m",
        "lplabel",
        "relabel",
        "digits",
        "--ipc",
        "4",
        "--teacher",
        str(ts_teacher[1]),
        "-o",
        str(out),
        "--epochs",
        "3",
        "-b",
        "8",
        "--part-steps",
        "2",
        "--device",
        "cpu",
        "--no-progress",
    ]
    env = _env()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    from lplabel.relabel import relabel, load_images, load_teachers

    teacher, desc = load_teachers([str(ts_teacher[1])])
    ref = relabel(
        load_images("digits", ipc=4),
        teacher,
        tmp_path / "ref.lpl",
        epochs=3,
        batch_size=8,
        teacher_description=desc,
        progress=False,
    )
    assert_same_content(out, ref)
