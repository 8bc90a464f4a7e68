"""Write a label store step by step, in bounded memory, atomically.

The writer keeps at most one chunk of steps plus one segment of encoded bytes per column in
memory, so a 100 GB store streams through a few MB. It writes to a temporary file beside the
target and renames it into place only in :meth:`StoreWriter.close`: a crash or kill never
leaves a half-written file under the final name, and an existing file there stays untouched
until the new one is complete.
"""

from __future__ import annotations

import errno
import math
import os
import tempfile
import warnings
from pathlib import Path

import h5py
import numpy as np

from ..checksum import crc32, crc32_array
from ..codecs import Field, Pipeline, default_column_codecs, preset_chain
from ..codecs.zstd import dictionary_dataset
from ..errors import CodecError, LplabelError, LplabelWarning, OutputExistsError, WriterError, output_write_error
from ..images import image_index
from ..views import SAMPLER_V1, SAMPLER_V2, StepViews
from . import layout as L
from . import packed as P
from .container import create_file, ensure_group, write_dataset
from .derived import ViewRegenerator, check_image_sizes, derived_chain, is_derived, same_views
from .header import build_header, encode_header, validate_header
from .writer_options import LabelColumn, StoreLayout, ViewColumns, writer_options

_CONFIG_FIELDS = {
    "image": Field("image", "int32", ()),
    "flip": Field("flip", "bool", ()),
    "mix_partner": Field("mix_partner", "int16", ()),
}


def _json_safe(obj):
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def _read_umask() -> int:
    """The process umask, read once at import (reading it means setting it, which is not thread-safe)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def temp_path_for(path: Path) -> Path:
    """Temporary name beside ``path`` (same filesystem, so the final rename is atomic):
    ``.<name>.<pid>.<random>.tmp``, the writer's process id in the name so that a later run can
    tell a killed writer's leftover (:func:`clean_stale_temps`) from a live writer's file."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; a finished store gets ordinary permissions
    return Path(tmp)


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return True  # not a process id we wrote: treat as alive, never remove
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: a process of another user holds that id
        return True
    return True


def clean_stale_temps(path) -> list:
    """Remove the temporaries that killed writers of ``path`` left beside it, and return their
    paths. Only files named exactly as :func:`temp_path_for` names them for this output
    (``.<name>.<pid>.<8 random characters>.tmp``) whose writer process no longer exists on this
    machine are removed: a live writer's file, another output's, or anything else is left alone.
    (On a file system shared between machines a pid names a process of this machine only, so a
    writer elsewhere with a pid that is free here would lose its temporary: do not run writers
    of one output on several machines at once.)"""
    import re

    path = Path(path)
    pat = re.compile(r"\." + re.escape(path.name) + r"\.(\d+)\.[A-Za-z0-9_]{8}\.tmp\Z")
    removed = []
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return removed
    for e in entries:
        m = pat.match(e.name)
        if m is None or int(m.group(1)) == os.getpid() or _pid_alive(int(m.group(1))):
            continue
        try:
            if e.is_file(follow_symlinks=False):
                os.unlink(e.path)
                removed.append(Path(e.path))
        except OSError:
            pass
    return removed


#: disk space reserved beyond the data about to be written, for HDF5's metadata (see _reserve)
RESERVE_SLACK = 64 << 10


def _trim_to_eoa(path: Path) -> None:
    """Cut a finished HDF5 file to the end of file its superblock records (version 2/3
    superblocks, which lplabel writes): the space :meth:`StoreWriter._reserve` allocated ahead
    and HDF5 never used."""
    with open(path, "r+b") as fh:
        sb = fh.read(48)
        if not sb.startswith(L.HDF5_MAGIC) or sb[8] not in (2, 3) or sb[9] != 8:
            return
        base = int.from_bytes(sb[12:20], "little")
        eof = base + int.from_bytes(sb[28:36], "little")
        if os.fstat(fh.fileno()).st_size > eof:
            fh.truncate(eof)


def discard_h5(f) -> None:
    """Close an HDF5 file being abandoned (its temporary is deleted next) so that the close
    cannot fail. After a failed write (a full disk) HDF5's final flush at ``close`` fails too;
    the file then stays open inside HDF5, h5py prints "Exception ignored" tracebacks, and HDF5's
    exit handler crashes (SIGSEGV) flushing it again. Pointing HDF5's file descriptor at an
    anonymous in-memory file first lets that flush (a few KB of metadata) succeed."""
    try:
        fd = f.id.get_vfd_handle()
        scratch = os.memfd_create("lplabel-discard") if hasattr(os, "memfd_create") else os.open(os.devnull, os.O_RDWR)
        try:
            os.dup2(scratch, fd)
        finally:
            os.close(scratch)
    except Exception:
        pass
    try:
        f.close()
    except Exception:
        pass


