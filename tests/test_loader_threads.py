"""Torch threads per process (``ReplayLoader(threads=)``, issue 19): workers 1 thread each, the main
process the plan of :mod:`lplabel.threads` while it iterates, the user's choice kept and restored."""

import multiprocessing

import pytest
import torch

from lplabel.threads import WORKER_THREADS, available_cores
from lplabel.torch import ReplayLoader

from loader_helpers import make_store


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return make_store(tmp_path_factory.mktemp("threads") / "s.lpl", epochs=2, batch_size=4)[0]


@pytest.fixture
def keep_threads():
    old = torch.get_num_threads()
    yield
    torch.set_num_threads(old)


_SEEN = multiprocessing.get_context("fork").Array("i", [-1, -1])


def _record(worker_id):
    _SEEN[worker_id] = torch.get_num_threads()


def test_workers_run_one_thread_and_the_users_init_still_runs(store, keep_threads):
    torch.set_num_threads(2)  # what a forked worker would inherit
    _SEEN[:] = [-1, -1]
    lo = ReplayLoader(
        store,
        None,
        temperature=2.0,
        num_workers=2,
        worker_init_fn=_record,
        multiprocessing_context="fork",
        reuse="order",
        steps_per_epoch=4,
    )
    assert len(list(lo)) == 4
    assert list(_SEEN) == [WORKER_THREADS, WORKER_THREADS] == [1, 1]


def test_an_explicit_count_is_used_while_iterating_and_restored_after(store, keep_threads):
    torch.set_num_threads(2)
    lo = ReplayLoader(store, None, temperature=2.0, threads=1, reuse="order", steps_per_epoch=4)
    assert lo.thread_plan.main == 1 and lo.thread_plan.reason == "as requested"
    seen = [torch.get_num_threads() for _ in lo]
    assert seen == [1] * 4 and torch.get_num_threads() == 2
    for i, _ in enumerate(lo):  # leaving early restores as well
        assert torch.get_num_threads() == 1
        break
    assert torch.get_num_threads() == 2


def test_auto_plans_the_cores_the_workers_leave(store, keep_threads, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    torch.set_num_threads(available_cores())  # torch's default: the plan applies
    lo = ReplayLoader(store, None, temperature=2.0, num_workers=2, reuse="order", steps_per_epoch=4)
    plan = lo.thread_plan
    assert plan.worker == 1 and plan.cores == available_cores()
    assert 1 <= plan.main <= max(1, available_cores() - 2) and "2 workers with 1 each" in plan.reason
    assert {torch.get_num_threads() for _ in lo} == {plan.main}
    lo0 = ReplayLoader(store, None, temperature=2.0, reuse="order", steps_per_epoch=4)
    assert 1 <= lo0.thread_plan.main <= available_cores() and "worker" not in lo0.thread_plan.reason


def test_auto_keeps_a_count_the_user_set(store, keep_threads, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    torch.set_num_threads(available_cores() + 1)
    lo = ReplayLoader(store, None, temperature=2.0, reuse="order", steps_per_epoch=4)
    assert lo.thread_plan.main == available_cores() + 1 and "set by the user" in lo.thread_plan.reason
    assert {torch.get_num_threads() for _ in lo} == {available_cores() + 1}
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
    lo = ReplayLoader(store, None, temperature=2.0, reuse="order", steps_per_epoch=4)
    assert lo.thread_plan.main == 1 and "OMP_NUM_THREADS=1" in lo.thread_plan.reason


def test_none_leaves_torch_alone(store, keep_threads):
    torch.set_num_threads(3)
    lo = ReplayLoader(store, None, temperature=2.0, threads=None, reuse="order", steps_per_epoch=4)
    assert {torch.get_num_threads() for _ in lo} == {3}


@pytest.mark.parametrize("bad", [0, -1, "many", 1.5, True])
def test_bad_thread_counts_are_refused(store, bad):
    with pytest.raises(ValueError, match="threads must be"):
        ReplayLoader(store, None, temperature=2.0, threads=bad)
