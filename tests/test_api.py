"""``lplabel.api``: every command's work is a library call, and the command prints exactly what
:mod:`lplabel.store.text` makes of the result (issue 14).

Why: a Python user must be able to do what the CLI does and get the same words, without
importing click; and rules that decide an outcome (verify's verdict, compare's mode check) must
live in the library, where both callers meet them. Uses the committed golden stores (real files
of the format) and stores written by :func:`conftest.write_store`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from lplabel import api
from lplabel.cli import main
from lplabel.store import text

GOLDEN = Path(__file__).resolve().parent / "golden" / "v1"
DENSE = GOLDEN / "dense-fp16-cutmix.lpl"
INDEX_ONLY = GOLDEN / "packed-topk2-none-cooc-indexdelta-planes.lpl"


def _cli(*args):
    r = CliRunner().invoke(main, [str(a) for a in args])
    assert r.exception is None or isinstance(r.exception, SystemExit), r.output
    return r


def test_api_imports_without_click_or_torch():
    code = (
        "import sys, lplabel.api, lplabel.store.text; print(sorted(m for m in ('torch', 'click') if m in sys.modules))"
    )
    res = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"


def test_every_verb_is_a_function_of_the_api():
    verbs = {
        "encode",
        "quantize",
        "prune",
        "import_legacy",
        "export_legacy",
        "merge",
        "compare",
        "info",
        "show",
        "verify",
    }
    assert verbs <= set(api.__all__)
    assert all(callable(getattr(api, v)) for v in verbs)


def test_info_and_show_print_the_library_text(tmp_path):
    r = _cli("info", DENSE)
    assert r.exit_code == 0
    assert r.output == "\n".join(text.info_lines(api.info(DENSE))) + "\n"
    r = _cli("show", DENSE, "--epoch", "1", "--all")
    assert r.exit_code == 0
    assert r.output == "\n".join(text.show_lines(api.show(DENSE, 1, None))) + "\n"
    assert json.loads(_cli("show", "--json", DENSE).output) == api.show(DENSE, records=10)


def test_verify_verdict_lives_in_the_report(tmp_path):
    ok = api.verify(DENSE)
    assert (ok.status, ok.exit_status, ok.ok) == ("ok", 0, True)
    r = _cli("verify", DENSE)
    assert (r.exit_code, r.output) == (0, text.verify_lines(ok)[0] + "\n")
    assert json.loads(_cli("verify", "--json", DENSE).output) == json.loads(json.dumps(ok.to_json(), default=str))

    bad = tmp_path / "bad.lpl"
    shutil.copy(INDEX_ONLY, bad)
    from lplabel.store import LabelStore

    with LabelStore(bad) as s:  # the store's own reader finds the label chunk
        base, _ = s.segment_offsets["label"][0]
        _, off, n = s.chunks["label"][0]
    raw = bytearray(bad.read_bytes())
    raw[base + off + n // 2] ^= 0xFF
    bad.write_bytes(bytes(raw))
    rep = api.verify(bad)
    assert (rep.status, rep.exit_status, rep.ok) == ("damaged", 1, False)
    facts = rep.to_json()
    assert facts["status"] == "damaged" and facts["problems"] and all(isinstance(p, str) for p in facts["problems"])
    lines = text.verify_lines(rep)
    assert lines[-1] == f"{len(rep.problems)} problem(s) found in {bad}"
    r = _cli("verify", bad)
    assert r.exit_code == 1 and r.output == "\n".join(lines) + "\n"


def test_compare_checks_the_mode_and_closes_what_it_opened(tmp_path):
    from lplabel.reconstruct import ReconstructError

    cand = tmp_path / "top2.lpl"
    api.quantize(DENSE, cand, topk=2, values="none")
    with pytest.raises(ReconstructError, match="needs a stored tail summary") as e:
        api.compare(DENSE, cand, mode="tail", progress=False)
    assert e.value.path is not None and Path(e.value.path).name == "top2.lpl"

    fds = Path("/proc/self/fd")
    before = len(os.listdir(fds)) if fds.exists() else None
    res = api.compare(DENSE, cand, progress=False)
    if before is not None:
        assert len(os.listdir(fds)) == before  # both stores closed again
    assert res["mode"] == "auto" and res["top5_overlap"] is None
    r = _cli("compare", DENSE, cand)
    assert r.exit_code == 0 and r.output == "\n".join(text.compare_lines(res)) + "\n"


def test_encode_quantize_prune_summaries(tmp_path):
    for args, call in (
        (["encode"], lambda o: api.encode(DENSE, o)),
        (["quantize", "--topk", "3"], lambda o: api.quantize(DENSE, o, topk=3)),
        (["prune", "--keep", "1/2"], lambda o: api.prune(DENSE, o, keep=0.5)),
    ):
        via_api = call(tmp_path / f"api-{args[0]}.lpl")
        assert via_api.path == tmp_path / f"api-{args[0]}.lpl" and via_api.notes == ()
        out = tmp_path / f"cli-{args[0]}.lpl"
        r = _cli(args[0], DENSE, "-o", out, *args[1:])
        assert r.exit_code == 0
        assert r.output == text.written_line(api.info(out)) + "\n"
        a, b = api.info(via_api.path), api.info(out)
        assert (a["records"], a["steps"], a["labels"]) == (b["records"], b["steps"], b["labels"])


def test_merge_result_and_remove_sources_need_work_directories(tmp_path):
    from lplabel.relabel.errors import MergeError

    pytest.importorskip("torch")  # the relabeler (which merge belongs to) imports torch
    with pytest.raises(MergeError, match="not a relabel work directory"):
        api.merge([tmp_path], tmp_path / "m.lpl", remove_sources=True, progress=False)
    assert tmp_path.is_dir()  # nothing removed when nothing was merged
