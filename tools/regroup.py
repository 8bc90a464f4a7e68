#!/usr/bin/env python3
"""Group lplabel's loose root modules into packages (issue 14), with import aliases at the old paths.

Run from anywhere inside the repository, on a clean git tree::

    python tools/regroup.py            # move, rewrite imports and references, write the aliases
    python tools/regroup.py --dry-run  # print what it would do, change nothing
    python tools/regroup.py --format   # then `ruff format lplabel tests benchmarks` and add the
                                       # `ruff format --check` step to .ci/run
    python tools/regroup.py --commit [--format]  # and commit: pure renames (so `git log --follow`
                                       # traces the moved files), then the rewrites, then the format

It is idempotent: on a tree where the moves are done it only rewrites references that still use
the old paths (code merged after the move), and prints ``nothing to do`` when there are none.

What moves (the table :data:`MOVES`; a group's main module becomes its package's ``__init__``, so
``lplabel.views``, ``lplabel.reconstruct``, ``lplabel.selection`` and ``lplabel.teachers`` keep their
dotted names and stay the very same module objects; the satellites move inside):

* views + replay (spec/FORMAT.md §11): ``lplabel.views`` <- ``views_v2`` (``.v2``),
  ``_views_v2_kernels`` (``._v2_kernels``), ``replay`` (``.replay``);
* reconstruction + fidelity (§4): ``lplabel.reconstruct`` <- ``fidelity``;
* record selection + reuse schedules (§5; one owner of reuse): ``lplabel.selection`` <- ``schedule``;
* teachers: ``lplabel.teachers`` <- ``models``, ``onnx_teacher`` (``.onnx``), ``onnx_export``;
* the experiment stack, apart from the core: ``lplabel.experiment`` <- ``harness`` (package), ``demo``.

Why an alias replaces itself in ``sys.modules`` (rather than ``from new import *``): the old dotted
path then names the *same* module object, so monkeypatching through it, ``isinstance`` on its
classes, pickles that name it (error classes, ``torch.save``-d modules) and ``importlib`` look-ups
(teacher specs ``lplabel.models:NAME``, written into store headers, resolved by ``import_module``)
all keep working, and no warning is raised (the suite may run with warnings as errors). An alias
of a package also registers the package's submodules under the old name, so ``import
lplabel.harness.sweep`` cannot load a second copy of ``sweep``. ``lplabel.models`` is kept for good
(header vocabulary); the others are for one release.

How references are rewritten:

* relative imports in ``lplabel/`` (``from ..replay import x``) are resolved with the module's name
  *before* the move and re-written relative to its name *after* it (so a module that moves deeper
  still reaches ``..errors``); ``from . import views_v2 as _v2`` becomes ``from .views import v2 as
  _v2`` -- parsed with ``ast``, only the import statement's text is replaced;
* dotted names (``lplabel.replay`` -> ``lplabel.views.replay``) and source paths
  (``lplabel/replay.py`` -> ``lplabel/views/replay.py``) are replaced as exact tokens in the
  package, tests, benchmarks (not ``benchmarks/results/``: dated records), examples, docs, spec,
  README, Makefile, pyproject.toml and .ci -- never a name followed by ``:NAME`` (a teacher spec
  such as ``lplabel.models:convnet`` is header vocabulary and stays as written).

CHANGELOG.md and benchmarks/results/ are history: their old names stay; the move adds one
CHANGELOG entry, a README line on the package layout, and two tests to tests/test_imports.py (the
aliases are the moved modules, imported first in a fresh interpreter; the core never imports
``lplabel.experiment``). ``--format`` also updates the comments that said the code was not
formatted yet (pyproject.toml, .ci/run, README) and records the lines still over 120 characters.
It stops with a message, before writing anything, on what it cannot do safely (a move whose old
and new paths both hold code; an import it cannot read).
"""

from __future__ import annotations

import argparse
import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

