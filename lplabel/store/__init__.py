"""The label store (``*.lpl``): HDF5 container, writer, reader, verification and accounting."""

from .info import store_info
from .reader import LabelStore, StepRecords, open_store
from .verify import VerifyReport, verify_store
from .writer import StoreWriter
from .writer_options import LabelColumn, LabelInput, StoreLayout, ViewColumns

__all__ = [
    "LabelStore",
    "StepRecords",
    "StoreWriter",
    "VerifyReport",
    "open_store",
    "store_info",
    "verify_store",
    "LabelColumn",
    "LabelInput",
    "StoreLayout",
    "ViewColumns",
]
