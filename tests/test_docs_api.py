"""docs/api.md is a doctest: every example of the Python API runs as written, in an empty
directory, against real stores (a teacher trained on scikit-learn's digits relabels real images).

Why: a reference page whose examples are not run drifts from the code; and the page must show
every verb of the CLI (issue 14), which :func:`test_docs_api_covers_every_verb` checks.
"""

from __future__ import annotations

import doctest
import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"


def _doctest_text() -> str:
    """The page with its code-fence lines blanked: a fence right after an example's expected
    output would otherwise be read as part of it."""
    return "\n".join("" if line.lstrip().startswith("```") else line for line in DOC.read_text().splitlines())


def test_docs_api_covers_every_verb():
    from lplabel import api

    text = DOC.read_text()
    verbs = [n for n in api.__all__ if callable(getattr(api, n)) and not isinstance(getattr(api, n), type)]
    assert len(verbs) == 10
    missing = [n for n in verbs if not re.search(rf">>> .*api\.{n}\(", text)]
    assert missing == []


@pytest.mark.slow
def test_docs_api_examples_run(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    import torch

    monkeypatch.chdir(tmp_path)
    old = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny teacher; and the same floats however many cores the machine has
    try:
        test = doctest.DocTestParser().get_doctest(_doctest_text(), {}, "api.md", str(DOC), 0)
        assert len(test.examples) > 40
        runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
        report = []
        runner.run(test, out=report.append)
    finally:
        torch.set_num_threads(old)
    assert runner.failures == 0, "".join(report)
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["lpld-labels"]  # shards removed
