"""Does the teacher recognise the images? Its top-1 on the images' own classes, before and after.

A teacher that gets its input in the wrong range (it expects 0..1 or normalised pixels, lplabel
hands it 0..255), the wrong channel order, or random weights still returns logits of the right
shape: the relabel would run to the end and store garbage without a word. The one cheap signal
that catches all of these is the teacher's accuracy on the classes the images already carry
(ImageFolder class names, a data set's classes):

* **before** the run, on a seeded sample of up to :data:`SAMPLE_SIZE` labelled images, each
  rendered whole (no crop, flip or mix) at the output side, exactly as the views are rendered;
* **after** the run, on every view computed, against the class of the image that covers the
  larger part of the view (the primary image, or its CutMix/MixUp partner when the partner's
  share is above one half). Crops and mixing make this lower than on whole images, but a
  working teacher stays far above chance.

The classes compared are the store's classes: with a class map (e.g. a 1000-class teacher on a
200-class Tiny-ImageNet subset, ``--class-map in1k``) the argmax is taken among the mapped
outputs, so the check means "which of the image set's classes does the teacher prefer". When
the images carry no classes, the check says it cannot be made.

An accuracy "near chance" (:meth:`AccuracyCheck.near_chance`) makes a loud warning: on the
command line a ``WARNING`` line, in Python a :class:`TeacherAccuracyWarning`. The relabel goes on
(distilled images can legitimately be hard), but the user has been told.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from ..views import StepViews

#: Images in the before-run sample (seeded, without replacement).
SAMPLE_SIZE = 256
#: Seed of the sample choice (independent of the run's seed: the check never changes labels).
SAMPLE_SEED = 0


class TeacherAccuracyWarning(UserWarning):
    """The teacher's top-1 on the images' own classes is near chance: the labels are likely garbage
    (input range or normalisation wrong, random weights, wrong class order)."""


@dataclass
class AccuracyCheck:
    """Top-1 of the teacher against the images' own classes on ``total`` images or views.

    ``top_class``/``top_share``: the class the teacher predicted most often and the fraction of
    predictions that went to it (a teacher fed the wrong input range often answers one class).
    """

    what: str
    correct: int
    total: int
    num_classes: int
    top_class: int | None = None
    top_share: float = 0.0
    class_names: tuple = ()
    #: the largest share of one class among the true classes (to tell a collapse from a skewed set)
    true_top_share: float = 0.0
    #: the before-run check on whole images, when there was one: a teacher that passes it but is near
    #: chance on the views has the right input and finds the views hard (small crops, mixing), which
    #: the warning then says instead of blaming the input range
    whole: "AccuracyCheck | None" = None

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else float("nan")

    @property
    def chance(self) -> float:
        return 1.0 / self.num_classes if self.num_classes else float("nan")

    @property
    def near_chance(self) -> bool:
        """Less than a tenth of the way from chance to perfect, or within three binomial standard
        deviations of chance (so a small sample of a many-class set is not called fine by luck):
        19 % for 10 classes, 10.5 % for 200. Needs at least 2 classes."""
        if not self.total or self.num_classes < 2:
            return False
        p = self.chance
        sigma = math.sqrt(p * (1 - p) / self.total)
        return self.accuracy < max(p + 0.1 * (1 - p), p + 3 * sigma)

    @property
    def collapsed(self) -> bool:
        """The teacher answers one class for at least half of the images, three times as often
        as any class occurs among them: what a teacher fed the wrong input range typically does
        (its accuracy can then sit above chance only because that class is among the images)."""
        return self.total > 0 and self.top_share >= 0.5 and self.top_share > 3 * self.true_top_share

    @property
    def suspicious(self) -> bool:
        """Warn: near chance or collapsed onto one class."""
        return self.near_chance or self.collapsed

    def _class(self, c: int) -> str:
        name = self.class_names[c] if 0 <= c < len(self.class_names) else None
        return f"class {c}" + (f" ({name})" if name is not None and str(name) != str(c) else "")

    def message(self) -> str:
        s = (
            f"teacher top-1 on the {self.what}' own classes: {100 * self.accuracy:.1f}% of {self.total:,} "
            f"(chance {100 * self.chance:.1f}%)"
        )
        if self.near_chance and not self.collapsed and self.whole is not None and not self.whole.suspicious:
            return (
                "WARNING: " + s + f" -- near chance on the views, although it scored {100 * self.whole.accuracy:.1f}% "
                f"on {self.whole.total:,} whole images: its input is right, but these crops and mixes are hard for it "
                "and its labels of them are flat. A milder --crop-scale (e.g. 0.5 1.0) or --mix none gives sharper "
                "labels"
            )
        if self.suspicious:
            why = "near chance" if self.near_chance else "one class for most of them"
            s = (
                "WARNING: " + s + f" -- {why}: the labels are likely garbage. Teachers get float32 NCHW RGB "
                "pixels in 0..255; one that expects 0..1 input needs --normalize unit, one that expects normalised "
                "input --normalize imagenet (see lplabel relabel --help)"
            )
            if self.top_share >= 0.5 and self.top_class is not None:
                s += f"; it predicted {self._class(self.top_class)} for {100 * self.top_share:.0f}% of them"
        return s

    def report(self, say) -> None:
        """Print the result with ``say``; near chance also as a :class:`TeacherAccuracyWarning`."""
        say(self.message())
        if self.suspicious:
            warnings.warn(self.message().removeprefix("WARNING: "), TeacherAccuracyWarning, stacklevel=3)


def known_classes(images) -> np.ndarray | None:
    """The images' classes when they carry any (a class per image, -1 unknown); else None."""
    cls = np.asarray(getattr(images, "classes", ()), dtype=np.int64).reshape(-1)
    if len(cls) != len(images) or not (cls >= 0).any():
        return None
    return cls


