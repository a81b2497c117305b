"""The demo's order story and the tool events its agents publish.

Order #1234 is partly delivered, partly stuck in a warehouse. Both demo
agents (:mod:`.ai`, deterministic, and :mod:`.llm`, a model) look it up here
and publish their tool calls with :func:`use_tool`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from ..agent import Context
from ..client.ids import uuid7
from ..exceptions import ThreadlineError

__all__ = [
    "DEFAULT_ORDER",
    "REFUND_LIMIT",
    "Item",
    "Order",
    "escalation_pending",
    "find_order",
    "money",
    "use_tool",
]

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
            "price": money(self.price),
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
            "total": money(self.total),
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


def money(cents: int) -> str:
    return f"${cents // 100:,}.{cents % 100:02d}"


async def escalation_pending(context: Context) -> bool:
    """Whether a control request of the session waits for a human."""
    try:
        state = await context.session.state()
    except ThreadlineError:
        return False
    return bool(state.get("requests"))


async def use_tool(
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