# (old path, new path) relative to the repository root; a directory moves as a whole.
MOVES = [
    ("lplabel/views.py", "lplabel/views/__init__.py"),
    ("lplabel/views_v2.py", "lplabel/views/v2.py"),
    ("lplabel/_views_v2_kernels.py", "lplabel/views/_v2_kernels.py"),
    ("lplabel/replay.py", "lplabel/views/replay.py"),
    ("lplabel/reconstruct.py", "lplabel/reconstruct/__init__.py"),
    ("lplabel/fidelity.py", "lplabel/reconstruct/fidelity.py"),
    ("lplabel/selection.py", "lplabel/selection/__init__.py"),
    ("lplabel/schedule.py", "lplabel/selection/schedule.py"),
    ("lplabel/teachers.py", "lplabel/teachers/__init__.py"),
    ("lplabel/models.py", "lplabel/teachers/models.py"),
    ("lplabel/onnx_teacher.py", "lplabel/teachers/onnx.py"),
    ("lplabel/onnx_export.py", "lplabel/teachers/onnx_export.py"),
    ("lplabel/demo.py", "lplabel/experiment/demo.py"),
    ("lplabel/harness", "lplabel/experiment/harness"),
]

# Packages that no module moves *into* as its __init__: created with this docstring.
NEW_PACKAGES = {
    "lplabel/experiment/__init__.py": (
        '"""The experiment stack, apart from the core: the accuracy harness (:mod:`lplabel.experiment.harness`,\n'
        "``lplabel bench accuracy``) and the end-to-end demo (:mod:`lplabel.experiment.demo`, ``lplabel demo``).\n\n"
        "They train teachers and students to *measure* the label stores; the core (store, codecs, relabel,\n"
        "loader, interop) never imports them.\n"
        '"""\n'
    ),
}

# Old paths that get no alias: private modules (nothing outside lplabel may import them).
NO_ALIAS = {"lplabel/_views_v2_kernels.py"}
# Aliases kept for good, with why (the others say "for one release").
PERMANENT = {
    "lplabel/models.py": "kept for good: teacher specs ``lplabel.models:NAME`` are written into store\nheaders",
}

SHIM_MARK = "# lplabel-regroup alias"

# Where dotted names and paths are rewritten (globs relative to the root), and what is left alone.
TEXT_GLOBS = [
    "lplabel/**/*.py",
    "tests/**/*.py",
    "benchmarks/**/*.py",
    "examples/**/*",
    "docs/**/*.md",
    "spec/**/*.md",
    "*.md",
    "Makefile",
    "pyproject.toml",
    ".ci/*",
]
TEXT_EXCLUDE = ["CHANGELOG.md", "benchmarks/results/", "tools/", "tests/golden/v1/"]
PY_GLOBS = ["lplabel/**/*.py", "tests/**/*.py", "benchmarks/**/*.py", "examples/**/*.py", ".ci/*.py"]

CHANGELOG_ENTRY = """\
- The loose root modules are grouped into packages (issue 14, `tools/regroup.py`):
  `lplabel.views` holds the samplers and the replay kernel (`views.v2`, `views.replay`; spec §11),
  `lplabel.reconstruct` holds `reconstruct.fidelity` (§4), `lplabel.selection` holds
  `selection.schedule` (§5, the one owner of reuse), `lplabel.teachers` holds `teachers.models`,
  `teachers.onnx` (was `onnx_teacher`) and `teachers.onnx_export`, and `lplabel.experiment` holds the
  accuracy harness and the demo (`experiment.harness`, `experiment.demo`). The old import paths
  (`lplabel.replay`, `lplabel.harness`, ...) still work for one release: each is the same module
  object, not a copy. `lplabel.models` stays for good, so teacher specs `lplabel.models:NAME`
  in existing headers and scripts keep resolving; new headers write the same spec.
"""

