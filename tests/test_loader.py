"""The loader: exact replay, stock DataLoader at 0/2 workers (persistent too), DDP shares, resume, errors."""

import os
import pickle
import shutil
import warnings

import numpy as np
import pytest
import torch

from lplabel import open_store
from lplabel.errors import ChecksumError, ImageSetMismatchError, ScheduleError
from lplabel.reconstruct import probs_numpy
from lplabel.views.replay import render_step
from lplabel.torch import (
    LoaderWorkerError,
    ReplayLoader,
    ResumeStateError,
    StepDataset,
    StepKey,
    StepSampler,
    dense_logits,
    gvbsm_batch,
    legacy_batch,
    lpqld_batch,
    lpqld_step,
)
from lplabel.views import StepViews

from loader_helpers import batches_equal, make_images, make_store


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    return make_store(tmp_path_factory.mktemp("full") / "full.lpl", epochs=3)


@pytest.fixture(scope="module")
def topk(tmp_path_factory):
    return make_store(
        tmp_path_factory.mktemp("topk") / "topk.lpl", epochs=2, topk=4, tail="logsumexp", steps_per_chunk=2
    )


@pytest.fixture(scope="module")
def pruned(tmp_path_factory):
    return make_store(
        tmp_path_factory.mktemp("pruned") / "pruned.lpl", epochs=10, keep=0.3, reuse="lpld", batch_size=4, mix="mixup"
    )


def _stored_views(st, pos):
    r = st.step_at(pos)
    return StepViews(r.image, r.crop, r.flip, r.mix_partner, r.mix_lambda, r.mix_box)


# ------------------------------------------------------------------------------- exact replay
@pytest.mark.parametrize("which", ["full", "pruned"])
def test_item_is_exact_replay(which, request):
    path, iset, policy, logits = request.getfixturevalue(which)
    st = open_store(path)
    ds = StepDataset(path, iset, temperature=3.0)
    for pos in (0, st.num_steps - 1):
        b = ds[pos]
        ref = render_step(iset.images, _stored_views(st, pos), policy)
        assert torch.equal(b.images, ref)  # same pixels the teacher saw, mixing included
        z = logits[(b.stored_epoch, b.stored_step)]
        want = probs_numpy({"logits": z.astype(np.float16)}, 10, temperature=3.0)
        np.testing.assert_allclose(b.probs.numpy(), want, rtol=1e-5, atol=1e-7)
        assert b.target.tolist() == (iset.classes[b.image_ids.numpy()]).tolist()
        assert b.mix_kind == policy.mix and b.mixed


def test_topk_sparse_and_dense_agree(topk):
    path, iset, policy, logits = topk
    ds = StepDataset(path, iset, labels="sparse", temperature=2.0, mode="tail")
    b = ds[StepKey(3, 0, 0, 5.0)]
    assert b.temperature == 5.0  # the key's temperature wins over the dataset default
    assert b.sparse.indices.shape == (8, 4)
    torch.testing.assert_close(b.sparse.dense(), b.dense())
    torch.testing.assert_close(b.sparse.dense().sum(1), torch.ones(8))
    renorm = b.dense(mode="renorm")
    assert ((renorm > 0).sum(1) == 4).all()


def test_labels_only_mode(pruned):
    path, iset, policy, logits = pruned
    st = open_store(path)
    ds = StepDataset(path, None, labels="raw")
    b = ds[2]
    r = st.step_at(2)
    assert b.images is None and b.probs is None
    assert b.image_ids.tolist() == r.image.tolist() and torch.equal(b.crop, torch.from_numpy(r.crop))
    assert b.mix_partner.tolist() == r.mix_partner.tolist() and b.mix_lambda == r.mix_lambda
    np.testing.assert_array_equal(b.label["logits"].numpy(), r.label["logits"])
    assert b.dense(temperature=1.0).shape == (len(b), 10)


def test_uncached_configs_match_cached(topk):
    path, iset, *_ = topk
    a = StepDataset(path, iset, cache_configs=True)
    b = StepDataset(path, iset, cache_configs=False)
    for pos in range(open_store(path).num_steps):
        assert batches_equal(a[pos], b[pos])


def test_dataset_pickles_without_handles(full):
    path, iset, *_ = full
    ds = StepDataset(path, iset)
    ds[0]
    ds2 = pickle.loads(pickle.dumps(ds))
    assert ds2.store._fd is None
    assert batches_equal(ds[1], ds2[1])


