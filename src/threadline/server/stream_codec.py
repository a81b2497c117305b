"""Request parsing and response mapping for ``/v1/stream`` (no I/O of its own)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from urllib.parse import parse_qs

import orjson

from ..auth import AuthError
from ..exceptions import (
    ConfigConflict,
    ContentTypeMismatch,
    LogClosed,
    LogGone,
    LogNotFound,
    OffsetGone,
    ProducerEpochSeq,
    ProducerEpochStale,
    ProducerSeqGap,
    ProtocolError,
    RateLimited,
    SeqConflict,
    TailMismatch,
    ThreadlineError,
)
from ..protocol.streams import is_json
from .http import Headers, Receive, Scope, header_map

__all__ = [
    "StreamRequest",
    "declared_length",
    "is_true",
    "join_records",
    "split_records",
    "status_of",
    "wait_disconnect",
]


class StreamRequest:
    """One parsed request: method, stream name, query, headers."""

    __slots__ = ("_query", "headers", "method", "name", "scope")

    def __init__(self, scope: Scope, name: str) -> None:
        self.scope = scope
        self.method: str = scope["method"]
        self.name = name
        self.headers = header_map(scope)
        self._query: dict[str, list[str]] | None = None

    @property
    def query(self) -> dict[str, list[str]]:
        """Query parameters, parsed on first use (appends never need them)."""
        if self._query is None:
            raw = self.scope.get("query_string", b"").decode("latin-1")
            self._query = parse_qs(raw, keep_blank_values=True)
        return self._query

    def header(self, name: bytes) -> str | None:
        value = self.headers.get(name)
        return None if value is None else value.decode("latin-1")

    def single(self, key: str) -> str | None:
        values = self.query.get(key)
        if values is None:
            return None
        if len(values) != 1:
            code = "invalid_offset" if key == "offset" else "invalid_query"
            raise ProtocolError(f"query parameter {key!r} given more than once", code)
        return values[0]


async def wait_disconnect(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


def is_true(value: str | None) -> bool:
    return value is not None and value.strip().lower() == "true"


def declared_length(request: StreamRequest) -> int | None:
    value = request.header(b"content-length")
    if value is None:
        return None
    try:
        return int(value)
    except ValueError as exc:
        raise ProtocolError("malformed Content-Length") from exc


def split_records(
    content_type: str | None, body: bytes, *, allow_empty: bool
) -> list[bytes]:
    """Split a request body into records: one per append, JSON flattened one level."""
    if not body:
        return []
    if content_type is None or not is_json(content_type):
        return [body]  # a fork without Content-Type inherits; bytes are bytes
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        # orjson refuses integers past 64 bits, which JSON allows; NaN and
        # Infinity stay refused.
        try:
            value = json.loads(body, parse_constant=_refuse_constant)
        except ValueError as exc:
            raise ProtocolError("body is not valid JSON", "invalid_json") from exc
    if isinstance(value, list):
        if not value:
            if allow_empty:
                return []
            raise ProtocolError(
                "an append of an empty JSON array adds nothing", "empty_array"
            )
        text = body.strip()
        return [text[1:-1].strip()]
    return [body.strip()]


def _refuse_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def join_records(content_type: str, records: Sequence[bytes]) -> bytes:
    if is_json(content_type):
        return b"[" + b",".join(records) + b"]"
    return records[0] if len(records) == 1 else b"".join(records)


def status_of(exc: ThreadlineError) -> tuple[int, Headers]:
    """HTTP status and extra headers for a Threadline error."""
    if isinstance(exc, RateLimited):
        return 429, [(b"retry-after", exc.retry_after_header.encode())]
    if exc.code in ("body_too_large", "event_too_large"):
        return 413, []
    if isinstance(exc, AuthError):
        return exc.status, [
            (b"www-authenticate", b"Bearer")
        ] if exc.status == 401 else []
    if isinstance(exc, LogClosed):
        return 409, [
            (b"stream-closed", b"true"),
            (b"stream-next-offset", str(exc.tail).encode()),
        ]
    if isinstance(exc, ProducerEpochStale):
        return 403, [(b"producer-epoch", str(exc.current_epoch).encode())]
    if isinstance(exc, ProducerSeqGap):
        return 409, [
            (b"producer-expected-seq", str(exc.expected).encode()),
            (b"producer-received-seq", str(exc.received).encode()),
        ]
    if isinstance(exc, OffsetGone):
        return 410, [
            (b"stream-earliest-offset", str(exc.earliest).encode()),
            (b"stream-next-offset", str(exc.tail).encode()),
        ]
    if isinstance(exc, TailMismatch):
        return 412, [(b"stream-next-offset", str(exc.tail).encode())]
    if isinstance(exc, LogNotFound):
        return 404, []
    if isinstance(exc, LogGone):
        return 410, []
    if isinstance(exc, ConfigConflict | ContentTypeMismatch | SeqConflict):
        return 409, []
    if isinstance(exc, ProducerEpochSeq | ProtocolError):
        return 400, []
    return 500, []
