"""The demo's AI: an order-support agent on :class:`threadline.agent.Worker`.

By default it is deterministic (no model, no network): :func:`plan_reply`
decides what to say from the conversation, and :class:`OrderAgent` streams
it token by token at a realistic pace, publishing its tool calls as staff
``tool.call`` / ``tool.result`` events and escalating with
``context.escalate`` (a staff summary note and a warm ``control.request``).
The story: order #1234 is partly delivered, partly stuck in a warehouse; the
agent proposes a reship or a refund, and a refund above its limit goes to a
human.

With ``THREADLINE_LLM_BASE_URL``, ``THREADLINE_LLM_API_KEY`` and
``THREADLINE_LLM_MODEL`` set, :class:`LLMAgent` answers instead, through the
official ``openai`` client (``pip install 'threadline[demo]'``) against any
OpenAI-compatible endpoint, with the same tools.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import httpx

from ..agent import Chunk, Context, HistoryMessage, Respond, Worker
from ..client.ids import uuid7
from ..exceptions import ThreadlineError
from .defaults import DEFAULT_PACE, LLM_ENV
from .tokens import AI_ID, AI_NAME, DemoTokens

__all__ = [
    "REFUND_LIMIT",
    "DemoAI",
    "Escalate",
    "Item",
    "LLMAgent",
    "LLMSettings",
    "Order",
    "OrderAgent",
    "Say",
    "Step",
    "UseTool",
    "choose_agent",
    "find_order",
    "plan_reply",
    "tokenize",
]

logger = logging.getLogger(__name__)

REFUND_LIMIT: Final = 100_00
"""The largest refund, in cents, the AI may grant on its own."""
DEFAULT_ORDER: Final = "1234"


# The order story


@dataclass(frozen=True, slots=True)
class Item:
    """One line of an order."""

    name: str
    price: int
    """In cents."""
    status: str
    """``delivered`` or ``stuck``."""
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "price": _money(self.price),
            "status": self.status,
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class Order:
    """A demo order: two items delivered, one stuck in the warehouse."""

    number: str
    items: tuple[Item, ...]
    carrier: str = "UPS"
    tracking: str = "1Z999AA10123456784"

    @property
    def delivered(self) -> list[Item]:
        return [item for item in self.items if item.status == "delivered"]

    @property
    def stuck(self) -> Item:
        return next(item for item in self.items if item.status == "stuck")

    @property
    def total(self) -> int:
        return sum(item.price for item in self.items)

    def to_json(self) -> dict[str, Any]:
        return {
            "order": f"#{self.number}",
            "items": [item.to_json() for item in self.items],
            "total": _money(self.total),
            "shipment": {
                "carrier": self.carrier,
                "tracking": self.tracking,
                "delivered": [item.name for item in self.delivered],
            },
            "warehouse_hold": {
                "item": self.stuck.name,
                "location": "Reno, NV fulfillment centre",
                "reason": "shipping label failed the carrier's scan at pickup",
                "days_held": 4,
            },
        }


def find_order(number: str) -> Order:
    """The demo's order ``number``: every number tells the same story."""
    return Order(
        number,
        (
            Item(
                "Trailhead running shoes",
                129_00,
                "delivered",
                "delivered on Tuesday",
            ),
            Item(
                "Merino hiking socks (3-pack)",
                24_00,
                "delivered",
                "delivered on Tuesday",
            ),
            Item(
                "Stormline waterproof jacket",
                189_00,
                "stuck",
                "held at the Reno warehouse: its label failed the carrier's scan",
            ),
        ),
    )


def _money(cents: int) -> str:
    return f"${cents // 100:,}.{cents % 100:02d}"


# Deciding what to say


@dataclass(frozen=True, slots=True)
class Say:
    """Stream this text to the customer."""

    text: str


@dataclass(frozen=True, slots=True)
class UseTool:
    """Call a tool: a staff ``tool.call``, then its ``tool.result``."""

    name: str
    input: dict[str, Any]
    output: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Escalate:
    """Hand over to a human, warm: a staff note with the summary, then a
    ``control.request``."""

    summary: str
    reason: str


Step = Say | UseTool | Escalate
"""One step of a reply."""