# ------------------------------------------------------------------------------- DataLoader
def _run(loader, epochs):
    out = []
    for e in epochs:
        loader.set_epoch(e)
        out.append(list(loader))
    return out


def test_workers_0_and_2_and_persistent_identical(pruned):
    path, iset, *_ = pruned
    kw = dict(temperature=lpqld_step(), labels="dense")
    ref = _run(ReplayLoader(path, iset, num_workers=0, **kw), [0, 1])
    for extra in (dict(num_workers=2), dict(num_workers=2, persistent_workers=True, prefetch_factor=3)):
        got = _run(ReplayLoader(path, iset, **kw, **extra), [0, 1])
        assert [len(x) for x in got] == [len(x) for x in ref]
        assert all(batches_equal(a, b) for ea, eb in zip(ref, got) for a, b in zip(ea, eb))
    # epochs differ (fresh draws), slots count up, temperatures follow the schedule
    assert [b.position for b in ref[0]] != [b.position for b in ref[1]]
    assert [b.slot for b in ref[1]] == list(range(len(ref[1])))
    assert {b.temperature for b in ref[0]} == {20.0}


def test_stock_dataloader_with_sampler(full):
    path, iset, *_ = full
    ds = StepDataset(path, iset)
    sampler = StepSampler(path, temperature=4.0)
    dl = torch.utils.data.DataLoader(ds, batch_size=None, sampler=sampler, num_workers=0, pin_memory=False)
    sampler.set_epoch(4)  # beyond the 3 stored epochs: wraps to stored epoch 1
    got = list(dl)
    assert {b.stored_epoch for b in got} == {1} and [b.stored_step for b in got] == [0, 1, 2]
    assert all(b.temperature == 4.0 and b.epoch == 4 for b in got)


