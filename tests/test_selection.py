"""Record selection: determinism, counts, metrics, the header object, reuse schedules."""

from __future__ import annotations

import numpy as np
import pytest

from lplabel.selection import SelectionError, n_keep, reuse_steps, select_steps, step_scores


def test_random_selection_is_deterministic_and_sized():
    a, sel = select_steps(epochs=10, steps_per_epoch=7, keep=0.25, seed=3)
    b, _ = select_steps(epochs=10, steps_per_epoch=7, keep=0.25, seed=3)
    c, _ = select_steps(epochs=10, steps_per_epoch=7, keep=0.25, seed=4)
    assert a == b and a != c
    assert len(a) == 18 == n_keep(0.25, 70)
    assert a == sorted(a) and len(set(a)) == len(a)
    assert sel == {"unit": "step", "metric": "random", "keep": 0.25, "seed": 3, "source_steps": 70, "reuse": "lpld"}


def test_candidates_given_explicitly_match_grid_and_subsets_are_stable():
    grid = [(e, s) for e in range(4) for s in range(5)]
    a, _ = select_steps(grid, keep=0.5, seed=1)
    b, _ = select_steps(epochs=4, steps_per_epoch=5, keep=0.5, seed=1)
    assert a == b
    shuffled = list(reversed(grid))
    assert select_steps(shuffled, keep=0.5, seed=1)[0] == a


def test_order_and_epoch_units():
    kept, sel = select_steps(epochs=10, steps_per_epoch=4, keep=0.2, metric="order")
    assert kept == [(0, s) for s in range(4)] + [(1, s) for s in range(4)]
    kept, sel = select_steps(epochs=10, steps_per_epoch=4, keep=0.3, unit="epoch", seed=5, reuse="lpqld")
    epochs = sorted({e for e, _ in kept})
    assert len(epochs) == 3 and len(kept) == 12 and sel["unit"] == "epoch" and sel["reuse"] == "lpqld"
    assert kept == [(e, s) for e in epochs for s in range(4)]


def test_label_metrics_pick_uncertain_steps():
    steps = [(0, 0), (0, 1), (0, 2), (0, 3)]
    scores = [0.1, 2.0, 1.0, 0.5]
    kept, _ = select_steps(steps, keep=0.5, metric="entropy", scores=scores)
    assert kept == [(0, 1), (0, 2)]
    kept, _ = select_steps(steps, keep=0.5, metric="margin", scores=scores)
    assert kept == [(0, 0), (0, 3)]
    # entropy of uniform labels is log C, margin 0
    z = np.zeros((3, 8), np.float32)
    assert step_scores({"logits": z}, 8, "entropy") == pytest.approx(np.log(8))
    assert step_scores({"logits": z}, 8, "margin") == pytest.approx(0.0)
    sharp = np.zeros((2, 8), np.float32)
    sharp[:, 0] = 50
    assert step_scores({"logits": sharp}, 8, "margin") == pytest.approx(1.0)
    with pytest.raises(SelectionError, match="scores"):
        select_steps(steps, keep=0.5, metric="entropy")


@pytest.mark.parametrize(
    "kw",
    [
        dict(keep=0),
        dict(keep=1.5),
        dict(keep=-0.1),
        dict(keep="x"),
        dict(keep=float("nan")),
        dict(keep=0.5, unit="batch"),
        dict(keep=0.5, metric="el2n"),
        dict(keep=0.5, reuse="fkd"),
        dict(keep=0.5, seed=-1),
    ],
)
def test_bad_arguments(kw):
    with pytest.raises(SelectionError):
        select_steps(epochs=2, steps_per_epoch=2, **kw)


def test_keep_one_keeps_all_and_tiny_keeps_one():
    assert len(select_steps(epochs=3, steps_per_epoch=3, keep=1.0)[0]) == 9
    assert len(select_steps(epochs=3, steps_per_epoch=3, keep=1e-6)[0]) == 1


def test_reuse_schedules():
    a = reuse_steps("lpld", 10, 7, epoch=3, seed=1)
    assert np.array_equal(a, reuse_steps("lpld", 10, 7, epoch=3, seed=1))
    assert a.min() >= 0 and a.max() < 10 and len(a) == 7
    b = reuse_steps("lpqld", 10, 7, epoch=3, seed=1)
    assert len(set(b.tolist())) == 7  # without replacement within an epoch
    assert not np.array_equal(b, reuse_steps("lpqld", 10, 7, epoch=4, seed=1))
    c = reuse_steps("lpqld", 3, 7, epoch=0, seed=0)  # pool smaller than an epoch: whole passes
    assert sorted(c[:3].tolist()) == [0, 1, 2] and sorted(c[3:6].tolist()) == [0, 1, 2] and len(c) == 7
    draws = np.concatenate([reuse_steps("lpld", 5, 50, epoch=e) for e in range(4)])
    assert len(np.unique(draws)) == 5
    with pytest.raises(SelectionError):
        reuse_steps("lpld", 0, 5, 0)
