"""Threadline: durable sessions for AI conversations.

A session is a durable, ordered, addressable log that outlives every connection.
This package holds the sans-I/O protocol (:mod:`threadline.protocol`), the
storage seams (:mod:`threadline.storage`) and the ASGI server
(:mod:`threadline.server`).
"""

from __future__ import annotations

from .exceptions import (
    AlreadyAccepted,
    AlreadyEnded,
    ConfigConflict,
    ContentTypeMismatch,
    DeltaGap,
    DuplicateReference,
    Forbidden,
    InvalidEvent,
    InvalidOffset,
    LogClosed,
    LogError,
    LogGone,
    LogNotFound,
    NotInControl,
    OffsetGone,
    ProducerEpochSeq,
    ProducerEpochStale,
    ProducerSeqGap,
    ProtocolError,
    SeqConflict,
    SessionClosed,
    SessionRuleError,
    StorageError,
    StoreLocked,
    TailMismatch,
    ThreadlineError,
    UnknownReference,
)
from .protocol.offsets import Offset

__version__ = "0.1.0"

__all__ = [
    "AlreadyAccepted",
    "AlreadyEnded",
    "ConfigConflict",
    "ContentTypeMismatch",
    "DeltaGap",
    "DuplicateReference",
    "Forbidden",
    "InvalidEvent",
    "InvalidOffset",
    "LogClosed",
    "LogError",
    "LogGone",
    "LogNotFound",
    "NotInControl",
    "Offset",
    "OffsetGone",
    "ProducerEpochSeq",
    "ProducerEpochStale",
    "ProducerSeqGap",
    "ProtocolError",
    "SeqConflict",
    "SessionClosed",
    "SessionRuleError",
    "StorageError",
    "StoreLocked",
    "TailMismatch",
    "ThreadlineError",
    "UnknownReference",
    "__version__",
]
