"""One owner per rule (issue 14): the step record of a source is the views type; synthetic
teacher logits have one generator; every error class is in the documented index."""

from __future__ import annotations

import math

import numpy as np

from conftest import write_store
from lplabel.recode import SourceStep, open_source
from lplabel.views import StepViews


def test_source_step_is_step_views(tmp_path):
    """recode's SourceStep is a StepViews (the six view fields declared and coerced once) plus
    (epoch, step) and the label; steps read from a real store come out as such."""
    st = SourceStep(
        2,
        5,
        [3, 1],
        np.zeros((2, 4), np.float16),
        [True, False],
        [1, 0],
        None,
        [0, 1, 2, 3],
        {"logits": np.zeros((2, 4), np.float32)},
    )
    assert isinstance(st, StepViews) and len(st) == 2 and (st.epoch, st.step) == (2, 5)
    assert st.image.dtype == np.int32 and st.crop.dtype == np.float32 and st.mix_box.dtype == np.int16
    assert math.isnan(st.mix_lambda)  # None: no mixing, as the writer reads it
    path = tmp_path / "s.lpl"
    ref = write_store(path, epochs=1)
    source = open_source(path)
    try:
        steps = list(source.steps())
    finally:
        source.close()
    assert len(steps) == len(ref)
    for got, want in zip(steps, ref):
        assert isinstance(got, StepViews) and (got.epoch, got.step) == (want["epoch"], want["step"])
        assert got.equals(
            StepViews(
                want["image"], want["crop"], want["flip"], want["mix_partner"], want["mix_lambda"], want["mix_box"]
            )
        )


def test_synthetic_logits_have_one_generator():
    """The legacy writers' teacher (interop.synth) is lplabel.testing.realistic_logits with the
    image's class ids * 7919 mod C and a 3..9 margin: the same numbers from the same stream."""
    from lplabel.interop.synth import realistic_logits as teacher
    from lplabel.testing import realistic_logits

    ids = np.array([0, 5, 17, 4000])
    a = teacher(100, spread=2.0)(ids, np.random.default_rng(1))
    b = realistic_logits(np.random.default_rng(1), 4, 100, classes=ids * 7919, spread=2.0, margin=(3.0, 9.0))
    assert a.dtype == np.float32 and np.array_equal(a, b)


def test_error_index_lists_every_error_class():
    """docs/errors.md lists every exception and warning class lplabel defines, under the module that
    defines it, with its bases and the CLI's exit status (2 for every LplabelError)."""
    import importlib
    import inspect
    import pkgutil
    import re
    from pathlib import Path

    import lplabel
    from lplabel.errors import LplabelError

    found, unimportable = {}, set()
    for m in pkgutil.walk_packages(lplabel.__path__, "lplabel."):
        if m.name.endswith("__main__"):  # runs the CLI
            continue
        try:
            mod = importlib.import_module(m.name)
        except ModuleNotFoundError as e:  # an optional package missing here: its rows cannot be checked
            assert not (e.name or "").startswith("lplabel"), e
            unimportable.add(m.name)
            continue
        for obj in vars(mod).values():
            if inspect.isclass(obj) and issubclass(obj, BaseException) and obj.__module__ == mod.__name__:
                found[(mod.__name__, obj.__qualname__)] = obj
    rows, module = {}, None
    for line in (Path(__file__).resolve().parents[1] / "docs" / "errors.md").read_text().splitlines():
        head = re.match(r"### `([\w.]+)`$", line)
        if head:
            module = head.group(1)
        row = re.match(r"\| `(\w+)` \| (.+?) \| (.+?) \| .+ \|$", line)
        if row:
            rows[(module, row.group(1))] = (row.group(2), row.group(3))
    assert {k for k in rows if k[0] not in unimportable} == set(found)
    for key, cls in found.items():
        bases, exit_status = rows[key]
        assert bases == ", ".join(f"`{b.__name__}`" for b in cls.__bases__), key
        assert (exit_status == "2") == issubclass(cls, LplabelError), key
    assert sum(issubclass(c, LplabelError) for c in found.values()) >= 49
