"""The demo's defaults, importable without the server or the agent (the
command line reads them to build its help)."""

from __future__ import annotations

from typing import Final

__all__ = ["DEFAULT_PACE", "DEFAULT_PORT", "DEFAULT_STORE", "LLM_ENV"]

DEFAULT_PACE: Final = 0.03
"""Seconds between two streamed tokens of the built-in AI (about 30 a second)."""
DEFAULT_PORT: Final = 4437
DEFAULT_STORE: Final = "sqlite:///threadline-demo.db"
"""The embedded default: one SQLite file in the working directory."""
LLM_ENV: Final = (
    "THREADLINE_LLM_BASE_URL",
    "THREADLINE_LLM_API_KEY",
    "THREADLINE_LLM_MODEL",
)
"""The environment variables that switch the demo AI to a real model."""
