"""The ``label_generator`` extension: a small network stored in the ``.lpl`` file that makes the labels.

HeLlO's idea (replace the stored soft labels by a small learned image-to-label network) as a
part of the format (spec/FORMAT.md §12). This module is the format side, numpy only, so that
``lplabel info`` and ``verify`` work without torch: the architecture description, the tensor
layout, encoding and decoding the weights, the checks a reader applies, and the sizes a budget
allows. The network itself (a torch module), training it and serving its labels live in
:mod:`lplabel.torch.generator`.

Which network, and why
----------------------
HeLlO trains a low-rank adapter and a head on a frozen, shared backbone (CLIP); the backbone is
not counted because it ships anyway. In lplabel's experiments no network ships with the images
or the student that could serve as a backbone -- the only pretrained network is the teacher, and
shipping it is the ``online-teacher`` setting -- so a backbone would have to be counted in full.
The generator is therefore a compact network trained from scratch on the distilled set's views,
``convnet-lite-v1``: ``depth`` 3×3 convolutions of ``width`` channels (ReLU, 2×2 average
pooling between them), average pooling to a small grid (at most 4 × 4), and a linear head; for many classes the head is low-rank
(``rank`` r: ``width → r → C``), HeLlO's low-rank factorisation applied where the parameters are
(at C = 1000 the head dominates). It only ever labels the store's own views, so fitting them is
the whole task. Weights are stored as float16 (half the bytes of float32; the labels it makes are
float32).

``convnet-lite-v2`` is the same network behind one more step: the view (side ``input_size``,
what the store renders) is average-pooled to ``resolution`` px before the first convolution.
The views of a 1000-class store are rendered at the teacher's 224 px, while the students of
lplabel's CPU experiments train on them at 32 px; a generator convolving 224-px views costs
(224/32)^2 = 49x the compute of one at 32 px, in every training step of every student, for
labels a generator this small cannot resolve finer than its students do anyway. lplabel writes
``convnet-lite-v1`` whenever ``resolution`` equals ``input_size`` (the two are then the same
network), so such files stay readable by readers that predate v2; a reader without v2 refuses a
v2 generator by its architecture name.

Bytes that count: everything needed to make the labels that is not shipped with the images or
the student -- the whole extension entry as it sits in the header (architecture, tensor list,
base64 weights, checksums, training facts): :func:`entry_bytes`.
"""

from __future__ import annotations

import base64
import json
import zlib

import numpy as np

from .errors import HeaderError, LplabelError

#: the header extension's name, and the architectures this version defines (spec §12.2)
EXTENSION = "label_generator"
ARCHITECTURE = "convnet-lite-v1"
ARCHITECTURE_V2 = "convnet-lite-v2"
ARCHITECTURES = (ARCHITECTURE, ARCHITECTURE_V2)
VERSION = 1
DTYPES = ("float16", "float32")
#: widths :func:`choose_for_budget` tries, largest first
WIDTHS = (512, 384, 256, 192, 128, 96, 64, 48, 32, 24, 16, 12, 8, 6, 4)
MAX_DEPTH = 8
MAX_WIDTH = 4096
#: from this many classes on, :func:`choose_for_budget` gives the head at least :data:`MIN_HEAD_RANK`
MANY_CLASSES = 128
#: the smallest head rank :func:`choose_for_budget` spends a many-class budget on (when one fits)
MIN_HEAD_RANK = 16


def default_passes(num_classes: int) -> int:
    """Passes over a store's stored epochs a generator trains for when none is asked: 3, and 10 from
    :data:`MANY_CLASSES` classes on. Measured at C = 1,000 (benchmarks/results/
    accuracy-tiny-imagenet-cpu-2026-12-05c.md; 440 KB, width 96, rank 24): 3 passes matched the
    teacher's top-1 on 9.6 % of the views and trained students to 4.6 %, 10 passes 15.8 % and
    8.7 % (full labels 5.95 %). Few-class generators fit in 3 (digits: 96.2 % at 40 KB against
    96.5 % with full labels)."""
    return 10 if int(num_classes) >= MANY_CLASSES else 3


