"""Write the golden label stores of format v1.

    python tests/golden/make_golden.py                 # write the cases whose .lpl is missing
    python tests/golden/make_golden.py --only NAME...  # write just these cases
    python tests/golden/make_golden.py --list          # the cases and whether they exist

The files and ``expected.json`` are committed; tests/test_golden.py reads them with the current
code forever, so a change that breaks reading old stores fails the suite. Never regenerate the
files of a released version: add new cases (new codecs, new header fields) as new files, and
write only those (``--only``); their entries are merged into ``expected.json`` and every other
entry is kept as it is. An existing file is never replaced unless ``--overwrite`` is given.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from lplabel import StoreWriter, open_store  # noqa: E402
from lplabel.codecs import Field, Pipeline, default_label_codecs, label_chain  # noqa: E402
from lplabel.codecs.bytes import Bytes  # noqa: E402
from lplabel.codecs.classmap import learn_class_order  # noqa: E402
from lplabel.codecs.shuffle import Shuffle  # noqa: E402
from lplabel.codecs.topk import tail_summary, topk_of  # noqa: E402
from lplabel.codecs.zplanes import ZPlanes  # noqa: E402
from lplabel.codecs.zstd import Zstd, train_dictionary  # noqa: E402
from lplabel.images import ImageIndex  # noqa: E402

N_IMAGES, NUM_CLASSES, BATCH, EPOCHS = 10, 12, 4, 2


# -- label chains of the cases added after the first release (built from the case's data) --------------


def _topk_indices(steps, k):
    return np.concatenate([topk_of(st["logits"], k)[0] for st in steps])


def _class_order(method, k):
    return lambda steps: learn_class_order(_topk_indices(steps, k), NUM_CLASSES, method)


def _trained_dictionary(chain_kw, size=512, samples=64):
    """A zstd-format dictionary trained on chunks of *other* synthetic logits (seeded: reproducible)."""
    pre = Pipeline(label_chain(**chain_kw)[:-1], (Field("logits", "float32", (NUM_CLASSES,)),))
    rng = np.random.default_rng(12345)
    data = [
        pre.encode({"logits": (rng.standard_normal((BATCH, NUM_CLASSES)) * 3).astype(np.float32)})
        for _ in range(samples)
    ]
    out = train_dictionary(data, size=size)
    assert out[:4] == b"\x37\xa4\x30\xec", "expected a trained zstd-format dictionary"
    return out


def _raw_dictionary(seed: int, size: int = 256) -> bytes:
    """A raw-content dictionary (no zstd dictionary magic): deterministic bytes."""
    out = np.random.default_rng(seed).integers(0, 16, size, dtype=np.uint8).tobytes()
    assert out[:4] != b"\x37\xa4\x30\xec"
    return out


def _chain_int8_freq(steps):
    kw = dict(k=4, values="int8", tail="logsumexp", index_coding="value-delta", level=15)
    return label_chain(**kw, class_order=_class_order("frequency", 4)(steps))


def _chain_int4_cooc(steps):
    kw = dict(k=4, values="int4", tail="min", index_coding="index-delta", layout="planes", level=19)
    return label_chain(**kw, class_order=_class_order("cooccurrence", 4)(steps))


def _chain_none_cooc(steps):
    kw = dict(k=2, values="none", index_coding="index-delta", index_type="uint8", layout="planes", level=19)
    return label_chain(**kw, class_order=_class_order("cooccurrence", 2)(steps))


def _chain_rans(steps):
    """topk(3, fp16) | classmap(cooccurrence) | sort(index) | rans, its model learnt from the steps."""
    from lplabel.codecs.rans import learn_model

    order = _class_order("cooccurrence", 3)(steps)
    rank = np.empty(NUM_CLASSES, np.int64)
    rank[order] = np.arange(NUM_CLASSES)
    idx, vals = topk_of(np.concatenate([st["logits"] for st in steps]), 3)
    model = learn_model(rank[np.asarray(idx, np.int64)], np.asarray(vals, np.float16), NUM_CLASSES)
    return label_chain(k=3, values="fp16", layout="rans", classes=NUM_CLASSES, class_order=order, rans_model=model)


def _tied_topk(logits, k):
    """Top-k of logits rounded to integers (many ties), tied entries listed by *decreasing* class
    index: an input order that only ``entryorder`` keeps through ``sort``/``rans``."""
    z = np.round(logits).astype(np.float32)
    idx, vals = topk_of(z, k)
    o = np.lexsort((-np.asarray(idx, np.int64), -vals), axis=1)
    return np.take_along_axis(idx, o, 1), np.take_along_axis(vals, o, 1)


def _chain_ties_rans(steps):
    """topk(4, fp16, int16) | entryorder | classmap(cooccurrence) | sort(index) | rans(order), learnt model."""
    from lplabel.codecs.rans import learn_model
    from lplabel.recode import with_entry_order

    idx = np.concatenate([_tied_topk(st["logits"], 4)[0] for st in steps]).astype(np.int64)
    vals = np.concatenate([_tied_topk(st["logits"], 4)[1] for st in steps])
    order = learn_class_order(idx, NUM_CLASSES, "cooccurrence")
    rank = np.empty(NUM_CLASSES, np.int64)
    rank[order] = np.arange(NUM_CLASSES)
    model = learn_model(rank[idx], vals.astype(np.float16), NUM_CLASSES)
    return with_entry_order(
        label_chain(
            k=4,
            values="fp16",
            layout="rans",
            classes=NUM_CLASSES,
            class_order=order,
            rans_model=model,
            index_type="int16",
        )
    )


_BF16_DICT_KW = dict(k=5, values="bf16", index_coding="value-delta", index_type="uint8", level=19)

CASES = {
    # -- the first release (never regenerate these) --
    "dense-fp16-cutmix": dict(codecs=default_label_codecs("dense", type="float16"), mix=True, spc=1),
    "dense-bf16-nomix-chunk3": dict(codecs=default_label_codecs("dense", type="bfloat16"), mix=False, spc=3),
    "dense-fp32": dict(codecs=default_label_codecs("dense", type="float32"), mix=True, spc=2),
    "topk4-fp16-lse": dict(codecs=default_label_codecs("topk", k=4, tail="logsumexp"), mix=True, spc=1),
    "topk3-bf16-min-crop16": dict(
        codecs=default_label_codecs("topk", k=3, type="bfloat16", tail="min"), mix=False, spc=2, crop_type="float16"
    ),
    # -- codecs added later: quantize, bitpack, sort, delta, classmap, zplanes, zstd dictionaries --
    # topk | quantize(8) | classmap(frequency) | sort(value) | delta(values, descending) | bytes | shuffle | zstd
    "topk4-int8-lse-valuedelta-freqmap": dict(codecs=_chain_int8_freq, mix=True, spc=1),
    # topk | quantize(4) | classmap(cooccurrence) | sort(index) | delta(indices) | bitpack | zplanes; crop planes
    "topk4-int4-min-indexdelta-cooc-planes": dict(
        codecs=_chain_int4_cooc, mix=True, spc=2, crop_type="float16", view_codecs={"crop": [ZPlanes(19)]}
    ),
    # topk(bf16, uint8 indices) | sort(value) | delta(bfloat16 values) | bytes | shuffle | zstd + trained dictionary
    "topk5-bf16-valuedelta-u8-zdict": dict(
        codecs=lambda steps: label_chain(**_BF16_DICT_KW, dictionary=_trained_dictionary(_BF16_DICT_KW)),
        mix=False,
        spc=1,
    ),
    # topk(fp16) | bytes | shuffle | zstd + raw-content dictionary; image column with its own raw dictionary
    "topk3-fp16-rawdict": dict(
        codecs=lambda steps: label_chain(k=3, values="fp16", index_coding="none", dictionary=_raw_dictionary(1)),
        mix=True,
        spc=2,
        view_codecs={"image": [Bytes(), Shuffle(4), Zstd.with_dictionary(_raw_dictionary(2), 19)]},
    ),
    # top-6 input with a logsumexp tail merged into top-4 | sort(index) | delta(int16 indices) | ... fp32 values
    "topk6in-topk4-fp32-lse-i16-indexdelta": dict(
        codecs=label_chain(k=4, values="fp32", tail="logsumexp", index_coding="index-delta", index_type="int16"),
        mix=True,
        spc=1,
        label_input=("topk", 6, "tail"),
    ),
    # dense | quantize(8) | zplanes, every view column as byte planes
    "dense-int8-planes": dict(
        codecs=label_chain(values="int8", layout="planes", level=19),
        mix=True,
        spc=3,
        view_codecs={c: [ZPlanes(19)] for c in ("image", "crop", "flip", "mix_partner")},
    ),
    # dense | quantize(4, float32 scale) | bitpack(logits) | bytes | shuffle | zstd
    "dense-int4-f32scale": dict(codecs=label_chain(values="int4", scale_type="float32"), mix=False, spc=2),
    # derived view columns (spec §1.4): views of the lplabel-views-v1 sampler, not stored; images/size
    "topk4-fp16-derived-views": dict(codecs=default_label_codecs("topk", k=4), mix=True, spc=2, derived=True),
    # -- format 1.1: packed tables (spec §1.5; every earlier case is format 1.0) --
    "packed-topk4-fp16-derived-views": dict(
        codecs=default_label_codecs("topk", k=4), mix=True, spc=2, derived=True, packed=True
    ),
    # -- format 1.2: view columns derived by lplabel-views-v2 (spec §11.3: Philox, no numpy streams) --
    "packed-topk4-fp16-derived-views-v2": dict(
        codecs=default_label_codecs("topk", k=4), mix=True, spc=2, derived=True, packed=True, sampler="lplabel-views-v2"
    ),
    "packed-topk3-fp16-rawdict": dict(
        codecs=lambda steps: label_chain(k=3, values="fp16", index_coding="none", dictionary=_raw_dictionary(1)),
        mix=True,
        spc=2,
        packed=True,
        view_codecs={"image": [Bytes(), Shuffle(4), Zstd.with_dictionary(_raw_dictionary(2), 19)]},
    ),
    "packed-dense-bf16-nomix-chunk3": dict(
        codecs=default_label_codecs("dense", type="bfloat16"), mix=False, spc=3, packed=True
    ),
    # -- format 1.1: topk type "none", class indices only (spec §3.5) --
    # topk(k=2, none, uint8) | classmap(cooccurrence) | sort(index) | delta(indices) | zplanes
    "packed-topk2-none-cooc-indexdelta-planes": dict(codecs=_chain_none_cooc, mix=True, spc=2, packed=True),
    # -- the rans codec (context-modelled rANS, spec: codec "rans") --
    # topk(k=3, fp16) | classmap(cooccurrence) | sort(index) | rans(learnt model)
    "packed-topk3-fp16-cooc-rans": dict(codecs=_chain_rans, mix=True, spc=2, packed=True),
    # -- entryorder (spec §3.19): top-4 input with ties listed against the class order (as legacy
    # LPQLD files), kept through sort/rans; rans with order: true carries the shifts --
    "packed-topk4in-fp16-ties-entryorder-rans": dict(
        codecs=_chain_ties_rans, mix=True, spc=2, packed=True, label_input=("topk", 4), ties=True
    ),
}

#: Image sizes and policy of the derived-views case (its views are drawn by lplabel.views).
DERIVED_SIZES = np.array([[8 + 3 * i, 20 - i] for i in range(N_IMAGES)], dtype=np.int32)

#: Cases of the first release: their files and expected.json entries are frozen.
FIRST_RELEASE = (
    "dense-fp16-cutmix",
    "dense-bf16-nomix-chunk3",
    "dense-fp32",
    "topk4-fp16-lse",
    "topk3-bf16-min-crop16",
)


def stored_label(label: dict, types: dict) -> dict:
    """A step's labels in their stored representation: the reader hands bfloat16 fields out widened
    to float32 (exactly), the digests pin the stored uint16 bits."""
    from lplabel.dtypes import to_storage

    return {k: to_storage(np.asarray(v), "bfloat16") if types.get(k) == "bfloat16" else v for k, v in label.items()}


def label_types(store) -> dict:
    return {f.name: f.type for f in store.pipelines["label"].decoded_spec}


def step_digest(st, types: dict | None = None) -> str:
    h = hashlib.sha256()
    for a in (st.image, st.crop, st.flip, st.mix_partner, st.mix_box):
        h.update(np.ascontiguousarray(a).tobytes())
    h.update(np.float64(st.mix_lambda).tobytes())
    label = stored_label(st.label, types or {})
    for k in sorted(label):
        h.update(k.encode())
        h.update(np.ascontiguousarray(label[k]).tobytes())
    return h.hexdigest()


def case_steps(name, spec) -> list:
    """The steps of a case: epochs 0..1, steps 0..2 without (1, 1), 4 views each. The random draws
    (and their order) are those of the first release's writer loop, so old cases stay reproducible."""
    rng = np.random.default_rng(sum(map(ord, name)))
    steps = []
    if spec.get("derived"):
        from lplabel.views import AugmentPolicy, plan_steps

        pairs = [(e, s) for e in range(EPOCHS) for s in range(3) if (e, s) != (1, 1)]
        for e, s, v in plan_steps(
            7,
            pairs,
            DERIVED_SIZES,
            BATCH,
            AugmentPolicy(output_size=8, mix="cutmix", sampler=spec.get("sampler", "lplabel-views-v1")),
        ):
            z = (rng.standard_normal((len(v), NUM_CLASSES)) * 3).astype(np.float32)
            steps.append(
                dict(
                    epoch=e,
                    step=s,
                    image=v.image,
                    crop=v.crop,
                    flip=v.flip,
                    logits=z,
                    mix_partner=v.mix_partner,
                    mix_lambda=v.mix_lambda,
                    mix_box=v.mix_box,
                )
            )
        return steps
    for e in range(EPOCHS):
        order = rng.permutation(N_IMAGES)
        for s in range(3):
            if (e, s) == (1, 1):
                continue  # a pruned step
            ids = order[s * BATCH : (s + 1) * BATCH]
            k = len(ids)
            z = (rng.standard_normal((k, NUM_CLASSES)) * 3).astype(np.float32)
            kw = (
                dict(mix_partner=rng.permutation(k), mix_lambda=float(rng.beta(1, 1)), mix_box=rng.integers(0, 8, 4))
                if spec["mix"]
                else dict(mix_lambda=math.nan)
            )
            steps.append(
                dict(epoch=e, step=s, image=ids, crop=rng.random((k, 4)), flip=rng.random(k) < 0.5, logits=z, **kw)
            )
    return steps


