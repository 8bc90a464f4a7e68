"""Top-k legacy labels do not record C: lplabel infers it only when the data fixes it (issue 19, item 7).

A CIFAR-10 top-k set used to become a 200-class store (the smallest of 200 / 1000 / 10450 above
the largest index seen), which `compare` then refused against the real 10-class store.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from click.testing import CliRunner  # noqa: E402

from lplabel import open_store  # noqa: E402
from lplabel.cli import main  # noqa: E402
from lplabel.interop import synth  # noqa: E402


def run(*args):
    res = CliRunner().invoke(main, [str(a) for a in args])
    return res.exit_code, res.output


@pytest.fixture(scope="module")
def cifar_topk(tmp_path_factory):
    """An LPQLD MR-3 set over 10 classes (CIFAR-10-like), and an FKD set over 10 classes."""
    tmp = tmp_path_factory.mktemp("c10")
    q = synth.write_batches(tmp / "lpqld", "lpqld", num_images=20, batch_size=5, epochs=1, num_classes=10, k=3)
    f = synth.write_fkd(tmp / "fkd", num_images=4, num_crops=6, k=3, num_classes=10, num_dirs=2)
    return q, f


@pytest.mark.parametrize("which", [0, 1], ids=["lpqld", "fkd"])
@pytest.mark.parametrize("cmd", ["import", "encode"])
def test_topk_without_num_classes_is_refused(cifar_topk, tmp_path, which, cmd):
    out = tmp_path / "x.lpl"
    code, msg = run(cmd, cifar_topk[which], "-o", out)
    assert code == 2 and "--num-classes" in msg and "does not guess" in msg and "Traceback" not in msg, msg
    assert not out.exists()
    code, msg = run(cmd, cifar_topk[which], "-o", out, "--num-classes", 10)
    assert code == 0, msg
    with open_store(out) as s:
        assert s.num_classes == 10


def test_num_classes_below_an_index_is_refused(cifar_topk, tmp_path):
    code, msg = run("import", cifar_topk[0], "-o", tmp_path / "x.lpl", "--num-classes", 2)
    assert code == 2 and "class index" in msg and "num_classes=2" in msg, msg


def test_image_folder_classes_fix_c(cifar_topk, tmp_path):
    """With --images FOLDER, the folder's classes are the label space (when they cover every index)."""
    imgs = tmp_path / "images"
    for c in range(10):
        (imgs / f"class{c}").mkdir(parents=True)
        for i in range(2):
            (imgs / f"class{c}" / f"{i}.png").write_bytes(b"")
    out = tmp_path / "q.lpl"
    code, msg = run("import", cifar_topk[0], "-o", out, "--images", imgs)
    assert code == 0 and "C=10 from the classes of the given images" in msg, msg
    with open_store(out) as s:
        assert s.num_classes == 10
    few = tmp_path / "few"
    for c in range(3):
        (few / f"class{c}").mkdir(parents=True)
        for i in range(7):
            (few / f"class{c}" / f"{i}.png").write_bytes(b"")
    code, msg = run("import", cifar_topk[0], "-o", tmp_path / "y.lpl", "--images", few)
    assert code == 2 and "only 3 classes" in msg, msg
