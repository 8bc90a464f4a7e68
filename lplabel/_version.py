"""lplabel's version, in a module of its own so that library modules (the header writer, the
import and sweep reports) can read it without importing the package ``lplabel`` itself, whose
``__init__`` imports them back (an import cycle)."""

__version__ = "0.1.0"
