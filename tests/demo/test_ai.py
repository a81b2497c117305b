"""The demo AI: what it decides to say (pure), and which agent runs."""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass, field
from typing import Any

import pytest

from threadline.agent import HistoryMessage
from threadline.demo.ai import (
    Escalate,
    OrderAgent,
    Say,
    UseTool,
    choose_agent,
    plan_reply,
    tokenize,
)
from threadline.demo.llm import LLMAgent, LLMSettings
from threadline.demo.orders import REFUND_LIMIT, find_order
from threadline.protocol.actors import Actor
from threadline.protocol.offsets import Offset

DANA = Actor("cust-dana", "customer", "Dana Whitfield")
ADA = Actor("demo-ai", "ai", "Ada")
SAM = Actor("agent-sam", "agent", "Sam Rivera")
ENV = {
    "THREADLINE_LLM_BASE_URL": "http://127.0.0.1:9/v1",
    "THREADLINE_LLM_API_KEY": "sk-test",
    "THREADLINE_LLM_MODEL": "tiny-model",
}


class Conversation:
    """A history being written: each message gets the next offset."""

    def __init__(self) -> None:
        self.messages: list[HistoryMessage] = []

    def add(self, actor: Actor, text: str) -> HistoryMessage:
        role = "user" if actor.role == "customer" else "assistant"
        message = HistoryMessage(
            f"m{len(self.messages)}",
            role,
            actor,
            [{"type": "text", "text": text}],
            Offset(0, len(self.messages) + 1),
        )
        self.messages.append(message)
        return message

    def plan(self, text: str, **options: Any) -> list[Any]:
        message = self.add(DANA, text)
        return plan_reply(self.messages, message, **options)

    def answer(self, steps: list[Any]) -> str:
        text = "\n\n".join(step.text for step in steps if isinstance(step, Say))
        self.add(ADA, text)
        return text


def tools(steps: list[Any]) -> list[str]:
    return [step.name for step in steps if isinstance(step, UseTool)]


def test_plan_first_message_looks_up_the_order():
    """The first message gets the order story: a lookup, the split, a proposal."""
    chat = Conversation()
    steps = chat.plan("Hi! Where is my order #5821?")
    assert tools(steps) == ["lookup_order", "propose_resolution"]
    lookup = next(s for s in steps if isinstance(s, UseTool))
    assert lookup.input == {"order": "#5821"}
    assert lookup.output["warehouse_hold"]["item"] == "Stormline waterproof jacket"
    text = chat.answer(steps)
    assert "Thanks, Dana!" in text
    assert "#5821" in text
    assert "delivered" in text and "stuck" in text
    assert "reship" in text and "refund" in text
    assert not any(isinstance(s, Escalate) for s in steps)


def test_plan_any_first_message_uses_the_default_order():
    """Without an order number, the customer's (demo) order #1234 is looked up."""
    steps = Conversation().plan("hello")
    assert "#1234" in Conversation().answer(steps)


def test_plan_refund_over_the_limit_escalates():
    """A refund above the limit: a policy check, then a warm hand-over with a
    summary."""
    chat = Conversation()
    chat.answer(chat.plan("Where is my order #1234?"))
    steps = chat.plan("Can I get a refund for the jacket?")
    assert tools(steps) == ["check_refund_policy"]
    [escalate] = [s for s in steps if isinstance(s, Escalate)]
    assert escalate.reason == "refund_over_limit"
    assert "$189.00" in escalate.summary and "Dana Whitfield" in escalate.summary
    text = chat.answer(steps)
    assert "above the $100.00" in text
    assert "colleague" in text


def test_plan_refund_names_an_amount():
    """An amount in the message is the refund asked for."""
    chat = Conversation()
    chat.answer(chat.plan("Where is my order #1234?"))
    steps = chat.plan("I'd like $250 back, a refund please")
    [escalate] = [s for s in steps if isinstance(s, Escalate)]
    assert "$250.00" in escalate.summary


def test_plan_small_refund_is_granted():
    """A refund within the limit is issued by the AI itself."""
    chat = Conversation()
    chat.answer(chat.plan("Where is my order #1234?"))
    steps = chat.plan("Just refund $40 for the trouble")
    assert tools(steps) == ["issue_refund"]
    assert not any(isinstance(s, Escalate) for s in steps)
    assert "$40.00" in chat.answer(steps)


def test_plan_refund_limit_is_configurable():
    """With a higher limit the jacket is refunded without a human."""
    chat = Conversation()
    chat.answer(chat.plan("Where is my order #1234?"))
    steps = chat.plan("refund please", refund_limit=500_00)
    assert tools(steps) == ["issue_refund"]


def test_plan_reship():
    """Asking for a reship creates one."""
    chat = Conversation()
    chat.answer(chat.plan("Where is my order #1234?"))
    steps = chat.plan("Please reship it")
    assert tools(steps) == ["create_reshipment"]
    assert "tracking" in chat.answer(steps)