# ------------------------------------------------------------------------------- DDP
@pytest.mark.parametrize("world", [2, 3, 4])
def test_ddp_shares_disjoint_and_complete(pruned, world):
    path = pruned[0]
    whole = StepSampler(path).epoch_steps(3)
    shares = [StepSampler(path, rank=r, world_size=world, uneven="allow") for r in range(world)]
    for s in shares:
        s.set_epoch(3)
    keys = [list(s) for s in shares]  # one pass each: a second pass without set_epoch serves epoch 4
    slots = [[k.slot for k in ks] for ks in keys]
    pos = [[k.position for k in ks] for ks in keys]
    assert sorted(sum(pos, [])) == sorted(whole.tolist())  # complete (a multiset: LPLD repeats steps)
    # disjoint as slots of the epoch's list: rank r serves entries r, r+w, ...
    flat = sorted(r + world * j for r in range(world) for j in range(len(slots[r])))
    assert flat == list(range(len(whole)))
    padded = [len(StepSampler(path, rank=r, world_size=world).share(3)) for r in range(world)]
    assert len(set(padded)) == 1 and padded[0] == -(-len(whole) // world)
    dropped = [len(StepSampler(path, rank=r, world_size=world, uneven="drop").share(3)) for r in range(world)]
    assert len(set(dropped)) == 1 and dropped[0] == len(whole) // world


def test_ddp_full_store_whole_steps_go_to_one_rank(full):
    path, iset, *_ = full
    got = {}
    for r in range(2):
        lo = ReplayLoader(path, iset, rank=r, world_size=2, uneven="allow")
        lo.set_epoch(0)
        got[r] = [b.position for b in lo]
    assert sorted(got[0] + got[1]) == [0, 1, 2] and not set(got[0]) & set(got[1])


# ------------------------------------------------------------------------------- resume
@pytest.mark.parametrize("workers", [0, 2])
def test_resume_mid_epoch_equals_uninterrupted(pruned, workers):
    path, iset, *_ = pruned
    kw = dict(temperature=lpqld_step(), num_workers=workers)
    ref = _run(ReplayLoader(path, iset, **kw), [5, 6])
    lo = ReplayLoader(path, iset, **kw)
    lo.set_epoch(5)
    first = []
    for b in lo:
        first.append(b)
        if len(first) == 3:
            state = lo.state_dict()
            break
    assert state["consumed"] == 3 and state["epoch"] == 5
    state = pickle.loads(pickle.dumps(state))
    lo2 = ReplayLoader(path, iset, **kw)
    lo2.load_state_dict(state)
    assert len(lo2) == len(ref[0]) - 3
    rest = _run(lo2, [5, 6])
    assert all(batches_equal(a, b) for a, b in zip(first + rest[0], ref[0])) and len(first + rest[0]) == len(ref[0])
    assert all(batches_equal(a, b) for a, b in zip(rest[1], ref[1])) and len(rest[1]) == len(ref[1])


def test_sampler_state_after_batch(pruned):
    path, iset, *_ = pruned
    s = StepSampler(path)
    s.set_epoch(2)
    keys = list(s)
    st = s.state_dict(after=4)
    s2 = StepSampler(path)
    s2.load_state_dict(st)
    assert list(s2) == keys[5:]
    s2.set_epoch(2)
    assert list(s2) == keys  # the offset applies to one iteration only


def test_resume_refuses_other_store_or_schedule(pruned, full):
    state = StepSampler(pruned[0]).state_dict()
    with pytest.raises(ResumeStateError, match="belongs to store"):
        StepSampler(full[0]).load_state_dict(state)
    with pytest.raises(ResumeStateError, match="seed"):
        StepSampler(pruned[0], seed=99).load_state_dict(state)
    with pytest.raises(ResumeStateError, match="world_size"):
        StepSampler(pruned[0], rank=0, world_size=2).load_state_dict(state)
    with pytest.raises(ResumeStateError):
        StepSampler(pruned[0]).load_state_dict({"epoch": 1})


# ------------------------------------------------------------------------------- errors
def test_image_set_mismatch_refused(full):
    path, iset, *_ = full
    other = make_images(seed=1)
    with pytest.raises(ImageSetMismatchError) as ei:
        StepDataset(path, other)
    msg = str(ei.value)
    assert other.fingerprint[:16] in msg and iset.fingerprint[:16] in msg and "relabel" in msg
    with pytest.raises(ImageSetMismatchError, match="23 images"):
        StepDataset(path, iset.images[:23])
    reordered = iset.images[::-1].copy()
    with pytest.raises(ImageSetMismatchError):
        StepDataset(path, reordered)
    StepDataset(path, iset.images)  # the same pixels as a plain array pass
    StepDataset(path, other, check_images=False)


def test_unservable_epoch_is_a_schedule_error(full):
    s = StepSampler(full[0], wrap=False)
    s.set_epoch(3)
    with pytest.raises(ScheduleError, match="beyond"):
        list(s)


def _corrupt_label_chunk(src, dst, chunk):
    shutil.copy(src, dst)
    st = open_store(dst)
    seg, off, n = (int(v) for v in st.chunks["label"][chunk])
    base = st.segment_offsets["label"][seg][0]
    with open(dst, "r+b") as f:
        f.seek(base + off + n // 2)
        byte = f.read(1)
        f.seek(base + off + n // 2)
        f.write(bytes([byte[0] ^ 0xFF]))


def test_corrupted_chunk_raises_checksum_error_from_worker(full, tmp_path):
    path, iset, *_ = full
    bad = tmp_path / "bad.lpl"
    _corrupt_label_chunk(path, bad, chunk=4)  # epoch 1, step 1
    lo = ReplayLoader(bad, iset, num_workers=2)
    lo.set_epoch(0)
    assert len(list(lo)) == 3  # epoch 0 is intact
    lo.set_epoch(1)
    with pytest.raises(ChecksumError) as ei:
        list(lo)
    msg = str(ei.value)
    assert "chunk 4" in msg and "epoch 1 step 1" in msg and "bad.lpl" in msg
    with pytest.raises(ChecksumError) as ei:  # in-process: the original error, attributes intact
        StepDataset(bad, iset)[4]
    assert ei.value.part.startswith("column 'label', chunk 4") and ei.value.path == str(bad)


@pytest.mark.parametrize(
    "debug,extra",
    [
        (False, dict()),
        (True, dict()),
        (False, dict(persistent_workers=True, steps_per_item=1)),
        (False, dict(multiprocessing_context="spawn", steps_per_item=1)),
    ],
)
def test_worker_error_is_the_original_one_line_error(full, tmp_path, monkeypatch, debug, extra):
    """Issue 13 §2: an lplabel error in a worker reaches the loop as itself -- one line, path/part/hint
    set -- not as PyTorch's 29-line "Caught ... Original Traceback" wrapper; the worker's traceback is
    kept in ``worker_traceback`` and, under LPLABEL_DEBUG=1, chained as the cause."""
    path, iset, *_ = full
    bad = tmp_path / "bad.lpl"
    _corrupt_label_chunk(path, bad, chunk=4)  # epoch 1, step 1
    if debug:
        monkeypatch.setenv("LPLABEL_DEBUG", "1")
    else:
        monkeypatch.delenv("LPLABEL_DEBUG", raising=False)
    lo = ReplayLoader(bad, iset, num_workers=2, epoch=1, **extra)
    with pytest.raises(ChecksumError) as ei:
        list(lo)
    e = ei.value
    assert "\n" not in str(e) and "Caught" not in str(e) and "Traceback" not in str(e)
    assert str(e).startswith(f"{bad}: checksum mismatch [at column 'label', chunk 4 (epoch 1 step 1")
    assert e.path == str(bad) and e.part.startswith("column 'label', chunk 4") and "regenerate" in e.hint
    assert "DataLoader worker process" in e.worker_traceback and "read_chunk_bytes" in e.worker_traceback
    if debug:
        assert type(e.__cause__).__name__ == "WorkerTraceback" and "read_chunk_bytes" in str(e.__cause__)
    else:
        assert e.__cause__ is None and e.__suppress_context__
    lo.set_epoch(0)  # the loader still works afterwards (persistent workers included)
    assert len(list(lo)) == 3


def test_pytorch_wrapped_lplabel_error_is_unwrapped():
    """Errors raised in a worker outside the dataset (PyTorch's wrapper) are unwrapped too."""
    from torch._utils import ExceptionWrapper

    from lplabel.torch.loader import _unwrap

    try:
        raise ChecksumError("checksum mismatch", path="f.lpl", part="column 'label', chunk 2", hint="restore it")
    except ChecksumError:
        wrapped = ExceptionWrapper(where="in DataLoader worker process 0")
    with pytest.raises(ChecksumError) as ei:
        wrapped.reraise()
    assert len(str(ei.value).splitlines()) >= 4 and str(ei.value).startswith("Caught")  # what PyTorch makes of it
    got = _unwrap(ei.value)
    assert (
        type(got) is ChecksumError and str(got) == "f.lpl: checksum mismatch [at column 'label', chunk 2] -- restore it"
    )
    assert _unwrap(ChecksumError("plain")) is None and _unwrap(RuntimeError("Caught x")) is None


def test_worker_error_as_a_script_prints_one_error_line(full, tmp_path):
    """The uncaught error of a training script: its last stderr line is the named error, and no
    line of it comes from the worker (the DataLoader's own frames are absent)."""
    import subprocess
    import sys

    path, iset, *_ = full
    bad = tmp_path / "bad.lpl"
    _corrupt_label_chunk(path, bad, chunk=4)
    np.save(tmp_path / "imgs.npy", iset.images)
    script = (
        f"import numpy as np\nfrom lplabel.torch import ReplayLoader\n"
        f"lo = ReplayLoader({str(bad)!r}, np.load({str(tmp_path / 'imgs.npy')!r}), num_workers=1, epoch=1)\n"
        "for b in lo:\n    pass\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "LPLABEL_DEBUG"}
    env["PYTHONPATH"] = os.getcwd() + os.pathsep + env.get("PYTHONPATH", "")
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1 and lines[-1].startswith("lplabel.errors.ChecksumError: ") and "chunk 4" in lines[-1]
    assert "Caught ChecksumError" not in r.stderr and "_worker_loop" not in r.stderr


def _die(worker_id):
    # die a moment after starting: a worker that exits before the DataLoader has registered its pid
    # for the SIGCHLD check is only noticed at the next 5 s status check (a race in the test, not
    # in what it checks)
    import time

    time.sleep(0.2)
    os._exit(3)


def test_dead_worker_is_a_named_error(full):
    path, iset, *_ = full
    lo = ReplayLoader(path, iset, num_workers=1, worker_init_fn=_die)
    with pytest.raises(LoaderWorkerError, match="worker"):
        list(lo)


# ------------------------------------------------------------------------------- adapters
def test_legacy_and_lpqld_adapters(topk, full):
    path, iset, policy, logits = topk
    ds = StepDataset(path, iset, labels="raw", temperature=2.0, normalize="0-255")
    b = ds[1]
    images, target, mix_index, lam, bbox, soft = legacy_batch(b, fill="-inf", normalize=None)
    assert images.shape == (8, 3, 16, 16) and mix_index.dtype == torch.int64 and len(bbox) == 4
    torch.testing.assert_close(torch.softmax(soft / 2.0, 1), b.dense(mode="renorm"))
    torch.testing.assert_close(torch.softmax(dense_logits(b, "tail") / 2.0, 1), b.dense(mode="tail"))
    *_, values, indices = lpqld_batch(b, normalize=None)
    p = torch.zeros(8, 10).scatter_(1, indices, torch.softmax(values / 2.0, 1))
    torch.testing.assert_close(p, b.dense(mode="renorm"))
    # unmixed views + the legacy CutMix reproduce the mixed pixels
    raw = StepDataset(path, iset, apply_mix=False, normalize="0-255")[1]
    x = raw.images.clone()
    r0, c0, r1, c1 = bbox
    x[:, :, r0:r1, c0:c1] = x[mix_index, :, r0:r1, c0:c1]
    assert torch.equal(x, images)
    fb = StepDataset(full[0], full[1], normalize="0-255")[0]
    np.testing.assert_array_equal(legacy_batch(fb, normalize=None)[5].numpy(), fb.label["logits"].float().numpy())


IMAGENET = (torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))


def _tv_normalize(x01, mean, std):
    """torchvision's ToTensor + Normalize arithmetic (x/255 first, then (x - mean) / std)."""
    return (x01 - mean) / std


@pytest.mark.parametrize(
    "extra", [dict(num_workers=0), dict(num_workers=2, steps_per_item=2), dict(render_on="device")]
)
def test_normalize_in_workers(full, extra):
    """Issue 19.4: normalize= gives torchvision's convention from the workers; batch.pixels says which."""
    path, iset, *_ = full
    ref = _run(ReplayLoader(path, iset, normalize="0-255", epoch=1, **extra), [1])[0]
    assert {b.pixels for b in ref} == {"0-255"} and ref[0].images.max() > 200
    unit = _run(ReplayLoader(path, iset, normalize="0-1", **extra), [1])[0]
    net = _run(ReplayLoader(path, iset, normalize="imagenet", **extra), [1])[0]
    cifar = ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))
    own = _run(ReplayLoader(path, iset, normalize=cifar, **extra), [1])[0]
    m, s = torch.tensor(cifar[0]).view(1, 3, 1, 1), torch.tensor(cifar[1]).view(1, 3, 1, 1)
    for r, u, n, o in zip(ref, unit, net, own):
        assert (u.pixels, n.pixels, o.pixels) == ("0-1", "normalized", "normalized")
        assert torch.equal(u.images, r.images / 255)
        assert torch.equal(n.images, _tv_normalize(r.images / 255, *IMAGENET))
        assert torch.equal(o.images, _tv_normalize(r.images / 255, m, s))
        assert torch.equal(n.probs, r.probs)
    x = torch.cat([b.images for b in net])
    assert abs(float(x.mean())) < 1.0 and float(x.abs().max()) < 3.0  # not mean 455, max 1136


def test_pixels_warnings_and_adapters(full):
    path, iset, *_ = full
    with pytest.warns(UserWarning, match="0..255.*normalize='imagenet'"):
        lo = ReplayLoader(path, iset)
    b = next(iter(lo))
    assert b.pixels == "0-255"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ReplayLoader(path, iset, normalize="0-255")
        ReplayLoader(path, None)  # labels only: no images, no warning
        ReplayLoader(path, iset, transform=lambda x: x)  # the user's own conversion
        StepDataset(path, iset, normalize="0-1")
    # the adapters give the legacy loops normalised images whatever the loader was told, never twice
    with pytest.warns(UserWarning, match="legacy_batch: batch.images were float32 in 0..255"):
        auto = legacy_batch(b)[0]
    want = _tv_normalize(b.images / 255, *IMAGENET)
    assert torch.equal(auto, want) and b.images.max() > 200  # the batch itself is untouched
    nb = next(iter(ReplayLoader(path, iset, normalize="imagenet")))
    ub = next(iter(ReplayLoader(path, iset, normalize="0-1")))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert torch.equal(legacy_batch(nb)[0], want) and torch.equal(gvbsm_batch(nb)[0], want)
        assert legacy_batch(ub)[0] is ub.images  # 0..1 for a loop that normalises itself
        torch.testing.assert_close(legacy_batch(ub, normalize="imagenet")[0], want)
        assert torch.equal(legacy_batch(b, normalize="imagenet")[0], want)
    with pytest.raises(ValueError, match="already normalised"):
        legacy_batch(nb, normalize="imagenet")
    for bad in ("imagenet-ish", (124.0, 58.0), ((0.5, 0.5), (0.2, 0.0)), ((0.5, 0.5), (0.2,))):
        with pytest.raises(ValueError, match="normalize"):
            ReplayLoader(path, iset, normalize=bad)
    with pytest.raises(ValueError, match="2 channel statistics, the images have 3"):
        ReplayLoader(path, iset, normalize=((0.5, 0.5), (0.2, 0.2)))


# ------------------------------------------------------------------------------- device paths & inputs
def test_render_and_labels_on_device_match_worker_path(topk):
    path, iset, *_ = topk
    ref = _run(ReplayLoader(path, iset, labels="sparse", temperature=3.0), [1])[0]
    dev = _run(ReplayLoader(path, iset, labels="sparse", temperature=3.0, render_on="device", labels_on="device"), [1])[
        0
    ]
    assert len(ref) == len(dev)
    for a, b in zip(ref, dev):
        assert torch.equal(a.images, b.images)
        torch.testing.assert_close(a.sparse.values, b.sparse.values)
        assert torch.equal(a.sparse.indices, b.sparse.indices)


def test_pin_memory_request_is_harmless_without_accelerator(full):
    import warnings

    path, iset, *_ = full
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = _run(ReplayLoader(path, iset, pin_memory=True, num_workers=0), [0])[0]
    ref = _run(ReplayLoader(path, iset), [0])[0]
    assert all(batches_equal(a, b) for a, b in zip(got, ref))
    if torch.cuda.is_available():  # pragma: no cover - GPU machines only
        pinned = got[0].pin_memory()
        assert pinned.images.is_pinned() and pinned.label["logits"].is_pinned()
        on = pinned.to("cuda", non_blocking=True)
        torch.testing.assert_close(on.dense().cpu(), got[0].dense())


def test_image_folder_and_mixed_sizes(tmp_path):
    from PIL import Image

    from lplabel.datasets import load_image_folder

    rng = np.random.default_rng(3)
    root = tmp_path / "imgs"
    for c in range(2):
        (root / f"c{c}").mkdir(parents=True)
        for i in range(5):
            hw = (18 + i, 22 - i)
            Image.fromarray(rng.integers(0, 256, (*hw, 3), dtype=np.uint8)).save(root / f"c{c}" / f"{i}.png")
    iset = load_image_folder(root)
    path, iset, policy, _ = make_store(tmp_path / "f.lpl", iset, num_classes=2, batch_size=4, epochs=1, mix="mixup")
    a = StepDataset(path, root)[1]  # the folder path itself
    b = StepDataset(path, iset)[1]
    assert torch.equal(a.images, b.images)
    assert torch.equal(b.images, render_step(iset.images, _stored_views(open_store(path), 1), policy))


def test_end_to_end_with_relabeler_teacher_sees_the_same_pixels(tmp_path):
    """The strongest exactness check: the teacher applied to the loader's images gives the stored logits."""
    from lplabel.relabel import relabel

    torch.manual_seed(0)
    teacher = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(2), torch.nn.Flatten(), torch.nn.Linear(16, 10)
    ).eval()
    iset = make_images()
    out = relabel(
        iset,
        teacher,
        tmp_path / "r.lpl",
        epochs=4,
        batch_size=8,
        size=16,
        mix="cutmix",
        keep=0.5,
        reuse="lpqld",
        values="fp32",
        device="cpu",
        progress=False,
    )
    lo = ReplayLoader(out, iset, labels="raw", num_workers=0)
    assert lo.sampler.schedule.reuse == "lpqld"
    lo.set_epoch(7)
    n = 0
    with torch.no_grad():
        for b in lo:
            torch.testing.assert_close(teacher(b.images), b.label["logits"], rtol=1e-5, atol=1e-5)
            n += 1
    assert n == len(lo.sampler.share(7)) > 0