def publish(tmp: Path, path: Path) -> None:
    """fsync ``tmp`` and atomically rename it to ``path``."""
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
    try:
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


class _Column:
    """One per-record column: encodes chunks, buffers them into segments, keeps the chunk index."""

    def __init__(self, name: str, pipeline: Pipeline, segment_bytes: int):
        self.name = name
        self.pipeline = pipeline
        self.segment_bytes = segment_bytes
        self.buffer = bytearray()
        self.segment = 0
        self.chunks: list = []  # (segment, offset, nbytes)
        self.crcs: list = []
        self.nbytes = 0
        self.derived = is_derived(pipeline.codecs)

    def add_chunk(self, block: dict, start: int = 0) -> None:
        data = self.pipeline.encode(block, start)
        if self.derived:  # no payload and no chunk rows: only the CRC of the bytes it would hold
            self.crcs.append(crc32(data))
            return
        self.chunks.append((self.segment, len(self.buffer), len(data)))
        self.crcs.append(crc32(data))
        self.buffer += data
        self.nbytes += len(data)

    def flush(self, f: h5py.File, force: bool = False, reserve=None) -> None:
        if self.buffer and (force or len(self.buffer) >= self.segment_bytes):
            if reserve is not None:
                reserve(len(self.buffer))
            write_dataset(f, L.segment_name(self.name, self.segment), np.frombuffer(bytes(self.buffer), np.uint8))
            self.buffer = bytearray()
            self.segment += 1


def header_copy_default() -> bool:
    """Whether stores get the header's ``json`` convenience attribute when the caller does not say:
    yes, unless ``LPLABEL_HEADER_COPY`` is ``0`` (set by ``lplabel --no-header-copy``; inherited
    by worker processes)."""
    return os.environ.get("LPLABEL_HEADER_COPY", "1").strip().lower() not in ("0", "false", "no", "off")