def test_plan_talk_to_a_human_escalates():
    """ "Talk to a human" is a warm hand-over for the customer's sake."""
    chat = Conversation()
    chat.answer(chat.plan("Where is my order #1234?"))
    steps = chat.plan("Can I talk to a human please?")
    [escalate] = [s for s in steps if isinstance(s, Escalate)]
    assert escalate.reason == "customer_request"


def test_plan_while_escalation_pending_says_a_colleague_is_coming():
    """Once a hand-over is pending, the AI does not escalate again."""
    chat = Conversation()
    chat.answer(chat.plan("Where is my order #1234?"))
    steps = chat.plan("hello? refund?", escalation_pending=True)
    assert steps == [Say(steps[0].text)]
    assert "colleague" in steps[0].text


def test_plan_after_handback_continues_with_context():
    """After a human answered, the AI picks up knowing what they did."""
    chat = Conversation()
    chat.answer(chat.plan("Where is my order #1234?"))
    chat.answer(chat.plan("refund the jacket please"))
    chat.add(SAM, "I've approved the refund of $189.00 for the jacket.")
    steps = chat.plan("Thank you!")
    text = chat.answer(steps)
    assert "Sam has approved the refund for the Stormline waterproof jacket" in text
    assert not tools(steps)


def test_plan_thanks():
    """Thanks after the story is answered politely."""
    chat = Conversation()
    chat.answer(chat.plan("Where is my order #1234?"))
    assert "welcome" in chat.answer(chat.plan("thanks!"))


def test_order_story_is_partly_shipped_partly_stuck():
    """Two items delivered, one stuck, and it costs more than the AI's limit."""
    order = find_order("1234")
    assert len(order.delivered) == 2
    assert order.stuck.price > REFUND_LIMIT


def test_tokenize_keeps_every_character():
    """Tokens are words with their leading space; joined, they are the text."""
    text = "Here's what I found:\n\n• two  items."
    tokens = tokenize(text)
    assert "".join(tokens) == text
    assert len(tokens) > 5


def test_order_agent_refuses_a_negative_pace():
    with pytest.raises(ValueError):
        OrderAgent(pace=-1)


# Which agent runs


def test_llm_settings_none_without_env():
    """No THREADLINE_LLM_* variable: the deterministic agent."""
    assert LLMSettings.from_env({}) is None
    assert isinstance(choose_agent(environ={}, pace=0.01), OrderAgent)


def test_llm_settings_need_all_three():
    """Some variables but not all: a clear error naming the missing ones."""
    with pytest.raises(ValueError, match="THREADLINE_LLM_MODEL"):
        LLMSettings.from_env({k: v for k, v in ENV.items() if "MODEL" not in k})


def test_llm_settings_hide_the_key():
    settings = LLMSettings.from_env(ENV)
    assert settings is not None
    assert settings.model == "tiny-model"
    assert "sk-test" not in repr(settings)


def test_choose_agent_without_openai_installed(monkeypatch):
    """The three variables without the openai package: a helpful error."""
    monkeypatch.setitem(sys.modules, "openai", None)
    with pytest.raises(RuntimeError, match=r"threadline\[demo\]"):
        choose_agent(environ=ENV)


def test_choose_agent_with_env_uses_the_openai_client(monkeypatch):
    """With the variables, the agent is the model through openai.AsyncOpenAI."""
    made: list[dict[str, Any]] = []

    class AsyncOpenAI:
        def __init__(self, **kwargs: Any) -> None:
            made.append(kwargs)

    monkeypatch.setitem(
        sys.modules, "openai", types.SimpleNamespace(AsyncOpenAI=AsyncOpenAI)
    )
    agent = choose_agent(environ=ENV)
    assert isinstance(agent, LLMAgent)
    assert agent.model == "tiny-model"
    assert made == [{"base_url": "http://127.0.0.1:9/v1", "api_key": "sk-test"}]


# The model's tool loop, against a fake client


def chunk(content: str | None = None, calls: list[Any] | None = None) -> Any:
    delta = types.SimpleNamespace(content=content, tool_calls=calls)
    return types.SimpleNamespace(choices=[types.SimpleNamespace(delta=delta)])


def call(index: int, name: str | None, arguments: str, id: str | None = None) -> Any:
    function = types.SimpleNamespace(name=name, arguments=arguments)
    return types.SimpleNamespace(index=index, id=id, function=function)


class FakeCompletions:
    def __init__(self, rounds: list[list[Any]]) -> None:
        self.rounds = rounds
        self.requests: list[dict[str, Any]] = []

    async def create(self, **request: Any) -> Any:
        self.requests.append({**request, "messages": list(request["messages"])})
        chunks = self.rounds[len(self.requests) - 1]

        async def stream() -> Any:
            for item in chunks:
                yield item

        return stream()


