"""``create_app(config)``: the ASGI application and its lifespan.

Routing is a prefix match on the hot paths (raw ASGI); the store is opened in
the lifespan startup and flushed and closed in its shutdown.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import asdict

import orjson
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request

from ..auth import AuthError, Claims, Keyset, verify_token
from ..auth.jwks import JWKSClient, read_jwks_file
from ..storage import LogStore, open_log_store
from ..storage.presence import PresenceStore, presence_store_for
from .audit import audit_routes, audit_signer
from .config import Config
from .http import ASGIApp, Receive, Scope, Send, error_body, send_response
from .limits import RateLimiter
from .notify import Notifier, NotifySettings
from .presence import PresenceManager
from .session_http import build_session_api
from .sessions import SessionManager
from .streams import PREFIX, StreamHandler
from .sweeper import LeaseSweeper
from .websocket import WebSocketHandler, WebSocketLimits

__all__ = ["Application", "create_app"]

logger = logging.getLogger(__name__)

SESSION_PREFIXES = ("/v1/sessions", "/v1/me/", "/v1/openapi.json", "/v1/audit/")
"""Paths the session API (Starlette) serves."""
SESSION_ALLOW_HEADERS = [
    "Authorization",
    "Content-Type",
    "If-None-Match",
    "Last-Event-ID",
    "Threadline-Device",
]
SESSION_EXPOSE_HEADERS = [
    "Stream-Next-Offset",
    "Stream-Up-To-Date",
    "ETag",
    "Retry-After",
]


class Application:
    """The Threadline ASGI app. ``drain()`` starts a graceful shutdown."""

    def __init__(
        self,
        config: Config,
        store: LogStore | None = None,
        presence_store: PresenceStore | None = None,
    ) -> None:
        self.config = config
        self.store = store if store is not None else open_log_store(config.store)
        self.draining = asyncio.Event()
        self.keyset, self.jwks = _keys(config)
        streams_auth = config.auth  # --no-auth opens /v1/stream only
        self.streams = StreamHandler(
            config,
            self.store,
            self.draining,
            keyset=self.keyset if streams_auth else None,
            jwks=self.jwks if streams_auth else None,
        )
        self.sessions = SessionManager(self.store, limiter=RateLimiter())
        self.sweeper = LeaseSweeper(
            self.sessions, config.lease, retention=config.retention
        )
        """Ends dead producers' messages and runs (:mod:`.sweeper`)."""
        self.notifier: Notifier | None = None
        """Sends webhooks for absent members (``--notify-url``)."""
        if config.notify_url:
            if not config.notify_secret:
                raise ValueError("--notify-url needs --notify-secret (whsec_…)")
            self.sessions.notify_coalesce = config.notify_coalesce
            self.notifier = Notifier(
                self.store,
                NotifySettings(
                    config.notify_url,
                    config.notify_secret,
                    coalesce=config.notify_coalesce,
                ),
                self._present,
            )
        self.audit_signer = audit_signer(config.audit_key, self.store)
        """Signs audit heads (:mod:`threadline.server.audit`)."""
        self.presence: PresenceManager | None = None
        """Presence and membership (``None`` with ``Config.presence`` off)."""
        if config.presence:
            self.presence = PresenceManager(
                presence_store or presence_store_for(self.store),
                self.sessions,
                ttl=config.presence_ttl,
                grace=config.presence_grace,
            )
        self.session_api: ASGIApp = CORSMiddleware(
            build_session_api(
                self.sessions,
                self._authenticate,
                long_poll_timeout=config.long_poll_timeout,
                draining=self.draining,
                ticket_secret=config.secret,
                presence=self.presence,
                extra_routes=audit_routes(
                    self.sessions, self._authenticate, self.audit_signer
                ),
            ),
            allow_origins=list(config.cors_origins),
            allow_methods=["GET", "POST", "PUT", "OPTIONS"],
            allow_headers=SESSION_ALLOW_HEADERS,
            expose_headers=SESSION_EXPOSE_HEADERS,
            max_age=86400,
        )
        self.websockets = WebSocketHandler(
            self.sessions,
            self.verify,
            self.draining,
            WebSocketLimits(
                hello_timeout=config.ws_hello_timeout,
                token_grace=config.ws_token_grace,
                max_subscriptions=config.ws_max_subscriptions,
                max_queue_bytes=config.ws_max_queue_bytes,
                max_queue_messages=config.ws_max_queue_messages,
                max_publishes=config.ws_max_publishes,
            ),
            presence=self.presence,
        )

    async def _present(self, tenant: str, session: str, participant: str) -> bool:
        """Whether a device of ``participant`` is present in ``session`` now."""
        if self.presence is None:
            return False
        present = await self.presence.snapshot(tenant, session, staff=True)
        return any(entry["actor"]["id"] == participant for entry in present)

    async def verify(self, token: str) -> Claims:
        """Verify a bearer token with the configured keys (JWKS URL, file, secret).

        Raises:
            AuthError: the token is refused, or no key is configured (sessions
                always need tokens, even with ``--no-auth``).
        """
        if self.jwks is not None:
            return await self.jwks.verify(token)
        if self.keyset is not None:
            return verify_token(token, self.keyset)
        raise AuthError(
            "sessions need tokens: start the server with a secret or JWKS keys",
            "auth_unavailable",
        )

    async def _authenticate(self, request: Request) -> Claims:
        value = request.headers.get("authorization")
        if value is None or value[:7].lower() != "bearer ":
            raise AuthError("missing bearer token", "missing_token")
        return await self.verify(value[7:].strip())

    def drain(self) -> None:
        """Stop waiting: long-polls answer now, SSE ends after a control event.

        WebSockets close 4002 after what is already queued for them.
        """
        self.draining.set()
        self.store.wake_all()
        self.websockets.drain()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            path: str = scope["path"]
            if path.startswith(PREFIX):
                await self.streams(scope, receive, send)
            elif path.startswith(SESSION_PREFIXES):
                await self.session_api(scope, receive, send)
            elif path == "/healthz":
                status = 503 if self.draining.is_set() else 200
                body = b'{"status":"draining"}' if status == 503 else b'{"status":"ok"}'
                headers = [
                    (b"content-type", b"application/json"),
                    (b"cache-control", b"no-store"),
                ]
                await send_response(send, status, headers, body)
            elif path == "/v1/metrics":
                body = orjson.dumps(asdict(self.store.stats))
                await send_response(
                    send, 200, [(b"content-type", b"application/json")], body
                )
            else:
                headers = [
                    (b"content-type", b"application/json"),
                    (b"x-content-type-options", b"nosniff"),
                ]
                await send_response(
                    send, 404, headers, error_body("not_found", "no such route")
                )
        elif kind == "websocket":
            if scope["path"] == "/v1/ws":
                await self.websockets(scope, receive, send)
            else:
                await receive()  # websocket.connect
                await send({"type": "websocket.close", "code": 1000})  # HTTP 403
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.store.start()
                except Exception as exc:
                    logger.error("! store failed to start: %s", exc)
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                if self.presence is not None:
                    try:
                        await self.presence.store.start()
                    except Exception as exc:
                        logger.error("! presence store failed to start: %s", exc)
                        await self.store.stop()
                        await send(
                            {"type": "lifespan.startup.failed", "message": str(exc)}
                        )
                        return
                    self.presence.start()
                if self.jwks is not None:
                    await self.jwks.start()  # a failure is logged; kid tokens retry
                self.sweeper.start()
                if self.notifier is not None:
                    self.notifier.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.drain()
                if self.jwks is not None:
                    await self.jwks.aclose()
                await self.websockets.hub.aclose()  # no feed reads a stopped store
                await self.sweeper.aclose()
                if self.notifier is not None:
                    await self.notifier.aclose()
                if self.presence is not None:
                    await self.presence.aclose()  # membership events in flight
                await self.store.stop()
                if self.presence is not None:
                    await self.presence.store.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return


def _keys(config: Config) -> tuple[Keyset | None, JWKSClient | None]:
    """The keyset tokens are verified with, and the JWKS URL client if any.

    With auth off for streams, a configured secret still verifies session
    tokens (sessions always need an identity).
    """
    if not config.auth:
        if config.secret:
            return Keyset(config.secret), None
        return None, None
    if not (config.secret or config.jwks_path or config.jwks_url):
        raise ValueError("auth is on but no secret, JWKS file or JWKS URL is set")
    keys = read_jwks_file(config.jwks_path) if config.jwks_path else ()
    keyset = Keyset(
        config.secret or None, keys, issuer=config.issuer, audience=config.audience
    )
    if not config.jwks_url:
        return keyset, None
    jwks = JWKSClient(
        config.jwks_url, base=keyset, refresh_interval=config.jwks_refresh_interval
    )
    return keyset, jwks


def create_app(
    config: Config,
    *,
    store: LogStore | None = None,
    presence_store: PresenceStore | None = None,
) -> Application:
    """Build the ASGI application for ``config`` (the stores open at startup).

    Without ``presence_store``, presence goes with the log store: a SQLite
    store's file gets a ``-presence`` file beside it, anything else memory.
    """
    return Application(config, store, presence_store)
