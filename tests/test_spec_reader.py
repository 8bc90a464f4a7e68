"""The minimal reader printed in spec/FORMAT.md §10 must decode stores exactly like lplabel does.

This keeps the specification honest: the code is taken from the document itself, and run on
(a) every golden file and (b) fresh stores of every codec chain lplabel's commands write
(``label_chain`` variants, view-column chains, zstd dictionaries, and the ``encode`` /
``quantize`` / ``prune`` commands). Decoded blocks are compared byte for byte.
"""

import ast
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from lplabel import StoreWriter, open_store
from lplabel.codecs import Field, Pipeline, available_codecs, label_chain
from lplabel.codecs.bytes import Bytes
from lplabel.codecs.shuffle import Shuffle
from lplabel.codecs.topk import tail_summary, topk_of
from lplabel.codecs.zplanes import ZPlanes
from lplabel.codecs.zstd import DICT_MAGIC, Zstd, train_dictionary

from conftest import realistic_logits, write_store

SPEC = Path(__file__).resolve().parents[1] / "spec" / "FORMAT.md"
GOLDEN = Path(__file__).resolve().parent / "golden" / "v1"
COLUMNS = ("image", "crop", "flip", "mix_partner", "label")
C = 30  # classes of the fresh stores


def _spec_code() -> str:
    text = SPEC.read_text()
    section = text[text.index("## 10.") :]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def _spec_reader():
    ns = {}
    exec(compile(_spec_code(), str(SPEC), "exec"), ns)
    return ns["read_store"]


def _compare(path):
    read_store = _spec_reader()
    f, header, decode = read_store(path)
    try:
        with open_store(path) as s:
            assert header == s.header
            for k in range(len(s.chunks["label"])):
                for col in COLUMNS:
                    if col in s.derived and s.header["augmentation"]["sampler"] == "lplabel-views-v1":
                        # §1.4: the minimal reader refuses v1 derived columns (numpy's streams) clearly
                        with pytest.raises(ValueError, match=f"column '{col}' is derived by lplabel-views-v1"):
                            decode(col, k)
                        continue
                    mine = s.decode_chunk(col, k)
                    theirs = decode(col, k)
                    assert sorted(mine) == sorted(theirs), (col, k)
                    for name in mine:
                        a, b = np.asarray(mine[name]), np.asarray(theirs[name])
                        assert a.shape == b.shape, (col, k, name)
                        assert a.dtype.itemsize == b.dtype.itemsize, (col, k, name)
                        assert a.tobytes() == b.tobytes(), (col, k, name)
    finally:
        f.close()


# -- the reader itself ------------------------------------------------------------------------------------


def test_spec_reader_is_independent_of_lplabel():
    tree = ast.parse(_spec_code())
    mods = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    mods |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert mods <= {"base64", "json", "math", "zlib", "h5py", "numpy", "zstandard"}


def test_spec_reader_names_every_registered_codec():
    code = _spec_code()
    for name in available_codecs():
        assert f'"{name}"' in code, name


# -- (a) golden files -------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(GOLDEN.glob("*.lpl")), ids=lambda p: p.stem)
def test_spec_reader_matches_on_golden_files(path):
    _compare(path)


# -- (b) fresh stores -------------------------------------------------------------------------------------


@pytest.mark.parametrize("packed", [True, False], ids=["1.1-packed", "1.0"])
def test_spec_reader_matches_on_a_multi_segment_store(tmp_path, packed):
    path = tmp_path / "seg.lpl"
    write_store(
        path,
        n_images=64,
        num_classes=50,
        batch_size=8,
        epochs=4,
        steps_per_chunk=3,
        segment_bytes=2000,
        label="topk",
        k=7,
        tail="logsumexp",
        packed_tables=packed,
    )
    with open_store(path) as s:
        assert len(s.segment_offsets["label"]) > 2 and s.packed == packed
    _compare(path)


def test_spec_reader_refuses_unknown_required_extensions(tmp_path):
    import h5py
    import json
    import zlib

    path = tmp_path / "ext.lpl"
    write_store(path)
    with h5py.File(path, "r+") as f:
        h = json.loads(f["header"][()].tobytes())
        h["extensions"]["quantum_labels"] = {"must_understand": True}
        raw = json.dumps(h).encode()
        del f["header"]
        f["header"] = np.frombuffer(raw, np.uint8)
        f.attrs.modify("header_crc32", np.uint32(zlib.crc32(raw)))
    with pytest.raises(ValueError, match="quantum_labels"):
        _spec_reader()(path)


