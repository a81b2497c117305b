"""``connect()`` and the :class:`Client`: one application's link to a server."""

from __future__ import annotations

import logging
import re
from types import TracebackType
from typing import Final, Literal
from urllib.parse import urlsplit, urlunsplit

from ..exceptions import InvalidState
from .backoff import Backoff, ExponentialBackoff
from .session import Session, SessionInfo, SessionListing
from .sse import SSETransport
from .tokens import TokenProvider, Tokens
from .transports import HTTPAPI, Transport
from .websocket import WebSocketTransport

__all__ = ["DEFAULT_TIMEOUT", "Client", "connect"]

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT: Final = 30.0
"""Seconds one operation (a request, a publish, a subscribe) may take."""

_SESSION_ID: Final = re.compile(r"\A[A-Za-z0-9._:-]{1,128}\Z")
_DEVICE: Final = re.compile(r"\A[A-Za-z0-9_-]{1,64}\Z")
_WS_SCHEMES: Final = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}
_HTTP_SCHEMES: Final = {"http": "http", "https": "https", "ws": "http", "wss": "https"}


def connect(
    url: str,
    token: str,
    *,
    device: str | None = None,
    token_provider: TokenProvider | None = None,
    transport: Literal["ws", "sse"] = "ws",
    timeout: float = DEFAULT_TIMEOUT,
    backoff: Backoff | None = None,
) -> Client:
    """Make a :class:`Client` of the Threadline server at ``url``.

    Use it as an async context manager::

        async with threadline.connect("http://localhost:4437", token) as client:
            session = client.session("order-1234")
            async for event in session.subscribe():
                print(event.type, event.data)

    Nothing is sent until it is used: request/response calls go over HTTP,
    subscriptions and publishes over one shared WebSocket (``/v1/ws``), opened
    on first use and reopened by itself.

    Args:
        url: The server's base URL, ``http(s)://host:port`` (``ws(s)://`` is
            accepted too).
        token: A bearer token (``threadline token`` mints one).
        device: This tab's or install's stable id (``[A-Za-z0-9_-]{1,64}``),
            so that a reconnect is the same device; the server assigns one
            if absent.
        token_provider: An async callable returning a fresh token. It is
            called shortly before the token's ``exp``, and when the server
            refuses the token as expired (a 401, a 4001 close).
        transport: ``ws`` (the default: one WebSocket for everything) or
            ``sse`` (session SSE per subscription and HTTP publishes, for
            networks where WebSockets do not pass).
        timeout: Seconds one operation may take, retries included.
        backoff: How long to wait between reconnects (default: exponential
            from 0.1 s to 10 s, with full jitter).

    Raises:
        ValueError: ``url``, ``token`` or ``device`` is malformed.
    """
    return Client(
        url,
        token,
        device=device,
        token_provider=token_provider,
        transport=transport,
        timeout=timeout,
        backoff=backoff,
    )


