"""A second no-op ceiling: HTTP/1.1 on httptools with no ASGI server.

An asyncio protocol on uvloop that parses requests with httptools and answers
each one at once (``201`` to ``PUT``, ``204`` to anything else), keep-alive,
no framework. Next to ``noop_app.py`` under uvicorn it shows what the ASGI
server itself costs per request: the most a dedicated HTTP protocol for the
``/v1/stream`` hot path could save.

    taskset -c 0 .venv/bin/python bench/raw_noop_app.py --port PORT
"""

from __future__ import annotations

import argparse
import asyncio

import httptools
import uvloop

_NO_CONTENT = b"HTTP/1.1 204 No Content\r\n\r\n"
_CREATED = b"HTTP/1.1 201 Created\r\ncontent-length: 0\r\n\r\n"


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self._transport: asyncio.WriteTransport | None = None
        self._parser = httptools.HttpRequestParser(self)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # uvloop's TCPTransport

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            assert self._transport is not None
            self._transport.close()

    def on_message_complete(self) -> None:
        assert self._transport is not None
        put = self._parser.get_method() == b"PUT"
        self._transport.write(_CREATED if put else _NO_CONTENT)


async def _serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Protocol, host, port)
    await server.serve_forever()


def main() -> None:
    """Serve until killed."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    args = p.parse_args()
    uvloop.run(_serve(args.host, args.port))


if __name__ == "__main__":
    main()
