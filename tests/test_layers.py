"""Layers import downward only (STYLE L1, L2); lazy and type-only imports count."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import threadline

SRC = Path(threadline.__file__).parent
SANS_IO_FORBIDDEN = {"asyncio", "selectors", "socket", "ssl", "threading", "time"}
# Pure codecs protocol/ may use besides the stdlib: core dependencies, no I/O.
CODECS = {"orjson"}


def imports(layer: str) -> list[tuple[str, str]]:
    """(file, module) for every import in a layer, relative imports made absolute."""
    found = []
    for path in sorted(
        SRC.glob("*.py") if layer == "" else SRC.glob(f"{layer}/**/*.py")
    ):
        package = ["threadline", *path.relative_to(SRC).parent.parts]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                parent = package[: len(package) - node.level + 1] if node.level else []
                base = ".".join([*parent, *filter(None, [node.module])])
                names = [base, *(f"{base}.{alias.name}" for alias in node.names)]
            else:
                continue
            found += [(str(path.relative_to(SRC)), name) for name in names]
    return found


def within(name: str, *layers: str) -> bool:
    return any(
        name == f"threadline.{x}" or name.startswith(f"threadline.{x}.") for x in layers
    )


def test_protocol_imports_only_stdlib_and_exceptions():
    """protocol/ imports the stdlib (minus I/O, threads and clocks), orjson (a
    pure codec), exceptions and itself.
    """
    bad = [
        (path, name)
        for path, name in imports("protocol")
        if not within(name, "exceptions", "protocol")
        and name.split(".")[0] not in CODECS
        and (
            name.split(".")[0] not in sys.stdlib_module_names
            or name.split(".")[0] in SANS_IO_FORBIDDEN
        )
    ]
    assert bad == []


def test_storage_never_imports_upper_layers():
    """storage/ imports neither the server, the client, the adapters nor the CLI."""
    bad = [
        x
        for x in imports("storage")
        if within(x[1], "server", "client", "adapters", "cli")
    ]
    assert bad == []


def test_client_never_imports_server_or_storage():
    """client/ stays light: it imports neither the server nor storage (nor the CLI,
    adapters).
    """
    bad = [
        x
        for x in imports("client")
        if within(x[1], "server", "storage", "adapters", "cli")
    ]
    assert bad == []


def test_agent_imports_only_the_client_and_protocol():
    """agent/ (the worker) builds on client/ and protocol/ only (and exceptions):
    never the server, storage, auth, the CLI or adapters.
    """
    bad = [
        (path, name)
        for path, name in imports("agent")
        if name.startswith("threadline")
        and not within(name, "agent", "client", "protocol", "exceptions")
    ]
    assert bad == []


def test_nothing_imports_cli_or_adapters():
    """Only __main__ imports the CLI, and only adapters import adapters."""
    layers = [
        "",
        "auth",
        "protocol",
        "storage",
        "server",
        "client",
        "agent",
        "testing",
        "adapters",
    ]
    bad = [
        (path, name)
        for layer in layers
        for path, name in imports(layer)
        if (within(name, "cli") and path != "__main__.py")
        or (within(name, "adapters") and layer != "adapters")
    ]
    assert bad == []


def test_auth_does_no_io_outside_jwks():
    """auth/ is pure except jwks.py, and imports neither the server, storage nor I/O."""
    io = SANS_IO_FORBIDDEN | {"http", "urllib"}
    bad = [
        (path, name)
        for path, name in imports("auth")
        if within(name, "server", "storage", "client", "cli", "adapters")
        or (path != "auth/jwks.py" and name.split(".")[0] in io - {"time"})
    ]
    assert bad == []


BLOCK_SERVER_DEPENDENCIES = """
import sys

class Block:
    '''Refuse the server's dependencies, as if they were not installed.'''

    BLOCKED = {"starlette", "uvicorn", "jwt", "cryptography", "uvloop", "httptools"}

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.BLOCKED:
            raise ImportError(f"blocked: {name}")
        return None

sys.meta_path.insert(0, Block())
"""


def test_client_imports_without_the_server_dependencies():
    """threadline.connect works where starlette, uvicorn, PyJWT and cryptography
    are not installed (the client installs without the [server] extra).
    """
    import subprocess

    code = BLOCK_SERVER_DEPENDENCIES + (
        "import threadline, threadline.client\n"
        "client = threadline.connect('http://127.0.0.1:1', 'token')\n"
        "client.session('order-1')\n"
        "assert not {'starlette', 'uvicorn', 'jwt'} & set(sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
