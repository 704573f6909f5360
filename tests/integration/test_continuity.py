"""Continuity across real wire formats: a session moves claude -> openai -> claude with a tool
call in the middle, every request accepted by fake servers that check what the real APIs check;
any transcript (runs cut at any event) makes requests those checks accept; every continuation
mode on every provider (fake servers and fake CLIs that resume only ids they issued)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
from asm_amp import AmpProvider
from asm_claude.code import ClaudeCodeProvider
from asm_claude.messages import ClaudeProvider
from asm_claude.testing import FakeAnthropicServer, messages_request_problem, text_stream, tool_use_stream
from asm_codex import CodexProvider
from asm_gemini import GeminiProvider
from asm_gemini.testing import FakeGeminiServer
from asm_gemini.testing import text_stream as gemini_text
from asm_openai import OpenAIProvider
from asm_openai.testing import (
    FakeOpenAIServer,
    chat_request_problem,
    chat_text_stream,
    responses_request_problem,
    responses_text_stream,
)
from hypothesis import given, settings
from hypothesis import strategies as st

import asm
from asm import InMemorySessionStore, RunInput, RunStatus, SessionManager
from asm.continuity import PREAMBLE_HEADER, build_transcript
from asm.events import (
    ErrorRecovered,
)
from asm.providers import http as kit
from asm.testing.strategies import cut_session_logs

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples" / "fakes"))

import fake_cli
from fake_cli_fixtures import fake_bin, no_process_left

__all__ = ["fake_bin", "no_process_left"]


def get_weather(location: str) -> dict[str, Any]:
    """The current weather at a place."""
    return {"location": location, "temperature": 18}


@pytest.fixture
def servers(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[FakeAnthropicServer, FakeOpenAIServer]]:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    with FakeAnthropicServer() as claude, FakeOpenAIServer() as openai:
        yield claude, openai


async def new_session(manager: SessionManager) -> str:
    session = await manager.start_session(agent_id="a")
    await manager.activate_session(session.id)
    return session.id


async def turn(manager: SessionManager, sid: str, prompt: str, provider: Any, **kwargs: Any) -> asm.Run:
    run = await manager.start_run(sid, prompt)
    done = await manager.execute_run(run.id, provider=provider, **kwargs)
    assert done.status is RunStatus.COMPLETED, done.error
    return done


async def test_a_session_moves_claude_to_openai_and_back_with_a_tool_call_in_the_middle(
    servers: tuple[FakeAnthropicServer, FakeOpenAIServer],
) -> None:
    claude_server, openai_server = servers
    claude = ClaudeProvider(
        base_url=claude_server.url, tools=[get_weather], permission_mode="accept_all", sdk_opts={"max_retries": 0}
    )
    openai = OpenAIProvider(
        base_url=openai_server.base_url, tools=[get_weather], permission_mode="accept_all", sdk_opts={"max_retries": 0}
    )
    manager = SessionManager(InMemorySessionStore())
    sid = await new_session(manager)

    claude_server.queue(
        tool_use_stream([("toolu_01A", "get_weather", {"location": "Paris"})], text="Checking."),
        text_stream("It is 18 degrees in Paris."),
    )
    await turn(manager, sid, "Weather in Paris?", claude)

    openai_server.queue(responses_text_stream("Yes, mild."))
    await turn(manager, sid, "Is that mild?", openai)
    sent = openai_server.requests[-1].body["input"]
    assert "previous_response_id" not in openai_server.requests[-1].body  # another provider: replay
    assert [item.get("type") or item["role"] for item in sent] == [
        "user",
        "assistant",
        "function_call",
        "function_call_output",
        "assistant",
        "user",
    ]
    assert sent[2]["call_id"] == sent[3]["call_id"] == "toolu_01A"
    assert "Paris" in sent[3]["output"] and "18" in sent[3]["output"], sent[3]

    claude_server.queue(text_stream("Anything else?"))
    await turn(manager, sid, "Thanks!", claude)
    messages = claude_server.requests[-1].body["messages"]
    assert messages_request_problem(claude_server.requests[-1].body) is None
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant", "user", "assistant", "user"]
    tool_use = messages[1]["content"][1]
    assert tool_use == {"type": "tool_use", "id": "toolu_01A", "name": "get_weather", "input": {"location": "Paris"}}
    result = messages[2]["content"][0]
    assert result["type"] == "tool_result" and result["tool_use_id"] == "toolu_01A" and "Paris" in result["content"]
    assert [m["content"] for m in messages[3:]] == [
        "It is 18 degrees in Paris.",
        "Is that mild?",
        "Yes, mild.",
        "Thanks!",
    ]


# -- any transcript makes requests the real APIs accept -------------------------------------


def requests_for(history: tuple[Any, ...], *, tools: bool) -> dict[str, dict[str, Any]]:
    run = attrs.evolve(RunInput.coerce("and now?"), history=history)
    tool_map = {"get_weather": asm.tools.coerce_tools([get_weather])[0]} if tools else {}
    made: dict[str, dict[str, Any]] = {}
    claude = ClaudeProvider(api_key="k", model="m")
    ctx: Any = kit.RunContext(run, claude.options, tool_map, {})
    made["anthropic"] = claude.request(ctx, claude.conversation(ctx))
    for api in ("responses", "chat"):
        openai = OpenAIProvider(api_key="k", model="m", api=api)
        wire: Any = openai.wire(openai.options)
        ctx = kit.RunContext(run, openai.options, tool_map, {})
        made[api] = wire.request(ctx, wire.conversation(ctx))
    return made


@settings(max_examples=200, deadline=None)
@given(events=cut_session_logs(tool_name="get_weather", call_id="call:{}"), tools=st.booleans())
def test_any_runs_cut_at_any_event_make_requests_the_apis_accept(events: list[asm.Event], tools: bool) -> None:
    history = build_transcript("ses", events).entries
    made = requests_for(history, tools=tools)
    assert messages_request_problem(made["anthropic"]) is None, made["anthropic"]
    assert responses_request_problem(made["responses"]) is None, made["responses"]
    assert chat_request_problem(made["chat"]) is None, made["chat"]


def test_the_validators_refuse_what_the_apis_refuse() -> None:
    unpaired = {
        "tools": [{"name": "t"}],
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "t", "input": {}}]},
            {"role": "user", "content": "next"},
        ],
    }
    assert "`tool_use` ids were found without `tool_result` blocks" in str(messages_request_problem(unpaired))
    orphan = {"messages": [{"role": "tool", "tool_call_id": "c1", "content": "x"}]}
    assert "must be a response to a preceeding message" in str(chat_request_problem(orphan))
    dangling = {"input": [{"type": "function_call", "call_id": "c1", "name": "t", "arguments": "{}"}]}
    assert responses_request_problem(dangling) == "No tool output found for function call c1."
    assert "not found" in str(responses_request_problem({"input": [], "previous_response_id": "resp_x"}))


# -- every mode on every provider ------------------------------------------------------------


async def test_openai_responses_resumes_natively_and_replays_when_the_response_is_gone(
    servers: tuple[FakeAnthropicServer, FakeOpenAIServer],
) -> None:
    _, server = servers
    openai = OpenAIProvider(base_url=server.base_url, sdk_opts={"max_retries": 0})
    manager = SessionManager(InMemorySessionStore())
    sid = await new_session(manager)
    first = await turn(manager, sid, "one", openai)
    assert first.result is not None and first.result.resume_id == "resp_fake"
    await turn(manager, sid, "two", openai)
    body = server.requests[-1].body
    assert body["previous_response_id"] == "resp_fake" and body["input"] == [{"role": "user", "content": "two"}]

    server.issued.clear()  # the API no longer has it (stored responses expire)
    run = await turn(manager, sid, "three", openai)
    assert server.requests[-2].body.get("previous_response_id") == "resp_fake"  # refused with a 400
    replayed = server.requests[-1].body
    assert "previous_response_id" not in replayed and len(replayed["input"]) == 5
    page = await manager.store.read_events(sid, run_id=run.id, types=["error_recovered"])
    assert isinstance(page.events[0].data, ErrorRecovered) and page.events[0].data.error_code == "resume_not_found"


@pytest.mark.parametrize("mode", ["auto", "replay", "none"])
async def test_chat_and_messages_apis_replay_or_forget_as_the_mode_says(
    servers: tuple[FakeAnthropicServer, FakeOpenAIServer], mode: str
) -> None:
    claude_server, openai_server = servers
    providers = [
        ClaudeProvider(base_url=claude_server.url, sdk_opts={"max_retries": 0}),
        OpenAIProvider(base_url=openai_server.base_url, api="chat", sdk_opts={"max_retries": 0}),
    ]
    for provider in providers:
        manager = SessionManager(InMemorySessionStore())
        sid = await new_session(manager)
        openai_server.queue(chat_text_stream("first answer"), chat_text_stream("second answer"))
        claude_server.queue(text_stream("first answer"), text_stream("second answer"))
        await turn(manager, sid, "one", provider)
        await turn(manager, sid, "two", provider, continuation=mode)
        server: Any = claude_server if isinstance(provider, ClaudeProvider) else openai_server
        contents = [m["content"] for m in server.requests[-1].body["messages"]]
        expected = ["one", "first answer", "two"] if mode != "none" else ["two"]
        assert contents == expected, (provider.name, contents)
        run = await manager.start_run(sid, "three")
        refused = await manager.execute_run(run.id, provider=provider, continuation="native")
        assert refused.error is not None and refused.error.code == "validation_error"


async def test_gemini_replays_the_session() -> None:
    with FakeGeminiServer() as server:
        gemini = GeminiProvider(api_key="k", base_url=server.url)
        manager = SessionManager(InMemorySessionStore())
        sid = await new_session(manager)
        server.queue(gemini_text("first answer"), gemini_text("second answer"))
        await turn(manager, sid, "one", gemini)
        await turn(manager, sid, "two", gemini)
        contents = server.requests[-1].body["contents"]
        assert [(c["role"], c["parts"][0]["text"]) for c in contents] == [
            ("user", "one"),
            ("model", "first answer"),
            ("user", "two"),
        ]


CLIS = [
    (ClaudeCodeProvider, "claude", "claude_cli_stream.jsonl", "24df73ed-9323-4d26-b320-1a5028a814d3"),
    (CodexProvider, "codex", "codex_exec.jsonl", "01a213c6-1374-73b2-b3b2-0f078e1671ae"),
    (AmpProvider, "amp", "amp_stream.jsonl", "T-019b9d03-62e3-772f-9780-3e637f90eaec"),
]


def prompt_of(seen: dict[str, Any]) -> str:
    """The prompt a fake CLI was given: on stdin, else after amp's ``--execute``."""
    argv: list[str] = seen["argv"]
    return str(seen["stdin"] or argv[argv.index("--execute") + 1])


