"""CLI commands beyond info/verify/demo, one module per command family.

Each module defines click commands and registers them with :func:`lplabel.cli.register`.
Importing this package imports them all.
"""
import importlib

for _name in ("codec_tools", "relabel", "interop", "bench"):
    try:
        importlib.import_module(f"{__name__}.{_name}")
    except ModuleNotFoundError as _e:  # command family not present in this build
        if _e.name != f"{__name__}.{_name}":
            raise
