"""Every lplabel command once, on tiny inputs, against a plain (non-editable, no extras) install.

Usage: python .ci/plain_smoke.py --venv VENV [--no-torch-venv VENV2] [--data DIR]

VENV has ``pip install torch==2.13.0`` then ``pip install .`` (what ``pip install lplabel``
gives); VENV2 has ``pip install .`` only. Commands run from a temporary folder (so the
installed copy is tested, not the checkout), with LPLABEL_* variables removed. Each command must
end with the expected exit status, and none may print a traceback: a command that needs an
extra that is not installed must stop with one ``error: ...`` line naming it. ``--data``: a
folder holding ``cifar10-jpeg/test.npz`` (real images for the inputs; synthetic ones without).
Prints one line per command and ends with ``N passed, N failed``; exit status 1 on any failure.
"""
from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TEACHER = 'lplabel.models:convnet{"num_classes": 3, "width": 8}'

# Tiny inputs, made with the installed package itself (Pillow is a core dependency): an
# ImageFolder of JPEG and PNG files (3 classes x 4 images, 16x16), a 3-class cifar10-style pack
# for the built-in-name path, and a TorchScript teacher trained on the folder for 2 epochs.
MAKE_INPUTS = r"""
import io
import sys
from pathlib import Path
import numpy as np
from PIL import Image
work, data = Path(sys.argv[1]), sys.argv[2]
rng = np.random.default_rng(0)
pix, lab = None, None
if data:
    z = np.load(Path(data) / "cifar10-jpeg" / "test.npz")
    labels, off, buf = z["labels"], z["offsets"], z["data"]
    pick = np.concatenate([np.flatnonzero(labels == c)[:4] for c in range(3)])
    pix = [np.asarray(Image.open(io.BytesIO(buf[off[i]:off[i + 1]].tobytes())).convert("RGB"))[8:24, 8:24]
           for i in pick]
    lab = labels[pick]
else:
    pix = [rng.integers(0, 256, (16, 16, 3), dtype=np.uint8) for _ in range(12)]
    lab = np.repeat(np.arange(3), 4)
for i, (a, c) in enumerate(zip(pix, lab)):
    d = work / "imgs" / f"class{int(c)}"
    d.mkdir(parents=True, exist_ok=True)
    Image.fromarray(a).save(d / (f"{i}.jpg" if i % 2 else f"{i}.png"))
# a cifar10-style pack (JPEG bytes + offsets + labels) under pack/cifar10-jpeg/
blobs = []
for a in pix:
    b = io.BytesIO()
    Image.fromarray(a).save(b, format="JPEG", quality=90)
    blobs.append(np.frombuffer(b.getvalue(), np.uint8))
offsets = np.concatenate([[0], np.cumsum([len(b) for b in blobs])]).astype(np.int64)
(work / "pack" / "cifar10-jpeg").mkdir(parents=True, exist_ok=True)
for split in ("train", "test"):
    np.savez(work / "pack" / "cifar10-jpeg" / f"{split}.npz", data=np.concatenate(blobs), offsets=offsets,
             labels=np.asarray(lab, np.uint8))
"""

MAKE_TEACHER = r"""
import sys
from lplabel.datasets import load_image_folder
from lplabel.teachers import save_teacher, train_teacher
t = train_teacher(load_image_folder(sys.argv[1]), "convnet", epochs=2, batch_size=6, model_kwargs={"width": 8})
save_teacher(t, sys.argv[2])
"""

# a store written through the Python API alone (no torch needed)
MAKE_STORE = r"""
import sys
import numpy as np
from lplabel import StoreWriter
from lplabel.testing import realistic_logits
rng = np.random.default_rng(0)
with StoreWriter(sys.argv[1], num_classes=10, images=12, batch_size=6, epochs=2) as w:
    for e in range(2):
        for s in range(2):
            ids = rng.permutation(12)[:6]
            w.write_step(e, s, image=ids, crop=np.tile(np.float32([0, 0, 1, 1]), (6, 1)), flip=np.zeros(6, bool),
                         logits=realistic_logits(rng, 6, 10))
"""

WHERE = "import lplabel, sys; print(lplabel.__file__)"


