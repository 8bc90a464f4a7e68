"""LPQLD: flat ``batch_<g>.tar`` (global batch counter) plus ``sampler_indices_batch.json``.

The JSON maps ``"<g>"`` to the B image indices of batch g. Records are
``[coords fp16, flip, mix_index uint8, λ, [4 × 0-d uint8], values fp16 [B,k], indices int16 [B,k]]``
with ``--label_quantization MR-k`` (top-k logits, no scale), or the LPLD 6-list of dense
logits without it.

Files carry no epoch number. The generator numbers batches consecutively across its
passes over the data, and its counter logic (``if batch_counter == total_steps: break`` with
``total_steps -= 1`` after every pass) can end one pass early, so epochs are not simply runs of
n batches. Epochs are inferred from the JSON (:func:`_segment`): within an epoch no image
repeats, and a full epoch's successor always repeats one (it holds B images while at most
N mod B < B were left out), so the first epoch's length gives n; later epochs end when a batch
repeats an image, after a short batch, or after n batches. A short pass followed by a batch that
happens to avoid all its images merges with the next epoch; that changes only the (epoch, step)
labels, never which records are stored. The files themselves carry no epoch, and LPQLD's
training uses them as one flat pool. Export numbers the stored steps 0, 1, 2, ... in store order,
which gives back the original names.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .batches import BatchPlan, load_batch
from .common import scan_batches
from .errors import LegacyFormatError
from .jsonlists import JsonIntLists

JSON_NAME = "sampler_indices_batch.json"


def _segment(js, lists, lengths, B: int, max_id: int, steps_per_epoch, jpath):
    """(epoch of each batch, step of each batch, batches per epoch) for LPQLD's flat batch sequence.

    A new epoch starts when a batch repeats an image of the current epoch, when the previous
    batch was short, or when the current epoch already has ``nb`` batches; ``nb`` is the length
    of the first epoch found that way (or ``steps_per_epoch``). LPQLD's generator can end a pass
    early (its ``total_steps -= 1`` after each pass), so epochs may be shorter than ``nb``.
    """
    G = len(lengths)
    epoch_of = np.zeros(G, dtype=np.int64)
    step_of = np.zeros(G, dtype=np.int64)
    seen = np.zeros(max_id + 1, dtype=bool)
    nb = int(steps_per_epoch) if steps_per_epoch is not None else None
    if nb is not None and nb < 1:
        raise LegacyFormatError(f"steps_per_epoch must be >= 1, got {nb}", path=jpath)
    e, s = 0, 0
    for g in range(G):
        arr = lists[g] if lists[g] is not None else js.get(g)
        if g and (s == nb or lengths[g - 1] < B or seen[arr].any()):
            if nb is None:
                nb = s
            e, s = e + 1, 0
            seen[:] = False
        if len(np.unique(arr)) != len(arr):
            raise LegacyFormatError(f"batch {g} lists an image twice", path=jpath)
        seen[arr] = True
        epoch_of[g], step_of[g] = e, s
        s += 1
    if nb is None:
        nb = s
    if steps_per_epoch is not None and int(step_of.max()) >= nb:  # pragma: no cover - guarded by s == nb
        raise LegacyFormatError("an epoch is longer than steps_per_epoch", path=jpath)
    return epoch_of, step_of, nb


def plan_import(root, *, num_images=None, steps_per_epoch=None, **_) -> BatchPlan:
    root = Path(root)
    jpath = root / JSON_NAME
    if not jpath.is_file():
        raise LegacyFormatError(
            f"no {JSON_NAME}", path=root, hint="an LPQLD label directory holds batch_<g>.tar files and this JSON"
        )
    files = scan_batches(root)
    if not files:
        raise LegacyFormatError("no batch_<g>.tar files", path=root)
    G = len(files)
    js = JsonIntLists(jpath)
    want = [str(g) for g in range(G)]
    if set(js.keys) != set(want):
        extra = sorted(set(js.keys) - set(want), key=lambda k: (len(k), k))[:5]
        missing = sorted(set(want) - set(js.keys), key=lambda k: (len(k), k))[:5]
        what = []
        if extra:
            what.append("batch files missing for its entries: " + ", ".join(f"batch_{k}.tar" for k in extra))
        if missing:
            what.append(f"no entries for batches {missing}")
        raise LegacyFormatError(
            f"the JSON does not match the {G} batch files ({'; '.join(what)})",
            path=jpath,
            hint="the JSON and the batch files come from different runs, or the directory is partial",
        )
    canonical = js.canonical_separators and js.keys == want
    first = load_batch(files[0], "lpqld")
    B = first.size
    lengths = np.zeros(G, dtype=np.int64)
    max_id = -1
    lists = []
    for g in range(G):
        arr = js.get(g)
        lengths[g] = len(arr)
        if len(arr) == 0 or len(arr) > B or arr.min() < 0:
            raise LegacyFormatError(f"batch {g} lists {len(arr)} image indices (batch size {B})", path=jpath)
        max_id = max(max_id, int(arr.max()))
        canonical = canonical and js.is_canonical_list(g, arr)
        lists.append(arr if G * B <= (1 << 23) else None)  # keep small sets in memory (<= 64 MB)
    epoch_of, step_of, nb = _segment(js, lists, lengths, B, max_id, steps_per_epoch, jpath)
    N = max_id + 1 if num_images is None else int(num_images)
    short = [g for g in range(G) if lengths[g] < B]
    last_size = int(lengths[short[0]]) if short else B
    for g in short:
        if step_of[g] != nb - 1 or lengths[g] != last_size:
            raise LegacyFormatError(
                f"batch {g} is short ({lengths[g]} of {B} images) but is not the last of an epoch of {nb} batches",
                path=jpath,
                hint="batch sizes are inconsistent: mixed runs, or pass steps_per_epoch",
            )
    if short:
        drop_last = False
        if num_images is None:
            N = max(N, (nb - 1) * B + last_size)
    else:
        drop_last = nb * B < N
    epochs = int(epoch_of[-1]) + 1
    ordered = [(int(epoch_of[g]), int(step_of[g]), files[g]) for g in range(G)]
    key_of = {(int(epoch_of[g]), int(step_of[g])): g for g in range(G)}

    def ids(epoch, step, batch):
        return js.get(key_of[(epoch, step)])

    plan = BatchPlan(
        layout="lpqld",
        family="lpqld",
        root=root,
        files=ordered,
        steps_per_epoch=nb,
        epochs=epochs,
        batch_size=B,
        last_batch_size=last_size,
        num_images=N,
        max_image=max_id,
        ids=ids,
        drop_last=drop_last,
        first=first,
        num_images_exact=bool(short) or num_images is not None,
    )
    plan.facts["sampler_json"] = {"name": JSON_NAME, "canonical": bool(canonical)}
    plan.facts["global_batches"] = G
    plan.facts["steps_per_epoch_inferred"] = steps_per_epoch is None
    sizes = np.bincount(epoch_of).tolist()
    plan.facts["epoch_batches"] = sizes if len(sizes) <= 64 else None
    if steps_per_epoch is None:
        uneven = [e for e, n in enumerate(sizes) if n != nb]
        plan.notes.append(
            f"epochs inferred from the sampler JSON: {nb} batches per epoch, {epochs} epochs"
            + (f" (epochs {uneven[:5]} shorter: LPQLD's batch counter stops a pass early)" if uneven else "")
        )
    if not canonical:
        plan.notes.append(
            f"{JSON_NAME} is not in json.dump's exact formatting; export writes the same content in json.dump format"
        )
    return plan
