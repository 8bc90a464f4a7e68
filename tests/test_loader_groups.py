"""Grouped loader items (steps_per_item), shared-memory slabs, prefetch threads, the fused label reader.

Grouping and the transports change how steps travel, never what the loop receives: every test
here compares against one step per item, pickled, in-process.
"""

import gc
import math
import os
import pickle

import numpy as np
import pytest
import torch

from lplabel import StoreWriter, open_store
from lplabel.codecs import default_label_codecs, label_chain
from lplabel.codecs.bytes import Bytes
from lplabel.codecs.dense import Dense
from lplabel.codecs.zplanes import ZPlanes
from lplabel.errors import ChecksumError
from lplabel.torch import ReplayLoader, StepDataset, StepKey, StepSampler, lpqld_step
from lplabel.torch.fastread import LabelRows
from lplabel.torch.group import SlabPool, StepGroup, StepGroupKey
from lplabel.views import AugmentPolicy, plan_steps, steps_per_epoch

from loader_helpers import make_images, make_store
from test_loader import _corrupt_label_chunk


@pytest.fixture(scope="module")
def pruned(tmp_path_factory):
    return make_store(
        tmp_path_factory.mktemp("gpruned") / "pruned.lpl", epochs=10, keep=0.5, reuse="lpqld", batch_size=4, mix="mixup"
    )


@pytest.fixture(scope="module")
def topk(tmp_path_factory):
    return make_store(
        tmp_path_factory.mktemp("gtopk") / "topk.lpl", epochs=3, topk=4, tail="logsumexp", steps_per_chunk=3
    )


@pytest.fixture(scope="module")
def ragged(tmp_path_factory):
    # 24 images, 7 views per step, no drop_last: steps of 7, 7, 7 and 3 views
    return make_store(tmp_path_factory.mktemp("gragged") / "ragged.lpl", epochs=3, batch_size=7, steps_per_chunk=2)


def same(a, b) -> bool:
    """Every field of two StepBatch objects, values and dtypes."""
    if (
        a.position,
        a.epoch,
        a.slot,
        a.temperature,
        a.stored_epoch,
        a.stored_step,
        a.mix_kind,
        a.num_classes,
        a.label_format,
        a.recon_mode,
        a.tail_kind,
    ) != (
        b.position,
        b.epoch,
        b.slot,
        b.temperature,
        b.stored_epoch,
        b.stored_step,
        b.mix_kind,
        b.num_classes,
        b.label_format,
        b.recon_mode,
        b.tail_kind,
    ):
        return False
    if not (a.mix_lambda == b.mix_lambda or (math.isnan(a.mix_lambda) and math.isnan(b.mix_lambda))):
        return False

    def eq(x, y):
        if x is None or y is None:
            return x is None and y is None
        return x.dtype == y.dtype and x.shape == y.shape and torch.equal(x, y)

    for name in ("image_ids", "crop", "flip", "mix_partner", "target", "mix_box", "images", "probs"):
        if not eq(getattr(a, name), getattr(b, name)):
            return False
    if a.label.keys() != b.label.keys() or not all(eq(a.label[k], b.label[k]) for k in a.label):
        return False
    if (a.sparse is None) != (b.sparse is None):
        return False
    return a.sparse is None or all(eq(x, y) for x, y in zip(a.sparse[:3], b.sparse[:3]))


def run(loader, epochs):
    out = []
    for e in epochs:
        loader.set_epoch(e)
        out.append(list(loader))
    return out


def all_same(ref, got) -> bool:
    return [len(x) for x in ref] == [len(x) for x in got] and all(
        same(a, b) for ea, eb in zip(ref, got) for a, b in zip(ea, eb)
    )


REF = dict(steps_per_item=1, shared_memory=False, prefetch_threads=0)


# ------------------------------------------------------------------------------- identical batches
@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize(
    "which,labels", [("pruned", "dense"), ("topk", "sparse"), ("topk", "raw"), ("ragged", "dense")]
)
def test_grouped_items_give_the_same_batches(request, which, labels, workers):
    path, iset, *_ = request.getfixturevalue(which)
    kw = dict(labels=labels, temperature=lpqld_step())
    epochs = [0, 1, 2]
    ref = run(ReplayLoader(path, iset, **kw, **REF), epochs)
    extra = dict(num_workers=workers, persistent_workers=True) if workers else {}
    for g in (2, 3, 5):
        got = run(ReplayLoader(path, iset, steps_per_item=g, **kw, **extra), epochs)
        assert all_same(ref, got), g
    if which == "ragged":
        assert {len(b) for b in ref[0]} == {7, 3}


