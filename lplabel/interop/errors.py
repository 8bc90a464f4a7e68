"""Errors raised while importing or exporting legacy label directories.

All derive from :class:`lplabel.errors.LplabelError`, so the CLI prints them as one line
naming the file (``path``), the place in it (``part``) and what to do (``hint``).
"""

from __future__ import annotations

from ..errors import LplabelError


class LegacyFormatError(LplabelError):
    """A legacy label directory or file does not have the shape its layout requires."""


class UnknownLayoutError(LegacyFormatError):
    """A directory matches none of the legacy layouts lplabel reads (or several at once)."""


class UnsafeLegacyFileError(LegacyFormatError):
    """A legacy file's pickle names a type outside the allowed set; it was not unpickled."""


class UnsupportedLegacyFeatureError(LegacyFormatError):
    """A legacy variant whose per-record data the lplabel format cannot hold losslessly."""


class LegacyExportError(LplabelError):
    """A store cannot be written in the requested legacy layout."""