def test_rank_and_world_default_from_torch_distributed(pruned, tmp_path):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        s = StepSampler(pruned[0])
        assert (s.rank, s.world_size) == (0, 1)
    finally:
        dist.destroy_process_group()


def test_unmixed_store(tmp_path):
    path, iset, policy, logits = make_store(tmp_path / "n.lpl", mix="none", epochs=1)
    b = StepDataset(path, iset)[0]
    assert not b.mixed and b.mix_kind == "none" and (b.mix_partner == -1).all()
    assert legacy_batch(b)[2:5] == (None, None, None)
    assert torch.equal(b.images, render_step(iset.images, _stored_views(open_store(path), 0), policy))


def test_spawned_workers(pruned):
    path, iset, *_ = pruned
    ref = _run(ReplayLoader(path, iset, labels="raw"), [3])[0]
    got = _run(ReplayLoader(path, iset, labels="raw", num_workers=1, multiprocessing_context="spawn"), [3])[0]
    assert len(got) == len(ref) and all(batches_equal(a, b) for a, b in zip(got, ref))


# ------------------------------------------------------------------------------- epochs without set_epoch
def _epochs_of(passes):
    return [sorted({b.epoch for b in p}) for p in passes]


@pytest.mark.parametrize(
    "extra", [dict(num_workers=0), dict(num_workers=2), dict(num_workers=2, persistent_workers=True, steps_per_item=2)]
)
def test_forgotten_set_epoch_advances_each_pass(pruned, extra):
    """Issue 19.3: a loop that never calls set_epoch sees epochs 0, 1, 2 (fresh LPLD draws), exactly the
    batches an explicit set_epoch(0..2) gives -- not epoch 0 three times."""
    path, iset, *_ = pruned
    kw = dict(temperature=lpqld_step(), **extra)
    ref = _run(ReplayLoader(path, iset, **kw), [0, 1, 2])
    lo = ReplayLoader(path, iset, **kw)
    lens, got = [], []
    for _ in range(3):
        lens.append(len(lo))
        got.append(list(lo))
    assert _epochs_of(got) == [[0], [1], [2]] and lens == [len(p) for p in ref]
    assert all(len(a) == len(b) and all(batches_equal(x, y) for x, y in zip(a, b)) for a, b in zip(got, ref))
    assert [b.position for b in got[0]] != [b.position for b in got[1]]  # the draws differ per epoch


