"""The per-batch record of the SRe2L family (SRe2L, CDA, LPLD, LPQLD, G-VBSM, EDC): parse and rebuild.

A legacy batch file is ``torch.save(list)``. Field by field (B = batch size):

====================  ==============================================  =========================
field                 legacy object                                   lplabel
====================  ==============================================  =========================
coords_status         float32 [B,4] (LPQLD: float16) tensor            ``crop`` (same dtype, bit-exact)
flip_status           bool [B] tensor                                  ``flip``
mix_index             int64 [B] (LPQLD: uint8) tensor, or None         ``mix_partner`` int16, -1 for None
mix_lam               Python float, or None                            ``steps/mix_lambda``, NaN for None
mix_bbox              [bbx1, bby1, bbx2, bby2]: four numpy.int64       ``steps/mix_box`` (row0, col0, row1,
                      (LPQLD: four 0-d uint8 tensors), or None         col1), zeros for None
soft_label            float16 [B,C] logits (LPQLD MR-k: values float16 ``label`` (dense or top-k, bit-exact)
                      [B,k] + indices int16 [B,k])
index (G-VBSM/EDC)    int64 [B] tensor: dataset index of each record   ``image``
indices_status (EDC)  int32 [B,2,2] patch-shuffle permutation          header extension (constant)
====================  ==============================================  =========================

Which of None / mixup / cutmix a batch uses is a property of the whole label set (the legacy
``--mix-type``), so it is recorded once, in the store's ``legacy`` extension, together with the
exact Python and tensor types of every field (the *signature*); export rebuilds the objects
from the stored arrays and that signature. Every batch of a directory must have the first
batch's signature: a file that differs is named in the error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import LegacyFormatError, UnsupportedLegacyFeatureError

#: Record layouts by list length, for each record family.
FIELDS = {
    ("sre2l", 6): ("coords", "flip", "mix_index", "mix_lam", "mix_bbox", "logits"),
    ("lpqld", 6): ("coords", "flip", "mix_index", "mix_lam", "mix_bbox", "logits"),
    ("lpqld", 7): ("coords", "flip", "mix_index", "mix_lam", "mix_bbox", "values", "indices"),
    ("gvbsm", 7): ("coords", "flip", "mix_index", "mix_lam", "mix_bbox", "logits", "index"),
    ("gvbsm", 8): ("coords", "flip", "mix_index", "mix_lam", "mix_bbox", "logits", "index", "patch"),
}


@dataclass
class Batch:
    """One parsed legacy batch file, as numpy arrays, plus its type signature."""

    path: Path
    coords: np.ndarray
    flip: np.ndarray
    mix_index: np.ndarray | None
    mix_lam: float | None
    mix_box: np.ndarray | None  # int64 [4] (bbx1, bby1, bbx2, bby2) = (row0, col0, row1, col1)
    logits: np.ndarray | None = None
    values: np.ndarray | None = None
    indices: np.ndarray | None = None
    image: np.ndarray | None = None  # G-VBSM/EDC stored dataset indices
    patch: np.ndarray | None = None  # EDC patch-shuffle indices
    sig: dict = field(default_factory=dict)

    @property
    def size(self) -> int:
        return int(self.flip.shape[0])

    @property
    def num_classes(self) -> int | None:
        return None if self.logits is None else int(self.logits.shape[1])


def _fail(path, msg, hint=None, cls=LegacyFormatError):
    raise cls(
        msg,
        path=path,
        hint=hint
        or "every batch file of a label set must have the structure of the first; "
        "is this file from another run or a damaged copy?",
    )


def _dtype_name(t) -> str:
    return str(t.dtype).replace("torch.", "")


def _tensor(path, name, x, dtypes, ndim=None):
    import torch

    if not isinstance(x, torch.Tensor) or type(x) is not torch.Tensor:
        _fail(path, f"field {name!r} is a {type(x).__name__}, expected a torch.Tensor")
    if x.layout != torch.strided or x.is_quantized or x.is_complex() or x.device.type != "cpu":
        _fail(path, f"field {name!r} is not a plain dense CPU tensor")
    dt = _dtype_name(x)
    if dt not in dtypes:
        _fail(path, f"field {name!r} has dtype {dt}, expected {' or '.join(dtypes)}")
    if ndim is not None and x.dim() != ndim:
        _fail(path, f"field {name!r} has shape {tuple(x.shape)}, expected {ndim} dimensions")
    return x


def _np(x) -> np.ndarray:
    return x.detach().numpy()


def _bbox(path, box):
    import torch

    if not isinstance(box, (list, tuple)) or len(box) != 4:
        n = len(box) if hasattr(box, "__len__") else "?"
        _fail(path, f"field 'mix_bbox' is {type(box).__name__} of length {n}, expected a list of 4 integers")
    kinds = set()
    vals = []
    for v in box:
        if isinstance(v, np.integer) and type(v) is np.int64:
            kinds.add("numpy.int64")
            vals.append(int(v))
        elif (
            isinstance(v, torch.Tensor)
            and type(v) is torch.Tensor
            and v.dim() == 0
            and _dtype_name(v) in ("uint8", "int16", "int32", "int64")
        ):
            kinds.add(f"tensor.{_dtype_name(v)}")
            vals.append(int(v.item()))
        elif type(v) is int:
            kinds.add("int")
            vals.append(v)
        else:
            _fail(
                path, f"field 'mix_bbox' holds a {type(v).__name__}, expected numpy.int64, int or 0-d integer tensors"
            )
    if len(kinds) != 1:
        _fail(path, f"field 'mix_bbox' mixes element types {sorted(kinds)}")
    arr = np.asarray(vals, dtype=np.int64)
    if arr.min() < 0 or arr.max() > 32767:
        _fail(path, f"field 'mix_bbox' = {vals} lies outside 0..32767 pixels")
    kind = kinds.pop()
    container = "list" if isinstance(box, list) else "tuple"
    return arr, kind, container


def parse_batch(obj, path, family: str) -> Batch:
    """Validate one loaded legacy batch object of ``family`` (sre2l, lpqld, gvbsm) and convert it."""
    import torch

    path = Path(path)
    if not isinstance(obj, list):
        _fail(path, f"holds a {type(obj).__name__}, expected the list torch.save writes for one batch")
    n = len(obj)
    names = FIELDS.get((family, n))
    if (
        n >= 2
        and isinstance(obj[1], torch.Tensor)
        and obj[1].dim() == 2
        and obj[1].shape[-1] == 7
        and obj[1].is_floating_point()
    ):
        _fail(
            path,
            "this is an ImageNet-21K label file: its second field holds Cutout parameters (float [B, 7]) "
            "instead of flips",
            hint="lplabel format 1.0 has no per-record column for Cutout parameters, so 21K label sets cannot be "
            "imported losslessly yet",
            cls=UnsupportedLegacyFeatureError,
        )
    if family == "lpqld" and n == 8:
        _fail(
            path,
            "this LPQLD file holds RandAugment parameters (--use_rand_aug)",
            hint="lplabel format 1.0 has no per-record column for RandAugment parameters",
            cls=UnsupportedLegacyFeatureError,
        )
    if names is None:
        expected = sorted(k[1] for k in FIELDS if k[0] == family)
        _fail(
            path,
            f"holds a list of {n} items; a {family} batch file holds {' or '.join(map(str, expected))}",
            hint="check the --from layout",
        )
    f = dict(zip(names, obj))
    sig: dict = {"fields": list(names)}

    coords = _tensor(path, "coords_status", f["coords"], ("float32", "float16"), 2)
    b = coords.shape[0]
    if coords.shape[1] != 4 or b < 1:
        _fail(path, f"field 'coords_status' has shape {tuple(coords.shape)}, expected [B, 4]")
    sig["coords_dtype"] = _dtype_name(coords)
    flip = _tensor(path, "flip_status", f["flip"], ("bool",), 1)
    if flip.shape[0] != b:
        _fail(path, f"field 'flip_status' has {flip.shape[0]} entries for {b} crops")

    mi, lam, box = f["mix_index"], f["mix_lam"], f["mix_bbox"]
    mix_box = None
    if mi is None and lam is None and box is None:
        sig["mix"] = "none"
    elif mi is not None and lam is not None:
        mi = _tensor(path, "mix_index", mi, ("int64", "uint8", "int32", "int16"), 1)
        if mi.shape[0] != b:
            _fail(path, f"field 'mix_index' has {mi.shape[0]} entries for {b} crops")
        sig["mix_index_dtype"] = _dtype_name(mi)
        if type(lam) is not float:
            _fail(path, f"field 'mix_lam' is a {type(lam).__name__}, expected a Python float")
        if box is None:
            sig["mix"] = "mixup"
        else:
            sig["mix"] = "cutmix"
            mix_box, sig["bbox_type"], sig["bbox_container"] = _bbox(path, box)
    else:
        _fail(
            path,
            "fields mix_index, mix_lam and mix_bbox are neither all None nor a mix "
            f"(mix_index {'None' if mi is None else 'set'}, mix_lam {'None' if lam is None else 'set'}, "
            f"mix_bbox {'None' if box is None else 'set'})",
        )

    batch = Batch(
        path=path,
        coords=_np(coords),
        flip=_np(flip),
        mix_index=None if mi is None else _np(mi).astype(np.int64),
        mix_lam=lam,
        mix_box=mix_box,
        sig=sig,
    )
    if not np.isfinite(batch.coords).all():
        _fail(path, "field 'coords_status' holds non-finite values")
    if batch.mix_index is not None and (batch.mix_index.min() < 0 or batch.mix_index.max() >= b):
        _fail(path, f"field 'mix_index' holds values outside 0..{b - 1}")

    if "logits" in f:
        lg = _tensor(path, "soft_label", f["logits"], ("float16", "float32"), 2)
        if lg.shape[0] != b or lg.shape[1] < 2:
            _fail(path, f"field 'soft_label' has shape {tuple(lg.shape)}, expected [{b}, C]")
        sig["label_dtype"] = _dtype_name(lg)
        batch.logits = _np(lg)
    else:
        v = _tensor(path, "values", f["values"], ("float16", "float32"), 2)
        ix = _tensor(path, "indices", f["indices"], ("int16", "int32", "int64"), 2)
        if v.shape[0] != b or tuple(ix.shape) != tuple(v.shape):
            _fail(path, f"top-k values {tuple(v.shape)} and indices {tuple(ix.shape)} must both be [{b}, k]")
        sig["label_dtype"] = _dtype_name(v)
        sig["index_dtype"] = _dtype_name(ix)
        sig["k"] = int(v.shape[1])
        batch.values = _np(v)
        batch.indices = _np(ix)
        if batch.indices.min() < 0:
            _fail(path, "top-k indices hold negative class numbers")
    if "index" in f:
        ix = _tensor(path, "index", f["index"], ("int64", "int32"), 1)
        if ix.shape[0] != b:
            _fail(path, f"field 'index' has {ix.shape[0]} entries for {b} crops")
        sig["image_dtype"] = _dtype_name(ix)
        batch.image = _np(ix).astype(np.int64)
    if "patch" in f:
        p = _tensor(path, "indices_status", f["patch"], ("int32", "int64"), None)
        if p.dim() < 1 or p.shape[0] != b:
            _fail(path, f"field 'indices_status' has shape {tuple(p.shape)}, expected [{b}, ...]")
        pn = _np(p)
        first = pn[0]
        if not (pn == first).all():
            _fail(
                path,
                "EDC patch-shuffle indices (indices_status) differ between records",
                hint="lplabel format 1.0 stores them only when every record has the same value (EDC's default "
                "ap_shuffle=False writes zeros); a per-record column would be needed",
                cls=UnsupportedLegacyFeatureError,
            )
        sig["patch"] = {"dtype": _dtype_name(p), "shape": list(p.shape[1:]), "value": first.reshape(-1).tolist()}
    return batch


def check_same_signature(sig: dict, ref: dict, path) -> None:
    """Raise naming ``path`` when a batch's signature differs from the label set's."""
    if sig == ref:
        return
    diffs = [k for k in sorted(set(sig) | set(ref)) if sig.get(k) != ref.get(k)]
    if diffs == ["patch"] and sig.get("patch") and ref.get("patch"):
        raise UnsupportedLegacyFeatureError(
            f"EDC patch-shuffle indices differ between batches ({sig['patch']['value']} here, "
            f"{ref['patch']['value']} in the first batch)",
            path=path,
            hint="lplabel format 1.0 stores them only when every record has the same value (EDC's default "
            "ap_shuffle=False writes zeros); a per-record column would be needed",
        )
    text = "; ".join(f"{k}: {sig.get(k)!r} here, {ref.get(k)!r} in the first batch" for k in diffs)
    raise LegacyFormatError(
        f"batch differs from the first batch of the label set: {text}",
        path=path,
        hint="mixed directories (several runs or settings in one folder) cannot be imported; separate them",
    )


# ----------------------------------------------------------------------------------- export
def _to_tensor(arr, dtype: str):
    import torch

    return torch.from_numpy(np.array(arr, dtype=_NP[dtype], copy=True, order="C"))


_NP = {
    "float16": np.float16,
    "float32": np.float32,
    "float64": np.float64,
    "bool": np.bool_,
    "uint8": np.uint8,
    "int8": np.int8,
    "int16": np.int16,
    "int32": np.int32,
    "int64": np.int64,
}


def build_batch(
    sig: dict, *, crop, flip, mix_partner, mix_lambda, mix_box, logits=None, values=None, indices=None, image=None
) -> list:
    """The legacy list object for one step, with the exact types ``sig`` records."""
    import torch

    b = len(flip)
    out = {"coords": _to_tensor(crop, sig["coords_dtype"]), "flip": _to_tensor(flip, "bool")}
    mix = sig["mix"]
    if mix == "none":
        out["mix_index"] = out["mix_lam"] = out["mix_bbox"] = None
    else:
        out["mix_index"] = _to_tensor(np.asarray(mix_partner).astype(np.int64), sig["mix_index_dtype"])
        out["mix_lam"] = float(mix_lambda)
        if mix == "mixup":
            out["mix_bbox"] = None
        else:
            kind = sig["bbox_type"]
            vals = [int(v) for v in np.asarray(mix_box).reshape(4)]
            if kind == "numpy.int64":
                items = [np.int64(v) for v in vals]
            elif kind == "int":
                items = vals
            else:
                dt = getattr(torch, kind.split(".", 1)[1])
                items = [torch.tensor(v, dtype=dt) for v in vals]
            out["mix_bbox"] = items if sig.get("bbox_container", "list") == "list" else tuple(items)
    if "logits" in sig["fields"]:
        out["logits"] = _to_tensor(logits, sig["label_dtype"])
    else:
        out["values"] = _to_tensor(values, sig["label_dtype"])
        out["indices"] = _to_tensor(indices, sig["index_dtype"])
    if "index" in sig["fields"]:
        out["index"] = _to_tensor(np.asarray(image).astype(np.int64), sig.get("image_dtype", "int64"))
    if "patch" in sig["fields"]:
        p = sig["patch"]
        one = np.asarray(p["value"]).reshape(p["shape"])
        out["patch"] = _to_tensor(np.broadcast_to(one, (b, *p["shape"])), p["dtype"])
    return [out[name] for name in sig["fields"]]
