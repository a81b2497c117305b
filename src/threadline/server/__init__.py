"""The ASGI server: thin transports over the protocol and storage layers."""

from __future__ import annotations

from .app import create_app
from .config import Config

__all__ = ["Config", "create_app"]