_ORDER_NUMBER: Final = re.compile(
    r"(?:#\s?|\border\s*(?:number|no\.?|num)?\s*:?\s*#?\s*)(\d{3,10})\b", re.I
)
_AMOUNT: Final = re.compile(
    r"\$\s?(\d{1,6}(?:[.,]\d{1,2})?)|(\d{1,6}(?:\.\d{1,2})?)\s?(?:usd|dollars)\b", re.I
)
_HUMAN: Final = re.compile(
    r"\b(human|person|people|someone|somebody|representative|manager|real agent|"
    r"an agent|live agent|speak to|talk to)\b",
    re.I,
)
_REFUND: Final = re.compile(r"\b(refund|money back|reimburse)", re.I)
_RESHIP: Final = re.compile(
    r"\b(reship|re-ship|resend|re-send|send (it|one|another)|ship (it|another)|"
    r"replacement|replace)\b",
    re.I,
)
_THANKS: Final = re.compile(r"\b(thanks|thank you|thx|cheers|ty)\b", re.I)
_ORDER_TALK: Final = re.compile(
    r"\b(order|package|parcel|delivery|delivered|shipping|shipped|track|where|"
    r"arrive|arrived|when)\b",
    re.I,
)


def _amount(text: str) -> int | None:
    match = _AMOUNT.search(text)
    if match is None:
        return None
    value = (match[1] or match[2]).replace(",", ".")
    whole, _, fraction = value.partition(".")
    return int(whole) * 100 + int((fraction + "00")[:2])


def plan_reply(
    history: Sequence[HistoryMessage],
    message: HistoryMessage,
    *,
    escalation_pending: bool = False,
    refund_limit: int = REFUND_LIMIT,
) -> list[Step]:
    """What the deterministic agent does in answer to ``message``.

    Pure: it reads the conversation (``history``, the customer message last)
    and whether a hand-over is already pending, and returns the steps.

    Args:
        history: The conversation so far, ``message`` included.
        message: The customer message to answer.
        escalation_pending: A control request waits for a human.
        refund_limit: The largest refund the agent grants, in cents.
    """
    text = message.text
    name = (message.actor.name or "").split(" ")[0] or "there"
    earlier = [m for m in history if m.start_offset < message.start_offset]
    numbers = [
        match[1]
        for m in [*earlier, message]
        if m.role == "user"
        for match in _ORDER_NUMBER.finditer(m.text)
    ]
    order = find_order(numbers[-1] if numbers else DEFAULT_ORDER)
    stuck = order.stuck
    looked_up = any(m.actor.role == "ai" and stuck.name in m.text for m in earlier)
    assistants = [m for m in earlier if m.role == "assistant"]
    human = (
        assistants[-1]
        if assistants and assistants[-1].actor.role in ("agent", "supervisor")
        else None
    )

    if escalation_pending:
        return [
            Say(
                "A colleague from our support team will join in a moment. I've "
                f"passed on everything about order #{order.number}, so you won't "
                "need to repeat yourself."
            )
        ]
    if human is not None:
        who = (human.actor.name or "my colleague").split(" ")[0]
        done = (
            f"approved the refund for the {stuck.name}"
            if any(_REFUND.search(m.text) for m in assistants if m.actor.role != "ai")
            else "taken care of your request"
        )
        if _THANKS.search(text) or not (
            _REFUND.search(text) or _RESHIP.search(text) or _HUMAN.search(text)
        ):
            back = f"Hi {name}, I'm back! I can see {who} has {done}."
            if _ORDER_TALK.search(text):
                delivered = " and ".join(item.name for item in order.delivered)
                return [
                    Say(
                        f"{back} As for the rest of order #{order.number}: your "
                        f"{delivered} were already delivered on Tuesday "
                        f"({order.carrier} {order.tracking}), so nothing else is on "
                        "its way. Is there anything else I can help you with?"
                    )
                ]
            return [
                Say(
                    f"{back} Is there anything else I can help you with on order "
                    f"#{order.number}?"
                )
            ]
    if _HUMAN.search(text) and not _REFUND.search(text):
        return [
            *([] if looked_up else [_lookup(order)]),
            Say(
                f"Of course, {name}. I'm bringing in a colleague from our support "
                "team now."
            ),
            Escalate(
                _summary(message, order, "asked to talk to a human"), "customer_request"
            ),
            Say(
                "They'll see our whole conversation, so you won't have to repeat "
                "anything. It usually takes a minute or two."
            ),
        ]
    if _REFUND.search(text):
        amount = _amount(text) or stuck.price
        if amount > refund_limit:
            return [
                *([] if looked_up else [_lookup(order)]),
                UseTool(
                    "check_refund_policy",
                    {"order": f"#{order.number}", "amount": _money(amount)},
                    {
                        "allowed": False,
                        "ai_limit": _money(refund_limit),
                        "requires": "human approval",
                    },
                ),
                Say(
                    f"I understand, {name}. A refund of {_money(amount)} is above the "
                    f"{_money(refund_limit)} I'm allowed to approve on my own, so I'm "
                    "bringing in a colleague from our support team who can approve it."
                ),
                Escalate(
                    _summary(
                        message,
                        order,
                        f"asked for a refund of {_money(amount)}, above my limit of "
                        f"{_money(refund_limit)}",
                    ),
                    "refund_over_limit",
                ),
                Say(
                    "They'll see our whole conversation, so you won't have to repeat "
                    "anything. It usually takes a minute or two."
                ),
            ]
        return [
            UseTool(
                "issue_refund",
                {"order": f"#{order.number}", "amount": _money(amount)},
                {
                    "status": "refunded",
                    "amount": _money(amount),
                    "eta": "3-5 business days",
                },
            ),
            Say(
                f"Done: I've refunded {_money(amount)} to your original payment "
                "method. It will show up within 3–5 business days."
            ),
        ]
    if _RESHIP.search(text):
        return [
            UseTool(
                "create_reshipment",
                {"order": f"#{order.number}", "item": stuck.name, "speed": "express"},
                {
                    "status": "created",
                    "carrier": "UPS Express",
                    "tracking": "1Z999AA10987654321",
                    "eta": "2 business days",
                },
            ),
            Say(
                f"Done! I've reshipped the {stuck.name} by express at no cost. New "
                "tracking number: UPS 1Z999AA10987654321, arriving in 2 business "
                "days. Is there anything else I can help with?"
            ),
        ]
    if _THANKS.search(text) and looked_up:
        return [Say(f"You're welcome, {name}! Have a great day.")]
    if not looked_up or _ORDER_NUMBER.search(text) or _ORDER_TALK.search(text):
        delivered = " and ".join(item.name for item in order.delivered)
        return [
            Say(f"Thanks, {name}! Let me check order #{order.number} for you."),
            _lookup(order),
            Say(
                f"Here's what I found: your {delivered} shipped together and were "
                f"delivered on Tuesday ({order.carrier} {order.tracking}). The "
                f"{stuck.name} ({_money(stuck.price)}) is stuck at our Reno "
                "warehouse: its shipping label failed the carrier's scan, so it "
                "never left. I'm sorry about that."
            ),
            UseTool(
                "propose_resolution",
                {"order": f"#{order.number}", "item": stuck.name},
                {
                    "options": [
                        {"action": "reship", "speed": "express", "cost": "$0.00"},
                        {
                            "action": "refund",
                            "amount": _money(stuck.price),
                            "needs_approval": stuck.price > refund_limit,
                        },
                    ]
                },
            ),
            Say(
                f"I can reship the jacket by express at no cost (it would arrive in "
                f"2 business days), or refund it ({_money(stuck.price)}). Which "
                "would you prefer?"
            ),
        ]
    return [
        Say(
            f"I can reship the {stuck.name} by express at no cost, or refund it "
            f"({_money(stuck.price)}). Just say which you prefer, or ask for a "
            "human if you'd rather talk to someone from our team."
        )
    ]


