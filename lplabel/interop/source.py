"""A legacy label directory as a *source of steps* for ``lplabel encode`` (:mod:`lplabel.recode`).

``lplabel encode DIR -o OUT.lpl`` re-encodes any source through the codec tools (learnt class
orders, index coding, zstd dictionaries...). :class:`LegacySource` presents a legacy directory
the way :mod:`lplabel.recode` expects (``meta``, ``steps(positions=None, stage=0)``, ``close()``):
the same plan, validation and header facts as :func:`lplabel.interop.import_legacy`, so a store
made by ``encode`` from a legacy directory carries the same ``legacy`` extension and exports
back the same way. ``recode`` lists it among its built-in openers (:data:`lplabel.recode.SOURCE_OPENERS`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .detect import LAYOUTS, detect_layout
from .errors import UnknownLayoutError


def make_plan(src, layout: str, *, seed=42, order=None, replay="torch>=1.11", num_images=None, steps_per_epoch=None):
    """The :class:`~lplabel.interop.batches.BatchPlan` of a per-batch layout."""
    if layout == "sre2l":
        from .sre2l import REPLAY_MODES, plan_import

        if replay not in REPLAY_MODES:
            from .errors import LegacyFormatError

            raise LegacyFormatError(f"unknown replay mode {replay!r}", hint=f"choose one of {', '.join(REPLAY_MODES)}")
        return plan_import(src, seed=seed, order=order, replay=replay)
    if layout == "gvbsm":
        from .sre2l import plan_import

        return plan_import(src, family="gvbsm", layout="gvbsm")
    if layout == "lpld":
        from .lpld import plan_import

        return plan_import(src, num_images=num_images)
    if layout == "lpqld":
        from .lpqld import plan_import

        return plan_import(src, num_images=num_images, steps_per_epoch=steps_per_epoch)
    raise UnknownLayoutError(f"unknown legacy layout {layout!r}", hint=f"choose auto or one of {', '.join(LAYOUTS)}")


#: the layouts each legacy-specific option applies to
_APPLIES = {
    "seed": ("sre2l",),
    "order": ("sre2l",),
    "replay": ("sre2l",),
    "steps_per_epoch": ("lpqld",),
    "fkd_values": ("fkd",),
    "fkd_temperature": ("fkd",),
    "input_size": ("sre2l", "lpld", "lpqld", "gvbsm"),
}


class LegacySource:
    """A legacy directory as a :mod:`lplabel.recode` source (labels decoded to float32)."""

    def __init__(
        self,
        path,
        layout: str = "auto",
        *,
        images=None,
        num_images=None,
        num_classes=None,
        seed=None,
        order=None,
        replay=None,
        steps_per_epoch=None,
        fkd_values=None,
        fkd_temperature=None,
        input_size=None,
    ):
        """Options as :func:`lplabel.interop.import_legacy`'s (None: its default). An option given
        for a layout it does not apply to is refused by name (never accepted and ignored)."""
        from ..sources import SourceMeta

        given = {
            "seed": seed,
            "order": order,
            "replay": replay,
            "steps_per_epoch": steps_per_epoch,
            "fkd_values": fkd_values,
            "fkd_temperature": fkd_temperature,
            "input_size": input_size,
        }
        seed = 42 if seed is None else seed
        replay = "torch>=1.11" if replay is None else replay
        fkd_values = "logprob" if fkd_values is None else fkd_values
        fkd_temperature = 1.0 if fkd_temperature is None else fkd_temperature
        src = Path(path)
        if not src.is_dir():
            raise UnknownLayoutError(
                "a legacy label set is a directory",
                path=src,
                hint="give the directory the relabel script wrote, or --from lplabel for a store",
            )
        self.layout = detect_layout(src) if layout == "auto" else layout
        if self.layout not in LAYOUTS:
            raise UnknownLayoutError(f"unknown legacy layout {layout!r}", hint=f"choose auto or one of {LAYOUTS}")
        wrong = [name for name, v in given.items() if v is not None and self.layout not in _APPLIES[name]]
        if wrong:
            from .errors import LegacyFormatError

            flags = ", ".join("--" + w.replace("_", "-") for w in wrong)
            raise LegacyFormatError(
                f"{flags} {'does' if len(wrong) == 1 else 'do'} not apply to a {self.layout} label set",
                path=src,
                hint="; ".join(f"--{w.replace('_', '-')}: {', '.join(_APPLIES[w])} only" for w in wrong),
            )
        if self.layout == "fkd":
            from .fkd import prepare_fkd, value_dtype
            from .common import legacy_extension

            self.fkd = prep = prepare_fkd(
                src,
                images=images,
                num_images=num_images,
                num_classes=num_classes,
                values=fkd_values,
                temperature=fkd_temperature,
            )
            ext = {k: v for k, v in prep.ext.items() if k != "must_understand"}
            self.meta = SourceMeta(
                num_classes=prep.num_classes,
                images=prep.index,
                batch_size=prep.sig["num_crops"],
                epochs=1,
                steps_per_epoch=len(prep.index),
                augmentation=prep.augmentation,
                teacher=prep.teacher,
                extensions={"legacy": legacy_extension("fkd", **ext, lossless=True)},
                crop_type=prep.sig["coords_dtype"],
                label_input=("topk", prep.sig["k"]),
                value_type=value_dtype(prep),
                num_steps=len(prep.rels),
                path=str(src),
                keep_order=True,
            )
            self.notes = list(prep.notes)
            return
        from .batches import prepare

        plan = make_plan(
            src,
            self.layout,
            seed=seed,
            order=order,
            replay=replay,
            num_images=num_images,
            steps_per_epoch=steps_per_epoch,
        )
        self.prep = prep = prepare(
            plan, images=images, num_images=num_images, num_classes=num_classes, input_size=input_size
        )
        sig = prep.sig
        self.meta = SourceMeta(
            num_classes=prep.num_classes,
            images=prep.index,
            batch_size=plan.batch_size,
            epochs=plan.epochs,
            steps_per_epoch=plan.steps_per_epoch,
            drop_last=plan.drop_last,
            augmentation=prep.augmentation,
            teacher=prep.teacher,
            seed=plan.seed,
            extensions=prep.extension(lossless=True),
            crop_type=sig["coords_dtype"],
            label_input="logits" if prep.kind == "dense" else ("topk", sig["k"]),
            value_type=sig["label_dtype"],
            num_steps=len(plan.files),
            path=str(src),
            keep_order=prep.kind != "dense",
        )
        self.notes = list(plan.notes)

    def steps(self, positions=None, stage: int = 0):
        from ..sources import SourceStep

        if stage:
            raise ValueError("a legacy directory has no encoded stages")
        if self.layout == "fkd":
            from .fkd import iter_fkd

            P = self.meta.batch_size
            for img, _, coords, flip, idx, vals in iter_fkd(self.fkd, positions):
                yield SourceStep(
                    0,
                    img,
                    np.full(P, img, np.int32),
                    coords,
                    flip,
                    np.full(P, -1, np.int16),
                    float("nan"),
                    np.zeros(4, np.int16),
                    {"indices": idx, "values": np.asarray(vals, dtype=np.float32)},
                )
            return
        from .batches import iter_steps

        for st in iter_steps(self.prep, positions):
            b = st.batch
            label = (
                {"logits": b.logits.astype(np.float32)}
                if b.logits is not None
                else {"indices": b.indices.astype(np.int64), "values": b.values.astype(np.float32)}
            )
            yield SourceStep(
                st.epoch, st.step, st.image, b.coords, b.flip, st.mix_partner, st.mix_lambda, st.mix_box, label
            )

    def close(self) -> None:
        pass


def can_open(path) -> bool:
    """Directories are legacy label sets (an lplabel store is a file)."""
    return Path(path).is_dir()
