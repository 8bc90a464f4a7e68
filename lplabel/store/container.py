"""The HDF5 container of a store: creating a file whose fixed cost is a few hundred bytes.

HDF5's defaults are tuned for files of many large objects, and a small store pays for them: a
dataset's object header reserves 256 bytes for attributes it may never get, metadata and small
raw data are handed out in 2 KiB blocks whose unused tails stay in the file, and a
variable-length string attribute (h5py's type for ``str``) puts a 4 KiB global heap collection
in the file. :func:`create_file` turns these off; none of it changes what a reader sees (the
same objects, types and values), only where and how densely HDF5 lays them out.

Three of the settings have no h5py wrapper (``H5Pset_small_data_block_size``,
``H5Fset_dset_no_attrs_hint``, HDF5 >= 1.10.5, and ``H5Pset_est_link_info``, which sizes a
group's object header for the links it will hold). They are called through ``ctypes`` in the HDF5
library h5py has already loaded (the same library instance, so the same handles); where that
library cannot be found the file is simply a little larger.
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import os
from functools import lru_cache

import h5py
import numpy as np


def _hdf5_lock():
    """h5py's global lock: HDF5 calls made through ctypes must not overlap h5py's own."""
    try:
        from h5py._objects import phil

        return phil
    except ImportError:  # pragma: no cover - a future h5py without it
        return contextlib.nullcontext()


def _candidates() -> list:
    """Paths of the HDF5 library h5py may run on: the copy bundled with h5py first (wheels), then
    libraries mapped into this process from outside any other package's bundled libraries."""
    here = os.path.dirname(os.path.abspath(h5py.__file__))
    found = []
    for pattern in ("../h5py.libs/libhdf5-*", ".dylibs/libhdf5.*", ".dylibs/libhdf5_*"):
        found += [os.path.realpath(p) for p in sorted(glob.glob(os.path.join(here, pattern))) if "hdf5_hl" not in p]
    if found:
        return found
    try:  # Linux, h5py built against a system HDF5
        with open("/proc/self/maps") as fh:
            for line in fh:
                parts = line.split()
                p = parts[-1] if len(parts) >= 6 else ""
                base, parent = os.path.basename(p), os.path.basename(os.path.dirname(p))
                if (
                    base.startswith("libhdf5")
                    and not base.startswith("libhdf5_hl")
                    and ".so" in base
                    and not parent.endswith((".libs", ".dylibs"))
                ):
                    found.append(p)
    except OSError:
        pass
    return list(dict.fromkeys(found))


@lru_cache(maxsize=1)
def _hdf5_library():
    """The HDF5 C library h5py runs on (same version as h5py reports), or None when it cannot be
    located; then files are written with HDF5's defaults for these three settings."""
    for p in _candidates():
        try:
            # RTLD_NOLOAD: only ever the instance already mapped into this process (the one h5py's
            # handles belong to); a same-version copy elsewhere on disk is never loaded
            lib = ctypes.CDLL(p, mode=getattr(os, "RTLD_NOLOAD", 0) | getattr(os, "RTLD_LOCAL", 0))
            set_hint = lib.H5Fset_dset_no_attrs_hint
            set_small = lib.H5Pset_small_data_block_size
            set_links = lib.H5Pset_est_link_info
            version = lib.H5get_libversion
        except (OSError, AttributeError):
            continue
        v = [ctypes.c_uint(), ctypes.c_uint(), ctypes.c_uint()]
        if version(*(ctypes.byref(x) for x in v)) < 0 or tuple(x.value for x in v) != tuple(
            h5py.version.hdf5_version_tuple[:3]
        ):
            continue
        set_links.argtypes = [ctypes.c_int64, ctypes.c_uint, ctypes.c_uint]
        set_links.restype = ctypes.c_int
        set_hint.argtypes = [ctypes.c_int64, ctypes.c_bool]
        set_hint.restype = ctypes.c_int
        set_small.argtypes = [ctypes.c_int64, ctypes.c_uint64]
        set_small.restype = ctypes.c_int
        return lib
    return None


def create_file(path) -> h5py.File:
    """A new, empty HDF5 file at ``path`` (truncated if present) laid out densely: HDF5 1.10
    object formats, no object modification times, no metadata or small-data block reservations,
    dataset object headers sized for what they hold."""
    fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    fapl.set_libver_bounds(h5py.h5f.LIBVER_V110, h5py.h5f.LIBVER_V110)
    fapl.set_meta_block_size(0)
    lib = _hdf5_library()
    if lib is not None:
        with _hdf5_lock():
            lib.H5Pset_small_data_block_size(fapl.id, 0)
    fcpl = h5py.h5p.create(h5py.h5p.FILE_CREATE)
    fcpl.set_obj_track_times(False)
    fid = h5py.h5f.create(os.fsencode(str(path)), h5py.h5f.ACC_TRUNC, fapl=fapl, fcpl=fcpl)
    if lib is not None:
        with _hdf5_lock():
            lib.H5Fset_dset_no_attrs_hint(fid.id, True)
    return h5py.File(fid)


def ensure_group(f: h5py.File, path: str, links: int | None = None) -> None:
    """Create group ``path`` and its parents (without modification times) where missing; a new
    ``path`` gets an object header sized for ``links`` links of names up to 10 characters."""
    cur = ""
    for part in path.split("/"):
        cur = f"{cur}/{part}" if cur else part
        if cur in f:
            continue
        gcpl = h5py.h5p.create(h5py.h5p.GROUP_CREATE)
        gcpl.set_obj_track_times(False)
        lib = _hdf5_library()
        if links is not None and cur == path and lib is not None:
            with _hdf5_lock():
                lib.H5Pset_est_link_info(gcpl.id, max(int(links), 1), 10)
        h5py.h5g.create(f.id, cur.encode("utf-8"), gcpl=gcpl)


def write_dataset(f: h5py.File, name: str, data: np.ndarray, attrs: dict | None = None) -> None:
    """Dataset ``name`` (contiguous, no filters) holding ``data``, with ``attrs``. The attributes
    are written before the data, so a minimised object header grows in place instead of
    spilling into a continuation block."""
    data = np.ascontiguousarray(data)
    if "/" in name:
        ensure_group(f, name.rsplit("/", 1)[0])
    if not attrs:
        f.create_dataset(name, data=data)
        return
    d = f.create_dataset(name, shape=data.shape, dtype=data.dtype)
    for k, v in attrs.items():
        d.attrs[k] = v
    if data.size:
        d[...] = data