_ENTRY_KEYS = {
    "must_understand",
    "version",
    "architecture",
    "dtype",
    "tensors",
    "weights",
    "nbytes",
    "crc32",
    "temperature",
    "trained",
}
_ARCH_KEYS = {"name", "in_channels", "input_size", "width", "depth", "grid", "rank", "num_classes", "mean", "std"}
#: the keys of each architecture (v2: v1's and ``resolution``, the side the view is pooled to)
_ARCH_KEYS_BY_NAME = {ARCHITECTURE: _ARCH_KEYS, ARCHITECTURE_V2: _ARCH_KEYS | {"resolution"}}


class GeneratorError(LplabelError):
    """A label generator that cannot be built, stored or used as asked."""


class GeneratorBudgetError(GeneratorError):
    """The byte budget is smaller than the smallest generator."""


def tensor_layout(arch: dict) -> list[tuple[str, tuple[int, ...]]]:
    """``[(name, shape)]`` of ``arch``'s tensors, in storage order (spec §12.2)."""
    c, w, d, r, n, g = (
        int(arch[k]) if arch[k] is not None else None
        for k in ("in_channels", "width", "depth", "rank", "num_classes", "grid")
    )
    f = w * g * g  # the head's input: the pooled g x g map, flattened
    out = []
    cin = c
    for i in range(d):
        out += [(f"conv{i}.weight", (w, cin, 3, 3)), (f"conv{i}.bias", (w,))]
        cin = w
    if r is None:
        out += [("head.weight", (n, f)), ("head.bias", (n,))]
    else:
        out += [("head_a.weight", (r, f)), ("head_b.weight", (n, r)), ("head_b.bias", (n,))]
    return out


def num_params(arch: dict) -> int:
    return int(sum(int(np.prod(s)) for _, s in tensor_layout(arch)))


def resolution_of(arch: dict) -> int:
    """The side the convolutions see: ``resolution`` (v2), else the view side ``input_size``."""
    return int(arch.get("resolution", arch["input_size"]))


def make_architecture(
    *,
    in_channels: int,
    input_size: int,
    num_classes: int,
    width: int,
    depth: int = 2,
    grid: int | None = None,
    rank: int | None = None,
    mean=None,
    std=None,
    resolution: int | None = None,
) -> dict:
    """An architecture description (checked). ``mean``/``std``: per-channel input statistics in
    pixel units (0..255); default 127.5 / 64. ``resolution``: the side the ``input_size`` views
    are average-pooled to before the convolutions (``convnet-lite-v2``); None or ``input_size``:
    none (``convnet-lite-v1``, readable by every reader of the extension)."""
    mean = [127.5] * int(in_channels) if mean is None else [float(v) for v in mean]
    std = [64.0] * int(in_channels) if std is None else [float(v) for v in std]
    pooled = resolution is not None and int(resolution) != int(input_size)
    side = int(resolution) if pooled else int(input_size)
    if grid is None:
        grid = default_grid(side, int(depth))
    arch = {
        "name": ARCHITECTURE_V2 if pooled else ARCHITECTURE,
        "in_channels": int(in_channels),
        "input_size": int(input_size),
        "width": int(width),
        "depth": int(depth),
        "grid": int(grid),
        "rank": None if rank is None else int(rank),
        "num_classes": int(num_classes),
        "mean": mean,
        "std": std,
    }
    if pooled:
        arch["resolution"] = side
    check_architecture(arch)
    return arch


