"""Threadline: durable sessions for AI conversations.

A session is a durable, ordered, addressable log that outlives every connection.
This package holds the sans-I/O protocol (:mod:`threadline.protocol`), the
storage seams (:mod:`threadline.storage`) and the ASGI server
(:mod:`threadline.server`).
"""

from __future__ import annotations

from .exceptions import (
    ConfigConflict,
    ContentTypeMismatch,
    InvalidOffset,
    LogClosed,
    LogError,
    LogGone,
    LogNotFound,
    OffsetGone,
    ProducerEpochSeq,
    ProducerEpochStale,
    ProducerSeqGap,
    ProtocolError,
    SeqConflict,
    StorageError,
    StoreLocked,
    TailMismatch,
    ThreadlineError,
)
from .protocol.offsets import Offset

__version__ = "0.1.0"

__all__ = [
    "ConfigConflict",
    "ContentTypeMismatch",
    "InvalidOffset",
    "LogClosed",
    "LogError",
    "LogGone",
    "LogNotFound",
    "Offset",
    "OffsetGone",
    "ProducerEpochSeq",
    "ProducerEpochStale",
    "ProducerSeqGap",
    "ProtocolError",
    "SeqConflict",
    "StorageError",
    "StoreLocked",
    "TailMismatch",
    "ThreadlineError",
    "__version__",
]