@dataclass
class FakeSession:
    published: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    async def publish(self, kind: str, data: dict[str, Any]) -> str:
        self.published.append((kind, data))
        return "0"


class FakeContext:
    def __init__(self, history: list[HistoryMessage]) -> None:
        self.session = FakeSession()
        self.run_id = "run-1"
        self.history = history
        self.escalations: list[tuple[str, str | None]] = []

    async def escalate(self, summary: str, *, reason: str | None = None) -> str:
        self.escalations.append((summary, reason))
        return "req-1"


async def test_llm_agent_streams_text_and_runs_tools():
    """Text deltas stream as they come; tool calls run, are published as staff
    tool events, and their results go back to the model."""
    completions = FakeCompletions(
        [
            [
                chunk("Let me check. "),
                chunk(calls=[call(0, "lookup_order", '{"order": ', id="c1")]),
                chunk(calls=[call(0, None, '"#1234"}')]),
            ],
            [
                chunk(
                    calls=[
                        call(
                            0,
                            "escalate_to_human",
                            '{"summary": "refund $189", "reason": "refund_over_limit"}',
                            id="c2",
                        )
                    ]
                ),
            ],
            [chunk("A colleague "), chunk("will join.")],
        ]
    )
    client = types.SimpleNamespace(chat=types.SimpleNamespace(completions=completions))
    agent = LLMAgent(client, "tiny-model")
    chat = Conversation()
    chat.add(DANA, "Where is order #1234? Refund please.")
    context = FakeContext(chat.messages)
    out = [piece async for piece in agent(context)]  # type: ignore[arg-type]
    assert "".join(map(str, out)) == "Let me check. \n\nA colleague will join."
    assert [kind for kind, _ in context.session.published] == [
        "tool.call",
        "tool.result",
        "tool.call",
        "tool.result",
    ]
    lookup = context.session.published[1][1]
    assert lookup["output"]["order"] == "#1234"
    assert lookup["run_id"] == "run-1"
    assert context.escalations == [("refund $189", "refund_over_limit")]
    second = completions.requests[1]["messages"]
    assert second[0]["role"] == "system"
    assert second[-2]["tool_calls"][0]["function"]["name"] == "lookup_order"
    assert second[-1]["role"] == "tool" and second[-1]["tool_call_id"] == "c1"
    assert all(
        r["stream"] is True and r["model"] == "tiny-model" for r in completions.requests
    )


def test_llm_agent_marks_human_agents_in_the_history():
    """A human agent's message reaches the model as theirs, not the AI's."""
    chat = Conversation()
    chat.add(DANA, "refund?")
    chat.add(SAM, "Approved.")
    agent = LLMAgent(object(), "m")
    messages = agent.messages(FakeContext(chat.messages))  # type: ignore[arg-type]
    assert messages[1] == {"role": "user", "content": "refund?"}
    assert messages[2] == {
        "role": "assistant",
        "content": "[Sam Rivera, human agent] Approved.",
    }


def test_plan_after_handback_answers_the_question_too():
    """A follow-up question after the handback is answered along with the
    welcome back (with the order number and the human's name)."""
    chat = Conversation()
    chat.answer(chat.plan("Where is my order #1234?"))
    chat.answer(chat.plan("Please refund me $250"))
    chat.add(SAM, "Hi Dana, this is Sam. I have approved your $250 refund.")
    text = chat.answer(chat.plan("Thanks! And when will the two shipped items arrive?"))
    assert "Sam has approved the refund" in text
    assert "#1234" in text and "already delivered" in text


@pytest.mark.parametrize(
    ("name", "arguments", "expected"),
    [
        ("issue_refund", '{"order": "#77", "amount": 40}', {"status": "refunded"}),
        ("issue_refund", '{"order": "#77", "amount": 250}', {"allowed": False}),
        ("issue_refund", '{"amount": "lots"}', {"status": "refunded"}),
        ("create_reshipment", '{"order": "#77"}', {"status": "created"}),
        ("lookup_order", "not json", {"order": "#1234"}),
        ("lookup_order", "[1]", {"order": "#1234"}),
        ("delete_everything", "{}", {"error": "unknown tool delete_everything"}),
    ],
)
async def test_llm_agent_tools(name, arguments, expected):
    """Each tool the model may call answers, with the limit enforced; bad
    arguments and unknown tools get an answer, not an exception."""
    agent = LLMAgent(object(), "m")
    context = FakeContext([])
    output = await agent._tool(context, name, arguments)  # type: ignore[arg-type]
    assert expected.items() <= output.items()
    assert [kind for kind, _ in context.session.published] == [
        "tool.call",
        "tool.result",
    ]


async def test_llm_agent_closes_its_client():
    closed = []

    class Client:
        async def close(self) -> None:
            closed.append(True)

    await LLMAgent(Client(), "m").aclose()
    assert closed == [True]
