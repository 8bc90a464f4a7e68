"""Train a student from a label store through the loader, and evaluate it on real test images.

The recipe is the peers' (SRe2L / LPLD / LPQLD / RDED validation), scaled to small data:

* the student is a fresh network (:func:`lplabel.teachers.models.build_model`) behind
  :class:`~lplabel.teachers.models.Normalized` with the distilled set's per-channel mean/std;
* batches come from :class:`lplabel.torch.ReplayLoader`: each training step is one stored step,
  rendered and mixed exactly as the teacher saw it, with its soft labels reconstructed at the
  epoch's temperature (reuse schedule from the store: full stores replay stored epoch ``e`` at
  training epoch ``e``; pruned stores draw their pool per epoch, seeded by the student's seed);
* loss ``KL(p_T || softmax(z_s / T))`` (batch mean, no T² -- as SRe2L/LPLD/LPQLD on ImageNet);
* AdamW (weight decay on weights only), cosine learning-rate decay stepped once per epoch
  (``0.5 (1 + cos(pi e / E))``), no warm-up; bf16 autocast on CUDA when ``amp``;
* top-1 on the real test split at the end of training (the last epoch, not the best one).

``image_size`` (optional) trains the student at a smaller side than the views were relabelled at:
each rendered (and mixed) view -- exactly what the teacher saw -- is downscaled to
``image_size`` (:func:`downscale`: bilinear with antialiasing), and the test images are resized
the same way. The 1000-class CPU preset uses it: the teacher sees 224-px views, a small student
trains on the same views at 32 px.

Everything that differs between rows of a sweep is the label store (and, for LPQLD-style rows,
the temperature schedule); images, teacher, recipe and seeds are shared.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from ...images import ImageSet


@dataclass
class StudentRecipe:
    """How students are trained (see the module doc).

    ``model``/``model_kwargs``: a :data:`lplabel.teachers.models.MODEL_FACTORIES` name and its keyword
    arguments (``num_classes`` and ``in_channels`` come from the store and images; ConvNets get
    ``image_size`` = the view size unless given). ``image_size``: the side the student trains and
    is evaluated at (None: the store's view size; smaller: views downscaled, see the module doc).
    ``temperature``: the constant label/student temperature T. ``label_classes``: ``"all"`` (the
    student learns every class the labels carry) or ``"evaluated"`` (with a ``class_index``: each
    label restricted to the evaluated classes and renormalised -- for dense labels exactly the
    teacher's softmax over those classes' logits -- and the student's log-softmax taken over the
    same classes; a view whose stored top-k holds none of them has no such label and is left out
    of the loss, counted in ``views_without_label``). ``epochs``: training epochs (None: the store's epochs). ``amp``: bf16
    autocast on CUDA. ``num_workers``: DataLoader workers (0 = render in the main process).
    """

    model: str = "convnet"
    model_kwargs: dict = field(default_factory=dict)
    lr: float = 1e-3
    weight_decay: float = 0.01
    temperature: float = 4.0
    epochs: int | None = None
    amp: bool = True
    num_workers: int = 0
    eval_batch: int = 512
    image_size: int | None = None
    label_classes: str = "all"

    def to_json(self) -> dict:
        d = asdict(self)
        # the keys of runs trained before these fields existed stay
        if d["image_size"] is None:
            d.pop("image_size")
        if d["label_classes"] == "all":
            d.pop("label_classes")
        return d


def restricted_kl(out: torch.Tensor, probs: torch.Tensor, classes: torch.Tensor, temperature: float):
    """KL of the student's log-softmax over ``classes`` against the labels restricted to them and
    renormalised (rows with no mass there are left out). Returns (loss, rows left out)."""
    from ...torch import kl_div_loss

    p = probs.index_select(1, classes)
    mass = p.sum(1)
    keep = mass > 0
    n_out = int((~keep).sum())
    if n_out == len(keep):
        return out.sum() * 0.0, n_out
    if n_out:
        p, mass, out = p[keep], mass[keep], out[keep]
    loss = kl_div_loss(out.index_select(1, classes).float(), p / mass[:, None], temperature)
    return loss * (len(p) / len(keep)), n_out  # a batch mean over all its views, as the unrestricted loss


def downscale(x: torch.Tensor, size: int) -> torch.Tensor:
    """A float NCHW batch resized to ``size`` x ``size`` (bilinear, antialiased: an area-like
    average when shrinking, so small students see the views without aliasing); unchanged when it
    already is that size."""
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    import torch.nn.functional as F

    return F.interpolate(x, size=(int(size), int(size)), mode="bilinear", antialias=True, align_corners=False)


class _Downscale:
    """The loader's ``transform``: rendered views -> ``size`` (picklable for DataLoader workers)."""

    def __init__(self, size: int):
        self.size = int(size)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return downscale(x, self.size)


def temperature_schedule(spec, default_t: float, epochs: int):
    """A loader temperature from a setting's ``temperature`` (None, a number, or ``"dkr"``).

    ``"dkr"`` is LPQLD's step schedule ``max(2, 20 * 0.7^(e // s))`` with ``s = 30`` for 300
    epochs, scaled to ``s = max(1, round(30 * epochs / 300))`` for other lengths so the run
    passes through the same temperatures.
    """
    from ...selection.schedule import Constant, StepDecay

    if spec == "dkr":
        return StepDecay(20.0, 0.7, max(1, round(30 * epochs / 300)), 2.0)
    return Constant(float(default_t if spec is None else spec))


def image_stats(images: ImageSet) -> tuple[list[float], list[float]]:
    """Per-channel mean and std (0..1 units) of a uint8 image set."""
    x = np.asarray(images.images, dtype=np.float64) / 255.0
    axes = tuple(range(x.ndim - 1))
    mean = x.mean(axis=axes)
    std = np.maximum(x.std(axis=axes), 1e-3)
    return mean.tolist(), std.tolist()


def build_student(recipe: StudentRecipe, num_classes: int, images: ImageSet, size: int, seed: int) -> torch.nn.Module:
    """A fresh student (seeded), wrapped in :class:`~lplabel.teachers.models.Normalized`."""
    from ...teachers.models import Normalized, build_model

    kw = dict(recipe.model_kwargs)
    channels = int(np.asarray(images.images[0]).shape[-1]) if len(images) else 3
    if recipe.model.lower() == "convnet":
        kw.setdefault("image_size", int(size))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        net = build_model(recipe.model, num_classes=int(num_classes), in_channels=channels, **kw)
    mean, std = image_stats(images)
    return Normalized(net, mean, std)


@torch.no_grad()
def evaluate_student(
    model: torch.nn.Module,
    test: ImageSet,
    device,
    batch_size: int = 512,
    class_index=None,
    amp: bool = False,
    image_size: int | None = None,
) -> float:
    """Top-1 accuracy on ``test`` (labelled images). With ``class_index``, class ``c`` of the test
    set is output ``class_index[c]`` and the argmax is over those outputs only. ``image_size``:
    test images resized to it first (:func:`downscale`), as the student's training views were."""
    from ...memory_format import network_input
    from ...teachers import images_to_tensor

    keep = np.flatnonzero(test.classes >= 0)
    x = images_to_tensor(test, dtype=torch.uint8)[torch.as_tensor(keep)]
    y = torch.as_tensor(test.classes[keep], dtype=torch.int64)
    ci = None if class_index is None else torch.as_tensor(np.asarray(class_index), dtype=torch.int64, device=device)
    model.eval()
    correct = 0
    for a in range(0, len(x), batch_size):
        xb = x[a : a + batch_size].to(device).float()
        if image_size is not None:
            xb = downscale(xb, image_size)
        xb = network_input(xb)
        with _autocast(device, amp):
            z = model(xb).float()
        if ci is not None:
            z = z.index_select(1, ci)
        correct += int((z.argmax(1).cpu() == y[a : a + batch_size]).sum())
    return correct / max(1, len(x))


def _autocast(device, amp: bool):
    dev = torch.device(device)
    if amp and dev.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    import contextlib

    return contextlib.nullcontext()


def train_student(
    store,
    images: ImageSet,
    test: ImageSet,
    recipe: StudentRecipe,
    *,
    seed: int = 0,
    device="cpu",
    temperature=None,
    class_index=None,
    progress: bool | None = None,
    desc: str = "student",
    label_source=None,
) -> dict:
    """Train one student from ``store`` on ``images`` and evaluate it on ``test``.

    ``temperature``: the setting's (None = the recipe's constant T, a number, or ``"dkr"``).
    Returns ``{"top1", "seed", "epochs", "steps", "final_loss", "seconds", "temperature",
    "student_checksum"}`` (the trained weights' :func:`~lplabel.teachers.teacher_checksum`: equal
    for equal runs on the same torch build and thread count). ``label_source``: a
    :class:`~lplabel.torch.label_sources.LabelSource` (e.g. an online teacher) that labels the
    store's views instead of its label column; its ``stats()`` are returned as ``label_source``.
    """
    from tqdm import tqdm

    from ...memory_format import network_input, network_module
    from ...store import LabelStore
    from ...teachers import teacher_checksum
    from ...torch import ReplayLoader, kl_div_loss

    dev = torch.device(device)
    if recipe.label_classes not in ("all", "evaluated"):
        raise ValueError(f"StudentRecipe.label_classes must be 'all' or 'evaluated', got {recipe.label_classes!r}")
    restrict = None
    if recipe.label_classes == "evaluated":
        if class_index is None:
            raise ValueError("label_classes 'evaluated' needs the class_index of the evaluated classes")
        restrict = torch.as_tensor(np.asarray(class_index), dtype=torch.int64, device=dev)
    st = store if isinstance(store, LabelStore) else LabelStore(store)
    epochs = int(recipe.epochs or st.epochs)
    sched = temperature_schedule(temperature, recipe.temperature, epochs)
    view_size = int(st.header["augmentation"]["output_size"])
    size = view_size if recipe.image_size is None else int(recipe.image_size)
    if size > view_size:
        raise ValueError(
            f"StudentRecipe.image_size {size} is larger than the store's {view_size}-px views; "
            "students train on the views as rendered or downscaled, never upscaled"
        )
    model = network_module(build_student(recipe, st.num_classes, images, size, seed), dev)
    cuda = dev.type == "cuda"
    # the student is wrapped in models.Normalized (0..255 in); a smaller student gets each rendered,
    # mixed view downscaled (the loader's transform runs after mixing)
    loader = ReplayLoader(
        st,
        images,
        device=dev,
        temperature=sched,
        seed=int(seed),
        labels="dense",
        render_on="device" if cuda else "worker",
        num_workers=int(recipe.num_workers),
        persistent_workers=recipe.num_workers > 0,
        label_source=label_source,
        normalize="0-255",
        transform=_Downscale(size) if size != view_size else None,
    )
    decay, no_decay = [], []
    for p in model.parameters():
        (no_decay if p.ndim <= 1 else decay).append(p)
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": recipe.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=recipe.lr,
    )
    sch = torch.optim.lr_scheduler.LambdaLR(opt, lambda e: 0.5 * (1.0 + math.cos(math.pi * e / epochs)))
    show = sys.stderr.isatty() if progress is None else bool(progress)
    bar = tqdm(range(epochs), desc=desc, unit="ep", file=sys.stderr, disable=not show, leave=False, dynamic_ncols=True)
    t0 = time.perf_counter()
    steps = 0
    left_out = 0
    last = float("nan")
    for epoch in bar:
        loader.set_epoch(epoch)
        model.train()
        total, n = torch.zeros((), device=dev), 0
        for batch in loader:
            with _autocast(dev, recipe.amp):
                out = model(network_input(batch.images))
            if restrict is None:
                loss = kl_div_loss(out.float(), batch.probs, batch.temperature)
            else:
                loss, n_out = restricted_kl(out.float(), batch.probs, restrict, batch.temperature)
                left_out += n_out
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach()
            n += 1
            steps += 1
        sch.step()
        last = float(total) / max(n, 1)
        if show:
            bar.set_postfix(loss=f"{last:.4f}", T=f"{sched(epoch):g}")
    bar.close()
    train_s = time.perf_counter() - t0
    top1 = evaluate_student(
        model, test, dev, recipe.eval_batch, class_index, recipe.amp, image_size=size if size != view_size else None
    )
    if not math.isfinite(last):
        last = None
    res = {
        "top1": top1,
        "seed": int(seed),
        "epochs": epochs,
        "steps": steps,
        "final_loss": last,
        "seconds": round(time.perf_counter() - t0, 3),
        "train_seconds": round(train_s, 3),
        "temperature": repr(sched),
        "student_checksum": teacher_checksum(model),
        "image_size": size,
        **({"label_classes": "evaluated", "views_without_label": left_out} if restrict is not None else {}),
    }
    if loader.label_source is not None:
        res["label_source"] = loader.label_source.stats()
    return res
