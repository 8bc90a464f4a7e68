"""What the command modules share: their registration list and click parameter types.

Command modules register here rather than on :data:`lplabel.cli.main` itself so that they need
not import ``lplabel.cli``, which imports them (an import cycle); ``lplabel.cli`` adds every
command of :data:`COMMANDS` to its group once they are all imported.
"""

from __future__ import annotations

import click

from ..store.info import human_bytes, ratio_phrase  # noqa: F401  (old import path; text: lplabel.store.text)

#: The commands the modules of :mod:`lplabel.commands` define, in import order.
COMMANDS: list = []


def register(command):
    """Add a command defined in another module (keeps ``cli.py`` small as commands grow)."""
    COMMANDS.append(command)
    return command


class KeepFraction(click.ParamType):
    """A --keep fraction written 0.025, 1/40 or 2.5% (:func:`lplabel.selection.parse_keep`);
    nonsense raises a named KeepFractionError (one line, exit 2)."""

    name = "FRACTION"

    def convert(self, value, param, ctx):
        from ..selection import parse_keep

        return parse_keep(value)


KEEP = KeepFraction()
