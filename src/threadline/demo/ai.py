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
import logging
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import httpx

from ..agent import Chunk, Context, HistoryMessage, Respond, Worker
from .defaults import DEFAULT_PACE
from .llm import LLMAgent, LLMSettings
from .orders import (
    DEFAULT_ORDER,
    REFUND_LIMIT,
    Order,
    escalation_pending,
    find_order,
    money,
    use_tool,
)
from .tokens import AI_ID, DemoTokens

__all__ = [
    "DemoAI",
    "Escalate",
    "OrderAgent",
    "Say",
    "Step",
    "UseTool",
    "choose_agent",
    "plan_reply",
    "tokenize",
]

logger = logging.getLogger(__name__)

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
                    {"order": f"#{order.number}", "amount": money(amount)},
                    {
                        "allowed": False,
                        "ai_limit": money(refund_limit),
                        "requires": "human approval",
                    },
                ),
                Say(
                    f"I understand, {name}. A refund of {money(amount)} is above the "
                    f"{money(refund_limit)} I'm allowed to approve on my own, so I'm "
                    "bringing in a colleague from our support team who can approve it."
                ),
                Escalate(
                    _summary(
                        message,
                        order,
                        f"asked for a refund of {money(amount)}, above my limit of "
                        f"{money(refund_limit)}",
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
                {"order": f"#{order.number}", "amount": money(amount)},
                {
                    "status": "refunded",
                    "amount": money(amount),
                    "eta": "3-5 business days",
                },
            ),
            Say(
                f"Done: I've refunded {money(amount)} to your original payment "
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
                f"{stuck.name} ({money(stuck.price)}) is stuck at our Reno "
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
                            "amount": money(stuck.price),
                            "needs_approval": stuck.price > refund_limit,
                        },
                    ]
                },
            ),
            Say(
                f"I can reship the jacket by express at no cost (it would arrive in "
                f"2 business days), or refund it ({money(stuck.price)}). Which "
                "would you prefer?"
            ),
        ]
    return [
        Say(
            f"I can reship the {stuck.name} by express at no cost, or refund it "
            f"({money(stuck.price)}). Just say which you prefer, or ask for a "
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
        f"Delivered: {delivered}. Stuck: {stuck.name} ({money(stuck.price)}), held "
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
        pending = await escalation_pending(context)
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
                await use_tool(context, step.name, step.input, step.output)
                await asyncio.sleep(self.pace * 5)
            else:
                await context.escalate(step.summary, reason=step.reason)


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
