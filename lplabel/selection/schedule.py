"""Which stored steps a training epoch reads (reuse schedules), and at which temperature.

A label store holds the steps its relabeler computed: every step of every epoch (a *full*
store) or a selection of them (a *pruned* store, whose header carries a ``selection`` object).
Training runs for as many epochs as it likes; a :class:`ReuseSchedule` maps each training epoch
to an ordered list of stored-step *positions* (``0 .. store.num_steps-1``, the order steps are
stored in). It is a pure function of the store's step table, the schedule's parameters and the
epoch, so every process and every rank computes the same list, and resuming needs only
``(epoch, how many steps were done)``.

Reuse modes
-----------
``"epochs"`` (default for full stores)
    Training epoch ``e`` reads the ``(e mod E)``-th stored epoch, every one of its steps in step
    order, where ``E`` is the number of distinct epochs the store holds. Training longer than
    the store was labelled for therefore *wraps around*: with 300 stored epochs, epoch 300 reads
    stored epoch 0 again (the same views and labels). ``wrap=False`` turns that into a
    :class:`~lplabel.errors.ScheduleError` instead.
``"lpld"`` (LPLD's random label pruning, ``--granularity batch_to_epoch``)
    Each epoch draws ``steps_per_epoch`` positions uniformly *with replacement* from the pool
    (all stored steps). Unlike LPLD it is seeded: the same seed and epoch give the same draw.
``"lpqld"`` (LPQLD's dynamic knowledge reuse)
    Each epoch draws ``steps_per_epoch`` distinct positions (*without replacement* within the
    epoch, independently across epochs). LPQLD uses Python's unseeded ``random.sample`` (which
    fails when the pool is smaller than an epoch); here it is seeded, and a pool smaller than an
    epoch is served by appending further independent permutations (each step once per
    permutation).
``"order"`` (LPLD's ``--prune_metric order``)
    Walk the pool in stored order, ``steps_per_epoch`` steps per epoch, wrapping around the end
    of the pool: epoch ``e`` reads positions ``(e·spe + j) mod n`` for ``j < spe``.

``reuse="auto"`` picks ``"epochs"`` for a full store and the selection's ``reuse`` field
(``"lpld"`` or ``"lpqld"``) for a pruned one.

Randomness
----------
The draw of epoch ``e`` uses ``numpy.random.Generator(PCG64(SeedSequence([seed, e],
spawn_key=(2,))))`` -- the spawn key keeps it independent of the view sampler's streams
(:mod:`lplabel.views` uses no spawn key for steps and ``(1,)`` for epoch orders). ``lpld``
takes ``rng.integers(0, n, size=spe)``; ``lpqld`` takes ``rng.permutation(n)[:spe]`` (more
permutations appended when ``n < spe``). These two are :func:`lplabel.selection.reuse_steps`,
which this module calls, so the selection module and the loader cannot disagree.
``shuffle=True`` (modes ``epochs`` and ``order``) reorders an epoch's list with
``rng.permutation``. The seed defaults to the selection's ``seed``, else the header's ``seed``,
else 0; it must be an integer in ``[0, 2**63)``.

Short steps
-----------
A store written without ``drop_last`` has a short last step in each epoch. All modes serve such
steps as they are (the batch is smaller); ``full_steps_only=True`` removes them from the pool
(LPLD's loader similarly skips the last batch of an epoch).

Temperature schedules
---------------------
:class:`Constant`, :class:`StepDecay` (LPQLD's ``step``: ``max(t_min, t0·γ^(e // step_size))``,
with :func:`lpqld_step` giving the published ``max(2, 20·0.7^(e // 30))``) and :class:`Cosine`.
They are small picklable callables ``epoch -> float``; :func:`as_temperature` turns a number
into a :class:`Constant`.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from ..errors import ScheduleError

REUSE_MODES = ("epochs", "lpld", "lpqld", "order")

#: Spawn key of the reuse-draw streams (see the module doc).
REUSE_SPAWN_KEY = (2,)

_U32 = 2**32


#: Steps per chunk that the writing commands (``import``, ``relabel``, ``encode``, ``quantize``,
#: ``prune``) use by default for stores whose schedule reads stored steps in order ("epochs",
#: "order"): the training loader decodes runs of consecutive steps together (``steps_per_item``,
#: up to 16 with ``"auto"``, runs starting at multiples of it), so an 8-step chunk is decoded once
#: per item, while 1 step per chunk cost 1-13 % in size and 1.8-4x in decode speed (issue 17).
TRAINING_STEPS_PER_CHUNK = 8


def auto_reuse(selection) -> str:
    """The reuse mode ``reuse="auto"`` picks for a store with header ``selection``."""
    if selection is None:
        return "epochs"
    return selection.get("reuse", "lpld") if isinstance(selection, dict) else "lpld"


def default_steps_per_chunk(selection) -> int:
    """Steps per chunk that fit how training reads a store with header ``selection``.

    Full stores and ``reuse="order"`` are read in stored order: :data:`TRAINING_STEPS_PER_CHUNK`.
    The LPLD/LPQLD schedules ("lpld", "lpqld") draw stored steps in random order, where a step of an
    8-step chunk would cost a whole chunk's decode: 1. (DDP ranks read every world_size-th step:
    pass ``--steps-per-chunk 1`` there too.)"""
    return 1 if auto_reuse(selection) in ("lpld", "lpqld") else TRAINING_STEPS_PER_CHUNK


def reuse_rng(seed: int, epoch: int) -> np.random.Generator:
    """The generator a reuse schedule draws epoch ``epoch`` from."""
    ss = np.random.SeedSequence([int(seed), int(epoch)], spawn_key=REUSE_SPAWN_KEY)
    return np.random.Generator(np.random.PCG64(ss))


def _as_seed(value, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= int(value) < 2**63:
        raise ScheduleError(
            f"{where} must be an integer in [0, 2**63), got {value!r}", hint="pass seed=<int> to the schedule/sampler"
        )
    return int(value)


class ReuseSchedule:
    """Map training epochs to stored-step positions (see the module doc for the modes).

    Build it with :meth:`for_store` from a :class:`~lplabel.store.LabelStore`, or directly from
    a store's step table: ``step_epoch`` (int [S], the stored epoch of each stored step, in
    stored order), ``step_count`` (records per step, int [S]), the header's ``batch_size`` and
    ``steps_per_epoch``, and its ``selection`` (None for a full store).
    """

    def __init__(
        self,
        step_epoch,
        step_count,
        *,
        batch_size: int,
        steps_per_epoch: int,
        selection: dict | None = None,
        reuse: str = "auto",
        seed=None,
        header_seed=None,
        wrap: bool = True,
        shuffle: bool = False,
        full_steps_only: bool = False,
        path=None,
    ):
        self.path = path
        step_epoch = np.asarray(step_epoch, dtype=np.int64).reshape(-1)
        step_count = np.asarray(step_count, dtype=np.int64).reshape(-1)
        if step_epoch.shape != step_count.shape:
            raise ValueError("step_epoch and step_count must have one entry per stored step")
        self.selection = selection
        if reuse == "auto":
            reuse = auto_reuse(selection)
        if reuse not in REUSE_MODES:
            raise ScheduleError(
                f"unknown reuse mode {reuse!r}", path=path, hint=f"choose one of {', '.join(REUSE_MODES)} or 'auto'"
            )
        self.reuse = reuse
        if seed is None:
            seed = (selection or {}).get("seed") if isinstance(selection, dict) else None
            if seed is None:
                seed = header_seed if header_seed is not None else 0
            where = "the store's seed"
        else:
            where = "seed"
        self.seed = _as_seed(seed, where)
        self.wrap = bool(wrap)
        self.shuffle = bool(shuffle)
        self.full_steps_only = bool(full_steps_only)
        self.batch_size = int(batch_size)
        self.num_stored_steps = len(step_epoch)

        pool = np.arange(len(step_epoch), dtype=np.int64)
        if full_steps_only:
            pool = pool[step_count >= self.batch_size]
        self.pool = pool
        if len(pool) == 0:
            raise ScheduleError(
                "the store holds no steps this schedule can serve",
                path=path,
                hint="full_steps_only=True removed every (short) step" if full_steps_only else "the store is empty",
            )
        if reuse == "epochs":
            pe = step_epoch[pool]
            self.stored_epochs, first = np.unique(pe, return_index=True)
            # pool positions are in stored (epoch, step) order, so each epoch is one run
            bounds = np.append(first, len(pe))
            self._epoch_runs = [(int(bounds[i]), int(bounds[i + 1])) for i in range(len(first))]
            self.steps_per_epoch = None  # varies per stored epoch (usually the header's value)
        else:
            spe = int(steps_per_epoch)
            if spe < 1:
                raise ScheduleError(f"steps_per_epoch must be >= 1, got {spe}", path=path)
            self.steps_per_epoch = spe

    @classmethod
    def for_store(cls, store, **kw) -> "ReuseSchedule":
        """The schedule of a :class:`~lplabel.store.LabelStore` (header selection, seed, steps)."""
        h = store.header
        spe = kw.pop("steps_per_epoch", None)
        sched = cls(
            store.step_epoch,
            np.diff(store.record_start),
            batch_size=h["batch_size"],
            steps_per_epoch=h["steps_per_epoch"] if spe is None else spe,
            selection=h.get("selection"),
            header_seed=h.get("seed") if isinstance(h.get("seed"), int) else None,
            path=store.path,
            **kw,
        )
        if spe is not None and sched.reuse == "epochs":
            raise ScheduleError(
                "steps_per_epoch does not apply to reuse 'epochs' (each stored epoch is read whole)",
                path=store.path,
                hint="use reuse='order' to walk the stored steps in windows of "
                "steps_per_epoch, or 'lpld'/'lpqld' to draw them",
            )
        return sched

    # ------------------------------------------------------------------------------------------
    def epoch_length(self, epoch: int) -> int:
        """Number of steps training epoch ``epoch`` reads (all ranks together)."""
        if self.reuse != "epochs":
            self._check_epoch(epoch)
            return self.steps_per_epoch
        a, b = self._epoch_runs[self._stored_epoch_slot(epoch)]
        return b - a

    def _check_epoch(self, epoch) -> int:
        if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 0 or epoch >= _U32:
            raise ScheduleError(f"training epoch must be an integer in [0, 2**32), got {epoch!r}", path=self.path)
        return int(epoch)

    def _stored_epoch_slot(self, epoch) -> int:
        e = self._check_epoch(epoch)
        n = len(self.stored_epochs)
        if e >= n and not self.wrap:
            raise ScheduleError(
                f"training epoch {e} is beyond the {n} epochs this store holds (wrap=False)",
                path=self.path,
                hint="pass wrap=True to reuse stored epochs cyclically, or relabel more epochs",
            )
        return e % n

    def stored_epoch_of(self, epoch: int) -> int | None:
        """For mode ``epochs``: the stored epoch number training epoch ``epoch`` reads."""
        if self.reuse != "epochs":
            return None
        return int(self.stored_epochs[self._stored_epoch_slot(epoch)])

    def steps(self, epoch: int) -> np.ndarray:
        """Stored-step positions (int64) that training epoch ``epoch`` reads, in order."""
        if self.reuse == "epochs":
            a, b = self._epoch_runs[self._stored_epoch_slot(epoch)]
            out = self.pool[a:b].copy()
            if self.shuffle:
                out = out[reuse_rng(self.seed, epoch).permutation(len(out))]
            return out
        e = self._check_epoch(epoch)
        n, spe = len(self.pool), self.steps_per_epoch
        if self.reuse == "order":
            out = self.pool[(e * spe + np.arange(spe, dtype=np.int64)) % n]
            if self.shuffle:
                out = out[reuse_rng(self.seed, e).permutation(len(out))]
            return out
        from . import reuse_steps

        return self.pool[reuse_steps(self.reuse, n, spe, e, self.seed)]

    def describe(self) -> dict:
        """The parameters that fully determine the schedule (recorded in sampler states)."""
        return {
            "reuse": self.reuse,
            "seed": self.seed,
            "steps_per_epoch": self.steps_per_epoch,
            "wrap": self.wrap,
            "shuffle": self.shuffle,
            "full_steps_only": self.full_steps_only,
            "pool": len(self.pool),
        }

    def __repr__(self):
        d = self.describe()
        return "ReuseSchedule(" + ", ".join(f"{k}={v!r}" for k, v in d.items()) + ")"


# ----------------------------------------------------------------------------------------------
# Temperature schedules
# ----------------------------------------------------------------------------------------------


class Constant:
    """``T(e) = t``."""

    def __init__(self, t: float):
        self.t = _positive(t, "temperature")

    def __call__(self, epoch: int) -> float:
        return self.t

    def __repr__(self):
        return f"Constant({self.t!r})"


class StepDecay:
    """``T(e) = max(t_min, t0 · gamma ** ((e + offset) // step_size))`` (LPQLD ``--temp_scheduler step``).

    LPQLD numbers epochs from 1; lplabel's training epochs start at 0. ``offset=1`` reproduces
    LPQLD's values for a loop whose first epoch is 0 (they only differ at the step boundaries:
    LPQLD's epoch 30 -- our epoch 29 -- is the first at 14).
    """

    def __init__(self, t0: float = 20.0, gamma: float = 0.7, step_size: int = 30, t_min: float = 2.0, offset: int = 0):
        self.t0 = _positive(t0, "t0")
        self.gamma = _positive(gamma, "gamma")
        if isinstance(step_size, bool) or not isinstance(step_size, (int, np.integer)) or step_size < 1:
            raise ValueError(f"step_size must be an integer >= 1, got {step_size!r}")
        self.step_size = int(step_size)
        self.t_min = _positive(t_min, "t_min")
        self.offset = int(offset)

    def __call__(self, epoch: int) -> float:
        return max(self.t_min, self.t0 * self.gamma ** ((int(epoch) + self.offset) // self.step_size))

    def __repr__(self):
        return (
            f"StepDecay(t0={self.t0}, gamma={self.gamma}, step_size={self.step_size}, "
            f"t_min={self.t_min}, offset={self.offset})"
        )


class Cosine:
    """``T(e) = t_min + ½(t0 − t_min)(1 + cos(π·e / epochs))`` (LPQLD ``--temp_scheduler cosine``).

    ``e`` is clamped to ``[0, epochs]``.
    """

    def __init__(self, t0: float = 20.0, t_min: float = 1.0, epochs: int = 300):
        self.t0 = _positive(t0, "t0")
        self.t_min = _positive(t_min, "t_min")
        if int(epochs) < 1:
            raise ValueError(f"epochs must be >= 1, got {epochs!r}")
        self.epochs = int(epochs)

    def __call__(self, epoch: int) -> float:
        e = min(max(int(epoch), 0), self.epochs)
        return self.t_min + 0.5 * (self.t0 - self.t_min) * (1.0 + math.cos(math.pi * e / self.epochs))

    def __repr__(self):
        return f"Cosine(t0={self.t0}, t_min={self.t_min}, epochs={self.epochs})"


def lpqld_step(offset: int = 0) -> StepDecay:
    """LPQLD's published schedule ``max(2, 20·0.7^(e // 30))`` (T0=20, γ=0.7, step 30, floor 2)."""
    return StepDecay(20.0, 0.7, 30, 2.0, offset=offset)


def constant(t: float) -> Constant:
    return Constant(t)


def cosine(t0: float = 20.0, t_min: float = 1.0, epochs: int = 300) -> Cosine:
    return Cosine(t0, t_min, epochs)


def as_temperature(t) -> Callable[[int], float]:
    """A temperature schedule from a number (constant) or a callable ``epoch -> float``."""
    if callable(t):
        return t
    return Constant(t)


def _positive(v, name: str) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {v!r}") from None
    if not (f > 0 and math.isfinite(f)):
        raise ValueError(f"{name} must be a finite number > 0, got {v!r}")
    return f
