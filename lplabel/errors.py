"""One error hierarchy for everything lplabel refuses to do.

Every error says *which file*, *which part* and *what to do*, so the CLI can print it as one
line instead of a traceback from deep inside h5py. Errors are picklable (they keep their
constructor arguments), because DataLoader workers raise them in a child process and PyTorch
re-raises them in the parent.

The index of every error class (this module's and the ones defined next to their subsystem:
``lplabel.recode``, ``lplabel.interop.errors``, ``lplabel.relabel.errors``, ...), with its module
and the CLI's exit status, is ``docs/errors.md`` (checked against the code by the tests).
"""

from __future__ import annotations


class LplabelError(Exception):
    """Base of every lplabel error.

    ``path``: the file concerned (or None); ``part``: where in it (a dataset, a chunk, an
    epoch/step range); ``hint``: what the user can do about it.
    """

    def __init__(self, message: str, *, path=None, part: str | None = None, hint: str | None = None):
        self.message = message
        self.path = None if path is None else str(path)
        self.part = part
        self.hint = hint
        super().__init__(self._render())

    def _render(self) -> str:
        s = self.message
        if self.path is not None:
            s = f"{self.path}: {s}"
        if self.part:
            s += f" [at {self.part}]"
        if self.hint:
            s += f" -- {self.hint}"
        return s

    def __reduce__(self):
        return (_rebuild, (type(self), self.message, self.path, self.part, self.hint))


def _rebuild(cls, message, path, part, hint):
    err = cls.__new__(cls)
    LplabelError.__init__(err, message, path=path, part=part, hint=hint)
    return err


# --- opening and reading stores -------------------------------------------------------------


class StoreOpenError(LplabelError):
    """The file cannot be used as a label store at all."""


class NotHDF5Error(StoreOpenError):
    """The file is not an HDF5 file (wrong magic bytes)."""


class NotAStoreError(StoreOpenError):
    """An HDF5 file, but not an lplabel label store."""


class FormatVersionError(StoreOpenError):
    """The store was written by a newer, incompatible major format version."""


class UnsupportedExtensionError(StoreOpenError):
    """The store uses an extension marked must_understand that this version does not know."""


class TruncatedFileError(StoreOpenError):
    """The file is shorter than its own structures say (an interrupted copy or write)."""


class CorruptStoreError(LplabelError):
    """Structure or content of the store is damaged."""


class ChecksumError(CorruptStoreError):
    """Stored and computed checksums differ: the bytes changed after they were written."""


class HeaderError(CorruptStoreError):
    """The JSON header is missing, unparsable or violates the schema."""


class LimitExceededError(CorruptStoreError):
    """The file declares a size beyond what it can hold or what a reader allows (spec §6-§8:
    a dataset larger than the file, a frame inflating past what its chunk index says, counts
    beyond the format's limits). Raised *before* anything of that size is allocated."""


class StepNotFoundError(LplabelError, KeyError):
    """An (epoch, step) pair that the store does not hold."""

    def __str__(self):  # KeyError would otherwise repr() the message
        return self.args[0] if self.args else ""


# --- codecs -----------------------------------------------------------------------------------


class CodecError(LplabelError):
    """A codec or codec chain is invalid or failed."""


class CodecUnavailableError(CodecError):
    """A known codec whose implementation cannot run here (a missing optional dependency): the
    store may be sound, this installation cannot decode it."""


class UnknownCodecError(CodecError):
    """A codec name that no registered codec carries."""


class CodecChainError(CodecError):
    """Codecs in an order or combination that cannot work."""


class CodecConfigError(CodecError):
    """A codec parameter out of range or of the wrong type."""


class NoValuesError(CodecConfigError):
    """Something that needs stored top-k values (logits), asked of labels that keep class indices
    only (``topk`` with ``type: "none"``): a tail summary, value quantization, ordering or coding
    by value, or values for a store that has none (they cannot be invented)."""