_ORDER = np.random.default_rng(3).permutation(C)

# label_chain options: every value format, index coding, tail, layout, index type, class order
LABEL_CHAINS = {
    "dense-fp32-shuffle": dict(values="fp32", layout="shuffle"),
    "dense-bf16-planes": dict(values="bf16", layout="planes"),
    "dense-int8-shuffle": dict(values="int8", layout="shuffle"),
    "dense-int8-planes": dict(values="int8", layout="planes"),
    "dense-int4-shuffle-f32scale": dict(values="int4", scale_type="float32", layout="shuffle"),
    "dense-int4-planes": dict(values="int4", layout="planes"),
    "topk-fp16-none-raw": dict(k=5, values="fp16", index_coding="none", layout="shuffle"),
    "topk-fp16-rans-map": dict(k=5, values="fp16", layout="rans", classes=C, class_order=_ORDER),
    "topk-none-rans": dict(k=3, values="none", layout="rans", classes=C),
    "topk-fp32-valuedelta-lse": dict(k=5, values="fp32", index_coding="value-delta", tail="logsumexp"),
    "topk-bf16-valuedelta-min-planes": dict(
        k=5, values="bf16", index_coding="value-delta", tail="min", layout="planes"
    ),
    "topk-fp16-indexdelta-u8": dict(k=5, values="fp16", index_coding="index-delta", index_type="uint8"),
    "topk-fp16-indexdelta-i16-map-planes": dict(
        k=5, values="fp16", index_coding="index-delta", index_type="int16", class_order=_ORDER, layout="planes"
    ),
    "topk-bf16-indexdelta-i32-lse": dict(
        k=5, values="bf16", index_coding="index-delta", index_type="int32", tail="logsumexp"
    ),
    "topk-int8-valuedelta-lse-map": dict(
        k=5, values="int8", index_coding="value-delta", tail="logsumexp", class_order=_ORDER
    ),
    "topk-int8-indexdelta-min-planes-f32scale": dict(
        k=5, values="int8", index_coding="index-delta", tail="min", scale_type="float32", layout="planes"
    ),
    "topk-int8-none-noshuffle": dict(k=5, values="int8", index_coding="none", shuffle=False),
    "topk-int4-valuedelta-min-map": dict(
        k=5, values="int4", index_coding="value-delta", tail="min", class_order=_ORDER
    ),
    "topk-int4-indexdelta-planes-map": dict(
        k=5, values="int4", index_coding="index-delta", class_order=_ORDER, layout="planes"
    ),
    "topk-int4-none-even-k": dict(k=6, values="int4", index_coding="none", index_type="int32"),
    # class indices only (topk type "none", format 1.1)
    "topk-none-k1-u8-planes": dict(k=1, values="none", index_coding="none", index_type="uint8", layout="planes"),
    "topk-none-k3-indexdelta-map-shuffle": dict(k=3, values="none", index_coding="index-delta", class_order=_ORDER),
    "topk-none-k4-raw-u8-shuffle": dict(k=4, values="none", index_coding="none", index_type="uint8"),
}


@pytest.mark.parametrize("name", sorted(LABEL_CHAINS))
def test_spec_reader_matches_label_chains(tmp_path, name):
    path = tmp_path / f"{name}.lpl"
    opts = dict(LABEL_CHAINS[name])
    planes = opts.get("layout") == "planes"
    view = {"crop": [ZPlanes(19)], "flip": [ZPlanes(3)], "mix_partner": [ZPlanes(3)]} if planes else None
    write_store(
        path,
        n_images=24,
        num_classes=C,
        batch_size=6,
        epochs=2,
        steps_per_chunk=2,
        label=label_chain(**opts),
        view_codecs=view,
        crop_type="float16" if planes else "float32",
    )
    _compare(path)


