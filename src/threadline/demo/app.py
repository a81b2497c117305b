"""The demo application: the normal server, plus the pages and a sign-in.

:class:`DemoApp` wraps :func:`threadline.server.create_app` (auth on, a
secret per run) and adds, only here:

- ``GET /`` (a start page), ``/demo`` (the customer chat widget),
  ``/demo/agent`` (the agent console), ``/demo/supervisor`` (the supervisor
  view) and ``/demo/static/*`` (their CSS and ES modules, package data);
- ``POST /demo/api/sign-in`` ``{role, name}`` → ``{token, sub, role, name,
  ai}``: a token for anyone who asks. This is why the demo binds 127.0.0.1
  by default and every page says "demo only".

Everything else goes to the server unchanged: the pages use only the public
API, each with its role's token. The lifespan starts the demo AI
(:class:`~threadline.demo.ai.DemoAI`) once the server is up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import MutableMapping
from dataclasses import dataclass
from importlib import resources
from typing import Any, Final

import orjson

from ..agent import Respond
from ..server import Config, create_app
from ..server.app import Application
from ..server.http import Receive, Scope, Send, error_body, send_response
from ..storage import LogStore
from .ai import DemoAI, choose_agent
from .defaults import DEFAULT_PACE, DEFAULT_STORE
from .tokens import DemoTokens

__all__ = ["PAGES", "SIGN_IN", "STATIC_PREFIX", "DemoApp", "DemoSettings"]

logger = logging.getLogger(__name__)

PAGES: Final = {
    "/": "index.html",
    "/demo": "customer.html",
    "/demo/": "customer.html",
    "/demo/agent": "agent.html",
    "/demo/supervisor": "supervisor.html",
}
"""The demo's pages, by path."""
STATIC_PREFIX: Final = "/demo/static/"
SIGN_IN: Final = "/demo/api/sign-in"
_TYPES: Final = {
    ".html": b"text/html; charset=utf-8",
    ".css": b"text/css; charset=utf-8",
    ".js": b"text/javascript; charset=utf-8",
    ".svg": b"image/svg+xml",
    ".png": b"image/png",
}
_MAX_SIGN_IN_BODY: Final = 4096
_AI_CLOSE_SECONDS: Final = 5.0  # at most, for the demo AI to stop at shutdown


@dataclass(frozen=True, slots=True)
class DemoSettings:
    """What ``threadline demo`` runs."""

    url: str
    """The server's own base URL, where the AI worker connects."""
    store: str = DEFAULT_STORE
    """The store URL (the embedded default: a SQLite file)."""
    secret: str | None = None
    """The token secret; a random one per run if ``None``."""
    ai: bool = True
    """Run the demo AI in the server's process."""
    pace: float = DEFAULT_PACE
    """Seconds per streamed token of the deterministic AI."""
    lease: float = 30.0
    """The server's dead-producer lease."""


