"""Lines, parameters and McCabe complexity (ruff's C901) of the functions in some files, largest first.

Used for issue 14's before/after notes (``benchmarks/results/config-objects-*.md``). Parameters
count every named argument and ``*args``/``**kwargs``, not ``self``/``cls``. Run from the
repository root::

    python benchmarks/function_sizes.py lplabel/relabel/core.py lplabel/store/writer.py [--top 12]
"""

from __future__ import annotations

import argparse
import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path


def complexity(files) -> dict:
    """{(file, line): McCabe} from ``ruff check --select C901`` with a budget of 0 (every function)."""
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    out = subprocess.run(
        [
            ruff,
            "check",
            "--no-cache",
            "--select",
            "C901",
            "--config",
            "lint.mccabe.max-complexity=0",
            "--output-format",
            "concise",
            *files,
        ],
        capture_output=True,
        text=True,
    ).stdout
    cc = {}
    for line in out.splitlines():
        m = re.match(r"(.+?):(\d+):\d+: C901 `(.+?)` is too complex \((\d+) > 0\)", line)
        if m:
            cc[(m.group(1), int(m.group(2)))] = int(m.group(4))
    return cc


def rows(files) -> list:
    cc = complexity(files)
    out = []
    for f in files:
        for node in ast.walk(ast.parse(Path(f).read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                a = node.args
                n = len(a.posonlyargs) + len(a.args) + len(a.kwonlyargs) + bool(a.vararg) + bool(a.kwarg)
                if a.args and a.args[0].arg in ("self", "cls"):
                    n -= 1
                out.append(
                    (
                        node.end_lineno - node.lineno + 1,
                        n,
                        cc.get((f, node.lineno), 1),
                        f"{f}:{node.lineno} {node.name}",
                    )
                )
    return sorted(out, reverse=True)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="+")
    ap.add_argument("--top", type=int, default=12)
    args = ap.parse_args(argv)
    print("| lines | params | C901 | function |\n|---:|---:|---:|---|")
    for r in rows(args.files)[: args.top]:
        print(f"| {r[0]} | {r[1]} | {r[2]} | `{r[3]}` |")


if __name__ == "__main__":
    main()
