"""The seam between the client and its I/O libraries, and the transport ABC.

Everything ``httpx`` and ``websockets`` raise is converted here, and only
here, into the exceptions of :mod:`threadline.exceptions` (STYLE E3):

* a connection that drops or cannot be made, a gateway error (502–504) or a
  rate limit (429) is *retryable*: :class:`Disconnected` inside the client,
  which reconnects or retries with backoff; a request that keeps failing
  until its deadline raises :class:`~threadline.exceptions.Timeout`;
* the server's error answers (``{"error": {"code", "message"}}`` over HTTP,
  ``error`` messages over the WebSocket) become the exception class of their
  ``code`` (:func:`error_from`), the same class the server raised: a
  ``409 delta_gap`` is a :class:`~threadline.exceptions.DeltaGap` here too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, Final, Protocol

import httpx
import orjson
from websockets.asyncio.client import ClientConnection, connect as ws_connect
from websockets.exceptions import (
    ConnectionClosed as WSConnectionClosed,
    InvalidHandshake,
    InvalidStatus,
    InvalidURI,
)
from websockets.typing import Subprotocol

from ..exceptions import (
    AlreadyAccepted,
    AlreadyEnded,
    AuthError,
    ConnectionClosed,
    ConnectionClosedError,
    DeltaGap,
    DuplicateReference,
    EventTooLarge,
    Forbidden,
    IdConflict,
    InvalidEvent,
    InvalidOffset,
    NotInControl,
    OffsetGone,
    ProtocolError,
    RateLimited,
    SessionClosed,
    SessionNotFound,
    StorageError,
    TailMismatch,
    ThreadlineError,
    Timeout,
    UnknownReference,
)
from ..protocol.client_messages import View
from ..protocol.events import Event
from ..protocol.frames import DEFAULT_MAX_FRAME_BYTES, SUBPROTOCOL, JSONObject
from ..protocol.offsets import ZERO, Offset
from .backoff import Backoff
from .tokens import Tokens

__all__ = [
    "HTTPAPI",
    "Disconnected",
    "Sink",
    "Transport",
    "WebSocket",
    "error_from",
    "event_from",
]

logger = logging.getLogger(__name__)

USER_AGENT: Final = "threadline-python"
_RETRY_STATUSES: Final = frozenset({429, 502, 503, 504})
_AUTH_CODES: Final = frozenset(
    {"unauthorized", "missing_token", "invalid_token", "token_expired"}
)


class Disconnected(ConnectionClosed):
    """The connection dropped or could not be made: the client retries.

    Transports catch it and reconnect with backoff; it reaches the
    application only through a transport's own documented paths (never, with
    the transports of this package).
    """

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(None, reason)
        self.retry_after = retry_after
        """The server's ``Retry-After``, in seconds, if it sent one."""


# The server's errors, rebuilt


def _rebuild(
    cls: type[ThreadlineError], message: str, code: str, **attrs: Any
) -> ThreadlineError:
    # The server's message is kept verbatim, so the constructors (which
    # compose messages) are bypassed.
    exc = cls.__new__(cls)
    Exception.__init__(exc, message)
    exc.code = code
    for name, value in attrs.items():
        setattr(exc, name, value)
    return exc


def _offset(value: object) -> Offset:
    try:
        return Offset.parse(value) if isinstance(value, str) else ZERO
    except InvalidOffset:
        return ZERO


def _int(value: object) -> int:
    return value if isinstance(value, int) else -1