def test_set_epoch_stays_authoritative(pruned):
    path, iset, *_ = pruned
    lo = ReplayLoader(path, iset, epoch=3)
    first = list(lo)
    lo.set_epoch(7)
    seven = list(lo)
    after = list(lo)  # no set_epoch: the epoch after 7
    lo.set_epoch(7)
    again = list(lo)
    assert _epochs_of([first, seven, after, again]) == [[3], [7], [8], [7]]
    assert all(batches_equal(a, b) for a, b in zip(seven, again)) and len(seven) == len(again)
    # leaving a pass early still counts as a pass (the next one is a new epoch)
    lo.set_epoch(1)
    for b in lo:
        break
    assert b.epoch == 1 and {x.epoch for x in lo} == {2}


def test_plain_sampler_advances_without_set_epoch(full):
    path, iset, *_ = full
    sampler = StepSampler(path, temperature=2.0)
    dl = torch.utils.data.DataLoader(StepDataset(path, iset), batch_size=None, sampler=sampler)
    got = [[(b.epoch, b.stored_epoch) for b in dl] for _ in range(4)]
    assert got == [[(e, e % 3)] * 3 for e in range(4)]  # the 3 stored epochs, then a wrap


@pytest.mark.parametrize("workers", [0, 2])
def test_resume_without_set_epoch(pruned, workers):
    """Saved mid-epoch in a loop without set_epoch, the state resumes that epoch, then the loop goes on
    with the next ones; a state saved at the end of an epoch starts the next epoch."""
    path, iset, *_ = pruned
    kw = dict(temperature=lpqld_step(), num_workers=workers)
    ref = _run(ReplayLoader(path, iset, **kw), [0, 1, 2])
    lo = ReplayLoader(path, iset, **kw)
    list(lo)  # epoch 0
    for i, b in enumerate(lo):  # epoch 1, interrupted after 2 steps
        if i == 1:
            state = lo.state_dict()
            break
    assert (state["epoch"], state["consumed"]) == (1, 2)
    lo2 = ReplayLoader(path, iset, **kw)
    lo2.load_state_dict(state)
    rest, nxt = list(lo2), list(lo2)
    assert len(rest) == len(ref[1]) - 2 and all(batches_equal(a, b) for a, b in zip(rest, ref[1][2:]))
    assert len(nxt) == len(ref[2]) and all(batches_equal(a, b) for a, b in zip(nxt, ref[2]))
    done = lo2.state_dict()  # after a complete epoch 2
    assert (done["epoch"], done["consumed"]) == (2, len(ref[2]))
    lo3 = ReplayLoader(path, iset, **kw)
    lo3.load_state_dict(done)
    assert len(lo3) == len(ref[2]) and {b.epoch for b in lo3} == {3}