class Smoke:
    def __init__(self, work: Path):
        self.work = work
        self.passed = 0
        self.failed: list[str] = []
        self.ran: set[str] = set()  # the first two words of each lplabel command run beyond --help
        env = {k: v for k, v in os.environ.items() if not k.startswith("LPLABEL_") and k != "PYTHONPATH"}
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        self.env = env

    def run(self, venv: Path, args: list[str], *, rc: int = 0, expect: str | None = None, label: str = "",
            env: dict | None = None, traceback_ok: bool = False, exe: str = "lplabel", creates: str | None = None,
            absent: str | None = None, name: str | None = None) -> subprocess.CompletedProcess:
        cmd = [str(venv / "bin" / exe)] + args
        if exe == "lplabel" and "--help" not in args:
            self.ran.add(" ".join(a for a in args[:2] if not a.startswith("-")))
        t0 = time.perf_counter()
        p = subprocess.run(cmd, cwd=self.work, env={**self.env, **(env or {})}, capture_output=True, text=True,
                           stdin=subprocess.DEVNULL, timeout=600)
        dt = time.perf_counter() - t0
        shown = name or " ".join(shlex.quote(a) for a in [exe] + args)
        if len(shown) > 110:
            shown = shown[:107] + "..."
        why = []
        if p.returncode != rc:
            why.append(f"exit {p.returncode}, expected {rc}")
        if not traceback_ok and ("Traceback" in p.stderr or "Traceback" in p.stdout):
            why.append("printed a traceback")
        if expect is not None and expect not in p.stderr + p.stdout:
            why.append(f"output lacks {expect!r}")
        if creates is not None and not (self.work / creates).exists():
            why.append(f"{creates} not written")
        if absent is not None and (self.work / absent).exists():
            why.append(f"{absent} written although the command failed")
        tag = f"[{label}] " if label else ""
        if why:
            self.failed.append(f"{tag}{shown}")
            print(f"FAIL {tag}{shown}  ({dt:.1f} s): {'; '.join(why)}")
            tail = (p.stderr or p.stdout).strip().splitlines()[-15:]
            for line in tail:
                print(f"     | {line}")
        else:
            self.passed += 1
            last = (p.stderr.strip().splitlines() or p.stdout.strip().splitlines() or [""])[-1]
            note = f"  -> {last[:150]}" if (rc != 0 or expect) and last else ""
            print(f"ok   {tag}{shown}  (exit {p.returncode}, {dt:.1f} s){note}")
        sys.stdout.flush()
        return p


def commands(venv: Path) -> list[list[str]]:
    """Every command and subcommand, from the installed CLI itself (so new ones are covered)."""
    import json

    code = ("import json, click; from lplabel.cli import main\n"
            "def walk(g, pre):\n"
            "    out = []\n"
            "    for n, c in sorted(g.commands.items()):\n"
            "        group = isinstance(c, click.Group)\n"
            "        out.append([pre + [n], group])\n"
            "        if group: out += walk(c, pre + [n])\n"
            "    return out\n"
            "print(json.dumps(walk(main, [])))")
    p = subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True, cwd="/")
    if p.returncode != 0:
        sys.exit(f"cannot list the CLI's commands:\n{p.stderr}")
    return json.loads(p.stdout)


