"""PRODUCT.md's scenario, end to end in a real browser, against ``threadline demo``.

Four isolated browser contexts: the customer's first and second device, a
human agent, a supervisor. Every step waits on what the page shows (the
pages' ``data-testid`` contract), then saves a screenshot to
``artifacts/browser/<test>/``.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from typing import Any

import httpx
import pytest
from playwright.async_api import BrowserContext, Locator, Page, WebSocket, expect

from tests.browser.conftest import Artifacts, Demo, People, Step
from tests.utils import MS

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

ANSWER_TIMEOUT = 90_000 * MS
"""How long a streamed answer of the demo AI may take to complete."""

QUESTION = "Hi, where is my order #1234? Only part of it arrived."
REFUND = "The stuck item is taking too long. Please refund me $250 for it."
AGENT_REPLY = "Hi Dana, this is Alex. I have approved your $250 refund."
WHISPER = "Refund approved under policy 7b, go ahead."
FOLLOW_UP = "Thanks! And when will the two shipped items arrive?"
SESSION_ID = re.compile(r"^(?!new$)[A-Za-z0-9._:-]{1,128}$")
"""A session id, once the first message created it (``new`` until then)."""

SUPERVISOR = "Soraya"
"""A name found nowhere else on the pages: the customer must never see it."""

LEAK_WATCH = """
(forbidden) => {
  const seen = new Set();
  window.__threadlineLeaks = seen;
  const staffOnly = [
    '[data-testid="note"]',
    '[data-testid="tool-call"]',
    '[data-testid="participant"][data-role="supervisor"]',
  ].join(", ");
  const look = () => {
    for (const element of document.querySelectorAll(staffOnly)) {
      seen.add(element.outerHTML.slice(0, 300));
    }
    const text = document.body?.textContent ?? "";
    for (const words of forbidden) if (text.includes(words)) seen.add(words);
  };
  new MutationObserver(look).observe(document, {
    subtree: true, childList: true, characterData: true, attributes: true,
  });
}
"""
"""Run on each customer page before its own scripts: records anything a
customer must never be shown (a staff note or tool call, the supervisor, the
whisper), even for an instant."""


TEXT_LONGER_THAN = """
([id, length]) => {
  const text = document.querySelector(
    `[data-testid="message"][data-message-id="${id}"] [data-testid="message-text"]`
  );
  return text !== null && text.textContent.length > length;
}
"""


def messages(root: Page | Locator, role: str | None = None) -> Locator:
    """The ``[data-testid=message]`` elements under ``root``, of one role."""
    selector = '[data-testid="message"]'
    if role is not None:
        selector += f'[data-role="{role}"]'
    return root.locator(selector)


def message(root: Page | Locator, message_id: str) -> Locator:
    return root.locator(f'[data-testid="message"][data-message-id="{message_id}"]')


async def text_of(locator: Locator) -> str:
    text = await locator.get_by_test_id("message-text").text_content()
    return text or ""


async def sign_in(page: Page, name: str) -> None:
    """Sign in on the page (a fresh context asks for a name)."""
    await expect(page.get_by_test_id("demo-banner")).to_be_visible()
    await page.get_by_test_id("signin-name").fill(name)
    await page.get_by_test_id("signin-submit").click()
    await expect(page.get_by_test_id("signin-name")).to_be_hidden()


async def live(page: Page) -> None:
    """Wait until the page's connection is live."""
    await expect(page.get_by_test_id("connection")).to_have_attribute(
        "data-state", "live"
    )


async def send(root: Page | Locator, text: str) -> None:
    """Type ``text`` into the composer under ``root`` and send it."""
    await root.get_by_test_id("composer-input").fill(text)
    await root.get_by_test_id("composer-send").click()


