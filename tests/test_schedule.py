"""Reuse schedules (epochs / LPLD / LPQLD / order) and temperature schedules."""

import math
import pickle

import numpy as np
import pytest

from lplabel import open_store
from lplabel.errors import ScheduleError
from lplabel.selection.schedule import Constant, Cosine, ReuseSchedule, StepDecay, as_temperature, lpqld_step

from loader_helpers import make_store


def _sched(n_steps=40, spe=10, epochs=None, selection=None, **kw):
    if epochs is None:
        step_epoch = np.zeros(n_steps, dtype=np.int64)
    else:
        step_epoch = np.repeat(np.arange(epochs), spe)
    return ReuseSchedule(
        step_epoch, np.full(len(step_epoch), 8), batch_size=8, steps_per_epoch=spe, selection=selection, **kw
    )


# ------------------------------------------------------------------------------- full stores
def test_epochs_mode_reads_stored_epoch_and_wraps():
    s = _sched(epochs=3, spe=4)
    assert s.reuse == "epochs"
    assert s.steps(0).tolist() == [0, 1, 2, 3]
    assert s.steps(2).tolist() == [8, 9, 10, 11]
    assert s.steps(3).tolist() == s.steps(0).tolist()  # wrap around modulo stored epochs
    assert s.steps(7).tolist() == s.steps(1).tolist()
    assert s.stored_epoch_of(5) == 2
    with pytest.raises(ScheduleError, match="beyond the 3 epochs"):
        _sched(epochs=3, spe=4, wrap=False).steps(3)
    with pytest.raises(ScheduleError):
        s.steps(-1)


def test_epochs_mode_shuffle_is_seeded_permutation():
    a = _sched(epochs=2, spe=10, shuffle=True, seed=3)
    b = _sched(epochs=2, spe=10, shuffle=True, seed=3)
    assert a.steps(1).tolist() == b.steps(1).tolist()
    assert sorted(a.steps(1).tolist()) == list(range(10, 20))
    assert a.steps(1).tolist() != list(range(10, 20))


def test_store_schedule_full_store(tmp_path):
    path, *_ = make_store(tmp_path / "f.lpl", epochs=3)
    st = open_store(path)
    s = ReuseSchedule.for_store(st)
    assert s.reuse == "epochs"
    with pytest.raises(ScheduleError, match="does not apply"):
        ReuseSchedule.for_store(st, steps_per_epoch=2)
    assert ReuseSchedule.for_store(st, steps_per_epoch=2, reuse="order").steps(1).tolist() == [2, 3]
    for e in range(6):
        pos = s.steps(e)
        assert set(st.step_epoch[pos].tolist()) == {e % 3}
        assert st.step_index[pos].tolist() == list(range(st.steps_per_epoch))


# ------------------------------------------------------------------------------- pruned stores
SEL = {"unit": "step", "metric": "random", "keep": 0.25, "seed": 11, "source_steps": 160, "reuse": "lpld"}


def test_lpld_draws_with_replacement_reproducibly():
    s = _sched(n_steps=40, spe=30, selection=SEL)
    assert s.reuse == "lpld" and s.seed == 11
    draws = [s.steps(e) for e in range(20)]
    assert all(len(d) == 30 and d.min() >= 0 and d.max() < 40 for d in draws)
    assert any(len(np.unique(d)) < len(d) for d in draws)  # with replacement: repeats happen
    assert not all(np.array_equal(draws[0], d) for d in draws[1:])  # fresh draw per epoch
    again = _sched(n_steps=40, spe=30, selection=SEL)
    assert all(np.array_equal(again.steps(e), draws[e]) for e in range(20))
    assert not np.array_equal(_sched(n_steps=40, spe=30, selection=SEL, seed=12).steps(0), draws[0])
    # the documented recipe
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([11, 4], spawn_key=(2,))))
    assert np.array_equal(draws[4], rng.integers(0, 40, size=30))
    # roughly uniform over the pool
    counts = np.bincount(np.concatenate(draws), minlength=40)
    assert counts.min() > 0