def with_torch(s: Smoke, v: Path, data: str) -> None:
    L = "torch"
    p = subprocess.run([str(v / "bin" / "python"), "-c", WHERE], capture_output=True, text=True, cwd=s.work, env=s.env)
    where = p.stdout.strip()
    print(f"lplabel imported from {where}")
    if "site-packages" not in where:
        s.failed.append("the installed package is not the one imported")
        print("FAIL lplabel is not imported from site-packages")
    s.run(v, ["--version"], label=L, expect="lplabel")
    s.run(v, ["-m", "lplabel", "--version"], label=L, exe="python", expect="lplabel")
    listed = commands(v)
    for c, _ in listed:
        s.run(v, c + ["--help"], label=L)
    s.run(v, ["-c", MAKE_INPUTS, str(s.work), data], label=L, exe="python", creates="imgs",
          name="python -c MAKE_INPUTS (ImageFolder of JPEG + PNG, a cifar10-style pack)")
    s.run(v, ["-c", MAKE_TEACHER, "imgs", "teacher.pt"], label=L, exe="python", creates="teacher.pt",
          name="python -c MAKE_TEACHER (train_teacher + save_teacher -> teacher.pt)")
    # relabel an ImageFolder of JPEG + PNG files (Pillow is core)
    common = ["--epochs", "2", "-b", "6", "--size", "16", "--no-progress"]
    s.run(v, ["relabel", "imgs", "-o", "a.lpl", "--teacher", "teacher.pt"] + common, label=L, creates="a.lpl")
    s.run(v, ["relabel", "imgs", "-o", "k.lpl", "--teacher", TEACHER, "--topk", "2"] + common, label=L,
          creates="k.lpl")
    s.run(v, ["info", "a.lpl"], label=L, expect="records")
    s.run(v, ["info", "--json", "k.lpl"], label=L, expect='"records"')
    s.run(v, ["verify", "a.lpl"], label=L, expect="OK")
    s.run(v, ["verify", "--json", "k.lpl"], label=L, expect='"status"')
    s.run(v, ["show", "k.lpl", "--epoch", "1", "--step", "0"], label=L, expect="epoch 1")
    s.run(v, ["encode", "a.lpl", "-o", "e.lpl"], label=L, creates="e.lpl")
    s.run(v, ["encode", "a.lpl", "-o", "es.lpl", "--views", "stored"], label=L, creates="es.lpl")
    s.run(v, ["encode", "k.lpl", "-o", "r.lpl", "--layout", "rans"], rc=2, expect="lplabel[rans]", label=L,
          absent="r.lpl")
    s.run(v, ["quantize", "a.lpl", "-o", "q.lpl", "--topk", "2", "--values", "int8"], label=L, creates="q.lpl")
    s.run(v, ["prune", "a.lpl", "-o", "p.lpl", "--keep", "0.5"], label=L, creates="p.lpl")
    s.run(v, ["compare", "a.lpl", "q.lpl"], label=L, expect="agreement")
    s.run(v, ["distill-generator", "a.lpl", "imgs", "-o", "g.lpl", "--budget", "20000"], label=L, creates="g.lpl")
    s.run(v, ["info", "g.lpl"], label=L, expect="label generator")
    s.run(v, ["verify", "g.lpl"], label=L, expect="OK")
    s.run(v, ["distill-generator", "a.lpl", "imgs", "-o", "g2.lpl", "--budget", "100"], rc=2,
          expect="smaller than the smallest generator", label=L, absent="g2.lpl")
    s.run(v, ["export", "a.lpl", "-o", "legacy", "--to", "lpld"], label=L, creates="legacy")
    s.run(v, ["import", "legacy", "-o", "i.lpl"], label=L, creates="i.lpl")
    # shards started by hand, joined by merge
    for r in ("0", "1"):
        s.run(v, ["relabel", "imgs", "-o", "m.lpl", "--teacher", "teacher.pt", "--rank", r, "--world-size", "2",
                  "--no-merge"] + common, label=L)
    s.run(v, ["merge", "m.lpl.partial", "-o", "m.lpl"], label=L, creates="m.lpl")
    # a built-in data set name: no data root on an installed package is a named error ...
    s.run(v, ["relabel", "cifar10", "-o", "c.lpl", "--teacher", TEACHER] + common, rc=2, expect="LPLABEL_DATA",
          label=L, absent="c.lpl")
    # ... --data-root or LPLABEL_DATA point at the files
    s.run(v, ["relabel", "cifar10", "-o", "c.lpl", "--teacher", 'lplabel.models:convnet{"num_classes": 10}',
              "--data-root", "pack"] + common, label=L, creates="c.lpl")
    s.run(v, ["relabel", "cifar10:test", "-o", "c2.lpl", "--teacher", 'lplabel.models:convnet{"num_classes": 10}']
          + common, env={"LPLABEL_DATA": str(s.work / "pack")}, label=L, creates="c2.lpl")
    # scikit-learn / matplotlib (the bench extra) are not installed: named errors before any work
    s.run(v, ["relabel", "digits", "-o", "d.lpl", "--teacher", TEACHER] + common, rc=2, expect="lplabel[bench]",
          label=L, absent="d.lpl")
    s.run(v, ["demo", "-o", "demo/d.lpl", "--epochs", "1"], rc=2, expect="lplabel[bench]", label=L,
          absent="demo")
    s.run(v, ["bench", "accuracy", "--quick", "--out", "bench"], rc=2, expect="lplabel[bench]", label=L,
          absent="bench")
    # onnxruntime/onnx (the onnx extra) are not installed: named errors before any work
    s.run(v, ["export-teacher", "teacher.pt", "-o", "t.onnx", "--images", "imgs"], rc=2, expect="lplabel[onnx]",
          label=L, absent="t.onnx")
    s.run(v, ["relabel", "imgs", "-o", "o.lpl", "--teacher", "t.onnx"] + common, rc=2, expect="lplabel[onnx]",
          label=L, absent="o.lpl")
    s.run(v, ["-c", "import lplabel.torch"], label=L, exe="python")
    # every command must have run here at least once (not only --help): a new one needs a case above
    for c, group in listed:
        if not group and not any(r.split()[:len(c)] == c for r in s.ran):
            s.failed.append(f"lplabel {' '.join(c)}: no smoke case in .ci/plain_smoke.py")
            print(f"FAIL lplabel {' '.join(c)}: never run here -- add a case to .ci/plain_smoke.py")