def record_frames(context: BrowserContext) -> list[str]:
    """Every WebSocket frame the context's pages receive, as text."""
    frames: list[str] = []

    def on_socket(socket: WebSocket) -> None:
        socket.on(
            "framereceived",
            lambda payload: frames.append(
                payload
                if isinstance(payload, str)
                else payload.decode("utf-8", "replace")
            ),
        )

    context.on("page", lambda page: page.on("websocket", on_socket))
    return frames


async def nothing_staff_shown(page: Page) -> None:
    """The customer page shows no note and no supervisor, and never has
    (:data:`LEAK_WATCH`); :func:`record_frames` checks the wire."""
    await expect(page.get_by_test_id("note")).to_have_count(0)
    await expect(
        page.locator('[data-testid="participant"][data-role="supervisor"]')
    ).to_have_count(0)
    leaks = await page.evaluate("() => [...(window.__threadlineLeaks ?? [])]")
    assert leaks == [], f"the customer page showed staff-only content: {leaks}"


async def test_scenario_survives_tab_close_escalation_and_handback(
    demo: Demo, people: People, step: Step, artifacts: Artifacts
) -> None:
    """A customer's conversation survives a tab close and a device switch, is
    escalated warm to a human agent whom a supervisor coaches unseen, returns
    to the AI with its context, and exports a verified audit trail."""
    url = demo.url
    watch = f"({LEAK_WATCH})({json.dumps([SUPERVISOR, WHISPER])});"
    customer_wire: list[list[str]] = []
    for context in (people.customer_device_1, people.customer_device_2):
        await context.add_init_script(script=watch)
        customer_wire.append(record_frames(context))

    # Customer, device 1: signs in, asks about the order; the answer streams.
    dana1 = await people.customer_device_1.new_page()
    await dana1.goto(f"{url}/demo")
    await sign_in(dana1, "Dana")
    await step(dana1, "customer device 1 signs in")
    await send(dana1, QUESTION)
    await expect(messages(dana1, "user").last).to_contain_text("#1234")
    session_id = dana1.get_by_test_id("session-id")
    await expect(session_id).to_have_text(SESSION_ID)
    session = (await session_id.text_content() or "").strip()
    await live(dana1)
    streaming = dana1.locator(
        '[data-testid="message"][data-role="assistant"][data-status="streaming"]'
    )
    await expect(streaming).to_have_count(1)
    message_id = await streaming.get_attribute("data-message-id")
    assert message_id, "the streaming answer has no data-message-id"
    ai_author = await streaming.get_attribute("data-author")
    await dana1.wait_for_function(TEXT_LONGER_THAN, arg=[message_id, 20])
    await expect(dana1.get_by_test_id("stop")).to_be_visible()
    await nothing_staff_shown(dana1)
    await step(dana1, "the AI answer streams on device 1", show=streaming)

    # Mid-answer, the customer closes the tab.
    answer1 = message(dana1, message_id)
    seen = await text_of(answer1)
    assert await answer1.get_attribute("data-status") == "streaming", (
        "the answer completed before the tab closed: slow the demo AI "
        "(THREADLINE_BROWSER_AI_PACE)"
    )
    await dana1.close()

    # Device 2, same identity: the conversation is there, the answer goes on.
    dana2 = await people.customer_device_2.new_page()
    await dana2.goto(f"{url}/demo")
    await sign_in(dana2, "Dana")
    await expect(dana2.get_by_test_id("session-id")).to_have_text(session)
    await live(dana2)
    await expect(messages(dana2, "user").first).to_contain_text("#1234")
    answer2 = message(dana2, message_id)
    await expect(answer2).to_be_visible()
    assert await answer2.get_attribute("data-status") == "streaming", (
        "the answer completed before device 2 joined: slow the demo AI "
        "(THREADLINE_BROWSER_AI_PACE)"
    )
    shown = len(await text_of(answer2))
    await step(
        dana2, "device 2 finds the session and the answer in flight", show=answer2
    )
    await dana2.wait_for_function(TEXT_LONGER_THAN, arg=[message_id, shown])
    await expect(answer2).to_have_attribute(
        "data-status", "complete", timeout=ANSWER_TIMEOUT * 1000
    )
    await expect(dana2.get_by_test_id("stop")).to_be_hidden()
    final = await text_of(answer2)
    assert seen.strip() in final, (seen, final)
    await nothing_staff_shown(dana2)
    await step(dana2, "the answer completes on device 2", show=answer2)

    # A refund over the AI's limit: it escalates warm.
    await send(dana2, REFUND)
    await expect(messages(dana2, "user").last).to_contain_text("$250")
    said = dana2.locator('[data-testid="message"]:not([data-role="user"])').last
    await expect(said.get_by_test_id("message-text")).to_contain_text(
        re.compile(r"\b(colleague|human)\b", re.I), timeout=ANSWER_TIMEOUT * 1000
    )
    await expect(said).to_have_attribute(
        "data-status", "complete", timeout=ANSWER_TIMEOUT * 1000
    )
    await nothing_staff_shown(dana2)
    await step(
        dana2, "the AI escalates and tells the customer a human will join", show=said
    )

    # Agent console: the session waits in the queue, with its full history.
    alex = await people.agent.new_page()
    await alex.goto(f"{url}/demo/agent")
    await sign_in(alex, "Alex")
    await live(alex)
    item = alex.locator(f'[data-testid="queue-item"][data-session="{session}"]')
    await expect(item).to_be_visible()
    await step(alex, "the session waits in the agent queue")
    await item.click()
    view = alex.locator(f'[data-testid="session-view"][data-session="{session}"]')
    await expect(view).to_be_visible()
    await expect(messages(view, "user").first).to_contain_text("#1234")
    await expect(messages(view, "user").filter(has_text="$250")).to_have_count(1)
    await expect(message(view, message_id)).to_have_attribute("data-status", "complete")
    await expect(view.get_by_test_id("note-text").first).to_have_text(re.compile(r"\S"))
    controller = view.get_by_test_id("controller")
    await expect(controller).to_have_attribute("data-role", "ai")
    await step(
        alex,
        "the agent opens the session: history and the AI's note",
        show=view.get_by_test_id("note").first,
    )

    await view.get_by_test_id("take-over").click()
    await expect(controller).to_have_attribute("data-role", "agent")
    await step(alex, "the agent takes over")
    await send(view, AGENT_REPLY)
    await expect(messages(view, "assistant").last).to_contain_text(AGENT_REPLY)
    await step(alex, "the agent replies", show=messages(view, "assistant").last)

    # The customer sees the human, and the AI no longer speaks.
    await expect(
        messages(dana2, "assistant").filter(has_text=AGENT_REPLY)
    ).to_have_count(1)
    last = messages(dana2, "assistant").last
    await expect(last).to_contain_text(AGENT_REPLY)
    agent_author = await last.get_attribute("data-author")
    assert agent_author != ai_author, (agent_author, ai_author)
    await expect(
        dana2.locator('[data-testid="participant"][data-role="agent"]')
    ).to_have_attribute("data-present", "true")
    await nothing_staff_shown(dana2)
    await step(
        dana2,
        "the customer sees the agent's reply and a human participant",
        show=last,
    )

    # Supervisor: watches live, whispers to the agent.
    sam = await people.supervisor.new_page()
    await sam.goto(f"{url}/demo/supervisor")
    await sign_in(sam, SUPERVISOR)
    await live(sam)
    session_item = sam.locator(
        f'[data-testid="session-item"][data-session="{session}"]'
    )
    await expect(session_item).to_be_visible()
    await session_item.click()
    watched = sam.locator(f'[data-testid="session-view"][data-session="{session}"]')
    await expect(watched).to_be_visible()
    await expect(
        messages(watched, "assistant").filter(has_text=AGENT_REPLY)
    ).to_have_count(1)
    await step(sam, "the supervisor watches the session live")
    await sam.get_by_test_id("whisper-input").fill(WHISPER)
    await sam.get_by_test_id("whisper-send").click()
    await expect(watched.get_by_test_id("note").filter(has_text=WHISPER)).to_have_count(
        1
    )
    await step(
        sam,
        "the supervisor whispers",
        show=watched.get_by_test_id("note").filter(has_text=WHISPER),
    )
    await expect(view.get_by_test_id("note").filter(has_text=WHISPER)).to_have_count(1)
    await step(
        alex,
        "the agent sees the whisper",
        show=view.get_by_test_id("note").filter(has_text=WHISPER),
    )
    await expect(dana2.get_by_text(WHISPER)).to_have_count(0)
    await expect(messages(dana2, "assistant").last).to_contain_text(AGENT_REPLY)
    await nothing_staff_shown(dana2)
    await step(
        dana2,
        "the customer sees no whisper and no supervisor",
        show=messages(dana2).last,
    )

    # The agent hands back; the AI answers the follow-up with full context.
    await view.get_by_test_id("hand-back").click()
    await expect(controller).to_have_attribute("data-role", "ai")
    await step(alex, "the agent hands back to the AI")
    await send(dana2, FOLLOW_UP)
    await expect(messages(dana2, "user").last).to_contain_text(FOLLOW_UP)
    answer = messages(dana2).last
    await expect(answer).to_have_attribute("data-role", "assistant")
    await expect(answer).to_have_attribute("data-author", ai_author or "")
    await expect(answer).to_have_attribute(
        "data-status", "complete", timeout=ANSWER_TIMEOUT * 1000
    )
    # It knows the order, and what the human did while it was away.
    await expect(answer.get_by_test_id("message-text")).to_contain_text("#1234")
    await expect(answer.get_by_test_id("message-text")).to_contain_text("Alex")
    await nothing_staff_shown(dana2)
    await step(dana2, "the AI answers the follow-up with full context", show=answer)

    # A reload keeps the identity and the whole conversation.
    answer_id = await answer.get_attribute("data-message-id")
    shown_before = await messages(dana2).count()
    await dana2.reload()
    await expect(dana2.get_by_test_id("session-id")).to_have_text(session)
    await expect(message(dana2, answer_id or "")).to_have_attribute(
        "data-status", "complete"
    )
    await expect(messages(dana2)).to_have_count(shown_before)
    await expect(
        message(dana2, message_id).get_by_test_id("message-text")
    ).to_have_text(final)
    await expect(dana2.get_by_test_id("signin-name")).to_be_hidden()
    await nothing_staff_shown(dana2)
    await step(dana2, "a reload keeps the conversation", show=messages(dana2).last)

    # Nor did anything staff-only reach the customer's browser on the wire.
    frames = [frame for page_frames in customer_wire for frame in page_frames]
    assert any(AGENT_REPLY in frame for frame in frames), "no frames recorded"
    staff = re.compile(r'"visibility"\s*:\s*"staff"')
    for secret in (
        re.compile(re.escape(SUPERVISOR)),
        re.compile(re.escape(WHISPER)),
        staff,
    ):
        leaked = [frame for frame in frames if secret.search(frame)]
        assert leaked == [], f"the customer's browser received {secret!r}: {leaked}"
    assert any(re.search(r'"visibility"\s*:\s*"all"', frame) for frame in frames)

    await check_audit_export(url, session, message_id, artifacts)
    assert people.errors == [], people.errors