TESTS_TEMPLATE = """

# Old import paths of the modules tools/regroup.py moved (issue 14): each is an alias, bound in
# ``sys.modules`` to the moved module itself, so patches, pickles and teacher specs through the old
# path reach the same object. Imported first, in a fresh interpreter.
# regroup: old names (begin) -- tools/regroup.py leaves the names up to "(end)" as written
MOVED = [
{rows}]
ALIASES = ({aliases})
# regroup: old names (end)


def test_old_paths_are_the_moved_modules():
    pytest.importorskip("torch")  # the teachers and the harness need it
    probe = (
        "import importlib, json, sys\\n"
        "out = []\\n"
        "for old, new in json.loads(sys.argv[1]):\\n"
        "    for m in [m for m in sys.modules if m == 'lplabel' or m.startswith('lplabel.')]:\\n"
        "        del sys.modules[m]\\n"
        "    a = importlib.import_module(old)\\n"
        "    out.append(a is importlib.import_module(new) and a.__name__ == new)\\n"
        "print(json.dumps(out))\\n"
    )
    res = subprocess.run([sys.executable, "-c", probe, json.dumps(MOVED)], capture_output=True, text=True,
                         cwd=ROOT, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert dict(zip(map(tuple, MOVED), json.loads(res.stdout))) == {{tuple(p): True for p in MOVED}}


def test_core_never_imports_the_experiment_stack():
    \"\"\"lplabel.experiment (harness, demo) measures the core: only the CLI layer and the aliases at the
    old paths import it.\"\"\"
    def in_experiment(m):
        return m == "lplabel.experiment" or m.startswith("lplabel.experiment.")

    graph = import_graph()
    assert any(in_experiment(d) for d in graph["lplabel.commands.bench"])  # the walker sees it
    bad = {{m: sorted(filter(in_experiment, deps)) for m, deps in graph.items()
           if not (_in_cli_layer(m) or in_experiment(m) or m in ALIASES)}}
    assert {{m: d for m, d in bad.items() if d}} == {{}}
"""

README_LINE = """\
- Package layout: the core -- `store`, `codecs`, `relabel`, `torch`, `interop`, `views` (samplers,
  replay), `reconstruct` (and `fidelity`), `selection` (and reuse `schedule`), `teachers` -- and the
  experiment stack, `lplabel.experiment` (accuracy harness, demo), which the core does not import.
"""

COMMIT_MOVE = (
    "regroup (1/2): git mv the loose root modules into packages (issue 14; tools/regroup.py)\n\n"
    "Pure renames, so that `git log --follow` and `git blame` trace every moved file; the imports\n"
    "and the aliases at the old paths follow in the next commit (this one alone does not import)."
)
COMMIT_REWRITE = (
    "regroup (2/2): imports, references and same-object aliases at the old paths (issue 14; tools/regroup.py)"
)
COMMIT_FORMAT = "ruff format lplabel tests benchmarks; .ci/run checks it (issue 14; tools/regroup.py --format)"

# Comments that said the code was not formatted yet: (file, old text, new text).
FORMAT_TEXT = [
    (
        "README.md",
        "- `.ci/run` runs `make test` on a clean clone, then `ruff check lplabel tests benchmarks` (rules and\n"
        "  a complexity budget that may only go down: `[tool.ruff]` in `pyproject.toml`; ruff is in the `dev` extra).\n",
        "- `.ci/run` runs `make test` on a clean clone, then `ruff check` and `ruff format --check` of `lplabel\n"
        "  tests benchmarks` (rules and a complexity budget that may only go down: `[tool.ruff]` in\n"
        "  `pyproject.toml`; ruff is in the `dev` extra).\n",
    ),
    (
        "pyproject.toml",
        "# Lint (`ruff check lplabel tests benchmarks`, run by .ci/run after the tests). `ruff format` is not\n"
        "# applied yet (it would rewrite most files at once); the line length is the one it will use.\n",
        "# Lint and format: `ruff check` and `ruff format --check` of lplabel tests benchmarks, run by .ci/run\n"
        "# after the tests (`python tools/regroup.py --format` formatted the code, issue 14).\n",
    ),
    (
        ".ci/run",
        "#     (`ruff check lplabel tests benchmarks`, rules and complexity budget in pyproject.toml);\n",
        "#     and format (`ruff check` and `ruff format --check` of lplabel tests benchmarks, rules and\n"
        "#     complexity budget in pyproject.toml);\n",
    ),
]

CI_FORMAT_LINE = ".venv/bin/ruff format --check lplabel tests benchmarks"
FORMAT_TARGETS = ["lplabel", "tests", "benchmarks"]


