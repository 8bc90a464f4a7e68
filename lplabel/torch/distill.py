"""Training a label generator (spec/FORMAT.md §12) and writing it into a new ``.lpl`` file.

:func:`distill_generator` trains a ``convnet-lite-v1`` of at most a byte budget to imitate a
store's labels (or a teacher's, run online on the store's views) on the distilled set's views,
and writes a new store: the same views, the generator in the header, and a label column of the
targets' top-1 class indices only -- the smallest label column the format holds (it must hold
one; spec §12.4 says what it is for).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch

from ..generator import (
    EXTENSION,
    GeneratorError,
    choose_for_budget,
    default_passes,
    encode,
    entry_bytes,
    shape_for_budget,
    num_params,
)
from .generator import GeneratorNet

#: the side a generator sees by default: views larger than this are average-pooled to it inside
#: the generator (``convnet-lite-v2``; see :func:`default_resolution`)
DEFAULT_RESOLUTION = 32


def default_resolution(view_size: int) -> int:
    """The generator's input resolution when none is asked for: ``min(view_size, 32)``.

    Why 32: the generator's compute grows with the square of the side it convolves, and it runs
    in every training step of every student and three times over every stored view while it is
    trained. The label it imitates depends on the whole view, but a network of 4-600 KB cannot
    use detail finer than its students do, and the students it serves here train at 32 px (the
    CPU preset's ConvNets on 224-px views; CIFAR-10 and the digits are 32 and 8 px already, so
    their generators are unchanged). On 224-px views 32 px is 49x less compute than convolving
    the view as rendered; pass the students' side (the harness does: the recipe's
    ``image_size``) or a larger one when the labels need more detail.
    """
    return min(int(view_size), DEFAULT_RESOLUTION)


def _top1_chain(num_classes: int):
    from ..codecs import label_chain

    return label_chain(
        k=1,
        values="none",
        tail="none",
        index_coding="none",
        index_type="uint8" if num_classes <= 256 else "uint16",
        level=19,
    )


def distill_generator(
    store,
    images,
    out,
    *,
    budget: int,
    teacher=None,
    checkpoint=None,
    epochs: int | None = None,
    depth: int = 2,
    lr: float | None = None,
    seed: int = 0,
    device="cpu",
    force: bool = False,
    log=None,
    resolution: int | None = None,
    shape: tuple | None = None,
) -> dict:
    """Train a generator of at most ``budget`` bytes to imitate ``store``'s labels on its views
    and write ``out`` (see the module doc). Returns a report dict.

    ``teacher`` (a module or a spec string, with ``checkpoint``): imitate the teacher run online on
    the store's views instead of the stored labels. ``lr``: Adam's learning rate (cosine decay);
    None: ``min(1e-2, 0.1 / width)`` -- measured on CIFAR-10 (quick profile), a width-32 generator
    fit 38 % top-1 agreement at 1e-2 and 61 % at 3e-3, while widths <= 16 fit best at 1e-2. ``epochs``: training epochs through the
    store's schedule (default: :func:`~lplabel.generator.default_passes` passes over the store's
    epochs -- 3, and 10 from 128 classes on). ``resolution``: the
    side the generator average-pools each view to before its convolutions (``convnet-lite-v2``;
    None: :func:`default_resolution`, ``min(view size, 32)``; the view size itself: no pooling,
    ``convnet-lite-v1``). ``shape``: ``(width, rank)`` (rank None: a full head) to train that
    network instead of the one :func:`~lplabel.generator.choose_for_budget` picks (it must fit the
    budget too): for measuring the frontier between width and head rank at a budget. Every check
    runs before any training: the resolution, the budget
    (:class:`~lplabel.generator.GeneratorBudgetError`), the images against the store, the teacher
    against the store's views and classes, the output path.
    """
    from ..errors import OutputExistsError
    from ..recode import store_meta, store_steps, write_steps
    from ..store import LabelStore
    from .label_sources import OnlineTeacher
    from .loader import ReplayLoader, _check_device
    from .losses import kl_div_loss

    say = log or (lambda s: None)
    out = Path(out)
    if out.exists() and not force:
        raise OutputExistsError("output exists", path=out, hint="choose another name or pass --force")
    st = store if isinstance(store, LabelStore) else LabelStore(store)
    if Path(st.path).resolve() == out.resolve():
        raise GeneratorError("the output would overwrite the input store", path=out, hint="give another -o")
    dev = _check_device(device)
    aug = st.header.get("augmentation") or {}
    size = aug.get("output_size")
    if not isinstance(size, int):
        raise GeneratorError(
            "the store names no view output size (augmentation.output_size)",
            path=st.path,
            hint="re-import it with --input-size",
        )
    res = default_resolution(size) if resolution is None else int(resolution)
    if not 1 <= res <= size:
        raise GeneratorError(
            f"a generator input resolution of {res} px does not fit the store's {size}-px views",
            path=st.path,
            hint=f"give a resolution in 1..{size} (the views are pooled down to it, never up)",
        )

    def pick(channels, mean=None, std=None) -> dict:
        kw = dict(
            in_channels=channels,
            input_size=size,
            num_classes=st.num_classes,
            depth=depth,
            mean=mean,
            std=std,
            resolution=res,
        )
        if shape is None:
            return choose_for_budget(int(budget), **kw)
        return shape_for_budget(int(budget), *shape, **kw)

    channels = _channels_of(images)
    if channels is not None:  # the budget first: it needs only the store and the images' channels
        pick(channels)
    source = None
    if teacher is not None:
        source = OnlineTeacher(teacher, checkpoint=checkpoint) if not isinstance(teacher, OnlineTeacher) else teacher
    # the loader checks the images against the store, and binds (checks) the teacher: before any work
    loader = ReplayLoader(
        st,
        images,
        labels="raw",
        normalize="0-255",
        device=dev,
        seed=seed,
        label_source=source if source is not None else "column",
    )
    channels = loader.dataset.bank.channels
    mean, std = _pixel_stats(loader.dataset.bank)
    arch = pick(channels, mean, std)
    say(
        f"generator: {arch['name']} width {arch['width']} depth {arch['depth']}"
        + (f" rank {arch['rank']}" if arch["rank"] is not None else "")
        + (f", {size}-px views pooled to {res} px" if res != size else "")
        + f", {num_params(arch):,} parameters"
    )
    n_epochs = int(epochs or default_passes(st.num_classes) * st.epochs)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        net = GeneratorNet(arch).to(dev)
    if lr is None:
        lr = min(1e-2, 0.1 / arch["width"])
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    total = max(1, n_epochs * len(loader))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 0.5 * (1.0 + math.cos(math.pi * min(i, total) / total)))
    t0 = time.perf_counter()
    agree = kl_sum = views = 0
    net_secs = 0.0  # the generator's own forward, backward and update (the rest: reading and rendering)
    for e in range(n_epochs):
        loader.set_epoch(e)
        last = e == n_epochs - 1
        net.train()
        for batch in loader:
            t1 = time.perf_counter()
            p = batch.dense(1.0)
            z = net(batch.images)
            loss = kl_div_loss(z, p, 1.0)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if dev.type != "cuda":  # on a GPU the steps are asynchronous: only the total is measured
                net_secs += time.perf_counter() - t1
            if last:  # the fit on the last pass (the views it will label)
                with torch.no_grad():
                    agree += int((z.argmax(1) == p.argmax(1)).sum())
                    kl_sum += float(loss) * len(batch)
                    views += len(batch)
    secs = time.perf_counter() - t0
    trained = {
        "targets": "teacher (online)" if source is not None else "stored labels",
        "teacher_checksum": (st.header.get("teacher") or {}).get("checksum"),
        "source": Path(st.path).name,
        "epochs": n_epochs,
        "steps": n_epochs * len(loader),
        "loss": "KL at T=1",
        "lr": lr,
        "top1_agreement": round(agree / max(views, 1), 6),
        "kl_t1": round(kl_sum / max(views, 1), 6),
    }
    entry = encode(arch, net.tensors(), trained=trained)
    nbytes = entry_bytes(entry)
    if nbytes > int(budget):  # cannot happen with the estimate's allowance; refuse rather than exceed
        raise GeneratorError(f"the trained generator takes {nbytes:,} B, above the budget of {int(budget):,} B")
    say(
        f"trained {n_epochs} epochs ({trained['steps']} steps) in {secs:.1f} s"
        + (f" ({net_secs:.1f} s in the generator)" if dev.type != "cuda" else "")
        + ": top-1 agreement "
        f"{100 * trained['top1_agreement']:.2f} %, KL {trained['kl_t1']:.4f} on the last pass; {nbytes:,} B"
    )
    meta = store_meta(st)
    meta.extensions = {**(meta.extensions or {}), EXTENSION: entry}
    spc = int(st.header["chunking"]["steps_per_chunk"])
    write_steps(
        meta,
        store_steps(st),
        out,
        _top1_chain(st.num_classes),
        selection="keep",
        steps_per_chunk=spc,
        force=True,
        zstd_level=19,
        total=st.num_steps,
        desc="write",
        header_copy=False,
    )
    return {
        "path": str(out),
        "architecture": arch,
        "parameters": num_params(arch),
        "bytes": nbytes,
        "seconds": secs,
        "network_seconds": net_secs if dev.type != "cuda" else None,
        "resolution": res,
        **trained,
    }


def _channels_of(images) -> int | None:
    """The images' channel count without preparing them (None when it cannot be told cheaply)."""
    from ..images import ImageSet

    a = images.images if isinstance(images, ImageSet) else images
    try:
        first = np.asarray(a[0])
    except (TypeError, IndexError, KeyError):
        return None
    return 1 if first.ndim == 2 else int(first.shape[-1]) if first.ndim == 3 else None


def _pixel_stats(bank) -> tuple[list, list]:
    """Per-channel mean and std of the distilled images in pixel units (0..255)."""
    c = bank.channels
    s1, s2, n = torch.zeros(c, dtype=torch.float64), torch.zeros(c, dtype=torch.float64), 0
    for g in bank._groups:  # uint8 [n, C, H, W] per image size
        a = g.to("cpu", torch.float64)
        s1 += a.sum((0, 2, 3))
        s2 += (a * a).sum((0, 2, 3))
        n += a.shape[0] * a.shape[2] * a.shape[3]
    if not n:
        return [127.5] * c, [64.0] * c
    mean = s1 / n
    std = (s2 / n - mean * mean).clamp_min(1.0).sqrt()
    return [round(float(v), 4) for v in mean], [round(float(v), 4) for v in std]