class StoreWriter:
    """Stream steps into a new label store.

    Parameters
    ----------
    path: the ``.lpl`` file to create.
    num_classes: C, the width of every soft label.
    images: the distilled set (:class:`~lplabel.images.ImageSet` or ``ImageIndex``, or a count).
    batch_size: B, records per full step.
    epochs, steps_per_epoch: the nominal schedule the records belong to (a pruned store holds
        only some of these steps; ``steps_per_epoch`` defaults to ceil(N / B), or floor with
        ``drop_last``).
    augmentation, teacher: dicts recorded in the header (see spec/FORMAT.md); ``seed``,
        ``selection``, ``extensions`` likewise.
    labels: a :class:`~lplabel.store.writer_options.LabelColumn`: the label column's codec chain
        (default: dense fp16 + bytes/shuffle/zstd), what write_step takes
        (:class:`~lplabel.store.writer_options.LabelInput`: dense ``logits`` [B, C], or
        ``topk_indices`` and ``topk_values`` [B, k], with ``topk_tail`` [B] or indices alone), and
        the chain stage at which labels arrive already encoded (``label_block``).
    views: a :class:`~lplabel.store.writer_options.ViewColumns`: crop type, codec chains of the
        view columns, or *derived* view columns (spec/FORMAT.md §1.4: no payload, regenerated by
        readers from the header and ``images/size``; needs ``augmentation`` naming a view sampler
        -- ``lplabel-views-v2``, or ``-v1`` for stores of numpy's streams, which then record
        ``tool.numpy`` -- and an integer ``seed``; write_step still takes the views and refuses
        (WriterError) any step whose views do not regenerate exactly, v2: from the λ it is given,
        which is stored as always. A packed store with v2 derived views is format 1.2).
    layout: a :class:`~lplabel.store.writer_options.StoreLayout`: steps per chunk, segment size,
        zstd level, packed tables (format 1.1, default) or format 1.0, the header's ``json``
        convenience copy (None: :func:`header_copy_default`; left out for headers over 65,000 bytes).
    overwrite: replace an existing file at ``path`` (only once the new one is complete).

    The former keyword arguments are accepted for one release instead of the three objects:
    ``label_codecs``, ``label_input`` (``"logits"``, ``("topk", k)``, ``("topk", k, "tail")``,
    ``("topk", k, "indices")``), ``label_stage``; ``crop_type``, ``view_codecs``,
    ``derived_views``; ``steps_per_chunk``, ``segment_bytes``, ``zstd_level``, ``packed_tables``,
    ``header_copy`` (:func:`~lplabel.store.writer_options.writer_options`).
    """

    def __init__(
        self,
        path,
        *,
        num_classes: int,
        images,
        batch_size: int,
        epochs: int,
        steps_per_epoch: int | None = None,
        drop_last: bool = False,
        augmentation: dict | None = None,
        teacher: dict | None = None,
        seed=None,
        selection: dict | None = None,
        extensions: dict | None = None,
        labels: LabelColumn | None = None,
        views: ViewColumns | None = None,
        layout: StoreLayout | None = None,
        overwrite: bool = False,
        **legacy,
    ):
        self.path = Path(path)
        self._f = None
        self._tmp = None
        self._check_output(overwrite)
        self._set_schedule(num_classes, images, batch_size, epochs, steps_per_epoch, drop_last)
        try:
            self.labels, self.views, self.layout = writer_options(labels, views, layout, **legacy)
        except WriterError as e:
            raise WriterError(e.message, path=self.path, hint=e.hint) from None
        lay = self.layout
        self._header_copy = header_copy_default() if lay.header_copy is None else bool(lay.header_copy)
        self.steps_per_chunk = lay.steps_per_chunk
        self._input = self.labels.input
        self._label_stage = self.labels.stage
        label_pipe = self._label_pipeline()
        self._regen, self._image_sizes = self._view_regenerator(seed, augmentation, drop_last)
        self._columns = self._make_columns(label_pipe)

        # the writer owns the packed_tables extension: it is there exactly when the tables are packed
        self._packed = lay.packed_tables
        extensions = {k: v for k, v in dict(extensions or {}).items() if k != P.EXTENSION}
        if self._packed:
            extensions[P.EXTENSION] = P.extension_entry()
        self._tables: list = []

        # format 1.2 (spec §8): a packed store whose views are derived by lplabel-views-v2
        self._version = (
            L.FORMAT_VERSION
            if not self._packed
            else (
                L.FORMAT_VERSION_V2_VIEWS
                if self._regen is not None and self._regen.sampler == SAMPLER_V2
                else L.FORMAT_VERSION_PACKED
            )
        )
        self._header_args = dict(
            num_classes=self.num_classes,
            images=self.images.header_entry(),
            epochs=self.epochs,
            steps_per_epoch=self.steps_per_epoch,
            batch_size=self.batch_size,
            drop_last=bool(drop_last),
            augmentation=_json_safe(augmentation or {}),
            teacher=_json_safe({"description": "", "checksum": None, "temperature": 1.0, **(teacher or {})}),
            columns={n: c.pipeline.header_entry() for n, c in self._columns.items()},
            steps_per_chunk=self.steps_per_chunk,
            segment_bytes=lay.segment_bytes,
            seed=_json_safe(seed),
            selection=_json_safe(selection),
            extensions=_json_safe(extensions),
            version=self._version,
            # v1 derived views are numpy's streams: name the numpy that checked them (spec §2, `tool`)
            tool_extra={"numpy": np.__version__}
            if self._regen is not None and self._regen.sampler == SAMPLER_V1
            else None,
        )
        self._check_header()
        self._open_file()
        self._steps = {k: [] for k in ("epoch", "step", "count", "lam", "box")}
        self._pending: list = []
        self._chunk_step_start = [0]
        self._records = 0
        self._last_key = (-1, -1)
        self._closed = False

    # -- constructing ----------------------------------------------------------------------------
    def _check_output(self, overwrite: bool) -> None:
        """Refuse a directory, an existing file (unless ``overwrite``), a missing parent directory."""
        if self.path.is_dir():
            raise OutputExistsError("output is a directory", path=self.path, hint="give a file name ending in .lpl")
        if self.path.exists() and not overwrite:
            raise OutputExistsError(
                "output exists", path=self.path, hint="choose another name or pass overwrite/--force"
            )
        if not self.path.parent.exists():
            raise WriterError("output directory does not exist", path=self.path.parent)

    def _set_schedule(self, num_classes, images, batch_size, epochs, steps_per_epoch, drop_last) -> None:
        """The store's shape: classes, images, batch size, epochs, steps per epoch (checked)."""
        self.images = image_index(images)
        n_img = len(self.images)
        if not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
            raise WriterError(f"num_classes must be a positive integer, got {num_classes!r}", path=self.path)
        if batch_size < 1 or epochs < 1 or n_img < 1:
            raise WriterError(
                f"batch_size ({batch_size}), epochs ({epochs}) and image count ({n_img}) must be >= 1", path=self.path
            )
        if batch_size > 32767:
            raise WriterError(f"batch_size {batch_size} exceeds 32767 (mix partners are int16)", path=self.path)
        self.num_classes = int(num_classes)
        self.batch_size = int(batch_size)
        self.epochs = int(epochs)
        if steps_per_epoch is None:
            steps_per_epoch = n_img // batch_size if drop_last else -(-n_img // batch_size)
        self.steps_per_epoch = int(steps_per_epoch)

    def _label_pipeline(self) -> Pipeline:
        """The label column's pipeline (the default chain when none is given), and its stage."""
        li, codecs, level = self._input, self.labels.codecs, self.layout.zstd_level
        if codecs is None:
            codecs = preset_chain(
                "plain", k=li.k if li.is_topk else None, level=level, type="none" if li.indices_only else "float16"
            )
        try:
            label_pipe = Pipeline(codecs, li.fields(self.num_classes))
        except LplabelError as e:
            raise type(e)(e.message, path=self.path, part="label codecs", hint=e.hint) from None
        if not self._label_stage <= len(label_pipe.array_array):
            raise WriterError(
                f"label_stage {self._label_stage} outside 0..{len(label_pipe.array_array)}", path=self.path
            )
        return label_pipe

    def _view_regenerator(self, seed, augmentation, drop_last) -> tuple:
        """(ViewRegenerator, checked image sizes) for derived view columns, else (None, None)."""
        if self.views.derived is None:
            return None, None
        n_img = len(self.images)
        try:
            sizes = check_image_sizes(self.views.derived, n_img)
            regen = ViewRegenerator(
                seed=_json_safe(seed),
                augmentation=_json_safe(augmentation or {}),
                num_images=n_img,
                batch_size=self.batch_size,
                drop_last=bool(drop_last),
                steps_per_epoch=self.steps_per_epoch,
                image_sizes=sizes,
            )
        except ValueError as e:
            raise WriterError(
                f"cannot derive views: {e}", path=self.path, hint="store the views instead (derived_views=None)"
            ) from None
        return regen, sizes

    def _make_columns(self, label_pipe: Pipeline) -> dict:
        """The four view columns (stored with their chains, or derived) and the label column."""
        crop_field = Field("crop", self.views.crop_type, (4,))
        fields = dict(_CONFIG_FIELDS, crop=crop_field)
        columns = {}
        for name in L.CONFIG_COLUMNS:
            f = fields[name]
            es = 2 if f.type == "float16" else (1 if f.type == "bool" else np.dtype(f.type).itemsize)
            chain = (self.views.codecs or {}).get(name) or default_column_codecs(es, self.layout.zstd_level)
            if self._regen is not None:
                chain = derived_chain(self._regen.sampler)
            try:
                pipe = Pipeline(chain, (f,))
            except LplabelError as e:
                raise type(e)(e.message, path=self.path, part=f"{name} codecs", hint=e.hint) from None
            columns[name] = _Column(name, pipe, self.layout.segment_bytes)
        columns["label"] = _Column("label", label_pipe, self.layout.segment_bytes)
        return columns

    def _check_header(self) -> None:
        """Refuse an unusable header now, not after hours of relabelling."""
        try:
            validate_header(build_header(**self._header_args))
            encode_header(build_header(**self._header_args))
        except LplabelError as e:
            raise type(e)(e.message, path=self.path, part="header", hint=e.hint) from None
        except (TypeError, ValueError) as e:
            raise WriterError(f"header metadata is not JSON-serialisable ({e})", path=self.path) from None

    def _open_file(self) -> None:
        """Remove killed writers' temporaries (spec §7), create the temporary file, start it."""
        #: temporaries of killed earlier writers of this output, removed now (spec §7)
        self.stale_removed = clean_stale_temps(self.path)
        for p in self.stale_removed:
            warnings.warn(
                LplabelWarning(f"removed {p.name}, a temporary file left by a killed writer of {self.path.name}"),
                stacklevel=3,
            )
        try:
            self._tmp = temp_path_for(self.path)
        except OSError as e:
            raise output_write_error(e, self.path) or e from None
        try:
            self._f = create_file(self._tmp)
            self._reserved = 0
            self._reserve(0)
            self._start_file()
            self._write_dictionaries()
        except BaseException as e:
            self.abort()
            err = output_write_error(e, self.path)
            if err is not None:
                raise err from None
            raise

    def _start_file(self) -> None:
        """Groups, then root attributes (in this order the root object header needs the fewest
        continuation blocks).

        ``lplabel_format`` says ``lplabel-incomplete`` until :meth:`close` (spec §7). Format 1.1
        writes it as a fixed-length ASCII string, overwritten in place by ``lplabel`` (NUL-padded),
        and the version and a placeholder header CRC up front; format 1.0 keeps the variable-length
        string of earlier releases (which costs a 4 KiB HDF5 global heap)."""
        # groups, each sized for the links it gets (packed: only columns with payload have one)
        groups = {}
        for name, col in self._columns.items():
            n = 1 + any(c.uses_dictionary for c in col.pipeline.codecs)
            if not self._packed:
                groups[L.column_group(name)] = n + 2  # + chunks, crc32
            elif not col.derived:
                groups[L.column_group(name)] = n
        if groups:
            ensure_group(self._f, "columns", len(groups))
        if not self._packed:
            groups.update({"steps": 5, "chunks": 1, "images": 2 + (self._image_sizes is not None)})
        for g, n in groups.items():
            ensure_group(self._f, g, n)
        a = self._f.attrs
        if self._packed:
            a[L.ATTR_FORMAT] = np.bytes_((L.FORMAT_NAME + "-incomplete").encode("ascii"))
            a[L.ATTR_VERSION] = np.asarray(self._version, dtype="<i4")
            a[L.ATTR_HEADER_CRC] = np.uint32(0)
        else:
            a[L.ATTR_FORMAT] = L.FORMAT_NAME + "-incomplete"

    def _write_dictionaries(self) -> None:
        """Store the zstd dictionary of any column whose chain uses one (``columns/<name>/zstd_dict``)."""
        for name, col in self._columns.items():
            dicts = [c for c in col.pipeline.codecs if c.uses_dictionary]
            if len(dicts) > 1:
                raise WriterError(
                    f"column {name!r}: at most one zstd codec with a dictionary per column", path=self.path
                )
            if dicts:
                data = dicts[0].dictionary_data()
                if data is None:
                    raise WriterError(
                        f"column {name!r}: the zstd codec names a dictionary but holds no bytes",
                        path=self.path,
                        hint="build it with Zstd.with_dictionary(bytes, level)",
                    )
                self._reserve(len(data))
                write_dataset(
                    self._f,
                    dictionary_dataset(name),
                    np.frombuffer(data, np.uint8),
                    {L.ATTR_CRC: np.uint32(crc32(data))},
                )

    # -- writing -------------------------------------------------------------------------------
    def write_step(
        self,
        epoch: int,
        step: int,
        *,
        image,
        crop,
        flip,
        logits=None,
        topk_indices=None,
        topk_values=None,
        topk_tail=None,
        mix_partner=None,
        mix_lambda: float = math.nan,
        mix_box=None,
        label_block=None,
    ) -> None:
        """Append one step: B views (image id, crop box, flip, mix partner) and their labels."""
        if self._closed:
            raise WriterError("write_step on a closed writer", path=self.path)
        where = f"epoch {epoch}, step {step}"
        epoch, step = int(epoch), int(step)
        if not (0 <= epoch < self.epochs and 0 <= step < self.steps_per_epoch):
            raise WriterError(
                f"(epoch, step) = ({epoch}, {step}) outside the schedule of {self.epochs} epochs x "
                f"{self.steps_per_epoch} steps",
                path=self.path,
                part=where,
            )
        if (epoch, step) <= self._last_key:
            raise WriterError(
                f"steps must be written in increasing (epoch, step) order; ({epoch}, {step}) comes "
                f"after {self._last_key}",
                path=self.path,
                part=where,
            )
        image = np.asarray(image)
        b = image.shape[0] if image.ndim == 1 else -1
        if not 1 <= b <= self.batch_size:
            raise WriterError(
                f"image ids must be a 1-D array of 1..{self.batch_size} entries, got shape {image.shape}",
                path=self.path,
                part=where,
            )
        if image.min() < 0 or image.max() >= len(self.images):
            raise WriterError(f"image ids must lie in [0, {len(self.images)})", path=self.path, part=where)
        crop = np.asarray(crop)
        if crop.shape != (b, 4) or not np.isfinite(crop).all():
            raise WriterError(f"crop must be finite with shape ({b}, 4), got {crop.shape}", path=self.path, part=where)
        flip = np.asarray(flip)
        if flip.shape != (b,):
            raise WriterError(f"flip must have shape ({b},), got {flip.shape}", path=self.path, part=where)
        if mix_partner is None:
            mix_partner = np.full(b, -1, dtype=np.int16)
        mix_partner = np.asarray(mix_partner)
        if mix_partner.shape != (b,) or (b and (mix_partner.min() < -1 or mix_partner.max() >= b)):
            raise WriterError(
                f"mix_partner must have shape ({b},) with values in [-1, {b})", path=self.path, part=where
            )
        lam = float(mix_lambda)
        if not (math.isnan(lam) or 0.0 <= lam <= 1.0):
            raise WriterError(
                f"mix_lambda must be NaN (not mixed) or in [0, 1], got {lam!r}", path=self.path, part=where
            )
        box = np.zeros(4, np.int16) if mix_box is None else np.asarray(mix_box)
        size = (self._header_args["augmentation"] or {}).get("output_size")
        top = size if isinstance(size, int) and not isinstance(size, bool) and size > 0 else np.iinfo(np.int16).max
        if box.shape != (4,) or np.any(box < 0) or np.any(box > top):
            raise WriterError(
                f"mix_box must be 4 integers (row0, col0, row1, col1) in 0..{top} (the output image)",
                path=self.path,
                part=where,
            )
        if self._regen is not None:
            self._check_derived(epoch, step, image, crop, flip, mix_partner, mix_lambda, box, where)
        if self._label_stage:
            if label_block is None:
                raise WriterError("this writer takes label_block (label_stage > 0)", path=self.path, part=where)
            label = {k: np.asarray(v) for k, v in label_block.items()}
            try:
                self._columns["label"].pipeline.check_block(
                    label, b, spec=self._columns["label"].pipeline.stage_spec(self._label_stage)
                )
            except LplabelError as e:
                raise WriterError(e.message, path=self.path, part=where) from None
        else:
            label = self._label_block(b, logits, topk_indices, topk_values, where, topk_tail)
        self._steps["epoch"].append(epoch)
        self._steps["step"].append(step)
        self._steps["count"].append(b)
        self._steps["lam"].append(float(mix_lambda))
        self._steps["box"].append(box.astype(np.int16))
        self._pending.append({"image": image, "crop": crop, "flip": flip, "mix_partner": mix_partner, "label": label})
        self._last_key = (epoch, step)
        self._records += b
        if len(self._pending) >= self.steps_per_chunk:
            try:
                self._flush_chunk()
            except BaseException as e:  # a failed write leaves nothing open: the store is abandoned
                self.abort()
                err = output_write_error(e, self.path)
                if err is not None:
                    raise err from None
                raise

    def _check_derived(self, epoch, step, image, crop, flip, mix_partner, mix_lambda, box, where) -> None:
        """Refuse views that readers would not regenerate bit for bit (derived view columns)."""
        try:
            given = StepViews(
                image=image,
                crop=np.asarray(crop, dtype=np.float32),
                flip=flip,
                mix_partner=mix_partner,
                mix_lambda=mix_lambda,
                mix_box=box,
            )
        except (TypeError, ValueError) as e:
            raise WriterError(
                f"views cannot be compared with the derived ones ({e})", path=self.path, part=where
            ) from None
        if not np.array_equal(np.asarray(image).astype(np.int64), given.image) or not np.array_equal(
            np.asarray(mix_partner).astype(np.int64), given.mix_partner
        ):
            bad = "image or mix_partner (values do not fit int32/int16)"
        else:
            try:  # v2: the views that follow from the given λ (λ itself is stored, never regenerated)
                bad = same_views(given, self._regen.step(epoch, step, mix_lambda=given.mix_lambda))
            except ValueError as e:
                bad = f"mix_lambda ({e})"
        if bad is not None:
            raise WriterError(
                f"the views differ from the ones the view sampler regenerates (first in {bad}); "
                "a store with derived views cannot hold them",
                path=self.path,
                part=where,
                hint="write views drawn by lplabel.views (same seed, policy and image sizes), "
                "or store the views (derived_views=None)",
            )

    def _label_block(self, b, logits, topk_indices, topk_values, where, topk_tail=None):
        li = self._input
        if not li.is_topk:
            if logits is None or topk_indices is not None:
                raise WriterError("this store takes dense logits (label_input='logits')", path=self.path, part=where)
            logits = np.asarray(logits)
            if logits.shape != (b, self.num_classes):
                raise WriterError(
                    f"logits must have shape ({b}, {self.num_classes}), got {logits.shape}",
                    path=self.path,
                    part=where,
                    hint="the teacher's output width must equal num_classes",
                )
            return {"logits": logits}
        if li.indices_only:
            if topk_indices is None or topk_values is not None or topk_tail is not None or logits is not None:
                raise WriterError(
                    "this store takes topk_indices alone (label_input=('topk', k, 'indices'))",
                    path=self.path,
                    part=where,
                )
            idx = np.asarray(topk_indices)
            if idx.shape != (b, li.k):
                raise WriterError(
                    f"top-k indices must have shape ({b}, {li.k}), got {idx.shape}", path=self.path, part=where
                )
            if idx.size and (idx.min() < 0 or idx.max() >= self.num_classes):
                raise WriterError(
                    f"top-k class indices must lie in [0, {self.num_classes})", path=self.path, part=where
                )
            return {"indices": idx}
        if topk_indices is None or topk_values is None or logits is not None:
            raise WriterError(
                "this store takes topk_indices and topk_values (label_input=('topk', k))", path=self.path, part=where
            )
        idx, val = np.asarray(topk_indices), np.asarray(topk_values)
        if idx.shape != (b, li.k) or val.shape != (b, li.k):
            raise WriterError(
                f"top-k arrays must have shape ({b}, {li.k}), got {idx.shape} and {val.shape}",
                path=self.path,
                part=where,
            )
        if idx.size and (idx.min() < 0 or idx.max() >= self.num_classes):
            raise WriterError(f"top-k class indices must lie in [0, {self.num_classes})", path=self.path, part=where)
        if li.tail != (topk_tail is not None):
            raise WriterError(
                "topk_tail must be given exactly when label_input is ('topk', k, 'tail')", path=self.path, part=where
            )
        if topk_tail is not None:
            tail = np.asarray(topk_tail)
            if tail.shape != (b,):
                raise WriterError(f"topk_tail must have shape ({b},), got {tail.shape}", path=self.path, part=where)
            return {"indices": idx, "values": val, "tail": tail}
        return {"indices": idx, "values": val}

    def _flush_chunk(self) -> None:
        if not self._pending:
            return
        for name, col in self._columns.items():
            parts = [p[name] for p in self._pending]
            if name == "label":
                block = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
            else:
                block = {name: np.concatenate(parts)}
            try:
                col.add_chunk(block, self._label_stage if name == "label" else 0)
            except LplabelError as e:
                raise CodecError(
                    f"cannot encode column {name!r}: {e.message}",
                    path=self.path,
                    part=f"steps {len(self._steps['epoch']) - len(self._pending)}..",
                    hint=e.hint,
                ) from None
            col.flush(self._f, reserve=self._reserve)
        self._chunk_step_start.append(len(self._steps["epoch"]))
        self._pending = []

    # -- finishing -------------------------------------------------------------------------------
    def _table(self, name: str, data: np.ndarray) -> None:
        """A table: its own dataset with a ``crc32`` attribute (1.0), or an entry of ``tables`` (1.1)."""
        if self._packed:
            self._tables.append((name, np.ascontiguousarray(data)))
        else:
            self._reserve(data.nbytes)
            write_dataset(self._f, name, data, {L.ATTR_CRC: np.uint32(crc32_array(data))})

    def close(self) -> Path:
        """Finish the store and atomically move it to its final name. Returns the path."""
        if self._closed:
            return self.path
        try:
            self._flush_chunk()
            for col in self._columns.values():
                col.flush(self._f, force=True, reserve=self._reserve)
                self._table(L.column_chunks(col.name), np.asarray(col.chunks, dtype="<i8").reshape(-1, 3))
                self._table(L.column_crc(col.name), np.asarray(col.crcs, dtype="<u4"))
            s = self._steps
            counts = np.asarray(s["count"], dtype="<i8")
            self._table(L.STEP_EPOCH, np.asarray(s["epoch"], dtype="<i4"))
            self._table(L.STEP_STEP, np.asarray(s["step"], dtype="<i4"))
            self._table(L.STEP_RECORD_START, np.concatenate([[0], np.cumsum(counts)]).astype("<i8"))
            self._table(L.STEP_MIX_LAMBDA, np.asarray(s["lam"], dtype="<f8"))
            self._table(L.STEP_MIX_BOX, np.asarray(s["box"], dtype="<i2").reshape(-1, 4))
            self._table(L.CHUNK_STEP_START, np.asarray(self._chunk_step_start, dtype="<i8"))
            keys = np.frombuffer(encode_header(self.images.keys), dtype=np.uint8)
            self._table(L.IMAGE_KEYS, keys)
            self._table(L.IMAGE_CLASS, self.images.classes.astype("<i4"))
            if self._image_sizes is not None:
                self._table(L.IMAGE_SIZE, self._image_sizes)
            if self._packed:
                blob = np.frombuffer(P.pack_tables(self._tables), np.uint8)
                self._reserve(blob.nbytes)
                write_dataset(self._f, L.PACKED_TABLES, blob, {L.ATTR_CRC: np.uint32(crc32_array(blob))})
            header = build_header(**self._header_args, records=self._records, steps=len(s["epoch"]))
            raw = np.frombuffer(encode_header(header), dtype=np.uint8)
            copy = None
            if self._header_copy and 0 < len(raw) <= L.HEADER_JSON_MAX:
                # fixed-length ASCII (the JSON escapes non-ASCII): no 4 KiB global heap, as a
                # variable-length string would bring; h5dump -A and h5ls -v print it as a string
                copy = {L.ATTR_HEADER_JSON: np.bytes_(raw.tobytes())}
            self._reserve(raw.nbytes * (2 if copy else 1))
            write_dataset(self._f, L.HEADER, raw, copy)
            a = self._f.attrs
            if self._packed:  # same types and sizes as written by _start_file: rewritten in place
                a.modify(L.ATTR_HEADER_CRC, np.uint32(crc32(raw.tobytes())))
                a.modify(L.ATTR_FORMAT, np.bytes_(L.FORMAT_NAME.encode("ascii")))
            else:
                a[L.ATTR_VERSION] = np.asarray(L.FORMAT_VERSION, dtype="<i4")
                a[L.ATTR_HEADER_CRC] = np.uint32(crc32(raw.tobytes()))
                a[L.ATTR_FORMAT] = L.FORMAT_NAME
            self._f.flush()  # a full disk fails here, with the file still open for abort() to discard
            self._f.close()
            _trim_to_eoa(self._tmp)
            publish(self._tmp, self.path)
        except BaseException as e:
            self.abort()
            err = output_write_error(e, self.path)
            if err is not None:
                raise err from None
            raise
        self._closed = True
        return self.path

    def abort(self) -> None:
        """Drop the partial store: remove the temporary file, leave any existing target as it was."""
        self._closed = True
        if self._f is not None:
            if self._f.id.valid:
                discard_h5(self._f)
            self._f = None
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)

    def _reserve(self, nbytes: int) -> None:
        """Allocate disk space for the next ``nbytes`` of data plus room for HDF5's metadata
        (``posix_fallocate`` on the temporary) *before* HDF5 writes them. A full disk then fails
        here, as a plain ``OSError`` with nothing half-written, instead of inside HDF5, whose
        metadata writes fail silently in h5py's object destructors and leave the library in a
        state that crashes (SIGSEGV) at the next flush. The space beyond HDF5's end of file is
        cut off again when the store is finished (:func:`_trim_to_eoa`)."""
        if not hasattr(os, "posix_fallocate"):
            return
        target = int(self._f.id.get_filesize()) + int(nbytes) + RESERVE_SLACK
        if target <= self._reserved:
            return
        fd = os.open(self._tmp, os.O_WRONLY)
        try:
            os.posix_fallocate(fd, self._reserved, target - self._reserved)
        except OSError as e:
            if e.errno in (errno.EOPNOTSUPP, errno.EINVAL, getattr(errno, "ENOTSUP", errno.EOPNOTSUPP)):
                self._reserved = 1 << 62  # the file system cannot reserve: HDF5 reports failures itself
                return
            raise
        finally:
            os.close(fd)
        self._reserved = target

    @property
    def records_written(self) -> int:
        return self._records

    @property
    def steps_written(self) -> int:
        return len(self._steps["epoch"])

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()
        return False
