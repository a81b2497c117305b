"""The customer widget in a real browser: typing while the AI streams, and Stop."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from tests.browser.conftest import Demo, People, Step
from tests.browser.test_scenario import (
    QUESTION,
    SESSION_ID,
    live,
    messages,
    send,
    sign_in,
)

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]


async def test_customer_stops_the_ai_and_types_while_it_streams(
    demo: Demo, people: People, step: Step
) -> None:
    """Stop ends the answer cancelled and hides itself; while the next answer
    streams, the agent console sees the customer typing, and a message sent
    mid-answer is shown at once and answered (the AI drops the stale answer:
    double-texting "interrupt")."""
    page = await people.customer_device_1.new_page()
    await page.goto(f"{demo.url}/demo")
    await sign_in(page, "Robin")
    await send(page, QUESTION)
    await expect(page.get_by_test_id("session-id")).to_have_text(SESSION_ID)
    session = (await page.get_by_test_id("session-id").text_content() or "").strip()
    await live(page)
    assistant = '[data-testid="message"][data-role="assistant"]'
    streaming = page.locator(f'{assistant}[data-status="streaming"]')
    await expect(streaming).to_have_count(1)
    first = await streaming.get_attribute("data-message-id")

    # Stop: the streaming answer ends cancelled, and Stop goes away.
    stop = page.get_by_test_id("stop")
    await expect(stop).to_be_visible()
    await stop.click()
    await expect(
        page.locator(f'{assistant}[data-message-id="{first}"]')
    ).to_have_attribute("data-status", "cancelled")
    await expect(stop).to_be_hidden()
    await step(page, "stop ends the answer cancelled")

    # An agent watching the session sees the customer typing.
    console = await people.agent.new_page()
    await console.goto(f"{demo.url}/demo/agent#{session}")
    await sign_in(console, "Alex")
    await expect(console.get_by_test_id("session-view")).to_have_attribute(
        "data-session", session
    )
    await send(page, "Sorry, go on: where is it?")
    await expect(streaming).to_have_count(1)
    second = await streaming.get_attribute("data-message-id")
    await page.get_by_test_id("composer-input").press_sequentially("Also, can I ")
    await expect(console.get_by_test_id("typing")).to_be_visible()
    await step(console, "the agent console sees the customer typing")

    # Sending while the AI streams: shown at once, and answered.
    await page.get_by_test_id("composer-input").fill("Also, can I change the address?")
    await page.get_by_test_id("composer-send").click()
    await expect(messages(page, "user").last).to_contain_text("change the address")
    await step(page, "a message sent while the AI streams")
    await expect(
        page.locator(f'{assistant}[data-message-id="{second}"]')
    ).not_to_have_attribute("data-status", "streaming")
    answered = page.locator(
        f'{assistant}[data-status="complete"]:not([data-message-id="{second}"])'
    )
    await expect(answered).to_have_count(1, timeout=90_000)
    await step(page, "the newer message is answered")
