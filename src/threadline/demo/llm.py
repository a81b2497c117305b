"""The demo's agent on an OpenAI-compatible model (``THREADLINE_LLM_*``).

With ``THREADLINE_LLM_BASE_URL``, ``THREADLINE_LLM_API_KEY`` and
``THREADLINE_LLM_MODEL`` set, :class:`LLMAgent` answers instead of the
deterministic agent, through the official ``openai`` client (``pip install
'threadline[demo]'``), with the same tools (:mod:`.orders`).
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from ..agent import Chunk, Context
from .defaults import LLM_ENV
from .orders import DEFAULT_ORDER, REFUND_LIMIT, find_order, money, use_tool
from .tokens import AI_NAME

__all__ = ["LLMAgent", "LLMSettings"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LLMSettings:
    """Where the real model is: an OpenAI-compatible endpoint."""

    base_url: str
    api_key: str = field(repr=False)
    model: str

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> LLMSettings | None:
        """The settings in ``THREADLINE_LLM_*``, or ``None`` if none is set.

        Raises:
            ValueError: some are set, not all three.
        """
        env = os.environ if environ is None else environ
        values = [env.get(name, "").strip() for name in LLM_ENV]
        if not any(values):
            return None
        missing = [
            name for name, value in zip(LLM_ENV, values, strict=True) if not value
        ]
        if missing:
            raise ValueError(
                f"set all of {', '.join(LLM_ENV)} to use a model ({', '.join(missing)} "
                "missing), or none for the built-in deterministic agent"
            )
        return cls(*values)


_SYSTEM_PROMPT: Final = """\
You are {name}, the friendly order-support assistant of Northwind Outfitters, \
chatting with a customer in a support widget. Be concise (2-4 short sentences), \
warm and concrete. Use the tools: look up the order before talking about it; \
propose a free express reship or a refund for an item that is stuck. You may \
refund at most {limit} yourself; for more, or when the customer asks for a \
person, call escalate_to_human with a summary for your human colleague, then \
tell the customer a colleague will join and will see the whole conversation. \
Never invent order data."""

_TOOLS: Final = [
    {
        "type": "function",
        "function": {
            "name": "lookup_order",
            "description": "Look up an order: its items, shipment and warehouse holds.",
            "parameters": {
                "type": "object",
                "properties": {
                    "order": {"type": "string", "description": "e.g. #1234"}
                },
                "required": ["order"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "issue_refund",
            "description": "Refund an amount to the original payment method "
            "(only up to the assistant's limit).",
            "parameters": {
                "type": "object",
                "properties": {
                    "order": {"type": "string"},
                    "amount": {"type": "number", "description": "in dollars"},
                },
                "required": ["order", "amount"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "create_reshipment",
            "description": "Reship a stuck item by express, free of charge.",
            "parameters": {
                "type": "object",
                "properties": {"order": {"type": "string"}, "item": {"type": "string"}},
                "required": ["order", "item"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "escalate_to_human",
            "description": "Hand the conversation to a human agent (warm): they "
            "read the summary first.",
            "parameters": {
                "type": "object",
                "properties": {
                    "summary": {"type": "string"},
                    "reason": {"type": "string"},
                },
                "required": ["summary", "reason"],
            },
        },
    },
]

_MAX_ROUNDS: Final = 5


class LLMAgent:
    """The demo agent on a real model: an OpenAI-compatible chat completions
    endpoint, streamed, with the demo's tools.

    Args:
        client: An ``openai.AsyncOpenAI`` (or anything with its
            ``chat.completions.create(..., stream=True)``).
        model: The model's name.
        refund_limit: The largest refund it grants, in cents.
    """

    def __init__(
        self, client: Any, model: str, *, refund_limit: int = REFUND_LIMIT
    ) -> None:
        self.client = client
        self.model = model
        self.refund_limit = refund_limit

    def __repr__(self) -> str:
        return f"<LLMAgent {self.model!r}>"

    @classmethod
    def from_settings(cls, settings: LLMSettings) -> LLMAgent:
        """An agent with a new ``openai.AsyncOpenAI`` client.

        Raises:
            RuntimeError: the ``openai`` package is not installed.
        """
        try:
            import openai
        except ImportError as exc:
            raise RuntimeError(
                "THREADLINE_LLM_* is set but the openai package is missing: "
                "pip install 'threadline[demo]' (or unset THREADLINE_LLM_BASE_URL "
                "for the built-in agent)"
            ) from exc
        client = openai.AsyncOpenAI(
            base_url=settings.base_url, api_key=settings.api_key
        )
        return cls(client, settings.model)

    async def aclose(self) -> None:
        """Close the model client."""
        close = getattr(self.client, "close", None)
        if close is not None:
            await close()

    def messages(self, context: Context) -> list[dict[str, Any]]:
        """The chat messages for the model: a system prompt, then the
        conversation (human agents' messages marked with their name)."""
        out: list[dict[str, Any]] = [
            {
                "role": "system",
                "content": _SYSTEM_PROMPT.format(
                    name=AI_NAME, limit=money(self.refund_limit)
                ),
            }
        ]
        for message in context.history:
            text = message.text
            if not text:
                continue
            if message.role == "user":
                out.append({"role": "user", "content": text})
            elif message.role == "assistant" and message.actor.role != "ai":
                who = message.actor.name or "a human agent"
                out.append(
                    {"role": "assistant", "content": f"[{who}, human agent] {text}"}
                )
            else:
                out.append({"role": message.role, "content": text})
        return out

    async def __call__(self, context: Context) -> AsyncIterator[Chunk]:
        """Stream the model's reply; run the tools it calls, then ask again."""
        messages = self.messages(context)
        said = False
        for _ in range(_MAX_ROUNDS):
            stream = await self.client.chat.completions.create(
                model=self.model, messages=messages, tools=_TOOLS, stream=True
            )
            calls: dict[int, dict[str, str]] = {}
            text: list[str] = []
            async for chunk in stream:
                if not chunk.choices:
                    continue
                delta = chunk.choices[0].delta
                if delta.content:
                    if said and not text:
                        yield "\n\n"
                    said = True
                    text.append(delta.content)
                    yield delta.content
                for call in delta.tool_calls or ():
                    slot = calls.setdefault(
                        call.index, {"id": "", "name": "", "arguments": ""}
                    )
                    slot["id"] = call.id or slot["id"]
                    if call.function is not None:
                        slot["name"] += call.function.name or ""
                        slot["arguments"] += call.function.arguments or ""
            if not calls:
                return
            ordered = [calls[index] for index in sorted(calls)]
            messages.append(
                {
                    "role": "assistant",
                    "content": "".join(text) or None,
                    "tool_calls": [
                        {
                            "id": call["id"],
                            "type": "function",
                            "function": {
                                "name": call["name"],
                                "arguments": call["arguments"],
                            },
                        }
                        for call in ordered
                    ],
                }
            )
            for call in ordered:
                output = await self._tool(context, call["name"], call["arguments"])
                messages.append(
                    {
                        "role": "tool",
                        "tool_call_id": call["id"],
                        "content": json.dumps(output),
                    }
                )

    async def _tool(self, context: Context, name: str, arguments: str) -> Any:
        """Run one tool the model called; publish it as staff tool events."""
        try:
            args = json.loads(arguments or "{}")
        except json.JSONDecodeError:
            args = {}
        if not isinstance(args, dict):
            args = {}
        number = re.sub(r"\D", "", str(args.get("order", ""))) or DEFAULT_ORDER
        order = find_order(number)
        output: Any
        if name == "lookup_order":
            output = order.to_json()
        elif name == "issue_refund":
            try:
                cents = round(float(args.get("amount", 0)) * 100)
            except (TypeError, ValueError):
                cents = 0
            if cents > self.refund_limit:
                output = {
                    "allowed": False,
                    "ai_limit": money(self.refund_limit),
                    "requires": "human approval: call escalate_to_human",
                }
            else:
                output = {"status": "refunded", "amount": money(cents)}
        elif name == "create_reshipment":
            output = {
                "status": "created",
                "carrier": "UPS Express",
                "tracking": "1Z999AA10987654321",
                "eta": "2 business days",
            }
        elif name == "escalate_to_human":
            summary = str(args.get("summary") or "The customer needs a human agent.")
            reason = str(args.get("reason") or "model_escalation")[:64]
            await context.escalate(summary, reason=reason)
            output = {"status": "a human agent was asked to join"}
        else:
            output = {"error": f"unknown tool {name}"}
        await use_tool(context, name, args, output)
        return output