def check_architecture(arch, num_classes: int | None = None, where: str = EXTENSION) -> None:
    """Refuse an architecture description a reader cannot build exactly (HeaderError)."""
    if not isinstance(arch, dict):
        raise HeaderError(f"{where}.architecture must be an object (spec §12.2)")
    name = arch.get("name")
    if not isinstance(name, str) or name not in _ARCH_KEYS_BY_NAME:
        raise HeaderError(
            f"{where}: unknown generator architecture {name!r} (this lplabel knows "
            f"{', '.join(repr(a) for a in ARCHITECTURES)})",
            hint="upgrade lplabel",
        )
    keys = _ARCH_KEYS_BY_NAME[name]
    if set(arch) != keys:
        raise HeaderError(f"{where}.architecture ({name}) must have exactly the keys {sorted(keys)}")
    for k, lo, hi in (
        ("in_channels", 1, 64),
        ("input_size", 1, 1 << 15),
        ("width", 1, MAX_WIDTH),
        ("depth", 1, MAX_DEPTH),
        ("grid", 1, 16),
        ("num_classes", 1, 1 << 24),
    ):
        v = arch[k]
        if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
            raise HeaderError(f"{where}.architecture.{k} must be an integer in {lo}..{hi}, got {v!r}")
    if name == ARCHITECTURE_V2:
        v = arch["resolution"]
        if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= arch["input_size"]:
            raise HeaderError(
                f"{where}.architecture.resolution must be an integer in 1..input_size ({arch['input_size']}), got {v!r}"
            )
    r = arch["rank"]
    if r is not None and (not isinstance(r, int) or isinstance(r, bool) or not 1 <= r <= MAX_WIDTH):
        raise HeaderError(f"{where}.architecture.rank must be null or an integer in 1..{MAX_WIDTH}, got {r!r}")
    for k in ("mean", "std"):
        v = arch[k]
        if (
            not isinstance(v, list)
            or len(v) != arch["in_channels"]
            or not all(isinstance(x, (int, float)) and not isinstance(x, bool) and np.isfinite(x) for x in v)
        ):
            raise HeaderError(f"{where}.architecture.{k} must be {arch['in_channels']} finite numbers")
    if not all(x > 0 for x in arch["std"]):
        raise HeaderError(f"{where}.architecture.std must be positive")
    if num_classes is not None and arch["num_classes"] != num_classes:
        raise HeaderError(f"{where}: the generator makes {arch['num_classes']} classes, the store has {num_classes}")


def default_grid(input_size: int, depth: int) -> int:
    """The pooled map's side: what is left of the view after the convolutions' poolings, at most
    4 (a 4 x 4 map keeps where things are; a global mean, grid 1, would not)."""
    side = int(input_size)
    for _ in range(max(int(depth) - 1, 0)):
        side = side // 2 if side >= 2 else side
    return max(1, min(4, side))


def encode(arch: dict, tensors: dict, *, dtype: str = "float16", trained: dict | None = None) -> dict:
    """The extension entry for ``arch`` with weights ``tensors`` ({name: float array}), cast to
    ``dtype`` (little-endian), back to back in :func:`tensor_layout` order, base64 in the entry."""
    if dtype not in DTYPES:
        raise GeneratorError(f"generator dtype must be one of {DTYPES}, got {dtype!r}")
    check_architecture(arch)
    parts = []
    for name, shape in tensor_layout(arch):
        a = np.asarray(tensors[name], dtype=np.float32)
        if a.shape != shape:
            raise GeneratorError(f"generator tensor {name} has shape {a.shape}, the architecture needs {shape}")
        b = a.astype("<f2" if dtype == "float16" else "<f4")
        if not np.all(np.isfinite(b)):
            raise GeneratorError(
                f"generator tensor {name} is not finite in {dtype}",
                hint="train with a smaller learning rate, or store float32",
            )
        parts.append(b.tobytes())
    raw = b"".join(parts)
    return {
        "must_understand": True,
        "version": VERSION,
        "architecture": arch,
        "dtype": dtype,
        "tensors": [[n, list(s)] for n, s in tensor_layout(arch)],
        "weights": base64.b64encode(raw).decode("ascii"),
        "nbytes": len(raw),
        "crc32": zlib.crc32(raw),
        "temperature": 1.0,
        "trained": dict(trained or {}),
    }