def _label_kwargs(st, label_input, ties=False) -> dict:
    if label_input == "logits":
        return {"logits": st["logits"]}
    kin = label_input[1]
    idx, vals = (_tied_topk if ties else topk_of)(st["logits"], kin)
    kw = {"topk_indices": idx, "topk_values": vals}
    if len(label_input) == 3:
        kw["topk_tail"] = tail_summary(st["logits"], idx, "logsumexp").astype(np.float32)
    return kw


def write_case(name, spec, out: Path):
    steps = case_steps(name, spec)
    codecs = spec["codecs"](steps) if callable(spec["codecs"]) else spec["codecs"]
    label_input = spec.get("label_input", "logits")
    images = ImageIndex(
        [f"class{i % 3}/img{i}.png" for i in range(N_IMAGES)],
        np.arange(N_IMAGES) % 3,
        "0" * 64,
        ["class0", "class1", "class2"],
    )
    extra = {} if label_input == "logits" else {"label_input": label_input}
    if "view_codecs" in spec:
        extra["view_codecs"] = spec["view_codecs"]
    augmentation = {"output_size": 8, "mix": "cutmix" if spec["mix"] else "none"}
    if spec.get("derived"):
        from lplabel.views import AugmentPolicy

        augmentation = AugmentPolicy(
            output_size=8, mix="cutmix", sampler=spec.get("sampler", "lplabel-views-v1")
        ).to_json()
        extra["derived_views"] = DERIVED_SIZES
    with StoreWriter(
        out,
        num_classes=NUM_CLASSES,
        images=images,
        batch_size=BATCH,
        epochs=EPOCHS,
        label_codecs=codecs,
        steps_per_chunk=spec["spc"],
        crop_type=spec.get("crop_type", "float32"),
        augmentation=augmentation,
        teacher={"description": "golden synthetic teacher", "checksum": None, "temperature": 1.0},
        seed=7,
        overwrite=True,
        packed_tables=spec.get("packed", False),
        **extra,
    ) as w:
        for st in steps:
            mix = {k: st[k] for k in ("mix_partner", "mix_lambda", "mix_box") if k in st}
            w.write_step(
                st["epoch"],
                st["step"],
                image=st["image"],
                crop=st["crop"],
                flip=st["flip"],
                **_label_kwargs(st, label_input, spec.get("ties", False)),
                **mix,
            )