# --- writing ----------------------------------------------------------------------------------


class WriterError(LplabelError):
    """The store writer was misused (wrong shapes, order, closed writer...)."""


class OutputExistsError(LplabelError):
    """Refusing to overwrite an existing output without force."""


class OutputWriteError(LplabelError):
    """Writing an output failed in the operating system (disk full, quota, I/O error); the
    partial output was removed. Made from an ``OSError`` by :func:`output_write_error`."""


#: errno values that mean "the output cannot be written here" (not a bug, not bad input):
#: ENOSPC, EDQUOT, EIO, EFBIG (file size limit, RLIMIT_FSIZE), EROFS
_WRITE_ERRNOS = {
    28: "the disk is full (ENOSPC)",
    122: "the disk quota is exceeded (EDQUOT)",
    5: "an I/O error occurred (EIO)",
    27: "the file size limit was reached (EFBIG)",
    30: "the file system is read-only (EROFS)",
    0: "the file system refused the write (a full disk, a quota or an I/O error)",
}
_WRITE_PHRASES = {
    "no space left": 28,
    "disk quota": 122,
    "input/output error": 5,
    "file too large": 27,
    "read-only file system": 30,
}


#: what C++ writers (torch.save's zip writer) raise, as RuntimeError without an errno, when the
#: file system refuses a write
_STREAM_PHRASES = ("iostream error", "failed writing file", "file write failed", "unable to write")


def write_errno(e: BaseException):
    """The errno of a failed write, if ``e`` is one (``OSError`` from Python or h5py, whose
    messages carry ``errno = 28`` or the C library's phrase; 0 for a C++ stream's write failure,
    whose cause is not reported); None otherwise."""
    if isinstance(e, RuntimeError):
        msg = str(e).lower()
        if "errno = " not in msg:
            return 0 if any(p in msg for p in _STREAM_PHRASES) else None
    elif not isinstance(e, OSError):
        return None
    if getattr(e, "errno", None) in _WRITE_ERRNOS:
        return e.errno
    msg = str(e).lower()
    import re

    m = re.search(r"errno = (\d+)", msg)
    if m and int(m.group(1)) in _WRITE_ERRNOS:
        return int(m.group(1))
    for phrase, num in _WRITE_PHRASES.items():
        if phrase in msg:
            return num
    return None


def output_write_error(e: BaseException, path=None):
    """The one translation of a failed write into a named error (the CLI and every writer use
    it): an :class:`OutputWriteError` naming the file and the cause, or None when ``e`` is not a
    write failure."""
    num = write_errno(e)
    if num is None:
        return None
    where = path if path is not None else getattr(e, "filename", None)
    return OutputWriteError(
        f"cannot write: {_WRITE_ERRNOS[num]}",
        path=where,
        hint="free space (or raise the quota/limit) and run the command again; no partial output was left behind",
    )


class LplabelWarning(UserWarning):
    """Something lplabel did on the user's behalf that they should hear about (the CLI prints it
    as one ``note:`` line), e.g. removing a killed writer's leftover temporary file."""


# --- data and teachers ----------------------------------------------------------------------


class DatasetError(LplabelError):
    """A data set could not be found, read or decoded; the message names the file."""


class TeacherError(LplabelError):
    """A teacher could not be built, loaded or saved; the message says which and what to do."""


# --- images and loading -----------------------------------------------------------------------


class ImageSetMismatchError(LplabelError):
    """The images given do not match the images the store's labels were made for."""


class ScheduleError(LplabelError):
    """An epoch or step that the store's reuse schedule cannot serve."""


def first_line(e: BaseException, limit: int = 160) -> str:
    """``Type: first sentence`` of an exception from another library, for a one-line named error."""
    text = str(e).strip().splitlines()
    line = text[0] if text else ""
    line = line.split(". ")[0]
    if len(line) > limit:
        line = line[:limit] + "..."
    return f"{type(e).__name__}: {line}" if line else type(e).__name__
