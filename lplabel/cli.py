"""The ``lplabel`` command line. Each command is a thin layer over the Python API
(:mod:`lplabel.api`): it parses its arguments, calls one function and prints the result with
:mod:`lplabel.store.text`.

Errors from lplabel (bad files, bad arguments) print as one line on stderr with exit code 2;
they never show a traceback. Set ``LPLABEL_DEBUG=1`` to see the traceback anyway.
"""

from __future__ import annotations

import json
import os
import sys

import click

from ._version import __version__
from .errors import LplabelError, LplabelWarning, output_write_error


# formatting helpers: owned by the library (lplabel.store.info), re-exported for old imports
from .store.info import human_bytes, ratio_phrase  # noqa: E402,F401
from .commands._common import KEEP, KeepFraction  # noqa: E402,F401  (old import path)


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
@click.option(
    "--header-copy/--no-header-copy",
    default=None,
    help="Whether stores written by this command also carry the header JSON as the string attribute "
    "json of the header dataset, for h5dump -A / h5ls -v (a convenience copy, about 2 KB; the header "
    "dataset's bytes are authoritative) [default: yes, unless LPLABEL_HEADER_COPY=0].",
)
@click.pass_context
def main(ctx, header_copy):
    """lplabel: store, compress and serve the soft labels of dataset distillation.

    A label store (*.lpl) holds, for every stored (epoch, step), the augmented views the
    teacher saw (image id, crop box, flip, mix partner, mix lambda and box) and the teacher's
    soft labels, compressed by a codec chain recorded in the file. See spec/FORMAT.md.
    """
    if header_copy is not None:  # through the environment, so relabel's worker processes see it too
        old = os.environ.get("LPLABEL_HEADER_COPY")
        os.environ["LPLABEL_HEADER_COPY"] = "1" if header_copy else "0"

        def restore():
            if old is None:
                os.environ.pop("LPLABEL_HEADER_COPY", None)
            else:
                os.environ["LPLABEL_HEADER_COPY"] = old

        ctx.call_on_close(restore)


def register(command):
    """Add a command defined in another module (keeps this file small as commands grow)."""
    main.add_command(command)
    return command


@main.command()
@click.argument("stores", metavar="STORE...", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the facts as JSON (keys: see spec/FORMAT.md): one object for one STORE, a list for several.",
)
def info(stores, as_json):
    """Summarise label stores: counts, codecs and where every byte goes.

    Reads the header and tables only (no label payload). Sizes are given three ways: bytes per
    stored record; how many times smaller the file is than the dense fp16 logits (C x 2 bytes a
    record) of the records it stores; and than those of its nominal records -- every step of
    every epoch the header declares, before pruning. Several STOREs are summarised one after
    the other.
    """
    from . import api
    from .store.text import info_lines

    facts = [api.info(s) for s in stores]  # every file opens (or fails by name) before any output
    if as_json:
        click.echo(json.dumps(facts[0] if len(facts) == 1 else facts, indent=2))
        return
    for i, f in enumerate(facts):
        if i:
            click.echo("")
        _echo_lines(info_lines(f))


def _echo_lines(lines, err: bool = False) -> None:
    for line in lines:
        click.echo(line, err=err)


@main.command()
@click.argument("store", type=click.Path(dir_okay=False))
@click.option("-q", "--quiet", is_flag=True, help="Print nothing when the store is sound.")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the report as one JSON object on stdout (path, status ok/damaged/unchecked, exit_status, "
    "problems, undecoded, chunks_checked, bytes_checked); the exit status is the same.",
)
def verify(store, quiet, as_json):
    """Check a store's structure and every checksum; decode every chunk.

    Exit status 0 when the store is sound, 1 when it is damaged (each problem is printed
    with the dataset, chunk and epoch/step range it concerns), 3 when no damage was found but a
    column could only be checksummed, not decoded, because a codec's optional dependency is
    missing here (e.g. numba for ``rans``).
    """
    from . import api
    from .store.text import verify_lines

    report = api.verify(store)
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2, default=str))
    elif report.status != "ok" or not quiet:
        _echo_lines(verify_lines(report), err=report.status != "ok")
    if report.exit_status:
        sys.exit(report.exit_status)


@main.command()
@click.argument("store", type=click.Path(dir_okay=False))
@click.option("--epoch", type=click.IntRange(0), default=None, help="Epoch [default: the first stored].")
@click.option(
    "--step",
    type=click.IntRange(0),
    default=None,
    help="Step within the epoch (needs --epoch) [default: the epoch's first stored step].",
)
@click.option("--top", type=click.IntRange(1, 100), default=3, show_default=True, help="Classes shown per record.")
@click.option(
    "-n",
    "--records",
    type=click.IntRange(1),
    default=10,
    show_default=True,
    help="Records shown (the step may hold more).",
)
@click.option("--all", "show_all", is_flag=True, help="Show every record of the step.")
@click.option(
    "-T",
    "--temperature",
    type=click.FloatRange(0, min_open=True),
    default=1.0,
    show_default=True,
    help="Temperature of the probabilities (softmax(z/T)).",
)
@click.option(
    "--mode",
    type=click.Choice(["auto", "renorm", "tail", "uniform"]),
    default="auto",
    show_default=True,
    help="How top-k labels become probabilities (as `lplabel compare --mode`).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the step as one JSON object.")
def show(store, epoch, step, top, records, show_all, temperature, mode, as_json):
    """Peek at one stored step: its views and each record's most probable classes.

    Per record: the image (id, key, own class), the crop box (top, left, height, width as
    fractions of the image), the flip, the mix partner (CutMix/MixUp, with the step's lambda and
    box) and the top classes with their probabilities at -T, as the loader would hand them out.
    """
    from . import api
    from .store.text import show_lines

    v = api.show(store, epoch, step, top=top, temperature=temperature, mode=mode, records=None if show_all else records)
    if as_json:
        click.echo(json.dumps(v, indent=2))
        return
    _echo_lines(show_lines(v))


@main.command()
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    default="out/demo.lpl",
    show_default=True,
    help="Where to write the demo store.",
)
@click.option("--epochs", type=click.IntRange(1, 1000), default=20, show_default=True)
@click.option("--force", is_flag=True, help="Overwrite the output if it exists.")
def demo(output, epochs, force):
    """End-to-end run on scikit-learn's digits: train a teacher, relabel views, write, inspect
    and verify stores (dense fp16 and top-k)."""
    from .deps import require

    require("torch", "lplabel demo")  # both before any work
    require("sklearn", "lplabel demo (the built-in data set 'digits')")
    from .experiment.demo import run_demo

    run_demo(output, epochs=epochs, force=force, echo=click.echo)


# the other command families (codec tools, relabeler, interop, bench), from lplabel.commands
from .commands import COMMANDS  # noqa: E402

for _command in COMMANDS:
    main.add_command(_command)

if __name__ == "__main__":  # pragma: no cover
    main()