@pytest.mark.parametrize("workers", [0, 2])
def test_labels_only_groups_and_labels_on_device(topk, workers):
    path, *_ = topk
    ref = run(ReplayLoader(path, None, labels="sparse", temperature=2.0, **REF), [0, 1])
    got = run(
        ReplayLoader(
            path, None, labels="sparse", labels_on="device", temperature=2.0, steps_per_item=4, num_workers=workers
        ),
        [0, 1],
    )
    assert all_same(ref, got)


def test_groups_match_the_previous_single_step_items(topk):
    """A group of one and the StepKey path give the same StepBatch as decoding through the store."""
    path, iset, *_ = topk
    st = open_store(path)
    ds = StepDataset(path, iset, labels="dense", temperature=3.0)
    for pos in range(st.num_steps):
        b = ds[StepKey(pos, 1, 4, 3.0)]
        r = st.step_at(pos)
        assert b.image_ids.dtype == torch.int64 and b.image_ids.tolist() == r.image.tolist()
        assert torch.equal(b.crop, torch.from_numpy(r.crop.astype(np.float32)))
        assert b.label["indices"].dtype == torch.int32
        np.testing.assert_array_equal(b.label["indices"].numpy(), r.label["indices"])
        np.testing.assert_array_equal(b.label["values"].numpy(), r.label["values"])
        np.testing.assert_array_equal(b.label["tail"].numpy(), r.label["tail"])
        g = ds[StepGroupKey((pos, pos), 1, 4, 3.0)]
        assert isinstance(g, StepGroup) and len(g) == 2
        b0, b1 = g.batches()
        assert same(b, b0) and b1.slot == 5 and torch.equal(b1.probs, b.probs)


# ------------------------------------------------------------------------------- resume
@pytest.mark.parametrize("workers", [0, 2])
def test_resume_mid_group_is_exact(pruned, workers):
    path, iset, *_ = pruned
    kw = dict(temperature=lpqld_step(), num_workers=workers, steps_per_item=4, steps_per_epoch=14)
    ref = run(ReplayLoader(path, iset, **REF, temperature=lpqld_step(), steps_per_epoch=14), [5, 6])
    assert len(ref[0]) == 14
    lo = ReplayLoader(path, iset, **kw)
    lo.set_epoch(5)
    first = []
    for b in lo:
        first.append(b)
        if len(first) == 6:  # inside the second group of four
            state = lo.state_dict()
            break
    assert state["consumed"] == 6
    state = pickle.loads(pickle.dumps(state))
    for g in (4, 3, 1):  # resuming with another grouping serves the same steps
        lo2 = ReplayLoader(path, iset, **{**kw, "steps_per_item": g})
        lo2.load_state_dict(state)
        assert len(lo2) == len(ref[0]) - 6
        rest = run(lo2, [5, 6])
        assert all_same(ref, [first + rest[0], rest[1]]), g