def _lookup(order: Order) -> UseTool:
    return UseTool("lookup_order", {"order": f"#{order.number}"}, order.to_json())


def _summary(message: HistoryMessage, order: Order, ask: str) -> str:
    """The staff note a human reads before taking over."""
    customer = message.actor.name or message.actor.id
    stuck = order.stuck
    delivered = ", ".join(item.name for item in order.delivered)
    return (
        f"Hand-over: {customer} ({message.actor.id}), order #{order.number}. "
        f"Delivered: {delivered}. Stuck: {stuck.name} ({_money(stuck.price)}), held "
        "4 days at the Reno warehouse after its label failed the carrier's scan. "
        f"The customer {ask}. I offered a free express reship or a refund. "
        "Suggested: approve the refund, or confirm the reship."
    )


_TOKEN: Final = re.compile(r"\s*\S+|\s+")


def tokenize(text: str) -> list[str]:
    """Split text into tokens the way a model streams them: words with their
    leading space."""
    return _TOKEN.findall(text)


# Streaming it


class OrderAgent:
    """The deterministic demo agent: ``respond`` for the worker.

    Args:
        pace: Seconds between two tokens (and a tool call takes ten).
        refund_limit: The largest refund it grants, in cents.
    """

    def __init__(
        self, *, pace: float = DEFAULT_PACE, refund_limit: int = REFUND_LIMIT
    ) -> None:
        if pace < 0:
            raise ValueError("pace is seconds per token, at least 0")
        self.pace = pace
        self.refund_limit = refund_limit

    def __repr__(self) -> str:
        return f"<OrderAgent pace {self.pace}s>"

    async def __call__(self, context: Context) -> AsyncIterator[Chunk]:
        """The reply to ``context.message``: text, tool events, escalation."""
        pending = await _escalation_pending(context)
        steps = plan_reply(
            context.history,
            context.message,
            escalation_pending=pending,
            refund_limit=self.refund_limit,
        )
        said = False
        for step in steps:
            if isinstance(step, Say):
                if said:
                    yield "\n\n"
                said = True
                for token in tokenize(step.text):
                    await asyncio.sleep(self.pace)
                    yield token
            elif isinstance(step, UseTool):
                await asyncio.sleep(self.pace * 5)
                await _use_tool(context, step.name, step.input, step.output)
                await asyncio.sleep(self.pace * 5)
            else:
                await context.escalate(step.summary, reason=step.reason)