class DemoApp:
    """The ASGI app of ``threadline demo``: :class:`Application` plus the
    demo's pages, sign-in and AI.

    Args:
        settings: What to run.
        store: A log store to use instead of opening ``settings.store``.
        respond: The AI's ``respond`` (default: :func:`choose_agent`, the
            deterministic agent or, with ``THREADLINE_LLM_*``, a model).

    Raises:
        ValueError: a bad setting (also from the server's ``Config``), or
            ``THREADLINE_LLM_*`` only partly set.
        RuntimeError: ``THREADLINE_LLM_*`` is set without ``openai`` installed.
    """

    def __init__(
        self,
        settings: DemoSettings,
        *,
        store: LogStore | None = None,
        respond: Respond | None = None,
    ) -> None:
        self.settings = settings
        self.tokens = DemoTokens(settings.secret)
        """Mints the demo's tokens (the server verifies them)."""
        self.config = Config(
            store=settings.store,
            auth=True,
            secret=self.tokens.secret,
            lease=settings.lease,
            cors_origins=(settings.url,),
        )
        self.server: Application = create_app(self.config, store=store)
        """The normal server, which answers everything but the demo's routes."""
        self.ai: DemoAI | None = None
        """The demo AI (``None`` with ``settings.ai`` off)."""
        if settings.ai:
            agent = respond if respond is not None else choose_agent(pace=settings.pace)
            self.ai = DemoAI(settings.url, self.tokens, agent)
        self.assets = _load_assets()

    def __repr__(self) -> str:
        return f"<DemoApp {self.settings.url}>"

    @property
    def websockets(self) -> Any:
        """The server's WebSocket handler (for a graceful shutdown)."""
        return self.server.websockets

    def drain(self) -> None:
        """Start the server's graceful shutdown (see :meth:`Application.drain`)."""
        self.server.drain()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        if kind == "http":
            path: str = scope["path"]
            if path in PAGES or path.startswith(STATIC_PREFIX):
                await self._asset(scope, send)
                return
            if path == SIGN_IN:
                await self._sign_in(scope, receive, send)
                return
        await self.server(scope, receive, send)

    # Pages and assets

    async def _asset(self, scope: Scope, send: Send) -> None:
        path: str = scope["path"]
        name = PAGES.get(path) or path[len(STATIC_PREFIX) :]
        asset = self.assets.get(name)
        if scope["method"] not in ("GET", "HEAD") or asset is None:
            status = 404 if asset is None else 405
            code = "not_found" if asset is None else "method_not_allowed"
            await send_response(
                send,
                status,
                [(b"content-type", b"application/json")],
                error_body(code, "no such page" if asset is None else "use GET"),
            )
            return
        body, content_type = asset
        headers = [
            (b"content-type", content_type),
            # Pages change with the package: always revalidate.
            (b"cache-control", b"no-cache"),
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
        ]
        if content_type.startswith(b"text/html"):
            headers.append((b"x-frame-options", b"DENY"))
        await send_response(
            send, 200, headers, b"" if scope["method"] == "HEAD" else body
        )

    # Sign-in

    async def _sign_in(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [
            (b"content-type", b"application/json"),
            (b"cache-control", b"no-store"),
        ]
        if scope["method"] != "POST":
            await send_response(
                send,
                405,
                [*headers, (b"allow", b"POST")],
                error_body("method_not_allowed", "POST {role, name}"),
            )
            return
        body = await _read_body(receive, _MAX_SIGN_IN_BODY)
        try:
            if body is None:
                raise ValueError("the body is too large")
            request = orjson.loads(body)
            if not isinstance(request, dict):
                raise ValueError("send a JSON object {role, name}")
            sign_in = self.tokens.sign_in(request.get("role"), request.get("name"))  # type: ignore[arg-type]
        except (ValueError, orjson.JSONDecodeError) as exc:
            await send_response(
                send, 400, headers, error_body("invalid_sign_in", str(exc))
            )
            return
        await send_response(send, 200, headers, orjson.dumps(sign_in.to_json()))

    # Lifespan

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        ai = self.ai

        async def receive_() -> MutableMapping[str, Any]:
            message = await receive()
            if message["type"] == "lifespan.shutdown" and ai is not None:
                # Before the server stops; bounded, so that a reply that can no
                # longer end (its connection is closed) never holds the exit.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(ai.aclose(), _AI_CLOSE_SECONDS)
            return message

        async def send_(message: MutableMapping[str, Any]) -> None:
            await send(message)
            if message["type"] == "lifespan.startup.complete" and ai is not None:
                ai.start()

        await self.server(scope, receive_, send_)


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The request body, or ``None`` past ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b""
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


def _load_assets() -> dict[str, tuple[bytes, bytes]]:
    """The pages and static files, read once from the package: name →
    (body, content type)."""
    folder = resources.files("threadline.demo") / "static"
    assets: dict[str, tuple[bytes, bytes]] = {}
    for entry in folder.iterdir():
        suffix = "." + entry.name.rsplit(".", 1)[-1] if "." in entry.name else ""
        content_type = _TYPES.get(suffix)
        if entry.is_file() and content_type is not None:
            assets[entry.name] = (entry.read_bytes(), content_type)
    return assets