# ------------------------------------------------------------------------------- issue 19.13: loader bits
def test_default_temperature_warns_when_the_method_implies_another(pruned, full, tmp_path):
    from lplabel.interop import import_legacy, synth

    with pytest.warns(UserWarning, match=r"temperature defaults to 1.0.*pruned for LPLD.*temperature=20.0"):
        lo = ReplayLoader(pruned[0], None)
    assert {b.temperature for b in lo} == {1.0}  # the default itself is unchanged
    with pytest.warns(UserWarning, match="temperature defaults to 1.0"):
        StepSampler(pruned[0])
    lq = make_store(tmp_path / "q.lpl", epochs=4, keep=0.5, reuse="lpqld", batch_size=4)[0]
    with pytest.warns(UserWarning, match=r"LPQLD.*lpqld_step\(offset=1\)"):
        ReplayLoader(lq, None)
    src = synth.write_batches(
        tmp_path / "sre2l",
        "sre2l",
        num_images=12,
        batch_size=4,
        epochs=2,
        num_classes=10,
        input_size=16,
        image_size=(20, 20),
    )
    import_legacy(src, tmp_path / "s.lpl", progress=False)
    with pytest.warns(UserWarning, match=r"SRe2L/CDA labels.*-T 20.*temperature=20.0"):
        ReplayLoader(tmp_path / "s.lpl", None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ReplayLoader(pruned[0], None, temperature=1.0)  # chosen: silent
        ReplayLoader(tmp_path / "s.lpl", None, temperature=20.0)
        ReplayLoader(full[0], None)  # a relabelled full store implies nothing
        StepSampler(full[0])


def test_cuda_device_without_cuda_is_a_named_error_at_construction(full, monkeypatch):
    from lplabel.torch import DeviceUnavailableError

    path, iset, *_ = full
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for dev in ("cuda", "cuda:1", torch.device("cuda")):
        with pytest.raises(DeviceUnavailableError) as ei:
            ReplayLoader(path, iset, device=dev, normalize="0-255")
        msg = str(ei.value)
        assert "\n" not in msg and "CUDA" in msg and "device='cpu'" in msg and "ReplayLoader(device=)" in msg
    with pytest.raises(DeviceUnavailableError, match="not a device"):
        ReplayLoader(path, iset, device="gpu0", normalize="0-255")
    assert ReplayLoader(path, iset, device="cpu", normalize="0-255").device == torch.device("cpu")


def test_imageset_repr_is_short():
    from lplabel import ImageSet

    iset = make_images(n=24, hw=(20, 20))
    assert repr(iset) == "ImageSet(24 images, 20x20x3 uint8, 10 classes, keys 'img0'..'img23')"
    fp = iset.fingerprint
    assert repr(iset).endswith(f", fingerprint {fp[:12]})")
    mixed = ImageSet([np.zeros((20, 30, 3), np.uint8), np.zeros((40, 32, 3), np.uint8)], [-1, -1], ["a", "b"])
    assert repr(mixed) == "ImageSet(2 images, 20x30..40x32x3 uint8, classes unknown, keys 'a'..'b')"
    big = ImageSet(np.zeros((5000, 64, 64, 3), np.uint8), np.arange(5000) % 200, [str(i) for i in range(5000)])
    assert len(repr(big)) < 100


def test_sampler_next_epoch(pruned):
    s = StepSampler(pruned[0], temperature=1.0, epoch=2)
    assert (s.epoch, s.next_epoch) == (2, 2)
    list(s)
    assert (s.epoch, s.next_epoch) == (2, 3)
    s.set_epoch(9)
    assert s.next_epoch == 9 and {k.epoch for k in s} == {9} and s.next_epoch == 10
