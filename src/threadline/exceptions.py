"""The exception tree. Every error Threadline raises derives from one root.

.. code-block:: text

    ThreadlineError
    ├── ProtocolError                 the peer sent bad data (a 4xx)
    │   ├── InvalidOffset             malformed offset, or beyond the tail
    │   └── InvalidEvent              a malformed session event (400)
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
    ├── SessionRuleError              an event the session's state refuses
    │   ├── Forbidden                 the rights table refuses it (403)
    │   ├── SessionClosed             the session is read-only (409)
    │   ├── NotInControl              the publisher does not hold the floor (409)
    │   ├── AlreadyAccepted           a control request was already accepted (409)
    │   ├── DeltaGap                  a message delta out of sequence (409)
    │   ├── UnknownReference          no such message, run, request, participant…
    │   ├── DuplicateReference        a message, run or request id used twice (409)
    │   ├── AlreadyEnded              the message or run has ended (409)
    │   ├── SessionNotFound           no such session, or not the caller's (404)
    │   ├── IdConflict                an event id reused with another body (409)
    │   └── EventTooLarge             an event over the size limit (413)
    ├── AuthError                     a refused token (401), a denied right (403)
    ├── RateLimited                   publishing faster than the token's rate (429)
    ├── StorageError                  a backend failed
    │   └── StoreLocked               another process holds the store
    ├── ConnectionClosed              client: the connection to the server ended
    │   ├── ConnectionClosedOK        ... because the client closed it
    │   └── ConnectionClosedError     ... on a terminal close code, or it failed
    ├── InvalidState                  client: an object used after it was closed
    ├── ConcurrencyError              client: two coroutines read one subscription
    └── Timeout                       client: no answer in time (a TimeoutError)

Each error carries ``code``: the machine-readable string sent on the wire.
:class:`InvalidEvent` and every :class:`SessionRuleError` also carry
``status``, the HTTP status that answers them.
Third-party errors are converted where they cross into Threadline code
(``raise StorageError(...) from exc``); the client converts transport errors
(``websockets``, ``httpx``, ``OSError``) in :mod:`threadline.client.transports`,
and rebuilds the server's errors from their ``code``, so a caller catches the
same class on either side of the wire.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .protocol.offsets import Offset

__all__ = [
    "AlreadyAccepted",
    "AlreadyEnded",
    "AuthError",
    "ConcurrencyError",
    "ConfigConflict",
    "ConnectionClosed",
    "ConnectionClosedError",
    "ConnectionClosedOK",
    "ContentTypeMismatch",
    "DeltaGap",
    "DuplicateReference",
    "EventTooLarge",
    "Forbidden",
    "IdConflict",
    "InvalidEvent",
    "InvalidOffset",
    "InvalidState",
    "LogClosed",
    "LogError",
    "LogGone",
    "LogNotFound",
    "NotInControl",
    "OffsetGone",
    "ProducerEpochSeq",
    "ProducerEpochStale",
    "ProducerSeqGap",
    "ProtocolError",
    "RateLimited",
    "SeqConflict",
    "SessionClosed",
    "SessionNotFound",
    "SessionRuleError",
    "StorageError",
    "StoreLocked",
    "TailMismatch",
    "ThreadlineError",
    "Timeout",
    "UnknownReference",
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


class InvalidEvent(ProtocolError):
    """A session event is malformed: a wrong type, a missing or unknown field."""

    code = "invalid_event"
    status = 400
    """The HTTP status that answers this error."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field
        """Where the fault is, as a path into the event (``data.parts[1].url``)."""


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


class SessionRuleError(ThreadlineError):
    """The session's state refuses an event; nothing is written."""

    code = "session_rule"
    status = 409
    """The HTTP status that answers this error."""


class Forbidden(SessionRuleError):
    """The rights table does not let this participant publish this event."""

    code = "forbidden"
    status = 403


class SessionClosed(SessionRuleError):
    """The session is closed: it is read-only."""

    code = "session_closed"


class NotInControl(SessionRuleError):
    """The event needs the floor, and the publisher does not hold it."""

    code = "not_in_control"


class AlreadyAccepted(SessionRuleError):
    """A ``control.accept`` came after the request was accepted (first wins)."""

    code = "already_accepted"


class DeltaGap(SessionRuleError):
    """A ``message.delta`` did not carry the message's next ``seq``."""

    code = "delta_gap"

    def __init__(self, expected: int, received: int) -> None:
        super().__init__(f"expected delta seq {expected}, received {received}")
        self.expected = expected
        """The seq the message's next delta must carry."""
        self.received = received