def without_torch(s: Smoke, v: Path) -> None:
    L = "no torch"
    s.run(v, ["--version"], label=L, expect="lplabel")
    for c, _ in commands(v):
        s.run(v, c + ["--help"], label=L)
    s.run(v, ["-c", MAKE_STORE, "n.lpl"], label=L, exe="python", creates="n.lpl",
          name="python -c MAKE_STORE (StoreWriter, no torch)")
    s.run(v, ["info", "n.lpl"], label=L, expect="records")
    s.run(v, ["verify", "n.lpl"], label=L, expect="OK")
    s.run(v, ["show", "n.lpl"], label=L, expect="epoch 0")
    s.run(v, ["encode", "n.lpl", "-o", "ne.lpl"], label=L, creates="ne.lpl")
    s.run(v, ["quantize", "n.lpl", "-o", "nq.lpl", "--topk", "2", "--values", "fp16"], label=L, creates="nq.lpl")
    s.run(v, ["prune", "n.lpl", "-o", "np.lpl", "--keep", "0.5"], label=L, creates="np.lpl")
    s.run(v, ["compare", "n.lpl", "nq.lpl"], label=L, expect="agreement")
    s.run(v, ["encode", "nq.lpl", "-o", "nr.lpl", "--layout", "rans"], rc=2, expect="lplabel[rans]", label=L,
          absent="nr.lpl")
    # torch-only commands: one named line, no traceback
    s.run(v, ["relabel", "imgs", "-o", "nt.lpl", "--teacher", TEACHER], rc=2, expect="pip install torch", label=L,
          absent="nt.lpl")
    s.run(v, ["export", "n.lpl", "-o", "nlegacy", "--to", "lpld"], rc=2, expect="pip install torch", label=L,
          absent="nlegacy")
    s.run(v, ["merge", "n.lpl", "-o", "nm.lpl"], rc=2, expect="pip install torch", label=L, absent="nm.lpl")
    s.run(v, ["distill-generator", "n.lpl", "imgs", "-o", "ng.lpl", "--budget", "20000"], rc=2,
          expect="pip install torch", label=L, absent="ng.lpl")
    s.run(v, ["demo", "-o", "ndemo/d.lpl"], rc=2, expect="pip install torch", label=L, absent="ndemo")
    s.run(v, ["bench", "accuracy", "--quick", "--out", "nbench"], rc=2, expect="pip install torch", label=L,
          absent="nbench")
    if (s.work / "legacy").exists():
        s.run(v, ["import", "legacy", "-o", "ni.lpl"], rc=2, expect="pip install torch", label=L, absent="ni.lpl")
    # the loader, from Python: an ImportError that says what to install (a traceback is Python's way here)
    s.run(v, ["-c", "import lplabel.torch"], rc=1, expect="pip install torch", label=L, exe="python",
          traceback_ok=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--venv", type=Path, required=True)
    ap.add_argument("--no-torch-venv", type=Path, default=None)
    ap.add_argument("--data", default="")
    a = ap.parse_args()
    data = str(Path(a.data).resolve()) if a.data and (Path(a.data) / "cifar10-jpeg" / "test.npz").is_file() else ""
    print(f"inputs: {'real CIFAR-10 images from ' + data if data else 'synthetic images (no --data)'}")
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="lplabel-smoke-") as tmp:
        s = Smoke(Path(tmp))
        with_torch(s, a.venv.resolve(), data)
        if a.no_torch_venv is not None:
            without_torch(s, a.no_torch_venv.resolve())
    print(f"plain-install smoke: {time.perf_counter() - t0:.0f} s")
    for f in s.failed:
        print(f"failed: {f}")
    print(f"{s.passed} passed, {len(s.failed)} failed")
    return 1 if s.failed else 0


if __name__ == "__main__":
    sys.exit(main())