def expected_entry(name, path: Path) -> dict:
    with open_store(path) as s:
        entry = {
            "records": s.num_records,
            "steps": [[st.epoch, st.step, step_digest(st, label_types(s))] for st in s.iter_steps()],
            "first_label": {
                k: np.asarray(v[0]).tolist() for k, v in stored_label(s.step_at(0).label, label_types(s)).items()
            },
            "label_codecs": s.header["columns"]["label"]["codecs"],
        }
        if name not in FIRST_RELEASE:  # later cases also pin the view columns' chains
            entry["column_codecs"] = {
                c: s.header["columns"][c]["codecs"] for c in ("image", "crop", "flip", "mix_partner")
            }
        if s.format_version != (1, 0):  # cases of later minor versions pin it
            entry["format_version"] = list(s.format_version)
    return entry


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", nargs="+", metavar="NAME", help="write just these cases")
    ap.add_argument("--overwrite", action="store_true", help="replace existing files (never for a released case)")
    ap.add_argument("--list", action="store_true", help="list the cases and exit")
    args = ap.parse_args(argv)
    out_dir = HERE / "v1"
    out_dir.mkdir(exist_ok=True)
    if args.list:
        for name in CASES:
            print(f"{name:45s} {'present' if (out_dir / f'{name}.lpl').exists() else 'missing'}")
        return
    unknown = sorted(set(args.only or ()) - set(CASES))
    if unknown:
        ap.error(f"unknown cases {unknown}; known: {', '.join(CASES)}")
    names = list(args.only) if args.only else [n for n in CASES if not (out_dir / f"{n}.lpl").exists()]
    exp_path = out_dir / "expected.json"
    expected = json.loads(exp_path.read_text()) if exp_path.exists() else {}
    for name in names:
        path = out_dir / f"{name}.lpl"
        if path.exists() and not args.overwrite:
            ap.error(f"{path} exists; golden files are never regenerated (--overwrite to force a new case)")
        write_case(name, CASES[name], path)
        expected[name] = expected_entry(name, path)
        print(f"wrote {path} ({path.stat().st_size:,} bytes)")
    exp_path.write_text(json.dumps(expected, indent=1) + "\n")


if __name__ == "__main__":
    main()
