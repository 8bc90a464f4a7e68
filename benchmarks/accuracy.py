"""Storage vs student accuracy on real data: ``lplabel bench accuracy``, published with a date.

Runs the benchmark exactly as the command does (every option of ``lplabel bench accuracy`` is
accepted; see ``lplabel bench accuracy --help``), then copies its table, data and plot to
``benchmarks/results/accuracy-<dataset>-ipc<N>-<selection>[-quick]-<date>.{md,csv,json,png}``.

    python benchmarks/accuracy.py                                   # digits, CPU, a few minutes
    python benchmarks/accuracy.py --dataset cifar10 --ipc 10 --device cuda
    python benchmarks/accuracy.py --dataset cifar10 --ipc 50 --device cuda
    python benchmarks/accuracy.py --dataset tiny-imagenet --ipc 10 --device cuda

``--results-dir DIR`` changes where the dated copies go; ``--no-publish`` leaves them in --out.
"""

from __future__ import annotations

import datetime as _dt
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str]) -> int:
    import click

    from lplabel.cli import main as cli

    results_dir = REPO / "benchmarks" / "results"
    publish = True
    args = []
    it = iter(argv)
    for a in it:
        if a == "--results-dir":
            results_dir = Path(next(it))
        elif a.startswith("--results-dir="):
            results_dir = Path(a.split("=", 1)[1])
        elif a == "--no-publish":
            publish = False
        else:
            args.append(a)
    saved, sys.argv = sys.argv, ["lplabel", "bench", "accuracy", *args]  # the command the results record
    try:
        res = cli.main(["bench", "accuracy", *args], prog_name="lplabel", standalone_mode=False)
    except click.exceptions.Exit as e:
        return int(e.exit_code or 0)
    except click.ClickException as e:
        e.show()
        return e.exit_code
    finally:
        sys.argv = saved
    if not publish or not isinstance(res, dict):
        return 0 if isinstance(res, dict) or res is None else int(res)
    c = res["config"]
    out = Path(c["resolved"]["out"])
    date = res["created"][:10] if res.get("created") else _dt.date.today().isoformat()
    stem = (
        f"accuracy-{c['resolved']['dataset']}-ipc{c['resolved']['ipc']}-{c['selection']}"
        + ("-quick" if c["quick"] else "")
        + f"-{date}"
    )
    results_dir.mkdir(parents=True, exist_ok=True)
    for src, ext in (
        ("results.md", "md"),
        ("results.csv", "csv"),
        ("results.json", "json"),
        ("accuracy_vs_bytes.png", "png"),
    ):
        f = out / src
        if f.is_file():
            dst = results_dir / f"{stem}.{ext}"
            if ext == "md":
                dst.write_text(f.read_text().replace("(accuracy_vs_bytes.png)", f"({stem}.png)"))
            else:
                shutil.copyfile(f, dst)
            print(f"published {dst}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