def error_from(
    code: str,
    message: str,
    *,
    status: int | None = None,
    details: Mapping[str, Any] | None = None,
) -> ThreadlineError:
    """The exception that a server error answer stands for.

    Args:
        code: The error's machine-readable ``code``.
        message: Its ``message``.
        status: The HTTP status, if it came over HTTP.
        details: Machine-readable context (``expected`` for ``delta_gap``,
            ``offset`` for ``tail_mismatch``, ``earliest`` and ``tail`` for
            ``offset_gone``…).
    """
    details = details or {}
    simple: dict[str, type[ThreadlineError]] = {
        "forbidden": Forbidden,
        "session_not_found": SessionNotFound,
        "not_found": SessionNotFound,
        "id_conflict": IdConflict,
        "event_too_large": EventTooLarge,
        "session_closed": SessionClosed,
        "not_in_control": NotInControl,
        "already_accepted": AlreadyAccepted,
        "invalid_offset": InvalidOffset,
        "storage_error": StorageError,
    }
    if status == 401 or code in _AUTH_CODES:
        return AuthError(message, code, status or 401)
    if code in simple:
        return _rebuild(simple[code], message, code)
    if code == "delta_gap":
        expected, received = (
            _int(details.get("expected")),
            _int(details.get("received")),
        )
        return _rebuild(DeltaGap, message, code, expected=expected, received=received)
    if code == "offset_gone":
        earliest, tail = _offset(details.get("earliest")), _offset(details.get("tail"))
        return _rebuild(OffsetGone, message, code, earliest=earliest, tail=tail)
    if code == "tail_mismatch":
        tail = _offset(details.get("offset", details.get("tail")))
        return _rebuild(TailMismatch, message, code, tail=tail)
    if code == "rate_limited":
        retry_after = details.get("retry_after")
        seconds = float(retry_after) if isinstance(retry_after, int | float) else 1.0
        return _rebuild(RateLimited, message, code, retry_after=seconds)
    if code == "invalid_event":
        field = details.get("field")
        return _rebuild(InvalidEvent, message, code, field=field)
    for prefix, cls in (
        ("unknown_", UnknownReference),
        ("duplicate_", DuplicateReference),
    ):
        if code.startswith(prefix):
            kind = code.removeprefix(prefix)
            return _rebuild(cls, message, code, kind=kind, ident="")
    if code.endswith("_ended"):
        return _rebuild(AlreadyEnded, message, code, kind=code[:-6], ident="")
    if status is not None and status >= 500:
        return _rebuild(ThreadlineError, message, code)
    return ProtocolError(message, code)


