"""The ``lplabel`` command line. Each command is a thin layer over the Python API.

Errors from lplabel (bad files, bad arguments) print as one line on stderr with exit code 2;
they never show a traceback. Set ``LPLABEL_DEBUG=1`` to see the traceback anyway.
"""
from __future__ import annotations

import json
import os
import sys

import click

from . import __version__
from .errors import LplabelError, LplabelWarning, output_write_error


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    return str(n)


def ratio_phrase(ratio) -> str:
    """'12.3x smaller than dense fp16' (or 'n.nx larger' when the store is bigger)."""
    if not ratio:
        return "no records"
    if ratio >= 1:
        return f"{ratio:.1f}x smaller than dense fp16"
    return f"{1 / ratio:.1f}x larger than dense fp16"  # tiny stores: view configs and container dominate


class LplabelGroup(click.Group):
    """Turns LplabelError (and a few OS errors) into a one-line message and exit status 2; so too
    the import of an optional package that is not installed (:mod:`lplabel.deps` names the extra)."""

    def invoke(self, ctx):
        import warnings

        def note(message, category, *args, **kw):  # lplabel's own notices: one line each
            if issubclass(category, LplabelWarning):
                click.echo(f"note: {message}", err=True)
            else:
                _show(message, category, *args, **kw)

        _show = warnings.showwarning
        warnings.showwarning = note
        try:
            return super().invoke(ctx)
        except LplabelError as e:
            if os.environ.get("LPLABEL_DEBUG"):
                raise
            click.echo(f"error: {e}", err=True)
            ctx.exit(2)
        except ModuleNotFoundError as e:  # an optional package (torch, numba, ...) that is not installed
            from .deps import from_import_error

            err = from_import_error(e, f"lplabel {ctx.invoked_subcommand or ''}".strip())
            if err is None or os.environ.get("LPLABEL_DEBUG"):
                raise
            click.echo(f"error: {err}", err=True)
            ctx.exit(2)
        except (FileNotFoundError, PermissionError, IsADirectoryError) as e:
            if os.environ.get("LPLABEL_DEBUG"):
                raise
            click.echo(f"error: {e}", err=True)
            ctx.exit(2)
        except (OSError, RuntimeError) as e:  # a full disk, quota or I/O error while writing: one line
            # (errors.output_write_error is the one translation; anything else stays a traceback)
            err = output_write_error(e)
            if err is None or os.environ.get("LPLABEL_DEBUG"):
                raise
            click.echo(f"error: {err}", err=True)
            ctx.exit(2)
        except KeyboardInterrupt:
            click.echo("interrupted; no partial output was left under the final name", err=True)
            ctx.exit(130)
        finally:
            warnings.showwarning = _show


@click.group(cls=LplabelGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="lplabel")
def main():
    """lplabel: store, compress and serve the soft labels of dataset distillation.

    A label store (*.lpl) holds, for every stored (epoch, step), the augmented views the
    teacher saw (image id, crop box, flip, mix partner, mix lambda and box) and the teacher's
    soft labels, compressed by a codec chain recorded in the file. See spec/FORMAT.md.
    """


def register(command):
    """Add a command defined in another module (keeps this file small as commands grow)."""
    main.add_command(command)
    return command


@main.command()
@click.argument("store", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the facts as one JSON object (keys: see spec/FORMAT.md).")
def info(store, as_json):
    """Summarise a label store: counts, codecs and where every byte goes.

    Reads the header and tables only (no label payload). The ratio compares the file's
    size with the same records stored as dense fp16 logits (records x classes x 2 bytes).
    """
    from .store import store_info

    facts = store_info(store)
    if as_json:
        click.echo(json.dumps(facts, indent=2))
        return
    f = facts
    click.echo(f"{f['path']}  (lplabel format {f['format_version'][0]}.{f['format_version'][1]})")
    click.echo(f"  records         {f['records']:,}  in {f['steps']:,} steps "
               f"({f['stored_epochs']} of {f['epochs']} epochs stored, {f['steps_per_epoch']} steps/epoch, "
               f"batch {f['batch_size']})")
    click.echo(f"  images          {f['images']:,}   classes {f['classes']:,}")
    click.echo(f"  labels          {f['labels']}")
    click.echo(f"  label codecs    {f['label_codec_summary']}" + ("  [lossy]" if f["label_lossy"] else ""))
    if f["selection"]:
        click.echo(f"  selection       {json.dumps(f['selection'])}")
    t = f["teacher"]
    click.echo(f"  teacher         {t.get('description') or '-'} (logits at T={t.get('temperature', 1.0)})")
    click.echo("  bytes by field")
    total = f["file_bytes"]
    derived = {f"column.{c}" for c in f.get("derived_columns", ())}
    for name, n in f["bytes_by_field"].items():
        pct = 100.0 * n / total if total else 0.0
        click.echo(f"    {name:<20} {n:>14,}  {human_bytes(n):>11}  {pct:5.1f} %" + ("  (derived)" if name in derived else ""))
    click.echo(f"    {'file':<20} {total:>14,}  {human_bytes(total):>11}")
    if f["records"]:
        click.echo(f"  bytes/record    {f['bytes_per_record']:.2f}")
        click.echo(f"  vs dense fp16   {human_bytes(f['dense_fp16_bytes'])} -> ratio {f['ratio_vs_dense_fp16']:.1f}x")


@main.command()
@click.argument("store", type=click.Path(dir_okay=False))
@click.option("-q", "--quiet", is_flag=True, help="Print nothing when the store is sound.")
def verify(store, quiet):
    """Check a store's structure and every checksum; decode every chunk.

    Exit status 0 when the store is sound, 1 when it is damaged (each problem is printed
    with the dataset, chunk and epoch/step range it concerns), 3 when no damage was found but a
    column could only be checksummed, not decoded, because a codec's optional dependency is
    missing here (e.g. numba for ``rans``).
    """
    from .store import verify_store

    report = verify_store(store)
    if report.ok and report.undecoded:
        for col, why in report.undecoded.items():
            click.echo(f"UNCHECKED  column {col!r}: checksums match, chunks not decoded: {why}", err=True)
        sys.exit(3)
    if report.ok:
        if not quiet:
            click.echo(f"OK  {store}: {report.chunks_checked:,} chunks, {human_bytes(report.bytes_checked)} of payload "
                       "checked")
        return
    for p in report.problems:
        click.echo(f"DAMAGED  {p}", err=True)
    click.echo(f"{len(report.problems)} problem(s) found in {store}", err=True)
    sys.exit(1)


@main.command()
@click.option("-o", "--output", type=click.Path(dir_okay=False), default="out/demo.lpl", show_default=True,
              help="Where to write the demo store.")
@click.option("--epochs", type=click.IntRange(1, 1000), default=20, show_default=True)
@click.option("--force", is_flag=True, help="Overwrite the output if it exists.")
def demo(output, epochs, force):
    """End-to-end run on scikit-learn's digits: train a teacher, relabel views, write, inspect
    and verify stores (dense fp16 and top-k)."""
    from .deps import require

    require("torch", "lplabel demo")  # both before any work
    require("sklearn", "lplabel demo (the built-in data set 'digits')")
    from .demo import run_demo

    run_demo(output, epochs=epochs, force=force, echo=click.echo)


def _load_extensions():
    """Import modules that add commands (codec tools, relabeler, interop...) if present."""
    import importlib

    for mod in ("lplabel.commands",):
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name != mod:
                raise


_load_extensions()

if __name__ == "__main__":  # pragma: no cover
    main()