def test_sampler_groups_and_plain_dataloader(pruned):
    path, iset, *_ = pruned
    s = StepSampler(path, steps_per_item=4, steps_per_epoch=14)
    s.set_epoch(2)
    flat = StepSampler(path, steps_per_epoch=14)
    flat.set_epoch(2)
    flat = list(flat)
    groups = list(s)
    assert len(s) == len(groups) == -(-len(flat) // 4)
    assert [p for g in groups for p in g.positions] == [k.position for k in flat]
    assert [g.slot for g in groups] == list(range(0, len(flat), 4))
    assert {g.temperature for g in groups} == {flat[0].temperature}
    # mid-epoch: handed out steps are not consumed steps
    s.set_epoch(3)
    it = iter(s)
    next(it)
    with pytest.raises(ValueError, match="after=batch"):
        s.state_dict()
    st = s.state_dict(consumed=6)
    s2 = StepSampler(path, steps_per_item=4, steps_per_epoch=14)
    s2.load_state_dict(st)
    n = len(s2.share())
    assert len(s2) == -(-n // 4) - 1 and s2.steps_left() == n - 6
    resumed = list(s2)
    assert resumed[0].slot == 6 and len(resumed[0].positions) == 2  # runs stay aligned to multiples of 4
    assert resumed[1].slot == 8
    # a stock DataLoader yields StepGroups; iterating them gives the steps
    for workers in (0, 2):
        sampler = StepSampler(path, steps_per_item=3, temperature=2.0)
        ds = StepDataset(path, iset, labels="dense")
        dl = torch.utils.data.DataLoader(ds, batch_size=None, sampler=sampler, num_workers=workers)
        sampler.set_epoch(1)
        got = [b for group in dl for b in group]
        ref_s = StepSampler(path, temperature=2.0)
        ref_s.set_epoch(1)
        ref = [ds[k] for k in ref_s]
        assert len(got) == len(ref) and all(same(a, b) for a, b in zip(ref, got))
        assert sampler.state_dict(after=got[4])["consumed"] == 5


# ------------------------------------------------------------------------------- shared-memory slabs
def test_slabs_carry_items_and_are_freed(topk):
    path, iset, *_ = topk
    lo = ReplayLoader(
        path, iset, labels="dense", temperature=2.0, num_workers=2, persistent_workers=True, steps_per_item=2
    )
    assert lo.pool is not None and lo.pool.count >= 2 * 2 + 2
    ref = run(ReplayLoader(path, iset, labels="dense", temperature=2.0, **REF), [0, 1])
    for rnd in range(2):
        got = []
        for e in (0, 1):
            lo.set_epoch(e)
            got.append([])
            for b in lo:
                got[-1].append(pickle.loads(pickle.dumps(b)))  # a private copy; the slab view dies here
        assert all_same(ref, got)
    assert lo.pool.received["slab"] > 0 and lo.pool.received["pickled"] == 0
    del b
    gc.collect()
    assert lo.pool.in_use() == 0  # every slab went back once its batches were collected


def test_slabs_exhausted_fall_back_to_pickling(topk):
    path, iset, *_ = topk
    ref = run(ReplayLoader(path, iset, labels="dense", temperature=2.0, **REF), range(6))
    lo = ReplayLoader(path, iset, labels="dense", temperature=2.0, num_workers=2, steps_per_item=1)
    got = run(lo, range(6))  # keeps all 18 batches alive: more than the pool's slabs
    assert all_same(ref, got)
    assert lo.pool.received["pickled"] > 0 and lo.pool.received["slab"] > 0
    assert lo.pool.in_use() == lo.pool.count
    del got
    gc.collect()
    assert lo.pool.in_use() == 0


def test_many_workers_shrink_items_instead_of_dropping_slabs(topk, monkeypatch):
    """With many workers x prefetch the 'auto' item shrinks so the slab pool fits its limit
    (it used to give up on slabs and pickle one step per item)."""
    import lplabel.torch.loader as L

    path, iset, *_ = topk
    lo = ReplayLoader(path, iset, labels="dense", num_workers=2, prefetch_factor=2)
    per_step = lo.dataset.item_nbytes(1)
    # a limit that fits the pool only with one step per item: 2 workers x 2 prefetch + 2 (+2)
    monkeypatch.setattr(L, "SLAB_POOL_LIMIT", per_step * (2 * 2 + 2 + 2) + 1)
    monkeypatch.setattr(L, "SLAB_ITEM_BYTES", per_step * 8)
    lo = ReplayLoader(path, iset, labels="dense", num_workers=2, prefetch_factor=2)
    assert lo.pool is not None and lo.steps_per_item == 1
    ref = run(ReplayLoader(path, iset, labels="dense", **REF), [0])
    assert all_same(ref, run(lo, [0]))


def test_no_slabs_for_spawned_workers_or_when_disabled(pruned):
    path, iset, *_ = pruned
    assert ReplayLoader(path, iset, num_workers=1, multiprocessing_context="spawn").pool is None
    assert ReplayLoader(path, iset, num_workers=1, shared_memory=False).pool is None
    assert ReplayLoader(path, iset, num_workers=0).pool is None
    ref = run(ReplayLoader(path, None, labels="raw", **REF), [3])
    got = run(
        ReplayLoader(path, None, labels="raw", num_workers=1, multiprocessing_context="spawn", steps_per_item=3), [3]
    )
    assert all_same(ref, got)


def _claim_and_exit(pool):
    assert pool.claim(10) is not None
    os._exit(0)


def test_slab_reclaim_after_a_dead_claimer():
    import multiprocessing

    pool = SlabPool(4096, 3)
    p = multiprocessing.get_context("fork").Process(target=_claim_and_exit, args=(pool,))
    p.start()
    p.join()
    assert pool.in_use() == 1
    k = pool.claim(10)  # this (live) process's claim is never reclaimed
    assert pool.reclaim() == 1 and pool.in_use() == 1
    pool.release(k)
    assert pool.claim(pool.slab_bytes + 1) is None
    with pytest.raises(TypeError):
        pickle.dumps(pool)


def test_group_pickles_by_value(topk):
    path, iset, *_ = topk
    ds = StepDataset(path, iset, labels="sparse", temperature=2.0)
    g = ds[StepGroupKey((0, 1, 2), 0, 0, 2.0)]
    g2 = pickle.loads(pickle.dumps(g))
    assert len(g2) == 3 and all(same(a, b) for a, b in zip(g.batches(), g2.batches()))


@pytest.mark.parametrize("persistent", [False, True])
def test_slabs_come_back_after_the_loop_breaks(pruned, persistent):
    """Leaving epochs early, again and again, never strands slabs: without persistent workers they
    are back as soon as the loop has left; with persistent workers once the next epoch starts
    (the DataLoader then receives the items decoded ahead). No item ever falls back to pickling."""
    path, *_ = pruned
    lo = ReplayLoader(
        path,
        None,
        labels="dense",
        temperature=2.0,
        num_workers=2,
        persistent_workers=persistent,
        prefetch_factor=2,
        steps_per_item=1,
        steps_per_epoch=12,
    )
    count = lo.pool.count
    ref = run(ReplayLoader(path, None, labels="dense", temperature=2.0, steps_per_epoch=12, **REF), [0])[0]
    for rnd in range(count + 2):  # more early exits than the pool has slabs
        for i, b in enumerate(lo):
            if i == 1:
                break
        del b
        gc.collect()
        if not persistent:
            assert lo.pool.in_use() == 0
    lo.set_epoch(0)  # each early exit began a new epoch (no set_epoch): serve epoch 0 again
    got = [pickle.loads(pickle.dumps(b)) for b in lo]  # a whole epoch after all that
    assert all(same(a, b) for a, b in zip(ref, got)) and len(got) == len(ref)
    assert lo.pool.received["pickled"] == 0
    del got
    gc.collect()
    assert lo.pool.in_use() == 0


def _slab_group(path):
    """A StepGroup decoded into a claimed slab of a fresh pool, as a forked worker makes it."""
    ds = StepDataset(path, None, labels="dense", temperature=2.0)
    layout, total = ds._layout(2, 2 * ds._max_views)
    pool = SlabPool(ds.item_nbytes(2), 2)
    k = pool.claim(total)
    pos = [0, 1]
    sizes = [int(ds._rs[p + 1] - ds._rs[p]) for p in pos]
    layout, total = ds._layout(2, sum(sizes))
    return ds._build(pos, sizes, 0, 0, 2.0, layout, total, pool.array(k), pool, k), pool


def test_a_slab_goes_back_when_pickling_fails(pruned):
    path, *_ = pruned
    g, pool = _slab_group(path)
    assert pool.in_use() == 1
    g.per_step["images"] = [np.zeros(3), np.zeros(3)]  # not tensors: pickling the group fails
    with pytest.raises(AttributeError):
        pickle.dumps(g)
    assert pool.in_use() == 0
    # decoded outside a slab: the slab is claimed while pickling, and given back as well
    g2, pool2 = _slab_group(path)
    pool2.release(g2._slab)
    g2._slab = None
    g2.per_step["images"] = [np.zeros(3), np.zeros(3)]
    with pytest.raises(AttributeError):
        pickle.dumps(g2)
    assert pool2.in_use() == 0
    # and a group that pickles is still sent through its slab
    g3, pool3 = _slab_group(path)
    assert pickle.loads(pickle.dumps(g3)).batches()[1].probs.shape[1] == 10


def _not_a_tensor(images):
    return images.numpy()


def test_worker_pickling_error_reaches_the_loop_and_frees_the_slab(pruned):
    path, iset, *_ = pruned
    lo = ReplayLoader(path, iset, num_workers=1, steps_per_item=2, transform=_not_a_tensor, timeout=60)
    assert lo.pool is not None
    with pytest.raises(AttributeError, match="while sending a StepGroup"):
        next(iter(lo))  # an error, not a hang (the worker's queue thread would drop the item)
    gc.collect()
    assert lo.pool.in_use() == 0


def test_dense_probs_in_row_blocks_are_bit_identical(ragged, monkeypatch):
    """Dense logits -> probabilities computed per decoded run of rows, in small row blocks (across
    step and chunk boundaries), equal probs_torch on each step's logits bit for bit."""
    import lplabel.torch.dataset as dsmod
    from lplabel.reconstruct import probs_torch

    path, *_ = ragged
    monkeypatch.setattr(dsmod, "PROBS_BLOCK_BYTES", 3 * 4 * 10)  # 3 rows of C=10 per block
    ds = StepDataset(path, None, labels="dense", temperature=3.3)
    n = ds.store.num_steps
    for g in (1, 3, n):
        grp = ds[StepGroupKey(tuple(range(n))[:g], 0, 0, 3.3)]
        for b in grp:
            want = probs_torch({"logits": b.label["logits"]}, 10, temperature=3.3)
            assert torch.equal(b.probs, want)


# ------------------------------------------------------------------------------- prefetch threads
def test_prefetch_threads_same_batches_and_errors(pruned, full_store, tmp_path):
    path, iset, *_ = pruned
    ref = run(ReplayLoader(path, iset, **REF), [1, 2])
    for g in (1, 3):
        got = run(ReplayLoader(path, iset, prefetch_threads=2, steps_per_item=g), [1, 2])
        assert all_same(ref, got)
    fpath, fiset, *_ = full_store
    bad = tmp_path / "bad.lpl"
    _corrupt_label_chunk(fpath, bad, chunk=4)
    lo = ReplayLoader(bad, fiset, prefetch_threads=1, steps_per_item=1)
    lo.set_epoch(1)
    with pytest.raises(ChecksumError) as ei:
        list(lo)
    assert ei.value.part.startswith("column 'label', chunk 4") and ei.value.path == str(bad)


@pytest.fixture(scope="module")
def full_store(tmp_path_factory):
    return make_store(tmp_path_factory.mktemp("gfull") / "full.lpl", epochs=3)


# ------------------------------------------------------------------------------- the fused label reader
def _write(path, codecs, num_classes=10, batch_size=8, steps_per_chunk=2):
    iset = make_images(num_classes=num_classes)
    policy = AugmentPolicy(output_size=16, mix="cutmix")
    spe = steps_per_epoch(len(iset), batch_size, False)
    pairs = [(e, s) for e in range(2) for s in range(spe)]
    rng = np.random.default_rng(3)
    with StoreWriter(
        path,
        num_classes=num_classes,
        images=iset,
        batch_size=batch_size,
        epochs=2,
        drop_last=False,
        augmentation=policy.to_json(),
        seed=1,
        label_codecs=codecs,
        steps_per_chunk=steps_per_chunk,
        overwrite=True,
    ) as w:
        for e, s, v in plan_steps(1, pairs, iset.sizes(), batch_size, policy, False):
            z = (rng.standard_normal((len(v), num_classes)) * 3).astype(np.float32)
            w.write_step(
                e,
                s,
                image=v.image,
                crop=v.crop,
                flip=v.flip,
                mix_partner=v.mix_partner,
                mix_lambda=v.mix_lambda,
                mix_box=v.mix_box,
                logits=z,
            )
    return path


CHAINS = {
    "dense fp16 (default)": (lambda: default_label_codecs("dense"), True),
    "dense fp32, shuffle 4": (lambda: label_chain(values="fp32"), True),
    "dense bf16": (lambda: label_chain(values="bf16"), True),
    "dense fp16 plain": (lambda: [Dense("float16"), Bytes()], True),
    "topk logsumexp tail": (lambda: default_label_codecs("topk", k=3, tail="logsumexp"), True),
    "topk int16 indices": (lambda: label_chain(k=4, index_coding="none", index_type="int16"), True),
    "topk uint8 indices, min tail": (
        lambda: label_chain(k=4, index_coding="none", index_type="uint8", tail="min"),
        True,
    ),
    "topk uint8 indices, k=3 (rows of odd length)": (
        lambda: label_chain(k=3, index_coding="none", index_type="uint8"),
        False,
    ),
    "topk int32 indices, bf16": (
        lambda: label_chain(k=4, index_coding="none", index_type="int32", values="bf16"),
        True,
    ),
    "topk value-delta": (lambda: label_chain(k=4), False),
    "topk int8 quantized": (lambda: label_chain(k=4, values="int8"), False),
    "topk zplanes": (lambda: label_chain(k=4, layout="planes", index_coding="none"), False),
    # zplanes with identity array codecs: the loader's planes fast path (rows.zplanes)
    "dense zplanes": (lambda: [Dense("float16"), ZPlanes(3)], False),
    "dense bf16 zplanes": (lambda: [Dense("bfloat16"), ZPlanes(3)], False),
    "topk zplanes int16": (lambda: label_chain(k=3, layout="planes", index_coding="none", index_type="int16"), False),
    "topk zplanes int32 bf16 min tail": (
        lambda: label_chain(k=4, layout="planes", index_coding="none", index_type="int32", values="bf16", tail="min"),
        False,
    ),
    "topk zplanes uint8": (lambda: label_chain(k=3, layout="planes", index_coding="none", index_type="uint8"), False),
}


@pytest.mark.parametrize("name", list(CHAINS))
def test_label_rows_match_the_codec_pipeline(tmp_path, name):
    make, fast = CHAINS[name]
    path = _write(tmp_path / "c.lpl", make())
    st = open_store(path)
    rows = LabelRows(st)
    assert rows.fast == fast
    pipe = st.pipelines["label"]
    assert rows.zplanes == (
        pipe.array_bytes.name == "zplanes" and all(c.name in ("dense", "topk") for c in pipe.array_array)
    )
    cs = st.tables["chunks/step_start"]
    rs = st.record_start
    for c in range(len(cs) - 1):
        n = int(rs[cs[c + 1]] - rs[cs[c]])
        want = pipe.decode(st.read_chunk_bytes("label", c), n)
        for a, b in ((0, n), (1, n - 2), (n - 1, n)):
            dests = {k: np.full((b - a, *shape), 7, dtype=dt) for k, (dt, shape, _) in rows.fields.items()}
            rows.read(c, a, b, dests)
            assert set(dests) == set(want)
            for k, v in want.items():
                got = dests[k]
                ref = np.asarray(v[a:b])
                if k == "indices":
                    assert got.dtype == np.int32
                    ref = ref.astype(np.int32)
                np.testing.assert_array_equal(
                    got.view(np.uint8) if got.dtype == bool else got, ref.view(np.uint8) if ref.dtype == bool else ref
                )
    # and the loader's batches hold exactly the stored rows
    ds = StepDataset(path, None, labels="raw")
    for pos in (0, st.num_steps - 1):
        r = st.step_at(pos).label
        b = ds[pos]
        for k, v in r.items():
            t = b.label[k]
            # step_at hands bfloat16 out widened to float32 (exact); torch keeps bfloat16
            got = t.float().numpy() if t.dtype == torch.bfloat16 else t.numpy()
            np.testing.assert_array_equal(got, np.asarray(v).astype(got.dtype) if k == "indices" else v)


# ------------------------------------------------------------------------------- probabilities in place
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_probs_into_matches_probs_torch_bit_for_bit(dtype):
    from lplabel.reconstruct import probs_torch
    from lplabel.torch.batch import probs_into

    g = torch.Generator().manual_seed(0)
    c, k, n = 50, 7, 9
    z = (torch.randn(n, c, generator=g) * 4).to(dtype)
    vals, idx = torch.topk(z.float(), k, dim=1)
    blocks = {
        "dense": ({"logits": z}, ("auto",)),
        "topk": ({"indices": idx.to(torch.int32), "values": vals.to(dtype)}, ("renorm",)),
        "topk+tail": (
            {"indices": idx.to(torch.int32), "values": vals.to(dtype), "tail": torch.logsumexp(z.float(), 1).to(dtype)},
            ("auto", "renorm", "tail", "uniform"),
        ),
    }
    for name, (block, modes) in blocks.items():
        for mode in modes:
            for tk in ("logsumexp", "min"):
                for t in (1.0, 3.7, 20.0):
                    want = probs_torch(block, c, temperature=t, mode=mode, tail_kind=tk)
                    out = torch.full((n, c), float("nan"))
                    got = probs_into(block, out, c, t, mode, tk)
                    assert got is out and torch.equal(got, want), (name, mode, tk, t)


def test_option_checks(pruned):
    path, iset, *_ = pruned
    for bad in (0, -1, 1.5, True, "many"):
        with pytest.raises(ValueError, match="steps_per_item"):
            ReplayLoader(path, iset, steps_per_item=bad)
    with pytest.raises(ValueError, match="steps_per_item"):
        StepSampler(path, steps_per_item=0)
    with pytest.raises(ValueError, match="shared_memory"):
        ReplayLoader(path, iset, shared_memory="yes")
    lo = ReplayLoader(path, None, labels="raw")
    assert 1 <= lo.steps_per_item <= 16 and len(lo) == len(lo.sampler.share())