async def check_audit_export(
    url: str, session: str, in_flight: str, artifacts: Artifacts
) -> None:
    """The session's audit export verifies with ``threadline audit verify`` and
    records every transition under a verified identity; ``in_flight`` (the
    answer streaming when the tab closed) is one message, ended complete."""
    async with httpx.AsyncClient(base_url=url, timeout=10_000 * MS) as http:

        async def sign_in_as(role: str, name: str) -> dict[str, Any]:
            answer = await http.post(
                "/demo/api/sign-in", json={"role": role, "name": name}
            )
            assert answer.status_code == 200, answer.text
            identity: dict[str, Any] = answer.json()
            return identity

        supervisor = await sign_in_as("supervisor", SUPERVISOR)
        agent_sub = (await sign_in_as("agent", "Alex"))["sub"]
        customer_sub = (await sign_in_as("customer", "Dana"))["sub"]
        ai_sub = supervisor["ai"]["id"]
        exported = await http.get(
            f"/v1/sessions/{session}/audit",
            headers={"Authorization": f"Bearer {supervisor['token']}"},
        )
        assert exported.status_code == 200, exported.text
        key = await http.get("/v1/audit/key")
        assert key.status_code == 200, key.text
    export_path = artifacts.folder / "audit.jsonl"
    key_path = artifacts.folder / "audit-key.json"
    export_path.write_bytes(exported.content)
    key_path.write_bytes(key.content)

    # The chain and the signed head verify, offline, with the published key.
    verified = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "threadline", "audit", "verify"]
        + [str(export_path), "--key", str(key_path)],
        capture_output=True,
        text=True,
        timeout=60_000 * MS,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert verified.stdout.startswith(f"ok: session {session} "), verified.stdout
    assert "signature not checked" not in verified.stderr, verified.stderr

    events = [json.loads(line) for line in exported.text.splitlines()[1:] if line]

    def of_type(kind: str) -> list[dict[str, Any]]:
        return [event for event in events if event["type"] == kind]

    # Every transition, each by the identity its token verified.
    [request] = of_type("control.request")
    [accept] = of_type("control.accept")
    [release] = of_type("control.release")
    assert request["actor"]["id"] == ai_sub, request
    assert request["actor"]["role"] == "ai", request
    assert request["data"]["mode"] == "warm", request
    assert accept["actor"]["id"] == agent_sub, accept
    assert accept["actor"]["role"] == "agent", accept
    assert accept["data"]["request_id"] == request["data"]["request_id"], accept
    assert release["actor"]["id"] == agent_sub, release
    assert release["data"].get("to") == ai_sub, release
    assert request["offset"] < accept["offset"] < release["offset"]
    spoke = [
        event
        for event in events
        if event["actor"]["id"] == ai_sub
        and event["type"].startswith("message")
        and accept["offset"] < event["offset"] < release["offset"]
    ]
    assert spoke == [], "the AI published while the agent held the floor"

    # The answer in flight when the tab closed: started once, ended complete.
    answer = [e for e in events if e["data"].get("message_id") == in_flight]
    kinds = [e["type"] for e in answer]
    assert kinds.count("message.start") == 1, kinds
    assert kinds.count("message.delta") > 1, kinds
    [end] = [e for e in answer if e["type"] == "message.end"]
    assert end["data"]["status"] == "complete", end
    assert {e["actor"]["id"] for e in answer} == {ai_sub}, answer

    # The AI's hand-over note and the supervisor's whisper: staff only.
    notes = of_type("note")
    assert all(note["visibility"] == "staff" for note in notes), notes
    assert any(note["actor"]["id"] == ai_sub for note in notes), notes
    [whisper] = [n for n in notes if n["actor"]["role"] == "supervisor"]
    assert WHISPER in json.dumps(whisper["data"]), whisper

    # The customer wrote from two devices under one verified identity; the
    # agent's reply is the agent's.
    written = [e for e in events if e["type"] in ("message", "message.start")]
    customer = [e["actor"] for e in written if e["actor"]["role"] == "customer"]
    assert {actor["id"] for actor in customer} == {customer_sub}, customer
    assert len({actor["device"] for actor in customer}) == 2, customer
    assert any(
        e["actor"]["id"] == agent_sub and AGENT_REPLY in json.dumps(e["data"])
        for e in events
        if e["type"].startswith("message")
    ), "the agent's reply is not in the export under the agent's identity"