def module_of(path: str) -> str:
    """``lplabel/views/__init__.py`` -> ``lplabel.views``; a directory -> its package name."""
    p = path[:-3] if path.endswith(".py") else path
    if p.endswith("/__init__"):
        p = p[: -len("/__init__")]
    return p.replace("/", ".")


MODULE_MAP = {module_of(o): module_of(n) for o, n in MOVES if module_of(o) != module_of(n)}


def map_module(name: str) -> str:
    """A dotted module name after the moves (submodules of a moved package follow it)."""
    for old in sorted(MODULE_MAP, key=len, reverse=True):
        if name == old or name.startswith(old + "."):
            return MODULE_MAP[old] + name[len(old) :]
    return name


class Regroup:
    def __init__(self, root: Path, dry_run: bool):
        self.root, self.dry = root, dry_run
        self.changes: list[str] = []
        self.planned: dict[str, str] = {}

    # ---- helpers -------------------------------------------------------------------------------
    def log(self, msg: str) -> None:
        self.changes.append(msg)
        print(("would: " if self.dry else "") + msg)

    def git(self, *args: str) -> None:
        if not self.dry:
            subprocess.run(["git", *args], cwd=self.root, check=True)

    def is_alias(self, rel: str) -> bool:
        p = self.root / rel
        return p.is_file() and SHIM_MARK in p.read_text()

    def write(self, rel: str, text: str) -> None:
        if not self.dry:
            (self.root / rel).write_text(text)

    # ---- plan ----------------------------------------------------------------------------------
    def pending_moves(self) -> list[tuple[str, str]]:
        todo = []
        for old, new in MOVES:
            o, n = self.root / old, self.root / new
            old_real = o.exists() and not self.is_alias(old) and not (o.is_dir() and not any(o.rglob("*.py")))
            if old_real and n.exists():
                sys.exit(f"regroup: both {old} and {new} exist; merge them by hand, then rerun")
            if old_real:
                todo.append((old, new))
            elif not n.exists():
                sys.exit(f"regroup: neither {old} nor {new} exists; update MOVES in {__file__}")
        return todo

    def file_names(self, todo) -> dict[Path, tuple[str, bool, str, bool]]:
        """Each package .py file -> (module name before, is a package before, after, is a package after)."""
        moving = dict(todo)
        out = {}
        for p in sorted((self.root / "lplabel").rglob("*.py")):
            rel = p.relative_to(self.root).as_posix()
            new_rel = rel
            for old, new in moving.items():
                if rel == old:
                    new_rel = new
                elif rel.startswith(old + "/"):
                    new_rel = new + rel[len(old) :]
            out[p] = (module_of(rel), rel.endswith("__init__.py"), module_of(new_rel), new_rel.endswith("__init__.py"))
        return out

    # ---- step 1: relative imports, rewritten in place before the files move --------------------
    @staticmethod
    def _relative(frm: str, frm_pkg: bool, target: str) -> str:
        base = frm.split(".") if frm_pkg else frm.split(".")[:-1]
        tgt = target.split(".")
        common = 0
        while common < min(len(base), len(tgt)) and base[common] == tgt[common]:
            common += 1
        if common == 0:
            raise ValueError(f"{target} is outside {frm}'s top package")
        return "." * (len(base) - common + 1) + ".".join(tgt[common:])

    @staticmethod
    def _resolve(mod: str, is_pkg: bool, level: int, name: str | None) -> str:
        parts = mod.split(".") if is_pkg else mod.split(".")[:-1]
        parts = parts[: len(parts) - level + 1]
        return ".".join(parts + ([name] if name else []))

    def rewrite_imports(self, path: Path, old: str, old_pkg: bool, new: str, new_pkg: bool, known: set[str]) -> None:
        """Rewrite the import statements of one file: relative ones (package files) from its old
        location to its new one; ``from PKG import MODULE`` forms whose MODULE moved (any file)."""
        src = path.read_text()
        tree = ast.parse(src, str(path))
        lines = src.splitlines(keepends=True)
        starts = [0]
        for ln in lines:
            starts.append(starts[-1] + len(ln))

        def offset(lineno: int, col: int) -> int:
            return starts[lineno - 1] + len(lines[lineno - 1].encode()[:col].decode())

        edits = []  # (start, end, new text)
        for node in ast.walk(tree):
            if not isinstance(node, ast.ImportFrom):
                continue
            if node.level:
                if old is None:  # not a package file: no relative imports to fix
                    continue
                target = self._resolve(old, old_pkg, node.level, node.module)
            elif (node.module or "").split(".")[0] == "lplabel":
                target = node.module
            else:
                continue
            moved_names = [
                a
                for a in node.names
                if f"{target}.{a.name}" in known and map_module(f"{target}.{a.name}") != f"{target}.{a.name}"
            ]

            def spell(mod: str) -> str:
                return self._relative(new, new_pkg, mod) if node.level else mod

            if moved_names:
                groups: dict[str, list[str]] = {}  # new parent -> names, in the statement's order
                for a in node.names:
                    full = f"{target}.{a.name}"
                    if full in known:
                        parent, _, last = map_module(full).rpartition(".")
                    else:
                        parent, last = map_module(target), a.name
                    bound = a.asname or a.name
                    groups.setdefault(parent, []).append(last if last == bound else f"{last} as {bound}")
                indent = lines[node.lineno - 1][: len(lines[node.lineno - 1].encode()[: node.col_offset].decode())]
                if len(groups) > 1 and indent.strip():
                    sys.exit(
                        f"regroup: {path}:{node.lineno}: one import of modules that now live in "
                        f"different packages ({sorted(groups)}); split it by hand, then rerun"
                    )
                # modules that now live in different packages: one statement per package
                text = ("\n" + indent).join(f"from {spell(par)} import {', '.join(ns)}" for par, ns in groups.items())
                s, e = offset(node.lineno, node.col_offset), offset(node.end_lineno, node.end_col_offset)
                if src[s:e] != text:
                    edits.append((s, e, text))
                continue
            if not node.level:
                continue  # absolute module paths: the dotted-name pass rewrites them
            want = spell(map_module(target))
            s = offset(node.lineno, node.col_offset)
            m = re.compile(r"from\s+(\.+[\w.]*)\s+import").match(src, s)
            if not m:
                sys.exit(f"regroup: {path}:{node.lineno}: cannot read this import statement")
            if m.group(1) != want:
                edits.append((m.start(1), m.end(1), want))
        if not edits:
            return
        for s, e, text in sorted(edits, reverse=True):
            self.log(f"import  {path.relative_to(self.root)}: {src[s:e].splitlines()[0]!r} -> {text!r}")
            src = src[:s] + text + src[e:]
        self.planned[path.relative_to(self.root).as_posix()] = src  # written once every file is planned

    # ---- step 2: move, new packages, aliases ---------------------------------------------------
    def move(self, todo) -> None:
        for old, new in todo:
            self.log(f"move    {old} -> {new}")
            if not self.dry:
                (self.root / new).parent.mkdir(parents=True, exist_ok=True)
            self.git("mv", old, new)
            left = self.root / old
            if not self.dry and left.is_dir():  # untracked leftovers of a moved package: byte code only
                for cache in sorted(left.rglob("__pycache__"), reverse=True):
                    shutil.rmtree(cache)
                for d in sorted((d for d in left.rglob("*") if d.is_dir()), reverse=True):
                    if not any(d.iterdir()):
                        d.rmdir()
                if any(left.iterdir()):
                    sys.exit(f"regroup: {old} still holds untracked files after the move: {sorted(left.iterdir())}")
                left.rmdir()
        for rel, text in NEW_PACKAGES.items():
            if not (self.root / rel).exists():
                self.log(f"create  {rel}")
                if not self.dry:
                    (self.root / rel).parent.mkdir(parents=True, exist_ok=True)
                self.write(rel, text)
                self.git("add", rel)

    def alias_text(self, old: str, new: str) -> str:
        old_mod, new_mod = module_of(old), module_of(new)
        parent, _, last = new_mod.rpartition(".")
        rel_parent = self._relative(old_mod, False, parent)
        why = PERMANENT.get(old, "kept for one release: import the new path")
        lines = [
            f'"""Alias: ``{old_mod}`` is :mod:`{new_mod}` (moved by issue 14, tools/regroup.py).',
            "",
            f"{why[0].upper()}{why[1:]}. The old name is bound to the same module object in ``sys.modules``",
            "(not a copy), so monkeypatching, pickles and ``importlib`` look-ups through it reach the real",
            "module, and importing it warns about nothing.",
            '"""',
            "",
            SHIM_MARK,
        ]
        pkg_dir = (self.root / new) if (self.root / new).is_dir() else (self.root / old)
        if pkg_dir.is_dir():
            subs = sorted(p.stem for p in pkg_dir.glob("*.py") if p.stem != "__init__")
            lines += [
                "import importlib",
                "import sys",
                "",
                f"from {rel_parent} import {last} as _moved",
                "",
                f"# its submodules too: else `import {old_mod}.X` would load a second copy of X",
                "for _name in (" + ", ".join(f'"{n}"' for n in subs) + ("," if len(subs) == 1 else "") + "):",
                '    sys.modules[f"{__name__}.{_name}"] = importlib.import_module(f"{_moved.__name__}.{_name}")',
                "sys.modules[__name__] = _moved",
                "",
            ]
        else:
            lines += [
                "import sys",
                "",
                f"from {rel_parent} import {last} as _moved",
                "",
                "sys.modules[__name__] = _moved",
                "",
            ]
        return "\n".join(lines)

    def aliases(self, todo) -> None:
        moved = {old for old, _ in todo}
        for old, new in MOVES:
            if module_of(old) == module_of(new) or old in NO_ALIAS:
                continue
            rel = old[:-3] + ".py" if old.endswith(".py") else old + ".py"
            text = self.alias_text(old, new)
            p = self.root / rel
            if p.exists() and p.read_text() == text:
                continue
            if p.exists() and not self.is_alias(rel) and not (self.dry and old in moved):
                sys.exit(f"regroup: {rel} exists and is not an alias; move it by hand, then rerun")
            self.log(f"alias   {rel} -> {module_of(new)}")
            self.write(rel, text)
            self.git("add", rel)

    # ---- step 3: dotted names and paths in text ------------------------------------------------
    def text_files(self) -> list[Path]:
        seen = set()
        for g in TEXT_GLOBS:
            for p in self.root.glob(g):
                rel = p.relative_to(self.root).as_posix()
                if not p.is_file() or any(rel == x or rel.startswith(x) for x in TEXT_EXCLUDE):
                    continue
                if "__pycache__" in p.parts or p.suffix in (".pyc", ".lpl", ".npz", ".h5", ".onnx", ".pt"):
                    continue
                seen.add(p)
        return sorted(seen)

    def rewrite_text(self) -> None:
        subs = []
        for old in sorted(MODULE_MAP, key=len, reverse=True):
            subs.append((re.compile(r"(?<![\w.])" + re.escape(old) + r"(?!\w|:[\w{\"'])"), MODULE_MAP[old]))
        for old, new in sorted(MOVES, key=lambda m: len(m[0]), reverse=True):
            if old.endswith(".py"):
                subs.append((re.compile(r"(?<![\w/.-])" + re.escape(old) + r"(?!\w)"), new))
            else:
                subs.append((re.compile(r"(?<![\w/.-])" + re.escape(old) + r"(?![\w.])"), new))
        for p in self.text_files():
            rel = p.relative_to(self.root).as_posix()
            try:
                text = p.read_text()
            except UnicodeDecodeError:
                continue
            if SHIM_MARK in text:
                continue
            # rewrite outside the regions that name the old paths on purpose (the alias tests)
            pieces, n = (
                re.split(r"(# regroup: old names \(begin\).*?# regroup: old names \(end\))", text, flags=re.S),
                0,
            )
            for i in range(0, len(pieces), 2):
                for rx, repl in subs:
                    pieces[i], k = rx.subn(repl, pieces[i])
                    n += k
            new_text = "".join(pieces)
            if n:
                self.log(f"names   {rel}: {n} reference(s)")
                self.write(rel, new_text)

    def tests(self) -> None:
        """Append to tests/test_imports.py: the aliases are the new modules (imported first, in a fresh
        interpreter), and the core never imports the experiment stack."""
        p = self.root / "tests" / "test_imports.py"
        text = p.read_text() if p.exists() else ""
        if "def test_old_paths_are_the_moved_modules" in text:
            return
        if "def import_graph(" not in text or "def _in_cli_layer(" not in text:
            print("note: tests/test_imports.py lacks import_graph/_in_cli_layer: add the alias tests by hand")
            return
        pairs = []
        for old, new in MOVES:
            if module_of(old) == module_of(new) or old in NO_ALIAS:
                continue
            pairs.append((module_of(old), module_of(new)))
            pkg = (self.root / old) if (self.root / old).is_dir() else (self.root / new)
            if pkg.is_dir():
                subs = sorted(q.stem for q in pkg.glob("*.py") if q.stem != "__init__")
                pairs += [(f"{module_of(old)}.{n}", f"{module_of(new)}.{n}") for n in subs]
        aliases = sorted({module_of(o) for o, n in MOVES if module_of(o) != module_of(n) and o not in NO_ALIAS})
        rows = "".join(f'    ("{a}", "{b}"),\n' for a, b in pairs)
        block = TESTS_TEMPLATE.format(rows=rows, aliases=", ".join(f'"{a}"' for a in aliases))
        self.log("tests   tests/test_imports.py: the aliases and the experiment stack's place")
        self.write("tests/test_imports.py", text.rstrip("\n") + "\n" + block)

    def readme(self) -> None:
        p = self.root / "README.md"
        text = p.read_text() if p.exists() else ""
        anchor = "  `lplabel/commands/` may import the CLI.\n"
        if "lplabel.experiment" in text:
            return
        if anchor not in text:
            print("note: README.md: no place found for the package layout line; add it by hand")
            return
        self.log("entry   README.md")
        self.write("README.md", text.replace(anchor, anchor + README_LINE, 1))

    def changelog(self) -> None:
        p = self.root / "CHANGELOG.md"
        text = p.read_text() if p.exists() else ""
        if "tools/regroup.py" in text:
            return
        head = text.find("## [Unreleased]")
        changed = text.find("### Changed\n", head) if head >= 0 else -1
        if changed < 0:
            print("note: CHANGELOG.md has no '### Changed' under '## [Unreleased]': add the entry by hand")
            return
        at = changed + len("### Changed\n")
        self.log("entry   CHANGELOG.md")
        self.write("CHANGELOG.md", text[:at] + CHANGELOG_ENTRY + text[at:])

    # ---- the whole run -------------------------------------------------------------------------
    def run(self, commit: bool = False) -> int:
        todo = self.pending_moves()
        names = self.file_names(todo)
        known = {old for old, *_ in names.values()} | set(MODULE_MAP)
        for path, (old, old_pkg, new, new_pkg) in names.items():
            if not self.is_alias(path.relative_to(self.root).as_posix()):
                self.rewrite_imports(path, old, old_pkg, new, new_pkg, known)
        for g in PY_GLOBS:
            for path in sorted(self.root.glob(g)):
                if path in names or "__pycache__" in path.parts or not path.is_file():
                    continue
                self.rewrite_imports(path, None, False, None, False, known)
        for rel, text in self.planned.items():  # nothing is written before every import is understood
            self.write(rel, text)
        if todo:
            self.changelog()
            self.readme()
            self.tests()
        self.move(todo)
        if commit and todo:
            self.git("commit", "-q", "-m", COMMIT_MOVE)
        self.aliases(todo)
        self.rewrite_text()
        if commit and self.changes:
            self.git("add", "-u")
            self.git("commit", "-q", "-m", COMMIT_REWRITE)
        return len(self.changes)