class Client:
    """A connection to a Threadline server, for one identity (its token).

    Make one with :func:`connect`. It is an async context manager; leaving
    it (or :meth:`aclose`) ends every subscription and fails every
    unanswered publish with :class:`~threadline.exceptions.ConnectionClosedOK`.
    Its methods may be called concurrently from any task of one event loop;
    cancelling one is safe (a request in flight is abandoned; the server may
    still have done it, which every request makes safe to repeat). After
    close, every method raises :class:`~threadline.exceptions.InvalidState`.
    """

    def __init__(
        self,
        url: str,
        token: str,
        *,
        device: str | None = None,
        token_provider: TokenProvider | None = None,
        transport: Literal["ws", "sse"] = "ws",
        timeout: float = DEFAULT_TIMEOUT,
        backoff: Backoff | None = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in _HTTP_SCHEMES or not parts.netloc:
            raise ValueError(f"not an http(s):// or ws(s):// URL: {url!r}")
        if device is not None and not _DEVICE.match(device):
            raise ValueError("device must match [A-Za-z0-9_-]{1,64}")
        if transport not in ("ws", "sse"):
            raise ValueError("transport must be 'ws' or 'sse'")
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        base = parts.path.rstrip("/")
        self.url = urlunsplit((_HTTP_SCHEMES[parts.scheme], parts.netloc, base, "", ""))
        """The server's base HTTP URL."""
        self.device = device
        """This tab's or install's id, if given."""
        self.timeout = timeout
        """Seconds one operation may take."""
        self.tokens = Tokens(token, token_provider)
        """The current token and its refresh hook."""
        self.backoff = backoff or ExponentialBackoff()
        self.api = HTTPAPI(
            self.url, self.tokens, device=device, timeout=timeout, backoff=self.backoff
        )
        """The session HTTP API."""
        self.transport: Transport
        """What carries subscriptions and publishes."""
        if transport == "ws":
            ws_url = urlunsplit(
                (_WS_SCHEMES[parts.scheme], parts.netloc, base + "/v1/ws", "", "")
            )
            self.transport = WebSocketTransport(
                ws_url,
                self.tokens,
                device=device,
                backoff=self.backoff,
                timeout=timeout,
            )
        else:
            self.transport = SSETransport(
                self.api, backoff=self.backoff, timeout=timeout
            )
        self.tokens.add_listener(self.transport.on_token)
        self._closed = False
        self._started = False

    def __repr__(self) -> str:
        return f"<Client {self.url}>"

    async def __aenter__(self) -> Client:
        self.check_open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # Public methods

    def session(self, session_id: str) -> Session:
        """The session ``session_id`` (nothing is sent).

        Raises:
            ValueError: the id is not ``[A-Za-z0-9._:-]{1,128}``.
        """
        if not isinstance(session_id, str) or not _SESSION_ID.match(session_id):
            raise ValueError("session ids match [A-Za-z0-9._:-]{1,128}")
        return Session(self, session_id)

    async def create_session(
        self,
        session_id: str,
        *,
        metadata: dict[str, object] | None = None,
        customer: str | None = None,
        controller_role: str | None = "ai",
    ) -> SessionInfo:
        """Create the session, or return it if it exists (safe to retry).

        Args:
            session_id: The id, chosen by the application.
            metadata: Routing metadata (channel, priority, language, tags…).
            customer: The session's customer (staff tokens; a customer's
                token makes its own session).
            controller_role: Who holds the floor at the start: ``ai`` (the
                default), ``agent``, ``service``, or ``None`` for an empty
                floor (the session waits in the queue for a human).

        Raises:
            AuthError, Forbidden: the token may not create it.
            Timeout: no answer in time.
        """
        self.session(session_id)  # checks the id
        self.check_open()
        body: dict[str, object] = {"id": session_id, "metadata": metadata or {}}
        if customer is not None:
            body["customer"] = customer
        if controller_role != "ai":
            body["controller_role"] = controller_role
        info: SessionInfo = await self.api.request("POST", "/v1/sessions", body=body)
        return info

    async def my_sessions(self) -> list[SessionListing]:
        """The caller's sessions, with their tail, unread count, controller and
        whether a message is in flight: what a new tab or device needs to find
        the conversation and resume it.

        Raises:
            AuthError, Timeout.
        """
        self.check_open()
        answer = await self.api.request("GET", "/v1/me/sessions")
        sessions: list[SessionListing] = answer["sessions"]
        return sessions

    async def aclose(self) -> None:
        """Close: end subscriptions, fail unanswered publishes, close connections.

        Safe to call twice.
        """
        if self._closed:
            return
        self._closed = True
        try:
            await self.transport.aclose()
        finally:
            await self.tokens.stop()
            await self.api.aclose()

    # For sessions

    @property
    def default_role(self) -> Literal["user", "assistant"]:
        """The role of this identity's messages: ``user`` for a customer."""
        role = self.tokens.claims.get("role", "customer")
        return "user" if role == "customer" else "assistant"

    def check_open(self) -> None:
        """Raise :class:`InvalidState` if closed; start the token refresher."""
        if self._closed:
            raise InvalidState("the client is closed")
        if not self._started:
            try:
                self.tokens.start()
            except RuntimeError:  # no running loop yet: start on a later call
                return
            self._started = True
