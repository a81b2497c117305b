"""The demo app: pages with the banner, assets, the demo-only sign-in."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.server.harness import asgi_client
from threadline.auth import Keyset, verify_token
from threadline.demo.app import PAGES, DemoApp, DemoSettings
from threadline.server import Config, create_app


@pytest.fixture
async def client() -> AsyncIterator[tuple[DemoApp, httpx.AsyncClient]]:
    app = DemoApp(DemoSettings(url="http://testserver", store="memory://", ai=False))
    async with asgi_client(app) as http:  # type: ignore[arg-type]
        yield app, http


async def sign_in(http: httpx.AsyncClient, role: str, name: str) -> httpx.Response:
    return await http.post("/demo/api/sign-in", json={"role": role, "name": name})


@pytest.mark.parametrize("path", sorted(PAGES))
async def test_demo_page_has_the_banner(client, path):
    """Every page is HTML with the "demo only" banner."""
    _, http = client
    response = await http.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert 'data-testid="demo-banner"' in response.text
    assert "Demo only" in response.text


@pytest.mark.parametrize(
    ("path", "testids"),
    [
        ("/demo", ["signin-name", "messages", "composer-input", "stop", "session-id"]),
        ("/demo/agent", ["queue", "session-view", "take-over", "hand-back"]),
        ("/demo/supervisor", ["sessions", "session-view", "whisper-input"]),
    ],
)
async def test_demo_page_has_its_dom_contract(client, path, testids):
    """Each page carries the data-testid hooks the browser tests use."""
    _, http = client
    text = (await http.get(path)).text
    for testid in ["demo-banner", "connection", "signin-submit", *testids]:
        assert f'data-testid="{testid}"' in text, testid


@pytest.mark.parametrize(
    "name", ["threadline-client.js", "common.js", "transcript.js", "demo.css"]
)
async def test_demo_serves_its_assets(client, name):
    """The pages' modules and styles are served from the package, build-free."""
    _, http = client
    response = await http.get(f"/demo/static/{name}")
    assert response.status_code == 200
    kind = "text/css" if name.endswith(".css") else "text/javascript"
    assert response.headers["content-type"].startswith(kind)
    assert response.headers["cache-control"] == "no-cache"


async def test_demo_unknown_asset_is_404(client):
    """A name that is not a shipped asset is not found (no path walking)."""
    _, http = client
    for path in ["/demo/static/nope.js", "/demo/static/../app.py", "/demo/static/"]:
        assert (await http.get(path)).status_code == 404


async def test_demo_pages_answer_get_only(client):
    """Writing to a page is refused."""
    _, http = client
    assert (await http.post("/demo")).status_code == 405


async def test_demo_passes_the_api_through(client):
    """The server's own routes work under the demo, auth on."""
    _, http = client
    assert (await http.get("/healthz")).json() == {"status": "ok"}
    assert (await http.get("/v1/me/sessions")).status_code == 401


async def test_sign_in_mints_a_customer_token(client):
    """A customer's token: role customer, sub from the name, own order sessions."""
    app, http = client
    response = await sign_in(http, "customer", "  Dana   Whitfield ")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["sub"] == "cust-dana-whitfield"
    assert body["role"] == "customer"
    assert body["name"] == "Dana Whitfield"
    assert body["ai"] == {"id": "demo-ai", "name": "Ada"}
    claims = verify_token(body["token"], Keyset(app.tokens.secret))
    assert (claims.sub, claims.role, claims.name) == (
        "cust-dana-whitfield",
        "customer",
        "Dana Whitfield",
    )
    assert list(claims.sessions) == ["order-*"]


async def test_sign_in_same_name_is_same_identity(client):
    """Signing in again with the same name (another browser) is the same customer."""
    _, http = client
    first = (await sign_in(http, "customer", "Dana")).json()
    second = (await sign_in(http, "customer", "dana")).json()
    assert first["sub"] == second["sub"] == "cust-dana"
    assert first["token"] != "" and second["token"] != ""


@pytest.mark.parametrize(
    ("role", "sub", "caps"),
    [("agent", "agent-sam-rivera", ()), ("supervisor", "sup-sam-rivera", ("barge",))],
)
async def test_sign_in_mints_staff_tokens(client, role, sub, caps):
    """Agents and supervisors reach every session; supervisors may barge in."""
    app, http = client
    body = (await sign_in(http, role, "Sam Rivera")).json()
    claims = verify_token(body["token"], Keyset(app.tokens.secret))
    assert (claims.sub, claims.role) == (sub, role)
    assert list(claims.sessions) == ["**"]
    assert tuple(claims.caps) == caps


@pytest.mark.parametrize(
    "body",
    [
        {"role": "service", "name": "x"},
        {"role": "ai", "name": "x"},
        {"role": "customer", "name": "!!!"},
        {"role": "customer", "name": ""},
        {"role": "customer"},
        {"role": "customer", "name": 7},
        ["customer", "x"],
    ],
)
async def test_sign_in_refuses_bad_requests(client, body):
    """Only customer, agent and supervisor tokens, for a usable name."""
    _, http = client
    response = await http.post("/demo/api/sign-in", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_sign_in"


async def test_sign_in_refuses_malformed_and_large_bodies(client):
    """Not JSON, or more than 4 KiB: 400 and no token."""
    _, http = client
    for content in [b"{not json", b'{"role":"customer","name":"' + b"a" * 5000 + b'"}']:
        response = await http.post("/demo/api/sign-in", content=content)
        assert response.status_code == 400


async def test_sign_in_answers_post_only(client):
    """GET on the sign-in route is 405."""
    _, http = client
    assert (await http.get("/demo/api/sign-in")).status_code == 405


async def test_sign_in_is_absent_without_demo():
    """`threadline serve`'s app has no sign-in and no pages: 404."""
    app = create_app(Config(store="memory://", secret="s" * 32))
    async with asgi_client(app) as http:
        assert (await sign_in(http, "customer", "Dana")).status_code == 404
        assert (await http.get("/demo")).status_code == 404
        assert (await http.get("/demo/static/common.js")).status_code == 404