@pytest.mark.parametrize(("cls", "program", "stream", "issued"), CLIS)
async def test_cli_agents_resume_natively_replay_after_a_lost_id_and_in_the_prompt_otherwise(
    fake_bin: Path, cls: Any, program: str, stream: str, issued: str
) -> None:
    record = fake_bin / "record.json"
    fake_cli.install(fake_bin, program, stream=stream, record=record)
    provider = cls()
    manager = SessionManager(InMemorySessionStore())
    sid = await new_session(manager)
    first = await turn(manager, sid, "one", provider)
    assert first.result is not None and first.result.resume_id == issued

    await turn(manager, sid, "two", provider)  # auto: native
    seen = json.loads(record.read_text())
    assert issued in seen["argv"] and not seen["stdin"].startswith(PREAMBLE_HEADER)

    await turn(manager, sid, "three", provider, continuation="replay")
    seen = json.loads(record.read_text())
    assert issued not in seen["argv"]
    prompt = prompt_of(seen)
    assert prompt.startswith(PREAMBLE_HEADER) and "[user] one" in prompt and prompt.endswith("three")

    fake_cli.install(fake_bin, program, stream=stream, record=record, mode="forget")
    run = await turn(manager, sid, "four", provider)  # auto: native, refused, then replay
    seen = json.loads(record.read_text())
    assert issued not in seen["argv"] and PREAMBLE_HEADER in prompt_of(seen)
    page = await manager.store.read_events(sid, run_id=run.id, types=["error_recovered"])
    assert isinstance(page.events[0].data, ErrorRecovered) and page.events[0].data.error_code == "resume_not_found"


@pytest.mark.parametrize(("cls", "program", "stream", "issued"), CLIS)
async def test_a_resume_id_a_cli_never_issued_is_resume_not_found(
    fake_bin: Path, cls: Any, program: str, stream: str, issued: str
) -> None:
    fake_cli.install(fake_bin, program, stream=stream)
    manager = SessionManager(InMemorySessionStore(), provider=cls())
    run = await manager.run_once("hi", options={"resume": "never-issued"})
    assert run.status is RunStatus.FAILED and run.error is not None
    assert run.error.code == "resume_not_found" and "never-issued" in run.error.message
