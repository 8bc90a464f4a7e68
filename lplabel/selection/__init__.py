"""Record selection (pruning): which stored steps survive, and how training reuses them.

LPLD showed that keeping a random few percent of the relabelled steps, reused across training
epochs, costs almost no accuracy. This module decides *which* steps to keep and records the
decision as the store header's ``selection`` object::

    {"unit": "step" | "epoch",          # what is kept or dropped as a whole
     "metric": "random" | "order" | "entropy" | "margin",
     "keep": <fraction in (0, 1]>,      # of source_steps (unit step) or of the epochs (unit epoch)
     "seed": <int>,                     # seeds the random metric and the training reuse draws
     "source_steps": <int>,             # how many candidate steps the selection chose from
     "reuse": "lpld" | "lpqld"}         # the reuse schedule a loader follows (reuse_steps)

Metrics:

* ``random``: a uniformly random subset, ``rng.choice(n, n_keep, replace=False)`` sorted, with
  ``rng = numpy.random.Generator(PCG64(SeedSequence([seed, 0x5E1EC7])))`` (LPLD's random
  pruning; n = candidate steps, or epochs for unit epoch).
* ``order``: the first ``n_keep`` in (epoch, step) order (exactly LPLD's pool, a prefix of the
  generation order, which is also random since epochs are i.i.d. augmentation passes).
* ``entropy``: the steps (epochs) whose records have the highest mean entropy of softmax(z) at
  T=1 (the most uncertain, most informative labels); ties by earlier position.
* ``margin``: the lowest mean margin p_top1 − p_top2 at T=1 (again the most ambiguous).

``n_keep = clip(floor(keep * n + 0.5), 1, n)``. ``random`` and ``order`` need no labels, so a
relabeler calls :func:`select_steps` *before* running the teacher and computes only the kept
steps; ``entropy``/``margin`` take per-step ``scores`` (see :func:`step_scores`).

Reuse (:func:`reuse_steps`): training epoch e draws ``steps_per_epoch`` positions into the pool
of kept steps (ordered by (epoch, step)), from ``Generator(PCG64(SeedSequence([seed, e],
spawn_key=(2,))))``:

* ``lpld``: ``rng.integers(0, pool, steps_per_epoch)``, i.e. with replacement (LPLD's
  ``batch_to_epoch``);
* ``lpqld``: ``rng.permutation(pool)[:steps_per_epoch]``, a fresh draw without replacement each
  epoch (LPQLD's ``random.sample``); when the pool is smaller than an epoch, further independent
  permutations are appended until ``steps_per_epoch`` positions exist.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from ..errors import LplabelError

UNITS = ("step", "epoch")
METRICS = ("random", "order", "entropy", "margin")
LABEL_METRICS = ("entropy", "margin")
REUSE = ("lpld", "lpqld")
_SALT = 0x5E1EC7


class SelectionError(LplabelError):
    """A selection request that cannot be satisfied (bad fraction, unit, metric...)."""


def n_keep(keep: float, n: int) -> int:
    """How many of ``n`` candidates a fraction ``keep`` keeps (at least one)."""
    return int(min(max(math.floor(keep * n + 0.5), 1), n))


class KeepFractionError(SelectionError):
    """A --keep value that is not a fraction in (0, 1] (``0.025``, ``1/40`` or ``2.5%``)."""


_KEEP_HINT = "write a fraction in (0, 1]: 0.025, 1/40 or 2.5% all keep one step in 40"


def parse_keep(keep) -> float:
    """A keep fraction from a number or from text: ``0.025``, ``1/40`` or ``2.5%`` (all the same).

    Raises :class:`KeepFractionError` (named, with the accepted forms) for anything else: text
    that is no number, a zero denominator, NaN/inf, or a value outside (0, 1] (``40`` or
    ``250%`` is more than everything; to keep 1 step in 40 write ``1/40``).
    """
    if isinstance(keep, bool):
        raise KeepFractionError(f"keep must be a fraction, got {keep!r}", part="--keep", hint=_KEEP_HINT)
    text = str(keep).strip()
    try:
        if isinstance(keep, (int, float, np.integer, np.floating)):
            value = float(keep)
        elif text.endswith("%"):
            value = float(text[:-1].strip()) / 100.0
        elif "/" in text:
            num, _, den = text.partition("/")
            n, d = float(num.strip()), float(den.strip())
            if d == 0:
                raise KeepFractionError(f"keep {text!r} divides by zero", part="--keep", hint=_KEEP_HINT)
            value = n / d
        else:
            value = float(text)
    except ValueError:
        raise KeepFractionError(f"keep {text!r} is not a number", part="--keep", hint=_KEEP_HINT) from None
    if not math.isfinite(value):
        raise KeepFractionError(f"keep {text!r} is not a finite number", part="--keep", hint=_KEEP_HINT)
    if not 0.0 < value <= 1.0:
        plain = value > 1 and "%" not in text and "/" not in text
        raise KeepFractionError(
            f"keep {text!r} = {value:g} is not a fraction in (0, 1]",
            part="--keep",
            hint=f"to keep 1 step in {text}, write 1/{text}" if plain else _KEEP_HINT,
        )
    return value


def check_selection_args(keep, unit: str = "step", metric: str = "random", reuse: str = "lpld", seed=0) -> None:
    """Raise SelectionError for arguments no selection accepts (cheap; call before any work)."""
    parse_keep(keep)
    if unit not in UNITS:
        raise SelectionError(f"unknown selection unit {unit!r}", hint=f"choose one of {', '.join(UNITS)}")
    if metric not in METRICS:
        raise SelectionError(f"unknown selection metric {metric!r}", hint=f"choose one of {', '.join(METRICS)}")
    if reuse not in REUSE:
        raise SelectionError(f"unknown reuse schedule {reuse!r}", hint=f"choose one of {', '.join(REUSE)}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= int(seed) < 2**63:
        raise SelectionError(f"seed must be a non-negative integer, got {seed!r}")


def _rng(seed: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), _SALT])))


def select_steps(
    steps: Sequence[tuple[int, int]] | None = None,
    *,
    epochs: int | None = None,
    steps_per_epoch: int | None = None,
    keep: float,
    unit: str = "step",
    metric: str = "random",
    seed: int = 0,
    reuse: str = "lpld",
    scores=None,
):
    """Choose the steps to keep. Pure: same arguments, same answer.

    Candidates are ``steps`` (a sequence of (epoch, step), e.g. a store's stored steps) or, if
    None, every step of ``epochs`` x ``steps_per_epoch``. ``scores``: one number per candidate
    step (``entropy``/``margin`` metrics only; :func:`step_scores` computes them from labels).

    Returns ``(kept, selection)``: the kept (epoch, step) pairs in increasing order, and the
    header object described in the module doc.
    """
    check_selection_args(keep, unit, metric, reuse, seed)
    if steps is None:
        if epochs is None or steps_per_epoch is None or epochs < 1 or steps_per_epoch < 1:
            raise SelectionError("give the candidate steps, or epochs and steps_per_epoch (both >= 1)")
        cand = np.array([(e, s) for e in range(int(epochs)) for s in range(int(steps_per_epoch))], dtype=np.int64)
    else:
        cand = np.asarray(list(steps), dtype=np.int64).reshape(-1, 2)
    if len(cand) == 0:
        raise SelectionError("there are no steps to select from")
    order = np.lexsort((cand[:, 1], cand[:, 0]))
    if np.any(np.diff(order) != 1):  # keep the caller's scores aligned with sorted candidates
        cand = cand[order]
        if scores is not None:
            scores = np.asarray(scores)[order]
    if metric in LABEL_METRICS:
        if scores is None:
            raise SelectionError(
                f"metric {metric!r} needs the labels' scores",
                hint="compute them with lplabel.selection.step_scores, or use metric random",
            )
        scores = np.asarray(scores, dtype=np.float64).reshape(-1)
        if len(scores) != len(cand):
            raise SelectionError(f"{len(scores)} scores for {len(cand)} candidate steps")
        # higher = keep first: entropy high, margin low
        scores = scores if metric == "entropy" else -scores
    keep = float(keep)

    if unit == "step":
        units = np.arange(len(cand))
        unit_of = units
        unit_scores = scores
    else:
        units, unit_of = np.unique(cand[:, 0], return_inverse=True)
        unit_scores = None
        if scores is not None:
            unit_scores = np.bincount(unit_of, weights=scores) / np.bincount(unit_of)
    n = len(units)
    m = n_keep(keep, n)
    if metric == "random":
        chosen = np.sort(_rng(seed).choice(n, m, replace=False))
    elif metric == "order":
        chosen = np.arange(m)
    else:
        rank = np.lexsort((np.arange(n), -np.asarray(unit_scores)))
        chosen = np.sort(rank[:m])
    mask = np.isin(unit_of, chosen)
    kept = [(int(e), int(s)) for e, s in cand[mask]]
    selection = {
        "unit": unit,
        "metric": metric,
        "keep": keep,
        "seed": int(seed),
        "source_steps": int(len(cand)),
        "reuse": reuse,
    }
    return kept, selection


def step_scores(
    label_block: dict, num_classes: int, metric: str, *, mode: str = "auto", tail_kind: str = "logsumexp"
) -> float:
    """Mean entropy (nats) or mean top-1/top-2 probability margin of one step's records at T=1
    (top-k labels are reconstructed with ``mode``, see :mod:`lplabel.reconstruct`)."""
    from ..reconstruct import probs_numpy

    p = probs_numpy(label_block, num_classes, temperature=1.0, mode=mode, tail_kind=tail_kind).astype(np.float64)
    if metric == "entropy":
        with np.errstate(divide="ignore", invalid="ignore"):
            h = -np.where(p > 0, p * np.log(p), 0.0).sum(axis=1)
        return float(h.mean())
    if metric == "margin":
        top2 = np.partition(p, p.shape[1] - 2, axis=1)[:, -2:] if p.shape[1] >= 2 else np.c_[p, p]
        return float((top2[:, 1] - top2[:, 0]).mean())
    raise SelectionError(f"metric {metric!r} has no label score")


def reuse_steps(reuse: str, pool: int, steps_per_epoch: int, epoch: int, seed: int = 0) -> np.ndarray:
    """Positions (0..pool-1) of the stored steps training epoch ``epoch`` uses, in order."""
    if reuse not in REUSE:
        raise SelectionError(f"unknown reuse schedule {reuse!r}", hint=f"choose one of {', '.join(REUSE)}")
    if pool < 1 or steps_per_epoch < 1:
        raise SelectionError(f"reuse needs a non-empty pool and steps_per_epoch >= 1 (got {pool}, {steps_per_epoch})")
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), int(epoch)], spawn_key=(2,))))
    if reuse == "lpld":
        return rng.integers(0, pool, steps_per_epoch)
    parts, have = [], 0
    while have < steps_per_epoch:
        p = rng.permutation(pool)
        parts.append(p)
        have += pool
    return np.concatenate(parts)[:steps_per_epoch]