def _http_error(response: httpx.Response) -> ThreadlineError:
    try:
        body = orjson.loads(response.content)
        error = body["error"]
        code, message = str(error["code"]), str(error["message"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        code, message = f"http_{response.status_code}", response.reason_phrase
        error = {}
    details = {k: v for k, v in error.items() if k not in ("code", "message")}
    retry_after = _retry_after(response)
    if retry_after is not None:
        details.setdefault("retry_after", retry_after)
    return error_from(code, message, status=response.status_code, details=details)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return None if value is None else max(0.0, float(value))
    except ValueError:
        return None


def event_from(obj: object) -> Event:
    """An event from a trusted server's envelope, checked for shape only.

    The server validated every event before storing it; the client does not
    check ``data`` again, so that a newer server's event types and redacted
    events still arrive.

    Raises:
        ProtocolError: the envelope is not an object with the envelope's
            fields and types.
    """
    from ..protocol.actors import Actor

    try:
        if not isinstance(obj, dict):
            raise TypeError("not an object")
        actor = obj["actor"]
        return Event(
            offset=Offset.parse(obj["offset"]),
            ts=str(obj["ts"]),
            type=str(obj["type"]),
            id=str(obj["id"]),
            actor=Actor(
                str(actor["id"]), actor["role"], actor.get("name"), actor.get("device")
            ),
            visibility=obj["visibility"],
            data=dict(obj["data"]),
            prev_hash=str(obj.get("prev_hash", "")),
            hash=str(obj.get("hash", "")),
            trace_id=obj.get("trace_id"),
            compacted=obj.get("compacted") is True,
            redacted=obj.get("redacted") is True,
        )
    except (KeyError, TypeError, ValueError, InvalidOffset) as exc:
        raise ProtocolError(f"malformed event from the server: {exc!r}") from exc


# HTTP


class HTTPAPI:
    """The session HTTP API, through one ``httpx.AsyncClient``.

    Every request is retried with backoff while it fails for a reason that
    may pass (a dropped connection, 429, 502–504) until its deadline, then
    raises :class:`~threadline.exceptions.Timeout`; a 401 is retried once
    with a fresh token from the token provider. Retrying is safe for every
    request the client makes: creating a session ensures it, publishes carry
    event ids (exactly-once), cursors only move forward.

    Args:
        base_url: ``http(s)://host:port``.
        tokens: The bearer token and its refresh hook.
        device: Sent as ``Threadline-Device`` on publishes.
        timeout: Default deadline of one request, retries included.
        backoff: Waits between retries.
    """

    def __init__(
        self,
        base_url: str,
        tokens: Tokens,
        *,
        device: str | None,
        timeout: float,
        backoff: Backoff,
    ) -> None:
        self.tokens = tokens
        self.device = device
        self.timeout = timeout
        self.backoff = backoff
        self._http = httpx.AsyncClient(
            base_url=base_url,
            headers={"user-agent": USER_AGENT},
            timeout=httpx.Timeout(timeout, read=None),
        )

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    def headers(self) -> dict[str, str]:
        """Authorization (and device) headers for a request sent now."""
        headers = {"authorization": f"Bearer {self.tokens.token}"}
        if self.device is not None:
            headers["threadline-device"] = self.device
        return headers

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: object = None,
        params: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Send a request and decode its JSON answer, retrying what may pass.

        Raises:
            Timeout: no answer before the deadline.
            ThreadlineError: the server's error answer (see :func:`error_from`).
        """
        answer, _ = await self.request_with_headers(
            method, path, body=body, params=params, timeout=timeout
        )
        return answer

    async def request_with_headers(
        self,
        method: str,
        path: str,
        *,
        body: object = None,
        params: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> tuple[Any, dict[str, str]]:
        """As :meth:`request`, and the answer's headers (names in lower case).

        Raises:
            as :meth:`request`.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.timeout if timeout is None else timeout)
        content = None if body is None else orjson.dumps(body)
        failures = 0
        refreshed = False
        while True:
            token = self.tokens.token
            headers = self.headers()
            if content is not None:
                headers["content-type"] = "application/json"
            try:
                async with asyncio.timeout_at(deadline):
                    response = await self._http.request(
                        method, path, content=content, params=params, headers=headers
                    )
            except TimeoutError as exc:
                raise Timeout(f"{method} {path}: no answer in time") from exc
            except httpx.TransportError as exc:
                error: ThreadlineError = Disconnected(f"{type(exc).__name__}: {exc}")
                error.__cause__ = exc
            else:
                if response.is_success:
                    answer = (
                        None if not response.content else orjson.loads(response.content)
                    )
                    return answer, {k.lower(): v for k, v in response.headers.items()}
                error = _http_error(response)
                if response.status_code == 401 and not refreshed:
                    refreshed = True
                    if await self.tokens.refresh(token):
                        continue
                if response.status_code not in _RETRY_STATUSES:
                    raise error
                error = Disconnected(str(error), _retry_after(response))
            failures += 1
            delay = self.backoff.compute(failures)
            if isinstance(error, Disconnected) and error.retry_after is not None:
                delay = max(delay, error.retry_after)
            if loop.time() + delay >= deadline:
                raise Timeout(f"{method} {path}: {error}") from error
            logger.debug(
                "! %s %s failed (%s); retrying in %.3fs", method, path, error, delay
            )
            await asyncio.sleep(delay)

    @contextlib.asynccontextmanager
    async def stream(
        self, path: str, params: Mapping[str, str], *, read_timeout: float
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        """Open a streamed GET (SSE); yield its body's chunks.

        Raises:
            Disconnected: the connection failed, dropped, or answered 429 or
                502–504.
            ThreadlineError: any other error answer.
        """
        headers = self.headers()
        headers["accept"] = "text/event-stream"
        timeout = httpx.Timeout(self.timeout, read=read_timeout)
        try:
            async with self._http.stream(
                "GET", path, params=params, headers=headers, timeout=timeout
            ) as response:
                if not response.is_success:
                    await response.aread()
                    error = _http_error(response)
                    if response.status_code in _RETRY_STATUSES:
                        raise Disconnected(str(error), _retry_after(response))
                    raise error
                yield _chunks(response)
        except httpx.TransportError as exc:
            raise Disconnected(f"{type(exc).__name__}: {exc}") from exc


async def _chunks(response: httpx.Response) -> AsyncIterator[bytes]:
    try:
        async for chunk in response.aiter_raw():
            yield chunk
    except httpx.TransportError as exc:
        raise Disconnected(f"{type(exc).__name__}: {exc}") from exc


# WebSocket


class WebSocket:
    """One WebSocket connection of subprotocol ``threadline.v1``, errors mapped.

    Receiving and sending never raise once the connection is open: a closed
    connection reads as ``None`` and ignores sends, and :attr:`close_code`
    says how it ended.
    """

    def __init__(self, connection: ClientConnection) -> None:
        self._connection = connection

    @classmethod
    async def open(
        cls, url: str, *, open_timeout: float, headers: Mapping[str, str]
    ) -> WebSocket:
        """Connect to ``url``.

        Raises:
            Disconnected: the server cannot be reached now, or answered the
                handshake with 429 or 5xx.
            AuthError: the handshake was answered 401 or 403.
            ConnectionClosedError: any other refusal (no WebSocket endpoint,
                another subprotocol).
            ValueError: ``url`` is not a WebSocket URL.
        """
        try:
            connection = await ws_connect(
                url,
                subprotocols=[Subprotocol(SUBPROTOCOL)],
                additional_headers=dict(headers),
                user_agent_header=USER_AGENT,
                open_timeout=open_timeout,
                max_size=DEFAULT_MAX_FRAME_BYTES,
                max_queue=4,  # frames read ahead; a full subscription stops reading
            )
        except InvalidURI as exc:
            raise ValueError(str(exc)) from exc
        except InvalidStatus as exc:
            status = exc.response.status_code
            if status in (401, 403):
                raise AuthError(
                    f"WebSocket refused: HTTP {status}", status=status
                ) from exc
            if status == 429 or status >= 500:
                raise Disconnected(f"WebSocket refused: HTTP {status}") from exc
            raise ConnectionClosedError(
                None, f"WebSocket refused: HTTP {status}"
            ) from exc
        except (OSError, TimeoutError, InvalidHandshake) as exc:
            # InvalidHandshake also covers a connection that dropped mid-handshake.
            raise Disconnected(f"{type(exc).__name__}: {exc}") from exc
        if connection.subprotocol != SUBPROTOCOL:
            await connection.close()
            raise ConnectionClosedError(None, "the server does not speak threadline.v1")
        return cls(connection)

    @property
    def close_code(self) -> int:
        """How the connection ended: the close code received, else 1006."""
        code = self._connection.close_code
        return 1006 if code is None else code

    @property
    def close_reason(self) -> str:
        """The close reason received, if any."""
        return self._connection.close_reason or ""

    async def recv(self) -> str | bytes | None:
        """The next message, or ``None`` once the connection is closed."""
        try:
            return await self._connection.recv()
        except WSConnectionClosed:
            return None

    async def send(self, text: str) -> None:
        """Send a text message (nothing, once the connection is closed)."""
        with contextlib.suppress(WSConnectionClosed):
            await self._connection.send(text)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection and wait for it to end."""
        with contextlib.suppress(WSConnectionClosed, OSError):
            await self._connection.close(code, reason)


# The transport ABC


class Sink(Protocol):
    """Where a transport delivers one subscription's events (a Subscription)."""

    session: str
    """The session read."""

    view: View
    """``raw`` or ``compact``."""

    def resume_offset(self) -> str:
        """Where to start: the last offset delivered, or the one asked for."""
        ...

    async def deliver(self, events: Sequence[Event]) -> None:
        """Queue events for the application; wait while its queue is full."""
        ...

    def set_state(self, state: JSONObject) -> None:
        """Record the session's state snapshot (WebSocket ``subscribed``)."""
        ...

    def set_presence(self, actor: JSONObject, status: str) -> None:
        """Record a device's presence change (WebSocket ``presence``)."""
        ...

    def finish(self, error: BaseException | None) -> None:
        """End the subscription, after what is queued: cleanly or with ``error``."""
        ...


class Transport(ABC):
    """Carries a client's subscriptions and publishes.

    Every implementation must:

    * deliver each subscription's events in offset order, each once, with no
      gap, across reconnects (it resumes after the last offset delivered);
    * reconnect by itself, with backoff, after anything retryable, and end a
      subscription (:meth:`Sink.finish`) only when the server ends it or on a
      terminal error;
    * store one client's publishes to one session in the order submitted,
      and resend an unanswered publish after a reconnect with the same event
      ids (exactly-once);
    * never buffer without bound: a subscription's queue is bounded, and a
      full queue stops reading from the server.
    """

    @abstractmethod
    async def subscribe(self, sink: Sink) -> None:
        """Start delivering a session's events to ``sink``.

        Returns once the server accepted the subscription.

        Raises:
            ThreadlineError: the server refused it.
            Timeout: no answer in time.
        """

    @abstractmethod
    async def unsubscribe(self, sink: Sink) -> None:
        """Stop delivering to ``sink`` (nothing if it is not subscribed)."""

    @abstractmethod
    def submit(
        self,
        session: str,
        events: Sequence[JSONObject],
        *,
        expected_offset: str | None = None,
        merge: bool = False,
    ) -> asyncio.Future[list[str]]:
        """Publish event drafts, all or nothing; the future holds their offsets.

        The publish is queued when this returns, behind those submitted
        before. With ``merge``, the transport may send it in one request with
        adjacent merged submissions (then they succeed or fail together).
        """

    @abstractmethod
    async def aclose(self) -> None:
        """Close: end every subscription cleanly, fail what is unanswered with
        :class:`~threadline.exceptions.ConnectionClosedOK`."""

    def on_token(self, token: str) -> None:  # noqa: B027 - optional hook
        """The token was replaced (the WebSocket sends ``refresh``)."""
