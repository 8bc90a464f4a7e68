"""The package's import structure: every module imports on its own, the static import graph has
no cycle (imports deferred into functions included), and the library never imports the CLI.

Why: a cycle only shows up for some import orders (``python -c "import lplabel.relabel.core"``
worked or failed depending on what was imported before), and a library that imports the CLI
changes behaviour when the CLI is loaded (issue 14). The CLI layer is ``lplabel/cli.py``,
``lplabel/__main__.py`` and ``lplabel/commands/``; it may import the library, never the reverse.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "lplabel"
CLI_LAYER = ("lplabel.cli", "lplabel.__main__", "lplabel.commands")


def _modules() -> dict[str, tuple[Path, bool]]:
    """Every module of the package: dotted name -> (file, is a package)."""
    mods = {}
    for p in sorted(PKG.rglob("*.py")):
        parts = list(p.relative_to(ROOT).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        mods[".".join(parts[:-1] if is_pkg else parts)] = (p, is_pkg)
    return mods


MODULES = _modules()


def _owner(name: str) -> str | None:
    """The module of the package that ``name`` (a module or an attribute path) lives in."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def import_graph() -> dict[str, set[str]]:
    """module -> the package modules it imports, read from the source (every ``import`` statement,
    at module level or inside functions; ``from .x import y`` counts ``.x.y`` when that is a module)."""
    graph = {}
    for mod, (path, is_pkg) in MODULES.items():
        base = mod if is_pkg else mod.rpartition(".")[0]
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names if a.name.split(".")[0] == "lplabel"]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    parts = base.split(".")
                    full = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
                else:
                    full = node.module or ""
                if full.split(".")[0] != "lplabel":
                    continue
                names = [f"{full}.{a.name}" if f"{full}.{a.name}" in MODULES else full for a in node.names]
            else:
                continue
            deps.update(o for o in map(_owner, names) if o and o != mod)
        graph[mod] = deps
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index, low, stack, on_stack, out, counter = {}, {}, [], set(), [], 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def _in_cli_layer(mod: str) -> bool:
    return any(mod == c or mod.startswith(c + ".") for c in CLI_LAYER)


def test_graph_walker_sees_what_it_should():
    """The walker is not vacuous: it sees module-level, deferred and relative imports."""
    g = import_graph()
    assert len(g) > 50
    assert "lplabel.store.info" in g["lplabel.store"]  # ``from .info import store_info``
    assert "lplabel.commands._common" in g["lplabel.commands.codec_tools"]  # ``from ._common import ...``
    assert "lplabel.cli" in g["lplabel.__main__"]  # ``from .cli import main``
    assert "lplabel.reconstruct" in g["lplabel.store.info"]  # deferred inside a function
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles():
    assert find_cycles(import_graph()) == []


def test_library_never_imports_the_cli():
    bad = {m: sorted(d for d in deps if _in_cli_layer(d)) for m, deps in import_graph().items() if not _in_cli_layer(m)}
    assert {m: d for m, d in bad.items() if d} == {}


# Each module is imported as the *first* lplabel module of an interpreter: a fresh subprocess per
# batch, and before each module every ``lplabel`` entry is dropped from ``sys.modules`` (third-party
# packages stay loaded, which keeps this fast). A module whose optional dependency is missing is
# reported as skipped by name, not as a failure.
_PROBE = r"""
import importlib, json, sys
out = {}
for name in sys.argv[1:]:
    for m in [m for m in sys.modules if m == "lplabel" or m.startswith("lplabel.")]:
        del sys.modules[m]
    try:
        importlib.import_module(name)
        out[name] = "ok"
    except ModuleNotFoundError as e:
        top = (e.name or "").split(".")[0]
        out[name] = f"missing:{top}" if top and top != "lplabel" else f"error:{type(e).__name__}: {e}"
    except BaseException as e:
        out[name] = f"error:{type(e).__name__}: {e}"
print(json.dumps(out))
"""

_BATCHES = 4


