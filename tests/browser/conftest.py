"""Fixtures for the browser tests: the demo app served in process, Debian's
Chromium driven by Playwright, one browser context per person, and a
screenshot per step.

Playwright never downloads a browser here: it launches ``/usr/bin/chromium``,
which ``scripts/chromium`` installs with apt-get (``scripts/test`` runs it).
Without it these tests skip, with the reason in the terminal summary; under
``CI=true`` they fail instead, as nothing may skip there.

Screenshots go to ``artifacts/browser/<test>/NN-step.png`` (gitignored), with
a ``failure-<person>.png`` of every open page and the pages' console when a
test fails.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import AsyncIterator, Awaitable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, Protocol

import pytest
import uvicorn
from playwright.async_api import (
    Browser,
    BrowserContext,
    Locator,
    Page,
    ViewportSize,
    async_playwright,
    expect,
)

from tests.server.harness import (
    bind_free_port,
    sqlite_url,
    start_in_thread,
    stop_thread,
    uvicorn_config,
)
from tests.utils import MS
from threadline.demo.app import DemoApp, DemoSettings

ROOT = Path(__file__).parents[2]
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "artifacts" / "browser"

TIMEOUT = 20_000 * MS
"""How long a step waits for what the page should show."""
START_TIMEOUT = 30_000 * MS
"""How long the demo may take to listen and start its AI."""
AI_PACE = float(os.environ.get("THREADLINE_BROWSER_AI_PACE", "0.1"))
"""Seconds per token of the demo AI: slow enough that an answer is still
streaming after one tab closes and the next signs in."""
VIEWPORT: ViewportSize = {"width": 1280, "height": 900}

_SKIPPED = pytest.StashKey[list[str]]()
_REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


def missing(config: pytest.Config, reason: str) -> NoReturn:
    """Skip with ``reason`` (noted for the terminal summary), or fail under
    ``CI=true``, where nothing may skip."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: the browser tests must run)")
    config.stash.setdefault(_SKIPPED, []).append(reason)
    pytest.skip(reason)


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    """Say plainly that the browser scenario did not run, and why."""
    skipped: list[str] = config.stash.get(_SKIPPED, [])
    reasons = sorted(set(skipped))
    if reasons:
        terminalreporter.section("browser tests skipped", yellow=True)
        for reason in reasons:
            terminalreporter.write_line(f"NOT RUN: {reason}", yellow=True, bold=True)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keep each phase's report, so teardown knows whether the test failed."""
    report = yield
    item.stash.setdefault(_REPORTS, {})[report.when] = report
    return report


def _failed(request: pytest.FixtureRequest) -> bool:
    reports = request.node.stash.get(_REPORTS, {})
    return any(report.failed for report in reports.values())


# The demo server


@dataclass
class Demo:
    """The demo (``threadline demo``'s app) served on a free port."""

    url: str
    app: DemoApp


class _DemoServer(uvicorn.Server):
    """uvicorn as ``threadline demo`` runs it: WebSockets drained first."""

    def __init__(self, config: uvicorn.Config, app: DemoApp) -> None:
        super().__init__(config)
        self.app = app

    async def shutdown(self, sockets: Any = None) -> None:
        self.app.drain()
        await self.app.websockets.wait_closed(2_000 * MS)
        await super().shutdown(sockets=sockets)


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    """The demo app (server, pages, sign-in, deterministic AI) on a SQLite
    file, served by uvicorn in a thread on a free port; the AI started."""
    sock, url = bind_free_port()
    settings = DemoSettings(
        url=url, store=sqlite_url(tmp_path / "demo.db"), pace=AI_PACE
    )
    app = DemoApp(settings)
    server = _DemoServer(uvicorn_config(app, graceful=2), app)
    # The server listens, and the AI's worker runs.
    thread = start_in_thread(
        server,
        sock,
        ready=lambda: app.ai is not None and app.ai.ready.is_set(),
        timeout=START_TIMEOUT,
        name="demo",
    )
    try:
        yield Demo(url, app)
    finally:
        stop_thread(server, thread)


# The browser


