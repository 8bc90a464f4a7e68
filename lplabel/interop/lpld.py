"""LPLD: ``epoch_<e>/batch_<b>.tar`` plus ``sampler_indices_epoch.json``.

The JSON maps ``"<epoch>"`` to the image indices of the batches written in that epoch, in
order (``sampler_indices_dict[str(epoch)] += index.tolist()`` per batch), so batch b of
epoch e holds images ``json[e][b*B : b*B + size]``. Generation with ``--prune_ratio > 0``
uses ``drop_last`` (every batch full) and stops after ``int(epochs * batches * (1 - r))``
batches, so the last epoch directory may be a prefix; with ratio 0 the ``==`` break never
fires and one extra full epoch is written (301 directories for 300 epochs). Both are imported
as they are: the store's ``epochs`` counts the directories, a partial last epoch holds only its
stored steps.
"""

from __future__ import annotations

from pathlib import Path

from .batches import BatchPlan, load_batch
from .common import scan_epoch_dirs
from .errors import LegacyFormatError
from .jsonlists import JsonIntLists

JSON_NAME = "sampler_indices_epoch.json"


def plan_import(root, *, num_images=None, **_) -> BatchPlan:
    root = Path(root)
    jpath = root / JSON_NAME
    if not jpath.is_file():
        raise LegacyFormatError(
            f"no {JSON_NAME}", path=root, hint="without it this is an SRe2L directory (--from sre2l replays the order)"
        )
    tree = scan_epoch_dirs(root, allow_partial_last=True)
    js = JsonIntLists(jpath)
    epochs = len(tree)
    want = [str(e) for e in range(epochs)]
    if sorted(js.keys, key=lambda k: (len(k), k)) != want:
        extra = sorted(set(js.keys) - set(want))[:5]
        missing = sorted(set(want) - set(js.keys))[:5]
        raise LegacyFormatError(
            f"the JSON's epochs do not match the {epochs} epoch directories (missing {missing}, extra {extra})",
            path=jpath,
            hint="the JSON and the batch files come from different runs, or the directory is partial",
        )
    nb = len(tree[0])
    first = load_batch(tree[0][0], "sre2l")
    B = first.size
    last0 = load_batch(tree[0][-1], "sre2l") if nb > 1 else first
    # sizes and the largest image index, one JSON list at a time
    max_id, canonical = -1, js.canonical_separators and js.keys == want
    lengths = {}
    for e in range(epochs):
        arr = js.get(e)
        lengths[e] = len(arr)
        if len(arr):
            max_id = max(max_id, int(arr.max()))
            if arr.min() < 0:
                raise LegacyFormatError(f"epoch {e} lists a negative image index", path=jpath)
        canonical = canonical and js.is_canonical_list(e, arr)
    if last0.size < B:
        last_size, drop_last = last0.size, False
        n_cover = (nb - 1) * B + last0.size
        N = n_cover if num_images is None else int(num_images)
        spe = nb
    else:
        last_size = B
        N = max_id + 1 if num_images is None else int(num_images)
        # a single, possibly partial, epoch of full batches: the schedule is at least what is stored
        spe = nb if epochs > 1 else max(nb, N // B)
        drop_last = spe * B < N
    cache = {"epoch": -1, "ids": None}

    def ids(epoch, step, batch):
        if cache["epoch"] != epoch:
            cache["epoch"], cache["ids"] = epoch, js.get(epoch)
        got = cache["ids"][step * B : step * B + batch.size]
        if len(got) != batch.size:
            raise LegacyFormatError(
                f"epoch {epoch} lists {lengths[epoch]} image indices, too few for its batch "
                f"files (batch {step} holds {batch.size} records)",
                path=jpath,
                hint="the JSON and the batch files come from different runs",
            )
        return got

    def epoch_end(epoch, consumed):
        if consumed != lengths[epoch]:
            raise LegacyFormatError(
                f"epoch {epoch} lists {lengths[epoch]} image indices, its batch files hold {consumed} records",
                path=jpath,
                hint="the JSON and the batch files come from different runs",
            )

    files = [(e, s, p) for e in sorted(tree) for s, p in enumerate(tree[e])]
    plan = BatchPlan(
        layout="lpld",
        family="sre2l",
        root=root,
        files=files,
        steps_per_epoch=spe,
        epochs=epochs,
        batch_size=B,
        last_batch_size=last_size,
        num_images=N,
        max_image=max_id,
        ids=ids,
        drop_last=drop_last,
        epoch_end=epoch_end,
        first=first,
        num_images_exact=last_size < B or num_images is not None,
    )
    plan.facts["sampler_json"] = {"name": JSON_NAME, "canonical": bool(canonical)}
    if len(tree[epochs - 1]) < nb:
        plan.notes.append(
            f"the last epoch (epoch_{epochs - 1}) holds {len(tree[epochs - 1])} of {nb} batches "
            "(LPLD stops after the requested number of batches)"
        )
    if not canonical:
        plan.notes.append(
            f"{JSON_NAME} is not in json.dump's exact formatting; export writes the same content in json.dump format"
        )
    return plan
