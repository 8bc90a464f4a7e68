"""Fidelity of a lossy label store against its source, without training anything.

For each record both stores hold (matched by (epoch, step) and position in the step), both
labels are turned into probabilities with :mod:`lplabel.reconstruct` (reference: ``auto``;
candidate: the chosen mode) and compared:

* ``top1_agreement``: fraction of records whose most probable class is the same (ties: the
  smaller class index);
* ``top5_overlap``: mean of |top-5(ref) ∩ top-5(cand)| / 5 (classes with probability 0 in a
  top-k reconstruction still fill its top-5 by smaller index; with C < 5, top-C). ``None`` (and
  ``top5_overlap_skipped`` says why) when a store keeps fewer than 5 (or C) classes per record;
* ``kl_t1``, ``kl_t20``: mean KL(candidate ‖ reference) in nats of softmax(z/T) at T = 1 and
  20. This direction is finite for every reconstruction, including renormalised top-k, where
  it equals −log(reference mass kept in the top-k); the reverse is infinite there.
* ``tv_t1``, ``tv_t20``: mean total variation ½·Σ|p − q| (symmetric, in [0, 1]).

Everything is vectorised per step; :class:`FidelityAccumulator` sums over steps.
"""

from __future__ import annotations

import numpy as np

from ..errors import LplabelError
from . import probs_numpy

TEMPERATURES = (1.0, 20.0)


class CompareError(LplabelError):
    """Two stores that cannot be compared (different classes, no common steps, other images)."""


def _top_n(p: np.ndarray, n: int) -> np.ndarray:
    n = min(n, p.shape[1])
    # order by (-p, index): stable argsort of -p keeps smaller indices first among ties
    return np.argsort(-p, axis=1, kind="stable")[:, :n]