@pytest.fixture(autouse=True)
def chromium(request: pytest.FixtureRequest) -> Path:
    """Debian's Chromium, checked before anything starts: skip (fail under
    ``CI=true``) without it."""
    if not os.access(CHROMIUM, os.X_OK):
        missing(
            request.config,
            f"{CHROMIUM} is missing: run scripts/chromium as root (or "
            "apt-get install chromium) for the browser scenario",
        )
    return CHROMIUM


@pytest.fixture
async def browser(chromium: Path) -> AsyncIterator[Browser]:
    """Headless Debian Chromium, launched by Playwright (never downloaded)."""
    expect.set_options(timeout=TIMEOUT * 1000)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(chromium), headless=True
        )
        try:
            yield browser
        finally:
            await browser.close()


@dataclass
class Artifacts:
    """A test's artifacts folder, and its step counter."""

    folder: Path
    count: int = 0
    console: list[str] = field(default_factory=list)

    async def step(self, page: Page, name: str, show: Locator | None = None) -> Path:
        """Save a full-page screenshot of ``page`` as the next step, ``NN-name.png``.

        Args:
            show: Scrolled into view first (a message at the bottom of a
                scrolling list, say).
        """
        if show is not None:
            await show.scroll_into_view_if_needed()
        self.count += 1
        slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
        path = self.folder / f"{self.count:02d}-{slug}.png"
        await page.screenshot(path=path, full_page=True)
        return path


@pytest.fixture
def artifacts(request: pytest.FixtureRequest) -> Artifacts:
    """``artifacts/browser/<test>/``, emptied for this run."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name)
    folder = ARTIFACTS / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return Artifacts(folder)


class Step(Protocol):
    """``await step(page, "what the page shows", show=locator)``."""

    def __call__(
        self, page: Page, name: str, show: Locator | None = None
    ) -> Awaitable[Path]: ...


@pytest.fixture
def step(artifacts: Artifacts) -> Step:
    """``await step(page, "what the page shows")``: a screenshot per scenario step."""
    return artifacts.step


@dataclass
class People:
    """One isolated browser context per person (separate storage, cookies)."""

    customer_device_1: BrowserContext
    customer_device_2: BrowserContext
    agent: BrowserContext
    supervisor: BrowserContext
    errors: list[str] = field(default_factory=list)
    """Uncaught exceptions of every page, as ``person: message``."""

    def contexts(self) -> dict[str, BrowserContext]:
        return {
            "customer-device-1": self.customer_device_1,
            "customer-device-2": self.customer_device_2,
            "agent": self.agent,
            "supervisor": self.supervisor,
        }


@pytest.fixture
async def people(
    browser: Browser, artifacts: Artifacts, request: pytest.FixtureRequest
) -> AsyncIterator[People]:
    """Four isolated contexts: the customer's two devices, agent, supervisor.

    Every page's console and uncaught exceptions are recorded; when the test
    fails, each open page is screenshotted and the console saved beside the
    steps.
    """
    contexts: list[BrowserContext] = []
    for _ in range(4):
        context = await browser.new_context(viewport=VIEWPORT)
        context.set_default_timeout(TIMEOUT * 1000)
        contexts.append(context)
    result = People(contexts[0], contexts[1], contexts[2], contexts[3])
    for person, context in result.contexts().items():
        _record(person, context, result, artifacts)
    try:
        yield result
    finally:
        if _failed(request):
            for person, context in result.contexts().items():
                for number, page in enumerate(context.pages):
                    with contextlib.suppress(Exception):
                        await page.screenshot(
                            path=artifacts.folder / f"failure-{person}-{number}.png",
                            full_page=True,
                        )
        (artifacts.folder / "console.log").write_text(
            "".join(f"{line}\n" for line in artifacts.console)
        )
        for context in contexts:
            with contextlib.suppress(Exception):
                await context.close()


def _record(
    person: str, context: BrowserContext, people: People, artifacts: Artifacts
) -> None:
    def on_page(page: Page) -> None:
        page.on(
            "console",
            lambda message: artifacts.console.append(
                f"{person} [{message.type}] {message.text}"
            ),
        )
        page.on("pageerror", lambda error: on_error(error))

    def on_error(error: Exception) -> None:
        people.errors.append(f"{person}: {error}")
        artifacts.console.append(f"{person} [pageerror] {error}")

    context.on("page", on_page)
