"""Which steps a relabel run computes, how they are cut into parts, and which rank owns which.

The *plan* is the ordered list of (epoch, step) pairs the run labels: every step of the schedule,
or, with ``keep < 1``, a seeded random subset (LPLD-style step pruning). Steps are identified by
their global id ``epoch * steps_per_epoch + step``; the plan is sorted by it.

The plan is cut into *parts* of ``steps_per_part`` consecutive plan entries: part ``j`` holds
``plan[j*K:(j+1)*K]``. A part is the unit of checkpointing (one small finished store in the work
directory) and of distribution (rank ``r`` of ``w`` computes the parts with ``j % w == r``). Part
boundaries depend only on the plan and ``K``, never on the number of ranks, so a run can be
resumed with a different number of processes and every split merges to the same store.
"""

from __future__ import annotations

import numpy as np

from .errors import RelabelError

#: Default views per part when ``steps_per_part`` is not given (about 32k records per part).
DEFAULT_VIEWS_PER_PART = 32768

#: Selection metrics the relabeler can apply before labelling (the others need the labels).
PLAN_METRICS = ("random", "order")


def make_plan(
    epochs: int,
    steps_per_epoch: int,
    keep: float | None = None,
    keep_seed: int = 0,
    reuse: str = "lpld",
    unit: str = "step",
    metric: str = "random",
) -> tuple[np.ndarray, dict | None]:
    """(sorted global step ids, header ``selection`` object or None) for a run.

    ``keep`` None: every step, no selection. Otherwise :func:`lplabel.selection.select_steps`
    chooses the steps (``unit`` step or epoch, ``metric`` random or order, seeded by
    ``keep_seed``) and its header object is recorded; only those steps are ever computed.
    """
    from ..selection import select_steps

    total = int(epochs) * int(steps_per_epoch)
    if keep is None:
        return np.arange(total, dtype=np.int64), None
    if metric not in PLAN_METRICS:
        raise RelabelError(
            f"selection metric {metric!r} needs the labels, so it cannot choose what to compute",
            hint="relabel every step, then prune the store (lplabel prune), or use random/order",
        )
    try:
        kept, selection = select_steps(
            epochs=int(epochs),
            steps_per_epoch=int(steps_per_epoch),
            keep=keep,
            unit=unit,
            metric=metric,
            seed=int(keep_seed),
            reuse=reuse,
        )
    except ValueError as e:
        raise RelabelError(f"invalid selection: {e}") from None
    ids = np.array([e * steps_per_epoch + s for e, s in kept], dtype=np.int64)
    return np.sort(ids), selection


def default_steps_per_part(batch_size: int) -> int:
    return max(1, -(-DEFAULT_VIEWS_PER_PART // int(batch_size)))


def num_parts(num_steps: int, steps_per_part: int) -> int:
    return -(-int(num_steps) // int(steps_per_part))


def part_ids(plan: np.ndarray, steps_per_part: int, part: int) -> np.ndarray:
    return plan[part * steps_per_part : (part + 1) * steps_per_part]


def owned_parts(n_parts: int, rank: int, world_size: int) -> list[int]:
    """Parts rank ``rank`` of ``world_size`` computes: ``j % world_size == rank`` (round robin)."""
    return list(range(int(rank), int(n_parts), int(world_size)))


def split_ids(ids: np.ndarray, steps_per_epoch: int) -> list[tuple[int, int]]:
    """Global step ids -> (epoch, step) pairs."""
    ids = np.asarray(ids, dtype=np.int64)
    return [(int(i // steps_per_epoch), int(i % steps_per_epoch)) for i in ids]


def rle_encode(ids: np.ndarray) -> list[list[int]]:
    """Sorted ids as ``[[start, length], ...]`` runs (compact for full plans)."""
    ids = np.asarray(ids, dtype=np.int64)
    if len(ids) == 0:
        return []
    breaks = np.flatnonzero(np.diff(ids) != 1) + 1
    starts = np.concatenate([[0], breaks])
    ends = np.concatenate([breaks, [len(ids)]])
    return [[int(ids[a]), int(b - a)] for a, b in zip(starts, ends)]


def rle_decode(runs) -> np.ndarray:
    if not runs:
        return np.zeros(0, dtype=np.int64)
    return np.concatenate([np.arange(int(s), int(s) + int(n), dtype=np.int64) for s, n in runs])