async def _escalation_pending(context: Context) -> bool:
    """Whether a control request of the session waits for a human."""
    try:
        state = await context.session.state()
    except ThreadlineError:
        return False
    return bool(state.get("requests"))


async def _use_tool(
    context: Context, name: str, arguments: Mapping[str, Any], output: Any
) -> None:
    """Publish a tool call and its result (staff events of the run)."""
    call_id = f"call_{uuid7()}"
    await context.session.publish(
        "tool.call",
        {
            "tool_call_id": call_id,
            "tool_name": name,
            "input": dict(arguments),
            "run_id": context.run_id,
        },
    )
    await context.session.publish(
        "tool.result",
        {
            "tool_call_id": call_id,
            "tool_name": name,
            "output": output,
            "run_id": context.run_id,
        },
    )


# An OpenAI-compatible model


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
                    name=AI_NAME, limit=_money(self.refund_limit)
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
                    "ai_limit": _money(self.refund_limit),
                    "requires": "human approval: call escalate_to_human",
                }
            else:
                output = {"status": "refunded", "amount": _money(cents)}
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
        await _use_tool(context, name, args, output)
        return output


def choose_agent(
    *,
    pace: float = DEFAULT_PACE,
    environ: Mapping[str, str] | None = None,
) -> OrderAgent | LLMAgent:
    """The demo's agent: :class:`LLMAgent` if ``THREADLINE_LLM_*`` is set,
    else the deterministic :class:`OrderAgent`.

    Raises:
        ValueError: only some of the variables are set.
        RuntimeError: they are, but ``openai`` is not installed.
    """
    settings = LLMSettings.from_env(environ)
    if settings is None:
        return OrderAgent(pace=pace)
    return LLMAgent.from_settings(settings)


# Running it


class DemoAI:
    """The demo's AI worker, in the server's process: it waits for the
    server to listen, then serves every new session whose floor the AI holds.

    Args:
        url: The server's base URL.
        tokens: Mints the AI's token (and fresh ones before it expires).
        respond: The agent.
        device: The worker's device id.
    """

    def __init__(
        self,
        url: str,
        tokens: DemoTokens,
        respond: Respond,
        *,
        device: str = "demo-ai-1",
    ) -> None:
        self.url = url
        self.tokens = tokens
        self.respond = respond
        self.device = device
        self.worker: Worker | None = None
        """The worker, once started."""
        self.ready = asyncio.Event()
        """Set once the worker runs."""
        self._task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"<DemoAI {AI_ID!r} on {self.url}>"

    def start(self) -> None:
        """Start in the background (the server may not listen yet)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="threadline-demo-ai")

    async def aclose(self) -> None:
        """Stop the worker (a reply in flight ends ``producer_stopped``)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task])
        if self.worker is not None:
            await self.worker.aclose()
        close = getattr(self.respond, "aclose", None)
        if close is not None:
            await close()

    async def _run(self) -> None:
        await _wait_listening(self.url)

        async def fresh_token() -> str:
            return self.tokens.ai_token()

        self.worker = Worker(
            self.url,
            self.tokens.ai_token(),
            self.respond,
            device=self.device,
            token_provider=fresh_token,
            follow_new_sessions=True,
        )
        self.worker.start()
        self.ready.set()
        await self.worker.run()


async def _wait_listening(url: str, *, timeout: float = 30.0) -> None:
    """Return once ``url/healthz`` answers (the server listens)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    delay = 0.005
    async with httpx.AsyncClient(timeout=1.0) as http:
        while True:
            try:
                response = await http.get(f"{url}/healthz")
            except httpx.TransportError:
                pass
            else:
                if response.status_code == 200:
                    return
            if loop.time() > deadline:
                raise TimeoutError(f"the demo server at {url} did not start")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.2)
