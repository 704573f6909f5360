"""The claude-code provider against fake ``claude`` executables replaying real
``claude -p --output-format stream-json --verbose`` streams."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from asm_claude.code import ClaudeCodeOptions, ClaudeCodeProvider, create_code_provider
from fake_cli_contract import CliMisbehaviourContract
from fake_cli_fixtures import Install

import asm
from asm import AsmError, Cost, InMemorySessionStore, RunStatus, SessionManager, TokenUsage
from asm.events import (
    CostUpdated,
    EventType,
    MessageReceived,
    MessageStreamed,
    ToolCallCompleted,
    ToolCallStarted,
)
from asm.ports import Provider
from asm.testing import ProviderContract


class TestClaudeCodeContract(ProviderContract):
    prompt = "run echo hi"

    @pytest.fixture
    def provider(self, install_fake: Install) -> Provider:
        install_fake("claude", stream="claude_cli_stream_partial.jsonl")
        return ClaudeCodeProvider()

    @pytest.fixture
    def slow_provider(self, install_fake: Install) -> Provider:
        exe = install_fake("claude-stalls", stream="claude_cli_stream_partial.jsonl", mode="stall")
        return ClaudeCodeProvider(ClaudeCodeOptions(path=str(exe), terminate_grace=1.0))


class TestClaudeCodeMisbehaves(CliMisbehaviourContract):
    cli = "claude"
    stream = "claude_cli_stream_partial.jsonl"
    output = "Hello from the fake server."

    def provider(self, **options: Any) -> Provider:
        return ClaudeCodeProvider(ClaudeCodeOptions(**options))


async def run(
    provider: ClaudeCodeProvider, prompt: str = "run echo hi", **options: object
) -> tuple[asm.Run, list[asm.Event]]:
    manager = SessionManager(InMemorySessionStore(), provider=provider)
    done = await manager.run_once(prompt, options=options)
    events = (await manager.store.read_events(done.session_id, run_id=done.id)).events
    return done, list(events)


def content(events: list[asm.Event]) -> list[object]:
    return [e.data for e in events if e.type not in (EventType.RUN_STARTED, EventType.MESSAGE_SENT)]


async def test_recorded_partial_stream_is_normalized(install_fake: Install) -> None:
    install_fake("claude", stream="claude_cli_stream_partial.jsonl")
    done, events = await run(ClaudeCodeProvider())
    assert done.status is RunStatus.COMPLETED
    assert done.output == "Hello from the fake server."
    assert done.usage == TokenUsage(input_tokens=20, output_tokens=24)
    assert done.result is not None
    assert done.result.cost == Cost(total_usd=0.00042)
    assert done.result.stop_reason == "end_turn"
    assert done.result.model == "claude-sonnet-4-5"
    assert done.result.metadata["session_id"] == "c1ec53f3-37b7-4fae-b36d-38998bdcb6f3"
    assert done.result.metadata["num_turns"] == 2
    payloads = content(events)
    assert payloads[:3] == [
        ToolCallStarted("toolu_fake01", "Bash", {"command": "echo hi from bash", "description": "say hi"}),
        ToolCallCompleted("toolu_fake01", "Bash", "hi from bash"),
        asm.events.TurnCompleted(1),
    ]
    # token deltas streamed (coalesced when they arrive together), the full text once more as a message
    streamed = "".join(p.delta for p in payloads if isinstance(p, MessageStreamed))
    assert streamed == "Hello from the fake server."
    assert [p for p in payloads if isinstance(p, MessageReceived)] == [MessageReceived("Hello from the fake server.")]
    assert CostUpdated(Cost(total_usd=0.00042), "claude-sonnet-4-5") in payloads


async def test_recorded_stream_without_partial_messages(install_fake: Install) -> None:
    install_fake("claude", stream="claude_cli_stream.jsonl")
    done, events = await run(ClaudeCodeProvider(ClaudeCodeOptions(partial_messages=False)))
    assert done.status is RunStatus.COMPLETED
    assert done.output == "Hello from the fake server."
    assert MessageStreamed("Hello from the fake server.") in content(events)
    assert done.result is not None and done.result.metadata["session_id"] == "24df73ed-9323-4d26-b320-1a5028a814d3"


async def test_flags_prompt_and_environment(
    install_fake: Install, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = tmp_path / "record.json"
    install_fake("claude", stream="claude_cli_stream.jsonl", record=record)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    monkeypatch.setenv("UNRELATED_SECRET", "nope")
    provider = create_code_provider(
        {
            "model": "claude-sonnet-4-5",
            "permission_mode": "acceptEdits",
            "max_turns": 3,
            "system_prompt": "You are terse.",
            "append_system_prompt": "Use British spelling.",
            "allowed_tools": ["Bash(git:*)", "Edit"],
            "disallowed_tools": ["WebFetch"],
            "sdk_opts": {"args": ["--mcp-config", "mcp.json"], "env": {"CLAUDE_CODE_MAX_RETRIES": "0"}},
        }
    )
    done, _ = await run(provider, "fix the bug", resume="24df73ed")
    assert done.status is RunStatus.COMPLETED, done.error
    seen = json.loads(record.read_text())
    assert seen["argv"][1:] == [
        "-p",
        "--output-format",
        "stream-json",
        "--verbose",
        "--include-partial-messages",
        "--model",
        "claude-sonnet-4-5",
        "--permission-mode",
        "acceptEdits",
        "--max-turns",
        "3",
        "--system-prompt",
        "You are terse.",
        "--append-system-prompt",
        "Use British spelling.",
        "--allowedTools",
        "Bash(git:*),Edit",
        "--disallowedTools",
        "WebFetch",
        "--resume",
        "24df73ed",
        "--mcp-config",
        "mcp.json",
    ]
    assert seen["stdin"] == "fix the bug"
    assert seen["env"]["ANTHROPIC_API_KEY"] == "sk-ant-test"
    assert seen["env"]["CLAUDE_CODE_MAX_RETRIES"] == "0"
    assert "UNRELATED_SECRET" not in seen["env"]


async def test_api_error_result_fails_the_run_retryably(install_fake: Install) -> None:
    install_fake("claude", stream="claude_cli_stream_error.jsonl", mode="exit=1")
    done, events = await run(ClaudeCodeProvider())
    assert done.status is RunStatus.FAILED
    assert done.error is not None and done.error.code == "provider_unavailable" and done.error.retryable
    error = done.error.provider_error
    assert error is not None
    assert (error.provider, error.kind, error.exit_code) == ("claude-code", "result_error", 1)
    assert "529 Overloaded" in error.message
    assert events[-1].type is EventType.RUN_FAILED


async def test_max_turns_result(install_fake: Install, tmp_path: Path) -> None:
    stream = tmp_path / "max_turns.jsonl"
    line = {"type": "result", "subtype": "error_max_turns", "is_error": True, "num_turns": 3, "session_id": "s"}
    stream.write_text(json.dumps(line) + "\n")
    install_fake("claude", stream=stream, mode="exit=1")
    done, _ = await run(ClaudeCodeProvider(ClaudeCodeOptions(max_turns=3)))
    assert done.error is not None and done.error.provider_error is not None
    assert done.error.provider_error.kind == "max_turns"


async def test_executable_not_found_says_how_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    done, _ = await run(ClaudeCodeProvider())
    assert done.error is not None and done.error.code == "provider_not_found"
    assert "npm install -g @anthropic-ai/claude-code" in done.error.message and "'path'" in done.error.message


@pytest.mark.parametrize(
    ("config", "named"),
    [({"max_turn": 3}, "'max_turn'"), ({"permission_mode": "yolo"}, "yolo"), ({"sdk_opts": {"argv": []}}, "'argv'")],
)
def test_bad_config(config: dict[str, object], named: str) -> None:
    with pytest.raises(AsmError) as caught:
        create_code_provider(config)
    assert caught.value.code == "invalid_config"
    assert named in str(caught.value)


def test_registered_through_its_entry_point() -> None:
    registry = asm.load_plugins(env={"ASM_LOAD_PLUGINS": "asm-claude"})
    assert isinstance(registry.create("providers", "claude-code", {}), ClaudeCodeProvider)


async def test_policy_tool_rules_become_claude_codes_own_flags(install_fake: Install, tmp_path: Path) -> None:
    from asm.policy import Policy, ToolRule

    record = tmp_path / "record.json"
    install_fake("claude", stream="claude_cli_stream.jsonl", record=record)
    provider = create_code_provider({"disallowed_tools": ["WebFetch"]})
    policy = Policy(
        "repo-only",
        tool_rules=(
            ToolRule("Read", "allow"),
            ToolRule("Bash", "allow"),
            ToolRule("Write", "deny"),
            ToolRule("rm*", "deny"),
        ),
    )
    manager = SessionManager(InMemorySessionStore(), provider=provider, policies=[policy])
    done = await manager.run_once("look around")
    assert done.status is RunStatus.COMPLETED, done.error
    argv = json.loads(record.read_text())["argv"]
    # Plain names go to the CLI; the glob `rm*` cannot, and is judged as tool calls start.
    assert argv[argv.index("--allowedTools") + 1] == "Bash,Read"
    assert argv[argv.index("--disallowedTools") + 1] == "WebFetch,Write"