def _topk_input_store(path, kin, codecs, tail: bool, order: str = "canonical"):
    """A store written from top-k' input (the writer's label_input ('topk', k'[, 'tail'])).
    ``order``: entries canonical, or ``ties`` (logits rounded to integers, tied entries in random
    order, as legacy LPQLD files), or ``random`` (any order)."""
    rng = np.random.default_rng(5)
    label_input = ("topk", kin, "tail") if tail else ("topk", kin)
    with StoreWriter(
        path,
        num_classes=C,
        images=16,
        batch_size=4,
        epochs=2,
        label_codecs=codecs,
        label_input=label_input,
        steps_per_chunk=2,
    ) as w:
        for e in range(2):
            for s in range(4):
                z = realistic_logits(rng, 4, C)
                if order != "canonical":
                    z = np.round(z)
                idx, vals = topk_of(z, kin)
                if order != "canonical":
                    keys = (rng.random(idx.shape),) + ((-vals,) if order == "ties" else ())
                    p = np.lexsort(keys, axis=1)
                    idx, vals = np.take_along_axis(idx, p, 1), np.take_along_axis(vals, p, 1)
                kw = {"topk_tail": tail_summary(z, idx, "logsumexp").astype(np.float32)} if tail else {}
                w.write_step(
                    e,
                    s,
                    image=rng.permutation(16)[:4],
                    crop=rng.random((4, 4)),
                    flip=rng.random(4) < 0.5,
                    topk_indices=idx,
                    topk_values=vals,
                    mix_partner=rng.permutation(4),
                    mix_lambda=float(rng.random()),
                    mix_box=rng.integers(0, 16, 4),
                    **kw,
                )


@pytest.mark.parametrize(
    "case",
    [
        "merge-lse-int8",
        "same-k-fp16",
        "merge-none-bf16-planes",
        "ties-entryorder-planes",
        "ties-entryorder-rans",
        "random-entryorder-rans",
    ],
)
def test_spec_reader_matches_topk_input(tmp_path, case):
    path = tmp_path / f"{case}.lpl"
    if "entryorder" in case:  # §3.19, and rans order: true in both modes (§3.18)
        from lplabel.recode import with_entry_order

        if "rans" in case:
            pytest.importorskip("numba")
        lay = dict(layout="rans", classes=C) if "rans" in case else dict(layout="planes", index_coding="index-delta")
        _topk_input_store(
            path, 6, with_entry_order(label_chain(k=6, values="fp16", **lay)), tail=False, order=case.split("-")[0]
        )
        _compare(path)
        return
    if case == "merge-lse-int8":
        _topk_input_store(path, 9, label_chain(k=4, values="int8", tail="logsumexp"), tail=True)
    elif case == "same-k-fp16":
        _topk_input_store(path, 4, label_chain(k=4, values="fp16", index_coding="none", index_type="int16"), tail=False)
    else:
        _topk_input_store(
            path, 9, label_chain(k=4, values="bf16", index_coding="index-delta", layout="planes"), tail=True
        )
    _compare(path)


def _chunk_samples(k, values, n=48):
    pre = Pipeline(label_chain(k=k, values=values)[:-1], (Field("logits", "float32", (C,)),))
    rng = np.random.default_rng(11)
    return [pre.encode({"logits": realistic_logits(rng, 6, C)}) for _ in range(n)]


@pytest.mark.parametrize("kind", ["trained", "raw"])
def test_spec_reader_matches_zstd_dictionaries(tmp_path, kind):
    samples = _chunk_samples(5, "int8")
    data = train_dictionary(samples if kind == "trained" else samples[:1], size=1024)
    assert (data[:4] == DICT_MAGIC) == (kind == "trained")
    raw_image_dict = np.random.default_rng(2).integers(0, 8, 300, dtype=np.uint8).tobytes()
    path = tmp_path / f"{kind}.lpl"
    write_store(
        path,
        n_images=24,
        num_classes=C,
        batch_size=6,
        epochs=2,
        label=label_chain(k=5, values="int8", tail="logsumexp", dictionary=data),
        view_codecs={"image": [Bytes(), Shuffle(4), Zstd.with_dictionary(raw_image_dict, 7)]},
    )
    _compare(path)


# -- (b) stores made by the commands ------------------------------------------------------------------------


def _run(*args):
    from lplabel.cli import main

    r = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert r.exit_code == 0, r.output


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    d = tmp_path_factory.mktemp("spec_cli")
    dense = d / "dense.lpl"
    write_store(dense, n_images=36, num_classes=C, batch_size=9, epochs=3)
    k8 = d / "k8.lpl"
    _run(
        "quantize",
        dense,
        "-o",
        k8,
        "--topk",
        8,
        "--tail",
        "logsumexp",
        "--values",
        "bf16",
        "--layout",
        "shuffle",
        "--index-coding",
        "none",
    )
    return {"dir": d, "dense": dense, "k8": k8}