def sample_check(
    images, classes: np.ndarray, runner, policy, device, num_classes: int, n: int = SAMPLE_SIZE, batch_size: int = 64
) -> AccuracyCheck:
    """The teacher's top-1 on a seeded sample of whole labelled images (see the module doc).

    ``runner`` is the relabel loop's teacher (class map applied, checks on NaN); raises
    :class:`~lplabel.relabel.errors.TeacherOutputError` when the teacher returns NaN/Inf logits
    here already, before any work directory exists.
    """
    from ..views.replay import ImageBank, render_views
    from .errors import TeacherOutputError

    labelled = np.flatnonzero(classes >= 0)
    rng = np.random.default_rng(SAMPLE_SEED)
    pick = np.sort(rng.choice(labelled, size=min(n, len(labelled)), replace=False))
    preds = []
    for i in range(0, len(pick), batch_size):
        ids = pick[i : i + batch_size]
        bank = ImageBank([np.asarray(images.images[int(j)]) for j in ids], device=device)
        m = len(ids)
        views = StepViews(
            image=np.arange(m),
            crop=np.tile(np.array([0, 0, 1, 1], np.float32), (m, 1)),
            flip=np.zeros(m, bool),
            mix_partner=np.full(m, -1),
            mix_lambda=math.nan,
            mix_box=np.zeros(4),
        )
        with torch.inference_mode():
            z = runner(render_views(bank, views, policy))
        if not bool(torch.isfinite(z).all()):
            raise TeacherOutputError(
                "the teacher produced NaN or infinite logits on whole images of the set",
                hint="with --amp try --amp-dtype bfloat16 or no AMP; check the teacher",
            )
        preds.append(z.argmax(1).cpu().numpy())
    pred = np.concatenate(preds) if preds else np.zeros(0, np.int64)
    return _result("sampled images", pred, classes[pick], num_classes, images)


def _result(what, pred, target, num_classes, images) -> AccuracyCheck:
    counts = np.bincount(pred, minlength=num_classes) if len(pred) else np.zeros(num_classes, np.int64)
    top = int(counts.argmax()) if len(pred) else None
    return AccuracyCheck(
        what=what,
        correct=int((pred == target).sum()),
        total=int(len(pred)),
        num_classes=num_classes,
        top_class=top,
        top_share=float(counts.max() / len(pred)) if len(pred) else 0.0,
        class_names=tuple(getattr(images, "class_names", None) or ()),
        true_top_share=_top_share(target),
    )


def _top_share(target: np.ndarray) -> float:
    target = np.asarray(target, dtype=np.int64)
    target = target[target >= 0]
    return float(np.bincount(target).max() / len(target)) if len(target) else 0.0


def dominant_image(views: StepViews, policy) -> np.ndarray:
    """For each view, the image that covers the larger part of it: the view's own image, or its
    mix partner's when the partner's share (CutMix box area, or 1 - λ for MixUp) is above 1/2."""
    img = views.image.astype(np.int64)
    partner = views.mix_partner.astype(np.int64)
    if policy.mix == "none" or len(img) == 0 or (partner < 0).all():
        return img
    if policy.mix == "cutmix":
        r0, c0, r1, c1 = (int(v) for v in views.mix_box)
        share = max(0, r1 - r0) * max(0, c1 - c0) / float(policy.output_size**2)
    else:
        share = 1.0 - float(views.mix_lambda)
    if not share > 0.5:
        return img
    return np.where(partner >= 0, img[np.clip(partner, 0, None)], img)


class ViewAccuracy:
    """Counts, on the device and without synchronising, how many views' top-1 is the class of
    their dominant image (:func:`dominant_image`); :meth:`result` reads the counts once."""

    def __init__(self, classes: np.ndarray, num_classes: int, device, policy, images):
        self.classes = classes
        self.num_classes = num_classes
        self.device = device
        self.policy = policy
        self.images = images
        self.correct = torch.zeros((), dtype=torch.int64, device=device)
        self.counts = torch.zeros(num_classes + 1, dtype=torch.int64, device=device)
        self.true_counts = np.zeros(num_classes, np.int64)
        self.total = 0

    def add(self, z: torch.Tensor, views: StepViews) -> None:
        target = self.classes[dominant_image(views, self.policy)]
        known = target >= 0
        if not known.any():
            return
        pred = z.argmax(1)
        t = torch.from_numpy(np.where(known, target, -1))
        if self.device.type == "cuda":  # a pageable copy would wait for the forward on this stream
            t = t.pin_memory()
        t = t.to(self.device, non_blocking=True)
        self.correct += (pred == t).sum()
        # unknown-class views count in the extra last bin; scatter_add needs no host sync
        binned = torch.where(t >= 0, pred, torch.full_like(pred, self.num_classes))
        self.counts.scatter_add_(0, binned, torch.ones_like(binned))
        self.total += int(known.sum())
        self.true_counts += np.bincount(target[known], minlength=self.num_classes)[: self.num_classes]

    def result(self) -> AccuracyCheck | None:
        if not self.total:
            return None
        counts = self.counts.cpu().numpy()[: self.num_classes]
        return AccuracyCheck(
            what="views",
            correct=int(self.correct.item()),
            total=self.total,
            num_classes=self.num_classes,
            top_class=int(counts.argmax()),
            top_share=float(counts.max() / max(1, counts.sum())),
            class_names=tuple(getattr(self.images, "class_names", None) or ()),
            true_top_share=float(self.true_counts.max() / max(1, self.true_counts.sum())),
        )
