"""Server configuration, with the documented defaults of every limit."""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Config", "parse_duration"]

_DURATION = re.compile(r"\A(\d+(?:\.\d+)?)(ms|s|m|h|d)?\Z")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(text: str) -> float:
    """Parse ``500ms``, ``1s``, ``1.5s``, ``2m``, ``1h``, ``90d`` or bare seconds.

    Raises:
        ValueError: anything else.
    """
    match = _DURATION.match(text.strip())
    if match is None:
        raise ValueError(f"not a duration: {text!r} (try 20s or 500ms)")
    return float(match[1]) * _UNITS[match[2]]


@dataclass(frozen=True, slots=True)
class Config:
    """Everything ``create_app`` needs. Defaults are the documented ones."""

    store: str = "sqlite:///threadline.db"
    """Store URL: ``sqlite:///PATH`` (relative), ``sqlite:////abs/path`` or ``memory://``."""
    auth: bool = True
    """Require bearer tokens on ``/v1/stream``; ``False`` only for local development.

    With auth on, at least one of ``secret``, ``jwks_path`` and ``jwks_url`` is set.
    """
    secret: str | None = None
    """HS256 secret for tokens without ``kid``."""
    jwks_path: str | None = None
    """JWKS file of EdDSA / RS256 public keys, read at start-up."""
    jwks_url: str | None = None
    """JWKS URL of EdDSA / RS256 public keys, fetched and refreshed."""
    jwks_refresh_interval: float = 300.0
    """Seconds between fetches of ``jwks_url`` (an unknown ``kid`` fetches at most
    once a minute)."""
    issuer: str | None = None
    """When set, every token's ``iss`` must equal it."""
    audience: str | None = None
    """When set, every token's ``aud`` must be or contain it."""
    long_poll_timeout: float = 20.0
    """Seconds a long-poll waits for data before answering 204."""
    sse_reconnect_interval: float = 60.0
    """Seconds after which an SSE response ends so clients reconnect (±10 % jitter)."""
    drain_timeout: float = 10.0
    """Seconds SIGTERM waits for in-flight requests before exiting."""
    max_body_bytes: int = 8 * 1024 * 1024
    """Largest request body accepted; larger ones get 413 without being buffered."""
    read_chunk_bytes: int = 1024 * 1024
    """Largest catch-up response body (at least one record is always sent)."""
    cors_origins: tuple[str, ...] = ("*",)
    """Origins allowed by CORS; ``*`` allows any."""
    tenant: str = "default"
    """Tenant of requests when auth is off."""
    ws_hello_timeout: float = 5.0
    """Seconds a WebSocket has to send its ``hello`` (else close 4408)."""
    ws_token_grace: float = 30.0
    """Seconds past a token's expiry before a WebSocket closes 4001 unless refreshed."""
    ws_max_subscriptions: int = 100
    """Subscriptions one WebSocket may hold (more: ``too_many_subscriptions``)."""
    ws_max_queue_bytes: int = 1024 * 1024
    """Bytes that may wait to be sent on one WebSocket before it closes 4000."""
    ws_max_queue_messages: int = 10_000
    """Messages (an event counts as one) that may wait on one WebSocket before 4000."""
    ws_max_publishes: int = 64
    """Publishes one WebSocket may have in flight; past it the server stops reading."""
    notify_url: str | None = None
    """Webhook endpoint for members who were not there (``None``: off)."""
    notify_secret: str | None = None
    """Standard Webhooks signing secret (``whsec_`` + base64), required with
    ``notify_url``."""
    notify_coalesce: float = 30.0
    """Seconds of messages one notification covers."""
    retention: float | None = None
    """Seconds a closed session is kept before it is deleted, once its audit
    chain was exported (``None``: kept forever)."""
    lease: float = 30.0
    """Seconds without an event after which the server ends an open message or
    run (``error`` / ``producer_lost``)."""
    presence: bool = True
    """Serve presence (WebSocket ``presence``, SSE ``event: presence``,
    ``POST …/presence``) and log ``participant.joined`` / ``participant.left``."""
    presence_ttl: float = 15.0
    """Seconds a device stays present after it was last heard from."""
    presence_grace: float = 5.0
    """Seconds a device stays present after its last connection ended (a reload
    within it changes nothing)."""
    audit_key: str | None = None
    """PEM file of the Ed25519 private key that signs audit heads. Without it:
    ``PATH-audit-key.pem`` beside a SQLite store's file (created, mode 0600, at
    the first start), or a key that lives as long as the process."""
