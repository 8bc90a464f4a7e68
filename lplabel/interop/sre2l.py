"""SRe2L / CDA: ``epoch_<e>/batch_<b>.tar``, image order given only by a seeded sampler.

SRe2L's relabel script iterates ``DataLoader(sampler=RandomSampler(dataset,
generator=torch.Generator().manual_seed(fkd_seed)), batch_size=B)`` once per epoch; its training
script rebuilds the order the same way (``get_img2batch_idx_list``: ``RandomSampler`` +
``BatchSampler(B, drop_last=False)`` on ``TensorDataset(arange(N))``). The files do not store
the order, so the importer replays it (:func:`sampler_order`) or reads an explicit order file.

Replay and PyTorch versions (see docs/interop.md):

* ``"torch>=1.11"`` (default): each epoch draws ``randperm(N)`` and then a second, discarded
  ``randperm(N)`` (``RandomSampler.__iter__`` yields ``randperm(n)[:num_samples % n]`` after the
  full permutations, since PyTorch 1.11, pytorch/pytorch#71568). This is what the installed
  torch 2.13 does; tests check the replay against ``RandomSampler`` + ``BatchSampler`` and
  against golden values.
* ``"torch<1.11"`` (PyTorch 1.6-1.10): one ``randperm(N)`` per epoch. Epoch 0 is the same in both;
  later epochs differ.

Both assume ``torch.randperm`` on CPU with a ``torch.Generator`` gives the same sequence as in
the generating environment (Mersenne Twister + the CPU randperm kernel). When in doubt, write
the order with the original environment into an LPLD-style JSON (``{"<epoch>": [indices]}``)
and pass it as ``order=``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .batches import BatchPlan, load_batch
from .common import scan_epoch_dirs
from .errors import LegacyFormatError
from .jsonlists import JsonIntLists

REPLAY_MODES = ("torch>=1.11", "torch<1.11")


def sampler_order(num_images: int, epochs: int, seed: int = 42, mode: str = "torch>=1.11"):
    """Yield, for each epoch, the image order SRe2L's seeded ``RandomSampler`` produces (int64 [N])."""
    import torch

    if mode not in REPLAY_MODES:
        raise ValueError(f"unknown replay mode {mode!r}; choose one of {REPLAY_MODES}")
    g = torch.Generator()
    g.manual_seed(int(seed))
    for _ in range(epochs):
        perm = torch.randperm(num_images, generator=g).numpy()
        if mode == "torch>=1.11":
            torch.randperm(num_images, generator=g)  # drawn and discarded (num_samples % n == 0)
        yield perm.astype(np.int64)


def _order_source(order, epochs: int, N: int, seed: int, replay: str, root: Path):
    """A callable epoch -> order [N] reading from a file or the replay (sequentially)."""
    if order is None:
        state = {"epoch": -1, "perm": None, "gen": sampler_order(N, epochs, seed, replay)}

        def get(e):
            if state["epoch"] > e:  # an earlier epoch again (a sample read before the full pass): replay anew
                state.update(epoch=-1, perm=None, gen=sampler_order(N, epochs, seed, replay))
            while state["epoch"] < e:
                state["perm"] = next(state["gen"])
                state["epoch"] += 1
            return state["perm"]

        return get, {"source": "replay", "seed": int(seed), "mode": replay}
    path = Path(order)
    if path.suffix == ".npy":
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
        if arr.ndim != 2 or arr.shape[0] < epochs:
            raise LegacyFormatError(f"order array has shape {arr.shape}, expected [epochs >= {epochs}, N]", path=path)
        return (lambda e: np.asarray(arr[e], dtype=np.int64)), {"source": "order-file", "name": path.name}
    js = JsonIntLists(path)
    missing = [e for e in range(epochs) if str(e) not in js]
    if missing:
        raise LegacyFormatError(f"order file has no entry for epoch(s) {missing[:5]}", path=path)
    return (lambda e: js.get(e)), {"source": "order-file", "name": path.name}


def plan_import(
    root, *, seed: int = 42, order=None, replay: str = "torch>=1.11", family: str = "sre2l", layout: str = "sre2l", **_
) -> BatchPlan:
    root = Path(root)
    tree = scan_epoch_dirs(root, allow_partial_last=False)
    nb = len(tree[0])
    first = load_batch(tree[0][0], family)
    B = first.size
    last = load_batch(tree[0][-1], family) if nb > 1 else first
    N = (nb - 1) * B + last.size
    if last.size > B:
        raise LegacyFormatError(f"holds {last.size} records, more than the first batch's {B}", path=tree[0][-1])
    files = [(e, s, p) for e in sorted(tree) for s, p in enumerate(tree[e])]
    epochs = len(tree)
    plan = BatchPlan(
        layout=layout,
        family=family,
        root=root,
        files=files,
        steps_per_epoch=nb,
        epochs=epochs,
        batch_size=B,
        last_batch_size=last.size,
        num_images=N,
        max_image=N - 1,
        ids=None,
        drop_last=False,
        first=first,
    )
    if family == "gvbsm":
        return plan
    get, facts = _order_source(order, epochs, N, seed, replay, root)

    def ids(epoch, step, batch):
        perm = get(epoch)
        if len(perm) != N:
            raise LegacyFormatError(
                f"the order of epoch {epoch} lists {len(perm)} images, the batch files hold {N}", path=order or root
            )
        return perm[step * B : step * B + batch.size]

    plan.ids = ids
    plan.seed = int(seed) if order is None else None
    plan.facts["order"] = facts
    if order is None:
        plan.notes.append(
            f"image order replayed from RandomSampler(seed={seed}) in mode {replay!r}; the files do "
            "not store it (see docs/interop.md for the PyTorch versions this holds for)"
        )
    return plan