def test_lpqld_draws_without_replacement():
    sel = dict(SEL, reuse="lpqld")
    s = _sched(n_steps=40, spe=30, selection=sel)
    assert s.reuse == "lpqld"
    for e in range(10):
        d = s.steps(e)
        assert len(d) == 30 and len(np.unique(d)) == 30
    assert not np.array_equal(s.steps(0), s.steps(1))
    assert np.array_equal(s.steps(3), _sched(n_steps=40, spe=30, selection=sel).steps(3))
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([11, 3], spawn_key=(2,))))
    assert np.array_equal(s.steps(3), rng.permutation(40)[:30])
    # a pool smaller than an epoch: further permutations are appended
    d = _sched(n_steps=10, spe=25, selection=sel).steps(0)
    assert len(d) == 25 and sorted(d[:10].tolist()) == list(range(10)) and sorted(d[10:20].tolist()) == list(range(10))
    # one definition shared with lplabel.selection
    from lplabel.selection import reuse_steps

    assert np.array_equal(s.steps(7), reuse_steps("lpqld", 40, 30, 7, 11))


def test_order_mode_walks_pool():
    s = _sched(n_steps=10, spe=4, selection=SEL, reuse="order")
    assert s.steps(0).tolist() == [0, 1, 2, 3]
    assert s.steps(2).tolist() == [8, 9, 0, 1]


def test_full_steps_only_and_overrides():
    step_epoch = np.zeros(6, dtype=np.int64)
    counts = np.array([8, 8, 3, 8, 8, 3])
    s = ReuseSchedule(step_epoch, counts, batch_size=8, steps_per_epoch=20, selection=SEL, full_steps_only=True)
    assert set(np.unique(s.steps(0)).tolist()) <= {0, 1, 3, 4}
    with pytest.raises(ScheduleError, match="unknown reuse"):
        _sched(reuse="bogus")
    with pytest.raises(ScheduleError):
        _sched(seed=-1)


def test_pruned_store_schedule(tmp_path):
    path, *_ = make_store(tmp_path / "p.lpl", epochs=8, keep=0.3, reuse="lpqld")
    st = open_store(path)
    s = ReuseSchedule.for_store(st)
    assert s.reuse == "lpqld" and s.steps_per_epoch == st.steps_per_epoch
    d = s.steps(0)
    assert len(np.unique(d)) == len(d) == st.steps_per_epoch and d.max() < st.num_steps


def test_schedule_is_picklable():
    s = _sched(selection=SEL)
    assert np.array_equal(pickle.loads(pickle.dumps(s)).steps(5), s.steps(5))


# ------------------------------------------------------------------------------- temperatures
def test_lpqld_step_temperatures():
    t = lpqld_step()
    assert [t(e) for e in (0, 29, 30, 59, 60, 90)] == pytest.approx([20, 20, 14, 14, 9.8, 6.86])
    assert t(180) == pytest.approx(20 * 0.7**6) and t(210) == 2.0 and t(299) == 2.0
    assert lpqld_step(offset=1)(29) == pytest.approx(14.0)  # LPQLD counts epochs from 1
    assert StepDecay(10, 0.5, 1, 1.0)(5) == 1.0


def test_cosine_and_constant():
    c = Cosine(20.0, 1.0, 100)
    assert (
        c(0) == 20.0 and c(100) == pytest.approx(1.0) and c(50) == pytest.approx(10.5) and c(500) == pytest.approx(1.0)
    )
    assert Constant(4.0)(123) == 4.0
    assert as_temperature(3)(7) == 3.0
    f = lambda e: 1.0 + e  # noqa: E731
    assert as_temperature(f) is f
    with pytest.raises(ValueError):
        Constant(0)
    with pytest.raises(ValueError):
        Constant(math.inf)
    assert pickle.loads(pickle.dumps(lpqld_step()))(60) == pytest.approx(9.8)
