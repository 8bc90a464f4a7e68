"""Shared pieces of the legacy importers and exporters: directory scans, image keys, codec
choice, the ``legacy`` header extension, progress bars and atomic output directories."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..progress import progress_bar  # noqa: F401  (the one owner of progress output; re-exported)

from ..dtypes import holds_exactly
from ..errors import OutputExistsError
from ..images import ImageIndex
from .errors import LegacyExportError, LegacyFormatError

#: Version of the ``legacy`` extension written into store headers (see docs/interop.md).
LEGACY_EXTENSION_VERSION = 1

EPOCH_RE = re.compile(r"^epoch_(\d+)$")
BATCH_RE = re.compile(r"^batch_(\d+)\.tar$")


def visible(name: str) -> bool:
    return not name.startswith(".")


# ------------------------------------------------------------------------- directory scans
def scan_epoch_dirs(root: Path, *, allow_partial_last: bool) -> dict:
    """``{epoch: [batch file paths in batch order]}`` of an ``epoch_e/batch_b.tar`` tree.

    Epochs must be 0..E-1 and each epoch's batches 0..n-1 with no gaps; every epoch has as
    many batches as epoch 0, except (``allow_partial_last``) a shorter last epoch.
    """
    epochs = {}
    flat = []
    for entry in os.scandir(root):
        if BATCH_RE.match(entry.name):
            flat.append(entry.name)
        m = EPOCH_RE.match(entry.name)
        if m and entry.is_dir():
            e = int(m.group(1))
            if m.group(1) != str(e):
                raise LegacyFormatError(f"epoch directory {entry.name!r} has a non-canonical number", path=root)
            epochs[e] = Path(entry.path)
    if flat and epochs:
        raise LegacyFormatError(
            f"flat batch file {sorted(flat)[0]!r} beside epoch_<e> folders",
            path=root,
            hint="mixed layouts (LPQLD's flat files and SRe2L/LPLD epoch folders) in one directory; separate them",
        )
    if flat:
        raise LegacyFormatError(
            "no epoch_<e> directories, but flat batch_<g>.tar files",
            path=root,
            hint="flat batch files are the LPQLD layout (--from lpqld)",
        )
    if not epochs:
        raise LegacyFormatError("no epoch_<e> directories", path=root)
    missing = sorted(set(range(max(epochs) + 1)) - set(epochs))
    if missing:
        raise LegacyFormatError(
            f"epoch directories are missing: {', '.join(f'epoch_{e}' for e in missing[:10])}"
            + (" ..." if len(missing) > 10 else ""),
            path=root,
            hint="the directory is partial (an interrupted copy or generation?)",
        )
    out = {}
    for e in sorted(epochs):
        out[e] = scan_batches(epochs[e])
    n0 = len(out[0])
    last = max(out)
    for e, files in out.items():
        n = len(files)
        if n == 0:
            raise LegacyFormatError("epoch directory holds no batch files", path=epochs[e])
        if n != n0 and not (allow_partial_last and e == last and n < n0):
            raise LegacyFormatError(
                f"epoch_{e} has {n} batch files, epoch_0 has {n0}",
                path=epochs[e],
                hint="epochs of different sizes: the directory is partial or mixes runs",
            )
    return out


def scan_batches(folder: Path, *, strict: bool = True) -> list:
    """The ``batch_<b>.tar`` files of ``folder`` in batch order; gaps and strays raise."""
    found = {}
    for entry in os.scandir(folder):
        if not visible(entry.name):
            continue
        m = BATCH_RE.match(entry.name)
        if m and m.group(1) == str(int(m.group(1))) and entry.is_file():
            found[int(m.group(1))] = Path(entry.path)
        elif strict and not entry.name.endswith(".json"):
            raise LegacyFormatError(
                f"unexpected entry {entry.name!r} among the batch files",
                path=folder,
                hint="a label directory holds only batch_<b>.tar files (and the sampler JSON); move other files away",
            )
    if not found:
        return []
    missing = sorted(set(range(max(found) + 1)) - set(found))
    if missing:
        raise LegacyFormatError(
            f"batch files are missing: {', '.join(f'batch_{b}.tar' for b in missing[:10])}"
            + (" ..." if len(missing) > 10 else ""),
            path=folder,
            hint="the directory is partial (an interrupted copy or generation?)",
        )
    return [found[b] for b in range(len(found))]


def du_bytes(path, *, block: int | None = None) -> int:
    """Bytes a file or tree occupies on disk, the one owner of "as ``du`` counts".

    ``block=None`` (what import/export reports print): what ``du`` itself reports here, the
    allocated 512-byte blocks (``st_blocks``) of every file and directory; it depends on the
    filesystem (block size, sparse files, compression). ``block=N``: every file's size rounded up
    to whole N-byte blocks (directories not counted) -- ``du`` on an N-byte-block filesystem
    without those effects, the same number on every machine. The README's "vs LPQLD files as
    ``du`` counts" ratios use ``block=4096`` (``benchmarks/bench_codecs.py``, ``floor_topk.py``).
    """
    p = Path(path)
    if block is not None:
        files = [p] if p.is_file() else [Path(d, f) for d, _, fs in os.walk(p) for f in fs]
        return sum(-(-os.lstat(f).st_size // block) * block for f in files)
    if p.is_file():
        return os.stat(p).st_blocks * 512
    total = 0
    for dirpath, _, files in os.walk(p):
        total += os.stat(dirpath).st_blocks * 512
        for f in files:
            total += os.lstat(os.path.join(dirpath, f)).st_blocks * 512
    return total


def logical_bytes(path) -> int:
    p = Path(path)
    if p.is_file():
        return p.stat().st_size
    return sum(os.lstat(os.path.join(d, f)).st_size for d, _, fs in os.walk(p) for f in fs)


# ----------------------------------------------------------------------------- image keys
def image_folder_index(root) -> ImageIndex:
    """Keys and classes of an ImageFolder tree, without reading pixels, in torchvision order
    (classes = sorted sub-folders; within each, image files sorted by relative path)."""
    from ..datasets import IMAGE_EXTENSIONS

    root = Path(root)
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and visible(p.name))
    if not classes:
        raise LegacyFormatError("no class sub-folders; expected an ImageFolder tree <root>/<class>/<image>", path=root)
    keys, cls = [], []
    for c, name in enumerate(classes):
        files = []
        for dirpath, dirnames, filenames in os.walk(root / name, followlinks=True):
            dirnames[:] = sorted(d for d in dirnames if visible(d))
            files += [Path(dirpath, f) for f in filenames if visible(f) and f.lower().endswith(IMAGE_EXTENSIONS)]
        for f in sorted(files, key=lambda p: p.relative_to(root / name).as_posix()):
            keys.append(f.relative_to(root).as_posix())
            cls.append(c)
    return ImageIndex(keys, np.asarray(cls, dtype=np.int64), None, classes)


def settle_num_classes(num_classes: int | None, top: int, index, given_images: bool, where) -> tuple:
    """C of a top-k label set, whose files do not record it: ``(C, note or None)``.

    Never guessed. ``num_classes`` when given (it must exceed the largest class index ``top``
    seen); else the class count of the image set the user gave (``--images``: an ImageFolder's
    classes are the label space when they include every index seen); else refused, naming the
    largest index and the flag. (Guessing from the indices made a CIFAR-10 set a 200-class store.)
    """
    if num_classes is not None:
        C = int(num_classes)
        if top >= C:
            raise LegacyFormatError(
                f"class index {top} in the labels, but num_classes={C}",
                path=where,
                hint="pass the number of classes of the teacher's dataset",
            )
        return C, None
    names = list(getattr(index, "class_names", None) or []) if given_images else []
    if names and top < len(names):
        return len(names), (
            f"top-k labels do not record the number of classes; C={len(names)} from the classes of the given images"
        )
    seen = f"the largest class index in the first file is {top}"
    if names:
        raise LegacyFormatError(
            f"top-k labels do not record the number of classes, and the given images have only "
            f"{len(names)} classes ({seen})",
            path=where,
            hint="pass --num-classes C (the teacher's class count)",
        )
    raise LegacyFormatError(
        f"top-k labels do not record the number of classes ({seen}); lplabel does not guess it",
        path=where,
        hint="pass --num-classes C (e.g. 10 for CIFAR-10, 200 for Tiny-ImageNet, "
        "1000 for ImageNet-1K), or --images FOLDER with one folder per class",
    )


def resolve_images(images, num_images: int | None, used_max: int, where) -> ImageIndex:
    """The ImageIndex of an import: given (ImageSet/ImageIndex/folder/key list file) or "0".."N-1"."""
    from ..images import ImageSet, image_index

    if images is None:
        n = used_max + 1 if num_images is None else int(num_images)
        if n <= used_max:
            raise LegacyFormatError(f"num_images={n} but the labels use image index {used_max}", path=where)
        return ImageIndex([str(i) for i in range(n)], np.full(n, -1, dtype=np.int64), None)
    if isinstance(images, (ImageSet, ImageIndex)):
        idx = image_index(images)
    else:
        p = Path(images)
        if p.is_dir():
            idx = image_folder_index(p)
        elif p.suffix == ".json":
            keys = json.loads(p.read_text())
            if not isinstance(keys, list):
                raise LegacyFormatError("an image key file in JSON must hold a list of keys", path=p)
            idx = ImageIndex([str(k) for k in keys], np.full(len(keys), -1), None)
        else:
            keys = [ln.rstrip("\n") for ln in p.read_text().splitlines() if ln.strip()]
            idx = ImageIndex(keys, np.full(len(keys), -1), None)
    if num_images is not None and len(idx) != num_images:
        raise LegacyFormatError(f"{len(idx)} images given, but num_images={num_images}", path=where)
    if len(idx) <= used_max:
        raise LegacyFormatError(
            f"{len(idx)} images given, but the labels use image index {used_max}",
            path=where,
            hint="give the distilled image folder the labels were generated for",
        )
    return idx


# ---------------------------------------------------------------------------------- codecs
@dataclass
class LabelPlan:
    """How the label column is written: writer input, codec chain and whether it is lossless."""

    label_input: object
    codecs: list
    lossless: bool
    description: str = ""


def parse_codecs(codecs):
    """A codec chain from a list of codecs/dicts, a JSON string, or a path to a JSON file."""
    from ..codecs import parse_chain

    return parse_chain(codecs)


def plan_labels(
    kind: str, *, value_dtype: str, k: int | None = None, num_classes: int, codecs=None, level: int = 3
) -> LabelPlan:
    """Label chain for legacy labels: ``kind`` is ``"dense"`` (logits [B, C]) or ``"topk"``
    (values + indices [B, k]). Without ``codecs`` the chain stores them bit-exactly."""
    from ..codecs import Pipeline, get_codec, preset_chain
    from ..codecs.abc import ArrayArrayCodec

    label_input = "logits" if kind == "dense" else ("topk", int(k))
    if codecs is None:
        chain = preset_chain(
            "exact", value_type=value_dtype, k=None if kind == "dense" else k, num_classes=num_classes, level=level
        )
        return LabelPlan(label_input, chain, True, f"lossless ({kind} {value_dtype})")
    chain = [c if not isinstance(c, (dict, str)) else get_codec(c) for c in parse_codecs(codecs)]
    transforms = [c for c in chain if isinstance(c, ArrayArrayCodec)]
    lossless = False
    if len(transforms) == 1:
        c = transforms[0]
        cfg = c.get_config()
        if kind == "dense" and c.name == "dense":
            lossless = holds_exactly(src=value_dtype, dst=cfg.get("type"))
        elif kind == "topk" and c.name == "topk":
            lossless = (
                cfg.get("k") == k
                and holds_exactly(src=value_dtype, dst=cfg.get("type"))
                and cfg.get("tail", "none") == "none"
            )
    # validate the chain against the input now, before anything is read
    from ..codecs import Field

    spec = (
        (Field("logits", "float32", (num_classes,)),)
        if kind == "dense"
        else (Field("indices", "int64", (int(k),)), Field("values", "float32", (int(k),)))
    )
    Pipeline(chain, spec)
    return LabelPlan(label_input, chain, lossless, "lossless" if lossless else "lossy (as the codecs say)")


def legacy_extension(layout: str, **facts) -> dict:
    """The ``legacy`` header extension: what export needs to rebuild the legacy files exactly."""
    import torch

    from .._version import __version__

    ext = {
        "must_understand": False,
        "version": LEGACY_EXTENSION_VERSION,
        "layout": layout,
        "imported_with": {"lplabel": __version__, "torch": torch.__version__, "numpy": np.__version__},
    }
    ext.update(facts)
    return ext


def legacy_info(store) -> dict | None:
    ext = (store.header.get("extensions") or {}).get("legacy")
    return ext if isinstance(ext, dict) else None


# ------------------------------------------------------------------------ report objects
@dataclass
class ImportReport:
    """What :func:`lplabel.interop.import_legacy` did."""

    layout: str
    source: str
    output: str
    files: int
    steps: int
    records: int
    epochs: int
    steps_per_epoch: int
    batch_size: int
    num_classes: int
    num_images: int
    lossless: bool
    source_bytes: int = 0
    output_bytes: int = 0
    notes: list = field(default_factory=list)

    def to_json(self) -> dict:
        return dict(self.__dict__)


@dataclass
class ExportReport:
    layout: str
    store: str
    output: str
    files: int
    steps: int
    records: int
    notes: list = field(default_factory=list)

    def to_json(self) -> dict:
        return dict(self.__dict__)


# ------------------------------------------------------------------ atomic output folders
class OutputDir:
    """A directory written under a temporary name beside ``path`` and renamed into place.

    ``commit()`` makes it appear at ``path`` (replacing an existing one only with ``force``);
    ``abort()`` (or an exception inside ``with``) removes the temporary directory.
    """

    def __init__(self, path, force: bool = False):
        self.path = Path(path)
        self.force = force
        if self.path.exists() and not force:
            raise OutputExistsError("output exists", path=self.path, hint="choose another name or pass --force")
        if self.path.exists() and not self.path.is_dir():
            raise OutputExistsError("output exists and is not a directory", path=self.path)
        parent = self.path.parent
        if not parent.is_dir():
            raise LegacyExportError("the output's parent directory does not exist", path=parent)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=parent))
        self.done = False

    def commit(self) -> Path:
        old = None
        if self.path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.", suffix=".old", dir=self.path.parent))
            os.rmdir(old)
            os.replace(self.path, old)
        os.replace(self.tmp, self.path)
        self.done = True
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return self.path

    def abort(self) -> None:
        if not self.done:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.done = True

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self.abort()
        return False
