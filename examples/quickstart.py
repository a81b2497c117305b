"""Quickstart: a customer asks, an assistant streams the answer, a third tab reads it.

Start a server and take its service token:

    threadline serve --dev          # prints "dev token (service, ...): eyJ..."
    THREADLINE_TOKEN=eyJ... python examples/quickstart.py http://127.0.0.1:4437

The script needs only ``pip install threadline`` (no server extra).
"""

from __future__ import annotations

import asyncio
import os
import sys

import threadline


async def main(url: str, token: str) -> None:
    async with threadline.connect(url, token) as client:
        await client.create_session("quickstart", customer="cust_42")
        session = client.session("quickstart")

        # Anyone may read the session from any offset: here from the tail.
        async with session.subscribe("now") as events:
            await session.send_message("Where is my order?", role="user")

            # Stream an answer: deltas are pipelined, and the message always
            # ends (complete, or cancelled / error if this block fails).
            async with session.stream_message() as answer:
                for word in ["Your ", "order ", "ships ", "today."]:
                    await answer.write(word)

            async for event in events:
                if event.type == "message":
                    print(f"{event.data['role']}: {event.data['parts'][0]['text']}")
                elif event.type == "message.delta":
                    print(f"  … {event.data['text']!r}")
                elif event.type == "message.end":
                    print(f"  (answer {event.data['status']})")
                    if event.data["message_id"] == answer.message_id:
                        break


if __name__ == "__main__":
    server = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:4437"
    asyncio.run(main(server, os.environ["THREADLINE_TOKEN"]))