class UnknownReference(SessionRuleError):
    """The event names something the session does not have.

    That is a message, run, control request, participant or offset that does
    not exist, or that the publisher may not see (a customer is told a staff
    message is unknown, never that it exists). ``code`` is ``unknown_<kind>``:
    ``unknown_message``, ``unknown_run``, ``unknown_request``,
    ``unknown_participant``, ``unknown_offset``.
    """

    def __init__(self, kind: str, ident: str) -> None:
        super().__init__(f"unknown {kind} {ident!r}")
        self.code = f"unknown_{kind}"
        self.kind = kind
        self.ident = ident


class DuplicateReference(SessionRuleError):
    """The event starts a message, run or request under an id already used.

    ``code`` is ``duplicate_<kind>``: ``duplicate_message``, ``duplicate_run``,
    ``duplicate_request``.
    """

    def __init__(self, kind: str, ident: str) -> None:
        super().__init__(f"{kind} {ident!r} already exists")
        self.code = f"duplicate_{kind}"
        self.kind = kind
        self.ident = ident


class AlreadyEnded(SessionRuleError):
    """The event continues or ends a message or run that has ended.

    ``code`` is ``message_ended`` or ``run_ended``. A producer that gets it
    should stop: the server may have ended its message (floor lost, lease
    expired, session closed).
    """

    def __init__(self, kind: str, ident: str) -> None:
        super().__init__(f"{kind} {ident!r} has ended")
        self.code = f"{kind}_ended"
        self.kind = kind
        self.ident = ident


class SessionNotFound(SessionRuleError):
    """No session with that id in the tenant (404).

    A customer is told this of a session that exists but is someone else's:
    a customer learns nothing of others' sessions.
    """

    code = "session_not_found"
    status = 404


class IdConflict(SessionRuleError):
    """An event id was used before by the same actor with another body (409)."""

    code = "id_conflict"
    status = 409


class EventTooLarge(SessionRuleError):
    """An event's JSON is over the size limit (413); nothing is written."""

    code = "event_too_large"
    status = 413


class AuthError(ThreadlineError):
    """A missing, malformed, forged or expired token (401), or a denied right (403).

    ``code`` is ``missing_token``, ``invalid_token``, ``token_expired`` (401) or
    ``forbidden`` (403), among others; ``status`` the HTTP status.
    """

    code = "unauthorized"

    def __init__(
        self, message: str, code: str = "unauthorized", status: int = 401
    ) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        """The HTTP status that answers this error (401 or 403)."""


class RateLimited(ThreadlineError):
    """A token published faster than its rate (429, with ``retry_after``)."""

    code = "rate_limited"
    status = 429

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"publish rate exceeded; retry after {retry_after:.2f} s")
        self.retry_after = retry_after
        """Seconds until the request would be allowed."""

    @property
    def retry_after_header(self) -> str:
        """``Retry-After`` is whole seconds, at least 1."""
        return str(max(1, math.ceil(self.retry_after)))


class StorageError(ThreadlineError):
    """A storage backend failed."""

    code = "storage_error"


class StoreLocked(StorageError):
    """Another process holds the store's exclusive lock."""

    code = "store_locked"


# The client's errors (threadline.client)


class ConnectionClosed(ThreadlineError):
    """The connection to the server ended, and the client will not reconnect.

    The client reconnects by itself after a retryable close (4000–4099, a
    dropped connection, a restarting server); this is raised only when it
    stops: the application closed the client (:class:`ConnectionClosedOK`),
    or the server closed with a terminal code (:class:`ConnectionClosedError`).
    """

    code = "connection_closed"

    def __init__(self, close_code: int | None, reason: str = "") -> None:
        shown = "no close code" if close_code is None else f"code {close_code}"
        super().__init__(f"connection closed ({shown}){': ' if reason else ''}{reason}")
        self.close_code = close_code
        """The WebSocket close code, or ``None`` if there was none."""
        self.reason = reason
        """The close reason, or a description of the failure."""


class ConnectionClosedOK(ConnectionClosed):
    """The application closed the client (normal closure, 1000)."""


class ConnectionClosedError(ConnectionClosed):
    """The server closed the connection with a terminal code (4400–4499…)."""


class InvalidState(ThreadlineError):
    """The operation is not possible in the object's state (e.g. after close)."""

    code = "invalid_state"


class ConcurrencyError(ThreadlineError, RuntimeError):
    """Two coroutines use what only one may at a time (one subscription's iterator)."""

    code = "concurrency_error"


class Timeout(ThreadlineError, TimeoutError):
    """No answer in time. The outcome is unknown: a publish may still be stored.

    Retrying a publish with the same event ids is safe (exactly-once).
    """

    code = "timeout"