@pytest.mark.parametrize("batch", range(_BATCHES))
def test_every_module_imports_first_in_a_fresh_interpreter(batch):
    names = sorted(m for m in MODULES if m != "lplabel.__main__")[batch::_BATCHES]  # __main__ runs the CLI
    res = subprocess.run([sys.executable, "-c", _PROBE, *names], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    got = json.loads(res.stdout.strip().splitlines()[-1])
    assert set(got) == set(names)
    errors = {n: v for n, v in got.items() if v.startswith("error:")}
    assert errors == {}
    # only the optional packages the project declares may be missing (torchvision/timm, ...)
    from lplabel.deps import OPTIONAL

    missing = {v.split(":", 1)[1] for v in got.values() if v.startswith("missing:")}
    assert missing <= set(OPTIONAL), missing


# Old import paths of the modules tools/regroup.py moved (issue 14): each is an alias, bound in
# ``sys.modules`` to the moved module itself, so patches, pickles and teacher specs through the old
# path reach the same object. Imported first, in a fresh interpreter.
# regroup: old names (begin) -- tools/regroup.py leaves the names up to "(end)" as written
MOVED = [
    ("lplabel.views_v2", "lplabel.views.v2"),
    ("lplabel.replay", "lplabel.views.replay"),
    ("lplabel.fidelity", "lplabel.reconstruct.fidelity"),
    ("lplabel.schedule", "lplabel.selection.schedule"),
    ("lplabel.models", "lplabel.teachers.models"),
    ("lplabel.onnx_teacher", "lplabel.teachers.onnx"),
    ("lplabel.onnx_export", "lplabel.teachers.onnx_export"),
    ("lplabel.demo", "lplabel.experiment.demo"),
    ("lplabel.harness", "lplabel.experiment.harness"),
    ("lplabel.harness.distill", "lplabel.experiment.harness.distill"),
    ("lplabel.harness.online", "lplabel.experiment.harness.online"),
    ("lplabel.harness.report", "lplabel.experiment.harness.report"),
    ("lplabel.harness.settings", "lplabel.experiment.harness.settings"),
    ("lplabel.harness.student", "lplabel.experiment.harness.student"),
    ("lplabel.harness.sweep", "lplabel.experiment.harness.sweep"),
]
ALIASES = (
    "lplabel.demo",
    "lplabel.fidelity",
    "lplabel.harness",
    "lplabel.models",
    "lplabel.onnx_export",
    "lplabel.onnx_teacher",
    "lplabel.replay",
    "lplabel.schedule",
    "lplabel.views_v2",
)
# regroup: old names (end)


def test_old_paths_are_the_moved_modules():
    pytest.importorskip("torch")  # the teachers and the harness need it
    probe = (
        "import importlib, json, sys\n"
        "out = []\n"
        "for old, new in json.loads(sys.argv[1]):\n"
        "    for m in [m for m in sys.modules if m == 'lplabel' or m.startswith('lplabel.')]:\n"
        "        del sys.modules[m]\n"
        "    a = importlib.import_module(old)\n"
        "    out.append(a is importlib.import_module(new) and a.__name__ == new)\n"
        "print(json.dumps(out))\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", probe, json.dumps(MOVED)], capture_output=True, text=True, cwd=ROOT, timeout=600
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert dict(zip(map(tuple, MOVED), json.loads(res.stdout))) == {tuple(p): True for p in MOVED}


def test_core_never_imports_the_experiment_stack():
    """lplabel.experiment (harness, demo) measures the core: only the CLI layer and the aliases at the
    old paths import it."""

    def in_experiment(m):
        return m == "lplabel.experiment" or m.startswith("lplabel.experiment.")

    graph = import_graph()
    assert any(in_experiment(d) for d in graph["lplabel.commands.bench"])  # the walker sees it
    bad = {
        m: sorted(filter(in_experiment, deps))
        for m, deps in graph.items()
        if not (_in_cli_layer(m) or in_experiment(m) or m in ALIASES)
    }
    assert {m: d for m, d in bad.items() if d} == {}
