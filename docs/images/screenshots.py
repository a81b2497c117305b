"""Take the README's screenshots of the web demo.

Run a fresh demo, then this script (Playwright for Python drives Debian's
Chromium, /usr/bin/chromium; no browser download):

    .venv/bin/threadline demo --store memory:// --ai-pace 0.01 &
    .venv/bin/python docs/images/screenshots.py http://127.0.0.1:4437

It plays the scenario (a customer, a supervisor, an agent) and writes
``demo-customer.png`` and ``demo-agent.png`` beside itself.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from playwright.async_api import Page, async_playwright

HERE = Path(__file__).parent
DONE = '[data-testid=message][data-role=assistant][data-status=complete]'


async def sign_in(page: Page, url: str, name: str) -> None:
    await page.goto(url)
    await page.fill("[data-testid=signin-name]", name)
    await page.click("[data-testid=signin-submit]")
    await page.wait_for_selector("[data-testid=connection][data-state=live]")


async def say(page: Page, text: str, answers: int) -> None:
    await page.fill("[data-testid=composer-input]", text)
    await page.click("[data-testid=composer-send]")
    await page.wait_for_function(
        f"document.querySelectorAll('{DONE}').length >= {answers}", timeout=60_000
    )


async def main(url: str) -> None:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path="/usr/bin/chromium")

        async def page(width: int, height: int) -> Page:
            context = await browser.new_context(
                viewport={"width": width, "height": height}, device_scale_factor=1
            )
            return await context.new_page()

        customer = await page(1280, 820)
        await sign_in(customer, f"{url}/demo", "Dana Whitfield")
        await say(customer, "Hi! Where is my order #1234? Only part of it arrived.", 1)
        await say(customer, "Can I get a refund for the jacket?", 2)

        supervisor = await page(1440, 900)
        await sign_in(supervisor, f"{url}/demo/supervisor", "Morgan Lee")
        await supervisor.click("[data-testid=session-item]")
        await supervisor.wait_for_selector("[data-testid=note]")
        await supervisor.fill(
            "[data-testid=whisper-input]",
            "Approve the full refund: she's a loyal customer (12 orders this year).",
        )
        await supervisor.click("[data-testid=whisper-send]")

        agent = await page(1440, 900)
        await sign_in(agent, f"{url}/demo/agent", "Sam Rivera")
        await agent.click("[data-testid=queue-item]")
        await agent.wait_for_function(
            "document.querySelectorAll('[data-testid=note]').length >= 2"
        )
        await agent.wait_for_timeout(500)
        await agent.screenshot(path=HERE / "demo-agent.png")

        await agent.click("[data-testid=take-over]")
        await agent.wait_for_selector("[data-testid=controller][data-role=agent]")
        await agent.fill(
            "[data-testid=composer-input]",
            "Hi Dana, I'm Sam from the support team. I've approved the refund of "
            "$189.00 for the jacket: you'll see it within 3–5 business days.",
        )
        await agent.click("[data-testid=composer-send]")
        await customer.wait_for_selector(".msg--human")
        await customer.wait_for_timeout(500)
        await customer.screenshot(path=HERE / "demo-customer.png")
        await browser.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:4437"))
