"""How much logic lives in the CLI layer (issue 14): body lines of every function in
``lplabel/cli.py`` and ``lplabel/commands/*.py``, the longest ones, and their McCabe complexity.

A body line is a non-blank, non-comment source line of a function after its docstring. The
option-declaring helpers (``_out_opts``, ``_chain_opts``, ``_legacy_opts``: lists of
``click.option``) are argument parsing and counted apart. Usage::

    python benchmarks/command_logic.py [ROOT]     # ROOT: a checkout (default: this one)
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PARSING = {"_out_opts", "_chain_opts", "_legacy_opts", "_merge_level_alias", "convert"}


def body_lines(fn: ast.AST, src: list[str]) -> int:
    body = fn.body
    if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant):
        body = body[1:]
    if not body:
        return 0
    lines = src[body[0].lineno - 1 : fn.end_lineno]
    return sum(1 for line in lines if line.strip() and not line.strip().startswith("#"))


def complexity(fn: ast.AST) -> int:
    """McCabe's number as ruff counts it, near enough: 1 + decisions."""
    n = 1
    for node in ast.walk(fn):
        if isinstance(node, (ast.If, ast.For, ast.While, ast.IfExp, ast.ExceptHandler, ast.With, ast.comprehension)):
            n += not isinstance(node, ast.With)
        elif isinstance(node, ast.BoolOp):
            n += len(node.values) - 1
    return n


def main(root: Path) -> None:
    files = [root / "lplabel" / "cli.py"] + sorted((root / "lplabel" / "commands").glob("*.py"))
    rows = []
    for f in files:
        src = f.read_text().splitlines()
        for node in ast.walk(ast.parse("\n".join(src))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.col_offset in (0, 4):
                if node.col_offset == 4 and node.name not in ("convert", "invoke"):
                    continue  # nested helpers are counted in their function
                rows.append(
                    (
                        f.relative_to(root).as_posix(),
                        node.name,
                        body_lines(node, src),
                        complexity(node),
                        len({n.lineno for s in node.body for n in ast.walk(s) if isinstance(n, ast.JoinedStr)}),
                    )
                )
    logic = [r for r in rows if r[1] not in PARSING]
    print(f"root: {root}")
    print(
        f"functions: {len(rows)}; body lines: {sum(r[2] for r in logic)} outside the option-declaring helpers "
        f"({sum(r[2] for r in rows if r[1] in PARSING)} in them)"
    )
    print(f"lines with an f-string in function bodies (text built in the CLI): {sum(r[4] for r in logic)}")
    print("longest (body lines, complexity):")
    for path, name, n, c, _ in sorted(logic, key=lambda r: -r[2])[:8]:
        print(f"  {n:4d} {c:3d}  {path}:{name}")


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else Path(__file__).resolve().parents[1])