def ruff_format(root: Path, dry: bool) -> int:
    # the ruff pinned by pyproject's dev extra: $RUFF, the repository's .venv, beside this python, on PATH
    found = [
        os.environ.get("RUFF"),
        root / ".venv" / "bin" / "ruff",
        Path(sys.executable).with_name("ruff"),
        shutil.which("ruff"),
    ]
    ruff = next((str(c) for c in found if c and Path(c).is_file()), None)
    if ruff is None:
        sys.exit("regroup: --format needs ruff (pip install ruff, or RUFF=/path/to/ruff)")
    n = 0
    r = subprocess.run([ruff, "format", "--check", *FORMAT_TARGETS], cwd=root, capture_output=True, text=True)
    if r.returncode:
        summary = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else "files to reformat"
        print(("would: " if dry else "") + f"format  ruff format {' '.join(FORMAT_TARGETS)}: {summary}")
        n += 1
        if not dry:
            subprocess.run([ruff, "format", *FORMAT_TARGETS], cwd=root, check=True)
            # A noqa comment on the first line of a statement that the formatter splits stays on that line
            # while the names it silenced move to lines of their own (re-exports, imports after an
            # importorskip): put the same codes back where ruff now reports them, then re-format.
            chk = [ruff, "check", *FORMAT_TARGETS]
            if subprocess.run(chk, cwd=root, capture_output=True).returncode:
                subprocess.run([*chk, "--add-noqa"], cwd=root, check=True)
                subprocess.run([ruff, "format", *FORMAT_TARGETS], cwd=root, check=True)
                if subprocess.run(chk, cwd=root).returncode:
                    sys.exit("regroup: ruff check fails after formatting; fix the lines above by hand")
    for rel, before, after in FORMAT_TEXT:
        p = root / rel
        text = p.read_text()
        if before in text:
            print(("would: " if dry else "") + f"comment {rel}")
            if not dry:
                p.write_text(text.replace(before, after))
            n += 1
    if not dry:
        r = subprocess.run(
            [ruff, "check", "--select", "E501", "--statistics", *FORMAT_TARGETS],
            cwd=root,
            capture_output=True,
            text=True,
        )
        m = re.search(r"^(\d+)\s+E501", r.stdout, re.M)
        pp = root / "pyproject.toml"
        text = pp.read_text()
        new = re.sub(
            r'"E501",  # .*',
            f'"E501",  # {m.group(1) if m else 0} lines over 120 after `ruff format` (strings and '
            "comments it does not wrap); fix them, then drop this",
            text,
            count=1,
        )
        if new != text:
            print("comment pyproject.toml: E501")
            pp.write_text(new)
            n += 1
    ci = root / ".ci" / "run"
    text = ci.read_text()
    if CI_FORMAT_LINE not in text:
        anchor = ".venv/bin/ruff check lplabel tests benchmarks\n"
        if anchor not in text:
            sys.exit(f"regroup: .ci/run has no line {anchor.strip()!r}; add {CI_FORMAT_LINE!r} by hand")
        print(("would: " if dry else "") + "ci      .ci/run: + " + CI_FORMAT_LINE)
        if not dry:
            ci.write_text(text.replace(anchor, anchor + 'echo "== ruff format --check"\n' + CI_FORMAT_LINE + "\n"))
        n += 1
    return n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dry-run", action="store_true", help="print what would change, change nothing")
    ap.add_argument(
        "--format",
        action="store_true",
        help="afterwards run `ruff format lplabel tests benchmarks` and add its --check to .ci/run",
    )
    ap.add_argument(
        "--commit",
        action="store_true",
        help="commit the result (clean tree needed): pure renames first, then the rewrites and aliases, "
        "then (with --format) the formatting -- so that `git log --follow` traces the moved files",
    )
    ap.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1], help="repository root")
    args = ap.parse_args()
    root = args.root.resolve()
    if args.commit and not args.dry_run:
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        if dirty.strip():
            sys.exit("regroup: --commit needs a clean tree (commit or stash first):\n" + dirty)
    n = Regroup(root, args.dry_run).run(commit=args.commit)
    if args.format:
        k = ruff_format(root, args.dry_run)
        if args.commit and not args.dry_run:
            subprocess.run(["git", "add", "-u"], cwd=root, check=True)
            if subprocess.run(["git", "diff", "--cached", "--quiet"], cwd=root).returncode:
                subprocess.run(["git", "commit", "-q", "-m", COMMIT_FORMAT], cwd=root, check=True)
                k += 1
        n += k
    if not n:
        print("regroup: nothing to do")
    else:
        print(f"regroup: {n} change(s){' (dry run)' if args.dry_run else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