COMMANDS = {
    "quantize-int8-valuedelta-dict": (
        "dense",
        [
            "quantize",
            "--topk",
            6,
            "--values",
            "int8",
            "--tail",
            "logsumexp",
            "--index-coding",
            "value-delta",
            "--layout",
            "shuffle",
            "--dictionary",
            "--dict-size",
            1024,
        ],
    ),
    "quantize-int4-indexdelta-planes": ("dense", ["quantize", "--topk", 6, "--values", "int4", "--tail", "min"]),
    "quantize-fp16-freq-planes": ("dense", ["quantize", "--topk", 6, "--index-coding", "value-delta"]),
    "quantize-dense-int8": ("dense", ["quantize", "--values", "int8"]),
    "quantize-dense-int4-shuffle": ("dense", ["quantize", "--values", "int4", "--layout", "shuffle"]),
    "quantize-topk-source-merge": ("k8", ["quantize", "--topk", 5, "--values", "int8", "--tail", "logsumexp"]),
    "encode-dense": ("dense", ["encode"]),
    "encode-topk-planes": ("k8", ["encode"]),
    "encode-topk-dict": ("k8", ["encode", "--layout", "shuffle", "--dictionary", "--dict-size", 1024]),
    "prune-topk": ("k8", ["prune", "--keep", 0.5, "--seed", 3]),
    "quantize-none-k1": ("dense", ["quantize", "--topk", 1, "--values", "none"]),
    "quantize-topk-source-none": ("k8", ["quantize", "--topk", 3, "--values", "none", "--layout", "shuffle"]),
}


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_spec_reader_matches_command_outputs(sources, name):
    src, args = COMMANDS[name]
    out = sources["dir"] / f"{name}.lpl"
    _run(args[0], sources[src], "-o", out, *args[1:])
    _compare(out)
    if name == "quantize-topk-source-merge":  # a quantized store copied encoded (no re-quantization)
        pruned = sources["dir"] / "pruned-int8.lpl"
        _run("prune", out, "-o", pruned, "--keep", 0.5, "--by", "epoch")
        _compare(pruned)
    if name == "quantize-topk-source-none":  # an index-only store copied (label input: indices alone)
        pruned = sources["dir"] / "pruned-none.lpl"
        _run("prune", out, "-o", pruned, "--keep", 0.5)
        _compare(pruned)


@pytest.mark.parametrize(
    "sampler, mix",
    [
        ("lplabel-views-v2", "cutmix"),
        ("lplabel-views-v2", "mixup"),
        ("lplabel-views-v2", "none"),
        ("lplabel-views-v1", "cutmix"),
    ],
)
def test_spec_reader_regenerates_v2_derived_views_refuses_v1(tmp_path, sampler, mix):
    """§10 regenerates lplabel-views-v2 from the spec alone (bit-identical to lplabel); v1 is refused."""
    from lplabel.views import AugmentPolicy, plan_steps

    rng = np.random.default_rng(4)
    sizes = rng.integers(8, 40, (20, 2))
    sizes[3] = (1, 37)  # a fallback crop
    policy = AugmentPolicy(output_size=8, mix=mix, sampler=sampler)
    path = tmp_path / "derived.lpl"
    with StoreWriter(
        path,
        num_classes=C,
        images=20,
        batch_size=6,
        epochs=2,
        augmentation=policy.to_json(),
        seed=3,
        steps_per_chunk=2,
        derived_views=sizes,
    ) as w:
        for e, s, v in plan_steps(3, [(e, s) for e in range(2) for s in range(4)], sizes, 6, policy):
            w.write_step(
                e,
                s,
                image=v.image,
                crop=v.crop,
                flip=v.flip,
                mix_partner=v.mix_partner,
                mix_lambda=v.mix_lambda,
                mix_box=v.mix_box,
                logits=realistic_logits(rng, len(v), C),
            )
    with open_store(path) as st:
        assert st.derived == COLUMNS[:4]
    _compare(path)


def test_fresh_stores_cover_every_registered_codec():
    """The chains above reach every codec (guards against a new codec the reader test misses)."""
    used = set()
    for opts in LABEL_CHAINS.values():
        used |= {c.name for c in label_chain(**opts)}
    used |= {"zplanes", "shuffle", "zstd", "bytes", "derived"}  # derived: the test above
    used |= {"entryorder"}  # test_spec_reader_matches_topk_input (ties-*, random-*)
    assert set(available_codecs()) <= used
