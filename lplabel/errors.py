"""One error hierarchy for everything lplabel refuses to do.

Every error says *which file*, *which part* and *what to do*, so the CLI can print it as one
line instead of a traceback from deep inside h5py. Errors are picklable (they keep their
constructor arguments), because DataLoader workers raise them in a child process and PyTorch
re-raises them in the parent.
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
