"""Read a label store: header without payload, steps by (epoch, step) or position, decoded labels.

Opening reads the header and the small tables (steps, chunk index) through h5py, checks their
checksums, records where every payload segment starts in the file, and closes the HDF5
handle again. Payload chunks are then read with ``os.pread`` on a plain file descriptor that
is opened lazily in each process, so no HDF5 handle ever crosses a fork (DataLoader workers)
and chunk reads run outside h5py's global lock. Every chunk's CRC-32 is checked on read.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import h5py
import numpy as np

from ..checksum import crc32, crc32_array
from ..codecs import Pipeline, spec_from_json
from ..codecs.zstd import dictionary_dataset
from ..dtypes import usable_block
from ..errors import (
    ChecksumError,
    CodecError,
    CodecUnavailableError,
    CorruptStoreError,
    FormatVersionError,
    HeaderError,
    LimitExceededError,
    LplabelError,
    NotAStoreError,
    NotHDF5Error,
    StepNotFoundError,
    StoreOpenError,
    TruncatedFileError,
)
from . import layout as L
from . import packed as P
from .derived import ViewRegenerator, is_derived, mismatch_message, same_views
from .header import MAX_HEADER_BYTES, parse_header

#: A decoded chunk may take at most max(MAX_CHUNK_FLOOR, MAX_CHUNK_EXPANSION x its stored bytes)
#: (spec §6): a few stored bytes that claim gigabytes are refused before anything is decoded.
#: Real chunks stay far below (measured: at most ~3000x, for columns of one repeated value).
MAX_CHUNK_FLOOR = 64 << 20
MAX_CHUNK_EXPANSION = 4096

#: element type of every table (spec §1.2), checked before a table is read
TABLE_TYPES = {
    L.IMAGE_KEYS: "u1",
    L.IMAGE_CLASS: "<i4",
    L.IMAGE_SIZE: "<i4",
    L.STEP_EPOCH: "<i4",
    L.STEP_STEP: "<i4",
    L.STEP_RECORD_START: "<i8",
    L.STEP_MIX_LAMBDA: "<f8",
    L.STEP_MIX_BOX: "<i2",
    L.CHUNK_STEP_START: "<i8",
    L.HEADER: "u1",
    L.PACKED_TABLES: "u1",
}
for _c in L.COLUMNS:
    TABLE_TYPES[L.column_chunks(_c)] = "<i8"
    TABLE_TYPES[L.column_crc(_c)] = "<u4"
    TABLE_TYPES[dictionary_dataset(_c)] = "u1"


@dataclass
class StepRecords:
    """One stored step: its B views and their labels (the stored representation)."""

    index: int
    epoch: int
    step: int
    image: np.ndarray  # int32 [B]
    crop: np.ndarray  # float32/float16 [B, 4]  (top, left, height, width) / source size
    flip: np.ndarray  # bool [B]
    mix_partner: np.ndarray  # int16 [B], -1 = not mixed
    mix_lambda: float  # NaN = no mixing in this step
    mix_box: np.ndarray  # int16 [4] (row0, col0, row1, col1) in output pixels
    label: dict  # decoded label block, e.g. {"logits"} or {"indices", "values"[, "tail"]};
    #                          values as stored, except bfloat16: widened exactly to float32

    def __len__(self):
        return len(self.image)


def _sniff(path: Path, head: bytes) -> str:
    if head.startswith(b"version https://git-lfs"):
        return "it is a Git LFS pointer, not the file's content (run `git lfs pull`)"
    if head.startswith(b"PK\x03\x04"):
        return "it is a zip file, probably a torch.save() label batch of SRe2L/LPLD/LPQLD (import it with `lplabel encode`)"
    if head.startswith(b"\x80"):
        return "it looks like a Python pickle (a legacy label file? import it with `lplabel encode`)"
    if not head:
        return "the file is empty"
    return "its first bytes are not the HDF5 signature"


def _classify_h5_error(e: Exception, path: Path) -> LplabelError:
    msg = str(e)
    if "truncated" in msg.lower():
        return TruncatedFileError(
            f"file is truncated ({msg})",
            path=path,
            hint="the file was cut short by an interrupted copy or write; copy or regenerate it",
        )
    return CorruptStoreError(
        f"HDF5 structure is damaged ({msg})",
        path=path,
        hint="run `lplabel verify` for details; restore the file from a good copy",
    )


def _open_h5(path: Path) -> h5py.File:
    """Open read-only without file locking (locks fail on NFS/Lustre and read-only media). If
    this process already has the file open with locking (HDF5 shares one handle per file),
    the flags must match, so fall back to the default."""
    try:
        return h5py.File(path, "r", locking=False)
    except OSError as e:
        if "locking flag" not in str(e):
            raise
        return h5py.File(path, "r")


def checked_dataset(f: h5py.File, name: str, path: Path, limit: int | None = None) -> h5py.Dataset:
    """Dataset ``name``, after checking -- before a byte of it is read -- that it is what §1
    allows: a contiguous, unfiltered dataset of its table's element type whose bytes lie inside
    the file (and within ``limit``). A dataset declared at 5 GB and never written, or one
    inflated by an HDF5 filter, is refused here by name instead of being allocated."""
    try:
        d = f[name]
    except KeyError:
        raise CorruptStoreError(
            f"missing dataset {name!r}", path=path, part=name, hint="the file is not a complete lplabel store"
        ) from None
    if not isinstance(d, h5py.Dataset):
        raise CorruptStoreError(f"{name!r} is not a dataset", path=path, part=name)
    want = TABLE_TYPES.get(name, "u1" if "/seg_" in name else None)
    if want is not None and d.dtype != np.dtype(want):
        raise CorruptStoreError(
            f"dataset {name!r} has element type {d.dtype}, the format says {np.dtype(want)}",
            path=path,
            part=name,
            hint="the file is damaged or was not written by lplabel",
        )
    nbytes = 1
    for n in d.shape or ():
        nbytes *= int(n)  # Python integers: a huge shape cannot wrap around
    nbytes *= d.dtype.itemsize
    size = os.path.getsize(path)
    if limit is not None and nbytes > limit:
        raise LimitExceededError(
            f"dataset {name!r} declares {nbytes} bytes, above the reader's {limit}-byte limit",
            path=path,
            part=name,
            hint="the file is damaged or was not written by lplabel",
        )
    if d.chunks is not None or nbytes > size:
        why = (
            "is chunked or filtered (the format stores every dataset contiguous)"
            if d.chunks is not None
            else f"declares {nbytes} bytes in a file of {size}"
        )
        raise LimitExceededError(
            f"dataset {name!r} {why}", path=path, part=name, hint="the file is damaged or was not written by lplabel"
        )
    if nbytes:
        off = d.id.get_offset()
        if off is None or int(off) + nbytes > size:
            raise TruncatedFileError(
                f"dataset {name!r} declares {nbytes} bytes that the file does not hold",
                path=path,
                part=name,
                hint="the file was cut short or damaged; restore it",
            )
    return d


def _read_table(f: h5py.File, name: str, path: Path) -> np.ndarray:
    d = checked_dataset(f, name, path)
    try:
        a = d[()]
        stored = d.attrs.get(L.ATTR_CRC)
    except (OSError, RuntimeError, ValueError, TypeError) as e:
        raise CorruptStoreError(f"cannot read dataset {name!r} ({e})", path=path, part=name) from None
    a = np.asarray(a)
    if stored is None or int(stored) != crc32_array(a):
        raise ChecksumError(
            f"checksum mismatch in {name!r}",
            path=path,
            part=name,
            hint="the file was modified or damaged; restore it from a good copy",
        )
    return a


class LabelStore:
    """A label store opened for reading. Cheap to pickle: workers re-open the file themselves."""

    def __init__(self, path):
        self.path = Path(path)
        self._load()
        self._fd = None
        self._fd_pid = None
        self._cache: dict = {}

    # -- opening ------------------------------------------------------------------------------
    def _load(self) -> None:
        path = self.path
        if not path.exists():
            raise StoreOpenError("no such file", path=path)
        if path.is_dir():
            raise NotAStoreError(
                "is a directory, not a label store",
                path=path,
                hint="legacy label directories are imported with `lplabel encode DIR -o OUT.lpl`",
            )
        with open(path, "rb") as fh:
            head = fh.read(64)
        if not head.startswith(L.HDF5_MAGIC):
            raise NotHDF5Error(f"not an HDF5 file: {_sniff(path, head)}", path=path)
        try:
            f = _open_h5(path)
        except (OSError, RuntimeError) as e:
            raise _classify_h5_error(e, path) from None
        try:
            self._load_from(f)
        except LplabelError:
            raise
        except (OSError, RuntimeError, KeyError, ValueError, TypeError) as e:
            raise _classify_h5_error(e, path) from None
        finally:
            f.close()

    def _load_from(self, f: h5py.File) -> None:
        path = self.path
        fmt = f.attrs.get(L.ATTR_FORMAT)
        if isinstance(fmt, bytes):
            fmt = fmt.decode("utf-8", "replace")
        if fmt == L.FORMAT_NAME + "-incomplete":
            raise NotAStoreError(
                "the store was never finished (its writer stopped before close)",
                path=path,
                hint="re-run the job that writes it",
            )
        if fmt != L.FORMAT_NAME:
            raise NotAStoreError("HDF5 file, but not an lplabel label store (no 'lplabel_format' attribute)", path=path)
        ver = f.attrs.get(L.ATTR_VERSION)
        try:
            major, minor = (int(v) for v in np.asarray(ver).reshape(-1)[:2])
        except (TypeError, ValueError):
            raise CorruptStoreError(
                "unreadable 'lplabel_version' attribute", path=path, part="root attributes"
            ) from None
        if major != L.FORMAT_VERSION[0]:
            raise FormatVersionError(
                f"store format version {major}.{minor}, this lplabel reads {L.FORMAT_VERSION[0]}.x",
                path=path,
                hint="upgrade lplabel"
                if major > L.FORMAT_VERSION[0]
                else "re-encode it with the lplabel that wrote it",
            )
        self.format_version = (major, minor)
        if L.HEADER not in f:
            raise CorruptStoreError("missing header dataset", path=path, part="header")
        hd = checked_dataset(f, L.HEADER, path, limit=MAX_HEADER_BYTES)
        if hd.ndim != 1:
            raise HeaderError(f"header dataset has shape {hd.shape}, expected one dimension", path=path, part="header")
        raw = np.asarray(hd[()], dtype=np.uint8).tobytes()
        stored = f.attrs.get(L.ATTR_HEADER_CRC)
        if stored is None or int(stored) != crc32(raw):
            raise ChecksumError(
                "header checksum mismatch",
                path=path,
                part="header",
                hint="the file was modified or damaged; restore it from a good copy",
            )
        self.header = parse_header(raw, path)
        #: format 1.1 packed tables (spec §1.5): every table in the one dataset ``tables``
        self.packed = P.EXTENSION in (self.header.get("extensions") or {})
        if self.packed and self.format_version < (1, 1):
            raise CorruptStoreError(
                f"the header names extension {P.EXTENSION!r} (format 1.1) but the file says format {major}.{minor}",
                path=path,
                part="root attributes",
                hint="the file was modified or damaged; restore it from a good copy",
            )
        self._packed_tables = None
        self.packed_bytes = 0
        if self.packed:
            blob = _read_table(f, L.PACKED_TABLES, path)
            self.packed_bytes = int(blob.nbytes)
            self._packed_tables = P.unpack_tables(np.asarray(blob, dtype=np.uint8).tobytes(), path)
        self.tables = {name: self._table(f, name) for name in L.TABLES}
        self._keys_raw = self._table(f, L.IMAGE_KEYS)
        self.pipelines = {}
        self.chunks = {}
        self.chunk_crc = {}
        self.segment_offsets = {}
        self.dictionary_bytes = {}
        #: view columns regenerated at read time (spec §1.4): all four or none
        self.derived = tuple(n for n in L.CONFIG_COLUMNS if is_derived(self.header["columns"][n]["codecs"]))
        self.image_sizes = None
        self._regen = None
        self._regen_bytes: dict = {}
        self._stored_chunk_rows: dict = {}
        if self.derived:
            self._load_derived(f)
        for name in L.COLUMNS:
            col = self.header["columns"][name]
            try:
                self.pipelines[name] = Pipeline(col["codecs"], spec_from_json(col["input"]))
            except LplabelError as e:
                raise type(e)(e.message, path=path, part=f"column {name!r} codecs", hint=e.hint) from None
            except (KeyError, TypeError, ValueError) as e:
                raise HeaderError(f"bad field spec for column {name!r} ({e})", path=path, part="header") from None
            self._attach_dictionaries(f, name)
            ch = self._table(f, L.column_chunks(name))
            if ch.size % 3:
                raise CorruptStoreError(
                    f"chunk index of column {name!r} has {ch.size} entries, not rows of 3",
                    path=path,
                    part=L.column_chunks(name),
                )
            self.chunks[name] = ch.reshape(-1, 3)
            if name in self.derived:  # stored empty (spec §1.4); in memory: one (0, 0, 0) row per chunk
                self._stored_chunk_rows[name] = len(self.chunks[name])
                self.chunks[name] = np.zeros((len(self.tables[L.CHUNK_STEP_START]) - 1, 3), np.int64)
            self.chunk_crc[name] = self._table(f, L.column_crc(name))
            nseg = int(self.chunks[name][:, 0].max()) + 1 if len(self.chunks[name]) and name not in self.derived else 0
            if nseg > len(self.chunks[name]) or (nseg and int(self.chunks[name][:, 0].min()) < 0):
                raise CorruptStoreError(
                    f"chunk index of column {name!r} names segments outside 0..{len(self.chunks[name]) - 1}",
                    path=path,
                    part=L.column_chunks(name),
                )
            offs = []
            for s in range(nseg):
                seg = L.segment_name(name, s)
                if seg not in f:
                    raise CorruptStoreError(f"missing payload segment {seg!r}", path=path, part=seg)
                ds = checked_dataset(f, seg, path)
                off = ds.id.get_offset()
                offs.append((-1 if off is None else int(off), int(ds.shape[0])))
            self.segment_offsets[name] = offs
        self._packed_tables = None  # every table now lives in self.tables / self.chunks / ...
        self._check_structure()

    def _table(self, f: h5py.File, name: str) -> np.ndarray:
        """A table by its path: a CRC-checked dataset (1.0), or an entry of the packed tables (1.1)."""
        if self._packed_tables is None:
            return _read_table(f, name, self.path)
        try:
            a = self._packed_tables[name]
        except KeyError:
            raise CorruptStoreError(
                f"missing table {name!r} in the packed tables",
                path=self.path,
                part=name,
                hint="the file is not a complete lplabel store",
            ) from None
        want = TABLE_TYPES.get(name)
        if want is not None and a.dtype != np.dtype(want):
            raise CorruptStoreError(
                f"packed table {name!r} has element type {a.dtype}, the format says {np.dtype(want)}",
                path=self.path,
                part=name,
                hint="the file is damaged or was not written by lplabel",
            )
        return a

    def _load_derived(self, f: h5py.File) -> None:
        """Derived view columns: check the declaration, load ``images/size``, build the regenerator."""
        path = self.path
        if self.derived != L.CONFIG_COLUMNS:
            raise HeaderError(
                f"only some view columns are derived ({', '.join(self.derived)}); a store derives all four or none",
                path=path,
                part="header",
            )
        if is_derived(self.header["columns"]["label"]["codecs"]):
            raise HeaderError("the label column cannot be derived", path=path, part="header")
        sizes = self._table(f, L.IMAGE_SIZE)
        try:
            self._regen = ViewRegenerator.from_header(self.header, sizes)
        except ValueError as e:
            raise HeaderError(
                f"derived view columns cannot be regenerated: {e}",
                path=path,
                part="header",
                hint="the store's views are not stored; this lplabel cannot recompute them",
            ) from None
        self.image_sizes = self._regen.sizes.astype(np.int32)

    def _attach_dictionaries(self, f: h5py.File, name: str) -> None:
        """Load ``columns/<name>/zstd_dict`` into the column's zstd codec when its config names one."""
        for c in self.pipelines[name].codecs:
            if not c.uses_dictionary:
                continue
            data = _read_table(f, dictionary_dataset(name), self.path)
            self.dictionary_bytes[name] = int(np.asarray(data).nbytes)
            try:
                c.attach_dictionary(np.asarray(data, dtype=np.uint8).tobytes())
            except LplabelError as e:
                raise CorruptStoreError(e.message, path=self.path, part=dictionary_dataset(name), hint=e.hint) from None

    def _check_structure(self) -> None:
        """Cross-check the tables so later reads can trust them (cheap, O(steps))."""
        h, t, path = self.header, self.tables, self.path
        S = len(t[L.STEP_EPOCH])
        rs = t[L.STEP_RECORD_START]
        cs = t[L.CHUNK_STEP_START]
        problems = []
        if (
            S != h["steps"]
            or len(t[L.STEP_STEP]) != S
            or len(t[L.STEP_MIX_LAMBDA]) != S
            or t[L.STEP_MIX_BOX].shape != (S, 4)
        ):
            problems.append(f"step tables disagree with the header's {h['steps']} steps")
        if rs.shape != (S + 1,) or rs[0] != 0 or rs[-1] != h["records"] or np.any(np.diff(rs) < 1):
            problems.append("steps/record_start is not an increasing table ending at the record count")
        if len(cs) < 1 or cs[0] != 0 or cs[-1] != S or np.any(np.diff(cs) < 1):
            problems.append("chunks/step_start does not tile the steps")
        for name in L.COLUMNS:
            if len(self.chunks[name]) != len(cs) - 1 or len(self.chunk_crc[name]) != len(cs) - 1:
                problems.append(f"column {name!r} has {len(self.chunks[name])} chunks, the grid has {len(cs) - 1}")
            elif name in self.derived and self._stored_chunk_rows[name]:
                problems.append(f"derived column {name!r} has a non-empty chunk table")
        if len(t[L.IMAGE_CLASS]) != h["num_images"]:
            problems.append("images/class length differs from num_images")
        if problems:
            raise CorruptStoreError(
                "; ".join(problems), path=path, part="tables", hint="the file is damaged or was not written by lplabel"
            )
        problems += self._range_problems()
        if problems:
            raise CorruptStoreError(
                "; ".join(problems), path=path, part="tables", hint="the file is damaged or was not written by lplabel"
            )
        key = t[L.STEP_EPOCH].astype(np.int64) * max(h["steps_per_epoch"], 1) + t[L.STEP_STEP]
        if np.any(np.diff(key) <= 0):
            raise CorruptStoreError("steps are not in increasing (epoch, step) order", path=path, part="steps")
        self._step_keys = key

    def _range_problems(self) -> list:
        """Every table value within what the header declares (spec §1.2, §8.2): steps within the
        schedule, 1..B records per step, λ NaN or in [0, 1], CutMix boxes inside the output image,
        hard classes in -1..C-1, chunks inside their segments and not overlapping. Vectorised:
        O(steps + chunks), so every open checks it."""
        h, t = self.header, self.tables
        out = []
        ep, st = t[L.STEP_EPOCH], t[L.STEP_STEP]
        if len(ep) and (ep.min() < 0 or ep.max() >= h["epochs"]):
            out.append(f"steps/epoch outside 0..{h['epochs'] - 1}")
        if len(st) and (st.min() < 0 or st.max() >= h["steps_per_epoch"]):
            out.append(f"steps/step outside 0..{h['steps_per_epoch'] - 1} (steps_per_epoch)")
        counts = np.diff(t[L.STEP_RECORD_START])
        if len(counts) and counts.max() > h["batch_size"]:
            out.append(f"a step holds {int(counts.max())} records, more than batch_size {h['batch_size']}")
        lam = t[L.STEP_MIX_LAMBDA]
        bad = ~np.isnan(lam) & ~((lam >= 0) & (lam <= 1))
        if bad.any():
            out.append(
                f"steps/mix_lambda of step {int(np.flatnonzero(bad)[0])} is {float(lam[bad][0])!r}, "
                "not NaN or in [0, 1]"
            )
        size = (h.get("augmentation") or {}).get("output_size")
        top = size if isinstance(size, int) and not isinstance(size, bool) and size > 0 else 32767
        box = t[L.STEP_MIX_BOX]
        if box.size and (box.min() < 0 or box.max() > top):
            out.append(f"steps/mix_box has coordinates outside 0..{top} (the output image)")
        cls = t[L.IMAGE_CLASS]
        if cls.size and (cls.min() < -1 or cls.max() >= h["num_classes"]):
            out.append(f"images/class outside -1..{h['num_classes'] - 1}")
        for name in L.COLUMNS:
            if name in self.derived:
                continue
            ch = self.chunks[name]
            if not len(ch):
                continue
            seglen = np.asarray([n for _, n in self.segment_offsets[name]], np.int64)
            seg, off, n = ch[:, 0], ch[:, 1], ch[:, 2]
            if off.min() < 0 or n.min() < 0 or np.any(off + n > seglen[seg]):
                out.append(f"column {name!r}: a chunk lies outside its segment")
                continue
            order = np.lexsort((off, seg))
            s2, o2, n2 = seg[order], off[order], n[order]
            same = s2[1:] == s2[:-1]
            if np.any(same & (o2[1:] < o2[:-1] + n2[:-1])):
                out.append(f"column {name!r}: chunks overlap (two chunks share stored bytes)")
        return out

    # -- pickling: metadata only --------------------------------------------------------------
    def __getstate__(self):
        d = self.__dict__.copy()
        d["_fd"] = None
        d["_fd_pid"] = None
        d["_cache"] = {}
        d["_regen_bytes"] = {}
        d.pop("image_keys", None)
        return d

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def close(self) -> None:
        if self._fd is not None and self._fd_pid == os.getpid():
            os.close(self._fd)
        self._fd = None
        self._cache = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- header facts --------------------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        return self.header["num_classes"]

    @property
    def num_images(self) -> int:
        return self.header["num_images"]

    @property
    def num_records(self) -> int:
        return self.header["records"]

    @property
    def num_steps(self) -> int:
        return self.header["steps"]

    @property
    def epochs(self) -> int:
        return self.header["epochs"]

    @property
    def steps_per_epoch(self) -> int:
        return self.header["steps_per_epoch"]

    @property
    def batch_size(self) -> int:
        return self.header["batch_size"]

    @property
    def store_id(self) -> str:
        """Identifies this store's content (header checksum); resume state is tied to it."""
        return f"{self.header['images']['keys_sha256'][:16]}-{crc32(repr(self.header).encode()):08x}-{self.num_records}"

    @cached_property
    def image_keys(self) -> list:
        import json

        return json.loads(self._keys_raw.tobytes().decode("utf-8"))

    @property
    def image_classes(self) -> np.ndarray:
        return self.tables[L.IMAGE_CLASS]

    @property
    def step_epoch(self) -> np.ndarray:
        return self.tables[L.STEP_EPOCH]

    @property
    def step_index(self) -> np.ndarray:
        return self.tables[L.STEP_STEP]

    @property
    def record_start(self) -> np.ndarray:
        return self.tables[L.STEP_RECORD_START]

    @property
    def stored_epochs(self) -> np.ndarray:
        return np.unique(self.step_epoch)

    # -- locating steps ------------------------------------------------------------------------
    def find(self, epoch: int, step: int) -> int:
        """Position of (epoch, step) among the stored steps; StepNotFoundError if not stored."""
        key = int(epoch) * max(self.steps_per_epoch, 1) + int(step)
        i = int(np.searchsorted(self._step_keys, key))
        if i >= len(self._step_keys) or self._step_keys[i] != key or not (0 <= step < self.steps_per_epoch):
            raise StepNotFoundError(
                f"(epoch {epoch}, step {step}) is not in this store",
                path=self.path,
                hint=f"it holds {self.num_steps} steps of epochs "
                f"{self.step_epoch.min() if self.num_steps else '-'}..{self.step_epoch.max() if self.num_steps else '-'}",
            )
        return i

    def _part(self, name: str, chunk: int) -> str:
        cs = self.tables[L.CHUNK_STEP_START]
        s0, s1 = int(cs[chunk]), int(cs[chunk + 1]) - 1
        e0, e1 = int(self.step_epoch[s0]), int(self.step_epoch[s1])
        return (
            f"column {name!r}, chunk {chunk} (epoch {e0} step {int(self.step_index[s0])} .. "
            f"epoch {e1} step {int(self.step_index[s1])})"
        )

    # -- reading payload -----------------------------------------------------------------------
    def _file(self) -> int:
        pid = os.getpid()
        if self._fd is None or self._fd_pid != pid:
            self._fd = os.open(self.path, os.O_RDONLY)
            self._fd_pid = pid
            self._cache = {}
        return self._fd

    def read_chunk_bytes(self, name: str, chunk: int, *, check: bool = True) -> bytes:
        """The encoded bytes of one chunk of a column, CRC-checked. For a derived view column:
        the ``bytes`` encoding of its regenerated rows (what its CRC-32 covers)."""
        if name in self.derived:
            return self._derived_bytes(name, chunk, check)
        seg, off, n = (int(v) for v in self.chunks[name][chunk])
        try:
            base, seglen = self.segment_offsets[name][seg]
        except IndexError:
            raise CorruptStoreError(
                "chunk index points at a missing segment", path=self.path, part=self._part(name, chunk)
            ) from None
        if base < 0 or off < 0 or n < 0 or off + n > seglen:
            raise CorruptStoreError(
                "chunk index points outside its segment", path=self.path, part=self._part(name, chunk)
            )
        data = os.pread(self._file(), n, base + off)
        if len(data) != n:
            raise TruncatedFileError(
                f"chunk ends beyond the end of the file ({len(data)} of {n} bytes)",
                path=self.path,
                part=self._part(name, chunk),
                hint="the file was cut short; copy or regenerate it",
            )
        if check and crc32(data) != int(self.chunk_crc[name][chunk]):
            raise ChecksumError(
                "checksum mismatch",
                path=self.path,
                part=self._part(name, chunk),
                hint="the file is damaged; restore it from a good copy or regenerate these steps",
            )
        return data

    def _derived_bytes(self, name: str, chunk: int, check: bool) -> bytes:
        """Regenerate the views of one chunk (all four view columns at once, kept for the next call)."""
        got = self._regen_bytes.get(chunk)
        if got is None:
            cs, t = self.tables[L.CHUNK_STEP_START], self.tables
            rs = self.record_start
            views = []
            for i in range(int(cs[chunk]), int(cs[chunk + 1])):
                e, s = int(self.step_epoch[i]), int(self.step_index[i])
                where = f"epoch {e} step {s}"
                try:  # v2 takes the stored λ (never regenerated); v1 draws it and it is compared below
                    v = self._regen.step(e, s, mix_lambda=float(t[L.STEP_MIX_LAMBDA][i]))
                except ValueError as err:
                    raise CorruptStoreError(
                        f"cannot regenerate the views of this step ({err})", path=self.path, part=where
                    ) from None
                if len(v) != int(rs[i + 1] - rs[i]):
                    raise CorruptStoreError(
                        f"the step holds {int(rs[i + 1] - rs[i])} records but its regenerated views are {len(v)}",
                        path=self.path,
                        part=where,
                    )
                if check:
                    stored = type(v)(
                        image=v.image,
                        crop=v.crop,
                        flip=v.flip,
                        mix_partner=v.mix_partner,
                        mix_lambda=float(t[L.STEP_MIX_LAMBDA][i]),
                        mix_box=t[L.STEP_MIX_BOX][i],
                    )
                    if same_views(v, stored) is not None:
                        raise ChecksumError(
                            "regenerated mix differs from the stored mix_lambda/mix_box: "
                            + mismatch_message(self.header),
                            path=self.path,
                            part=f"{self._part(name, chunk)}, {where}",
                        )
                views.append(v)
            got = {}
            for col in L.CONFIG_COLUMNS:
                block = {col: np.concatenate([getattr(v, col) for v in views])}
                got[col] = self.pipelines[col].encode(block)
            self._regen_bytes = {chunk: got}  # the most recent chunk (the other view columns read it next)
        data = got[name]
        if check and crc32(data) != int(self.chunk_crc[name][chunk]):
            raise ChecksumError(
                "regenerated views differ from the ones the store was written with: " + mismatch_message(self.header),
                path=self.path,
                part=self._part(name, chunk),
            )
        return data

    def decode_chunk(self, name: str, chunk: int, entry_order: bool = True) -> dict:
        """Chunk ``chunk`` of column ``name`` decoded and checked against the header (read,
        CRC-32, size limits, value ranges). ``entry_order=False``: each record's top-k pairs without
        their stored order (see :meth:`Pipeline.decode <lplabel.codecs.pipeline.Pipeline.decode>`;
        what the loader asks for: training needs the pairs only). The most recent chunk of each
        column is kept."""
        key = (name, chunk, entry_order)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        data = self.read_chunk_bytes(name, chunk)
        cs = self.tables[L.CHUNK_STEP_START]
        rs = self.record_start
        n = int(rs[cs[chunk + 1]] - rs[cs[chunk]])
        pipe = self.pipelines[name]
        need = n * pipe.max_record_bytes()
        if need > max(MAX_CHUNK_FLOOR, MAX_CHUNK_EXPANSION * len(data)):
            raise LimitExceededError(
                f"{n} records would take {need} bytes decoded from {len(data)} stored bytes, "
                f"more than the reader allows (spec §6)",
                path=self.path,
                part=self._part(name, chunk),
                hint="the file is damaged or hostile",
            )
        try:
            block = pipe.decode(data, n, entry_order=entry_order)
        except LplabelError as e:  # keep the class when the codec cannot run here (a missing dependency)
            cls = CodecUnavailableError if isinstance(e, CodecUnavailableError) else CodecError
            raise cls(e.message, path=self.path, part=self._part(name, chunk), hint=e.hint) from None
        except (ValueError, IndexError, TypeError, OverflowError, MemoryError, struct.error) as e:
            raise CodecError(
                f"chunk does not decode ({type(e).__name__}: {e})",
                path=self.path,
                part=self._part(name, chunk),
                hint="the file is damaged",
            ) from None
        self._check_block(name, chunk, block)
        # keep the most recent chunk of each column (sequential readers hit it)
        self._cache = {k: v for k, v in self._cache.items() if k[0] != name}
        self._cache[key] = block
        return block

    def _check_block(self, name: str, chunk: int, block: dict) -> None:
        """Refuse decoded content outside what the header declares (spec §1.3): image ids in
        [0, N), crops finite fractions in [0, 1], flips 0/1, mix partners in [-1, step size),
        class indices in [0, C). A CRC proves the bytes are as written, not that the writer was
        honest; these vectorised checks keep ``read_step`` from handing out anything else."""
        bad = None
        if name == "image":
            a = block["image"]
            if a.size and (a.min() < 0 or a.max() >= self.num_images):
                bad = f"image id outside [0, {self.num_images})"
        elif name == "crop":
            a = np.asarray(block["crop"], dtype=np.float32)
            if a.size and not (np.isfinite(a).all() and a.min() >= 0 and a.max() <= 1 + 2**-8):
                bad = "crop box outside [0, 1] (fractions of the source image) or not finite"
        elif name == "flip":
            a = block["flip"]
            if a.size and a.view(np.uint8).max() > 1:
                bad = "flip is not 0 or 1"
        elif name == "mix_partner":
            a = block["mix_partner"]
            if a.size:
                cs, rs = self.tables[L.CHUNK_STEP_START], self.record_start
                sizes = np.diff(rs[cs[chunk] : cs[chunk + 1] + 1])
                if a.min() < -1 or np.any(a.astype(np.int64) >= np.repeat(sizes, sizes)):
                    bad = "mix partner outside [-1, records of its step)"
        elif "indices" in block:
            a = block["indices"]
            if a.size and (a.min() < 0 or a.max() >= self.num_classes):
                bad = f"top-k class index outside [0, {self.num_classes})"
        if bad is not None:
            raise CorruptStoreError(
                bad,
                path=self.path,
                part=self._part(name, chunk),
                hint="the file is damaged or was not written by lplabel; `lplabel verify` lists all",
            )

    def _rows(self, name: str, i: int) -> dict:
        cs = self.tables[L.CHUNK_STEP_START]
        chunk = int(np.searchsorted(cs, i, side="right")) - 1
        block = self.decode_chunk(name, chunk)
        rs = self.record_start
        base = rs[cs[chunk]]
        a, b = int(rs[i] - base), int(rs[i + 1] - base)
        return {k: v[a:b] for k, v in block.items()}

    def step_at(self, i: int, *, columns=L.COLUMNS) -> StepRecords:
        """The i-th stored step (0 <= i < num_steps)."""
        if not 0 <= i < self.num_steps:
            raise IndexError(f"step position {i} outside 0..{self.num_steps - 1}")
        got = {name: self._rows(name, i) for name in columns}
        return StepRecords(
            index=i,
            epoch=int(self.step_epoch[i]),
            step=int(self.step_index[i]),
            image=got["image"]["image"] if "image" in got else None,
            crop=got["crop"]["crop"] if "crop" in got else None,
            flip=got["flip"]["flip"] if "flip" in got else None,
            mix_partner=got["mix_partner"]["mix_partner"] if "mix_partner" in got else None,
            mix_lambda=float(self.tables[L.STEP_MIX_LAMBDA][i]),
            mix_box=self.tables[L.STEP_MIX_BOX][i],
            # bfloat16 values widened to float32 (exact): never uint16 bit patterns in the API
            label=usable_block(got["label"], self.pipelines["label"].decoded_spec) if "label" in got else None,
        )

    def read_step(self, epoch: int, step: int, **kw) -> StepRecords:
        """The step stored for (epoch, step)."""
        return self.step_at(self.find(epoch, step), **kw)

    def steps_in_epoch(self, epoch: int) -> np.ndarray:
        """Positions of the stored steps of one epoch."""
        return np.flatnonzero(self.step_epoch == epoch)

    def iter_steps(self, positions=None, **kw):
        for i in range(self.num_steps) if positions is None else positions:
            yield self.step_at(int(i), **kw)

    def column_bytes(self, name: str) -> int:
        return int(self.chunks[name][:, 2].sum()) if len(self.chunks[name]) else 0


def open_store(path) -> LabelStore:
    """Open a label store for reading (see :class:`LabelStore`)."""
    return LabelStore(path)
