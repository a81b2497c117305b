"""The TypeScript client (clients/typescript): a fresh build matches the bundle
shipped in the wheel, and its node test suite passes, against a real server
and through the golden transcripts.

Node is bootstrapped by ``scripts/install --node`` (which ``scripts/test``
runs). Without ``node`` these tests skip visibly; under ``CI=true`` they fail
instead.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.server.harness import serve_in_thread
from tests.utils import MS
from threadline.auth import create_token

ROOT = Path(__file__).parents[2]
PACKAGE = ROOT / "clients" / "typescript"
BUNDLE = PACKAGE / "dist" / "threadline-client.js"
SHIPPED = ROOT / "src" / "threadline" / "demo" / "static" / "threadline-client.js"
SECRET = "typescript-client-test-secret-0123456789"
# Building runs tsc twice and esbuild; the suite cuts and resumes connections.
BUILD_TIMEOUT = 300_000 * MS
SUITE_TIMEOUT = 300_000 * MS

pytestmark = pytest.mark.timeout(900)


def missing(reason: str) -> None:
    """Skip with ``reason``, or fail under ``CI=true``, where nothing may skip."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: the TypeScript client must be tested)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def node() -> str:
    """The node binary, with the package's dev dependencies installed."""
    path = shutil.which("node")
    if path is None:
        missing("node is not installed: the TypeScript client was not tested")
    assert path is not None
    if not (PACKAGE / "node_modules" / ".package-lock.json").exists():
        missing(
            "clients/typescript/node_modules is missing: run scripts/install --node"
        )
    return path


@pytest.fixture(scope="module")
def built(node: str) -> Path:
    """A fresh ``npm run build`` of the client: dist/ with the bundle and tests."""
    result = subprocess.run(
        [node, "scripts/build.mjs"],
        cwd=PACKAGE,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return BUNDLE


def run_suite(
    node: str, *files: str, env: dict[str, str] | None = None
) -> dict[str, int]:
    """Run compiled test files with node's test runner; return its counts."""
    result = subprocess.run(
        [node, "scripts/run-tests.mjs", *files],
        cwd=PACKAGE,
        capture_output=True,
        text=True,
        timeout=SUITE_TIMEOUT,
        env={**os.environ, **(env or {})},
    )
    output = result.stdout + result.stderr
    counts = {
        name: int(value)
        for name, value in re.findall(r"^ℹ (\w+) (\d+)$", result.stdout, re.M)
    }
    print(output)  # shown by pytest -rA, or on failure
    assert result.returncode == 0, output
    assert counts.get("fail") == 0, output
    return counts


@pytest.fixture
def server_env() -> Iterator[dict[str, str]]:
    """A real server on port 0 (memory store, auth on), as the suite's environment."""

    def token(sub: str, role: str, name: str | None = None) -> str:
        return create_token(SECRET, sub=sub, role=role, sessions=["**"], name=name)

    tokens = {
        "service": token("svc_ts", "service"),
        "service2": token("svc_ts2", "service"),
        "customer": token("cust_ts", "customer", name="Dana"),
        "forged": create_token(
            "another-secret-0123456789abcdef0123456789", sub="svc_ts", role="service"
        ),
    }
    with serve_in_thread(auth=True, secret=SECRET, presence=True) as (server, _):
        yield {
            "THREADLINE_TEST_URL": server.url,
            "THREADLINE_TEST_TOKENS": json.dumps(tokens),
        }


def test_typescript_build_is_fresh(built: Path) -> None:
    """The bundle shipped as package data is byte for byte a fresh build of
    clients/typescript (else run ``npm run ship`` there)."""
    assert SHIPPED.exists(), f"{SHIPPED} is missing: run npm run ship in {PACKAGE}"
    fresh, shipped = built.read_bytes(), SHIPPED.read_bytes()
    assert fresh == shipped, (
        f"{SHIPPED.relative_to(ROOT)} is stale: run `npm run ship` in "
        "clients/typescript and commit the result"
    )


def test_typescript_protocol_core_replays_the_transcripts(
    node: str, built: Path
) -> None:
    """The TS protocol core replays every golden transcript, and its unit and
    bundle tests pass (no server needed)."""
    counts = run_suite(
        node, "transcripts.test.js", "protocol.test.js", "bundle.test.js"
    )
    assert counts["pass"] >= 90, counts


def test_typescript_client_against_a_server(
    node: str, built: Path, server_env: dict[str, str]
) -> None:
    """The TS client's suite passes against a real server: hello, replay and
    live, publish dedupe, resume across cut connections, streaming, cursors,
    presence (skipped while the server answers not_supported), 4401."""
    counts = run_suite(node, "client.test.js", env=server_env)
    assert counts["pass"] >= 10, counts
