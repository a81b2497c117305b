"""The exception tree. Every error Threadline raises derives from one root.

.. code-block:: text

    ThreadlineError
    ├── ProtocolError                 the peer sent bad data (a 4xx)
    │   └── InvalidOffset             malformed offset, or beyond the tail
    ├── LogError                      an operation a log's state refuses
    │   ├── LogNotFound               no such log (or it expired)
    │   ├── LogGone                   soft-deleted while forks still read it
    │   ├── OffsetGone                offset of another generation, or trimmed
    │   ├── ConfigConflict            re-create with another configuration
    │   ├── ContentTypeMismatch       append with the wrong content type
    │   ├── LogClosed                 append to a closed log
    │   ├── SeqConflict               Stream-Seq did not increase
    │   ├── TailMismatch              expected_tail is not the tail
    │   ├── ProducerEpochStale        a fenced (zombie) producer
    │   ├── ProducerSeqGap            a producer skipped a sequence number
    │   └── ProducerEpochSeq          a new epoch that does not start at 0
    └── StorageError                  a backend failed
        └── StoreLocked               another process holds the store

Each error carries ``code``: the machine-readable string sent on the wire.
Third-party errors are converted where they cross into Threadline code
(``raise StorageError(...) from exc``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .protocol.offsets import Offset

__all__ = [
    "ConfigConflict",
    "ContentTypeMismatch",
    "InvalidOffset",
    "LogClosed",
    "LogError",
    "LogGone",
    "LogNotFound",
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
]


class ThreadlineError(Exception):
    """Root of every Threadline exception."""

    code: str = "error"
    """Machine-readable code, as sent on the wire."""


class ProtocolError(ThreadlineError):
    """The peer sent data that breaks the protocol."""

    code = "bad_request"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class InvalidOffset(ProtocolError):
    """An offset is malformed, or points beyond the log's tail."""

    code = "invalid_offset"


class LogError(ThreadlineError):
    """The log's current state refuses the operation."""


class LogNotFound(LogError):
    """No log exists under that key (never created, deleted or expired)."""

    code = "not_found"


class LogGone(LogError):
    """The log is soft-deleted: forks still read its data, nothing else may."""

    code = "gone"


class OffsetGone(LogError):
    """The offset belongs to another generation of the log, or was trimmed."""

    code = "offset_gone"

    def __init__(self, earliest: Offset, tail: Offset) -> None:
        super().__init__(f"offset is gone; earliest {earliest}, tail {tail}")
        self.earliest = earliest
        self.tail = tail


class ConfigConflict(LogError):
    """A create named an existing log with a different configuration."""

    code = "config_conflict"


class ContentTypeMismatch(LogError):
    """An append's content type differs from the log's."""

    code = "content_type_mismatch"


class LogClosed(LogError):
    """The log is closed; nothing more may be appended."""

    code = "closed"

    def __init__(self, tail: Offset) -> None:
        super().__init__(f"log is closed at {tail}")
        self.tail = tail


class SeqConflict(LogError):
    """A ``Stream-Seq`` value did not increase."""

    code = "seq_conflict"


class TailMismatch(LogError):
    """``expected_tail`` did not match the log's tail."""

    code = "tail_mismatch"

    def __init__(self, tail: Offset) -> None:
        super().__init__(f"tail is {tail}")
        self.tail = tail


class ProducerEpochStale(LogError):
    """A producer wrote with an epoch older than the stored one (fenced)."""

    code = "producer_fenced"

    def __init__(self, current_epoch: int) -> None:
        super().__init__(f"producer epoch is stale; current epoch {current_epoch}")
        self.current_epoch = current_epoch


class ProducerSeqGap(LogError):
    """A producer's sequence number skipped ahead."""

    code = "producer_seq_gap"

    def __init__(self, expected: int, received: int) -> None:
        super().__init__(f"expected producer seq {expected}, received {received}")
        self.expected = expected
        self.received = received


class ProducerEpochSeq(LogError):
    """A producer bumped its epoch without restarting at seq 0."""

    code = "producer_epoch_seq"


class StorageError(ThreadlineError):
    """A storage backend failed."""

    code = "storage_error"


class StoreLocked(StorageError):
    """Another process holds the store's exclusive lock."""

    code = "store_locked"