def kl_divergence(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """KL(p ‖ q) per row, in nats (0·log 0 = 0; q = 0 where p > 0 gives inf)."""
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(p > 0, p * (np.log(p) - np.log(q)), 0.0)
    return t.sum(axis=1)


class FidelityAccumulator:
    """Sums fidelity metrics over steps; :meth:`result` gives the means."""

    def __init__(
        self,
        num_classes: int,
        *,
        mode: str = "auto",
        temperatures=TEMPERATURES,
        reference_tail: str = "logsumexp",
        candidate_tail: str = "logsumexp",
    ):
        self.num_classes = int(num_classes)
        self.mode = mode
        self.tails = (reference_tail, candidate_tail)
        self.temperatures = tuple(float(t) for t in temperatures)
        self.n = 0
        self.sums: dict = {}

    def _add(self, key, values):
        self.sums[key] = self.sums.get(key, 0.0) + float(np.sum(values))

    def add(self, reference: dict, candidate: dict) -> None:
        """Add one step: two decoded label blocks with the same records in the same order."""
        C = self.num_classes
        for t in self.temperatures:
            p = probs_numpy(reference, C, temperature=t, mode="auto", tail_kind=self.tails[0]).astype(np.float64)
            q = probs_numpy(candidate, C, temperature=t, mode=self.mode, tail_kind=self.tails[1]).astype(np.float64)
            p /= p.sum(axis=1, keepdims=True)
            q /= q.sum(axis=1, keepdims=True)
            tag = f"t{t:g}"
            self._add(f"kl_{tag}", kl_divergence(q, p))
            self._add(f"tv_{tag}", 0.5 * np.abs(p - q).sum(axis=1))
            if t == self.temperatures[0]:
                a, b = _top_n(p, 5), _top_n(q, 5)
                self._add("top1_agreement", a[:, 0] == b[:, 0])
                inter = (a[:, :, None] == b[:, None, :]).any(axis=2).sum(axis=1)
                self._add("top5_overlap", inter / a.shape[1])
        self.n += len(p)

    def result(self) -> dict:
        out = {"records": self.n}
        for k, v in self.sums.items():
            out[k] = v / self.n if self.n else None
        return out


def compare_blocks(
    reference: dict,
    candidate: dict,
    num_classes: int,
    *,
    mode: str = "auto",
    temperatures=TEMPERATURES,
    reference_tail: str = "logsumexp",
    candidate_tail: str = "logsumexp",
) -> dict:
    """Fidelity metrics of one pair of label blocks (see the module doc)."""
    acc = FidelityAccumulator(
        num_classes, mode=mode, temperatures=temperatures, reference_tail=reference_tail, candidate_tail=candidate_tail
    )
    acc.add(reference, candidate)
    return acc.result()


def compare_stores(reference, candidate, *, mode: str = "auto", temperatures=TEMPERATURES, progress=None) -> dict:
    """Fidelity of store ``candidate`` against store ``reference`` over the steps both hold.

    ``reference``, ``candidate``: open :class:`~lplabel.store.LabelStore` objects or paths (those
    opened here are closed here). ``mode``: how the candidate's top-k labels become probabilities
    (see :mod:`lplabel.reconstruct`); ``tail``/``uniform`` need a stored tail summary.
    ``progress``: called with 1 after each step. Returns the metrics of the module doc, the step
    count, both stores' size facts and the mode (what ``lplabel compare --json`` prints).
    """
    from ..store import LabelStore

    opened = []

    def use(store):
        if isinstance(store, LabelStore):
            return store
        opened.append(LabelStore(store))
        return opened[-1]

    try:
        ref = use(reference)
        return _compare(ref, use(candidate), mode, temperatures, progress)
    finally:
        for st in opened:
            st.close()


def _compare(ref, cand, mode, temperatures, progress) -> dict:
    cand_fields = [f.name for f in cand.pipelines["label"].decoded_spec]
    if mode in ("tail", "uniform") and "tail" not in cand_fields:
        from . import ReconstructError, index_only

        what = "keeps class indices only (no values, no tail)" if index_only(cand_fields) else "has none"
        raise ReconstructError(
            f"--mode {mode} needs a stored tail summary; the candidate {what}",
            path=cand.path,
            hint="use --mode renorm or auto",
        )
    if ref.num_classes != cand.num_classes:
        raise CompareError(
            f"the stores have {ref.num_classes} and {cand.num_classes} classes",
            path=cand.path,
            hint="compare a store with the store it was made from",
        )
    spe = max(ref.steps_per_epoch, cand.steps_per_epoch, 1)
    rk = ref.step_epoch.astype(np.int64) * spe + ref.step_index
    ck = cand.step_epoch.astype(np.int64) * spe + cand.step_index
    common, ri, ci = np.intersect1d(rk, ck, return_indices=True)
    if len(common) == 0:
        raise CompareError(
            "the stores hold no (epoch, step) in common",
            path=cand.path,
            hint="compare a store with the store it was made from",
        )
    from . import tail_kind_of

    acc = FidelityAccumulator(
        ref.num_classes,
        mode=mode,
        temperatures=temperatures,
        reference_tail=tail_kind_of(ref.pipelines["label"]),
        candidate_tail=tail_kind_of(cand.pipelines["label"]),
    )
    for a, b in zip(ri, ci):
        sa = ref.step_at(int(a), columns=("image", "label"))
        sb = cand.step_at(int(b), columns=("image", "label"))
        if not np.array_equal(sa.image, sb.image):
            raise CompareError(
                f"epoch {sa.epoch} step {sa.step} holds different images in the two stores",
                path=cand.path,
                hint="the candidate was not made from this reference",
            )
        acc.add(sa.label, sb.label)
        if progress is not None:
            progress(1)
    res = acc.result()
    res["steps"] = int(len(common))

    def size_facts(store):
        from ..store import store_info

        f = store_info(store.path)  # the same three size figures as `lplabel info` (lplabel.store.info)
        R = f["records"]
        return {
            "path": str(store.path),
            "file_bytes": f["file_bytes"],
            "records": R,
            "nominal_records": f["nominal_records"],
            "bytes_per_record": f["bytes_per_record"],
            "label_bytes_per_record": store.column_bytes("label") / R if R else None,
            "smaller_than_dense_fp16_stored": f["smaller_than_dense_fp16_stored"],
            "smaller_than_dense_fp16_nominal": f["smaller_than_dense_fp16_nominal"],
            "ratio_vs_dense_fp16": f["ratio_vs_dense_fp16"],
        }  # old name of ..._stored

    res["reference"] = size_facts(ref)
    res["candidate"] = size_facts(cand)
    res["mode"] = mode
    # top-5 overlap means something only when both labels rank at least 5 classes: a top-k label
    # with k < 5 fills the rest of its top-5 with zero-probability classes by index
    kept = [k for k in (_kept_classes(ref), _kept_classes(cand)) if k is not None]
    n = min(5, ref.num_classes)
    if kept and min(kept) < n:
        res["top5_overlap"] = None
        res["top5_overlap_skipped"] = (
            f"a store keeps only the top-{min(kept)} classes of each record; top-5 overlap needs k >= {n}"
        )
    return res


def _kept_classes(store):
    """k of a top-k label chain (None for dense logits)."""
    fields = {f.name: f for f in store.pipelines["label"].decoded_spec}
    if "indices" not in fields:
        return None
    return int(fields["indices"].shape[0]) if fields["indices"].shape else 1