def check_entry(entry, num_classes: int | None = None) -> bytes:
    """Check an extension entry as a reader must (spec §12.3); return the raw weight bytes.

    Raises :class:`~lplabel.errors.HeaderError` (the store is refused when opened) for anything
    that does not match what the entry declares: keys, version, architecture, tensor list,
    byte count, CRC-32, dtype.
    """
    w = EXTENSION
    if (
        not isinstance(entry, dict)
        or not _ENTRY_KEYS.issuperset(entry)
        or not {"version", "architecture", "dtype", "tensors", "weights", "nbytes", "crc32"}.issubset(entry)
    ):
        raise HeaderError(f"extension {w!r} must be an object with the keys {sorted(_ENTRY_KEYS)} (spec §12)")
    if entry.get("must_understand", True) is not True:
        raise HeaderError(f"extension {w!r} must have must_understand true (its labels replace the label column's)")
    if entry["version"] != VERSION:
        raise HeaderError(f"extension {w!r} version {entry['version']!r} is not {VERSION}", hint="upgrade lplabel")
    check_architecture(entry["architecture"], num_classes)
    if entry["dtype"] not in DTYPES:
        raise HeaderError(f"{w}.dtype must be one of {DTYPES}, got {entry['dtype']!r}")
    t = entry.get("temperature", 1.0)
    if not isinstance(t, (int, float)) or isinstance(t, bool) or not (t > 0 and np.isfinite(t)):
        raise HeaderError(f"{w}.temperature must be a positive number, got {t!r}")
    layout = tensor_layout(entry["architecture"])
    if entry["tensors"] != [[n, list(s)] for n, s in layout]:
        raise HeaderError(f"{w}.tensors does not match the architecture's tensor list (spec §12.2)")
    item = 2 if entry["dtype"] == "float16" else 4
    want = item * sum(int(np.prod(s)) for _, s in layout)
    if entry["nbytes"] != want:
        raise HeaderError(f"{w}.nbytes is {entry['nbytes']!r}, the architecture's tensors take {want}")
    if not isinstance(entry["weights"], str) or len(entry["weights"]) != 4 * -(-want // 3):
        raise HeaderError(f"{w}.weights must be the base64 of {want} bytes")
    try:
        raw = base64.b64decode(entry["weights"].encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError):
        raise HeaderError(f"{w}.weights is not valid base64") from None
    if len(raw) != want:
        raise HeaderError(f"{w}.weights decodes to {len(raw)} bytes, {want} declared")
    crc = zlib.crc32(raw)
    if entry["crc32"] != crc:
        from .errors import ChecksumError

        raise ChecksumError(
            f"label generator weights: CRC-32 {crc:08x}, the header says "
            f"{entry['crc32'] if isinstance(entry['crc32'], str) else format(int(entry['crc32']), '08x')}",
            part=f"extensions.{w}.weights",
        )
    return raw


def decode(entry: dict, num_classes: int | None = None) -> tuple[dict, dict]:
    """``(architecture, {name: float32 array})`` of a checked entry."""
    raw = check_entry(entry, num_classes)
    dt = np.dtype("<f2" if entry["dtype"] == "float16" else "<f4")
    out, off = {}, 0
    for name, shape in tensor_layout(entry["architecture"]):
        n = int(np.prod(shape))
        out[name] = np.frombuffer(raw, dtype=dt, count=n, offset=off).astype(np.float32).reshape(shape)
        off += n * dt.itemsize
    for name, a in out.items():
        if not np.all(np.isfinite(a)):
            raise HeaderError(f"{EXTENSION}: tensor {name} holds non-finite values")
    return entry["architecture"], out


def entry_bytes(entry: dict) -> int:
    """The bytes the entry takes in the header (compact JSON, as the writer encodes it): what a
    generator costs in the file."""
    return len(json.dumps(entry, separators=(",", ":"), allow_nan=False).encode("utf-8")) + len(f'"{EXTENSION}":') + 1


def estimate_bytes(arch: dict, dtype: str = "float16", trained_bytes: int = 400) -> int:
    """:func:`entry_bytes` of a generator of ``arch`` before it is trained (zero weights), with
    room for ``trained_bytes`` of training facts."""
    zeros = {n: np.zeros(s, np.float32) for n, s in tensor_layout(arch)}
    return entry_bytes(encode(arch, zeros, dtype=dtype)) + int(trained_bytes)


def choose_for_budget(
    budget: int,
    *,
    in_channels: int,
    input_size: int,
    num_classes: int,
    depth: int = 2,
    mean=None,
    std=None,
    dtype: str = "float16",
    resolution: int | None = None,
) -> dict:
    """The largest generator (by width; a low-rank head when it is smaller than the full one)
    whose entry fits in ``budget`` bytes: ``convnet-lite-v1``, or ``convnet-lite-v2`` when
    ``resolution`` pools the views first (:func:`make_architecture`). Raises
    :class:`GeneratorBudgetError` naming the smallest generator's bytes when none fits.

    From :data:`MANY_CLASSES` classes on, the head gets a rank of at least :data:`MIN_HEAD_RANK`
    (a narrower network if need be; ranks may then exceed the width) whenever such a generator
    fits, and only otherwise the widest network with any head. Why: at C = 1,000 a rank-4 head
    starves whatever feeds it -- a width-128 rank-4 generator trained 10 passes matched the
    teacher's top-1 on 6 % of views, a width-96 rank-24 one of the same budget 16 %, and the
    chooser's width-32 rank-4 pick at 60 KB was the worst of four shapes
    (benchmarks/results/accuracy-tiny-imagenet-cpu-2026-12-05c.md,
    generator-frontier-60000-2026-12-05.md). Below that many classes the rule is unchanged."""
    many = int(num_classes) >= MANY_CLASSES
    smallest = None
    by_width = []
    for width in WIDTHS:
        ranks = {r for r in (width // 2, width // 4, 16, 8, 4) if 1 <= r < width}
        if many:  # a head of MIN_HEAD_RANK or more, even on a narrow network
            ranks |= {MIN_HEAD_RANK, 24, 32}
        cands = []
        for rank in (None, *sorted(ranks, reverse=True)):
            arch = make_architecture(
                in_channels=in_channels,
                input_size=input_size,
                num_classes=num_classes,
                width=width,
                depth=depth,
                rank=rank,
                mean=mean,
                std=std,
                resolution=resolution,
            )
            if rank is not None and num_params(arch) >= num_params(dict(arch, rank=None)):
                continue
            n = estimate_bytes(arch, dtype)
            cands.append((n, arch))
            smallest = n if smallest is None else min(smallest, n)
        by_width.append([(n, a) for n, a in cands if n <= budget])

    def pick(fits):  # the full head if it fits, else the largest rank that does
        full = [x for x in fits if x[1]["rank"] is None]
        return (full or [max(fits, key=lambda x: x[1]["rank"])])[0][1]

    if many:
        for fits in by_width:
            wide = [x for x in fits if x[1]["rank"] is None or x[1]["rank"] >= MIN_HEAD_RANK]
            if wide:
                return pick(wide)
    for fits in by_width:
        if many:  # the rule below is the one for few classes: ranks below the width only
            fits = [x for x in fits if x[1]["rank"] is None or x[1]["rank"] < x[1]["width"]]
        if fits:
            return pick(fits)
    raise GeneratorBudgetError(
        f"a budget of {budget:,} B is smaller than the smallest generator "
        f"({smallest:,} B: convnet-lite, width {WIDTHS[-1]}, depth {depth}, "
        f"{num_classes} classes)",
        hint=f"give --budget {smallest} or more",
    )


def shape_for_budget(budget: int, width: int, rank: int | None, **arch) -> dict:
    """The architecture of a named network (width, head rank; None: a full head) with ``arch``'s
    other fields (:func:`make_architecture`), or :class:`GeneratorBudgetError` when its entry
    would not fit in ``budget`` bytes. The check of ``distill-generator --shape`` and of the
    harness's ``generator-<budget>-w<W>r<R>`` rows (before any work)."""
    a = make_architecture(width=int(width), rank=None if rank is None else int(rank), **arch)
    need = estimate_bytes(a)
    if need > int(budget):
        raise GeneratorBudgetError(
            f"a generator of width {width}, rank {rank} takes about {need:,} B, above the budget of {int(budget):,} B",
            hint="give a larger --budget or a smaller shape",
        )
    return a


def summary(entry: dict) -> dict:
    """What ``lplabel info`` says about a stored generator (``label_generator`` key)."""
    a = entry["architecture"]
    head = f"rank-{a['rank']} head" if a["rank"] is not None else "full head"
    n = num_params(a)
    b = entry_bytes(entry)
    tr = entry.get("trained") or {}
    agree = tr.get("top1_agreement")
    text = (
        f"{a['name']} width {a['width']} depth {a['depth']} {head}, {n:,} parameters {entry['dtype']}, "
        f"{b:,} B in the header; input {a['in_channels']}x{a['input_size']}x{a['input_size']}"
        + (f" pooled to {a['resolution']}x{a['resolution']}" if "resolution" in a else "")
        + f", {a['num_classes']} classes"
        + (f"; top-1 agreement with its targets {100 * agree:.1f} %" if isinstance(agree, (int, float)) else "")
        + "; the loader labels views with it (label_source='generator')"
    )
    return {
        "architecture": a,
        "parameters": n,
        "dtype": entry["dtype"],
        "bytes": b,
        "weight_bytes": entry["nbytes"],
        "trained": tr,
        "text": text,
    }
