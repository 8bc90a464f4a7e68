"""The sampler: which stored step each training step reads, per epoch, per rank, resumable.

:class:`StepSampler` runs in the main process. For the current epoch it asks the store's
:class:`~lplabel.selection.schedule.ReuseSchedule` for the epoch's stored-step positions, takes this
rank's share, and yields one :class:`~lplabel.torch.batch.StepKey` per step carrying the
position, the epoch, the step's slot and the epoch's label temperature. Workers therefore need
no epoch state, and ``persistent_workers=True`` works: the DataLoader re-iterates the sampler in
the main process every epoch.

DDP: rank ``r`` of ``w`` takes positions ``r, r+w, r+2w, ...`` of the epoch's list. Because
CutMix/MixUp partners live inside a step, a whole step always goes to one rank and every rank's
batch is a complete stored step. With ``uneven="pad"`` (default) ranks whose share is short
repeat the epoch's first steps so every rank runs the same number of steps (as
``DistributedSampler`` does; otherwise collective ops would hang); ``"drop"`` drops the epoch's
last ``len % w`` steps; ``"allow"`` leaves the shares uneven (disjoint and complete, for code
that does not synchronise ranks per step).

Epochs: :meth:`StepSampler.set_epoch` is authoritative. Without it, every new iteration serves the
epoch after the previous iteration's (as MosaicML streaming's datasets do), so a loop that forgets
``set_epoch`` still sees a fresh epoch on every pass instead of replaying the first one; the first
iteration serves the constructor's ``epoch``, and after :meth:`load_state_dict` the next iteration
continues the saved epoch (or starts the one after it when the saved epoch was complete).

Resume: :meth:`StepSampler.state_dict` records the epoch, how many of this rank's steps of it
were consumed, the schedule's parameters and the store's id; :meth:`load_state_dict` refuses a
state from another store or schedule, and the next iteration of that epoch starts at the first
step not consumed. With worker processes the DataLoader fetches ahead of the training loop, so
tell ``state_dict`` how far the *loop* got (``consumed=`` or ``after=batch``);
:class:`~lplabel.torch.ReplayLoader` does that for you.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import LplabelError, ScheduleError
from ..selection.schedule import ReuseSchedule, as_temperature
from ..store import LabelStore
from .batch import StepBatch, StepKey
from .group import StepGroupKey

STATE_FORMAT = "lplabel-sampler-v1"
UNEVEN_MODES = ("pad", "drop", "allow")


class ResumeStateError(LplabelError):
    """A resume state that does not belong to this store or schedule."""


#: What the method a store comes from trains with, when it is not T = 1: (suggestion, reason).
_METHOD_TEMPERATURE = {
    "sre2l": (
        "temperature=20.0",
        "SRe2L/CDA labels: train_FKD.py is run with -T 20 for CutMix (its README; the code default is 3)",
    ),
    "lpld": ("temperature=20.0", "LPLD labels: LPLD trains with T=20"),
    "lpqld": (
        "temperature=lpqld_step(offset=1)",
        "LPQLD labels: LPQLD trains with its dynamic schedule max(2, 20 * 0.7^(epoch // 30)) from T=20",
    ),
}


def implied_temperature(store: LabelStore):
    """(suggestion, reason) when the method the store's labels come from trains at a temperature
    other than 1 (a legacy import's layout, or a store pruned for LPLD/LPQLD reuse), else None.
    G-VBSM/EDC (MSE on logits) and FKD (soft CE at T=1) imply nothing."""
    hdr = store.header
    legacy = (hdr.get("extensions") or {}).get("legacy") or {}
    layout = legacy.get("layout") if isinstance(legacy, dict) else None
    if layout in _METHOD_TEMPERATURE:
        return _METHOD_TEMPERATURE[layout]
    sel = hdr.get("selection") or {}
    reuse = sel.get("reuse") if isinstance(sel, dict) else None
    if reuse in ("lpld", "lpqld"):
        hint, why = _METHOD_TEMPERATURE[reuse]
        return hint, f"a store pruned for {reuse.upper()} reuse: " + why.split(": ", 1)[1]
    return None


def resolve_temperature(temperature, store: LabelStore, stacklevel: int = 3):
    """``temperature`` as given, or 1.0 when not given -- with a warning when the store's method
    implies another temperature (a KL loss at T=1 on labels meant for T=20 trains a different
    student, silently)."""
    if temperature is not None:
        return temperature
    implied = implied_temperature(store)
    if implied is not None:
        import warnings

        hint, why = implied
        warnings.warn(
            f"{store.path}: the loader's temperature defaults to 1.0, but these are {why} -- pass "
            f"{hint} (or temperature=1.0 to keep T=1 and silence this)",
            UserWarning,
            stacklevel=stacklevel + 1,
        )
    return 1.0


def default_rank_world():
    """(rank, world_size) from torch.distributed when it is initialised, else (0, 1)."""
    try:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size()
    except Exception:  # pragma: no cover - depends on the build
        pass
    return 0, 1


class StepSampler(torch.utils.data.Sampler):
    """Yield :class:`StepKey` s for the current epoch (see the module doc).

    Parameters
    ----------
    store: path or :class:`~lplabel.store.LabelStore`.
    temperature: the label temperature, a number or a schedule ``epoch -> T`` (see
        :mod:`lplabel.selection.schedule`: ``lpqld_step()``, ``Cosine``...). Not given: 1.0, with a warning
        when the store's method trains at another temperature (:func:`implied_temperature`).
    reuse, seed, steps_per_epoch, wrap, shuffle, full_steps_only: passed to
        :class:`~lplabel.selection.schedule.ReuseSchedule` (``reuse="auto"`` follows the store).
    rank, world_size: this process's share; default from ``torch.distributed`` if initialised.
    uneven: ``"pad"`` | ``"drop"`` | ``"allow"`` (see the module doc); irrelevant for one rank.
    epoch: the starting epoch (``set_epoch`` changes it; without ``set_epoch`` each new iteration
        advances it by one, see the module doc).
    steps_per_item: yield one :class:`~lplabel.torch.group.StepGroupKey` per run of this many
        consecutive steps of the share (runs start at multiples of it, counted from the epoch's
        first slot, so a resumed epoch reads the same runs after its first), for which
        :class:`~lplabel.torch.StepDataset` returns one :class:`~lplabel.torch.group.StepGroup`;
        iterate it for the steps. 1 (default): one :class:`StepKey` per step.
    """

    def __init__(
        self,
        store,
        *,
        temperature=None,
        reuse: str = "auto",
        seed=None,
        steps_per_epoch=None,
        wrap: bool = True,
        shuffle: bool = False,
        full_steps_only: bool = False,
        rank=None,
        world_size=None,
        uneven: str = "pad",
        epoch: int = 0,
        steps_per_item: int = 1,
    ):
        st = store if isinstance(store, LabelStore) else LabelStore(store)
        self.store_id = st.store_id
        self.path = str(st.path)
        self.schedule = ReuseSchedule.for_store(
            st,
            reuse=reuse,
            seed=seed,
            steps_per_epoch=steps_per_epoch,
            wrap=wrap,
            shuffle=shuffle,
            full_steps_only=full_steps_only,
        )
        self.temperature = as_temperature(resolve_temperature(temperature, st))
        r, w = default_rank_world()
        self.rank = r if rank is None else int(rank)
        self.world_size = w if world_size is None else int(world_size)
        if self.world_size < 1 or not 0 <= self.rank < self.world_size:
            raise ValueError(f"need 0 <= rank < world_size, got rank={self.rank}, world_size={self.world_size}")
        if uneven not in UNEVEN_MODES:
            raise ValueError(f"uneven must be one of {UNEVEN_MODES}, got {uneven!r}")
        self.uneven = uneven
        self.epoch = int(epoch)
        if isinstance(steps_per_item, bool) or not isinstance(steps_per_item, (int, np.integer)) or steps_per_item < 1:
            raise ValueError(f"steps_per_item must be a positive integer, got {steps_per_item!r}")
        self.steps_per_item = int(steps_per_item)
        self._start = 0  # first slot of the next iteration of self.epoch (resume)
        self._yielded = 0  # steps handed out in the current iteration (incl. the resume offset)
        self._iter_start = 0  # where the current iteration started
        self._cache = None  # (epoch, share)
        # True once an iteration of self.epoch has begun (or a loaded state's epoch is complete):
        # the next iteration then serves self.epoch + 1 unless set_epoch/load_state_dict says otherwise
        self._advance = False
        self._claimed = False  # ReplayLoader began the iteration itself (see begin_iteration)

    # -- the epoch's share -----------------------------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        """Select the training epoch the next iteration serves (call before each epoch; authoritative:
        it cancels the automatic advance of :meth:`begin_iteration`)."""
        epoch = int(epoch)
        if epoch != self.epoch:
            self._start = 0
            self._yielded = 0
            self._iter_start = 0
        self.epoch = epoch
        self._advance = False
        self._claimed = False

    @property
    def next_epoch(self) -> int:
        """The epoch the next iteration serves."""
        return self._next()[0]

    def begin_iteration(self, claim: bool = False) -> int:
        """Start an iteration: apply the automatic epoch advance (when ``set_epoch`` was not called
        since the previous iteration began) and return the epoch it serves. ``__iter__`` calls it;
        a wrapper that must know the epoch before the DataLoader starts iterating the sampler
        (:class:`~lplabel.torch.ReplayLoader`) calls it with ``claim=True``, and the sampler's next
        ``__iter__`` then serves that epoch without advancing again."""
        if self._claimed:
            self._claimed = claim
            return self.epoch
        if self._advance:
            self.epoch += 1
            self._start = self._yielded = self._iter_start = 0
        self._advance = True
        self._claimed = claim
        return self.epoch

    def epoch_steps(self, epoch: int | None = None) -> np.ndarray:
        """All ranks' stored-step positions of ``epoch`` (default: the current one), in order."""
        return self.schedule.steps(self.epoch if epoch is None else int(epoch))

    def share(self, epoch: int | None = None) -> np.ndarray:
        """This rank's stored-step positions of ``epoch``, in the order they are served."""
        epoch = self.epoch if epoch is None else int(epoch)
        if self._cache is not None and self._cache[0] == epoch:
            return self._cache[1]
        steps = self.schedule.steps(epoch)
        w = self.world_size
        if w > 1:
            n = len(steps)
            if self.uneven == "pad" and n % w:
                if n == 0:
                    raise ScheduleError(f"epoch {epoch} has no steps to share among {w} ranks", path=self.path)
                pad = w - n % w
                steps = np.concatenate([steps, np.resize(steps, pad)])
            elif self.uneven == "drop":
                steps = steps[: n - n % w]
                if len(steps) == 0:
                    raise ScheduleError(
                        f"epoch {epoch} has {n} steps, fewer than the {w} ranks (uneven='drop')",
                        path=self.path,
                        hint="use uneven='pad'",
                    )
            steps = steps[self.rank :: w]
        self._cache = (epoch, steps)
        return steps

    def _next(self):
        """(epoch, resume offset) of the next iteration."""
        if self._advance and not self._claimed:
            return self.epoch + 1, 0
        return self.epoch, self._start

    def steps_left(self) -> int:
        """Steps the next iteration serves (this rank's share of the epoch after the resume point)."""
        epoch, start = self._next()
        return max(len(self.share(epoch)) - start, 0)

    def __len__(self) -> int:
        """Items the next iteration yields: steps, or runs of ``steps_per_item`` steps."""
        epoch, start = self._next()
        n, g = len(self.share(epoch)), self.steps_per_item
        if start >= n:
            return 0
        return n - start if g == 1 else -(-n // g) - start // g

    def __iter__(self):
        epoch = self.begin_iteration()
        share = self.share(epoch)
        start = self._start
        self._start = 0  # the resume offset applies to one iteration only
        temp = float(self.temperature(epoch))
        self._yielded = self._iter_start = start
        n, g = len(share), self.steps_per_item
        if g == 1:
            for slot in range(start, n):
                self._yielded = slot + 1
                yield StepKey(int(share[slot]), epoch, slot, temp)
            return
        positions = share.tolist()
        slot = start
        while slot < n:
            end = min((slot // g + 1) * g, n)
            self._yielded = end
            yield StepGroupKey(tuple(positions[slot:end]), epoch, slot, temp)
            slot = end

    # -- resume ------------------------------------------------------------------------------------
    def state_dict(self, consumed: int | None = None, after: StepBatch | int | None = None) -> dict:
        """The resume state after this rank consumed ``consumed`` steps of the current epoch.

        ``after``: the last batch (or its ``slot``) the training loop finished; equivalent to
        ``consumed = after.slot + 1``. With neither, the number of steps this sampler handed out
        in the current iteration is used -- exact only with ``num_workers=0``, where the
        DataLoader does not fetch ahead, and one step per item (with ``steps_per_item > 1`` a
        group's steps are handed out together, so ``after`` or ``consumed`` is required
        mid-epoch).
        """
        if after is not None:
            slot = after.slot if isinstance(after, StepBatch) else int(after)
            if isinstance(after, StepBatch) and after.epoch != self.epoch:
                raise ValueError(f"batch is from epoch {after.epoch}, the sampler is at epoch {self.epoch}")
            consumed = slot + 1
        n = len(self.share())
        if consumed is None:
            if self.steps_per_item > 1 and self._yielded not in (self._iter_start, n):
                raise ValueError(
                    f"with steps_per_item={self.steps_per_item} the sampler hands out several steps at "
                    "once and cannot know how many of them the loop finished: pass after=batch or "
                    "consumed="
                )
            consumed = self._yielded
        consumed = int(consumed)
        if not 0 <= consumed <= n:
            raise ValueError(f"consumed={consumed} outside 0..{n} (this rank's steps in epoch {self.epoch})")
        return {
            "format": STATE_FORMAT,
            "store_id": self.store_id,
            "epoch": self.epoch,
            "consumed": consumed,
            "epoch_steps": n,
            "rank": self.rank,
            "world_size": self.world_size,
            "uneven": self.uneven,
            "schedule": self.schedule.describe(),
        }

    def load_state_dict(self, state: dict) -> None:
        """Continue from a :meth:`state_dict`; the next iteration starts at the first unconsumed step."""
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
            raise ResumeStateError(
                "not an lplabel sampler state",
                path=self.path,
                hint=f"expected a dict with format {STATE_FORMAT!r} from StepSampler.state_dict()",
            )
        if state.get("store_id") != self.store_id:
            raise ResumeStateError(
                f"the resume state belongs to store {state.get('store_id')!r}, this is store {self.store_id!r}",
                path=self.path,
                hint="resume with the label store the run started with",
            )
        mine = self.schedule.describe()
        theirs = state.get("schedule", {})
        diff = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
        if diff:
            raise ResumeStateError(
                "the resume state was made with a different reuse schedule ("
                + ", ".join(f"{k}: saved {theirs.get(k)!r}, now {mine.get(k)!r}" for k in diff)
                + ")",
                path=self.path,
                hint="build the sampler with the same reuse/seed/steps_per_epoch options",
            )
        for k in ("world_size", "uneven"):
            if state.get(k) != getattr(self, k):
                raise ResumeStateError(
                    f"the resume state was made with {k}={state.get(k)!r}, this sampler has {getattr(self, k)!r}",
                    path=self.path,
                    hint="mid-epoch resume needs the same world size; or resume at an epoch boundary "
                    "by calling set_epoch() without load_state_dict()",
                )
        if state.get("rank") != self.rank:
            raise ResumeStateError(
                f"the resume state is rank {state.get('rank')}'s, this is rank {self.rank}",
                path=self.path,
                hint="save and load one state per rank",
            )
        self.epoch = int(state["epoch"])
        self._cache = None
        n = len(self.share())
        consumed = int(state["consumed"])
        if not 0 <= consumed <= n or n != state.get("epoch_steps", n):
            raise ResumeStateError(
                f"the resume state's position {consumed}/{state.get('epoch_steps')} does not fit "
                f"epoch {self.epoch} ({n} steps on this rank)",
                path=self.path,
            )
        self._start = consumed
        self._yielded = consumed
        self._iter_start = consumed
        self._claimed = False
        # a complete epoch: without set_epoch, the next iteration starts the one after it
        self._advance = n > 0 and consumed >= n
